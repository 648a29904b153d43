//! Tests of the stream decoder, the payloads and the subscriptions.

use super::decode::*;
use super::payload::*;
use super::subscribe::*;

use crate::nomad::features::Features;
use crate::nomad::features::StreamFeatures;
use crate::nomad::model::NomadVersion;
use crate::nomad::model::{JobStatus, JobType};
use proptest::prelude::*;

fn stream_of(v: &str) -> StreamFeatures {
    Features::for_version(NomadVersion::parse(v))
        .stream
        .expect("1.0+ has a stream")
}

/// Shapes from `nomad/structs/event.go@v2.0.5` (`Events`, `Event`,
/// `JobEvent`, `AllocationEvent`, `NodeStreamEvent`) with payload keys
/// from `structs.Job`, `structs.Allocation` (`nomad/structs/alloc.go`)
/// and `structs.Node` at v2.0.5, trimmed but keeping nested objects that
/// must be skipped.
const JOB_LINE: &str = r#"{"Index":120,"Events":[{"Topic":"Job","Type":"JobRegistered","Key":"build-1","Namespace":"ci","FilterKeys":null,"Index":120,"Payload":{"Job":{"Stop":false,"Region":"global","Namespace":"ci","ID":"build-1","ParentID":"","Name":"build-1","Type":"batch","Priority":50,"AllAtOnce":false,"Datacenters":["dc1"],"NodePool":"default","Constraints":null,"TaskGroups":[{"Name":"g","Count":1,"Tasks":[{"Name":"t","Driver":"docker","Config":{"image":"x"},"Resources":{"CPU":100,"MemoryMB":300}}]}],"Meta":{"Status":"not-this"},"Status":"pending","StatusDescription":"","Stable":false,"Version":0,"SubmitTime":1700000000000000000,"CreateIndex":120,"ModifyIndex":120,"JobModifyIndex":120}}}]}"#;

const ALLOC_LINE: &str = r#"{"Index":130,"Events":[{"Topic":"Allocation","Type":"PlanResult","Key":"a-1","Namespace":"ci","FilterKeys":["build-1","dep-1"],"Index":130,"Payload":{"Allocation":{"ID":"a-1","Namespace":"ci","EvalID":"e-1","Name":"build-1.g[0]","NodeID":"n-1","NodeName":"w1","JobID":"build-1","Job":null,"TaskGroup":"g","Resources":{"CPU":100,"MemoryMB":300,"DiskMB":0,"IOPS":0},"AllocatedResources":{"Tasks":{"t":{"Cpu":{"CpuShares":100,"ReservedCores":null},"Memory":{"MemoryMB":300,"MemoryMaxMB":0},"Networks":null,"Devices":null}},"TaskLifecycles":{"t":null},"Shared":{"DiskMB":150,"Networks":null,"Ports":null}},"Metrics":{"NodesEvaluated":3,"ScoreMetaData":[{"NodeID":"n-1","Scores":{"binpack":0.5}}]},"DesiredStatus":"run","ClientStatus":"pending","TaskStates":null,"CreateIndex":130,"ModifyIndex":130}}},{"Topic":"Job","Type":"PlanResult","Key":"build-1","Namespace":"ci","Index":130,"Payload":{"Job":{"ID":"build-1","Namespace":"ci","Type":"batch","Status":"running","Stop":false,"ModifyIndex":130}}}]}"#;

const NODE_LINE: &str = r#"{"Index":140,"Events":[{"Topic":"Node","Type":"NodeDrain","Key":"n-1","Namespace":"","FilterKeys":null,"Index":140,"Payload":{"Node":{"ID":"n-1","SecretID":"","Datacenter":"dc1","Name":"w1","HTTPAddr":"10.0.0.1:4646","TLSEnabled":false,"Attributes":{"cpu.numcores":"4"},"NodeResources":{"Cpu":{"CpuShares":8000,"TotalCpuCores":4,"ReservableCpuCores":[0,1,2,3]},"Memory":{"MemoryMB":16000},"Disk":{"DiskMB":50000},"Networks":null,"MinDynamicPort":20000,"MaxDynamicPort":32000},"ReservedResources":{"Cpu":{"CpuShares":500,"ReservedCpuCores":null},"Memory":{"MemoryMB":1000},"Disk":{"DiskMB":2000},"Networks":{"ReservedHostPorts":""}},"Links":null,"Meta":{"Status":"x"},"NodeClass":"builder","NodePool":"default","ComputedClass":"v1:1","DrainStrategy":{"Deadline":3600000000000,"IgnoreSystemJobs":false,"ForceDeadline":"0001-01-01T00:00:00Z","StartedAt":"2025-01-01T00:00:00Z"},"SchedulingEligibility":"ineligible","Status":"ready","StatusDescription":"","StatusUpdatedAt":1700000000,"Events":[{"Message":"Node registered","Subsystem":"Cluster","Details":null,"Timestamp":"2025-01-01T00:00:00Z","CreateIndex":0}],"Drivers":{},"CSIControllerPlugins":null,"HostVolumes":null,"LastDrain":null,"CreateIndex":5,"ModifyIndex":140}}}]}"#;

