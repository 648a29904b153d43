//! `--client`: the node the polled agent runs as. Each poll reads the node
//! and its allocations (the node ID from `/v1/agent/self` is cached, and
//! asked again when the node is not found) and maps them to the node's
//! resource gauges.

use super::{Collector, PollError, Polled, SeenVersion};
use crate::gauges::client::{node_resources, ClientOptions};
use crate::gauges::tags::identity_tags;
use crate::gauges::{Gauge, Tag};
use crate::nomad::{Features, NomadApi, NomadError};
use crate::role::Role;

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
