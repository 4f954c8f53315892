//! Incremental parsing of an XMPP stream: bytes in, stream header, top-level elements and the stream end out.
//!
//! The parser never holds more than one top-level element; its size is capped (counted in input bytes,
//! including markup) so that a peer cannot make us allocate without bound.

use std::collections::VecDeque;

use rxml::{Event, Parse, Parser};

use super::element::{Element, Node};
use super::ns;

/// Deepest nesting accepted inside a stanza. Real stanzas are a handful of levels deep; the limit keeps a
/// hostile peer from building deep trees (and deep recursion in the serializer).
const MAX_DEPTH: usize = 64;

/// The opening `<stream:stream>` tag.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StreamOpen {
    /// `to` attribute.
    pub to: Option<String>,
    /// `from` attribute.
    pub from: Option<String>,
    /// `id` attribute (absent or empty from initiators).
    pub id: Option<String>,
    /// `version` attribute.
    pub version: Option<String>,
    /// `xml:lang` attribute.
    pub lang: Option<String>,
}

/// What the parser found in the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamEvent {
    /// The stream header.
    Open(StreamOpen),
    /// A complete top-level element (stanza or negotiation element).
    Element(Element),
    /// `</stream:stream>`.
    Close,
}

/// Why the byte stream is not an acceptable XMPP stream. Always the peer's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    /// Not well-formed XML (RFC 6120 `<not-well-formed/>`).
    #[error("not well-formed XML: {0}")]
    NotWellFormed(String),
    /// XML features XMPP forbids: comments, processing instructions, DTDs (RFC 6120 `<restricted-xml/>`).
    #[error("restricted XML: {0}")]
    Restricted(String),
    /// The root element is not `<stream:stream>` (RFC 6120 `<invalid-namespace/>`).
    #[error("the root element is not a stream header")]
    NotAStream,
    /// A top-level element exceeded the size limit (RFC 6120 §13.12 `<policy-violation/>`).
    #[error("element larger than {limit} bytes")]
    TooLarge {
        /// The configured limit.
        limit: usize,
    },
    /// Elements nested deeper than we accept (`<policy-violation/>`).
    #[error("elements nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Text directly inside the stream element that is not whitespace.
    #[error("text outside of any stanza")]
    TextAtTopLevel,
}

/// Incremental parser for one stream (a new one is needed after every stream restart).
pub struct StreamParser {
    parser: Parser,
    limit: usize,
    opened: bool,
    closed: bool,
    /// Open elements of the current top-level element, outermost first.
    stack: Vec<Element>,
    /// Input bytes consumed by the current top-level element so far.
    current_size: usize,
    ready: VecDeque<StreamEvent>,
}

impl StreamParser {
    /// A parser whose top-level elements may be at most `limit` bytes long.
    pub fn new(limit: usize) -> Self {
        Self {
            parser: Parser::new(),
            limit,
            opened: false,
            closed: false,
            stack: Vec::new(),
            current_size: 0,
            ready: VecDeque::new(),
        }
    }

    /// Parses as much of `data` as forms complete events; returns at the first event so that the caller can
    /// stop (e.g. before TLS bytes after `<proceed/>`, or to restart the parser after SASL success). The slice
    /// is advanced past the consumed bytes; call again with the rest. Returns `Ok(None)` when more data is
    /// needed.
    pub fn next_event(&mut self, data: &mut &[u8]) -> Result<Option<StreamEvent>, XmlError> {
        loop {
            if let Some(event) = self.ready.pop_front() {
                return Ok(Some(event));
            }
            // Even with no bytes left, rxml may hold an event (the end of a `<x/>` element).
            if self.closed {
                return Ok(None);
            }
            match self.parser.parse(data, false) {
                Ok(Some(event)) => self.handle(event)?,
                Ok(None) => {
                    self.closed = true;
                }
                Err(rxml::error::EndOrError::NeedMoreData) => return Ok(None),
                Err(rxml::error::EndOrError::Error(e)) => return Err(convert_error(&e)),
            }
        }
    }

