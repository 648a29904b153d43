//! Property tests: no input makes a Nomad JSON decoder, the gauge mapping or
//! the tag sanitiser panic, and the streaming decoder agrees with a
//! whole-body parse however the body is cut into chunks.

use proptest::prelude::*;
use serde_json::Value;

use nomad_metrics::gauges::client::{node_resources, ClientOptions};
use nomad_metrics::gauges::resources::{alloc_usage, LifecycleRules};
use nomad_metrics::gauges::server::{capacity_gauges, AllocUsage, JobCounts, NodeView};
use nomad_metrics::gauges::TagValue;
use nomad_metrics::nomad::model::{AgentSelf, Alloc, JobStub, Node};
use nomad_metrics::nomad::skim::{ListElement, Skim};
use nomad_metrics::nomad::stream::ArrayDecoder;

/// Cases per property (`PROPTEST_CASES` overrides).
fn cases(n: u32) -> ProptestConfig {
    let cases = std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(n);
    ProptestConfig {
        cases,
        // Integration tests have no lib.rs beside them to persist failures next to.
        failure_persistence: None,
        ..ProptestConfig::default()
    }
}

/// Arbitrary JSON, biased towards the keys and shapes Nomad uses.
fn json() -> impl Strategy<Value = Value> {
    let key = prop_oneof![
        Just("ID".to_owned()),
        Just("Status".to_owned()),
        Just("Stop".to_owned()),
        Just("JobSummary".to_owned()),
        Just("Summary".to_owned()),
        Just("Complete".to_owned()),
        Just("Failed".to_owned()),
        Just("Lost".to_owned()),
        Just("Unknown".to_owned()),
        Just("Type".to_owned()),
        Just("Namespace".to_owned()),
        Just("NodeResources".to_owned()),
        Just("ReservedResources".to_owned()),
        Just("Resources".to_owned()),
        Just("Reserved".to_owned()),
        Just("Cpu".to_owned()),
        Just("CpuShares".to_owned()),
        Just("Memory".to_owned()),
        Just("MemoryMB".to_owned()),
        Just("Disk".to_owned()),
        Just("DiskMB".to_owned()),
        Just("CPU".to_owned()),
        Just("IOPS".to_owned()),
        Just("AllocatedResources".to_owned()),
        Just("Tasks".to_owned()),
        Just("TaskLifecycles".to_owned()),
        Just("Hook".to_owned()),
        Just("Sidecar".to_owned()),
        Just("Shared".to_owned()),
        Just("ReservedCores".to_owned()),
        Just("DesiredStatus".to_owned()),
        Just("ClientStatus".to_owned()),
        Just("Drain".to_owned()),
        Just("DrainStrategy".to_owned()),
        Just("NodeClass".to_owned()),
        Just("NodePool".to_owned()),
        Just("config".to_owned()),
        Just("stats".to_owned()),
        Just("client".to_owned()),
        Just("node_id".to_owned()),
        Just("Version".to_owned()),
        "[a-zA-Z]{1,8}",
    ];
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<u64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        prop_oneof![
            Just("run"),
            Just("stop"),
            Just("evict"),
            Just("running"),
            Just("pending"),
            Just("dead"),
            Just("complete"),
            Just("failed"),
            Just("lost"),
            Just("prestart"),
            Just("poststop"),
            Just("ready"),
            Just("1.10.3"),
            Just("0.5.6"),
            Just("batch"),
        ]
        .prop_map(Value::from),
        ".{0,12}".prop_map(Value::from),
    ];
    leaf.prop_recursive(5, 64, 8, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::vec((key.clone(), inner), 0..8)
                .prop_map(|kv| Value::Object(kv.into_iter().collect())),
        ]
    })
}

fn cut(body: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let mut points: Vec<usize> = cuts.iter().map(|c| c % (body.len() + 1)).collect();
    points.sort_unstable();
    let mut out = Vec::new();
    let mut last = 0;
    for p in points {
        out.push(body[last..p].to_vec());
        last = p;
    }
    out.push(body[last..].to_vec());
    out
}

/// Bytes the skimmer property writes into job JSON.
const EDIT_BYTES: &[u8] = b"\"\\,:{}[]0-.eE xn\t\xff\x01";

