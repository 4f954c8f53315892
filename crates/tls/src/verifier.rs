//! The rustls plug-ins behind the configurations: certificate verifiers that record instead of judging, and the
//! choice of our own certificate.

use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{WebPkiSupportedAlgorithms, verify_tls12_signature, verify_tls13_signature};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sixgate_core::Domain;

use super::{ClientAuth, LocalCertificates};

/// Requests a client certificate, accepts any chain (or, with [`ClientAuth::Optional`], none), and checks that
/// the client signed the handshake with the key of the certificate it sent.
///
/// Without the signature check a peer could replay someone else's public certificate and have it judged as its
/// own.
#[derive(Debug)]
pub(super) struct RecordClientCertificate {
    algorithms: WebPkiSupportedAlgorithms,
    client_auth: ClientAuth,
}

impl RecordClientCertificate {
    pub(super) fn new(algorithms: WebPkiSupportedAlgorithms, client_auth: ClientAuth) -> Self {
        Self {
            algorithms,
            client_auth,
        }
    }
}

impl ClientCertVerifier for RecordClientCertificate {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.client_auth == ClientAuth::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // An empty list asks the client for its certificate whatever its issuer, which is what we want when any
        // chain is recorded; it also keeps a large trust store out of every CertificateRequest.
        &[]
    }

    fn verify_client_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Accepts any server chain and checks that the server signed the handshake with the key of the certificate it
/// sent; the protocol layer judges the chain against the domain it connected to.
#[derive(Debug)]
pub(super) struct RecordServerCertificate {
    algorithms: WebPkiSupportedAlgorithms,
}

impl RecordServerCertificate {
    pub(super) fn new(algorithms: WebPkiSupportedAlgorithms) -> Self {
        Self { algorithms }
    }
}

impl ServerCertVerifier for RecordServerCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, certificate, signature, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        certificate: &CertificateDer<'_>,
        signature: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, certificate, signature, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// Chooses our certificate: the one of the domain the client's SNI names, else the one of the fallback domain,
/// else the [`LocalCertificates::first`] one; with no certificate at all, the handshake fails.
///
/// The fallback exists because Prosody 0.12 sends no SNI on s2s: XMPP passes the `to` of the stream header
/// received before STARTTLS.
#[derive(Debug)]
pub struct LocalCertificateResolver {
    local: Arc<LocalCertificates>,
    fallback: Option<Domain>,
}

impl LocalCertificateResolver {
    /// Chooses among `local`, falling back to `fallback` (which need not be one of ours) without a usable SNI.
    pub fn new(local: Arc<LocalCertificates>, fallback: Option<Domain>) -> Self {
        Self { local, fallback }
    }
}

impl ResolvesServerCert for LocalCertificateResolver {
    fn resolve(&self, client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let by_sni = client_hello
            .server_name()
            .and_then(|name| Domain::parse(name).ok())
            .and_then(|domain| self.local.get(&domain));
        let chosen = by_sni
            .or_else(|| {
                self.fallback
                    .as_ref()
                    .and_then(|domain| self.local.get(domain))
            })
            .or_else(|| self.local.first());
        if chosen.is_none() {
            tracing::warn!("no local certificate; refusing TLS");
        }
        chosen.cloned()
    }
}
