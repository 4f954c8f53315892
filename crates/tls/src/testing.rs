//! Test support (cargo feature `testing`): a throw-away certificate authority and an in-memory TLS handshake,
//! shared by the tests of every crate that builds TLS configurations, so that each does not grow its own.

#![allow(clippy::unwrap_used, clippy::missing_panics_doc)]

use std::io;
use std::sync::Arc;

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use sixgate_core::Domain;
use sixgate_pki::TrustStore;
use tokio::io::{AsyncReadExt, AsyncWriteExt, DuplexStream};
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

use crate::LocalCertificates;

/// A test certificate authority.
pub struct TestPki {
    issuer: Issuer<'static, KeyPair>,
    certificate: CertificateDer<'static>,
    certificate_pem: String,
}

impl TestPki {
    /// A new CA whose common name says `name`.
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, format!("{name} test CA"));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign];
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap();
        Self {
            issuer: Issuer::new(params, key),
            certificate: certificate.der().clone(),
            certificate_pem: certificate.pem(),
        }
    }

    /// The CA certificate.
    pub fn certificate(&self) -> &CertificateDer<'static> {
        &self.certificate
    }

    /// The CA certificate in PEM.
    pub fn certificate_pem(&self) -> &str {
        &self.certificate_pem
    }

    /// A trust store holding just this CA.
    pub fn trust(&self) -> TrustStore {
        TrustStore::from_der_certs([self.certificate.clone()]).unwrap()
    }

    /// A leaf with the given subject alternative names and extended key usages, and its key.
    pub fn leaf_with(
        &self,
        sans: Vec<SanType>,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> (rcgen::Certificate, KeyPair) {
        let mut params = CertificateParams::default();
        params.subject_alt_names = sans;
        params.extended_key_usages = usages.to_vec();
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap();
        (certificate, key)
    }

    /// A leaf naming `domain` as its only DNS name, and its key.
    pub fn leaf(
        &self,
        domain: &str,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> (rcgen::Certificate, KeyPair) {
        self.leaf_with(vec![SanType::DnsName(domain.try_into().unwrap())], usages)
    }

    /// A leaf for `domain`, ready to present.
    pub fn certified(&self, domain: &str, usages: &[ExtendedKeyUsagePurpose]) -> Arc<CertifiedKey> {
        let (certificate, key) = self.leaf(domain, usages);
        LocalCertificates::from_der(vec![certificate.der().clone()], pkcs8(&key)).unwrap()
    }

    /// Our certificates holding one leaf, presented for `domain`.
    pub fn local_with(
        &self,
        domain: &str,
        sans: Vec<SanType>,
        usages: &[ExtendedKeyUsagePurpose],
    ) -> LocalCertificates {
        let (certificate, key) = self.leaf_with(sans, usages);
        let certified =
            LocalCertificates::from_der(vec![certificate.der().clone()], pkcs8(&key)).unwrap();
        let mut local = LocalCertificates::new();
        local.insert(Domain::parse(domain).unwrap(), certified);
        local
    }
}

/// The key in the form rustls loads.
pub fn pkcs8(key: &KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(key.serialize_der().into())
}

/// How both sides of [`handshake`] ended.
pub struct Outcome {
    /// The server side.
    pub server: io::Result<server::TlsStream<DuplexStream>>,
    /// The client side.
    pub client: io::Result<client::TlsStream<DuplexStream>>,
}

impl Outcome {
    /// The server's connection; panics if the server side failed.
    pub fn server(&self) -> &rustls::ServerConnection {
        self.server.as_ref().unwrap().get_ref().1
    }

    /// The client's connection; panics if the client side failed.
    pub fn client(&self) -> &rustls::ClientConnection {
        self.client.as_ref().unwrap().get_ref().1
    }

    /// The end-entity certificate the server presented, as the client saw it.
    pub fn server_certificate(&self) -> CertificateDer<'static> {
        self.client().peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }
}

/// Runs both handshakes over an in-memory pipe, then one byte each way so that TLS 1.3 failures that only
/// surface after the client's handshake (client certificate refused) are seen by both sides.
pub async fn handshake(
    server: Arc<ServerConfig>,
    client: Arc<ClientConfig>,
    name: &str,
) -> Outcome {
    let (client_io, server_io) = tokio::io::duplex(64 * 1024);
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let accept = async {
        let mut stream = TlsAcceptor::from(server).accept(server_io).await?;
        stream.write_all(b"s").await?;
        stream.flush().await?;
        Ok(stream)
    };
    let connect = async {
        let mut stream = TlsConnector::from(client).connect(name, client_io).await?;
        stream.read_exact(&mut [0]).await?;
        Ok(stream)
    };
    let (server, client) = tokio::join!(accept, connect);
    Outcome { server, client }
}
