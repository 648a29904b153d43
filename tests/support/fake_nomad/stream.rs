//! `GET /v1/event/stream` as Nomad serves it (`docs/nomad-events.md`):
//! the event buffer (`v2.0.5:nomad/stream/event_buffer.go`), subscription
//! filters (`v2.0.5:nomad/stream/subscription.go`), NDJSON framing with
//! heartbeats (`v2.0.5:nomad/stream/ndjson.go`), and the two transports:
//! chunked with a plain-text error tail before 1.11.2
//! (`v1.8.0:command/agent/http.go`, `wrap()`), a hijacked connection from
//! 1.11.2 / 2.0.0 (#27397, #27432) whose every error is a bare EOF, with
//! 1.11.2's `HTTP/0.0` status line (#27586).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nomad_metrics::nomad::features::StreamNamespaces;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

use super::cluster::EventRec;
use super::http::{write_response, Conn, Metered};
use super::{Request, State};

pub const ERR_CLOSED: &str = "subscription closed by server, client should resubscribe";
pub const ERR_DROPPED: &str = "event dropped from buffer";
pub const ERR_EXPIRED: &str = "ACL token expired";

/// One buffered item: the events of one raft index.
#[derive(Debug)]
pub(super) struct Published {
    seq: u64,
    index: u64,
    events: Arc<Vec<EventRec>>,
}

/// How the fake ends a subscription.
#[derive(Debug, Clone)]
pub(super) enum Ending {
    /// An error: its text after the last line before 1.11.2; a bare EOF
    /// from 1.11.2.
    Text(String),
    /// The connection is closed mid-body (a crash, a proxy cut).
    Abrupt,
}

/// The server's event broker.
#[derive(Debug)]
pub(super) struct Broker {
    buffer: VecDeque<Published>,
    next_seq: u64,
    /// `event_buffer_size` (default 100).
    pub(super) size: usize,
    /// The heartbeat period (30 s in Nomad).
    pub(super) heartbeat: Duration,
    /// Live subscriptions and the ending asked for each.
    subs: HashMap<u64, Option<Ending>>,
    next_sub: u64,
    /// Answer every new subscription with this error.
    pub(super) refuse: Option<(u16, String)>,
    /// The broker is disabled (`enable_event_broker = false`).
    pub(super) disabled: bool,
    /// Bytes of event JSON sent per topic (all subscriptions).
    pub(super) topic_bytes: HashMap<String, u64>,
}

impl Default for Broker {
    fn default() -> Self {
        Self {
            buffer: VecDeque::new(),
            next_seq: 1,
            size: 100,
            heartbeat: Duration::from_secs(30),
            subs: HashMap::new(),
            next_sub: 1,
            refuse: None,
            disabled: false,
            topic_bytes: HashMap::new(),
        }
    }
}

impl Broker {
    /// Appends one item (an index with at least one event) and drops the
    /// oldest beyond the buffer size.
    pub(super) fn publish(&mut self, index: u64, events: Vec<EventRec>) {
        if events.is_empty() || self.disabled {
            return;
        }
        self.buffer.push_back(Published {
            seq: self.next_seq,
            index,
            events: Arc::new(events),
        });
        self.next_seq += 1;
        self.prune();
    }

    pub(super) fn prune(&mut self) {
        while self.buffer.len() > self.size.max(1) {
            self.buffer.pop_front();
        }
    }

    /// A snapshot restore starts an empty buffer.
    pub(super) fn clear(&mut self) {
        self.buffer.clear();
    }

    /// Ends every live subscription.
    pub(super) fn end_all(&mut self, ending: &Ending) {
        for e in self.subs.values_mut() {
            e.get_or_insert_with(|| ending.clone());
        }
    }

    pub(super) fn subscribers(&self) -> usize {
        self.subs.len()
    }

    /// Buffered indexes, oldest first.
    pub(super) fn indexes(&self) -> Vec<u64> {
        self.buffer.iter().map(|p| p.index).collect()
    }

    /// `StartAtClosest` (`v2.0.5:nomad/stream/event_buffer.go`): index 0 is
    /// the oldest item; else the first item at or after `index`; older
    /// than the buffer starts at the oldest; beyond the newest gives the
    /// newest again.
    fn start_at(&self, index: u64) -> u64 {
        if index == 0 {
            return self.buffer.front().map_or(self.next_seq, |p| p.seq);
        }
        match self.buffer.iter().find(|p| p.index >= index) {
            Some(p) => p.seq,
            None => self.buffer.back().map_or(self.next_seq, |p| p.seq),
        }
    }
}

enum Namespaces {
    Any,
    One(String),
    Set(BTreeSet<String>),
}

