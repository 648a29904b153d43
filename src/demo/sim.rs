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

    /// One step of cluster life. Returns whether anything changed.
    pub fn step(&mut self) -> bool {
        let before = self.index;
        self.step += 1;
        self.node_events();
        self.progress_allocs();
        self.submit_builds();
        self.schedule();
        self.mark_dead_jobs();
        self.collect_garbage();
        self.index != before
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

    /// Drain a node, end the drain, take a node down, bring it back: one
    /// event per phase of `EVENT_CYCLE`. The agent's own node may be
    /// drained but never goes down (its agent is the one answering).
    fn node_events(&mut self) {
        match self.step % EVENT_CYCLE {
            4 => {
                // Every other cycle drains the agent's own node, so the
                // client mode shows `drain:true` too.
                let ready: Vec<usize> = (0..self.nodes.len())
                    .filter(|&n| self.nodes[n].schedulable())
                    .collect();
                let pick = if (self.step / EVENT_CYCLE) % 2 == 1 && ready.contains(&CLIENT_NODE) {
                    Some(CLIENT_NODE)
                } else {
                    ready
                        .get(self.rng.below(ready.len() as u64) as usize)
                        .copied()
                };
                if let Some(n) = pick {
                    self.nodes[n].drain = true;
                    self.nodes[n].eligible = false;
                    self.touch_node(n);
                    self.event_node = Some(n);
                    // Service allocations migrate; builds and the system job
                    // run on (Nomad's default drain of batch work waits for
                    // the deadline, system jobs go last).
                    self.stop_allocs_on(n, |a| a.kind == JobKind::Service, ClientStatus::Complete);
                }
            }
            10 => {
                if let Some(n) = self.event_node.take() {
                    self.nodes[n].drain = false;
                    self.nodes[n].eligible = true;
                    self.touch_node(n);
                }
            }
            14 => {
                let candidates: Vec<usize> = (0..self.nodes.len())
                    .filter(|&n| n != CLIENT_NODE && self.nodes[n].status == NodeStatus::Ready)
                    .collect();
                if let Some(&n) = candidates.get(self.rng.below(candidates.len() as u64) as usize) {
                    self.nodes[n].status = NodeStatus::Down;
                    self.touch_node(n);
                    self.event_node = Some(n);
                    self.stop_allocs_on(n, |_| true, ClientStatus::Lost);
                }
            }
            20 => {
                if let Some(n) = self.event_node {
                    self.nodes[n].status = NodeStatus::Initializing;
                    self.touch_node(n);
                }
            }
            21 => {
                if let Some(n) = self.event_node.take() {
                    self.nodes[n].status = NodeStatus::Ready;
                    self.touch_node(n);
                }
            }
            _ => {}
        }
    }

    /// Stops the live allocations on `node` that `which` selects, with
    /// `status`; what should run elsewhere is queued again (services; lost
    /// builds are rescheduled, as Nomad does by default).
    fn stop_allocs_on(&mut self, node: usize, which: fn(&SimAlloc) -> bool, status: ClientStatus) {
        let step = self.step;
        let hit: Vec<usize> = (0..self.allocs.len())
            .filter(|&i| self.allocs[i].node == node && self.allocs[i].is_live())
            .filter(|&i| which(&self.allocs[i]))
            .collect();
        for i in hit {
            let index = self.bump(Table::Allocs);
            let alloc = &mut self.allocs[i];
            alloc.desired_run = false;
            alloc.client = status;
            alloc.terminal_since = Some(step);
            alloc.modify_index = index;
            let (job, kind) = (alloc.job.clone(), alloc.kind);
            if let Some(j) = self.jobs.iter_mut().find(|j| j.id == job) {
                match (kind, status) {
                    (JobKind::System, _) => {}
                    (_, ClientStatus::Lost) => {
                        j.lost += 1;
                        j.queued += 1;
                    }
                    _ => {
                        j.complete += 1;
                        j.queued += 1;
                    }
                }
            }
            self.touch_job(&job);
        }
    }

    /// Pending allocations start; builds that ran long enough finish.
    fn progress_allocs(&mut self) {
        let step = self.step;
        for i in 0..self.allocs.len() {
            let a = &self.allocs[i];
            if !a.is_live() {
                continue;
            }
            let next = match a.client {
                ClientStatus::Pending => ClientStatus::Running,
                ClientStatus::Running if a.kind == JobKind::Batch => {
                    let Some(job) = self.jobs.iter().find(|j| j.id == a.job) else {
                        continue;
                    };
                    if step < a.started + job.run_steps {
                        continue;
                    }
                    if job.fails {
                        ClientStatus::Failed
                    } else {
                        ClientStatus::Complete
                    }
                }
                _ => continue,
            };
            let index = self.bump(Table::Allocs);
            let a = &mut self.allocs[i];
            a.client = next;
            a.modify_index = index;
            if next == ClientStatus::Running {
                a.started = step;
            } else {
                a.terminal_since = Some(step);
            }
            let job = a.job.clone();
            if let Some(j) = self.jobs.iter_mut().find(|j| j.id == job) {
                match next {
                    ClientStatus::Complete => j.complete += 1,
                    ClientStatus::Failed => j.failed += 1,
                    _ => {}
                }
            }
            self.touch_job(&job);
        }
    }

    /// Zero to two new builds per step, of a few sizes.
    fn submit_builds(&mut self) {
        for _ in 0..self.rng.below(3) {
            self.builds += 1;
            let id = format!("build-{:04}", self.builds);
            let ask = [
                Res::new(2_000, 4_096, 10_000),
                Res::new(4_000, 8_192, 20_000),
                Res::new(1_000, 2_048, 5_000),
            ][self.rng.below(3) as usize];
            let run_steps = 2 + self.rng.below(5);
            let fails = self.rng.chance(20);
            self.submit(&id, "ci", JobKind::Batch, "ci", ask, 1, run_steps, fails);
        }
    }

    /// Places queued allocations where they fit (most free CPU first), and
    /// the system job on every schedulable node that lacks it.
    fn schedule(&mut self) {
        for j in 0..self.jobs.len() {
            let job = &self.jobs[j];
            if job.kind == JobKind::System {
                let targets: Vec<usize> = (0..self.nodes.len())
                    .filter(|&n| self.nodes[n].schedulable())
                    .filter(|&n| {
                        !self
                            .allocs_of(&self.jobs[j].id)
                            .any(|a| a.node == n && a.is_live())
                    })
                    .collect();
                for n in targets {
                    if self.free(n).fits(self.jobs[j].ask) {
                        self.place(j, n);
                    }
                }
                continue;
            }
            while self.jobs[j].queued > 0 {
                let job = &self.jobs[j];
                let best = (0..self.nodes.len())
                    .filter(|&n| self.nodes[n].schedulable() && self.nodes[n].pool == job.pool)
                    .filter(|&n| self.free(n).fits(job.ask))
                    .max_by_key(|&n| (self.free(n).cpu, std::cmp::Reverse(n)));
                let Some(n) = best else { break };
                self.jobs[j].queued -= 1;
                self.place(j, n);
            }
        }
    }

    /// What is left on `node` for new work.
    fn free(&self, node: usize) -> Res {
        let n = &self.nodes[node];
        n.capacity.minus(n.reserved).minus(self.used(node))
    }

    fn place(&mut self, job: usize, node: usize) {
        self.alloc_seq += 1;
        let index = self.bump(Table::Allocs);
        let id = uuid(&mut self.rng);
        let j = &self.jobs[job];
        let slot = self.allocs_of(&j.id).count();
        self.allocs.push(SimAlloc {
            id,
            job: j.id.clone(),
            namespace: j.namespace,
            kind: j.kind,
            group: j.group,
            name: format!("{}.{}[{slot}]", j.id, j.group),
            node,
            desired_run: true,
            client: ClientStatus::Pending,
            res: j.ask,
            started: self.step,
            terminal_since: None,
            create_index: index,
            modify_index: index,
        });
        let id = j.id.clone();
        self.touch_job(&id);
    }

    fn mark_dead_jobs(&mut self) {
        for j in 0..self.jobs.len() {
            let dead = self.job_status(&self.jobs[j]) == "dead";
            let job = &mut self.jobs[j];
            match (dead, job.dead_since) {
                (true, None) => job.dead_since = Some(self.step),
                (false, Some(_)) => job.dead_since = None,
                _ => {}
            }
        }
    }

    /// Dead jobs and terminal allocations older than `GC_AFTER_STEPS` go,
    /// as Nomad's periodic garbage collection removes them.
    fn collect_garbage(&mut self) {
        let cutoff = self.step.saturating_sub(GC_AFTER_STEPS);
        let old = |since: Option<u64>| since.is_some_and(|s| s <= cutoff);
        let gone: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| j.kind == JobKind::Batch && old(j.dead_since))
            .map(|j| j.id.clone())
            .collect();
        if !gone.is_empty() {
            self.jobs.retain(|j| !gone.contains(&j.id));
            self.bump(Table::Jobs);
        }
        let before = self.allocs.len();
        self.allocs
            .retain(|a| !gone.contains(&a.job) && !old(a.terminal_since));
        if self.allocs.len() != before {
            self.bump(Table::Allocs);
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn run(seed: u64, steps: u64, mut check: impl FnMut(&Sim)) -> Sim {
        let mut sim = Sim::new(seed);
        check(&sim);
        for _ in 0..steps {
            sim.step();
            check(&sim);
        }
        sim
    }

    #[test]
    fn allocations_never_exceed_node_capacity() {
        for seed in 0..20 {
            run(seed, 200, |sim| {
                for (n, node) in sim.nodes.iter().enumerate() {
                    let limit = node.capacity.minus(node.reserved);
                    assert!(
                        limit.fits(sim.used(n)),
                        "seed {seed} step {}: {}",
                        sim.step,
                        node.name
                    );
                }
            });
        }
    }

    #[test]
    fn job_status_and_summary_agree_with_allocations() {
        for seed in 0..20 {
            run(seed, 200, |sim| {
                for job in &sim.jobs {
                    let live: Vec<_> = sim.allocs_of(&job.id).filter(|a| a.is_live()).collect();
                    let running = live.iter().any(|a| a.client == ClientStatus::Running);
                    let status = sim.job_status(job);
                    assert_eq!(status == "running", running, "{}", job.id);
                    assert_eq!(
                        status == "dead",
                        live.is_empty() && job.queued == 0,
                        "{}",
                        job.id
                    );
                    if job.kind == JobKind::Batch {
                        assert!(live.len() + job.queued as usize <= 1, "one build at a time");
                        if status == "dead" {
                            assert_eq!(job.complete + job.failed, 1, "{} finished once", job.id);
                        }
                    }
                    if job.kind == JobKind::System {
                        let mut nodes: Vec<usize> = live.iter().map(|a| a.node).collect();
                        nodes.dedup();
                        assert_eq!(nodes.len(), live.len(), "one system alloc per node");
                    }
                }
            });
        }
    }

    #[test]
    fn down_nodes_run_nothing_and_new_work_lands_on_schedulable_nodes() {
        run(7, 200, |sim| {
            for a in sim.allocs.iter().filter(|a| a.is_live()) {
                assert_ne!(sim.nodes[a.node].status, NodeStatus::Down, "{}", a.name);
                if a.client == ClientStatus::Pending && a.started == sim.step {
                    assert!(sim.nodes[a.node].schedulable(), "{}", a.name);
                }
            }
        });
    }

    #[test]
    fn indexes_only_grow_and_lists_move_with_changes() {
        let mut last = (0, 0, 0, 0);
        let sim = run(3, 200, |sim| {
            let now = (sim.index, sim.jobs_index, sim.nodes_index, sim.allocs_index);
            assert!(now.0 >= last.0 && now.1 >= last.1 && now.2 >= last.2 && now.3 >= last.3);
            assert!(now.1 <= now.0 && now.2 <= now.0 && now.3 <= now.0);
            last = now;
        });
        assert!(sim.jobs_index > 200 && sim.allocs_index > 200, "{sim:?}");
    }

    #[test]
    fn the_cluster_keeps_changing_and_stays_small() {
        let mut statuses = std::collections::BTreeSet::new();
        let mut drained = false;
        let mut client_drained = false;
        let mut gc = false;
        let mut failed = false;
        let mut prev_jobs: Vec<String> = Vec::new();
        run(1, 3 * EVENT_CYCLE, |sim| {
            for job in &sim.jobs {
                statuses.insert(sim.job_status(job));
                failed |= job.failed > 0;
            }
            for node in &sim.nodes {
                statuses.insert(node.status.as_str());
                drained |= node.drain;
            }
            client_drained |= sim.client_node().drain;
            gc |= prev_jobs
                .iter()
                .any(|id| !sim.jobs.iter().any(|j| &j.id == id));
            prev_jobs = sim.jobs.iter().map(|j| j.id.clone()).collect();
            assert!(sim.jobs.len() < 60 && sim.allocs.len() < 120, "bounded");
        });
        for s in [
            "pending",
            "running",
            "dead",
            "ready",
            "down",
            "initializing",
        ] {
            assert!(statuses.contains(s), "{s} never seen: {statuses:?}");
        }
        assert!(
            drained && client_drained,
            "nodes drained, the agent's own too"
        );
        assert!(gc, "a dead job was garbage-collected");
        assert!(failed, "some builds fail");
    }

    #[test]
    fn a_seed_replays_the_same_cluster() {
        let ids = |seed| {
            let sim = run(seed, 50, |_| {});
            (
                sim.index,
                sim.allocs.iter().map(|a| a.id.clone()).collect::<Vec<_>>(),
            )
        };
        assert_eq!(ids(42), ids(42));
        assert_ne!(ids(42), ids(43));
    }
}
