//! One loop per role: tick → poll Nomad (the role's `Collector`) → map to
//! gauges, plus the role's health gauges (poll_failure, poll duration, age
//! of the last success) → publish that one batch to the Prometheus
//! exposition and emit it to DogStatsD (either may be off). A failed poll
//! sends poll_failure 1 and no stale values; the log says so once when
//! failing starts (or its cause changes) and once on recovery. Nothing here
//! ends the daemon. The roles' collectors are in `client` and `server`.

mod client;
mod follow;
mod server;

use std::error::Error as StdError;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::Config;
use crate::gauges::resources::UnknownCapacity;
use crate::gauges::{Gauge, Tag};
use crate::health::HealthBoard;
use crate::listen;
use crate::nomad::{NomadApi, NomadError, NomadVersion};
use crate::prometheus::Exposition;
use crate::role::Role;
use crate::statsd::Statsd;

pub use client::ClientCollector;
pub use server::ServerCollector;

/// How long a version read from `/v1/agent/self` is trusted (Nomad can be
/// upgraded under a running daemon).
const VERSION_TTL: Duration = Duration::from_secs(600);

/// Why one poll failed.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Nomad(#[from] NomadError),
    /// A list watcher's last request failed.
    #[error("{list}: {source}")]
    Watch {
        list: &'static str,
        source: Arc<NomadError>,
    },
    #[error("{list}: no answer from Nomad yet")]
    NoAnswerYet { list: &'static str },
    #[error("Nomad reports no cluster leader")]
    NoLeader,
    #[error("the poll took longer than {limit_ms} ms (90 % of the interval)")]
    Deadline { limit_ms: u128 },
    #[error(transparent)]
    Capacity(#[from] UnknownCapacity),
}

impl PollError {
    /// A short class for "did the cause change?" (not shown to users).
    fn class(&self) -> String {
        let nomad = match self {
            PollError::Nomad(e) => e,
            PollError::Watch { source, .. } => source.as_ref(),
            other => return format!("{:?}", std::mem::discriminant(other)),
        };
        match nomad {
            NomadError::Status { status, .. } => format!("status {status}"),
            e => format!("{:?}", std::mem::discriminant(e)),
        }
    }
}

/// Renders an error with its whole `source` chain on one line.
#[must_use]
pub fn error_chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

/// What one poll produced: the gauges it could compute and, if anything
/// failed, why (then poll_failure is 1).
#[derive(Debug, Default)]
pub struct Polled {
    pub gauges: Vec<Gauge>,
    pub error: Option<PollError>,
}

impl From<Result<Vec<Gauge>, PollError>> for Polled {
    fn from(r: Result<Vec<Gauge>, PollError>) -> Self {
        match r {
            Ok(gauges) => Self {
                gauges,
                error: None,
            },
            Err(e) => Self {
                gauges: Vec::new(),
                error: Some(e),
            },
        }
    }
}

/// A role's data source: one poll → its gauges.
pub trait Collector: Send {
    fn role(&self) -> Role;
    /// Tags for the health gauges.
    fn health_tags(&self) -> Vec<Tag> {
        Vec::new()
    }
    /// Polls Nomad once.
    fn poll(&mut self) -> impl std::future::Future<Output = Polled> + Send;
}

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finished {
    /// The last poll of some role failed (what `--once` exits non-zero on).
    pub last_poll_failed: bool,
}

/// Runs the enabled roles until `shutdown` is cancelled (or, with `--once`,
/// after one poll each).
///
/// # Errors
///
/// Only set-up errors (the HTTP client cannot be built); once polling has
/// started nothing returns an error.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<Finished> {
    let api = NomadApi::new(cfg.nomad.clone())?;
    for warning in &cfg.warnings {
        tracing::warn!("{warning}");
    }
    tracing::info!(
        nomad = %api.origin(),
        statsd = %cfg.statsd.as_ref().map_or_else(|| "off".to_owned(), ToString::to_string),
        interval = %humantime::format_duration(cfg.interval),
        client = cfg.roles.contains(&Role::Client),
        server = cfg.roles.contains(&Role::Server),
        token = !matches!(cfg.nomad.token, crate::nomad::TokenSource::None),
        "nomad-metrics {} starting",
        env!("CARGO_PKG_VERSION")
    );
    if cfg.nomad.tls.skip_verify {
        tracing::warn!("NOMAD_SKIP_VERIFY is set: Nomad's TLS certificate is NOT verified");
    }
    let board = HealthBoard::new(cfg.interval, &cfg.roles);
    let mut wanted = Vec::new();
    if let Some(addr) = cfg.health_listen {
        wanted.push(listen::Wanted {
            flag: "--health-listen",
            addr,
            endpoint: Arc::clone(&board) as Arc<dyn listen::Endpoint>,
        });
    }
    let exposition = cfg.prometheus_listen.map(|addr| {
        let exposition = Exposition::new(&cfg.global_tags);
        wanted.push(listen::Wanted {
            flag: "--prometheus-listen",
            addr,
            endpoint: Arc::clone(&exposition) as Arc<dyn listen::Endpoint>,
        });
        exposition
    });
    listen::start(wanted, &shutdown).await?;
    let mut loops = tokio::task::JoinSet::new();
    for &role in &cfg.roles {
        let (cfg, stop) = (cfg.clone(), shutdown.clone());
        let sinks = Sinks {
            board: Arc::clone(&board),
            exposition: exposition.clone(),
        };
        match role {
            Role::Client => {
                let collector = ClientCollector::new(api.clone(), &cfg, shutdown.child_token());
                loops.spawn(run_loop(collector, cfg, sinks, stop));
            }
            Role::Server => {
                let collector = ServerCollector::new(api.clone(), &cfg, shutdown.child_token());
                loops.spawn(run_loop(collector, cfg, sinks, stop));
            }
        }
    }
    let mut finished = Finished {
        last_poll_failed: false,
    };
    while let Some(done) = loops.join_next().await {
        match done {
            Ok(failed) => finished.last_poll_failed |= failed,
            Err(err) => {
                finished.last_poll_failed = true;
                tracing::error!(error = %err, "a polling loop ended abnormally");
            }
        }
    }
    tracing::info!("stopped");
    Ok(finished)
}

