//! Judgement of a peer server's certificate chain, shared by the XMPP and SIP sides of the gateway.
//!
//! The TLS layer of the gateway accepts whatever chain a peer presents and only records it ("record, don't
//! reject", see `sixgate-tls`): the identity to check the chain against is only known after the handshake (the
//! `from` of an XMPP stream header, the domain a SIP request claims), and an XMPP peer whose certificate we
//! don't trust may still authenticate with Server Dialback. The protocol layer then calls
//! [`TrustStore::judge`] (XMPP) or [`TrustStore::judge_with`] with that domain and the [`IdentityRules`] of its
//! protocol.
//!
//! Judgement has two halves:
//! * the chain must lead to one of our anchors ([`TrustStore::verify_chain`]). Unlike a web client, the
//!   end-entity certificate may carry the serverAuth extended key usage only, clientAuth only, both or none:
//!   public CAs stopped issuing clientAuth in 2026, so a peer's *client* certificate is usually a
//!   serverAuth-only certificate, and refusing it would break federation with every Let's Encrypt deployment;
//! * the certificate must name the domain, by the rules of the protocol: [`CertificateIdentities`] for XMPP
//!   (RFC 6125, XEP-0178: DNS-ID with a left-most wildcard, XmppAddr, SRV-ID), [`SipIdentities`] for SIP
//!   (RFC 5922: SIP URI, else DNS name, exact match only). webpki understands neither set of rules, so the
//!   names are read with x509-parser.
//!
//! This crate is pure: no I/O, no clock (every call takes `now`), no TLS library.

mod identity;
#[cfg(test)]
mod tests;
mod trust;

pub use identity::sip::{SipIdentities, sip_identities};
pub use identity::xmpp::CertificateIdentities;
pub use identity::{IdentityRules, PresentedIdentities};
pub use trust::{CertificateProblem, CertificateVerdict, TrustStore, TrustStoreError};
