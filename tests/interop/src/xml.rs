//! A tiny XML reader for XMPP streams: good enough for test clients, not a general XML parser.
//!
//! [`StreamParser`] takes bytes as they arrive (reads may split anywhere, several elements may come in
//! one read) and yields the stream header, each complete top-level element, and the stream end.
//! Namespaces are not resolved: names keep their prefix, and `xmlns` stays an ordinary attribute.
//! Comments, processing instructions and CDATA sections are handled; DTDs are not.
//!
//! It is deliberately independent of the gateway's own parser (`sixgate_xmpp_proto::xml`): a test client
//! sharing the parser under test would share its bugs, and a misparse on both ends would pass unnoticed.

use anyhow::{Result, anyhow};

/// An element with its attributes and children.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Element {
    /// The qualified name as written, e.g. `message` or `stream:features`.
    pub name: String,
    /// Attributes in document order, values unescaped.
    pub attrs: Vec<(String, String)>,
    /// Child nodes.
    pub children: Vec<Node>,
}

/// A child node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    /// A child element.
    Element(Element),
    /// Character data, unescaped.
    Text(String),
}

impl Element {
    /// The value of attribute `name`.
    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// The name without its prefix.
    pub fn local_name(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    /// The `xmlns` attribute written on this element.
    pub fn xmlns(&self) -> Option<&str> {
        self.attr("xmlns")
    }

    /// Child elements.
    pub fn elements(&self) -> impl Iterator<Item = &Self> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// The first child element with local name `local`.
    pub fn child(&self, local: &str) -> Option<&Self> {
        self.elements().find(|e| e.local_name() == local)
    }

    /// The first child element with local name `local` and `xmlns` attribute `ns`.
    pub fn child_ns(&self, local: &str, ns: &str) -> Option<&Self> {
        self.elements()
            .find(|e| e.local_name() == local && e.xmlns() == Some(ns))
    }

    /// The concatenated character data of this element (not of its descendants).
    pub fn text(&self) -> String {
        self.children
            .iter()
            .filter_map(|n| match n {
                Node::Text(t) => Some(t.as_str()),
                Node::Element(_) => None,
            })
            .collect()
    }

    /// Serialises the element (attributes with single quotes).
    pub fn to_xml(&self) -> String {
        let mut out = String::new();
        self.write(&mut out);
        out
    }

    fn write(&self, out: &mut String) {
        out.push('<');
        out.push_str(&self.name);
        for (n, v) in &self.attrs {
            out.push(' ');
            out.push_str(n);
            out.push_str("='");
            out.push_str(&escape(v));
            out.push('\'');
        }
        if self.children.is_empty() {
            out.push_str("/>");
            return;
        }
        out.push('>');
        for child in &self.children {
            match child {
                Node::Element(e) => e.write(out),
                Node::Text(t) => out.push_str(&escape(t)),
            }
        }
        out.push_str("</");
        out.push_str(&self.name);
        out.push('>');
    }
}

/// Escapes text for use in character data and in attribute values (either quote style).
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            c => out.push(c),
        }
    }
    out
}

/// What the stream parser yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The stream header (`<stream:stream …>`), as an element without children.
    StreamOpen(Element),
    /// A complete top-level element (a stanza, features, a stream error, …).
    Element(Element),
    /// `</stream:stream>`.
    StreamClose,
}

/// An incremental reader for one XML stream.
#[derive(Debug, Default)]
pub struct StreamParser {
    buf: Vec<u8>,
}

impl StreamParser {
    /// An empty parser (also what a stream restart needs).
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes received but not consumed yet.
    pub fn pending(&self) -> &[u8] {
        &self.buf
    }

    /// The next event, or `None` if more bytes are needed.
    pub fn next_event(&mut self) -> Result<Option<Event>> {
        loop {
            let mut cur = Cursor {
                b: &self.buf,
                pos: 0,
            };
            cur.skip_ws();
            if cur.at_end() {
                self.buf.clear();
                return Ok(None);
            }
            let result = top_level(&mut cur);
            match result {
                Ok(event) => {
                    let used = cur.pos;
                    self.buf.drain(..used);
                    if let Some(event) = event {
                        return Ok(Some(event));
                    }
                }
                Err(PErr::Incomplete) => return Ok(None),
                Err(PErr::Invalid(msg)) => {
                    return Err(anyhow!(
                        "invalid XML ({msg}) in {:?}",
                        String::from_utf8_lossy(&self.buf)
                    ));
                }
            }
        }
    }
}

