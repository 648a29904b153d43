//! `NomadApi`: the only code that speaks HTTP. It owns the reqwest client
//! (timeouts, TLS, the `X-Nomad-Token` header), turns every failure into a
//! typed `NomadError`, caps body sizes, and decodes list endpoints one
//! element at a time. It knows Nomad's paths and JSON, not what the gauges
//! make of them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt as _;
use reqwest::header::{HeaderValue, CONTENT_TYPE};
use reqwest::{Response, StatusCode};
use serde::de::DeserializeOwned;
use url::Url;

use super::error::NomadError;
use super::model::{AgentSelf, Alloc, Node};
use super::skim::ListElement;
use super::stream::{ArrayDecoder, DecodeError};

/// Cap for a node document (`/v1/node/<id>`: tens of KiB, more with many
/// devices or attributes).
pub const MAX_NODE_BYTES: u64 = 1 << 20;
/// Cap for `/v1/agent/self` (the agent's whole configuration).
pub const MAX_AGENT_BYTES: u64 = 1 << 20;
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

/// Where the ACL token comes from.
#[derive(Clone, Default)]
pub enum TokenSource {
    /// No token (a cluster without ACLs).
    #[default]
    None,
    /// `NOMAD_TOKEN`.
    Value(String),
    /// `--nomad-token-file`: read at start and again whenever the file
    /// changes (a rotated token, a workload identity renewed by a template).
    File(PathBuf),
}

impl std::fmt::Debug for TokenSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TokenSource::None => f.write_str("None"),
            TokenSource::Value(_) => f.write_str("Value(<redacted>)"),
            TokenSource::File(path) => write!(f, "File({})", path.display()),
        }
    }
}

/// The token as a ready header value, kept current with its file.
struct Token {
    source: TokenSource,
    /// (file modification time it was read at, header value).
    current: std::sync::Mutex<(Option<std::time::SystemTime>, Option<HeaderValue>)>,
}

impl Token {
    fn new(source: TokenSource) -> anyhow::Result<Self> {
        let token = Self {
            source,
            current: std::sync::Mutex::new((None, None)),
        };
        match &token.source {
            TokenSource::None => {}
            TokenSource::Value(v) => token.set(None, header_value(v)?),
            TokenSource::File(path) => {
                let (mtime, value) = read_token_file(path)?;
                token.set(mtime, value);
            }
        }
        Ok(token)
    }

    fn set(&self, mtime: Option<std::time::SystemTime>, value: HeaderValue) {
        if let Ok(mut current) = self.current.lock() {
            *current = (mtime, Some(value));
        }
    }

    /// The header to send; re-reads the token file when it changed (a read
    /// that fails keeps the previous token and is logged).
    fn header(&self) -> Option<HeaderValue> {
        if let TokenSource::File(path) = &self.source {
            let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
            let known = self.current.lock().ok().and_then(|c| c.0);
            if mtime.is_some() && mtime != known {
                match read_token_file(path) {
                    Ok((mtime, value)) => {
                        tracing::info!(file = %path.display(), "token file changed; using the new token");
                        self.set(mtime, value);
                    }
                    Err(err) => tracing::warn!("keeping the previous token: {err:#}"),
                }
            }
        }
        self.current.lock().ok().and_then(|c| c.1.clone())
    }
}

