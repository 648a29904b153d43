//! A fake Nomad agent for trying nomad-metrics on a machine with no Nomad:
//! serves the test fixtures of one Nomad version on a loopback address, or
//! (for benchmarks) a synthetic cluster of any size in Nomad 1.10 shapes.
//!
//!     cargo run --example fake_nomad -- [--listen 127.0.0.1:4646] [--version 1.11.0]
//!         [--jobs N] [--nodes N] [--allocs N] [--churn N] [--seed N]
//!
//! `--churn N` applies N changes per second from a seeded generator, the
//! way a CI cluster changes (a job per build): builds registered, placed,
//! running, then complete or failed; dead jobs garbage-collected; a node
//! drained and back; a node down and up. Each change is one or two
//! transactions of the fake, with the events Nomad would publish on
//! `/v1/event/stream`. `POST /_fake/pause` and `POST /_fake/resume` stop
//! and restart the churn; `GET /_fake/stats` reports bytes and requests
//! per path (neither is counted).

#[path = "../tests/support/fake_nomad/mod.rs"]
mod fake_nomad;

fn usage() -> ! {
    eprintln!(
        "usage: fake_nomad [--listen ADDR] [--version {}] [--jobs N] [--nodes N] [--allocs N] [--churn N] [--seed N]",
        fake_nomad::VERSIONS.join("|")
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut listen = "127.0.0.1:4646".to_owned();
    let mut version = "1.11.0".to_owned();
    let mut sizes: [Option<usize>; 3] = [None; 3];
    let mut churn = 0.0f64;
    let mut seed = 1u64;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let (flag, inline) = match arg.split_once('=') {
            Some((f, v)) => (f.to_owned(), Some(v.to_owned())),
            None => (arg.clone(), None),
        };
        let mut value = || inline.clone().or_else(|| args.next()).unwrap_or_default();
        match flag.as_str() {
            "--listen" => listen = value(),
            "--version" => version = value(),
            "--jobs" | "--nodes" | "--allocs" => {
                let slot = match flag.as_str() {
                    "--jobs" => 0,
                    "--nodes" => 1,
                    _ => 2,
                };
                match value().parse() {
                    Ok(n) => sizes[slot] = Some(n),
                    Err(_) => usage(),
                }
            }
            "--churn" => match value().parse::<f64>() {
                Ok(n) if (0.0..=1000.0).contains(&n) => churn = n,
                _ => usage(),
            },
            "--seed" => match value().parse() {
                Ok(n) => seed = n,
                Err(_) => usage(),
            },
            _ => usage(),
        }
    }
    if !fake_nomad::VERSIONS.contains(&version.as_str()) {
        eprintln!("no fixtures for Nomad {version}");
        usage();
    }
    let ip: std::net::IpAddr = listen
        .rsplit_once(':')
        .and_then(|(h, _)| h.trim_matches(['[', ']']).parse().ok())
        .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
    if !ip.is_loopback() {
        eprintln!("fake_nomad only listens on loopback addresses");
        std::process::exit(2);
    }
    let nomad = fake_nomad::FakeNomad::start_on(&listen, &version).await;
    let nodes = sizes[1].unwrap_or(0);
    for (slot, list) in [
        fake_nomad::List::Jobs,
        fake_nomad::List::Nodes,
        fake_nomad::List::Allocations,
    ]
    .into_iter()
    .enumerate()
    {
        if let Some(n) = sizes[slot] {
            nomad.set_list(list, fake_nomad::synthetic(list, n, nodes));
        }
    }
    let nomad = std::sync::Arc::new(nomad);
    if churn > 0.0 {
        let n = std::sync::Arc::clone(&nomad);
        // Builds the transaction model before announcing readiness, so the
        // first change does not stall a reader.
        let gen = tokio::task::spawn_blocking(move || Churn::new(&n, seed))
            .await
            .expect("churn set-up");
        tokio::spawn(run_churn(std::sync::Arc::clone(&nomad), gen, churn));
    }
    println!("fake Nomad {version} listening on {}", nomad.url());
    let _ = tokio::signal::ctrl_c().await;
}

