//! TLS on the listener: rustls with the ring provider (the one reqwest already brings). The
//! certificate chain and key come from PEM files (`[server.tls]`); the acceptor sits behind a
//! lock that the accept loop reads for each new connection, so a reload (SIGHUP) swaps in a
//! new certificate without dropping a connection, and a bad one is refused before anything
//! changes.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};
use tokio_rustls::TlsAcceptor;

/// `[server.tls]`: without it the API speaks plain HTTP (the loopback default).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file with the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM file with the certificate's private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

/// Why a certificate and key cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("server.tls.{key} {path}: cannot read: {source}")]
    Read {
        key: &'static str,
        path: String,
        source: std::io::Error,
    },
    #[error("server.tls.{key} {path}: not PEM or not a {what}: {reason}")]
    NotPem {
        key: &'static str,
        path: String,
        what: &'static str,
        reason: String,
    },
    #[error("server.tls.cert_file {path}: holds no certificate")]
    NoCertificate { path: String },
    #[error(
        "server.tls: the key in {key_path} does not fit the certificate in {cert_path}: {source}"
    )]
    Mismatch {
        cert_path: String,
        key_path: String,
        source: rustls::Error,
    },
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    std::fs::read(path).map_err(|source| TlsError::Read {
        key,
        path: path.display().to_string(),
        source,
    })
}

/// Reads and checks the certificate chain and key: an acceptor ready to serve.
pub fn load(c: &TlsConfig) -> Result<TlsAcceptor, TlsError> {
    let cert_path = c.cert_file.display().to_string();
    let key_path = c.key_file.display().to_string();
    let cert_pem = read("cert_file", &c.cert_file)?;
    let key_pem = read("key_file", &c.key_file)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::NotPem {
            key: "cert_file",
            path: cert_path.clone(),
            what: "certificate",
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate { path: cert_path });
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| TlsError::NotPem {
        key: "key_file",
        path: key_path.clone(),
        what: "private key",
        reason: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mismatch = |source| TlsError::Mismatch {
        cert_path: cert_path.clone(),
        key_path: key_path.clone(),
        source,
    };
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(mismatch)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(mismatch)?;
    // The server speaks HTTP/1.1 only.
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The acceptor in force, shared by the accept loop and the reloader.
pub struct Tls {
    acceptor: RwLock<TlsAcceptor>,
}

impl Tls {
    pub fn load(c: &TlsConfig) -> Result<Arc<Tls>, TlsError> {
        Ok(Arc::new(Tls {
            acceptor: RwLock::new(load(c)?),
        }))
    }

    /// The acceptor for a new connection.
    pub fn current(&self) -> TlsAcceptor {
        self.acceptor
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Serves `acceptor` to connections accepted from now on.
    pub fn replace(&self, acceptor: TlsAcceptor) {
        *self.acceptor.write().unwrap_or_else(|p| p.into_inner()) = acceptor;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(dir: &Path, name: &str) -> TlsConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let cert = rcgen::CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        let c = TlsConfig {
            cert_file: dir.join(format!("{name}.crt")),
            key_file: dir.join(format!("{name}.key")),
        };
        std::fs::write(&c.cert_file, cert.pem()).unwrap();
        std::fs::write(&c.key_file, key.serialize_pem()).unwrap();
        c
    }

    #[test]
    fn a_matching_pair_loads() {
        let dir = tempfile::tempdir().unwrap();
        let c = pair(dir.path(), "a");
        assert!(load(&c).is_ok());
    }

    #[test]
    fn each_bad_file_is_named_with_the_reason() {
        let dir = tempfile::tempdir().unwrap();
        let a = pair(dir.path(), "a");
        let b = pair(dir.path(), "b");

        let missing = TlsConfig {
            cert_file: dir.path().join("nope.crt"),
            ..a.clone()
        };
        let e = load(&missing).err().unwrap().to_string();
        assert!(e.contains("cert_file") && e.contains("cannot read"), "{e}");

        let garbage = dir.path().join("garbage.pem");
        std::fs::write(&garbage, "hello, not a certificate\n").unwrap();
        let e = load(&TlsConfig {
            cert_file: garbage.clone(),
            ..a.clone()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("holds no certificate"), "{e}");
        let e = load(&TlsConfig {
            key_file: garbage,
            ..a.clone()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("key_file") && e.contains("private key"), "{e}");

        // The key from the other pair.
        let e = load(&TlsConfig {
            key_file: b.key_file.clone(),
            ..a.clone()
        })
        .err()
        .unwrap()
        .to_string();
        assert!(e.contains("does not fit"), "{e}");
    }
}
