//! NDJSON framing of the stream: chunks in, frames out, and why it ended
//! (`docs/nomad-events.md` §2, §3).

use serde::de::Error as _;
use serde::Deserialize;

use super::payload::Event;

/// Default cap of one NDJSON line. One plan result can put thousands of
/// allocations (≈2–5 KB each) into one line (§2), so the cap is generous.
pub const DEFAULT_MAX_LINE: usize = 64 << 20;

/// Longest error text kept from a stream's trailing fragment.
pub(super) const MAX_ERROR_TEXT: usize = 200;

/// Longest excerpt of a line that does not decode.
pub(super) const MAX_EXCERPT: usize = 80;

/// A buffer this large is given back after its line is done, so one huge
/// line does not keep its memory for the life of the stream.
pub(super) const KEEP_BUFFER: usize = 1 << 20;

/// One NDJSON line of the stream.
#[derive(Debug)]
pub enum Frame {
    /// `{}`: sent every 30 s, and right after subscribing on 1.0.7 / 1.1.1+.
    /// Proves the connection lives, not that the server's data is fresh.
    Heartbeat,
    /// `{"Index":N,"Events":[…]}`: the matching events of one raft index.
    Events { index: u64, events: Vec<Event> },
}

/// Why a stream ended, or why its bytes are not a stream of frames. Every
/// variant means: reconnect with `index=last+1` and schedule a relist
/// (`docs/nomad-events.md` §7).
#[derive(Debug, thiserror::Error)]
pub enum StreamError {
    /// The body ended after a complete line, with no error text. From 1.11.2
    /// this is also how every server-side error (even a 403) ends.
    #[error("the event stream ended")]
    Eof,
    /// `subscription closed by server, client should resubscribe`: token or
    /// policy change, snapshot restore (a silent gap), server shutdown.
    #[error("Nomad closed the subscription; resubscribe and re-read")]
    ClosedByServer,
    /// `event dropped from buffer`: this reader fell behind the server's
    /// event buffer; events were lost.
    #[error("the subscription fell behind Nomad's event buffer; events were lost")]
    DroppedFromBuffer,
    /// `ACL token expired`.
    #[error("the ACL token expired")]
    TokenExpired,
    /// `Permission denied`: the token lost the needed access.
    #[error("permission denied on the event stream (check the ACL token)")]
    Forbidden,
    /// Some other trailing text (sanitised, at most 200 characters).
    #[error("the event stream ended with: {0}")]
    Other(String),
    /// The body ended inside a JSON line (connection cut mid-line).
    #[error("the event stream ended inside a line ({bytes} bytes)")]
    Truncated { bytes: usize },
    /// A line is longer than the decoder's cap.
    #[error("an event stream line is larger than {limit} bytes")]
    TooLarge { limit: usize },
    /// A complete line that is not a frame of the expected shape.
    #[error("event stream line {line} does not decode: {excerpt}")]
    Decode {
        /// 1-based line number in this stream.
        line: u64,
        /// The line's start, sanitised.
        excerpt: String,
        #[source]
        source: serde_json::Error,
    },
}

/// Incremental NDJSON decoder. Feed it chunks as they arrive; call
/// `finish` at EOF. Only the bytes of the line still arriving are kept.
#[derive(Debug)]
pub struct LineDecoder {
    pub(super) buf: Vec<u8>,
    pub(super) max_line: usize,
    /// Lines completed so far (for error messages).
    lines: u64,
}

impl Default for LineDecoder {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_LINE)
    }
}

impl LineDecoder {
    /// A decoder refusing lines longer than `max_line` bytes.
    #[must_use]
    pub fn new(max_line: usize) -> Self {
        Self {
            buf: Vec::new(),
            max_line,
            lines: 0,
        }
    }

    /// Bytes held for the line still arriving.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Feeds one chunk; returns the frames of every line it completed.
    ///
    /// # Errors
    ///
    /// `TooLarge` or `Decode`; the stream is unusable after one (reconnect).
    pub fn feed(&mut self, chunk: &[u8]) -> Result<Vec<Frame>, StreamError> {
        let mut out = Vec::new();
        self.feed_with(chunk, &mut |f| out.push(f))?;
        Ok(out)
    }

