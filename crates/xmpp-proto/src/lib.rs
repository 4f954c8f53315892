//! Sans-IO core of XMPP server-to-server (RFC 6120, XEP-0178, XEP-0220).
//!
//! Nothing here touches a socket, a clock or a TLS library: a [`session::Session`] is fed bytes and times
//! and hands back bytes to send and events, as `rustls` and `quinn-proto` do. The tokio driver lives in
//! `sixgate-xmpp`.

pub mod certificate;
pub mod dialback;
pub mod error;
pub mod policy;
pub mod session;
pub mod srv;
pub mod stanza;
pub mod stream_error;
pub mod xml;