/// `/v1/jobs` elements: Nomad's fields with values of the right and wrong
/// types, task group counters at the edges, and unknown fields.
fn job_json() -> impl Strategy<Value = Value> {
    let text = prop_oneof![
        Just(Value::from("batch")),
        Just(Value::from("service")),
        Just(Value::from("dead")),
        Just(Value::from("running")),
        Just(Value::from("pending")),
        Just(Value::from("default")),
        ".{0,6}".prop_map(Value::from),
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
    ];
    let counter = prop_oneof![
        4 => (0u64..3).prop_map(Value::from),
        1 => any::<u64>().prop_map(Value::from),
        1 => any::<i64>().prop_map(Value::from),
        1 => Just(Value::from(1.5)),
        1 => Just(Value::Null),
    ];
    let group = prop::collection::vec(
        (
            prop::sample::select(vec![
                "Complete", "Failed", "Lost", "Unknown", "Queued", "Running",
            ]),
            counter,
        ),
        0..6,
    )
    .prop_map(|kv| Value::Object(kv.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()));
    let summary = prop_oneof![
        4 => prop::collection::vec(("[a-z]{1,4}", group), 0..4)
            .prop_map(|g| serde_json::json!({"JobID": "j", "Summary": Value::Object(g.into_iter().collect()), "CreateIndex": 7})),
        1 => Just(Value::Null),
        1 => json(),
    ];
    (
        prop::collection::vec(
            (
                prop::sample::select(vec![
                    "Namespace",
                    "Type",
                    "Status",
                    "Stop",
                    "ID",
                    "Priority",
                    "Datacenters",
                ]),
                text,
            ),
            0..7,
        ),
        summary,
        prop::option::of(json()),
    )
        .prop_map(|(fields, summary, extra)| {
            let mut job: serde_json::Map<String, Value> =
                fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
            job.insert("JobSummary".to_owned(), summary);
            if let Some(extra) = extra {
                job.insert("Meta".to_owned(), extra);
            }
            Value::Object(job)
        })
}

/// The streaming decoder over `body` cut at `cuts` decodes what a whole
/// parse decodes (compared through `view`), and fails where it fails.
fn typed_streaming_agrees<T: ListElement, K: PartialEq + std::fmt::Debug>(
    body: &[u8],
    cuts: &[usize],
    view: impl Fn(T) -> K,
) -> Result<(), TestCaseError> {
    let whole = serde_json::from_slice::<Vec<T>>(body);
    let mut got = Vec::new();
    let mut decoder = ArrayDecoder::new(1 << 20);
    let mut streamed = Ok(());
    for chunk in cut(body, cuts) {
        streamed = decoder.feed(&chunk, &mut |item: T| got.push(view(item)));
        if streamed.is_err() {
            break;
        }
    }
    if streamed.is_ok() {
        streamed = decoder.finish(&mut |item: T| got.push(view(item)));
    }
    match whole {
        Ok(items) => {
            prop_assert!(streamed.is_ok(), "{streamed:?}");
            let want: Vec<K> = items.into_iter().map(view).collect();
            prop_assert_eq!(got, want);
        }
        Err(_) => prop_assert!(
            streamed.is_err(),
            "the whole parse failed, streaming must too"
        ),
    }
    Ok(())
}

