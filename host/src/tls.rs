//! TLS for listeners: the certificate and key a listener serves, read from PEM files,
//! for STARTTLS (RFC 3207) or implicit TLS from the first byte (RFC 8314). A reload
//! reads the files again, so a renewed certificate is served without a restart.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, bail};
use serde::Deserialize;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;
use tokio_rustls::rustls::crypto::ring;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A listener's `[listener.tls]` table.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM file: the certificate, then any intermediates.
    pub cert: PathBuf,
    /// PEM file: the private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// TLS from the first byte (port 465) instead of STARTTLS.
    #[serde(default)]
    pub implicit: bool,
}

/// What a listener's sessions use to offer and start TLS.
#[derive(Clone)]
pub struct ListenerTls {
    pub acceptor: TlsAcceptor,
    pub implicit: bool,
}

impl ListenerTls {
    /// Reads the certificate and key; fails with a message naming the file at fault.
    pub fn load(config: &TlsConfig) -> anyhow::Result<ListenerTls> {
        let (cert, key) = (&config.cert, &config.key);
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .with_context(|| format!("cannot read the TLS certificate {}", cert.display()))?;
        if chain.is_empty() {
            bail!("no certificate in {}", cert.display());
        }
        let key =
            PrivateKeyDer::from_pem_file(key).with_context(|| format!("cannot read the TLS key {}", key.display()))?;
        ListenerTls::new(chain, key, config.implicit)
            .with_context(|| format!("the TLS key does not fit the certificate {}", cert.display()))
    }

    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        implicit: bool,
    ) -> anyhow::Result<ListenerTls> {
        let mut server = ServerConfig::builder_with_provider(Arc::new(ring::default_provider()))
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(chain, key)?;
        // Mail clients seldom resume sessions; without tickets no ticket key is kept.
        server.send_tls13_tickets = 0;
        Ok(ListenerTls {
            acceptor: TlsAcceptor::from(Arc::new(server)),
            implicit,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path
    }

    /// Removed when the test ends.
    fn temp_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("wasmtpd-tls-{name}-"))
            .tempdir()
            .unwrap()
    }

    #[test]
    fn loads_a_certificate_and_its_key() {
        let dir = temp_dir("ok");
        let dir = dir.path();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(dir, "cert.pem", &generated.cert.pem());
        let key = write(dir, "key.pem", &generated.signing_key.serialize_pem());
        let tls = ListenerTls::load(&TlsConfig {
            cert,
            key,
            implicit: true,
        })
        .unwrap();
        assert!(tls.implicit);
    }

    #[test]
    fn names_the_file_at_fault() {
        let dir = temp_dir("bad");
        let dir = dir.path();
        let generated = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let other = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
        let cert = write(dir, "cert.pem", &generated.cert.pem());
        let key = write(dir, "key.pem", &generated.signing_key.serialize_pem());
        let wrong_key = write(dir, "other-key.pem", &other.signing_key.serialize_pem());
        let empty = write(dir, "empty.pem", "");
        let missing = dir.join("missing.pem");
        let error = |cert: &Path, key: &Path| {
            let config = TlsConfig {
                cert: cert.to_path_buf(),
                key: key.to_path_buf(),
                implicit: false,
            };
            format!("{:#}", ListenerTls::load(&config).err().expect("refused"))
        };
        assert!(error(&missing, &key).contains("cannot read the TLS certificate"));
        assert!(error(&empty, &key).contains("no certificate in"));
        assert!(error(&cert, &missing).contains("cannot read the TLS key"));
        assert!(error(&cert, &empty).contains("cannot read the TLS key"));
        assert!(error(&cert, &wrong_key).contains("does not fit the certificate"));
    }
}
