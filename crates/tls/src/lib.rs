//! rustls configurations for the gateway's server-to-server links, shared by XMPP (STARTTLS or direct TLS,
//! RFC 6120, XEP-0368) and SIP (mutual TLS, RFC 5922).
//!
//! The policy is "record, don't reject": at the TLS layer any peer certificate chain is accepted, as long as the
//! peer proves it holds the certificate's key (the handshake signature is always verified), and the protocol
//! layer judges the recorded chain afterwards with `sixgate_pki::TrustStore` once it knows which domain the
//! chain must authenticate:
//! * the domain is only known after the handshake: the `from` of an XMPP stream header, the domain a SIP
//!   request claims; outbound, the domain we connect to, whose policy may still allow a fallback;
//! * an XMPP peer whose certificate we don't trust may still authenticate with Server Dialback, so refusing the
//!   handshake would be wrong; and a refusal at the TLS layer would leave only an alert in the logs, where a
//!   judgement says which domain was claimed and why the certificate does not authenticate it.
//!
//! **Whoever uses these configurations must judge `peer_certificates()` before treating a peer as
//! authenticated**: the configurations themselves authenticate nobody, not even with [`ClientAuth::Required`].
//!
//! One crypto provider, aws-lc-rs ([`crypto_provider`]), is passed explicitly to every builder rather than
//! installed as the process-wide default.

#[cfg(any(test, feature = "testing"))]
pub mod testing;
#[cfg(test)]
mod tests;
mod verifier;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use rustls::client::WantsClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::WantsServerCert;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, ConfigBuilder, InconsistentKeys, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sixgate_core::Domain;
use sixgate_pki::IdentityRules;

pub use verifier::LocalCertificateResolver;
use verifier::{RecordClientCertificate, RecordServerCertificate};

/// The certificates and keys of our own domains, by domain.
#[derive(Clone, Default)]
pub struct LocalCertificates {
    by_domain: BTreeMap<Domain, Arc<CertifiedKey>>,
}

impl LocalCertificates {
    /// No certificates: inbound TLS then fails and outbound TLS presents no client certificate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Loads one certificate chain (PEM, end-entity certificate first) and its private key (PEM, PKCS#8, PKCS#1
    /// or SEC1) for the given domains.
    ///
    /// A domain that the certificate does not name by the XMPP rules is only logged as a warning: peers will
    /// refuse the certificate for it, but the rest of the gateway can still run. The same as
    /// [`LocalCertificates::load_pem_for`] with [`IdentityRules::Xmpp`].
    pub fn load_pem(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
        domains: &[Domain],
    ) -> Result<Self, CertificateLoadError> {
        Self::load_pem_for(cert_path, key_path, domains, &[IdentityRules::Xmpp])
    }

    /// Like [`LocalCertificates::load_pem`], warning about each domain the certificate does not name by each of
    /// `rules`, the rules of the protocols that will present it.
    pub fn load_pem_for(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
        domains: &[Domain],
        rules: &[IdentityRules],
    ) -> Result<Self, CertificateLoadError> {
        let (cert_path, key_path) = (cert_path.as_ref(), key_path.as_ref());
        let chain = CertificateDer::pem_file_iter(cert_path)
            .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
            .map_err(|source| CertificateLoadError::CertificateFile {
                path: cert_path.to_owned(),
                source,
            })?;
        if chain.is_empty() {
            return Err(CertificateLoadError::NoCertificate {
                path: cert_path.to_owned(),
            });
        }
        let key = PrivateKeyDer::from_pem_file(key_path).map_err(|source| {
            CertificateLoadError::KeyFile {
                path: key_path.to_owned(),
                source,
            }
        })?;
        let certified = Self::from_der(chain, key)?;
        for &rules in rules {
            warn_about_uncovered_domains(&certified, cert_path, domains, rules);
        }
        let mut local = Self::new();
        for domain in domains {
            local.insert(domain.clone(), Arc::clone(&certified));
        }
        Ok(local)
    }