fn job_of(p: &Payload) -> Option<&JobEvent> {
    match p {
        Payload::Job(j) => Some(j),
        _ => None,
    }
}

fn frames(text: &str) -> Vec<Frame> {
    let mut d = LineDecoder::default();
    let mut out = d.feed(text.as_bytes()).unwrap();
    let (last, end) = d.finish();
    out.extend(last);
    assert!(matches!(end, StreamError::Eof), "{end:?}");
    out
}

fn all_lines() -> String {
    format!("{{}}\n{JOB_LINE}\n{{}}\n{ALLOC_LINE}\n\n{NODE_LINE}\n")
}

#[test]
fn heartbeats_and_events() {
    let f = frames(&all_lines());
    assert_eq!(f.len(), 5);
    assert!(matches!(f[0], Frame::Heartbeat));
    assert!(matches!(f[2], Frame::Heartbeat));
    let Frame::Events { index, events } = &f[1] else {
        panic!("{:?}", f[1])
    };
    assert_eq!(*index, 120);
    assert_eq!(
        job_of(&events[0].payload),
        Some(&JobEvent {
            id: "build-1".into(),
            namespace: "ci".into(),
            job_type: JobType::Batch,
            status: JobStatus::Pending,
            stop: false,
            modify_index: 120,
            deleted: false,
        }),
        "nested Status/Meta keys are not the job's"
    );
    assert_eq!(events[0].kind, "JobRegistered");
    assert_eq!(events[0].key, "build-1");
}

#[test]
fn multi_event_line_keeps_alloc_and_job_together() {
    let f = frames(ALLOC_LINE);
    let Frame::Events { index: 130, events } = &f[0] else {
        panic!()
    };
    assert_eq!(events.len(), 2);
    let Payload::Allocation(a) = &events[0].payload else {
        panic!()
    };
    assert_eq!(
        (a.id(), a.node_id(), a.job_id.as_str()),
        ("a-1", "n-1", "build-1")
    );
    assert_eq!(a.namespace, "ci");
    assert_eq!(a.modify_index, 130);
    assert!(!a.alloc.is_terminal());
    let usage = crate::gauges::resources::alloc_usage(
        &a.alloc,
        crate::gauges::resources::LifecycleRules::V1_9_4,
    );
    assert_eq!((usage.cpu, usage.memory, usage.disk), (100, 300, 150));
    assert!(matches!(&events[1].payload, Payload::Job(j) if j.status == JobStatus::Running));
}

#[test]
fn full_node_payload_decodes_like_the_stub() {
    let f = frames(NODE_LINE);
    let Frame::Events { events, .. } = &f[0] else {
        panic!()
    };
    let Payload::Node(n) = &events[0].payload else {
        panic!()
    };
    // The full node has no `Drain` (1.1+): DrainStrategy tells.
    assert!(n.draining());
    assert_eq!(n.status, "ready");
    assert_eq!(n.scheduling_eligibility.as_deref(), Some("ineligible"));
    let (cap, res) = crate::gauges::resources::node_capacity(n).unwrap();
    assert_eq!((cap.cpu, cap.memory, cap.disk), (8000, 16000, 50000));
    assert_eq!((res.cpu, res.memory, res.disk), (500, 1000, 2000));
    assert_eq!(events[0].namespace, "");
}

