//! (Over 450 lines: the client, its request plumbing and the endpoints that
//! use it are one job; list reads, TLS and the token are in their own
//! files.)
//!
//! `NomadApi`: the reqwest client (timeouts, TLS from `tls`, the
//! `X-Nomad-Token` header from `token`), the single-document endpoints, and
//! the request plumbing that turns every failure into a typed `NomadError`
//! and caps body sizes. List endpoints are read in `list`. It knows Nomad's
//! paths and JSON, not what the gauges make of them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use reqwest::header::CONTENT_TYPE;
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use super::error::NomadError;
use super::list::Block;
use super::model::{AgentSelf, JobSummary, Node};
use super::tls::{self, TlsOptions};
use super::token::{Token, TokenSource};

/// Cap for a node document (`/v1/node/<id>`: tens of KiB, more with many
/// devices or attributes).
pub const MAX_NODE_BYTES: u64 = 1 << 20;
/// Cap for `/v1/agent/self` (the agent's whole configuration).
pub const MAX_AGENT_BYTES: u64 = 1 << 20;
/// Cap for `/v1/job/<id>/summary` (a counter block per task group).
pub const MAX_SUMMARY_BYTES: u64 = 1 << 20;
/// Cap for `/v1/status/leader` (one quoted address).
pub const MAX_LEADER_BYTES: u64 = 64 << 10;
/// Cap for one element of a list answer (a job stub, a full allocation).
pub const MAX_ELEMENT_BYTES: usize = 4 << 20;
/// Cap for a whole list answer, decoded bytes (100k job stubs are ~70 MB).
pub const MAX_LIST_BYTES: u64 = 1 << 30;

/// How to reach and authenticate to Nomad, as the `nomad` CLI reads it from
/// `NOMAD_ADDR`, `NOMAD_TOKEN`, `NOMAD_REGION` and the `NOMAD_*` TLS variables.
#[derive(Clone)]
pub struct NomadApiOptions {
    /// Base URL, e.g. `http://127.0.0.1:4646`, or `unix:///secrets/api.sock`.
    pub base: Url,
    /// ACL secret (`NOMAD_TOKEN` or `--nomad-token-file`); sent as
    /// `X-Nomad-Token`, never logged.
    pub token: TokenSource,
    /// `?region=` on every request (`NOMAD_REGION`).
    pub region: Option<String>,
    /// Per-request deadline covering connect, headers and the whole body.
    pub timeout: Duration,
    /// Ask Nomad for gzip-compressed answers (`--gzip`): less bandwidth,
    /// more CPU on the Nomad servers. Off by default.
    pub gzip: bool,
    pub tls: TlsOptions,
}

impl std::fmt::Debug for NomadApiOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NomadApiOptions")
            .field("base", &self.base.as_str())
            .field("token", &self.token)
            .field("region", &self.region)
            .field("timeout", &self.timeout)
            .field("gzip", &self.gzip)
            .field("tls", &self.tls)
            .finish()
    }
}

/// A typed client for the read-only Nomad endpoints the daemon polls.
#[derive(Clone)]
pub struct NomadApi {
    http: reqwest::Client,
    token: Arc<Token>,
    base: Url,
    /// Where requests go, for messages: the base URL, or the Unix socket.
    origin: String,
    region: Option<String>,
    pub(super) timeout: Duration,
}

