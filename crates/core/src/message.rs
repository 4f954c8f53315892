//! Page-mode instant messages (RFC 7572, on top of SIP MESSAGE from RFC 3428): the protocol-neutral message and
//! the pure pieces of its translation that both sides of the gateway share.
//!
//! RFC 7572 Tables 1 and 2 map, in both directions: body ⇄ MESSAGE body, `<subject/>` ⇄ `Subject`,
//! `<thread/>` ⇄ `Call-ID`, `xml:lang` ⇄ `Content-Language`, and the addresses through RFC 7247 (see
//! [`crate::address_map`]). XMPP `id` and the SIP transaction have no lasting mapping, and neither has the
//! XMPP `type`, except that a SIP-to-XMPP message is always `normal` (RFC 7572 §5).

use std::fmt;

/// One instant message, as either side hands it to the other. Addresses travel beside it, already mapped.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstantMessage {
    /// The text: XMPP `<body/>`, or a `text/plain` MESSAGE body.
    pub body: String,
    /// XMPP `<subject/>` or the SIP `Subject` header.
    pub subject: Option<String>,
    /// XMPP `<thread/>`; on the SIP side, the `Call-ID` (see [`call_id_from_thread`]).
    pub thread: Option<String>,
    /// A language tag: XMPP `xml:lang` or SIP `Content-Language` (RFC 7572 §8 says they MUST be mapped).
    pub language: Option<String>,
    /// The XMPP message type.
    pub kind: MessageKind,
}

impl InstantMessage {
    /// A `normal` message with only a body.
    pub fn new(body: impl Into<String>) -> Self {
        Self {
            body: body.into(),
            subject: None,
            thread: None,
            language: None,
            kind: MessageKind::Normal,
        }
    }
}

/// The XMPP message types that page mode carries (RFC 6121 §5.2.2). `groupchat`, `headline` and `error` are
/// not instant messages between two users and are not translated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum MessageKind {
    /// `normal`, also what an absent `type` means. RFC 7572 §5 requires it for every SIP-to-XMPP message.
    #[default]
    Normal,
    /// `chat`: one-to-one conversation. SIP has no equivalent (RFC 7572 §4 note 2), so it only matters on
    /// the XMPP side.
    Chat,
}

impl MessageKind {
    /// Reads an XMPP `type` attribute; `None` for the types page mode does not carry.
    pub fn from_xmpp_type(value: Option<&str>) -> Option<Self> {
        match value {
            None | Some("normal") => Some(Self::Normal),
            Some("chat") => Some(Self::Chat),
            Some(_) => None,
        }
    }

    /// The XMPP `type` attribute value.
    pub fn as_xmpp_type(self) -> &'static str {
        match self {
            Self::Normal => "normal",
            Self::Chat => "chat",
        }
    }
}

/// The longest Call-ID we accept or produce, in bytes. RFC 3261 sets no limit; real ones are under 100 bytes,
/// and the cap bounds what a peer makes us store per conversation.
pub const MAX_CALL_ID: usize = 256;

/// Why a text is not a Call-ID. The peer's fault: the SIP side answers 400.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CallIdError {
    /// The Call-ID is empty.
    #[error("empty Call-ID")]
    Empty,
    /// The Call-ID is longer than [`MAX_CALL_ID`] bytes.
    #[error("Call-ID of {0} bytes is longer than {MAX_CALL_ID}")]
    TooLong(usize),
    /// A character outside RFC 3261 `word`.
    #[error("character {0:?} not allowed in a Call-ID")]
    BadChar(char),
    /// More than one `@`, or an empty word on either side of it.
    #[error("Call-ID must be word or word@word")]
    BadAt,
}

/// A SIP `Call-ID` value: `word ["@" word]` (RFC 3261 §25.1). Compared byte by byte, case-sensitively
/// (RFC 3261 §20.8).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallId(Box<str>);

