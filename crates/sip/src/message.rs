//! SIP requests and responses: parsing a framed message into typed parts, and writing them back.
//!
//! # Decision: our own strict parser, not ezk-sip-types
//!
//! `shared/docs/dependencies.md` §2 recommends `ezk-sip-types` 0.6.5 over rsip. A spike parsed this
//! crate's corpus (`tests/data/`) with it: start line, headers through its `PullParser` and `Line`, then
//! its typed headers. It handled compact forms, folded lines, comma-joined `Via` and `Route`, an IPv6
//! sent-by, `sips:` and `Subscription-State: active;expires=3599`. We still write our own, because:
//!
//! 1. **It rewrites what it forwards.** Its printer is context-dependent: a `From`/`To` URI loses its
//!    port (`<sips:judy@[2001:db8::10]:5061>` came out as `<sips:judy@[2001:db8::10]>`) and its
//!    `maddr`/`transport`/`lr` parameters. An edge element must pass addresses through unchanged.
//! 2. **It hides bad `Via`s.** A comma-joined `Via` whose second value is garbage decoded as one `Via`,
//!    without an error. Responses are routed and loops detected on the `Via` list, so a malformed one
//!    has to be a 400, not a shorter list.
//! 3. **It only knows `sip:` and `sips:`.** `To: <tel:+15551234567>` failed to parse, and so did a
//!    request to `im:alice@example.com` (RFC 3428 allows any URI scheme in MESSAGE). A gateway must at
//!    least carry these; here a URI is validated text with SIP-specific accessors.
//! 4. **Wrapping it costs as much as the parser.** The crate has no message-level parse: the caller
//!    assembles the start line, the `PullParser` lines and per-header decoding, and adds size caps and
//!    the Content-Length check itself. The typed headers the gateway needs are about twenty, with
//!    simple grammars (RFC 3261 §25), and the framer ([`crate::framing`]) already does the stream work.
//! 5. **Its leniency is in the wrong places**, and it pulls in ten crates. Its `token` accepts any
//!    Unicode letter, so `Vïa: x` parsed as a header, while the pulled-in `nom` 7, `lazy_static` and
//!    `anyhow` add nothing we need. It has one maintainer (dependencies.md "Risks" 2).
//!
//! Worth revisiting if the gateway needs digest or TLS-DSK authentication headers: ezk-sip-types has
//! them typed (its `auth` module alone is about 1,400 lines), and they would land in [`Headers`] as
//! text until then.
//!
//! # Shape
//!
//! [`Message::parse`] takes the `head` and `body` of a [`Frame::Message`](crate::Frame::Message). The
//! headers every message needs (RFC 3261 §8.1.1) are parsed at once into typed fields, so holding a
//! [`Request`] means they were valid: `Via` (all values, in order, comma-joined ones split), `From`,
//! `To`, `Call-ID`, `CSeq`, `Max-Forwards` and `Content-Length`. Any problem there is a
//! [`ParseError`] with the status code to answer. Every other field lands in [`Headers`] as unfolded
//! text, with typed accessors (`Route`, `Contact`, `Event`, `Subscription-State`...) that parse on call,
//! so a malformed header nobody reads cannot fail a message.
//!
//! Serialisation ([`Request::to_bytes`], [`Response::to_bytes`]) writes long header names, one `Via`
//! per line, the proxy-processing headers first (§7.3.1), and a `Content-Length` computed from the body.
//! Nothing it writes can contain a line break inside a field: typed values are built from validated
//! parts, free headers refuse CR and LF, and free text (reason phrases, display names) has them replaced.

use std::fmt::Write as _;

use thiserror::Error;

mod header;
mod syntax;
mod uri;
mod values;

#[cfg(test)]
mod tests;

pub use header::{Header, HeaderError, HeaderName, Headers};
pub use uri::{Host, HostName, HostPort, Uri};
pub use values::{
    CSeq, CallId, Event, InvalidValue, MediaType, Method, NameAddr, Param, Params, Reason,
    StatusCode, SubState, SubscriptionState, Token, Via,
};

/// Caps on what one message may hold, beyond the framer's caps on its total size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParseLimits {
    /// Most header fields (lines, after unfolding) in one message. Default 256.
    pub max_headers: usize,
    /// Longest header field, name and value, after unfolding. Default 16 KiB.
    pub max_header_len: usize,
}

