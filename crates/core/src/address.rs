//! Domains and JIDs (RFC 6120 §3.2, RFC 7622), normalised once at parse time.

use std::fmt;

/// Why a text is not a valid address. Always the peer's fault: we never build addresses from our own data
/// without having parsed them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The domain part is empty.
    #[error("empty domain")]
    EmptyDomain,
    /// The domain is longer than 1023 bytes (RFC 7622 §3.2).
    #[error("domain longer than 1023 bytes")]
    DomainTooLong,
    /// One label of the domain is empty or longer than 63 bytes.
    #[error("domain label empty or longer than 63 bytes")]
    BadLabel,
    /// The domain contains a character that cannot appear in a host name.
    #[error("character {0:?} not allowed in a domain")]
    BadDomainChar(char),
    /// The local part or resource is empty where the JID syntax requires content.
    #[error("empty {0}")]
    EmptyPart(&'static str),
    /// The local part or resource is longer than 1023 bytes.
    #[error("{0} longer than 1023 bytes")]
    PartTooLong(&'static str),
    /// The local part contains a character RFC 7622 forbids there.
    #[error("character {0:?} not allowed in a JID local part")]
    BadLocalChar(char),
}

/// A DNS domain as used by XMPP and SIP: lower-cased, without a trailing dot.
///
/// Internationalised names are kept in their Unicode form and compared after lower-casing, which is what
/// Prosody and ejabberd do for domains they receive on s2s.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Domain(Box<str>);

const MAX_PART: usize = 1023;

impl Domain {
    /// Parses and normalises a domain name.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.strip_suffix('.').unwrap_or(text);
        if text.is_empty() {
            return Err(AddressError::EmptyDomain);
        }
        if text.len() > MAX_PART {
            return Err(AddressError::DomainTooLong);
        }
        let lower = text.to_lowercase();
        for label in lower.split('.') {
            if label.is_empty() || label.len() > 63 {
                return Err(AddressError::BadLabel);
            }
        }
        if let Some(bad) = lower
            .chars()
            .find(|c| !(c.is_alphanumeric() || matches!(c, '-' | '.' | '_' | ':' | '[' | ']')))
        {
            return Err(AddressError::BadDomainChar(bad));
        }
        Ok(Self(lower.into_boxed_str()))
    }

    /// The normalised text of the domain.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `self` is `parent` or a subdomain of it.
    pub fn is_within(&self, parent: &Self) -> bool {
        self.0 == parent.0
            || self
                .0
                .strip_suffix(&*parent.0)
                .is_some_and(|rest| rest.ends_with('.'))
    }
}

impl fmt::Display for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Domain {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Domain({})", self.0)
    }
}

impl std::str::FromStr for Domain {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

/// A JID: `[local@]domain[/resource]` (RFC 7622).
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Jid {
    local: Option<Box<str>>,
    domain: Domain,
    resource: Option<Box<str>>,
}

impl Jid {
    /// Parses a JID. The local part is case-folded; the resource is kept as sent (it is case-sensitive).
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let (bare, resource) = match text.split_once('/') {
            Some((bare, resource)) => (bare, Some(resource)),
            None => (text, None),
        };
        let (local, domain) = match bare.split_once('@') {
            Some((local, domain)) => (Some(local), domain),
            None => (None, bare),
        };
        let local = local.map(parse_local).transpose()?;
        let resource = resource
            .map(|r| checked_part(r, "resource").map(Box::from))
            .transpose()?;
        Ok(Self {
            local,
            domain: Domain::parse(domain)?,
            resource,
        })
    }

    /// Builds a JID from separate parts, with the same checks and normalisation as [`Jid::parse`].
    ///
    /// Unlike formatting the parts and parsing the text, a `/` or `@` in the resource cannot be mistaken for a
    /// separator.
    pub fn new(
        local: Option<&str>,
        domain: Domain,
        resource: Option<&str>,
    ) -> Result<Self, AddressError> {
        Ok(Self {
            local: local.map(parse_local).transpose()?,
            domain,
            resource: resource
                .map(|r| checked_part(r, "resource").map(Box::from))
                .transpose()?,
        })
    }

