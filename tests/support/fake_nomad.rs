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

#![allow(dead_code)] // each test binary / example uses a different subset

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

/// The Nomad versions there are fixtures for.
pub const VERSIONS: &[&str] = &["0.5.6", "0.8.7", "1.4.0", "1.8.0", "1.11.0", "2.0.5"];

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

/// A fixture file, parsed.
pub fn fixture(version: &str, file: &str) -> Value {
    let path = fixture_dir(version).join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn parse_version(v: &str) -> (u32, u32, u32) {
    let mut it = v.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    (
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
        it.next().unwrap_or(0),
    )
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

/// A listening socket the fake accepts connections on.
trait Listen: Send + 'static {
    type Raw: Send + 'static;
    fn accept_raw(&self) -> impl std::future::Future<Output = std::io::Result<Self::Raw>> + Send;
}

impl Listen for TcpListener {
    type Raw = TcpStream;
    async fn accept_raw(&self) -> std::io::Result<TcpStream> {
        let (stream, _) = self.accept().await?;
        // Go's net/http sets TCP_NODELAY on every connection.
        stream.set_nodelay(true)?;
        Ok(stream)
    }
}

impl Listen for tokio::net::UnixListener {
    type Raw = tokio::net::UnixStream;
    async fn accept_raw(&self) -> std::io::Result<tokio::net::UnixStream> {
        Ok(self.accept().await?.0)
    }
}

/// A connection the fake can serve: TCP, TLS over TCP, or a Unix socket.
trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {
    /// Makes the coming close a reset (TCP only).
    fn arm_reset(&self) -> std::io::Result<()>;
}

impl Conn for TcpStream {
    fn arm_reset(&self) -> std::io::Result<()> {
        // A zero linger makes close send RST; it does not block.
        #[allow(deprecated)]
        self.set_linger(Some(Duration::ZERO))
    }
}

impl Conn for tokio_rustls::server::TlsStream<TcpStream> {
    fn arm_reset(&self) -> std::io::Result<()> {
        self.get_ref().0.arm_reset()
    }
}

impl Conn for tokio::net::UnixStream {
    fn arm_reset(&self) -> std::io::Result<()> {
        Ok(())
    }
}

async fn serve_connection<S: Conn>(
    mut stream: S,
    version: &str,
    state: &Mutex<State>,
    changed: &tokio::sync::Notify,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Read one request head (GETs carry no body).
        let head_end = loop {
            if let Some(pos) = find(&buf, b"\r\n\r\n") {
                break pos;
            }
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
        buf.drain(..head_end + 4);
        let request = parse_head(&head);
        let fault = {
            let mut st = state.lock().unwrap();
            st.requests.push(request.clone());
            st.faults
                .iter()
                .find(|(p, _)| request.path.starts_with(p.as_str()))
                .map(|(_, f)| f.clone())
        };
        let gzip = request
            .headers
            .get("accept-encoding")
            .is_some_and(|v| v.contains("gzip"));
        match fault {
            Some(Fault::Status(code, body)) => {
                write_response(
                    &mut stream,
                    code,
                    "text/plain; charset=utf-8",
                    body.as_bytes(),
                    false,
                    None,
                    None,
                )
                .await?
            }
            Some(Fault::Delay(d)) => {
                tokio::time::sleep(d).await;
                answer(&mut stream, &request, version, state, gzip).await?;
            }
            Some(Fault::Hang) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
            Some(Fault::Html) => {
                write_response(
                    &mut stream,
                    200,
                    "text/html; charset=utf-8",
                    b"<!DOCTYPE html><html><body><h1>Gateway</h1></body></html>",
                    gzip,
                    None,
                    None,
                )
                .await?
            }
            Some(Fault::BadJson) => {
                write_response(
                    &mut stream,
                    200,
                    "application/json",
                    b"{\"ID\": \"x\", oops",
                    gzip,
                    None,
                    None,
                )
                .await?
            }
            Some(Fault::Empty) => {
                write_response(&mut stream, 200, "application/json", b"", false, None, None).await?
            }
            Some(Fault::Truncated) => {
                let body = route(&request, version, state).1;
                let head = format!(
                    "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n",
                    body.len()
                );
                stream.write_all(head.as_bytes()).await?;
                stream.write_all(&body[..body.len() / 2]).await?;
                stream.flush().await?;
                return Ok(());
            }
            Some(Fault::Reset) => {
                stream.arm_reset()?;
                return Ok(());
            }
            Some(Fault::Endless) => {
                stream
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n")
                    .await?;
                write_chunk(&mut stream, b"[").await?;
                let element = br#"{"ID":"j","Type":"batch","Status":"running","Stop":false,"JobSummary":{"Summary":{}}},"#;
                let block: Vec<u8> = element
                    .iter()
                    .copied()
                    .cycle()
                    .take(element.len() * 1000)
                    .collect();
                loop {
                    write_chunk(&mut stream, &block).await?;
                }
            }
            None => {
                block_if_asked(&request, state, changed).await;
                answer(&mut stream, &request, version, state, gzip).await?;
            }
        }
    }
}

/// A blocking query (`?index=N&wait=D`) on a list waits until the list's
/// index passes N or D elapses, as Nomad does.
async fn block_if_asked(request: &Request, state: &Mutex<State>, changed: &tokio::sync::Notify) {
    let Some(list) = list_of(&request.path) else {
        return;
    };
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
    loop {
        let notified = changed.notified();
        if state.lock().unwrap().indexes[&list] != index {
            return;
        }
        if tokio::time::timeout_at(deadline, notified).await.is_err() {
            return;
        }
    }
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

async fn answer<S: Conn>(
    stream: &mut S,
    request: &Request,
    version: &str,
    state: &Mutex<State>,
    gzip: bool,
) -> std::io::Result<()> {
    let (status, body, index, next_token) = route(request, version, state);
    let content_type = if status == 200 {
        "application/json"
    } else {
        "text/plain; charset=utf-8"
    };
    write_response(
        stream,
        status,
        content_type,
        &body,
        gzip && status == 200,
        index,
        next_token,
    )
    .await
}

/// What real Nomad of `version` answers: (status, body, X-Nomad-Index,
/// X-Nomad-NextToken).
fn route(
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
        ["v1", "node", id] if *id == node_id => (200, compact(&node).into(), Some(52277)),
        ["v1", "node", _] => (404, b"node not found".to_vec().into(), None),
        ["v1", "node", id, "allocations"] if *id == node_id => (
            200,
            compact(&load("node-allocations.json")).into(),
            Some(52279),
        ),
        ["v1", "node", _, "allocations"] => (200, b"[]".to_vec().into(), Some(1)),
        ["v1", "jobs" | "nodes" | "allocations"] => {
            // Before 1.3, `filter` and `per_page` are ignored, as by Nomad.
            let list = list_of(&request.path).expect("list path");
            match list_page(request, version, state, list) {
                Ok((body, next)) => (
                    200,
                    Answer::Page(body, next),
                    Some(state.lock().unwrap().indexes[&list]),
                ),
                Err(msg) => (400, msg.into_bytes().into(), None),
            }
        }
        ["v1", "status", "leader"] => (200, b"\"10.0.0.5:4647\"".to_vec().into(), None),
        _ => (404, b"404 page not found".to_vec().into(), None),
    }
}

/// Compact JSON as Nomad writes it, keys in the fixture's (Go struct) order
/// (`serde_json`'s `preserve_order` is on for the tests).
fn compact(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialise")
}

async fn write_response<S: Conn>(
    stream: &mut S,
    status: u16,
    content_type: &str,
    body: &[u8],
    gzip: bool,
    index: Option<u64>,
    next_token: Option<String>,
) -> std::io::Result<()> {
    let reason = match status {
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    };
    // The gzip handlers Nomad uses leave bodies under 1400 bytes alone and
    // stream the rest (no Content-Length: chunked).
    let gzip = gzip && body.len() >= 1400;
    let plain_len = body.len();
    let body: Vec<u8> = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(body)?;
        enc.finish()?
    } else {
        body.to_vec()
    };
    let mut head = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: {content_type}\r\nVary: Accept-Encoding\r\n"
    );
    if let Some(index) = index {
        head.push_str(&format!(
            "X-Nomad-Index: {index}\r\nX-Nomad-Knownleader: true\r\nX-Nomad-Lastcontact: 0\r\n"
        ));
    }
    if let Some(token) = next_token {
        head.push_str(&format!("X-Nomad-Nexttoken: {token}\r\n"));
    }
    if gzip {
        head.push_str("Content-Encoding: gzip\r\n");
    }
    // Go's server buffers ~2 KiB; a larger single Write goes out chunked.
    if gzip || plain_len > 2048 {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        // Nomad writes the encoded body in one Write, which Go's server
        // sends as a single chunk.
        write_chunk(stream, &body).await?;
        stream.write_all(b"0\r\n\r\n").await?;
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
    }
    stream.flush().await
}

