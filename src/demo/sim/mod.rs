//! (Just over 450 lines: the cluster's state, its seeded randomness and the
//! queries on it are one job; how a step changes it is in `life.rs`, its
//! JSON in `json.rs`.)
//!
//! The simulated cluster behind `nomad-metrics demo`: six nodes (two
//! datacenters, two classes and node pools), two service jobs, a system job
//! and a stream of batch "builds", advanced one `step` at a time. Each step
//! places what fits, starts pending allocations, finishes builds (about one
//! in five fails), garbage-collects old dead jobs, and on a fixed cycle
//! drains a node and brings it back, or takes a node down (its allocations
//! are lost and rescheduled) and lets it re-register.
//!
//! What it does not simulate: evaluations, deployments, preemption, ports,
//! devices, reserved cores, task lifecycles, namespaces beyond two, ACLs,
//! multiple regions or servers. The scheduler is first-fit by free CPU and
//! never overcommits a node. Randomness is a seeded xorshift, so a seed
//! always replays the same cluster. Nothing here knows HTTP or JSON
//! (`json.rs` renders it).

mod life;

/// The Nomad version the simulator claims to be (response shapes follow it).
pub const NOMAD_VERSION: &str = "2.0.5";
/// A dead batch job is garbage-collected this many steps after it died.
pub const GC_AFTER_STEPS: u64 = 8;
/// Steps in one cycle of node events (drain, undrain, down, back).
pub const EVENT_CYCLE: u64 = 24;
/// The node the simulated agent runs on: what `/v1/agent/self` names.
pub const CLIENT_NODE: usize = 0;

/// A small deterministic generator (xorshift64*), seeded by splitmix64.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut z = seed.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        Self((z ^ (z >> 31)) | 1)
    }

    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform-enough in `0..n` (`n` > 0; 0 gives 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next_u64() % n
        }
    }

    /// True with probability `percent` / 100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

/// CPU (MHz), memory (MB), disk (MB).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Res {
    pub cpu: i64,
    pub memory: i64,
    pub disk: i64,
}

impl Res {
    #[must_use]
    pub const fn new(cpu: i64, memory: i64, disk: i64) -> Self {
        Self { cpu, memory, disk }
    }

    #[must_use]
    pub fn plus(self, o: Res) -> Res {
        Res::new(self.cpu + o.cpu, self.memory + o.memory, self.disk + o.disk)
    }

    #[must_use]
    pub fn minus(self, o: Res) -> Res {
        Res::new(self.cpu - o.cpu, self.memory - o.memory, self.disk - o.disk)
    }

    /// Every dimension of `need` fits in `self`.
    #[must_use]
    pub fn fits(self, need: Res) -> bool {
        need.cpu <= self.cpu && need.memory <= self.memory && need.disk <= self.disk
    }
}

/// Node status as Nomad spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeStatus {
    Initializing,
    Ready,
    Down,
}

impl NodeStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            NodeStatus::Initializing => "initializing",
            NodeStatus::Ready => "ready",
            NodeStatus::Down => "down",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimNode {
    pub id: String,
    pub name: String,
    pub datacenter: &'static str,
    pub class: &'static str,
    pub pool: &'static str,
    pub status: NodeStatus,
    pub drain: bool,
    pub eligible: bool,
    /// Fingerprinted capacity (`NodeResources`).
    pub capacity: Res,
    /// Held back for the host (`ReservedResources`).
    pub reserved: Res,
    pub create_index: u64,
    pub modify_index: u64,
}

impl SimNode {
    /// Where the scheduler may place new work.
    #[must_use]
    pub fn schedulable(&self) -> bool {
        self.status == NodeStatus::Ready && self.eligible && !self.drain
    }
}

/// Job type as Nomad spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    Service,
    Batch,
    System,
}

