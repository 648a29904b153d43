//! `--server` at cluster scale: node census, capacity roll-up, jobs by
//! type, blocking queries (idle cluster, changes, index reset, resync),
//! paging, and the leader check.

use serde_json::Value;

use crate::for_each_nomad_version;
use crate::support::fake_nomad::List;
use crate::support::*;

/// Census and capacity series of one poll, keyed `name|tags`.
fn cluster_series(poll: &[Line]) -> std::collections::BTreeMap<String, f64> {
    series(poll)
        .into_iter()
        .filter(|(k, _)| k.contains(".nodes.") || k.contains(".capacity."))
        .collect()
}

fn expected_cluster(version: &str) -> std::collections::BTreeMap<String, f64> {
    let e = fixture(version, "expected.json");
    let mut want = std::collections::BTreeMap::new();
    for (key, count) in e["census"].as_object().unwrap() {
        let (status, tags) = key.split_once('|').unwrap();
        let mut tags: Vec<&str> = tags.split(',').collect();
        tags.sort_unstable();
        want.insert(
            format!("{SERVER}nodes.{status}|{}", tags.join(",")),
            count.as_f64().unwrap(),
        );
    }
    for (group, kinds) in e["capacity"].as_object().unwrap() {
        let mut tags: Vec<&str> = group.split(',').collect();
        tags.sort_unstable();
        for (kind, values) in kinds.as_object().unwrap() {
            for (i, dim) in ["cpu", "memory", "disk"].iter().enumerate() {
                want.insert(
                    format!("{SERVER}capacity.{kind}.{dim}|{}", tags.join(",")),
                    values[i].as_f64().unwrap(),
                );
            }
        }
    }
    want
}

/// Node census and capacity roll-up vs `expected.json`, and the list
/// requests each version gets (`resources`, the allocation list on 1.0+).
async fn census_and_capacity(version: &str) {
    let (nomad, statsd, daemon) = setup(version, &["--server"], &[]).await;
    let poll = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    assert_eq!(by_name(&poll)[&format!("{SERVER}poll_failure")], 0.0);
    // Only some fixture sets carry hand-computed census and capacity
    // figures; the request checks below hold for every version.
    if fixture(version, "expected.json").get("census").is_some() {
        assert_eq!(
            cluster_series(&poll),
            expected_cluster(version),
            "Nomad {version}"
        );
    }
    let nodes_req = nomad
        .requests()
        .into_iter()
        .find(|r| r.path == "/v1/nodes")
        .unwrap();
    let new = !version.starts_with("0.");
    assert_eq!(nodes_req.query.contains_key("resources"), new);
    assert_eq!(
        nomad.count("/v1/allocations") > 0,
        new,
        "allocations listed only on 1.0+"
    );
    if new {
        let allocs = nomad
            .requests()
            .into_iter()
            .find(|r| r.path == "/v1/allocations")
            .unwrap();
        assert_eq!(allocs.query.get("namespace").map(String::as_str), Some("*"));
        assert_eq!(
            allocs.query.get("task_states").map(String::as_str),
            Some("false")
        );
        assert!(allocs
            .query
            .get("filter")
            .is_some_and(|f| f.contains("ClientStatus")));
    }
    assert_eq!(nomad.count("/v1/node/"), 0, "no per-node requests");
    statsd.assert_clean();
}

for_each_nomad_version!(census_and_capacity);

/// Jobs per type and namespace add up to the untagged totals.
#[tokio::test]
async fn jobs_by_type_add_up() {
    let (_nomad, statsd, daemon) = setup("1.11.0", &["--server"], &[]).await;
    let poll = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    let values = by_name(&poll);
    for state in ["pending", "running", "complete", "dead"] {
        let by_type: f64 = poll
            .iter()
            .filter(|l| l.name == format!("{SERVER}jobs_by_type.{state}"))
            .inspect(|l| {
                assert!(
                    l.tag("type").is_some() && l.tag("namespace").is_some(),
                    "{l:?}"
                )
            })
            .map(|l| l.value)
            .sum();
        assert_eq!(by_type, values[&format!("{SERVER}jobs.{state}")], "{state}");
    }
    let s = series(&poll);
    assert_eq!(
        s[&format!("{SERVER}jobs_by_type.dead|namespace:ci,type:service")],
        1.0,
        "the stopped old-api"
    );
    assert_eq!(
        s[&format!("{SERVER}jobs_by_type.running|namespace:ci,type:sysbatch")],
        1.0
    );
}

