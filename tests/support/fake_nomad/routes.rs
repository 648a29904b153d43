//! What a Nomad of each version answers on each path: the fixture files per
//! endpoint, `X-Nomad-Index` on blocking-capable endpoints, blocking
//! queries, and the list endpoints' namespace, paging and `resources`
//! semantics per version. What a version can do is asked of the daemon's
//! own feature table (`nomad_metrics::nomad::Features`); nothing here
//! compares version numbers.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use nomad_metrics::nomad::features::JobNamespaces;
use nomad_metrics::nomad::{Features, NomadVersion};
use serde_json::Value;

use super::{fixture, Item, List, Request, State};

/// A blocking query (`?index=N&wait=D`) waits until the index of what it
/// reads moves or D elapses, as Nomad does; a fault set meanwhile on its
/// path ends the wait (the caller then answers with the fault).
///
/// The lists answer as soon as their index differs from N. The client's
/// node and its allocations follow Nomad's `blockingRPC` exactly
/// (`v2.0.5:nomad/rpc.go`, used by `Node.GetNode` / `Node.GetAllocs` in
/// `v2.0.5:nomad/node_endpoint.go`): the query runs again while the
/// answer's index is at or below N, so an asked index beyond the current
/// one parks too.
pub(super) async fn block_if_asked(
    request: &Request,
    state: &Mutex<State>,
    changed: &tokio::sync::Notify,
) {
    if current_index(request, state).is_none() {
        return;
    }
    let Some(index) = request
        .query
        .get("index")
        .and_then(|i| i.parse::<u64>().ok())
    else {
        return;
    };
    if index == 0 {
        return;
    }
    let wait = request
        .query
        .get("wait")
        .map_or(Duration::from_secs(300), |w| parse_go_duration(w));
    let deadline = tokio::time::Instant::now() + wait.min(Duration::from_secs(300));
    let node_document = client_node_path(request, state);
    loop {
        let notified = changed.notified();
        let parked = match current_index(request, state) {
            None => false,
            Some(current) if node_document => current <= index,
            Some(current) => current == index,
        };
        if !parked || faulted(request, state) {
            return;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return;
        }
    }
}

/// Whether a fault is set on the request's path.
fn faulted(request: &Request, state: &Mutex<State>) -> bool {
    let st = state.lock().unwrap();
    st.faults
        .iter()
        .any(|(p, _)| request.path.starts_with(p.as_str()))
}

/// The ID of the node the fake's agent runs as (`node.json`).
fn client_node_id(st: &State) -> String {
    match st.overrides.get("node.json") {
        Some(node) => node["ID"].as_str().unwrap_or_default().to_owned(),
        None => fixture(&st.fixtures, "node.json")["ID"]
            .as_str()
            .unwrap_or_default()
            .to_owned(),
    }
}

/// Whether the request reads the client's node or its allocations.
fn client_node_path(request: &Request, state: &Mutex<State>) -> bool {
    let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    let st = state.lock().unwrap();
    match parts.as_slice() {
        ["v1", "node", id] | ["v1", "node", id, "allocations"] => *id == client_node_id(&st),
        _ => false,
    }
}

/// The index a blocking query on this path waits on: a list's, the job
/// summary table's (`/v1/job/<id>/summary`), the jobs table's
/// (`/v1/job/<id>`), the namespace table's, the client node's
/// (`/v1/node/<id>`) and its allocations' (`/v1/node/<id>/allocations`).
fn current_index(request: &Request, state: &Mutex<State>) -> Option<u64> {
    if client_node_path(request, state) {
        let st = state.lock().unwrap();
        return Some(if request.path.ends_with("/allocations") {
            st.node_allocs_index
        } else {
            st.node_index
        });
    }
    let st = state.lock().unwrap();
    if let Some(list) = list_of(&request.path) {
        return Some(st.indexes[&list]);
    }
    let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "job", _, "summary"] => Some(st.summary_index),
        ["v1", "job", _] => Some(st.indexes[&List::Jobs]),
        ["v1", "namespaces"] if st.features().stream.is_some() => Some(st.namespaces_index),
        _ => None,
    }
}

