//! TLS configuration for server-to-server streams, inbound (STARTTLS or direct TLS on our listener) and outbound.
//!
//! The policy is "record, don't reject": at the TLS layer any peer certificate chain is accepted, as long as the
//! peer proves it holds the certificate's key, and the s2s negotiation judges the recorded chain afterwards with
//! [`TrustStore::judge`] once it knows which domain the chain must authenticate:
//! * inbound, the domain is the `from` of the peer's stream header, which arrives after TLS; a peer whose
//!   certificate we don't trust may still authenticate with dialback, so refusing the handshake would be wrong;
//! * outbound, the domain is the one we connect to; the same fallback applies in the other direction.
//!
//! **Whoever uses these configurations must call [`TrustStore::judge`] (via [`TlsContext::trust`]) on
//! `peer_certificates()` before treating a peer as authenticated**: the configurations themselves authenticate
//! nobody.
//!
//! One crypto provider, aws-lc-rs, is used explicitly rather than through the process-wide default.

#[cfg(test)]
mod tests;
mod verifier;

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WantsClientCert;
use rustls::crypto::CryptoProvider;
use rustls::server::WantsServerCert;
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{ClientConfig, ConfigBuilder, InconsistentKeys, ServerConfig};
use rustls_pki_types::pem::{self, PemObject};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use sixgate_core::Domain;
use sixgate_xmpp_proto::certificate::{CertificateIdentities, TrustStore};

use verifier::{RecordClientCertificate, RecordServerCertificate, ResolveLocalCertificate};

/// The ALPN protocol of XEP-0368 direct TLS server-to-server connections.
pub const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

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
    /// A domain that the certificate does not name is only logged as a warning: peers will refuse the
    /// certificate for it, but the rest of the gateway can still run.
    pub fn load_pem(
        cert_path: impl AsRef<Path>,
        key_path: impl AsRef<Path>,
        domains: &[Domain],
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
        warn_about_uncovered_domains(&certified, cert_path, domains);
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
        let signing_key = provider()
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

    /// The certificate used when neither SNI nor the stream header names one of our domains: the one of the
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

fn warn_about_uncovered_domains(certified: &CertifiedKey, path: &Path, domains: &[Domain]) {
    let Some(end_entity) = certified.cert.first() else {
        return;
    };
    match CertificateIdentities::of(end_entity) {
        Ok(identities) => {
            for domain in domains.iter().filter(|domain| !identities.covers(domain)) {
                tracing::warn!(
                    %domain,
                    path = %path.display(),
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

/// Everything needed to make TLS configurations for s2s streams. Cheap to clone.
///
/// Configurations are built on first use and cached, so that TLS session resumption works across connections.
#[derive(Clone)]
pub struct TlsContext {
    inner: Arc<Inner>,
}

struct Inner {
    local: Arc<LocalCertificates>,
    trust: TrustStore,
    server_builder: ConfigBuilder<ServerConfig, WantsServerCert>,
    client_builder: ConfigBuilder<ClientConfig, WantsClientCert>,
    /// Keyed by the fallback domain, `None` when it is not one of ours: peers choose the `to` of their stream
    /// header, so keying by arbitrary names would let them grow the cache without bound.
    server_configs: Mutex<HashMap<Option<Domain>, Arc<ServerConfig>>>,
    client_configs: Mutex<HashMap<ClientConfigKey, Arc<ClientConfig>>>,
}

/// Our domain (`None` when we have no certificate for it) and whether ALPN is offered.
type ClientConfigKey = (Option<Domain>, bool);

impl TlsContext {
    /// Prepares configurations presenting `local` certificates; `trust` is kept for judging peers afterwards.
    ///
    /// Fails only if the crypto provider supports none of the default TLS versions, which would be a build
    /// problem.
    pub fn new(local: LocalCertificates, trust: TrustStore) -> Result<Self, rustls::Error> {
        let provider = Arc::new(provider());
        let algorithms = provider.signature_verification_algorithms;
        let server_builder = ServerConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(Arc::new(RecordClientCertificate::new(algorithms)));
        let client_builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(RecordServerCertificate::new(algorithms)));
        Ok(Self {
            inner: Arc::new(Inner {
                local: Arc::new(local),
                trust,
                server_builder,
                client_builder,
                server_configs: Mutex::default(),
                client_configs: Mutex::default(),
            }),
        })
    }

    /// The configuration for accepting TLS from a peer, on STARTTLS or on a direct TLS port.
    ///
    /// Our certificate is chosen by the SNI the peer sends, if it names one of our domains; otherwise by
    /// `fallback_domain`, the `to` of the stream header received before STARTTLS (Prosody 0.12 sends no SNI on
    /// s2s), if it is one of ours; otherwise the [`LocalCertificates::first`] one. Pass `None` on a direct TLS port,
    /// where no header precedes TLS.
    ///
    /// A client certificate is requested but not required, and any chain is accepted (see the module docs).
    pub fn server_config(&self, fallback_domain: Option<&Domain>) -> Arc<ServerConfig> {
        let fallback = fallback_domain
            .filter(|domain| self.inner.local.get(domain).is_some())
            .cloned();
        let mut cache = self
            .inner
            .server_configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let config = cache.entry(fallback.clone()).or_insert_with(|| {
            let resolver = ResolveLocalCertificate::new(Arc::clone(&self.inner.local), fallback);
            let mut config = self
                .inner
                .server_builder
                .clone()
                .with_cert_resolver(Arc::new(resolver));
            // Peers that offer no ALPN (STARTTLS) are unaffected; a peer offering only other protocols is
            // refused, as it is not trying to speak s2s.
            config.alpn_protocols = vec![ALPN_XMPP_SERVER.to_vec()];
            Arc::new(config)
        });
        Arc::clone(config)
    }

    /// The configuration for connecting to a peer on behalf of our domain `local`.
    ///
    /// Presents our certificate for `local` as client certificate, if we have one, so that the peer can offer
    /// SASL EXTERNAL. Any server chain is accepted (see the module docs); judge it against the domain we
    /// connect to. `alpn_xmpp_server` offers the ALPN protocol `xmpp-server`, which XEP-0368 direct TLS
    /// requires. Connect with the peer's domain as server name, so that it is sent as SNI.
    pub fn client_config(&self, local: &Domain, alpn_xmpp_server: bool) -> Arc<ClientConfig> {
        let certified = self.inner.local.get(local);
        let key = (certified.map(|_| local.clone()), alpn_xmpp_server);
        let mut cache = self
            .inner
            .client_configs
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let config = cache.entry(key).or_insert_with(|| {
            let builder = self.inner.client_builder.clone();
            let mut config = match certified {
                Some(certified) => builder.with_client_cert_resolver(Arc::new(
                    SingleCertAndKey::from(Arc::clone(certified)),
                )),
                None => builder.with_no_client_auth(),
            };
            if alpn_xmpp_server {
                config.alpn_protocols = vec![ALPN_XMPP_SERVER.to_vec()];
            }
            Arc::new(config)
        });
        Arc::clone(config)
    }

    /// The trust anchors to judge peer certificates with.
    pub fn trust(&self) -> &TrustStore {
        &self.inner.trust
    }

    /// Our own certificates.
    pub fn local_certificates(&self) -> &LocalCertificates {
        &self.inner.local
    }
}

impl fmt::Debug for TlsContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsContext")
            .field("local", &self.inner.local)
            .field("trust", &self.inner.trust)
            .finish_non_exhaustive()
    }
}

fn provider() -> CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}