/// An idle cluster is read once; afterwards blocking queries park and the
/// cached gauges keep coming every interval.
#[tokio::test]
async fn idle_cluster_is_not_downloaded_again() {
    let (nomad, statsd, daemon) =
        setup("1.11.0", &["--server", "--event-stream", "off"], &[]).await;
    for _ in 0..5 {
        let poll = statsd.next_poll(SERVER, WAIT).await;
        assert_eq!(by_name(&poll)[&format!("{SERVER}jobs.dead")], 6.0);
        assert_eq!(by_name(&poll)[&format!("{SERVER}poll_failure")], 0.0);
    }
    daemon.stop().await;
    for path in ["/v1/jobs", "/v1/nodes", "/v1/allocations"] {
        let requests: Vec<_> = nomad
            .requests()
            .into_iter()
            .filter(|r| r.path == path)
            .collect();
        assert_eq!(
            requests.len(),
            2,
            "{path}: one full read, then one parked blocking query"
        );
        assert!(!requests[0].query.contains_key("index"));
        assert_eq!(
            requests[1].query.get("index").map(String::as_str),
            Some("1000")
        );
        assert_eq!(
            requests[1].query.get("wait").map(String::as_str),
            Some("300000ms")
        );
    }
}

/// A change wakes the blocking query; the new counts arrive.
#[tokio::test]
async fn a_change_is_picked_up() {
    let (nomad, statsd, daemon) =
        setup("1.11.0", &["--server", "--event-stream", "off"], &[]).await;
    statsd.next_poll(SERVER, WAIT).await;
    let mut jobs: Vec<_> = nomad.list(List::Jobs).iter().cloned().collect();
    jobs.retain(|j| !j.token.contains("build-105"));
    nomad.set_list(List::Jobs, jobs);
    statsd
        .wait_for("jobs.dead down to 5", WAIT, |l| {
            l.name == format!("{SERVER}jobs.dead") && l.value == 5.0
        })
        .await;
    let blocking = || {
        nomad
            .requests()
            .into_iter()
            .filter(|r| r.path == "/v1/jobs" && r.query.contains_key("index"))
            .count()
    };
    wait_until("woken, then parked again", || blocking() >= 2).await;
    daemon.stop().await;
}

/// The index going backwards (snapshot restore) means a full read.
#[tokio::test]
async fn index_going_backwards_resets() {
    let (nomad, statsd, daemon) =
        setup("1.11.0", &["--server", "--event-stream", "off"], &[]).await;
    statsd.next_poll(SERVER, WAIT).await;
    nomad.set_index(List::Jobs, 7);
    let requests = || -> Vec<_> {
        nomad
            .requests()
            .into_iter()
            .filter(|r| r.path == "/v1/jobs")
            .collect()
    };
    wait_until("a full read, then a query blocking on index 7", || {
        let r = requests();
        r.len() >= 4
            && !r[2].query.contains_key("index")
            && r[3].query.get("index").map(String::as_str) == Some("7")
    })
    .await;
    let poll = statsd.next_poll(SERVER, WAIT).await;
    assert_eq!(by_name(&poll)[&format!("{SERVER}poll_failure")], 0.0);
    daemon.stop().await;
}

/// `--resync` forces full reads even when nothing changed.
#[tokio::test]
async fn resync_rereads_unchanged_lists() {
    let (nomad, statsd, daemon) = setup(
        "1.11.0",
        &["--server", "--event-stream", "off", "--resync", "500ms"],
        &[],
    )
    .await;
    statsd.next_poll(SERVER, WAIT).await;
    let full_reads = || {
        nomad
            .requests()
            .into_iter()
            .filter(|r| r.path == "/v1/jobs" && !r.query.contains_key("index"))
            .count()
    };
    // Nothing changes; the parked query's wait ends at the resync.
    wait_until("two resyncs", || full_reads() >= 3).await;
    let parked = nomad
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/jobs" && r.query.contains_key("wait"))
        .map(|r| {
            r.query["wait"]
                .trim_end_matches("ms")
                .parse::<u64>()
                .unwrap()
        })
        .max()
        .unwrap();
    assert!(parked <= 500, "never parked past the resync: {parked} ms");
    daemon.stop().await;
}

