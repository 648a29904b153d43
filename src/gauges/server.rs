//! `--server` role: cluster-wide job counts (total and per type/namespace),
//! the node census and the capacity roll-up. Nomad has three job statuses
//! (`pending`, `running`, `dead`); `complete` is derived from the stop flag
//! and the job summary, so the four job gauges are disjoint and add up to
//! the number of jobs Nomad listed. Every aggregate here is fed one list
//! element at a time and stays bounded by the number of groups or nodes.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use super::resources::{alloc_usage, node_capacity, LifecycleRules, Resources};
use super::tags::group_tags;
use super::{Gauge, Tag, TagValue};
use crate::gauges as names;
use crate::nomad::model::{Alloc, JobStatus, JobStub, JobType, Node};

/// Which of the four job gauges a job counts in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Running,
    /// Dead, not stopped by a user, and every task group finished with
    /// `Complete > 0` and no `Failed`, `Lost` or `Unknown` allocation.
    Complete,
    /// Every other dead job (failed, lost, stopped, never ran).
    Dead,
}

/// Classifies one job stub; `None` for a status no Nomad version sends.
#[must_use]
pub fn classify(job: &JobStub) -> Option<JobState> {
    match job.status {
        JobStatus::Pending => Some(JobState::Pending),
        JobStatus::Running => Some(JobState::Running),
        JobStatus::Dead if finished_successfully(job) => Some(JobState::Complete),
        JobStatus::Dead => Some(JobState::Dead),
        JobStatus::Unknown => None,
    }
}

/// Not stopped by a user, and every task group (at least one) has
/// `Complete > 0` and no `Failed`, `Lost` or `Unknown` allocation.
fn finished_successfully(job: &JobStub) -> bool {
    if job.stop == Some(true) {
        return false;
    }
    let Some(summary) = &job.job_summary else {
        return false;
    };
    let t = summary.summary;
    t.groups > 0 && t.with_complete == t.groups && t.with_failures == 0
}

/// The four job tallies.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StateCounts {
    pub pending: i64,
    pub running: i64,
    pub complete: i64,
    pub dead: i64,
}

impl StateCounts {
    /// Counts one job in `state` (`delta` 1), or takes it back (−1).
    pub fn add(&mut self, state: JobState, delta: i64) {
        *match state {
            JobState::Pending => &mut self.pending,
            JobState::Running => &mut self.running,
            JobState::Complete => &mut self.complete,
            JobState::Dead => &mut self.dead,
        } += delta;
    }

    /// Number of jobs counted.
    #[must_use]
    pub fn total(&self) -> i64 {
        self.pending + self.running + self.complete + self.dead
    }

    /// The four gauges of one family (`names`: pending, running, complete,
    /// dead), all with `tags`.
    fn gauges(&self, names: [&'static str; 4], tags: &[Tag]) -> [Gauge; 4] {
        let [p, r, c, d] = names;
        [
            Gauge::count(p, self.pending, tags.to_vec()),
            Gauge::count(r, self.running, tags.to_vec()),
            Gauge::count(c, self.complete, tags.to_vec()),
            Gauge::count(d, self.dead, tags.to_vec()),
        ]
    }
}

/// Running tallies of one job listing: cluster totals and per (type,
/// namespace). Memory is bounded by the number of types × namespaces.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JobCounts {
    /// Cluster-wide, all visible namespaces.
    pub totals: StateCounts,
    /// Jobs with a status no Nomad version sends (not in any gauge).
    pub unrecognised: i64,
    /// type → namespace → counts. Namespace is `default` before 0.12.
    pub by_type: BTreeMap<JobType, BTreeMap<String, StateCounts>>,
}

impl JobCounts {
    /// Counts one job.
    pub fn add(&mut self, job: &JobStub) {
        let Some(state) = classify(job) else {
            self.unrecognised += 1;
            return;
        };
        self.totals.add(state, 1);
        let namespace = job
            .namespace
            .as_deref()
            .filter(|n| !n.is_empty())
            .unwrap_or("default");
        let per_ns = self.by_type.entry(job.job_type).or_default();
        // No allocation for a namespace already seen.
        let counts = match per_ns.get_mut(namespace) {
            Some(c) => c,
            None => per_ns.entry(namespace.to_owned()).or_default(),
        };
        counts.add(state, 1);
    }

