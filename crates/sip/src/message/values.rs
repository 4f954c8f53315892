//! Typed header values and the small validated types they are made of.
//!
//! Every type here writes itself back in the syntax it was parsed from (`Display`), so a value taken from
//! one message can be pushed into another with `headers.push(name, value.to_string())`.

use std::fmt;
use std::net::IpAddr;

use thiserror::Error;

use super::syntax::{self, Cursor};
use super::uri::{HostPort, Uri};

/// A value that does not have the syntax its type requires.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[error("invalid {what}: {text:?}")]
pub struct InvalidValue {
    what: &'static str,
    text: String,
}

impl InvalidValue {
    pub(super) fn new(what: &'static str, text: &str) -> Self {
        // The text can come from the network; a bounded copy keeps errors cheap to keep and log.
        let text = text.chars().take(80).collect();
        Self { what, text }
    }

    /// What kind of value was expected, such as `"URI"` or `"token"`.
    pub fn what(&self) -> &'static str {
        self.what
    }
}

/// An RFC 3261 `token` (§25.1): tags, option tags, transports, event packages, extension methods.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Token(Box<str>);

impl Token {
    /// Checks that `text` is a token.
    pub fn new(text: &str) -> Result<Self, InvalidValue> {
        if syntax::is_token(text) {
            Ok(Self(text.into()))
        } else {
            Err(InvalidValue::new("token", text))
        }
    }

    /// A token made of `prefix` (which must itself be token text, or is dropped) and `value` in
    /// lower-case hex, for generated tags and branches.
    pub fn from_u64(prefix: &str, value: u64) -> Self {
        let prefix = if syntax::is_token(prefix) { prefix } else { "" };
        Self(format!("{prefix}{value:016x}").into())
    }

    /// The token's text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares as RFC 3261 §7.3.1 says tokens compare: ignoring case.
    pub fn eq_ignore_case(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Token({})", self.0)
    }
}

impl std::str::FromStr for Token {
    type Err = InvalidValue;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

/// A request method. Method names are case-sensitive (RFC 3261 §7.1): `invite` is an extension method,
/// not `INVITE`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum Method {
    /// `ACK` (RFC 3261).
    Ack,
    /// `BYE` (RFC 3261).
    Bye,
    /// `CANCEL` (RFC 3261).
    Cancel,
    /// `INFO` (RFC 6086).
    Info,
    /// `INVITE` (RFC 3261).
    Invite,
    /// `MESSAGE` (RFC 3428).
    Message,
    /// `NOTIFY` (RFC 6665).
    Notify,
    /// `OPTIONS` (RFC 3261).
    Options,
    /// `PRACK` (RFC 3262).
    Prack,
    /// `PUBLISH` (RFC 3903).
    Publish,
    /// `REFER` (RFC 3515).
    Refer,
    /// `REGISTER` (RFC 3261).
    Register,
    /// `SUBSCRIBE` (RFC 6665).
    Subscribe,
    /// `UPDATE` (RFC 3311).
    Update,
    /// Any other method name.
    Extension(Token),
}

