//! `nomad-metrics demo`, run as a user runs it (the built binary, stdout a
//! pipe, not a TTY): the view shows both modes with a live cluster that
//! changes, `--raw` prints valid DogStatsD, `--statsd-port` forwards what
//! was sent, and SIGTERM ends it with exit 0 within a second.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_nomad-metrics");
/// Generous bound for the first frames on a busy machine.
const WAIT: Duration = Duration::from_secs(20);

/// Starts `demo ARGS` with stdout read line by line on a thread.
fn demo(args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(BIN)
        .arg("demo")
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn nomad-metrics demo");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (child, rx)
}

/// Reads lines until `done` says enough (panics after `WAIT`).
fn read_until(rx: &mpsc::Receiver<String>, mut done: impl FnMut(&[String]) -> bool) -> Vec<String> {
    let deadline = Instant::now() + WAIT;
    let mut lines = Vec::new();
    while !done(&lines) {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => lines.push(line),
            Err(_) => panic!("timed out; output so far:\n{}", lines.join("\n")),
        }
    }
    lines
}

/// SIGTERM, then exit code 0 within a second.
fn stop(mut child: Child) {
    let sent = Instant::now();
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0), "exit code after SIGTERM");
            return;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "demo did not stop within 1 s of SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The frames in `lines` (each starts with the header line).
fn frames(lines: &[String]) -> Vec<Vec<String>> {
    let mut frames: Vec<Vec<String>> = Vec::new();
    for line in lines {
        if line.starts_with("nomad-metrics demo:") {
            frames.push(Vec::new());
        }
        if let Some(frame) = frames.last_mut() {
            frame.push(line.clone());
        }
    }
    frames
}

/// The value of `member` on the first row of `family` in `frame`.
fn value(frame: &[String], family: &str, member: &str) -> Option<f64> {
    let row = frame
        .iter()
        .find(|l| l.split_whitespace().next() == Some(family))?;
    let words: Vec<&str> = row.split_whitespace().collect();
    let at = words.iter().position(|w| *w == member)?;
    words.get(at + 1)?.parse().ok()
}

/// Strict DogStatsD gauge grammar: `name:value|g` or `name:value|g|#k:v,…`.
fn valid_dogstatsd(line: &str) -> bool {
    let mut parts = line.split('|');
    let Some((name, value)) = parts.next().and_then(|p| p.rsplit_once(':')) else {
        return false;
    };
    let name_ok = !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "._".contains(c));
    let value_ok = value.parse::<f64>().is_ok_and(f64::is_finite);
    let kind_ok = parts.next() == Some("g");
    let tags_ok = match parts.next() {
        None => true,
        Some(tags) => tags.strip_prefix('#').is_some_and(|t| {
            t.split(',')
                .all(|tag| tag.contains(':') && !tag.contains(' ') && !tag.is_empty())
        }),
    };
    name_ok && value_ok && kind_ok && tags_ok && parts.next().is_none()
}

#[test]
fn view_shows_both_modes_with_a_changing_cluster() {
    let (child, rx) = demo(&["--interval", "300ms", "--seed", "3"]);
    let lines = read_until(&rx, |lines| frames(lines).len() >= 8);
    stop(child);
    let frames = frames(&lines);
    let text = lines.join("\n");
    assert!(!text.contains('\x1b'), "no ANSI codes without a TTY");
    let last = &frames[frames.len() - 2]; // complete: the next one started
    for needle in [
        "client role (circle.nomad.client_agent.*)",
        "server role (circle.nomad.server_agent.*)",
        "resources.total",
        "resources.used",
        "resources.available",
        "jobs_by_type",
        "capacity.allocated",
    ] {
        assert!(
            last.iter().any(|l| l.contains(needle)),
            "{needle} missing:\n{}",
            last.join("\n")
        );
    }
    let jobs: f64 = ["pending", "running", "complete", "dead"]
        .iter()
        .filter_map(|m| value(last, "jobs", m))
        .sum();
    assert!(jobs > 0.0, "jobs counted:\n{}", last.join("\n"));
    assert!(
        value(last, "nodes", "ready").is_some_and(|n| n > 0.0),
        "ready nodes:\n{}",
        last.join("\n")
    );
    assert!(value(last, "resources.total", "cpu").is_some_and(|c| c > 0.0));
    assert_eq!(value(last, "health", "poll_failure"), Some(0.0));
    // The cluster changes: job counts differ across frames, and the view
    // says so with a signed delta.
    let running: Vec<Option<f64>> = frames.iter().map(|f| value(f, "jobs", "running")).collect();
    let pending: Vec<Option<f64>> = frames.iter().map(|f| value(f, "jobs", "pending")).collect();
    assert!(
        running.windows(2).any(|w| w[0] != w[1]) || pending.windows(2).any(|w| w[0] != w[1]),
        "job counts never changed: running {running:?} pending {pending:?}"
    );
    assert!(
        text.contains("(+") || text.contains("(-"),
        "no delta shown:\n{text}"
    );
}

#[test]
fn raw_prints_valid_dogstatsd_lines_of_both_modes() {
    let (child, rx) = demo(&["--raw", "--interval", "200ms"]);
    let closed = |lines: &[String], role: &str| {
        lines
            .iter()
            .any(|l| l.starts_with(&format!("circle.nomad.{role}_agent.poll_failure:0|g")))
    };
    let lines = read_until(&rx, |lines| {
        closed(lines, "client") && closed(lines, "server") && lines.len() > 40
    });
    stop(child);
    for line in &lines {
        assert!(valid_dogstatsd(line), "not a DogStatsD gauge: {line:?}");
    }
    for name in [
        "circle.nomad.server_agent.jobs.running:",
        "circle.nomad.server_agent.nodes.ready:",
        "circle.nomad.client_agent.resources.used.memory:",
    ] {
        assert!(lines.iter().any(|l| l.starts_with(name)), "no {name}");
    }
}

#[test]
fn statsd_port_forwards_what_was_sent() {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    socket
        .set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    let port = socket.local_addr().expect("addr").port().to_string();
    let (child, rx) = demo(&["--interval", "200ms", "--statsd-port", &port]);
    let deadline = Instant::now() + WAIT;
    let mut buf = [0u8; 65536];
    let received = loop {
        assert!(Instant::now() < deadline, "nothing forwarded");
        if let Ok(n) = socket.recv(&mut buf) {
            let text = String::from_utf8_lossy(&buf[..n]).into_owned();
            if text.contains("circle.nomad.server_agent.jobs.running:") {
                break text;
            }
        }
    };
    assert!(received.lines().all(valid_dogstatsd), "{received}");
    let lines = read_until(&rx, |lines| frames(lines).len() >= 2);
    assert!(lines
        .iter()
        .any(|l| l.contains("sent to DogStatsD at udp://127.0.0.1:")));
    stop(child);
}

#[test]
fn help_lists_demo_and_its_usage_errors_are_one_line() {
    let help = Command::new(BIN).arg("--help").output().expect("run");
    assert_eq!(help.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&help.stdout).contains("demo"));
    let out = Command::new(BIN)
        .args(["demo", "--interval", "soon"])
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("--interval") && stderr.contains("demo --help"),
        "{stderr}"
    );
}
