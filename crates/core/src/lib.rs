//! Typed addresses shared by every part of the gateway.
//!
//! Everything that arrives from the network is parsed into these types at the edge, so code further in never
//! re-checks a domain or a JID: holding a [`Domain`] means the text was a valid, normalised domain name.

mod address;

pub use address::{AddressError, Domain, Jid};
