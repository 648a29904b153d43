//! What both roles count: a node's schedulable capacity (fingerprinted
//! capacity − reserved, from whichever layout the node carries) and what an
//! allocation takes from its node, folded over lifecycle tasks the way the
//! scheduler of that Nomad version folds them (`docs/nomad-api.md`).

use std::ops::{Add, Sub};

use crate::nomad::model::{Alloc, AllocatedResources, Node};

pub use crate::nomad::features::LifecycleRules;

/// cpu MHz, memory MB, disk MB, iops.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu: i64,
    pub memory: i64,
    pub disk: i64,
    pub iops: i64,
}

impl Add for Resources {
    type Output = Self;
    fn add(self, o: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_add(o.cpu),
            memory: self.memory.saturating_add(o.memory),
            disk: self.disk.saturating_add(o.disk),
            iops: self.iops.saturating_add(o.iops),
        }
    }
}

impl Sub for Resources {
    type Output = Self;
    fn sub(self, o: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_sub(o.cpu),
            memory: self.memory.saturating_sub(o.memory),
            disk: self.disk.saturating_sub(o.disk),
            iops: self.iops.saturating_sub(o.iops),
        }
    }
}

/// CPU and memory of a set of tasks.
#[derive(Debug, Clone, Copy, Default)]
struct TaskSum {
    cpu: i64,
    memory: i64,
}

impl TaskSum {
    fn plus(self, o: Self) -> Self {
        Self {
            cpu: self.cpu.saturating_add(o.cpu),
            memory: self.memory.saturating_add(o.memory),
        }
    }
    fn max(self, o: Self) -> Self {
        Self {
            cpu: self.cpu.max(o.cpu),
            memory: self.memory.max(o.memory),
        }
    }
}

/// What one allocation takes from its node, as the scheduler counts it.
/// Uses `AllocatedResources` (0.9+) when present, else the legacy
/// `Resources` (which on 0.5–0.8 already includes the shared disk).
#[must_use]
pub fn alloc_usage(alloc: &Alloc, rules: LifecycleRules) -> Resources {
    let iops = alloc.resources.as_ref().map_or(0, |r| r.iops);
    if let Some(allocated) = &alloc.allocated_resources {
        let flat = comparable(allocated, rules);
        return Resources {
            cpu: flat.cpu,
            memory: flat.memory,
            disk: allocated.shared.as_ref().map_or(0, |s| s.disk_mb),
            iops,
        };
    }
    alloc
        .resources
        .as_ref()
        .map_or_else(Resources::default, |r| Resources {
            cpu: r.cpu,
            memory: r.memory_mb,
            disk: r.disk_mb,
            iops: r.iops,
        })
}

fn comparable(allocated: &AllocatedResources, rules: LifecycleRules) -> TaskSum {
    let (mut sidecar, mut ephemeral, mut main, mut poststart, mut poststop) =
        <(TaskSum, TaskSum, TaskSum, TaskSum, TaskSum)>::default();
    let mut pinned_cpu = 0i64;
    for (name, task) in allocated.tasks.iter().flatten() {
        let mut sum = TaskSum {
            cpu: task.cpu.as_ref().map_or(0, |c| c.cpu_shares),
            memory: task.memory.as_ref().map_or(0, |m| m.memory_mb),
        };
        let pinned = task
            .cpu
            .as_ref()
            .and_then(|c| c.reserved_cores.as_ref())
            .is_some_and(|cores| !cores.is_empty());
        if rules == LifecycleRules::V1_9_4 && pinned {
            pinned_cpu = pinned_cpu.saturating_add(sum.cpu);
            sum.cpu = 0;
        }
        let lifecycle = allocated
            .task_lifecycles
            .as_ref()
            .and_then(|l| l.get(name))
            .and_then(Option::as_ref);
        let bucket = match lifecycle {
            None => &mut main,
            Some(l) => match (l.hook.as_str(), l.sidecar) {
                ("prestart", true) => &mut sidecar,
                ("prestart", false) => &mut ephemeral,
                ("poststart", _) => &mut poststart,
                ("poststop", _) => &mut poststop,
                // Nomad ignores hooks it does not know; so do we.
                _ => continue,
            },
        };
        *bucket = bucket.plus(sum);
    }
    match rules {
        LifecycleRules::V0_11 => sidecar.plus(ephemeral.max(main)),
        LifecycleRules::V1_0 => sidecar.plus(ephemeral.max(main).max(poststop)),
        LifecycleRules::V1_9_2 => sidecar.plus(ephemeral.max(main.plus(poststart)).max(poststop)),
        LifecycleRules::V1_9_4 => {
            let flat = sidecar
                .plus(main)
                .plus(poststart)
                .max(sidecar.plus(ephemeral))
                .max(poststop);
            TaskSum {
                cpu: flat.cpu.saturating_add(pinned_cpu),
                memory: flat.memory,
            }
        }
    }
}

/// Why a node's totals cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("node {node_id} reports neither NodeResources nor Resources: its capacity is unknown")]
pub struct UnknownCapacity {
    pub node_id: String,
}

