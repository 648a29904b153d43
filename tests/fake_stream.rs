//! The fake Nomad's event stream and mutable cluster, checked on the wire
//! with a raw HTTP/1.1 client (so chunking, error tails, the 1.11.2 status
//! line and EOFs are visible), and decoded with the daemon's own decoder.

use std::time::Duration;

use nomad_metrics::nomad::events::{Frame, LineDecoder, Payload, StreamError};
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::fake_nomad::{FakeNomad, List, ERR_CLOSED, ERR_EXPIRED};

/// A response read raw: the head, the body (de-chunked when chunked),
/// and whether the server closed the connection.
struct Raw {
    /// Bytes on the wire.
    wire: usize,
    head: String,
    body: Vec<u8>,
    eof: bool,
    chunked_done: bool,
}

fn dechunk(mut data: &[u8]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    loop {
        let Some(nl) = data.windows(2).position(|w| w == b"\r\n") else {
            return (out, false);
        };
        let n =
            usize::from_str_radix(std::str::from_utf8(&data[..nl]).unwrap().trim(), 16).unwrap();
        if n == 0 {
            return (out, true);
        }
        let start = nl + 2;
        if data.len() < start + n + 2 {
            out.extend_from_slice(&data[start..data.len().min(start + n)]);
            return (out, false);
        }
        out.extend_from_slice(&data[start..start + n]);
        data = &data[start + n + 2..];
    }
}

/// GETs `target` and reads for at most `read_for` (less if the server
/// closes).
async fn get(fake: &FakeNomad, target: &str, read_for: Duration) -> Raw {
    let mut s = TcpStream::connect(fake.addr).await.unwrap();
    s.write_all(format!("GET {target} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .await
        .unwrap();
    let mut data = Vec::new();
    let deadline = tokio::time::Instant::now() + read_for;
    let mut eof = false;
    let mut buf = [0u8; 65536];
    // Bounded by the deadline.
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => {
                eof = true;
                break;
            }
            Ok(Ok(n)) => data.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
        // A complete non-stream answer: stop at its end.
        if let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&data[..end]).to_lowercase();
            if let Some(len) = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|l| l.trim().parse::<usize>().ok())
            {
                if data.len() >= end + 4 + len {
                    break;
                }
            }
        }
    }
    let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Raw {
            wire: data.len(),
            head: String::from_utf8_lossy(&data).into_owned(),
            body: Vec::new(),
            eof,
            chunked_done: false,
        };
    };
    let head = String::from_utf8_lossy(&data[..end]).into_owned();
    let rest = &data[end + 4..];
    let (body, chunked_done) = if head.to_lowercase().contains("transfer-encoding: chunked") {
        dechunk(rest)
    } else {
        (rest.to_vec(), false)
    };
    Raw {
        wire: data.len(),
        head,
        body,
        eof,
        chunked_done,
    }
}

const QUICK: Duration = Duration::from_millis(400);

/// The event lines of a body (heartbeats dropped), parsed.
fn lines(body: &[u8]) -> Vec<Value> {
    body.split(|&b| b == b'\n')
        .filter(|l| !l.is_empty() && *l != b"{}")
        .filter_map(|l| serde_json::from_slice(l).ok())
        .collect()
}

