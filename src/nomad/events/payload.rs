//! The typed events: Job, Allocation and Node payloads, the `/v1/jobs`
//! and `/v1/allocations` elements the incremental state keys on, and
//! whether a Job event deletes its job (`docs/nomad-events.md` §4, §5).

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use crate::nomad::features::StreamFeatures;
use crate::nomad::model::{
    Alloc, AllocatedResources, JobStatus, JobStub, JobSummary, JobType, LegacyResources, Node,
};
use crate::nomad::skim::ListElement;

/// One `structs.Event`, with its payload typed by topic.
#[derive(Debug)]
pub struct Event {
    /// `Job`, `Allocation`, `Node`, `Evaluation`, `Deployment`, …
    pub topic: String,
    /// `Event.Type`: from the raft message of the transaction (§4), so a
    /// job status change can come as `AllocationUpdated`.
    pub kind: String,
    /// Job ID, node ID, allocation ID.
    pub key: String,
    /// Empty for Node events.
    pub namespace: String,
    pub index: u64,
    pub payload: Payload,
}

/// The payloads this daemon reads; other topics are skipped unread.
#[derive(Debug)]
pub enum Payload {
    /// `{"Job":{…},"Deleted":true?}` (`structs.JobEvent`).
    Job(JobEvent),
    /// `{"Allocation":{…}}` (`structs.AllocationEvent`).
    Allocation(Box<AllocEvent>),
    /// `{"Node":{…}}` (`structs.NodeStreamEvent`): the full node, whose
    /// keys match the list stub's for every field the gauges use.
    Node(Box<Node>),
    /// Another topic, or a Job/Allocation/Node payload without its object.
    Other,
}

/// The fields of a Job event the counters use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobEvent {
    pub id: String,
    /// `default` when Nomad sent none.
    pub namespace: String,
    pub job_type: JobType,
    pub status: JobStatus,
    pub stop: bool,
    pub modify_index: u64,
    /// `JobEvent.Deleted` (1.11.3 / 2.0.0+): the job was deleted.
    pub deleted: bool,
}

/// An allocation: a Allocation event's payload, or one `/v1/allocations`
/// element (`AllocListStub` has the same keys). `alloc` is what
/// `alloc_usage` and `is_terminal` read.
#[derive(Debug)]
pub struct AllocEvent {
    pub job_id: String,
    /// `default` when Nomad sent none.
    pub namespace: String,
    pub modify_index: u64,
    pub alloc: Alloc,
}

impl AllocEvent {
    #[must_use]
    pub fn id(&self) -> &str {
        &self.alloc.id
    }

    #[must_use]
    pub fn node_id(&self) -> &str {
        &self.alloc.node_id
    }
}

impl ListElement for AllocEvent {}

/// One `/v1/jobs` element with what the incremental state keys on.
#[derive(Debug, PartialEq)]
pub struct JobListEntry {
    pub id: String,
    pub modify_index: u64,
    /// What `classify` and `JobCounts` read.
    pub stub: JobStub,
}

impl ListElement for JobListEntry {}

fn default_namespace(ns: Option<String>) -> String {
    ns.filter(|n| !n.is_empty())
        .unwrap_or_else(|| "default".to_owned())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JobWire {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(rename = "Type", default)]
    job_type: JobType,
    #[serde(default)]
    status: JobStatus,
    #[serde(default)]
    stop: Option<bool>,
    #[serde(default)]
    modify_index: u64,
    /// List stubs only.
    #[serde(default)]
    job_summary: Option<JobSummary>,
}

impl<'de> Deserialize<'de> for JobListEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = JobWire::deserialize(d)?;
        Ok(Self {
            id: w.id,
            modify_index: w.modify_index,
            stub: JobStub {
                namespace: w.namespace,
                job_type: w.job_type,
                status: w.status,
                stop: w.stop,
                job_summary: w.job_summary,
            },
        })
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AllocWire {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(rename = "NodeID", default)]
    node_id: String,
    #[serde(rename = "JobID", default)]
    job_id: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(default)]
    desired_status: String,
    #[serde(default)]
    client_status: String,
    #[serde(default)]
    modify_index: u64,
    #[serde(default)]
    resources: Option<LegacyResources>,
    #[serde(default)]
    allocated_resources: Option<AllocatedResources>,
}

impl<'de> Deserialize<'de> for AllocEvent {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let w = AllocWire::deserialize(d)?;
        Ok(Self {
            job_id: w.job_id,
            namespace: default_namespace(w.namespace),
            modify_index: w.modify_index,
            alloc: Alloc {
                id: w.id,
                node_id: w.node_id,
                desired_status: w.desired_status,
                client_status: w.client_status,
                resources: w.resources,
                allocated_resources: w.allocated_resources,
            },
        })
    }
}