    fn handle(&mut self, event: Event) -> Result<(), XmlError> {
        let size = event.metrics().len();
        match event {
            Event::XmlDeclaration(..) => Ok(()),
            Event::StartElement(_, (namespace, name), attrs) => {
                if !self.opened {
                    if namespace.as_str() != ns::STREAMS || name.as_str() != "stream" {
                        return Err(XmlError::NotAStream);
                    }
                    self.opened = true;
                    let mut open = StreamOpen::default();
                    for ((attr_ns, attr_name), value) in attrs.iter() {
                        let slot = match (attr_ns.as_str(), attr_name.as_str()) {
                            ("", "to") => &mut open.to,
                            ("", "from") => &mut open.from,
                            ("", "id") => &mut open.id,
                            ("", "version") => &mut open.version,
                            (ns::XML, "lang") => &mut open.lang,
                            _ => continue,
                        };
                        *slot = Some(value.clone());
                    }
                    self.ready.push_back(StreamEvent::Open(open));
                    return Ok(());
                }
                if self.stack.len() >= MAX_DEPTH {
                    return Err(XmlError::TooDeep);
                }
                self.count(size)?;
                let mut element = Element::new(namespace.as_str(), name.as_str());
                for ((attr_ns, attr_name), value) in attrs.iter() {
                    element.set_attr_ns(attr_ns.as_str(), attr_name.as_str(), value.clone());
                }
                self.stack.push(element);
                Ok(())
            }
            Event::EndElement(_) => {
                let Some(element) = self.stack.pop() else {
                    // The end of the stream element itself.
                    self.ready.push_back(StreamEvent::Close);
                    self.closed = true;
                    return Ok(());
                };
                self.count(size)?;
                match self.stack.last_mut() {
                    Some(parent) => parent.push_node(Node::Element(element)),
                    None => {
                        self.current_size = 0;
                        self.ready.push_back(StreamEvent::Element(element));
                    }
                }
                Ok(())
            }
            Event::Text(_, text) => match self.stack.last_mut() {
                Some(parent) => {
                    self.current_size += size;
                    if self.current_size > self.limit {
                        return Err(XmlError::TooLarge { limit: self.limit });
                    }
                    parent.push_node(Node::Text(text));
                    Ok(())
                }
                // Whitespace between stanzas is a keepalive (RFC 6120 §4.6.1).
                None if text.chars().all(|c| c.is_ascii_whitespace()) => Ok(()),
                None => Err(XmlError::TextAtTopLevel),
            },
        }
    }

    fn count(&mut self, size: usize) -> Result<(), XmlError> {
        self.current_size += size;
        if self.current_size > self.limit {
            return Err(XmlError::TooLarge { limit: self.limit });
        }
        Ok(())
    }
}

