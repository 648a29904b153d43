//! `--server` end to end: job counts per version, namespaces, both modes.

use crate::for_each_nomad_version;
use crate::support::*;

fn expected_jobs(version: &str, key: &str) -> [f64; 4] {
    let e = fixture(version, "expected.json");
    ["pending", "running", "complete", "dead"].map(|k| e[key][k].as_f64().unwrap())
}

fn job_values(poll: &[Line]) -> [f64; 4] {
    let v = by_name(poll);
    ["pending", "running", "complete", "dead"].map(|k| v[&format!("{SERVER}jobs.{k}")])
}

/// Cluster-wide counts with the right `namespace` for each version.
async fn job_counts(version: &str) {
    let (nomad, statsd, daemon) = setup(version, &["--server"], &[]).await;
    let poll = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    assert_eq!(
        job_values(&poll),
        expected_jobs(version, "jobs"),
        "Nomad {version}"
    );
    assert_eq!(by_name(&poll)[&format!("{SERVER}poll_failure")], 0.0);
    assert!(
        poll.iter()
            .filter(|l| l.name.contains(".jobs.") || l.name.ends_with("poll_failure"))
            .all(|l| l.tags.is_empty()),
        "job totals and poll_failure carry no tags"
    );
    let first_jobs = nomad
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/jobs")
        .unwrap();
    let ns = first_jobs.query.get("namespace").map(String::as_str);
    let wants_star = !version.starts_with("0.");
    assert_eq!(
        ns == Some("*"),
        wants_star,
        "namespace on Nomad {version}: {ns:?}"
    );
    statsd.assert_clean();
}
for_each_nomad_version!(job_counts);

/// `NOMAD_NAMESPACE` restricts the count to one namespace.
#[tokio::test]
async fn nomad_namespace_restricts_counts() {
    let (nomad, statsd, daemon) =
        setup("1.8.0", &["--server"], &[("NOMAD_NAMESPACE", "default")]).await;
    let poll = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    assert_eq!(
        job_values(&poll),
        expected_jobs("1.8.0", "jobs_default_namespace")
    );
    assert!(nomad
        .requests()
        .iter()
        .filter(|r| r.path == "/v1/jobs")
        .all(|r| r.query.get("namespace").map(String::as_str) == Some("default")));
}

/// Without `agent:read` the version is unknown: `namespace=*` is tried, and
/// an empty answer (0.7–0.11 semantics) falls back to the default namespace.
#[tokio::test]
async fn version_unknown_falls_back_from_star() {
    let nomad = FakeNomad::start("0.8.7").await;
    nomad.set_fault("/v1/agent/self", Fault::Status(403, "Permission denied"));
    let statsd = StatsdCapture::start().await;
    let (url, port) = (nomad.url(), statsd.port().to_string());
    let daemon = Daemon::start(config(&args_for(&url, &port, &["--server"]), &[]));
    let poll = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    assert_eq!(job_values(&poll), expected_jobs("0.8.7", "jobs"));
    let namespaces: Vec<Option<String>> = nomad
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/jobs")
        .map(|r| r.query.get("namespace").cloned())
        .collect();
    assert_eq!(namespaces[..2], [Some("*".to_owned()), None]);
}

/// The token travels as X-Nomad-Token on every request.
#[tokio::test]
async fn token_header_is_sent() {
    let token = "6c5e0ad8-1b7e-4a4e-9d35-0c1f4d2b1e77";
    let (nomad, statsd, daemon) = setup(
        "1.11.0",
        &["--server", "--client"],
        &[("NOMAD_TOKEN", token)],
    )
    .await;
    statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    let requests = nomad.requests();
    assert!(requests.len() >= 3);
    for r in requests {
        assert_eq!(
            r.headers.get("x-nomad-token").map(String::as_str),
            Some(token),
            "{}",
            r.path
        );
        assert!(
            !r.query.values().any(|v| v == token),
            "token never in the URL"
        );
        // The event stream asks for `identity` whatever --gzip says.
        assert!(
            r.path == "/v1/event/stream" || !r.headers.contains_key("accept-encoding"),
            "no compression asked for by default"
        );
    }
}

/// `--gzip`: asked for, and gzip + chunked answers (as Nomad sends them)
/// decode to the same exact values.
#[tokio::test]
async fn gzip_answers_decode() {
    let (nomad, statsd, daemon) = setup("1.11.0", &["--server", "--client", "--gzip"], &[]).await;
    let server = statsd.next_poll(SERVER, WAIT).await;
    let client = statsd.next_poll(CLIENT, WAIT).await;
    daemon.stop().await;
    assert_eq!(job_values(&server), expected_jobs("1.11.0", "jobs"));
    let e = fixture("1.11.0", "expected.json");
    assert_eq!(
        by_name(&client)[&format!("{CLIENT}resources.used.memory")],
        e["client"]["used"][1].as_f64().unwrap()
    );
    // The event stream is never compressed: a compressor may hold lines.
    assert!(nomad.requests().iter().all(|r| {
        let asked = r.headers.get("accept-encoding");
        if r.path == "/v1/event/stream" {
            asked.is_some_and(|v| v == "identity")
        } else {
            asked.is_some_and(|v| v.contains("gzip"))
        }
    }));
}

/// `NOMAD_REGION` is passed as `?region=`.
#[tokio::test]
async fn region_is_sent() {
    let (nomad, statsd, daemon) = setup("1.11.0", &["--server"], &[("NOMAD_REGION", "eu")]).await;
    statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    assert!(nomad
        .requests()
        .iter()
        .all(|r| r.query.get("region").map(String::as_str) == Some("eu")));
}

/// Both modes at once, one failing: each poll_failure is independent, and
/// the healthy mode keeps sending real values.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_modes_fail_independently() {
    let (nomad, statsd, daemon) = setup("2.0.5", &["--client", "--server"], &[]).await;
    nomad.set_fault(
        "/v1/jobs",
        Fault::Status(500, "rpc error: No cluster leader"),
    );
    let failing = statsd
        .wait_for("server poll_failure 1", WAIT, |l| {
            l.name == format!("{SERVER}poll_failure") && l.value == 1.0
        })
        .await;
    assert!(failing.tags.is_empty());
    let client = statsd.next_poll(CLIENT, WAIT).await;
    assert_eq!(by_name(&client)[&format!("{CLIENT}poll_failure")], 0.0);
    assert_eq!(by_name(&client).len(), client_gauges_per_poll());
    daemon.stop().await;
    // While failing, no job gauge was sent at all (no stale values).
    let lines = statsd.lines();
    let first_fail = lines
        .iter()
        .position(|l| l.name == format!("{SERVER}poll_failure") && l.value == 1.0)
        .unwrap();
    let jobs_after = lines[first_fail..]
        .iter()
        .filter(|l| l.name.contains(".jobs."))
        .count();
    assert_eq!(jobs_after, 0);
    statsd.assert_clean();
}