impl Default for ParseLimits {
    fn default() -> Self {
        Self {
            max_headers: 256,
            max_header_len: 16 * 1024,
        }
    }
}

/// Why a message could not be parsed. Always the peer's fault.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ParseError {
    /// The head is not UTF-8, which RFC 3261 §7.3.1 requires of header text.
    #[error("message head is not UTF-8")]
    NotUtf8,
    /// The head does not end with an empty line, or has a bare CR or LF.
    #[error("message head is not CRLF-terminated lines ending in an empty line")]
    BadLineEnding,
    /// The first line is neither a Request-Line nor a Status-Line.
    #[error("invalid start line")]
    InvalidStartLine,
    /// The Request-URI is not a URI.
    #[error("invalid Request-URI")]
    InvalidRequestUri,
    /// A SIP version other than 2.0.
    #[error("unsupported SIP version")]
    UnsupportedVersion,
    /// A header line without a colon or with an invalid name, or a continuation line with nothing to
    /// continue.
    #[error("invalid header line {line}")]
    InvalidHeaderLine {
        /// 1-based line number in the head.
        line: usize,
    },
    /// More header fields than [`ParseLimits::max_headers`].
    #[error("more than {limit} header fields")]
    TooManyHeaders {
        /// The limit.
        limit: usize,
    },
    /// A header field longer than [`ParseLimits::max_header_len`].
    #[error("header field longer than {limit} bytes")]
    HeaderTooLong {
        /// The limit.
        limit: usize,
    },
    /// A header every message needs is invalid or repeated.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// A header every message needs is missing (RFC 3261 §8.1.1).
    #[error("missing {0} header")]
    Missing(HeaderName),
    /// `CSeq` names another method than the Request-Line (§8.1.1.5).
    #[error("CSeq method differs from the request method")]
    CSeqMethodMismatch,
    /// `Content-Length` is not a number, or differs between fields or from the body.
    #[error("Content-Length does not match the body")]
    ContentLength,
}

