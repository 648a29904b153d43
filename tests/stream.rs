//! `--server` following Nomad's event stream, end to end: the daemon runs in
//! this process against the fake Nomad, and after every change its gauges
//! must equal what a fresh full read of the same fake gives (a second
//! in-process daemon, `--server --once --event-stream off`). Reconnects,
//! buffer overruns, snapshot restores and refusals must all end in the same
//! gauges; where the stream cannot be used the daemon keeps blocking
//! queries. And `--client` against a quiet node costs next to nothing.

use std::collections::BTreeMap;
use std::time::Duration;

use nomad_metrics::Config;
use serde_json::Value;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::support::fake_nomad::{Request, ERR_CLOSED};
use crate::support::*;

/// Poll period of these tests (short: every check waits a few polls).
const FAST: &str = "200ms";
/// The reference read identifies itself with this token, so that its
/// requests can be told from the daemon's.
const REFERENCE_TOKEN: &str = "fresh-read-reference";
/// How long the daemon may take to show a change it was sent (several
/// polls: the event, a summary fetch, the next publish, the next poll;
/// generous, as the machine may be busy compiling).
const SETTLE: Duration = Duration::from_secs(10);

/// `name|sorted tags → value` of a poll's cluster gauges.
type Gauges = BTreeMap<String, f64>;

/// The series of a `--server` poll minus the two timing gauges, and minus
/// zeros: a running daemon keeps sending 0 for a series that went away
/// (`SeriesMemory`), a fresh read never saw it.
fn cluster_gauges(poll: &[Line]) -> Gauges {
    let timing = [
        format!("{SERVER}poll_duration_ms|"),
        format!("{SERVER}last_success_age_s|"),
    ];
    series(poll)
        .into_iter()
        .filter(|(k, v)| *v != 0.0 && !timing.iter().any(|t| k.starts_with(t.as_str())))
        .collect()
}

/// What differs between two gauge maps, one line per series.
fn diff(want: &Gauges, got: &Gauges) -> String {
    let mut out = String::new();
    for (k, w) in want {
        match got.get(k) {
            Some(g) if g == w => {}
            Some(g) => out.push_str(&format!("  {k}: want {w}, got {g}\n")),
            None => out.push_str(&format!("  {k}: want {w}, missing\n")),
        }
    }
    for (k, g) in got {
        if !want.contains_key(k) {
            out.push_str(&format!("  {k}: not wanted, got {g}\n"));
        }
    }
    out
}

fn daemon_config(nomad: &FakeNomad, statsd: &StatsdCapture, extra: &[&str]) -> Config {
    daemon_config_env(nomad, statsd, extra, &[])
}

fn daemon_config_env(
    nomad: &FakeNomad,
    statsd: &StatsdCapture,
    extra: &[&str],
    env: &[(&str, &str)],
) -> Config {
    let url = nomad.url();
    let port = statsd.port().to_string();
    let mut args = vec![
        "--nomad-uri",
        url.as_str(),
        "--statsd-host",
        "127.0.0.1",
        "--statsd-port",
        port.as_str(),
        "--interval",
        FAST,
    ];
    args.extend_from_slice(extra);
    config(&args, env)
}

/// A capture and a `--server` daemon (plus `extra`) against `nomad`.
async fn start_server(nomad: &FakeNomad, extra: &[&str]) -> (StatsdCapture, Daemon) {
    let statsd = StatsdCapture::start().await;
    let mut args = vec!["--server"];
    args.extend_from_slice(extra);
    let daemon = Daemon::start(daemon_config(nomad, &statsd, &args));
    (statsd, daemon)
}

