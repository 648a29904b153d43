//! EMIT: the only code that knows cadence. One `Statsd` per role: a buffered
//! UDP (or Unix datagram) sink that packs a poll's gauges into datagrams of at
//! most `MAX_DATAGRAM_BYTES`, flushed at the end of every poll. The DogStatsD
//! host is resolved again every `RESOLVE_EVERY`, so metrics follow a replaced
//! services host; if it cannot be resolved at start, every emit retries.
//! Send errors go to the log (rate-limited), never up: emitting cannot fail.

use std::io::Write as _;
use std::net::{SocketAddr, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cadence::prelude::*;
use cadence::{
    BufferedUdpMetricSink, BufferedUnixMetricSink, MetricError, MetricSink, StatsdClient,
};

use crate::gauges::{Gauge, PREFIX};

/// Largest datagram sent: fits a 1500-byte MTU with IP/UDP headers to spare.
pub const MAX_DATAGRAM_BYTES: usize = 1432;
/// How often cadence re-resolves the DogStatsD host name.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);
/// At most one warning per this period for DogStatsD send failures.
const WARN_EVERY_SECS: u64 = 60;

/// Where gauges go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatsdTarget {
    /// DogStatsD over UDP: a host name (re-resolved) or IP literal, and port.
    Udp { host: String, port: u16 },
    /// DogStatsD over a Unix datagram socket.
    Unix(PathBuf),
    /// `--dry-run`: one line per gauge on stdout.
    Stdout,
}

impl std::fmt::Display for StatsdTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StatsdTarget::Udp { host, port } if host.contains(':') => {
                write!(f, "udp://[{host}]:{port}")
            }
            StatsdTarget::Udp { host, port } => write!(f, "udp://{host}:{port}"),
            StatsdTarget::Unix(path) => write!(f, "unix://{}", path.display()),
            StatsdTarget::Stdout => f.write_str("stdout (dry run)"),
        }
    }
}

/// A DogStatsD emitter for one role.
pub struct Statsd {
    target: StatsdTarget,
    global_tags: Vec<(String, String)>,
    client: Option<StatsdClient>,
}

impl Statsd {
    /// An emitter for `target`; connects lazily on the first `emit`.
    #[must_use]
    pub fn new(target: StatsdTarget, global_tags: Vec<(String, String)>) -> Self {
        Self {
            target,
            global_tags,
            client: None,
        }
    }

    /// Sends `gauges` as one batch and flushes. Never fails: problems are
    /// logged (at most once a minute at warn level).
    pub async fn emit(&mut self, gauges: &[Gauge]) {
        if self.client.is_none() {
            self.client = self.connect().await;
        }
        let Some(client) = &self.client else {
            return;
        };
        for gauge in gauges {
            let mut builder = client.gauge_with_tags(gauge.name, gauge.value);
            for tag in &gauge.tags {
                builder = builder.with_tag(tag.key, tag.value.as_str());
            }
            builder.send();
        }
        if let Err(err) = client.flush() {
            LIMITER.warn(&self.target, &err);
        }
    }

    /// Resolves the host (off the async threads: lookups block) and builds the
    /// cadence client; `None` (logged) when the host does not resolve yet.
    async fn connect(&self) -> Option<StatsdClient> {
        let target = self.target.clone();
        let tags = self.global_tags.clone();
        let built = tokio::task::spawn_blocking(move || build_client(&target, tags)).await;
        match built {
            Ok(Ok(client)) => {
                tracing::info!(statsd = %self.target, "sending gauges to DogStatsD");
                Some(client)
            }
            Ok(Err(err)) => {
                LIMITER.warn(&self.target, &err);
                None
            }
            Err(join) => {
                tracing::warn!(error = %join, "DogStatsD set-up task failed");
                None
            }
        }
    }
}

fn build_client(
    target: &StatsdTarget,
    tags: Vec<(String, String)>,
) -> anyhow::Result<StatsdClient> {
    let send_target = target.clone();
    let mut builder = match target {
        StatsdTarget::Udp { host, port } => {
            StatsdClient::builder(PREFIX, udp_sink(host, *port, target)?)
        }
        StatsdTarget::Unix(path) => {
            let socket = UnixDatagram::unbound()?;
            socket.set_nonblocking(true)?;
            StatsdClient::builder(
                PREFIX,
                BufferedUnixMetricSink::with_capacity(path, socket, MAX_DATAGRAM_BYTES),
            )
        }
        StatsdTarget::Stdout => StatsdClient::builder(PREFIX, StdoutSink),
    };
    builder = builder.with_error_handler(move |e: MetricError| LIMITER.warn(&send_target, &e));
    for (key, value) in tags {
        builder = builder.with_tag(key, value);
    }
    Ok(builder.build())
}

fn udp_sink(host: &str, port: u16, target: &StatsdTarget) -> anyhow::Result<BufferedUdpMetricSink> {
    use std::net::ToSocketAddrs as _;
    let first: SocketAddr = (host, port)
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("cannot resolve DogStatsD host {host}: {e}"))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("DogStatsD host {host} has no address"))?;
    let bind: SocketAddr = if first.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    let resolve_target = target.clone();
    Ok(BufferedUdpMetricSink::builder()
        .with_capacity(MAX_DATAGRAM_BYTES)
        .with_resolver_period(RESOLVE_EVERY)
        .with_resolver_error_handler(move |e| LIMITER.warn(&resolve_target, &e))
        .build((host.to_owned(), port), socket)?)
}

/// `--dry-run`: every line to stdout as it would be sent.
struct StdoutSink;

impl MetricSink for StdoutSink {
    fn emit(&self, metric: &str) -> std::io::Result<usize> {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{metric}")?;
        Ok(metric.len() + 1)
    }

    fn flush(&self) -> std::io::Result<()> {
        std::io::stdout().lock().flush()
    }
}

/// One limiter for the whole process (both roles, the resolver thread).
static LIMITER: WarnLimiter = WarnLimiter {
    last_warn_secs: AtomicU64::new(0),
};

/// Logs DogStatsD problems at warn level at most once per `WARN_EVERY_SECS`,
/// at debug level otherwise, so a missing agent does not flood the log.
#[derive(Debug)]
struct WarnLimiter {
    last_warn_secs: AtomicU64,
}

impl WarnLimiter {
    fn warn(&self, target: &StatsdTarget, err: &dyn std::fmt::Display) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let last = self.last_warn_secs.load(Ordering::Relaxed);
        if (last == 0 || now.saturating_sub(last) >= WARN_EVERY_SECS)
            && self
                .last_warn_secs
                .compare_exchange(last, now.max(1), Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            tracing::warn!(statsd = %target, error = %err, "cannot send to DogStatsD (repeats are logged at debug level for a minute)");
        } else {
            tracing::debug!(statsd = %target, error = %err, "cannot send to DogStatsD");
        }
    }
}