#[test]
fn payload_before_topic_and_unknown_topics() {
    let line = r#"{"Index":7,"Events":[{"Payload":{"Job":{"ID":"j","Status":"dead","Stop":true}},"Index":7,"Type":"JobDeregistered","Topic":"Job"},{"Topic":"Evaluation","Type":"EvaluationUpdated","Index":7,"Payload":{"Evaluation":{"ID":"e","Status":"complete"}}},{"Topic":"Job","Index":7,"Payload":{}}]}"#;
    let f = frames(line);
    let Frame::Events { events, .. } = &f[0] else {
        panic!()
    };
    assert!(matches!(&events[0].payload, Payload::Job(j) if j.stop && j.namespace == "default"));
    assert!(matches!(events[1].payload, Payload::Other));
    assert!(matches!(events[2].payload, Payload::Other), "no Job object");
}

#[test]
fn deleted_flag_is_read() {
    let line = r#"{"Index":9,"Events":[{"Topic":"Job","Type":"JobDeregistered","Key":"j","Namespace":"default","Index":9,"Payload":{"Job":{"ID":"j","Status":"dead","Stop":true,"ModifyIndex":8},"Deleted":true}}]}"#;
    let f = frames(line);
    let Frame::Events { events, .. } = &f[0] else {
        panic!()
    };
    assert!(matches!(&events[0].payload, Payload::Job(j) if j.deleted));
}

#[test]
fn every_split_point_gives_the_same_frames() {
    let text = all_lines();
    let want = frames(&text);
    for cut in 0..=text.len() {
        let (a, b) = text.as_bytes().split_at(cut);
        let mut d = LineDecoder::default();
        let mut got = d.feed(a).unwrap();
        got.extend(d.feed(b).unwrap());
        assert!(matches!(d.finish(), (None, StreamError::Eof)));
        assert_eq!(format!("{got:?}"), format!("{want:?}"), "cut at {cut}");
    }
}

proptest! {
    #[test]
    fn any_chunking_gives_the_same_frames(cuts in proptest::collection::vec(0usize..4000, 0..12)) {
        let text = all_lines();
        let want = frames(&text);
        let bytes = text.as_bytes();
        let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (bytes.len() + 1)).collect();
        cuts.sort_unstable();
        let mut d = LineDecoder::default();
        let mut got = Vec::new();
        let mut from = 0;
        for c in cuts.into_iter().chain([bytes.len()]) {
            got.extend(d.feed(&bytes[from..c]).unwrap());
            from = c;
        }
        let (last, end) = d.finish();
        got.extend(last);
        prop_assert!(matches!(end, StreamError::Eof));
        prop_assert_eq!(format!("{got:?}"), format!("{want:?}"));
    }
}

fn alloc_event(i: usize) -> String {
    format!(
        r#"{{"Topic":"Allocation","Type":"PlanResult","Key":"a{i}","Namespace":"default","Index":5,"Payload":{{"Allocation":{{"ID":"a{i}","NodeID":"n{}","JobID":"j","DesiredStatus":"run","ClientStatus":"pending","AllocatedResources":{{"Tasks":{{"t":{{"Cpu":{{"CpuShares":100}},"Memory":{{"MemoryMB":64}}}}}},"Shared":{{"DiskMB":10}}}},"Metrics":{{"Pad":"{}"}},"ModifyIndex":5}}}}}}"#,
        i % 50,
        "x".repeat(1500)
    )
}

#[test]
fn a_multi_megabyte_plan_line_decodes_in_small_chunks() {
    let events: Vec<String> = (0..3000).map(alloc_event).collect();
    let line = format!("{{\"Index\":5,\"Events\":[{}]}}\n{{}}\n", events.join(","));
    assert!(line.len() > 4 << 20);
    let mut d = LineDecoder::default();
    let mut got = Vec::new();
    let mut peak = 0;
    for chunk in line.as_bytes().chunks(16 << 10) {
        got.extend(d.feed(chunk).unwrap());
        peak = peak.max(d.buffered());
    }
    assert!(peak <= line.len(), "at most one line is held");
    assert_eq!(got.len(), 2);
    assert!(matches!(&got[0], Frame::Events { events, .. } if events.len() == 3000));
    assert_eq!(d.buffered(), 0);
    assert!(d.buf.capacity() <= KEEP_BUFFER, "big buffer released");
}

#[test]
fn too_large_lines_are_refused_before_their_end() {
    let mut d = LineDecoder::new(1000);
    assert!(d.feed(&[b'{'; 600]).is_ok());
    assert!(matches!(
        d.feed(&[b' '; 600]),
        Err(StreamError::TooLarge { limit: 1000 })
    ));
    assert_eq!(d.buffered(), 0);
    // A complete line over the cap inside one chunk.
    let mut d = LineDecoder::new(10);
    assert!(matches!(
        d.feed(b"{}\n{\"Index\":123456}\n"),
        Err(StreamError::TooLarge { .. })
    ));
    // Exactly at the cap is fine.
    let mut d = LineDecoder::new(2);
    assert!(matches!(d.feed(b"{}\n").unwrap()[..], [Frame::Heartbeat]));
}

