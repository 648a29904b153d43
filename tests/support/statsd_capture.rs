//! A DogStatsD stand-in: a UDP socket on 127.0.0.1:0 that parses every
//! datagram strictly against the grammar the daemon must produce
//! (`name:value|g|#k:v,k2:v2`, lines joined by `\n`, at most 1432 bytes).
//! A malformed line or oversized datagram is recorded and fails the next
//! wait or `assert_clean`: tests wait for a condition and assert, never log.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::UdpSocket;
use tokio::sync::Notify;
use tokio::task::JoinHandle;

/// Largest datagram the daemon may send.
pub const MAX_DATAGRAM: usize = 1432;

/// One parsed gauge line.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    pub name: String,
    pub value: f64,
    /// `key:value` pairs in the order sent.
    pub tags: Vec<(String, String)>,
    /// Index of the datagram this line came in.
    pub datagram: usize,
}

impl Line {
    pub fn tag(&self, key: &str) -> Option<&str> {
        self.tags
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// Tags as sorted `key:value` strings.
    pub fn tag_set(&self) -> Vec<String> {
        let mut t: Vec<String> = self.tags.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        t.sort();
        t
    }
}

#[derive(Default)]
struct Inner {
    lines: Vec<Line>,
    datagrams: Vec<Vec<u8>>,
    errors: Vec<String>,
}

pub struct StatsdCapture {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
    notify: Arc<Notify>,
    cursor: Mutex<usize>,
    task: JoinHandle<()>,
}

impl Drop for StatsdCapture {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A parsed line: name, value, tags.
pub type Parsed = (String, f64, Vec<(String, String)>);

/// Parses one line strictly; `Err` says what is wrong.
pub fn parse_line(line: &str) -> Result<Parsed, String> {
    let (name, rest) = line.split_once(':').ok_or("no ':' after the name")?;
    let name_ok = name.chars().next().is_some_and(|c| c.is_ascii_alphabetic())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.')
        && !name.contains("..")
        && !name.ends_with('.');
    if !name_ok {
        return Err(format!("bad metric name {name:?}"));
    }
    let mut fields = rest.split('|');
    let value = fields.next().ok_or("no value")?;
    let number_ok = {
        let digits = value.strip_prefix('-').unwrap_or(value);
        let (int, frac) = digits.split_once('.').unwrap_or((digits, "0"));
        !int.is_empty()
            && !frac.is_empty()
            && int.chars().all(|c| c.is_ascii_digit())
            && frac.chars().all(|c| c.is_ascii_digit())
    };
    if !number_ok {
        return Err(format!("bad value {value:?}"));
    }
    let value: f64 = value
        .parse()
        .map_err(|e| format!("bad value {value:?}: {e}"))?;
    match fields.next() {
        Some("g") => {}
        other => return Err(format!("type {other:?} is not a gauge (g)")),
    }
    let mut tags = Vec::new();
    if let Some(section) = fields.next() {
        let list = section
            .strip_prefix('#')
            .ok_or(format!("unexpected section {section:?}"))?;
        for tag in list.split(',') {
            let (k, v) = tag
                .split_once(':')
                .ok_or(format!("tag {tag:?} is not key:value"))?;
            let key_ok = !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./".contains(c));
            let value_ok = !v.is_empty()
                && v.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_-./:".contains(c));
            if !key_ok || !value_ok {
                return Err(format!("unsafe tag {tag:?}"));
            }
            tags.push((k.to_owned(), v.to_owned()));
        }
    }
    if let Some(extra) = fields.next() {
        return Err(format!("unexpected section {extra:?}"));
    }
    Ok((name.to_owned(), value, tags))
}

enum Socket {
    Udp(UdpSocket),
    Unix(tokio::net::UnixDatagram),
}

/// Parses and stores one datagram.
fn record(inner: &Mutex<Inner>, data: &[u8]) {
    let n = data.len();
    let mut st = inner.lock().unwrap();
    let index = st.datagrams.len();
    st.datagrams.push(data.to_vec());
    if n > MAX_DATAGRAM {
        st.errors
            .push(format!("datagram {index} is {n} bytes (> {MAX_DATAGRAM})"));
    }
    match std::str::from_utf8(data) {
        Err(_) => st.errors.push(format!("datagram {index} is not UTF-8")),
        Ok(text) => {
            // One trailing newline is tolerated; empty lines are not.
            let text = text.strip_suffix('\n').unwrap_or(text);
            for line in text.split('\n') {
                match parse_line(line) {
                    Ok((name, value, tags)) => st.lines.push(Line {
                        name,
                        value,
                        tags,
                        datagram: index,
                    }),
                    Err(e) => st
                        .errors
                        .push(format!("datagram {index} line {line:?}: {e}")),
                }
            }
        }
    }
}

impl StatsdCapture {
    /// A capture on a UDP socket at 127.0.0.1:0.
    pub async fn start() -> Self {
        let socket = UdpSocket::bind("127.0.0.1:0")
            .await
            .expect("bind UDP capture");
        let addr = socket.local_addr().expect("addr");
        Self::spawn(addr, Socket::Udp(socket))
    }

