//! Typed addresses and the translation core shared by every part of the gateway.
//!
//! Everything that arrives from the network is parsed into these types at the edge, so code further in never
//! re-checks a domain or a JID: holding a [`Domain`] means the text was a valid, normalised domain name.
//!
//! The translation modules are pure functions, free of I/O, so each mapping table can be tested row by row:
//!
//! - [`sip_uri`]: `sip:`/`sips:` URIs (RFC 3261 §19.1).
//! - [`address_map`]: SIP URI ⇄ JID (RFC 7247 §6, XEP-0106).
//! - [`error_map`]: XMPP stanza errors ⇄ SIP response codes (RFC 7247 §7).
//! - [`message`]: page-mode instant messages (RFC 7572, RFC 3428).
//! - [`srv`]: RFC 2782 SRV target order, for the XMPP and SIP transports' DNS discovery.
//!
//! `docs/translation.md` lists the tables as implemented and every choice the RFCs left open.

mod address;
pub mod address_map;
pub mod error_map;
pub mod message;
pub mod sip_uri;
pub mod srv;

pub use address::{AddressError, Domain, Jid};
pub use address_map::{AddressMapError, jid_to_sip, sip_to_jid};
pub use error_map::{StanzaCondition, StanzaErrorType, sip_to_xmpp, xmpp_to_sip};
pub use message::{
    BodyError, CallId, CallIdError, InstantMessage, MAX_PAGER_MESSAGE, MessageKind,
    call_id_from_thread, exceeds_pager_limit, sip_body_to_text, text_to_sip_body,
    thread_from_call_id,
};
pub use sip_uri::{MAX_SIP_URI, Scheme, SipUri, SipUriError};
