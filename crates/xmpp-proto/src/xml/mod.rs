//! XML for XMPP streams: a small element tree, an incremental stream parser on top of `rxml` (which refuses
//! DTDs, entity declarations and processing instructions, so no entity expansion attack can reach us), and a
//! serializer that writes elements the way s2s peers expect them inside a `jabber:server` stream.

mod element;
mod parser;
mod writer;

pub use element::{Attribute, Element, Node};
pub use parser::{StreamEvent, StreamOpen, StreamParser, XmlError};
pub use writer::{write_element, write_stream_close, write_stream_open};

/// XML namespaces used on s2s streams.
pub mod ns {
    /// The stream namespace (`stream:` prefix).
    pub const STREAMS: &str = "http://etherx.jabber.org/streams";
    /// The content namespace of server-to-server streams.
    pub const SERVER: &str = "jabber:server";
    /// The client namespace, which is invalid on s2s streams.
    pub const CLIENT: &str = "jabber:client";
    /// Traditional Server Dialback elements (`db:` prefix).
    pub const DIALBACK: &str = "jabber:server:dialback";
    /// The stream feature announcing dialback with error support (XEP-0220 §2.4).
    pub const DIALBACK_FEATURE: &str = "urn:xmpp:features:dialback";
    /// STARTTLS negotiation.
    pub const TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
    /// SASL negotiation.
    pub const SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
    /// Stream error conditions.
    pub const STREAM_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
    /// Stanza error conditions.
    pub const STANZA_ERRORS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
    /// The built-in `xml:` namespace (for `xml:lang`).
    pub const XML: &str = "http://www.w3.org/XML/1998/namespace";
    /// XMPP ping (XEP-0199).
    pub const PING: &str = "urn:xmpp:ping";
}