impl Method {
    const KNOWN: [(&'static str, Self); 14] = [
        ("ACK", Self::Ack),
        ("BYE", Self::Bye),
        ("CANCEL", Self::Cancel),
        ("INFO", Self::Info),
        ("INVITE", Self::Invite),
        ("MESSAGE", Self::Message),
        ("NOTIFY", Self::Notify),
        ("OPTIONS", Self::Options),
        ("PRACK", Self::Prack),
        ("PUBLISH", Self::Publish),
        ("REFER", Self::Refer),
        ("REGISTER", Self::Register),
        ("SUBSCRIBE", Self::Subscribe),
        ("UPDATE", Self::Update),
    ];

    /// Parses a method name.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if let Some((_, method)) = Self::KNOWN.iter().find(|(name, _)| *name == text) {
            return Ok(method.clone());
        }
        Token::new(text)
            .map(Self::Extension)
            .map_err(|_| InvalidValue::new("method", text))
    }

    /// The method name.
    pub fn as_str(&self) -> &str {
        if let Self::Extension(token) = self {
            return token.as_str();
        }
        Self::KNOWN
            .iter()
            .find(|(_, method)| method == self)
            .map_or("", |(name, _)| name)
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Method {
    type Err = InvalidValue;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// A response status code, 100 to 699 (RFC 3261 §7.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

impl StatusCode {
    /// 100 Trying.
    pub const TRYING: Self = Self(100);
    /// 200 OK.
    pub const OK: Self = Self(200);
    /// 202 Accepted.
    pub const ACCEPTED: Self = Self(202);
    /// 400 Bad Request.
    pub const BAD_REQUEST: Self = Self(400);
    /// 403 Forbidden.
    pub const FORBIDDEN: Self = Self(403);
    /// 404 Not Found.
    pub const NOT_FOUND: Self = Self(404);
    /// 405 Method Not Allowed.
    pub const METHOD_NOT_ALLOWED: Self = Self(405);
    /// 408 Request Timeout.
    pub const REQUEST_TIMEOUT: Self = Self(408);
    /// 413 Request Entity Too Large.
    pub const REQUEST_ENTITY_TOO_LARGE: Self = Self(413);
    /// 415 Unsupported Media Type.
    pub const UNSUPPORTED_MEDIA_TYPE: Self = Self(415);
    /// 420 Bad Extension.
    pub const BAD_EXTENSION: Self = Self(420);
    /// 423 Interval Too Brief.
    pub const INTERVAL_TOO_BRIEF: Self = Self(423);
    /// 480 Temporarily Unavailable.
    pub const TEMPORARILY_UNAVAILABLE: Self = Self(480);
    /// 481 Call/Transaction Does Not Exist.
    pub const CALL_OR_TRANSACTION_DOES_NOT_EXIST: Self = Self(481);
    /// 482 Loop Detected.
    pub const LOOP_DETECTED: Self = Self(482);
    /// 483 Too Many Hops.
    pub const TOO_MANY_HOPS: Self = Self(483);
    /// 489 Bad Event.
    pub const BAD_EVENT: Self = Self(489);
    /// 500 Server Internal Error.
    pub const SERVER_INTERNAL_ERROR: Self = Self(500);
    /// 501 Not Implemented.
    pub const NOT_IMPLEMENTED: Self = Self(501);
    /// 503 Service Unavailable.
    pub const SERVICE_UNAVAILABLE: Self = Self(503);
    /// 505 Version Not Supported.
    pub const VERSION_NOT_SUPPORTED: Self = Self(505);
    /// 513 Message Too Large.
    pub const MESSAGE_TOO_LARGE: Self = Self(513);

    /// A status code, if `code` is in 100..=699.
    pub fn new(code: u16) -> Option<Self> {
        (100..=699).contains(&code).then_some(Self(code))
    }

    /// The number.
    pub fn as_u16(self) -> u16 {
        self.0
    }

    /// 1xx.
    pub fn is_provisional(self) -> bool {
        self.0 < 200
    }

    /// 2xx.
    pub fn is_success(self) -> bool {
        (200..300).contains(&self.0)
    }

    /// Anything from 200 up: the response that ends a transaction.
    pub fn is_final(self) -> bool {
        self.0 >= 200
    }

    /// The reason phrase RFC 3261 §21 (and the RFCs adding codes) gives, or `""` for codes they do not.
    pub fn canonical_reason(self) -> &'static str {
        match self.0 {
            100 => "Trying",
            180 => "Ringing",
            181 => "Call Is Being Forwarded",
            182 => "Queued",
            183 => "Session Progress",
            200 => "OK",
            202 => "Accepted",
            204 => "No Notification",
            300 => "Multiple Choices",
            301 => "Moved Permanently",
            302 => "Moved Temporarily",
            305 => "Use Proxy",
            380 => "Alternative Service",
            400 => "Bad Request",
            401 => "Unauthorized",
            402 => "Payment Required",
            403 => "Forbidden",
            404 => "Not Found",
            405 => "Method Not Allowed",
            406 => "Not Acceptable",
            407 => "Proxy Authentication Required",
            408 => "Request Timeout",
            410 => "Gone",
            412 => "Conditional Request Failed",
            413 => "Request Entity Too Large",
            414 => "Request-URI Too Long",
            415 => "Unsupported Media Type",
            416 => "Unsupported URI Scheme",
            420 => "Bad Extension",
            421 => "Extension Required",
            423 => "Interval Too Brief",
            480 => "Temporarily Unavailable",
            481 => "Call/Transaction Does Not Exist",
            482 => "Loop Detected",
            483 => "Too Many Hops",
            484 => "Address Incomplete",
            485 => "Ambiguous",
            486 => "Busy Here",
            487 => "Request Terminated",
            488 => "Not Acceptable Here",
            489 => "Bad Event",
            491 => "Request Pending",
            493 => "Undecipherable",
            500 => "Server Internal Error",
            501 => "Not Implemented",
            502 => "Bad Gateway",
            503 => "Service Unavailable",
            504 => "Server Time-out",
            505 => "Version Not Supported",
            513 => "Message Too Large",
            600 => "Busy Everywhere",
            603 => "Decline",
            604 => "Does Not Exist Anywhere",
            606 => "Not Acceptable",
            _ => "",
        }
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A `Call-ID` (RFC 3261 §20.8): the core's type, so that the translation core and the SIP side share one
/// notion of a valid Call-ID.
pub use sixgate_core::CallId;

/// `CSeq`: a sequence number below 2³¹ and the request's method (RFC 3261 §8.1.1.5, §20.16).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct CSeq {
    /// The sequence number.
    pub number: u32,
    /// The method of the request.
    pub method: Method,
}

impl CSeq {
    /// Largest sequence number RFC 3261 §8.1.1.5 allows.
    pub const MAX: u32 = (1 << 31) - 1;

    pub(super) fn parse(value: &str) -> Result<Self, &'static str> {
        let mut cursor = Cursor::new(value);
        let digits = cursor.take_while(|b| b.is_ascii_digit());
        let number = syntax::parse_u32(digits)
            .filter(|number| *number <= Self::MAX)
            .ok_or("expected a sequence number below 2^31")?;
        if !cursor.peek().is_some_and(syntax::is_wsp) {
            return Err("expected whitespace after the sequence number");
        }
        cursor.skip_ws();
        let method = cursor.token("expected a method")?;
        cursor.end("unexpected text after the method")?;
        let method = Method::parse(method).map_err(|_| "invalid method")?;
        Ok(Self { number, method })
    }
}

impl fmt::Display for CSeq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.number, self.method)
    }
}