fn header_value(token: &str) -> anyhow::Result<HeaderValue> {
    let mut value = HeaderValue::from_str(token.trim()).map_err(|_| {
        anyhow::anyhow!("the Nomad token contains characters not allowed in an HTTP header")
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn read_token_file(
    path: &std::path::Path,
) -> anyhow::Result<(Option<std::time::SystemTime>, HeaderValue)> {
    let mtime = std::fs::metadata(path).and_then(|m| m.modified()).ok();
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --nomad-token-file {}", path.display()))?;
    anyhow::ensure!(
        !text.trim().is_empty(),
        "--nomad-token-file {} is empty",
        path.display()
    );
    Ok((mtime, header_value(&text)?))
}

/// TLS settings (`NOMAD_CACERT`, `NOMAD_CAPATH`, `NOMAD_CLIENT_CERT`,
/// `NOMAD_CLIENT_KEY`, `NOMAD_SKIP_VERIFY`, `NOMAD_TLS_SERVER_NAME`).
#[derive(Debug, Clone, Default)]
pub struct TlsOptions {
    /// PEM file of CA certificates; replaces the bundled public roots.
    pub ca_cert: Option<PathBuf>,
    /// Directory of PEM CA certificate files, used when `ca_cert` is not
    /// set (as the `nomad` CLI does).
    pub ca_path: Option<PathBuf>,
    /// PEM client certificate for mutual TLS (needs `client_key`).
    pub client_cert: Option<PathBuf>,
    /// PEM private key of `client_cert`.
    pub client_key: Option<PathBuf>,
    /// Accept any server certificate. Only on explicit operator request.
    pub skip_verify: bool,
    /// Name to verify the server certificate against (and send as SNI),
    /// while still connecting to the host of the base URL.
    pub server_name: Option<String>,
}

/// The CA certificates of one PEM file (`what` names the setting).
fn ca_file(what: &str, path: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    let pem = std::fs::read(path)
        .with_context(|| format!("cannot read {what} file {}", path.display()))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem)
        .with_context(|| format!("{what} file {} is not PEM", path.display()))?;
    anyhow::ensure!(
        !certs.is_empty(),
        "{what} file {} holds no certificate",
        path.display()
    );
    Ok(certs)
}

/// The CA certificates of every file under `dir` (`NOMAD_CAPATH`), walked
/// like the `nomad` CLI walks it, except that hidden entries are skipped
/// and symbolic links followed: a Kubernetes Secret mounted as a directory
/// has `..data` links beside the visible `ca.crt` link.
fn ca_dir(dir: &Path) -> anyhow::Result<Vec<reqwest::Certificate>> {
    fn walk(dir: &Path, depth: u32, out: &mut Vec<reqwest::Certificate>) -> anyhow::Result<()> {
        let entries = std::fs::read_dir(dir)
            .with_context(|| format!("cannot read NOMAD_CAPATH directory {}", dir.display()))?;
        let mut paths = Vec::new();
        for entry in entries {
            let entry = entry
                .with_context(|| format!("cannot read NOMAD_CAPATH directory {}", dir.display()))?;
            if !entry.file_name().to_string_lossy().starts_with('.') {
                paths.push(entry.path());
            }
        }
        paths.sort();
        for path in paths {
            if path.is_dir() {
                // Bounded: a link loop must not recurse for ever.
                anyhow::ensure!(
                    depth < 8,
                    "NOMAD_CAPATH {} nests directories too deeply",
                    path.display()
                );
                walk(&path, depth + 1, out)?;
            } else {
                out.extend(ca_file("NOMAD_CAPATH", &path)?);
            }
        }
        Ok(())
    }
    let mut certs = Vec::new();
    walk(dir, 0, &mut certs)?;
    anyhow::ensure!(
        !certs.is_empty(),
        "NOMAD_CAPATH directory {} holds no certificate",
        dir.display()
    );
    Ok(certs)
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
    timeout: Duration,
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

        let tls = &opts.tls;
        let roots = match (&tls.ca_cert, &tls.ca_path) {
            (Some(file), _) => Some(ca_file("NOMAD_CACERT", file)?),
            (None, Some(dir)) => Some(ca_dir(dir)?),
            (None, None) => None,
        };
        if let Some(roots) = roots {
            builder = builder.tls_built_in_root_certs(false);
            for cert in roots {
                builder = builder.add_root_certificate(cert);
            }
        }
        match (&tls.client_cert, &tls.client_key) {
            (Some(cert), Some(key)) => {
                let mut pem = std::fs::read(cert).with_context(|| {
                    format!("cannot read NOMAD_CLIENT_CERT file {}", cert.display())
                })?;
                pem.push(b'\n');
                pem.extend(std::fs::read(key).with_context(|| {
                    format!("cannot read NOMAD_CLIENT_KEY file {}", key.display())
                })?);
                let identity = reqwest::Identity::from_pem(&pem).context(
                    "NOMAD_CLIENT_CERT / NOMAD_CLIENT_KEY are not a PEM certificate and key",
                )?;
                builder = builder.identity(identity);
            }
            (None, None) => {}
            _ => anyhow::bail!("NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be set together"),
        }
        if tls.skip_verify {
            builder = builder.danger_accept_invalid_certs(true);
        }
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
        } else if let Some(name) = tls.server_name.as_deref().filter(|n| !n.is_empty()) {
            // Verify against `name` but connect to the configured host: put
            // the name in the URL (so rustls checks it and sends it as SNI)
            // and resolve it to wherever the original host resolves.
            let original = base
                .host_str()
                .context("the Nomad URL has no host")?
                .to_owned();
            base.set_host(Some(name))
                .with_context(|| format!("NOMAD_TLS_SERVER_NAME {name:?} is not a host name"))?;
            builder = builder.dns_resolver(Arc::new(ServerNameResolver {
                server_name: name.to_owned(),
                original: original
                    .trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_owned(),
            }));
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

    /// `GET /v1/node/<id>`.
    ///
    /// # Errors
    ///
    /// Any `NomadError`; 404 when the node is unknown.
    pub async fn node(&self, node_id: &str) -> Result<Node, NomadError> {
        let path = format!("/v1/node/{node_id}");
        self.get_document(&path, MAX_NODE_BYTES).await
    }

    /// `GET /v1/node/<id>/allocations`, decoded element by element.
    ///
    /// # Errors
    ///
    /// Any `NomadError`.
    pub async fn node_allocations(&self, node_id: &str) -> Result<Vec<Alloc>, NomadError> {
        let path = format!("/v1/node/{node_id}/allocations");
        let mut allocs = Vec::new();
        self.list(&ListQuery::new(&path), |alloc: Alloc| allocs.push(alloc))
            .await?;
        Ok(allocs)
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

    /// Reads a list endpoint, page by page when `per_page` is set (Nomad
    /// 1.3+), handing each element to `on_item` as it is decoded; the list
    /// itself is never held in memory. With `block`, the first request is a
    /// blocking query, and an answer whose `X-Nomad-Index` equals
    /// `block.index` is `Unchanged` and its body is not read.
    ///
    /// # Errors
    ///
    /// Any `NomadError`, including `Paging` when Nomad hands out the same
    /// page token twice (GH-25435).
    pub async fn list<T: ListElement>(
        &self,
        query: &ListQuery<'_>,
        mut on_item: impl FnMut(T),
    ) -> Result<ListOutcome, NomadError> {
        let mut seen_tokens = std::collections::HashSet::new();
        let mut next_token: Option<String> = None;
        let mut first_index = None;
        let mut items = 0u64;
        let mut pages = 0u32;
        loop {
            let mut params: Vec<(&str, String)> =
                query.params.iter().map(|(k, v)| (*k, v.clone())).collect();
            if let Some(n) = query.per_page {
                params.push(("per_page", n.to_string()));
            }
            if let Some(token) = &next_token {
                params.push(("next_token", token.clone()));
            }
            let block = query.block.filter(|_| pages == 0);
            let mut timeout = query.timeout.unwrap_or(self.timeout);
            if let Some(b) = block {
                params.push(("index", b.index.to_string()));
                params.push(("wait", format!("{}ms", b.wait.as_millis())));
                // Nomad adds up to wait/16 of jitter before answering.
                timeout += b.wait + b.wait / 16;
            }
            let borrowed: Vec<(&str, &str)> =
                params.iter().map(|(k, v)| (*k, v.as_str())).collect();
            let page = self
                .read_page(
                    query.path,
                    &borrowed,
                    timeout,
                    block.map(|b| b.index),
                    &mut on_item,
                )
                .await?;
            let Some(page) = page else {
                return Ok(ListOutcome::Unchanged {
                    index: block.map_or(0, |b| b.index),
                });
            };
            pages += 1;
            items += page.items;
            if pages == 1 {
                first_index = page.index;
            }
            match page.next_token {
                Some(token) if query.per_page.is_some() => {
                    if !seen_tokens.insert(token.clone()) {
                        return Err(NomadError::Paging {
                            path: query.path.to_owned(),
                        });
                    }
                    next_token = Some(token);
                }
                _ => break,
            }
        }
        Ok(ListOutcome::Read {
            index: first_index,
            items,
            pages,
        })
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
    async fn send(
        &self,
        path: &str,
        query: &[(&str, &str)],
        timeout: Duration,
    ) -> Result<Response, NomadError> {
        let url = self.url(path, query);
        let mut request = self.http.get(url.clone()).timeout(timeout);
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

    fn timeout_error(&self, path: &str) -> NomadError {
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

    fn body_error(&self, path: &str, source: reqwest::Error) -> NomadError {
        if source.is_timeout() {
            self.timeout_error(path)
        } else {
            NomadError::Body {
                path: path.to_owned(),
                source: source.without_url(),
            }
        }
    }

    /// GETs one JSON document of at most `limit` bytes.
    async fn get_document<T: DeserializeOwned>(
        &self,
        path: &str,
        limit: u64,
    ) -> Result<T, NomadError> {
        let work = async {
            let response = self.send(path, &[], self.timeout).await?;
            let content_type = content_type(&response);
            let too_large = || NomadError::TooLarge {
                path: path.to_owned(),
                limit_bytes: limit,
            };
            if response.content_length().is_some_and(|n| n > limit) {
                return Err(too_large());
            }
            let mut body = Vec::new();
            let mut chunks = response.bytes_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| self.body_error(path, e))?;
                if (body.len() + chunk.len()) as u64 > limit {
                    return Err(too_large());
                }
                body.extend_from_slice(&chunk);
            }
            serde_json::from_slice(&body).map_err(|source| NomadError::Decode {
                path: path.to_owned(),
                content_type,
                source: Box::new(source),
            })
        };
        tokio::time::timeout(self.timeout, work)
            .await
            .unwrap_or_else(|_| Err(self.timeout_error(path)))
    }

    /// Reads one page of a list. `None` when `unchanged_at` equals the
    /// answer's `X-Nomad-Index` (a blocking query that timed out): the body
    /// is then left unread.
    async fn read_page<T: ListElement>(
        &self,
        path: &str,
        query: &[(&str, &str)],
        timeout: Duration,
        unchanged_at: Option<u64>,
        on_item: &mut impl FnMut(T),
    ) -> Result<Option<Page>, NomadError> {
        let work = async {
            let response = self.send(path, query, timeout).await?;
            let index = header_u64(&response, "x-nomad-index");
            if unchanged_at.is_some() && index == unchanged_at {
                return Ok(None);
            }
            let next_token = response
                .headers()
                .get("x-nomad-nexttoken")
                .and_then(|v| v.to_str().ok())
                .filter(|v| !v.is_empty())
                .map(str::to_owned);
            let content_type = content_type(&response);
            let mut decoder = ArrayDecoder::new(MAX_ELEMENT_BYTES);
            let mut items = 0u64;
            let mut total = 0u64;
            let mut take = |item: T| {
                on_item(item);
                items += 1;
            };
            let decode_err = |e: DecodeError| match e {
                DecodeError::ElementTooLarge(limit) => NomadError::TooLarge {
                    path: path.to_owned(),
                    limit_bytes: limit as u64,
                },
                other => NomadError::Decode {
                    path: path.to_owned(),
                    content_type: content_type.clone(),
                    source: Box::new(other),
                },
            };
            let mut chunks = response.bytes_stream();
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| self.body_error(path, e))?;
                total += chunk.len() as u64;
                if total > MAX_LIST_BYTES {
                    return Err(NomadError::TooLarge {
                        path: path.to_owned(),
                        limit_bytes: MAX_LIST_BYTES,
                    });
                }
                decoder.feed(&chunk, &mut take).map_err(decode_err)?;
            }
            decoder.finish(&mut take).map_err(decode_err)?;
            Ok(Some(Page {
                index,
                next_token,
                items,
            }))
        };
        tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(self.timeout_error(path)))
    }
}

/// How to read a list endpoint.
#[derive(Debug, Clone)]
pub struct ListQuery<'a> {
    pub path: &'a str,
    /// Query parameters besides paging and blocking (`namespace`, `filter`…).
    pub params: Vec<(&'static str, String)>,
    /// Page size (Nomad 1.3+); `None` reads the whole list in one answer.
    pub per_page: Option<u32>,
    /// Make the first request a blocking query.
    pub block: Option<Block>,
    /// Deadline per page instead of the client's request timeout (a full
    /// read of 100k jobs may need longer than one poll interval).
    pub timeout: Option<Duration>,
}

impl<'a> ListQuery<'a> {
    #[must_use]
    pub fn new(path: &'a str) -> Self {
        Self {
            path,
            params: Vec::new(),
            per_page: None,
            block: None,
            timeout: None,
        }
    }
}

/// A blocking query: answer once the index moves past `index`, or after
/// `wait` (Nomad caps it at 5 minutes) with the current data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block {
    pub index: u64,
    pub wait: Duration,
}

/// What a list read produced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListOutcome {
    /// A blocking query timed out with the index unchanged; nothing was read.
    Unchanged { index: u64 },
    /// The list was read; `index` is the first page's `X-Nomad-Index`.
    Read {
        index: Option<u64>,
        items: u64,
        pages: u32,
    },
}

struct Page {
    index: Option<u64>,
    next_token: Option<String>,
    items: u64,
}

fn header_u64(response: &Response, name: &str) -> Option<u64> {
    response
        .headers()
        .get(name)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse().ok())
}

fn content_type(response: &Response) -> String {
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

/// Resolves `NOMAD_TLS_SERVER_NAME` to the address of the configured host.
struct ServerNameResolver {
    server_name: String,
    original: String,
}

impl reqwest::dns::Resolve for ServerNameResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let host = if name.as_str().eq_ignore_ascii_case(&self.server_name) {
            self.original.clone()
        } else {
            name.as_str().to_owned()
        };
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let addrs: reqwest::dns::Addrs = Box::new(addrs.into_iter());
            Ok(addrs)
        })
    }
}
