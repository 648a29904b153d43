//! A fake Nomad agent for trying nomad-metrics on a machine with no Nomad:
//! serves the test fixtures of one Nomad version on a loopback address.
//!
//!     cargo run --example fake_nomad -- [--listen 127.0.0.1:4646] [--version 1.11.0]

#[path = "../tests/support/fake_nomad.rs"]
mod fake_nomad;

#[tokio::main]
async fn main() {
    let mut listen = "127.0.0.1:4646".to_owned();
    let mut version = "1.11.0".to_owned();
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
            _ => {
                eprintln!(
                    "usage: fake_nomad [--listen ADDR] [--version {}]",
                    fake_nomad::VERSIONS.join("|")
                );
                std::process::exit(2);
            }
        }
    }
    if !fake_nomad::VERSIONS.contains(&version.as_str()) {
        eprintln!(
            "no fixtures for Nomad {version}; have {}",
            fake_nomad::VERSIONS.join(", ")
        );
        std::process::exit(2);
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
    println!("fake Nomad {version} listening on {}", nomad.url());
    let _ = tokio::signal::ctrl_c().await;
}
