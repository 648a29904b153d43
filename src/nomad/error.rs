//! Typed failures at the Nomad boundary. The pipeline branches on these
//! (an ACL problem reads differently from an outage) and logs the whole
//! `source` chain once. Nothing here ever contains the ACL token.

use reqwest::StatusCode;

/// Why one request to the Nomad HTTP API did not produce a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum NomadError {
    /// No HTTP answer at all: refused, reset, DNS failure, TLS failure, or the
    /// connection broke before the response head arrived.
    #[error("cannot reach Nomad at {url}")]
    Unreachable {
        /// The request URL (never carries the token: that travels in a header).
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The request (head and body) took longer than the per-request timeout.
    #[error("Nomad did not answer {path} within {timeout_ms} ms")]
    Timeout { path: String, timeout_ms: u128 },
    /// Nomad answered with a non-2xx status. `message` is the first line of
    /// the (plain-text) error body, trimmed, for the log line.
    #[error("Nomad answered {status} for {path}: {message}{hint}")]
    Status {
        path: String,
        status: StatusCode,
        message: String,
        /// An operator hint, e.g. to check the ACL token on a 403.
        hint: &'static str,
    },
    /// The body broke off or could not be read (truncated, reset mid-body).
    #[error("reading the answer to {path} failed")]
    Body {
        path: String,
        #[source]
        source: reqwest::Error,
    },
    /// The body is larger than the cap for this endpoint.
    #[error("the answer to {path} exceeds the {limit_bytes}-byte size cap")]
    TooLarge { path: String, limit_bytes: u64 },
    /// The body is not the JSON this endpoint returns on any known Nomad.
    #[error("unexpected JSON from {path} (Content-Type {content_type})")]
    Decode {
        path: String,
        content_type: String,
        /// A `serde_json::Error`, or a `DecodeError` for list bodies.
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Nomad handed out the same page token twice (GH-25435): paging would
    /// never end.
    #[error("Nomad repeated a page token for {path}; stopped paging")]
    Paging { path: String },
    /// The answer is well-formed but lacks what the daemon needs.
    #[error("{path}: {what}")]
    Missing { path: String, what: &'static str },
}

impl NomadError {
    /// True when Nomad answered 404 (node or job not found).
    #[must_use]
    pub fn is_not_found(&self) -> bool {
        matches!(self, NomadError::Status { status, .. } if *status == StatusCode::NOT_FOUND)
    }

    /// True when Nomad answered 403 (ACL token missing, unknown or too weak).
    #[must_use]
    pub fn is_forbidden(&self) -> bool {
        matches!(self, NomadError::Status { status, .. } if *status == StatusCode::FORBIDDEN)
    }
}