impl JobKind {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Service => "service",
            JobKind::Batch => "batch",
            JobKind::System => "system",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimJob {
    pub id: String,
    pub namespace: &'static str,
    pub kind: JobKind,
    /// The one task group's name.
    pub group: &'static str,
    /// Node pool the job runs in (`all` for the system job).
    pub pool: &'static str,
    /// What one allocation asks for.
    pub ask: Res,
    /// Allocations wanted but not placed yet (`JobSummary.Queued`).
    pub queued: u32,
    /// Cumulative, as in Nomad's job summary.
    pub complete: u32,
    pub failed: u32,
    pub lost: u32,
    /// Batch: how many steps a build runs.
    pub run_steps: u64,
    /// Batch: whether the build fails.
    pub fails: bool,
    /// The step the job became dead (for garbage collection).
    pub dead_since: Option<u64>,
    pub create_index: u64,
    pub modify_index: u64,
}

/// Allocation client status as Nomad spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientStatus {
    Pending,
    Running,
    Complete,
    Failed,
    Lost,
}

impl ClientStatus {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ClientStatus::Pending => "pending",
            ClientStatus::Running => "running",
            ClientStatus::Complete => "complete",
            ClientStatus::Failed => "failed",
            ClientStatus::Lost => "lost",
        }
    }
}

#[derive(Debug, Clone)]
pub struct SimAlloc {
    pub id: String,
    pub job: String,
    pub namespace: &'static str,
    pub kind: JobKind,
    pub group: &'static str,
    /// `job.group[n]`.
    pub name: String,
    pub node: usize,
    /// `DesiredStatus`: `run` (true) or `stop`.
    pub desired_run: bool,
    pub client: ClientStatus,
    pub res: Res,
    pub started: u64,
    /// The step it became terminal (for garbage collection).
    pub terminal_since: Option<u64>,
    pub create_index: u64,
    pub modify_index: u64,
}

impl SimAlloc {
    /// Non-terminal as Nomad's scheduler counts it (the daemon's rule too).
    #[must_use]
    pub fn is_live(&self) -> bool {
        self.desired_run && matches!(self.client, ClientStatus::Pending | ClientStatus::Running)
    }
}

/// The whole simulated cluster.
#[derive(Debug, Clone)]
pub struct Sim {
    pub nodes: Vec<SimNode>,
    pub jobs: Vec<SimJob>,
    pub allocs: Vec<SimAlloc>,
    /// The Raft index: every change takes the next one.
    pub index: u64,
    /// `X-Nomad-Index` of each list: the index of its last change.
    pub jobs_index: u64,
    pub nodes_index: u64,
    pub allocs_index: u64,
    /// Steps taken.
    pub step: u64,
    rng: Rng,
    builds: u64,
    alloc_seq: u64,
    /// The node taken down or drained in the current event cycle.
    event_node: Option<usize>,
}

/// Which list a change touches.
#[derive(Debug, Clone, Copy)]
enum Table {
    Jobs,
    Nodes,
    Allocs,
}

impl Sim {
    /// A fresh cluster: nodes registered, service and system jobs submitted
    /// (placed by the first `step`).
    #[must_use]
    pub fn new(seed: u64) -> Self {
        let mut sim = Self {
            nodes: Vec::new(),
            jobs: Vec::new(),
            allocs: Vec::new(),
            index: 100,
            jobs_index: 0,
            nodes_index: 0,
            allocs_index: 0,
            step: 0,
            rng: Rng::new(seed),
            builds: 0,
            alloc_seq: 0,
            event_node: None,
        };
        // (datacenter, class, pool, capacity): builders run the CI pool.
        let layout = [
            ("dc1", "builder", "ci", Res::new(16_000, 32_768, 200_000)),
            ("dc1", "builder", "ci", Res::new(16_000, 32_768, 200_000)),
            (
                "dc1",
                "general",
                "default",
                Res::new(8_000, 16_384, 100_000),
            ),
            ("dc2", "builder", "ci", Res::new(16_000, 32_768, 200_000)),
            (
                "dc2",
                "general",
                "default",
                Res::new(8_000, 16_384, 100_000),
            ),
            (
                "dc2",
                "general",
                "default",
                Res::new(8_000, 16_384, 100_000),
            ),
        ];
        for (i, (dc, class, pool, capacity)) in layout.into_iter().enumerate() {
            let index = sim.bump(Table::Nodes);
            sim.nodes.push(SimNode {
                id: uuid(&mut sim.rng),
                name: format!("{dc}-{class}-{}", i + 1),
                datacenter: dc,
                class,
                pool,
                status: NodeStatus::Ready,
                drain: false,
                eligible: true,
                capacity,
                reserved: Res::new(500, 1_024, 5_000),
                create_index: index,
                modify_index: index,
            });
        }
        for (id, kind, pool, ask, count) in [
            (
                "web",
                JobKind::Service,
                "default",
                Res::new(1_000, 2_048, 1_000),
                3,
            ),
            (
                "api",
                JobKind::Service,
                "default",
                Res::new(1_500, 1_024, 500),
                2,
            ),
            (
                "log-shipper",
                JobKind::System,
                "all",
                Res::new(200, 256, 300),
                0,
            ),
        ] {
            sim.submit(id, "default", kind, pool, ask, count, 0, false);
        }
        sim
    }

