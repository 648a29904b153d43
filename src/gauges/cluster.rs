//! (Over 450 lines on purpose: the three tables share one set of ordering
//! rules — applied indexes, list floors, tombstones during a read — that
//! only stay checkable in one place; the tests are in `cluster/tests.rs`.)
//!
//! The `--server` aggregates kept current by the event stream, pure (no
//! I/O). Built from one full read (fed one list element at a time), then
//! updated by applied events (`docs/nomad-events.md` §4–§8). It renders
//! exactly the gauges a fresh fold of the lists gives, through the same
//! types: `JobCounts::gauges` + `by_type_gauges`, `NodeView::census_gauges`
//! and `capacity_gauges`.
//!
//! How the gauges are produced: jobs by running tallies (a `JobCounts` kept
//! up to date in O(1) per event, since 100k jobs would make a per-interval
//! rebuild allocate 100k stubs); nodes and allocation usage by rebuilding a
//! `NodeView` and an `AllocUsage` at each interval from the compact node
//! table and the per-node usage sums (O(nodes), CPU only, because their
//! fields are private to `server.rs` and this file may not change it). The
//! rebuilt records carry the node's hash as its ID, which is only used to
//! join capacity and usage.
//!
//! Compact state. Objects are keyed by a 64-bit hash of their ID (jobs: of
//! namespace and ID), with this state's own random SipHash keys; a
//! collision among 10^5 objects has a probability near 10^-9 and would
//! merge two objects until the next reconcile. Namespaces and node shapes
//! (datacenter, class, pool, status, eligibility, drain) are interned.
//! Per object, with the hash table's 1 control byte per bucket and buckets
//! at most 7/8 full (a power of two, so 44–87 % full):
//!
//! | table | key + entry | 100k jobs / 50k allocs / 5k nodes |
//! | --- | --- | --- |
//! | jobs | 8 + 24 B | 131,072 buckets × 33 B ≈ 4.3 MB |
//! | allocs | 8 + 40 B | 65,536 × 49 B ≈ 3.2 MB |
//! | nodes | 8 + 88 B, + 32 B usage | 8,192 × 130 B ≈ 1.1 MB |
//!
//! `approx_bytes` computes this from the live tables; a test builds that
//! cluster and checks it stays under 10 MB.
//!
//! Ordering. Every object remembers the index it was last applied at (its
//! list's `X-Nomad-Index`, or the event's index); an event at or below it
//! is ignored, and so is an event for an absent object at or below its
//! list's index (it was deleted before the read). This drops the buffered
//! backlog replayed after a full read. Frames re-delivered on a resume are
//! dropped per stream by `events::StreamCursor` before they get here.
//!
//! Job summaries. A Job event carries no `JobSummary`, so a job that is
//! dead and not stopped cannot be told complete from dead by it. Such a
//! job is queued for `GET /v1/job/<id>/summary` (`next_summary_fetch`,
//! `apply_summary`), as is a job cached dead that gets an allocation event.
//! Until its summary arrives it keeps the verdict of the last summary
//! applied to it (from the full read or an earlier fetch), and counts as
//! `dead` if it never had one.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasher, Hash, RandomState};

use super::resources::{alloc_usage, node_capacity, LifecycleRules, Resources};
use super::server::{
    capacity_gauges, classify, AllocUsage, JobCounts, JobState, NodeView, StateCounts,
};
use super::Gauge;
use crate::nomad::events::{
    job_deletion, AllocEvent, Event, JobDeletion, JobEvent, JobListEntry, Payload,
};
use crate::nomad::features::StreamFeatures;
use crate::nomad::model::{
    Alloc, GroupTally, JobStatus, JobStub, JobSummary, JobType, LegacyResources, Node,
};

/// What the last summary said of a dead, not stopped job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Verdict {
    /// No summary seen: counts as dead.
    Unknown,
    Complete,
    NotComplete,
}

