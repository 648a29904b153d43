//! `nomad-metrics demo`: the daemon, both roles, against a simulated Nomad
//! cluster on a loopback port (`server`, `sim`, `json`), sending its gauges
//! to a UDP socket of the demo's own; the datagrams that arrive there are
//! what would be sent to DogStatsD, shown live (`view`) or raw, and, with
//! `--statsd-host`/`--statsd-port`, forwarded to a real DogStatsD. The
//! daemon runs unchanged: a `Config` made by `Config::from_args`, then
//! `pipeline::run`, over real HTTP and real UDP.

mod json;
mod server;
mod sim;
mod view;

use std::io::{IsTerminal as _, Write as _};
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use clap::Parser as _;
use tokio::net::UdpSocket;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::cli::{Cli, Command, DemoArgs};
use crate::config::{Config, DEFAULT_STATSD_HOST, DEFAULT_STATSD_PORT};
use crate::shutdown;

pub use server::Simulator;
pub use sim::NOMAD_VERSION;
pub use view::{parse_line, Line};

/// Largest datagram the capture socket reads (the daemon sends at most
/// `statsd::MAX_DATAGRAM_BYTES`).
const MAX_DATAGRAM: usize = 64 * 1024;

/// Runs the demo until SIGINT/SIGTERM: exit 0 then, 1 on a set-up error.
#[must_use]
pub fn main(args: DemoArgs) -> ExitCode {
    // Warnings only by default: info lines would scroll the live view away.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr)
        .init();
    shutdown::run_until_signal(|token| async move {
        match run(args, token).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("nomad-metrics demo: {err:#}");
                ExitCode::FAILURE
            }
        }
    })
}

/// Starts the simulator and the daemon, shows what the daemon sends until
/// `shutdown`.
///
/// # Errors
///
/// A loopback port cannot be bound, the `--statsd-host` does not resolve,
/// or the daemon cannot be set up.
pub async fn run(args: DemoArgs, shutdown: CancellationToken) -> anyhow::Result<()> {
    let capture = UdpSocket::bind(("127.0.0.1", 0))
        .await
        .context("cannot bind a loopback UDP port for the view")?;
    let forward = Forward::new(&args).await?;
    let sim = Simulator::start(args.seed, args.interval, shutdown.clone())
        .await
        .context("cannot bind a loopback port for the simulated Nomad")?;
    let cfg = daemon_config(sim.addr, capture.local_addr()?, args.interval)?;
    let daemon = tokio::spawn(crate::pipeline::run(cfg, shutdown.clone()));

    let screen = Screen {
        tty: std::io::stdout().is_terminal(),
        header: format!(
            "nomad-metrics demo: simulated Nomad {NOMAD_VERSION} at http://{} (seed {}), both modes polling every {}",
            sim.addr,
            args.seed,
            humantime::format_duration(args.interval)
        ),
        sent_to: forward.as_ref().map_or_else(
            || "what would be sent to DogStatsD (nothing leaves this machine)".to_owned(),
            |f| format!("what was sent to DogStatsD at udp://{}", f.shown),
        ),
    };
    let mut buf = vec![0u8; MAX_DATAGRAM];
    let mut batches = view::Batches::default();
    let mut prev: Option<view::Frame> = None;
    let mut refreshes = 0u64;
    let mut last_frame = Instant::now();
    let mut fallback = tokio::time::interval(args.interval / 2);
    loop {
        let render = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            got = capture.recv(&mut buf) => {
                let Ok(n) = got else { continue };
                let datagram = &buf[..n];
                if let Some(f) = &forward {
                    f.send(datagram).await;
                }
                let text = String::from_utf8_lossy(datagram);
                if args.raw {
                    if screen.print(&format!("{}\n", text.trim_end())).is_err() {
                        break;
                    }
                    continue;
                }
                batches.feed(&text);
                batches.fresh() >= 2
            }
            // A role that stops sending (it cannot, but a view must not
            // freeze) is not waited for past 1.5 intervals.
            _ = fallback.tick() => {
                batches.fresh() > 0 && last_frame.elapsed() >= args.interval.mul_f64(1.5)
            }
        };
        if !render {
            continue;
        }
        batches.take_fresh();
        refreshes += 1;
        last_frame = Instant::now();
        let frame = view::Frame::from_batches(&batches);
        let mut text = format!(
            "{}\n{} — refresh {refreshes}, cluster step {}\n\n",
            screen.header,
            screen.sent_to,
            sim.steps()
        );
        text.push_str(&frame.render(prev.as_ref()));
        if batches.malformed > 0 {
            text.push_str(&format!(
                "({} malformed lines received)\n",
                batches.malformed
            ));
        }
        if screen.draw(&text).is_err() {
            break;
        }
        prev = Some(frame);
    }
    // Stdout closed (a pipe's reader left) ends the demo as a signal does.
    shutdown.cancel();
    match daemon.await {
        Ok(result) => result.map(|_| ()),
        Err(join) => Err(anyhow::anyhow!("the daemon task failed: {join}")),
    }
}

