//! The tokio side of XMPP server-to-server: TLS, DNS discovery, the listener, the connector and the pool of
//! authenticated streams. Protocol decisions are made by `sixgate-xmpp-proto`; this crate moves bytes.

pub mod discovery;
pub mod tls;