    /// Whether the JID has a resource, that is, names one client session rather than an account.
    pub fn is_full(&self) -> bool {
        self.resource.is_some()
    }

    /// A bare domain JID such as a server's own address.
    pub fn from_domain(domain: Domain) -> Self {
        Self {
            local: None,
            domain,
            resource: None,
        }
    }

    /// The local part, if any.
    pub fn local(&self) -> Option<&str> {
        self.local.as_deref()
    }

    /// The domain part.
    pub fn domain(&self) -> &Domain {
        &self.domain
    }

    /// The resource part, if any.
    pub fn resource(&self) -> Option<&str> {
        self.resource.as_deref()
    }

    /// The same JID without its resource.
    pub fn to_bare(&self) -> Self {
        Self {
            local: self.local.clone(),
            domain: self.domain.clone(),
            resource: None,
        }
    }
}

fn checked_part<'a>(part: &'a str, what: &'static str) -> Result<&'a str, AddressError> {
    if part.is_empty() {
        return Err(AddressError::EmptyPart(what));
    }
    if part.len() > MAX_PART {
        return Err(AddressError::PartTooLong(what));
    }
    Ok(part)
}

fn parse_local(local: &str) -> Result<Box<str>, AddressError> {
    let local = checked_part(local, "local part")?;
    // RFC 7622 §3.3.1: these characters are disallowed in the localpart; XEP-0106 escapes them.
    if let Some(bad) = local.chars().find(|c| {
        matches!(c, '"' | '&' | '\'' | '/' | ':' | '<' | '>' | '@')
            || c.is_whitespace()
            || c.is_control()
    }) {
        return Err(AddressError::BadLocalChar(bad));
    }
    Ok(local.to_lowercase().into_boxed_str())
}

impl fmt::Display for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(local) = &self.local {
            write!(f, "{local}@")?;
        }
        write!(f, "{}", self.domain)?;
        if let Some(resource) = &self.resource {
            write!(f, "/{resource}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Jid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Jid({self})")
    }
}

impl std::str::FromStr for Jid {
    type Err = AddressError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_normalised() {
        assert_eq!(
            Domain::parse("Example.ORG.").unwrap().as_str(),
            "example.org"
        );
        assert_eq!(Domain::parse(""), Err(AddressError::EmptyDomain));
        assert_eq!(Domain::parse("a..b"), Err(AddressError::BadLabel));
        assert_eq!(Domain::parse("a b"), Err(AddressError::BadDomainChar(' ')));
        assert_eq!(Domain::parse(&"a".repeat(64)), Err(AddressError::BadLabel));
    }

    #[test]
    fn subdomains() {
        let parent = Domain::parse("example.org").unwrap();
        assert!(Domain::parse("muc.example.org").unwrap().is_within(&parent));
        assert!(parent.is_within(&parent));
        assert!(!Domain::parse("badexample.org").unwrap().is_within(&parent));
    }

    #[test]
    fn jids_split_into_parts() {
        let jid = Jid::parse("Juliet@Example.com/Balcony").unwrap();
        assert_eq!(jid.local(), Some("juliet"));
        assert_eq!(jid.domain().as_str(), "example.com");
        assert_eq!(jid.resource(), Some("Balcony"));
        assert_eq!(jid.to_string(), "juliet@example.com/Balcony");
        assert_eq!(jid.to_bare().to_string(), "juliet@example.com");
        // A slash in the resource belongs to the resource.
        assert_eq!(Jid::parse("a@b/c/d").unwrap().resource(), Some("c/d"));
    }

    #[test]
    fn bad_jids_are_refused() {
        assert_eq!(
            Jid::parse("@example.com"),
            Err(AddressError::EmptyPart("local part"))
        );
        assert_eq!(
            Jid::parse("a@example.com/"),
            Err(AddressError::EmptyPart("resource"))
        );
        assert_eq!(
            Jid::parse("o'malley@example.com"),
            Err(AddressError::BadLocalChar('\''))
        );
    }
}