    /// Makes a certified key from a DER chain (end-entity certificate first) and private key, checking that the
    /// key belongs to the certificate.
    pub fn from_der(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Arc<CertifiedKey>, CertificateLoadError> {
        if chain.is_empty() {
            return Err(CertificateLoadError::EmptyChain);
        }
        let signing_key = crypto_provider()
            .key_provider
            .load_private_key(key)
            .map_err(CertificateLoadError::Key)?;
        let certified = CertifiedKey::new(chain, signing_key);
        match certified.keys_match() {
            // Some key types cannot report their public key; a mismatch then shows up in the first handshake.
            Ok(()) | Err(rustls::Error::InconsistentKeys(InconsistentKeys::Unknown)) => {
                Ok(Arc::new(certified))
            }
            Err(rustls::Error::InconsistentKeys(InconsistentKeys::KeyMismatch)) => {
                Err(CertificateLoadError::KeyMismatch)
            }
            Err(other) => Err(CertificateLoadError::Key(other)),
        }
    }

    /// Sets the certificate for a domain, returning the one it replaces.
    pub fn insert(
        &mut self,
        domain: Domain,
        certified: Arc<CertifiedKey>,
    ) -> Option<Arc<CertifiedKey>> {
        self.by_domain.insert(domain, certified)
    }

    /// The certificate for a domain.
    pub fn get(&self, domain: &Domain) -> Option<&Arc<CertifiedKey>> {
        self.by_domain.get(domain)
    }

    /// The certificate used when neither SNI nor the fallback domain names one of our domains: the one of the
    /// alphabetically first domain, so that the choice does not depend on loading order.
    pub fn first(&self) -> Option<&Arc<CertifiedKey>> {
        self.by_domain.values().next()
    }

    /// The domains we have a certificate for, in alphabetical order.
    pub fn domains(&self) -> impl Iterator<Item = &Domain> {
        self.by_domain.keys()
    }

    /// Whether there is no certificate at all.
    pub fn is_empty(&self) -> bool {
        self.by_domain.is_empty()
    }
}

impl fmt::Debug for LocalCertificates {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.by_domain.keys()).finish()
    }
}

impl Extend<(Domain, Arc<CertifiedKey>)> for LocalCertificates {
    fn extend<I: IntoIterator<Item = (Domain, Arc<CertifiedKey>)>>(&mut self, entries: I) {
        self.by_domain.extend(entries);
    }
}

fn warn_about_uncovered_domains(
    certified: &CertifiedKey,
    path: &Path,
    domains: &[Domain],
    rules: IdentityRules,
) {
    let Some(end_entity) = certified.cert.first() else {
        return;
    };
    match rules.read(end_entity) {
        Ok(identities) => {
            for domain in domains.iter().filter(|domain| !identities.covers(domain)) {
                tracing::warn!(
                    %domain,
                    path = %path.display(),
                    %rules,
                    names = ?identities.names(),
                    "local certificate does not name the domain; peers will refuse it"
                );
            }
        }
        Err(problem) => {
            tracing::warn!(path = %path.display(), %problem, "cannot read the names of a local certificate");
        }
    }
}

/// Why our own certificate or key could not be loaded. Always the operator's fault: a wrong path or file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateLoadError {
    /// The certificate file could not be read or holds invalid PEM.
    #[error("reading certificates from {}: {source}", path.display())]
    CertificateFile {
        /// The certificate file.
        path: PathBuf,
        /// What went wrong.
        source: pem::Error,
    },
    /// The certificate file holds no `CERTIFICATE` block.
    #[error("{} holds no certificate", path.display())]
    NoCertificate {
        /// The certificate file.
        path: PathBuf,
    },
    /// The key file could not be read or holds no private key.
    #[error("reading the private key from {}: {source}", path.display())]
    KeyFile {
        /// The key file.
        path: PathBuf,
        /// What went wrong.
        source: pem::Error,
    },
    /// [`LocalCertificates::from_der`] was given no certificate.
    #[error("empty certificate chain")]
    EmptyChain,
    /// The private key is of a type or size aws-lc-rs cannot sign with, or the certificate cannot be parsed.
    #[error("unusable certificate or private key: {0}")]
    Key(rustls::Error),
    /// The private key does not belong to the end-entity certificate.
    #[error("the private key does not belong to the certificate")]
    KeyMismatch,
}

