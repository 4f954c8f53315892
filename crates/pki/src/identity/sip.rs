//! Which SIP domains a certificate names (RFC 5922 §7.1), and how they are compared (§7.2).
//!
//! Stricter than the XMPP rules on purpose: RFC 5922 §7.2 forbids wildcards and suffix matching outright
//! (`*.example.com` names no SIP domain, `example.com` does not cover `sip.example.com`), and only a `sip:`
//! URI without user part names a domain, since one with a user part names a person.
//!
//! Limitation, as for XMPP: [`Domain`] keeps internationalised names in their Unicode form while certificates
//! carry A-labels (`xn--…`), so an internationalised SIP domain never matches.

use rustls_pki_types::CertificateDer;
use sixgate_core::Domain;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::{alternative_names, common_names, parse};
use crate::CertificateProblem;

/// The names an end-entity certificate presents that matter to SIP domain authentication, and the SIP domain
/// identities RFC 5922 §7.1 derives from them ([`SipIdentities::domains`]).
///
/// Entries are kept as presented (DNS names and CNs lower-cased) so that a name mismatch can be logged with what
/// the certificate actually says, including the URIs that do not count as identities.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SipIdentities {
    /// `uniformResourceIdentifier` subject alternative names, whatever their scheme.
    pub uris: Vec<String>,
    /// `dNSName` subject alternative names.
    pub dns_names: Vec<String>,
    /// Subject common names. Only filled when the certificate has no subject alternative name extension,
    /// because RFC 5922 §7.1 step 2 only looks at the CN then.
    pub common_names: Vec<String>,
}

impl SipIdentities {
    /// Reads the names of an end-entity certificate.
    pub fn of(certificate: &CertificateDer<'_>) -> Result<Self, CertificateProblem> {
        Self::of_parsed(&parse(certificate)?)
    }

    fn of_parsed(certificate: &X509Certificate<'_>) -> Result<Self, CertificateProblem> {
        let mut identities = Self::default();
        let Some(alternative_names) = alternative_names(certificate)? else {
            identities.common_names = common_names(certificate);
            return Ok(identities);
        };
        for name in alternative_names {
            match name {
                GeneralName::URI(uri) => identities.uris.push((*uri).to_owned()),
                GeneralName::DNSName(name) => identities.dns_names.push(name.to_ascii_lowercase()),
                _ => {}
            }
        }
        Ok(identities)
    }

    /// The SIP domain identities of the certificate, by RFC 5922 §7.1:
    ///
    /// 1. the host of every subjectAltName URI whose scheme is `sip` and which has no user part
    ///    (`sip:example.com`, `sip:example.com:5061;transport=tls`). A `sips:` URI is no identity: §7.1 accepts
    ///    the `sip` scheme only, and §7.2 compares domains without their scheme anyway. Nor is
    ///    `sip:alice@example.com`: a URI with a user part names a user, not a domain;
    /// 2. only if step 1 found none, every dNSName subjectAltName;
    /// 3. only if the certificate has no subjectAltName extension at all, every subject CN.
    ///
    /// Names that are not valid domains are skipped, which takes care of wildcards: `*.example.com` is no
    /// domain, so it names nothing (§7.2 forbids matching it against any other name).
    pub fn domains(&self) -> Vec<Domain> {
        let from_uris: Vec<Domain> = self
            .uris
            .iter()
            .filter_map(|uri| sip_uri_domain(uri))
            .collect();
        if !from_uris.is_empty() {
            return from_uris;
        }
        // `common_names` is empty whenever there is a subjectAltName extension, so chaining it keeps step 3
        // behind step 2.
        self.dns_names
            .iter()
            .chain(&self.common_names)
            .filter_map(|name| Domain::parse(name).ok())
            .collect()
    }

    /// Whether the certificate authenticates the SIP domain `domain`: one of [`SipIdentities::domains`] equals
    /// it, compared as DNS names (case-insensitive), in its entirety (RFC 5922 §7.2).
    pub fn covers(&self, domain: &Domain) -> bool {
        self.domains().contains(domain)
    }

    /// Everything presented, for log lines, in the style of `openssl x509 -text`: `URI:…`, `DNS:…`, `CN:…`.
    pub fn names(&self) -> Vec<String> {
        fn labelled(label: &str, names: &[String]) -> Vec<String> {
            names.iter().map(|name| format!("{label}:{name}")).collect()
        }
        [
            labelled("URI", &self.uris),
            labelled("DNS", &self.dns_names),
            labelled("CN", &self.common_names),
        ]
        .concat()
    }
}

/// The SIP domain identities of an end-entity certificate (see [`SipIdentities::domains`]), so that the SIP
/// side can ask which of the domains it federates with a peer's certificate names. Judge the chain with
/// [`crate::TrustStore::verify_chain`] first: the names of an untrusted certificate mean nothing.
pub fn sip_identities(certificate: &CertificateDer<'_>) -> Result<Vec<Domain>, CertificateProblem> {
    Ok(SipIdentities::of(certificate)?.domains())
}

/// The domain a `sip:` URI without user part names, if it names one.
fn sip_uri_domain(uri: &str) -> Option<Domain> {
    let (scheme, rest) = uri.split_once(':')?;
    // URI schemes are case-insensitive (RFC 3986 §3.1).
    if !scheme.eq_ignore_ascii_case("sip") {
        return None;
    }
    // A user part may itself hold `;` and `?` (RFC 3261 §25.1 user-unreserved), so any `@` means a user part,
    // wherever it is; refusing too much only costs a match.
    if rest.contains('@') {
        return None;
    }
    let host_port = rest.split([';', '?']).next()?;
    // An IPv6 reference is an address, not a domain.
    if host_port.starts_with('[') {
        return None;
    }
    let host = match host_port.split_once(':') {
        Some((host, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => host,
        Some(_) => return None,
        None => host_port,
    };
    Domain::parse(host).ok()
}
