//! `StartArgs` + environment → a validated `Config`. Every rule that spans
//! flags (a mode must be chosen), the `NOMAD_*` conventions, and derived
//! settings (the request timeout) live here; defaults live in `cli`.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{bail, Context as _};

use crate::cli::StartArgs;
use crate::nomad::{NomadApiOptions, TlsOptions};
use crate::statsd::StatsdTarget;

/// Which collectors run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Roles {
    pub client: bool,
    pub server: bool,
}

/// Everything `run` needs, validated.
#[derive(Debug, Clone)]
pub struct Config {
    pub roles: Roles,
    /// Poll period.
    pub interval: Duration,
    pub nomad: NomadApiOptions,
    /// `NOMAD_NAMESPACE`: count jobs in this namespace only (else all).
    pub namespace: Option<String>,
    pub statsd: StatsdTarget,
    /// Tag client gauges with the node's identity.
    pub identity_tags: bool,
    /// Tags added to every gauge.
    pub global_tags: Vec<(String, String)>,
    /// `--page-size`: read `--server` lists in pages of this many (Nomad 1.3+).
    pub page_size: Option<u32>,
    /// `--resync`: full re-read of `--server` lists at least this often.
    pub resync: Duration,
}

/// Per-request timeout for a poll period: 80 % of it, so a hanging Nomad
/// fails the poll before the next one is due.
#[must_use]
pub fn request_timeout(interval: Duration) -> Duration {
    interval.mul_f64(0.8)
}

impl Config {
    /// Validates `args` and reads the Nomad environment through `env`.
    ///
    /// # Errors
    ///
    /// No mode chosen; an unreadable token file; a malformed `NOMAD_*` value.
    pub fn from_args(
        args: StartArgs,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> anyhow::Result<Self> {
        if !args.client && !args.server {
            bail!("choose at least one mode: --client and/or --server");
        }
        let env_nonempty = |key: &str| {
            env(key)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let token = match &args.nomad_token_file {
            Some(path) => Some(read_token_file(path)?),
            None => env_nonempty("NOMAD_TOKEN"),
        };
        let skip_verify = match env_nonempty("NOMAD_SKIP_VERIFY") {
            Some(v) => parse_go_bool(&v)
                .with_context(|| format!("NOMAD_SKIP_VERIFY={v:?} is not a boolean"))?,
            None => false,
        };
        let tls = TlsOptions {
            ca_cert: env_nonempty("NOMAD_CACERT").map(PathBuf::from),
            client_cert: env_nonempty("NOMAD_CLIENT_CERT").map(PathBuf::from),
            client_key: env_nonempty("NOMAD_CLIENT_KEY").map(PathBuf::from),
            skip_verify,
            server_name: env_nonempty("NOMAD_TLS_SERVER_NAME"),
        };
        if tls.client_cert.is_some() != tls.client_key.is_some() {
            bail!("NOMAD_CLIENT_CERT and NOMAD_CLIENT_KEY must be set together");
        }
        Ok(Self {
            roles: Roles {
                client: args.client,
                server: args.server,
            },
            interval: args.interval,
            nomad: NomadApiOptions {
                base: args.nomad_uri,
                token,
                region: env_nonempty("NOMAD_REGION"),
                timeout: request_timeout(args.interval),
                tls,
            },
            namespace: env_nonempty("NOMAD_NAMESPACE"),
            statsd: StatsdTarget {
                host: args.statsd_host,
                port: args.statsd_port,
            },
            identity_tags: !args.no_identity_tags,
            global_tags: Vec::new(),
            page_size: (args.page_size > 0).then_some(args.page_size),
            resync: args.resync,
        })
    }
}

fn read_token_file(path: &PathBuf) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --nomad-token-file {}", path.display()))?;
    let token = text.trim();
    if token.is_empty() {
        bail!("--nomad-token-file {} is empty", path.display());
    }
    Ok(token.to_owned())
}

/// Go's `strconv.ParseBool`, which the `nomad` CLI uses for `NOMAD_SKIP_VERIFY`.
fn parse_go_bool(v: &str) -> anyhow::Result<bool> {
    match v {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => bail!("expected true or false"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser as _;

    fn args(line: &[&str]) -> StartArgs {
        let mut argv = vec!["nomad-metrics", "start"];
        argv.extend_from_slice(line);
        match Cli::try_parse_from(argv).map(|c| c.command) {
            Ok(Command::Start(a)) => a,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn a_mode_is_required() {
        let err = Config::from_args(args(&[]), &|_| None).unwrap_err();
        assert!(err.to_string().contains("--client"), "{err}");
    }

    #[test]
    fn reads_the_nomad_environment() {
        let env = |k: &str| {
            match k {
                "NOMAD_TOKEN" => Some("s3cr3t"),
                "NOMAD_REGION" => Some("eu"),
                "NOMAD_NAMESPACE" => Some("ci"),
                "NOMAD_SKIP_VERIFY" => Some("1"),
                _ => None,
            }
            .map(str::to_owned)
        };
        let cfg = Config::from_args(args(&["--server", "--interval", "5s"]), &env).unwrap();
        assert_eq!(cfg.nomad.token.as_deref(), Some("s3cr3t"));
        assert_eq!(cfg.nomad.region.as_deref(), Some("eu"));
        assert_eq!(cfg.namespace.as_deref(), Some("ci"));
        assert!(cfg.nomad.tls.skip_verify);
        assert_eq!(cfg.nomad.timeout, Duration::from_secs(4));
        assert!(
            !format!("{cfg:?}").contains("s3cr3t"),
            "Debug must redact the token"
        );
    }

    #[test]
    fn rejects_bad_skip_verify_and_half_mtls() {
        let env = |k: &str| (k == "NOMAD_SKIP_VERIFY").then(|| "maybe".to_owned());
        assert!(Config::from_args(args(&["--client"]), &env).is_err());
        let env = |k: &str| (k == "NOMAD_CLIENT_CERT").then(|| "/x.pem".to_owned());
        assert!(Config::from_args(args(&["--client"]), &env).is_err());
    }

    #[test]
    fn go_bools() {
        assert!(parse_go_bool("True").unwrap());
        assert!(!parse_go_bool("0").unwrap());
        assert!(parse_go_bool("yes").is_err());
    }
}
