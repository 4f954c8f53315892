//! `sip:` and `sips:` URIs (RFC 3261 §19.1, grammar in §25.1), parsed and normalised once at the edge.
//!
//! Only the scheme and the host are case-normalised: RFC 3261 §19.1.4 makes the user part case-sensitive, and
//! parameter values are left as sent because their comparison rules depend on the parameter.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

/// The longest URI we accept or produce, in bytes. Real SIP URIs are a few dozen bytes; the cap bounds what one
/// header field can make us allocate and store.
pub const MAX_SIP_URI: usize = 2048;

/// Why a text is not a SIP URI we accept. Always the peer's fault: the SIP side answers 400 (Bad Request), or
/// 416 (Unsupported URI Scheme) for [`SipUriError::UnsupportedScheme`] in a Request-URI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SipUriError {
    /// The URI is longer than [`MAX_SIP_URI`] bytes.
    #[error("URI of {0} bytes is longer than {MAX_SIP_URI}")]
    TooLong(usize),
    /// The scheme is neither `sip` nor `sips`.
    #[error("URI scheme is not sip or sips")]
    UnsupportedScheme,
    /// A character that the RFC 3261 grammar does not allow in that part of the URI.
    #[error("character {1:?} not allowed in the {0} of a SIP URI")]
    BadChar(&'static str, char),
    /// A `%` not followed by two hexadecimal digits.
    #[error("malformed percent-escape in the {0} of a SIP URI")]
    BadEscape(&'static str),
    /// A part the grammar requires to be non-empty is empty (`sip:@host`, `;=x`, `?=x`).
    #[error("empty {0} in a SIP URI")]
    Empty(&'static str),
    /// The host is not a host name, an IPv4 address or a bracketed IPv6 address.
    #[error("SIP URI host is not a host name, IPv4 address or [IPv6] address")]
    BadHost,
    /// The port is not a decimal number from 0 to 65535.
    #[error("SIP URI port is not a number from 0 to 65535")]
    BadPort,
    /// The same URI parameter appears twice (names compared case-insensitively).
    #[error("URI parameter {0:?} appears more than once")]
    DuplicateParam(String),
    /// The percent-decoded user part is not UTF-8.
    #[error("SIP URI user part is not UTF-8 once percent-decoded")]
    UserNotUtf8,
}

/// The URI scheme. `sips:` asks for TLS on every hop (RFC 3261 §26.2.2), which is why the gateway refuses to
/// map it into XMPP (RFC 7247 §9).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scheme {
    /// `sip:`
    Sip,
    /// `sips:`
    Sips,
}

impl Scheme {
    /// The scheme name without the colon, in lower case.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Sip => "sip",
            Self::Sips => "sips",
        }
    }
}

/// A `sip:` or `sips:` URI: `scheme:[user[:password]@]host[:port][;params][?headers]`.
///
/// Equality compares the normalised text, not the RFC 3261 §19.1.4 equivalence rules (which, for example,
/// ignore unknown parameters present in only one of the URIs).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct SipUri {
    scheme: Scheme,
    user: Option<Box<str>>,
    password: Option<Box<str>>,
    host: Box<str>,
    port: Option<u16>,
    params: Vec<(Box<str>, Option<Box<str>>)>,
    headers: Vec<(Box<str>, Box<str>)>,
}

