//! The fake's mutable cluster: transactions that change the list items the
//! way Nomad's state store does, and the events each one publishes
//! (`docs/nomad-events.md` §4–§5).
//!
//! The list items (pre-rendered stubs) stay the one copy of every object;
//! this module keeps only what the transaction logic needs (statuses, which
//! allocations belong to which job) and patches an item's JSON when its
//! object changes. Event payloads (full `structs.Job`, `Allocation`, `Node`)
//! are derived from the patched stub, so they always agree with the lists.
//! The model is built from the lists at the first transaction after a
//! `set_list`, so the older knobs keep working.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::Arc;

use nomad_metrics::nomad::features::StreamFeatures;
use serde::Deserialize;
use serde_json::{json, Map, Value};

use super::synthetic::synthetic;
use super::{Item, List};

/// A job's key: (namespace, ID).
pub type JobKey = (String, String);

/// The raft message type of a transaction. It alone decides the `Type` of
/// every event the transaction emits (`MsgTypeEvents` in
/// `v2.0.5:nomad/state/events.go`); unmapped types emit nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MsgType {
    /// `JobRegisterRequestType` → `JobRegistered`.
    JobRegister,
    /// `JobDeregisterRequestType` (stop, or purge) → `JobDeregistered`.
    JobDeregister,
    /// `JobBatchDeregisterRequestType` (job GC) → `JobBatchDeregistered`.
    JobBatchDeregister,
    /// `ApplyPlanResultsRequestType` → `PlanResult`.
    ApplyPlanResults,
    /// `AllocClientUpdateRequestType` → `AllocationUpdated`.
    AllocClientUpdate,
    /// `NodeRegisterRequestType` → `NodeRegistration`.
    NodeRegister,
    /// `NodeDeregisterRequestType` (`node purge`) → `NodeDeregistration`.
    NodeDeregister,
    /// `NodeUpdateStatusRequestType` → `NodeStreamEvent`.
    NodeUpdateStatus,
    /// `NodeUpdateDrainRequestType` → `NodeDrain`.
    NodeUpdateDrain,
    /// `NodeUpdateEligibilityRequestType` → `NodeDrain` up to 2.0.0,
    /// `NodeEligibility` from 2.0.1.
    NodeUpdateEligibility,
    /// `NamespaceUpsertRequestType`: no event (there is no Namespace
    /// topic, #10887).
    NamespaceUpsert,
    /// Eval delete (alloc GC), node batch deregister (node GC), eval-GC
    /// status changes: not in the map, so silent.
    Silent,
}

