//! Stanzas as the s2s layer sees them: addressed envelopes it checks and routes, and error bounces
//! (RFC 6120 §8.3) for stanzas it cannot deliver.

use sixgate_core::{Domain, Jid};

use crate::xml::{Element, ns};

/// Whether an element is a stanza (`message`, `presence` or `iq` in the server namespace).
pub fn is_stanza(element: &Element) -> bool {
    element.ns() == ns::SERVER && matches!(element.name(), "message" | "presence" | "iq")
}

/// The parsed `from` and `to` of a stanza, if both are present and valid.
pub fn addresses(element: &Element) -> Option<(Jid, Jid)> {
    let from = Jid::parse(element.attr("from")?).ok()?;
    let to = Jid::parse(element.attr("to")?).ok()?;
    Some((from, to))
}

/// Stanza error conditions used by the gateway (RFC 6120 §8.3.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StanzaErrorCondition {
    /// The remote domain does not exist or has no XMPP service.
    RemoteServerNotFound,
    /// The remote server could not be reached in time or the stream failed.
    RemoteServerTimeout,
    /// Local policy forbids the destination.
    NotAllowed,
    /// The recipient does not exist.
    ItemNotFound,
    /// The service does not handle this request.
    ServiceUnavailable,
    /// Too many stanzas are waiting.
    ResourceConstraint,
    /// Policy (e.g. size) refused the stanza.
    PolicyViolation,
    /// Our own failure.
    InternalServerError,
}

impl StanzaErrorCondition {
    /// The element name of the condition.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::RemoteServerNotFound => "remote-server-not-found",
            Self::RemoteServerTimeout => "remote-server-timeout",
            Self::NotAllowed => "not-allowed",
            Self::ItemNotFound => "item-not-found",
            Self::ServiceUnavailable => "service-unavailable",
            Self::ResourceConstraint => "resource-constraint",
            Self::PolicyViolation => "policy-violation",
            Self::InternalServerError => "internal-server-error",
        }
    }

    /// The error `type` RFC 6120 §8.3.3 gives for the condition.
    pub fn error_type(self) -> &'static str {
        match self {
            Self::RemoteServerTimeout | Self::ResourceConstraint | Self::InternalServerError => {
                "wait"
            }
            Self::PolicyViolation => "modify",
            Self::RemoteServerNotFound
            | Self::NotAllowed
            | Self::ItemNotFound
            | Self::ServiceUnavailable => "cancel",
        }
    }
}

/// The error reply to `stanza`, sent by `by` (our domain) back to its sender. `None` when the stanza must
/// not be answered with an error: errors are never answered with errors (RFC 6120 §8.3.1), which is what
/// keeps two gateways from bouncing a stanza between them forever.
pub fn bounce(
    stanza: &Element,
    condition: StanzaErrorCondition,
    text: &str,
    by: Option<&Domain>,
) -> Option<Element> {
    bounce_with(stanza, condition.as_str(), condition.error_type(), text, by)
}

/// Like [`bounce`], for any defined condition (RFC 6120 §8.3.3) given by name, with its error `type`: the
/// SIP side maps response codes to conditions this layer never produces itself (RFC 7247 §7.2).
pub fn bounce_with(
    stanza: &Element,
    condition: &str,
    error_type: &str,
    text: &str,
    by: Option<&Domain>,
) -> Option<Element> {
    if stanza.attr("type") == Some("error") || !is_stanza(stanza) {
        return None;
    }
    // An iq result needs no error either: nobody is waiting for an answer to it.
    if stanza.name() == "iq" && stanza.attr("type") == Some("result") {
        return None;
    }
    let mut reply = Element::new(ns::SERVER, stanza.name());
    if let Some(from) = stanza.attr("to") {
        reply.set_attr("from", from);
    }
    let to = stanza.attr("from")?;
    reply.set_attr("to", to);
    if let Some(id) = stanza.attr("id") {
        reply.set_attr("id", id);
    }
    reply.set_attr("type", "error");
    // The original payload comes back so the sender can tell which message failed (RFC 6120 §8.3.1).
    for child in stanza.children() {
        reply.push_child(child.clone());
    }
    let mut error = Element::new(ns::SERVER, "error")
        .with_attr("type", error_type)
        .with_child(Element::new(ns::STANZA_ERRORS, condition));
    if let Some(by) = by {
        error.set_attr("by", by.as_str());
    }
    if !text.is_empty() {
        let mut text_el = Element::new(ns::STANZA_ERRORS, "text").with_text(text);
        text_el.set_attr_ns(ns::XML, "lang", "en");
        error.push_child(text_el);
    }
    reply.push_child(error);
    Some(reply)
}

/// The defined condition of an error stanza, if it is one.
pub fn error_condition(stanza: &Element) -> Option<&str> {
    if stanza.attr("type") != Some("error") {
        return None;
    }
    stanza
        .child(ns::SERVER, "error")?
        .children()
        .find(|c| c.ns() == ns::STANZA_ERRORS && c.name() != "text")
        .map(Element::name)
}

/// The human-readable `<text/>` of an error stanza, if it has one.
pub fn error_text(stanza: &Element) -> Option<String> {
    if stanza.attr("type") != Some("error") {
        return None;
    }
    Some(
        stanza
            .child(ns::SERVER, "error")?
            .child(ns::STANZA_ERRORS, "text")?
            .text(),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn message() -> Element {
        Element::new(ns::SERVER, "message")
            .with_attr("from", "a@gw.example/r")
            .with_attr("to", "b@remote.example")
            .with_attr("id", "m1")
            .with_attr("type", "chat")
            .with_child(Element::new(ns::SERVER, "body").with_text("hi"))
    }

    #[test]
    fn bounce_swaps_addresses_and_keeps_payload() {
        let gw = Domain::parse("gw.example").unwrap();
        let reply = bounce(
            &message(),
            StanzaErrorCondition::RemoteServerTimeout,
            "timed out",
            Some(&gw),
        )
        .unwrap();
        assert_eq!(reply.attr("from"), Some("b@remote.example"));
        assert_eq!(reply.attr("to"), Some("a@gw.example/r"));
        assert_eq!(reply.attr("id"), Some("m1"));
        assert_eq!(reply.attr("type"), Some("error"));
        assert_eq!(reply.child(ns::SERVER, "body").unwrap().text(), "hi");
        let error = reply.child(ns::SERVER, "error").unwrap();
        assert_eq!(error.attr("type"), Some("wait"));
        assert_eq!(error_condition(&reply), Some("remote-server-timeout"));
        assert_eq!(error_text(&reply).as_deref(), Some("timed out"));
    }

    #[test]
    fn errors_and_results_are_never_bounced() {
        let error = bounce(&message(), StanzaErrorCondition::ItemNotFound, "", None).unwrap();
        assert!(bounce(&error, StanzaErrorCondition::ItemNotFound, "", None).is_none());
        let result = Element::new(ns::SERVER, "iq")
            .with_attr("type", "result")
            .with_attr("from", "a@b");
        assert!(bounce(&result, StanzaErrorCondition::ItemNotFound, "", None).is_none());
    }

    #[test]
    fn addresses_must_parse() {
        assert!(addresses(&message()).is_some());
        let mut bad = message();
        bad.set_attr("to", "@@");
        assert!(addresses(&bad).is_none());
    }
}