/// splitmix64: small, seeded, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

enum Stage {
    Registered,
    Placed(String),
    Running(String),
}

/// The churn generator's own view: builds in flight, dead jobs to
/// collect, nodes with a change to undo.
struct Churn {
    rng: Rng,
    next_build: u64,
    builds: std::collections::VecDeque<(String, Stage)>,
    dead: std::collections::VecDeque<(String, String)>,
    nodes: Vec<String>,
    /// A drained node to bring back, a down node to bring up.
    drained: Option<String>,
    down: Option<String>,
}

impl Churn {
    fn new(nomad: &fake_nomad::FakeNomad, seed: u64) -> Self {
        Self {
            rng: Rng(seed),
            next_build: 0,
            builds: Default::default(),
            dead: nomad.jobs_with_status("dead").into_iter().collect(),
            nodes: nomad.node_ids(),
            drained: None,
            down: None,
        }
    }

    /// One change (one or two transactions).
    fn step(&mut self, nomad: &fake_nomad::FakeNomad) {
        let roll = self.rng.below(100);
        match roll {
            0..=24 => {
                let id = format!("ci-build-{:08}", self.next_build);
                self.next_build += 1;
                nomad.register_job("ci", &id, "batch");
                self.builds.push_back((id, Stage::Registered));
            }
            25..=74 if !self.builds.is_empty() => {
                let i = self.rng.below(self.builds.len().min(8));
                let (id, stage) = self.builds.remove(i).unwrap();
                match stage {
                    Stage::Registered => {
                        let node = self.nodes[self.rng.below(self.nodes.len())].clone();
                        let (_, allocs) = nomad.place_allocs("ci", &id, &[&node]);
                        match allocs.into_iter().next() {
                            Some(a) => self.builds.push_back((id, Stage::Placed(a))),
                            None => self.dead.push_back(("ci".to_owned(), id)),
                        }
                    }
                    Stage::Placed(a) => {
                        nomad.alloc_client_update(&[&a], "running");
                        self.builds.push_back((id, Stage::Running(a)));
                    }
                    Stage::Running(a) => {
                        let end = if self.rng.below(5) == 0 {
                            "failed"
                        } else {
                            "complete"
                        };
                        nomad.alloc_client_update(&[&a], end);
                        self.dead.push_back(("ci".to_owned(), id));
                    }
                }
            }
            75..=91 => {
                if let Some((ns, id)) = self.dead.pop_front() {
                    nomad.gc_job(&ns, &id);
                }
            }
            92..=95 if !self.nodes.is_empty() => match self.drained.take() {
                Some(n) => {
                    nomad.drain_node(&n, false);
                }
                None => {
                    let n = self.nodes[self.rng.below(self.nodes.len())].clone();
                    nomad.drain_node(&n, true);
                    self.drained = Some(n);
                }
            },
            _ if !self.nodes.is_empty() => match self.down.take() {
                Some(n) => {
                    nomad.node_up(&n);
                }
                None => {
                    let n = self.nodes[self.rng.below(self.nodes.len())].clone();
                    nomad.node_down(&n);
                    self.down = Some(n);
                }
            },
            _ => {}
        }
    }
}

async fn run_churn(nomad: std::sync::Arc<fake_nomad::FakeNomad>, mut gen: Churn, per_second: f64) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs_f64(1.0 / per_second));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Runs until the process ends (ctrl-c or the benchmark's kill).
    loop {
        tick.tick().await;
        if nomad.churn_paused() {
            continue;
        }
        let n = std::sync::Arc::clone(&nomad);
        gen = tokio::task::spawn_blocking(move || {
            gen.step(&n);
            gen
        })
        .await
        .expect("churn step");
    }
}
