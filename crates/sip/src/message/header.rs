//! Header names (with compact forms) and the ordered list of header fields without a typed field of
//! their own in [`Request`](super::Request) or [`Response`](super::Response).

use std::fmt;
use std::hash::{Hash, Hasher};

use thiserror::Error;

use super::syntax;
use super::values::{
    Event, InvalidValue, MediaType, Method, NameAddr, Reason, SubscriptionState, Token,
};

/// A header field name. Names compare ignoring case, and a compact form is the same name as its long
/// form (RFC 3261 §7.3.1, §7.3.3): `HeaderName::new("i")` is [`HeaderName::CALL_ID`]. Known names are
/// written in their canonical long form; other names as they were first written.
#[derive(Clone)]
pub struct HeaderName(Repr);

#[derive(Clone)]
enum Repr {
    Known(Known),
    Other(Box<str>),
}

macro_rules! known_headers {
    ($($konst:ident = $canonical:literal $(/ $compact:literal)?;)*) => {
        #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
        #[derive(Clone, Copy, PartialEq, Eq)]
        enum Known {
            $($konst,)*
        }

        /// Canonical name and compact form of each [`Known`] name, in the same order.
        const KNOWN: &[(&str, Option<&str>)] = &[
            $(($canonical, known_headers!(@compact $($compact)?)),)*
        ];

        const ALL_KNOWN: &[Known] = &[$(Known::$konst,)*];

        impl HeaderName {
            $(
                #[doc = concat!("`", $canonical, "`", $(", compact form `", $compact, "`",)? ".")]
                pub const $konst: Self = Self(Repr::Known(Known::$konst));
            )*
        }
    };
    (@compact $compact:literal) => { Some($compact) };
    (@compact) => { None };
}

known_headers! {
    ACCEPT = "Accept";
    ACCEPT_CONTACT = "Accept-Contact" / "a";
    ACCEPT_ENCODING = "Accept-Encoding";
    ACCEPT_LANGUAGE = "Accept-Language";
    ALERT_INFO = "Alert-Info";
    ALLOW = "Allow";
    ALLOW_EVENTS = "Allow-Events" / "u";
    AUTHENTICATION_INFO = "Authentication-Info";
    AUTHORIZATION = "Authorization";
    CALL_ID = "Call-ID" / "i";
    CALL_INFO = "Call-Info";
    CONTACT = "Contact" / "m";
    CONTENT_DISPOSITION = "Content-Disposition";
    CONTENT_ENCODING = "Content-Encoding" / "e";
    CONTENT_LANGUAGE = "Content-Language";
    CONTENT_LENGTH = "Content-Length" / "l";
    CONTENT_TYPE = "Content-Type" / "c";
    CSEQ = "CSeq";
    DATE = "Date";
    ERROR_INFO = "Error-Info";
    EVENT = "Event" / "o";
    EXPIRES = "Expires";
    FROM = "From" / "f";
    IDENTITY = "Identity" / "y";
    IDENTITY_INFO = "Identity-Info" / "n";
    IN_REPLY_TO = "In-Reply-To";
    MAX_FORWARDS = "Max-Forwards";
    MIME_VERSION = "MIME-Version";
    MIN_EXPIRES = "Min-Expires";
    ORGANIZATION = "Organization";
    PRIORITY = "Priority";
    PROXY_AUTHENTICATE = "Proxy-Authenticate";
    PROXY_AUTHORIZATION = "Proxy-Authorization";
    PROXY_REQUIRE = "Proxy-Require";
    REASON = "Reason";
    RECORD_ROUTE = "Record-Route";
    REFER_TO = "Refer-To" / "r";
    REFERRED_BY = "Referred-By" / "b";
    REJECT_CONTACT = "Reject-Contact" / "j";
    REPLY_TO = "Reply-To";
    REQUEST_DISPOSITION = "Request-Disposition" / "d";
    REQUIRE = "Require";
    RETRY_AFTER = "Retry-After";
    ROUTE = "Route";
    SERVER = "Server";
    SESSION_EXPIRES = "Session-Expires" / "x";
    SUBJECT = "Subject" / "s";
    SUBSCRIPTION_STATE = "Subscription-State";
    SUPPORTED = "Supported" / "k";
    TIMESTAMP = "Timestamp";
    TO = "To" / "t";
    UNSUPPORTED = "Unsupported";
    USER_AGENT = "User-Agent";
    VIA = "Via" / "v";
    WARNING = "Warning";
    WWW_AUTHENTICATE = "WWW-Authenticate";
}