#[derive(Deserialize)]
struct JobPayloadWire {
    #[serde(rename = "Job", default)]
    job: Option<JobWire>,
    #[serde(rename = "Deleted", default)]
    deleted: bool,
}

#[derive(Deserialize)]
struct AllocPayloadWire {
    #[serde(rename = "Allocation", default)]
    allocation: Option<AllocEvent>,
}

#[derive(Deserialize)]
struct NodePayloadWire {
    #[serde(rename = "Node", default)]
    node: Option<Node>,
}

/// Decodes a payload by the topic already read.
struct PayloadSeed<'a>(&'a str);

impl<'de> DeserializeSeed<'de> for PayloadSeed<'_> {
    type Value = Payload;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Payload, D::Error> {
        Ok(match self.0 {
            "Job" => match JobPayloadWire::deserialize(d)? {
                JobPayloadWire {
                    job: Some(j),
                    deleted,
                } => Payload::Job(JobEvent {
                    id: j.id,
                    namespace: default_namespace(j.namespace),
                    job_type: j.job_type,
                    status: j.status,
                    stop: j.stop.unwrap_or(false),
                    modify_index: j.modify_index,
                    deleted,
                }),
                JobPayloadWire { job: None, .. } => Payload::Other,
            },
            "Allocation" => AllocPayloadWire::deserialize(d)?
                .allocation
                .map_or(Payload::Other, |a| Payload::Allocation(Box::new(a))),
            "Node" => NodePayloadWire::deserialize(d)?
                .node
                .map_or(Payload::Other, |n| Payload::Node(Box::new(n))),
            _ => {
                IgnoredAny::deserialize(d)?;
                Payload::Other
            }
        })
    }
}

impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(EventVisitor)
    }
}

struct EventVisitor;

impl<'de> Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<M: MapAccess<'de>>(self, mut map: M) -> Result<Event, M::Error> {
        let (mut topic, mut kind, mut key, mut namespace) = (None, None, None, None);
        let mut index = None;
        let mut payload = None;
        // Nomad writes Topic first; a payload before it is kept as a Value
        // and typed once the topic is known.
        let mut early: Option<serde_json::Value> = None;
        while let Some(k) = map.next_key::<String>()? {
            match k.as_str() {
                "Topic" => topic = Some(map.next_value::<String>()?),
                "Type" => kind = Some(map.next_value::<String>()?),
                "Key" => key = map.next_value::<Option<String>>()?,
                "Namespace" => namespace = map.next_value::<Option<String>>()?,
                "Index" => index = Some(map.next_value::<u64>()?),
                "Payload" => match &topic {
                    Some(t) => payload = Some(map.next_value_seed(PayloadSeed(t))?),
                    None => early = Some(map.next_value()?),
                },
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        let topic = topic.ok_or_else(|| M::Error::missing_field("Topic"))?;
        if payload.is_none() {
            if let Some(v) = early {
                payload = Some(
                    PayloadSeed(&topic)
                        .deserialize(v)
                        .map_err(M::Error::custom)?,
                );
            }
        }
        Ok(Event {
            kind: kind.unwrap_or_default(),
            key: key.unwrap_or_default(),
            namespace: namespace.unwrap_or_default(),
            index: index.ok_or_else(|| M::Error::missing_field("Index"))?,
            payload: payload.unwrap_or(Payload::Other),
            topic,
        })
    }
}

/// What a Job event means for the job's existence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobDeletion {
    /// The job is gone: drop it and its cached allocations.
    Deleted,
    /// The job exists with the payload's state.
    Upsert,
    /// `JobDeregistered` with `Stop=true` before 1.11.3: a stop or a purge
    /// of a stopped job. Apply it as an upsert (a stopped job counts as
    /// dead either way), then `GET /v1/job/<id>`: 404 means deleted.
    CheckExists,
}

/// Whether a Job event deletes the job, per version (§5).
#[must_use]
pub fn job_deletion(kind: &str, job: &JobEvent, features: &StreamFeatures) -> JobDeletion {
    if job.deleted {
        return JobDeletion::Deleted;
    }
    // 1.11.3+ flags every deletion; before 1.7.5 deletions emit nothing.
    if features.deleted_flag || !features.job_deletions {
        return JobDeletion::Upsert;
    }
    match kind {
        // Only job GC sends it, and GC always purges.
        "JobBatchDeregistered" => JobDeletion::Deleted,
        // A stop always writes Stop=true, so Stop=false is a purge.
        "JobDeregistered" if !job.stop => JobDeletion::Deleted,
        "JobDeregistered" => JobDeletion::CheckExists,
        _ => JobDeletion::Upsert,
    }
}