/// One item at stream level: `None` for a skipped declaration or comment.
fn top_level(cur: &mut Cursor<'_>) -> PResult<Option<Event>> {
    if cur.starts_with(b"<?")? {
        cur.skip_past(b"?>")?;
        Ok(None)
    } else if cur.starts_with(b"<!--")? {
        cur.skip_past(b"-->")?;
        Ok(None)
    } else if cur.starts_with(b"</")? {
        cur.end_tag()?;
        Ok(Some(Event::StreamClose))
    } else if cur.peek() == Some(b'<') {
        let tag_start = cur.pos;
        let (name, attrs, self_closing) = cur.start_tag()?;
        if !self_closing && (name == "stream:stream" || name == "stream") {
            Ok(Some(Event::StreamOpen(Element {
                name,
                attrs,
                children: Vec::new(),
            })))
        } else {
            cur.pos = tag_start;
            Ok(Some(Event::Element(cur.element()?)))
        }
    } else {
        Err(PErr::Invalid(format!(
            "text at stream level: {:?}",
            String::from_utf8_lossy(&cur.b[cur.pos..cur.b.len().min(cur.pos + 40)])
        )))
    }
}

/// Parses one complete element from a string.
pub fn parse_element(s: &str) -> Result<Element> {
    let mut cur = Cursor {
        b: s.as_bytes(),
        pos: 0,
    };
    cur.skip_ws();
    match cur.element() {
        Ok(e) => Ok(e),
        Err(PErr::Incomplete) => Err(anyhow!("incomplete element: {s:?}")),
        Err(PErr::Invalid(msg)) => Err(anyhow!("invalid XML ({msg}): {s:?}")),
    }
}

#[derive(Debug)]
enum PErr {
    Incomplete,
    Invalid(String),
}

type PResult<T> = std::result::Result<T, PErr>;

/// A start tag: name, attributes, and whether it closes itself (`<x/>`).
type StartTag = (String, Vec<(String, String)>, bool);

struct Cursor<'a> {
    b: &'a [u8],
    pos: usize,
}

impl Cursor<'_> {
    fn at_end(&self) -> bool {
        self.pos >= self.b.len()
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn rest(&self) -> &[u8] {
        &self.b[self.pos.min(self.b.len())..]
    }

    /// Whether the input continues with `pat`; incomplete if the input ends inside a prefix of it.
    fn starts_with(&self, pat: &[u8]) -> PResult<bool> {
        let rest = self.rest();
        if rest.len() >= pat.len() {
            Ok(rest.starts_with(pat))
        } else if pat.starts_with(rest) {
            Err(PErr::Incomplete)
        } else {
            Ok(false)
        }
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\r' | b'\n')) {
            self.pos += 1;
        }
    }

    fn skip_past(&mut self, pat: &[u8]) -> PResult<()> {
        let rest = self.rest();
        match rest.windows(pat.len()).position(|w| w == pat) {
            Some(i) => {
                self.pos += i + pat.len();
                Ok(())
            }
            None => Err(PErr::Incomplete),
        }
    }

    fn expect(&mut self, c: u8) -> PResult<()> {
        match self.peek() {
            None => Err(PErr::Incomplete),
            Some(x) if x == c => {
                self.pos += 1;
                Ok(())
            }
            Some(x) => Err(PErr::Invalid(format!(
                "expected {:?}, found {:?}",
                c as char, x as char
            ))),
        }
    }

    fn name(&mut self) -> PResult<String> {
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err(PErr::Incomplete),
                Some(b' ' | b'\t' | b'\r' | b'\n' | b'/' | b'>' | b'=') => break,
                Some(b'<' | b'"' | b'\'' | b'&') => {
                    return Err(PErr::Invalid("bad character in a name".into()));
                }
                Some(_) => self.pos += 1,
            }
        }
        if self.pos == start {
            return Err(PErr::Invalid("empty name".into()));
        }
        utf8(&self.b[start..self.pos])
    }

    /// `<name attr='v' …>` or `<name …/>`: (name, attributes, self-closing).
    fn start_tag(&mut self) -> PResult<StartTag> {
        self.expect(b'<')?;
        let name = self.name()?;
        let mut attrs = Vec::new();
        loop {
            self.skip_ws();
            match self.peek() {
                None => return Err(PErr::Incomplete),
                Some(b'/') => {
                    self.pos += 1;
                    self.expect(b'>')?;
                    return Ok((name, attrs, true));
                }
                Some(b'>') => {
                    self.pos += 1;
                    return Ok((name, attrs, false));
                }
                Some(_) => {
                    let attr = self.name()?;
                    self.skip_ws();
                    self.expect(b'=')?;
                    self.skip_ws();
                    let quote = match self.peek() {
                        None => return Err(PErr::Incomplete),
                        Some(q @ (b'\'' | b'"')) => q,
                        Some(_) => return Err(PErr::Invalid("unquoted attribute".into())),
                    };
                    self.pos += 1;
                    let start = self.pos;
                    let len = self.rest().iter().position(|&c| c == quote);
                    let Some(len) = len else {
                        return Err(PErr::Incomplete);
                    };
                    let raw = utf8(&self.b[start..start + len])?;
                    self.pos = start + len + 1;
                    attrs.push((attr, unescape(&raw)?));
                }
            }
        }
    }

    /// `</name>`: the name.
    fn end_tag(&mut self) -> PResult<String> {
        self.expect(b'<')?;
        self.expect(b'/')?;
        let name = self.name()?;
        self.skip_ws();
        self.expect(b'>')?;
        Ok(name)
    }

    fn element(&mut self) -> PResult<Element> {
        let (name, attrs, self_closing) = self.start_tag()?;
        let mut element = Element {
            name,
            attrs,
            children: Vec::new(),
        };
        if self_closing {
            return Ok(element);
        }
        loop {
            if self.at_end() {
                return Err(PErr::Incomplete);
            }
            if self.starts_with(b"</")? {
                let end = self.end_tag()?;
                if end != element.name {
                    return Err(PErr::Invalid(format!("</{end}> closes <{}>", element.name)));
                }
                return Ok(element);
            } else if self.starts_with(b"<!--")? {
                self.skip_past(b"-->")?;
            } else if self.starts_with(b"<![CDATA[")? {
                self.pos += b"<![CDATA[".len();
                let start = self.pos;
                self.skip_past(b"]]>")?;
                let text = utf8(&self.b[start..self.pos - 3])?;
                element.children.push(Node::Text(text));
            } else if self.starts_with(b"<?")? {
                self.skip_past(b"?>")?;
            } else if self.peek() == Some(b'<') {
                let child = self.element()?;
                element.children.push(Node::Element(child));
            } else {
                let start = self.pos;
                let Some(len) = self.rest().iter().position(|&c| c == b'<') else {
                    return Err(PErr::Incomplete);
                };
                self.pos += len;
                let raw = utf8(&self.b[start..self.pos])?;
                let text = unescape(&raw)?;
                match element.children.last_mut() {
                    Some(Node::Text(prev)) => prev.push_str(&text),
                    _ => element.children.push(Node::Text(text)),
                }
            }
        }
    }
}

