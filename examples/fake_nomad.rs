//! A fake Nomad agent for trying nomad-metrics on a machine with no Nomad:
//! serves the test fixtures of one Nomad version on a loopback address, or
//! (for benchmarks) a synthetic cluster of any size in Nomad 1.10 shapes.
//!
//!     cargo run --example fake_nomad -- [--listen 127.0.0.1:4646] [--version 1.11.0]
//!         [--jobs N] [--nodes N] [--allocs N]

#[path = "../tests/support/fake_nomad/mod.rs"]
mod fake_nomad;

fn usage() -> ! {
    eprintln!(
        "usage: fake_nomad [--listen ADDR] [--version {}] [--jobs N] [--nodes N] [--allocs N]",
        fake_nomad::VERSIONS.join("|")
    );
    std::process::exit(2);
}

#[tokio::main]
async fn main() {
    let mut listen = "127.0.0.1:4646".to_owned();
    let mut version = "1.11.0".to_owned();
    let mut sizes: [Option<usize>; 3] = [None; 3];
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
    println!("fake Nomad {version} listening on {}", nomad.url());
    let _ = tokio::signal::ctrl_c().await;
}