/// One `;name` or `;name=value` parameter. Values are kept as written, quotes included.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Param {
    name: Box<str>,
    value: Option<Box<str>>,
}

impl Param {
    /// The name as written. Parameter names compare ignoring case (RFC 3261 §7.3.1).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The value as written, quotes and escapes included, or `None` for a parameter without one.
    pub fn value(&self) -> Option<&str> {
        self.value.as_deref()
    }

    /// The value with quotes and escapes removed.
    pub fn text(&self) -> Option<String> {
        self.value.as_deref().map(syntax::unquote)
    }
}

/// The parameters after a header value, in order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Params(Vec<Param>);

impl Params {
    /// No parameters.
    pub fn new() -> Self {
        Self::default()
    }

    pub(super) fn from_parsed(parsed: Vec<(&str, Option<&str>)>) -> Self {
        Self(
            parsed
                .into_iter()
                .map(|(name, value)| Param {
                    name: name.into(),
                    value: value.map(Into::into),
                })
                .collect(),
        )
    }

    /// The parameters in order.
    pub fn iter(&self) -> impl Iterator<Item = &Param> {
        self.0.iter()
    }

    /// Number of parameters.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The first parameter called `name`, compared ignoring case.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.0
            .iter()
            .find(|param| param.name.eq_ignore_ascii_case(name))
    }

    /// Whether a parameter called `name` is present, with or without a value.
    pub fn contains(&self, name: &str) -> bool {
        self.get(name).is_some()
    }

    /// The raw value of parameter `name`; `None` if it is absent or has no value.
    pub fn value(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Param::value)
    }

    /// Sets parameter `name`, replacing the first one of that name or appending. `value` must be a token,
    /// a host, or a complete quoted string (RFC 3261 `gen-value`).
    pub fn set(&mut self, name: &str, value: Option<&str>) -> Result<(), InvalidValue> {
        if !syntax::is_token(name) {
            return Err(InvalidValue::new("parameter name", name));
        }
        if let Some(value) = value
            && !syntax::is_param_value(value)
        {
            return Err(InvalidValue::new("parameter value", value));
        }
        let param = Param {
            name: name.into(),
            value: value.map(Into::into),
        };
        match self
            .0
            .iter_mut()
            .find(|p| p.name.eq_ignore_ascii_case(name))
        {
            Some(existing) => *existing = param,
            None => self.0.push(param),
        }
        Ok(())
    }

    /// Sets parameter `name` to `text` as a quoted string, escaping as needed.
    pub fn set_quoted(&mut self, name: &str, text: &str) -> Result<(), InvalidValue> {
        self.set(name, Some(&syntax::quote(text)))
    }

    /// Removes every parameter called `name`; returns whether there was one.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.0.len();
        self.0
            .retain(|param| !param.name.eq_ignore_ascii_case(name));
        self.0.len() != before
    }
}