fn ending(tail: &str) -> (Vec<Frame>, StreamError) {
    let mut d = LineDecoder::default();
    let mut got = d
        .feed(format!("{{}}\n{JOB_LINE}\n{tail}").as_bytes())
        .unwrap();
    let (last, end) = d.finish();
    got.extend(last);
    (got, end)
}

type EndCheck = fn(&StreamError) -> bool;

#[test]
fn every_ending_is_typed() {
    let cases: [(&str, EndCheck); 6] = [
        ("", |e| matches!(e, StreamError::Eof)),
        (
            "subscription closed by server, client should resubscribe",
            |e| matches!(e, StreamError::ClosedByServer),
        ),
        ("event dropped from buffer", |e| {
            matches!(e, StreamError::DroppedFromBuffer)
        }),
        ("rpc error: ACL token expired", |e| {
            matches!(e, StreamError::TokenExpired)
        }),
        ("Permission denied", |e| matches!(e, StreamError::Forbidden)),
        (
            "EventBroker not configured",
            |e| matches!(e, StreamError::Other(t) if t == "EventBroker not configured"),
        ),
    ];
    for (tail, ok) in cases {
        let (frames, end) = ending(tail);
        assert_eq!(frames.len(), 2, "{tail}: lines before the error kept");
        assert!(ok(&end), "{tail:?} gave {end:?}");
    }
}

#[test]
fn other_endings_are_sanitised_and_bounded() {
    let (_, end) = ending(&format!("boom\u{1b}[31m\t{}", "y".repeat(1000)));
    let StreamError::Other(text) = end else {
        panic!("{end:?}")
    };
    assert!(text.starts_with("boom?[31m?y"));
    assert_eq!(text.chars().count(), MAX_ERROR_TEXT);
}

#[test]
fn a_final_line_without_newline_or_cut_inside() {
    let (frames, end) = ending("{}");
    assert_eq!(frames.len(), 3);
    assert!(matches!(end, StreamError::Eof));
    let (frames, end) = ending(r#"{"Index":5,"Events":[{"Topic"#);
    assert_eq!(frames.len(), 2);
    assert!(matches!(end, StreamError::Truncated { .. }), "{end:?}");
}

#[test]
fn garbage_lines_are_decode_errors_with_an_excerpt() {
    for bad in [
        "<html>502 Bad Gateway</html>\n",
        "{\"Index\":\"x\"}\n",
        "{\"Events\":[]}\n",
        "{} {}\n",
        "[1,2]\n",
        // A payload that does not fit its topic.
        "{\"Index\":1,\"Events\":[{\"Topic\":\"Job\",\"Index\":1,\"Payload\":{\"Job\":{\"ID\":7}}}]}\n",
        "{\"Index\":1,\"Events\":[{\"Topic\":\"Node\",\"Index\":1,\"Payload\":{\"Node\":[]}}]}\n",
        "{\"Index\":1,\"Events\":[{\"Topic\":\"Allocation\",\"Index\":1,\"Payload\":{\"Allocation\":{\"ModifyIndex\":-1}}}]}\n",
        "{\"Index\":1,\"Events\":[{\"Index\":1}]}\n",
    ] {
        let mut d = LineDecoder::default();
        let err = d.feed(format!("{{}}\n{bad}").as_bytes()).unwrap_err();
        let StreamError::Decode { line, excerpt, .. } = &err else {
            panic!("{bad}: {err:?}")
        };
        assert_eq!(*line, 2, "{bad}");
        assert!(excerpt.len() <= MAX_EXCERPT && !excerpt.is_empty());
    }
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let mut d = LineDecoder::new(128);
        let _ = d.feed(&bytes);
        let _ = d.finish();
    }
}

fn job(kind_stop: bool, deleted: bool) -> JobEvent {
    JobEvent {
        id: "j".into(),
        namespace: "default".into(),
        job_type: JobType::Batch,
        status: JobStatus::Dead,
        stop: kind_stop,
        modify_index: 1,
        deleted,
    }
}

