//! Which domains a certificate names, by the rules XMPP servers apply (RFC 6120 §13.7.1.4, XEP-0178, RFC 6125).
//!
//! webpki only knows DNS names and IP addresses; XMPP also uses the XmppAddr otherName (`id-on-xmppAddr`) and the
//! SRVName otherName (RFC 4985), so the subject alternative names are read with x509-parser.
//!
//! Limitation: [`Domain`] keeps internationalised names in their Unicode form while certificates carry A-labels
//! (`xn--…`), so an internationalised domain only matches an XmppAddr written in Unicode.

use rustls_pki_types::CertificateDer;
use sixgate_core::Domain;
use x509_parser::asn1_rs::{Any, Class, FromDer, Tag};
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;

use super::{alternative_names, common_names, parse, without_root};
use crate::CertificateProblem;

/// `id-on-xmppAddr`, 1.3.6.1.5.5.7.8.5, in DER content octets.
const ID_ON_XMPP_ADDR: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x05];
/// `id-on-dnsSRV`, 1.3.6.1.5.5.7.8.7, in DER content octets.
const ID_ON_DNS_SRV: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07];
/// The SRV service label an SRV-ID must carry to identify an XMPP server (RFC 6120 §13.7.1.2.1).
const XMPP_SERVER_SERVICE: &str = "_xmpp-server.";

/// The identities an end-entity certificate presents, as far as XMPP server authentication is concerned.
///
/// Entries are kept as presented (DNS-IDs and SRV-IDs lower-cased, since DNS is case-insensitive), so that a
/// name mismatch can be logged with what the certificate actually says.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CertificateIdentities {
    /// `dNSName` subject alternative names (DNS-IDs), possibly wildcards such as `*.example.org`.
    pub dns_names: Vec<String>,
    /// XmppAddr otherNames (`id-on-xmppAddr`, UTF8String).
    pub xmpp_addrs: Vec<String>,
    /// SRVName otherNames (`id-on-dnsSRV`, IA5String) such as `_xmpp-server.example.org`, for any service.
    pub srv_names: Vec<String>,
    /// Subject common names (CN-IDs). Only filled when the certificate has no subject alternative name extension,
    /// because RFC 6125 §6.4.4 forbids falling back to the CN otherwise.
    pub common_names: Vec<String>,
}

impl CertificateIdentities {
    /// Reads the identities of an end-entity certificate.
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
                GeneralName::DNSName(name) => identities.dns_names.push(name.to_ascii_lowercase()),
                GeneralName::OtherName(oid, value) if oid.as_bytes() == ID_ON_XMPP_ADDR => {
                    // A malformed entry can only fail to match, so it is skipped rather than failing the whole
                    // certificate, which may still be valid through another name.
                    if let Some(address) = explicit_string(value, Tag::Utf8String) {
                        identities.xmpp_addrs.push(address.to_owned());
                    }
                }
                GeneralName::OtherName(oid, value) if oid.as_bytes() == ID_ON_DNS_SRV => {
                    if let Some(service) = explicit_string(value, Tag::Ia5String) {
                        identities.srv_names.push(service.to_ascii_lowercase());
                    }
                }
                _ => {}
            }
        }
        Ok(identities)
    }

    /// Whether the certificate authenticates the XMPP server `domain`.
    ///
    /// * a DNS-ID equal to the domain (case-insensitive), or a wildcard whose `*` is the whole left-most label
    ///   and stands for exactly one label: `*.example.org` covers `chat.example.org` but neither `example.org` nor
    ///   `a.b.example.org`, and `*.org` covers nothing;
    /// * an XmppAddr equal to the domain (a JID with a local part or resource does not identify a server);
    /// * an SRV-ID `_xmpp-server.<domain>`;
    /// * a CN-ID, by the DNS-ID rules, only when there is no subject alternative name extension at all.
    pub fn covers(&self, domain: &Domain) -> bool {
        let domain = domain.as_str();
        self.dns_names
            .iter()
            .chain(&self.common_names)
            .any(|name| dns_id_matches(name, domain))
            || self.xmpp_addrs.iter().any(|address| {
                Domain::parse(address).is_ok_and(|address| address.as_str() == domain)
            })
            || self.srv_names.iter().any(|service| {
                service
                    .strip_prefix(XMPP_SERVER_SERVICE)
                    .is_some_and(|name| without_root(name) == domain)
            })
    }

    /// All presented identities for log lines, in the style of `openssl x509 -text`: `DNS:…`, `XmppAddr:…`,
    /// `SRV:…`, `CN:…`.
    pub fn names(&self) -> Vec<String> {
        fn labelled(label: &str, names: &[String]) -> Vec<String> {
            names.iter().map(|name| format!("{label}:{name}")).collect()
        }
        [
            labelled("DNS", &self.dns_names),
            labelled("XmppAddr", &self.xmpp_addrs),
            labelled("SRV", &self.srv_names),
            labelled("CN", &self.common_names),
        ]
        .concat()
    }
}

/// DNS-ID matching of RFC 6125 §6.4, with the wildcard rule of §6.4.3 restricted the way browsers and XMPP
/// servers apply it.
fn dns_id_matches(presented: &str, domain: &str) -> bool {
    let presented = without_root(presented);
    match presented.strip_prefix("*.") {
        Some(parent) => {
            // A wildcard over a single label (`*.org`) would cover a whole top-level domain.
            parent.contains('.')
                && !parent.contains('*')
                && domain.split_once('.').is_some_and(|(label, rest)| {
                    !label.is_empty() && rest.eq_ignore_ascii_case(parent)
                })
        }
        None => !presented.contains('*') && presented.eq_ignore_ascii_case(domain),
    }
}

/// Reads the `[0] EXPLICIT` string value of an otherName, requiring the string type its OID prescribes.
fn explicit_string(value: &[u8], string_type: Tag) -> Option<&str> {
    let (_, wrapper) = Any::from_der(value).ok()?;
    if wrapper.class() != Class::ContextSpecific || wrapper.tag() != Tag(0) {
        return None;
    }
    let (_, inner) = Any::from_der(wrapper.data).ok()?;
    if inner.class() != Class::Universal || inner.tag() != string_type {
        return None;
    }
    let text = std::str::from_utf8(inner.data).ok()?;
    (string_type != Tag::Ia5String || text.is_ascii()).then_some(text)
}