    /// Like `feed`, handing each frame to `on_frame` as soon as it is
    /// decoded (frames before an error in the same chunk are delivered).
    ///
    /// # Errors
    ///
    /// As `feed`.
    pub fn feed_with(
        &mut self,
        mut chunk: &[u8],
        on_frame: &mut impl FnMut(Frame),
    ) -> Result<(), StreamError> {
        while let Some(nl) = chunk.iter().position(|&b| b == b'\n') {
            let head = &chunk[..nl];
            chunk = &chunk[nl + 1..];
            if self.buf.len() + head.len() > self.max_line {
                return Err(self.too_large());
            }
            self.lines += 1;
            let decoded = if self.buf.is_empty() {
                decode_line(head, self.lines)
            } else {
                self.buf.extend_from_slice(head);
                let r = decode_line(&self.buf, self.lines);
                self.release();
                r
            };
            if let Some(frame) = decoded? {
                on_frame(frame);
            }
        }
        if self.buf.len() + chunk.len() > self.max_line {
            return Err(self.too_large());
        }
        self.buf.extend_from_slice(chunk);
        Ok(())
    }

    /// Call at EOF: classifies what is left after the last newline and
    /// returns a frame it may still hold (a final line whose newline never
    /// came) with the reason the stream ended.
    pub fn finish(&mut self) -> (Option<Frame>, StreamError) {
        let rest = std::mem::take(&mut self.buf);
        let text = rest.trim_ascii();
        if text.is_empty() {
            return (None, StreamError::Eof);
        }
        if text.starts_with(b"{") {
            self.lines += 1;
            return match decode_line(text, self.lines) {
                Ok(frame) => (frame, StreamError::Eof),
                Err(_) => (None, StreamError::Truncated { bytes: rest.len() }),
            };
        }
        (None, classify_ending(text))
    }

    fn too_large(&mut self) -> StreamError {
        self.buf = Vec::new();
        StreamError::TooLarge {
            limit: self.max_line,
        }
    }

    fn release(&mut self) {
        if self.buf.capacity() > KEEP_BUFFER {
            self.buf = Vec::new();
        } else {
            self.buf.clear();
        }
    }
}

/// The error text Nomad (before 1.11.2) appends without a newline when a
/// started stream fails (`wrap()` in `command/agent/http.go`).
pub(super) fn classify_ending(text: &[u8]) -> StreamError {
    let lower = String::from_utf8_lossy(text).to_ascii_lowercase();
    if lower.contains("subscription closed by server") {
        StreamError::ClosedByServer
    } else if lower.contains("event dropped from buffer") {
        StreamError::DroppedFromBuffer
    } else if lower.contains("acl token expired") {
        StreamError::TokenExpired
    } else if lower.contains("permission denied") {
        StreamError::Forbidden
    } else {
        StreamError::Other(sanitise(text, MAX_ERROR_TEXT))
    }
}

/// Printable ASCII only (anything else becomes `?`), at most `max` chars.
pub(super) fn sanitise(bytes: &[u8], max: usize) -> String {
    String::from_utf8_lossy(bytes)
        .chars()
        .take(max)
        .map(|c| {
            if c.is_ascii_graphic() || c == ' ' {
                c
            } else {
                '?'
            }
        })
        .collect()
}

/// `None` for a blank line.
pub(super) fn decode_line(line: &[u8], line_no: u64) -> Result<Option<Frame>, StreamError> {
    let line = line.trim_ascii();
    if line.is_empty() {
        return Ok(None);
    }
    let err = |source| StreamError::Decode {
        line: line_no,
        excerpt: sanitise(line, MAX_EXCERPT),
        source,
    };
    let wire: WireFrame = serde_json::from_slice(line).map_err(err)?;
    match (wire.index, wire.events) {
        (None, None) => Ok(Some(Frame::Heartbeat)),
        (Some(index), events) => Ok(Some(Frame::Events {
            index,
            events: events.unwrap_or_default(),
        })),
        (None, Some(_)) => Err(err(serde_json::Error::custom("Events without an Index"))),
    }
}

/// `structs.Events` (`nomad/structs/event.go`).
#[derive(Deserialize)]
struct WireFrame {
    #[serde(rename = "Index", default)]
    index: Option<u64>,
    #[serde(rename = "Events", default)]
    events: Option<Vec<Event>>,
}
