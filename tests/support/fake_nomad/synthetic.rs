//! Synthetic clusters of any size in Nomad 1.10 shapes, deterministic, for
//! the scale tests and the benchmarks (`examples/`).

use super::{Item, List};

/// Sizes of a synthetic cluster (Nomad 1.10 shapes).
#[derive(Debug, Clone, Copy)]
pub struct Synthetic {
    pub jobs: usize,
    pub nodes: usize,
    pub allocs: usize,
}

/// Synthetic list items shaped like Nomad 1.10's, deterministic. Jobs
/// cycle through statuses and types over 4 namespaces; nodes over 2
/// datacenters × 3 classes; allocations spread over the nodes.
pub fn synthetic(list: List, n: usize, nodes: usize) -> Vec<Item> {
    let mut items: Vec<Item> = (0..n)
        .map(|i| match list {
            List::Jobs => {
                let ns = ["default", "ci", "batch", "ops"][i % 4];
                let id = format!("build-{i:07}");
                let (status, summary) = match i % 10 {
                    0 => ("pending", (0, 0, 0)),
                    1 | 2 => ("running", (0, 0, 0)),
                    3..=6 => ("dead", (1, 0, 0)),
                    7 => ("dead", (1, 1, 0)),
                    8 => ("dead", (0, 0, 1)),
                    _ => ("dead", (0, 1, 0)),
                };
                let jtype = ["batch", "batch", "service", "sysbatch"][i % 4];
                let json = format!(
                    concat!(
                        r#"{{"ID":"{id}","ParentID":"","Name":"{id}","Namespace":"{ns}","Datacenters":["dc1"],"NodePool":"default","Multiregion":null,"#,
                        r#""Type":"{jtype}","Priority":50,"Periodic":false,"ParameterizedJob":false,"Stop":false,"Status":"{status}","StatusDescription":"","#,
                        r#""JobSummary":{{"JobID":"{id}","Namespace":"{ns}","Summary":{{"build":{{"Queued":0,"Complete":{c},"Failed":{f},"Running":{r},"Starting":0,"Lost":{l},"Unknown":0}}}},"#,
                        r#""Children":{{"Pending":0,"Running":0,"Dead":0}},"CreateIndex":{ci},"ModifyIndex":{mi}}},"CreateIndex":{ci},"ModifyIndex":{mi},"JobModifyIndex":{ci},"SubmitTime":1772439000000000000}}"#
                    ),
                    id = id, ns = ns, jtype = jtype, status = status,
                    c = summary.0, f = summary.1, l = summary.2, r = u8::from(status == "running"),
                    ci = 1000 + i, mi = 1005 + i,
                );
                Item { namespace: Some(ns.to_owned()), token: format!("{ns}.{id}"), json: json.into_bytes(), json_lean: None }
            }
            List::Nodes => {
                let id = node_uuid(i);
                let dc = ["dc1", "dc2"][i % 2];
                let class = ["builder", "general", "gpu"][i % 3];
                let status = if i % 50 == 0 { "down" } else { "ready" };
                let head = format!(
                    r#"{{"Address":"10.1.{}.{}","ID":"{id}","Datacenter":"{dc}","Name":"node-{i}","NodePool":"default","NodeClass":"{class}","Version":"1.10.3","Drain":false,"SchedulingEligibility":"eligible","Status":"{status}","StatusDescription":"","Drivers":{{"docker":{{"Detected":true,"Healthy":true}}}},"HostVolumes":null,"#,
                    i / 250, i % 250,
                );
                let res = r#""NodeResources":{"Cpu":{"CpuShares":32000},"Memory":{"MemoryMB":64000},"Disk":{"DiskMB":400000},"Networks":null},"ReservedResources":{"Cpu":{"CpuShares":1000},"Memory":{"MemoryMB":1024},"Disk":{"DiskMB":10000},"Networks":{"ReservedHostPorts":"22"}},"#;
                let tail = r#""LastDrain":null,"CreateIndex":40,"ModifyIndex":52277}"#;
                Item {
                    namespace: None,
                    token: id,
                    json: format!("{head}{res}{tail}").into_bytes(),
                    json_lean: Some(format!("{head}{tail}").into_bytes()),
                }
            }
            List::Allocations => {
                let id = format!("a{:07}-0000-4000-8000-{:012}", i % 10_000_000, i);
                let node = node_uuid(i % nodes.max(1));
                let client = ["running", "running", "pending", "complete", "failed"][i % 5];
                let head = format!(
                    r#"{{"ID":"{id}","EvalID":"e0000000-0000-4000-8000-000000000000","Name":"build.build[0]","Namespace":"ci","NodeID":"{node}","NodeName":"node","JobID":"build-{i}","JobType":"batch","JobVersion":0,"TaskGroup":"build","#
                );
                let res = r#""AllocatedResources":{"Tasks":{"build":{"Cpu":{"CpuShares":500,"ReservedCores":null},"Memory":{"MemoryMB":1024,"MemoryMaxMB":0},"Networks":null,"Devices":null},"init":{"Cpu":{"CpuShares":100,"ReservedCores":null},"Memory":{"MemoryMB":64,"MemoryMaxMB":0},"Networks":null,"Devices":null}},"TaskLifecycles":{"build":null,"init":{"Hook":"prestart","Sidecar":false}},"Shared":{"Networks":null,"DiskMB":300,"Ports":null}},"#;
                let tail = format!(
                    r#""DesiredStatus":"run","DesiredDescription":"","ClientStatus":"{client}","ClientDescription":"","DesiredTransition":{{"Migrate":null,"Reschedule":null,"ForceReschedule":null,"NoShutdownDelay":null}},"TaskStates":null,"DeploymentStatus":null,"FollowupEvalID":"","NextAllocation":"","RescheduleTracker":null,"PreemptedAllocations":null,"PreemptedByAllocation":"","CreateIndex":{ci},"ModifyIndex":{ci},"CreateTime":1772440000000000000,"ModifyTime":1772445700000000000}}"#,
                    ci = 2000 + i
                );
                Item {
                    namespace: Some("ci".to_owned()),
                    token: id,
                    json: format!("{head}{res}{tail}").into_bytes(),
                    json_lean: Some(format!("{head}{tail}").into_bytes()),
                }
            }
        })
        .collect();
    items.sort_by(|a, b| (&a.namespace, &a.token).cmp(&(&b.namespace, &b.token)));
    items
}

fn node_uuid(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}