    /// A capture on a Unix datagram socket at `path`.
    pub async fn start_unix(path: &std::path::Path) -> Self {
        let socket = tokio::net::UnixDatagram::bind(path).expect("bind Unix capture");
        Self::spawn(([0, 0, 0, 0], 0).into(), Socket::Unix(socket))
    }

    fn spawn(addr: SocketAddr, socket: Socket) -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let notify = Arc::new(Notify::new());
        let (inner2, notify2) = (Arc::clone(&inner), Arc::clone(&notify));
        let task = tokio::spawn(async move {
            let mut buf = vec![0u8; 65536];
            loop {
                let received = match &socket {
                    Socket::Udp(s) => s.recv(&mut buf).await,
                    Socket::Unix(s) => s.recv(&mut buf).await,
                };
                let Ok(n) = received else { continue };
                record(&inner2, &buf[..n]);
                notify2.notify_waiters();
            }
        });
        Self {
            addr,
            inner,
            notify,
            cursor: Mutex::new(0),
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Panics if any datagram broke the grammar or the size limit.
    pub fn assert_clean(&self) {
        let st = self.inner.lock().unwrap();
        assert!(
            st.errors.is_empty(),
            "malformed DogStatsD traffic: {:#?}",
            st.errors
        );
    }

    /// All lines received so far.
    pub fn lines(&self) -> Vec<Line> {
        self.inner.lock().unwrap().lines.clone()
    }

    /// All datagrams received so far.
    pub fn datagrams(&self) -> Vec<Vec<u8>> {
        self.inner.lock().unwrap().datagrams.clone()
    }

    /// Waits for the first line after the cursor that satisfies `pred`,
    /// moves the cursor past it, and returns it. Panics on timeout.
    pub async fn wait_for(
        &self,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&Line) -> bool,
    ) -> Line {
        self.wait_lines(what, timeout, |lines| {
            lines.iter().position(&pred).map(|i| (i, lines[i].clone()))
        })
        .await
    }

    /// Waits for the next complete poll of a role: the lines after the
    /// cursor up to and including the role's poll_failure gauge, keeping only
    /// that role's metrics (`prefix`, e.g. `circle.nomad.client_agent.`).
    pub async fn next_poll(&self, prefix: &str, timeout: Duration) -> Vec<Line> {
        let failure = format!("{prefix}poll_failure");
        self.wait_lines(&failure, timeout, |lines| {
            let end = lines.iter().position(|l| l.name == failure)?;
            Some((
                end,
                lines[..=end]
                    .iter()
                    .filter(|l| l.name.starts_with(prefix))
                    .cloned()
                    .collect(),
            ))
        })
        .await
    }

    async fn wait_lines<T>(
        &self,
        what: &str,
        timeout: Duration,
        find: impl Fn(&[Line]) -> Option<(usize, T)>,
    ) -> T {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let notified = self.notify.notified();
            {
                let st = self.inner.lock().unwrap();
                assert!(
                    st.errors.is_empty(),
                    "malformed DogStatsD traffic: {:#?}",
                    st.errors
                );
                let mut cursor = self.cursor.lock().unwrap();
                let from = (*cursor).min(st.lines.len());
                if let Some((i, found)) = find(&st.lines[from..]) {
                    *cursor = from + i + 1;
                    return found;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                let st = self.inner.lock().unwrap();
                let cursor = *self.cursor.lock().unwrap();
                let tail: Vec<String> = st.lines[cursor.min(st.lines.len())..]
                    .iter()
                    .map(|l| format!("{}={} {:?}", l.name, l.value, l.tags))
                    .collect();
                panic!(
                    "timed out after {timeout:?} waiting for {what}; lines since cursor: {tail:#?}"
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::parse_line;

    #[test]
    fn accepts_the_daemon_grammar() {
        let (name, value, tags) = parse_line(
            "circle.nomad.client_agent.resources.total.cpu:37400|g|#drain:false,node_id:4e5f-60",
        )
        .unwrap();
        assert_eq!(name, "circle.nomad.client_agent.resources.total.cpu");
        assert_eq!(value, 37400.0);
        assert_eq!(
            tags,
            [
                ("drain".into(), "false".into()),
                ("node_id".into(), "4e5f-60".into())
            ]
        );
        assert_eq!(parse_line("a.b:-12.5|g").unwrap().1, -12.5);
    }

    #[test]
    fn rejects_anything_else() {
        for bad in [
            "",
            "a.b",
            "a.b:1",
            "a.b:1|c",
            "a.b:1|ms",
            "a.b:NaN|g",
            "a.b:inf|g",
            "a.b:1e5|g",
            "a.b:|g",
            "a b:1|g",
            "a..b:1|g",
            "a.b:1|g|#",
            "a.b:1|g|#k",
            "a.b:1|g|#k:",
            "a.b:1|g|#k:v w",
            "a.b:1|g|#k:v|x",
            "a.b:1|g|@0.5",
        ] {
            assert!(parse_line(bad).is_err(), "{bad:?} must be rejected");
        }
    }
}
