//! `--client`: the node the polled agent runs as. The node and its
//! allocations are kept current by blocking queries parked on Nomad (an
//! unchanged node costs nothing between resyncs), and each poll makes one
//! cheap liveness check, so that a fault still shows within one interval.
//! The node ID from `/v1/agent/self` is cached, and asked again when the
//! node is not found.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::{CancellationToken, DropGuard};

use super::{Collector, LeaderCheck, PollError, Polled, SeenVersion};
use crate::config::Config;
use crate::gauges::client::{node_resources, ClientOptions};
use crate::gauges::tags::identity_tags;
use crate::gauges::{Gauge, Tag};
use crate::nomad::model::{Alloc, Node};
use crate::nomad::queries::ListPlan;
use crate::nomad::watch::{self, Fold, NodeDocument, State, WatchTiming};
use crate::nomad::{Features, NomadApi, NomadError};
use crate::role::Role;

/// The watchers of one node.
struct NodeWatchers {
    node_id: String,
    node: tokio::sync::watch::Receiver<State<Node>>,
    allocs: tokio::sync::watch::Receiver<State<Vec<Alloc>>>,
    /// Stops the tasks when dropped.
    _stop: DropGuard,
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
    timing: WatchTiming,
    request_timeout: Duration,
    watchers: Option<NodeWatchers>,
    leader: LeaderCheck,
    shutdown: CancellationToken,
}

impl ClientCollector {
    #[must_use]
    pub fn new(api: NomadApi, cfg: &Config, shutdown: CancellationToken) -> Self {
        Self {
            api,
            identity_tags: cfg.identity_tags,
            node_id: None,
            version: None,
            last_identity: Vec::new(),
            timing: WatchTiming {
                interval: cfg.interval,
                wait: watch::MAX_WAIT,
                resync: cfg.resync,
            },
            request_timeout: cfg.nomad.timeout,
            watchers: None,
            leader: LeaderCheck::default(),
            shutdown,
        }
    }

    /// The node and its allocations as the watchers last read them,
    /// waiting (bounded) for a first answer.
    async fn read(&mut self, id: &str) -> Result<(Arc<Node>, Arc<Vec<Alloc>>), PollError> {
        if self.watchers.as_ref().is_none_or(|w| w.node_id != id) {
            let stop = self.shutdown.child_token();
            let node = NodeDocument {
                node_id: id.to_owned(),
            };
            let allocs = Fold::new(
                ListPlan::node_allocations(id),
                Vec::new,
                |v: &mut Vec<Alloc>, a: Alloc| v.push(a),
            );
            self.watchers = Some(NodeWatchers {
                node_id: id.to_owned(),
                node: watch::spawn(node, self.api.clone(), self.timing, stop.clone()).0,
                allocs: watch::spawn(allocs, self.api.clone(), self.timing, stop.clone()).0,
                _stop: stop.drop_guard(),
            });
        }
        let Some(w) = self.watchers.as_mut() else {
            return Err(PollError::NoAnswerYet { list: "node" });
        };
        let limit = self.request_timeout;
        tokio::join!(
            watch::first_answer(&mut w.node, limit),
            watch::first_answer(&mut w.allocs, limit)
        );
        let node = ready(&w.node.borrow(), "node")?;
        let allocs = ready(&w.allocs.borrow(), "node allocations")?;
        Ok((node, allocs))
    }

    async fn discover(&mut self) -> Result<String, NomadError> {
        let agent = self.api.agent_self().await?;
        self.version = Some(SeenVersion::now(agent.version()));
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
        self.leader.check(&self.api).await?;
        let (node, allocs) = match self.read(&id).await {
            Err(PollError::Watch { source, .. }) if source.is_not_found() => {
                tracing::info!(node_id = %id, "node not found; asking the agent for its node ID again");
                self.node_id = None;
                self.watchers = None;
                let id = self.discover().await?;
                self.read(&id).await?
            }
            other => other?,
        };
        self.last_identity = identity_tags(&node);
        let opts = ClientOptions {
            identity_tags: self.identity_tags,
            rules: Features::for_version(self.version.and_then(|v| v.version)).lifecycle,
        };
        Ok(node_resources(&node, &allocs, opts)?)
    }
}

impl Collector for ClientCollector {
    fn role(&self) -> Role {
        Role::Client
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

/// The aggregate of a watcher that answered, or why there is none.
fn ready<A>(state: &State<A>, list: &'static str) -> Result<Arc<A>, PollError> {
    match state {
        State::Ready(a) => Ok(Arc::clone(a)),
        State::Starting => Err(PollError::NoAnswerYet { list }),
        State::Failed(source) | State::Disabled(source) => Err(PollError::Watch {
            list,
            source: Arc::clone(source),
        }),
    }
}
