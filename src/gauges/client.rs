//! `--client` role: the polled node's cpu (MHz), memory (MB), disk (MB) and
//! iops as total (capacity − reserved), used (non-terminal allocations,
//! counted the way Nomad's scheduler counts them) and available (total −
//! used), tagged with drain, status and the node's identity.

use std::ops::{Add, Sub};

use super::{Gauge, Tag, TagValue};
use crate::gauges as names;
use crate::nomad::model::{Alloc, AllocatedResources, Node};
use crate::nomad::NomadVersion;

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

/// How a Nomad version folds an allocation's lifecycle tasks into one figure
/// (`AllocatedResources.Comparable()` in `nomad/structs/structs.go`). S =
/// prestart sidecars, E = prestart ephemeral, M = main, Pstart/Pstop =
/// poststart/poststop tasks; `max` is per field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LifecycleRules {
    /// 0.9–0.12: S + max(E, M); poststart and poststop are not counted.
    V0_11,
    /// 1.0.0–1.9.1: S + max(E, M, Pstop).
    V1_0,
    /// 1.9.2–1.9.3 (GH-24297): S + max(E, M + Pstart, Pstop).
    V1_9_2,
    /// 1.9.4+ (GH-24304): CPU of tasks with reserved cores is always added;
    /// the rest is max(S + M + Pstart, S + E, Pstop).
    V1_9_4,
}

