//! `--client` end to end: fake Nomad per version → daemon → UDP capture.

use serde_json::Value;

use crate::for_each_nomad_version;
use crate::support::*;

const DIMENSIONS: [&str; 4] = ["cpu", "memory", "disk", "iops"];

/// Exact values and tags for every version's fixtures.
async fn exact_values_and_tags(version: &str) {
    let (nomad, statsd, daemon) = setup(version, &["--client"], &[]).await;
    let poll = statsd.next_poll(CLIENT, WAIT).await;
    let expected = fixture(version, "expected.json");
    let values = by_name(&poll);
    assert_eq!(
        values.len(),
        client_gauges_per_poll(),
        "12 resource gauges + poll_failure, poll_duration_ms, last_success_age_s: {values:?}"
    );
    for kind in ["total", "used", "available"] {
        for (i, dim) in DIMENSIONS.iter().enumerate() {
            let name = format!("{CLIENT}resources.{kind}.{dim}");
            let want = expected["client"][kind][i].as_f64().unwrap();
            assert_eq!(values.get(&name), Some(&want), "{name} on Nomad {version}");
        }
    }
    assert_eq!(values[&format!("{CLIENT}poll_failure")], 0.0);
    let mut want_tags: Vec<String> = expected["client"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_str().unwrap().to_owned())
        .collect();
    want_tags.sort();
    for line in poll.iter().filter(|l| l.name.contains(".resources.")) {
        assert_eq!(line.tag_set(), want_tags, "{}", line.name);
    }
    // Steady state: agent/self once; the node and its allocations are read
    // once, then kept by blocking queries (at most one request each per
    // interval); each poll checks the leader.
    statsd.next_poll(CLIENT, WAIT).await;
    statsd.next_poll(CLIENT, WAIT).await;
    daemon.stop().await;
    assert_eq!(nomad.count("/v1/agent/self"), 1, "node ID is cached");
    assert!(
        nomad.count("/v1/status/leader") >= 3,
        "a liveness check per poll"
    );
    let node_reads: Vec<_> = nomad
        .requests()
        .into_iter()
        .filter(|r| r.path.starts_with("/v1/node/"))
        .collect();
    for path in ["allocations", ""] {
        let reads: Vec<_> = node_reads
            .iter()
            .filter(|r| r.path.ends_with("/allocations") != path.is_empty())
            .collect();
        assert!(!reads.is_empty(), "{path}");
        assert!(!reads[0].query.contains_key("index"), "a full read first");
        assert!(
            reads[1..]
                .iter()
                .all(|r| r.query.contains_key("index") && r.query.contains_key("wait")),
            "then blocking queries: {reads:?}"
        );
    }
    assert!(nomad.requests().iter().all(|r| r.method == "GET"));
    statsd.assert_clean();
}
for_each_nomad_version!(exact_values_and_tags);

/// `--no-identity-tags` gives exactly the original tool's tags.
async fn original_tag_set(version: &str) {
    let (_nomad, statsd, daemon) = setup(version, &["--client", "--no-identity-tags"], &[]).await;
    let poll = statsd.next_poll(CLIENT, WAIT).await;
    daemon.stop().await;
    for line in &poll {
        let keys: Vec<&str> = line.tags.iter().map(|(k, _)| k.as_str()).collect();
        if !line.name.contains(".resources.") {
            assert!(keys.is_empty(), "{keys:?}");
        } else {
            assert_eq!(keys, ["drain", "status"], "{}", line.name);
        }
    }
}
for_each_nomad_version!(original_tag_set);

/// A poll's gauges go out in as few datagrams as fit in 1432 bytes: each
/// datagram was closed only because the next line would not have fitted.
async fn packed_datagrams(extra: &[&str], want_datagrams: usize) {
    let mut args = vec!["--client"];
    args.extend_from_slice(extra);
    let (_nomad, statsd, daemon) = setup("2.0.5", &args, &[]).await;
    let poll = statsd.next_poll(CLIENT, WAIT).await;
    daemon.stop().await;
    statsd.assert_clean();
    let datagrams = statsd.datagrams();
    let used: Vec<usize> = {
        let mut d: Vec<usize> = poll.iter().map(|l| l.datagram).collect();
        d.dedup();
        d
    };
    assert_eq!(used.len(), want_datagrams, "{used:?}");
    for pair in used.windows(2) {
        let this = &datagrams[pair[0]];
        let next = String::from_utf8_lossy(&datagrams[pair[1]]).into_owned();
        let next_first_line = next.split('\n').next().unwrap().len();
        assert!(
            this.len() + 1 + next_first_line > 1432,
            "datagram of {} bytes closed although a {next_first_line}-byte line would fit",
            this.len()
        );
    }
}

#[tokio::test]
async fn gauges_are_packed_into_few_datagrams() {
    // 13 lines with identity tags are ~2 KB: two datagrams.
    packed_datagrams(&[], 2).await;
}

#[tokio::test]
async fn original_tag_set_fits_one_datagram() {
    packed_datagrams(&["--no-identity-tags"], 1).await;
}

/// Node re-registered under a new ID: the daemon asks the agent again.
#[tokio::test]
async fn node_not_found_rediscovers_the_node() {
    let (nomad, statsd, daemon) = setup("1.11.0", &["--client"], &[]).await;
    statsd.next_poll(CLIENT, WAIT).await;
    let mut agent = fixture("1.11.0", "agent-self.json");
    let mut node = fixture("1.11.0", "node.json");
    let new_id = "99999999-0000-4000-8000-000000000000";
    agent["stats"]["client"]["node_id"] = Value::from(new_id);
    node["ID"] = Value::from(new_id);
    node["Name"] = Value::from("worker-reborn");
    nomad.override_fixture("agent-self.json", agent);
    nomad.override_fixture("node.json", node);
    let line = statsd
        .wait_for("gauges of the new node", WAIT, |l| {
            l.tag("node_id") == Some(new_id)
        })
        .await;
    assert_eq!(line.tag("node_name"), Some("worker-reborn"));
    daemon.stop().await;
    assert_eq!(nomad.count("/v1/agent/self"), 2);
    statsd.assert_clean();
}

/// A server-only agent has no node: that is a poll failure that says why.
#[tokio::test]
async fn agent_without_client_fails_the_poll() {
    let nomad = FakeNomad::start("1.8.0").await;
    let mut agent = fixture("1.8.0", "agent-self.json");
    agent["stats"].as_object_mut().unwrap().remove("client");
    nomad.override_fixture("agent-self.json", agent);
    let statsd = StatsdCapture::start().await;
    let (url, port) = (nomad.url(), statsd.port().to_string());
    let daemon = Daemon::start(config(&args_for(&url, &port, &["--client"]), &[]));
    let poll = statsd.next_poll(CLIENT, WAIT).await;
    daemon.stop().await;
    assert_eq!(
        by_name(&poll).keys().cloned().collect::<Vec<_>>(),
        [
            format!("{CLIENT}poll_duration_ms"),
            format!("{CLIENT}poll_failure")
        ],
        "no resource gauges, no last_success_age_s before a success"
    );
    assert_eq!(by_name(&poll)[&format!("{CLIENT}poll_failure")], 1.0);
}
