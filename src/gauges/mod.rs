//! MAP: pure functions from Nomad models to `Gauge`s. No I/O, no clock, no
//! cadence type. The constants below are the metric catalogue: the names
//! dashboards depend on, each with its unit and source; `CATALOGUE` lists
//! them with a unit and a help text. `README.md`'s metric table is checked
//! against `CATALOGUE` by a test.

pub mod client;
pub mod cluster;
pub mod resources;
pub mod server;
pub mod tags;

pub use tags::{Tag, TagValue};

/// Prefix of every metric name; the constants below are relative to it.
pub const PREFIX: &str = "circle.nomad";

/// 1 if the last `--server` poll failed, else 0.
pub const SERVER_POLL_FAILURE: &str = "server_agent.poll_failure";
/// Jobs with Nomad status `pending`, cluster-wide (all visible namespaces).
pub const SERVER_JOBS_PENDING: &str = "server_agent.jobs.pending";
/// Jobs with Nomad status `running`.
pub const SERVER_JOBS_RUNNING: &str = "server_agent.jobs.running";
/// Dead jobs that finished successfully (derived; see `server::classify`).
pub const SERVER_JOBS_COMPLETE: &str = "server_agent.jobs.complete";
/// All other dead jobs: failed, lost, stopped, never ran.
pub const SERVER_JOBS_DEAD: &str = "server_agent.jobs.dead";

/// Jobs in status `pending` per `type` and `namespace` tag.
pub const SERVER_JOBS_BY_TYPE_PENDING: &str = "server_agent.jobs_by_type.pending";
/// Jobs in status `running` per `type` and `namespace`.
pub const SERVER_JOBS_BY_TYPE_RUNNING: &str = "server_agent.jobs_by_type.running";
/// Successfully finished dead jobs per `type` and `namespace`.
pub const SERVER_JOBS_BY_TYPE_COMPLETE: &str = "server_agent.jobs_by_type.complete";
/// Other dead jobs per `type` and `namespace`.
pub const SERVER_JOBS_BY_TYPE_DEAD: &str = "server_agent.jobs_by_type.dead";

/// Nodes in status `initializing`, per datacenter/class/pool/drain/eligibility.
pub const SERVER_NODES_INITIALIZING: &str = "server_agent.nodes.initializing";
/// Nodes in status `ready`.
pub const SERVER_NODES_READY: &str = "server_agent.nodes.ready";
/// Nodes in status `down` (a dead client cannot report itself: only the
/// servers know).
pub const SERVER_NODES_DOWN: &str = "server_agent.nodes.down";
/// Nodes in status `disconnected` (Nomad 1.3+).
pub const SERVER_NODES_DISCONNECTED: &str = "server_agent.nodes.disconnected";

/// Schedulable CPU per datacenter/class/pool, MHz: Σ (capacity − reserved)
/// over ready, eligible, non-draining nodes.
pub const SERVER_CAPACITY_TOTAL_CPU: &str = "server_agent.capacity.total.cpu";
/// Schedulable memory, MB.
pub const SERVER_CAPACITY_TOTAL_MEMORY: &str = "server_agent.capacity.total.memory";
/// Schedulable disk, MB.
pub const SERVER_CAPACITY_TOTAL_DISK: &str = "server_agent.capacity.total.disk";
/// CPU reserved for the hosts of schedulable nodes, MHz.
pub const SERVER_CAPACITY_RESERVED_CPU: &str = "server_agent.capacity.reserved.cpu";
/// Memory reserved for the hosts, MB.
pub const SERVER_CAPACITY_RESERVED_MEMORY: &str = "server_agent.capacity.reserved.memory";
/// Disk reserved for the hosts, MB.
pub const SERVER_CAPACITY_RESERVED_DISK: &str = "server_agent.capacity.reserved.disk";
/// CPU of non-terminal allocations on schedulable nodes, MHz.
pub const SERVER_CAPACITY_ALLOCATED_CPU: &str = "server_agent.capacity.allocated.cpu";
/// Memory of non-terminal allocations on schedulable nodes, MB.
pub const SERVER_CAPACITY_ALLOCATED_MEMORY: &str = "server_agent.capacity.allocated.memory";
/// Disk of non-terminal allocations on schedulable nodes, MB.
pub const SERVER_CAPACITY_ALLOCATED_DISK: &str = "server_agent.capacity.allocated.disk";
/// total − allocated CPU, MHz.
pub const SERVER_CAPACITY_AVAILABLE_CPU: &str = "server_agent.capacity.available.cpu";
/// total − allocated memory, MB.
pub const SERVER_CAPACITY_AVAILABLE_MEMORY: &str = "server_agent.capacity.available.memory";
/// total − allocated disk, MB.
pub const SERVER_CAPACITY_AVAILABLE_DISK: &str = "server_agent.capacity.available.disk";