/// Capacity − reserved. `NodeResources`/`ReservedResources` when present
/// (0.9+), else legacy `Resources`/`Reserved`. IOPS comes only from the
/// legacy blocks (0 where Nomad no longer has it).
///
/// # Errors
///
/// `UnknownCapacity` when the node carries no capacity block at all.
pub fn node_total(node: &Node) -> Result<Resources, UnknownCapacity> {
    let (capacity, reserved) = node_capacity(node)?;
    Ok(capacity - reserved)
}

/// The node's fingerprinted capacity and its reserved resources, each as
/// Nomad reports them (see `node_total`).
///
/// # Errors
///
/// `UnknownCapacity` when the node carries no capacity block at all.
pub fn node_capacity(node: &Node) -> Result<(Resources, Resources), UnknownCapacity> {
    let unknown = || UnknownCapacity {
        node_id: node.id.clone(),
    };
    let legacy_reserved = node.reserved.clone().unwrap_or_default();
    if let Some(nr) = &node.node_resources {
        let (Some(cpu), Some(memory), Some(disk)) = (&nr.cpu, &nr.memory, &nr.disk) else {
            return Err(unknown());
        };
        let r = node.reserved_resources.as_ref();
        let capacity = Resources {
            cpu: cpu.cpu_shares,
            memory: memory.memory_mb,
            disk: disk.disk_mb,
            iops: node.resources.as_ref().map_or(0, |l| l.iops),
        };
        let reserved = Resources {
            cpu: r.and_then(|r| r.cpu.as_ref()).map_or(0, |c| c.cpu_shares),
            memory: r.and_then(|r| r.memory.as_ref()).map_or(0, |m| m.memory_mb),
            disk: r.and_then(|r| r.disk.as_ref()).map_or(0, |d| d.disk_mb),
            iops: legacy_reserved.iops,
        };
        return Ok((capacity, reserved));
    }
    let legacy = node.resources.as_ref().ok_or_else(unknown)?;
    let capacity = Resources {
        cpu: legacy.cpu,
        memory: legacy.memory_mb,
        disk: legacy.disk_mb,
        iops: legacy.iops,
    };
    let reserved = Resources {
        cpu: legacy_reserved.cpu,
        memory: legacy_reserved.memory_mb,
        disk: legacy_reserved.disk_mb,
        iops: legacy_reserved.iops,
    };
    Ok((capacity, reserved))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lifecycle_alloc() -> Alloc {
        // main 1000/512, prestart 2000/128, sidecar 100/64, poststart 200/32,
        // poststop 300/1024.
        serde_json::from_str(
            r#"{"ID":"a","DesiredStatus":"run","ClientStatus":"running",
                "AllocatedResources":{"Tasks":{
                  "main":{"Cpu":{"CpuShares":1000},"Memory":{"MemoryMB":512}},
                  "init":{"Cpu":{"CpuShares":2000},"Memory":{"MemoryMB":128}},
                  "side":{"Cpu":{"CpuShares":100},"Memory":{"MemoryMB":64}},
                  "warm":{"Cpu":{"CpuShares":200},"Memory":{"MemoryMB":32}},
                  "stop":{"Cpu":{"CpuShares":300},"Memory":{"MemoryMB":1024}}},
                 "TaskLifecycles":{"main":null,
                  "init":{"Hook":"prestart","Sidecar":false},
                  "side":{"Hook":"prestart","Sidecar":true},
                  "warm":{"Hook":"poststart","Sidecar":false},
                  "stop":{"Hook":"poststop","Sidecar":false}},
                 "Shared":{"DiskMB":700}}}"#,
        )
        .unwrap()
    }

    #[test]
    fn lifecycle_rules_per_nomad_version() {
        let a = lifecycle_alloc();
        let usage = |rules| {
            let r = alloc_usage(&a, rules);
            (r.cpu, r.memory, r.disk)
        };
        // S + max(E, M): poststart and poststop not counted.
        assert_eq!(usage(LifecycleRules::V0_11), (100 + 2000, 64 + 512, 700));
        // S + max(E, M, Pstop).
        assert_eq!(usage(LifecycleRules::V1_0), (100 + 2000, 64 + 1024, 700));
        // S + max(E, M + Pstart, Pstop).
        assert_eq!(usage(LifecycleRules::V1_9_2), (100 + 2000, 64 + 1024, 700));
        // max(S + M + Pstart, S + E, Pstop).
        assert_eq!(usage(LifecycleRules::V1_9_4), (2100, 1024, 700));
    }

    #[test]
    fn terminal_allocations_do_not_count() {
        for (desired, client, terminal) in [
            ("run", "pending", false),
            ("run", "running", false),
            ("run", "unknown", false),
            ("stop", "running", true),
            ("evict", "pending", true),
            ("run", "complete", true),
            ("run", "failed", true),
            ("run", "lost", true),
        ] {
            let a: Alloc = serde_json::from_value(serde_json::json!({
                "DesiredStatus": desired, "ClientStatus": client
            }))
            .unwrap();
            assert_eq!(a.is_terminal(), terminal, "{desired}/{client}");
        }
    }

    #[test]
    fn a_node_without_capacity_is_an_error_not_zeros() {
        let node: Node = serde_json::from_str(r#"{"ID":"n1","Status":"ready"}"#).unwrap();
        assert_eq!(
            node_total(&node),
            Err(UnknownCapacity {
                node_id: "n1".into()
            })
        );
    }
}
