//! One loop per role: tick → poll Nomad → map to gauges → emit to DogStatsD,
//! plus the role's health gauges (poll_failure, poll duration, age of the
//! last success). A failed poll sends poll_failure 1 and no stale values;
//! the log says so once when failing starts (or its cause changes) and once
//! on recovery. Nothing here ends the daemon.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::{self, Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use anyhow::Context as _;

use crate::config::Config;
use crate::gauges::client::{self as client_map, ClientOptions, LifecycleRules, UnknownCapacity};
use crate::gauges::server::{
    capacity_gauges, AllocUsage, JobCounts, NodeView, SeriesMemory, ZERO_FILLED,
};
use crate::gauges::{self, Gauge, Tag};
use crate::health::{self, HealthBoard};
use crate::nomad::model::{Alloc, JobStub, Node};
use crate::nomad::{Block, ListOutcome, ListQuery, NomadApi, NomadError, NomadVersion};
use crate::statsd::Statsd;
use crate::watch::{self, ListSource, State, WatchTiming};

/// Deadline for one page of a `--server` list read: 100k jobs are ~60 MB,
/// more than one poll interval's worth on a slow link. Liveness is checked
/// every poll anyway (`/v1/status/leader`).
const LIST_READ_TIMEOUT: Duration = Duration::from_secs(120);

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
    /// Health gauge names: poll_failure, poll_duration_ms, last_success_age_s.
    fn health_gauges(&self) -> [&'static str; 3];
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
    /// The last poll of some mode failed (what `--once` exits non-zero on).
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
        statsd = %cfg.statsd,
        interval = %humantime::format_duration(cfg.interval),
        client = cfg.roles.client,
        server = cfg.roles.server,
        token = !matches!(cfg.nomad.token, crate::nomad::TokenSource::None),
        "nomad-metrics {} starting",
        env!("CARGO_PKG_VERSION")
    );
    if cfg.nomad.tls.skip_verify {
        tracing::warn!("NOMAD_SKIP_VERIFY is set: Nomad's TLS certificate is NOT verified");
    }
    let roles: Vec<Role> = [
        (cfg.roles.client, Role::Client),
        (cfg.roles.server, Role::Server),
    ]
    .into_iter()
    .filter_map(|(on, role)| on.then_some(role))
    .collect();
    let board = HealthBoard::new(cfg.interval, &roles);
    if let Some(addr) = cfg.health_listen {
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on --health-listen {addr}"))?;
        tracing::info!(addr = %addr, "serving /healthz");
        tokio::spawn(health::serve(
            listener,
            Arc::clone(&board),
            shutdown.clone(),
        ));
    }
    let mut loops = tokio::task::JoinSet::new();
    if cfg.roles.client {
        let collector = ClientCollector::new(api.clone(), cfg.identity_tags);
        loops.spawn(run_loop(
            collector,
            cfg.clone(),
            Arc::clone(&board),
            shutdown.clone(),
        ));
    }
    if cfg.roles.server {
        let collector = ServerCollector::new(api.clone(), &cfg, shutdown.child_token());
        loops.spawn(run_loop(
            collector,
            cfg.clone(),
            Arc::clone(&board),
            shutdown.clone(),
        ));
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

/// Ticks every `cfg.interval` (first tick at once; after a slow poll the
/// next one is delayed, never burst) until cancelled, or once with
/// `cfg.once`. Returns whether the last poll failed.
pub async fn run_loop<C: Collector>(
    mut collector: C,
    cfg: Config,
    board: Arc<HealthBoard>,
    shutdown: CancellationToken,
) -> bool {
    let mut last_failed = false;
    let role = collector.role();
    let mut statsd = Statsd::new(cfg.statsd.clone(), cfg.global_tags.clone());
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
        let _entered = span.enter();
        let Polled { mut gauges, error } = polled;
        let failed = error.is_some();
        match &error {
            None => health.succeeded(role),
            Some(err) => health.failed(role, err),
        }
        board.record(role, error.as_ref().map(|e| error_chain(e)));
        let [failure, duration, age] = collector.health_gauges();
        let tags = collector.health_tags();
        gauges.extend(Gauge::new(
            duration,
            took.as_secs_f64() * 1000.0,
            tags.clone(),
        ));
        if let Some(at) = health.last_success {
            gauges.extend(Gauge::new(
                age,
                at.elapsed().as_secs_f64().floor(),
                tags.clone(),
            ));
        }
        // poll_failure goes last: it closes the poll's batch.
        gauges.push(Gauge::poll_failure(failure, failed, tags));
        // Connecting may wait on DNS; a stop request does not wait for it.
        tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            () = statsd.emit(&gauges) => {}
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
    /// Identity tags of the last node read, for the health gauges.
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

    async fn try_poll(&mut self) -> Result<Vec<Gauge>, PollError> {
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

impl Collector for ClientCollector {
    fn role(&self) -> Role {
        Role::Client
    }

    fn health_gauges(&self) -> [&'static str; 3] {
        [
            gauges::CLIENT_POLL_FAILURE,
            gauges::CLIENT_POLL_DURATION_MS,
            gauges::CLIENT_LAST_SUCCESS_AGE_S,
        ]
    }

    fn health_tags(&self) -> Vec<Tag> {
        if self.identity_tags {
            self.last_identity.clone()
        } else {
            Vec::new()
        }
    }

    async fn poll(&mut self) -> Polled {
        self.try_poll().await.into()
    }
}

/// What every `--server` list query shares: the long read deadline, and
/// `?stale` when any server may answer.
#[derive(Debug, Clone, Copy)]
struct ServerQuery {
    stale: bool,
}

impl ServerQuery {
    fn query(self, path: &str, block: Option<Block>) -> ListQuery<'_> {
        let mut query = ListQuery::new(path);
        query.timeout = Some(LIST_READ_TIMEOUT);
        query.block = block;
        if self.stale {
            query.params.push(("stale", String::new()));
        }
        query
    }
}

/// `/v1/jobs` folded into `JobCounts`.
struct JobsSource {
    base: ServerQuery,
    namespace: Option<String>,
    per_page: Option<u32>,
    /// Version unknown: if `namespace=*` lists nothing, read the default
    /// namespace (0.7–0.11 answer `*` with `[]`).
    fallback_to_default: bool,
}

impl ListSource for JobsSource {
    type Aggregate = JobCounts;

    fn name(&self) -> &'static str {
        "jobs"
    }

    fn stale(&self) -> bool {
        self.base.stale
    }

    async fn read(
        &self,
        api: &NomadApi,
        block: Option<Block>,
    ) -> Result<(ListOutcome, Option<JobCounts>), NomadError> {
        let mut query = self.base.query("/v1/jobs", block);
        if let Some(ns) = &self.namespace {
            query.params.push(("namespace", ns.clone()));
        }
        query.per_page = self.per_page;
        let mut counts = JobCounts::default();
        let outcome = api.list(&query, |job: JobStub| counts.add(&job)).await?;
        if self.fallback_to_default && matches!(outcome, ListOutcome::Read { items: 0, .. }) {
            query = self.base.query("/v1/jobs", None);
            query.per_page = self.per_page;
            let fallback = api.list(&query, |job: JobStub| counts.add(&job)).await?;
            return Ok((fallback, Some(counts)));
        }
        Ok((outcome, Some(counts)))
    }
}

/// Reads a list into `aggregate`, one element at a time.
async fn fold_list<T: crate::nomad::skim::ListElement, A>(
    api: &NomadApi,
    query: &ListQuery<'_>,
    mut aggregate: A,
    add: impl Fn(&mut A, T),
) -> Result<(ListOutcome, Option<A>), NomadError> {
    let outcome = api.list(query, |item: T| add(&mut aggregate, item)).await?;
    Ok((outcome, Some(aggregate)))
}

/// `/v1/nodes` folded into a `NodeView`.
struct NodesSource {
    base: ServerQuery,
    /// `?resources=true` (1.0+).
    resources: bool,
    per_page: Option<u32>,
}

impl ListSource for NodesSource {
    type Aggregate = NodeView;

    fn name(&self) -> &'static str {
        "nodes"
    }

    fn stale(&self) -> bool {
        self.base.stale
    }

    fn optional(&self) -> bool {
        true
    }

    async fn read(
        &self,
        api: &NomadApi,
        block: Option<Block>,
    ) -> Result<(ListOutcome, Option<NodeView>), NomadError> {
        let mut query = self.base.query("/v1/nodes", block);
        if self.resources {
            query.params.push(("resources", "true".into()));
        }
        query.per_page = self.per_page;
        fold_list(api, &query, NodeView::default(), |view, node: Node| {
            view.add(&node)
        })
        .await
    }
}