/// One NDJSON line and the event bytes per topic in it.
type Line = (Vec<u8>, Vec<(&'static str, usize)>);

struct Filter {
    /// (topic, key); `*` for every topic / key.
    topics: Vec<(String, String)>,
    namespaces: Namespaces,
}

impl Filter {
    /// `subscription.filter` (`v2.0.5:nomad/stream/subscription.go`): a
    /// topic and key (or filter key) match, and the namespace matches
    /// unless the event has none (Node events pass every filter).
    fn matches(&self, e: &EventRec) -> bool {
        let topic = self.topics.iter().any(|(t, k)| {
            (t == "*" || t == e.topic)
                && (k == "*" || *k == e.key || e.filter_keys.iter().any(|f| f == k))
        });
        topic
            && (e.namespace.is_empty()
                || match &self.namespaces {
                    Namespaces::Any => true,
                    Namespaces::One(ns) => *ns == e.namespace,
                    Namespaces::Set(set) => set.contains(&e.namespace),
                })
    }

    /// The subscriber's line for one item, if any event matches, and the
    /// bytes per topic in it.
    fn line(&self, p: &Published) -> Option<Line> {
        let mut line = Vec::new();
        let mut per_topic = Vec::new();
        for e in p.events.iter().filter(|e| self.matches(e)) {
            if line.is_empty() {
                line.extend_from_slice(format!("{{\"Index\":{},\"Events\":[", p.index).as_bytes());
            } else {
                line.push(b',');
            }
            line.extend_from_slice(&e.json);
            per_topic.push((e.topic, e.json.len()));
        }
        if line.is_empty() {
            return None;
        }
        line.extend_from_slice(b"]}\n");
        Some((line, per_topic))
    }
}

/// How this version puts the stream on the wire.
#[derive(Clone, Copy)]
struct Transport {
    /// 1.11.2+ / 2.0.0+: the handler hijacks the connection. That is
    /// exactly the versions with `broken_status_line` (1.11.2) or
    /// `deleted_flag` (1.11.3+, 2.0.0+).
    hijacked: bool,
    broken_status_line: bool,
    initial_heartbeat: bool,
}

async fn send<S: Conn>(
    stream: &mut Metered<S>,
    t: Transport,
    head_pending: &mut bool,
    data: &[u8],
) -> std::io::Result<()> {
    let mut out = Vec::with_capacity(data.len() + 128);
    if *head_pending {
        out.extend_from_slice(head(t).as_bytes());
        *head_pending = false;
    }
    if t.hijacked {
        out.extend_from_slice(data);
    } else {
        out.extend_from_slice(format!("{:x}\r\n", data.len()).as_bytes());
        out.extend_from_slice(data);
        out.extend_from_slice(b"\r\n");
    }
    stream.write_all(&out).await?;
    stream.flush().await
}

fn head(t: Transport) -> String {
    if t.hijacked {
        let proto = if t.broken_status_line {
            "HTTP/0.0"
        } else {
            "HTTP/1.1"
        };
        format!("{proto} 200 OK\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n")
    } else {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nVary: Accept-Encoding\r\nTransfer-Encoding: chunked\r\n\r\n".to_owned()
    }
}

fn account(state: &Mutex<State>, path: &str, bytes: u64, topics: &[(&'static str, usize)]) {
    let mut st = state.lock().unwrap();
    *st.bytes.entry(path.to_owned()).or_insert(0) += bytes;
    for (t, n) in topics {
        *st.stream.topic_bytes.entry((*t).to_owned()).or_insert(0) += *n as u64;
    }
}

/// Serves one subscription until it ends. Returns whether the connection
/// may serve another request (only after an error answered before the
/// first byte).
pub(super) async fn serve_stream<S: Conn>(
    stream: &mut Metered<S>,
    request: &Request,
    state: &Mutex<State>,
    changed: &tokio::sync::Notify,
) -> std::io::Result<bool> {
    let (features, refuse, disabled, heartbeat) = {
        let st = state.lock().unwrap();
        (
            st.features().stream,
            st.stream.refuse.clone(),
            st.stream.disabled,
            st.stream.heartbeat,
        )
    };
    let Some(features) = features else {
        // Before 1.0 the route does not exist.
        write_response(
            stream,
            404,
            "text/plain; charset=utf-8",
            b"404 page not found",
            false,
            None,
            None,
        )
        .await?;
        return Ok(true);
    };
    let t = Transport {
        hijacked: features.broken_status_line || features.deleted_flag,
        broken_status_line: features.broken_status_line,
        initial_heartbeat: features.initial_heartbeat,
    };
    // Errors before the first byte: an ordinary HTTP error before 1.11.2,
    // a 200 head then EOF once the handler hijacks the connection.
    let early = if request.method != "GET" {
        Some((405, "Invalid method".to_owned()))
    } else if disabled {
        Some((500, "EventBroker not configured".to_owned()))
    } else if let Some(r) = refuse {
        Some(r)
    } else {
        request
            .query
            .get("index")
            .filter(|i| i.parse::<u64>().is_err())
            .map(|i| {
                (
                    400,
                    format!(
                        "Unable to parse index: strconv.ParseUint: parsing {i:?}: invalid syntax"
                    ),
                )
            })
    };
    if let Some((status, text)) = early {
        if t.hijacked {
            stream.write_all(head(t).as_bytes()).await?;
            stream.flush().await?;
            return Ok(false);
        }
        write_response(
            stream,
            status,
            "text/plain; charset=utf-8",
            text.as_bytes(),
            false,
            None,
            None,
        )
        .await?;
        return Ok(true);
    }
    let topics: Vec<(String, String)> = match request.multi.get("topic") {
        Some(list) if !list.is_empty() => list
            .iter()
            .map(|t| match t.split_once(':') {
                Some((t, k)) => (t.to_owned(), k.to_owned()),
                None => (t.clone(), "*".to_owned()),
            })
            .collect(),
        _ => vec![("*".to_owned(), "*".to_owned())],
    };
    let ns = request
        .query
        .get("namespace")
        .cloned()
        .unwrap_or_else(|| "default".to_owned());
    let index: u64 = request
        .query
        .get("index")
        .and_then(|i| i.parse().ok())
        .unwrap_or(0);
    let (sub, mut next_seq, filter) = {
        let mut st = state.lock().unwrap();
        let namespaces = match (ns.as_str(), features.namespaces) {
            // #10903 / #10935: before 1.0.12 / 1.1.6 `*` is a name.
            ("*", StreamNamespaces::Literal) => Namespaces::One("*".to_owned()),
            ("*", StreamNamespaces::Wildcard) => Namespaces::Any,
            // CVE-2025-0937 (#25089): expanded once, at subscribe time.
            ("*", StreamNamespaces::AtSubscribe) => {
                Namespaces::Set(st.cluster_mut().namespaces.keys().cloned().collect())
            }
            (one, _) => Namespaces::One(one.to_owned()),
        };
        let b = &mut st.stream;
        let sub = b.next_sub;
        b.next_sub += 1;
        b.subs.insert(sub, None);
        (sub, b.start_at(index), Filter { topics, namespaces })
    };
    let result = follow(
        stream,
        request,
        state,
        changed,
        t,
        sub,
        &mut next_seq,
        &filter,
        heartbeat,
    )
    .await;
    state.lock().unwrap().stream.subs.remove(&sub);
    result.map(|()| false)
}

#[allow(clippy::too_many_arguments)]
async fn follow<S: Conn>(
    stream: &mut Metered<S>,
    request: &Request,
    state: &Mutex<State>,
    changed: &tokio::sync::Notify,
    t: Transport,
    sub: u64,
    next_seq: &mut u64,
    filter: &Filter,
    heartbeat: Duration,
) -> std::io::Result<()> {
    let path = request.path.as_str();
    let mut head_pending = true;
    // The last item delivered: if it leaves the buffer before the reader
    // moves on, the reader gets `event dropped from buffer`
    // (`bufferItem.Next`). The start position itself is never dropped.
    let mut current: Option<u64> = None;
    if t.hijacked || t.initial_heartbeat {
        // #10637: `{}` right after subscribing (1.0.7 / 1.1.1+); before,
        // the head waits for the first line.
        send(stream, t, &mut head_pending, b"{}\n").await?;
        account(state, path, stream.written(), &[]);
    }
    let mut next_beat = tokio::time::Instant::now() + heartbeat;
    let mut scratch = [0u8; 512];
    // Bounded: every pass either writes, or waits for a change, a
    // heartbeat or the client's EOF; the fake's owner ends it with a cut.
    loop {
        let notified = changed.notified();
        let mut lines = Vec::new();
        let mut ending = None;
        {
            let mut st = state.lock().unwrap();
            let b = &mut st.stream;
            match b.subs.get_mut(&sub).and_then(Option::take) {
                Some(e) => ending = Some(e),
                None => {
                    let front = b.buffer.front().map(|p| p.seq);
                    let from = *next_seq;
                    for p in b.buffer.iter().filter(|p| p.seq >= from) {
                        if current.zip(front).is_some_and(|(c, f)| c < f) {
                            ending = Some(Ending::Text(ERR_DROPPED.to_owned()));
                            break;
                        }
                        current = Some(p.seq);
                        *next_seq = p.seq + 1;
                        if let Some(line) = filter.line(p) {
                            lines.push(line);
                        }
                    }
                }
            }
        }
        for (line, topics) in &lines {
            send(stream, t, &mut head_pending, line).await?;
            account(state, path, stream.written(), topics);
        }
        if let Some(ending) = ending {
            match ending {
                Ending::Text(text) if !t.hijacked => {
                    // `wrap()`: the error text after the last line, no
                    // newline, then the body ends.
                    send(stream, t, &mut head_pending, text.as_bytes()).await?;
                    stream.write_all(b"0\r\n\r\n").await?;
                    stream.flush().await?;
                }
                Ending::Text(_) if head_pending => {
                    stream.write_all(head(t).as_bytes()).await?;
                    stream.flush().await?;
                }
                _ => {}
            }
            account(state, path, stream.written(), &[]);
            return Ok(());
        }
        if !lines.is_empty() {
            continue;
        }
        tokio::select! {
            () = notified => {}
            () = tokio::time::sleep_until(next_beat) => {
                send(stream, t, &mut head_pending, b"{}\n").await?;
                account(state, path, stream.written(), &[]);
                next_beat += heartbeat;
            }
            r = stream.read(&mut scratch) => {
                if r? == 0 {
                    return Ok(());
                }
            }
        }
    }
}
