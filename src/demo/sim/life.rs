//! How the simulated cluster changes, one `Sim::step` at a time: node
//! events on a fixed cycle, allocations that start and finish, new builds,
//! first-fit placement, garbage collection. The tests at the bottom hold
//! the invariants over many seeds and steps.

use super::{
    uuid, ClientStatus, JobKind, NodeStatus, Res, Sim, SimAlloc, Table, CLIENT_NODE, EVENT_CYCLE,
    GC_AFTER_STEPS,
};

impl Sim {
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

    /// Drain a node, end the drain, take a node down, bring it back: one
    /// event per phase of `EVENT_CYCLE`. The agent's own node may be
    /// drained but never goes down (its agent is the one answering).
    fn node_events(&mut self) {
        match self.step % EVENT_CYCLE {
            4 => {
                // Every other cycle drains the agent's own node, so the
                // the client role shows `drain:true` too.
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