/// The gauges a fresh full read of the fake gives now: a second daemon,
/// `--server --once --event-stream off`, with its own capture.
async fn fresh_read(nomad: &FakeNomad) -> Gauges {
    let statsd = StatsdCapture::start().await;
    let (url, port) = (nomad.url(), statsd.port().to_string());
    let cfg = config(
        &args_for(
            &url,
            &port,
            &["--server", "--once", "--event-stream", "off"],
        ),
        &[("NOMAD_TOKEN", REFERENCE_TOKEN)],
    );
    let finished = tokio::time::timeout(WAIT, nomad_metrics::run(cfg, CancellationToken::new()))
        .await
        .expect("the reference read ends in time")
        .expect("the reference read runs");
    assert!(!finished.last_poll_failed, "the reference read failed");
    let poll = statsd.next_poll(SERVER, WAIT).await;
    statsd.assert_clean();
    let gauges = cluster_gauges(&poll);
    assert!(
        gauges
            .keys()
            .any(|k| k.starts_with(&format!("{SERVER}jobs."))),
        "the reference read has job counts: {gauges:?}"
    );
    gauges
}

/// Waits (bounded) until two consecutive polls of the daemon equal a fresh
/// read of the fake (which must not change meanwhile).
async fn assert_fresh(nomad: &FakeNomad, statsd: &StatsdCapture, what: &str) {
    let want = fresh_read(nomad).await;
    let deadline = Instant::now() + SETTLE;
    let mut agreed = 0;
    loop {
        let poll = statsd.next_poll(SERVER, WAIT).await;
        let got = cluster_gauges(&poll);
        if got == want {
            agreed += 1;
            if agreed == 2 {
                return;
            }
        } else {
            agreed = 0;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the daemon's gauges differ from a fresh read after {SETTLE:?}:\n{}",
            diff(&want, &got)
        );
    }
}

/// The daemon's requests (not the reference reads').
fn daemon_requests(nomad: &FakeNomad) -> Vec<Request> {
    nomad
        .requests()
        .into_iter()
        .filter(|r| r.headers.get("x-nomad-token").map(String::as_str) != Some(REFERENCE_TOKEN))
        .collect()
}

/// The daemon's requests to exactly `path`.
fn daemon_on(nomad: &FakeNomad, path: &str) -> Vec<Request> {
    daemon_requests(nomad)
        .into_iter()
        .filter(|r| r.path == path)
        .collect()
}

const STREAM: &str = "/v1/event/stream";

/// Waits (bounded) until the daemon made `n` stream requests; returns them.
async fn stream_requests(nomad: &FakeNomad, n: usize) -> Vec<Request> {
    wait_until(&format!("{n} subscriptions"), || {
        daemon_on(nomad, STREAM).len() >= n
    })
    .await;
    daemon_on(nomad, STREAM)
}

/// Reads of the three lists by the daemon.
fn list_reads(nomad: &FakeNomad) -> [usize; 3] {
    ["/v1/jobs", "/v1/nodes", "/v1/allocations"].map(|p| daemon_on(nomad, p).len())
}

/// splitmix64: a seeded sequence, the same on every run.
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
        (self.next() % n as u64) as usize
    }
    fn pick<'a, T>(&mut self, v: &'a [T]) -> Option<&'a T> {
        (!v.is_empty()).then(|| &v[self.below(v.len())])
    }
}

/// What the churn made, to pick the next mutation from.
#[derive(Default)]
struct Churn {
    jobs: Vec<(String, String)>,
    allocs: Vec<String>,
    serial: usize,
}

impl Churn {
    /// Registers a job and places allocations of it (one batch may hold
    /// more mutations).
    fn new_job(&mut self, nomad: &FakeNomad, rng: &mut Rng, nodes: &[String]) {
        self.serial += 1;
        let ns = ["default", "default", "ci"][rng.below(3)];
        let ty = ["service", "batch", "system"][rng.below(3)];
        let id = format!("churn-{}", self.serial);
        nomad.register_job(ns, &id, ty);
        let on: Vec<&str> = (0..1 + rng.below(3))
            .filter_map(|_| rng.pick(nodes).map(String::as_str))
            .collect();
        let (_, placed) = nomad.place_allocs(ns, &id, &on);
        self.allocs.extend(placed);
        self.jobs.push((ns.to_owned(), id));
    }