fn convert_error(error: &rxml::Error) -> XmlError {
    match error {
        rxml::Error::RestrictedXml(what) => XmlError::Restricted((*what).to_owned()),
        other => XmlError::NotWellFormed(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const HEADER: &str = "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
        xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
        to='gw.example' from='prosody.example' version='1.0' xml:lang='en' id=''>";

    fn parse_all(parser: &mut StreamParser, input: &[u8]) -> Result<Vec<StreamEvent>, XmlError> {
        let mut data = input;
        let mut events = Vec::new();
        while let Some(event) = parser.next_event(&mut data)? {
            events.push(event);
        }
        Ok(events)
    }

    #[test]
    fn header_stanzas_and_close() {
        let mut parser = StreamParser::new(10_000);
        let input = format!(
            "{HEADER} <message to='a@gw.example' from='b@prosody.example'><body>h&amp;i &#x263A;</body></message>\
             <db:result from='prosody.example' to='gw.example'>abc</db:result></stream:stream>"
        );
        let events = parse_all(&mut parser, input.as_bytes()).unwrap();
        let [
            StreamEvent::Open(open),
            StreamEvent::Element(message),
            StreamEvent::Element(result),
            StreamEvent::Close,
        ] = events.as_slice()
        else {
            panic!("unexpected events {events:?}");
        };
        assert_eq!(open.to.as_deref(), Some("gw.example"));
        assert_eq!(open.from.as_deref(), Some("prosody.example"));
        assert_eq!(open.lang.as_deref(), Some("en"));
        assert_eq!(open.id.as_deref(), Some(""));
        assert!(message.is(ns::SERVER, "message"));
        assert_eq!(
            message.child(ns::SERVER, "body").unwrap().text(),
            "h&i \u{263A}"
        );
        assert!(result.is(ns::DIALBACK, "result"));
        assert_eq!(result.text(), "abc");
    }

    #[test]
    fn any_split_point_gives_the_same_events() {
        let input = format!(
            "{HEADER}<iq type='get' id='1'><ping xmlns='urn:xmpp:ping'/></iq>  <presence/>"
        );
        let whole = parse_all(&mut StreamParser::new(10_000), input.as_bytes()).unwrap();
        for split in 1..input.len() {
            let mut parser = StreamParser::new(10_000);
            let mut events = parse_all(&mut parser, &input.as_bytes()[..split]).unwrap();
            events.extend(parse_all(&mut parser, &input.as_bytes()[split..]).unwrap());
            assert_eq!(events, whole, "split at {split}");
        }
    }

    #[test]
    fn stops_after_each_event_leaving_the_rest() {
        let mut parser = StreamParser::new(10_000);
        let input =
            format!("{HEADER}<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>\x16\x03\x01");
        let mut data = input.as_bytes();
        assert!(matches!(
            parser.next_event(&mut data).unwrap(),
            Some(StreamEvent::Open(_))
        ));
        assert!(matches!(
            parser.next_event(&mut data).unwrap(),
            Some(StreamEvent::Element(_))
        ));
        assert_eq!(data, b"\x16\x03\x01");
    }

    #[test]
    fn oversized_stanza_is_refused() {
        let mut parser = StreamParser::new(100);
        let input = format!(
            "{HEADER}<message><body>{}</body></message>",
            "x".repeat(200)
        );
        assert_eq!(
            parse_all(&mut parser, input.as_bytes()),
            Err(XmlError::TooLarge { limit: 100 })
        );
        // Many small attributes count too.
        let mut parser = StreamParser::new(100);
        let input = format!("{HEADER}<message>{}</message>", "<x/>".repeat(50));
        assert_eq!(
            parse_all(&mut parser, input.as_bytes()),
            Err(XmlError::TooLarge { limit: 100 })
        );
    }

    #[test]
    fn hostile_xml_is_refused() {
        let doctype = "<?xml version='1.0'?><!DOCTYPE x [<!ENTITY a 'aaaa'>]><stream:stream>";
        // rxml has no DTD support at all, so a DOCTYPE is simply a syntax error: no entity is ever expanded.
        assert!(matches!(
            parse_all(&mut StreamParser::new(1000), doctype.as_bytes()),
            Err(XmlError::Restricted(_) | XmlError::NotWellFormed(_))
        ));
        let comment = format!("{HEADER}<!-- hi -->");
        assert!(matches!(
            parse_all(&mut StreamParser::new(1000), comment.as_bytes()),
            Err(XmlError::Restricted(_))
        ));
        let deep = format!("{HEADER}{}", "<a>".repeat(100));
        assert_eq!(
            parse_all(&mut StreamParser::new(10_000), deep.as_bytes()),
            Err(XmlError::TooDeep)
        );
        let bad = format!("{HEADER}<a></b>");
        assert!(matches!(
            parse_all(&mut StreamParser::new(1000), bad.as_bytes()),
            Err(XmlError::NotWellFormed(_))
        ));
        assert_eq!(
            parse_all(&mut StreamParser::new(1000), b"<html>"),
            Err(XmlError::NotAStream)
        );
        let text = format!("{HEADER}hello<presence/>");
        assert_eq!(
            parse_all(&mut StreamParser::new(1000), text.as_bytes()),
            Err(XmlError::TextAtTopLevel)
        );
    }
}