#[derive(Debug, Clone, Copy)]
struct JobEntry {
    applied: u64,
    ns: u32,
    /// Non-terminal allocations cached for this job (saturating: at
    /// `u16::MAX` a deletion scans every allocation).
    live_allocs: u16,
    job_type: JobType,
    status: JobStatus,
    stop: bool,
    verdict: Verdict,
}

#[derive(Debug, Clone, Copy)]
struct AllocEntry {
    applied: u64,
    job: u64,
    node: u64,
    /// cpu MHz, memory MB, disk MB (clamped to u32: 4 PB of memory).
    usage: [u32; 3],
}

#[derive(Debug, Clone, Copy)]
struct NodeEntry {
    applied: u64,
    shape: u32,
    /// Capacity and reserved, `None` when the node carried none.
    resources: Option<[Resources; 2]>,
}

/// What the census and the capacity groups read of a node.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct NodeShape {
    datacenter: String,
    node_class: Option<String>,
    node_pool: Option<String>,
    status: String,
    eligibility: Option<String>,
    drain: bool,
}

/// Values to small integers; never shrinks (namespaces and node shapes
/// are few).
#[derive(Debug, Clone)]
struct Interner<T> {
    values: Vec<T>,
    index: HashMap<T, u32>,
}

impl<T> Default for Interner<T> {
    fn default() -> Self {
        Self {
            values: Vec::new(),
            index: HashMap::new(),
        }
    }
}

impl<T: Clone + Eq + Hash> Interner<T> {
    fn get_or_insert(&mut self, v: &T) -> u32 {
        if let Some(&i) = self.index.get(v) {
            return i;
        }
        let i = u32::try_from(self.values.len()).unwrap_or(u32::MAX);
        self.values.push(v.clone());
        self.index.insert(v.clone(), i);
        i
    }

    fn get(&self, i: u32) -> Option<&T> {
        self.values.get(i as usize)
    }
}

/// A job summary to fetch: `GET /v1/job/<job_id>/summary?namespace=…`,
/// best as a blocking query with `index=after_index − 1` (an event can be
/// published just before its index is readable, §8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SummaryFetch {
    pub namespace: String,
    pub job_id: String,
    pub after_index: u64,
}

/// A job whose existence the caller must check (`GET /v1/job/<id>`; 404:
/// call `remove_job`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JobRef {
    pub namespace: String,
    pub job_id: String,
    pub index: u64,
}

/// What applying one event did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Applied {
    /// At or below what was applied to that object: ignored.
    Stale,
    /// A topic or payload the state does not use.
    Ignored,
    Changed,
    /// Applied as an upsert; the caller must check whether the job still
    /// exists (`JobDeletion::CheckExists`).
    CheckJobExists(JobRef),
}

/// One of the three lists of a full read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    Jobs,
    Allocs,
    Nodes,
}

/// The cluster as the last full read and the events since describe it.
#[derive(Debug, Clone)]
pub struct ClusterState {
    rules: LifecycleRules,
    hasher: RandomState,
    namespaces: Interner<String>,
    shapes: Interner<NodeShape>,
    jobs: HashMap<u64, JobEntry>,
    allocs: HashMap<u64, AllocEntry>,
    nodes: HashMap<u64, NodeEntry>,
    /// Per node: Σ usage of its non-terminal allocations (cpu, mem, disk).
    usage: HashMap<u64, [i64; 3]>,
    counts: JobCounts,
    /// Per table: the highest list index of the full read.
    floor_jobs: u64,
    floor_allocs: u64,
    floor_nodes: u64,
    /// While the full read runs: objects deleted by events, so that a list
    /// row read before the deletion does not bring them back.
    tombstones: Option<HashMap<(Table, u64), u64>>,
    queue: VecDeque<u64>,
    pending: HashMap<u64, SummaryFetch>,
}

fn clamp_u32(v: i64) -> u32 {
    u32::try_from(v.max(0)).unwrap_or(u32::MAX)
}