    /// One random mutation.
    fn step(&mut self, nomad: &FakeNomad, rng: &mut Rng, nodes: &[String]) {
        match rng.below(10) {
            0 | 1 => self.new_job(nomad, rng, nodes),
            2 | 3 => {
                let n = 1 + rng.below(3);
                let ids: Vec<String> = (0..n)
                    .filter_map(|_| rng.pick(&self.allocs).cloned())
                    .collect();
                let status = ["running", "running", "complete", "failed", "lost"][rng.below(5)];
                let ids: Vec<&str> = ids.iter().map(String::as_str).collect();
                if !ids.is_empty() {
                    nomad.alloc_client_update(&ids, status);
                }
            }
            4 => {
                if let Some((ns, id)) = rng.pick(&self.jobs).cloned() {
                    let on: Vec<&str> = rng.pick(nodes).map(String::as_str).into_iter().collect();
                    let (_, placed) = nomad.place_allocs(&ns, &id, &on);
                    self.allocs.extend(placed);
                }
            }
            5 => {
                if let Some((ns, id)) = rng.pick(&self.jobs).cloned() {
                    nomad.stop_job(&ns, &id);
                }
            }
            6 => {
                if !self.jobs.is_empty() {
                    let (ns, id) = self.jobs.remove(rng.below(self.jobs.len()));
                    nomad.purge_job(&ns, &id);
                }
            }
            7 => {
                for (ns, id) in nomad.jobs_with_status("dead").into_iter().take(2) {
                    nomad.gc_job(&ns, &id);
                    self.jobs.retain(|(n, i)| !(*n == ns && *i == id));
                }
            }
            8 => {
                if let Some(node) = rng.pick(nodes) {
                    nomad.drain_node(node, rng.below(2) == 0);
                }
            }
            _ => {
                if let Some(node) = rng.pick(nodes) {
                    if rng.below(2) == 0 {
                        nomad.node_down(node);
                    } else {
                        nomad.node_up(node);
                    }
                }
            }
        }
    }

    /// A batch of 1 to 4 mutations.
    fn batch(&mut self, nomad: &FakeNomad, rng: &mut Rng, nodes: &[String]) {
        for _ in 0..1 + rng.below(4) {
            self.step(nomad, rng, nodes);
        }
    }
}

/// 15 seeded batches of churn; after each, the daemon's gauges equal a
/// fresh read, from one subscription and one list read.
async fn churn(nomad: FakeNomad, seed: u64) {
    let (statsd, daemon) = start_server(&nomad, &[]).await;
    assert_fresh(&nomad, &statsd, "after the first read").await;
    let nodes = nomad.node_ids();
    let mut rng = Rng(seed);
    let mut churn = Churn::default();
    // A few jobs with allocations to work on, a stop, and a batch job
    // that finishes (dead, not stopped: only its summary tells complete).
    for _ in 0..3 {
        churn.new_job(&nomad, &mut rng, &nodes);
    }
    let (ns, id) = churn.jobs[0].clone();
    nomad.stop_job(&ns, &id);
    nomad.register_job("default", "finishes", "batch");
    let (_, placed) = nomad.place_allocs("default", "finishes", &[&nodes[0]]);
    nomad.alloc_client_update(&[&placed[0]], "running");
    nomad.alloc_client_update(&[&placed[0]], "complete");
    assert_eq!(
        nomad.job_status("default", "finishes").as_deref(),
        Some("dead")
    );
    assert_fresh(&nomad, &statsd, "batch 0").await;
    for batch in 1..15 {
        churn.batch(&nomad, &mut rng, &nodes);
        assert_fresh(&nomad, &statsd, &format!("batch {batch} (seed {seed:#x})")).await;
    }
    daemon.stop().await;
    statsd.assert_clean();
    assert_eq!(
        daemon_on(&nomad, STREAM).len(),
        1,
        "one subscription for the whole churn"
    );
    assert_eq!(
        list_reads(&nomad),
        [1, 1, 1],
        "the lists are read once, never again while the stream is healthy"
    );
    let summaries: Vec<String> = daemon_requests(&nomad)
        .into_iter()
        .filter(|r| r.path.ends_with("/summary"))
        .map(|r| r.path)
        .collect();
    assert!(
        summaries.iter().any(|p| p == "/v1/job/finishes/summary"),
        "the summary of the job that turned dead was fetched: {summaries:?}"
    );
}