/// Wall time of the last `--server` poll, ms (with blocking queries most
/// polls answer from the cache; the first one includes the full reads).
pub const SERVER_POLL_DURATION_MS: &str = "server_agent.poll_duration_ms";
/// Seconds since the last successful `--server` poll (0 right after one).
pub const SERVER_LAST_SUCCESS_AGE_S: &str = "server_agent.last_success_age_s";

/// 1 if the last `--client` poll failed, else 0.
pub const CLIENT_POLL_FAILURE: &str = "client_agent.poll_failure";
/// Wall time of the last `--client` poll, ms.
pub const CLIENT_POLL_DURATION_MS: &str = "client_agent.poll_duration_ms";
/// Seconds since the last successful `--client` poll.
pub const CLIENT_LAST_SUCCESS_AGE_S: &str = "client_agent.last_success_age_s";
/// CPU the scheduler may allocate on this node, MHz: capacity − reserved.
pub const CLIENT_TOTAL_CPU: &str = "client_agent.resources.total.cpu";
/// Memory the scheduler may allocate, MB: capacity − reserved.
pub const CLIENT_TOTAL_MEMORY: &str = "client_agent.resources.total.memory";
/// Disk the scheduler may allocate, MB: capacity − reserved.
pub const CLIENT_TOTAL_DISK: &str = "client_agent.resources.total.disk";
/// IOPS capacity − reserved (0 on Nomad ≥ 0.9, which dropped IOPS).
pub const CLIENT_TOTAL_IOPS: &str = "client_agent.resources.total.iops";
/// CPU allocated to non-terminal allocations, MHz.
pub const CLIENT_USED_CPU: &str = "client_agent.resources.used.cpu";
/// Memory allocated to non-terminal allocations, MB.
pub const CLIENT_USED_MEMORY: &str = "client_agent.resources.used.memory";
/// Disk allocated to non-terminal allocations, MB.
pub const CLIENT_USED_DISK: &str = "client_agent.resources.used.disk";
/// IOPS allocated to non-terminal allocations.
pub const CLIENT_USED_IOPS: &str = "client_agent.resources.used.iops";
/// CPU still allocatable, MHz: total − used.
pub const CLIENT_AVAILABLE_CPU: &str = "client_agent.resources.available.cpu";
/// Memory still allocatable, MB: total − used.
pub const CLIENT_AVAILABLE_MEMORY: &str = "client_agent.resources.available.memory";
/// Disk still allocatable, MB: total − used.
pub const CLIENT_AVAILABLE_DISK: &str = "client_agent.resources.available.disk";
/// IOPS still allocatable: total − used.
pub const CLIENT_AVAILABLE_IOPS: &str = "client_agent.resources.available.iops";

/// One metric the daemon sends: its name, unit and a one-line help text.
/// The README's metric table and the Prometheus `# HELP` lines come from here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// Name relative to `PREFIX` (one of the constants above).
    pub name: &'static str,
    /// Unit as the README's metric table writes it: `0/1`, `jobs`, `nodes`,
    /// `MHz`, `MB`, `IOPS`, `ms`, `s`.
    pub unit: &'static str,
    /// One plain-ASCII sentence for operators, without the unit.
    pub help: &'static str,
}

