//! The wire side of `GET /v1/event/stream` (Nomad 1.0+), pure: it is fed
//! bytes and hands back typed frames, and it builds the request's query. No
//! HTTP client code lives here. The facts it relies on are in
//! `docs/nomad-events.md` (§N below points there).
//!
//! - [`LineDecoder`]: NDJSON framing fed arbitrary chunks (§2), memory
//!   bounded by one line, each line capped (`TooLarge`); `finish()` turns
//!   the stream's ending into a typed [`StreamError`] (§3).
//! - [`Event`] / [`Payload`]: the Job, Allocation and Node payloads the
//!   cluster state needs (§4); other topics are skipped.
//! - [`job_deletion`]: whether a Job event deletes the job, per version (§5).
//! - [`plan_subscriptions`]: the query parameters, per version (§1, §6).
//! - [`StreamCursor`]: drops the re-delivered tail after a resume (§7).
//! - [`JobListEntry`]: a `/v1/jobs` element with the ID and ModifyIndex the
//!   incremental state needs (the counters' `JobStub` has neither).

use std::fmt;

use serde::de::{DeserializeSeed, Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

use super::features::{StreamFeatures, StreamNamespaces};
use super::model::{
    Alloc, AllocatedResources, JobStatus, JobStub, JobSummary, JobType, LegacyResources, Node,
};
use super::skim::ListElement;

/// Default cap of one NDJSON line. One plan result can put thousands of
/// allocations (≈2–5 KB each) into one line (§2), so the cap is generous.
pub const DEFAULT_MAX_LINE: usize = 64 << 20;

/// Longest error text kept from a stream's trailing fragment.
const MAX_ERROR_TEXT: usize = 200;

/// Longest excerpt of a line that does not decode.
const MAX_EXCERPT: usize = 80;

/// A buffer this large is given back after its line is done, so one huge
/// line does not keep its memory for the life of the stream.
const KEEP_BUFFER: usize = 1 << 20;

/// One NDJSON line of the stream.
#[derive(Debug)]
pub enum Frame {
    /// `{}`: sent every 30 s, and right after subscribing on 1.0.7 / 1.1.1+.
    /// Proves the connection lives, not that the server's data is fresh.
    Heartbeat,
    /// `{"Index":N,"Events":[…]}`: the matching events of one raft index.
    Events { index: u64, events: Vec<Event> },
}

/// Why a stream ended, or why its bytes are not a stream of frames. Every
/// variant means: reconnect with `index=last+1` and schedule a relist
/// (`docs/nomad-events.md` §7).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The body ended after a complete line, with no error text. From 1.11.2
    /// this is also how every server-side error (even a 403) ends.
    #[error("the event stream ended")]
    Eof,
    /// `subscription closed by server, client should resubscribe`: token or
    /// policy change, snapshot restore (a silent gap), server shutdown.
    #[error("Nomad closed the subscription; resubscribe and re-read")]
    ClosedByServer,
    /// `event dropped from buffer`: this reader fell behind the server's
    /// event buffer; events were lost.
    #[error("the subscription fell behind Nomad's event buffer; events were lost")]
    DroppedFromBuffer,
    /// `ACL token expired`.
    #[error("the ACL token expired")]
    TokenExpired,
    /// `Permission denied`: the token lost the needed access.
    #[error("permission denied on the event stream (check the ACL token)")]
    Forbidden,
    /// Some other trailing text (sanitised, at most 200 characters).
    #[error("the event stream ended with: {0}")]
    Other(String),
    /// The body ended inside a JSON line (connection cut mid-line).
    #[error("the event stream ended inside a line ({bytes} bytes)")]
    Truncated { bytes: usize },
    /// A line is longer than the decoder's cap.
    #[error("an event stream line is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A complete line that is not a frame of the expected shape.
    #[error("event stream line {line} does not decode: {excerpt}")]
    Decode {
        /// 1-based line number in this stream.
        line: u64,
        /// The line's start, sanitised.
        excerpt: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Incremental NDJSON decoder. Feed it chunks as they arrive; call
/// `finish` at EOF. Only the bytes of the line still arriving are kept.
#[derive(Debug)]
pub struct LineDecoder {
    buf: Vec<u8>,
    max_line: usize,
    /// Lines completed so far (for error messages).
    lines: u64,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl LineDecoder {
    /// A decoder refusing lines longer than `max_line` bytes.
    #[must_use]
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line,
            lines: 0,
        }
    }

    /// Bytes held for the line still arriving.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds one chunk; returns the frames of every line it completed.
    ///
    /// # Errors
    ///
    /// `TooLarge` or `Decode`; the stream is unusable after one (reconnect).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Frame>, StreamError> {
        let mut out = Vec::new();
        self.feed_with(chunk, &mut |f| out.push(f))?;
        Ok(out)
    }

    /// Like `feed`, handing each frame to `on_frame` as soon as it is
    /// decoded (frames before an error in the same chunk are delivered).
    ///
    /// # Errors
    ///
    /// As `feed`.
    pub fn feed_with(
        &mut self,
        mut chunk: &[u8],
        on_frame: &mut impl FnMut(Frame),
    ) -> Result<(), StreamError> {
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            let head = &chunk[..nl];
            chunk = &chunk[nl + 1..];
            if self.buf.len() + head.len() > self.max_line {
                return Err(self.too_large());
            }
            self.lines += 1;
            let decoded = if self.buf.is_empty() {
                decode_line(head, self.lines)
            } else {
                self.buf.extend_from_slice(head);
                let r = decode_line(&self.buf, self.lines);
                self.release();
                r
            };
            if let Some(frame) = decoded? {
                on_frame(frame);
            }
        }
        if self.buf.len() + chunk.len() > self.max_line {
            return Err(self.too_large());
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Call at EOF: classifies what is left after the last newline and
    /// returns a frame it may still hold (a final line whose newline never
    /// came) with the reason the stream ended.
    pub fn finish(&mut self) -> (Option<Frame>, StreamError) {
        let rest = std::mem::take(&mut self.buf);
        let text = rest.trim_ascii();
        if text.is_empty() {
            return (None, StreamError::Eof);
        }
        if text.starts_with(b"{") {
            self.lines += 1;
            return match decode_line(text, self.lines) {
                Ok(frame) => (frame, StreamError::Eof),
                Err(_) => (None, StreamError::Truncated { bytes: rest.len() }),
            };
        }
        (None, classify_ending(text))
    }

    fn too_large(&mut self) -> StreamError {
        self.buf = Vec::new();
        StreamError::TooLarge {
            limit: self.max_line,
        }
    }

    fn release(&mut self) {
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

/// The error text Nomad (before 1.11.2) appends without a newline when a
/// started stream fails (`wrap()` in `command/agent/http.go`).
fn classify_ending(text: &[u8]) -> StreamError {
    let lower = String::from_utf8_lossy(text).to_ascii_lowercase();
    if lower.contains("subscription closed by server") {
        StreamError::ClosedByServer
    } else if lower.contains("event dropped from buffer") {
        StreamError::DroppedFromBuffer
    } else if lower.contains("acl token expired") {
        StreamError::TokenExpired
    } else if lower.contains("permission denied") {
        StreamError::Forbidden
    } else {
        StreamError::Other(sanitise(text, MAX_ERROR_TEXT))
    }
}

/// Printable ASCII only (anything else becomes `?`), at most `max` chars.
fn sanitise(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// `None` for a blank line.
fn decode_line(line: &[u8], line_no: u64) -> Result<Option<Frame>, StreamError> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(None);
    }
    let err = |source| StreamError::Decode {
        line: line_no,
        excerpt: sanitise(line, MAX_EXCERPT),
        source,
    };
    let wire: WireFrame = serde_json::from_slice(line).map_err(err)?;
    match (wire.index, wire.events) {
        (None, None) => Ok(Some(Frame::Heartbeat)),
        (Some(index), events) => Ok(Some(Frame::Events {
            index,
            events: events.unwrap_or_default(),
        })),
        (None, Some(_)) => Err(err(serde_json::Error::custom("Events without an Index"))),
    }
}

/// `structs.Events` (`nomad/structs/event.go`).
#[derive(Deserialize)]
struct WireFrame {
    #[serde(rename = "Index", default)]
    index: Option<u64>,
    #[serde(rename = "Events", default)]
    events: Option<Vec<Event>>,
}

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

/// Which namespaces one subscription covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NamespaceScope<'a> {
    /// Every namespace the token can read.
    All,
    One(&'a str),
}

/// One stream to open: its query parameters, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription {
    pub query: Vec<(&'static str, String)>,
    /// The namespace this stream is limited to when it is one of several
    /// (`Literal` versions); `None` when it covers the whole scope.
    pub namespace: Option<String>,
}

/// What to open, and what the caller must watch to keep it complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionPlan {
    pub subscriptions: Vec<Subscription>,
    /// A namespace created later is not covered until resubscribing (1.9.6 /
    /// 1.10.0+: `*` expands at subscribe time), or needs a stream of its own
    /// (before 1.0.12 / 1.1.6: `*` matches nothing). Watch
    /// `/v1/namespaces` when true.
    pub resubscribe_on_new_namespace: bool,
}

/// Options of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubscribeOptions<'a> {
    pub scope: NamespaceScope<'a>,
    /// Add `topic=Node` (worth it only where `noisy_node_topic` is false).
    pub nodes: bool,
    /// The last index applied from the stream; the request asks for the
    /// next one (`index=last+1`). `None`: from the oldest buffered item.
    pub last_index: Option<u64>,
}