/// Where a loop reports besides DogStatsD.
#[derive(Debug, Clone)]
pub struct Sinks {
    /// Each poll's outcome, for `/healthz`.
    pub board: Arc<HealthBoard>,
    /// `--prometheus-listen`: each poll's batch, for `/metrics`.
    pub exposition: Option<Arc<Exposition>>,
}

/// Ticks every `cfg.interval` (first tick at once; after a slow poll the
/// next one is delayed, never burst) until cancelled, or once with
/// `cfg.once`. Returns whether the last poll failed.
pub async fn run_loop<C: Collector>(
    mut collector: C,
    cfg: Config,
    sinks: Sinks,
    shutdown: CancellationToken,
) -> bool {
    let mut last_failed = false;
    let role = collector.role();
    let Sinks { board, exposition } = sinks;
    let mut statsd = cfg
        .statsd
        .clone()
        .map(|target| Statsd::new(target, cfg.global_tags.clone()));
    let mut health = Health::default();
    let mut ticks = time::interval(cfg.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let deadline = cfg.interval.mul_f64(0.9);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let span = tracing::info_span!("poll", role = %role);
        let started = Instant::now();
        // A poll chains requests, each with its own timeout; the whole poll
        // must still end within the interval so poll_failure is timely.
        let polled = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            polled = time::timeout(deadline, collector.poll().instrument(span.clone())) => {
                polled.unwrap_or_else(|_| Err(PollError::Deadline { limit_ms: deadline.as_millis() }).into())
            }
        };
        let took = started.elapsed();
        // Synchronous bookkeeping in the span; the emit below awaits, so it
        // carries the span as a future (a guard held across `.await` would
        // tag other tasks' log lines on this worker thread).
        let (gauges, failed) = span.in_scope(|| {
            let Polled { mut gauges, error } = polled;
            let failed = error.is_some();
            match &error {
                None => health.succeeded(role),
                Some(err) => health.failed(role, err),
            }
            board.record(role, error.as_ref().map(|e| error_chain(e)));
            let names = role.health_names();
            let tags = collector.health_tags();
            gauges.extend(Gauge::new(
                names.poll_duration_ms,
                took.as_secs_f64() * 1000.0,
                tags.clone(),
            ));
            if let Some(at) = health.last_success {
                gauges.extend(Gauge::new(
                    names.last_success_age_s,
                    at.elapsed().as_secs_f64().floor(),
                    tags.clone(),
                ));
            }
            // poll_failure goes last: it closes the poll's batch.
            gauges.push(Gauge::poll_failure(names.poll_failure, failed, tags));
            (gauges, failed)
        });
        // The same batch, at the same moment, to every output.
        if let Some(exposition) = &exposition {
            exposition.publish(role, &gauges);
        }
        if let Some(statsd) = statsd.as_mut() {
            // Connecting may wait on DNS; a stop request does not wait for it.
            tokio::select! {
                biased;
                () = shutdown.cancelled() => break,
                () = statsd.emit(&gauges).instrument(span) => {}
            }
        }
        last_failed = failed;
        if cfg.once {
            break;
        }
    }
    last_failed
}