impl fmt::Display for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for param in &self.0 {
            write!(f, ";{}", param.name)?;
            if let Some(value) = &param.value {
                write!(f, "={value}")?;
            }
        }
        Ok(())
    }
}

/// One `Via` value (RFC 3261 §20.42): `SIP/2.0/<transport> <sent-by>` and parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Via {
    /// `TLS`, `TCP`, `UDP`, `WSS`... as written.
    pub transport: Token,
    /// Where the sender wants responses sent.
    pub sent_by: HostPort,
    /// `branch`, `received`, `rport`, `maddr`, and anything else, such as Lync's `ms-received-port`.
    pub params: Params,
}

impl Via {
    /// The RFC 3261 §8.1.1.7 magic cookie that starts every branch of a compliant element.
    pub const MAGIC_COOKIE: &'static str = "z9hG4bK";

    /// A `Via` with a branch and no other parameters.
    pub fn new(transport: Token, sent_by: HostPort, branch: &Token) -> Self {
        let mut params = Params::new();
        params.0.push(Param {
            name: "branch".into(),
            value: Some(branch.as_str().into()),
        });
        Self {
            transport,
            sent_by,
            params,
        }
    }

    /// The `branch` parameter.
    pub fn branch(&self) -> Option<&str> {
        self.params.value("branch")
    }

    /// The branch, if it starts with the magic cookie (RFC 3261 §8.1.1.7). Elements that follow RFC 2543
    /// send other branches, or none; transaction matching then needs the §17.2.3 fallback this crate
    /// does not implement.
    pub fn cookie_branch(&self) -> Option<&str> {
        self.branch().filter(|branch| {
            branch
                .get(..Self::MAGIC_COOKIE.len())
                .is_some_and(|prefix| prefix.eq_ignore_ascii_case(Self::MAGIC_COOKIE))
                && branch.len() > Self::MAGIC_COOKIE.len()
        })
    }

    /// The `received` address a server added (§18.2.1). IPv6 is accepted with or without brackets, as
    /// both are seen (RFC 5118 §4.5). `None` if absent or not an address.
    pub fn received(&self) -> Option<IpAddr> {
        let value = self.params.value("received")?;
        let bare = value
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(value);
        bare.parse().ok()
    }

    /// Whether `rport` is present (RFC 3581), with or without a value.
    pub fn has_rport(&self) -> bool {
        self.params.contains("rport")
    }

    /// The port a server filled into `rport` (RFC 3581 §4).
    pub fn rport(&self) -> Option<u16> {
        self.params.value("rport")?.parse().ok()
    }

    pub(super) fn parse(value: &str) -> Result<Self, &'static str> {
        let mut cursor = Cursor::new(value);
        cursor.skip_ws();
        let protocol = cursor.token("expected SIP/2.0")?;
        cursor.expect_separator(b'/', "expected SIP/2.0")?;
        let version = cursor.token("expected SIP/2.0")?;
        if !protocol.eq_ignore_ascii_case("SIP") || version != "2.0" {
            return Err("expected SIP/2.0");
        }
        cursor.expect_separator(b'/', "expected a transport")?;
        let transport = cursor.token("expected a transport")?;
        if !cursor.peek().is_some_and(syntax::is_wsp) {
            return Err("expected whitespace before sent-by");
        }
        cursor.skip_ws();
        let host = cursor.take_while(|b| b.is_ascii_alphanumeric() || b"-._[]:".contains(&b));
        let sent_by = HostPort::parse(host).map_err(|_| "invalid sent-by")?;
        let params = cursor.params()?;
        cursor.end("unexpected text in Via")?;
        Ok(Self {
            transport: Token::new(transport).map_err(|_| "invalid transport")?,
            sent_by,
            params: Params::from_parsed(params),
        })
    }
}

impl fmt::Display for Via {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SIP/2.0/{} {}{}",
            self.transport, self.sent_by, self.params
        )
    }
}

/// A URI with an optional display name and header parameters: `From`, `To`, `Contact`, `Route`,
/// `Record-Route` (RFC 3261 §20.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddr {
    /// The display name, unquoted and unescaped.
    pub display_name: Option<String>,
    /// The address.
    pub uri: Uri,
    /// Header parameters: `tag` in `From`/`To`, `expires` in `Contact`, and so on. Parameters inside
    /// `<...>` belong to the URI instead.
    pub params: Params,
}