/// The query of every stream to open (§1, §6). On `Literal` versions,
/// `All` needs one stream per namespace: `existing_namespaces` lists them
/// (ignored elsewhere); an empty list means the `default` namespace only.
#[must_use]
pub fn plan_subscriptions(
    features: &StreamFeatures,
    opts: &SubscribeOptions<'_>,
    existing_namespaces: &[String],
) -> SubscriptionPlan {
    let query = |namespace: &str, nodes: bool| {
        let mut q = vec![
            ("topic", "Job".to_owned()),
            ("topic", "Allocation".to_owned()),
        ];
        if nodes {
            q.push(("topic", "Node".to_owned()));
        }
        q.push(("namespace", namespace.to_owned()));
        if let Some(last) = opts.last_index {
            q.push(("index", resume_index(last).to_string()));
        }
        q
    };
    match (opts.scope, features.namespaces) {
        (NamespaceScope::One(ns), _) => SubscriptionPlan {
            subscriptions: vec![Subscription {
                query: query(ns, opts.nodes),
                namespace: None,
            }],
            resubscribe_on_new_namespace: false,
        },
        (NamespaceScope::All, StreamNamespaces::Literal) => {
            let default = ["default".to_owned()];
            let names = if existing_namespaces.is_empty() {
                &default[..]
            } else {
                existing_namespaces
            };
            SubscriptionPlan {
                // Node events pass every namespace filter: ask for them once.
                subscriptions: names
                    .iter()
                    .enumerate()
                    .map(|(i, ns)| Subscription {
                        query: query(ns, opts.nodes && i == 0),
                        namespace: Some(ns.clone()),
                    })
                    .collect(),
                resubscribe_on_new_namespace: true,
            }
        }
        (NamespaceScope::All, ns) => SubscriptionPlan {
            subscriptions: vec![Subscription {
                query: query("*", opts.nodes),
                namespace: None,
            }],
            resubscribe_on_new_namespace: ns == StreamNamespaces::AtSubscribe,
        },
    }
}

