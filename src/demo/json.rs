//! The simulated cluster as Nomad 2.0.x JSON. Lean on purpose: each object
//! carries the fields the daemon reads (see `nomad::model`) plus a few that
//! identify it (`CreateIndex`, `ModifyIndex`, `Name`, `JobID`, …), with the
//! key names and nesting of the real answers (the `nomad-2.0.5` test
//! fixtures). Everything else a real agent sends (attributes, drivers,
//! task states, the embedded job of a full allocation) is left out.

use serde_json::{json, Value};

use super::sim::{JobKind, Res, Sim, SimAlloc, SimJob, SimNode, NOMAD_VERSION};

/// `GET /v1/agent/self` of an agent that runs both a server and the client
/// on node `CLIENT_NODE` (as `nomad agent -dev` does).
#[must_use]
pub fn agent_self(sim: &Sim) -> Value {
    let node = sim.client_node();
    json!({
        "config": {
            "Region": "global",
            "Datacenter": node.datacenter,
            "NodeName": node.name,
            "Client": {"Enabled": true, "NodeClass": node.class},
            "Server": {"Enabled": true},
            "Version": {"Version": NOMAD_VERSION, "VersionPrerelease": "", "VersionMetadata": ""},
        },
        "stats": {"client": {"node_id": node.id}},
    })
}

/// `GET /v1/node/<id>` (`full`) or one `GET /v1/nodes` stub; resources on
/// stubs only with `?resources=true`, as Nomad does.
#[must_use]
pub fn node(node: &SimNode, full: bool, resources: bool) -> Value {
    let mut v = json!({
        "ID": node.id,
        "Name": node.name,
        "Datacenter": node.datacenter,
        "NodeClass": node.class,
        "NodePool": node.pool,
        "Drain": node.drain,
        "SchedulingEligibility": if node.eligible { "eligible" } else { "ineligible" },
        "Status": node.status.as_str(),
        "Version": NOMAD_VERSION,
        "CreateIndex": node.create_index,
        "ModifyIndex": node.modify_index,
    });
    if full {
        v["DrainStrategy"] = if node.drain {
            json!({"Deadline": 3_600_000_000_000_u64, "IgnoreSystemJobs": false})
        } else {
            Value::Null
        };
    }
    if full || resources {
        v["NodeResources"] = node_resources(node.capacity);
        v["ReservedResources"] = node_resources(node.reserved);
    }
    v
}

fn node_resources(r: Res) -> Value {
    json!({
        "Cpu": {"CpuShares": r.cpu},
        "Memory": {"MemoryMB": r.memory},
        "Disk": {"DiskMB": r.disk},
    })
}

/// One allocation: full (`/v1/node/<id>/allocations`) or a list stub
/// (`/v1/allocations`, resources only with `?resources=true`).
#[must_use]
pub fn alloc(sim: &Sim, a: &SimAlloc, full: bool, resources: bool) -> Value {
    let node = &sim.nodes[a.node];
    let mut v = json!({
        "ID": a.id,
        "Name": a.name,
        "Namespace": a.namespace,
        "NodeID": node.id,
        "NodeName": node.name,
        "JobID": a.job,
        "JobType": a.kind.as_str(),
        "TaskGroup": a.group,
        "DesiredStatus": if a.desired_run { "run" } else { "stop" },
        "ClientStatus": a.client.as_str(),
        "CreateIndex": a.create_index,
        "ModifyIndex": a.modify_index,
    });
    if full || resources {
        v["AllocatedResources"] = json!({
            "Tasks": {a.group: {
                "Cpu": {"CpuShares": a.res.cpu, "ReservedCores": null},
                "Memory": {"MemoryMB": a.res.memory, "MemoryMaxMB": 0},
            }},
            "TaskLifecycles": {a.group: null},
            "Shared": {"DiskMB": a.res.disk},
        });
    }
    if full {
        // 2.0 still fills the legacy alloc-level total.
        v["Resources"] = json!({
            "CPU": a.res.cpu, "MemoryMB": a.res.memory, "DiskMB": a.res.disk, "IOPS": 0,
        });
    }
    v
}

/// One `GET /v1/jobs` stub with its job summary.
#[must_use]
pub fn job(sim: &Sim, job: &SimJob) -> Value {
    let live = |status| {
        sim.allocs_of(&job.id)
            .filter(|a| a.is_live() && a.client.as_str() == status)
            .count()
    };
    let datacenters: &[&str] = match job.kind {
        JobKind::Batch => &["dc1", "dc2"],
        _ => &["*"],
    };
    json!({
        "ID": job.id,
        "Name": job.id,
        "Namespace": job.namespace,
        "Type": job.kind.as_str(),
        "Datacenters": datacenters,
        "NodePool": job.pool,
        "Priority": 50,
        "Stop": false,
        "Status": sim.job_status(job),
        "JobSummary": {
            "JobID": job.id,
            "Namespace": job.namespace,
            "Summary": {job.group: {
                "Queued": job.queued,
                "Starting": live("pending"),
                "Running": live("running"),
                "Complete": job.complete,
                "Failed": job.failed,
                "Lost": job.lost,
                "Unknown": 0,
            }},
        },
        "CreateIndex": job.create_index,
        "ModifyIndex": job.modify_index,
        "JobModifyIndex": job.create_index,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::demo::sim::CLIENT_NODE;
    use crate::nomad::model::{AgentSelf, Alloc, JobStub, Node};

    /// What the simulator renders decodes with the daemon's own models.
    #[test]
    fn renders_what_the_daemon_reads() {
        let mut sim = Sim::new(5);
        for _ in 0..30 {
            sim.step();
        }
        let agent: AgentSelf = serde_json::from_value(agent_self(&sim)).unwrap();
        assert_eq!(agent.node_id(), Some(sim.nodes[CLIENT_NODE].id.as_str()));
        assert_eq!(
            agent.version().map(|v| v.to_string()).as_deref(),
            Some(NOMAD_VERSION)
        );
        for n in &sim.nodes {
            let full: Node = serde_json::from_value(node(n, true, false)).unwrap();
            assert_eq!(full.draining(), n.drain);
            assert!(full.node_resources.is_some() && full.reserved_resources.is_some());
            let stub: Node = serde_json::from_value(node(n, false, false)).unwrap();
            assert!(stub.node_resources.is_none());
        }
        assert!(!sim.allocs.is_empty());
        for a in &sim.allocs {
            let parsed: Alloc = serde_json::from_value(alloc(&sim, a, true, true)).unwrap();
            assert_eq!(parsed.is_terminal(), !a.is_live());
        }
        for j in &sim.jobs {
            let parsed: JobStub = serde_json::from_value(job(&sim, j)).unwrap();
            assert_eq!(parsed.job_summary.map(|s| s.summary.groups), Some(1));
        }
    }
}