/// Every metric the daemon sends.
pub const CATALOGUE: &[Metric] = &[
    Metric {
        name: SERVER_POLL_FAILURE,
        unit: "0/1",
        help: "1 if the last --server poll failed, else 0.",
    },
    Metric {
        name: SERVER_JOBS_PENDING,
        unit: "jobs",
        help: "Jobs in status pending, cluster-wide (all visible namespaces).",
    },
    Metric {
        name: SERVER_JOBS_RUNNING,
        unit: "jobs",
        help: "Jobs in status running, cluster-wide.",
    },
    Metric {
        name: SERVER_JOBS_COMPLETE,
        unit: "jobs",
        help: "Dead jobs that finished successfully (not stopped, every task group complete).",
    },
    Metric {
        name: SERVER_JOBS_DEAD,
        unit: "jobs",
        help: "All other dead jobs: failed, lost, stopped, never ran.",
    },
    Metric {
        name: SERVER_POLL_DURATION_MS,
        unit: "ms",
        help: "Wall time of the last --server poll.",
    },
    Metric {
        name: SERVER_LAST_SUCCESS_AGE_S,
        unit: "s",
        help: "Time since the last successful --server poll.",
    },
    Metric {
        name: SERVER_JOBS_BY_TYPE_PENDING,
        unit: "jobs",
        help: "Pending jobs per job type and namespace.",
    },
    Metric {
        name: SERVER_JOBS_BY_TYPE_RUNNING,
        unit: "jobs",
        help: "Running jobs per job type and namespace.",
    },
    Metric {
        name: SERVER_JOBS_BY_TYPE_COMPLETE,
        unit: "jobs",
        help: "Successfully finished dead jobs per job type and namespace.",
    },
    Metric {
        name: SERVER_JOBS_BY_TYPE_DEAD,
        unit: "jobs",
        help: "Other dead jobs per job type and namespace.",
    },
    Metric {
        name: SERVER_NODES_INITIALIZING,
        unit: "nodes",
        help: "Nodes in status initializing.",
    },
    Metric {
        name: SERVER_NODES_READY,
        unit: "nodes",
        help: "Nodes in status ready.",
    },
    Metric {
        name: SERVER_NODES_DOWN,
        unit: "nodes",
        help: "Nodes in status down.",
    },
    Metric {
        name: SERVER_NODES_DISCONNECTED,
        unit: "nodes",
        help: "Nodes in status disconnected (Nomad 1.3+).",
    },
    Metric {
        name: SERVER_CAPACITY_TOTAL_CPU,
        unit: "MHz",
        help: "Schedulable CPU: sum of capacity minus reserved over ready, eligible, non-draining nodes.",
    },
    Metric {
        name: SERVER_CAPACITY_TOTAL_MEMORY,
        unit: "MB",
        help: "Schedulable memory: sum of capacity minus reserved over schedulable nodes.",
    },
    Metric {
        name: SERVER_CAPACITY_TOTAL_DISK,
        unit: "MB",
        help: "Schedulable disk: sum of capacity minus reserved over schedulable nodes.",
    },
    Metric {
        name: SERVER_CAPACITY_RESERVED_CPU,
        unit: "MHz",
        help: "CPU reserved for the hosts of schedulable nodes.",
    },
    Metric {
        name: SERVER_CAPACITY_RESERVED_MEMORY,
        unit: "MB",
        help: "Memory reserved for the hosts of schedulable nodes.",
    },
    Metric {
        name: SERVER_CAPACITY_RESERVED_DISK,
        unit: "MB",
        help: "Disk reserved for the hosts of schedulable nodes.",
    },
    Metric {
        name: SERVER_CAPACITY_ALLOCATED_CPU,
        unit: "MHz",
        help: "CPU of non-terminal allocations on schedulable nodes.",
    },
    Metric {
        name: SERVER_CAPACITY_ALLOCATED_MEMORY,
        unit: "MB",
        help: "Memory of non-terminal allocations on schedulable nodes.",
    },
    Metric {
        name: SERVER_CAPACITY_ALLOCATED_DISK,
        unit: "MB",
        help: "Disk of non-terminal allocations on schedulable nodes.",
    },
    Metric {
        name: SERVER_CAPACITY_AVAILABLE_CPU,
        unit: "MHz",
        help: "Schedulable CPU not yet allocated: total minus allocated.",
    },
    Metric {
        name: SERVER_CAPACITY_AVAILABLE_MEMORY,
        unit: "MB",
        help: "Schedulable memory not yet allocated: total minus allocated.",
    },
    Metric {
        name: SERVER_CAPACITY_AVAILABLE_DISK,
        unit: "MB",
        help: "Schedulable disk not yet allocated: total minus allocated.",
    },
    Metric {
        name: CLIENT_POLL_FAILURE,
        unit: "0/1",
        help: "1 if the last --client poll failed, else 0.",
    },
    Metric {
        name: CLIENT_POLL_DURATION_MS,
        unit: "ms",
        help: "Wall time of the last --client poll.",
    },
    Metric {
        name: CLIENT_LAST_SUCCESS_AGE_S,
        unit: "s",
        help: "Time since the last successful --client poll.",
    },
    Metric {
        name: CLIENT_TOTAL_CPU,
        unit: "MHz",
        help: "CPU the scheduler may allocate on this node: capacity minus reserved.",
    },
    Metric {
        name: CLIENT_TOTAL_MEMORY,
        unit: "MB",
        help: "Memory the scheduler may allocate on this node: capacity minus reserved.",
    },
    Metric {
        name: CLIENT_TOTAL_DISK,
        unit: "MB",
        help: "Disk the scheduler may allocate on this node: capacity minus reserved.",
    },
    Metric {
        name: CLIENT_TOTAL_IOPS,
        unit: "IOPS",
        help: "IOPS capacity minus reserved (0 on Nomad 0.9+, which dropped IOPS).",
    },
    Metric {
        name: CLIENT_USED_CPU,
        unit: "MHz",
        help: "CPU of this node's non-terminal allocations.",
    },
    Metric {
        name: CLIENT_USED_MEMORY,
        unit: "MB",
        help: "Memory of this node's non-terminal allocations.",
    },
    Metric {
        name: CLIENT_USED_DISK,
        unit: "MB",
        help: "Disk of this node's non-terminal allocations.",
    },
    Metric {
        name: CLIENT_USED_IOPS,
        unit: "IOPS",
        help: "IOPS of this node's non-terminal allocations.",
    },
    Metric {
        name: CLIENT_AVAILABLE_CPU,
        unit: "MHz",
        help: "CPU still allocatable on this node: total minus used.",
    },
    Metric {
        name: CLIENT_AVAILABLE_MEMORY,
        unit: "MB",
        help: "Memory still allocatable on this node: total minus used.",
    },
    Metric {
        name: CLIENT_AVAILABLE_DISK,
        unit: "MB",
        help: "Disk still allocatable on this node: total minus used.",
    },
    Metric {
        name: CLIENT_AVAILABLE_IOPS,
        unit: "IOPS",
        help: "IOPS still allocatable on this node: total minus used.",
    },
];