/// The `index` to resume at after `last`: the stream starts at that index
/// inclusive, so `last + 1`.
#[must_use]
pub fn resume_index(last: u64) -> u64 {
    last.saturating_add(1)
}

/// The last index seen on one stream. A resume re-delivers the newest
/// buffered item when asked for an index beyond it, and the start is
/// inclusive: drop every frame at or below what was already seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamCursor {
    pub last: Option<u64>,
}

impl StreamCursor {
    /// True when the frame at `index` is new (and remembers it).
    pub fn accept(&mut self, index: u64) -> bool {
        if self.last.is_some_and(|l| index <= l) {
            return false;
        }
        self.last = Some(index);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::features::Features;
    use crate::nomad::model::NomadVersion;
    use proptest::prelude::*;

    fn stream_of(v: &str) -> StreamFeatures {
        Features::for_version(NomadVersion::parse(v))
            .stream
            .expect("1.0+ has a stream")
    }

    /// Shapes from `nomad/structs/event.go@v2.0.5` (`Events`, `Event`,
    /// `JobEvent`, `AllocationEvent`, `NodeStreamEvent`) with payload keys
    /// from `structs.Job`, `structs.Allocation` (`nomad/structs/alloc.go`)
    /// and `structs.Node` at v2.0.5, trimmed but keeping nested objects that
    /// must be skipped.
    const JOB_LINE: &str = r#"{"Index":120,"Events":[{"Topic":"Job","Type":"JobRegistered","Key":"build-1","Namespace":"ci","FilterKeys":null,"Index":120,"Payload":{"Job":{"Stop":false,"Region":"global","Namespace":"ci","ID":"build-1","ParentID":"","Name":"build-1","Type":"batch","Priority":50,"AllAtOnce":false,"Datacenters":["dc1"],"NodePool":"default","Constraints":null,"TaskGroups":[{"Name":"g","Count":1,"Tasks":[{"Name":"t","Driver":"docker","Config":{"image":"x"},"Resources":{"CPU":100,"MemoryMB":300}}]}],"Meta":{"Status":"not-this"},"Status":"pending","StatusDescription":"","Stable":false,"Version":0,"SubmitTime":1700000000000000000,"CreateIndex":120,"ModifyIndex":120,"JobModifyIndex":120}}}]}"#;

    const ALLOC_LINE: &str = r#"{"Index":130,"Events":[{"Topic":"Allocation","Type":"PlanResult","Key":"a-1","Namespace":"ci","FilterKeys":["build-1","dep-1"],"Index":130,"Payload":{"Allocation":{"ID":"a-1","Namespace":"ci","EvalID":"e-1","Name":"build-1.g[0]","NodeID":"n-1","NodeName":"w1","JobID":"build-1","Job":null,"TaskGroup":"g","Resources":{"CPU":100,"MemoryMB":300,"DiskMB":0,"IOPS":0},"AllocatedResources":{"Tasks":{"t":{"Cpu":{"CpuShares":100,"ReservedCores":null},"Memory":{"MemoryMB":300,"MemoryMaxMB":0},"Networks":null,"Devices":null}},"TaskLifecycles":{"t":null},"Shared":{"DiskMB":150,"Networks":null,"Ports":null}},"Metrics":{"NodesEvaluated":3,"ScoreMetaData":[{"NodeID":"n-1","Scores":{"binpack":0.5}}]},"DesiredStatus":"run","ClientStatus":"pending","TaskStates":null,"CreateIndex":130,"ModifyIndex":130}}},{"Topic":"Job","Type":"PlanResult","Key":"build-1","Namespace":"ci","Index":130,"Payload":{"Job":{"ID":"build-1","Namespace":"ci","Type":"batch","Status":"running","Stop":false,"ModifyIndex":130}}}]}"#;

    const NODE_LINE: &str = r#"{"Index":140,"Events":[{"Topic":"Node","Type":"NodeDrain","Key":"n-1","Namespace":"","FilterKeys":null,"Index":140,"Payload":{"Node":{"ID":"n-1","SecretID":"","Datacenter":"dc1","Name":"w1","HTTPAddr":"10.0.0.1:4646","TLSEnabled":false,"Attributes":{"cpu.numcores":"4"},"NodeResources":{"Cpu":{"CpuShares":8000,"TotalCpuCores":4,"ReservableCpuCores":[0,1,2,3]},"Memory":{"MemoryMB":16000},"Disk":{"DiskMB":50000},"Networks":null,"MinDynamicPort":20000,"MaxDynamicPort":32000},"ReservedResources":{"Cpu":{"CpuShares":500,"ReservedCpuCores":null},"Memory":{"MemoryMB":1000},"Disk":{"DiskMB":2000},"Networks":{"ReservedHostPorts":""}},"Links":null,"Meta":{"Status":"x"},"NodeClass":"builder","NodePool":"default","ComputedClass":"v1:1","DrainStrategy":{"Deadline":3600000000000,"IgnoreSystemJobs":false,"ForceDeadline":"0001-01-01T00:00:00Z","StartedAt":"2025-01-01T00:00:00Z"},"SchedulingEligibility":"ineligible","Status":"ready","StatusDescription":"","StatusUpdatedAt":1700000000,"Events":[{"Message":"Node registered","Subsystem":"Cluster","Details":null,"Timestamp":"2025-01-01T00:00:00Z","CreateIndex":0}],"Drivers":{},"CSIControllerPlugins":null,"HostVolumes":null,"LastDrain":null,"CreateIndex":5,"ModifyIndex":140}}}]}"#;

    fn job_of(p: &Payload) -> Option<&JobEvent> {
        match p {
            Payload::Job(j) => Some(j),
            _ => None,
        }
    }

    fn frames(text: &str) -> Vec<Frame> {
        let mut d = LineDecoder::default();
        let mut out = d.feed(text.as_bytes()).unwrap();
        let (last, end) = d.finish();
        out.extend(last);
        assert!(matches!(end, StreamError::Eof), "{end:?}");
        out
    }

    fn all_lines() -> String {
        format!("{{}}\n{JOB_LINE}\n{{}}\n{ALLOC_LINE}\n\n{NODE_LINE}\n")
    }

    #[test]
    fn heartbeats_and_events() {
        let f = frames(&all_lines());
        assert_eq!(f.len(), 5);
        assert!(matches!(f[0], Frame::Heartbeat));
        assert!(matches!(f[2], Frame::Heartbeat));
        let Frame::Events { index, events } = &f[1] else {
            panic!("{:?}", f[1])
        };
        assert_eq!(*index, 120);
        assert_eq!(
            job_of(&events[0].payload),
            Some(&JobEvent {
                id: "build-1".into(),
                namespace: "ci".into(),
                job_type: JobType::Batch,
                status: JobStatus::Pending,
                stop: false,
                modify_index: 120,
                deleted: false,
            }),
            "nested Status/Meta keys are not the job's"
        );
        assert_eq!(events[0].kind, "JobRegistered");
        assert_eq!(events[0].key, "build-1");
    }

    #[test]
    fn multi_event_line_keeps_alloc_and_job_together() {
        let f = frames(ALLOC_LINE);
        let Frame::Events { index: 130, events } = &f[0] else {
            panic!()
        };
        assert_eq!(events.len(), 2);
        let Payload::Allocation(a) = &events[0].payload else {
            panic!()
        };
        assert_eq!(
            (a.id(), a.node_id(), a.job_id.as_str()),
            ("a-1", "n-1", "build-1")
        );
        assert_eq!(a.namespace, "ci");
        assert_eq!(a.modify_index, 130);
        assert!(!a.alloc.is_terminal());
        let usage = crate::gauges::resources::alloc_usage(
            &a.alloc,
            crate::gauges::resources::LifecycleRules::V1_9_4,
        );
        assert_eq!((usage.cpu, usage.memory, usage.disk), (100, 300, 150));
        assert!(matches!(&events[1].payload, Payload::Job(j) if j.status == JobStatus::Running));
    }

    #[test]
    fn full_node_payload_decodes_like_the_stub() {
        let f = frames(NODE_LINE);
        let Frame::Events { events, .. } = &f[0] else {
            panic!()
        };
        let Payload::Node(n) = &events[0].payload else {
            panic!()
        };
        // The full node has no `Drain` (1.1+): DrainStrategy tells.
        assert!(n.draining());
        assert_eq!(n.status, "ready");
        assert_eq!(n.scheduling_eligibility.as_deref(), Some("ineligible"));
        let (cap, res) = crate::gauges::resources::node_capacity(n).unwrap();
        assert_eq!((cap.cpu, cap.memory, cap.disk), (8000, 16000, 50000));
        assert_eq!((res.cpu, res.memory, res.disk), (500, 1000, 2000));
        assert_eq!(events[0].namespace, "");
    }

    #[test]
    fn payload_before_topic_and_unknown_topics() {
        let line = r#"{"Index":7,"Events":[{"Payload":{"Job":{"ID":"j","Status":"dead","Stop":true}},"Index":7,"Type":"JobDeregistered","Topic":"Job"},{"Topic":"Evaluation","Type":"EvaluationUpdated","Index":7,"Payload":{"Evaluation":{"ID":"e","Status":"complete"}}},{"Topic":"Job","Index":7,"Payload":{}}]}"#;
        let f = frames(line);
        let Frame::Events { events, .. } = &f[0] else {
            panic!()
        };
        assert!(
            matches!(&events[0].payload, Payload::Job(j) if j.stop && j.namespace == "default")
        );
        assert!(matches!(events[1].payload, Payload::Other));
        assert!(matches!(events[2].payload, Payload::Other), "no Job object");
    }

    #[test]
    fn deleted_flag_is_read() {
        let line = r#"{"Index":9,"Events":[{"Topic":"Job","Type":"JobDeregistered","Key":"j","Namespace":"default","Index":9,"Payload":{"Job":{"ID":"j","Status":"dead","Stop":true,"ModifyIndex":8},"Deleted":true}}]}"#;
        let f = frames(line);
        let Frame::Events { events, .. } = &f[0] else {
            panic!()
        };
        assert!(matches!(&events[0].payload, Payload::Job(j) if j.deleted));
    }

    #[test]
    fn every_split_point_gives_the_same_frames() {
        let text = all_lines();
        let want = frames(&text);
        for cut in 0..=text.len() {
            let (a, b) = text.as_bytes().split_at(cut);
            let mut d = LineDecoder::default();
            let mut got = d.feed(a).unwrap();
            got.extend(d.feed(b).unwrap());
            assert!(matches!(d.finish(), (None, StreamError::Eof)));
            assert_eq!(format!("{got:?}"), format!("{want:?}"), "cut at {cut}");
        }
    }

    proptest! {
        #[test]
        fn any_chunking_gives_the_same_frames(cuts in proptest::collection::vec(0usize..4000, 0..12)) {
            let text = all_lines();
            let want = frames(&text);
            let bytes = text.as_bytes();
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
            cuts.sort_unstable();
            let mut d = LineDecoder::default();
            let mut got = Vec::new();
            let mut from = 0;
            for c in cuts.into_iter().chain([bytes.len()]) {
                got.extend(d.feed(&bytes[from..c]).unwrap());
                from = c;
            }
            let (last, end) = d.finish();
            got.extend(last);
            prop_assert!(matches!(end, StreamError::Eof));
            prop_assert_eq!(format!("{got:?}"), format!("{want:?}"));
        }
    }

    fn alloc_event(i: usize) -> String {
        format!(
            r#"{{"Topic":"Allocation","Type":"PlanResult","Key":"a{i}","Namespace":"default","Index":5,"Payload":{{"Allocation":{{"ID":"a{i}","NodeID":"n{}","JobID":"j","DesiredStatus":"run","ClientStatus":"pending","AllocatedResources":{{"Tasks":{{"t":{{"Cpu":{{"CpuShares":100}},"Memory":{{"MemoryMB":64}}}}}},"Shared":{{"DiskMB":10}}}},"Metrics":{{"Pad":"{}"}},"ModifyIndex":5}}}}}}"#,
            i % 50,
            "x".repeat(1500)
        )
    }

    #[test]
    fn a_multi_megabyte_plan_line_decodes_in_small_chunks() {
        let events: Vec<String> = (0..3000).map(alloc_event).collect();
        let line = format!("{{\"Index\":5,\"Events\":[{}]}}\n{{}}\n", events.join(","));
        assert!(line.len() > 4 << 20);
        let mut d = LineDecoder::default();
        let mut got = Vec::new();
        let mut peak = 0;
        for chunk in line.as_bytes().chunks(16 << 10) {
            got.extend(d.feed(chunk).unwrap());
            peak = peak.max(d.buffered());
        }
        assert!(peak <= line.len(), "at most one line is held");
        assert_eq!(got.len(), 2);
        assert!(matches!(&got[0], Frame::Events { events, .. } if events.len() == 3000));
        assert_eq!(d.buffered(), 0);
        assert!(d.buf.capacity() <= KEEP_BUFFER, "big buffer released");
    }

    #[test]
    fn too_large_lines_are_refused_before_their_end() {
        let mut d = LineDecoder::new(1000);
        assert!(d.feed(&[b'{'; 600]).is_ok());
        assert!(matches!(
            d.feed(&[b' '; 600]),
            Err(StreamError::TooLarge { limit: 1000 })
        ));
        assert_eq!(d.buffered(), 0);
        // A complete line over the cap inside one chunk.
        let mut d = LineDecoder::new(10);
        assert!(matches!(
            d.feed(b"{}\n{\"Index\":123456}\n"),
            Err(StreamError::TooLarge { .. })
        ));
        // Exactly at the cap is fine.
        let mut d = LineDecoder::new(2);
        assert!(matches!(d.feed(b"{}\n").unwrap()[..], [Frame::Heartbeat]));
    }

    fn ending(tail: &str) -> (Vec<Frame>, StreamError) {
        let mut d = LineDecoder::default();
        let mut got = d
            .feed(format!("{{}}\n{JOB_LINE}\n{tail}").as_bytes())
            .unwrap();
        let (last, end) = d.finish();
        got.extend(last);
        (got, end)
    }

    type EndCheck = fn(&StreamError) -> bool;

    #[test]
    fn every_ending_is_typed() {
        let cases: [(&str, EndCheck); 6] = [
            ("", |e| matches!(e, StreamError::Eof)),
            (
                "subscription closed by server, client should resubscribe",
                |e| matches!(e, StreamError::ClosedByServer),
            ),
            ("event dropped from buffer", |e| {
                matches!(e, StreamError::DroppedFromBuffer)
            }),
            ("rpc error: ACL token expired", |e| {
                matches!(e, StreamError::TokenExpired)
            }),
            ("Permission denied", |e| matches!(e, StreamError::Forbidden)),
            (
                "EventBroker not configured",
                |e| matches!(e, StreamError::Other(t) if t == "EventBroker not configured"),
            ),
        ];
        for (tail, ok) in cases {
            let (frames, end) = ending(tail);
            assert_eq!(frames.len(), 2, "{tail}: lines before the error kept");
            assert!(ok(&end), "{tail:?} gave {end:?}");
        }
    }

    #[test]
    fn other_endings_are_sanitised_and_bounded() {
        let (_, end) = ending(&format!("boom\u{1b}[31m\t{}", "y".repeat(1000)));
        let StreamError::Other(text) = end else {
            panic!("{end:?}")
        };
        assert!(text.starts_with("boom?[31m?y"));
        assert_eq!(text.chars().count(), MAX_ERROR_TEXT);
    }

    #[test]
    fn a_final_line_without_newline_or_cut_inside() {
        let (frames, end) = ending("{}");
        assert_eq!(frames.len(), 3);
        assert!(matches!(end, StreamError::Eof));
        let (frames, end) = ending(r#"{"Index":5,"Events":[{"Topic"#);
        assert_eq!(frames.len(), 2);
        assert!(matches!(end, StreamError::Truncated { .. }), "{end:?}");
    }

    #[test]
    fn garbage_lines_are_decode_errors_with_an_excerpt() {
        for bad in [
            "<html>502 Bad Gateway</html>\n",
            "{\"Index\":\"x\"}\n",
            "{\"Events\":[]}\n",
            "{} {}\n",
            "[1,2]\n",
            // A payload that does not fit its topic.
            "{\"Index\":1,\"Events\":[{\"Topic\":\"Job\",\"Index\":1,\"Payload\":{\"Job\":{\"ID\":7}}}]}\n",
            "{\"Index\":1,\"Events\":[{\"Topic\":\"Node\",\"Index\":1,\"Payload\":{\"Node\":[]}}]}\n",
            "{\"Index\":1,\"Events\":[{\"Topic\":\"Allocation\",\"Index\":1,\"Payload\":{\"Allocation\":{\"ModifyIndex\":-1}}}]}\n",
            "{\"Index\":1,\"Events\":[{\"Index\":1}]}\n",
        ] {
            let mut d = LineDecoder::default();
            let err = d.feed(format!("{{}}\n{bad}").as_bytes()).unwrap_err();
            let StreamError::Decode { line, excerpt, .. } = &err else {
                panic!("{bad}: {err:?}")
            };
            assert_eq!(*line, 2, "{bad}");
            assert!(excerpt.len() <= MAX_EXCERPT && !excerpt.is_empty());
        }
    }

    proptest! {
        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let mut d = LineDecoder::new(128);
            let _ = d.feed(&bytes);
            let _ = d.finish();
        }
    }

    fn job(kind_stop: bool, deleted: bool) -> JobEvent {
        JobEvent {
            id: "j".into(),
            namespace: "default".into(),
            job_type: JobType::Batch,
            status: JobStatus::Dead,
            stop: kind_stop,
            modify_index: 1,
            deleted,
        }
    }

    #[test]
    fn deletion_rules_per_version() {
        use JobDeletion::{CheckExists, Deleted, Upsert};
        // (version, type, Stop, Deleted) → answer.
        let cases = [
            // 1.0–1.7.4: deletions are silent; every Job event is an upsert.
            ("1.6.9", "JobDeregistered", false, false, Upsert),
            ("1.7.4", "JobDeregistered", true, false, Upsert),
            ("1.7.4", "JobBatchDeregistered", false, false, Upsert),
            // 1.7.5 / 1.8.0 – 1.11.2: by Type and Stop.
            ("1.7.5", "JobBatchDeregistered", false, false, Deleted),
            ("1.8.0", "JobDeregistered", false, false, Deleted),
            ("1.8.0", "JobDeregistered", true, false, CheckExists),
            ("1.11.2", "JobDeregistered", true, false, CheckExists),
            ("1.10.0", "AllocationUpdated", false, false, Upsert),
            ("1.10.0", "JobRegistered", true, false, Upsert),
            // 1.11.3 / 2.0.0+: the flag decides.
            ("1.11.3", "JobDeregistered", true, true, Deleted),
            ("1.11.3", "JobDeregistered", true, false, Upsert),
            ("2.0.0", "JobBatchDeregistered", true, true, Deleted),
            ("2.0.5", "JobDeregistered", false, false, Upsert),
        ];
        for (v, kind, stop, deleted, want) in cases {
            assert_eq!(
                job_deletion(kind, &job(stop, deleted), &stream_of(v)),
                want,
                "{v} {kind} stop={stop} deleted={deleted}"
            );
        }
    }

    fn params(s: &Subscription) -> Vec<String> {
        s.query.iter().map(|(k, v)| format!("{k}={v}")).collect()
    }

    #[test]
    fn subscription_per_namespace_era() {
        let opts = SubscribeOptions {
            scope: NamespaceScope::All,
            nodes: true,
            last_index: Some(41),
        };
        let wild = plan_subscriptions(&stream_of("1.5.0"), &opts, &[]);
        assert_eq!(wild.subscriptions.len(), 1);
        assert_eq!(
            params(&wild.subscriptions[0]),
            [
                "topic=Job",
                "topic=Allocation",
                "topic=Node",
                "namespace=*",
                "index=42"
            ]
        );
        assert!(!wild.resubscribe_on_new_namespace);

        let later = plan_subscriptions(&stream_of("1.10.0"), &opts, &[]);
        assert!(later.resubscribe_on_new_namespace);

        let ns = ["default".to_owned(), "ci".to_owned()];
        let literal = plan_subscriptions(&stream_of("1.1.5"), &opts, &ns);
        assert!(literal.resubscribe_on_new_namespace);
        let got: Vec<Vec<String>> = literal.subscriptions.iter().map(params).collect();
        assert_eq!(
            got,
            [
                vec![
                    "topic=Job",
                    "topic=Allocation",
                    "topic=Node",
                    "namespace=default",
                    "index=42"
                ],
                vec!["topic=Job", "topic=Allocation", "namespace=ci", "index=42"],
            ]
        );
        assert_eq!(literal.subscriptions[1].namespace.as_deref(), Some("ci"));

        let one = SubscribeOptions {
            scope: NamespaceScope::One("ci"),
            nodes: false,
            last_index: None,
        };
        let p = plan_subscriptions(&stream_of("1.0.0"), &one, &ns);
        assert_eq!(
            params(&p.subscriptions[0]),
            ["topic=Job", "topic=Allocation", "namespace=ci"]
        );
    }

    #[test]
    fn cursor_drops_the_redelivered_tail() {
        let mut c = StreamCursor::default();
        assert!(c.accept(10) && c.accept(12));
        assert!(!c.accept(12) && !c.accept(11));
        assert!(c.accept(13));
        assert_eq!(resume_index(u64::MAX), u64::MAX);
    }

    #[test]
    fn job_list_entries_keep_id_and_summary() {
        let e: JobListEntry = serde_json::from_str(
            r#"{"ID":"x","Namespace":"ci","Type":"batch","Status":"dead","Stop":false,"ModifyIndex":77,
                "JobSummary":{"JobID":"x","Summary":{"g":{"Complete":1}}}}"#,
        )
        .unwrap();
        assert_eq!((e.id.as_str(), e.modify_index), ("x", 77));
        assert_eq!(
            crate::gauges::server::classify(&e.stub),
            Some(crate::gauges::server::JobState::Complete)
        );
    }
}
