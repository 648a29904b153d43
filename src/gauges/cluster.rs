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
    /// order); `read_done` or `replace_with` ends the read.
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

    /// Swaps in a fresh full read (a reconcile). Summary fetches queued for
    /// events after the fresh read's job index are kept where the job
    /// still needs one; the rest were answered by the read's summaries.
    pub fn replace_with(&mut self, mut fresh: ClusterState) {
        fresh.read_done();
        let old = std::mem::replace(self, fresh);
        let mut old_pending = old.pending;
        for key in old.queue {
            let Some(f) = old_pending.remove(&key) else {
                continue;
            };
            if f.after_index > self.floor_jobs {
                let key = self.job_key(&f.namespace, &f.job_id);
                if self.jobs.get(&key).is_some_and(needs_summary) {
                    self.queue_summary(key, &f.namespace, &f.job_id, f.after_index);
                }
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
mod tests {
    use super::*;
    use crate::nomad::events::{Frame, LineDecoder, StreamCursor};
    use crate::nomad::features::Features;
    use crate::nomad::model::NomadVersion;
    use proptest::prelude::*;
    use serde_json::{json, Value};
    use std::collections::BTreeMap;

    type Key = (String, String);

    #[derive(Clone, Debug)]
    struct MJob {
        ty: &'static str,
        stop: bool,
        status: &'static str,
        modify: u64,
        placed: bool,
        complete: u64,
        failed: u64,
        lost: u64,
    }

    #[derive(Clone, Debug)]
    struct MAlloc {
        job: Key,
        node: String,
        desired: &'static str,
        client: &'static str,
        size: u8,
        modify: u64,
    }

    #[derive(Clone, Debug)]
    struct MNode {
        status: &'static str,
        eligible: bool,
        drain: bool,
        modify: u64,
    }

    /// A simulated cluster that writes the event lines Nomad would
    /// (`docs/nomad-events.md` §4–§5): one line per transaction, the Type
    /// from the transaction, job status changes in the line of the
    /// allocation updates that caused them, deletions emitted or silent
    /// as the version does.
    struct Sim {
        features: StreamFeatures,
        index: u64,
        jobs: BTreeMap<Key, MJob>,
        allocs: BTreeMap<String, MAlloc>,
        nodes: BTreeMap<String, MNode>,
        lines: Vec<String>,
        /// A change this version's stream does not report happened.
        silent: bool,
    }

    fn terminal(a: &MAlloc) -> bool {
        a.desired != "run" || matches!(a.client, "complete" | "failed" | "lost")
    }

    fn job_key(j: u8) -> Key {
        let ns = if j % 2 == 0 { "default" } else { "ci" };
        (ns.to_owned(), format!("job{}", j / 2))
    }

    impl Sim {
        fn new(version: &str) -> Self {
            let features = Features::for_version(NomadVersion::parse(version))
                .stream
                .unwrap();
            Self {
                features,
                index: 0,
                jobs: BTreeMap::new(),
                allocs: BTreeMap::new(),
                nodes: BTreeMap::new(),
                lines: Vec::new(),
                silent: false,
            }
        }

        fn job_json(&self, k: &Key, j: &MJob) -> Value {
            json!({"Stop": j.stop, "Region": "global", "Namespace": k.0, "ID": k.1,
                   "Name": k.1, "Type": j.ty, "Priority": 50,
                   "TaskGroups": [{"Name": "g", "Count": 1}],
                   "Status": j.status, "ModifyIndex": j.modify, "JobModifyIndex": j.modify})
        }

        fn summary_json(k: &Key, j: &MJob) -> Value {
            json!({"JobID": k.1, "Namespace": k.0,
                   "Summary": {"g": {"Queued": 0, "Complete": j.complete, "Failed": j.failed,
                                     "Running": 0, "Starting": 0, "Lost": j.lost, "Unknown": 0}},
                   "Children": {"Pending": 0, "Running": 0, "Dead": 0}})
        }

        fn alloc_json(id: &str, a: &MAlloc) -> Value {
            let s = i64::from(a.size);
            json!({"ID": id, "Namespace": a.job.0, "NodeID": a.node, "JobID": a.job.1,
                   "Job": null, "TaskGroup": "g",
                   "AllocatedResources": {
                       "Tasks": {"t": {"Cpu": {"CpuShares": 100 + 10 * s}, "Memory": {"MemoryMB": 64 * (1 + s % 4)}},
                                 "init": {"Cpu": {"CpuShares": 50}, "Memory": {"MemoryMB": 32}}},
                       "TaskLifecycles": {"t": null, "init": {"Hook": "prestart", "Sidecar": s % 2 == 0}},
                       "Shared": {"DiskMB": 10 * (s % 3)}},
                   "DesiredStatus": a.desired, "ClientStatus": a.client,
                   "TaskStates": {"t": {"State": "running", "Events": []}},
                   "ModifyIndex": a.modify})
        }

        fn node_json(id: &str, n: &MNode, full: bool) -> Value {
            let i: i64 = id[1..].parse().unwrap();
            let mut v = json!({"ID": id, "Name": format!("w{i}"),
                "Datacenter": if i % 2 == 0 { "dc1" } else { "dc2" },
                "NodeClass": if i % 3 == 0 { "" } else { "builder" }, "NodePool": "default",
                "SchedulingEligibility": if n.eligible { "eligible" } else { "ineligible" },
                "Status": n.status,
                "NodeResources": {"Cpu": {"CpuShares": 4000 + 100 * i}, "Memory": {"MemoryMB": 8000},
                                  "Disk": {"DiskMB": 50000}},
                "ReservedResources": {"Cpu": {"CpuShares": 100}, "Memory": {"MemoryMB": 256},
                                      "Disk": {"DiskMB": 1000}},
                "ModifyIndex": n.modify});
            if full {
                v["DrainStrategy"] = if n.drain {
                    json!({"Deadline": 0})
                } else {
                    Value::Null
                };
                v["Attributes"] = json!({"kernel.name": "linux"});
            } else {
                v["Drain"] = json!(n.drain);
            }
            v
        }

        fn status_of(&self, k: &Key) -> &'static str {
            let j = &self.jobs[k];
            let live = self.allocs.values().any(|a| &a.job == k && !terminal(a));
            if live {
                "running"
            } else if j.stop || j.placed {
                "dead"
            } else {
                "pending"
            }
        }

        /// Commits one transaction: `jobs` changed explicitly, plus every
        /// job whose status changed; `deleted` are Job delete events.
        fn commit(
            &mut self,
            kind: &str,
            allocs: &[String],
            jobs: &[Key],
            nodes: &[String],
            deleted: Vec<Value>,
        ) {
            let idx = self.index;
            let mut events = Vec::new();
            let ev = |topic: &str, key: &str, ns: &str, payload: Value| {
                json!({"Topic": topic, "Type": kind, "Key": key, "Namespace": ns,
                       "FilterKeys": [], "Index": idx, "Payload": payload})
            };
            for id in allocs {
                if let Some(a) = self.allocs.get_mut(id) {
                    a.modify = idx;
                    let a = a.clone();
                    events.push(ev(
                        "Allocation",
                        id,
                        &a.job.0,
                        json!({"Allocation": Self::alloc_json(id, &a)}),
                    ));
                }
            }
            let mut changed: Vec<Key> = jobs.to_vec();
            let keys: Vec<Key> = self.jobs.keys().cloned().collect();
            for k in keys {
                let s = self.status_of(&k);
                let j = self.jobs.get_mut(&k).unwrap();
                if j.status != s {
                    j.status = s;
                    changed.push(k);
                }
            }
            changed.sort();
            changed.dedup();
            for k in &changed {
                if let Some(j) = self.jobs.get_mut(k) {
                    j.modify = idx;
                    let j = j.clone();
                    events.push(ev("Job", &k.1, &k.0, json!({"Job": self.job_json(k, &j)})));
                }
            }
            for p in deleted {
                let (id, ns) = (
                    p["Job"]["ID"].as_str().unwrap().to_owned(),
                    p["Job"]["Namespace"].as_str().unwrap().to_owned(),
                );
                events.push(ev("Job", &id, &ns, p));
            }
            for id in nodes {
                if let Some(n) = self.nodes.get_mut(id) {
                    n.modify = idx;
                    let n = n.clone();
                    events.push(ev(
                        "Node",
                        id,
                        "",
                        json!({"Node": Self::node_json(id, &n, true)}),
                    ));
                }
            }
            if !events.is_empty() {
                self.lines
                    .push(json!({"Index": idx, "Events": events}).to_string());
            }
        }

        fn job_deleted(&mut self, k: &Key, gc: bool) {
            let mut j = self.jobs.remove(k).unwrap();
            if !self.features.job_deletions {
                self.silent = true;
                return;
            }
            j.modify = self.index;
            let mut payload = json!({"Job": self.job_json(k, &j)});
            if self.features.deleted_flag {
                payload["Deleted"] = json!(true);
            }
            let kind = if gc {
                "JobBatchDeregistered"
            } else {
                "JobDeregistered"
            };
            self.commit(kind, &[], &[], &[], vec![payload]);
        }

        fn apply(&mut self, op: &Op) {
            self.index += 1;
            let idx = self.index;
            match *op {
                Op::Register { j, ty } => {
                    let k = job_key(j);
                    let ty = ["service", "batch", "system", "sysbatch"][usize::from(ty % 4)];
                    let e = self.jobs.entry(k.clone()).or_insert(MJob {
                        ty,
                        stop: false,
                        status: "pending",
                        modify: idx,
                        placed: false,
                        complete: 0,
                        failed: 0,
                        lost: 0,
                    });
                    e.ty = ty;
                    e.stop = false;
                    e.placed = false;
                    self.commit("JobRegistered", &[], &[k], &[], vec![]);
                }
                Op::Place { a, j, n, size } => {
                    let (k, id, node) = (job_key(j), format!("a{a}"), format!("n{n}"));
                    if self.jobs.get(&k).is_some_and(|j| !j.stop)
                        && self.nodes.contains_key(&node)
                        && !self.allocs.contains_key(&id)
                    {
                        self.jobs.get_mut(&k).unwrap().placed = true;
                        self.allocs.insert(
                            id.clone(),
                            MAlloc {
                                job: k,
                                node,
                                desired: "run",
                                client: "pending",
                                size,
                                modify: idx,
                            },
                        );
                        self.commit("PlanResult", &[id], &[], &[], vec![]);
                    }
                }
                Op::Client { a, to } => {
                    let id = format!("a{a}");
                    let Some(al) = self.allocs.get_mut(&id).filter(|x| !terminal(x)) else {
                        return;
                    };
                    al.client = ["running", "complete", "failed", "lost"][usize::from(to % 4)];
                    let (client, k) = (al.client, al.job.clone());
                    if let Some(j) = self.jobs.get_mut(&k) {
                        match client {
                            "complete" => j.complete += 1,
                            "failed" => j.failed += 1,
                            "lost" => j.lost += 1,
                            _ => {}
                        }
                    }
                    let kind = if client == "lost" {
                        "PlanResult"
                    } else {
                        "AllocationUpdated"
                    };
                    let mut nodes = vec![];
                    if self.features.noisy_node_topic {
                        nodes.push(self.allocs[&id].node.clone());
                    }
                    self.commit(kind, &[id], &[], &nodes, vec![]);
                }
                Op::Stop { j } => {
                    let k = job_key(j);
                    let Some(job) = self.jobs.get_mut(&k).filter(|x| !x.stop) else {
                        return;
                    };
                    job.stop = true;
                    self.commit(
                        "JobDeregistered",
                        &[],
                        std::slice::from_ref(&k),
                        &[],
                        vec![],
                    );
                    self.stop_allocs(&k);
                }
                Op::Purge { j } => {
                    let k = job_key(j);
                    if !self.jobs.contains_key(&k) {
                        return;
                    }
                    if self.features.purge_drops_allocs {
                        self.allocs.retain(|_, a| a.job != k);
                    }
                    self.job_deleted(&k, false);
                    if !self.features.purge_drops_allocs {
                        self.stop_allocs(&k);
                    }
                }
                Op::Gc { j } => {
                    let k = job_key(j);
                    if self.jobs.get(&k).is_some_and(|x| x.status == "dead") {
                        self.allocs.retain(|_, a| a.job != k);
                        self.job_deleted(&k, true);
                    }
                }
                Op::GcAlloc { a } => {
                    let id = format!("a{a}");
                    if self.allocs.get(&id).is_some_and(terminal) {
                        self.allocs.remove(&id);
                    }
                }
                Op::Node { n, what } => {
                    let id = format!("n{n}");
                    let Some(node) = self.nodes.get_mut(&id) else {
                        self.nodes.insert(
                            id.clone(),
                            MNode {
                                status: "ready",
                                eligible: true,
                                drain: false,
                                modify: idx,
                            },
                        );
                        self.commit("NodeRegistration", &[], &[], &[id], vec![]);
                        return;
                    };
                    let kind = match what % 7 {
                        0 => {
                            node.status = "ready";
                            "NodeStreamEvent"
                        }
                        1 => {
                            node.status = "down";
                            "NodeStreamEvent"
                        }
                        2 => {
                            node.drain = true;
                            node.eligible = false;
                            "NodeDrain"
                        }
                        3 => {
                            node.drain = false;
                            node.eligible = true;
                            "NodeDrain"
                        }
                        4 => {
                            node.eligible = !node.eligible || node.drain;
                            "NodeEligibility"
                        }
                        5 => {
                            let before = node.clone();
                            self.nodes.remove(&id);
                            let p = json!({"Node": Self::node_json(&id, &before, true)});
                            let e = json!({"Topic": "Node", "Type": "NodeDeregistration", "Key": id,
                                           "Namespace": "", "Index": idx, "Payload": p});
                            self.lines
                                .push(json!({"Index": idx, "Events": [e]}).to_string());
                            return;
                        }
                        _ => {
                            // Node GC: only down nodes, and silent.
                            if node.status == "down" {
                                self.nodes.remove(&id);
                                self.silent = true;
                            }
                            return;
                        }
                    };
                    self.commit(kind, &[], &[], &[id], vec![]);
                }
            }
        }

        /// The scheduler stops the job's allocations: one plan.
        fn stop_allocs(&mut self, k: &Key) {
            let ids: Vec<String> = self
                .allocs
                .iter()
                .filter(|(_, a)| &a.job == k && !terminal(a))
                .map(|(id, _)| id.clone())
                .collect();
            if ids.is_empty() {
                return;
            }
            self.index += 1;
            for id in &ids {
                self.allocs.get_mut(id).unwrap().desired = "stop";
            }
            self.commit("PlanResult", &ids, &[], &[], vec![]);
        }

        fn lists(&self) -> (Vec<JobListEntry>, Vec<Node>, Vec<AllocEvent>) {
            let jobs = self.jobs.iter().map(|(k, j)| {
                let mut v = self.job_json(k, j);
                v["JobSummary"] = Self::summary_json(k, j);
                serde_json::from_value(v).unwrap()
            });
            let nodes = self
                .nodes
                .iter()
                .map(|(id, n)| serde_json::from_value(Self::node_json(id, n, false)).unwrap());
            let allocs = self
                .allocs
                .iter()
                .map(|(id, a)| serde_json::from_value(Self::alloc_json(id, a)).unwrap());
            (jobs.collect(), nodes.collect(), allocs.collect())
        }

        fn rules(&self) -> LifecycleRules {
            LifecycleRules::V1_9_4
        }

        /// What a fresh full fold of the lists gives, in the pipeline's order.
        fn fold_gauges(&self) -> Vec<Gauge> {
            let (jobs, nodes, allocs) = self.lists();
            let mut counts = JobCounts::default();
            jobs.iter().for_each(|j| counts.add(&j.stub));
            let mut view = NodeView::default();
            nodes.iter().for_each(|n| view.add(n));
            let mut usage = AllocUsage::new(self.rules());
            allocs.iter().for_each(|a| usage.add(&a.alloc));
            let mut out = counts.gauges();
            out.extend(counts.by_type_gauges());
            out.extend(view.census_gauges());
            if view.has_capacity() {
                out.extend(capacity_gauges(&view, &usage));
            }
            out
        }

        fn full_read(&self) -> ClusterState {
            let (jobs, nodes, allocs) = self.lists();
            let mut s = ClusterState::new(self.rules());
            for t in [Table::Jobs, Table::Allocs, Table::Nodes] {
                s.listed(t, self.index);
            }
            // Allocations first: the job's live count is fixed at read_done.
            allocs.iter().for_each(|a| s.add_alloc(self.index, a));
            jobs.iter().for_each(|j| s.add_job(self.index, j));
            nodes.iter().for_each(|n| s.add_node(self.index, n));
            s.read_done();
            s
        }

        fn summary(&self, ns: &str, id: &str) -> Option<JobSummary> {
            let k = (ns.to_owned(), id.to_owned());
            self.jobs
                .get(&k)
                .map(|j| serde_json::from_value(Self::summary_json(&k, j)).unwrap())
        }
    }

    #[derive(Debug, Clone)]
    enum Op {
        Register { j: u8, ty: u8 },
        Place { a: u8, j: u8, n: u8, size: u8 },
        Client { a: u8, to: u8 },
        Stop { j: u8 },
        Purge { j: u8 },
        Gc { j: u8 },
        GcAlloc { a: u8 },
        Node { n: u8, what: u8 },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (0u8..6, any::<u8>()).prop_map(|(j, ty)| Op::Register { j, ty }),
            5 => (0u8..14, 0u8..6, 0u8..4, any::<u8>()).prop_map(|(a, j, n, size)| Op::Place { a, j, n, size }),
            5 => (0u8..14, any::<u8>()).prop_map(|(a, to)| Op::Client { a, to }),
            1 => (0u8..6).prop_map(|j| Op::Stop { j }),
            1 => (0u8..6).prop_map(|j| Op::Purge { j }),
            1 => (0u8..6).prop_map(|j| Op::Gc { j }),
            1 => (0u8..14).prop_map(|a| Op::GcAlloc { a }),
            3 => (0u8..5, any::<u8>()).prop_map(|(n, what)| Op::Node { n, what }),
        ]
    }

    /// The daemon's side: decode each line, apply it, answer existence
    /// checks and summary fetches from the simulated cluster.
    fn follow(sim: &mut Sim, state: &mut ClusterState, cursor: &mut StreamCursor) {
        let mut decoder = LineDecoder::default();
        for line in std::mem::take(&mut sim.lines) {
            for frame in decoder.feed(format!("{line}\n").as_bytes()).unwrap() {
                let Frame::Events { index, events } = frame else {
                    continue;
                };
                if !cursor.accept(index) {
                    continue;
                }
                for check in state.apply_frame(&events, &sim.features) {
                    if sim.summary(&check.namespace, &check.job_id).is_none() {
                        state.remove_job(&check.namespace, &check.job_id, check.index);
                    }
                }
            }
        }
        while let Some(f) = state.next_summary_fetch() {
            match sim.summary(&f.namespace, &f.job_id) {
                Some(s) => assert!(state.apply_summary(&f.namespace, &f.job_id, &s)),
                None => state.remove_job(&f.namespace, &f.job_id, f.after_index),
            }
        }
    }

    const VERSIONS: [&str; 7] = [
        "1.4.0", "1.7.4", "1.8.0", "1.10.0", "1.11.2", "1.11.3", "2.0.5",
    ];

    proptest! {
        #![proptest_config(ProptestConfig { cases: 160, ..ProptestConfig::default() })]
        #[test]
        fn incremental_gauges_equal_a_fresh_fold(
            version in 0usize..VERSIONS.len(),
            batches in proptest::collection::vec(proptest::collection::vec(op(), 1..6), 1..10),
        ) {
            let mut sim = Sim::new(VERSIONS[version]);
            for n in 0..3 {
                sim.apply(&Op::Node { n, what: 0 });
            }
            let mut history = std::mem::take(&mut sim.lines);
            let mut state = sim.full_read();
            let mut cursor = StreamCursor::default();
            prop_assert_eq!(state.gauges(), sim.fold_gauges());
            for batch in &batches {
                for op in batch {
                    sim.apply(op);
                }
                history.extend(sim.lines.iter().cloned());
                follow(&mut sim, &mut state, &mut cursor);
                if std::mem::take(&mut sim.silent) {
                    // A change the stream never reported: only a reconcile repairs it.
                    state.replace_with(sim.full_read());
                }
                prop_assert_eq!(state.gauges(), sim.fold_gauges(), "{} after {:?}", VERSIONS[version], batch);
            }
            // Replaying every line already read (a backlog delivered after a
            // full read) changes nothing: each is at or below the read.
            state.replace_with(sim.full_read());
            let want = sim.fold_gauges();
            prop_assert_eq!(state.gauges(), want.clone());
            sim.lines = history;
            follow(&mut sim, &mut state, &mut StreamCursor::default());
            prop_assert_eq!(state.gauges(), want);
            prop_assert_eq!(state.summary_fetches_pending(), 0);
        }
    }

    fn one_version(v: &str) -> StreamFeatures {
        Features::for_version(NomadVersion::parse(v))
            .stream
            .unwrap()
    }

    fn frame_of(sim: &mut Sim) -> Vec<Event> {
        let line = sim.lines.pop().unwrap();
        let mut d = LineDecoder::default();
        match d.feed(format!("{line}\n").as_bytes()).unwrap().pop() {
            Some(Frame::Events { events, .. }) => events,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_dead_job_waits_for_its_summary_as_dead_or_its_last_verdict() {
        let mut sim = Sim::new("2.0.5");
        sim.apply(&Op::Node { n: 0, what: 0 });
        sim.apply(&Op::Register { j: 0, ty: 1 });
        sim.apply(&Op::Place {
            a: 0,
            j: 0,
            n: 0,
            size: 1,
        });
        let mut state = sim.full_read();
        let f = one_version("2.0.5");
        sim.lines.clear();
        sim.apply(&Op::Client { a: 0, to: 1 }); // complete → job dead
        let events = frame_of(&mut sim);
        state.apply_frame(&events, &f);
        let c = state.job_counts();
        assert_eq!(
            (c.totals.running, c.totals.complete, c.totals.dead),
            (0, 0, 1),
            "dead until the summary"
        );
        let fetch = state.next_summary_fetch().unwrap();
        assert_eq!(
            (fetch.namespace.as_str(), fetch.job_id.as_str()),
            ("default", "job0")
        );
        assert!(state.next_summary_fetch().is_none(), "queued once");
        let s = sim.summary("default", "job0").unwrap();
        assert!(state.apply_summary("default", "job0", &s));
        assert_eq!(state.job_counts().totals.complete, 1);
        // An allocation event for a job cached dead queues a new fetch, and
        // the job keeps its last verdict meanwhile.
        let alloc_line = r#"{"Index":99,"Events":[{"Topic":"Allocation","Type":"AllocationUpdated","Key":"a0","Namespace":"default","Index":99,"Payload":{"Allocation":{"ID":"a0","JobID":"job0","Namespace":"default","NodeID":"n0","DesiredStatus":"run","ClientStatus":"failed","ModifyIndex":99}}}]}"#;
        let mut d = LineDecoder::default();
        let Some(Frame::Events { events, .. }) =
            d.feed(format!("{alloc_line}\n").as_bytes()).unwrap().pop()
        else {
            panic!()
        };
        state.apply_frame(&events, &f);
        assert_eq!(state.job_counts().totals.complete, 1);
        assert_eq!(state.summary_fetches_pending(), 1);
        assert_eq!(
            state.gauges(),
            sim.fold_gauges(),
            "same until the summary changes"
        );
    }

    #[test]
    fn a_reconcile_keeps_only_fetches_newer_than_the_read() {
        let mut sim = Sim::new("2.0.5");
        sim.apply(&Op::Register { j: 0, ty: 1 });
        sim.apply(&Op::Stop { j: 0 });
        let mut state = sim.full_read();
        sim.lines.clear();
        sim.apply(&Op::Register { j: 2, ty: 1 });
        sim.apply(&Op::Gc { j: 0 });
        let mut cursor = StreamCursor::default();
        // A dead, not stopped job queued, then a read that already has it.
        let ev = |idx: u64| {
            format!(
                r#"{{"Index":{idx},"Events":[{{"Topic":"Job","Type":"EvaluationUpdated","Key":"job1","Namespace":"default","Index":{idx},"Payload":{{"Job":{{"ID":"job1","Namespace":"default","Type":"batch","Status":"dead","Stop":false,"ModifyIndex":{idx}}}}}}}]}}"#
            )
        };
        sim.lines.push(ev(sim.index + 1));
        follow_without_fetch(&mut sim, &mut state, &mut cursor);
        assert_eq!(state.summary_fetches_pending(), 1);
        let mut fresh = ClusterState::new(LifecycleRules::V1_9_4);
        let entry: JobListEntry = serde_json::from_value(json!({"ID": "job1", "Namespace": "default", "Type": "batch", "Status": "dead", "Stop": false, "ModifyIndex": sim.index + 1, "JobSummary": {"Summary": {"g": {"Complete": 1}}}})).unwrap();
        fresh.add_job(sim.index + 1, &entry);
        state.replace_with(fresh);
        assert_eq!(state.summary_fetches_pending(), 0, "answered by the read");
        assert_eq!(state.job_counts().totals.complete, 1);
        // One queued after the read survives the swap.
        let mut later = ClusterState::new(LifecycleRules::V1_9_4);
        later.add_job(sim.index + 1, &entry);
        sim.lines.push(ev(sim.index + 5));
        follow_without_fetch(&mut sim, &mut state, &mut cursor);
        state.replace_with(later);
        assert_eq!(
            state.next_summary_fetch().map(|f| f.after_index),
            Some(sim.index + 5)
        );
    }

    fn follow_without_fetch(sim: &mut Sim, state: &mut ClusterState, cursor: &mut StreamCursor) {
        let mut d = LineDecoder::default();
        for line in std::mem::take(&mut sim.lines) {
            for frame in d.feed(format!("{line}\n").as_bytes()).unwrap() {
                if let Frame::Events { index, events } = frame {
                    if cursor.accept(index) {
                        state.apply_frame(&events, &sim.features);
                    }
                }
            }
        }
    }

    #[test]
    fn ambiguous_deregistration_asks_for_a_check() {
        let mut sim = Sim::new("1.8.0");
        sim.apply(&Op::Register { j: 1, ty: 1 });
        sim.apply(&Op::Stop { j: 1 });
        let mut state = sim.full_read();
        sim.lines.clear();
        sim.apply(&Op::Purge { j: 1 });
        let events = frame_of(&mut sim);
        let checks = state.apply_frame(&events, &sim.features);
        assert_eq!(checks.len(), 1);
        assert_eq!(
            (checks[0].namespace.as_str(), checks[0].job_id.as_str()),
            ("ci", "job0")
        );
        assert_eq!(
            state.job_counts().totals.dead,
            1,
            "counted as stopped until checked"
        );
        state.remove_job("ci", "job0", checks[0].index);
        assert_eq!(state.gauges(), sim.fold_gauges());
    }

    #[test]
    fn rows_never_undo_newer_events_during_the_read() {
        let mut sim = Sim::new("2.0.5");
        sim.apply(&Op::Register { j: 0, ty: 1 });
        let old_read = sim.lists();
        let old_index = sim.index;
        sim.lines.clear();
        sim.apply(&Op::Purge { j: 0 });
        sim.apply(&Op::Register { j: 2, ty: 0 });
        let mut state = ClusterState::new(LifecycleRules::V1_9_4);
        // Events arrive before the (older) rows.
        for line in std::mem::take(&mut sim.lines) {
            let mut d = LineDecoder::default();
            if let Some(Frame::Events { events, .. }) =
                d.feed(format!("{line}\n").as_bytes()).unwrap().pop()
            {
                state.apply_frame(&events, &sim.features);
            }
        }
        old_read.0.iter().for_each(|j| state.add_job(old_index, j));
        state.read_done();
        assert_eq!(
            state.gauges(),
            sim.fold_gauges(),
            "the purged job stays purged"
        );
    }

    #[test]
    fn bytes_per_object_for_100k_jobs_50k_allocs_5k_nodes() {
        assert!(std::mem::size_of::<JobEntry>() <= 24);
        assert!(std::mem::size_of::<AllocEntry>() <= 40);
        assert!(std::mem::size_of::<NodeEntry>() <= 88);
        let mut s = ClusterState::new(LifecycleRules::V1_9_4);
        for i in 0..100_000u32 {
            let e: JobListEntry = serde_json::from_value(json!({"ID": format!("build-{i}"), "Namespace": if i % 10 == 0 { "ci" } else { "default" }, "Type": "batch", "Status": "dead", "ModifyIndex": i, "JobSummary": {"Summary": {"g": {"Complete": 1}}}})).unwrap();
            s.add_job(200_000, &e);
        }
        for i in 0..5_000u32 {
            let n: Node = serde_json::from_value(json!({"ID": format!("node-{i}"), "Datacenter": "dc1", "Status": "ready", "SchedulingEligibility": "eligible", "NodeResources": {"Cpu": {"CpuShares": 8000}, "Memory": {"MemoryMB": 16000}, "Disk": {"DiskMB": 1000}}})).unwrap();
            s.add_node(200_000, &n);
        }
        for i in 0..50_000u32 {
            let a: AllocEvent = serde_json::from_value(json!({"ID": format!("alloc-{i}"), "NodeID": format!("node-{}", i % 5000), "JobID": format!("build-{i}"), "DesiredStatus": "run", "ClientStatus": "running", "AllocatedResources": {"Tasks": {"t": {"Cpu": {"CpuShares": 100}, "Memory": {"MemoryMB": 64}}}}})).unwrap();
            s.add_alloc(200_000, &a);
        }
        s.read_done();
        assert_eq!(s.len(), (100_000, 50_000, 5_000));
        let bytes = s.approx_bytes();
        assert!(bytes < 10 << 20, "{bytes} bytes");
        assert_eq!(s.job_counts().totals.complete, 100_000);
    }
}
