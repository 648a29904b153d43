//! Operator conveniences and Datadog conventions: --once, --dry-run,
//! --log-format json, Unix datagram sockets, global tags.

use std::process::{Command, Stdio};

use crate::support::statsd_capture::parse_line;
use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_nomad-metrics");

fn nomad_metrics() -> Command {
    let mut cmd = Command::new(BIN);
    for var in [
        "NOMAD_ADDR",
        "NOMAD_TOKEN",
        "DD_AGENT_HOST",
        "DD_DOGSTATSD_PORT",
        "DD_DOGSTATSD_URL",
        "DD_DOGSTATSD_SOCKET",
        "DD_TAGS",
        "DD_ENV",
        "DD_SERVICE",
        "DD_VERSION",
        "DD_ENTITY_ID",
    ] {
        cmd.env_remove(var);
    }
    cmd
}

/// `--once --dry-run`: the poll's lines on stdout, strictly well-formed, exit 0.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn once_dry_run_prints_the_poll() {
    let nomad = FakeNomad::start("1.8.0").await;
    let out = nomad_metrics()
        .args(["start", "--client", "--server", "--once", "--dry-run"])
        .arg(format!("--nomad-uri={}", nomad.url()))
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let names: Vec<String> = stdout
        .lines()
        .map(|l| parse_line(l).unwrap_or_else(|e| panic!("{l:?}: {e}")).0)
        .collect();
    for want in [
        "circle.nomad.client_agent.resources.available.memory",
        "circle.nomad.client_agent.poll_failure",
        "circle.nomad.server_agent.jobs.dead",
        "circle.nomad.server_agent.poll_failure",
    ] {
        assert!(
            names.iter().any(|n| n == want),
            "{want} missing from:\n{stdout}"
        );
    }
    let expected = fixture("1.8.0", "expected.json");
    let avail = stdout
        .lines()
        .find(|l| l.starts_with("circle.nomad.client_agent.resources.available.memory:"))
        .unwrap();
    assert_eq!(
        parse_line(avail).unwrap().1,
        expected["client"]["available"][1].as_f64().unwrap()
    );
}

/// `--once` exits non-zero when the poll failed.
#[test]
fn once_exits_1_when_nomad_is_down() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let out = nomad_metrics()
        .args(["start", "--client", "--once", "--dry-run"])
        .arg(format!("--nomad-uri=http://127.0.0.1:{port}"))
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("circle.nomad.client_agent.poll_failure:1|g"),
        "{stdout}"
    );
}

/// `--log-format json`: every stderr line is a JSON object with a level.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs() {
    let nomad = FakeNomad::start("1.8.0").await;
    nomad.set_fault("/v1/node/", Fault::Status(500, "boom"));
    let out = nomad_metrics()
        .args([
            "start",
            "--client",
            "--once",
            "--dry-run",
            "--log-format",
            "json",
        ])
        .arg(format!("--nomad-uri={}", nomad.url()))
        .stdout(Stdio::null())
        .output()
        .expect("run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let mut warned = false;
    for line in stderr.lines() {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("{line:?}: {e}"));
        assert!(v["level"].is_string(), "{line}");
        warned |= v["level"] == "WARN" && line.contains("500");
    }
    assert!(warned, "the failing poll is logged: {stderr}");
}

/// DogStatsD over a Unix datagram socket (`DD_DOGSTATSD_URL=unix://…`), with
/// global tags from the Datadog environment and --tag.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unix_socket_and_global_tags() {
    let dir = TempDir::new("uds");
    let path = dir.join("dsd.socket");
    let statsd = StatsdCapture::start_unix(&path).await;
    let nomad = FakeNomad::start("2.0.5").await;
    let url = format!("unix://{}", path.display());
    let cfg = config(
        &[
            "--nomad-uri",
            &nomad.url(),
            "--interval",
            INTERVAL,
            "--client",
            "--tag",
            "cluster:ci",
        ],
        &[
            ("DD_DOGSTATSD_URL", &url),
            ("DD_ENV", "prod"),
            ("DD_TAGS", "team:infra"),
        ],
    );
    let daemon = Daemon::start(cfg);
    let poll = statsd.next_poll(CLIENT, WAIT).await;
    daemon.stop().await;
    assert_eq!(by_name(&poll).len(), client_gauges_per_poll());
    for line in &poll {
        for tag in [("cluster", "ci"), ("team", "infra"), ("env", "prod")] {
            assert_eq!(line.tag(tag.0), Some(tag.1), "{line:?}");
        }
    }
    statsd.assert_clean();
}

