//! The `echo` delivery target: proves the s2s stack end to end until the SIP side exists. Every message
//! to a user of an echo domain goes back to its sender; pings are answered; nothing else is served.

use sixgate_xmpp_proto::stanza::{self, StanzaErrorCondition};
use sixgate_xmpp_proto::xml::{Element, ns};
use tracing::{debug, info};

/// The replies an echo domain sends for `stanza` (addressed to one of its users or to the domain itself).
pub(crate) fn answer(stanza: &Element) -> Option<Element> {
    let kind = stanza.attr("type");
    match stanza.name() {
        "message" if kind == Some("error") => {
            // A bounce of one of our echoes: answering it could loop between two gateways.
            info!(condition = ?stanza::error_condition(stanza), "echo received an error; not answered");
            None
        }
        "message" => {
            let mut reply = Element::new(ns::SERVER, "message");
            copy_attr(stanza, &mut reply, "to", "from");
            copy_attr(stanza, &mut reply, "from", "to");
            for name in ["id", "type"] {
                copy_attr(stanza, &mut reply, name, name);
            }
            if let Some(lang) = stanza.attr_ns(ns::XML, "lang") {
                reply.set_attr_ns(ns::XML, "lang", lang);
            }
            for child in stanza.children().filter(|c| {
                c.ns() == ns::SERVER && matches!(c.name(), "body" | "subject" | "thread")
            }) {
                reply.push_child(child.clone());
            }
            Some(reply)
        }
        "iq" if matches!(kind, Some("get" | "set")) => {
            if kind == Some("get") && stanza.child(ns::PING, "ping").is_some() {
                let mut result = Element::new(ns::SERVER, "iq").with_attr("type", "result");
                copy_attr(stanza, &mut result, "to", "from");
                copy_attr(stanza, &mut result, "from", "to");
                copy_attr(stanza, &mut result, "id", "id");
                Some(result)
            } else {
                // RFC 6120 §8.2.3: every get/set gets an answer.
                stanza::bounce(stanza, StanzaErrorCondition::ServiceUnavailable, "", None)
            }
        }
        _ => {
            debug!(stanza = stanza.name(), "echo ignores this stanza");
            None
        }
    }
}

fn copy_attr(from: &Element, to: &mut Element, name: &str, as_name: &str) {
    if let Some(value) = from.attr(name) {
        to.set_attr(as_name, value);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn messages_come_back_with_addresses_swapped() {
        let mut message = Element::new(ns::SERVER, "message")
            .with_attr("from", "alice@prosody.example/phone")
            .with_attr("to", "echo@gw.example")
            .with_attr("type", "chat")
            .with_attr("id", "42")
            .with_child(Element::new(ns::SERVER, "body").with_text("<&> ☺"))
            .with_child(Element::new(
                "http://jabber.org/protocol/chatstates",
                "active",
            ));
        message.set_attr_ns(ns::XML, "lang", "de");
        let reply = answer(&message).unwrap();
        assert_eq!(reply.attr("from"), Some("echo@gw.example"));
        assert_eq!(reply.attr("to"), Some("alice@prosody.example/phone"));
        assert_eq!(reply.attr("type"), Some("chat"));
        assert_eq!(reply.attr("id"), Some("42"));
        assert_eq!(reply.attr_ns(ns::XML, "lang"), Some("de"));
        assert_eq!(reply.child(ns::SERVER, "body").unwrap().text(), "<&> ☺");
        assert_eq!(
            reply.children().count(),
            1,
            "only body, subject and thread are echoed"
        );
    }

    #[test]
    fn errors_are_not_answered_and_iqs_always_are() {
        let error = Element::new(ns::SERVER, "message")
            .with_attr("type", "error")
            .with_attr("from", "a@b");
        assert!(answer(&error).is_none());
        let ping = Element::new(ns::SERVER, "iq")
            .with_attr("type", "get")
            .with_attr("id", "p1")
            .with_attr("from", "prosody.example")
            .with_attr("to", "gw.example")
            .with_child(Element::new(ns::PING, "ping"));
        let pong = answer(&ping).unwrap();
        assert_eq!(pong.attr("type"), Some("result"));
        assert_eq!(pong.attr("to"), Some("prosody.example"));
        let version = Element::new(ns::SERVER, "iq")
            .with_attr("type", "get")
            .with_attr("id", "v1")
            .with_attr("from", "a@prosody.example")
            .with_attr("to", "gw.example")
            .with_child(Element::new("jabber:iq:version", "query"));
        assert_eq!(
            stanza::error_condition(&answer(&version).unwrap()),
            Some("service-unavailable")
        );
        assert!(answer(&Element::new(ns::SERVER, "presence")).is_none());
    }
}
