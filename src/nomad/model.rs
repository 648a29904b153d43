//! Serde models of the Nomad JSON this daemon reads, tolerant of every layout
//! from 0.5.6 to 2.x (see `docs/nomad-api.md`). Fields a version may omit or send
//! as `null` are `Option`s; unknown fields are ignored. No logic lives here
//! beyond reading what Nomad sent.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::IgnoredAny;
use serde::Deserialize;

/// `GET /v1/agent/self` (top-level keys are lower-case).
#[derive(Debug, Deserialize)]
pub struct AgentSelf {
    #[serde(default)]
    pub config: Option<AgentConfig>,
    #[serde(default)]
    pub stats: Option<AgentStats>,
}

impl AgentSelf {
    /// `stats.client.node_id`: present only when the agent runs a client.
    #[must_use]
    pub fn node_id(&self) -> Option<&str> {
        self.stats
            .as_ref()?
            .client
            .as_ref()?
            .node_id
            .as_deref()
            .filter(|id| !id.is_empty())
    }

    /// The agent's version from `config.Version` (a string before 0.7, an
    /// object from 0.7 on).
    #[must_use]
    pub fn version(&self) -> Option<NomadVersion> {
        match self.config.as_ref()?.version.as_ref()? {
            VersionField::Plain(v) => NomadVersion::parse(v),
            VersionField::Object { version } => NomadVersion::parse(version.as_deref()?),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AgentConfig {
    #[serde(default)]
    pub version: Option<VersionField>,
}

/// `config.Version`: `"0.5.6"` on 0.5–0.6, `{"Version":"1.10.3",…}` from 0.7.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
pub enum VersionField {
    Plain(String),
    Object {
        #[serde(rename = "Version", default)]
        version: Option<String>,
    },
}

#[derive(Debug, Deserialize)]
pub struct AgentStats {
    #[serde(default)]
    pub client: Option<AgentClientStats>,
}

#[derive(Debug, Deserialize)]
pub struct AgentClientStats {
    #[serde(default)]
    pub node_id: Option<String>,
}

/// A Nomad release number, compared numerically (`0.12.0 > 0.9.2`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct NomadVersion {
    pub major: u32,
    pub minor: u32,
    pub patch: u32,
}

impl NomadVersion {
    #[must_use]
    pub const fn new(major: u32, minor: u32, patch: u32) -> Self {
        Self {
            major,
            minor,
            patch,
        }
    }

    /// Parses `1.10.3`, `v0.5.6`, `1.7.0-beta.1` or `1.6.2+ent`; `None` when
    /// the text does not start with `major.minor`.
    #[must_use]
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().trim_start_matches('v');
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
        Some(Self::new(major, minor, patch))
    }
}

impl fmt::Display for NomadVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}.{}", self.major, self.minor, self.patch)
    }
}

/// One element of `GET /v1/namespaces` (`structs.Namespace`, 0.12+ in
/// OSS), trimmed to its name.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Namespace {
    pub name: String,
}

/// `GET /v1/node/<id>` (the full node) or one element of `GET /v1/nodes`
/// (a `NodeListStub`, which has the same field names), trimmed to what the
/// gauges need.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Node {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub datacenter: String,
    #[serde(default)]
    pub node_class: Option<String>,
    /// 1.6+.
    #[serde(default)]
    pub node_pool: Option<String>,
    /// Every version sends it (since 1.1 derived from `DrainStrategy`).
    #[serde(default)]
    pub drain: Option<bool>,
    /// 0.8+: an object while draining, `null` otherwise.
    #[serde(default)]
    pub drain_strategy: Option<IgnoredAny>,
    /// `initializing`, `ready`, `down`, `disconnected` (1.3+).
    #[serde(default)]
    pub status: String,
    /// 0.8+: `eligible` or `ineligible`.
    #[serde(default)]
    pub scheduling_eligibility: Option<String>,
    /// 0.9+ (on list stubs only with `?resources=true`, 1.0+): fingerprinted
    /// capacity.
    #[serde(default)]
    pub node_resources: Option<NodeResources>,
    /// 0.9+: what the agent config reserves for the host.
    #[serde(default)]
    pub reserved_resources: Option<NodeResources>,
    /// Legacy capacity: the only source before 0.9, zeroed 1.7–1.10, gone 1.11.
    #[serde(default)]
    pub resources: Option<LegacyResources>,
    /// Legacy reservation (same life cycle as `Resources`).
    #[serde(default)]
    pub reserved: Option<LegacyResources>,
}