/// `--nomad-uri unix:///…`: the agent's Unix socket (the Task API socket a
/// Nomad system job reaches with a workload identity).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nomad_over_a_unix_socket() {
    let dir = TempDir::new("api");
    let path = dir.join("api.sock");
    let nomad = FakeNomad::start_unix(&path, "1.11.0").await;
    let statsd = StatsdCapture::start().await;
    let uri = format!("unix://{}", path.display());
    let port = statsd.port().to_string();
    let token = "wi-token-jwt";
    let daemon = Daemon::start(config(
        &args_for(&uri, &port, &["--client", "--server"]),
        &[("NOMAD_TOKEN", token)],
    ));
    let client = statsd.next_poll(CLIENT, WAIT).await;
    let server = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    let e = fixture("1.11.0", "expected.json");
    assert_eq!(
        by_name(&client)[&format!("{CLIENT}resources.total.cpu")],
        e["client"]["total"][0].as_f64().unwrap()
    );
    assert_eq!(
        by_name(&server)[&format!("{SERVER}jobs.dead")],
        e["jobs"]["dead"].as_f64().unwrap()
    );
    assert!(nomad
        .requests()
        .iter()
        .all(|r| r.headers.get("x-nomad-token").map(String::as_str) == Some(token)));
}

/// `--health-listen`: 200 while polls succeed, 503 (with the reason) once a
/// mode has not succeeded for three intervals, 200 again after recovery.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_follows_poll_health() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let listen = format!("127.0.0.1:{port}");
    let (nomad, statsd, daemon) =
        setup("1.11.0", &["--client", "--health-listen", &listen], &[]).await;
    statsd.next_poll(CLIENT, WAIT).await;
    let url = format!("http://{listen}/healthz");
    let get = || async {
        let r = reqwest::get(&url).await.expect("healthz answers");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    };
    let (status, body) = get().await;
    assert_eq!(status, 200, "{body}");
    assert!(body.starts_with("client: ok"), "{body}");
    // Every request fails: the per-poll leader check shows it at once (the
    // node and its allocations are parked in blocking queries).
    nomad.set_fault("/v1/", Fault::Status(500, "No cluster leader"));
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let (status, body) = get().await;
        if status == 503 {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never unhealthy: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };
    assert!(body.contains("client: no successful poll for"), "{body}");
    assert!(body.contains("500"), "the reason is given: {body}");
    // Lines sent before the fault took effect are still queued: skip them.
    statsd
        .wait_for("failure", WAIT, |l| {
            l.name == format!("{CLIENT}poll_failure") && l.value == 1.0
        })
        .await;
    nomad.clear_faults();
    statsd
        .wait_for("recovery", WAIT, |l| {
            l.name == format!("{CLIENT}poll_failure") && l.value == 0.0
        })
        .await;
    assert_eq!(get().await.0, 200);
    let r = reqwest::get(format!("http://{listen}/other"))
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 404);
    daemon.stop().await;
}

/// `--nomad-token-file` is read again when the file changes (a rotated
/// token), without a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_file_is_reread_when_it_changes() {
    let dir = TempDir::new("token");
    let file = dir.join("token");
    std::fs::write(&file, "token-one\n").unwrap();
    let path = file.to_str().unwrap().to_owned();
    let (nomad, statsd, daemon) = setup(
        "1.11.0",
        &["--client", "--nomad-token-file", &path],
        &[("NOMAD_TOKEN", "ignored")],
    )
    .await;
    statsd.next_poll(CLIENT, WAIT).await;
    let tokens = || -> Vec<String> {
        nomad
            .requests()
            .iter()
            .filter_map(|r| r.headers.get("x-nomad-token").cloned())
            .collect()
    };
    assert!(tokens().iter().all(|t| t == "token-one"), "{:?}", tokens());
    std::fs::write(&file, "token-two").unwrap();
    // Make the change visible even on file systems with coarse timestamps.
    let later = std::time::SystemTime::now() + std::time::Duration::from_secs(2);
    std::fs::File::options()
        .write(true)
        .open(&file)
        .unwrap()
        .set_modified(later)
        .unwrap();
    wait_until("requests carry the new token", || {
        tokens().last().map(String::as_str) == Some("token-two")
    })
    .await;
    daemon.stop().await;
}