/// (Index, Topic, Type) of every event.
fn kinds(body: &[u8]) -> Vec<(u64, String, String)> {
    lines(body)
        .iter()
        .flat_map(|l| {
            let i = l["Index"].as_u64().unwrap();
            l["Events"]
                .as_array()
                .unwrap()
                .iter()
                .map(move |e| {
                    assert_eq!(e["Index"].as_u64(), Some(i), "event index = line index");
                    (
                        i,
                        e["Topic"].as_str().unwrap().to_owned(),
                        e["Type"].as_str().unwrap().to_owned(),
                    )
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

fn has(body: &[u8], index: u64, topic: &str, ty: &str) -> bool {
    kinds(body)
        .iter()
        .any(|(i, t, k)| *i == index && t == topic && k == ty)
}

const ALL: &str = "/v1/event/stream?topic=Job&topic=Allocation&topic=Node&namespace=*";

async fn replay(fake: &FakeNomad) -> Vec<u8> {
    get(fake, ALL, QUICK).await.body
}

fn node(fake: &FakeNomad) -> String {
    fake.node_ids().into_iter().next().unwrap()
}

#[tokio::test]
async fn heartbeats_initial_and_periodic() {
    let fake = FakeNomad::start("2.0.5").await;
    fake.set_heartbeat(Duration::from_millis(100));
    let r = get(&fake, ALL, Duration::from_millis(450)).await;
    assert!(r.head.starts_with("HTTP/1.1 200 OK"), "{}", r.head);
    assert!(r.head.contains("Content-Type: application/json"));
    assert!(r.body.starts_with(b"{}\n"), "initial heartbeat");
    let beats = r
        .body
        .split(|&b| b == b'\n')
        .filter(|l| *l == b"{}")
        .count();
    assert!(beats >= 3, "{beats} heartbeats in 450 ms");
    // 1.0.6: no initial heartbeat, so no head before the first line.
    let old = FakeNomad::start_emulating("1.0.6").await;
    let r = get(&old, ALL, Duration::from_millis(300)).await;
    assert!(r.head.is_empty() && r.body.is_empty(), "{:?}", r.head);
    let i = old.register_job("default", "j", "batch");
    // (`*` is literal on 1.0.6: ask for `default`.)
    let r = get(&old, "/v1/event/stream?topic=Job", QUICK).await;
    assert!(r.head.starts_with("HTTP/1.1 200"), "{}", r.head);
    assert!(has(&r.body, i, "Job", "JobRegistered"));
    assert!(!r.body.starts_with(b"{}"));
}

#[tokio::test]
async fn index_is_inclusive_oldest_when_too_old_newest_when_beyond() {
    let fake = FakeNomad::start("2.0.5").await;
    let idx: Vec<u64> = (0..5)
        .map(|i| fake.register_job("default", &format!("j{i}"), "batch"))
        .collect();
    let first = |target: String| {
        let fake = &fake;
        async move {
            let body = get(fake, &target, QUICK).await.body;
            lines(&body)
                .iter()
                .map(|l| l["Index"].as_u64().unwrap())
                .collect::<Vec<_>>()
        }
    };
    let q = |i: u64| format!("/v1/event/stream?topic=Job&index={i}");
    assert_eq!(first(q(idx[2])).await, idx[2..].to_vec(), "inclusive start");
    assert_eq!(first(q(0)).await, idx, "0: the whole buffer");
    fake.set_buffer_size(3);
    assert_eq!(fake.buffered_indexes(), idx[2..].to_vec());
    assert_eq!(
        first(q(1)).await,
        idx[2..].to_vec(),
        "too old: the oldest, silently"
    );
    assert_eq!(
        first(q(idx[4] + 50)).await,
        vec![idx[4]],
        "beyond: the newest again"
    );
}

#[tokio::test]
async fn one_line_per_index_with_the_job_status_change() {
    let fake = FakeNomad::start("2.0.5").await;
    let nodes = fake.node_ids();
    let reg = fake.register_job("ci", "build-7", "batch");
    assert_eq!(fake.job_status("ci", "build-7").as_deref(), Some("pending"));
    let (plan, allocs) = fake.place_allocs("ci", "build-7", &[&nodes[0], &nodes[1]]);
    assert_eq!(allocs.len(), 2);
    assert_eq!(fake.job_status("ci", "build-7").as_deref(), Some("running"));
    let ids: Vec<&str> = allocs.iter().map(String::as_str).collect();
    let run = fake.alloc_client_update(&ids, "running");
    let done = fake.alloc_client_update(&ids, "complete");
    assert_eq!(fake.job_status("ci", "build-7").as_deref(), Some("dead"));
    let body = replay(&fake).await;
    let all = lines(&body);
    let mut seen: Vec<u64> = all.iter().map(|l| l["Index"].as_u64().unwrap()).collect();
    let n = seen.len();
    seen.dedup();
    assert_eq!(seen.len(), n, "one line per index");
    assert!(has(&body, reg, "Job", "JobRegistered"));
    let plan_line = all.iter().find(|l| l["Index"] == plan).unwrap();
    assert_eq!(
        plan_line["Events"].as_array().unwrap().len(),
        3,
        "2 allocs + the job"
    );
    assert!(has(&body, plan, "Job", "PlanResult"));
    assert!(has(&body, run, "Allocation", "AllocationUpdated"));
    assert!(
        !has(&body, run, "Job", "AllocationUpdated"),
        "still running: no job event"
    );
    assert!(
        has(&body, done, "Job", "AllocationUpdated"),
        "status change in the same line"
    );
    let job = all.iter().find(|l| l["Index"] == done).unwrap()["Events"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["Topic"] == "Job")
        .unwrap()["Payload"]["Job"]
        .clone();
    assert_eq!(job["Status"], "dead");
    assert_eq!(job["ModifyIndex"], done);
    assert!(job["TaskGroups"].is_array());
    // The lists agree; the summary counted the completions, silently.
    let summary = get(&fake, "/v1/job/build-7/summary?namespace=ci", QUICK).await;
    let s: Value = serde_json::from_slice(&summary.body).unwrap();
    assert_eq!(s["Summary"]["build"]["Complete"], 2);
    assert_eq!(s["Summary"]["build"]["Running"], 0);
    assert!(summary.head.contains(&format!("X-Nomad-Index: {done}")));
    let jobs = get(&fake, "/v1/jobs?namespace=*", QUICK).await;
    assert!(jobs.head.contains(&format!("X-Nomad-Index: {done}")));
    let allocs_list = get(&fake, "/v1/allocations?namespace=*", QUICK).await;
    assert!(allocs_list.head.contains(&format!("X-Nomad-Index: {done}")));
    assert!(String::from_utf8_lossy(&allocs_list.body).contains(&allocs[0]));
}

#[tokio::test]
async fn payloads_decode_with_the_daemons_decoder() {
    let fake = FakeNomad::start("2.0.5").await;
    let n = node(&fake);
    fake.register_job("default", "web", "service");
    let (_, a) = fake.place_allocs("default", "web", &[&n]);
    fake.alloc_client_update(&[&a[0]], "running");
    fake.drain_node(&n, true);
    let body = replay(&fake).await;
    let mut d = LineDecoder::default();
    let frames = d.feed(&body).unwrap();
    let (mut jobs, mut allocs, mut nodes) = (0, 0, 0);
    for f in frames {
        if let Frame::Events { events, .. } = f {
            for e in events {
                match e.payload {
                    Payload::Job(j) => {
                        assert_eq!(j.id, "web");
                        jobs += 1;
                    }
                    Payload::Allocation(al) => {
                        assert!(al.alloc.allocated_resources.is_some());
                        allocs += 1;
                    }
                    Payload::Node(_) => nodes += 1,
                    Payload::Other => panic!("undecoded {} payload", e.topic),
                }
            }
        }
    }
    assert!(
        jobs >= 2 && allocs == 2 && nodes >= 2,
        "{jobs} {allocs} {nodes}"
    );
}

#[tokio::test]
async fn node_types_per_version() {
    for (v, eligibility) in [("2.0.5", "NodeEligibility"), ("1.8.0", "NodeDrain")] {
        let fake = FakeNomad::start(v).await;
        let n = node(&fake);
        let drain = fake.drain_node(&n, true);
        let undrain = fake.drain_node(&n, false);
        let elig = fake.set_node_eligibility(&n, false);
        let down = fake.node_down(&n);
        let up = fake.node_up(&n);
        let new = fake.node_up("ffffffff-0000-4000-8000-000000000000");
        let purge = fake.purge_node("ffffffff-0000-4000-8000-000000000000");
        let gc = fake.gc_node(&n);
        let body = replay(&fake).await;
        assert!(has(&body, drain, "Node", "NodeDrain"), "{v}");
        assert!(has(&body, undrain, "Node", "NodeDrain"), "{v}");
        assert!(has(&body, elig, "Node", eligibility), "{v}");
        assert!(has(&body, down, "Node", "NodeStreamEvent"), "{v}");
        assert!(has(&body, up, "Node", "NodeStreamEvent"), "{v}");
        assert!(has(&body, new, "Node", "NodeRegistration"), "{v}");
        assert!(has(&body, purge, "Node", "NodeDeregistration"), "{v}");
        assert!(
            !kinds(&body).iter().any(|(i, _, _)| *i == gc),
            "{v}: node GC is silent"
        );
        let nodes = get(&fake, "/v1/nodes", QUICK).await;
        assert!(
            !String::from_utf8_lossy(&nodes.body).contains(&n),
            "{v}: GC'd"
        );
        let drained = lines(&body)
            .into_iter()
            .find(|l| l["Index"] == drain)
            .unwrap();
        let payload = &drained["Events"][0]["Payload"]["Node"];
        assert!(payload["DrainStrategy"].is_object() && payload.get("Drain").is_none());
    }
}

#[tokio::test]
async fn deletions_per_version() {
    // (version, purge emits, Deleted flag, purge drops allocs silently)
    for (v, emits, flag, drops) in [
        ("1.7.2", false, false, false),
        ("1.7.4", false, false, true),
        ("1.7.5", true, false, true),
        ("1.11.2", true, false, true),
        ("2.0.5", true, true, true),
    ] {
        let fake = FakeNomad::start_emulating(v).await;
        let n = node(&fake);
        fake.register_job("default", "p", "service");
        let (_, a) = fake.place_allocs("default", "p", &[&n]);
        fake.alloc_client_update(&[&a[0]], "running");
        // The last index: the purge, or the plan stopping its allocations.
        let purge = fake.purge_job("default", "p");
        fake.register_job("default", "g", "batch");
        let (_, b) = fake.place_allocs("default", "g", &[&n]);
        fake.alloc_client_update(&[&b[0]], "complete");
        let gc = fake.gc_job("default", "g").expect("dead");
        let body = if v == "1.11.2" {
            // The broken status line: read the body raw all the same.
            get(&fake, ALL, QUICK).await.body
        } else {
            replay(&fake).await
        };
        let job_events: Vec<Value> = lines(&body)
            .into_iter()
            .flat_map(|l| l["Events"].as_array().unwrap().clone())
            .filter(|e| e["Topic"] == "Job" && (e["Index"] == purge || e["Index"] == gc))
            .collect();
        if emits {
            assert_eq!(job_events.len(), 2, "{v}");
            assert_eq!(job_events[0]["Type"], "JobDeregistered", "{v}");
            assert_eq!(job_events[1]["Type"], "JobBatchDeregistered", "{v}");
            assert_eq!(
                job_events[0]["Payload"]["Job"]["Status"], "running",
                "{v}: as it was"
            );
            for e in &job_events {
                assert_eq!(e["Payload"].get("Deleted").is_some(), flag, "{v}");
            }
        } else {
            assert!(job_events.is_empty(), "{v}: {job_events:?}");
        }
        let allocs =
            String::from_utf8_lossy(&get(&fake, "/v1/allocations?namespace=*", QUICK).await.body)
                .into_owned();
        let stop_plan = kinds(&body)
            .iter()
            .any(|(i, t, k)| *i >= purge && t == "Allocation" && k == "PlanResult")
            && lines(&body).iter().any(|l| {
                l["Index"].as_u64() >= Some(purge)
                    && l["Events"][0]["Key"] == a[0].as_str()
                    && l["Events"][0]["Payload"]["Allocation"]["DesiredStatus"] == "stop"
            });
        assert_eq!(allocs.contains(&a[0]), !drops, "{v}");
        assert_eq!(
            stop_plan, !drops,
            "{v}: the scheduler stops them before #19609"
        );
        assert!(!allocs.contains(&b[0]), "{v}: GC'd with its job");
        let summary = get(&fake, "/v1/job/p/summary", QUICK).await;
        assert!(
            summary.head.contains("404") && summary.body == b"job not found",
            "{v}"
        );
    }
}

#[tokio::test]
async fn node_noise_per_version() {
    for (v, noisy) in [
        ("1.3.9", false),
        ("1.3.10", true),
        ("1.4.4", false),
        ("1.5.0", true),
        ("2.0.5", true),
    ] {
        let fake = FakeNomad::start_emulating(v).await;
        let n = node(&fake);
        fake.register_job("default", "w", "service");
        let (_, a) = fake.place_allocs("default", "w", &[&n]);
        let before = get(&fake, "/v1/nodes", QUICK).await;
        let upd = fake.alloc_client_update(&[&a[0]], "running");
        let body = replay(&fake).await;
        assert_eq!(has(&body, upd, "Node", "AllocationUpdated"), noisy, "{v}");
        let after = get(&fake, "/v1/nodes", QUICK).await;
        assert_eq!(
            before.head != after.head,
            noisy,
            "{v}: the nodes index moves too"
        );
    }
}

#[tokio::test]
async fn endings_per_transport() {
    // Before 1.11.2: the text after the last line, no newline, chunked end.
    for (v, hijacked) in [("1.11.0", false), ("2.0.5", true)] {
        let fake = FakeNomad::start(v).await;
        let i = fake.register_job("default", "j", "batch");
        let f = &fake;
        let reader = async move { get(f, ALL, Duration::from_secs(5)).await };
        let cutter = async {
            for _ in 0..100 {
                if fake.subscribers() == 1 {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
            fake.cut_streams(Some(ERR_EXPIRED));
        };
        let (r, ()) = tokio::join!(reader, cutter);
        assert!(r.eof, "{v}: closed");
        assert!(has(&r.body, i, "Job", "JobRegistered"));
        let mut d = LineDecoder::default();
        d.feed(&r.body).unwrap();
        let (_, ending) = d.finish();
        if hijacked {
            assert!(r.head.contains("Connection: close") && !r.head.contains("chunked"));
            assert!(r.body.ends_with(b"\n"), "{v}: bare EOF");
            assert!(matches!(ending, StreamError::Eof), "{v}: {ending:?}");
        } else {
            assert!(r.chunked_done, "{v}: the chunked body is ended");
            assert!(r.body.ends_with(ERR_EXPIRED.as_bytes()), "{v}");
            assert!(
                matches!(ending, StreamError::TokenExpired),
                "{v}: {ending:?}"
            );
        }
        assert_eq!(fake.subscribers(), 0);
    }
}

#[tokio::test]
async fn snapshot_restore_closes_and_empties_silently() {
    let fake = FakeNomad::start("1.11.0").await;
    fake.register_job("default", "a", "batch");
    let f = &fake;
    let reader = async move { get(f, ALL, Duration::from_secs(5)).await };
    let restorer = async {
        for _ in 0..100 {
            if fake.subscribers() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        fake.restore_snapshot(500, |t| {
            t.delete_job("default", "a");
            t.register_job("default", "b", "service", &["web"]);
        });
    };
    let (r, ()) = tokio::join!(reader, restorer);
    assert!(r.body.ends_with(ERR_CLOSED.as_bytes()));
    assert!(fake.buffered_indexes().is_empty(), "an empty buffer");
    let jobs = get(&fake, "/v1/jobs?namespace=*", QUICK).await;
    assert!(
        jobs.head.contains("X-Nomad-Index: 500"),
        "went backwards: {}",
        jobs.head
    );
    let text = String::from_utf8_lossy(&jobs.body);
    assert!(text.contains("\"ID\":\"b\"") && !text.contains("\"ID\":\"a\""));
    let after = replay(&fake).await;
    assert!(
        lines(&after).is_empty(),
        "the restored data produced no events"
    );
    assert_eq!(fake.register_job("default", "c", "batch"), 501);
}

#[tokio::test]
async fn status_line_of_1_11_2_and_refusals() {
    let broken = FakeNomad::start_emulating("1.11.2").await;
    let r = get(&broken, ALL, QUICK).await;
    assert!(r.head.starts_with("HTTP/0.0 200 OK"), "{}", r.head);
    let fixed = FakeNomad::start_emulating("1.11.3").await;
    assert!(get(&fixed, ALL, QUICK)
        .await
        .head
        .starts_with("HTTP/1.1 200 OK"));
    // 403 before the first byte before 1.11.2; 200 then EOF after.
    let old = FakeNomad::start("1.11.0").await;
    old.refuse_stream(403, "Permission denied");
    let r = get(&old, ALL, QUICK).await;
    assert!(r.head.starts_with("HTTP/1.1 403"), "{}", r.head);
    assert_eq!(r.body, b"Permission denied");
    let new = FakeNomad::start("2.0.5").await;
    new.refuse_stream(403, "Permission denied");
    let r = get(&new, ALL, QUICK).await;
    assert!(
        r.head.starts_with("HTTP/1.1 200") && r.eof && r.body.is_empty(),
        "{}",
        r.head
    );
    new.allow_stream();
    new.no_event_broker();
    let r = get(&new, ALL, QUICK).await;
    assert!(r.eof && r.body.is_empty());
    old.allow_stream();
    old.no_event_broker();
    let r = get(&old, ALL, QUICK).await;
    assert!(r.head.starts_with("HTTP/1.1 500") && r.body == b"EventBroker not configured");
}

#[tokio::test]
async fn namespace_eras_and_topic_keys() {
    // Literal (1.0.11): `*` matches no namespaced event; Node events pass.
    let lit = FakeNomad::start_emulating("1.0.11").await;
    let j = lit.register_job("default", "x", "batch");
    let d = lit.node_down(&node(&lit));
    let body = replay(&lit).await;
    assert!(!has(&body, j, "Job", "JobRegistered") && has(&body, d, "Node", "NodeStreamEvent"));
    // Wildcard (1.8.0): every namespace, even one created later.
    let wild = FakeNomad::start("1.8.0").await;
    wild.create_namespace("late");
    let j = wild.register_job("late", "x", "batch");
    assert!(has(&replay(&wild).await, j, "Job", "JobRegistered"));
    // AtSubscribe (2.0.5): the namespaces existing at subscribe time.
    let at = FakeNomad::start("2.0.5").await;
    let f = &at;
    let reader = async move { get(f, ALL, Duration::from_millis(800)).await };
    let writer = async {
        for _ in 0..100 {
            if at.subscribers() == 1 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let late = at.register_job("later", "x", "batch");
        let known = at.register_job("ci", "y", "batch");
        (late, known)
    };
    let (r, (late, known)) = tokio::join!(reader, writer);
    assert!(
        !has(&r.body, late, "Job", "JobRegistered"),
        "created after subscribing"
    );
    assert!(has(&r.body, known, "Job", "JobRegistered"));
    assert!(
        has(&replay(&at).await, late, "Job", "JobRegistered"),
        "a resubscribe sees it"
    );
    let ns = get(&at, "/v1/namespaces", QUICK).await;
    assert!(String::from_utf8_lossy(&ns.body).contains("\"Name\":\"later\""));
    // A key: only that job's events.
    let body = get(&at, "/v1/event/stream?topic=Job:y&namespace=ci", QUICK)
        .await
        .body;
    let k = kinds(&body);
    assert!(!k.is_empty() && k.iter().all(|(i, _, _)| *i == known));
    // Default namespace only without the parameter.
    let body = get(&at, "/v1/event/stream?topic=Job", QUICK).await.body;
    assert!(kinds(&body).is_empty(), "no job in `default` changed");
}

#[tokio::test]
async fn bytes_are_counted_per_path_and_topic() {
    let fake = FakeNomad::start("2.0.5").await;
    let jobs = get(&fake, "/v1/jobs?namespace=*", QUICK).await;
    let wire = jobs.wire as u64;
    assert_eq!(fake.bytes_served("/v1/jobs"), wire);
    assert_eq!(fake.count("/v1/jobs"), 1);
    fake.register_job("default", "j", "batch");
    let s = get(&fake, ALL, QUICK).await;
    let topic = fake.stream_topic_bytes("Job");
    assert!(topic > 0 && topic < s.body.len() as u64);
    assert!(fake.bytes_served("/v1/event/stream") > s.body.len() as u64);
    let stats = get(&fake, "/_fake/stats", QUICK).await;
    let v: Value = serde_json::from_slice(&stats.body).unwrap();
    assert_eq!(v["paths"]["/v1/jobs"]["bytes"], wire);
    assert_eq!(v["paths"]["/v1/jobs"]["requests"], 1);
    assert!(v["paths"].get("/_fake/stats").is_none(), "not counted");
    assert_eq!(fake.count("/_fake"), 0, "not recorded");
}

#[tokio::test]
async fn old_knobs_still_drive_the_lists() {
    let fake = FakeNomad::start("1.11.0").await;
    let mut jobs: Vec<_> = fake.list(List::Jobs).iter().cloned().collect();
    jobs.retain(|j| !j.token.contains("build-105"));
    fake.set_list(List::Jobs, jobs);
    // The model follows the new list; transactions index above everything.
    assert_eq!(fake.job_status("default", "build-105"), None);
    let i = fake.register_job("default", "new", "batch");
    let r = get(&fake, "/v1/jobs?namespace=*", QUICK).await;
    assert!(r.head.contains(&format!("X-Nomad-Index: {i}")));
    let blocked = get(
        &fake,
        &format!("/v1/job/new/summary?index={i}&wait=200ms"),
        QUICK,
    )
    .await;
    assert!(
        blocked.head.contains(&format!("X-Nomad-Index: {i}")),
        "timed out at the same index"
    );
}
