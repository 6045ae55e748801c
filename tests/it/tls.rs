//! TLS on the listener (`[server.tls]`): the official PagerDuty client over https, reqwest
//! with the test CA, plain HTTP refused cleanly, a new certificate on SIGHUP, a bad one
//! refused with the old one serving, and `itsmd check` naming bad files.

use std::path::{Path, PathBuf};
use std::process::Command;

use rcgen::{
    BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair, KeyUsagePurpose, SerialNumber,
};

use crate::support::{BIN, Daemon, Setup, wait_until};

/// A test CA that signs server certificates for 127.0.0.1 and localhost.
struct Pki {
    issuer: Issuer<'static, KeyPair>,
    ca_pem: String,
    ca_file: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "itsmd test CA");
        let ca = params.self_signed(&key).unwrap();
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca.pem()).unwrap();
        Pki {
            issuer: Issuer::new(params, key),
            ca_pem: ca.pem(),
            ca_file,
        }
    }

    /// Writes a server certificate with `serial` (and its key) to `cert`/`key`; its DER.
    fn server(&self, serial: u64, cert: &Path, key: &Path) -> Vec<u8> {
        let server_key = KeyPair::generate().unwrap();
        let mut params =
            CertificateParams::new(vec!["127.0.0.1".to_string(), "localhost".to_string()]).unwrap();
        params.serial_number = Some(SerialNumber::from(serial));
        let c = params.signed_by(&server_key, &self.issuer).unwrap();
        std::fs::write(cert, c.pem()).unwrap();
        std::fs::write(key, server_key.serialize_pem()).unwrap();
        c.der().to_vec()
    }

    fn client(&self) -> reqwest::blocking::Client {
        reqwest::blocking::Client::builder()
            .use_rustls_tls()
            .add_root_certificate(reqwest::Certificate::from_pem(self.ca_pem.as_bytes()).unwrap())
            .tls_info(true)
            .no_proxy()
            .timeout(std::time::Duration::from_secs(10))
            .build()
            .unwrap()
    }
}

fn tls_setup(extra: &str) -> (Setup, Pki, PathBuf, PathBuf, Vec<u8>) {
    let setup = Setup::new();
    let pki = Pki::new(setup.dir.path());
    let cert = setup.dir.path().join("server.crt");
    let key = setup.dir.path().join("server.key");
    let der = pki.server(1, &cert, &key);
    let setup = setup.config(&format!(
        "[server.tls]\ncert_file = {:?}\nkey_file = {:?}\n{extra}",
        cert.display().to_string(),
        key.display().to_string()
    ));
    (setup, pki, cert, key, der)
}

fn https(d: &Daemon, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", d.addr.port())
}

/// The certificate a fresh connection is served, as DER.
fn served(pki: &Pki, d: &Daemon) -> Vec<u8> {
    let r = pki.client().get(https(d, "/healthz")).send().unwrap();
    assert_eq!(r.status(), 200);
    r.extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .expect("peer certificate")
        .to_vec()
}

fn state(pki: &Pki, d: &Daemon, id: &str) -> serde_json::Value {
    pki.client()
        .get(https(d, &format!("/api/v1/tickets/{id}")))
        .send()
        .unwrap()
        .json()
        .unwrap()
}