fn legacy(r: Resources) -> LegacyResources {
    LegacyResources {
        cpu: r.cpu,
        memory_mb: r.memory,
        disk_mb: r.disk,
        iops: r.iops,
    }
}

/// The class `classify` gives a job in this state; the verdict stands in
/// for the summary it summarised.
fn class_of(status: JobStatus, stop: bool, verdict: Verdict) -> Option<JobState> {
    let summary = (verdict == Verdict::Complete).then_some(JobSummary {
        summary: GroupTally {
            groups: 1,
            with_complete: 1,
            with_failures: 0,
        },
    });
    classify(&JobStub {
        namespace: None,
        job_type: JobType::Other,
        status,
        stop: Some(stop),
        job_summary: summary,
    })
}

/// What a summary says of a dead, not stopped job (by `classify`'s rule).
fn verdict_of(summary: Option<&JobSummary>) -> Verdict {
    let Some(s) = summary else {
        return Verdict::Unknown;
    };
    let state = classify(&JobStub {
        namespace: None,
        job_type: JobType::Other,
        status: JobStatus::Dead,
        stop: Some(false),
        job_summary: Some(JobSummary { summary: s.summary }),
    });
    if state == Some(JobState::Complete) {
        Verdict::Complete
    } else {
        Verdict::NotComplete
    }
}

fn normal_ns(ns: Option<&str>) -> &str {
    ns.filter(|n| !n.is_empty()).unwrap_or("default")
}

impl ClusterState {
    /// An empty state, ready for a full read (rows and events in any
    /// order); `read_done` ends the read. A reconcile builds a new state and
    /// drops the old one: the new read holds every job's summary, and the
    /// frames after it queue their own fetches.
    #[must_use]
    pub fn new(rules: LifecycleRules) -> Self {
        Self {
            rules,
            hasher: RandomState::new(),
            namespaces: Interner::default(),
            shapes: Interner::default(),
            jobs: HashMap::new(),
            allocs: HashMap::new(),
            nodes: HashMap::new(),
            usage: HashMap::new(),
            counts: JobCounts::default(),
            floor_jobs: 0,
            floor_allocs: 0,
            floor_nodes: 0,
            tombstones: Some(HashMap::new()),
            queue: VecDeque::new(),
            pending: HashMap::new(),
        }
    }

    fn job_key(&self, ns: &str, id: &str) -> u64 {
        self.hasher.hash_one((0u8, ns, id))
    }

    fn id_key(&self, table: u8, id: &str) -> u64 {
        self.hasher.hash_one((table, id))
    }

    /// Ends the full read: forgets the deletions kept for it, and counts
    /// each job's live allocations (rows may come in any table order).
    pub fn read_done(&mut self) {
        if self.tombstones.take().is_none() {
            return;
        }
        for j in self.jobs.values_mut() {
            j.live_allocs = 0;
        }
        for a in self.allocs.values() {
            if let Some(j) = self.jobs.get_mut(&a.job) {
                j.live_allocs = j.live_allocs.saturating_add(1);
            }
        }
    }

    fn stale(&self, table: Table, key: u64, index: u64) -> bool {
        let applied = match table {
            Table::Jobs => self.jobs.get(&key).map(|e| e.applied),
            Table::Allocs => self.allocs.get(&key).map(|e| e.applied),
            Table::Nodes => self.nodes.get(&key).map(|e| e.applied),
        };
        if let Some(applied) = applied {
            return index <= applied;
        }
        let floor = match table {
            Table::Jobs => self.floor_jobs,
            Table::Allocs => self.floor_allocs,
            Table::Nodes => self.floor_nodes,
        };
        index <= floor
            || self
                .tombstones
                .as_ref()
                .and_then(|t| t.get(&(table, key)))
                .is_some_and(|&at| index <= at)
    }

    fn bury(&mut self, table: Table, key: u64, index: u64) {
        if let Some(t) = &mut self.tombstones {
            let at = t.entry((table, key)).or_default();
            *at = (*at).max(index);
        }
    }

