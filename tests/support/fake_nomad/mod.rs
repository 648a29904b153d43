//! An in-process fake Nomad HTTP API on 127.0.0.1:0, serving the fixtures of
//! one Nomad version (`tests/fixtures/nomad-<v>/`) the way that version
//! answers: compact JSON, `X-Nomad-Index` on blocking-capable endpoints,
//! chunked transfer for bodies over 2 KiB, gzip when asked, plain-text
//! errors, and the `namespace` semantics of each version. Knobs inject
//! faults per path, and every request is recorded (headers included) so
//! tests can assert on the token header and on request counts.
//!
//! A hand-written HTTP/1.1 server on purpose: faults such as a body cut off
//! mid-way, a reset, or a head that never comes cannot be produced by a
//! well-behaved server library.
//!
//! This file: the `FakeNomad` handle, its knobs (faults, overrides, lists,
//! indexes) and the state they share with the connections. The HTTP/1.1
//! plumbing is in `http`, what each path answers per version in `routes`,
//! the synthetic clusters of the scale tests and benchmarks in `synthetic`,
//! the mutable cluster (transactions and the events they publish) in
//! `cluster`, and `GET /v1/event/stream` in `stream`.
//!
//! Every byte written is counted per path (`bytes_served`), and per event
//! topic for the stream (`stream_topic_bytes`); `GET /_fake/stats` answers
//! the same as JSON, and `POST /_fake/pause` / `POST /_fake/resume` set a
//! flag a churn loop reads (`churn_paused`). `/_fake/` requests are
//! neither recorded nor counted.

#![allow(dead_code)] // each test binary / example uses a different subset

mod cluster;
mod http;
mod routes;
mod stream;
mod synthetic;
mod versions;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use nomad_metrics::nomad::{Features, NomadVersion};

use cluster::Cluster;
use http::{serve_connection, Conn, Listen};
use routes::items_from_fixture;
use stream::{Broker, Ending};
// Re-exported so the paths stay `fake_nomad::synthetic`; not every user
// (test binary or example) needs them.
#[allow(unused_imports)]
pub use cluster::{EventRec, JobKey, MsgType, Txn};
#[allow(unused_imports)]
pub use stream::{ERR_CLOSED, ERR_DROPPED, ERR_EXPIRED};
#[allow(unused_imports)]
pub use synthetic::{synthetic, Synthetic};

/// The Nomad versions there are fixtures for (the list is in `versions`).
pub const VERSIONS: &[&str] = crate::for_each_version!(@strs);

/// A fault injected on requests whose path starts with a prefix.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer this status with a plain-text body (as Nomad does).
    Status(u16, &'static str),
    /// Wait this long before answering normally.
    Delay(Duration),
    /// Accept the request, then never answer.
    Hang,
    /// 200 with an HTML page.
    Html,
    /// 200 with a body that is not JSON.
    BadJson,
    /// 200 with an empty body.
    Empty,
    /// Announce the full length, send half the body, close.
    Truncated,
    /// Close the connection with a TCP reset before answering.
    Reset,
    /// 200 with an endless (chunked) JSON array until the client gives up.
    Endless,
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    /// Path without the query.
    pub path: String,
    pub query: HashMap<String, String>,
    /// Every value of each query parameter (`topic` repeats).
    pub multi: HashMap<String, Vec<String>>,
    /// Header names lower-cased.
    pub headers: HashMap<String, String>,
}

/// The three list endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum List {
    Jobs,
    Nodes,
    Allocations,
}

/// One list element, pre-rendered (compact JSON), with what paging and
/// filtering need.
#[derive(Debug, Clone)]
pub struct Item {
    /// `Namespace` where the element has one.
    pub namespace: Option<String>,
    /// The page token naming this element (jobs: `<ns>.<id>`; else the ID).
    pub token: String,
    pub json: Vec<u8>,
    /// Element without the resources keys (for requests without
    /// `?resources=true`, or on Nomad before 1.0).
    pub json_lean: Option<Vec<u8>>,
}

