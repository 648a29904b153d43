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