    /// Number of jobs counted in the four gauges.
    #[must_use]
    pub fn total(&self) -> i64 {
        self.totals.total()
    }

    /// The four untagged job gauges.
    #[must_use]
    pub fn gauges(&self) -> Vec<Gauge> {
        self.totals.gauges(JOBS, &[]).to_vec()
    }

    /// `jobs_by_type.*` gauges tagged `type` and `namespace`.
    #[must_use]
    pub fn by_type_gauges(&self) -> Vec<Gauge> {
        let mut out = Vec::with_capacity(self.by_type.len() * 4);
        let rows = self
            .by_type
            .iter()
            .flat_map(|(t, per_ns)| per_ns.iter().map(move |(ns, c)| (t.as_str(), ns, c)));
        for (job_type, namespace, c) in rows {
            let mut tags = Vec::with_capacity(2);
            if let Some(v) = TagValue::new(job_type) {
                tags.push(Tag::new("type", v));
            }
            if let Some(v) = TagValue::new(namespace) {
                tags.push(Tag::new("namespace", v));
            }
            out.extend(c.gauges(JOBS_BY_TYPE, &tags));
        }
        out
    }
}

/// The untagged job gauges, in `StateCounts` order.
const JOBS: [&str; 4] = [
    names::SERVER_JOBS_PENDING,
    names::SERVER_JOBS_RUNNING,
    names::SERVER_JOBS_COMPLETE,
    names::SERVER_JOBS_DEAD,
];

/// The per type and namespace job gauges, in `StateCounts` order.
const JOBS_BY_TYPE: [&str; 4] = [
    names::SERVER_JOBS_BY_TYPE_PENDING,
    names::SERVER_JOBS_BY_TYPE_RUNNING,
    names::SERVER_JOBS_BY_TYPE_COMPLETE,
    names::SERVER_JOBS_BY_TYPE_DEAD,
];

/// Census key: the tags of one `nodes.<status>` series.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct CensusKey {
    status: String,
    tags: Vec<Tag>,
}

/// Capacity group: datacenter, class, pool (empty class/pool left out).
type GroupKey = Vec<Tag>;

/// What one list of nodes says: the census, and per schedulable node its
/// capacity group, capacity − reserved, and reserved.
#[derive(Debug, Clone, Default)]
pub struct NodeView {
    census: BTreeMap<CensusKey, i64>,
    schedulable: HashMap<String, (GroupKey, Resources, Resources)>,
    /// Schedulable nodes whose stub carried no resources (Nomad < 1.0).
    pub without_resources: u64,
    /// Nodes with a status no Nomad version sends (not counted).
    pub unrecognised: u64,
}

impl NodeView {
    /// Adds one node (a `/v1/nodes` stub, `?resources=true` on 1.0+).
    pub fn add(&mut self, node: &Node) {
        if !matches!(
            node.status.as_str(),
            "initializing" | "ready" | "down" | "disconnected"
        ) {
            self.unrecognised += 1;
            return;
        }
        let mut tags = group_tags(node);
        tags.push(Tag::new("drain", TagValue::bool(node.draining())));
        if let Some(e) = node
            .scheduling_eligibility
            .as_deref()
            .and_then(TagValue::new)
        {
            tags.push(Tag::new("eligibility", e));
        }
        let key = CensusKey {
            status: node.status.clone(),
            tags,
        };
        *self.census.entry(key).or_default() += 1;

        // Schedulable: ready, not draining, eligible (no eligibility before 0.8).
        let eligible = node
            .scheduling_eligibility
            .as_deref()
            .is_none_or(|e| e == "eligible");
        if node.status == "ready" && !node.draining() && eligible {
            match node_capacity(node) {
                Ok((capacity, reserved)) => {
                    self.schedulable.insert(
                        node.id.clone(),
                        (group_tags(node), capacity - reserved, reserved),
                    );
                }
                Err(_) => self.without_resources += 1,
            }
        }
    }

