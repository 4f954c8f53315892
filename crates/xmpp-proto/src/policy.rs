//! What the s2s layer needs to know about domains, supplied by the route table through a trait so that the
//! protocol crates never depend on the route crate.

use sixgate_core::Domain;

/// How a remote XMPP domain must authenticate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemotePolicy {
    /// The peer's certificate must be valid for the domain (Prosody's `s2s_secure_auth`). When false the
    /// operator has marked the domain insecure: dialback alone is enough.
    pub require_valid_certificate: bool,
    /// Server Dialback may authenticate the domain (in every role).
    pub allow_dialback: bool,
}

/// Domain decisions the sessions ask for.
pub trait DomainPolicy: Send + Sync {
    /// Whether `domain` is one of ours.
    fn is_local(&self, domain: &Domain) -> bool;
    /// How `domain` may federate with us over XMPP, or `None` when it may not (denied, or routed to SIP).
    fn remote(&self, domain: &Domain) -> Option<RemotePolicy>;
    /// Operator-configured `host:port` endpoints for `domain`, replacing DNS discovery; empty to discover.
    fn static_endpoints(&self, domain: &Domain) -> Vec<(String, u16)> {
        let _ = domain;
        Vec::new()
    }
}
