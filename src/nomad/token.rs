//! The ACL token (`NOMAD_TOKEN` or `--nomad-token-file`) as a ready,
//! sensitive `X-Nomad-Token` header value; a token file is read again
//! whenever it changes. The token itself never reaches a log or a `Debug`.

use std::path::PathBuf;

use anyhow::Context as _;
use reqwest::header::HeaderValue;

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
pub(super) struct Token {
    source: TokenSource,
    /// (file modification time it was read at, header value).
    current: std::sync::Mutex<(Option<std::time::SystemTime>, Option<HeaderValue>)>,
}

impl Token {
    pub(super) fn new(source: TokenSource) -> anyhow::Result<Self> {
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
    pub(super) fn header(&self) -> Option<HeaderValue> {
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