impl LifecycleRules {
    /// The rules of `version`; the newest when the version is unknown.
    #[must_use]
    pub fn for_version(version: Option<NomadVersion>) -> Self {
        match version {
            Some(v) if v < NomadVersion::new(1, 0, 0) => Self::V0_11,
            Some(v) if v < NomadVersion::new(1, 9, 2) => Self::V1_0,
            Some(v) if v < NomadVersion::new(1, 9, 4) => Self::V1_9_2,
            _ => Self::V1_9_4,
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

/// `node_id`, `node_name`, `datacenter`, `node_class` and `node_pool` tags;
/// empty values (a node without a class) are left out, not invented.
#[must_use]
pub fn identity_tags(node: &Node) -> Vec<Tag> {
    [
        ("node_id", Some(node.id.as_str())),
        ("node_name", Some(node.name.as_str())),
        ("datacenter", Some(node.datacenter.as_str())),
        ("node_class", node.node_class.as_deref()),
        ("node_pool", node.node_pool.as_deref()),
    ]
    .into_iter()
    .filter_map(|(key, raw)| Some(Tag::new(key, TagValue::new(raw?)?)))
    .collect()
}

/// Options of the client mapping.
#[derive(Debug, Clone, Copy)]
pub struct ClientOptions {
    /// Add `identity_tags` to every resource gauge.
    pub identity_tags: bool,
    pub rules: LifecycleRules,
}

/// The twelve resource gauges of one node.
///
/// # Errors
///
/// `UnknownCapacity` (see `node_total`).
pub fn node_resources(
    node: &Node,
    allocs: &[Alloc],
    opts: ClientOptions,
) -> Result<Vec<Gauge>, UnknownCapacity> {
    let total = node_total(node)?;
    let used = allocs
        .iter()
        .filter(|a| !a.is_terminal())
        .map(|a| alloc_usage(a, opts.rules))
        .fold(Resources::default(), Add::add);
    let available = total - used;

    let mut tags = vec![Tag::new("drain", TagValue::bool(node.draining()))];
    if let Some(status) = TagValue::new(&node.status) {
        tags.push(Tag::new("status", status));
    }
    if opts.identity_tags {
        tags.extend(identity_tags(node));
    }
    let rows = [
        (names::CLIENT_TOTAL_CPU, total.cpu),
        (names::CLIENT_TOTAL_MEMORY, total.memory),
        (names::CLIENT_TOTAL_DISK, total.disk),
        (names::CLIENT_TOTAL_IOPS, total.iops),
        (names::CLIENT_USED_CPU, used.cpu),
        (names::CLIENT_USED_MEMORY, used.memory),
        (names::CLIENT_USED_DISK, used.disk),
        (names::CLIENT_USED_IOPS, used.iops),
        (names::CLIENT_AVAILABLE_CPU, available.cpu),
        (names::CLIENT_AVAILABLE_MEMORY, available.memory),
        (names::CLIENT_AVAILABLE_DISK, available.disk),
        (names::CLIENT_AVAILABLE_IOPS, available.iops),
    ];
    Ok(rows
        .into_iter()
        .map(|(name, value)| Gauge::count(name, value, tags.clone()))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::nomad::model::AgentSelf;
    use serde_json::Value;

    struct Fixture {
        agent: &'static str,
        node: &'static str,
        allocs: &'static str,
        expected: &'static str,
    }

    macro_rules! fixture {
        ($v:literal) => {
            Fixture {
                agent: include_str!(concat!(
                    "../../tests/fixtures/nomad-",
                    $v,
                    "/agent-self.json"
                )),
                node: include_str!(concat!("../../tests/fixtures/nomad-", $v, "/node.json")),
                allocs: include_str!(concat!(
                    "../../tests/fixtures/nomad-",
                    $v,
                    "/node-allocations.json"
                )),
                expected: include_str!(concat!(
                    "../../tests/fixtures/nomad-",
                    $v,
                    "/expected.json"
                )),
            }
        };
    }

    fn check(f: &Fixture) {
        let agent: AgentSelf = serde_json::from_str(f.agent).unwrap();
        let node: Node = serde_json::from_str(f.node).unwrap();
        let allocs: Vec<Alloc> = serde_json::from_str(f.allocs).unwrap();
        let expected: Value = serde_json::from_str(f.expected).unwrap();
        assert_eq!(agent.node_id(), Some(node.id.as_str()));
        let opts = ClientOptions {
            identity_tags: true,
            rules: LifecycleRules::for_version(agent.version()),
        };
        let gauges = node_resources(&node, &allocs, opts).unwrap();
        let values: Vec<i64> = gauges.iter().map(|g| g.value as i64).collect();
        let want: Vec<i64> = ["total", "used", "available"]
            .iter()
            .flat_map(|k| expected["client"][k].as_array().unwrap().clone())
            .map(|v| v.as_i64().unwrap())
            .collect();
        assert_eq!(
            values, want,
            "total, used, available x (cpu, memory, disk, iops)"
        );
        let tags: Vec<String> = gauges[0]
            .tags
            .iter()
            .map(|t| format!("{}:{}", t.key, t.value))
            .collect();
        let want_tags: Vec<String> = expected["client"]["tags"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_str().unwrap().to_owned())
            .collect();
        assert_eq!(tags, want_tags);
        assert!(gauges.iter().all(|g| g.tags == gauges[0].tags));

        let plain = ClientOptions {
            identity_tags: false,
            ..opts
        };
        let original = node_resources(&node, &allocs, plain).unwrap();
        let keys: Vec<&str> = original[0].tags.iter().map(|t| t.key).collect();
        assert_eq!(keys, ["drain", "status"], "the original tool's tag set");
    }

    #[test]
    fn nomad_0_5_6_legacy_layout() {
        check(&fixture!("0.5.6"));
    }

    #[test]
    fn nomad_0_8_7_drain_strategy() {
        check(&fixture!("0.8.7"));
    }

    #[test]
    fn nomad_1_4_0_both_layouts_and_lifecycles() {
        check(&fixture!("1.4.0"));
    }

    #[test]
    fn nomad_1_8_0_legacy_zeroed() {
        check(&fixture!("1.8.0"));
    }

    #[test]
    fn nomad_1_11_0_legacy_absent_reserved_cores() {
        check(&fixture!("1.11.0"));
    }

    #[test]
    fn nomad_2_0_5_draining_without_class() {
        check(&fixture!("2.0.5"));
    }

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
    fn rules_follow_the_version() {
        let v = |s| NomadVersion::parse(s);
        assert_eq!(
            LifecycleRules::for_version(v("0.11.3")),
            LifecycleRules::V0_11
        );
        assert_eq!(
            LifecycleRules::for_version(v("1.0.0")),
            LifecycleRules::V1_0
        );
        assert_eq!(
            LifecycleRules::for_version(v("1.9.1")),
            LifecycleRules::V1_0
        );
        assert_eq!(
            LifecycleRules::for_version(v("1.9.3")),
            LifecycleRules::V1_9_2
        );
        assert_eq!(
            LifecycleRules::for_version(v("1.9.4")),
            LifecycleRules::V1_9_4
        );
        assert_eq!(LifecycleRules::for_version(None), LifecycleRules::V1_9_4);
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

    #[test]
    fn identity_tags_are_sanitised() {
        let node: Node = serde_json::from_str(
            r#"{"ID":"n1","Name":"web 1,a|b","Datacenter":"dc#1","NodeClass":"","Status":"ready"}"#,
        )
        .unwrap();
        let tags: Vec<String> = identity_tags(&node)
            .iter()
            .map(|t| format!("{}:{}", t.key, t.value))
            .collect();
        assert_eq!(
            tags,
            ["node_id:n1", "node_name:web_1_a_b", "datacenter:dc_1"]
        );
    }
}
