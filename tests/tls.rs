//! HTTPS to Nomad as the `nomad` CLI does it: certificates are verified
//! (NOMAD_CACERT) unless NOMAD_SKIP_VERIFY says otherwise,
//! NOMAD_TLS_SERVER_NAME names the certificate, and NOMAD_CLIENT_CERT /
//! NOMAD_CLIENT_KEY answer a server that requires client certificates.

use crate::support::tls::{pki, server_config};
use crate::support::*;

/// Runs `--client` against an HTTPS fake; returns the first poll's failure flag.
async fn first_poll_failed(nomad: &FakeNomad, env: &[(&str, &str)]) -> f64 {
    let statsd = StatsdCapture::start().await;
    let url = format!("https://127.0.0.1:{}", nomad.addr.port());
    let port = statsd.port().to_string();
    let daemon = Daemon::start(config(&args_for(&url, &port, &["--client"]), env));
    let poll = statsd.next_poll(CLIENT, WAIT).await;
    daemon.stop().await;
    let failed = by_name(&poll)[&format!("{CLIENT}poll_failure")];
    if failed == 0.0 {
        let e = fixture("1.11.0", "expected.json");
        assert_eq!(
            by_name(&poll)[&format!("{CLIENT}resources.total.cpu")],
            e["client"]["total"][0].as_f64().unwrap()
        );
    }
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certificates_are_verified() {
    let pki = pki("verify", &["127.0.0.1"]);
    let nomad = FakeNomad::start_tls("1.11.0", server_config(&pki, false)).await;
    let ca = pki.ca_pem.to_str().unwrap();
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_CACERT", ca)]).await,
        0.0,
        "trusted CA"
    );
    assert_eq!(
        first_poll_failed(&nomad, &[]).await,
        1.0,
        "unknown CA is refused by default"
    );
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_SKIP_VERIFY", "true")]).await,
        0.0,
        "explicitly skipped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_server_name() {
    // Nomad's own certificates name `server.<region>.nomad`, not the address.
    let pki = pki("name", &["server.global.nomad"]);
    let nomad = FakeNomad::start_tls("1.11.0", server_config(&pki, false)).await;
    let ca = pki.ca_pem.to_str().unwrap();
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_CACERT", ca)]).await,
        1.0,
        "name mismatch"
    );
    let env = [
        ("NOMAD_CACERT", ca),
        ("NOMAD_TLS_SERVER_NAME", "server.global.nomad"),
    ];
    assert_eq!(first_poll_failed(&nomad, &env).await, 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutual_tls() {
    let pki = pki("mtls", &["127.0.0.1"]);
    let nomad = FakeNomad::start_tls("1.11.0", server_config(&pki, true)).await;
    let ca = pki.ca_pem.to_str().unwrap();
    assert_eq!(
        first_poll_failed(&nomad, &[("NOMAD_CACERT", ca)]).await,
        1.0,
        "no client certificate"
    );
    let env = [
        ("NOMAD_CACERT", ca),
        ("NOMAD_CLIENT_CERT", pki.client_cert.to_str().unwrap()),
        ("NOMAD_CLIENT_KEY", pki.client_key.to_str().unwrap()),
    ];
    assert_eq!(first_poll_failed(&nomad, &env).await, 0.0);
}

/// A CA file that is not PEM is a start-up error, not a silent fallback.
#[test]
fn bad_ca_file_is_a_usage_error() {
    let dir = std::env::temp_dir().join(format!("nm-badca-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("ca.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_nomad-metrics"))
        .args(["start", "--client", "--once", "--dry-run"])
        .env("NOMAD_CACERT", &bad)
        .output()
        .unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert_ne!(out.status.code(), Some(0));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("NOMAD_CACERT"), "{stderr}");
}