#[test]
fn deletion_rules_per_version() {
    use JobDeletion::{CheckExists, Deleted, Upsert};
    // (version, type, Stop, Deleted) → answer.
    let cases = [
        // 1.0–1.7.4: deletions are silent; every Job event is an upsert.
        ("1.6.9", "JobDeregistered", false, false, Upsert),
        ("1.7.4", "JobDeregistered", true, false, Upsert),
        ("1.7.4", "JobBatchDeregistered", false, false, Upsert),
        // 1.7.5 / 1.8.0 – 1.11.2: by Type and Stop.
        ("1.7.5", "JobBatchDeregistered", false, false, Deleted),
        ("1.8.0", "JobDeregistered", false, false, Deleted),
        ("1.8.0", "JobDeregistered", true, false, CheckExists),
        ("1.11.2", "JobDeregistered", true, false, CheckExists),
        ("1.10.0", "AllocationUpdated", false, false, Upsert),
        ("1.10.0", "JobRegistered", true, false, Upsert),
        // 1.11.3 / 2.0.0+: the flag decides.
        ("1.11.3", "JobDeregistered", true, true, Deleted),
        ("1.11.3", "JobDeregistered", true, false, Upsert),
        ("2.0.0", "JobBatchDeregistered", true, true, Deleted),
        ("2.0.5", "JobDeregistered", false, false, Upsert),
    ];
    for (v, kind, stop, deleted, want) in cases {
        assert_eq!(
            job_deletion(kind, &job(stop, deleted), &stream_of(v)),
            want,
            "{v} {kind} stop={stop} deleted={deleted}"
        );
    }
}

fn params(s: &Subscription) -> Vec<String> {
    s.query.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

#[test]
fn subscription_per_namespace_era() {
    let opts = SubscribeOptions {
        scope: NamespaceScope::All,
        nodes: true,
        last_index: Some(41),
    };
    let wild = plan_subscriptions(&stream_of("1.5.0"), &opts, &[]);
    assert_eq!(wild.subscriptions.len(), 1);
    assert_eq!(
        params(&wild.subscriptions[0]),
        [
            "topic=Job",
            "topic=Allocation",
            "topic=Node",
            "namespace=*",
            "index=42"
        ]
    );
    assert!(!wild.resubscribe_on_new_namespace);

    let later = plan_subscriptions(&stream_of("1.10.0"), &opts, &[]);
    assert!(later.resubscribe_on_new_namespace);

    let ns = ["default".to_owned(), "ci".to_owned()];
    let literal = plan_subscriptions(&stream_of("1.1.5"), &opts, &ns);
    assert!(literal.resubscribe_on_new_namespace);
    let got: Vec<Vec<String>> = literal.subscriptions.iter().map(params).collect();
    assert_eq!(
        got,
        [
            vec![
                "topic=Job",
                "topic=Allocation",
                "topic=Node",
                "namespace=default",
                "index=42"
            ],
            vec!["topic=Job", "topic=Allocation", "namespace=ci", "index=42"],
        ]
    );
    assert_eq!(literal.subscriptions[1].namespace.as_deref(), Some("ci"));

    let one = SubscribeOptions {
        scope: NamespaceScope::One("ci"),
        nodes: false,
        last_index: None,
    };
    let p = plan_subscriptions(&stream_of("1.0.0"), &one, &ns);
    assert_eq!(
        params(&p.subscriptions[0]),
        ["topic=Job", "topic=Allocation", "namespace=ci"]
    );
}

#[test]
fn cursor_drops_the_redelivered_tail() {
    let mut c = StreamCursor::default();
    assert!(c.accept(10) && c.accept(12));
    assert!(!c.accept(12) && !c.accept(11));
    assert!(c.accept(13));
    assert_eq!(resume_index(u64::MAX), u64::MAX);
}

#[test]
fn job_list_entries_keep_id_and_summary() {
    let e: JobListEntry = serde_json::from_str(
        r#"{"ID":"x","Namespace":"ci","Type":"batch","Status":"dead","Stop":false,"ModifyIndex":77,
            "JobSummary":{"JobID":"x","Summary":{"g":{"Complete":1}}}}"#,
    )
    .unwrap();
    assert_eq!((e.id.as_str(), e.modify_index), ("x", 77));
    assert_eq!(
        crate::gauges::server::classify(&e.stub),
        Some(crate::gauges::server::JobState::Complete)
    );
}