#[derive(Debug, Default)]
struct State {
    faults: Vec<(String, Fault)>,
    requests: Vec<Request>,
    /// Replaces a fixture body (by file name) when set.
    overrides: HashMap<&'static str, Value>,
    /// Overrides the JSON answer for exactly this path (e.g. an extra node).
    path_overrides: HashMap<String, Value>,
    /// Lists, from the fixtures or synthetic.
    lists: HashMap<List, Arc<Vec<Item>>>,
    /// `X-Nomad-Index` per list; blocking queries wait for it to move.
    indexes: HashMap<List, u64>,
    /// The version the fake answers as (may differ from the fixtures').
    version: String,
    /// The version whose fixture files are served.
    fixtures: String,
    /// The transaction model, built from the lists when first needed.
    cluster: Option<Cluster>,
    /// The last raft index a transaction took.
    raft: u64,
    /// Index of the job summary table (`/v1/job/<id>/summary`).
    summary_index: u64,
    /// Index of the namespace table (`/v1/namespaces`).
    namespaces_index: u64,
    /// `X-Nomad-Index` of `/v1/node/<client node>` (the node's
    /// ModifyIndex); moves when `node.json` is overridden.
    node_index: u64,
    /// `X-Nomad-Index` of `/v1/node/<client node>/allocations`; moves when
    /// `node-allocations.json` is overridden.
    node_allocs_index: u64,
    stream: Broker,
    /// Bytes written per path (headers + body).
    bytes: HashMap<String, u64>,
    /// Set by `POST /_fake/pause`, cleared by `POST /_fake/resume`.
    churn_paused: bool,
}

impl State {
    fn features(&self) -> Features {
        Features::for_version(NomadVersion::parse(&self.version))
    }

    fn cluster_mut(&mut self) -> &mut Cluster {
        if self.cluster.is_none() {
            self.cluster = Some(Cluster::from_lists(&self.lists));
        }
        self.cluster.as_mut().unwrap()
    }

    /// The next raft index: above every index the fake has served.
    fn next_index(&mut self) -> u64 {
        let max_item = self.cluster_mut().max_index;
        let base = [
            self.raft,
            self.summary_index,
            self.namespaces_index,
            max_item,
            self.indexes.values().copied().max().unwrap_or(0),
        ]
        .into_iter()
        .max()
        .unwrap_or(0);
        base + 1
    }

    /// One transaction at `index`: `f` changes the cluster, then the list
    /// indexes it touched move to `index` and its events are published.
    fn apply<R>(&mut self, index: u64, msg: MsgType, f: impl FnOnce(&mut Txn<'_>) -> R) -> R {
        let features = self.features().stream;
        let eligibility = eligibility_type(&self.version);
        self.cluster_mut();
        self.raft = index;
        let State { cluster, lists, .. } = self;
        let mut txn = Txn::new(
            index,
            msg,
            features,
            eligibility,
            cluster.as_mut().unwrap(),
            lists,
        );
        let r = f(&mut txn);
        let done = txn.commit();
        for (moved, list) in [
            (done.jobs, List::Jobs),
            (done.allocs, List::Allocations),
            (done.nodes, List::Nodes),
        ] {
            if moved {
                self.indexes.insert(list, index);
            }
        }
        if done.summaries {
            self.summary_index = index;
        }
        if done.namespaces {
            self.namespaces_index = index;
        }
        self.stream.publish(index, done.events);
        r
    }
}

/// The Type of a node eligibility change: `NodeEligibility` from 2.0.1,
/// `NodeDrain` before (`docs/nomad-events.md` §4; whether 1.11.x got it
/// is unknown, §11). Not in the daemon's table, which does not depend on
/// it, so decided here.
fn eligibility_type(version: &str) -> &'static str {
    match NomadVersion::parse(version) {
        Some(v) if v >= NomadVersion::new(2, 0, 1) => "NodeEligibility",
        _ => "NodeDrain",
    }
}

/// A running fake Nomad.
pub struct FakeNomad {
    pub addr: SocketAddr,
    pub version: String,
    state: Arc<Mutex<State>>,
    changed: Arc<tokio::sync::Notify>,
    task: JoinHandle<()>,
}