    // ---- full read ----

    /// A list of the full read was answered at `list_index`
    /// (`X-Nomad-Index`). Call it for every list, empty ones included:
    /// events at or below it for objects the list did not hold are
    /// ignored (those objects were deleted before the read).
    pub fn listed(&mut self, table: Table, list_index: u64) {
        let floor = match table {
            Table::Jobs => &mut self.floor_jobs,
            Table::Allocs => &mut self.floor_allocs,
            Table::Nodes => &mut self.floor_nodes,
        };
        *floor = (*floor).max(list_index);
    }

    /// One `/v1/jobs` element read from a list answered at `list_index`
    /// (`X-Nomad-Index`).
    pub fn add_job(&mut self, list_index: u64, entry: &JobListEntry) {
        self.floor_jobs = self.floor_jobs.max(list_index);
        let ns = normal_ns(entry.stub.namespace.as_deref()).to_owned();
        let key = self.job_key(&ns, &entry.id);
        let applied = list_index.max(entry.modify_index);
        if self.stale_row(Table::Jobs, key, applied) {
            return;
        }
        let s = &entry.stub;
        let verdict = verdict_of(s.job_summary.as_ref());
        self.put_job(
            key,
            &ns,
            s.job_type,
            s.status,
            s.stop == Some(true),
            verdict,
            applied,
        );
    }

    /// One `/v1/nodes?resources=true` element (list at `list_index`).
    pub fn add_node(&mut self, list_index: u64, node: &Node) {
        self.floor_nodes = self.floor_nodes.max(list_index);
        let key = self.id_key(2, &node.id);
        if self.stale_row(Table::Nodes, key, list_index) {
            return;
        }
        self.put_node(key, node, list_index);
    }

    /// One `/v1/allocations?resources=true` element (list at `list_index`).
    pub fn add_alloc(&mut self, list_index: u64, alloc: &AllocEvent) {
        self.floor_allocs = self.floor_allocs.max(list_index);
        let key = self.id_key(1, alloc.id());
        let applied = list_index.max(alloc.modify_index);
        if self.stale_row(Table::Allocs, key, applied) {
            return;
        }
        self.put_alloc(key, alloc, applied);
    }

    /// A row is older than an event already applied, or than a deletion.
    fn stale_row(&self, table: Table, key: u64, applied: u64) -> bool {
        let cur = match table {
            Table::Jobs => self.jobs.get(&key).map(|e| e.applied),
            Table::Allocs => self.allocs.get(&key).map(|e| e.applied),
            Table::Nodes => self.nodes.get(&key).map(|e| e.applied),
        };
        cur.is_some_and(|c| c >= applied)
            || self
                .tombstones
                .as_ref()
                .and_then(|t| t.get(&(table, key)))
                .is_some_and(|&at| at >= applied)
    }

    // ---- events ----

    /// Applies the events of one frame; returns the jobs whose existence
    /// must be checked.
    pub fn apply_frame(&mut self, events: &[Event], features: &StreamFeatures) -> Vec<JobRef> {
        events
            .iter()
            .filter_map(|e| match self.apply_event(e, features) {
                Applied::CheckJobExists(j) => Some(j),
                _ => None,
            })
            .collect()
    }

    /// Applies one event.
    pub fn apply_event(&mut self, event: &Event, features: &StreamFeatures) -> Applied {
        let index = event.index;
        match &event.payload {
            Payload::Job(job) => self.apply_job(&event.kind, job, index, features),
            Payload::Allocation(a) => {
                let key = self.id_key(1, a.id());
                if self.stale(Table::Allocs, key, index) {
                    return Applied::Stale;
                }
                self.put_alloc(key, a, index);
                let job_key = self.job_key(&a.namespace, &a.job_id);
                if self.jobs.get(&job_key).is_some_and(needs_summary) {
                    self.queue_summary(job_key, &a.namespace, &a.job_id, index);
                }
                Applied::Changed
            }
            Payload::Node(node) => {
                let key = self.id_key(2, &node.id);
                if self.stale(Table::Nodes, key, index) {
                    return Applied::Stale;
                }
                if event.kind == "NodeDeregistration" {
                    self.nodes.remove(&key);
                    self.bury(Table::Nodes, key, index);
                } else {
                    self.put_node(key, node, index);
                }
                Applied::Changed
            }
            Payload::Other => Applied::Ignored,
        }
    }