/// The `/_fake/` control endpoints (not recorded, not counted).
pub(super) fn control(request: &Request, state: &Mutex<State>) -> (u16, Vec<u8>) {
    let mut st = state.lock().unwrap();
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/_fake/stats") => {
            let mut paths = serde_json::Map::new();
            let mut counts: std::collections::BTreeMap<&str, u64> = Default::default();
            for r in &st.requests {
                *counts.entry(r.path.as_str()).or_insert(0) += 1;
            }
            let mut keys: Vec<&String> = st.bytes.keys().collect();
            keys.sort();
            for p in keys {
                paths.insert(
                    p.clone(),
                    serde_json::json!({"requests": counts.get(p.as_str()).copied().unwrap_or(0),
                                       "bytes": st.bytes[p]}),
                );
            }
            for (p, n) in &counts {
                if !paths.contains_key(*p) {
                    paths.insert(
                        (*p).to_owned(),
                        serde_json::json!({"requests": n, "bytes": 0}),
                    );
                }
            }
            let topics: serde_json::Map<String, Value> = st
                .stream
                .topic_bytes
                .iter()
                .map(|(k, v)| (k.clone(), Value::from(*v)))
                .collect();
            let body = serde_json::json!({
                "version": st.version,
                "raft_index": st.raft,
                "requests": st.requests.len(),
                "bytes": st.bytes.values().sum::<u64>(),
                "paths": paths,
                "stream_topic_bytes": topics,
                "subscribers": st.stream.subscribers(),
                "churn_paused": st.churn_paused,
            });
            (200, compact(&body))
        }
        ("POST", "/_fake/pause") => {
            st.churn_paused = true;
            (200, b"{}".to_vec())
        }
        ("POST", "/_fake/resume") => {
            st.churn_paused = false;
            (200, b"{}".to_vec())
        }
        _ => (404, b"{}".to_vec()),
    }
}

/// A job's stub from the jobs list (`namespace` defaults to `default`).
fn job_stub(request: &Request, state: &Mutex<State>, id: &str) -> Option<Value> {
    let ns = request
        .query
        .get("namespace")
        .map_or("default", String::as_str);
    let token = format!("{ns}.{id}");
    let st = state.lock().unwrap();
    st.lists[&List::Jobs]
        .iter()
        .find(|i| i.token == token || (i.namespace.is_none() && i.token == id))
        .and_then(|i| serde_json::from_slice(&i.json).ok())
}

fn list_of(path: &str) -> Option<List> {
    match path {
        "/v1/jobs" => Some(List::Jobs),
        "/v1/nodes" => Some(List::Nodes),
        "/v1/allocations" => Some(List::Allocations),
        _ => None,
    }
}

/// `500ms`, `10s`, `5m`, `300000ms` (what the daemon sends).
fn parse_go_duration(text: &str) -> Duration {
    let (num, unit) = text.split_at(
        text.find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len()),
    );
    let n: u64 = num.parse().unwrap_or(0);
    match unit {
        "ms" => Duration::from_millis(n),
        "s" => Duration::from_secs(n),
        "m" => Duration::from_secs(n * 60),
        _ => Duration::from_secs(300),
    }
}

/// What real Nomad of `version` answers: (status, body, X-Nomad-Index,
/// X-Nomad-NextToken).
pub(super) fn route(
    request: &Request,
    version: &str,
    state: &Mutex<State>,
) -> (u16, Vec<u8>, Option<u64>, Option<String>) {
    let (status, body, index) = route_inner(request, version, state);
    match body {
        Answer::Page(body, next) => (status, body, index, next),
        Answer::Body(body) => (status, body, index, None),
    }
}

