//! TLS to Nomad as the `nomad` CLI configures it: `NOMAD_CACERT` (a PEM
//! bundle) or `NOMAD_CAPATH` (a directory of them) replace the bundled
//! public roots, `NOMAD_CLIENT_CERT`/`NOMAD_CLIENT_KEY` for mutual TLS,
//! `NOMAD_SKIP_VERIFY` only on explicit request, and `NOMAD_TLS_SERVER_NAME`
//! to verify a name other than the host connected to.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::Context as _;
use url::Url;

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

/// Applies `tls` to the client being built: the CA roots, the client
/// identity and skip-verify.
///
/// # Errors
///
/// A TLS file that cannot be read or parsed, or half a client identity.
pub(super) fn configure(
    mut builder: reqwest::ClientBuilder,
    tls: &TlsOptions,
) -> anyhow::Result<reqwest::ClientBuilder> {
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
            pem.extend(
                std::fs::read(key).with_context(|| {
                    format!("cannot read NOMAD_CLIENT_KEY file {}", key.display())
                })?,
            );
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
    Ok(builder)
}

/// With `NOMAD_TLS_SERVER_NAME`, verify against that name but connect to the
/// configured host: put the name in `base` (so rustls checks it and sends it
/// as SNI) and resolve it to wherever the original host resolves.
///
/// # Errors
///
/// A URL without a host, or a name that is not a host name.
pub(super) fn server_name(
    builder: reqwest::ClientBuilder,
    base: &mut Url,
    name: &str,
) -> anyhow::Result<reqwest::ClientBuilder> {
    let original = base
        .host_str()
        .context("the Nomad URL has no host")?
        .to_owned();
    base.set_host(Some(name))
        .with_context(|| format!("NOMAD_TLS_SERVER_NAME {name:?} is not a host name"))?;
    Ok(builder.dns_resolver(Arc::new(ServerNameResolver {
        server_name: name.to_owned(),
        original: original
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned(),
    })))
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