/// Paged reads (`--page-size`, Nomad 1.3+) count every page.
#[tokio::test]
async fn counts_across_pages() {
    let (nomad, statsd, daemon) = setup("1.11.0", &["--server", "--page-size", "3"], &[]).await;
    let poll = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    let v = by_name(&poll);
    let e = fixture("1.11.0", "expected.json");
    for state in ["pending", "running", "complete", "dead"] {
        assert_eq!(
            v[&format!("{SERVER}jobs.{state}")],
            e["jobs"][state].as_f64().unwrap()
        );
    }
    let pages: Vec<_> = nomad
        .requests()
        .into_iter()
        .filter(|r| r.path == "/v1/jobs")
        .collect();
    assert!(pages.len() >= 4, "11 jobs in pages of 3: {}", pages.len());
    assert!(pages
        .iter()
        .all(|r| r.query.get("per_page").map(String::as_str) == Some("3")));
    assert!(pages.iter().any(|r| r.query.contains_key("next_token")));
    // Census over pages of nodes too.
    assert_eq!(v[&format!("{SERVER}nodes.down")], 1.0);
}

/// A node status series that empties is sent as 0, not dropped.
#[tokio::test]
async fn emptied_census_series_are_sent_as_zero() {
    let (nomad, statsd, daemon) =
        setup("1.11.0", &["--server", "--event-stream", "off"], &[]).await;
    let first = statsd.next_poll(SERVER, WAIT).await;
    let down_key = format!("{SERVER}nodes.down|datacenter:us-west-2,drain:false,eligibility:eligible,node_class:general,node_pool:default");
    assert_eq!(series(&first)[&down_key], 1.0);
    let mut nodes: Vec<_> = nomad.list(List::Nodes).iter().cloned().collect();
    nodes.retain(|n| !String::from_utf8_lossy(&n.json).contains("\"Status\":\"down\""));
    nomad.set_list(List::Nodes, nodes);
    let zero = statsd
        .wait_for("nodes.down 0", WAIT, |l| {
            l.name == format!("{SERVER}nodes.down") && l.value == 0.0
        })
        .await;
    assert_eq!(zero.tag("node_class"), Some("general"));
    daemon.stop().await;
}

/// A token without node:read turns the cluster view off, not the daemon.
#[tokio::test]
async fn forbidden_node_list_disables_census_only() {
    let nomad = FakeNomad::start("1.11.0").await;
    nomad.set_fault("/v1/nodes", Fault::Status(403, "Permission denied"));
    nomad.set_fault("/v1/allocations", Fault::Status(403, "Permission denied"));
    let statsd = StatsdCapture::start().await;
    let (url, port) = (nomad.url(), statsd.port().to_string());
    let daemon = Daemon::start(config(&args_for(&url, &port, &["--server"]), &[]));
    let poll = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    let v = by_name(&poll);
    assert_eq!(v[&format!("{SERVER}poll_failure")], 0.0);
    assert_eq!(v[&format!("{SERVER}jobs.running")], 2.0);
    assert!(!v
        .keys()
        .any(|k| k.contains(".nodes.") || k.contains(".capacity.")));
}

/// No cluster leader: the poll fails (data could be stale), and recovers.
#[tokio::test]
async fn no_leader_fails_the_poll() {
    let (nomad, statsd, daemon) = setup("1.11.0", &["--server"], &[]).await;
    statsd.next_poll(SERVER, WAIT).await;
    nomad.override_path("/v1/status/leader", Value::from(""));
    let failed = statsd
        .wait_for("poll_failure 1", WAIT, |l| {
            l.name == format!("{SERVER}poll_failure") && l.value == 1.0
        })
        .await;
    assert!(failed.tags.is_empty());
    daemon.stop().await;
}

/// Blocking queries parked while Nomad holds them; gauges still every tick.
#[tokio::test]
async fn held_blocking_query_keeps_gauges_flowing() {
    let (nomad, statsd, daemon) = setup("2.0.5", &["--server", "--event-stream", "off"], &[]).await;
    statsd.next_poll(SERVER, WAIT).await;
    // The fake parks index queries for up to the wait (5 min), far longer
    // than WAIT: every poll below arrives only if polls do not wait on them.
    for _ in 0..4 {
        let poll = statsd.next_poll(SERVER, WAIT).await;
        assert_eq!(by_name(&poll)[&format!("{SERVER}jobs.running")], 2.0);
        assert_eq!(by_name(&poll)[&format!("{SERVER}poll_failure")], 0.0);
    }
    daemon.stop().await;
    assert_eq!(nomad.count("/v1/jobs"), 2);
}

/// `--stale` lets any server answer every list query.
#[tokio::test]
async fn stale_reads() {
    let (nomad, statsd, daemon) = setup("1.11.0", &["--server", "--stale"], &[]).await;
    statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    let lists: Vec<_> = nomad
        .requests()
        .into_iter()
        .filter(|r| ["/v1/jobs", "/v1/nodes", "/v1/allocations"].contains(&r.path.as_str()))
        .collect();
    assert!(lists.len() >= 3);
    assert!(
        lists
            .iter()
            .all(|r| r.query.get("stale").map(String::as_str) == Some("")),
        "{lists:?}"
    );
}