impl ParseError {
    /// The status code to answer a request with that failed this way (RFC 3261 §21).
    pub fn response_code(&self) -> StatusCode {
        match self {
            Self::UnsupportedVersion => StatusCode::VERSION_NOT_SUPPORTED,
            Self::TooManyHeaders { .. } | Self::HeaderTooLong { .. } => {
                StatusCode::MESSAGE_TOO_LARGE
            }
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// A SIP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method.
    pub method: Method,
    /// The Request-URI.
    pub uri: Uri,
    /// `Via` values, top (most recent hop) first.
    pub via: Vec<Via>,
    /// `Max-Forwards`, if present (RFC 3261 §16.6 item 3 has a proxy add one when it is not).
    pub max_forwards: Option<u32>,
    /// `From`.
    pub from: NameAddr,
    /// `To`.
    pub to: NameAddr,
    /// `Call-ID`.
    pub call_id: CallId,
    /// `CSeq`.
    pub cseq: CSeq,
    /// Every other header.
    pub headers: Headers,
    /// The body; `Content-Length` is its length.
    pub body: Vec<u8>,
}

impl Request {
    /// A request without `Via`, other headers or body, `Max-Forwards: 70` (§8.1.1.6), and the CSeq
    /// method set to `method`. The caller adds the `Via` of the hop that sends it.
    pub fn new(
        method: Method,
        uri: Uri,
        from: NameAddr,
        to: NameAddr,
        call_id: CallId,
        cseq: u32,
    ) -> Self {
        Self {
            cseq: CSeq {
                number: cseq,
                method: method.clone(),
            },
            method,
            uri,
            via: Vec::new(),
            max_forwards: Some(70),
            from,
            to,
            call_id,
            headers: Headers::new(),
            body: Vec::new(),
        }
    }

    /// The top `Via`, which identifies the transaction.
    pub fn top_via(&self) -> Option<&Via> {
        self.via.first()
    }

    /// The message as bytes to send.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!("{} {} SIP/2.0\r\n", self.method, self.uri);
        write_fields(
            &mut head,
            Fields {
                via: &self.via,
                max_forwards: self.max_forwards,
                from: &self.from,
                to: &self.to,
                call_id: &self.call_id,
                cseq: &self.cseq,
                headers: &self.headers,
                body_len: self.body.len(),
            },
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A SIP response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code.
    pub status: StatusCode,
    /// The reason phrase; CR and LF are written as spaces.
    pub reason: String,
    /// `Via` values, copied from the request, top first.
    pub via: Vec<Via>,
    /// `From`.
    pub from: NameAddr,
    /// `To`.
    pub to: NameAddr,
    /// `Call-ID`.
    pub call_id: CallId,
    /// `CSeq`.
    pub cseq: CSeq,
    /// Every other header. A `Max-Forwards` in a received response is dropped: it only means something
    /// in requests (§20.22).
    pub headers: Headers,
    /// The body; `Content-Length` is its length.
    pub body: Vec<u8>,
}

impl Response {
    /// The top `Via`, whose branch matches the response to a client transaction.
    pub fn top_via(&self) -> Option<&Via> {
        self.via.first()
    }

    /// The message as bytes to send.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut head = format!(
            "SIP/2.0 {} {}\r\n",
            self.status,
            syntax::one_line(&self.reason)
        );
        write_fields(
            &mut head,
            Fields {
                via: &self.via,
                max_forwards: None,
                from: &self.from,
                to: &self.to,
                call_id: &self.call_id,
                cseq: &self.cseq,
                headers: &self.headers,
                body_len: self.body.len(),
            },
        );
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// A parsed request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    /// A request.
    Request(Request),
    /// A response.
    Response(Response),
}

impl Message {
    /// Parses the `head` and `body` of a [`Frame::Message`](crate::Frame::Message) with the default
    /// [`ParseLimits`]. `head` must end with the empty line; `body` must be exactly the body, and must
    /// match `Content-Length` when the head has one.
    pub fn parse(head: &[u8], body: Vec<u8>) -> Result<Self, ParseError> {
        Self::parse_with_limits(head, body, &ParseLimits::default())
    }

    /// [`Message::parse`] with explicit limits.
    pub fn parse_with_limits(
        head: &[u8],
        body: Vec<u8>,
        limits: &ParseLimits,
    ) -> Result<Self, ParseError> {
        let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
        let lines = head
            .strip_suffix("\r\n\r\n")
            .ok_or(ParseError::BadLineEnding)?;
        let mut lines = lines.split("\r\n");
        let start = lines.next().unwrap_or_default();
        if lines
            .clone()
            .chain([start])
            .any(|line| line.contains(['\r', '\n']))
        {
            return Err(ParseError::BadLineEnding);
        }
        let start = StartLine::parse(start)?;
        let fields = unfold(lines, limits)?;
        let core = Core::collect(fields, matches!(start, StartLine::Request { .. }))?;
        if core
            .content_length
            .is_some_and(|length| length != body.len())
        {
            return Err(ParseError::ContentLength);
        }
        Ok(match start {
            StartLine::Request { method, uri } => {
                if core.cseq.method != method {
                    return Err(ParseError::CSeqMethodMismatch);
                }
                Self::Request(Request {
                    method,
                    uri,
                    via: core.via,
                    max_forwards: core.max_forwards,
                    from: core.from,
                    to: core.to,
                    call_id: core.call_id,
                    cseq: core.cseq,
                    headers: core.headers,
                    body,
                })
            }
            StartLine::Response { status, reason } => Self::Response(Response {
                status,
                reason,
                via: core.via,
                from: core.from,
                to: core.to,
                call_id: core.call_id,
                cseq: core.cseq,
                headers: core.headers,
                body,
            }),
        })
    }

    /// Parses a whole message in one buffer: the head up to the first empty line, the rest as body.
    /// For messages that did not come through a [`Framer`](crate::Framer), such as test data.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ParseError> {
        let end = bytes
            .windows(4)
            .position(|window| window == b"\r\n\r\n")
            .ok_or(ParseError::BadLineEnding)?
            + 4;
        let (head, body) = bytes.split_at(end.min(bytes.len()));
        Self::parse(head, body.to_vec())
    }

    /// The message as bytes to send.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            Self::Request(request) => request.to_bytes(),
            Self::Response(response) => response.to_bytes(),
        }
    }
}

impl From<Request> for Message {
    fn from(request: Request) -> Self {
        Self::Request(request)
    }
}

impl From<Response> for Message {
    fn from(response: Response) -> Self {
        Self::Response(response)
    }
}

enum StartLine {
    Request { method: Method, uri: Uri },
    Response { status: StatusCode, reason: String },
}

