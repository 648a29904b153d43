//! The pure mapping from each fixture set to gauges, without HTTP: client
//! resource gauges and tags against `expected.json`, job counts against
//! `expected.json`, and the feature table (`Features::for_version`) against
//! what the fixture files themselves show. One test per fixture version, so
//! a new fixture set is covered by adding it to the version list.
//!
//! The client and job cases moved here from the unit tests of
//! `src/gauges/client.rs` and `src/gauges/server.rs`; they read the
//! fixtures at run time through the library's public API.

use nomad_metrics::gauges::client::{node_resources, ClientOptions};
use nomad_metrics::gauges::server::JobCounts;
use nomad_metrics::nomad::features::JobNamespaces;
use nomad_metrics::nomad::model::{AgentSelf, Alloc, JobStub, Node};
use nomad_metrics::nomad::{Features, NomadVersion};

use crate::support::{fixture, fixture_text};

/// `#[test] fn $test() { $check($version) }`, the callback of
/// `for_each_version!` for the synchronous checks below.
macro_rules! version_case {
    ($check:ident $test:ident, $version:literal) => {
        #[test]
        fn $test() {
            super::$check($version)
        }
    };
}

/// Client gauges of the fixture node and its allocations: values (total,
/// used, available × cpu, memory, disk, iops) and the tag set from
/// `expected.json`, the same tags on every gauge, and only the original
/// tool's `drain` and `status` without identity tags.
fn client_gauges(version: &str) {
    let agent: AgentSelf = serde_json::from_str(&fixture_text(version, "agent-self.json")).unwrap();
    let node: Node = serde_json::from_str(&fixture_text(version, "node.json")).unwrap();
    let allocs: Vec<Alloc> =
        serde_json::from_str(&fixture_text(version, "node-allocations.json")).unwrap();
    let expected = fixture(version, "expected.json");
    assert_eq!(agent.node_id(), Some(node.id.as_str()));
    let opts = ClientOptions {
        identity_tags: true,
        rules: Features::for_version(agent.version()).lifecycle,
    };
    let gauges = node_resources(&node, &allocs, opts).unwrap();
    let values: Vec<i64> = gauges.iter().map(|g| g.value as i64).collect();
    let want: Vec<i64> = ["total", "used", "available"]
        .iter()
        .flat_map(|k| expected["client"][k].as_array().unwrap().clone())
        .map(|v| v.as_i64().unwrap())
        .collect();
    assert_eq!(
        values, want,
        "total, used, available x (cpu, memory, disk, iops)"
    );
    let tags: Vec<String> = gauges[0]
        .tags
        .iter()
        .map(|t| format!("{}:{}", t.key, t.value))
        .collect();
    let want_tags: Vec<String> = expected["client"]["tags"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap().to_owned())
        .collect();
    assert_eq!(tags, want_tags);
    assert!(gauges.iter().all(|g| g.tags == gauges[0].tags));

    let plain = ClientOptions {
        identity_tags: false,
        ..opts
    };
    let original = node_resources(&node, &allocs, plain).unwrap();
    let keys: Vec<&str> = original[0].tags.iter().map(|t| t.key).collect();
    assert_eq!(keys, ["drain", "status"], "the original tool's tag set");
}

mod client_gauges {
    crate::for_each_version!(version_case, client_gauges);
}

/// Job counts of `jobs.json` against `expected.json`: every job counted in
/// exactly one of the four states, and the four job gauges untagged.
fn job_counts(version: &str) {
    let stubs: Vec<JobStub> = serde_json::from_str(&fixture_text(version, "jobs.json")).unwrap();
    let mut c = JobCounts::default();
    for job in &stubs {
        c.add(job);
    }
    assert_eq!(c.unrecognised, 0);
    assert_eq!(
        c.total() as usize,
        stubs.len(),
        "the four gauges are disjoint and cover every job"
    );
    let e = fixture(version, "expected.json");
    let want = ["pending", "running", "complete", "dead"].map(|k| e["jobs"][k].as_i64().unwrap());
    assert_eq!(
        [
            c.totals.pending,
            c.totals.running,
            c.totals.complete,
            c.totals.dead
        ],
        want
    );
    let values: Vec<f64> = c.gauges().iter().map(|g| g.value).collect();
    assert_eq!(values, want.map(|v| v as f64));
    assert!(
        c.gauges().iter().all(|g| g.tags.is_empty()),
        "job gauges are untagged"
    );
}

