//! Faults: every bad answer fails the poll (poll_failure 1, no other gauge),
//! the daemon keeps running, and the first good poll brings it back to 0.

use std::time::Duration;

use crate::support::*;

/// Injects `fault` on the client endpoints, waits for poll_failure 1, clears
/// it and waits for 0 with real values again.
async fn fails_then_recovers(path: &str, fault: Fault) {
    let (nomad, statsd, daemon) = setup("1.11.0", &["--client"], &[]).await;
    let first = statsd.next_poll(CLIENT, WAIT).await;
    assert_eq!(by_name(&first)[&format!("{CLIENT}poll_failure")], 0.0);
    nomad.set_fault(path, fault.clone());
    let failed = loop {
        let poll = statsd.next_poll(CLIENT, WAIT).await;
        if by_name(&poll)[&format!("{CLIENT}poll_failure")] == 1.0 {
            break poll;
        }
    };
    let stale: Vec<&Line> = failed
        .iter()
        .filter(|l| l.name.contains(".resources."))
        .collect();
    assert!(
        stale.is_empty(),
        "a failed poll sends no stale values: {stale:?} ({fault:?})"
    );
    let health = by_name(&failed);
    assert_eq!(
        health.len(),
        health_gauges(CLIENT),
        "poll_failure, poll_duration_ms, last_success_age_s: {health:?}"
    );
    // Still failing on the next poll (the loop goes on).
    let again = statsd.next_poll(CLIENT, WAIT).await;
    assert_eq!(
        by_name(&again)[&format!("{CLIENT}poll_failure")],
        1.0,
        "{fault:?}"
    );
    nomad.clear_faults();
    let recovered = loop {
        let poll = statsd.next_poll(CLIENT, WAIT).await;
        if by_name(&poll)[&format!("{CLIENT}poll_failure")] == 0.0 {
            break poll;
        }
    };
    assert_eq!(
        recovered.len(),
        client_gauges_per_poll(),
        "12 resource + 3 health gauges {fault:?}"
    );
    assert_eq!(
        by_name(&recovered)[&format!("{CLIENT}last_success_age_s")],
        0.0
    );
    daemon.stop().await;
    statsd.assert_clean();
}

#[tokio::test]
async fn status_500_with_text_body() {
    fails_then_recovers(
        "/v1/node/",
        Fault::Status(500, "rpc error: No cluster leader"),
    )
    .await;
}

#[tokio::test]
async fn acl_403() {
    fails_then_recovers("/v1/node/", Fault::Status(403, "Permission denied")).await;
}

#[tokio::test]
async fn html_page_with_200() {
    fails_then_recovers("/v1/node/", Fault::Html).await;
}

#[tokio::test]
async fn invalid_json() {
    fails_then_recovers("/v1/node/", Fault::BadJson).await;
}

#[tokio::test]
async fn empty_body() {
    fails_then_recovers("/v1/node/", Fault::Empty).await;
}

#[tokio::test]
async fn truncated_body() {
    fails_then_recovers("/v1/node/", Fault::Truncated).await;
}

#[tokio::test]
async fn connection_reset() {
    fails_then_recovers("/v1/node/", Fault::Reset).await;
}

#[tokio::test]
async fn hanging_nomad_times_out() {
    // The request timeout is 80 % of the 300 ms interval. The whole agent
    // hangs: a parked blocking query on the node cannot be told from a hung
    // one, the per-poll leader check can.
    fails_then_recovers("/v1/", Fault::Hang).await;
}

#[tokio::test]
async fn slower_than_the_timeout() {
    fails_then_recovers("/v1/", Fault::Delay(Duration::from_secs(2))).await;
}

#[tokio::test]
async fn endless_body_is_cut_off() {
    fails_then_recovers("/v1/node/", Fault::Endless).await;
}

