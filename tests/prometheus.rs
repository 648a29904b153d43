//! `--prometheus-listen` and `--no-statsd`: a real Prometheus server scrapes
//! the daemon and must read back the series DogStatsD received; `promtool`
//! lints a `/metrics` body; a failed poll serves only health gauges; the
//! command-line rules. Prometheus and promtool are Debian's `prometheus`
//! package (`.ci/run` installs it): when `CI` is set and they are missing the
//! tests fail, elsewhere they are skipped with a message.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::*;

const BIN: &str = env!("CARGO_BIN_EXE_nomad-metrics");
/// How long Prometheus gets to start, scrape and agree with DogStatsD.
const PROMETHEUS_WAIT: Duration = Duration::from_secs(40);

/// `true` when `tool` runs; otherwise fails under CI, or says why it skips.
fn have(tool: &str) -> bool {
    let runs = Command::new(tool)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !runs {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed but CI is set: install Debian's prometheus package (.ci/run does)"
        );
        eprintln!("skipping: {tool} is not installed (apt-get install prometheus)");
    }
    runs
}

fn free_local_addr() -> String {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    format!("127.0.0.1:{port}")
}

/// A directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(what: &str) -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let path = std::env::temp_dir().join(format!(
            "nomad-metrics-{what}-{}-{nanos}",
            std::process::id()
        ));
        std::fs::create_dir_all(&path).expect("create a temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A Prometheus server on a loopback port scraping one target every second;
/// killed (and its storage removed) on drop.
struct Prometheus {
    child: Child,
    api: String,
    log: PathBuf,
    // Dropped after the child is killed (fields drop in order).
    _dir: TempDir,
}

impl Prometheus {
    fn start(target: &str) -> Self {
        let dir = TempDir::new("prometheus");
        let config = dir.0.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
                 scrape_configs:\n  - job_name: nomad-metrics\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .expect("write prometheus.yml");
        let listen = free_local_addr();
        let log = dir.0.join("prometheus.log");
        let log_file = std::fs::File::create(&log).expect("create the log file");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.0.join("data").display()
            ))
            .arg(format!("--web.listen-address={listen}"))
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start prometheus");
        Self {
            child,
            api: format!("http://{listen}/api/v1"),
            log,
            _dir: dir,
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// An instant query's vector result: labels (with `__name__`) → value.
    /// `None` while Prometheus is not answering yet.
    async fn query(&self, expr: &str) -> Option<Vec<(BTreeMap<String, String>, f64)>> {
        let answer = reqwest::Client::new()
            .get(format!("{}/query", self.api))
            .query(&[("query", expr)])
            .timeout(Duration::from_secs(5))
            .send()
            .await
            .ok()?;
        let body: serde_json::Value = serde_json::from_str(&answer.text().await.ok()?).ok()?;
        assert_eq!(body["status"], "success", "query {expr}: {body}");
        let rows = body["data"]["result"].as_array()?;
        Some(
            rows.iter()
                .map(|row| {
                    let labels = row["metric"]
                        .as_object()
                        .expect("metric labels")
                        .iter()
                        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
                        .collect();
                    let value = row["value"][1]
                        .as_str()
                        .and_then(|v| v.parse().ok())
                        .expect("a numeric sample value");
                    (labels, value)
                })
                .collect(),
        )
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The Prometheus name of a DogStatsD metric, by the documented rule:
/// dots become `_`; `_ms` and `_s` become `_seconds`.
fn prometheus_name(dogstatsd: &str) -> String {
    let name = dogstatsd.replace('.', "_");
    for suffix in ["_ms", "_s"] {
        if let Some(stem) = name.strip_suffix(suffix) {
            return format!("{stem}_seconds");
        }
    }
    name
}

/// Metrics whose value changes from poll to poll: compared by presence.
fn volatile(name: &str) -> bool {
    name.ends_with("_poll_duration_seconds") || name.ends_with("_last_success_age_seconds")
}

/// `name{k="v",…}` (labels sorted) → value, `None` for volatile metrics.
type Series = BTreeMap<String, Option<f64>>;

fn series_key(name: &str, labels: &BTreeMap<String, String>) -> String {
    let labels: Vec<String> = labels.iter().map(|(k, v)| format!("{k}={v:?}")).collect();
    format!("{name}{{{}}}", labels.join(","))
}

fn from_dogstatsd(lines: &[Line]) -> Series {
    lines
        .iter()
        .map(|l| {
            let name = prometheus_name(&l.name);
            let labels = l.tags.iter().cloned().collect();
            let value = (!volatile(&name)).then_some(l.value);
            (series_key(&name, &labels), value)
        })
        .collect()
}

fn from_prometheus(rows: Vec<(BTreeMap<String, String>, f64)>) -> Series {
    rows.into_iter()
        .map(|(mut labels, value)| {
            let name = labels.remove("__name__").expect("__name__");
            // Added by Prometheus to every scraped series.
            labels.remove("job");
            labels.remove("instance");
            let value = (!volatile(&name)).then_some(value);
            (series_key(&name, &labels), value)
        })
        .collect()
}

/// What differs between DogStatsD (`-`) and Prometheus (`+`), one line each.
fn diff(dogstatsd: &Series, prometheus: &Series) -> String {
    let mut out = String::new();
    for (k, v) in dogstatsd {
        if prometheus.get(k) != Some(v) {
            out.push_str(&format!("- {k} {v:?}\n"));
        }
    }
    for (k, v) in prometheus {
        if dogstatsd.get(k) != Some(v) {
            out.push_str(&format!("+ {k} {v:?}\n"));
        }
    }
    out
}

/// The next whole poll of one role. The capture has one cursor for both
/// roles, whose datagrams interleave, so the first poll after switching
/// roles may miss its start; the one after it cannot.
async fn complete_poll(statsd: &StatsdCapture, prefix: &str) -> Vec<Line> {
    statsd.next_poll(prefix, WAIT).await;
    statsd.next_poll(prefix, WAIT).await
}

/// A real Prometheus scrapes `/metrics` and reads back, through its query
/// API, every series DogStatsD received from the same polls: the same
/// names, label sets and values (both roles, global tags as labels).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_prometheus_reads_back_what_dogstatsd_got() {
    if !have("prometheus") {
        return;
    }
    let listen = free_local_addr();
    let (_nomad, statsd, daemon) = setup(
        "1.11.0",
        &[
            "--client",
            "--server",
            "--prometheus-listen",
            &listen,
            "--tag",
            "env:ci-test",
        ],
        &[],
    )
    .await;
    let prometheus = Prometheus::start(&listen);
    let deadline = tokio::time::Instant::now() + PROMETHEUS_WAIT;
    loop {
        let up = prometheus.query("up{job=\"nomad-metrics\"}").await;
        if up.is_some_and(|rows| rows.iter().any(|(_, v)| *v == 1.0)) {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "Prometheus never scraped the daemon successfully; its log:\n{}",
            prometheus.log()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The fake cluster is static, so once Prometheus has scraped a steady
    // poll both sides agree; until then, retry (bounded).
    let (expected, actual) = loop {
        let mut expected = from_dogstatsd(&complete_poll(&statsd, CLIENT).await);
        expected.extend(from_dogstatsd(&complete_poll(&statsd, SERVER).await));
        let actual = from_prometheus(
            prometheus
                .query("{__name__=~\"circle_nomad_.*\"}")
                .await
                .unwrap_or_default(),
        );
        if expected == actual || tokio::time::Instant::now() >= deadline {
            break (expected, actual);
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    };
    assert!(
        expected == actual,
        "DogStatsD (-) and Prometheus (+) differ:\n{}",
        diff(&expected, &actual)
    );
    for needle in [
        "circle_nomad_client_agent_resources_available_memory{",
        "circle_nomad_server_agent_jobs_running{env=\"ci-test\"}",
        "circle_nomad_server_agent_nodes_ready{",
        "circle_nomad_server_agent_capacity_total_cpu{",
        "circle_nomad_client_agent_poll_duration_seconds{",
        "circle_nomad_server_agent_last_success_age_seconds{",
    ] {
        assert!(
            expected.keys().any(|k| k.starts_with(needle)),
            "{needle} was compared: {expected:#?}"
        );
    }
    assert!(expected.keys().all(|k| k.contains("env=\"ci-test\"")));
    assert!(expected.len() > 40, "{} series compared", expected.len());
    statsd.assert_clean();
    daemon.stop().await;
}

/// GETs `url`, returning the status, the Content-Type and the body.
async fn get(url: &str) -> (u16, String, String) {
    let r = reqwest::get(url).await.expect("the daemon answers");
    let content_type = r.headers()[reqwest::header::CONTENT_TYPE]
        .to_str()
        .unwrap_or_default()
        .to_owned();
    (r.status().as_u16(), content_type, r.text().await.unwrap())
}

/// `/metrics` of both roles is clean for `promtool check metrics`; with
/// `--health-listen` on the same address one listener serves both paths.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn promtool_finds_nothing_to_lint() {
    if !have("promtool") {
        return;
    }
    let listen = free_local_addr();
    let (_nomad, statsd, daemon) = setup(
        "1.11.0",
        &[
            "--client",
            "--server",
            "--prometheus-listen",
            &listen,
            "--health-listen",
            &listen,
        ],
        &[("DD_ENTITY_ID", "pod-1")],
    )
    .await;
    statsd.next_poll(CLIENT, WAIT).await;
    statsd.next_poll(SERVER, WAIT).await;
    let (status, content_type, body) = get(&format!("http://{listen}/metrics")).await;
    assert_eq!(status, 200);
    assert_eq!(content_type, "text/plain; version=0.0.4; charset=utf-8");
    for needle in [
        "# TYPE circle_nomad_client_agent_poll_failure gauge\n",
        "# TYPE circle_nomad_server_agent_jobs_running gauge\n",
        "dd_internal_entity_id=\"pod-1\"",
    ] {
        assert!(body.contains(needle), "{needle}:\n{body}");
    }
    let mut promtool = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start promtool");
    std::io::Write::write_all(&mut promtool.stdin.take().expect("stdin"), body.as_bytes())
        .expect("feed promtool");
    let out = promtool.wait_with_output().expect("promtool runs");
    let report = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success() && report.trim().is_empty(),
        "promtool check metrics ({}): {report}\n{body}",
        out.status
    );
    let (status, _, health) = get(&format!("http://{listen}/healthz")).await;
    assert_eq!(status, 200, "{health}");
    assert!(health.contains("client: ok"), "{health}");
    daemon.stop().await;
}

/// A failed poll serves that role's health gauges only: no stale values,
/// as DogStatsD gets none. The other role is not affected.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_poll_serves_only_health_gauges() {
    let listen = free_local_addr();
    let (nomad, statsd, daemon) = setup(
        "1.11.0",
        &[
            "--client",
            "--server",
            "--event-stream",
            "off",
            "--prometheus-listen",
            &listen,
        ],
        &[],
    )
    .await;
    let url = format!("http://{listen}/metrics");
    statsd.next_poll(SERVER, WAIT).await;
    // Only --server reads the job list: fail it, and wake the parked
    // blocking query so that the next read meets the fault.
    nomad.set_fault("/v1/jobs", Fault::Status(500, "rpc error: no leader"));
    nomad.set_index(crate::support::fake_nomad::List::Jobs, 1 << 40);
    let deadline = tokio::time::Instant::now() + WAIT;
    let body = loop {
        let (_, _, body) = get(&url).await;
        if body.contains("\ncircle_nomad_server_agent_poll_failure 1\n") {
            break body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "never failed:\n{body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let server: Vec<&str> = body
        .lines()
        .filter(|l| l.starts_with("circle_nomad_server_agent_"))
        .map(|l| l.split([' ', '{']).next().unwrap_or_default())
        .collect();
    assert_eq!(
        server,
        [
            "circle_nomad_server_agent_poll_failure",
            "circle_nomad_server_agent_poll_duration_seconds",
            "circle_nomad_server_agent_last_success_age_seconds"
        ],
        "{body}"
    );
    assert!(body.contains("circle_nomad_client_agent_resources_total_cpu{"));
    nomad.clear_faults();
    daemon.stop().await;
}

/// `--no-statsd`: `/metrics` is served and not one datagram goes out, even
/// with DogStatsD configured through the environment.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_statsd_sends_nothing() {
    let nomad = FakeNomad::start("1.11.0").await;
    let statsd = StatsdCapture::start().await;
    let listen = free_local_addr();
    let url = nomad.url();
    let port = statsd.port().to_string();
    let cfg = config(
        &[
            "--nomad-uri",
            &url,
            "--client",
            "--interval",
            INTERVAL,
            "--no-statsd",
            "--prometheus-listen",
            &listen,
        ],
        &[("DD_AGENT_HOST", "127.0.0.1"), ("DD_DOGSTATSD_PORT", &port)],
    );
    let daemon = Daemon::start(cfg);
    let metrics = format!("http://{listen}/metrics");
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(r) = reqwest::get(&metrics).await {
            let body = r.text().await.unwrap_or_default();
            if body.contains("circle_nomad_client_agent_last_success_age_seconds ") {
                break;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "/metrics never filled"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Absence can only be checked over time: three more intervals.
    tokio::time::sleep(Duration::from_millis(900)).await;
    assert!(statsd.datagrams().is_empty(), "{:?}", statsd.lines());
    daemon.stop().await;
}

fn run_binary(args: &[&str]) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_remove("NOMAD_ADDR")
        .env_remove("NOMAD_TOKEN")
        .output()
        .expect("run nomad-metrics")
}

/// Turning DogStatsD off with nothing else to report to is a usage error.
#[test]
fn no_statsd_without_prometheus_exits_2() {
    for (args, mentions) in [
        (
            &["start", "--client", "--no-statsd"][..],
            "--prometheus-listen",
        ),
        (
            &[
                "start",
                "--client",
                "--no-statsd",
                "--statsd-host=10.0.0.5",
                "--prometheus-listen=127.0.0.1:0",
            ][..],
            "--statsd-host",
        ),
    ] {
        let out = run_binary(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.contains(mentions), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty());
    }
    let out = run_binary(&["start", "--help"]);
    let help = String::from_utf8_lossy(&out.stdout);
    for needle in ["--prometheus-listen", "--no-statsd", "one listener"] {
        assert!(help.contains(needle), "--help lacks {needle}:\n{help}");
    }
}