impl Drop for FakeNomad {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Fresh state with the fixture lists of `version`.
fn new_state(version: &str) -> (Arc<Mutex<State>>, Arc<tokio::sync::Notify>) {
    let mut st = State {
        version: version.to_owned(),
        fixtures: version.to_owned(),
        summary_index: 1000,
        namespaces_index: 1,
        node_index: 52277,
        node_allocs_index: 52279,
        ..State::default()
    };
    for (list, file) in [
        (List::Jobs, "jobs.json"),
        (List::Nodes, "nodes.json"),
        (List::Allocations, "allocations.json"),
    ] {
        let items = items_from_fixture(list, &fixture(version, file));
        st.lists.insert(list, Arc::new(items));
        st.indexes.insert(list, 1000);
    }
    (
        Arc::new(Mutex::new(st)),
        Arc::new(tokio::sync::Notify::new()),
    )
}

/// The fixture folder of a version.
pub fn fixture_dir(version: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(format!("nomad-{version}"))
}

/// A fixture file, as text.
pub fn fixture_text(version: &str, file: &str) -> String {
    let path = fixture_dir(version).join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A fixture file, parsed.
pub fn fixture(version: &str, file: &str) -> Value {
    let text = fixture_text(version, file);
    serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("{}: {e}", fixture_dir(version).join(file).display()))
}

impl FakeNomad {
    /// Starts serving `version`'s fixtures on 127.0.0.1:0.
    pub async fn start(version: &str) -> Self {
        Self::start_on("127.0.0.1:0", version).await
    }

    /// Starts as Nomad `version`, which may have no fixtures (e.g. 1.11.2
    /// or 1.7.5 for the stream's per-version behaviour): the fixtures of
    /// the newest fixture version at or below it, `/v1/agent/self`
    /// reporting `version`, and every per-version behaviour (lists, the
    /// stream) decided by `Features::for_version(version)`.
    pub async fn start_emulating(version: &str) -> Self {
        let wanted = NomadVersion::parse(version).expect("a version like 1.11.2");
        let base = VERSIONS
            .iter()
            .filter(|v| NomadVersion::parse(v).is_some_and(|f| f <= wanted))
            .max_by_key(|v| NomadVersion::parse(v))
            .expect("a fixture version at or below");
        let mut fake = Self::start(base).await;
        fake.emulate(version);
        fake
    }

    /// Answers as `version` from now on (see `start_emulating`).
    pub fn emulate(&mut self, version: &str) {
        let fixture_version = self.state.lock().unwrap().version.clone();
        let mut agent = fixture(&fixture_version, "agent-self.json");
        if let Some(v) = agent.pointer_mut("/config/Version") {
            if v.is_object() {
                v["Version"] = Value::from(version);
            } else {
                *v = Value::from(version);
            }
        }
        if let Some(b) = agent.pointer_mut("/member/Tags/build") {
            *b = Value::from(version);
        }
        let mut st = self.state.lock().unwrap();
        st.overrides.insert("agent-self.json", agent);
        st.version = version.to_owned();
        drop(st);
        self.version = version.to_owned();
    }

    /// Starts serving on `listen` (e.g. `127.0.0.1:4646` for the example).
    pub async fn start_on(listen: &str, version: &str) -> Self {
        assert!(
            fixture_dir(version).is_dir(),
            "no fixtures for Nomad {version}"
        );
        let listener = TcpListener::bind(listen).await.expect("bind fake Nomad");
        let addr = listener.local_addr().expect("local addr");
        Self::launch(
            version,
            addr,
            listener,
            |stream| async move { Some(stream) },
        )
    }

    /// Starts serving on a Unix stream socket at `path` (like an agent's
    /// Task API socket). `addr` is then 0.0.0.0:0.
    pub async fn start_unix(path: &std::path::Path, version: &str) -> Self {
        let listener = tokio::net::UnixListener::bind(path).expect("bind Unix fake Nomad");
        Self::launch(
            version,
            ([0, 0, 0, 0], 0).into(),
            listener,
            |stream| async move { Some(stream) },
        )
    }