impl SipUri {
    /// Parses a SIP or SIPS URI as it appears in a Request-URI or inside the angle brackets of a name-addr.
    pub fn parse(text: &str) -> Result<Self, SipUriError> {
        if text.len() > MAX_SIP_URI {
            return Err(SipUriError::TooLong(text.len()));
        }
        let (scheme, rest) = text.split_once(':').ok_or(SipUriError::UnsupportedScheme)?;
        let scheme = if scheme.eq_ignore_ascii_case("sip") {
            Scheme::Sip
        } else if scheme.eq_ignore_ascii_case("sips") {
            Scheme::Sips
        } else {
            return Err(SipUriError::UnsupportedScheme);
        };

        // Neither the host, the parameters nor the headers may contain '@' (§25.1), so the first one ends the
        // userinfo even though the user part itself may contain ';' and '?'.
        let (userinfo, rest) = match rest.split_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let (user, password) = match userinfo {
            Some(userinfo) => {
                let (user, password) = match userinfo.split_once(':') {
                    Some((user, password)) => (user, Some(password)),
                    None => (userinfo, None),
                };
                if user.is_empty() {
                    return Err(SipUriError::Empty("user part"));
                }
                check_chars(user, "user part", is_user_byte)?;
                if let Some(password) = password {
                    check_chars(password, "password", is_password_byte)?;
                }
                (Some(user), password)
            }
            None => (None, None),
        };

        let (rest, headers) = match rest.split_once('?') {
            Some((rest, headers)) => (rest, Some(headers)),
            None => (rest, None),
        };
        let mut pieces = rest.split(';');
        let hostport = pieces.next().unwrap_or_default();
        let (host, port) = split_hostport(hostport)?;

        let mut params: Vec<(Box<str>, Option<Box<str>>)> = Vec::new();
        for param in pieces {
            let (name, value) = match param.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (param, None),
            };
            if name.is_empty() {
                return Err(SipUriError::Empty("parameter name"));
            }
            check_chars(name, "parameter name", is_param_byte)?;
            if let Some(value) = value {
                if value.is_empty() {
                    return Err(SipUriError::Empty("parameter value"));
                }
                check_chars(value, "parameter value", is_param_byte)?;
            }
            // A repeated parameter (two `gr` values, say) would make `param()` pick one arbitrarily, and the
            // next hop might pick the other.
            if params
                .iter()
                .any(|(seen, _)| seen.eq_ignore_ascii_case(name))
            {
                return Err(SipUriError::DuplicateParam(name.to_owned()));
            }
            params.push((name.into(), value.map(Box::from)));
        }

        let mut parsed_headers = Vec::new();
        if let Some(headers) = headers {
            for header in headers.split('&') {
                let (name, value) = header
                    .split_once('=')
                    .ok_or(SipUriError::Empty("header value"))?;
                if name.is_empty() {
                    return Err(SipUriError::Empty("header name"));
                }
                check_chars(name, "header name", is_header_byte)?;
                check_chars(value, "header value", is_header_byte)?;
                parsed_headers.push((name.into(), value.into()));
            }
        }

        Ok(Self {
            scheme,
            user: user.map(Box::from),
            password: password.map(Box::from),
            host: host.into_boxed_str(),
            port,
            params,
            headers: parsed_headers,
        })
    }

    /// `sip` or `sips`.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The user part exactly as sent, still percent-encoded.
    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// The user part percent-decoded, or `None` when the URI has no user part.
    pub fn user_decoded(&self) -> Result<Option<String>, SipUriError> {
        self.user
            .as_deref()
            .map(|user| {
                String::from_utf8(percent_decode(user)).map_err(|_| SipUriError::UserNotUtf8)
            })
            .transpose()
    }

    /// The password, still percent-encoded. RFC 3261 §19.1.1 advises against ever sending one.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// The host in lower case: a host name, a dotted IPv4 address, or an IPv6 address in its RFC 5952 form
    /// inside brackets.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The explicit port, if any.
    pub fn port(&self) -> Option<u16> {
        self.port
    }

    /// Looks up a URI parameter by name, ignoring ASCII case (RFC 3261 §19.1.4). `Some(None)` is a parameter
    /// without a value, such as `;lr` or the `;gr` of a temporary GRUU. The value is still percent-encoded.
    pub fn param(&self, name: &str) -> Option<Option<&str>> {
        self.params
            .iter()
            .find(|(seen, _)| seen.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_deref())
    }

    /// Every URI parameter in the order sent, as `(name, value)`.
    pub fn params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        self.params
            .iter()
            .map(|(name, value)| (&**name, value.as_deref()))
    }

    /// Every header of the `?` component in the order sent, as `(name, value)`, still percent-encoded.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers.iter().map(|(name, value)| (&**name, &**value))
    }
}

impl fmt::Display for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:", self.scheme.as_str())?;
        if let Some(user) = &self.user {
            f.write_str(user)?;
            if let Some(password) = &self.password {
                write!(f, ":{password}")?;
            }
            f.write_str("@")?;
        }
        f.write_str(&self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        for (name, value) in &self.params {
            write!(f, ";{name}")?;
            if let Some(value) = value {
                write!(f, "={value}")?;
            }
        }
        for (i, (name, value)) in self.headers.iter().enumerate() {
            let separator = if i == 0 { '?' } else { '&' };
            write!(f, "{separator}{name}={value}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for SipUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SipUri({self})")
    }
}