/// The daemon's configuration, made the way `start` makes it, from a
/// command line: both roles, the simulator, the capture socket.
fn daemon_config(
    nomad: SocketAddr,
    statsd: SocketAddr,
    interval: Duration,
) -> anyhow::Result<Config> {
    let argv = [
        "nomad-metrics".to_owned(),
        "start".to_owned(),
        "--client".to_owned(),
        "--server".to_owned(),
        format!("--nomad-uri=http://{nomad}"),
        format!("--statsd-host={}", statsd.ip()),
        format!("--statsd-port={}", statsd.port()),
        format!("--interval={}ms", interval.as_millis()),
    ];
    let parsed = Cli::try_parse_from(argv).context("the demo's own start command line")?;
    let Command::Start(args) = parsed.command else {
        anyhow::bail!("the demo's start command line parsed as another command");
    };
    // No environment: NOMAD_TOKEN, DD_TAGS and the like belong to a real
    // cluster, not to the simulated one.
    Config::from_args(args, &|_| None)
}

/// `--statsd-host`/`--statsd-port`: where captured datagrams are copied to.
struct Forward {
    socket: UdpSocket,
    to: SocketAddr,
    shown: String,
}

impl Forward {
    async fn new(args: &DemoArgs) -> anyhow::Result<Option<Self>> {
        if args.statsd_host.is_none() && args.statsd_port.is_none() {
            return Ok(None);
        }
        let host = args.statsd_host.as_deref().unwrap_or(DEFAULT_STATSD_HOST);
        let port = args.statsd_port.unwrap_or(DEFAULT_STATSD_PORT);
        let to = tokio::net::lookup_host((host, port))
            .await
            .ok()
            .and_then(|mut addrs| addrs.next())
            .with_context(|| format!("cannot resolve DogStatsD host {host}"))?;
        let bind: SocketAddr = if to.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let socket = UdpSocket::bind(bind).await?;
        let shown = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        Ok(Some(Self { socket, to, shown }))
    }

    async fn send(&self, datagram: &[u8]) {
        if let Err(err) = self.socket.send_to(datagram, self.to).await {
            tracing::debug!(to = %self.to, error = %err, "cannot forward to DogStatsD");
        }
    }
}

/// Stdout: redrawn in place on a terminal, plain blocks otherwise.
struct Screen {
    tty: bool,
    header: String,
    sent_to: String,
}

impl Screen {
    fn draw(&self, frame: &str) -> std::io::Result<()> {
        if self.tty {
            // Home, clear to the end: no flicker from a full clear first.
            self.print(&format!(
                "\x1b[H{}\x1b[J(Ctrl-C to stop)\n",
                frame.replace('\n', "\x1b[K\n")
            ))
        } else {
            self.print(&format!("{frame}\n"))
        }
    }

    fn print(&self, text: &str) -> std::io::Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_daemon_config_is_a_start_config() {
        let cfg = daemon_config(
            "127.0.0.1:4646".parse().unwrap(),
            "127.0.0.1:8125".parse().unwrap(),
            Duration::from_secs(2),
        )
        .unwrap();
        assert_eq!(cfg.roles.len(), 2);
        assert_eq!(cfg.interval, Duration::from_secs(2));
        assert_eq!(cfg.nomad.base.as_str(), "http://127.0.0.1:4646/");
        assert_eq!(
            cfg.statsd.as_ref().map(ToString::to_string).as_deref(),
            Some("udp://127.0.0.1:8125")
        );
    }
}