impl CallId {
    /// Checks a Call-ID header value (without surrounding whitespace).
    pub fn parse(text: &str) -> Result<Self, CallIdError> {
        if text.is_empty() {
            return Err(CallIdError::Empty);
        }
        if text.len() > MAX_CALL_ID {
            return Err(CallIdError::TooLong(text.len()));
        }
        if let Some(bad) = text.chars().find(|&c| c != '@' && !is_word_char(c)) {
            return Err(CallIdError::BadChar(bad));
        }
        let mut words = text.split('@');
        if words.clone().count() > 2 || words.any(str::is_empty) {
            return Err(CallIdError::BadAt);
        }
        Ok(Self(text.into()))
    }

    /// The Call-ID text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for CallId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CallId({})", self.0)
    }
}

impl std::str::FromStr for CallId {
    type Err = CallIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// RFC 3261 §25.1 `word` characters.
fn is_word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || "-.!%*_+`'~()<>:\\\"/[]?{}".contains(c)
}

/// The XMPP `<thread/>` for a SIP MESSAGE's Call-ID (RFC 7572 §5, Table 2): the Call-ID itself, so that a reply
/// in the same thread comes back with the same Call-ID.
pub fn thread_from_call_id(call_id: &CallId) -> String {
    call_id.as_str().to_owned()
}

/// The SIP Call-ID for an XMPP `<thread/>` (RFC 7572 §4, Table 1).
///
/// A thread that is already a valid Call-ID (every thread that [`thread_from_call_id`] made) is used as is.
/// Any other thread (RFC 6121 §5.2.5 only asks that it be opaque and unique) is percent-encoded byte by byte
/// into `word` characters, and one longer than [`MAX_CALL_ID`] is cut and given a 64-bit FNV-1a hash of the
/// whole thread, so the mapping stays deterministic and messages of one thread keep one Call-ID.
///
/// The same Call-ID is reused for every MESSAGE of a thread, so the SIP side must give each one a fresh
/// `From` tag or a higher CSeq: a UAS that sees the same From tag, Call-ID and CSeq on two concurrent
/// requests answers 482 (RFC 3261 §8.2.2.2). A message without a thread gets a fresh random Call-ID from
/// the SIP side; so does an empty `<thread/>`, which callers should treat as absent.
pub fn call_id_from_thread(thread: &str) -> CallId {
    if let Ok(call_id) = CallId::parse(thread) {
        return call_id;
    }
    let mut encoded = String::with_capacity(thread.len());
    for b in thread.bytes() {
        let c = char::from(b);
        if b.is_ascii() && c != '%' && is_word_char(c) {
            encoded.push(c);
        } else {
            encoded.push_str(&format!("%{b:02X}"));
        }
    }
    let hash = format!("{:016x}", fnv1a64(thread.as_bytes()));
    if encoded.is_empty() {
        return CallId(hash.into());
    }
    if encoded.len() > MAX_CALL_ID {
        let mut cut = MAX_CALL_ID - 1 - hash.len();
        // Cutting inside a `%hh` would leave a stray `%`; back up to the start of the escape.
        if let Some(at) = encoded[cut - 2..cut].find('%') {
            cut = cut - 2 + at;
        }
        encoded.truncate(cut);
        encoded.push('-');
        encoded.push_str(&hash);
    }
    CallId(encoded.into())
}

/// FNV-1a, 64-bit: tiny, stable across Rust releases (unlike `DefaultHasher`), and collision resistance does
/// not matter here; a collision only merges two over-long threads.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The only media type the gateway accepts in a MESSAGE (RFC 7572 §7); the SIP side sends it as
/// `Accept` in a 415 (RFC 3261 §21.4.13).
pub const ACCEPTED_CONTENT_TYPE: &str = "text/plain";

/// The `Content-Type` of every MESSAGE the gateway sends.
pub const TEXT_PLAIN_UTF8: &str = "text/plain;charset=UTF-8";