mod incremental_gauges_equal_a_fresh_read_after_every_batch {
    use crate::support::fake_nomad::FakeNomad;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nomad_2_0_5() {
        super::churn(FakeNomad::start("2.0.5").await, 0x5eed_0001).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nomad_1_8_0() {
        super::churn(FakeNomad::start_emulating("1.8.0").await, 0x5eed_0002).await;
    }
}

/// Some changes the stream delivers; returns the raft index of the last
/// one (a job registration: it always has an event).
fn some_changes(nomad: &FakeNomad, tag: &str) -> u64 {
    let nodes = nomad.node_ids();
    let id = format!("job-{tag}");
    nomad.register_job("default", &id, "service");
    let (_, placed) = nomad.place_allocs("default", &id, &[&nodes[0], &nodes[1]]);
    nomad.alloc_client_update(&[&placed[0]], "running");
    nomad.drain_node(&nodes[2], true);
    nomad.register_job("default", &format!("{id}-last"), "batch")
}

/// A subscription's `index` parameter.
fn index_of(r: &Request) -> Option<u64> {
    r.query.get("index").and_then(|i| i.parse().ok())
}

/// Cut the stream with an error text, then mid-body: the daemon resumes at
/// the last index + 1, reads the lists once per new subscription, and its
/// gauges equal a fresh read after more changes.
async fn reconnect(version: &str) {
    let nomad = FakeNomad::start(version).await;
    let (statsd, daemon) = start_server(&nomad, &[]).await;
    assert_fresh(&nomad, &statsd, "after the first read").await;
    let mut subs = 1;
    for (round, cut) in [Some(ERR_CLOSED), None].into_iter().enumerate() {
        let last = some_changes(&nomad, &format!("before-cut-{round}"));
        assert_fresh(&nomad, &statsd, &format!("before cut {round}")).await;
        let reads = list_reads(&nomad);
        nomad.cut_streams(cut);
        let requests = stream_requests(&nomad, subs + 1).await;
        subs += 1;
        assert_eq!(
            index_of(&requests[subs - 1]),
            Some(last + 1),
            "cut {cut:?}: resumed after the last index {last}: {:?}",
            requests[subs - 1].query
        );
        some_changes(&nomad, &format!("after-cut-{round}"));
        assert_fresh(&nomad, &statsd, &format!("after cut {cut:?}")).await;
        assert_eq!(
            list_reads(&nomad),
            reads.map(|n| n + 1),
            "cut {cut:?}: the lists read again once"
        );
    }
    daemon.stop().await;
    statsd.assert_clean();
    assert_eq!(
        daemon_on(&nomad, STREAM).len(),
        subs,
        "no extra subscriptions"
    );
}

mod reconnect_resumes_from_the_last_index {
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nomad_2_0_5() {
        super::reconnect("2.0.5").await;
    }

    /// Chunked transport: the error text is the body's tail.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn nomad_1_10_5() {
        super::reconnect("1.10.5").await;
    }
}

/// A reader that fell behind is dropped, and the changes made meanwhile
/// leave the 2-item buffer before it resumes: only the re-read sees them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn buffer_overrun_gap_is_repaired_by_the_reread() {
    let nomad = FakeNomad::start("2.0.5").await;
    let (statsd, daemon) = start_server(&nomad, &[]).await;
    let last = some_changes(&nomad, "before");
    assert_fresh(&nomad, &statsd, "before the overrun").await;
    let reads = list_reads(&nomad);
    nomad.set_buffer_size(2);
    nomad.overrun_subscribers();
    wait_until("the subscription ended", || nomad.subscribers() == 0).await;
    // While the daemon backs off (1 s), many changes: most leave the buffer.
    let nodes = nomad.node_ids();
    for i in 0..6 {
        let id = format!("gap-{i}");
        nomad.register_job("ci", &id, "batch");
        let (_, placed) = nomad.place_allocs("ci", &id, &[&nodes[i % nodes.len()]]);
        nomad.alloc_client_update(&[&placed[0]], "complete");
    }
    nomad.node_down(&nodes[3]);
    let oldest = nomad.buffered_indexes()[0];
    assert!(
        oldest > last + 1,
        "a gap: {last} + 1 left the buffer ({oldest})"
    );
    let requests = stream_requests(&nomad, 2).await;
    assert_eq!(index_of(&requests[1]), Some(last + 1));
    assert_fresh(&nomad, &statsd, "after the overrun").await;
    assert_eq!(list_reads(&nomad), reads.map(|n| n + 1), "one re-read");
    // And the stream is followed again afterwards.
    some_changes(&nomad, "after");
    assert_fresh(&nomad, &statsd, "changes after the repair").await;
    daemon.stop().await;
    statsd.assert_clean();
}

