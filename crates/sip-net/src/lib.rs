//! Tokio driver for SIP over TLS on port 5061: the sockets, mutual TLS (RFC 5922), DNS discovery of
//! remote SIP servers (RFC 3263 and Microsoft's `_sipfederationtls`), and one transaction layer for the
//! whole service, on top of the sans-IO `sixgate-sip`.
//!
//! # Shape
//!
//! - [`SipService::start`] binds the listeners. Every connection, accepted or opened, is a *flow* of one
//!   shared [`TransactionLayer`](sixgate_sip::transaction::TransactionLayer): bytes go through a
//!   [`Framer`](sixgate_sip::Framer) and [`Message::parse`](sixgate_sip::Message::parse) into the layer,
//!   which absorbs retransmissions and runs the timers.
//! - Requests from peers reach the application as [`IncomingRequest`]s on a bounded channel, with the
//!   peer's certificate identities ([`PeerInfo`]) and a [`Responder`] for the final response. A
//!   `Responder` dropped unanswered answers 500.
//! - [`SipService::send_request`] sends a request to a [`NextHop`] and returns the final response, or a
//!   [`SendError`] the caller maps to 404/408/503 (SIP) or `remote-server-not-found`/`-timeout` (XMPP).
//!
//! # Security
//!
//! Mutual TLS is required in both directions (RFC 5922 §7): a client without a certificate fails the
//! handshake, one whose chain does not lead to our trust anchors is disconnected before any SIP is read,
//! and a server whose certificate does not name the domain we meant to reach is disconnected before any
//! SIP is sent (§7.3). An accepted client may present a certificate for any domain: its identities are in
//! [`PeerInfo::identities`], and checking them against the `From` of each request is the application's
//! job (§7.4).
//!
//! # Tracing
//!
//! A span per connection (`sip_connection`: peer address, direction, identities) and per transaction
//! (`sip_transaction` for received requests, `sip_request` for sent ones: Call-ID, method, branch).
//! Message bodies are only logged at trace level.

mod config;
mod connection;
pub mod discovery;
mod engine;
mod incoming;
mod service;
#[cfg(test)]
mod tests;
mod tls;

pub use config::SipConfig;
pub use discovery::{DiscoveryError, DnsConfig, Endpoint, SipDiscovery};
pub use incoming::{IncomingRequest, PeerInfo, RespondError, Responder};
pub use service::{NextHop, SendError, SipService, Target};
pub use tls::SipTls;