fn utf8(bytes: &[u8]) -> PResult<String> {
    String::from_utf8(bytes.to_vec()).map_err(|e| PErr::Invalid(format!("invalid UTF-8: {e}")))
}

fn unescape(raw: &str) -> PResult<String> {
    let mut out = String::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(end) = after.find(';') else {
            return Err(PErr::Invalid(format!("unterminated entity in {raw:?}")));
        };
        let entity = &after[..end];
        let c = match entity {
            "lt" => '<',
            "gt" => '>',
            "amp" => '&',
            "apos" => '\'',
            "quot" => '"',
            _ => {
                let code = if let Some(hex) = entity
                    .strip_prefix("#x")
                    .or_else(|| entity.strip_prefix("#X"))
                {
                    u32::from_str_radix(hex, 16).ok()
                } else if let Some(dec) = entity.strip_prefix('#') {
                    dec.parse().ok()
                } else {
                    None
                };
                code.and_then(char::from_u32)
                    .ok_or_else(|| PErr::Invalid(format!("unknown entity &{entity};")))?
            }
        };
        out.push(c);
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(parser: &mut StreamParser) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = parser.next_event().expect("valid") {
            out.push(e);
        }
        out
    }

    #[test]
    fn pipelined_elements_and_split_reads() {
        let input = "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
            xmlns:stream='http://etherx.jabber.org/streams' id='x' from=\"d\" version='1.0'>\
            <stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
            </stream:features> <message from='a@b' type='chat'><body>&lt;&amp;&gt;&apos;&quot; h\u{e9}llo \u{1f600}&#65;</body></message>\
            </stream:stream>";
        let bytes = input.as_bytes();
        // Every split point, byte by byte (also inside UTF-8 sequences).
        for split in 0..bytes.len() {
            let mut parser = StreamParser::new();
            parser.push(&bytes[..split]);
            let mut got = events(&mut parser);
            parser.push(&bytes[split..]);
            got.extend(events(&mut parser));
            assert_eq!(got.len(), 4, "split at {split}: {got:?}");
            let Event::StreamOpen(header) = &got[0] else {
                panic!("{got:?}")
            };
            assert_eq!(header.attr("id"), Some("x"));
            assert_eq!(header.attr("from"), Some("d"));
            let Event::Element(features) = &got[1] else {
                panic!("{got:?}")
            };
            assert!(
                features
                    .child_ns("starttls", "urn:ietf:params:xml:ns:xmpp-tls")
                    .is_some()
            );
            let Event::Element(message) = &got[2] else {
                panic!("{got:?}")
            };
            assert_eq!(
                message.child("body").map(Element::text).as_deref(),
                Some("<&>'\" h\u{e9}llo \u{1f600}A")
            );
            assert_eq!(got[3], Event::StreamClose);
        }
    }

    #[test]
    fn round_trip() {
        let e = parse_element("<a x='1&amp;2'><b>t&lt;</b><c/>tail</a>").expect("valid");
        assert_eq!(e.to_xml(), "<a x='1&amp;2'><b>t&lt;</b><c/>tail</a>");
    }

    #[test]
    fn mismatched_end_tag_is_an_error() {
        let mut p = StreamParser::new();
        p.push(b"<stream:stream><a></b>");
        assert!(matches!(p.next_event(), Ok(Some(Event::StreamOpen(_)))));
        assert!(p.next_event().is_err());
    }
}