#[tokio::test]
async fn truncated_list() {
    let (nomad, statsd, daemon) = setup("1.11.0", &["--server"], &[]).await;
    nomad.set_fault("/v1/jobs", Fault::Truncated);
    let poll = statsd.next_poll(SERVER, WAIT).await;
    assert_eq!(by_name(&poll)[&format!("{SERVER}poll_failure")], 1.0);
    assert!(
        !poll.iter().any(|l| l.name.contains(".jobs")),
        "no job gauges: {poll:?}"
    );
    nomad.clear_faults();
    statsd
        .wait_for("server recovery", WAIT, |l| {
            l.name == format!("{SERVER}poll_failure") && l.value == 0.0
        })
        .await;
    daemon.stop().await;
}

/// Nothing listening on the Nomad port at all, then Nomad comes up there.
#[tokio::test]
async fn nomad_unreachable_then_up() {
    // Reserve a port, free it, point the daemon at it.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let statsd = StatsdCapture::start().await;
    let url = format!("http://127.0.0.1:{port}");
    let sport = statsd.port().to_string();
    let daemon = Daemon::start(config(
        &args_for(&url, &sport, &["--client", "--server"]),
        &[],
    ));
    for prefix in [CLIENT, SERVER] {
        let poll = statsd.next_poll(prefix, WAIT).await;
        let values = by_name(&poll);
        assert_eq!(values[&format!("{prefix}poll_failure")], 1.0);
        // Only health gauges; no last_success_age_s before any success.
        assert_eq!(values.len(), health_gauges(prefix) - 1, "{values:?}");
    }
    let _nomad = FakeNomad::start_on(&format!("127.0.0.1:{port}"), "1.8.0").await;
    statsd
        .wait_for("client recovery", WAIT, |l| {
            l.name == format!("{CLIENT}poll_failure") && l.value == 0.0
        })
        .await;
    daemon.stop().await;
}

/// No DogStatsD listening: sending fails quietly and nothing stops.
#[tokio::test]
async fn statsd_not_listening_is_not_fatal() {
    let nomad = FakeNomad::start("1.11.0").await;
    let port = {
        let s = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        s.local_addr().unwrap().port()
    };
    let (url, sport) = (nomad.url(), port.to_string());
    let daemon = Daemon::start(config(&args_for(&url, &sport, &["--client"]), &[]));
    // Several polls go by (each one checks the leader) without the daemon
    // dying.
    let deadline = tokio::time::Instant::now() + WAIT;
    while nomad.count("/v1/status/leader") < 8 {
        assert!(tokio::time::Instant::now() < deadline, "polling stalled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    daemon.stop().await;
}

/// Many failing polls, one warning; recovery, one info line. Run as the real
/// binary so the real log output is checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_log_line_per_state_change() {
    use std::process::{Command, Stdio};
    let nomad = FakeNomad::start("1.11.0").await;
    nomad.set_fault("/v1/node/", Fault::Status(500, "No cluster leader"));
    let statsd = StatsdCapture::start().await;
    let child = Command::new(env!("CARGO_BIN_EXE_nomad-metrics"))
        .args([
            "start",
            "--client",
            "--interval",
            "100ms",
            "--statsd-host",
            "127.0.0.1",
        ])
        .arg(format!("--statsd-port={}", statsd.port()))
        .arg(format!("--nomad-uri={}", nomad.url()))
        .env("RUST_LOG", "info")
        .env_remove("NOMAD_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    for _ in 0..6 {
        let poll = statsd.next_poll(CLIENT, WAIT).await;
        assert_eq!(by_name(&poll)[&format!("{CLIENT}poll_failure")], 1.0);
    }
    nomad.clear_faults();
    statsd
        .wait_for("recovery", WAIT, |l| {
            l.name == format!("{CLIENT}poll_failure") && l.value == 0.0
        })
        .await;
    for _ in 0..3 {
        statsd.next_poll(CLIENT, WAIT).await;
    }
    let out = sigterm_and_collect(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    let failed: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("poll failed"))
        .collect();
    let recovered: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("poll recovered"))
        .collect();
    assert_eq!(failed.len(), 1, "{stderr}");
    assert!(
        failed[0].contains("WARN")
            && failed[0].contains("500")
            && failed[0].contains("No cluster leader"),
        "{}",
        failed[0]
    );
    assert_eq!(recovered.len(), 1, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "no colour codes in a piped log");
}
