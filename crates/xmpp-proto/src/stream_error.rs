//! Stream errors (RFC 6120 §4.9): what we send when a peer breaks the protocol, and what peers send us.

use crate::xml::{Element, XmlError, ns};

/// The stream error conditions the gateway sends (RFC 6120 §4.9.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StreamErrorCondition {
    /// The stream namespace or content namespace is wrong.
    InvalidNamespace,
    /// The `to` of the stream header is not one of our domains.
    HostUnknown,
    /// A stanza's `from` is not authenticated on this stream.
    InvalidFrom,
    /// A stanza lacks a usable `to` or `from`.
    ImproperAddressing,
    /// Something was sent before authentication that needs it.
    NotAuthorized,
    /// Local policy (TLS required, size limit, denied domain).
    PolicyViolation,
    /// The stream did not become usable in time.
    ConnectionTimeout,
    /// XML that is not well-formed.
    NotWellFormed,
    /// XML features XMPP does not allow.
    RestrictedXml,
    /// An element we do not understand at the top level.
    UnsupportedStanzaType,
    /// `version` is not 1.0.
    UnsupportedVersion,
    /// The stream header lacks something we need.
    InvalidXml,
    /// We are shutting down.
    SystemShutdown,
    /// Our own failure.
    InternalServerError,
    /// Anything else.
    UndefinedCondition,
}

impl StreamErrorCondition {
    /// The element name of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::InvalidNamespace => "invalid-namespace",
            Self::HostUnknown => "host-unknown",
            Self::InvalidFrom => "invalid-from",
            Self::ImproperAddressing => "improper-addressing",
            Self::NotAuthorized => "not-authorized",
            Self::PolicyViolation => "policy-violation",
            Self::ConnectionTimeout => "connection-timeout",
            Self::NotWellFormed => "not-well-formed",
            Self::RestrictedXml => "restricted-xml",
            Self::UnsupportedStanzaType => "unsupported-stanza-type",
            Self::UnsupportedVersion => "unsupported-version",
            Self::InvalidXml => "invalid-xml",
            Self::SystemShutdown => "system-shutdown",
            Self::InternalServerError => "internal-server-error",
            Self::UndefinedCondition => "undefined-condition",
        }
    }

    /// The condition for a stream that failed to parse.
    pub fn for_xml_error(error: &XmlError) -> Self {
        match error {
            XmlError::NotWellFormed(_) | XmlError::TextAtTopLevel => Self::NotWellFormed,
            XmlError::Restricted(_) => Self::RestrictedXml,
            XmlError::NotAStream => Self::InvalidNamespace,
            XmlError::TooLarge { .. } | XmlError::TooDeep => Self::PolicyViolation,
        }
    }
}

/// `<stream:error><condition/><text/></stream:error>`.
pub fn stream_error(condition: StreamErrorCondition, text: &str) -> Element {
    let mut error = Element::new(ns::STREAMS, "error")
        .with_child(Element::new(ns::STREAM_ERRORS, condition.as_str()));
    if !text.is_empty() {
        let mut text_el = Element::new(ns::STREAM_ERRORS, "text").with_text(text);
        text_el.set_attr_ns(ns::XML, "lang", "en");
        error.push_child(text_el);
    }
    error
}

/// A peer's `<stream:error>` as a short human-readable description (condition and text), for logs and for
/// the reason given to stanzas we bounce.
pub fn describe_peer_error(error: &Element) -> String {
    let condition = error
        .children()
        .find(|c| c.ns() == ns::STREAM_ERRORS && c.name() != "text")
        .map_or("undefined-condition", Element::name);
    match error.child(ns::STREAM_ERRORS, "text") {
        Some(text) => format!("{condition} ({})", text.text()),
        None => condition.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn build_and_describe() {
        let e = stream_error(StreamErrorCondition::HostUnknown, "no such domain");
        assert_eq!(describe_peer_error(&e), "host-unknown (no such domain)");
        assert_eq!(
            describe_peer_error(&stream_error(StreamErrorCondition::PolicyViolation, "")),
            "policy-violation"
        );
    }
}
