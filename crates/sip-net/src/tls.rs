//! Mutual TLS as RFC 5922 §7 wants it between SIP domains: both sides present domain certificates, and
//! both are judged.
//!
//! `sixgate-tls` configurations only record the peer's chain ("record, don't reject"); the judgement is
//! here, right after the handshake and before any SIP byte is read or written:
//! * inbound, the chain must lead to one of our anchors ([`TrustStore::verify_chain`]). Which domain it must
//!   name is only known from each request, so the connection's identities (RFC 5922 §7.1) are computed once
//!   and handed to the application with every request ([`PeerInfo`](crate::PeerInfo)); deciding whether a
//!   request's `From` domain is among them is the application's policy (§7.4);
//! * outbound, the chain must lead to an anchor *and* name the domain we meant to reach, by the SIP rules
//!   (no wildcards, exact match, §7.2); otherwise the connection is closed unused (§7.3).

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use sixgate_core::Domain;
use sixgate_pki::{CertificateVerdict, IdentityRules, TrustStore, sip_identities};
use sixgate_tls::{ClientAuth, LocalCertificates, client_config, server_config};
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio_rustls::{TlsAcceptor, TlsConnector, client, server};

/// Our certificates and the anchors peers are judged with. Cheap to clone.
#[derive(Clone)]
pub struct SipTls {
    inner: Arc<Inner>,
}

struct Inner {
    local: Arc<LocalCertificates>,
    trust: TrustStore,
    server: Arc<ServerConfig>,
    /// By the local domain whose certificate is presented; only our own domains are ever keys.
    clients: Mutex<HashMap<Option<Domain>, Arc<ClientConfig>>>,
}

impl SipTls {
    /// Configurations presenting `local` certificates (chosen by the peer's SNI inbound, else the first
    /// one; by [`NextHop::local`](crate::NextHop::local) outbound) and judging peers with `trust`.
    ///
    /// Fails only if the crypto provider supports none of the default TLS versions, a build problem.
    pub fn new(local: LocalCertificates, trust: TrustStore) -> Result<Self, rustls::Error> {
        let local = Arc::new(local);
        // SIP over TLS has no ALPN identifier, so none is offered or required.
        let server = server_config(Arc::clone(&local), None, ClientAuth::Required, &[])?;
        // Fail now rather than on the first outbound connection.
        let without_certificate = client_config(&local, None, &[])?;
        let clients = HashMap::from([(None, Arc::new(without_certificate))]);
        Ok(Self {
            inner: Arc::new(Inner {
                local,
                trust,
                server: Arc::new(server),
                clients: Mutex::new(clients),
            }),
        })
    }

    /// The anchors peers are judged with.
    pub fn trust(&self) -> &TrustStore {
        &self.inner.trust
    }

    /// Our own certificates.
    pub fn local_certificates(&self) -> &LocalCertificates {
        &self.inner.local
    }

    /// Accepts TLS on `tcp`. Refuses a client without a certificate (the handshake fails) or with a chain
    /// that does not lead to our anchors (closed right after the handshake); otherwise returns the stream
    /// and the client's RFC 5922 identities.
    pub(crate) async fn accept(
        &self,
        tcp: TcpStream,
        handshake_timeout: Duration,
    ) -> Result<(server::TlsStream<TcpStream>, Vec<Domain>), String> {
        let acceptor = TlsAcceptor::from(Arc::clone(&self.inner.server));
        let mut stream = tokio::time::timeout(handshake_timeout, acceptor.accept(tcp))
            .await
            .map_err(|_| "TLS handshake timed out".to_owned())?
            .map_err(|err| format!("TLS handshake failed: {err}"))?;
        let chain = owned_chain(stream.get_ref().1.peer_certificates());
        let judged = self
            .inner
            .trust
            .verify_chain(&chain, UnixTime::now())
            .map_err(|problem| format!("client certificate refused: {problem}"))
            .and_then(|()| identities(&chain));
        match judged {
            Ok(identities) => Ok((stream, identities)),
            Err(reason) => {
                close(&mut stream).await;
                Err(reason)
            }
        }
    }

    /// Opens TLS on `tcp` to the SIP domain `identity`, presenting our certificate for `local` (none for
    /// `None`, or when we have no certificate for it). The server's chain must be valid for `identity` by
    /// RFC 5922's rules, or the connection is closed (§7.3). Returns the stream and the server's identities.
    pub(crate) async fn connect(
        &self,
        tcp: TcpStream,
        identity: &Domain,
        local: Option<&Domain>,
        handshake_timeout: Duration,
    ) -> Result<(client::TlsStream<TcpStream>, Vec<Domain>), String> {
        let config = self.client_config(local)?;
        // RFC 5922 §7.8: send the domain as SNI, so that a server hosting several domains picks the
        // right certificate. An IP literal is no server name and sends none.
        let server_name = ServerName::try_from(identity.as_str().to_owned())
            .map_err(|_| format!("{identity} is not a valid TLS server name"))?;
        let connector = TlsConnector::from(config);
        let mut stream =
            tokio::time::timeout(handshake_timeout, connector.connect(server_name, tcp))
                .await
                .map_err(|_| "TLS handshake timed out".to_owned())?
                .map_err(|err| format!("TLS handshake failed: {err}"))?;
        let chain = owned_chain(stream.get_ref().1.peer_certificates());
        let verdict =
            self.inner
                .trust
                .judge_with(&chain, identity, UnixTime::now(), IdentityRules::Sip);
        let judged = match verdict {
            CertificateVerdict::Valid => identities(&chain),
            CertificateVerdict::Invalid(problem) => Err(format!(
                "server certificate not valid for {identity}: {problem}"
            )),
        };
        match judged {
            Ok(identities) => Ok((stream, identities)),
            Err(reason) => {
                close(&mut stream).await;
                Err(reason)
            }
        }
    }

    fn client_config(&self, local: Option<&Domain>) -> Result<Arc<ClientConfig>, String> {
        let key = local
            .filter(|domain| self.inner.local.get(domain).is_some())
            .cloned();
        let mut cache = self
            .inner
            .clients
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(config) = cache.get(&key) {
            return Ok(Arc::clone(config));
        }
        let config = client_config(&self.inner.local, key.as_ref(), &[])
            .map_err(|err| format!("building the TLS client configuration: {err}"))?;
        let config = Arc::new(config);
        cache.insert(key, Arc::clone(&config));
        Ok(config)
    }
}

impl fmt::Debug for SipTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SipTls")
            .field("local", &self.inner.local)
            .field("trust", &self.inner.trust)
            .finish_non_exhaustive()
    }
}

fn owned_chain(chain: Option<&[CertificateDer<'_>]>) -> Vec<CertificateDer<'static>> {
    chain
        .unwrap_or_default()
        .iter()
        .map(|certificate| certificate.clone().into_owned())
        .collect()
}

/// The RFC 5922 §7.1 identities of a verified chain's end-entity certificate.
fn identities(chain: &[CertificateDer<'_>]) -> Result<Vec<Domain>, String> {
    let end_entity = chain
        .first()
        .ok_or_else(|| "no certificate presented".to_owned())?;
    sip_identities(end_entity).map_err(|problem| format!("unreadable certificate: {problem}"))
}

/// Sends close_notify so that the peer sees a clean refusal rather than a reset; the peer's state does not
/// matter any more, so failures are ignored.
async fn close<S: tokio::io::AsyncWrite + Unpin>(stream: &mut S) {
    let _ = tokio::time::timeout(Duration::from_secs(1), stream.shutdown()).await;
}