/// `/v1/allocations` (1.0+) folded into per-node usage.
struct AllocsSource {
    base: ServerQuery,
    rules: LifecycleRules,
    /// `filter` (1.3+): only non-terminal allocations cross the wire.
    filter: bool,
}

/// go-bexpr over the full `Allocation`: the non-terminal ones.
const NON_TERMINAL_FILTER: &str = r#"DesiredStatus == "run" and ClientStatus != "complete" and ClientStatus != "failed" and ClientStatus != "lost""#;

impl ListSource for AllocsSource {
    type Aggregate = AllocUsage;

    fn name(&self) -> &'static str {
        "allocations"
    }

    fn stale(&self) -> bool {
        self.base.stale
    }

    fn optional(&self) -> bool {
        true
    }

    async fn read(
        &self,
        api: &NomadApi,
        block: Option<Block>,
    ) -> Result<(ListOutcome, Option<AllocUsage>), NomadError> {
        let mut query = self.base.query("/v1/allocations", block);
        query.params.extend([
            ("namespace", "*".into()),
            ("resources", "true".into()),
            ("task_states", "false".into()),
        ]);
        if self.filter {
            query.params.push(("filter", NON_TERMINAL_FILTER.into()));
        }
        // Not paged: allocation page tokens are broken before 1.10.2 (GH-25435).
        fold_list(
            api,
            &query,
            AllocUsage::new(self.rules),
            |usage, alloc: Alloc| usage.add(&alloc),
        )
        .await
    }
}

