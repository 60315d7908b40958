//! TLS for the relay's upstream connections (STARTTLS, RFC 3207, as a client): what a
//! plugin's `relay_tls` asks, turned into a rustls client configuration once, at load.
//! `may` encrypts without checking the certificate, as Postfix's opportunistic TLS does:
//! better than the clear against a passive listener, and never a reason to defer mail.
//! `required` checks the certificate against a CA file or the system's roots.

use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::crypto::{CryptoProvider, ring, verify_tls12_signature, verify_tls13_signature};
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_rustls::rustls::{ClientConfig, DigitallySignedStruct, Error, RootCertStore, SignatureScheme};

use crate::config::RelayTls;

/// What the relay does about TLS with one plugin's upstreams.
#[derive(Clone, Debug)]
pub enum UpstreamTls {
    /// Never STARTTLS.
    Off,
    /// STARTTLS when offered, the certificate unchecked.
    Opportunistic(Arc<ClientConfig>),
    /// STARTTLS or no relay, the certificate checked.
    Required(Arc<ClientConfig>),
}

impl UpstreamTls {
    /// The client configuration for `policy`; reads `ca` (or the system's roots) when
    /// TLS is required.
    pub fn load(policy: RelayTls, ca: Option<&Path>) -> anyhow::Result<UpstreamTls> {
        // A CA that would not be used would let its writer believe certificates are checked.
        anyhow::ensure!(
            ca.is_none() || policy == RelayTls::Required,
            "relay_ca is only used with relay_tls = \"required\""
        );
        let provider = Arc::new(ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .context("TLS versions")?;
        Ok(match policy {
            RelayTls::None => UpstreamTls::Off,
            RelayTls::May => {
                let config = builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                    .with_no_client_auth();
                UpstreamTls::Opportunistic(Arc::new(config))
            }
            RelayTls::Required => {
                let roots = roots(ca)?;
                UpstreamTls::Required(Arc::new(builder.with_root_certificates(roots).with_no_client_auth()))
            }
        })
    }
}

/// The certificates `relay_ca` names, else the system's.
fn roots(ca: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    match ca {
        Some(path) => {
            for cert in
                CertificateDer::pem_file_iter(path).with_context(|| format!("cannot read {}", path.display()))?
            {
                let cert = cert.with_context(|| format!("{}: not a PEM certificate", path.display()))?;
                roots
                    .add(cert)
                    .with_context(|| format!("{}: not a usable CA certificate", path.display()))?;
            }
        }
        None => {
            let found = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(found.certs);
        }
    }
    anyhow::ensure!(!roots.is_empty(), "no CA certificate to check upstreams against");
    Ok(roots)
}

/// Opportunistic TLS: any certificate is taken, but the handshake's signatures are still
/// checked (the key exchange stays sound).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls12_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, Error> {
        verify_tls13_signature(message, cert, dss, &self.0.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}
