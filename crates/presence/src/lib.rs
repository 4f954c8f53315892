//! Presence federation (RFC 8048): a protocol-neutral presence model, and PIDF (RFC 3863) parsing and
//! generation.
//!
//! The crate is sans-IO: bytes in, model out, and back. The SIP side hands NOTIFY/PUBLISH bodies to
//! [`parse_pidf`]; the XMPP side builds a [`Presence`] from `<presence/>` stanzas and [`to_pidf`] renders it.
//!
//! - [`model`]: [`Presence`], [`ResourcePresence`], [`Show`], [`Status`].
//! - [`map`]: the mapping tables (RPID activities, Lync availability numbers, priorities, tuple ids).
//! - [`parse`]: PIDF → model, tolerant of RPID (RFC 4480), the data model (RFC 4479), CIPID (RFC 4482),
//!   embedded XMPP `<show/>` and Microsoft extensions; DTDs are refused and the input size is capped.
//! - [`generate`]: model → PIDF for an XMPP user's `pres:` or `sip:` entity (RFC 8048 §6.2).
//! - [`subscription`]: the subscription table of RFC 8048 §5 and §7, both directions, with caps and timers.
//!
//! `docs/presence.md` lists the tables as implemented and every choice the RFCs left open.

pub mod generate;
pub mod map;
pub mod model;
pub mod parse;
pub mod subscription;

pub use generate::{EntityError, EntityScheme, PidfEntity, to_pidf};
pub use model::{Presence, ResourcePresence, Show, Status};
pub use parse::{MAX_PIDF_SIZE, PidfError, parse_pidf, parse_pidf_with_limit};
pub use subscription::{Action, SubscriptionConfig, SubscriptionState, SubscriptionTable};