    /// Whether capacity can be computed (stubs carried resources).
    #[must_use]
    pub fn has_capacity(&self) -> bool {
        self.without_resources == 0
    }

    /// `nodes.<status>` gauges.
    #[must_use]
    pub fn census_gauges(&self) -> Vec<Gauge> {
        self.census
            .iter()
            .filter_map(|(key, count)| {
                let name = match key.status.as_str() {
                    "initializing" => names::SERVER_NODES_INITIALIZING,
                    "ready" => names::SERVER_NODES_READY,
                    "down" => names::SERVER_NODES_DOWN,
                    "disconnected" => names::SERVER_NODES_DISCONNECTED,
                    _ => return None,
                };
                Some(Gauge::count(name, *count, key.tags.clone()))
            })
            .collect()
    }
}

/// Per node: the sum of its non-terminal allocations, counted as the
/// scheduler counts them. Memory is bounded by the number of nodes.
#[derive(Debug, Clone)]
pub struct AllocUsage {
    rules: LifecycleRules,
    by_node: HashMap<String, Resources>,
}

impl AllocUsage {
    #[must_use]
    pub fn new(rules: LifecycleRules) -> Self {
        Self {
            rules,
            by_node: HashMap::new(),
        }
    }

    /// Adds one allocation (terminal ones are skipped).
    pub fn add(&mut self, alloc: &Alloc) {
        if alloc.is_terminal() {
            return;
        }
        let usage = alloc_usage(alloc, self.rules);
        let slot = match self.by_node.get_mut(alloc.node_id.as_str()) {
            Some(slot) => slot,
            None => self.by_node.entry(alloc.node_id.clone()).or_default(),
        };
        *slot = *slot + usage;
    }
}

/// `capacity.{total,reserved,allocated,available}.{cpu,memory,disk}` per
/// datacenter / class / pool, over schedulable nodes.
#[must_use]
pub fn capacity_gauges(nodes: &NodeView, allocs: &AllocUsage) -> Vec<Gauge> {
    let mut groups: BTreeMap<&GroupKey, [Resources; 3]> = BTreeMap::new();
    for (node_id, (group, total, reserved)) in &nodes.schedulable {
        let used = allocs.by_node.get(node_id).copied().unwrap_or_default();
        let g = groups.entry(group).or_default();
        g[0] = g[0] + *total;
        g[1] = g[1] + *reserved;
        g[2] = g[2] + used;
    }
    let mut out = Vec::with_capacity(groups.len() * 12);
    for (tags, [total, reserved, allocated]) in groups {
        let available = total - allocated;
        let rows = [
            (names::SERVER_CAPACITY_TOTAL_CPU, total.cpu),
            (names::SERVER_CAPACITY_TOTAL_MEMORY, total.memory),
            (names::SERVER_CAPACITY_TOTAL_DISK, total.disk),
            (names::SERVER_CAPACITY_RESERVED_CPU, reserved.cpu),
            (names::SERVER_CAPACITY_RESERVED_MEMORY, reserved.memory),
            (names::SERVER_CAPACITY_RESERVED_DISK, reserved.disk),
            (names::SERVER_CAPACITY_ALLOCATED_CPU, allocated.cpu),
            (names::SERVER_CAPACITY_ALLOCATED_MEMORY, allocated.memory),
            (names::SERVER_CAPACITY_ALLOCATED_DISK, allocated.disk),
            (names::SERVER_CAPACITY_AVAILABLE_CPU, available.cpu),
            (names::SERVER_CAPACITY_AVAILABLE_MEMORY, available.memory),
            (names::SERVER_CAPACITY_AVAILABLE_DISK, available.disk),
        ];
        out.extend(
            rows.into_iter()
                .map(|(n, v)| Gauge::count(n, v, tags.clone())),
        );
    }
    out
}