enum Answer {
    Body(Vec<u8>),
    Page(Vec<u8>, Option<String>),
}

impl From<Vec<u8>> for Answer {
    fn from(body: Vec<u8>) -> Self {
        Answer::Body(body)
    }
}

fn route_inner(
    request: &Request,
    version: &str,
    state: &Mutex<State>,
) -> (u16, Answer, Option<u64>) {
    let load = |file: &'static str| -> Value {
        let st = state.lock().unwrap();
        st.overrides
            .get(file)
            .cloned()
            .unwrap_or_else(|| fixture(version, file))
    };
    if let Some(v) = state.lock().unwrap().path_overrides.get(&request.path) {
        return (200, compact(v).into(), Some(100));
    }
    if request.method != "GET" {
        return (405, b"Invalid method".to_vec().into(), None);
    }
    let node = load("node.json");
    let node_id = node["ID"].as_str().unwrap_or_default().to_owned();
    let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "agent", "self"] => (200, compact(&load("agent-self.json")).into(), None),
        ["v1", "node", id] if *id == node_id => (
            200,
            compact(&node).into(),
            Some(state.lock().unwrap().node_index),
        ),
        ["v1", "node", _] => (404, b"node not found".to_vec().into(), None),
        ["v1", "node", id, "allocations"] if *id == node_id => (
            200,
            compact(&load("node-allocations.json")).into(),
            Some(state.lock().unwrap().node_allocs_index),
        ),
        ["v1", "node", _, "allocations"] => (200, b"[]".to_vec().into(), Some(1)),
        ["v1", "jobs" | "nodes" | "allocations"] => {
            // Before 1.3 (`Features::paging`) `per_page` is ignored, as by
            // Nomad. `filter` is never applied: the whole list is answered.
            let list = list_of(&request.path).expect("list path");
            match list_page(request, version, state, list) {
                Ok((body, next, index)) => (200, Answer::Page(body, next), Some(index)),
                Err(msg) => (400, msg.into_bytes().into(), None),
            }
        }
        ["v1", "status", "leader"] => (200, b"\"10.0.0.5:4647\"".to_vec().into(), None),
        // `structs.JobSummary` (`v2.0.5:nomad/structs/structs.go`), the
        // summary the stub embeds; the summary table's index.
        ["v1", "job", id, "summary"] => {
            let index = Some(state.lock().unwrap().summary_index);
            match job_stub(request, state, id)
                .and_then(|mut j| j.get_mut("JobSummary").map(Value::take))
            {
                Some(summary) => (200, compact(&summary).into(), index),
                None => (404, b"job not found".to_vec().into(), index),
            }
        }
        // The full job, as a Job event carries it.
        ["v1", "job", id] => {
            let index = Some(state.lock().unwrap().indexes[&List::Jobs]);
            match job_stub(request, state, id) {
                Some(stub) => (200, compact(&super::cluster::full_job(&stub)).into(), index),
                None => (404, b"job not found".to_vec().into(), index),
            }
        }
        // `structs.Namespace` list (namespaces are in OSS from 1.0).
        ["v1", "namespaces"]
            if Features::for_version(NomadVersion::parse(&state.lock().unwrap().version))
                .stream
                .is_some() =>
        {
            let mut st = state.lock().unwrap();
            let index = st.namespaces_index;
            let list: Vec<Value> = st
                .cluster_mut()
                .namespaces
                .iter()
                .map(|(name, create)| {
                    serde_json::json!({"Name": name, "Description": if name == "default" { "Default shared namespace" } else { "" },
                        "Quota": "", "Capabilities": null, "NodePoolConfiguration": null, "Meta": null,
                        "CreateIndex": create, "ModifyIndex": create})
                })
                .collect();
            (200, compact(&Value::Array(list)).into(), Some(index))
        }
        _ => (404, b"404 page not found".to_vec().into(), None),
    }
}