impl std::str::FromStr for SipUri {
    type Err = SipUriError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

fn split_hostport(hostport: &str) -> Result<(String, Option<u16>), SipUriError> {
    let (host, port) = if hostport.starts_with('[') {
        let end = hostport.find(']').ok_or(SipUriError::BadHost)?;
        let (host, rest) = hostport.split_at(end + 1);
        match rest {
            "" => (host, None),
            _ => (
                host,
                Some(rest.strip_prefix(':').ok_or(SipUriError::BadHost)?),
            ),
        }
    } else {
        match hostport.split_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    let port = port
        .map(|port| {
            if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
                return Err(SipUriError::BadPort);
            }
            port.parse::<u16>().map_err(|_| SipUriError::BadPort)
        })
        .transpose()?;
    Ok((parse_host(host)?, port))
}

/// Checks and normalises a SIP `host` (RFC 3261 §25.1): a host name, an IPv4 address, or an IPv6 reference.
pub(crate) fn parse_host(host: &str) -> Result<String, SipUriError> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(SipUriError::BadHost)?;
        let address: Ipv6Addr = inner.parse().map_err(|_| SipUriError::BadHost)?;
        return Ok(format!("[{address}]"));
    }
    if !host.is_empty() && host.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        // §25.1 reads a name whose top label starts with a digit as an IPv4address, never as a hostname.
        let address: Ipv4Addr = host.parse().map_err(|_| SipUriError::BadHost)?;
        return Ok(address.to_string());
    }
    let name = host.strip_suffix('.').unwrap_or(host);
    // 253 is the longest name DNS can carry in text form (RFC 1035 §2.3.4 counts 255 octets on the wire).
    if name.is_empty() || name.len() > 253 {
        return Err(SipUriError::BadHost);
    }
    let labels: Vec<&str> = name.split('.').collect();
    for label in &labels {
        let bytes = label.as_bytes();
        let (Some(first), Some(last)) = (bytes.first(), bytes.last()) else {
            return Err(SipUriError::BadHost);
        };
        if label.len() > 63
            || !first.is_ascii_alphanumeric()
            || !last.is_ascii_alphanumeric()
            || !bytes
                .iter()
                .all(|b| b.is_ascii_alphanumeric() || *b == b'-')
        {
            return Err(SipUriError::BadHost);
        }
    }
    if !labels
        .last()
        .and_then(|top| top.bytes().next())
        .is_some_and(|b| b.is_ascii_alphabetic())
    {
        return Err(SipUriError::BadHost);
    }
    Ok(host.to_ascii_lowercase())
}

fn check_chars(text: &str, part: &'static str, allowed: fn(u8) -> bool) -> Result<(), SipUriError> {
    let bytes = text.as_bytes();
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%' {
            let hex = bytes
                .get(i + 1..i + 3)
                .ok_or(SipUriError::BadEscape(part))?;
            if !hex.iter().all(u8::is_ascii_hexdigit) {
                return Err(SipUriError::BadEscape(part));
            }
            i += 3;
            continue;
        }
        if !allowed(b) {
            // Reporting the whole character, not the byte, makes the error readable for non-ASCII input.
            let ch = text
                .get(i..)
                .and_then(|s| s.chars().next())
                .unwrap_or('\u{FFFD}');
            return Err(SipUriError::BadChar(part, ch));
        }
        i += 1;
    }
    Ok(())
}

/// RFC 3261 §25.1 `unreserved` = alphanum / mark.
pub(crate) fn is_unreserved_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-_.!~*'()".contains(&b)
}

/// RFC 3261 §25.1 `user` characters other than `escaped`: unreserved / user-unreserved.
pub(crate) fn is_user_byte(b: u8) -> bool {
    is_unreserved_byte(b) || b"&=+$,;?/".contains(&b)
}

fn is_password_byte(b: u8) -> bool {
    is_unreserved_byte(b) || b"&=+$,".contains(&b)
}

/// RFC 3261 §25.1 `paramchar` other than `escaped`: param-unreserved / unreserved.
pub(crate) fn is_param_byte(b: u8) -> bool {
    is_unreserved_byte(b) || b"[]/:&+$".contains(&b)
}

fn is_header_byte(b: u8) -> bool {
    is_unreserved_byte(b) || b"[]/?:+$".contains(&b)
}

/// Decodes `%hh` escapes; a `%` that does not start a valid escape is kept as is.
pub(crate) fn percent_decode(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let Some(value) = bytes
                .get(i + 1..i + 3)
                .and_then(|hex| std::str::from_utf8(hex).ok())
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
        {
            out.push(value);
            i += 3;
            continue;
        }
        out.push(b);
        i += 1;
    }
    out
}

