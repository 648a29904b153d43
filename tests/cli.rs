//! The built binary, run as operators run it: the original tool's command
//! line (`nomad-metrics start --nomad-uri=http://localhost:4646
//! --statsd-host=10.0.0.5 --statsd-port=8125 --client`), usage errors (one
//! line, exit 2), --help/--version, SIGTERM/SIGINT.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_nomad-metrics");

fn run_to_end(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NOMAD_ADDR")
        .env_remove("NOMAD_TOKEN")
        .output()
        .expect("run nomad-metrics")
}

fn usage_error(args: &[&str], mentions: &str) {
    let out = run_to_end(args);
    assert_eq!(out.status.code(), Some(2), "{args:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(
        stderr.contains(mentions),
        "{args:?}: {stderr:?} should mention {mentions}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    usage_error(&["start"], "--client");
    usage_error(&["start", "--client", "--bogus"], "--bogus");
    usage_error(
        &["start", "--client", "--nomad-uri=localhost:4646"],
        "--nomad-uri",
    );
    usage_error(
        &["start", "--client", "--nomad-uri", "ftp://x"],
        "--nomad-uri",
    );
    usage_error(&["start", "--client", "--interval=soon"], "--interval");
    usage_error(&["start", "--client", "--interval", "0s"], "--interval");
    usage_error(
        &["start", "--client", "--statsd-port=99999"],
        "--statsd-port",
    );
    usage_error(
        &["start", "--client", "--nomad-token-file=/nonexistent/token"],
        "token",
    );
    usage_error(&[], "subcommand");
}

#[test]
fn help_names_every_flag_and_env_variable() {
    let out = run_to_end(&["start", "--help"]);
    assert_eq!(out.status.code(), Some(0));
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in [
        "--nomad-uri",
        "NOMAD_ADDR",
        "--statsd-host",
        "DD_AGENT_HOST",
        "--statsd-port",
        "DD_DOGSTATSD_PORT",
        "--client",
        "--server",
        "--interval",
        "--no-identity-tags",
        "--nomad-token-file",
        "NOMAD_TOKEN",
        "NOMAD_CACERT",
        "NOMAD_CAPATH",
        "NOMAD_CLIENT_CERT",
        "NOMAD_CLIENT_KEY",
        "NOMAD_SKIP_VERIFY",
        "NOMAD_TLS_SERVER_NAME",
        "NOMAD_REGION",
        "NOMAD_NAMESPACE",
    ] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
    let out = run_to_end(&["--version"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

/// Sends `signal` and checks a clean exit 0 within a second.
fn stop_with(child: &mut std::process::Child, signal: &str) {
    let pid = child.id().to_string();
    let sent = Instant::now();
    let status = Command::new("kill")
        .args([signal, &pid])
        .status()
        .expect("kill");
    assert!(status.success());
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert_eq!(status.code(), Some(0), "exit code after {signal}");
            break;
        }
        assert!(
            sent.elapsed() < Duration::from_secs(1),
            "did not stop within 1 s of {signal}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The original command line, exactly (only the addresses point at the
/// fakes), then SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn original_command_line_end_to_end() {
    let nomad = FakeNomad::start("0.5.6").await;
    let statsd = StatsdCapture::start().await;
    let mut child = Command::new(BIN)
        .arg("start")
        .arg(format!(
            "--nomad-uri=http://localhost:{}",
            nomad.addr.port()
        ))
        .arg("--statsd-host=127.0.0.1")
        .arg(format!("--statsd-port={}", statsd.port()))
        .arg("--client")
        .env_remove("NOMAD_ADDR")
        .env_remove("NOMAD_TOKEN")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let poll = statsd.next_poll(CLIENT, WAIT).await;
    let values = by_name(&poll);
    let expected = fixture("0.5.6", "expected.json");
    assert_eq!(
        values[&format!("{CLIENT}resources.available.memory")],
        expected["client"]["available"][1].as_f64().unwrap()
    );
    assert_eq!(values[&format!("{CLIENT}poll_failure")], 0.0);
    assert_eq!(
        values.len(),
        client_gauges_per_poll(),
        "12 resources + 3 health gauges"
    );
    stop_with(&mut child, "-TERM");
    statsd.assert_clean();
}

/// SIGINT (Ctrl-C) stops as cleanly, from the middle of a hanging request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigint_during_a_hanging_request() {
    let nomad = FakeNomad::start("2.0.5").await;
    nomad.set_fault("/v1/jobs", Fault::Hang);
    let statsd = StatsdCapture::start().await;
    let mut child = Command::new(BIN)
        .args([
            "start",
            "--server",
            "--interval",
            "30s",
            "--statsd-host",
            "127.0.0.1",
        ])
        .arg(format!("--nomad-uri={}", nomad.url()))
        .arg(format!("--statsd-port={}", statsd.port()))
        .env_remove("NOMAD_TOKEN")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn");
    let deadline = Instant::now() + WAIT;
    while nomad.count("/v1/jobs") == 0 {
        assert!(Instant::now() < deadline, "no request reached the fake");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    stop_with(&mut child, "-INT");
}

/// The token is never printed, not even at trace level, even on errors.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_never_logged_at_trace_level() {
    let token = "b0a5e1f2-secret-token-7d7d";
    let nomad = FakeNomad::start("1.11.0").await;
    nomad.set_fault("/v1/jobs", Fault::Status(403, "Permission denied"));
    let statsd = StatsdCapture::start().await;
    let child = Command::new(BIN)
        .args([
            "start",
            "--server",
            "--client",
            "--interval",
            "200ms",
            "--statsd-host",
            "127.0.0.1",
        ])
        .arg(format!("--nomad-uri={}", nomad.url()))
        .arg(format!("--statsd-port={}", statsd.port()))
        .env("NOMAD_TOKEN", token)
        .env("RUST_LOG", "trace")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    statsd.next_poll(SERVER, WAIT).await;
    statsd.next_poll(CLIENT, WAIT).await;
    let out = sigterm_and_collect(child);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("TRACE") || stderr.contains("trace"),
        "trace logging was on"
    );
    assert!(
        stderr.contains("403"),
        "the ACL failure is logged: {stderr}"
    );
    assert!(
        !stderr.contains(token) && !String::from_utf8_lossy(&out.stdout).contains(token),
        "token leaked"
    );
    assert!(nomad
        .requests()
        .iter()
        .all(|r| r.headers.get("x-nomad-token").map(String::as_str) == Some(token)));
}

/// README's metric table and the code's catalogue list the same metrics
/// with the same units.
#[test]
fn readme_metric_table_matches_catalogue() {
    let readme = include_str!("../README.md");
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `circle.nomad."))
        .collect();
    let catalogue = nomad_metrics::gauges::CATALOGUE;
    assert_eq!(rows.len(), catalogue.len(), "README rows: {rows:#?}");
    for metric in catalogue {
        let (name, unit) = (metric.name, metric.unit);
        let full = format!("`{}.{name}`", nomad_metrics::gauges::PREFIX);
        let row = rows
            .iter()
            .find(|r| r.starts_with(&format!("| {full} |")))
            .unwrap_or_else(|| panic!("README has no row for {full}"));
        assert!(
            row.contains(&format!("| {unit} |")),
            "unit of {full} should be {unit}: {row}"
        );
    }
}