/// A failing node or allocation list drops the cluster-view gauges only: the
/// job counts (the contract) still go out with poll_failure 0.
#[tokio::test]
async fn failing_cluster_view_is_not_a_poll_failure() {
    let nomad = FakeNomad::start("1.11.0").await;
    nomad.set_fault("/v1/allocations", Fault::Status(500, "rpc error: timeout"));
    let statsd = StatsdCapture::start().await;
    let (url, port) = (nomad.url(), statsd.port().to_string());
    let daemon = Daemon::start(config(&args_for(&url, &port, &["--server"]), &[]));
    let poll = statsd.next_poll(SERVER, WAIT).await;
    let v = by_name(&poll);
    assert_eq!(v[&format!("{SERVER}poll_failure")], 0.0);
    assert_eq!(v[&format!("{SERVER}jobs.dead")], 6.0);
    assert_eq!(
        v[&format!("{SERVER}nodes.ready")],
        2.0,
        "census still there"
    );
    assert!(
        !v.keys().any(|k| k.contains(".capacity.")),
        "capacity left out: {v:?}"
    );
    nomad.clear_faults();
    statsd
        .wait_for("capacity back", WAIT, |l| {
            l.name == format!("{SERVER}capacity.total.cpu")
        })
        .await;
    daemon.stop().await;
}

/// Without the job counts, nothing but the health gauges goes out.
#[tokio::test]
async fn failing_job_list_sends_nothing_else() {
    let nomad = FakeNomad::start("1.11.0").await;
    nomad.set_fault("/v1/jobs", Fault::BadJson);
    let statsd = StatsdCapture::start().await;
    let (url, port) = (nomad.url(), statsd.port().to_string());
    let daemon = Daemon::start(config(&args_for(&url, &port, &["--server"]), &[]));
    let poll = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    let names: Vec<&str> = poll.iter().map(|l| l.name.as_str()).collect();
    assert_eq!(
        names,
        [
            format!("{SERVER}poll_duration_ms"),
            format!("{SERVER}poll_failure")
        ],
        "{poll:?}"
    );
    assert_eq!(poll[1].value, 1.0);
}

/// `--no-cluster-view`: job counts only, no node or allocation list read.
#[tokio::test]
async fn no_cluster_view() {
    let (nomad, statsd, daemon) = setup("1.11.0", &["--server", "--no-cluster-view"], &[]).await;
    let poll = statsd.next_poll(SERVER, WAIT).await;
    daemon.stop().await;
    assert_eq!(by_name(&poll)[&format!("{SERVER}jobs.dead")], 6.0);
    assert!(!poll
        .iter()
        .any(|l| l.name.contains(".nodes.") || l.name.contains(".capacity.")));
    assert_eq!(nomad.count("/v1/nodes") + nomad.count("/v1/allocations"), 0);
}

/// A large list (20,000 synthetic jobs, ~12 MB, sent as one chunk like Go
/// does) is counted exactly: chunks far larger than the element cap are fine.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_synthetic_list_is_counted_exactly() {
    let nomad = FakeNomad::start("1.11.0").await;
    nomad.set_list(
        List::Jobs,
        crate::support::fake_nomad::synthetic(List::Jobs, 20_000, 0),
    );
    let statsd = StatsdCapture::start().await;
    let (url, port) = (nomad.url(), statsd.port().to_string());
    let daemon = Daemon::start(config(
        &args_for(&url, &port, &["--server", "--no-cluster-view"]),
        &[],
    ));
    // A debug build may need a few polls for the first full read.
    let poll = loop {
        let poll = statsd.next_poll(SERVER, WAIT).await;
        if by_name(&poll)[&format!("{SERVER}poll_failure")] == 0.0 {
            break poll;
        }
    };
    daemon.stop().await;
    let v = by_name(&poll);
    assert_eq!(v[&format!("{SERVER}poll_failure")], 0.0, "{poll:?}");
    // Per 10 synthetic jobs: 1 pending, 2 running, 4 complete, 3 dead.
    for (state, n) in [
        ("pending", 2000.0),
        ("running", 4000.0),
        ("complete", 8000.0),
        ("dead", 6000.0),
    ] {
        assert_eq!(v[&format!("{SERVER}jobs.{state}")], n, "{state}");
    }
}