impl MsgType {
    fn event_type(self, eligibility: &'static str) -> Option<&'static str> {
        Some(match self {
            MsgType::JobRegister => "JobRegistered",
            MsgType::JobDeregister => "JobDeregistered",
            MsgType::JobBatchDeregister => "JobBatchDeregistered",
            MsgType::ApplyPlanResults => "PlanResult",
            MsgType::AllocClientUpdate => "AllocationUpdated",
            MsgType::NodeRegister => "NodeRegistration",
            MsgType::NodeDeregister => "NodeDeregistration",
            MsgType::NodeUpdateStatus => "NodeStreamEvent",
            MsgType::NodeUpdateDrain => "NodeDrain",
            MsgType::NodeUpdateEligibility => eligibility,
            MsgType::NamespaceUpsert | MsgType::Silent => return None,
        })
    }
}

/// One published event, rendered once (`structs.Event` key order).
#[derive(Debug, Clone)]
pub struct EventRec {
    pub topic: &'static str,
    pub key: String,
    pub namespace: String,
    pub filter_keys: Vec<String>,
    pub json: Vec<u8>,
}

#[derive(Debug, Clone)]
pub(super) struct JobRec {
    token: String,
    ty: String,
    pub(super) status: String,
    pub(super) stop: bool,
    /// System, periodic and parameterized jobs run until stopped.
    always_running: bool,
    /// Allocations were placed once (a job whose allocations were all
    /// collected stays dead).
    placed: bool,
    groups: Vec<String>,
}

#[derive(Debug, Clone)]
pub(super) struct AllocRec {
    job: JobKey,
    node: String,
    group: String,
    pub(super) desired: String,
    pub(super) client: String,
}

impl AllocRec {
    /// `Allocation.TerminalStatus()` (`v2.0.5:nomad/structs/alloc.go`).
    fn terminal(&self) -> bool {
        self.desired != "run" || matches!(self.client.as_str(), "complete" | "failed" | "lost")
    }
}

#[derive(Debug, Clone)]
pub(super) struct NodeRec {
    pub(super) status: String,
    pub(super) eligible: bool,
    pub(super) drain: bool,
}

/// What the transaction logic knows of the cluster (the objects themselves
/// are the list items).
#[derive(Debug, Default, Clone)]
pub struct Cluster {
    pub(super) jobs: HashMap<JobKey, JobRec>,
    pub(super) allocs: HashMap<String, AllocRec>,
    by_job: HashMap<JobKey, BTreeSet<String>>,
    pub(super) nodes: HashMap<String, NodeRec>,
    /// Name → create index.
    pub(super) namespaces: BTreeMap<String, u64>,
    /// The highest `ModifyIndex` seen when the model was built.
    pub(super) max_index: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct JobWire {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(rename = "Type", default)]
    ty: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    stop: Option<bool>,
    #[serde(default)]
    periodic: Option<bool>,
    #[serde(default)]
    parameterized_job: Option<bool>,
    #[serde(default)]
    job_summary: Option<SummaryWire>,
    #[serde(default)]
    modify_index: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct SummaryWire {
    #[serde(default)]
    summary: Option<BTreeMap<String, serde::de::IgnoredAny>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AllocWire {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    namespace: Option<String>,
    #[serde(rename = "NodeID", default)]
    node_id: String,
    #[serde(rename = "JobID", default)]
    job_id: String,
    #[serde(default)]
    task_group: String,
    #[serde(default)]
    desired_status: String,
    #[serde(default)]
    client_status: String,
    #[serde(default)]
    modify_index: u64,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct NodeWire {
    #[serde(rename = "ID", default)]
    id: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    drain: bool,
    #[serde(default)]
    scheduling_eligibility: Option<String>,
    #[serde(default)]
    modify_index: u64,
}

fn ns_or_default(ns: Option<&str>) -> String {
    ns.filter(|n| !n.is_empty()).unwrap_or("default").to_owned()
}

impl Cluster {
    /// The model of the current lists.
    pub(super) fn from_lists(lists: &HashMap<List, Arc<Vec<Item>>>) -> Self {
        let mut c = Cluster::default();
        c.namespaces.insert("default".to_owned(), 1);
        let empty = Arc::new(Vec::new());
        let get = |l: List| lists.get(&l).unwrap_or(&empty);
        for item in get(List::Allocations).iter() {
            let Ok(w) = serde_json::from_slice::<AllocWire>(&item.json) else {
                continue;
            };
            let ns = ns_or_default(w.namespace.as_deref());
            c.max_index = c.max_index.max(w.modify_index);
            c.namespaces.entry(ns.clone()).or_insert(1);
            let key = (ns, w.job_id);
            c.by_job
                .entry(key.clone())
                .or_default()
                .insert(w.id.clone());
            c.allocs.insert(
                w.id,
                AllocRec {
                    job: key,
                    node: w.node_id,
                    group: w.task_group,
                    desired: w.desired_status,
                    client: w.client_status,
                },
            );
        }
        for item in get(List::Jobs).iter() {
            let Ok(w) = serde_json::from_slice::<JobWire>(&item.json) else {
                continue;
            };
            let ns = ns_or_default(w.namespace.as_deref());
            c.max_index = c.max_index.max(w.modify_index);
            c.namespaces.entry(ns.clone()).or_insert(1);
            let key = (ns, w.id);
            let placed = w.status != "pending" || c.by_job.contains_key(&key);
            let groups = w
                .job_summary
                .and_then(|s| s.summary)
                .map(|s| s.into_keys().collect())
                .unwrap_or_default();
            c.jobs.insert(
                key,
                JobRec {
                    token: item.token.clone(),
                    always_running: w.ty == "system"
                        || w.periodic == Some(true)
                        || w.parameterized_job == Some(true),
                    ty: w.ty,
                    status: w.status,
                    stop: w.stop.unwrap_or(false),
                    placed,
                    groups,
                },
            );
        }
        for item in get(List::Nodes).iter() {
            let Ok(w) = serde_json::from_slice::<NodeWire>(&item.json) else {
                continue;
            };
            c.max_index = c.max_index.max(w.modify_index);
            c.nodes.insert(
                w.id,
                NodeRec {
                    status: w.status,
                    drain: w.drain,
                    eligible: w.scheduling_eligibility.as_deref() != Some("ineligible"),
                },
            );
        }
        c
    }

    /// Every job of a namespace with this status (sorted by ID).
    pub(super) fn jobs_with(&self, status: &str) -> Vec<JobKey> {
        let mut v: Vec<JobKey> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.status == status)
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }
}

/// What one transaction changed, then the events it publishes.
pub struct Txn<'a> {
    pub(super) index: u64,
    msg: MsgType,
    features: Option<StreamFeatures>,
    eligibility_type: &'static str,
    pub(super) cluster: &'a mut Cluster,
    lists: &'a mut HashMap<List, Arc<Vec<Item>>>,
    jobs_changed: BTreeSet<JobKey>,
    jobs_deleted: Vec<(JobKey, Value)>,
    touched_jobs: BTreeSet<JobKey>,
    allocs_changed: Vec<String>,
    allocs_deleted: usize,
    nodes_changed: BTreeSet<String>,
    nodes_deleted: Vec<(String, Value)>,
    noisy_nodes: BTreeSet<String>,
    summaries_changed: bool,
    namespaces_changed: bool,
    /// An eval delete recomputes job statuses as `evalDelete` (dead).
    eval_delete: bool,
}

/// Which list indexes a committed transaction moved, and its events.
#[derive(Debug, Default)]
pub(super) struct Committed {
    pub(super) jobs: bool,
    pub(super) allocs: bool,
    pub(super) nodes: bool,
    pub(super) summaries: bool,
    pub(super) namespaces: bool,
    pub(super) events: Vec<EventRec>,
}

fn find(items: &[Item], token: &str) -> Option<usize> {
    items.iter().position(|i| i.token == token)
}

fn lean_of(list: List, v: &Value) -> Option<Vec<u8>> {
    (list != List::Jobs).then(|| {
        let mut lean = v.clone();
        if let Some(o) = lean.as_object_mut() {
            for key in ["NodeResources", "ReservedResources", "AllocatedResources"] {
                o.remove(key);
            }
        }
        serde_json::to_vec(&lean).expect("serialise")
    })
}

fn item_of(list: List, token: String, namespace: Option<String>, v: &Value) -> Item {
    Item {
        namespace,
        token,
        json: serde_json::to_vec(v).expect("serialise"),
        json_lean: lean_of(list, v),
    }
}

/// Replaces `key`'s value, or inserts it after `after` (or at the end),
/// keeping the struct's key order.
fn set_after(v: &mut Value, key: &str, value: Value, after: &str) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    if let Some(slot) = obj.get_mut(key) {
        *slot = value;
        return;
    }
    if !obj.contains_key(after) {
        obj.insert(key.to_owned(), value);
        return;
    }
    let old = std::mem::take(obj);
    for (k, val) in old {
        let hit = k == after;
        obj.insert(k, val);
        if hit {
            obj.insert(key.to_owned(), value.clone());
        }
    }
}

fn set(v: &mut Value, key: &str, value: Value) {
    if let Some(slot) = v.as_object_mut().and_then(|o| o.get_mut(key)) {
        *slot = value;
    }
}

/// The full `structs.Job` of a stub (`v2.0.5:nomad/structs/structs.go`
/// key order, a small `TaskGroups`), as a Job event carries it.
pub(super) fn full_job(stub: &Value) -> Value {
    let s = |k: &str| stub.get(k).cloned().unwrap_or(Value::Null);
    let groups: Vec<Value> = stub
        .pointer("/JobSummary/Summary")
        .and_then(Value::as_object)
        .map(|m| m.keys().cloned().collect::<Vec<_>>())
        .unwrap_or_default()
        .into_iter()
        .map(|g| {
            json!({"Name": g, "Count": 1, "Update": null, "Migrate": null, "Constraints": null,
                   "Scaling": null, "RestartPolicy": {"Attempts": 0, "Interval": 86400000000000u64,
                   "Delay": 15000000000u64, "Mode": "fail"}, "Tasks": [{"Name": g, "Driver": "docker",
                   "User": "", "Config": {"image": "busybox:1"}, "Env": null, "Services": null,
                   "Resources": {"CPU": 500, "Cores": 0, "MemoryMB": 1024, "MemoryMaxMB": 0,
                   "DiskMB": 0, "IOPS": 0, "Networks": null, "Devices": null, "NUMA": null},
                   "Lifecycle": null, "Leader": false, "Meta": null, "KillTimeout": 5000000000u64}],
                   "EphemeralDisk": {"Sticky": false, "SizeMB": 300, "Migrate": false},
                   "Meta": null, "ReschedulePolicy": null, "Affinities": null, "Spreads": null,
                   "Networks": null, "Consul": null, "Services": null, "Volumes": null,
                   "ShutdownDelay": null, "StopAfterClientDisconnect": null,
                   "MaxClientDisconnect": null, "PreventRescheduleOnLost": false})
        })
        .collect();
    let mut job = Map::new();
    let mut put = |k: &str, v: Value| {
        job.insert(k.to_owned(), v);
    };
    put("Stop", s("Stop"));
    put("Region", json!("global"));
    put("Namespace", s("Namespace"));
    put("ID", s("ID"));
    put("ParentID", s("ParentID"));
    put("Name", s("Name"));
    put("Type", s("Type"));
    put("Priority", s("Priority"));
    put("AllAtOnce", json!(false));
    put("Datacenters", s("Datacenters"));
    put("NodePool", s("NodePool"));
    put("Constraints", Value::Null);
    put("Affinities", Value::Null);
    put("Spreads", Value::Null);
    put("TaskGroups", Value::Array(groups));
    put(
        "Update",
        json!({"Stagger": 0, "MaxParallel": 0, "HealthCheck": "", "MinHealthyTime": 0,
        "HealthyDeadline": 0, "ProgressDeadline": 0, "AutoRevert": false, "AutoPromote": false,
        "Canary": 0}),
    );
    put("Multiregion", s("Multiregion"));
    put("Periodic", Value::Null);
    put("ParameterizedJob", Value::Null);
    put("Dispatched", json!(false));
    put("DispatchIdempotencyToken", json!(""));
    put("Payload", Value::Null);
    put("Meta", Value::Null);
    put("ConsulToken", json!(""));
    put("ConsulNamespace", json!(""));
    put("VaultToken", json!(""));
    put("VaultNamespace", json!(""));
    put("NomadTokenID", json!(""));
    put("Status", s("Status"));
    put("StatusDescription", s("StatusDescription"));
    put("Stable", json!(false));
    put("Version", json!(0));
    put("SubmitTime", s("SubmitTime"));
    put("CreateIndex", s("CreateIndex"));
    put("ModifyIndex", s("ModifyIndex"));
    put("JobModifyIndex", s("JobModifyIndex"));
    Value::Object(job)
}

/// The full allocation of a stub: the stub's keys are the full struct's,
/// plus `Job`, which an event always sends as null
/// (`v2.0.5:nomad/structs/event.go`, `AllocationEvent`).
pub(super) fn full_alloc(stub: &Value) -> Value {
    let mut v = stub.clone();
    set_after(&mut v, "Job", Value::Null, "JobID");
    v
}

/// The full node of a stub: no `Drain` (computed by the stub since 1.1),
/// `DrainStrategy` instead, `SecretID` cleared by `Sanitize`.
pub(super) fn full_node(stub: &Value, drain: bool) -> Value {
    let mut v = stub.clone();
    if let Some(o) = v.as_object_mut() {
        o.remove("Drain");
    }
    set_after(&mut v, "SecretID", json!(""), "ID");
    let strategy = if drain {
        json!({"Deadline": 3600000000000u64, "IgnoreSystemJobs": false,
               "ForceDeadline": "2026-03-02T11:00:00Z", "StartedAt": "2026-03-02T10:00:00Z"})
    } else {
        Value::Null
    };
    set_after(&mut v, "DrainStrategy", strategy, "SchedulingEligibility");
    if v.get("Attributes").is_none() {
        set_after(
            &mut v,
            "Attributes",
            json!({"kernel.name": "linux", "cpu.arch": "amd64"}),
            "Datacenter",
        );
    }
    v
}

fn event_json(
    topic: &str,
    ty: &str,
    key: &str,
    ns: &str,
    filter_keys: &[String],
    index: u64,
    payload: &Value,
) -> Vec<u8> {
    let mut out = Vec::with_capacity(1024);
    out.extend_from_slice(b"{\"Topic\":");
    serde_json::to_writer(&mut out, topic).unwrap();
    out.extend_from_slice(b",\"Type\":");
    serde_json::to_writer(&mut out, ty).unwrap();
    out.extend_from_slice(b",\"Key\":");
    serde_json::to_writer(&mut out, key).unwrap();
    out.extend_from_slice(b",\"Namespace\":");
    serde_json::to_writer(&mut out, ns).unwrap();
    out.extend_from_slice(b",\"FilterKeys\":");
    if filter_keys.is_empty() {
        out.extend_from_slice(b"null");
    } else {
        serde_json::to_writer(&mut out, filter_keys).unwrap();
    }
    out.extend_from_slice(format!(",\"Index\":{index},\"Payload\":").as_bytes());
    serde_json::to_writer(&mut out, payload).unwrap();
    out.push(b'}');
    out
}

impl<'a> Txn<'a> {
    pub(super) fn new(
        index: u64,
        msg: MsgType,
        features: Option<StreamFeatures>,
        eligibility_type: &'static str,
        cluster: &'a mut Cluster,
        lists: &'a mut HashMap<List, Arc<Vec<Item>>>,
    ) -> Self {
        Self {
            index,
            msg,
            features,
            eligibility_type,
            cluster,
            lists,
            jobs_changed: BTreeSet::new(),
            jobs_deleted: Vec::new(),
            touched_jobs: BTreeSet::new(),
            allocs_changed: Vec::new(),
            allocs_deleted: 0,
            nodes_changed: BTreeSet::new(),
            nodes_deleted: Vec::new(),
            noisy_nodes: BTreeSet::new(),
            summaries_changed: false,
            namespaces_changed: false,
            eval_delete: msg == MsgType::Silent,
        }
    }