async fn write_chunk<S: Conn>(stream: &mut S, data: &[u8]) -> std::io::Result<()> {
    stream
        .write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    stream.write_all(data).await?;
    stream.write_all(b"\r\n").await
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

fn parse_head(head: &str) -> Request {
    let mut lines = head.split("\r\n");
    let first = lines.next().unwrap_or_default();
    let mut words = first.split(' ');
    let method = words.next().unwrap_or_default().to_owned();
    let target = words.next().unwrap_or_default();
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let query = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Request {
        method,
        path: path.to_owned(),
        query,
        headers,
    }
}

/// Which items of `list` a request selects (namespace semantics per version),
/// and the page it asks for: (body, next token).
fn list_page(
    request: &Request,
    version: &str,
    state: &Mutex<State>,
    list: List,
) -> Result<(Vec<u8>, Option<String>), String> {
    let (major, minor, _) = parse_version(version);
    let items = Arc::clone(&state.lock().unwrap().lists[&list]);
    let ns = request.query.get("namespace").map(String::as_str);
    let namespaces = (major, minor) >= (0, 12);
    let selected = |item: &Item| -> bool {
        match (namespaces, (major, minor) >= (0, 7), ns) {
            // 0.5/0.6: no namespaces, the parameter is ignored.
            (_, false, _) => true,
            // 0.7-0.11: `*` is a literal namespace name; only `default` exists.
            (false, true, Some(ns)) => ns == "default",
            (false, true, None) => true,
            (true, _, Some("*")) => true,
            (true, _, ns) => {
                list == List::Nodes || item.namespace.as_deref() == Some(ns.unwrap_or("default"))
            }
        }
    };
    let paging = (major, minor) >= (1, 3) && list != List::Allocations;
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
    let with_resources = (major, minor) >= (1, 0)
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
    Ok((body, next))
}

/// Items of a fixture list, in the order Nomad lists them.
fn items_from_fixture(list: List, value: &Value) -> Vec<Item> {
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

/// Sizes of a synthetic cluster (Nomad 1.10 shapes).
#[derive(Debug, Clone, Copy)]
pub struct Synthetic {
    pub jobs: usize,
    pub nodes: usize,
    pub allocs: usize,
}

/// Synthetic list items shaped like Nomad 1.10's, deterministic. Jobs
/// cycle through statuses and types over 4 namespaces; nodes over 2
/// datacenters × 3 classes; allocations spread over the nodes.
pub fn synthetic(list: List, n: usize, nodes: usize) -> Vec<Item> {
    let mut items: Vec<Item> = (0..n)
        .map(|i| match list {
            List::Jobs => {
                let ns = ["default", "ci", "batch", "ops"][i % 4];
                let id = format!("build-{i:07}");
                let (status, summary) = match i % 10 {
                    0 => ("pending", (0, 0, 0)),
                    1 | 2 => ("running", (0, 0, 0)),
                    3..=6 => ("dead", (1, 0, 0)),
                    7 => ("dead", (1, 1, 0)),
                    8 => ("dead", (0, 0, 1)),
                    _ => ("dead", (0, 1, 0)),
                };
                let jtype = ["batch", "batch", "service", "sysbatch"][i % 4];
                let json = format!(
                    concat!(
                        r#"{{"ID":"{id}","ParentID":"","Name":"{id}","Namespace":"{ns}","Datacenters":["dc1"],"NodePool":"default","Multiregion":null,"#,
                        r#""Type":"{jtype}","Priority":50,"Periodic":false,"ParameterizedJob":false,"Stop":false,"Status":"{status}","StatusDescription":"","#,
                        r#""JobSummary":{{"JobID":"{id}","Namespace":"{ns}","Summary":{{"build":{{"Queued":0,"Complete":{c},"Failed":{f},"Running":{r},"Starting":0,"Lost":{l},"Unknown":0}}}},"#,
                        r#""Children":{{"Pending":0,"Running":0,"Dead":0}},"CreateIndex":{ci},"ModifyIndex":{mi}}},"CreateIndex":{ci},"ModifyIndex":{mi},"JobModifyIndex":{ci},"SubmitTime":1772439000000000000}}"#
                    ),
                    id = id, ns = ns, jtype = jtype, status = status,
                    c = summary.0, f = summary.1, l = summary.2, r = u8::from(status == "running"),
                    ci = 1000 + i, mi = 1005 + i,
                );
                Item { namespace: Some(ns.to_owned()), token: format!("{ns}.{id}"), json: json.into_bytes(), json_lean: None }
            }
            List::Nodes => {
                let id = node_uuid(i);
                let dc = ["dc1", "dc2"][i % 2];
                let class = ["builder", "general", "gpu"][i % 3];
                let status = if i % 50 == 0 { "down" } else { "ready" };
                let head = format!(
                    r#"{{"Address":"10.1.{}.{}","ID":"{id}","Datacenter":"{dc}","Name":"node-{i}","NodePool":"default","NodeClass":"{class}","Version":"1.10.3","Drain":false,"SchedulingEligibility":"eligible","Status":"{status}","StatusDescription":"","Drivers":{{"docker":{{"Detected":true,"Healthy":true}}}},"HostVolumes":null,"#,
                    i / 250, i % 250,
                );
                let res = r#""NodeResources":{"Cpu":{"CpuShares":32000},"Memory":{"MemoryMB":64000},"Disk":{"DiskMB":400000},"Networks":null},"ReservedResources":{"Cpu":{"CpuShares":1000},"Memory":{"MemoryMB":1024},"Disk":{"DiskMB":10000},"Networks":{"ReservedHostPorts":"22"}},"#;
                let tail = r#""LastDrain":null,"CreateIndex":40,"ModifyIndex":52277}"#;
                Item {
                    namespace: None,
                    token: id,
                    json: format!("{head}{res}{tail}").into_bytes(),
                    json_lean: Some(format!("{head}{tail}").into_bytes()),
                }
            }
            List::Allocations => {
                let id = format!("a{:07}-0000-4000-8000-{:012}", i % 10_000_000, i);
                let node = node_uuid(i % nodes.max(1));
                let client = ["running", "running", "pending", "complete", "failed"][i % 5];
                let head = format!(
                    r#"{{"ID":"{id}","EvalID":"e0000000-0000-4000-8000-000000000000","Name":"build.build[0]","Namespace":"ci","NodeID":"{node}","NodeName":"node","JobID":"build-{i}","JobType":"batch","JobVersion":0,"TaskGroup":"build","#
                );
                let res = r#""AllocatedResources":{"Tasks":{"build":{"Cpu":{"CpuShares":500,"ReservedCores":null},"Memory":{"MemoryMB":1024,"MemoryMaxMB":0},"Networks":null,"Devices":null},"init":{"Cpu":{"CpuShares":100,"ReservedCores":null},"Memory":{"MemoryMB":64,"MemoryMaxMB":0},"Networks":null,"Devices":null}},"TaskLifecycles":{"build":null,"init":{"Hook":"prestart","Sidecar":false}},"Shared":{"Networks":null,"DiskMB":300,"Ports":null}},"#;
                let tail = format!(
                    r#""DesiredStatus":"run","DesiredDescription":"","ClientStatus":"{client}","ClientDescription":"","DesiredTransition":{{"Migrate":null,"Reschedule":null,"ForceReschedule":null,"NoShutdownDelay":null}},"TaskStates":null,"DeploymentStatus":null,"FollowupEvalID":"","NextAllocation":"","RescheduleTracker":null,"PreemptedAllocations":null,"PreemptedByAllocation":"","CreateIndex":{ci},"ModifyIndex":{ci},"CreateTime":1772440000000000000,"ModifyTime":1772445700000000000}}"#,
                    ci = 2000 + i
                );
                Item {
                    namespace: Some("ci".to_owned()),
                    token: id,
                    json: format!("{head}{res}{tail}").into_bytes(),
                    json_lean: Some(format!("{head}{tail}").into_bytes()),
                }
            }
        })
        .collect();
    items.sort_by(|a, b| (&a.namespace, &a.token).cmp(&(&b.namespace, &b.token)));
    items
}

fn node_uuid(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}
