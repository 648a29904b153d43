//! Entry point: parse → tracing → `Config` → `run` until SIGTERM/SIGINT.
//! Usage errors print one line and exit 2; a clean stop exits 0; `--once`
//! exits 1 when a poll failed.

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::Parser as _;
use nomad_metrics::cli::{Cli, Command, LogFormat};
use nomad_metrics::{run, shutdown, Config};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if !err.use_stderr() => {
            // --help / --version
            let _ = err.print();
            return ExitCode::SUCCESS;
        }
        Err(err)
            if err.kind() == clap::error::ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand =>
        {
            return usage_error("error: a subcommand is required: start or demo");
        }
        Err(err) => return usage_error(&err.render().to_string()),
    };
    let args = match cli.command {
        Command::Start(args) => args,
        Command::Demo(args) => return nomad_metrics::demo::main(args),
    };
    let cfg = match Config::from_args(args, &|k| std::env::var(k).ok()) {
        Ok(cfg) => cfg,
        Err(err) => return usage_error(&format!("error: {err:#}")),
    };
    // TLS files, the token (file): a bad one is a usage error, before start.
    if let Err(err) = nomad_metrics::nomad::NomadApi::new(cfg.nomad.clone()) {
        return usage_error(&format!("error: {err:#}"));
    }
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // No colour codes when stderr is a file or a pipe (docker logs, Nomad
    // alloc logs, journald).
    let logs = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    match cfg.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    let once = cfg.once;
    return_freed_memory();

    shutdown::run_until_signal(|token| async move {
        match run(cfg, token).await {
            Ok(finished) if once && finished.last_poll_failed => ExitCode::FAILURE,
            Ok(_) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("nomad-metrics: {err:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// One line on stderr, exit code 2.
fn usage_error(rendered: &str) -> ExitCode {
    let line = rendered
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("error: invalid command line");
    let command = match std::env::args().nth(1).as_deref() {
        Some("demo") => "demo",
        _ => "start",
    };
    eprintln!("nomad-metrics: {line} (see nomad-metrics {command} --help)");
    ExitCode::from(2)
}

/// glibc raises its mmap threshold each time a large block is freed, after
/// which the big, short-lived buffers of a full list read come from the
/// heap and their pages stay with the process: a 100k-job read left the
/// resident size ~4 MB above what is live. Fixed thresholds keep blocks
/// over 128 KiB in their own mappings, given back when freed, and let the
/// heap shrink. One arena instead of one per thread: the aggregates
/// rebuilt each interval are freed and made again on whichever worker runs,
/// and per-thread arenas each kept their own free pages (+2–3 MB after a
/// minute of churn). The daemon allocates little, so the shared lock costs
/// nothing measurable. musl (the container image) has neither behaviour.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn return_freed_memory() {
    const THRESHOLD: libc::c_int = 128 * 1024;
    // SAFETY: mallopt only sets allocator tunables; it is called before any
    // other thread exists, and a refused setting (0) only leaves the
    // default behaviour.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_TRIM_THRESHOLD, THRESHOLD);
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn return_freed_memory() {}