    /// This transaction's raft index.
    pub fn index(&self) -> u64 {
        self.index
    }

    fn items(&mut self, list: List) -> &mut Vec<Item> {
        Arc::make_mut(self.lists.entry(list).or_default())
    }

    fn value(&mut self, list: List, token: &str) -> Option<(usize, Value)> {
        let items = self.items(list);
        let pos = find(items, token)?;
        let v = serde_json::from_slice(&items[pos].json).ok()?;
        Some((pos, v))
    }

    fn put(&mut self, list: List, pos: usize, v: &Value) {
        let items = self.items(list);
        items[pos].json = serde_json::to_vec(v).expect("serialise");
        items[pos].json_lean = lean_of(list, v);
    }

    /// A stub of `list` to shape a new object like (this version's first
    /// item, else a synthetic 1.10 one).
    fn template(&mut self, list: List) -> Value {
        let items = self.items(list);
        let bytes = match items.first() {
            Some(i) => i.json.clone(),
            None => synthetic(list, 1, 1).remove(0).json,
        };
        serde_json::from_slice(&bytes).expect("template JSON")
    }

    fn job_token(&self, ns: &str, id: &str) -> String {
        let namespaced = self
            .lists
            .get(&List::Jobs)
            .and_then(|l| l.first())
            .is_none_or(|i| i.namespace.is_some());
        if namespaced {
            format!("{ns}.{id}")
        } else {
            id.to_owned()
        }
    }