proptest! {
    #![proptest_config(cases(2000))]

    #[test]
    fn tag_values_are_always_safe(raw in any::<String>()) {
        if let Some(v) = TagValue::new(&raw) {
            let s = v.as_str();
            prop_assert!(!s.is_empty() && s.chars().count() <= 200);
            prop_assert!(s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./:".contains(c)), "{s:?}");
            let again = TagValue::new(s);
            prop_assert_eq!(again.as_ref().map(TagValue::as_str), Some(s), "idempotent");
        }
    }

    #[test]
    fn decoder_agrees_with_a_whole_parse(items in prop::collection::vec(json(), 0..8), cuts in prop::collection::vec(any::<usize>(), 0..12), pretty in any::<bool>()) {
        let whole = Value::Array(items.clone());
        let body = if pretty { serde_json::to_vec_pretty(&whole) } else { serde_json::to_vec(&whole) }.unwrap();
        let mut got = Vec::new();
        let mut decoder = ArrayDecoder::new(1 << 20);
        for chunk in cut(&body, &cuts) {
            decoder.feed(&chunk, &mut |v: Value| got.push(v)).unwrap();
        }
        decoder.finish(&mut |v: Value| got.push(v)).unwrap();
        // The same parser over the whole body (floats are parsed, not round-tripped).
        let whole: Vec<Value> = serde_json::from_slice(&body).unwrap();
        prop_assert_eq!(got.len(), items.len());
        prop_assert_eq!(got, whole);
    }

    /// Typed models take serde_json's skipping paths for unknown fields
    /// (and job stubs the skimmer), which fail differently on a cut number
    /// than `Value` does.
    #[test]
    fn typed_decoding_agrees_with_a_whole_parse(items in prop::collection::vec(prop_oneof![json(), job_json()], 0..6), cuts in prop::collection::vec(any::<usize>(), 0..12)) {
        let body = serde_json::to_vec(&Value::Array(items)).unwrap();
        typed_streaming_agrees(&body, &cuts, |a: Alloc| format!("{a:?}"))?;
        typed_streaming_agrees(&body, &cuts, |j: JobStub| j)?;
    }

    /// Whenever the job skimmer answers, serde_json reads the same job
    /// from the same bytes (or, for "incomplete", hits their end).
    #[test]
    fn job_skimmer_agrees_with_serde(job in prop_oneof![job_json(), json()], edits in prop::collection::vec((any::<usize>(), 0u8..3, prop::sample::select(EDIT_BYTES)), 0..3)) {
        let clean = serde_json::to_vec(&job).unwrap();
        let mut body = clean.clone();
        for (at, how, byte) in edits {
            let at = at % (body.len() + 1);
            match how {
                0 => body.insert(at, byte),
                1 if at < body.len() => body[at] = byte,
                _ => body.truncate(at),
            }
        }
        let serde = {
            let mut it = serde_json::Deserializer::from_slice(&body).into_iter::<JobStub>();
            it.next().map(|r| r.map(|job| (job, it.byte_offset())))
        };
        match JobStub::skim(&body) {
            Skim::Done(job, used) => {
                let (want, want_used) = serde.unwrap().unwrap();
                prop_assert_eq!(job, want);
                prop_assert_eq!(used, want_used);
            }
            // serde_json reports a number cut after `-`, `.` or `e` as invalid
            // at the last byte rather than as EOF.
            Skim::Incomplete => prop_assert!(
                serde.as_ref().is_none_or(|r| r.as_ref().is_err_and(|e| e.is_eof() || (e.line() == 1 && e.column() >= body.len()))),
                "{serde:?}"
            ),
            Skim::Unsure => {
                // The fast path must take what Nomad writes: an object without
                // escapes that serde_json reads (serde also reads a struct
                // from an array, which Nomad never sends).
                let plain = body == clean && body.first() == Some(&b'{') && !body.iter().any(|b| matches!(b, b'\\' | b'['));
                prop_assert!(!(plain && matches!(serde, Some(Ok(_)))), "{}", String::from_utf8_lossy(&body));
            }
        }
    }

    #[test]
    fn decoder_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..512), cuts in prop::collection::vec(any::<usize>(), 0..6)) {
        let mut decoder = ArrayDecoder::new(4096);
        for chunk in cut(&body, &cuts) {
            if decoder.feed(&chunk, &mut |_: Value| {}).is_err() {
                return Ok(());
            }
        }
        let _ = decoder.finish(&mut |_: Value| {});
    }

    #[test]
    fn models_and_mapping_never_panic(v in json(), allocs in prop::collection::vec(json(), 0..4)) {
        // Whatever decodes is mapped; nothing may panic or produce NaN.
        let _ = serde_json::from_value::<AgentSelf>(v.clone()).map(|a| (a.node_id().map(str::len), a.version()));
        let allocs: Vec<Alloc> = allocs.into_iter().filter_map(|a| serde_json::from_value(a).ok()).collect();
        for rules in [LifecycleRules::V0_11, LifecycleRules::V1_0, LifecycleRules::V1_9_2, LifecycleRules::V1_9_4] {
            for a in &allocs {
                let _ = alloc_usage(a, rules);
            }
            if let Ok(node) = serde_json::from_value::<Node>(v.clone()) {
                let opts = ClientOptions { identity_tags: true, rules };
                if let Ok(gauges) = node_resources(&node, &allocs, opts) {
                    prop_assert!(gauges.iter().all(|g| g.value.is_finite()));
                }
                let mut view = NodeView::default();
                view.add(&node);
                let mut usage = AllocUsage::new(rules);
                allocs.iter().for_each(|a| usage.add(a));
                let _ = view.census_gauges();
                let _ = capacity_gauges(&view, &usage);
            }
        }
        if let Ok(job) = serde_json::from_value::<JobStub>(v) {
            let mut counts = JobCounts::default();
            counts.add(&job);
            prop_assert_eq!(counts.total() + counts.unrecognised, 1);
            let _ = counts.by_type_gauges();
        }
    }

    #[test]
    fn resource_figures_at_the_extremes(cpu in any::<i64>(), reserved in any::<i64>(), task in any::<i64>(), shared in any::<i64>()) {
        let node: Node = serde_json::from_value(serde_json::json!({
            "ID": "n", "Status": "ready",
            "NodeResources": {"Cpu": {"CpuShares": cpu}, "Memory": {"MemoryMB": cpu}, "Disk": {"DiskMB": cpu}},
            "ReservedResources": {"Cpu": {"CpuShares": reserved}, "Memory": {"MemoryMB": reserved}, "Disk": {"DiskMB": reserved}}
        })).unwrap();
        let alloc = || -> Alloc { serde_json::from_value(serde_json::json!({
            "DesiredStatus": "run", "ClientStatus": "running",
            "AllocatedResources": {"Tasks": {"a": {"Cpu": {"CpuShares": task}, "Memory": {"MemoryMB": task}},
                                             "b": {"Cpu": {"CpuShares": task, "ReservedCores": [1]}, "Memory": {"MemoryMB": task}}},
                                   "TaskLifecycles": {"a": null, "b": {"Hook": "prestart", "Sidecar": true}},
                                   "Shared": {"DiskMB": shared}}
        })).unwrap() };
        let opts = ClientOptions { identity_tags: false, rules: LifecycleRules::V1_9_4 };
        let gauges = node_resources(&node, &[alloc(), alloc()], opts).unwrap();
        prop_assert!(gauges.iter().all(|g| g.value.is_finite()));
    }
}