impl StartLine {
    fn parse(line: &str) -> Result<Self, ParseError> {
        if line
            .get(..4)
            .is_some_and(|prefix| prefix.eq_ignore_ascii_case("SIP/"))
        {
            // Status-Line = SIP-Version SP Status-Code SP Reason-Phrase. A missing reason phrase (and
            // the SP before it) is tolerated: nothing depends on it.
            let (version, rest) = line.split_once(' ').ok_or(ParseError::InvalidStartLine)?;
            check_version(version)?;
            let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
            let status = (code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
                .then(|| code.parse().ok())
                .flatten()
                .and_then(StatusCode::new)
                .ok_or(ParseError::InvalidStartLine)?;
            return Ok(Self::Response {
                status,
                reason: reason.to_owned(),
            });
        }
        // Request-Line = Method SP Request-URI SP SIP-Version, separated by single spaces (§7.1).
        let mut parts = line.split(' ');
        let (Some(method), Some(uri), Some(version), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(ParseError::InvalidStartLine);
        };
        let method = Method::parse(method).map_err(|_| ParseError::InvalidStartLine)?;
        let uri = Uri::parse(uri).map_err(|_| ParseError::InvalidRequestUri)?;
        check_version(version)?;
        Ok(Self::Request { method, uri })
    }
}

/// `SIP/2.0`, with the protocol name in any case as ABNF strings are. Any other well-formed version is
/// unsupported (505) rather than malformed (400).
fn check_version(version: &str) -> Result<(), ParseError> {
    let (protocol, number) = version
        .split_once('/')
        .ok_or(ParseError::InvalidStartLine)?;
    if !protocol.eq_ignore_ascii_case("SIP") {
        return Err(ParseError::InvalidStartLine);
    }
    if number == "2.0" {
        return Ok(());
    }
    let well_formed = number.split_once('.').is_some_and(|(major, minor)| {
        [major, minor]
            .iter()
            .all(|part| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit()))
    });
    Err(if well_formed {
        ParseError::UnsupportedVersion
    } else {
        ParseError::InvalidStartLine
    })
}

/// The header lines of a head as `(name, value)` fields, folded lines joined with one space
/// (§7.3.1).
fn unfold<'a>(
    lines: impl Iterator<Item = &'a str>,
    limits: &ParseLimits,
) -> Result<Vec<(HeaderName, String)>, ParseError> {
    let mut fields: Vec<(HeaderName, String)> = Vec::new();
    for (index, line) in lines.enumerate() {
        // The start line is line 1.
        let line_number = index + 2;
        if line.starts_with([' ', '\t']) {
            let (name, value) = fields
                .last_mut()
                .ok_or(ParseError::InvalidHeaderLine { line: line_number })?;
            let continuation = line.trim_matches([' ', '\t']);
            if !continuation.is_empty() {
                value.truncate(value.trim_end_matches([' ', '\t']).len());
                if !value.is_empty() {
                    value.push(' ');
                }
                value.push_str(continuation);
            }
            if name.as_str().len() + value.len() > limits.max_header_len {
                return Err(ParseError::HeaderTooLong {
                    limit: limits.max_header_len,
                });
            }
            continue;
        }
        let (name, value) = line
            .split_once(':')
            .ok_or(ParseError::InvalidHeaderLine { line: line_number })?;
        // RFC 3261 §7.3.1 allows whitespace between the name and the colon.
        let name = HeaderName::new(name.trim_end_matches([' ', '\t']))
            .map_err(|_| ParseError::InvalidHeaderLine { line: line_number })?;
        if fields.len() >= limits.max_headers {
            return Err(ParseError::TooManyHeaders {
                limit: limits.max_headers,
            });
        }
        if line.len() > limits.max_header_len {
            return Err(ParseError::HeaderTooLong {
                limit: limits.max_header_len,
            });
        }
        fields.push((name, value.trim_matches([' ', '\t']).to_owned()));
    }
    Ok(fields)
}

/// The typed fields every message has, sorted out of the header list.
struct Core {
    via: Vec<Via>,
    max_forwards: Option<u32>,
    from: NameAddr,
    to: NameAddr,
    call_id: CallId,
    cseq: CSeq,
    content_length: Option<usize>,
    headers: Headers,
}