impl NameAddr {
    /// An address without display name or parameters.
    pub fn new(uri: Uri) -> Self {
        Self {
            display_name: None,
            uri,
            params: Params::new(),
        }
    }

    /// The `tag` parameter (RFC 3261 §19.3).
    pub fn tag(&self) -> Option<&str> {
        self.params.value("tag")
    }

    /// `name-addr / addr-spec` with parameters. With `require_brackets`, only `name-addr` is accepted,
    /// as in `Route` and `Record-Route`.
    pub(super) fn parse(value: &str, require_brackets: bool) -> Result<Self, &'static str> {
        let mut cursor = Cursor::new(value);
        cursor.skip_ws();
        let display_name = if cursor.peek() == Some(b'"') {
            let quoted = cursor.quoted_string()?;
            cursor.skip_ws();
            if cursor.peek() != Some(b'<') {
                return Err("expected <URI> after the display name");
            }
            Some(syntax::unquote(quoted))
        } else {
            // Words before a `<` are a display name; when they are not tokens, the `<` must be inside a
            // parameter of an addr-spec instead, such as `sip:a@b;x="<y>"`.
            let rest = cursor.rest();
            let words: Option<Vec<&str>> = rest.find('<').and_then(|open| {
                let words: Vec<&str> = rest
                    .get(..open)
                    .unwrap_or_default()
                    .split([' ', '\t'])
                    .filter(|word| !word.is_empty())
                    .collect();
                words
                    .iter()
                    .all(|word| syntax::is_token(word))
                    .then_some(words)
            });
            words.and_then(|words| {
                cursor.take_while(|b| b != b'<');
                (!words.is_empty()).then(|| words.join(" "))
            })
        };
        let uri = if cursor.eat(b'<') {
            let uri = cursor.take_while(|b| b != b'>');
            if !cursor.eat(b'>') {
                return Err("expected > after the URI");
            }
            uri
        } else if require_brackets {
            return Err("expected <URI>");
        } else {
            // Without brackets the URI cannot contain `;`, `,` or `?` (§20.10): a `;` starts the header's
            // parameters.
            cursor.take_while(|b| !matches!(b, b';' | b' ' | b'\t' | b','))
        };
        let uri = Uri::parse(uri).map_err(|_| "invalid URI")?;
        let params = cursor.params()?;
        cursor.end("unexpected text after the address")?;
        Ok(Self {
            display_name,
            uri,
            params: Params::from_parsed(params),
        })
    }
}

impl fmt::Display for NameAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Always the bracketed form: it is the only one that is unambiguous for every URI (§20.10).
        if let Some(name) = &self.display_name {
            write!(f, "{} ", syntax::quote(name))?;
        }
        write!(f, "<{}>{}", self.uri, self.params)
    }
}

/// A media type (`Content-Type`, §20.15) or media range (`Accept`, §20.1), with parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaType {
    /// Top-level type such as `text`, or `*` in a range.
    pub kind: Token,
    /// Subtype such as `plain`, or `*` in a range.
    pub subtype: Token,
    /// `charset`, `q`, and so on.
    pub params: Params,
}

impl MediaType {
    /// Whether this is `kind/subtype`, ignoring case as media types compare.
    pub fn is(&self, kind: &str, subtype: &str) -> bool {
        self.kind.eq_ignore_case(kind) && self.subtype.eq_ignore_case(subtype)
    }

    /// The `charset` parameter, unquoted.
    pub fn charset(&self) -> Option<String> {
        self.params.get("charset").and_then(Param::text)
    }

    pub(super) fn parse(value: &str) -> Result<Self, &'static str> {
        let mut cursor = Cursor::new(value);
        cursor.skip_ws();
        let kind = cursor.token("expected a media type")?;
        cursor.expect_separator(b'/', "expected / in the media type")?;
        let subtype = cursor.token("expected a media subtype")?;
        let params = cursor.params()?;
        cursor.end("unexpected text after the media type")?;
        Ok(Self {
            kind: Token::new(kind).map_err(|_| "invalid media type")?,
            subtype: Token::new(subtype).map_err(|_| "invalid media subtype")?,
            params: Params::from_parsed(params),
        })
    }
}