/// Why a MESSAGE body cannot become an XMPP `<body/>`. The peer's fault; [`BodyError::sip_status`] gives the
/// SIP answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum BodyError {
    /// Not `text/plain` (the lower-cased `type/subtype` is given). `text/html` is included: RFC 7572 §7 says
    /// SHOULD convert it to XHTML-IM, but XEP-0071 is deprecated.
    #[error("unsupported media type {0}")]
    UnsupportedMediaType(String),
    /// `text/plain` with a charset other than UTF-8 or US-ASCII (the lower-cased name is given).
    #[error("unsupported charset {0}")]
    UnsupportedCharset(String),
    /// The `Content-Type` value does not follow RFC 3261 §20.15.
    #[error("malformed Content-Type")]
    MalformedContentType,
    /// The body is labelled (or defaults to) UTF-8 but is not.
    #[error("body is not valid UTF-8")]
    NotUtf8,
    /// The body is labelled US-ASCII but has bytes above 0x7F.
    #[error("body labelled US-ASCII has non-ASCII bytes")]
    NotAscii,
    /// The text has a character XML 1.0 cannot carry (§2.2 `Char`), such as NUL, so it cannot go in a stanza.
    #[error("character {0:?} cannot appear in XML")]
    NotXmlText(char),
}

impl BodyError {
    /// The SIP response to send: 415 (with `Accept: text/plain`, see [`ACCEPTED_CONTENT_TYPE`]) for a type or
    /// charset we do not take, 400 for a body that does not match its own label.
    pub fn sip_status(&self) -> u16 {
        match self {
            Self::UnsupportedMediaType(_) | Self::UnsupportedCharset(_) => 415,
            Self::MalformedContentType | Self::NotUtf8 | Self::NotAscii | Self::NotXmlText(_) => {
                400
            }
        }
    }
}

/// Turns a SIP MESSAGE body into the text of an XMPP `<body/>` (RFC 7572 §7).
///
/// Accepts only `text/plain` (type, subtype and parameter names case-insensitive, whitespace around `/`, `;`
/// and `=` allowed, other parameters such as `format=flowed` ignored). The charset must be absent, UTF-8 or
/// US-ASCII, and the body must match it.
///
/// Choices: an absent charset means UTF-8. RFC 2046 §4.1.2 would default to US-ASCII, of which UTF-8 is a
/// superset, and SIP clients send UTF-8 without saying so. A body that contradicts its label (bytes above 0x7F
/// under US-ASCII) is refused rather than guessed at. The text is otherwise passed on unchanged (no line-ending
/// conversion, no trimming).
pub fn sip_body_to_text(content_type: &str, body: &[u8]) -> Result<String, BodyError> {
    let (media_type, params) = parse_content_type(content_type)?;
    if media_type != ACCEPTED_CONTENT_TYPE {
        return Err(BodyError::UnsupportedMediaType(media_type));
    }
    let mut charset = None;
    for (name, value) in params {
        if name == "charset" {
            if charset.is_some() {
                return Err(BodyError::MalformedContentType);
            }
            charset = Some(value.to_ascii_lowercase());
        }
    }
    let text = match charset.as_deref() {
        None | Some("utf-8") => String::from_utf8(body.to_vec()).map_err(|_| BodyError::NotUtf8)?,
        Some("us-ascii") => {
            if !body.is_ascii() {
                return Err(BodyError::NotAscii);
            }
            String::from_utf8(body.to_vec()).map_err(|_| BodyError::NotAscii)?
        }
        Some(other) => return Err(BodyError::UnsupportedCharset(other.to_owned())),
    };
    if let Some(bad) = text.chars().find(|&c| !is_xml_char(c)) {
        return Err(BodyError::NotXmlText(bad));
    }
    Ok(text)
}

/// The `Content-Type` and body of a SIP MESSAGE for the text of an XMPP `<body/>` (RFC 7572 §4): the UTF-8
/// bytes, unchanged, labelled `text/plain;charset=UTF-8`.
pub fn text_to_sip_body(text: &str) -> (&'static str, Vec<u8>) {
    (TEXT_PLAIN_UTF8, text.as_bytes().to_vec())
}

