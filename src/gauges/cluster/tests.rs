//! (Over 450 lines: most of it is the simulated cluster the property test
//! needs, a model of Nomad's transactions and the event lines they write.)
//!
//! Tests of the incremental cluster state, with a small simulated cluster
//! that writes event lines the way Nomad does.

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
                state = reconciled(&sim);
            }
            prop_assert_eq!(state.gauges(), sim.fold_gauges(), "{} after {:?}", VERSIONS[version], batch);
        }
        // Replaying every line already read (a backlog delivered after a
        // full read) changes nothing: each is at or below the read.
        state = reconciled(&sim);
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

/// A reconcile: a fresh full read, done, in place of the state.
fn reconciled(sim: &Sim) -> ClusterState {
    let mut fresh = sim.full_read();
    fresh.read_done();
    fresh
}
