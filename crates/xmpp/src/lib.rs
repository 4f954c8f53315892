//! The tokio side of XMPP server-to-server: TLS, DNS discovery, the listener, the connector and the pool of
//! authenticated streams. Protocol decisions are made by `sixgate-xmpp-proto`; this crate moves bytes.

mod connection;
pub mod discovery;
mod outgoing;
mod service;
pub mod tls;
mod transport;

pub use outgoing::Undeliverable;
pub use service::{S2sConfig, S2sService};