/// An FSM snapshot restore to an older index with silent changes: the
/// subscription is closed, the re-read brings the restored state, and
/// changes after the restore (at indexes the daemon saw before) count.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_restore_is_repaired() {
    let nomad = FakeNomad::start("2.0.5").await;
    let (statsd, daemon) = start_server(&nomad, &[]).await;
    some_changes(&nomad, "before");
    assert_fresh(&nomad, &statsd, "before the restore").await;
    let reads = list_reads(&nomad);
    let nodes = nomad.node_ids();
    let restored_at = nomad.raft_index() - 3;
    nomad.restore_snapshot(restored_at, |t| {
        t.register_job("default", "restored-1", "service", &["build"]);
        t.place_alloc("default", "restored-1", &nodes[0]);
        t.register_job("ci", "restored-2", "batch", &["build"]);
        t.node_drain(&nodes[1], true);
        t.node_status(&nodes[4], "down");
    });
    stream_requests(&nomad, 2).await;
    assert_fresh(&nomad, &statsd, "after the restore").await;
    assert!(
        list_reads(&nomad)[0] > reads[0],
        "the lists were read again"
    );
    some_changes(&nomad, "after");
    assert_fresh(&nomad, &statsd, "changes after the restore").await;
    daemon.stop().await;
    statsd.assert_clean();
}

/// Blocking queries on the jobs list (`index` set) by the daemon.
fn blocking_job_queries(nomad: &FakeNomad) -> usize {
    daemon_on(nomad, "/v1/jobs")
        .iter()
        .filter(|r| index_of(r).is_some_and(|i| i > 0))
        .count()
}

/// Blocking queries in use: changes show, the jobs list is asked with
/// `index`, and there are `subscriptions` stream requests, no more.
async fn on_blocking_queries(
    nomad: &FakeNomad,
    statsd: &StatsdCapture,
    subscriptions: usize,
    what: &str,
) {
    assert_fresh(nomad, statsd, &format!("{what}: before changes")).await;
    some_changes(nomad, "blocking");
    assert_fresh(nomad, statsd, &format!("{what}: after changes")).await;
    wait_until(&format!("{what}: blocking queries on /v1/jobs"), || {
        blocking_job_queries(nomad) > 0
    })
    .await;
    // A few more polls: still no new subscription (no retry loop).
    for _ in 0..3 {
        statsd.next_poll(SERVER, WAIT).await;
    }
    assert_eq!(
        daemon_on(nomad, STREAM).len(),
        subscriptions,
        "{what}: stream attempts"
    );
}

/// A token that may not read the stream: 403 before the first byte
/// (1.11.0, chunked transport) is one attempt; 200 then EOF (2.0.5, the
/// hijacked transport) is three empty streams, then blocking queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_token_falls_back_to_blocking_queries() {
    for (version, attempts) in [("1.11.0", 1), ("2.0.5", 3)] {
        let nomad = FakeNomad::start(version).await;
        nomad.refuse_stream(403, "Permission denied");
        let (statsd, daemon) = start_server(&nomad, &[]).await;
        stream_requests(&nomad, attempts).await;
        on_blocking_queries(&nomad, &statsd, attempts, version).await;
        daemon.stop().await;
        statsd.assert_clean();
    }
}