impl Node {
    /// Drain flag: `Drain` where sent, else whether a `DrainStrategy` is set.
    #[must_use]
    pub fn draining(&self) -> bool {
        self.drain.unwrap_or(self.drain_strategy.is_some())
    }
}

/// Legacy `Resources` / `Reserved` block (cpu MHz, memory MB, disk MB, iops).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct LegacyResources {
    #[serde(rename = "CPU", default)]
    pub cpu: i64,
    #[serde(rename = "MemoryMB", default)]
    pub memory_mb: i64,
    #[serde(rename = "DiskMB", default)]
    pub disk_mb: i64,
    #[serde(rename = "IOPS", default)]
    pub iops: i64,
}

/// `Node.NodeResources` and `Node.ReservedResources` (0.9+): cpu, memory
/// and disk blocks (the other keys are not read).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct NodeResources {
    #[serde(default)]
    pub cpu: Option<CpuShares>,
    #[serde(default)]
    pub memory: Option<MemoryMb>,
    #[serde(default)]
    pub disk: Option<DiskMb>,
}

/// `{"CpuShares": MHz, "ReservedCores": [...]}` (node and task level).
#[derive(Debug, Default, Clone, Deserialize)]
pub struct CpuShares {
    #[serde(rename = "CpuShares", default)]
    pub cpu_shares: i64,
    /// Task level, 1.1+: cores reserved exclusively for the task.
    #[serde(rename = "ReservedCores", default)]
    pub reserved_cores: Option<Vec<u32>>,
}

/// `{"MemoryMB": MB}`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct MemoryMb {
    #[serde(rename = "MemoryMB", default)]
    pub memory_mb: i64,
}

/// `{"DiskMB": MB}`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct DiskMb {
    #[serde(rename = "DiskMB", default)]
    pub disk_mb: i64,
}

/// One element of `GET /v1/node/<id>/allocations` (a full allocation; the
/// embedded `Job` is skipped while parsing) or of `GET /v1/allocations` (a
/// stub: no legacy `Resources`; `AllocatedResources` with `?resources=true`).
#[derive(Debug, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Alloc {
    #[serde(rename = "ID", default)]
    pub id: String,
    #[serde(rename = "NodeID", default)]
    pub node_id: String,
    /// `run`, `stop`, `evict`.
    #[serde(default)]
    pub desired_status: String,
    /// `pending`, `running`, `complete`, `failed`, `lost`, `unknown` (1.3+).
    #[serde(default)]
    pub client_status: String,
    /// Legacy total for the alloc (tasks + shared disk); the only source
    /// before 0.9.
    #[serde(default)]
    pub resources: Option<LegacyResources>,
    /// 0.9+: per-task resources, lifecycles (0.11+) and shared disk.
    #[serde(default)]
    pub allocated_resources: Option<AllocatedResources>,
}

impl Alloc {
    /// Terminal as Nomad's scheduler sees it: server-terminal (desired
    /// `stop`/`evict`) or client-terminal (`complete`/`failed`/`lost`).
    #[must_use]
    pub fn is_terminal(&self) -> bool {
        matches!(self.desired_status.as_str(), "stop" | "evict")
            || matches!(self.client_status.as_str(), "complete" | "failed" | "lost")
    }
}

/// `Allocation.AllocatedResources` (0.9+).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatedResources {
    #[serde(default)]
    pub tasks: Option<BTreeMap<String, AllocatedTaskResources>>,
    /// 0.11+: task name → lifecycle, `null` for main tasks.
    #[serde(default)]
    pub task_lifecycles: Option<BTreeMap<String, Option<TaskLifecycle>>>,
    #[serde(default)]
    pub shared: Option<SharedResources>,
}