    fn apply_job(
        &mut self,
        kind: &str,
        job: &JobEvent,
        index: u64,
        features: &StreamFeatures,
    ) -> Applied {
        let key = self.job_key(&job.namespace, &job.id);
        if self.stale(Table::Jobs, key, index) {
            return Applied::Stale;
        }
        let deletion = job_deletion(kind, job, features);
        if deletion == JobDeletion::Deleted {
            self.delete_job(key, index);
            return Applied::Changed;
        }
        let verdict = self.jobs.get(&key).map_or(Verdict::Unknown, |e| e.verdict);
        self.put_job(
            key,
            &job.namespace,
            job.job_type,
            job.status,
            job.stop,
            verdict,
            index,
        );
        if job.status == JobStatus::Dead && !job.stop {
            self.queue_summary(key, &job.namespace, &job.id, index);
        }
        if deletion == JobDeletion::CheckExists {
            return Applied::CheckJobExists(JobRef {
                namespace: job.namespace.clone(),
                job_id: job.id.clone(),
                index,
            });
        }
        Applied::Changed
    }

    /// The job is gone (a 404 for a `CheckJobExists`, or for its summary).
    pub fn remove_job(&mut self, namespace: &str, job_id: &str, index: u64) {
        let key = self.job_key(normal_ns(Some(namespace)), job_id);
        self.delete_job(key, index);
    }