    /// Registers (or re-registers, un-stopping) a job with one task group
    /// per name in `groups` (`JobRegister`).
    pub fn register_job(&mut self, ns: &str, id: &str, ty: &str, groups: &[&str]) {
        let key = (ns.to_owned(), id.to_owned());
        let idx = self.index;
        if !self.cluster.namespaces.contains_key(ns) {
            self.create_namespace(ns);
        }
        if let Some(rec) = self.cluster.jobs.get_mut(&key) {
            rec.stop = false;
            rec.ty = ty.to_owned();
            let token = rec.token.clone();
            if let Some((pos, mut v)) = self.value(List::Jobs, &token) {
                set(&mut v, "Stop", json!(false));
                set(&mut v, "Type", json!(ty));
                set(&mut v, "JobModifyIndex", json!(idx));
                set(&mut v, "ModifyIndex", json!(idx));
                self.put(List::Jobs, pos, &v);
            }
        } else {
            let token = self.job_token(ns, id);
            let mut v = self.template(List::Jobs);
            let mut summary = Map::new();
            for g in groups {
                summary.insert(
                    (*g).to_owned(),
                    json!({"Queued": 0, "Complete": 0, "Failed": 0,
                    "Running": 0, "Starting": 0, "Lost": 0, "Unknown": 0}),
                );
            }
            let namespaced = v.get("Namespace").is_some();
            for (k, val) in [
                ("ID", json!(id)),
                ("Name", json!(id)),
                ("Namespace", json!(ns)),
                ("ParentID", json!("")),
                ("Type", json!(ty)),
                ("Stop", json!(false)),
                ("Status", json!("pending")),
                ("StatusDescription", json!("")),
                ("Periodic", json!(false)),
                ("ParameterizedJob", json!(false)),
                ("CreateIndex", json!(idx)),
                ("ModifyIndex", json!(idx)),
                ("JobModifyIndex", json!(idx)),
            ] {
                set(&mut v, k, val);
            }
            let mut js = json!({"JobID": id, "Namespace": ns, "Summary": summary,
                "Children": {"Pending": 0, "Running": 0, "Dead": 0},
                "CreateIndex": idx, "ModifyIndex": idx});
            if !namespaced {
                js.as_object_mut().unwrap().remove("Namespace");
            }
            set(&mut v, "JobSummary", js);
            let item = item_of(
                List::Jobs,
                token.clone(),
                namespaced.then(|| ns.to_owned()),
                &v,
            );
            let items = self.items(List::Jobs);
            let pos = items
                .iter()
                .position(|i| (&i.namespace, &i.token) > (&item.namespace, &item.token))
                .unwrap_or(items.len());
            items.insert(pos, item);
            self.cluster.jobs.insert(
                key.clone(),
                JobRec {
                    token,
                    ty: ty.to_owned(),
                    status: "pending".to_owned(),
                    stop: false,
                    always_running: ty == "system",
                    placed: false,
                    groups: groups.iter().map(|g| (*g).to_owned()).collect(),
                },
            );
            self.summaries_changed = true;
        }
        self.jobs_changed.insert(key.clone());
        self.touched_jobs.insert(key);
    }