/// The watchers of one Nomad version.
struct Watchers {
    version: Option<NomadVersion>,
    jobs: tokio::sync::watch::Receiver<State<JobCounts>>,
    nodes: Option<tokio::sync::watch::Receiver<State<NodeView>>>,
    allocs: Option<tokio::sync::watch::Receiver<State<AllocUsage>>>,
    stop: CancellationToken,
}

impl Drop for Watchers {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// `--server`: job counts over every namespace the token can see, the node
/// census and the capacity roll-up, each list kept current by a watcher.
pub struct ServerCollector {
    api: NomadApi,
    /// `NOMAD_NAMESPACE`: only this namespace.
    namespace: Option<String>,
    per_page: Option<u32>,
    stale: bool,
    timing: WatchTiming,
    request_timeout: Duration,
    version: Option<SeenVersion>,
    watchers: Option<Watchers>,
    series: SeriesMemory,
    shutdown: CancellationToken,
    /// The leader endpoint answered 404 once (not a real Nomad): skip it.
    skip_leader_check: bool,
    /// Census and capacity (`--no-cluster-view` turns them off).
    cluster_view: bool,
    optional: OptionalLists,
}

impl ServerCollector {
    #[must_use]
    pub fn new(api: NomadApi, cfg: &Config, shutdown: CancellationToken) -> Self {
        Self {
            api,
            namespace: cfg.namespace.clone(),
            per_page: cfg.page_size,
            stale: cfg.stale,
            timing: WatchTiming {
                interval: cfg.interval,
                wait: watch::MAX_WAIT,
                resync: cfg.resync,
            },
            request_timeout: cfg.nomad.timeout,
            version: None,
            watchers: None,
            series: SeriesMemory::default(),
            shutdown,
            skip_leader_check: false,
            cluster_view: cfg.cluster_view,
            optional: OptionalLists::default(),
        }
    }

    /// The agent's version; `None` when the token may not read
    /// `/v1/agent/self`.
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

    fn start_watchers(&mut self, version: Option<NomadVersion>) {
        let at_least =
            |major, minor| version.is_none_or(|v| v >= NomadVersion::new(major, minor, 0));
        let stop = self.shutdown.child_token();
        let per_page = self.per_page.filter(|_| at_least(1, 3));
        let (namespace, fallback_to_default) = match (&self.namespace, version) {
            (Some(ns), _) => (Some(ns.clone()), false),
            // 0.5–0.6 ignore `namespace`; 0.7–0.11 read `*` as a literal
            // namespace name and answer `[]`: list the default namespace.
            (None, Some(v)) if v < NomadVersion::new(0, 12, 0) => (None, false),
            (None, Some(_)) => (Some("*".to_owned()), false),
            (None, None) => (Some("*".to_owned()), true),
        };
        let base = ServerQuery { stale: self.stale };
        let jobs = JobsSource {
            base,
            namespace,
            per_page,
            fallback_to_default,
        };
        let (jobs, _) = watch::spawn(jobs, self.api.clone(), self.timing, stop.clone());
        let nodes = NodesSource {
            base,
            resources: at_least(1, 0),
            per_page,
        };
        let nodes = self
            .cluster_view
            .then(|| watch::spawn(nodes, self.api.clone(), self.timing, stop.clone()).0);
        let allocs = (self.cluster_view && at_least(1, 0)).then(|| {
            let source = AllocsSource {
                base,
                rules: LifecycleRules::for_version(version),
                filter: at_least(1, 3),
            };
            watch::spawn(source, self.api.clone(), self.timing, stop.clone()).0
        });
        if self.cluster_view && allocs.is_none() {
            self.optional.once(
                "capacity",
                "Nomad before 1.0 lists no resources: capacity gauges are off (node census and job counts are on)",
            );
        }
        self.watchers = Some(Watchers {
            version,
            jobs,
            nodes,
            allocs,
            stop,
        });
    }