    fn delete_job(&mut self, key: u64, index: u64) {
        self.bury(Table::Jobs, key, index);
        self.pending.remove(&key);
        let Some(old) = self.jobs.remove(&key) else {
            return;
        };
        self.tally(&old, -1);
        // A purge deletes the job's allocations without events (§5).
        if old.live_allocs > 0 {
            let doomed: Vec<u64> = self
                .allocs
                .iter()
                .filter(|(_, a)| a.job == key)
                .map(|(k, _)| *k)
                .collect();
            for k in doomed {
                self.drop_alloc(k);
                self.bury(Table::Allocs, k, index);
            }
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn put_job(
        &mut self,
        key: u64,
        ns: &str,
        job_type: JobType,
        status: JobStatus,
        stop: bool,
        verdict: Verdict,
        applied: u64,
    ) {
        let ns = self.namespaces.get_or_insert(&ns.to_owned());
        let live_allocs = match self.jobs.get(&key).copied() {
            Some(old) => {
                self.tally(&old, -1);
                old.live_allocs
            }
            None => 0,
        };
        let entry = JobEntry {
            applied,
            ns,
            live_allocs,
            job_type,
            status,
            stop,
            verdict,
        };
        self.tally(&entry, 1);
        self.jobs.insert(key, entry);
    }

    /// Adds (`delta` 1) or removes (−1) a job from the running tallies,
    /// as `JobCounts::add` counts it.
    fn tally(&mut self, e: &JobEntry, delta: i64) {
        let Some(state) = class_of(e.status, e.stop, e.verdict) else {
            self.counts.unrecognised += delta;
            return;
        };
        let c = &mut self.counts;
        c.totals.add(state, delta);
        let ns = self.namespaces.get(e.ns).map_or("default", String::as_str);
        let per_ns = c.by_type.entry(e.job_type).or_default();
        let slot = match per_ns.get_mut(ns) {
            Some(s) => s,
            None => per_ns.entry(ns.to_owned()).or_default(),
        };
        slot.add(state, delta);
        // A fresh fold has no row for a (type, namespace) without jobs.
        if *slot == StateCounts::default() {
            per_ns.remove(ns);
            if per_ns.is_empty() {
                c.by_type.remove(&e.job_type);
            }
        }
    }

    fn put_alloc(&mut self, key: u64, a: &AllocEvent, applied: u64) {
        self.drop_alloc(key);
        if a.alloc.is_terminal() {
            // Keep its index while it stays known: a later stale upsert
            // (a row read before it finished) must not revive it.
            self.bury(Table::Allocs, key, applied);
            return;
        }
        let r = alloc_usage(&a.alloc, self.rules);
        let entry = AllocEntry {
            applied,
            job: self.job_key(&a.namespace, &a.job_id),
            node: self.id_key(2, a.node_id()),
            usage: [clamp_u32(r.cpu), clamp_u32(r.memory), clamp_u32(r.disk)],
        };
        let sum = self.usage.entry(entry.node).or_default();
        for (s, u) in sum.iter_mut().zip(entry.usage) {
            *s = s.saturating_add(i64::from(u));
        }
        if let Some(j) = self.jobs.get_mut(&entry.job) {
            j.live_allocs = j.live_allocs.saturating_add(1);
        }
        self.allocs.insert(key, entry);
    }

    fn drop_alloc(&mut self, key: u64) {
        let Some(old) = self.allocs.remove(&key) else {
            return;
        };
        if let Some(sum) = self.usage.get_mut(&old.node) {
            for (s, u) in sum.iter_mut().zip(old.usage) {
                *s = s.saturating_sub(i64::from(u));
            }
            if *sum == [0; 3] {
                self.usage.remove(&old.node);
            }
        }
        if let Some(j) = self.jobs.get_mut(&old.job) {
            if j.live_allocs != u16::MAX {
                j.live_allocs = j.live_allocs.saturating_sub(1);
            }
        }
    }

    fn put_node(&mut self, key: u64, node: &Node, applied: u64) {
        let shape = NodeShape {
            datacenter: node.datacenter.clone(),
            node_class: node.node_class.clone(),
            node_pool: node.node_pool.clone(),
            status: node.status.clone(),
            eligibility: node.scheduling_eligibility.clone(),
            drain: node.draining(),
        };
        let entry = NodeEntry {
            applied,
            shape: self.shapes.get_or_insert(&shape),
            resources: node_capacity(node).ok().map(|(c, r)| [c, r]),
        };
        self.nodes.insert(key, entry);
    }

    // ---- job summaries ----

    fn queue_summary(&mut self, key: u64, namespace: &str, job_id: &str, index: u64) {
        if let Some(f) = self.pending.get_mut(&key) {
            f.after_index = f.after_index.max(index);
            return;
        }
        self.pending.insert(
            key,
            SummaryFetch {
                namespace: namespace.to_owned(),
                job_id: job_id.to_owned(),
                after_index: index,
            },
        );
        self.queue.push_back(key);
    }

    /// The next summary to fetch, oldest first; jobs that no longer need
    /// one (deleted, running again, stopped) are skipped.
    pub fn next_summary_fetch(&mut self) -> Option<SummaryFetch> {
        while let Some(key) = self.queue.pop_front() {
            let Some(f) = self.pending.remove(&key) else {
                continue;
            };
            if self.jobs.get(&key).is_some_and(needs_summary) {
                return Some(f);
            }
        }
        None
    }

    /// Summary fetches waiting.
    #[must_use]
    pub fn summary_fetches_pending(&self) -> usize {
        self.pending.len()
    }

    /// Puts back a fetch that failed (not a 404: that is `remove_job`).
    pub fn requeue_summary(&mut self, fetch: SummaryFetch) {
        let key = self.job_key(&fetch.namespace, &fetch.job_id);
        self.queue_summary(key, &fetch.namespace, &fetch.job_id, fetch.after_index);
    }

    /// Applies a fetched `/v1/job/<id>/summary`; false when the job is not
    /// (or no longer) known.
    pub fn apply_summary(&mut self, namespace: &str, job_id: &str, summary: &JobSummary) -> bool {
        let key = self.job_key(normal_ns(Some(namespace)), job_id);
        let Some(old) = self.jobs.get(&key).copied() else {
            return false;
        };
        self.tally(&old, -1);
        let new = JobEntry {
            verdict: verdict_of(Some(summary)),
            ..old
        };
        self.tally(&new, 1);
        self.jobs.insert(key, new);
        true
    }

    // ---- output ----

    /// The job tallies, as a fresh `JobCounts` fold of the lists gives.
    #[must_use]
    pub fn job_counts(&self) -> &JobCounts {
        &self.counts
    }

    /// A `NodeView` rebuilt from the node table (O(nodes)).
    #[must_use]
    pub fn node_view(&self) -> NodeView {
        let mut view = NodeView::default();
        for (key, e) in &self.nodes {
            let Some(s) = self.shapes.get(e.shape) else {
                continue;
            };
            view.add(&Node {
                id: format!("{key:016x}"),
                name: String::new(),
                datacenter: s.datacenter.clone(),
                node_class: s.node_class.clone(),
                node_pool: s.node_pool.clone(),
                drain: Some(s.drain),
                drain_strategy: None,
                status: s.status.clone(),
                scheduling_eligibility: s.eligibility.clone(),
                node_resources: None,
                reserved_resources: None,
                resources: e.resources.map(|[c, _]| legacy(c)),
                reserved: e.resources.map(|[_, r]| legacy(r)),
            });
        }
        view
    }

    /// An `AllocUsage` rebuilt from the per-node sums (O(nodes)).
    #[must_use]
    pub fn alloc_usage(&self) -> AllocUsage {
        let mut usage = AllocUsage::new(self.rules);
        for (node, [cpu, memory_mb, disk_mb]) in &self.usage {
            usage.add(&Alloc {
                id: String::new(),
                node_id: format!("{node:016x}"),
                desired_status: "run".to_owned(),
                client_status: "running".to_owned(),
                resources: Some(LegacyResources {
                    cpu: *cpu,
                    memory_mb: *memory_mb,
                    disk_mb: *disk_mb,
                    iops: 0,
                }),
                allocated_resources: None,
            });
        }
        usage
    }

    /// The server gauges in the pipeline's order: jobs, jobs by type, node
    /// census, capacity (the last only when every node carried resources).
    #[must_use]
    pub fn gauges(&self) -> Vec<Gauge> {
        let view = self.node_view();
        let mut out = self.counts.gauges();
        out.extend(self.counts.by_type_gauges());
        out.extend(view.census_gauges());
        if view.has_capacity() {
            out.extend(capacity_gauges(&view, &self.alloc_usage()));
        }
        out
    }

    /// Objects held: (jobs, non-terminal allocations, nodes).
    #[must_use]
    pub fn len(&self) -> (usize, usize, usize) {
        (self.jobs.len(), self.allocs.len(), self.nodes.len())
    }

    /// True when no object is held.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == (0, 0, 0)
    }

    /// Estimated heap bytes of the per-object tables (see the module doc).
    #[must_use]
    pub fn approx_bytes(&self) -> usize {
        fn table<K, V>(m: &HashMap<K, V>) -> usize {
            // hashbrown: capacity is 7/8 of the buckets; 1 control byte each.
            let buckets = (m.capacity() * 8 / 7).next_power_of_two();
            buckets * (std::mem::size_of::<(K, V)>() + 1)
        }
        table(&self.jobs) + table(&self.allocs) + table(&self.nodes) + table(&self.usage)
    }
}

/// Dead and not stopped: only a summary tells complete from dead.
fn needs_summary(e: &JobEntry) -> bool {
    e.status == JobStatus::Dead && !e.stop
}

#[cfg(test)]
mod tests;