/// Compact JSON as Nomad writes it, keys in the fixture's (Go struct) order
/// (`serde_json`'s `preserve_order` is on for the tests).
fn compact(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialise")
}

/// Which items of `list` a request selects (namespace semantics per version),
/// and the page it asks for: (body, next token, index). The items and the
/// index are taken together, as from one state snapshot in Nomad: an index
/// newer than the items would park the next blocking query on a change it
/// never delivered.
fn list_page(
    request: &Request,
    version: &str,
    state: &Mutex<State>,
    list: List,
) -> Result<(Vec<u8>, Option<String>, u64), String> {
    let _ = version;
    let (features, items, index) = {
        let st = state.lock().unwrap();
        (
            st.features(),
            Arc::clone(&st.lists[&list]),
            st.indexes[&list],
        )
    };
    let ns = request.query.get("namespace").map(String::as_str);
    let selected = |item: &Item| -> bool {
        match (features.job_namespaces, ns) {
            // 0.5/0.6: no namespaces, the parameter is ignored.
            (JobNamespaces::None, _) => true,
            // 0.7-0.11: `*` is a literal namespace name; only `default` exists.
            (JobNamespaces::Literal, Some(ns)) => ns == "default",
            (JobNamespaces::Literal, None) => true,
            (JobNamespaces::Wildcard | JobNamespaces::WildcardOrDefault, Some("*")) => true,
            (JobNamespaces::Wildcard | JobNamespaces::WildcardOrDefault, ns) => {
                list == List::Nodes || item.namespace.as_deref() == Some(ns.unwrap_or("default"))
            }
        }
    };
    // The allocation list is not paged (its page tokens are broken before
    // 1.10.2, GH-25435; see `Features::paging`).
    let paging = features.paging && list != List::Allocations;
    let per_page =
        if paging {
            match request.query.get("per_page") {
                Some(p) => Some(p.parse::<usize>().map_err(|_| {
                    "Expect a number for `per_page` query string parameter".to_owned()
                })?),
                None => None,
            }
        } else {
            None
        };
    let start_token = request.query.get("next_token").filter(|_| paging);
    let with_resources = features.list_resources
        && request.query.get("resources").map(String::as_str) == Some("true");
    let mut body = Vec::with_capacity(64 * 1024);
    body.push(b'[');
    let mut count = 0usize;
    let mut next = None;
    let mut started = start_token.is_none();
    for item in items.iter().filter(|i| selected(i)) {
        if !started {
            // Tokens name the first item of the next page (inclusive).
            if Some(&item.token) >= start_token {
                started = true;
            } else {
                continue;
            }
        }
        if per_page.is_some_and(|n| n > 0 && count == n) {
            next = Some(item.token.clone());
            break;
        }
        if count > 0 {
            body.push(b',');
        }
        let json = match (&item.json_lean, with_resources) {
            (Some(lean), false) => lean,
            _ => &item.json,
        };
        body.extend_from_slice(json);
        count += 1;
    }
    body.push(b']');
    Ok((body, next, index))
}

/// Items of a fixture list, in the order Nomad lists them.
pub(super) fn items_from_fixture(list: List, value: &Value) -> Vec<Item> {
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            let id = v["ID"].as_str().unwrap_or_default().to_owned();
            let namespace = v["Namespace"].as_str().map(str::to_owned);
            let token = match (list, &namespace) {
                (List::Jobs, Some(ns)) => format!("{ns}.{id}"),
                _ => id,
            };
            let lean = (list != List::Jobs).then(|| {
                let mut lean = v.clone();
                if let Some(o) = lean.as_object_mut() {
                    for key in ["NodeResources", "ReservedResources", "AllocatedResources"] {
                        o.remove(key);
                    }
                }
                compact(&lean)
            });
            Item {
                namespace,
                token,
                json: compact(v),
                json_lean: lean,
            }
        })
        .collect()
}