/// XML 1.0 §2.2 `Char`, minus the surrogates a Rust `char` cannot hold anyway.
fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}

/// Splits `type/subtype *(; name=value)` into the lower-cased media type and the parameters (names
/// lower-cased, quoted values unquoted).
fn parse_content_type(value: &str) -> Result<(String, Vec<(String, String)>), BodyError> {
    let mut pieces = split_outside_quotes(value).into_iter();
    let media = pieces.next().unwrap_or_default();
    let (kind, subtype) = media
        .split_once('/')
        .ok_or(BodyError::MalformedContentType)?;
    let (kind, subtype) = (trim_lws(kind), trim_lws(subtype));
    if !is_token(kind) || !is_token(subtype) {
        return Err(BodyError::MalformedContentType);
    }
    let mut params = Vec::new();
    for piece in pieces {
        let piece = trim_lws(piece);
        if piece.is_empty() {
            // A stray `;` (as in `text/plain;`) is common enough and harmless.
            continue;
        }
        let (name, raw) = piece
            .split_once('=')
            .ok_or(BodyError::MalformedContentType)?;
        let (name, raw) = (trim_lws(name), trim_lws(raw));
        if !is_token(name) {
            return Err(BodyError::MalformedContentType);
        }
        let value = match raw.strip_prefix('"') {
            Some(quoted) => unquote(quoted)?,
            None if is_token(raw) => raw.to_owned(),
            None => return Err(BodyError::MalformedContentType),
        };
        params.push((name.to_ascii_lowercase(), value));
    }
    Ok((
        format!(
            "{}/{}",
            kind.to_ascii_lowercase(),
            subtype.to_ascii_lowercase()
        ),
        params,
    ))
}

fn split_outside_quotes(value: &str) -> Vec<&str> {
    let mut pieces = Vec::new();
    let (mut start, mut quoted, mut escaped) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            ';' if !quoted => {
                pieces.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    pieces.push(&value[start..]);
    pieces
}

/// Reads the rest of a quoted-string (after the opening quote), which must end at the closing quote.
fn unquote(rest: &str) -> Result<String, BodyError> {
    let mut out = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next().ok_or(BodyError::MalformedContentType)?),
            '"' if chars.as_str().is_empty() => return Ok(out),
            '"' => return Err(BodyError::MalformedContentType),
            _ => out.push(c),
        }
    }
    Err(BodyError::MalformedContentType)
}

fn trim_lws(text: &str) -> &str {
    text.trim_matches([' ', '\t', '\r', '\n'])
}

/// RFC 3261 §25.1 `token`.
fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// RFC 3428 §8's ceiling for a MESSAGE request outside a media session, in bytes of the whole request (start
/// line, headers and body).
pub const MAX_PAGER_MESSAGE: usize = 1300;

/// Whether an XMPP message must be refused with `<policy-violation/>` because the SIP MESSAGE it becomes
/// would be `message_len` bytes (RFC 7572 §6).
///
/// Decision: the gateway applies the limit on every route, although its own hop is always TLS over TCP.
/// RFC 3428 §8 lifts the limit only when "the UAC has positive knowledge that the message will not traverse a
/// congestion-unsafe link at any hop", and the gateway knows only its first hop: the peer's proxy may well
/// relay the MESSAGE to its user agent over UDP. RFC 7572 §6 then says the gateway SHOULD answer
/// `<policy-violation/>` rather than send, and it offers no fallback beyond an MSRP upgrade it leaves
/// unspecified.
pub fn exceeds_pager_limit(message_len: usize) -> bool {
    message_len > MAX_PAGER_MESSAGE
}

/// The XMPP `xml:lang` for a SIP `Content-Language` header value (RFC 7572 §8): the first well-formed
/// language tag, as sent. `xml:lang` holds one tag, and the first is the one the sender listed first.
pub fn xml_lang_from_content_language(value: &str) -> Option<String> {
    value
        .split(',')
        .find_map(|tag| language_tag(trim_lws(tag)))
        .map(str::to_owned)
}