/// The catalogue entry of `name` (relative to `PREFIX`).
#[must_use]
pub fn metric(name: &str) -> Option<&'static Metric> {
    CATALOGUE.iter().find(|m| m.name == name)
}

/// One DogStatsD gauge: a catalogue name, a finite value, and its tags.
#[derive(Debug, Clone, PartialEq)]
pub struct Gauge {
    /// Name relative to `PREFIX` (one of the constants above).
    pub name: &'static str,
    /// The value; always finite.
    pub value: f64,
    pub tags: Vec<Tag>,
}

impl Gauge {
    /// `None` for a non-finite value (NaN or ±∞ are never sent).
    #[must_use]
    pub fn new(name: &'static str, value: f64, tags: Vec<Tag>) -> Option<Self> {
        value.is_finite().then_some(Self { name, value, tags })
    }

    /// A gauge from an integer count or amount (MHz, MB, jobs). Integers up to
    /// 2^53 are exact in f64, far beyond any Nomad resource figure.
    #[must_use]
    pub fn count(name: &'static str, value: i64, tags: Vec<Tag>) -> Self {
        #[allow(clippy::cast_precision_loss)]
        Self {
            name,
            value: value as f64,
            tags,
        }
    }

    /// The poll-failure gauge: 1 when failed.
    #[must_use]
    pub fn poll_failure(name: &'static str, failed: bool, tags: Vec<Tag>) -> Self {
        Self::count(name, i64::from(failed), tags)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_refused() {
        assert!(Gauge::new(CLIENT_USED_CPU, f64::NAN, vec![]).is_none());
        assert!(Gauge::new(CLIENT_USED_CPU, f64::INFINITY, vec![]).is_none());
        assert_eq!(
            Gauge::new(CLIENT_USED_CPU, 2.5, vec![]).map(|g| g.value),
            Some(2.5)
        );
    }

    #[test]
    fn catalogue_names_are_unique_and_prefixed_by_role() {
        let mut names: Vec<_> = CATALOGUE.iter().map(|m| m.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), CATALOGUE.len());
        assert!(names
            .iter()
            .all(|n| n.starts_with("client_agent.") || n.starts_with("server_agent.")));
    }

    #[test]
    fn every_metric_has_a_plain_help_sentence() {
        for m in CATALOGUE {
            assert!(
                m.help.is_ascii() && m.help.ends_with('.') && !m.help.contains('\n'),
                "{}: {:?}",
                m.name,
                m.help
            );
            assert_eq!(metric(m.name), Some(m));
        }
        assert_eq!(metric("client_agent.nope"), None);
    }
}
