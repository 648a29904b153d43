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
//! the synthetic clusters of the scale tests and benchmarks in `synthetic`.

#![allow(dead_code)] // each test binary / example uses a different subset

mod http;
mod routes;
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

use http::{serve_connection, Conn, Listen};
use routes::items_from_fixture;
// Re-exported so the paths stay `fake_nomad::synthetic`; not every user
// (test binary or example) needs them.
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
    let mut st = State::default();
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

    /// Injects `fault` on every path starting with `prefix`.
    pub fn set_fault(&self, prefix: &str, fault: Fault) {
        let mut state = self.state.lock().unwrap();
        state.faults.retain(|(p, _)| p != prefix);
        state.faults.push((prefix.to_owned(), fault));
    }

    /// Removes every fault.
    pub fn clear_faults(&self) {
        self.state.lock().unwrap().faults.clear();
    }

    /// Serves `value` instead of the fixture file `file`.
    pub fn override_fixture(&self, file: &'static str, value: Value) {
        self.state.lock().unwrap().overrides.insert(file, value);
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
}