    /// The node `/v1/agent/self` names.
    #[must_use]
    pub fn client_node(&self) -> &SimNode {
        &self.nodes[CLIENT_NODE]
    }

    /// Resources of the live allocations on `node`.
    #[must_use]
    pub fn used(&self, node: usize) -> Res {
        self.allocs
            .iter()
            .filter(|a| a.node == node && a.is_live())
            .fold(Res::default(), |sum, a| sum.plus(a.res))
    }

    /// Allocations of job `id`.
    pub fn allocs_of<'a>(&'a self, id: &'a str) -> impl Iterator<Item = &'a SimAlloc> + 'a {
        self.allocs.iter().filter(move |a| a.job == id)
    }

    /// Nomad's job status, derived from the job's allocations: `running`
    /// while one runs, `pending` while one waits (queued or starting),
    /// else `dead`.
    #[must_use]
    pub fn job_status(&self, job: &SimJob) -> &'static str {
        let mut pending = job.queued > 0;
        for a in self.allocs_of(&job.id).filter(|a| a.is_live()) {
            if a.client == ClientStatus::Running {
                return "running";
            }
            pending = true;
        }
        if pending {
            "pending"
        } else {
            "dead"
        }
    }

    fn bump(&mut self, table: Table) -> u64 {
        self.index += 1;
        match table {
            Table::Jobs => self.jobs_index = self.index,
            Table::Nodes => self.nodes_index = self.index,
            Table::Allocs => self.allocs_index = self.index,
        }
        self.index
    }

    /// A job's summary changed (an allocation moved).
    fn touch_job(&mut self, id: &str) {
        let index = self.bump(Table::Jobs);
        if let Some(job) = self.jobs.iter_mut().find(|j| j.id == id) {
            job.modify_index = index;
        }
    }

    fn touch_node(&mut self, node: usize) {
        let index = self.bump(Table::Nodes);
        self.nodes[node].modify_index = index;
    }

    #[allow(clippy::too_many_arguments)]
    fn submit(
        &mut self,
        id: &str,
        namespace: &'static str,
        kind: JobKind,
        pool: &'static str,
        ask: Res,
        count: u32,
        run_steps: u64,
        fails: bool,
    ) {
        let index = self.bump(Table::Jobs);
        self.jobs.push(SimJob {
            id: id.to_owned(),
            namespace,
            kind,
            group: match kind {
                JobKind::Batch => "build",
                _ => "app",
            },
            pool,
            ask,
            queued: count,
            complete: 0,
            failed: 0,
            lost: 0,
            run_steps,
            fails,
            dead_since: None,
            create_index: index,
            modify_index: index,
        });
    }
}

/// A random UUID-shaped ID (version-4 layout).
fn uuid(rng: &mut Rng) -> String {
    let (a, b) = (rng.next_u64(), rng.next_u64());
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        a >> 32,
        (a >> 16) & 0xffff,
        a & 0xfff,
        b >> 52,
        b & 0xffff_ffff_ffff
    )
}
