//! `--client` role: the polled node's cpu (MHz), memory (MB), disk (MB) and
//! iops as total (capacity − reserved), used (non-terminal allocations,
//! counted the way Nomad's scheduler counts them) and available (total −
//! used), tagged with drain, status and the node's identity.

use std::ops::Add;

use super::resources::{alloc_usage, node_total, LifecycleRules, Resources, UnknownCapacity};
use super::tags::identity_tags;
use super::{Gauge, Tag, TagValue};
use crate::gauges as names;
use crate::nomad::model::{Alloc, Node};

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
    use crate::nomad::Features;
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
            rules: Features::for_version(agent.version()).lifecycle,
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
}