    /// Marks a job stopped (`JobDeregister` without purge): `Stop=true`, a
    /// new job version. Its allocations keep running until a plan stops
    /// them (`stop_allocs`).
    pub fn stop_job(&mut self, ns: &str, id: &str) -> bool {
        let key = (ns.to_owned(), id.to_owned());
        let idx = self.index;
        let Some(rec) = self.cluster.jobs.get_mut(&key) else {
            return false;
        };
        rec.stop = true;
        let token = rec.token.clone();
        if let Some((pos, mut v)) = self.value(List::Jobs, &token) {
            set(&mut v, "Stop", json!(true));
            set(&mut v, "JobModifyIndex", json!(idx));
            set(&mut v, "ModifyIndex", json!(idx));
            self.put(List::Jobs, pos, &v);
        }
        self.jobs_changed.insert(key.clone());
        self.touched_jobs.insert(key);
        true
    }

    /// Deletes a job and its summary (purge or GC). The event, if the
    /// version emits one, carries the job as it was (#19903).
    pub fn delete_job(&mut self, ns: &str, id: &str) -> bool {
        let key = (ns.to_owned(), id.to_owned());
        let Some(rec) = self.cluster.jobs.remove(&key) else {
            return false;
        };
        let items = self.items(List::Jobs);
        if let Some(pos) = find(items, &rec.token) {
            let item = items.remove(pos);
            let v: Value = serde_json::from_slice(&item.json).expect("job JSON");
            self.jobs_deleted.push((key.clone(), full_job(&v)));
        }
        self.jobs_changed.remove(&key);
        self.touched_jobs.remove(&key);
        self.summaries_changed = true;
        true
    }