/// Appends `text` to `out`, percent-encoding (upper-case hex, RFC 3986 §2.1) every byte `keep` rejects.
pub(crate) fn percent_encode_into(text: &str, keep: fn(u8) -> bool, out: &mut String) {
    for &b in text.as_bytes() {
        if keep(b) {
            out.push(char::from(b));
        } else {
            out.push('%');
            out.push(hex_digit(b >> 4));
            out.push(hex_digit(b & 0x0f));
        }
    }
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16)
        .unwrap_or('0')
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_part() {
        let uri = SipUri::parse(
            "SIP:Alice:pw@Example.COM:5061;transport=tls;gr=urn:uuid:1;lr?subject=hi&x=",
        )
        .unwrap();
        assert_eq!(uri.scheme(), Scheme::Sip);
        assert_eq!(uri.user(), Some("Alice"));
        assert_eq!(uri.password(), Some("pw"));
        assert_eq!(uri.host(), "example.com");
        assert_eq!(uri.port(), Some(5061));
        assert_eq!(uri.param("GR"), Some(Some("urn:uuid:1")));
        assert_eq!(uri.param("lr"), Some(None));
        assert_eq!(uri.param("maddr"), None);
        assert_eq!(
            uri.headers().collect::<Vec<_>>(),
            [("subject", "hi"), ("x", "")]
        );
        assert_eq!(
            uri.to_string(),
            "sip:Alice:pw@example.com:5061;transport=tls;gr=urn:uuid:1;lr?subject=hi&x="
        );
    }

    #[test]
    fn hosts() {
        let cases = [
            ("sip:a@192.0.2.1", "192.0.2.1", None),
            ("sips:a@[2001:DB8:0::1]:5061", "[2001:db8::1]", Some(5061)),
            ("sip:[::1]", "[::1]", None),
            ("sip:example.com.", "example.com.", None),
            ("sip:a-b.c1.org", "a-b.c1.org", None),
        ];
        for (text, host, port) in cases {
            let uri = SipUri::parse(text).unwrap();
            assert_eq!((uri.host(), uri.port()), (host, port), "{text}");
            assert_eq!(SipUri::parse(&uri.to_string()).unwrap(), uri, "{text}");
        }
    }

    #[test]
    fn user_part_keeps_its_escapes_and_case() {
        let uri = SipUri::parse("sip:F%C3%BC;x=1?y@example.com").unwrap();
        assert_eq!(uri.user(), Some("F%C3%BC;x=1?y"));
        assert_eq!(uri.user_decoded().unwrap().as_deref(), Some("Fü;x=1?y"));
        assert_eq!(uri.param("x"), None);
        let bad = SipUri::parse("sip:%FF@example.com").unwrap();
        assert_eq!(bad.user_decoded(), Err(SipUriError::UserNotUtf8));
        assert_eq!(
            SipUri::parse("sip:example.com").unwrap().user_decoded(),
            Ok(None)
        );
    }

    #[test]
    fn refuses_what_the_grammar_refuses() {
        let long = format!("sip:{}@example.com", "a".repeat(MAX_SIP_URI));
        let cases = [
            (long.as_str(), SipUriError::TooLong(long.len())),
            ("tel:+123", SipUriError::UnsupportedScheme),
            ("example.com", SipUriError::UnsupportedScheme),
            ("sip:@example.com", SipUriError::Empty("user part")),
            (
                "sip:a b@example.com",
                SipUriError::BadChar("user part", ' '),
            ),
            (
                "sip:f\u{fc}@example.com",
                SipUriError::BadChar("user part", '\u{fc}'),
            ),
            ("sip:a#@example.com", SipUriError::BadChar("user part", '#')),
            ("sip:a%2@example.com", SipUriError::BadEscape("user part")),
            ("sip:a%zz@example.com", SipUriError::BadEscape("user part")),
            ("sip:a:p@ss@example.com", SipUriError::BadHost),
            ("sip:a@", SipUriError::BadHost),
            ("sip:a@exa_mple.com", SipUriError::BadHost),
            ("sip:a@-example.com", SipUriError::BadHost),
            ("sip:a@example..com", SipUriError::BadHost),
            ("sip:a@example.123", SipUriError::BadHost),
            ("sip:a@1.2.3.256", SipUriError::BadHost),
            ("sip:a@[::1", SipUriError::BadHost),
            ("sip:a@[::1]x", SipUriError::BadHost),
            ("sip:a@[zz::1]", SipUriError::BadHost),
            ("sip:a@example.com:", SipUriError::BadPort),
            ("sip:a@example.com:65536", SipUriError::BadPort),
            ("sip:a@example.com:+5", SipUriError::BadPort),
            ("sip:a@example.com;", SipUriError::Empty("parameter name")),
            (
                "sip:a@example.com;gr=",
                SipUriError::Empty("parameter value"),
            ),
            (
                "sip:a@example.com;g r",
                SipUriError::BadChar("parameter name", ' '),
            ),
            (
                "sip:a@example.com;gr=a;GR=b",
                SipUriError::DuplicateParam("GR".into()),
            ),
            ("sip:a@example.com?x", SipUriError::Empty("header value")),
            ("sip:a@example.com?=x", SipUriError::Empty("header name")),
            (
                "sip:a@example.com?x=<",
                SipUriError::BadChar("header value", '<'),
            ),
        ];
        for (text, error) in cases {
            assert_eq!(SipUri::parse(text), Err(error), "{text}");
        }
    }

    #[test]
    fn length_cap_is_inclusive() {
        let host = ".example.com";
        let text = format!("sip:{}{host}", "a".repeat(MAX_SIP_URI - 4 - host.len()));
        assert_eq!(text.len(), MAX_SIP_URI);
        // The name is too long for DNS, but it got past the length check, which is what this test is about.
        assert_eq!(SipUri::parse(&text), Err(SipUriError::BadHost));
    }

    #[test]
    fn percent_coding() {
        assert_eq!(percent_decode("a%41%zz%4"), b"aA%zz%4");
        let mut out = String::new();
        percent_encode_into("a b/ü", is_user_byte, &mut out);
        assert_eq!(out, "a%20b/%C3%BC");
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        proptest! {
            // Only about one generated text in ten is a valid URI, so run more cases than the default 256.
            #![proptest_config(ProptestConfig::with_cases(2048))]

            #[test]
            fn display_round_trips(
                user in proptest::option::of("[a-zA-Z0-9&=+$,;?/%!'()*._~-]{1,20}"),
                host in "[a-z][a-z0-9]{0,10}(\\.[a-z][a-z0-9-]{0,5}[a-z0-9])?",
                port in proptest::option::of(any::<u16>()),
                gr in proptest::option::of("[a-zA-Z0-9:\\[\\]/&+$-]{1,20}"),
            ) {
                // Stray '%' signs would not be escapes; turn them into valid ones.
                let user = user.map(|u| u.replace('%', "%25"));
                let mut text = String::from("sip:");
                if let Some(user) = &user {
                    text.push_str(user);
                    text.push('@');
                }
                text.push_str(&host);
                if let Some(port) = port {
                    text.push_str(&format!(":{port}"));
                }
                if let Some(gr) = &gr {
                    text.push_str(&format!(";gr={gr}"));
                }
                let uri = SipUri::parse(&text).unwrap();
                prop_assert_eq!(uri.to_string(), text);
                prop_assert_eq!(uri.user(), user.as_deref());
                prop_assert_eq!(uri.param("gr"), gr.as_deref().map(Some));
            }

            #[test]
            fn parse_never_panics(text in "\\PC{0,80}") {
                let _ = SipUri::parse(&text);
                let _ = SipUri::parse(&format!("sip:{text}"));
            }

            /// Whatever parses, its text parses to the same URI (normalisation is idempotent).
            #[test]
            fn display_is_a_fixed_point(
                text in concat!(
                    "[sS][iI][pP][sS]?:([a-zA-Z0-9%;?=&.+$/-]{1,10}(:[a-z0-9%]{0,5})?@)?",
                    "([a-zA-Z][a-zA-Z0-9.-]{0,10}|[0-9.]{7,15}|\\[[0-9a-fA-F:.]{2,20}\\])(:[0-9]{1,5})?",
                    "(;[a-zA-Z0-9%:\\[\\]/&+$-]{1,8}(=[a-zA-Z0-9%:\\[\\]/&+$-]{1,8})?){0,3}",
                    "(\\?[a-z]{1,4}=[a-z0-9%]{0,4}(&[a-z]{1,4}=[a-z0-9]{0,4})?)?",
                )
            ) {
                if let Ok(uri) = SipUri::parse(&text) {
                    prop_assert_eq!(SipUri::parse(&uri.to_string()), Ok(uri));
                }
            }
        }
    }
}