/// Remembers every (name, tags) series sent, so that a series seen earlier
/// and absent now is sent as 0 instead of leaving a silent gap.
#[derive(Debug, Default)]
pub struct SeriesMemory {
    seen: BTreeSet<(&'static str, Vec<Tag>)>,
}

impl SeriesMemory {
    /// Adds a 0 gauge for every remembered series of one of `families`
    /// that `gauges` lacks; remembers the rest.
    pub fn fill_zeros(&mut self, families: &[Family], gauges: &mut Vec<Gauge>) {
        let families: Vec<&str> = families.iter().flat_map(|f| f.names()).copied().collect();
        let present: BTreeSet<(&'static str, &Vec<Tag>)> =
            gauges.iter().map(|g| (g.name, &g.tags)).collect();
        let missing: Vec<Gauge> = self
            .seen
            .iter()
            .filter(|(name, tags)| families.contains(name) && !present.contains(&(*name, tags)))
            .map(|(name, tags)| Gauge::count(name, 0, tags.clone()))
            .collect();
        for g in gauges.iter() {
            if !self.seen.contains(&(g.name, g.tags.clone())) {
                self.seen.insert((g.name, g.tags.clone()));
            }
        }
        gauges.extend(missing);
    }
}

/// The tagged metric families whose series come and go with the cluster
/// (a type or namespace without jobs, a node group that emptied): a series
/// sent earlier and absent now is sent as 0 (`SeriesMemory`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// `jobs_by_type.*`.
    JobsByType,
    /// `nodes.*`.
    NodeCensus,
    /// `capacity.*`.
    Capacity,
}

impl Family {
    /// The metric names of the family.
    #[must_use]
    pub fn names(self) -> &'static [&'static str] {
        match self {
            Family::JobsByType => &JOBS_BY_TYPE,
            Family::NodeCensus => &[
                names::SERVER_NODES_INITIALIZING,
                names::SERVER_NODES_READY,
                names::SERVER_NODES_DOWN,
                names::SERVER_NODES_DISCONNECTED,
            ],
            Family::Capacity => &[
                names::SERVER_CAPACITY_TOTAL_CPU,
                names::SERVER_CAPACITY_TOTAL_MEMORY,
                names::SERVER_CAPACITY_TOTAL_DISK,
                names::SERVER_CAPACITY_RESERVED_CPU,
                names::SERVER_CAPACITY_RESERVED_MEMORY,
                names::SERVER_CAPACITY_RESERVED_DISK,
                names::SERVER_CAPACITY_ALLOCATED_CPU,
                names::SERVER_CAPACITY_ALLOCATED_MEMORY,
                names::SERVER_CAPACITY_ALLOCATED_DISK,
                names::SERVER_CAPACITY_AVAILABLE_CPU,
                names::SERVER_CAPACITY_AVAILABLE_MEMORY,
                names::SERVER_CAPACITY_AVAILABLE_DISK,
            ],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    fn stub(json: Value) -> JobStub {
        serde_json::from_value(json).unwrap()
    }

    #[test]
    fn complete_needs_every_group_to_succeed() {
        let dead = |summary: Value, stop: bool| {
            classify(&stub(serde_json::json!({
                "Status": "dead", "Stop": stop, "JobSummary": {"Summary": summary}
            })))
        };
        let ok = serde_json::json!({"g": {"Complete": 1}});
        assert_eq!(dead(ok.clone(), false), Some(JobState::Complete));
        assert_eq!(dead(ok, true), Some(JobState::Dead), "stopped by a user");
        assert_eq!(
            dead(serde_json::json!({}), false),
            Some(JobState::Dead),
            "no groups"
        );
        for bad in ["Failed", "Lost", "Unknown"] {
            let s = serde_json::json!({"g": {"Complete": 2, bad: 1}});
            assert_eq!(dead(s, false), Some(JobState::Dead), "{bad}");
        }
        let partial = serde_json::json!({"a": {"Complete": 1}, "b": {"Complete": 0}});
        assert_eq!(dead(partial, false), Some(JobState::Dead));
    }

    #[test]
    fn unknown_status_is_not_counted() {
        assert_eq!(
            classify(&stub(serde_json::json!({"Status": "weird"}))),
            None
        );
        assert_eq!(
            classify(&stub(serde_json::json!({"Status": "pending"}))),
            Some(JobState::Pending)
        );
    }
}