    /// The allocations of a job (IDs, sorted).
    pub fn allocs_of(&self, ns: &str, id: &str) -> Vec<String> {
        self.cluster
            .by_job
            .get(&(ns.to_owned(), id.to_owned()))
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The non-terminal allocations of a job.
    pub fn live_allocs_of(&self, ns: &str, id: &str) -> Vec<String> {
        self.allocs_of(ns, id)
            .into_iter()
            .filter(|a| self.cluster.allocs.get(a).is_some_and(|r| !r.terminal()))
            .collect()
    }

    /// Places a new allocation (`pending`) of the job's first group on
    /// `node` (a plan result). Returns its ID.
    pub fn place_alloc(&mut self, ns: &str, job: &str, node: &str) -> Option<String> {
        let key = (ns.to_owned(), job.to_owned());
        let idx = self.index;
        let rec = self.cluster.jobs.get_mut(&key)?;
        rec.placed = true;
        let group = rec
            .groups
            .first()
            .cloned()
            .unwrap_or_else(|| "build".to_owned());
        let ty = rec.ty.clone();
        let n = self.cluster.allocs.len() as u64;
        let id = format!(
            "{:08x}-{:04x}-4000-8000-{:012x}",
            idx & 0xffff_ffff,
            n & 0xffff,
            idx
        );
        let mut v = self.template(List::Allocations);
        let node_name = format!("node-{}", &node[..node.len().min(8)]);
        for (k, val) in [
            ("ID", json!(id)),
            (
                "EvalID",
                json!(format!(
                    "e{:07x}-0000-4000-8000-000000000000",
                    idx & 0xfff_ffff
                )),
            ),
            ("Name", json!(format!("{job}.{group}[0]"))),
            ("Namespace", json!(ns)),
            ("NodeID", json!(node)),
            ("NodeName", json!(node_name)),
            ("JobID", json!(job)),
            ("JobType", json!(ty)),
            ("JobVersion", json!(0)),
            ("TaskGroup", json!(group)),
            ("DesiredStatus", json!("run")),
            ("DesiredDescription", json!("")),
            ("ClientStatus", json!("pending")),
            ("ClientDescription", json!("")),
            ("TaskStates", Value::Null),
            ("FollowupEvalID", json!("")),
            ("NextAllocation", json!("")),
            ("CreateIndex", json!(idx)),
            ("ModifyIndex", json!(idx)),
        ] {
            set(&mut v, k, val);
        }
        let namespaced = v.get("Namespace").is_some();
        let item = item_of(
            List::Allocations,
            id.clone(),
            namespaced.then(|| ns.to_owned()),
            &v,
        );
        self.items(List::Allocations).push(item);
        self.cluster.allocs.insert(
            id.clone(),
            AllocRec {
                job: key.clone(),
                node: node.to_owned(),
                group: group.clone(),
                desired: "run".to_owned(),
                client: "pending".to_owned(),
            },
        );
        self.cluster
            .by_job
            .entry(key.clone())
            .or_default()
            .insert(id.clone());
        self.summary_transition(&key, &group, None, "pending");
        self.allocs_changed.push(id.clone());
        self.touched_jobs.insert(key);
        Some(id)
    }

    /// Sets an allocation's `ClientStatus`. In an `AllocClientUpdate`
    /// batch on versions with a noisy Node topic, the node's
    /// `LastAllocUpdateIndex` is written too (#15808).
    pub fn alloc_client_status(&mut self, id: &str, status: &str) -> bool {
        let Some(rec) = self.cluster.allocs.get_mut(id) else {
            return false;
        };
        let old = std::mem::replace(&mut rec.client, status.to_owned());
        let (key, group, node) = (rec.job.clone(), rec.group.clone(), rec.node.clone());
        self.patch_alloc(id, |v| set(v, "ClientStatus", json!(status)));
        if old != status {
            self.summary_transition(&key, &group, Some(&old), status);
        }
        if self.msg == MsgType::AllocClientUpdate
            && self.features.is_some_and(|f| f.noisy_node_topic)
            && self.cluster.nodes.contains_key(&node)
        {
            self.noisy_nodes.insert(node);
        }
        self.touched_jobs.insert(key);
        true
    }

    /// Sets an allocation's `DesiredStatus` (`stop`, `evict`: a plan).
    pub fn alloc_desired_status(&mut self, id: &str, desired: &str) -> bool {
        let Some(rec) = self.cluster.allocs.get_mut(id) else {
            return false;
        };
        rec.desired = desired.to_owned();
        let key = rec.job.clone();
        self.patch_alloc(id, |v| set(v, "DesiredStatus", json!(desired)));
        self.touched_jobs.insert(key);
        true
    }

    fn patch_alloc(&mut self, id: &str, f: impl FnOnce(&mut Value)) {
        let idx = self.index;
        if let Some((pos, mut v)) = self.value(List::Allocations, id) {
            f(&mut v);
            set(&mut v, "ModifyIndex", json!(idx));
            self.put(List::Allocations, pos, &v);
        }
        if !self.allocs_changed.iter().any(|a| a == id) {
            self.allocs_changed.push(id.to_owned());
        }
    }

    /// Deletes an allocation. Never an event (§5): alloc GC runs as an
    /// eval delete, and a purge drops them silently.
    pub fn delete_alloc(&mut self, id: &str) -> bool {
        let Some(rec) = self.cluster.allocs.remove(id) else {
            return false;
        };
        if let Some(set) = self.cluster.by_job.get_mut(&rec.job) {
            set.remove(id);
            if set.is_empty() {
                self.cluster.by_job.remove(&rec.job);
            }
        }
        let items = self.items(List::Allocations);
        if let Some(pos) = find(items, id) {
            items.remove(pos);
        }
        self.allocs_changed.retain(|a| a != id);
        self.allocs_deleted += 1;
        self.touched_jobs.insert(rec.job);
        true
    }

    /// `updateSummaryWithAlloc` (`v2.0.5:nomad/state/state_store.go`): a
    /// new allocation counts as Starting, a status change moves one count
    /// from the old bucket to the new. Summaries emit no event.
    fn summary_transition(&mut self, key: &JobKey, group: &str, old: Option<&str>, new: &str) {
        let Some(token) = self.cluster.jobs.get(key).map(|j| j.token.clone()) else {
            return;
        };
        let idx = self.index;
        let Some((pos, mut v)) = self.value(List::Jobs, &token) else {
            return;
        };
        let bucket = |s: &str| match s {
            "pending" => Some("Starting"),
            "running" => Some("Running"),
            "complete" => Some("Complete"),
            "failed" => Some("Failed"),
            "lost" => Some("Lost"),
            "unknown" => Some("Unknown"),
            _ => None,
        };
        let Some(tg) = v
            .pointer_mut("/JobSummary/Summary")
            .and_then(Value::as_object_mut)
            .and_then(|m| m.get_mut(group))
        else {
            return;
        };
        fn add(tg: &mut Value, name: Option<&str>, by: i64) {
            if let Some(slot) = name.and_then(|n| tg.get_mut(n)) {
                let n = slot.as_i64().unwrap_or(0) + by;
                *slot = json!(n.max(0));
            }
        }
        match old {
            Some(old) => add(tg, bucket(old), -1),
            None => add(tg, Some("Queued"), -1),
        }
        add(tg, bucket(new), 1);
        if let Some(m) = v.pointer_mut("/JobSummary/ModifyIndex") {
            *m = json!(idx);
        }
        self.put(List::Jobs, pos, &v);
        self.summaries_changed = true;
    }

    /// Registers a node (`NodeRegister`), or re-registers a known one as
    /// `ready`.
    pub fn register_node(&mut self, id: &str) {
        let idx = self.index;
        if self.cluster.nodes.contains_key(id) {
            self.node_status(id, "ready");
            return;
        }
        let mut v = self.template(List::Nodes);
        let n = self.cluster.nodes.len();
        for (k, val) in [
            ("ID", json!(id)),
            ("Name", json!(format!("node-new-{n}"))),
            ("Status", json!("ready")),
            ("StatusDescription", json!("")),
            ("Drain", json!(false)),
            ("SchedulingEligibility", json!("eligible")),
            ("LastDrain", Value::Null),
            ("CreateIndex", json!(idx)),
            ("ModifyIndex", json!(idx)),
        ] {
            set(&mut v, k, val);
        }
        let item = item_of(List::Nodes, id.to_owned(), None, &v);
        let items = self.items(List::Nodes);
        let pos = items
            .iter()
            .position(|i| i.token.as_str() > id)
            .unwrap_or(items.len());
        items.insert(pos, item);
        self.cluster.nodes.insert(
            id.to_owned(),
            NodeRec {
                status: "ready".to_owned(),
                eligible: true,
                drain: false,
            },
        );
        self.nodes_changed.insert(id.to_owned());
    }

    fn patch_node(&mut self, id: &str) -> bool {
        let Some(rec) = self.cluster.nodes.get(id).cloned() else {
            return false;
        };
        let idx = self.index;
        if let Some((pos, mut v)) = self.value(List::Nodes, id) {
            set(&mut v, "Status", json!(rec.status));
            set(&mut v, "Drain", json!(rec.drain));
            set(
                &mut v,
                "SchedulingEligibility",
                json!(if rec.eligible {
                    "eligible"
                } else {
                    "ineligible"
                }),
            );
            set(&mut v, "ModifyIndex", json!(idx));
            self.put(List::Nodes, pos, &v);
        }
        self.nodes_changed.insert(id.to_owned());
        true
    }

    /// Sets a node's `Status` (`ready`, `down`, `disconnected`).
    pub fn node_status(&mut self, id: &str, status: &str) -> bool {
        match self.cluster.nodes.get_mut(id) {
            Some(n) => n.status = status.to_owned(),
            None => return false,
        }
        self.patch_node(id)
    }

    /// Starts (ineligible while draining) or ends a drain; ending it marks
    /// the node eligible again (`node drain -disable`).
    pub fn node_drain(&mut self, id: &str, drain: bool) -> bool {
        match self.cluster.nodes.get_mut(id) {
            Some(n) => {
                n.drain = drain;
                n.eligible = !drain;
            }
            None => return false,
        }
        self.patch_node(id)
    }

    /// Sets a node's scheduling eligibility.
    pub fn node_eligibility(&mut self, id: &str, eligible: bool) -> bool {
        match self.cluster.nodes.get_mut(id) {
            Some(n) => n.eligible = eligible,
            None => return false,
        }
        self.patch_node(id)
    }

    /// Deletes a node (`node purge` emits the node as it was; node GC is
    /// silent, by its message type).
    pub fn delete_node(&mut self, id: &str) -> bool {
        let Some(rec) = self.cluster.nodes.remove(id) else {
            return false;
        };
        let items = self.items(List::Nodes);
        if let Some(pos) = find(items, id) {
            let item = items.remove(pos);
            let v: Value = serde_json::from_slice(&item.json).expect("node JSON");
            self.nodes_deleted
                .push((id.to_owned(), full_node(&v, rec.drain)));
        }
        self.nodes_changed.remove(id);
        true
    }

    /// Creates a namespace (no event: there is no Namespace topic).
    pub fn create_namespace(&mut self, name: &str) {
        if !self.cluster.namespaces.contains_key(name) {
            self.cluster.namespaces.insert(name.to_owned(), self.index);
            self.namespaces_changed = true;
        }
    }

    /// `getJobStatus` (`v2.0.5:nomad/state/state_store.go`) without evals:
    /// system/periodic/parameterized jobs run until stopped; a job with a
    /// live allocation runs; one that had allocations (or is stopped, or
    /// lost its allocations to GC) is dead; a new one is pending.
    fn status_of(&self, key: &JobKey) -> Option<&'static str> {
        let j = self.cluster.jobs.get(key)?;
        if j.always_running {
            return Some(if j.stop { "dead" } else { "running" });
        }
        let live = self.cluster.by_job.get(key).is_some_and(|s| {
            s.iter()
                .any(|a| self.cluster.allocs.get(a).is_some_and(|r| !r.terminal()))
        });
        Some(if live {
            "running"
        } else if j.stop || j.placed || self.eval_delete {
            "dead"
        } else {
            "pending"
        })
    }