    /// Cheap liveness check each poll, so that a Nomad that stopped answering
    /// shows within one interval even while a blocking query is parked.
    async fn check_leader(&mut self) -> Result<(), PollError> {
        if self.skip_leader_check {
            return Ok(());
        }
        match self.api.leader().await {
            Ok(leader) if leader.is_empty() => Err(PollError::NoLeader),
            Ok(_) => Ok(()),
            Err(err) if err.is_not_found() => {
                tracing::debug!("/v1/status/leader not found; skipping the leader check");
                self.skip_leader_check = true;
                Ok(())
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn try_poll(&mut self) -> Polled {
        let version = match self.version().await {
            Ok(v) => v,
            Err(err) => return Err(err.into()).into(),
        };
        if self.watchers.as_ref().is_none_or(|w| w.version != version) {
            self.start_watchers(version);
        }
        let Some(w) = self.watchers.as_mut() else {
            return Polled::default();
        };
        let limit = self.request_timeout;
        tokio::join!(
            watch::first_answer(&mut w.jobs, limit),
            async {
                if let Some(n) = w.nodes.as_mut() {
                    watch::first_answer(n, limit).await;
                }
            },
            async {
                if let Some(a) = w.allocs.as_mut() {
                    watch::first_answer(a, limit).await;
                }
            },
        );
        let jobs = w.jobs.borrow().clone();
        let nodes = w.nodes.as_ref().map(|n| n.borrow().clone());
        let allocs = w.allocs.as_ref().map(|a| a.borrow().clone());
        if let Err(err) = self.check_leader().await {
            return Err(err).into();
        }
        // The job counts are the contract: without them the poll failed and
        // nothing but the health gauges goes out.
        let counts = match jobs {
            State::Ready(counts) => counts,
            State::Starting => return Err(PollError::NoAnswerYet { list: "jobs" }).into(),
            State::Failed(source) | State::Disabled(source) => {
                return Err(PollError::Watch {
                    list: "jobs",
                    source,
                })
                .into()
            }
        };
        let mut gauges = counts.gauges();
        gauges.extend(counts.by_type_gauges());
        let mut fill: Vec<&'static str> = ZERO_FILLED[..4].to_vec();
        // The cluster view is optional: a list that fails or that the token
        // may not read drops its own gauges (logged on change), not the poll.
        let view = self.optional.note("nodes", nodes.as_ref());
        let usage = self.optional.note("allocations", allocs.as_ref());
        if let Some(view) = view {
            gauges.extend(view.census_gauges());
            fill.extend(&ZERO_FILLED[4..8]);
            match usage {
                Some(usage) if view.has_capacity() => {
                    gauges.extend(capacity_gauges(&view, &usage));
                    fill.extend(&ZERO_FILLED[8..]);
                }
                Some(_) => self.optional.once(
                    "capacity",
                    "the node list carries no resources (Nomad < 1.0): capacity gauges are off",
                ),
                None => {}
            }
        }
        self.series.fill_zeros(&fill, &mut gauges);
        Ok(gauges).into()
    }
}

/// Log state of the optional lists (census, capacity): one line when a list
/// starts failing or is refused, one when it is back.
#[derive(Debug, Default)]
struct OptionalLists {
    /// List → the class of the last problem logged (absent: healthy).
    problem: std::collections::HashMap<&'static str, &'static str>,
    said_once: std::collections::HashSet<&'static str>,
}

impl OptionalLists {
    /// The list's aggregate when ready; logs state changes.
    fn note<A>(&mut self, list: &'static str, state: Option<&State<A>>) -> Option<Arc<A>> {
        let (class, message) = match state? {
            State::Ready(aggregate) => {
                if self.problem.remove(list).is_some() {
                    tracing::info!(list, "the {list} list is readable again; its gauges are back");
                }
                return Some(Arc::clone(aggregate));
            }
            State::Starting => return None,
            State::Failed(err) => (
                "failed",
                format!("the {list} list failed, its gauges are left out: {}", error_chain(err.as_ref())),
            ),
            State::Disabled(err) => (
                "refused",
                format!(
                    "the {list} list is refused ({}): its gauges are off; grant node:read and read-job on all namespaces to turn them on",
                    error_chain(err.as_ref())
                ),
            ),
        };
        if self.problem.insert(list, class) != Some(class) {
            tracing::warn!(list, "{message}");
        }
        None
    }

    fn once(&mut self, key: &'static str, message: &str) {
        if self.said_once.insert(key) {
            tracing::info!("{message}");
        }
    }
}

impl Collector for ServerCollector {
    fn role(&self) -> Role {
        Role::Server
    }

    fn health_gauges(&self) -> [&'static str; 3] {
        [
            gauges::SERVER_POLL_FAILURE,
            gauges::SERVER_POLL_DURATION_MS,
            gauges::SERVER_LAST_SUCCESS_AGE_S,
        ]
    }

    async fn poll(&mut self) -> Polled {
        let polled = self.try_poll().await;
        if polled.error.is_some() {
            // Read the version again next time: the failure may be an upgrade.
            self.version = None;
        }
        polled
    }
}