/// `AllocatedResources.Tasks[name]`.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct AllocatedTaskResources {
    #[serde(default)]
    pub cpu: Option<CpuShares>,
    #[serde(default)]
    pub memory: Option<MemoryMb>,
}

/// `AllocatedResources.TaskLifecycles[name]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct TaskLifecycle {
    /// `prestart`, `poststart`, `poststop`.
    #[serde(default)]
    pub hook: String,
    #[serde(default)]
    pub sidecar: bool,
}

/// `AllocatedResources.Shared`.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct SharedResources {
    #[serde(rename = "DiskMB", default)]
    pub disk_mb: i64,
}

/// One element of `GET /v1/jobs`, trimmed to what the counters need. With
/// 100k jobs per list this is decoded 100k times, so it allocates at most
/// the namespace string.
#[derive(Debug, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobStub {
    /// 0.12+ (`omitempty`).
    #[serde(default)]
    pub namespace: Option<String>,
    #[serde(rename = "Type", default)]
    pub job_type: JobType,
    #[serde(default)]
    pub status: JobStatus,
    /// 0.6+: set when a user stopped the job.
    #[serde(default)]
    pub stop: Option<bool>,
    #[serde(default)]
    pub job_summary: Option<JobSummary>,
}

/// `JobListStub.Type`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobType {
    Service,
    Batch,
    System,
    /// 1.2+.
    Sysbatch,
    /// A type this daemon does not know (or none).
    #[default]
    #[serde(other)]
    Other,
}

impl JobType {
    /// The type as Nomad spells it (`other` for unknown ones).
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobType::Service => "service",
            JobType::Batch => "batch",
            JobType::System => "system",
            JobType::Sysbatch => "sysbatch",
            JobType::Other => "other",
        }
    }
}

/// `JobListStub.Status`: the only three values any Nomad sends.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum JobStatus {
    Pending,
    Running,
    Dead,
    /// Anything else (or none): counted nowhere.
    #[default]
    #[serde(other)]
    Unknown,
}

/// `JobListStub.JobSummary`.
#[derive(Debug, Default, PartialEq, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct JobSummary {
    /// Task group name → counters, tallied while parsing.
    #[serde(default)]
    pub summary: GroupTally,
}

/// The task groups of a job summary, tallied while parsing instead of kept
/// as a map (no allocation per job). Counters are cumulative
/// (`TaskGroupSummary`: `Complete`, `Failed`, `Lost`, `Unknown` 1.3+).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct GroupTally {
    /// Number of task groups.
    pub groups: u32,
    /// Groups with `Complete > 0`.
    pub with_complete: u32,
    /// Groups with `Failed`, `Lost` or `Unknown` above 0.
    pub with_failures: u32,
}

/// Counters of one task group.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(rename_all = "PascalCase")]
struct TaskGroupSummary {
    #[serde(default)]
    complete: u64,
    #[serde(default)]
    failed: u64,
    #[serde(default)]
    lost: u64,
    #[serde(default)]
    unknown: u64,
}

impl<'de> Deserialize<'de> for GroupTally {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Tally;
        impl<'de> serde::de::Visitor<'de> for Tally {
            type Value = GroupTally;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a map of task group summaries or null")
            }
            fn visit_unit<E>(self) -> Result<GroupTally, E> {
                Ok(GroupTally::default())
            }
            fn visit_none<E>(self) -> Result<GroupTally, E> {
                Ok(GroupTally::default())
            }
            fn visit_some<D: serde::Deserializer<'de>>(self, d: D) -> Result<GroupTally, D::Error> {
                d.deserialize_map(self)
            }
            fn visit_map<M: serde::de::MapAccess<'de>>(
                self,
                mut map: M,
            ) -> Result<GroupTally, M::Error> {
                let mut tally = GroupTally::default();
                while map.next_key::<IgnoredAny>()?.is_some() {
                    let g: TaskGroupSummary = map.next_value()?;
                    tally.groups += 1;
                    tally.with_complete += u32::from(g.complete > 0);
                    tally.with_failures += u32::from(g.failed > 0 || g.lost > 0 || g.unknown > 0);
                }
                Ok(tally)
            }
        }
        d.deserialize_option(Tally)
    }
}
