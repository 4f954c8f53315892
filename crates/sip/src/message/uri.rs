//! URIs as validated text, and the `host[:port]` of SIP URIs and `Via` headers.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::values::InvalidValue;

/// A URI from a start line or a `name-addr`, kept as the text it was received as.
///
/// Any scheme is accepted (`sip:`, `sips:`, `tel:`, `im:`, `pres:`...), since a gateway must carry
/// addresses it does not itself route on. Validation is syntactic: a scheme (RFC 3986 §3.1), then only
/// characters a URI may contain, so the text can be written back between `<` and `>` or into a start line
/// without changing how it parses. `sip:` and `sips:` URIs must also have a valid host (RFC 3261 §19.1.1).
///
/// Equality is on the text. RFC 3261 §19.1.4 URI comparison (case rules, parameter order) is not
/// implemented here.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Uri(Box<str>);

impl Uri {
    /// Checks `text` and keeps it as a URI.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue::new("URI", text);
        let (scheme, rest) = text.split_once(':').ok_or_else(invalid)?;
        let mut scheme_bytes = scheme.bytes();
        let scheme_ok = scheme_bytes.next().is_some_and(|b| b.is_ascii_alphabetic())
            && scheme_bytes.all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'));
        if !scheme_ok || rest.is_empty() || !rest.bytes().all(is_uri_char) {
            return Err(invalid());
        }
        let uri = Self(text.into());
        if uri.is_sip() {
            let parts = uri.sip_parts().ok_or_else(invalid)?;
            HostPort::parse(parts.host_port).map_err(|_| invalid())?;
        }
        Ok(uri)
    }

    /// The URI as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The scheme as written, without the colon.
    pub fn scheme(&self) -> &str {
        self.0.split_once(':').map_or("", |(scheme, _)| scheme)
    }

    /// Whether this is a `sip:` or `sips:` URI.
    pub fn is_sip(&self) -> bool {
        let scheme = self.scheme();
        scheme.eq_ignore_ascii_case("sip") || scheme.eq_ignore_ascii_case("sips")
    }

    /// Whether this is a `sips:` URI, which RFC 7247 §9 forbids translating into XMPP.
    pub fn is_sips(&self) -> bool {
        self.scheme().eq_ignore_ascii_case("sips")
    }

    /// The user part of a SIP URI, still %-escaped. `None` for other schemes and for URIs without one.
    pub fn user(&self) -> Option<&str> {
        let userinfo = self.sip_parts()?.userinfo?;
        // A password (deprecated, RFC 3261 §19.1.1) is not part of the user.
        Some(userinfo.split_once(':').map_or(userinfo, |(user, _)| user))
    }

    /// The host and port of a SIP URI. `None` for other schemes.
    pub fn host_port(&self) -> Option<HostPort> {
        HostPort::parse(self.sip_parts()?.host_port).ok()
    }

    /// Whether a SIP URI has the URI parameter `name` (compared ignoring case), such as `lr`.
    pub fn has_param(&self, name: &str) -> bool {
        self.uri_params()
            .any(|(param, _)| param.eq_ignore_ascii_case(name))
    }

    /// The value of a SIP URI's parameter `name`, such as `transport`, still %-escaped. `None` if the
    /// parameter is absent or has no value.
    pub fn param(&self, name: &str) -> Option<&str> {
        self.uri_params()
            .find(|(param, _)| param.eq_ignore_ascii_case(name))
            .and_then(|(_, value)| value)
    }

    fn uri_params(&self) -> impl Iterator<Item = (&str, Option<&str>)> {
        let params = self.sip_parts().map_or("", |parts| parts.params);
        params
            .split(';')
            .filter(|param| !param.is_empty())
            .map(|param| match param.split_once('=') {
                Some((name, value)) => (name, Some(value)),
                None => (param, None),
            })
    }

    fn sip_parts(&self) -> Option<SipParts<'_>> {
        if !self.is_sip() {
            return None;
        }
        let (_, rest) = self.0.split_once(':')?;
        // Neither host, parameters nor headers may contain `@`, so the last one ends the userinfo, which
        // itself may contain `;` and `?` (RFC 3261 §25.1 `user-unreserved`).
        let (userinfo, rest) = match rest.rsplit_once('@') {
            Some((userinfo, rest)) => (Some(userinfo), rest),
            None => (None, rest),
        };
        let rest = rest
            .split_once('?')
            .map_or(rest, |(before, _headers)| before);
        let (host_port, params) = rest.split_once(';').unwrap_or((rest, ""));
        Some(SipParts {
            userinfo,
            host_port,
            params,
        })
    }
}

struct SipParts<'a> {
    userinfo: Option<&'a str>,
    host_port: &'a str,
    params: &'a str,
}

/// RFC 3986 `unreserved / reserved / "%"`: everything a URI may contain. Excludes whitespace, controls,
/// `"`, `<`, `>` and non-ASCII, which would change how the surrounding header parses.
fn is_uri_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~:/?#[]@!$&'()*+,;=%".contains(&b)
}