impl Core {
    fn collect(fields: Vec<(HeaderName, String)>, is_request: bool) -> Result<Self, ParseError> {
        let mut via = Vec::new();
        let mut max_forwards = None;
        let mut from = None;
        let mut to = None;
        let mut call_id = None;
        let mut cseq = None;
        let mut content_length: Option<usize> = None;
        let mut headers = Headers::new();
        for (name, value) in fields {
            let invalid = |problem| HeaderError::Invalid {
                name: name.clone(),
                problem,
            };
            if name == HeaderName::VIA {
                let elements = syntax::split_list(&value).map_err(invalid)?;
                if elements.is_empty() {
                    return Err(invalid("empty Via").into());
                }
                for element in elements {
                    via.push(Via::parse(element).map_err(invalid)?);
                }
            } else if name == HeaderName::FROM {
                set_once(
                    &mut from,
                    &name,
                    NameAddr::parse(&value, false).map_err(invalid)?,
                )?;
            } else if name == HeaderName::TO {
                set_once(
                    &mut to,
                    &name,
                    NameAddr::parse(&value, false).map_err(invalid)?,
                )?;
            } else if name == HeaderName::CALL_ID {
                let id = CallId::parse(&value)
                    .map_err(|_| invalid("expected word[@word], at most 256 bytes"))?;
                set_once(&mut call_id, &name, id)?;
            } else if name == HeaderName::CSEQ {
                set_once(&mut cseq, &name, CSeq::parse(&value).map_err(invalid)?)?;
            } else if name == HeaderName::MAX_FORWARDS {
                if is_request {
                    let hops =
                        syntax::parse_u32(&value).ok_or_else(|| invalid("expected a number"))?;
                    set_once(&mut max_forwards, &name, hops)?;
                }
            } else if name == HeaderName::CONTENT_LENGTH {
                let length = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<usize>().ok())
                    .flatten()
                    .ok_or(ParseError::ContentLength)?;
                if content_length.is_some_and(|first| first != length) {
                    return Err(ParseError::ContentLength);
                }
                content_length = Some(length);
            } else {
                headers.push_parsed(name, value);
            }
        }
        if via.is_empty() {
            return Err(ParseError::Missing(HeaderName::VIA));
        }
        Ok(Self {
            via,
            max_forwards,
            from: from.ok_or(ParseError::Missing(HeaderName::FROM))?,
            to: to.ok_or(ParseError::Missing(HeaderName::TO))?,
            call_id: call_id.ok_or(ParseError::Missing(HeaderName::CALL_ID))?,
            cseq: cseq.ok_or(ParseError::Missing(HeaderName::CSEQ))?,
            content_length,
            headers,
        })
    }
}

fn set_once<T>(slot: &mut Option<T>, name: &HeaderName, value: T) -> Result<(), ParseError> {
    if slot.is_some() {
        return Err(HeaderError::Repeated { name: name.clone() }.into());
    }
    *slot = Some(value);
    Ok(())
}

struct Fields<'a> {
    via: &'a [Via],
    max_forwards: Option<u32>,
    from: &'a NameAddr,
    to: &'a NameAddr,
    call_id: &'a CallId,
    cseq: &'a CSeq,
    headers: &'a Headers,
    body_len: usize,
}

/// Headers proxies act on, written right after `Via` so that they can be found early (§7.3.1).
const PROXY_HEADERS: [HeaderName; 4] = [
    HeaderName::ROUTE,
    HeaderName::RECORD_ROUTE,
    HeaderName::PROXY_REQUIRE,
    HeaderName::PROXY_AUTHORIZATION,
];

fn write_fields(head: &mut String, fields: Fields<'_>) {
    // Writing to a String cannot fail; `let _` keeps that from needing an unwrap.
    for via in fields.via {
        let _ = write!(head, "Via: {via}\r\n");
    }
    let is_proxy_header = |header: &&Header| PROXY_HEADERS.contains(header.name());
    for header in fields.headers.iter().filter(is_proxy_header) {
        let _ = write!(head, "{}: {}\r\n", header.name(), header.value());
    }
    if let Some(hops) = fields.max_forwards {
        let _ = write!(head, "Max-Forwards: {hops}\r\n");
    }
    let _ = write!(
        head,
        "From: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        fields.from, fields.to, fields.call_id, fields.cseq
    );
    for header in fields
        .headers
        .iter()
        .filter(|header| !is_proxy_header(header))
    {
        let _ = write!(head, "{}: {}\r\n", header.name(), header.value());
    }
    let _ = write!(head, "Content-Length: {}\r\n\r\n", fields.body_len);
}