impl NomadApi {
    /// Builds the HTTP client.
    ///
    /// # Errors
    ///
    /// A TLS file that cannot be read or parsed, or a token that is not a
    /// valid header value.
    pub fn new(opts: NomadApiOptions) -> anyhow::Result<Self> {
        let token = Arc::new(Token::new(opts.token.clone())?);
        let mut builder = reqwest::Client::builder()
            .user_agent(concat!("nomad-metrics/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(opts.timeout.min(Duration::from_secs(5)))
            .timeout(opts.timeout)
            .pool_idle_timeout(Duration::from_secs(90))
            .pool_max_idle_per_host(2)
            .redirect(reqwest::redirect::Policy::none())
            .gzip(opts.gzip)
            .tcp_nodelay(true)
            // Blocking queries keep a connection idle for minutes: notice a
            // peer that vanished (host replaced, network cut) within ~1 min.
            .tcp_keepalive(Duration::from_secs(30))
            .tcp_keepalive_interval(Duration::from_secs(10))
            .tcp_keepalive_retries(3u32);

        builder = tls::configure(builder, &opts.tls)?;
        let mut base = opts.base.clone();
        // For messages: never show credentials embedded in the URL.
        let mut shown = opts.base.clone();
        let _ = shown.set_username("");
        let _ = shown.set_password(None);
        let origin = shown.as_str().trim_end_matches('/').to_owned();
        if base.scheme() == "unix" {
            // All requests go over the socket; the URL only carries the path.
            builder = builder.unix_socket(PathBuf::from(base.path()));
            base = Url::parse("http://localhost/").context("static URL")?;
        } else if let Some(name) = opts.tls.server_name.as_deref().filter(|n| !n.is_empty()) {
            builder = tls::server_name(builder, &mut base, name)?;
        }
        let http = builder.build().context("cannot build the HTTP client")?;
        Ok(Self {
            http,
            token,
            base,
            origin,
            region: opts.region.filter(|r| !r.is_empty()),
            timeout: opts.timeout,
        })
    }

    /// Where requests go: the base URL, or `unix:///…` for a socket.
    #[must_use]
    pub fn origin(&self) -> &str {
        &self.origin
    }

    /// `GET /v1/agent/self`.
    ///
    /// # Errors
    ///
    /// Any `NomadError`.
    pub async fn agent_self(&self) -> Result<AgentSelf, NomadError> {
        self.get_document("/v1/agent/self", MAX_AGENT_BYTES).await
    }

    /// `GET /v1/status/leader`: the leader's RPC address, `""` when the
    /// cluster has none. Cheap (no ACL, a few bytes).
    ///
    /// # Errors
    ///
    /// Any `NomadError`.
    pub async fn leader(&self) -> Result<String, NomadError> {
        self.get_document("/v1/status/leader", MAX_LEADER_BYTES)
            .await
    }

    fn url(&self, path: &str, query: &[(&str, &str)]) -> Url {
        let mut url = self.base.clone();
        {
            let base_path = url.path().trim_end_matches('/').to_owned();
            url.set_path(&format!("{base_path}{path}"));
        }
        {
            let mut pairs = url.query_pairs_mut();
            pairs.clear();
            for (k, v) in query {
                pairs.append_pair(k, v);
            }
            if let Some(region) = &self.region {
                pairs.append_pair("region", region);
            }
        }
        if url.query() == Some("") {
            url.set_query(None);
        }
        url
    }

    /// Sends a GET and checks the status; the caller reads the body.
    pub(super) async fn send(
        &self,
        path: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response, NomadError> {
        self.send_request(path, query, timeout, false).await
    }

    /// `send`; `identity` asks for an uncompressed answer whatever
    /// `--gzip` says (a stream must not wait on a compressor's buffer).
    async fn send_request(
        &self,
        path: &str,
        query: &[(&str, &str)],
        timeout: Duration,
        identity: bool,
    ) -> Result<Response, NomadError> {
        let url = self.url(path, query);
        let mut request = self.http.get(url.clone()).timeout(timeout);
        if identity {
            request = request.header(reqwest::header::ACCEPT_ENCODING, "identity");
        }
        if let Some(token) = self.token.header() {
            request = request.header("X-Nomad-Token", token);
        }
        let response = request.send().await.map_err(|source| {
            if source.is_timeout() {
                self.timeout_error(path)
            } else {
                NomadError::Unreachable {
                    url: self.where_is(path),
                    // Our message names the address; reqwest's repeats the
                    // internal URL (http://localhost/… over a Unix socket).
                    source: source.without_url(),
                }
            }
        })?;
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let message = error_message(response).await;
        let hint = match status {
            StatusCode::FORBIDDEN => " (check NOMAD_TOKEN and its ACL policy)",
            _ => "",
        };
        Err(NomadError::Status {
            path: path.to_owned(),
            status,
            message,
            hint,
        })
    }

    pub(super) fn timeout_error(&self, path: &str) -> NomadError {
        NomadError::Timeout {
            path: path.to_owned(),
            timeout_ms: self.timeout.as_millis(),
        }
    }

    /// `http://host:4646/v1/…`, or `/v1/… via unix:///…/api.sock`.
    fn where_is(&self, path: &str) -> String {
        if self.origin.starts_with("unix:") {
            format!("{path} via {}", self.origin)
        } else {
            format!("{}{path}", self.origin)
        }
    }

    pub(super) fn body_error(&self, path: &str, source: reqwest::Error) -> NomadError {
        if source.is_timeout() {
            self.timeout_error(path)
        } else {
            NomadError::Body {
                path: path.to_owned(),
                source: source.without_url(),
            }
        }
    }

    /// The next chunk of a body, or `None` at its end; `Timeout` when it
    /// has not come by `deadline`.
    pub(super) async fn next_chunk(
        &self,
        response: &mut Response,
        path: &str,
        deadline: tokio::time::Instant,
    ) -> Result<Option<bytes::Bytes>, NomadError> {
        tokio::time::timeout_at(deadline, response.chunk())
            .await
            .map_err(|_| self.timeout_error(path))?
            .map_err(|e| self.body_error(path, e))
    }

    /// GETs one JSON document of at most `limit` bytes.
    async fn get_document<T: DeserializeOwned>(
        &self,
        path: &str,
        limit: u64,
    ) -> Result<T, NomadError> {
        let (doc, _) = self
            .get_json(path, &[], limit, None)
            .await?
            .ok_or_else(|| self.timeout_error(path))?;
        Ok(doc)
    }

    /// GETs one JSON document of at most `limit` bytes with its
    /// `X-Nomad-Index`; with `block`, as a blocking query whose answer is
    /// `None` (body unread) when the index did not move.
    async fn get_json<T: DeserializeOwned>(
        &self,
        path: &str,
        params: &[(&str, String)],
        limit: u64,
        block: Option<Block>,
    ) -> Result<Option<(T, Option<u64>)>, NomadError> {
        let mut params: Vec<(&str, String)> = params.to_vec();
        let mut timeout = self.timeout;
        if let Some(b) = block {
            params.push(("index", b.index.to_string()));
            params.push(("wait", format!("{}ms", b.wait.as_millis())));
            // Nomad adds up to wait/16 of jitter before answering.
            timeout += b.wait + b.wait / 16;
        }
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let work = async {
            let response = self.send(path, &borrowed, timeout).await?;
            let index = header_u64(&response, "x-nomad-index");
            if block.is_some_and(|b| Some(b.index) == index) {
                return Ok(None);
            }
            let content_type = content_type(&response);
            let too_large = || NomadError::TooLarge {
                path: path.to_owned(),
                limit_bytes: limit,
            };
            if response.content_length().is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let mut body = Vec::new();
            // A blocking query may wait for its answer; the body, once it
            // comes, must not take longer than a plain read.
            let body_deadline = tokio::time::Instant::now() + self.timeout;
            let mut response = response;
            while let Some(chunk) = self.next_chunk(&mut response, path, body_deadline).await? {
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            let doc = serde_json::from_slice(&body).map_err(|source| NomadError::Decode {
                path: path.to_owned(),
                content_type,
                source: Box::new(source),
            })?;
            Ok(Some((doc, index)))
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(self.timeout_error(path)))
    }

    /// `GET /v1/node/<id>` as a blocking query: `None` when the node's
    /// index did not move past `block.index`.
    ///
    /// # Errors
    ///
    /// Any `NomadError`; 404 when the node is unknown.
    pub async fn node_blocking(
        &self,
        node_id: &str,
        block: Option<Block>,
    ) -> Result<Option<(Node, Option<u64>)>, NomadError> {
        let path = format!("/v1/node/{node_id}");
        self.get_json(&path, &[], MAX_NODE_BYTES, block).await
    }

    /// `GET /v1/job/<id>/summary`; `None` when the job does not exist (404).
    /// With `block`, waits (bounded) until the summary is newer than
    /// `block.index` (the event stream publishes a change just before it is
    /// readable, `docs/nomad-events.md`).
    ///
    /// # Errors
    ///
    /// Any other `NomadError`.
    pub async fn job_summary(
        &self,
        namespace: &str,
        job_id: &str,
        block: Option<Block>,
    ) -> Result<Option<JobSummary>, NomadError> {
        let path = format!("/v1/job/{}/summary", path_segment(job_id));
        let params = [("namespace", namespace.to_owned())];
        match self
            .get_json(&path, &params, MAX_SUMMARY_BYTES, block)
            .await
        {
            Ok(Some((summary, _))) => Ok(Some(summary)),
            // The index did not move within the wait: read it as it is.
            Ok(None) => match self.get_json(&path, &params, MAX_SUMMARY_BYTES, None).await {
                Ok(found) => Ok(found.map(|(summary, _)| summary)),
                Err(err) if err.is_not_found() => Ok(None),
                Err(err) => Err(err),
            },
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Opens `GET /v1/event/stream` with `params` (topics, namespace,
    /// index). The head must come within the request timeout (Nomad 1.0.7+
    /// sends a heartbeat at once); the body is read with `EventStream`.
    ///
    /// # Errors
    ///
    /// Any `NomadError` before the first byte of the body (403, 404, …).
    pub async fn event_stream(&self, params: &[(&str, String)]) -> Result<EventStream, NomadError> {
        const PATH: &str = "/v1/event/stream";
        let borrowed: Vec<(&str, &str)> = params.iter().map(|(k, v)| (*k, v.as_str())).collect();
        // No deadline for the whole answer: it lasts as long as the stream.
        // `EventStream::chunk` bounds the silence between chunks instead.
        let forever = Duration::from_secs(100 * 365 * 24 * 3600);
        let response = tokio::time::timeout(
            self.timeout,
            self.send_request(PATH, &borrowed, forever, true),
        )
        .await
        .unwrap_or_else(|_| Err(self.timeout_error(PATH)))?;
        Ok(EventStream {
            api: self.clone(),
            response,
        })
    }
}

/// Replaces the characters that cannot stand in one URL path segment
/// (Nomad job IDs may hold `/`, `?`, `#`, `%` and spaces).
fn path_segment(raw: &str) -> String {
    let mut out = String::with_capacity(raw.len());
    for b in raw.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The body of an open event stream, read chunk by chunk.
pub struct EventStream {
    api: NomadApi,
    response: Response,
}

impl EventStream {
    /// The next chunk of the body; `None` at its end. A silence longer
    /// than `idle` is a `Timeout` (Nomad sends a heartbeat every 30 s).
    ///
    /// # Errors
    ///
    /// `Timeout` after `idle` without a byte, `Body` when the connection
    /// breaks.
    pub async fn chunk(&mut self, idle: Duration) -> Result<Option<bytes::Bytes>, NomadError> {
        const PATH: &str = "/v1/event/stream";
        match tokio::time::timeout(idle, self.response.chunk()).await {
            Err(_) => Err(NomadError::Timeout {
                path: PATH.to_owned(),
                timeout_ms: idle.as_millis(),
            }),
            Ok(Ok(chunk)) => Ok(chunk),
            Ok(Err(e)) => Err(self.api.body_error(PATH, e)),
        }
    }
}

pub(super) fn header_u64(response: &Response, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

pub(super) fn content_type(response: &Response) -> String {
    response
        .headers()
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("none")
        .to_owned()
}

/// First line of a (plain-text) error body, bounded, printable only.
async fn error_message(response: Response) -> String {
    const MAX: usize = 200;
    let mut text = Vec::new();
    let mut chunks = response.bytes_stream();
    while let Some(Ok(chunk)) = chunks.next().await {
        text.extend_from_slice(&chunk);
        if text.len() >= 4096 {
            break;
        }
    }
    let text = String::from_utf8_lossy(&text);
    let line: String = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or("(empty body)")
        .chars()
        .filter(|c| !c.is_control())
        .take(MAX)
        .collect();
    line
}