impl HeaderName {
    /// The name for `text`, which must be a token. Long and compact forms of known names, in any case,
    /// give the same name.
    pub fn new(text: &str) -> Result<Self, InvalidValue> {
        if !syntax::is_token(text) {
            return Err(InvalidValue::new("header name", text));
        }
        let known = KNOWN
            .iter()
            .zip(ALL_KNOWN)
            .find(|((canonical, compact), _)| {
                canonical.eq_ignore_ascii_case(text)
                    || compact.is_some_and(|compact| compact.eq_ignore_ascii_case(text))
            });
        Ok(match known {
            Some((_, known)) => Self(Repr::Known(*known)),
            None => Self(Repr::Other(text.into())),
        })
    }

    /// The name as written on the wire: the canonical long form for known names.
    pub fn as_str(&self) -> &str {
        match &self.0 {
            Repr::Known(known) => KNOWN
                .get(*known as usize)
                .map_or("", |(canonical, _)| canonical),
            Repr::Other(name) => name,
        }
    }

    /// The compact form (RFC 3261 §7.3.3 and later registrations), if the name has one.
    pub fn compact(&self) -> Option<&'static str> {
        match &self.0 {
            Repr::Known(known) => KNOWN.get(*known as usize).and_then(|(_, compact)| *compact),
            Repr::Other(_) => None,
        }
    }
}

impl PartialEq for HeaderName {
    fn eq(&self, other: &Self) -> bool {
        match (&self.0, &other.0) {
            (Repr::Known(a), Repr::Known(b)) => a == b,
            // `new` maps every spelling of a known name to `Known`, so a known and an other never match.
            (Repr::Other(a), Repr::Other(b)) => a.eq_ignore_ascii_case(b),
            _ => false,
        }
    }
}

impl Eq for HeaderName {}

impl Hash for HeaderName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        for b in self.as_str().bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl fmt::Display for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl fmt::Debug for HeaderName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HeaderName({})", self.as_str())
    }
}

impl std::str::FromStr for HeaderName {
    type Err = InvalidValue;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::new(text)
    }
}

/// Why a header could not be read or stored.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HeaderError {
    /// The value does not have the header's syntax.
    #[error("invalid {name} header: {problem}")]
    Invalid {
        /// The header.
        name: HeaderName,
        /// What was wrong.
        problem: &'static str,
    },
    /// A header that may appear only once appeared more often.
    #[error("more than one {name} header")]
    Repeated {
        /// The header.
        name: HeaderName,
    },
    /// The header has a typed field of its own in [`Request`](super::Request) or
    /// [`Response`](super::Response), so it cannot be stored among the other headers.
    #[error("{name} is a field of the message, not a free header")]
    Reserved {
        /// The header.
        name: HeaderName,
    },
    /// The value contains CR, LF or NUL, which would end the header line early: header injection.
    #[error("{name} value contains a line break")]
    LineBreak {
        /// The header.
        name: HeaderName,
    },
}

/// One header field: a name and its value, unfolded and with surrounding whitespace removed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    name: HeaderName,
    value: String,
}

impl Header {
    /// The field's name.
    pub fn name(&self) -> &HeaderName {
        &self.name
    }

    /// The field's value, as received (less folding) or as pushed. May hold several comma-separated
    /// elements of a list header.
    pub fn value(&self) -> &str {
        &self.value
    }
}

/// Headers with a typed field in [`Request`](super::Request) or [`Response`](super::Response).
pub(super) fn is_reserved(name: &HeaderName) -> bool {
    [
        HeaderName::VIA,
        HeaderName::FROM,
        HeaderName::TO,
        HeaderName::CALL_ID,
        HeaderName::CSEQ,
        HeaderName::MAX_FORWARDS,
        HeaderName::CONTENT_LENGTH,
    ]
    .contains(name)
}

/// The header fields of a message other than those with typed fields, in the order received.
///
/// Fields keep their values as text; the typed accessors parse on each call and report values that do
/// not parse. That keeps a malformed header the gateway never reads from failing a whole message, as
/// RFC 3261 §16.3 asks of proxies for headers they do not need, while the headers every message needs
/// are checked by [`Message::parse`](super::Message::parse).
///
/// Two `Headers` are equal when every name has the same values in the same order: RFC 3261 §7.3.1
/// makes the order of fields with different names insignificant, and the serialiser moves the
/// proxy-processing headers forward.
#[derive(Debug, Clone, Default)]
pub struct Headers {
    fields: Vec<Header>,
}