/// Failing/recovered state of one loop, for state-change logging.
#[derive(Debug, Default)]
struct Health {
    failing_class: Option<String>,
    failures: u64,
    /// When the last warning was logged (cause changes are rate-limited).
    last_warn: Option<Instant>,
    last_success: Option<Instant>,
}

impl Health {
    fn failed(&mut self, role: Role, err: &PollError) {
        self.failures += 1;
        let class = err.class();
        let msg = error_chain(err);
        let started = self.failing_class.is_none();
        let changed = self.failing_class.as_deref() != Some(class.as_str());
        let quiet = self
            .last_warn
            .is_some_and(|t| t.elapsed() < Duration::from_secs(60));
        if started || (changed && !quiet) {
            tracing::warn!(role = %role, "poll failed: {msg} (poll_failure=1; repeats are logged at debug level)");
            self.last_warn = Some(Instant::now());
        } else {
            tracing::debug!(role = %role, failures = self.failures, "poll failed again: {msg}");
        }
        self.failing_class = Some(class);
    }

    fn succeeded(&mut self, role: Role) {
        if self.failing_class.take().is_some() {
            tracing::info!(role = %role, failed_polls = self.failures, "poll recovered (poll_failure=0)");
        }
        self.failures = 0;
        self.last_success = Some(Instant::now());
    }
}

/// The cheap liveness check of every poll (`/v1/status/leader`: a few
/// bytes, no ACL), so that a Nomad that stopped answering, or lost its
/// leader, shows within one interval even while blocking queries or the
/// event stream are parked.
#[derive(Debug, Default)]
struct LeaderCheck {
    /// The endpoint answered 404 once (not a real Nomad): skip it.
    skip: bool,
}

impl LeaderCheck {
    async fn check(&mut self, api: &NomadApi) -> Result<(), PollError> {
        if self.skip {
            return Ok(());
        }
        match api.leader().await {
            Ok(leader) if leader.is_empty() => Err(PollError::NoLeader),
            Ok(_) => Ok(()),
            Err(err) if err.is_not_found() => {
                tracing::debug!("/v1/status/leader not found; skipping the leader check");
                self.skip = true;
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }
}

/// A version read from `/v1/agent/self`, with when it was read.
#[derive(Debug, Clone, Copy)]
struct SeenVersion {
    version: Option<NomadVersion>,
    at: Instant,
}

impl SeenVersion {
    fn now(version: Option<NomadVersion>) -> Self {
        Self {
            version,
            at: Instant::now(),
        }
    }

    fn fresh(&self) -> bool {
        self.at.elapsed() < VERSION_TTL
    }
}