/// Where the stream cannot be used, it is not even asked for: before 1.0,
/// and on 1.11.2 (its stream answers an `HTTP/0.0` status line). An agent
/// without an event broker answers 500: one attempt, then blocking queries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn old_versions_keep_blocking_queries() {
    for version in ["0.8.7", "1.11.2"] {
        let nomad = FakeNomad::start_emulating(version).await;
        let (statsd, daemon) = start_server(&nomad, &[]).await;
        if version.starts_with("0.") {
            // The fake's transaction model needs 1.0 fixtures; the
            // gauges of the static cluster are checked.
            assert_fresh(&nomad, &statsd, version).await;
            wait_until("a blocking query on /v1/jobs", || {
                blocking_job_queries(&nomad) > 0
            })
            .await;
        } else {
            on_blocking_queries(&nomad, &statsd, 0, version).await;
        }
        daemon.stop().await;
        statsd.assert_clean();
        assert_eq!(nomad.count(STREAM), 0, "{version}: no subscription");
    }
    let nomad = FakeNomad::start("1.11.0").await;
    nomad.no_event_broker();
    let (statsd, daemon) = start_server(&nomad, &[]).await;
    stream_requests(&nomad, 1).await;
    on_blocking_queries(&nomad, &statsd, 1, "no event broker").await;
    daemon.stop().await;
    statsd.assert_clean();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn event_stream_off_keeps_blocking_queries() {
    let nomad = FakeNomad::start("2.0.5").await;
    let (statsd, daemon) = start_server(&nomad, &["--event-stream", "off"]).await;
    on_blocking_queries(&nomad, &statsd, 0, "--event-stream off").await;
    daemon.stop().await;
    statsd.assert_clean();
    assert_eq!(nomad.count(STREAM), 0);
}

/// The poll's own leader check shows a fault within one interval although
/// the stream stays up (and is not reopened for it); the next good poll
/// recovers with the right gauges.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poll_failure_within_one_interval_while_the_stream_is_up() {
    let nomad = FakeNomad::start("2.0.5").await;
    let (statsd, daemon) = start_server(&nomad, &[]).await;
    assert_fresh(&nomad, &statsd, "before the fault").await;
    let failure = format!("{SERVER}poll_failure");
    for prefix in ["/v1/status/leader", "/v1/"] {
        nomad.set_fault(prefix, Fault::Status(500, "No cluster leader"));
        // The poll under way may have checked the leader already; the one
        // after must fail.
        let mut failed = None;
        for _ in 0..2 {
            let poll = statsd.next_poll(SERVER, WAIT).await;
            if by_name(&poll)[&failure] == 1.0 {
                failed = Some(poll);
                break;
            }
        }
        let failed = failed.unwrap_or_else(|| panic!("{prefix}: no failed poll"));
        assert!(
            !failed.iter().any(|l| l.name.contains(".jobs")),
            "{prefix}: a failed poll sends no job counts: {failed:?}"
        );
        nomad.clear_faults();
        assert_fresh(&nomad, &statsd, &format!("{prefix}: recovered")).await;
    }
    daemon.stop().await;
    statsd.assert_clean();
    assert_eq!(
        daemon_on(&nomad, STREAM).len(),
        1,
        "a failed poll does not reopen a healthy stream"
    );
}

/// `--client` against a node that does not change: the node and its
/// allocations wait in blocking queries, each poll costs a leader check.
/// A change of either shows within a couple of intervals.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_steady_state_reads_next_to_nothing() {
    let nomad = FakeNomad::start("2.0.5").await;
    let statsd = StatsdCapture::start().await;
    let daemon = Daemon::start(daemon_config(&nomad, &statsd, &["--client"]));
    for _ in 0..3 {
        statsd.next_poll(CLIENT, WAIT).await;
    }
    let (bytes, requests) = (nomad.bytes_served("/v1/"), nomad.count("/v1/"));
    const POLLS: u64 = 8;
    for _ in 0..POLLS {
        let poll = statsd.next_poll(CLIENT, WAIT).await;
        assert_eq!(by_name(&poll)[&format!("{CLIENT}poll_failure")], 0.0);
    }
    let per_poll = (nomad.bytes_served("/v1/") - bytes) / POLLS;
    let requests = nomad.count("/v1/") - requests;
    assert!(
        per_poll <= 2048,
        "{per_poll} bytes per poll of a quiet node ({requests} requests in {POLLS} polls)"
    );
    assert!(
        nomad.count("/v1/status/leader") as u64 >= POLLS,
        "a leader check per poll"
    );
    // The node changes: its name tag follows.
    let mut node = fixture("2.0.5", "node.json");
    node["Name"] = Value::from("renamed-worker");
    nomad.override_fixture("node.json", node);
    // Counted in polls, not time: the poll under way, then the watcher's
    // answer (at most one download per interval), then one to spare.
    let mut renamed = false;
    for _ in 0..4 {
        let poll = statsd.next_poll(CLIENT, WAIT).await;
        if poll
            .iter()
            .any(|l| l.tag("node_name") == Some("renamed-worker"))
        {
            renamed = true;
            break;
        }
    }
    assert!(renamed, "the node change is shown within 4 polls");
    // Its allocations go away: the used resources follow.
    let used = |poll: &[Line]| -> f64 {
        poll.iter()
            .filter(|l| l.name.contains(".resources.used."))
            .map(|l| l.value)
            .sum()
    };
    let before = used(&statsd.next_poll(CLIENT, WAIT).await);
    assert!(before > 0.0, "the fixture node has allocations");
    nomad.override_fixture("node-allocations.json", Value::Array(Vec::new()));
    let mut emptied = false;
    for _ in 0..4 {
        if used(&statsd.next_poll(CLIENT, WAIT).await) == 0.0 {
            emptied = true;
            break;
        }
    }
    assert!(emptied, "the allocations change is shown within 4 polls");
    daemon.stop().await;
    statsd.assert_clean();
}