impl fmt::Display for MediaType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}{}", self.kind, self.subtype, self.params)
    }
}

/// A token with parameters: `Event` (RFC 6665 §8.2.1) and `Reason`'s protocol (RFC 3326).
fn token_with_params(value: &str, what: &'static str) -> Result<(Token, Params), &'static str> {
    let mut cursor = Cursor::new(value);
    cursor.skip_ws();
    let token = cursor.token(what)?;
    let params = cursor.params()?;
    cursor.end("unexpected text after the parameters")?;
    Ok((
        Token::new(token).map_err(|_| what)?,
        Params::from_parsed(params),
    ))
}

/// `Event` (RFC 6665 §8.2.1): an event package and its parameters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The package, such as `presence`.
    pub package: Token,
    /// Parameters; `id` tells subscriptions in one dialog apart.
    pub params: Params,
}

impl Event {
    /// The `id` parameter.
    pub fn id(&self) -> Option<&str> {
        self.params.value("id")
    }

    pub(super) fn parse(value: &str) -> Result<Self, &'static str> {
        let (package, params) = token_with_params(value, "expected an event package")?;
        Ok(Self { package, params })
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.package, self.params)
    }
}

/// The state in a `Subscription-State` header (RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    /// `active`.
    Active,
    /// `pending`.
    Pending,
    /// `terminated`.
    Terminated,
    /// An extension value, which RFC 6665 §4.1.3 says to treat as `active`.
    Extension(Token),
}

impl fmt::Display for SubState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Active => f.write_str("active"),
            Self::Pending => f.write_str("pending"),
            Self::Terminated => f.write_str("terminated"),
            Self::Extension(token) => write!(f, "{token}"),
        }
    }
}

/// `Subscription-State` (RFC 6665 §8.2.3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// The state.
    pub state: SubState,
    /// Every parameter, including `expires`, `reason` and `retry-after` read below.
    pub params: Params,
}

impl SubscriptionState {
    /// Seconds the subscription still has, from `expires`. `None` if absent or not a number.
    pub fn expires(&self) -> Option<u32> {
        syntax::parse_u32(self.params.value("expires")?)
    }

    /// Why a subscription was terminated (`reason`), such as `timeout` or `rejected`.
    pub fn reason(&self) -> Option<&str> {
        self.params.value("reason")
    }

    /// When to try again after termination, from `retry-after`.
    pub fn retry_after(&self) -> Option<u32> {
        syntax::parse_u32(self.params.value("retry-after")?)
    }

    pub(super) fn parse(value: &str) -> Result<Self, &'static str> {
        let (state, params) = token_with_params(value, "expected a subscription state")?;
        let state = match state.as_str().to_ascii_lowercase().as_str() {
            "active" => SubState::Active,
            "pending" => SubState::Pending,
            "terminated" => SubState::Terminated,
            _ => SubState::Extension(state),
        };
        for name in ["expires", "retry-after"] {
            if let Some(param) = params.get(name)
                && param.value().and_then(syntax::parse_u32).is_none()
            {
                return Err("expires and retry-after must be delta-seconds");
            }
        }
        Ok(Self { state, params })
    }
}

impl fmt::Display for SubscriptionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.state, self.params)
    }
}

/// One `Reason` value (RFC 3326): a protocol with `cause` and `text`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reason {
    /// `SIP`, `Q.850`, or another protocol token.
    pub protocol: Token,
    /// `cause`, `text`, and any extension parameters.
    pub params: Params,
}

impl Reason {
    /// A `Reason: SIP;cause=<code>;text="<text>"`.
    pub fn sip(status: StatusCode, text: &str) -> Self {
        let mut params = Params::new();
        params.0.push(Param {
            name: "cause".into(),
            value: Some(status.to_string().into()),
        });
        params.0.push(Param {
            name: "text".into(),
            value: Some(syntax::quote(text).into()),
        });
        Self {
            protocol: Token(Box::from("SIP")),
            params,
        }
    }

    /// The `cause` number.
    pub fn cause(&self) -> Option<u16> {
        self.params.value("cause")?.parse().ok()
    }

    /// The `text`, unquoted.
    pub fn text(&self) -> Option<String> {
        self.params.get("text").and_then(Param::text)
    }

    pub(super) fn parse(value: &str) -> Result<Self, &'static str> {
        let (protocol, params) = token_with_params(value, "expected a protocol")?;
        Ok(Self { protocol, params })
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", self.protocol, self.params)
    }
}