/// The SIP `Content-Language` value for an XMPP `xml:lang` (RFC 7572 §8), or `None` when it is empty (XML's
/// way of saying "no language") or not a tag SIP's grammar accepts.
pub fn content_language_from_xml_lang(lang: &str) -> Option<String> {
    language_tag(trim_lws(lang)).map(str::to_owned)
}

/// RFC 3261 §20.13 `language-tag`, widened to RFC 5646's alphanumeric subtags (`es-419`).
fn language_tag(tag: &str) -> Option<&str> {
    let mut subtags = tag.split('-');
    let primary = subtags.next()?;
    let ok = (1..=8).contains(&primary.len())
        && primary.bytes().all(|b| b.is_ascii_alphabetic())
        && subtags
            .all(|s| (1..=8).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric()));
    ok.then_some(tag)
}

/// The SIP `Subject` header value for an XMPP `<subject/>`: runs of control characters (line breaks above all,
/// which a header cannot hold, RFC 3261 §7.3.1) become one space, and the ends are trimmed.
pub fn subject_to_sip(subject: &str) -> String {
    let mut out = String::with_capacity(subject.len());
    let mut in_break = false;
    for c in subject.chars() {
        if c.is_control() {
            in_break = true;
            continue;
        }
        if in_break && !out.is_empty() {
            out.push(' ');
        }
        in_break = false;
        out.push(c);
    }
    out.trim().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_kinds() {
        let cases = [
            (None, Some(MessageKind::Normal)),
            (Some("normal"), Some(MessageKind::Normal)),
            (Some("chat"), Some(MessageKind::Chat)),
            (Some("groupchat"), None),
            (Some("headline"), None),
            (Some("error"), None),
            (Some("Chat"), None),
        ];
        for (value, kind) in cases {
            assert_eq!(MessageKind::from_xmpp_type(value), kind, "{value:?}");
        }
        for kind in [MessageKind::Normal, MessageKind::Chat] {
            assert_eq!(
                MessageKind::from_xmpp_type(Some(kind.as_xmpp_type())),
                Some(kind)
            );
        }
        let message = InstantMessage::new("hi");
        assert_eq!(
            (message.body.as_str(), message.kind),
            ("hi", MessageKind::Normal)
        );
    }

    #[test]
    fn call_ids() {
        for good in [
            "9E97FB43-85F4-4A00-8751-1124FD4C7B2E",
            "a84b4c76e66710@pc33.atlanta.com",
            r#"!%*_+`'~()<>:\"/[]?{}.-@x"#,
        ] {
            assert_eq!(CallId::parse(good).unwrap().as_str(), good);
        }
        let cases = [
            ("", CallIdError::Empty),
            ("a b", CallIdError::BadChar(' ')),
            ("a;b", CallIdError::BadChar(';')),
            ("caf\u{e9}", CallIdError::BadChar('\u{e9}')),
            ("a@b@c", CallIdError::BadAt),
            ("@b", CallIdError::BadAt),
            ("a@", CallIdError::BadAt),
        ];
        for (text, error) in cases {
            assert_eq!(CallId::parse(text), Err(error), "{text}");
        }
        assert!(CallId::parse(&"a".repeat(MAX_CALL_ID)).is_ok());
        assert_eq!(
            CallId::parse(&"a".repeat(MAX_CALL_ID + 1)),
            Err(CallIdError::TooLong(MAX_CALL_ID + 1))
        );
    }

    #[test]
    fn threads_and_call_ids() {
        // RFC 7572 Example 4's Call-ID survives SIP → XMPP → SIP.
        let call_id = CallId::parse("9E97FB43-85F4-4A00-8751-1124FD4C7B2E").unwrap();
        let thread = thread_from_call_id(&call_id);
        assert_eq!(thread, "9E97FB43-85F4-4A00-8751-1124FD4C7B2E");
        assert_eq!(call_id_from_thread(&thread), call_id);

        let cases = [
            (
                "e0ffe42b28561960c6b12b944a092794b9683a38",
                "e0ffe42b28561960c6b12b944a092794b9683a38",
            ),
            ("a b@c@d", "a%20b%40c%40d"),
            ("50%", "50%"),
            ("50 %", "50%20%25"),
            ("th\u{e9}", "th%C3%A9"),
            ("", "cbf29ce484222325"),
        ];
        for (thread, expected) in cases {
            assert_eq!(call_id_from_thread(thread).as_str(), expected, "{thread:?}");
        }

        let long = " ".repeat(100);
        let call_id = call_id_from_thread(&long);
        assert_eq!(call_id.as_str().len(), MAX_CALL_ID - 2);
        assert!(call_id.as_str().starts_with("%20%20"));
        assert_eq!(CallId::parse(call_id.as_str()), Ok(call_id.clone()));
        assert_eq!(call_id_from_thread(&long), call_id);
        assert_ne!(call_id_from_thread(&" ".repeat(101)), call_id);
    }

    #[test]
    fn accepted_bodies() {
        let cases: [(&str, &[u8], &str); 9] = [
            ("text/plain", b"Neither, fair saint", "Neither, fair saint"),
            ("TEXT/Plain", b"x", "x"),
            (
                "text/plain;charset=UTF-8",
                "Nic z ob\u{e9}ho".as_bytes(),
                "Nic z ob\u{e9}ho",
            ),
            ("text/plain ; Charset = \"utf-8\"", b"x", "x"),
            ("text/plain;charset=us-ascii", b"plain", "plain"),
            ("text/plain;format=flowed;delsp=yes", b"a\r\nb", "a\r\nb"),
            ("text/plain;", b"", ""),
            ("text/plain;x=\"a;b\\\"c\";charset=utf-8", b"\tx", "\tx"),
            ("text/plain", "\u{1f600}".as_bytes(), "\u{1f600}"),
        ];
        for (content_type, body, text) in cases {
            assert_eq!(
                sip_body_to_text(content_type, body).as_deref(),
                Ok(text),
                "{content_type}"
            );
        }
    }

    #[test]
    fn refused_bodies() {
        let cases: [(&str, &[u8], BodyError, u16); 14] = [
            (
                "text/html",
                b"<b>x</b>",
                BodyError::UnsupportedMediaType("text/html".into()),
                415,
            ),
            (
                "message/cpim",
                b"x",
                BodyError::UnsupportedMediaType("message/cpim".into()),
                415,
            ),
            (
                "application/im-iscomposing+xml",
                b"x",
                BodyError::UnsupportedMediaType("application/im-iscomposing+xml".into()),
                415,
            ),
            (
                "text/plain;charset=ISO-8859-1",
                b"caf\xe9",
                BodyError::UnsupportedCharset("iso-8859-1".into()),
                415,
            ),
            (
                "text/plain;charset=utf-16",
                b"x",
                BodyError::UnsupportedCharset("utf-16".into()),
                415,
            ),
            ("text/plain", b"caf\xe9", BodyError::NotUtf8, 400),
            ("text/plain;charset=utf-8", b"\xff", BodyError::NotUtf8, 400),
            (
                "text/plain;charset=us-ascii",
                "caf\u{e9}".as_bytes(),
                BodyError::NotAscii,
                400,
            ),
            ("text/plain", b"a\0b", BodyError::NotXmlText('\0'), 400),
            (
                "text/plain",
                "\u{fffe}".as_bytes(),
                BodyError::NotXmlText('\u{fffe}'),
                400,
            ),
            (
                "text/plain;charset=utf-8;charset=us-ascii",
                b"x",
                BodyError::MalformedContentType,
                400,
            ),
            ("textplain", b"x", BodyError::MalformedContentType, 400),
            (
                "text/plain;charset",
                b"x",
                BodyError::MalformedContentType,
                400,
            ),
            (
                "text/plain;charset=\"utf-8",
                b"x",
                BodyError::MalformedContentType,
                400,
            ),
        ];
        for (content_type, body, error, status) in cases {
            let refused = sip_body_to_text(content_type, body).unwrap_err();
            assert_eq!(refused, error, "{content_type}");
            assert_eq!(refused.sip_status(), status, "{content_type}");
        }
        for malformed in [
            "",
            "/plain",
            "text/",
            "te xt/plain",
            "text/plain;a b=c",
            "text/plain;a=b c",
        ] {
            assert_eq!(
                sip_body_to_text(malformed, b"x"),
                Err(BodyError::MalformedContentType),
                "{malformed}"
            );
        }
    }

    #[test]
    fn outgoing_bodies() {
        let (content_type, body) = text_to_sip_body("Art thou not Romeo, and a Montague?");
        assert_eq!(content_type, "text/plain;charset=UTF-8");
        assert_eq!(body.len(), 35);
        assert_eq!(
            sip_body_to_text(content_type, &body).unwrap(),
            "Art thou not Romeo, and a Montague?"
        );
    }

    #[test]
    fn pager_limit() {
        assert_eq!(MAX_PAGER_MESSAGE, 1300);
        assert!(!exceeds_pager_limit(0));
        assert!(!exceeds_pager_limit(1300));
        assert!(exceeds_pager_limit(1301));
    }

    #[test]
    fn languages() {
        let cases = [
            ("cs", Some("cs")),
            ("en-US", Some("en-US")),
            ("es-419, en", Some("es-419")),
            (" fr ,de", Some("fr")),
            ("x y, de", Some("de")),
            ("", None),
            ("toolongprimary", None),
            ("en-", None),
            ("1en", None),
        ];
        for (header, lang) in cases {
            assert_eq!(
                xml_lang_from_content_language(header).as_deref(),
                lang,
                "{header}"
            );
        }
        assert_eq!(content_language_from_xml_lang("cs").as_deref(), Some("cs"));
        assert_eq!(
            content_language_from_xml_lang("zh-Hant-TW").as_deref(),
            Some("zh-Hant-TW")
        );
        assert_eq!(content_language_from_xml_lang(""), None);
        assert_eq!(content_language_from_xml_lang("en,de"), None);
    }

    #[test]
    fn subjects() {
        let cases = [
            ("Hello", "Hello"),
            ("line one\r\nline two", "line one line two"),
            ("\n\ttrim\n", "trim"),
            ("a\u{0}\u{7f}b", "a b"),
            ("", ""),
        ];
        for (subject, header) in cases {
            assert_eq!(subject_to_sip(subject), header, "{subject:?}");
        }
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            /// Any thread gives a valid Call-ID, always the same one.
            #[test]
            fn every_thread_gives_a_valid_call_id(thread in "\\PC{0,300}") {
                let call_id = call_id_from_thread(&thread);
                prop_assert_eq!(CallId::parse(call_id.as_str()), Ok(call_id.clone()));
                prop_assert_eq!(call_id_from_thread(&thread), call_id);
            }

            /// Call-ID → thread → Call-ID is exact.
            #[test]
            fn call_ids_survive_a_thread(text in "[a-zA-Z0-9.!%*_+`'~()<>:\"/\\[\\]?{}-]{1,40}(@[a-zA-Z0-9.-]{1,20})?") {
                let call_id = CallId::parse(&text).unwrap();
                prop_assert_eq!(call_id_from_thread(&thread_from_call_id(&call_id)), call_id);
            }

            /// Text sent to SIP comes back as the same text.
            #[test]
            fn bodies_round_trip(text in "[\\t\\n\\r\\u{20}-\\u{d7ff}\\u{e000}-\\u{fffd}]{0,200}") {
                let (content_type, body) = text_to_sip_body(&text);
                prop_assert_eq!(sip_body_to_text(content_type, &body), Ok(text));
            }
        }
    }
}