/// A restore to just below the last index the daemon applied, then one
/// change: it takes exactly that last index again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_restore_then_a_change_at_the_last_applied_index() {
    let nomad = FakeNomad::start("2.0.5").await;
    let (statsd, daemon) = start_server(&nomad, &[]).await;
    let last = some_changes(&nomad, "before");
    assert_fresh(&nomad, &statsd, "before the restore").await;
    nomad.restore_snapshot(last - 1, |_| {});
    stream_requests(&nomad, 2).await;
    assert_fresh(&nomad, &statsd, "after the restore").await;
    let nodes = nomad.node_ids();
    let (at, _) = nomad.place_allocs("default", "job-before", &[&nodes[3], &nodes[4]]);
    assert_eq!(at, last, "the change reuses the last applied index");
    assert_fresh(&nomad, &statsd, "a change at the last applied index").await;
    daemon.stop().await;
    statsd.assert_clean();
}

/// Nomad 1.9.6 / 1.10.0+ expand `namespace=*` when subscribing: a job in a
/// namespace created later sends no event to that subscription. The daemon
/// watches `/v1/namespaces`, subscribes again and re-reads; on a version
/// with a true wildcard it does not watch at all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_namespace_is_covered_by_a_new_subscription() {
    // With no NOMAD_NAMESPACE, and with NOMAD_NAMESPACE=* (what the Nomad
    // server job of the deploy guide sets): both mean every namespace.
    for env in [&[][..], &[("NOMAD_NAMESPACE", "*")][..]] {
        new_namespace_followed(env).await;
    }
}

async fn new_namespace_followed(env: &[(&str, &str)]) {
    let nomad = FakeNomad::start("2.0.5").await;
    let statsd = StatsdCapture::start().await;
    let daemon = Daemon::start(daemon_config_env(&nomad, &statsd, &["--server"], env));
    assert_fresh(&nomad, &statsd, "start").await;
    wait_until("the namespace watch", || {
        !daemon_on(&nomad, "/v1/namespaces").is_empty()
    })
    .await;
    let before = daemon_on(&nomad, STREAM).len();
    nomad.create_namespace("later");
    nomad.register_job("later", "job-in-a-new-namespace", "service");
    stream_requests(&nomad, before + 1).await;
    assert_fresh(&nomad, &statsd, "after a namespace was created").await;
    daemon.stop().await;
}

/// On a version whose `namespace=*` is a true wildcard there is nothing to
/// watch.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_namespace_watch_where_the_wildcard_is_true() {
    let wildcard = FakeNomad::start_emulating("1.9.5").await;
    let (statsd, daemon) = start_server(&wildcard, &[]).await;
    assert_fresh(&wildcard, &statsd, "1.9.5").await;
    daemon.stop().await;
    assert!(daemon_on(&wildcard, "/v1/namespaces").is_empty());
}
