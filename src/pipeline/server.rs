//! `--server`: job counts over every namespace the token can see, the node
//! census and the capacity roll-up. Each list is kept current by a watcher
//! (`nomad::watch`) with the queries of `nomad::queries`; a poll reads the
//! watchers' latest aggregates, checks the leader, and maps them to gauges.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};

use super::follow::{self, FollowSetup, Unusable};
use super::{error_chain, Collector, LeaderCheck, PollError, Polled, SeenVersion};
use crate::config::Config;
use crate::gauges::server::{
    capacity_gauges, AllocUsage, Family, JobCounts, NodeView, SeriesMemory,
};
use crate::nomad::model::{Alloc, JobStub, Node};
use crate::nomad::queries::{QueryOptions, ServerLists};
use crate::nomad::watch::{self, Fold, ListSource, State, WatchTiming};
use crate::nomad::{Features, NomadApi, NomadError, NomadVersion};
use crate::role::Role;

/// The latest state of one list.
type Receiver<A> = tokio::sync::watch::Receiver<State<A>>;

/// What keeps the aggregates of one Nomad version current: a blocking
/// query watcher per list, or the event-stream follower (which publishes
/// the same three aggregates, and says when the stream turned out
/// unusable).
struct Watchers {
    version: Option<NomadVersion>,
    jobs: Receiver<JobCounts>,
    nodes: Option<Receiver<NodeView>>,
    allocs: Option<Receiver<AllocUsage>>,
    fallback: Option<tokio::sync::watch::Receiver<Option<Unusable>>>,
    /// Stops the tasks when dropped.
    _stop: DropGuard,
}

/// `--server`: job counts over every namespace the token can see, the node
/// census and the capacity roll-up, each list kept current by a watcher.
pub struct ServerCollector {
    api: NomadApi,
    /// `NOMAD_NAMESPACE`, `--page-size`, `--stale`.
    queries: QueryOptions,
    timing: WatchTiming,
    request_timeout: Duration,
    version: Option<SeenVersion>,
    watchers: Option<Watchers>,
    series: SeriesMemory,
    shutdown: CancellationToken,
    leader: LeaderCheck,
    /// Census and capacity (`--no-cluster-view` turns them off).
    cluster_view: bool,
    optional: OptionalLists,
    /// `--event-stream auto`, `--reconcile`, `--event-stream-timeout`.
    stream: Option<StreamSettings>,
    /// The version the stream was found unusable on (blocking queries then).
    stream_refused: Option<Option<NomadVersion>>,
}

#[derive(Debug, Clone, Copy)]
struct StreamSettings {
    reconcile: Duration,
    silence: Duration,
}