    /// Applies the derived job statuses and renders the events.
    pub(super) fn commit(mut self) -> Committed {
        let idx = self.index;
        // setJobStatus: a status change writes the job (ModifyIndex) in
        // the same transaction, so it is an event of this message type.
        let touched: Vec<JobKey> = std::mem::take(&mut self.touched_jobs).into_iter().collect();
        for key in touched {
            let Some(status) = self.status_of(&key) else {
                continue;
            };
            let rec = self.cluster.jobs.get_mut(&key).unwrap();
            if rec.status == status {
                continue;
            }
            rec.status = status.to_owned();
            let token = rec.token.clone();
            if let Some((pos, mut v)) = self.value(List::Jobs, &token) {
                set(&mut v, "Status", json!(status));
                set(&mut v, "ModifyIndex", json!(idx));
                self.put(List::Jobs, pos, &v);
            }
            self.jobs_changed.insert(key);
        }
        let mut out = Committed {
            jobs: !self.jobs_changed.is_empty()
                || !self.jobs_deleted.is_empty()
                || self.summaries_changed,
            allocs: !self.allocs_changed.is_empty() || self.allocs_deleted > 0,
            nodes: !self.nodes_changed.is_empty()
                || !self.nodes_deleted.is_empty()
                || !self.noisy_nodes.is_empty(),
            summaries: self.summaries_changed,
            namespaces: self.namespaces_changed,
            events: Vec::new(),
        };
        let (Some(features), Some(ty)) =
            (self.features, self.msg.event_type(self.eligibility_type))
        else {
            return out;
        };
        let mut events = Vec::new();
        for id in std::mem::take(&mut self.allocs_changed) {
            let Some((_, v)) = self.value(List::Allocations, &id) else {
                continue;
            };
            let rec = &self.cluster.allocs[&id];
            let ns = rec.job.0.clone();
            let dep = v
                .get("DeploymentID")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned();
            let filter = vec![rec.job.1.clone(), dep];
            let payload = json!({"Allocation": full_alloc(&v)});
            events.push(EventRec {
                topic: "Allocation",
                json: event_json("Allocation", ty, &id, &ns, &filter, idx, &payload),
                key: id,
                namespace: ns,
                filter_keys: filter,
            });
        }
        for key in std::mem::take(&mut self.jobs_changed) {
            let Some(token) = self.cluster.jobs.get(&key).map(|j| j.token.clone()) else {
                continue;
            };
            let Some((_, v)) = self.value(List::Jobs, &token) else {
                continue;
            };
            let payload = json!({"Job": full_job(&v)});
            events.push(EventRec {
                topic: "Job",
                json: event_json("Job", ty, &key.1, &key.0, &[], idx, &payload),
                key: key.1,
                namespace: key.0,
                filter_keys: Vec::new(),
            });
        }
        // Deletions: a Job event only from 1.7.5 / 1.8.0 (#19903), with
        // `Deleted` from 1.11.3 / 2.0.0 (#27614 / #27629).
        if features.job_deletions {
            for (key, job) in std::mem::take(&mut self.jobs_deleted) {
                let mut payload = json!({"Job": job});
                if features.deleted_flag {
                    payload["Deleted"] = json!(true);
                }
                events.push(EventRec {
                    topic: "Job",
                    json: event_json("Job", ty, &key.1, &key.0, &[], idx, &payload),
                    key: key.1,
                    namespace: key.0,
                    filter_keys: Vec::new(),
                });
            }
        }
        let nodes: BTreeSet<String> = self
            .nodes_changed
            .iter()
            .chain(self.noisy_nodes.iter())
            .cloned()
            .collect();
        for id in nodes {
            let Some((_, v)) = self.value(List::Nodes, &id) else {
                continue;
            };
            let drain = self.cluster.nodes.get(&id).is_some_and(|n| n.drain);
            let payload = json!({"Node": full_node(&v, drain)});
            events.push(EventRec {
                topic: "Node",
                json: event_json("Node", ty, &id, "", &[], idx, &payload),
                key: id,
                namespace: String::new(),
                filter_keys: Vec::new(),
            });
        }
        if self.msg == MsgType::NodeDeregister {
            for (id, node) in std::mem::take(&mut self.nodes_deleted) {
                let payload = json!({"Node": node});
                events.push(EventRec {
                    topic: "Node",
                    json: event_json("Node", ty, &id, "", &[], idx, &payload),
                    key: id,
                    namespace: String::new(),
                    filter_keys: Vec::new(),
                });
            }
        }
        out.events = events;
        out
    }
}

impl AllocRec {
    pub(super) fn job_is(&self, ns: &str, id: &str) -> bool {
        self.job.0 == ns && self.job.1 == id
    }
}
