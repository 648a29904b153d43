//! One loop per role: tick → poll Nomad → map to gauges → emit to DogStatsD,
//! plus the role's poll_failure gauge. A failed poll sends poll_failure 1 and
//! nothing else (no stale values); the log says so once when failing starts
//! (or its cause changes) and once on recovery. Nothing here ends the daemon.

use std::error::Error as StdError;
use std::fmt;
use std::time::Duration;

use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use crate::config::Config;
use crate::gauges::client::{self as client_map, ClientOptions, LifecycleRules, UnknownCapacity};
use crate::gauges::server::JobCounts;
use crate::gauges::{self, Gauge, Tag};
use crate::nomad::{NomadApi, NomadError, NomadVersion};
use crate::statsd::Statsd;

/// How long a version read from `/v1/agent/self` is trusted (Nomad can be
/// upgraded under a running daemon).
const VERSION_TTL: Duration = Duration::from_secs(600);

/// A Nomad role this daemon reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Client,
    Server,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Client => "client",
            Role::Server => "server",
        })
    }
}

/// Why one poll produced no gauges.
#[derive(Debug, thiserror::Error)]
pub enum PollError {
    #[error(transparent)]
    Nomad(#[from] NomadError),
    #[error(transparent)]
    Capacity(#[from] UnknownCapacity),
}

impl PollError {
    /// A short class for "did the cause change?" (not shown to users).
    fn class(&self) -> String {
        match self {
            PollError::Nomad(NomadError::Status { status, .. }) => format!("status {status}"),
            PollError::Nomad(e) => format!("{:?}", std::mem::discriminant(e)),
            PollError::Capacity(_) => "capacity".into(),
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

/// A role's data source: one poll → its gauges.
pub trait Collector: Send {
    fn role(&self) -> Role;
    /// Name of the role's poll_failure gauge.
    fn failure_gauge(&self) -> &'static str;
    /// Tags for the poll_failure gauge.
    fn failure_tags(&self) -> Vec<Tag> {
        Vec::new()
    }
    /// Polls Nomad once.
    fn poll(&mut self) -> impl std::future::Future<Output = Result<Vec<Gauge>, PollError>> + Send;
}

/// Runs the enabled roles until `shutdown` is cancelled.
///
/// # Errors
///
/// Only set-up errors (the HTTP client cannot be built); once polling has
/// started nothing returns an error.
pub async fn run(cfg: Config, shutdown: CancellationToken) -> anyhow::Result<()> {
    let api = NomadApi::new(cfg.nomad.clone())?;
    tracing::info!(
        nomad = %api.base(),
        statsd = %cfg.statsd,
        interval = %humantime::format_duration(cfg.interval),
        client = cfg.roles.client,
        server = cfg.roles.server,
        token = cfg.nomad.token.is_some(),
        "nomad-metrics {} starting",
        env!("CARGO_PKG_VERSION")
    );
    if cfg.nomad.tls.skip_verify {
        tracing::warn!("NOMAD_SKIP_VERIFY is set: Nomad's TLS certificate is NOT verified");
    }
    let mut loops = tokio::task::JoinSet::new();
    if cfg.roles.client {
        let collector = ClientCollector::new(api.clone(), cfg.identity_tags);
        loops.spawn(run_loop(collector, cfg.clone(), shutdown.clone()));
    }
    if cfg.roles.server {
        let collector = ServerCollector::new(api.clone(), cfg.namespace.clone());
        loops.spawn(run_loop(collector, cfg.clone(), shutdown.clone()));
    }
    while let Some(done) = loops.join_next().await {
        if let Err(err) = done {
            tracing::error!(error = %err, "a polling loop ended abnormally");
        }
    }
    tracing::info!("stopped");
    Ok(())
}

/// Ticks every `cfg.interval` (first tick at once; after a slow poll the
/// next one is delayed, never burst) until cancelled.
pub async fn run_loop<C: Collector>(mut collector: C, cfg: Config, shutdown: CancellationToken) {
    let role = collector.role();
    let mut statsd = Statsd::new(cfg.statsd.clone(), cfg.global_tags.clone());
    let mut health = Health::default();
    let mut ticks = time::interval(cfg.interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            _ = ticks.tick() => {}
        }
        let span = tracing::info_span!("poll", role = %role);
        let polled = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            polled = collector.poll().instrument(span.clone()) => polled,
        };
        let _entered = span.enter();
        let failed = polled.is_err();
        let mut batch = match polled {
            Ok(gauges) => {
                health.succeeded(role);
                gauges
            }
            Err(err) => {
                health.failed(role, &err);
                Vec::new()
            }
        };
        batch.push(Gauge::poll_failure(
            collector.failure_gauge(),
            failed,
            collector.failure_tags(),
        ));
        statsd.emit(&batch).await;
    }
}

/// Failing/recovered state of one loop, for state-change logging.
#[derive(Debug, Default)]
struct Health {
    failing_class: Option<String>,
    failures: u64,
}

impl Health {
    fn failed(&mut self, role: Role, err: &PollError) {
        self.failures += 1;
        let class = err.class();
        let msg = error_chain(err);
        if self.failing_class.as_deref() == Some(class.as_str()) {
            tracing::debug!(role = %role, failures = self.failures, "poll failed again: {msg}");
        } else {
            tracing::warn!(role = %role, "poll failed: {msg} (poll_failure=1; repeats are logged at debug level)");
            self.failing_class = Some(class);
        }
    }

    fn succeeded(&mut self, role: Role) {
        if self.failing_class.take().is_some() {
            tracing::info!(role = %role, failed_polls = self.failures, "poll recovered (poll_failure=0)");
        }
        self.failures = 0;
    }
}

/// A version read from `/v1/agent/self`, with when it was read.
#[derive(Debug, Clone, Copy)]
struct SeenVersion {
    version: Option<NomadVersion>,
    at: Instant,
}

impl SeenVersion {
    fn fresh(&self) -> bool {
        self.at.elapsed() < VERSION_TTL
    }
}

/// `--client`: the node the polled agent runs as.
pub struct ClientCollector {
    api: NomadApi,
    identity_tags: bool,
    /// From `/v1/agent/self`; refreshed when the node is not found.
    node_id: Option<String>,
    version: Option<SeenVersion>,
    /// Identity tags of the last node read, for the poll_failure gauge.
    last_identity: Vec<Tag>,
}

impl ClientCollector {
    #[must_use]
    pub fn new(api: NomadApi, identity_tags: bool) -> Self {
        Self {
            api,
            identity_tags,
            node_id: None,
            version: None,
            last_identity: Vec::new(),
        }
    }

    async fn discover(&mut self) -> Result<String, NomadError> {
        let agent = self.api.agent_self().await?;
        self.version = Some(SeenVersion {
            version: agent.version(),
            at: Instant::now(),
        });
        let id = agent.node_id().ok_or(NomadError::Missing {
            path: "/v1/agent/self".into(),
            what: "stats.client.node_id is missing: this agent does not run a Nomad client",
        })?;
        if self.node_id.as_deref() != Some(id) {
            tracing::info!(node_id = id, version = ?agent.version().map(|v| v.to_string()), "polling Nomad client node");
        }
        self.node_id = Some(id.to_owned());
        Ok(id.to_owned())
    }
}

impl Collector for ClientCollector {
    fn role(&self) -> Role {
        Role::Client
    }

    fn failure_gauge(&self) -> &'static str {
        gauges::CLIENT_POLL_FAILURE
    }

    fn failure_tags(&self) -> Vec<Tag> {
        if self.identity_tags {
            self.last_identity.clone()
        } else {
            Vec::new()
        }
    }

    async fn poll(&mut self) -> Result<Vec<Gauge>, PollError> {
        let stale = self.version.is_none_or(|v| !v.fresh());
        let id = match (&self.node_id, stale) {
            (Some(id), false) => id.clone(),
            _ => self.discover().await?,
        };
        let node = match self.api.node(&id).await {
            Err(err) if err.is_not_found() => {
                tracing::info!(node_id = %id, "node not found; asking the agent for its node ID again");
                self.node_id = None;
                let id = self.discover().await?;
                self.api.node(&id).await?
            }
            other => other?,
        };
        let allocs = self.api.node_allocations(&node.id).await?;
        self.last_identity = client_map::identity_tags(&node);
        let opts = ClientOptions {
            identity_tags: self.identity_tags,
            rules: LifecycleRules::for_version(self.version.and_then(|v| v.version)),
        };
        Ok(client_map::node_resources(&node, &allocs, opts)?)
    }
}

/// `--server`: job counts over every namespace the token can see.
pub struct ServerCollector {
    api: NomadApi,
    /// `NOMAD_NAMESPACE`: only this namespace.
    namespace: Option<String>,
    version: Option<SeenVersion>,
}

impl ServerCollector {
    #[must_use]
    pub fn new(api: NomadApi, namespace: Option<String>) -> Self {
        Self {
            api,
            namespace,
            version: None,
        }
    }

    /// The agent's version; `None` when the token may not read
    /// `/v1/agent/self` (then the namespace is found by trying).
    async fn version(&mut self) -> Result<Option<NomadVersion>, NomadError> {
        if let Some(seen) = self.version.filter(SeenVersion::fresh) {
            return Ok(seen.version);
        }
        let version = match self.api.agent_self().await {
            Ok(agent) => agent.version(),
            Err(err) if err.is_forbidden() => {
                tracing::debug!("token may not read /v1/agent/self; Nomad version unknown");
                None
            }
            Err(err) => return Err(err),
        };
        self.version = Some(SeenVersion {
            version,
            at: Instant::now(),
        });
        Ok(version)
    }

    async fn count(&self, namespace: Option<&str>) -> Result<JobCounts, NomadError> {
        let mut counts = JobCounts::default();
        self.api
            .for_each_job(namespace, |job| counts.add(&job))
            .await?;
        if counts.unrecognised > 0 {
            tracing::debug!(
                jobs = counts.unrecognised,
                "jobs with an unknown status were not counted"
            );
        }
        Ok(counts)
    }
}

impl Collector for ServerCollector {
    fn role(&self) -> Role {
        Role::Server
    }

    fn failure_gauge(&self) -> &'static str {
        gauges::SERVER_POLL_FAILURE
    }

    async fn poll(&mut self) -> Result<Vec<Gauge>, PollError> {
        if let Some(ns) = self.namespace.clone() {
            return Ok(self.count(Some(&ns)).await?.gauges());
        }
        let version = match self.version().await {
            Ok(v) => v,
            Err(err) => {
                self.version = None;
                return Err(err.into());
            }
        };
        let counts = match version {
            // 0.5–0.6 ignore `namespace`; 0.7–0.11 read `*` as a literal
            // namespace name and answer `[]`: list the default namespace.
            Some(v) if v < NomadVersion::new(0, 12, 0) => self.count(None).await?,
            Some(_) => self.count(Some("*")).await?,
            None => {
                let all = self.count(Some("*")).await?;
                if all == JobCounts::default() {
                    self.count(None).await?
                } else {
                    all
                }
            }
        };
        Ok(counts.gauges())
    }
}
