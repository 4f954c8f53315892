//! TLS configuration for server-to-server streams, inbound (STARTTLS or direct TLS on our listener) and outbound.
//!
//! Built on `sixgate-tls`, shared with the SIP side: "record, don't reject". At the TLS layer any peer
//! certificate chain is accepted, as long as the peer proves it holds the certificate's key, and the s2s
//! negotiation judges the recorded chain afterwards with [`TrustStore::judge`] once it knows which domain the
//! chain must authenticate:
//! * inbound, the domain is the `from` of the peer's stream header, which arrives after TLS; a peer whose
//!   certificate we don't trust may still authenticate with dialback, so refusing the handshake would be wrong;
//! * outbound, the domain is the one we connect to; the same fallback applies in the other direction.
//!
//! **Whoever uses these configurations must call [`TrustStore::judge`] (via [`TlsContext::trust`]) on
//! `peer_certificates()` before treating a peer as authenticated**: the configurations themselves authenticate
//! nobody.

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rustls::client::WantsClientCert;
use rustls::server::WantsServerCert;
use rustls::sign::SingleCertAndKey;
use rustls::{ClientConfig, ConfigBuilder, ServerConfig};
use sixgate_core::Domain;
use sixgate_tls::{ClientAuth, LocalCertificateResolver};
use sixgate_xmpp_proto::certificate::TrustStore;

pub use sixgate_tls::{CertificateLoadError, LocalCertificates};

/// The ALPN protocol of XEP-0368 direct TLS server-to-server connections.
pub const ALPN_XMPP_SERVER: &[u8] = b"xmpp-server";

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
        // Dialback may authenticate a peer that presents no certificate.
        let server_builder = sixgate_tls::server_builder(ClientAuth::Optional)?;
        let client_builder = sixgate_tls::client_builder()?;
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
            let resolver = LocalCertificateResolver::new(Arc::clone(&self.inner.local), fallback);
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
