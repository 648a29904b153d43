//! SIGINT | SIGTERM → cancel a `CancellationToken`. `docker stop` and
//! `nomad alloc stop` send SIGTERM; Ctrl-C sends SIGINT.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// Runs `work` on the daemon's runtime (two workers) with a token that the
/// first SIGINT or SIGTERM cancels, and returns its exit code; 1 when the
/// runtime or the signal handlers cannot be set up. Tasks still blocked at
/// the end (a DNS lookup) do not delay the exit by more than 300 ms.
pub fn run_until_signal<F, Fut>(work: F) -> ExitCode
where
    F: FnOnce(CancellationToken) -> Fut,
    Fut: Future<Output = ExitCode>,
{
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(4)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("nomad-metrics: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let code = runtime.block_on(async {
        let token = CancellationToken::new();
        if let Err(err) = cancel_on_signal(token.clone()) {
            eprintln!("nomad-metrics: cannot install signal handlers: {err}");
            return ExitCode::FAILURE;
        }
        work(token).await
    });
    runtime.shutdown_timeout(Duration::from_millis(300));
    code
}

/// Cancels `token` on the first SIGINT or SIGTERM.
///
/// # Errors
///
/// The signal handlers cannot be installed.
pub fn cancel_on_signal(token: CancellationToken) -> std::io::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::spawn(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
        };
        tracing::info!("{name} received, stopping (a second signal exits at once)");
        token.cancel();
        tokio::select! {
            _ = term.recv() => {}
            _ = int.recv() => {}
        }
        tracing::warn!("second signal: exiting now");
        std::process::exit(1);
    });
    Ok(())
}
