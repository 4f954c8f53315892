//! Serialisation inside a `jabber:server` stream.
//!
//! The stream header declares the default namespace `jabber:server` and the prefixes `stream:` and `db:`;
//! elements in those namespaces are written with the prefix (XEP-0220 §2.4.1: some deployments accept
//! dialback elements only with the `db:` prefix), anything else gets an `xmlns` declaration where its
//! namespace differs from its parent's.

use std::fmt::Write as _;

use super::element::{Element, Node};
use super::ns;

/// Writes the opening stream tag. `id` is omitted when `None` (initiators send none).
pub fn write_stream_open(out: &mut Vec<u8>, from: &str, to: &str, id: Option<&str>) {
    let mut s = String::with_capacity(300);
    s.push_str("<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='");
    s.push_str(ns::STREAMS);
    s.push_str("' xmlns:db='");
    s.push_str(ns::DIALBACK);
    s.push('\'');
    // An initiator that does not yet know its peer's domain may leave `from`/`to` out (RFC 6120 §4.7.1).
    if !from.is_empty() {
        s.push_str(" from='");
        escape_into(&mut s, from);
        s.push('\'');
    }
    if !to.is_empty() {
        s.push_str(" to='");
        escape_into(&mut s, to);
        s.push('\'');
    }
    if let Some(id) = id {
        s.push_str(" id='");
        escape_into(&mut s, id);
        s.push('\'');
    }
    s.push_str(" version='1.0' xml:lang='en'>");
    out.extend_from_slice(s.as_bytes());
}

/// Writes `</stream:stream>`.
pub fn write_stream_close(out: &mut Vec<u8>) {
    out.extend_from_slice(b"</stream:stream>");
}

/// Serialises a top-level element of the stream.
pub fn write_element(out: &mut Vec<u8>, element: &Element) {
    let mut s = String::with_capacity(256);
    write_inner(&mut s, element, ns::SERVER);
    out.extend_from_slice(s.as_bytes());
}

fn write_inner(s: &mut String, element: &Element, parent_default_ns: &str) {
    let prefix = match element.ns() {
        ns::STREAMS => Some("stream"),
        ns::DIALBACK => Some("db"),
        _ => None,
    };
    s.push('<');
    if let Some(prefix) = prefix {
        s.push_str(prefix);
        s.push(':');
    }
    s.push_str(element.name());
    // Prefixed elements leave the default namespace untouched for their children.
    let default_ns = match prefix {
        Some(_) => parent_default_ns,
        None => {
            if element.ns() != parent_default_ns {
                s.push_str(" xmlns='");
                escape_into(s, element.ns());
                s.push('\'');
            }
            element.ns()
        }
    };
    let mut extra_prefixes = 0;
    for attr in element.attrs() {
        s.push(' ');
        match attr.ns.as_str() {
            "" => {}
            ns::XML => s.push_str("xml:"),
            other => {
                // Rare (namespaced attributes in extension payloads): declare a prefix just for it.
                let _ = write!(s, "xmlns:a{extra_prefixes}='");
                escape_into(s, other);
                let _ = write!(s, "' a{extra_prefixes}:");
                extra_prefixes += 1;
            }
        }
        s.push_str(&attr.name);
        s.push_str("='");
        escape_into(s, &attr.value);
        s.push('\'');
    }
    if element.nodes().is_empty() {
        s.push_str("/>");
        return;
    }
    s.push('>');
    for node in element.nodes() {
        match node {
            Node::Element(child) => write_inner(s, child, default_ns),
            Node::Text(text) => escape_into(s, text),
        }
    }
    s.push_str("</");
    if let Some(prefix) = prefix {
        s.push_str(prefix);
        s.push(':');
    }
    s.push_str(element.name());
    s.push('>');
}

/// Escapes text for use in content and in single-quoted attribute values.
fn escape_into(s: &mut String, text: &str) {
    for c in text.chars() {
        match c {
            '&' => s.push_str("&amp;"),
            '<' => s.push_str("&lt;"),
            '>' => s.push_str("&gt;"),
            '\'' => s.push_str("&apos;"),
            '"' => s.push_str("&quot;"),
            // Keep CR and TAB as they were: a literal one would be normalised away by the reader.
            '\r' => s.push_str("&#xd;"),
            '\t' => s.push_str("&#x9;"),
            c => s.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::xml::{StreamEvent, StreamParser};

    fn round_trip(element: &Element) -> Element {
        let mut out = Vec::new();
        write_stream_open(&mut out, "a.example", "b.example", Some("x"));
        write_element(&mut out, element);
        let mut parser = StreamParser::new(100_000);
        let mut data = out.as_slice();
        assert!(matches!(
            parser.next_event(&mut data).unwrap(),
            Some(StreamEvent::Open(_))
        ));
        match parser.next_event(&mut data).unwrap() {
            Some(StreamEvent::Element(e)) => e,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn prefixes_and_namespaces() {
        let result = Element::new(ns::DIALBACK, "result")
            .with_attr("from", "a.example")
            .with_text("key");
        let mut out = Vec::new();
        write_element(&mut out, &result);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<db:result from='a.example'>key</db:result>"
        );

        let message = Element::new(ns::SERVER, "message")
            .with_attr("to", "o'malley@x")
            .with_child(Element::new(ns::SERVER, "body").with_text("<&>\"' \u{1F600}\r\n\t"))
            .with_child(Element::new("urn:xmpp:receipts", "request"));
        let mut out = Vec::new();
        write_element(&mut out, &message);
        let text = String::from_utf8(out).unwrap();
        assert!(
            text.starts_with("<message to='o&apos;malley@x'><body>"),
            "{text}"
        );
        assert!(
            text.contains("<request xmlns='urn:xmpp:receipts'/>"),
            "{text}"
        );
        assert_eq!(round_trip(&message), message);
    }

    #[test]
    fn namespaced_attributes_survive() {
        let mut message =
            Element::new(ns::SERVER, "message").with_child(Element::new(ns::SERVER, "body"));
        message.set_attr_ns(ns::XML, "lang", "de");
        message.set_attr_ns("urn:example:x", "y", "z");
        assert_eq!(round_trip(&message), message);
    }

    #[test]
    fn stream_errors_use_the_stream_prefix() {
        let error = Element::new(ns::STREAMS, "error")
            .with_child(Element::new(ns::STREAM_ERRORS, "host-unknown"));
        let mut out = Vec::new();
        write_element(&mut out, &error);
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>"
        );
    }
}