mod job_counts {
    crate::for_each_version!(version_case, job_counts);
}

/// Whether every element of a fixture list has `key` (`Some(true)`), none
/// has it (`Some(false)`), or the list is mixed (`None`).
fn all_or_none(version: &str, file: &str, key: &str) -> Option<bool> {
    let list = fixture(version, file);
    let list = list.as_array().unwrap();
    assert!(!list.is_empty(), "{file} of Nomad {version} is empty");
    let with = list.iter().filter(|e| e.get(key).is_some()).count();
    match with {
        0 => Some(false),
        n if n == list.len() => Some(true),
        _ => None,
    }
}

/// The feature table row of each fixture version against what its fixture
/// files show: the table and the fixtures are two records of the same
/// Nomad behaviour, and must agree.
fn features_match_fixtures(version: &str) {
    let agent: AgentSelf = serde_json::from_str(&fixture_text(version, "agent-self.json")).unwrap();
    assert_eq!(
        agent.version(),
        NomadVersion::parse(version),
        "agent-self.json of the nomad-{version} fixtures reports that version"
    );
    let f = Features::for_version(agent.version());
    assert_eq!(f.version, NomadVersion::parse(version));

    // `?resources=true` on the cluster-wide lists (1.0+): the fixture lists
    // carry the resources blocks (the fake strips them unless asked).
    assert_eq!(
        all_or_none(version, "nodes.json", "NodeResources"),
        Some(f.list_resources),
        "NodeResources on the nodes.json stubs of Nomad {version}"
    );
    assert_eq!(
        all_or_none(version, "allocations.json", "AllocatedResources"),
        Some(f.list_resources),
        "AllocatedResources on the allocations.json stubs of Nomad {version}"
    );

    // `namespace=*` is a wildcard exactly on the versions whose list stubs
    // say which namespace each element is in.
    let wildcard = f.job_namespaces == JobNamespaces::Wildcard;
    assert_ne!(f.job_namespaces, JobNamespaces::WildcardOrDefault);
    assert_eq!(
        all_or_none(version, "jobs.json", "Namespace"),
        Some(wildcard),
        "Namespace on the jobs.json stubs of Nomad {version} ({:?})",
        f.job_namespaces
    );
    assert_eq!(
        all_or_none(version, "allocations.json", "Namespace"),
        Some(wildcard),
        "Namespace on the allocations.json stubs of Nomad {version}"
    );
    let by_ns = fixture(version, "expected.json")
        .get("jobs_default_namespace")
        .is_some();
    assert!(
        !by_ns || wildcard,
        "per-namespace expectations only where namespaces are listed"
    );
    // The lifecycle rules are checked through the values: `client_gauges`
    // computes with `f.lifecycle` and compares with `expected.json`.
    // `paging`, `filter` and `stream` leave no trace in these fixture files.
}

mod features_match_fixtures {
    crate::for_each_version!(version_case, features_match_fixtures);
}

/// The version list and the fixture folders agree: every listed version has
/// a folder, and every `nomad-<v>` folder is listed.
#[test]
fn every_fixture_folder_is_listed() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut folders: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.strip_prefix("nomad-").map(str::to_owned)
        })
        .collect();
    folders.sort_by_key(|v| NomadVersion::parse(v));
    let listed: Vec<String> = crate::support::fake_nomad::VERSIONS
        .iter()
        .map(|v| (*v).to_owned())
        .collect();
    assert_eq!(
        listed, folders,
        "the version list (oldest first) vs tests/fixtures"
    );
}