impl fmt::Display for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Uri({})", self.0)
    }
}

impl std::str::FromStr for Uri {
    type Err = InvalidValue;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}

/// A host name as written: labels of ASCII letters, digits, `-` and `_`, separated by dots.
///
/// `_` is outside RFC 3261's `hostname` but occurs in real deployments (Windows host names), and allowing
/// it costs nothing. Case is kept; [`HostName::eq_ignore_case`] compares as DNS does.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct HostName(Box<str>);

impl HostName {
    /// Checks a host name.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let labels = text.strip_suffix('.').unwrap_or(text);
        let label_ok = |label: &str| {
            !label.is_empty()
                && label.len() <= 63
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_'))
                && !label.starts_with('-')
                && !label.ends_with('-')
        };
        // A name of digits and dots only is an IPv4 address or nothing: `999.1.1.1` is not a host name.
        let numeric = labels.bytes().all(|b| b.is_ascii_digit() || b == b'.');
        if text.len() > 255 || numeric || !labels.split('.').all(label_ok) {
            return Err(InvalidValue::new("host name", text));
        }
        Ok(Self(text.into()))
    }

    /// The name as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Compares as DNS does: ASCII case-insensitively, ignoring a trailing dot.
    pub fn eq_ignore_case(&self, other: &Self) -> bool {
        let strip = |name: &str| name.strip_suffix('.').unwrap_or(name).to_owned();
        strip(&self.0).eq_ignore_ascii_case(&strip(&other.0))
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HostName({})", self.0)
    }
}

/// The host of a SIP URI or of a `Via` sent-by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// A DNS name.
    Name(HostName),
    /// An IPv4 address.
    Ipv4(Ipv4Addr),
    /// An IPv6 address, written in brackets.
    Ipv6(Ipv6Addr),
}

impl Host {
    /// Parses `name`, `192.0.2.1` or `[2001:db8::1]`.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        if let Some(inner) = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
        {
            return inner
                .parse()
                .map(Self::Ipv6)
                .map_err(|_| InvalidValue::new("IPv6 reference", text));
        }
        if let Ok(v4) = text.parse() {
            return Ok(Self::Ipv4(v4));
        }
        HostName::parse(text).map(Self::Name)
    }

    /// The address, if the host is one.
    pub fn ip(&self) -> Option<IpAddr> {
        match self {
            Self::Name(_) => None,
            Self::Ipv4(v4) => Some(IpAddr::V4(*v4)),
            Self::Ipv6(v6) => Some(IpAddr::V6(*v6)),
        }
    }

    /// Equality with names compared ignoring case.
    pub fn matches(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Name(a), Self::Name(b)) => a.eq_ignore_case(b),
            _ => self == other,
        }
    }
}

impl From<IpAddr> for Host {
    fn from(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::Ipv4(v4),
            IpAddr::V6(v6) => Self::Ipv6(v6),
        }
    }
}

impl From<HostName> for Host {
    fn from(name: HostName) -> Self {
        Self::Name(name)
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Name(name) => f.write_str(name.as_str()),
            Self::Ipv4(v4) => write!(f, "{v4}"),
            Self::Ipv6(v6) => write!(f, "[{v6}]"),
        }
    }
}

/// `host [":" port]`. A missing port is kept missing rather than defaulted: RFC 3261 §18.2.2 and
/// §17.2.3 treat `host` and `host:5061` as different sent-by values.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct HostPort {
    /// The host.
    pub host: Host,
    /// The port, if one was written.
    pub port: Option<u16>,
}

impl HostPort {
    /// A host without a port.
    pub fn new(host: impl Into<Host>, port: Option<u16>) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }

    /// Parses `host[:port]`.
    pub fn parse(text: &str) -> Result<Self, InvalidValue> {
        let invalid = || InvalidValue::new("host and port", text);
        // The port follows the last colon, unless that colon is inside an IPv6 reference.
        let (host, port) = match text.rsplit_once(':') {
            Some((host, port))
                if !port.contains(']') && (!host.contains('[') || host.ends_with(']')) =>
            {
                let port = if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) {
                    port.parse().map_err(|_| invalid())?
                } else {
                    return Err(invalid());
                };
                (host, Some(port))
            }
            _ => (text, None),
        };
        Ok(Self {
            host: Host::parse(host).map_err(|_| invalid())?,
            port,
        })
    }

    /// Equality as RFC 3261 §17.2.3 compares sent-by values: host names ignoring case, ports as written.
    pub fn matches(&self, other: &Self) -> bool {
        self.host.matches(&other.host) && self.port == other.port
    }
}

impl fmt::Display for HostPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.host)?;
        if let Some(port) = self.port {
            write!(f, ":{port}")?;
        }
        Ok(())
    }
}

impl std::str::FromStr for HostPort {
    type Err = InvalidValue;
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Self::parse(text)
    }
}