    /// Starts serving HTTPS on 127.0.0.1:0 with `tls` (see `support::tls`).
    pub async fn start_tls(version: &str, tls: Arc<tokio_rustls::rustls::ServerConfig>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind fake Nomad");
        let addr = listener.local_addr().expect("local addr");
        let acceptor = tokio_rustls::TlsAcceptor::from(tls);
        // A handshake failure (unknown CA, no client cert) just ends the
        // connection, as on a real agent.
        Self::launch(version, addr, listener, move |stream| {
            let acceptor = acceptor.clone();
            async move { acceptor.accept(stream).await.ok() }
        })
    }

    /// Serves `version`'s fixtures on every connection `listener` accepts,
    /// after `upgrade` (e.g. a TLS handshake) turned it into a `Conn`.
    fn launch<L, S, F, Fut>(version: &str, addr: SocketAddr, listener: L, upgrade: F) -> Self
    where
        L: Listen,
        S: Conn + 'static,
        F: Fn(L::Raw) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Option<S>> + Send + 'static,
    {
        let (state, changed) = new_state(version);
        let (shared, notify) = (Arc::clone(&state), Arc::clone(&changed));
        let v = version.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let Ok(raw) = listener.accept_raw().await else {
                    continue;
                };
                let (state, notify, v) = (Arc::clone(&shared), Arc::clone(&notify), v.clone());
                let upgraded = upgrade(raw);
                tokio::spawn(async move {
                    if let Some(stream) = upgraded.await {
                        let _ = serve_connection(stream, &v, &state, &notify).await;
                    }
                });
            }
        });
        Self {
            addr,
            version: version.to_owned(),
            state,
            changed,
            task,
        }
    }

    /// Replaces a list (e.g. with synthetic items) and moves its index.
    pub fn set_list(&self, list: List, items: Vec<Item>) {
        let mut st = self.state.lock().unwrap();
        st.lists.insert(list, Arc::new(items));
        *st.indexes.entry(list).or_insert(0) += 1;
        // The transaction model is rebuilt from the new lists when needed.
        st.cluster = None;
        drop(st);
        self.changed.notify_waiters();
    }

    /// Sets a list's `X-Nomad-Index` (up: a change; down: a snapshot restore)
    /// and wakes parked blocking queries.
    pub fn set_index(&self, list: List, index: u64) {
        self.state.lock().unwrap().indexes.insert(list, index);
        self.changed.notify_waiters();
    }

    /// The items of a list.
    pub fn list(&self, list: List) -> Arc<Vec<Item>> {
        Arc::clone(&self.state.lock().unwrap().lists[&list])
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Injects `fault` on every path starting with `prefix`. A blocking
    /// query parked on such a path answers with the fault at once (as a
    /// server that loses its leader answers its parked queries).
    pub fn set_fault(&self, prefix: &str, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state.faults.retain(|(p, _)| p != prefix);
        state.faults.push((prefix.to_owned(), fault));
        drop(state);
        self.changed.notify_waiters();
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Serves `value` instead of the fixture file `file`. Overriding the
    /// client's node (`node.json`) or its allocations
    /// (`node-allocations.json`) moves that endpoint's index past every
    /// index it served and wakes the blocking queries parked on it.
    pub fn override_fixture(&self, file: &'static str, value: Value) {
        let mut st = self.state.lock().unwrap();
        st.overrides.insert(file, value);
        match file {
            "node.json" => st.node_index = st.node_index.max(st.raft) + 1,
            "node-allocations.json" => {
                st.node_allocs_index = st.node_allocs_index.max(st.raft) + 1;
            }
            _ => {}
        }
        drop(st);
        self.changed.notify_waiters();
    }

    /// Serves `value` for exactly `path`.
    pub fn override_path(&self, path: &str, value: Value) {
        self.state
            .lock()
            .unwrap()
            .path_overrides
            .insert(path.to_owned(), value);
    }

    /// Every request so far.
    pub fn requests(&self) -> Vec<Request> {
        self.state.lock().unwrap().requests.clone()
    }

    /// Requests so far whose path starts with `prefix`.
    pub fn count(&self, prefix: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .requests
            .iter()
            .filter(|r| r.path.starts_with(prefix))
            .count()
    }

    // ----- the mutable cluster (`cluster`) -----

    /// Runs one transaction of message type `msg` at the next raft index:
    /// `f` changes the cluster through `Txn`; the lists' items and indexes
    /// follow, job statuses are derived from their allocations, and the
    /// events Nomad would publish for it are buffered for the stream.
    /// Returns the transaction's index and `f`'s result.
    pub fn txn<R>(&self, msg: MsgType, f: impl FnOnce(&mut Txn<'_>) -> R) -> (u64, R) {
        let mut st = self.state.lock().unwrap();
        let index = st.next_index();
        let r = st.apply(index, msg, f);
        drop(st);
        self.changed.notify_waiters();
        (index, r)
    }

    /// The last raft index a transaction took (0 before any).
    pub fn raft_index(&self) -> u64 {
        self.state.lock().unwrap().raft
    }

    /// `nomad job run`: registers (or re-registers) a job with one task
    /// group `build`. `JobRegistered`.
    pub fn register_job(&self, ns: &str, id: &str, ty: &str) -> u64 {
        self.txn(MsgType::JobRegister, |t| {
            t.register_job(ns, id, ty, &["build"])
        })
        .0
    }

    /// `nomad job stop`: `Stop=true` (`JobDeregistered`), then the
    /// scheduler's plan stopping its live allocations (`PlanResult`), if
    /// any. Returns the last index.
    pub fn stop_job(&self, ns: &str, id: &str) -> u64 {
        let (i, _) = self.txn(MsgType::JobDeregister, |t| t.stop_job(ns, id));
        self.plan_stop(ns, id).unwrap_or(i)
    }

    fn plan_stop(&self, ns: &str, id: &str) -> Option<u64> {
        let live = {
            let mut st = self.state.lock().unwrap();
            let c = st.cluster_mut();
            let mut v: Vec<String> = c
                .allocs
                .iter()
                .filter(|(_, a)| {
                    a.desired == "run"
                        && !matches!(a.client.as_str(), "complete" | "failed" | "lost")
                })
                .filter(|(_, a)| a.job_is(ns, id))
                .map(|(k, _)| k.clone())
                .collect();
            v.sort();
            v
        };
        if live.is_empty() {
            return None;
        }
        let (i, _) = self.txn(MsgType::ApplyPlanResults, |t| {
            for a in &live {
                t.alloc_desired_status(a, "stop");
            }
        });
        Some(i)
    }

    /// `nomad job stop -purge`: deletes the job (`JobDeregistered`; an
    /// event only from 1.7.5 / 1.8.0). From 1.5.13 / 1.6.6 / 1.7.3 / 1.8.0
    /// its allocations are deleted silently in the same transaction
    /// (#19609); before, the scheduler stops them (`PlanResult`).
    pub fn purge_job(&self, ns: &str, id: &str) -> u64 {
        let drops = self.features().stream.is_some_and(|s| s.purge_drops_allocs);
        let (i, _) = self.txn(MsgType::JobDeregister, |t| {
            if drops {
                for a in t.allocs_of(ns, id) {
                    t.delete_alloc(&a);
                }
            }
            t.delete_job(ns, id)
        });
        if drops {
            i
        } else {
            self.plan_stop(ns, id).unwrap_or(i)
        }
    }

    /// Job GC of a dead job: its allocations go in an eval delete
    /// (silent), then the job in a batch deregister
    /// (`JobBatchDeregistered`, an event only from 1.7.5 / 1.8.0). `None`
    /// when the job is not dead.
    pub fn gc_job(&self, ns: &str, id: &str) -> Option<u64> {
        if self.job_status(ns, id).as_deref() != Some("dead") {
            return None;
        }
        let allocs = self.txn(MsgType::Silent, |t| t.allocs_of(ns, id)).1;
        if !allocs.is_empty() {
            self.txn(MsgType::Silent, |t| {
                for a in &allocs {
                    t.delete_alloc(a);
                }
            });
        }
        Some(
            self.txn(MsgType::JobBatchDeregister, |t| t.delete_job(ns, id))
                .0,
        )
    }

    /// One plan placing a `pending` allocation of the job on each node
    /// (`PlanResult`; the job turns running in the same line).
    pub fn place_allocs(&self, ns: &str, job: &str, nodes: &[&str]) -> (u64, Vec<String>) {
        self.txn(MsgType::ApplyPlanResults, |t| {
            nodes
                .iter()
                .filter_map(|n| t.place_alloc(ns, job, n))
                .collect()
        })
    }

    /// One batch of client updates setting `ClientStatus` (`running`,
    /// `complete`, `failed`: `AllocationUpdated`, with the job's status
    /// change and, on noisy versions, one Node event per node). `lost` is
    /// the server's doing: a plan (`PlanResult`).
    pub fn alloc_client_update(&self, ids: &[&str], status: &str) -> u64 {
        let msg = if status == "lost" {
            MsgType::ApplyPlanResults
        } else {
            MsgType::AllocClientUpdate
        };
        self.txn(msg, |t| {
            for id in ids {
                t.alloc_client_status(id, status);
            }
        })
        .0
    }

    /// Alloc GC (an eval delete): silent on every version.
    pub fn gc_allocs(&self, ids: &[&str]) -> u64 {
        self.txn(MsgType::Silent, |t| {
            for id in ids {
                t.delete_alloc(id);
            }
        })
        .0
    }

    /// `nomad node drain -enable` / `-disable` (`NodeDrain`).
    pub fn drain_node(&self, id: &str, drain: bool) -> u64 {
        self.txn(MsgType::NodeUpdateDrain, |t| t.node_drain(id, drain))
            .0
    }

    /// `nomad node eligibility` (`NodeDrain` to 2.0.0, `NodeEligibility`
    /// from 2.0.1).
    pub fn set_node_eligibility(&self, id: &str, eligible: bool) -> u64 {
        self.txn(MsgType::NodeUpdateEligibility, |t| {
            t.node_eligibility(id, eligible)
        })
        .0
    }

    /// The node misses its heartbeats (`NodeStreamEvent`).
    pub fn node_down(&self, id: &str) -> u64 {
        self.txn(MsgType::NodeUpdateStatus, |t| t.node_status(id, "down"))
            .0
    }

    /// The node is back (`NodeStreamEvent`), or registers for the first
    /// time (`NodeRegistration`).
    pub fn node_up(&self, id: &str) -> u64 {
        let known = self
            .state
            .lock()
            .unwrap()
            .cluster_mut()
            .nodes
            .contains_key(id);
        if known {
            self.txn(MsgType::NodeUpdateStatus, |t| t.node_status(id, "ready"))
                .0
        } else {
            self.txn(MsgType::NodeRegister, |t| t.register_node(id)).0
        }
    }

    /// `nomad node purge` (`NodeDeregistration`, the node as it was).
    pub fn purge_node(&self, id: &str) -> u64 {
        self.txn(MsgType::NodeDeregister, |t| t.delete_node(id)).0
    }

    /// Node GC: silent.
    pub fn gc_node(&self, id: &str) -> u64 {
        self.txn(MsgType::Silent, |t| t.delete_node(id)).0
    }

    /// `nomad namespace apply` (no event; `/v1/namespaces` moves).
    pub fn create_namespace(&self, name: &str) -> u64 {
        self.txn(MsgType::NamespaceUpsert, |t| t.create_namespace(name))
            .0
    }

    /// A job's status in the fake's model.
    pub fn job_status(&self, ns: &str, id: &str) -> Option<String> {
        let mut st = self.state.lock().unwrap();
        st.cluster_mut()
            .jobs
            .get(&(ns.to_owned(), id.to_owned()))
            .map(|j| j.status.clone())
    }

    /// Jobs with this status, sorted (for churn generators).
    pub fn jobs_with_status(&self, status: &str) -> Vec<JobKey> {
        self.state.lock().unwrap().cluster_mut().jobs_with(status)
    }

    /// Node IDs, sorted.
    pub fn node_ids(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .state
            .lock()
            .unwrap()
            .cluster_mut()
            .nodes
            .keys()
            .cloned()
            .collect();
        v.sort();
        v
    }

    fn features(&self) -> Features {
        self.state.lock().unwrap().features()
    }

    // ----- the event stream (`stream`) -----

    /// Ends every open subscription: with `Some(text)` as Nomad ends one
    /// with an error (the text after the last line before 1.11.2, a bare
    /// EOF from 1.11.2); with `None` the connection is closed mid-body.
    pub fn cut_streams(&self, with_error: Option<&str>) {
        let ending = match with_error {
            Some(t) => Ending::Text(t.to_owned()),
            None => Ending::Abrupt,
        };
        self.state.lock().unwrap().stream.end_all(&ending);
        self.changed.notify_waiters();
    }

    /// A reader fell behind: every open subscription ends with `event
    /// dropped from buffer` (a subscriber whose last item leaves the
    /// buffer before it reads on gets it too, as in Nomad).
    pub fn overrun_subscribers(&self) {
        self.cut_streams(Some(ERR_DROPPED));
    }

    /// An FSM snapshot restore: every subscription ends with
    /// `subscription closed by server`, the buffer empties, and `f`'s
    /// changes are applied silently at raft index `index` (which may be
    /// lower than the current one); every list index moves to `index`.
    pub fn restore_snapshot(&self, index: u64, f: impl FnOnce(&mut Txn<'_>)) {
        let mut st = self.state.lock().unwrap();
        st.stream.end_all(&Ending::Text(ERR_CLOSED.to_owned()));
        st.stream.clear();
        st.apply(index, MsgType::Silent, f);
        // The restored state is as of `index`, whatever its items say.
        st.cluster_mut().max_index = 0;
        for list in [List::Jobs, List::Nodes, List::Allocations] {
            st.indexes.insert(list, index);
        }
        st.summary_index = index;
        st.namespaces_index = index;
        st.raft = index;
        drop(st);
        self.changed.notify_waiters();
    }

    /// Answers new subscriptions with `status` and `text` before the first
    /// byte (e.g. 403 `Permission denied`); from 1.11.2 that shows as a
    /// 200 head then EOF.
    pub fn refuse_stream(&self, status: u16, text: &str) {
        self.state.lock().unwrap().stream.refuse = Some((status, text.to_owned()));
    }

    /// Undoes `refuse_stream`.
    pub fn allow_stream(&self) {
        self.state.lock().unwrap().stream.refuse = None;
    }

    /// The broker is disabled: subscriptions answer `EventBroker not
    /// configured` (500 before 1.11.2; 200 then EOF after), nothing is
    /// buffered.
    pub fn no_event_broker(&self) {
        let mut st = self.state.lock().unwrap();
        st.stream.disabled = true;
        st.stream.clear();
    }

    /// `event_buffer_size` (default 100 items).
    pub fn set_buffer_size(&self, n: usize) {
        let mut st = self.state.lock().unwrap();
        st.stream.size = n;
        st.stream.prune();
    }

    /// The heartbeat period of new subscriptions (default 30 s).
    pub fn set_heartbeat(&self, every: Duration) {
        self.state.lock().unwrap().stream.heartbeat = every;
    }

    /// Open subscriptions.
    pub fn subscribers(&self) -> usize {
        self.state.lock().unwrap().stream.subscribers()
    }

    /// The buffered indexes, oldest first.
    pub fn buffered_indexes(&self) -> Vec<u64> {
        self.state.lock().unwrap().stream.indexes()
    }

    // ----- accounting -----

    /// Bytes written (status line, headers, body, chunk framing) on paths
    /// starting with `prefix`. `count(prefix)` is the request count.
    pub fn bytes_served(&self, prefix: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .bytes
            .iter()
            .filter(|(p, _)| p.starts_with(prefix))
            .map(|(_, n)| n)
            .sum()
    }

    /// Bytes of event JSON sent for `topic` on every subscription.
    pub fn stream_topic_bytes(&self, topic: &str) -> u64 {
        self.state
            .lock()
            .unwrap()
            .stream
            .topic_bytes
            .get(topic)
            .copied()
            .unwrap_or(0)
    }

    /// Whether `POST /_fake/pause` asked the churn to stop.
    pub fn churn_paused(&self) -> bool {
        self.state.lock().unwrap().churn_paused
    }
}