impl ServerCollector {
    #[must_use]
    pub fn new(api: NomadApi, cfg: &Config, shutdown: CancellationToken) -> Self {
        Self {
            api,
            queries: QueryOptions {
                namespace: cfg.namespace.clone(),
                per_page: cfg.page_size,
                stale: cfg.stale,
            },
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
            leader: LeaderCheck::default(),
            cluster_view: cfg.cluster_view,
            optional: OptionalLists::default(),
            stream: cfg.event_stream.then_some(StreamSettings {
                reconcile: cfg.reconcile,
                silence: cfg.event_stream_timeout,
            }),
            stream_refused: None,
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
        self.version = Some(SeenVersion::now(version));
        Ok(version)
    }

    fn watch<S: ListSource>(&self, stop: &CancellationToken, source: S) -> Receiver<S::Aggregate> {
        watch::spawn(source, self.api.clone(), self.timing, stop.clone()).0
    }

    fn start_watchers(&mut self, version: Option<NomadVersion>) {
        let features = Features::for_version(version);
        let stop = self.shutdown.child_token();
        let lists = ServerLists::new(&features, &self.queries);
        let jobs = self.watch(
            &stop,
            Fold::new(lists.jobs, JobCounts::default, |c, job: JobStub| {
                c.add(&job);
            }),
        );
        let nodes = self.cluster_view.then(|| {
            self.watch(
                &stop,
                Fold::new(lists.nodes, NodeView::default, |v, node: Node| {
                    v.add(&node);
                }),
            )
        });
        let allocs = lists.allocations.filter(|_| self.cluster_view).map(|plan| {
            let rules = features.lifecycle;
            let empty = move || AllocUsage::new(rules);
            self.watch(
                &stop,
                Fold::new(plan, empty, |u, alloc: Alloc| u.add(&alloc)),
            )
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
            fallback: None,
            _stop: stop.drop_guard(),
        });
    }

    /// Follows the event stream where it can be used; `Ok(false)` when it
    /// cannot (then blocking queries are used, said once per version).
    async fn start_stream(&mut self, version: Option<NomadVersion>) -> Result<bool, NomadError> {
        let Some(settings) = self.stream else {
            return Ok(false);
        };
        if self.stream_refused == Some(version) {
            return Ok(false);
        }
        let features = Features::for_version(version);
        let refused = |this: &mut Self, why: Unusable| {
            tracing::info!(
                "not following the event stream, using blocking queries: {}",
                why.0
            );
            this.stream_refused = Some(version);
            Ok(false)
        };
        // `NOMAD_NAMESPACE=*` (what the deploy guide's server job sets) means
        // every namespace, as no namespace at all does.
        let namespace = self.queries.namespace.clone().filter(|ns| ns != "*");
        if let Some(why) = follow::unusable(&features, namespace.as_deref()) {
            return refused(self, why);
        }
        // Where a job purge emits no event (before 1.7.5 / 1.8.0), deleted
        // jobs are only noticed by a re-read: reconcile as often as --resync.
        let reconcile = match features.stream {
            Some(s) if !s.job_deletions => settings.reconcile.min(self.timing.resync),
            _ => settings.reconcile,
        };
        let setup = FollowSetup {
            api: self.api.clone(),
            features,
            lists: ServerLists::new(&features, &self.queries),
            namespace,
            interval: self.timing.interval,
            reconcile,
            silence: settings.silence,
            cluster_view: self.cluster_view,
        };
        let stop = self.shutdown.child_token();
        match follow::start(setup, stop.clone()).await? {
            Ok(channels) => {
                tracing::info!(
                    version = ?version.map(|v| v.to_string()),
                    reconcile = %humantime::format_duration(reconcile),
                    "following Nomad's event stream"
                );
                self.watchers = Some(Watchers {
                    version,
                    jobs: channels.jobs,
                    nodes: channels.nodes,
                    allocs: channels.allocs,
                    fallback: Some(channels.fallback),
                    _stop: stop.drop_guard(),
                });
                Ok(true)
            }
            Err(why) => refused(self, why),
        }
    }

    /// Starts what keeps the aggregates current for `version`, unless it
    /// runs already.
    async fn ensure_source(&mut self, version: Option<NomadVersion>) -> Result<(), NomadError> {
        let gave_up = self
            .watchers
            .as_ref()
            .and_then(|w| w.fallback.as_ref())
            .and_then(|f| f.borrow().clone());
        if let Some(why) = gave_up {
            tracing::info!(
                "stopped following the event stream, using blocking queries: {}",
                why.0
            );
            self.stream_refused = Some(version);
            self.watchers = None;
        }
        if self.watchers.as_ref().is_some_and(|w| w.version == version) {
            return Ok(());
        }
        self.watchers = None;
        if !self.start_stream(version).await? {
            self.start_watchers(version);
        }
        Ok(())
    }

    async fn try_poll(&mut self) -> Polled {
        let version = match self.version().await {
            Ok(v) => v,
            Err(err) => return Err(err.into()).into(),
        };
        if let Err(err) = self.ensure_source(version).await {
            return Err(err.into()).into();
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
        if let Err(err) = self.leader.check(&self.api).await {
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
        let mut fill = vec![Family::JobsByType];
        // The cluster view is optional: a list that fails or that the token
        // may not read drops its own gauges (logged on change), not the poll.
        let view = self.optional.note("nodes", nodes.as_ref());
        let usage = self.optional.note("allocations", allocs.as_ref());
        if let Some(view) = view {
            gauges.extend(view.census_gauges());
            fill.push(Family::NodeCensus);
            match usage {
                Some(usage) if view.has_capacity() => {
                    gauges.extend(capacity_gauges(&view, &usage));
                    fill.push(Family::Capacity);
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
    problem: HashMap<&'static str, &'static str>,
    said_once: HashSet<&'static str>,
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

    async fn poll(&mut self) -> Polled {
        let polled = self.try_poll().await;
        if polled.error.is_some() {
            // Read the version again next time: the failure may be an upgrade.
            self.version = None;
        }
        polled
    }
}
