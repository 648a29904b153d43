//! EMIT: the only code that knows cadence. One `Statsd` per role: a buffered
//! UDP sink that packs a poll's gauges into datagrams of at most
//! `MAX_DATAGRAM_BYTES`, flushed at the end of every poll. The DogStatsD host
//! is resolved again every `RESOLVE_EVERY`, so metrics follow a replaced
//! services host; if it cannot be resolved at start, every emit retries.
//! Send errors go to the log (rate-limited), never up: emitting cannot fail.

use std::net::{SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cadence::prelude::*;
use cadence::{BufferedUdpMetricSink, MetricError, StatsdClient};

use crate::gauges::{Gauge, PREFIX};

/// Largest datagram sent: fits a 1500-byte MTU with IP/UDP headers to spare.
pub const MAX_DATAGRAM_BYTES: usize = 1432;
/// How often cadence re-resolves the DogStatsD host name.
pub const RESOLVE_EVERY: Duration = Duration::from_secs(30);
/// At most one warning per this period for DogStatsD send failures.
const WARN_EVERY_SECS: u64 = 60;

/// Where gauges go: a DogStatsD host name or IP literal and UDP port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsdTarget {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for StatsdTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// A DogStatsD emitter for one role.
pub struct Statsd {
    target: StatsdTarget,
    global_tags: Vec<(String, String)>,
    client: Option<StatsdClient>,
    limiter: Arc<WarnLimiter>,
}

impl Statsd {
    /// An emitter for `target`; connects lazily on the first `emit`.
    #[must_use]
    pub fn new(target: StatsdTarget, global_tags: Vec<(String, String)>) -> Self {
        Self {
            target,
            global_tags,
            client: None,
            limiter: Arc::new(WarnLimiter::default()),
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
            self.limiter.warn(&self.target, &err);
        }
    }

    /// Resolves the host (off the async threads: lookups block) and builds the
    /// cadence client; `None` (logged) when the host does not resolve yet.
    async fn connect(&self) -> Option<StatsdClient> {
        let target = self.target.clone();
        let tags = self.global_tags.clone();
        let limiter = Arc::clone(&self.limiter);
        let built = tokio::task::spawn_blocking(move || build_client(&target, tags, limiter)).await;
        match built {
            Ok(Ok(client)) => {
                tracing::info!(statsd = %self.target, "sending gauges to DogStatsD");
                Some(client)
            }
            Ok(Err(err)) => {
                self.limiter.warn(&self.target, &err);
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
    limiter: Arc<WarnLimiter>,
) -> anyhow::Result<StatsdClient> {
    use std::net::ToSocketAddrs as _;
    let first: SocketAddr = (target.host.as_str(), target.port)
        .to_socket_addrs()
        .map_err(|e| anyhow::anyhow!("cannot resolve DogStatsD host {}: {e}", target.host))?
        .next()
        .ok_or_else(|| anyhow::anyhow!("DogStatsD host {} has no address", target.host))?;
    let bind: SocketAddr = if first.is_ipv4() {
        ([0, 0, 0, 0], 0).into()
    } else {
        ([0u16; 8], 0).into()
    };
    let socket = UdpSocket::bind(bind)?;
    socket.set_nonblocking(true)?;
    let resolve_limiter = Arc::clone(&limiter);
    let resolve_target = target.clone();
    let sink = BufferedUdpMetricSink::builder()
        .with_capacity(MAX_DATAGRAM_BYTES)
        .with_resolver_period(RESOLVE_EVERY)
        .with_resolver_error_handler(move |e| resolve_limiter.warn(&resolve_target, &e))
        .build((target.host.clone(), target.port), socket)?;
    let send_target = target.clone();
    let mut builder = StatsdClient::builder(PREFIX, sink)
        .with_error_handler(move |e: MetricError| limiter.warn(&send_target, &e));
    for (key, value) in tags {
        builder = builder.with_tag(key, value);
    }
    Ok(builder.build())
}

/// Logs DogStatsD problems at warn level at most once per `WARN_EVERY_SECS`,
/// at debug level otherwise, so a missing agent does not flood the log.
#[derive(Debug, Default)]
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
