//! Soak test: runs the release daemon (both modes, fast interval) against the
//! fake Nomad for minutes while cycling through every fault the fake can
//! inject, and reports the daemon's RSS over time, the number of polls, and
//! how many failed and recovered. Loopback only.
//!
//!     cargo build --release && cargo run --release --example soak -- [--minutes 5] [--interval 100ms]
//!
//! Exits non-zero if the daemon dies, stops polling, never recovers after a
//! fault, or its RSS at the end is more than 25 % above its RSS after the
//! first full cycle of faults.

#[path = "../tests/support/fake_nomad/mod.rs"]
mod fake_nomad;
#[path = "../tests/support/statsd_capture.rs"]
mod statsd_capture;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use fake_nomad::{FakeNomad, Fault};

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

#[tokio::main]
async fn main() {
    let mut minutes = 5.0f64;
    let mut interval = "100ms".to_owned();
    let mut verbose = false;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--minutes" => minutes = args.next().and_then(|v| v.parse().ok()).unwrap_or(minutes),
            "--interval" => interval = args.next().unwrap_or(interval),
            "--verbose" => verbose = true,
            _ => {
                eprintln!("usage: soak [--minutes M] [--interval DURATION] [--verbose]");
                std::process::exit(2);
            }
        }
    }
    let bin = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target/release/nomad-metrics");
    assert!(
        bin.exists(),
        "build the daemon first: cargo build --release"
    );
    let nomad = FakeNomad::start("1.11.0").await;
    let statsd = statsd_capture::StatsdCapture::start().await;
    let mut child = Command::new(&bin)
        .args([
            "start",
            "--client",
            "--server",
            "--interval",
            &interval,
            "--statsd-host",
            "127.0.0.1",
        ])
        .arg(format!("--statsd-port={}", statsd.port()))
        .arg(format!("--nomad-uri={}", nomad.url()))
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the daemon");
    let pid = child.id();
    let faults: Vec<(&str, Option<Fault>)> = vec![
        ("none", None),
        (
            "500",
            Some(Fault::Status(500, "rpc error: No cluster leader")),
        ),
        ("none", None),
        ("403", Some(Fault::Status(403, "Permission denied"))),
        ("none", None),
        ("html", Some(Fault::Html)),
        ("bad json", Some(Fault::BadJson)),
        ("none", None),
        ("empty", Some(Fault::Empty)),
        ("truncated", Some(Fault::Truncated)),
        ("none", None),
        ("reset", Some(Fault::Reset)),
        ("hang", Some(Fault::Hang)),
        ("none", None),
        ("slow", Some(Fault::Delay(Duration::from_secs(2)))),
        ("endless", Some(Fault::Endless)),
        ("none", None),
    ];
    let started = Instant::now();
    let total = Duration::from_secs_f64(minutes * 60.0);
    // The baseline is taken after one full cycle of faults: the first
    // oversized body grows the allocator's pools once (a plateau the
    // allocator keeps for reuse); growth after that is a leak.
    let warmup = (Duration::from_secs(3) * faults.len() as u32).min(total / 2);
    let mut rss_after_warmup = None;
    let mut rss_max = 0;
    let mut phase = 0;
    println!("soak: {minutes} min, interval {interval}, daemon pid {pid}");
    println!(
        "RSS at start: {:.1} MiB",
        rss_kib(pid).unwrap_or(0) as f64 / 1024.0
    );
    while started.elapsed() < total {
        let (name, fault) = &faults[phase % faults.len()];
        nomad.clear_faults();
        if let Some(f) = fault {
            // Both modes at once: the client's node endpoints, and for the
            // server the per-poll leader check and the list endpoints (whose
            // parked blocking queries only meet the fault when they return).
            for path in [
                "/v1/node/",
                "/v1/status/leader",
                "/v1/jobs",
                "/v1/nodes",
                "/v1/allocations",
            ] {
                nomad.set_fault(path, f.clone());
            }
        }
        let phase_end = Instant::now() + Duration::from_secs(3);
        while Instant::now() < phase_end {
            tokio::time::sleep(Duration::from_millis(250)).await;
            if let Ok(Some(status)) = child.try_wait() {
                eprintln!("FAIL: the daemon exited ({status}) during fault {name}");
                std::process::exit(1);
            }
            let rss = rss_kib(pid).unwrap_or(0);
            rss_max = rss_max.max(rss);
            if rss_after_warmup.is_none() && started.elapsed() >= warmup {
                rss_after_warmup = Some(rss);
            }
        }
        if verbose {
            println!(
                "  phase {phase:>3} {name:<10} RSS {:.1} MiB",
                rss_kib(pid).unwrap_or(0) as f64 / 1024.0
            );
        }
        phase += 1;
    }
    nomad.clear_faults();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_end = rss_kib(pid).unwrap_or(0);
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let status = child.wait().expect("wait");
    let lines = statsd.lines();
    let mut report = Vec::new();
    let mut ok = status.code() == Some(0);
    for role in ["client", "server"] {
        let name = format!("circle.nomad.{role}_agent.poll_failure");
        let polls: Vec<f64> = lines
            .iter()
            .filter(|l| l.name == name)
            .map(|l| l.value)
            .collect();
        let failed = polls.iter().filter(|v| **v == 1.0).count();
        let recovered = polls
            .windows(2)
            .filter(|w| w[0] == 1.0 && w[1] == 0.0)
            .count();
        ok &= polls.last() == Some(&0.0) && recovered > 0;
        report.push(format!(
            "{role}: {} polls, {failed} failed, {recovered} recoveries, last poll_failure {:?}",
            polls.len(),
            polls.last()
        ));
    }
    let start = rss_after_warmup.unwrap_or(0);
    ok &= start > 0 && rss_end * 4 <= start * 5;
    println!("phases: {phase} ({} faults cycled)", faults.len());
    for r in report {
        println!("{r}");
    }
    println!(
        "RSS after the first fault cycle: {:.1} MiB; at the end: {:.1} MiB; max: {:.1} MiB; exit code {:?}",
        start as f64 / 1024.0,
        rss_end as f64 / 1024.0,
        rss_max as f64 / 1024.0,
        status.code()
    );
    statsd.assert_clean();
    if !ok {
        eprintln!("FAIL: see above");
        std::process::exit(1);
    }
    println!("PASS");
}
