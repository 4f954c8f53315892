//! SIP peers of the gateway, played by the test itself: an edge proxy, a SIP federation partner, a
//! stranger. Each is a `sixgate_sip_net::SipService` in this process, with a test-CA leaf for its SIP
//! domain (see [`crate::pki::Pki::sip_leaf`]) and trusting only the test CA, so the gateway meets real
//! mutual TLS (RFC 5922) and a real transaction layer.
//!
//! Requests the gateway sends to a peer arrive through [`SipPeer::next_request`]; the test answers
//! each one through its `IncomingRequest` (an unanswered one is answered 500 when dropped).

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, anyhow};
use sixgate_core::Domain;
use sixgate_pki::{IdentityRules, TrustStore};
use sixgate_sip::message::{CallId, HeaderName, Method, NameAddr, Uri};
use sixgate_sip::{Request, Response};
use sixgate_sip_net::{
    DnsConfig, IncomingRequest, NextHop, SendError, SipConfig, SipDiscovery, SipService, SipTls,
    Target,
};
use sixgate_tls::LocalCertificates;
use tokio::sync::mpsc;

use crate::pki::{Leaf, Pki};
use crate::process;

/// The SIP over TLS port.
pub const SIP_PORT: u16 = 5061;

static COUNTER: AtomicU64 = AtomicU64::new(1);

/// A SIP peer: a `SipService` with one certificate, and the requests it received.
pub struct SipPeer {
    name: String,
    identity: Domain,
    service: SipService,
    inbound: mpsc::Receiver<IncomingRequest>,
}

impl std::fmt::Debug for SipPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipPeer")
            .field("name", &self.name)
            .field("identity", &self.identity)
            .field("listen", &self.service.local_addrs())
            .finish_non_exhaustive()
    }
}

impl SipPeer {
    /// Starts a peer whose certificate is `leaf`, presented for the SIP domain `identity` (inbound for
    /// any SNI, outbound as client certificate when [`NextHop::local`] is `identity`). It listens on
    /// `listen` (`None`: only connects out), trusts only the test CA, and asks only the test DNS server
    /// at `dns_ip` (which it needs only for `Target::Discover`).
    pub async fn start(
        name: &str,
        identity: &str,
        leaf: &Leaf,
        pki: &Pki,
        listen: Option<SocketAddr>,
        dns_ip: Ipv4Addr,
    ) -> Result<Self> {
        let identity = domain(identity)?;
        let local = LocalCertificates::load_pem_for(
            &leaf.cert,
            &leaf.key,
            std::slice::from_ref(&identity),
            &[IdentityRules::Sip],
        )
        .with_context(|| format!("{name}: loading {}", leaf.cert.display()))?;
        let trust = TrustStore::from_der_certs([pki.ca_der().clone()])
            .map_err(|e| anyhow!("{name}: trust store: {e}"))?;
        let tls = SipTls::new(local, trust).with_context(|| format!("{name}: TLS"))?;
        let discovery = SipDiscovery::new(&DnsConfig {
            nameservers: vec![SocketAddr::from((dns_ip, 53))],
            timeout: Duration::from_secs(2),
        })
        .map_err(|e| anyhow!("{name}: DNS: {e}"))?;
        if let Some(addr) = listen {
            process::ensure_free(addr)?;
        }
        let (tx, inbound) = mpsc::channel(64);
        let service = SipService::start(
            SipConfig {
                listen: listen.into_iter().collect(),
                ..SipConfig::default()
            },
            tls,
            discovery,
            tx,
        )
        .await
        .with_context(|| format!("{name}: starting the SIP service"))?;
        Ok(Self {
            name: name.to_owned(),
            identity,
            service,
            inbound,
        })
    }

    /// The peer's name in the test output (`edge`, `partner`, …).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The SIP domain its certificate names.
    pub fn identity(&self) -> &Domain {
        &self.identity
    }

    /// The addresses it listens on.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        self.service.local_addrs()
    }

    /// Sends `request` to the server at `addr`, which must prove the SIP domain `server_identity`;
    /// presents this peer's certificate. Returns the final response.
    pub async fn send_to(
        &self,
        addr: SocketAddr,
        server_identity: &Domain,
        request: Request,
    ) -> Result<Response, SendError> {
        let hop = NextHop {
            target: Target::Static {
                host: addr.ip().to_string(),
                port: addr.port(),
            },
            identity: server_identity.clone(),
            local: Some(self.identity.clone()),
        };
        self.service.send_request(&hop, request).await
    }

    /// The next request a peer sent to this one, waiting at most `timeout`.
    pub async fn next_request(&mut self, timeout: Duration) -> Option<IncomingRequest> {
        tokio::time::timeout(timeout, self.inbound.recv())
            .await
            .ok()
            .flatten()
    }

    /// Requests that arrive within `window` (for checks that nothing arrives). They are answered 500
    /// when dropped.
    pub async fn requests_within(&mut self, window: Duration) -> Vec<IncomingRequest> {
        let deadline = tokio::time::Instant::now() + window;
        let mut out = Vec::new();
        while let Ok(Some(request)) = tokio::time::timeout_at(deadline, self.inbound.recv()).await {
            out.push(request);
        }
        out
    }

    /// Stops listening and closes its connections.
    pub fn shutdown(&self) {
        self.service.shutdown();
    }
}

/// Parses a domain name.
pub fn domain(name: &str) -> Result<Domain> {
    Domain::parse(name).map_err(|e| anyhow!("{name:?} is not a domain: {e}"))
}

/// A pager-mode `MESSAGE` (RFC 3428) from `from` to `to` (both SIP URIs; the Request-URI is `to`),
/// with a fresh From tag and Call-ID, `Content-Type: text/plain;charset=UTF-8` and `body`.
pub fn message(from: &str, to: &str, body: &str) -> Result<Request> {
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    let unique = format!("{:x}{n}", std::process::id());
    let to_uri = Uri::parse(to).map_err(|e| anyhow!("To URI {to:?}: {e}"))?;
    let mut from = NameAddr::new(Uri::parse(from).map_err(|e| anyhow!("From URI {from:?}: {e}"))?);
    from.params
        .set("tag", Some(&format!("interop-{unique}")))
        .map_err(|e| anyhow!("From tag: {e}"))?;
    let call_id = CallId::parse(&format!("interop-{unique}@sixgate-interop"))
        .map_err(|e| anyhow!("Call-ID: {e}"))?;
    let mut request = Request::new(
        Method::Message,
        to_uri.clone(),
        from,
        NameAddr::new(to_uri),
        call_id,
        1,
    );
    request
        .headers
        .set(HeaderName::CONTENT_TYPE, "text/plain;charset=UTF-8")
        .map_err(|e| anyhow!("Content-Type: {e}"))?;
    request.body = body.as_bytes().to_vec();
    Ok(request)
}

/// The user part of a SIP URI with `%XX` escapes decoded (`sip:o%27malley@x` → `o'malley`).
pub fn decoded_user(uri: &Uri) -> Option<String> {
    let user = uri.user()?;
    let bytes = user.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%'
            && let Some(hex) = user.get(i + 1..i + 3)
            && let Ok(byte) = u8::from_str_radix(hex, 16)
        {
            out.push(byte);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// A response in one line for the test output: `202 Accepted`.
pub fn status_line(response: &Response) -> String {
    format!("{} {}", response.status.as_u16(), response.reason)
}
