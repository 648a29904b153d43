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

#[derive(Debug, Default)]
struct State {
    faults: Vec<(String, Fault)>,
    requests: Vec<Request>,
    /// Replaces a fixture body (by file name) when set.
    overrides: HashMap<&'static str, Value>,
    /// Overrides the JSON answer for exactly this path (e.g. an extra node).
    path_overrides: HashMap<String, Value>,
}

/// A running fake Nomad.
pub struct FakeNomad {
    pub addr: SocketAddr,
    pub version: String,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for FakeNomad {
    fn drop(&mut self) {
        self.task.abort();
    }
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
        let state = Arc::new(Mutex::new(State::default()));
        let shared = Arc::clone(&state);
        let v = version.to_owned();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let state = Arc::clone(&shared);
                let v = v.clone();
                tokio::spawn(async move {
                    let _ = serve_connection(stream, &v, &state).await;
                });
            }
        });
        Self {
            addr,
            version: version.to_owned(),
            state,
            task,
        }
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

async fn serve_connection(
    mut stream: TcpStream,
    version: &str,
    state: &Mutex<State>,
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
                )
                .await?
            }
            Some(Fault::Empty) => {
                write_response(&mut stream, 200, "application/json", b"", false, None).await?
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
                // A zero linger makes close send RST; it does not block.
                #[allow(deprecated)]
                stream.set_linger(Some(Duration::ZERO))?;
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
            None => answer(&mut stream, &request, version, state, gzip).await?,
        }
    }
}

async fn answer(
    stream: &mut TcpStream,
    request: &Request,
    version: &str,
    state: &Mutex<State>,
    gzip: bool,
) -> std::io::Result<()> {
    let (status, body, index) = route(request, version, state);
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
    )
    .await
}

/// What real Nomad of `version` answers: (status, body, X-Nomad-Index).
fn route(request: &Request, version: &str, state: &Mutex<State>) -> (u16, Vec<u8>, Option<u64>) {
    let (major, minor, _) = parse_version(version);
    let has_namespaces = (major, minor) >= (0, 12);
    let load = |file: &'static str| -> Value {
        let st = state.lock().unwrap();
        st.overrides
            .get(file)
            .cloned()
            .unwrap_or_else(|| fixture(version, file))
    };
    if let Some(v) = state.lock().unwrap().path_overrides.get(&request.path) {
        return (200, serde_json::to_vec(v).unwrap(), Some(100));
    }
    if request.method != "GET" {
        return (405, b"Invalid method".to_vec(), None);
    }
    let node = load("node.json");
    let node_id = node["ID"].as_str().unwrap_or_default().to_owned();
    let parts: Vec<&str> = request.path.trim_start_matches('/').split('/').collect();
    match parts.as_slice() {
        ["v1", "agent", "self"] => (200, compact(&load("agent-self.json")), None),
        ["v1", "node", id] if *id == node_id => (200, compact(&node), Some(52277)),
        ["v1", "node", _] => (404, b"node not found".to_vec(), None),
        ["v1", "node", id, "allocations"] if *id == node_id => {
            (200, compact(&load("node-allocations.json")), Some(52279))
        }
        ["v1", "node", _, "allocations"] => (200, b"[]".to_vec(), Some(1)),
        ["v1", "jobs"] => {
            let jobs = load("jobs.json");
            let ns = request.query.get("namespace").map(String::as_str);
            let listed: Vec<Value> = match (has_namespaces, (major, minor) >= (0, 7), ns) {
                // 0.5/0.6: no namespaces, the parameter is ignored.
                (_, false, _) => jobs.as_array().cloned().unwrap_or_default(),
                // 0.7-0.11: `*` is a literal namespace name; only `default` exists.
                (false, true, Some(ns)) if ns != "default" => Vec::new(),
                (false, true, _) => jobs.as_array().cloned().unwrap_or_default(),
                (true, _, Some("*")) => jobs.as_array().cloned().unwrap_or_default(),
                (true, _, ns) => {
                    let want = ns.unwrap_or("default");
                    jobs.as_array()
                        .into_iter()
                        .flatten()
                        .filter(|j| j["Namespace"].as_str() == Some(want))
                        .cloned()
                        .collect()
                }
            };
            (200, compact(&Value::Array(listed)), Some(742))
        }
        ["v1", "status", "leader"] => (200, b"\"10.0.0.5:4647\"".to_vec(), None),
        _ => (404, b"404 page not found".to_vec(), None),
    }
}

/// Compact JSON as Nomad writes it, keys in the fixture's (Go struct) order
/// (`serde_json`'s `preserve_order` is on for the tests).
fn compact(value: &Value) -> Vec<u8> {
    serde_json::to_vec(value).expect("serialise")
}

async fn write_response(
    stream: &mut TcpStream,
    status: u16,
    content_type: &str,
    body: &[u8],
    gzip: bool,
    index: Option<u64>,
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
    if gzip {
        head.push_str("Content-Encoding: gzip\r\n");
    }
    // Go's server buffers ~2 KiB; a larger single Write goes out chunked.
    if body.len() > 2048 {
        head.push_str("Transfer-Encoding: chunked\r\n\r\n");
        stream.write_all(head.as_bytes()).await?;
        for part in body.chunks(4096) {
            write_chunk(stream, part).await?;
        }
        stream.write_all(b"0\r\n\r\n").await?;
    } else {
        head.push_str(&format!("Content-Length: {}\r\n\r\n", body.len()));
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&body).await?;
    }
    stream.flush().await
}

async fn write_chunk(stream: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
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
