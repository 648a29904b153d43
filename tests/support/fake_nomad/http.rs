//! The hand-written HTTP/1.1 side of the fake: accepting connections (TCP,
//! TLS, Unix), reading request heads, injecting faults, and writing answers
//! the way Go's net/http and Nomad's gzip handler put them on the wire
//! (`Content-Length` or one chunk, gzip from 1400 bytes). What a path
//! answers is decided in `routes`.

use std::collections::HashMap;
use std::io::Write as _;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use super::routes::{block_if_asked, control, route};
use super::stream::serve_stream;
use super::{Fault, Request, State};

/// A listening socket the fake accepts connections on.
pub(super) trait Listen: Send + 'static {
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
pub(super) trait Conn: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {
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

/// A connection that counts the bytes written to it (headers and body),
/// for the fake's per-path byte accounting.
pub(super) struct Metered<S> {
    inner: S,
    written: u64,
}

impl<S> Metered<S> {
    /// Bytes written since the last call.
    pub(super) fn written(&mut self) -> u64 {
        std::mem::take(&mut self.written)
    }
}

impl<S: Conn> tokio::io::AsyncRead for Metered<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: Conn> tokio::io::AsyncWrite for Metered<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        let r = std::pin::Pin::new(&mut self.inner).poll_write(cx, buf);
        if let std::task::Poll::Ready(Ok(n)) = &r {
            self.written += *n as u64;
        }
        r
    }
    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_flush(cx)
    }
    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

impl<S: Conn> Conn for Metered<S> {
    fn arm_reset(&self) -> std::io::Result<()> {
        self.inner.arm_reset()
    }
}

pub(super) async fn serve_connection<S: Conn>(
    stream: S,
    version: &str,
    state: &Mutex<State>,
    changed: &tokio::sync::Notify,
) -> std::io::Result<()> {
    let mut stream = Metered {
        inner: stream,
        written: 0,
    };
    let mut path = String::new();
    let r = serve_requests(&mut stream, &mut path, version, state, changed).await;
    // What the last request wrote before the connection ended.
    let n = stream.written();
    if n > 0 && !path.is_empty() {
        *state.lock().unwrap().bytes.entry(path).or_insert(0) += n;
    }
    r
}

async fn serve_requests<S: Conn>(
    stream: &mut Metered<S>,
    current: &mut String,
    version: &str,
    state: &Mutex<State>,
    changed: &tokio::sync::Notify,
) -> std::io::Result<()> {
    let mut buf = Vec::new();
    loop {
        // Bytes of the previous answer, to its path.
        let n = stream.written();
        if n > 0 && !current.is_empty() {
            *state
                .lock()
                .unwrap()
                .bytes
                .entry(current.clone())
                .or_insert(0) += n;
        }
        current.clear();
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
        // A body (the control endpoints' POSTs) is read and ignored.
        let body_len: usize = request
            .headers
            .get("content-length")
            .and_then(|l| l.parse().ok())
            .unwrap_or(0)
            .min(1 << 20);
        while buf.len() < body_len {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        buf.drain(..body_len);
        // The fake's own control endpoints: neither recorded nor counted.
        if request.path.starts_with("/_fake/") {
            let (status, body) = control(&request, state);
            write_response(stream, status, "application/json", &body, false, None, None).await?;
            stream.written();
            continue;
        }
        *current = request.path.clone();
        let fault_now = || {
            state
                .lock()
                .unwrap()
                .faults
                .iter()
                .find(|(p, _)| request.path.starts_with(p.as_str()))
                .map(|(_, f)| f.clone())
        };
        state.lock().unwrap().requests.push(request.clone());
        let mut fault = fault_now();
        if fault.is_none() && request.path != "/v1/event/stream" {
            // A blocking query parks here; a fault set meanwhile answers it.
            block_if_asked(&request, state, changed).await;
            fault = fault_now();
        }
        let gzip = request
            .headers
            .get("accept-encoding")
            .is_some_and(|v| v.contains("gzip"));
        match fault {
            Some(Fault::Status(code, body)) => {
                write_response(
                    stream,
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
                answer(stream, &request, version, state, gzip).await?;
            }
            Some(Fault::Hang) => {
                tokio::time::sleep(Duration::from_secs(3600)).await;
                return Ok(());
            }
            Some(Fault::Html) => {
                write_response(
                    stream,
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
                    stream,
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
                write_response(stream, 200, "application/json", b"", false, None, None).await?
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
                write_chunk(stream, b"[").await?;
                let element = br#"{"ID":"j","Type":"batch","Status":"running","Stop":false,"JobSummary":{"Summary":{}}},"#;
                let block: Vec<u8> = element
                    .iter()
                    .copied()
                    .cycle()
                    .take(element.len() * 1000)
                    .collect();
                loop {
                    write_chunk(stream, &block).await?;
                }
            }
            None if request.path == "/v1/event/stream" => {
                if !serve_stream(stream, &request, state, changed).await? {
                    return Ok(());
                }
            }
            None => answer(stream, &request, version, state, gzip).await?,
        }
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

pub(super) async fn write_response<S: Conn>(
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
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(query.as_bytes())
        .into_owned()
        .collect();
    let mut multi: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in &pairs {
        multi.entry(k.clone()).or_default().push(v.clone());
    }
    let query = pairs.into_iter().collect();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Request {
        method,
        path: path.to_owned(),
        query,
        multi,
        headers,
    }
}