#[test]
fn the_official_pagerduty_client_triggers_acknowledges_and_resolves_over_https() {
    let (setup, pki, _, _, _) =
        tls_setup("[pagerduty]\nintegration_keys = { \"R0UT1NGKEY\" = \"payments\" }\n");
    let d = setup.start();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/it/pagerduty_client.py");
    let send = |action: &str| {
        let out = Command::new("python3")
            .arg(&script)
            .arg(https(&d, ""))
            .arg(&pki.ca_file)
            .args(["R0UT1NGKEY", action, "payments-db/replication-lag"])
            .output()
            .expect("run python3");
        assert!(
            out.status.success(),
            "{action}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };

    assert_eq!(send("trigger"), "payments-db/replication-lag");
    let opened = state(&pki, &d, "INC-000001");
    assert_eq!(opened["state"], "new", "{opened}");
    assert_eq!(opened["correlation_key"], "payments-db/replication-lag");
    assert_eq!(opened["alert"]["source"], "payments");

    assert_eq!(send("acknowledge"), "payments-db/replication-lag");
    let acked = state(&pki, &d, "INC-000001");
    assert_eq!(acked["state"], "in_progress", "{acked}");
    assert_eq!(
        acked["priority"], opened["priority"],
        "acknowledging keeps the priority"
    );

    assert_eq!(send("resolve"), "payments-db/replication-lag");
    assert_eq!(state(&pki, &d, "INC-000001")["state"], "resolved");
}

#[test]
fn reqwest_with_the_test_ca_is_served_and_plain_http_fails_cleanly() {
    let (setup, pki, _, _, der) = tls_setup("");
    let d = setup.start();
    assert_eq!(served(&pki, &d), der);
    assert!(
        d.logs()
            .iter()
            .any(|l| l["message"] == "Listening." && l["tls"] == true)
    );

    // Plain HTTP to the TLS port: the request fails, nothing hangs, the daemon keeps serving.
    let plain = d.http.get(d.url("/healthz")).send();
    assert!(plain.is_err(), "plain HTTP got an answer: {plain:?}");
    // A client that does not trust the CA is refused too.
    let untrusting = reqwest::blocking::Client::builder()
        .use_rustls_tls()
        .no_proxy()
        .build()
        .unwrap();
    assert!(untrusting.get(https(&d, "/healthz")).send().is_err());
    assert_eq!(served(&pki, &d), der);

    // The command line trusts a private CA with --ca-cert, and says why without it.
    let server = https(&d, "");
    let ca = pki.ca_file.to_str().unwrap();
    let cli = |extra: &[&str]| {
        let args = [&["ticket", "list", "--json", "--server", &server], extra].concat();
        crate::support::itsmd(&args)
    };
    let (ok, out) = cli(&["--ca-cert", ca]);
    assert!(ok && out.contains("\"tickets\""), "{out}");
    let (ok, out) = cli(&[]);
    assert!(
        !ok && out.contains("cannot reach the itsmd daemon"),
        "{out}"
    );
    assert!(out.to_lowercase().contains("certificate"), "{out}");
    let (ok, out) = cli(&["--ca-cert", "/nonexistent/ca.pem"]);
    assert!(
        !ok && out.contains("--ca-cert: cannot read /nonexistent/ca.pem"),
        "{out}"
    );
}

#[test]
fn sighup_serves_a_new_certificate_and_refuses_a_bad_one() {
    let (setup, pki, cert, key, first) = tls_setup("");
    let d = setup.start();
    assert_eq!(served(&pki, &d), first);

    let second = pki.server(2, &cert, &key);
    assert_ne!(first, second);
    d.signal(libc::SIGHUP);
    wait_until("the new certificate is served", || {
        served(&pki, &d) == second
    });

    // A certificate file that is not PEM: refused with the reason, the old one keeps serving.
    std::fs::write(&cert, "not a certificate\n").unwrap();
    d.signal(libc::SIGHUP);
    let problem = d.wait_for_log(|l| l["message"] == "Reload problem.");
    let text = problem["problem"].as_str().unwrap_or_default();
    assert!(
        text.contains("server.tls.cert_file") && text.contains("no certificate"),
        "{problem}"
    );
    d.wait_for_log(|l| {
        l["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("Reload refused"))
    });
    assert_eq!(served(&pki, &d), second);

    // A key that belongs to another certificate: refused the same way.
    let dir = cert.parent().unwrap();
    let other = (dir.join("other.crt"), dir.join("other.key"));
    pki.server(3, &other.0, &other.1);
    pki.server(4, &cert, &key);
    std::fs::copy(&other.1, &key).unwrap();
    d.signal(libc::SIGHUP);
    wait_until("the mismatch is refused", || {
        d.logs().iter().any(|l| {
            l["message"] == "Reload problem."
                && l["problem"]
                    .as_str()
                    .is_some_and(|p| p.contains("does not fit"))
        })
    });
    assert_eq!(served(&pki, &d), second);
}

#[test]
fn check_names_an_unreadable_a_non_pem_and_a_mismatched_file() {
    let (setup, pki, cert, key, _) = tls_setup("");
    let config = setup.config.clone().unwrap();
    let check = || {
        let out = Command::new(BIN)
            .arg("check")
            .arg("--config")
            .arg(&config)
            .arg("--rules-dir")
            .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"))
            .output()
            .unwrap();
        (
            out.status.success(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (ok, out) = check();
    assert!(ok, "{out}");

    let saved = std::fs::read(&key).unwrap();
    std::fs::remove_file(&key).unwrap();
    let (ok, out) = check();
    assert!(
        !ok && out.contains("server.tls.key_file") && out.contains("cannot read"),
        "{out}"
    );

    std::fs::write(&key, "-----BEGIN PRIVATE KEY-----\nnot base64!\n").unwrap();
    let (ok, out) = check();
    assert!(
        !ok && out.contains("server.tls.key_file") && out.contains("not PEM"),
        "{out}"
    );

    std::fs::write(&key, &saved).unwrap();
    let dir = setup.dir.path();
    pki.server(9, &dir.join("x.crt"), &dir.join("x.key"));
    std::fs::copy(dir.join("x.crt"), &cert).unwrap();
    let (ok, out) = check();
    assert!(!ok && out.contains("does not fit"), "{out}");
}