impl PartialEq for Headers {
    fn eq(&self, other: &Self) -> bool {
        self.fields.len() == other.fields.len()
            && self
                .fields
                .iter()
                .all(|field| self.get_all(&field.name).eq(other.get_all(&field.name)))
    }
}

impl Eq for Headers {}

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends a field. Refuses names with a typed field of their own and values containing CR, LF or
    /// NUL; surrounding whitespace is removed.
    pub fn push(&mut self, name: HeaderName, value: impl Into<String>) -> Result<(), HeaderError> {
        let value = value.into();
        if is_reserved(&name) {
            return Err(HeaderError::Reserved { name });
        }
        if value.contains(['\r', '\n', '\0']) {
            return Err(HeaderError::LineBreak { name });
        }
        let trimmed = value.trim_matches([' ', '\t']);
        let value = if trimmed.len() == value.len() {
            value
        } else {
            trimmed.to_owned()
        };
        self.fields.push(Header { name, value });
        Ok(())
    }

    pub(super) fn push_parsed(&mut self, name: HeaderName, value: String) {
        self.fields.push(Header { name, value });
    }

    /// Replaces every field called `name` with one field holding `value`.
    pub fn set(&mut self, name: HeaderName, value: impl Into<String>) -> Result<(), HeaderError> {
        let value = value.into();
        if is_reserved(&name) {
            return Err(HeaderError::Reserved { name });
        }
        if value.contains(['\r', '\n', '\0']) {
            return Err(HeaderError::LineBreak { name });
        }
        self.remove(&name);
        self.push(name, value)
    }

    /// Removes every field called `name`; returns whether there was one.
    pub fn remove(&mut self, name: &HeaderName) -> bool {
        let before = self.fields.len();
        self.fields.retain(|field| field.name != *name);
        self.fields.len() != before
    }

    /// Every field, in order.
    pub fn iter(&self) -> impl Iterator<Item = &Header> {
        self.fields.iter()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// Whether a field called `name` is present.
    pub fn contains(&self, name: &HeaderName) -> bool {
        self.fields.iter().any(|field| field.name == *name)
    }

    /// The value of the first field called `name`.
    pub fn get(&self, name: &HeaderName) -> Option<&str> {
        self.fields
            .iter()
            .find(|field| field.name == *name)
            .map(|field| field.value.as_str())
    }

    /// The values of every field called `name`, in order.
    pub fn get_all<'a>(&'a self, name: &'a HeaderName) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |field| field.name == *name)
            .map(|field| field.value.as_str())
    }

    /// The value of the only field called `name`; an error if there are several.
    fn single(&self, name: &HeaderName) -> Result<Option<&str>, HeaderError> {
        let mut values = self.fields.iter().filter(|field| field.name == *name);
        let first = values.next().map(|field| field.value.as_str());
        if values.next().is_some() {
            return Err(HeaderError::Repeated { name: name.clone() });
        }
        Ok(first)
    }

    fn single_parsed<T>(
        &self,
        name: &HeaderName,
        parse: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Result<Option<T>, HeaderError> {
        self.single(name)?
            .map(|value| parse(value).map_err(|problem| invalid(name, problem)))
            .transpose()
    }

    /// Every element of every field called `name`, comma-joined values split. `None` if there is no
    /// such field, which some headers distinguish from an empty one (an empty `Accept` accepts nothing).
    fn list<T>(
        &self,
        name: &HeaderName,
        parse: impl Fn(&str) -> Result<T, &'static str>,
    ) -> Result<Option<Vec<T>>, HeaderError> {
        if !self.contains(name) {
            return Ok(None);
        }
        let mut elements = Vec::new();
        for value in self.get_all(name) {
            for element in syntax::split_list(value).map_err(|problem| invalid(name, problem))? {
                elements.push(parse(element).map_err(|problem| invalid(name, problem))?);
            }
        }
        Ok(Some(elements))
    }

    /// `Route` (RFC 3261 §20.34), top first.
    pub fn route(&self) -> Result<Vec<NameAddr>, HeaderError> {
        Ok(self
            .list(&HeaderName::ROUTE, |value| NameAddr::parse(value, true))?
            .unwrap_or_default())
    }

    /// `Record-Route` (§20.30), top first.
    pub fn record_route(&self) -> Result<Vec<NameAddr>, HeaderError> {
        Ok(self
            .list(&HeaderName::RECORD_ROUTE, |value| {
                NameAddr::parse(value, true)
            })?
            .unwrap_or_default())
    }

    /// `Contact` (§20.10). The `*` form, valid only in REGISTER, is reported as invalid.
    pub fn contact(&self) -> Result<Vec<NameAddr>, HeaderError> {
        Ok(self
            .list(&HeaderName::CONTACT, |value| {
                if value == "*" {
                    Err("wildcard Contact outside REGISTER")
                } else {
                    NameAddr::parse(value, false)
                }
            })?
            .unwrap_or_default())
    }

    /// `Content-Type` (§20.15).
    pub fn content_type(&self) -> Result<Option<MediaType>, HeaderError> {
        self.single_parsed(&HeaderName::CONTENT_TYPE, MediaType::parse)
    }

    /// `Content-Language` (§20.13): language tags.
    pub fn content_language(&self) -> Result<Vec<Token>, HeaderError> {
        Ok(self
            .list(&HeaderName::CONTENT_LANGUAGE, parse_token)?
            .unwrap_or_default())
    }

    /// `Subject` (§20.36): free text.
    pub fn subject(&self) -> Result<Option<&str>, HeaderError> {
        self.single(&HeaderName::SUBJECT)
    }

    /// `Expires` (§20.19), in seconds.
    pub fn expires(&self) -> Result<Option<u32>, HeaderError> {
        self.single_parsed(&HeaderName::EXPIRES, parse_delta_seconds)
    }

    /// `Min-Expires` (§20.23), in seconds.
    pub fn min_expires(&self) -> Result<Option<u32>, HeaderError> {
        self.single_parsed(&HeaderName::MIN_EXPIRES, parse_delta_seconds)
    }

    /// `Event` (RFC 6665 §8.2.1).
    pub fn event(&self) -> Result<Option<Event>, HeaderError> {
        self.single_parsed(&HeaderName::EVENT, Event::parse)
    }

    /// `Subscription-State` (RFC 6665 §8.2.3).
    pub fn subscription_state(&self) -> Result<Option<SubscriptionState>, HeaderError> {
        self.single_parsed(&HeaderName::SUBSCRIPTION_STATE, SubscriptionState::parse)
    }

    /// `Accept` (§20.1). `None` when absent, which for most methods means `application/sdp`; an empty
    /// list when present and empty, which means no body is acceptable.
    pub fn accept(&self) -> Result<Option<Vec<MediaType>>, HeaderError> {
        self.list(&HeaderName::ACCEPT, MediaType::parse)
    }

    /// `Allow` (§20.5). `None` when absent.
    pub fn allow(&self) -> Result<Option<Vec<Method>>, HeaderError> {
        self.list(&HeaderName::ALLOW, |value| {
            Method::parse(value).map_err(|_| "invalid method")
        })
    }

    /// `Supported` (§20.37): option tags.
    pub fn supported(&self) -> Result<Vec<Token>, HeaderError> {
        Ok(self
            .list(&HeaderName::SUPPORTED, parse_token)?
            .unwrap_or_default())
    }

    /// `Require` (§20.32): option tags the sender insists on.
    pub fn require(&self) -> Result<Vec<Token>, HeaderError> {
        Ok(self
            .list(&HeaderName::REQUIRE, parse_token)?
            .unwrap_or_default())
    }

    /// `Reason` (RFC 3326).
    pub fn reason(&self) -> Result<Vec<Reason>, HeaderError> {
        Ok(self
            .list(&HeaderName::REASON, Reason::parse)?
            .unwrap_or_default())
    }
}

fn invalid(name: &HeaderName, problem: &'static str) -> HeaderError {
    HeaderError::Invalid {
        name: name.clone(),
        problem,
    }
}

fn parse_token(value: &str) -> Result<Token, &'static str> {
    Token::new(value).map_err(|_| "expected a token")
}

/// `delta-seconds`. RFC 3261 §20.19 bounds it to 2³²−1, so larger values are errors rather than
/// silently clamped.
fn parse_delta_seconds(value: &str) -> Result<u32, &'static str> {
    syntax::parse_u32(value).ok_or("expected seconds below 2^32")
}