/// Whether a server configuration insists on a client certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ClientAuth {
    /// A client certificate is requested; a client without one completes the handshake. XMPP: the peer may
    /// still authenticate with Server Dialback.
    Optional,
    /// A client without a certificate fails the handshake: SIP peers authenticate by mutual TLS with their
    /// domain certificates (RFC 5922), and there is no fallback. Any chain is still accepted at the TLS layer
    /// (signature checked): which domain it must authenticate is only known from the requests that follow, so it
    /// is judged then.
    Required,
}

/// The crypto provider of every configuration: aws-lc-rs, the gateway's only one.
pub fn crypto_provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A server configuration builder with the safe default protocol versions and a client certificate verifier
/// that records any chain (see the crate docs), still to be given a certificate resolver, normally
/// [`LocalCertificateResolver`]. For callers that cache configurations; others use [`server_config`].
///
/// Fails only if the crypto provider supports none of the default TLS versions, which would be a build problem.
pub fn server_builder(
    client_auth: ClientAuth,
) -> Result<ConfigBuilder<ServerConfig, WantsServerCert>, rustls::Error> {
    let provider = crypto_provider();
    let algorithms = provider.signature_verification_algorithms;
    let verifier = RecordClientCertificate::new(algorithms, client_auth);
    Ok(ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_client_cert_verifier(Arc::new(verifier)))
}

/// A client configuration builder with the safe default protocol versions and a server certificate verifier
/// that records any chain (see the crate docs), still to be told which client certificate to present. For
/// callers that cache configurations; others use [`client_config`].
///
/// Fails only if the crypto provider supports none of the default TLS versions, which would be a build problem.
pub fn client_builder() -> Result<ConfigBuilder<ClientConfig, WantsClientCert>, rustls::Error> {
    let provider = crypto_provider();
    let algorithms = provider.signature_verification_algorithms;
    Ok(ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(RecordServerCertificate::new(algorithms))))
}

/// The configuration for accepting TLS from a peer.
///
/// Our certificate is chosen as [`LocalCertificateResolver`] says: by SNI, else by `fallback` (XMPP: the `to`
/// of the stream header received before STARTTLS), else the [`LocalCertificates::first`] one. `alpn` lists the
/// protocols we accept, empty for none: a client offering ALPN but none of these is refused, one offering no
/// ALPN is unaffected.
pub fn server_config(
    local: Arc<LocalCertificates>,
    fallback: Option<Domain>,
    client_auth: ClientAuth,
    alpn: &[&[u8]],
) -> Result<ServerConfig, rustls::Error> {
    let resolver = LocalCertificateResolver::new(local, fallback);
    let mut config = server_builder(client_auth)?.with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(config)
}

/// The configuration for connecting to a peer on behalf of our domain `local_domain`.
///
/// Presents our certificate for `local_domain` as client certificate if we have one (none for `None`), so that
/// the peer can authenticate us by it. Any server chain is accepted (see the crate docs): judge it against the
/// domain connected to. `alpn` lists the protocols to offer, empty for none. Connect with the peer's domain as
/// server name, so that it is sent as SNI.
pub fn client_config(
    local: &LocalCertificates,
    local_domain: Option<&Domain>,
    alpn: &[&[u8]],
) -> Result<ClientConfig, rustls::Error> {
    let builder = client_builder()?;
    let mut config = match local_domain.and_then(|domain| local.get(domain)) {
        Some(certified) => builder
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(Arc::clone(certified)))),
        None => builder.with_no_client_auth(),
    };
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(config)
}
