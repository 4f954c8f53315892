//! Which domains a certificate names, by the rules of each protocol.

pub(crate) mod sip;
pub(crate) mod xmpp;

use std::fmt;

use rustls_pki_types::CertificateDer;
use sixgate_core::Domain;
use x509_parser::certificate::X509Certificate;
use x509_parser::extensions::GeneralName;
use x509_parser::prelude::FromDer;

use crate::CertificateProblem;
use sip::SipIdentities;
use xmpp::CertificateIdentities;

/// The rules by which a certificate names a domain; they differ enough between the protocols that a
/// certificate valid for one may be refused by the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdentityRules {
    /// XMPP server-to-server (RFC 6120 §13.7.1.4, XEP-0178, RFC 6125): DNS-ID with a left-most wildcard,
    /// XmppAddr, SRV-ID `_xmpp-server.`, CN only without subject alternative names. See
    /// [`CertificateIdentities`].
    Xmpp,
    /// SIP domain certificates (RFC 5922 §7.1–7.2): a `sip:` URI without user part, else a DNS name, CN only
    /// without subject alternative names; exact matches, never wildcards. See [`SipIdentities`].
    Sip,
}

impl IdentityRules {
    /// Reads the identities `certificate` presents under these rules.
    pub fn read(
        self,
        certificate: &CertificateDer<'_>,
    ) -> Result<PresentedIdentities, CertificateProblem> {
        Ok(match self {
            Self::Xmpp => PresentedIdentities::Xmpp(CertificateIdentities::of(certificate)?),
            Self::Sip => PresentedIdentities::Sip(SipIdentities::of(certificate)?),
        })
    }
}

impl fmt::Display for IdentityRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Xmpp => "XMPP",
            Self::Sip => "SIP",
        })
    }
}

/// The identities a certificate presents, read by the rules of one protocol (see [`IdentityRules::read`]).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PresentedIdentities {
    /// Read by [`IdentityRules::Xmpp`].
    Xmpp(CertificateIdentities),
    /// Read by [`IdentityRules::Sip`].
    Sip(SipIdentities),
}

impl PresentedIdentities {
    /// Whether the certificate authenticates `domain` under the rules it was read with.
    pub fn covers(&self, domain: &Domain) -> bool {
        match self {
            Self::Xmpp(identities) => identities.covers(domain),
            Self::Sip(identities) => identities.covers(domain),
        }
    }

    /// Everything the certificate presents, for log lines, labelled in the style of `openssl x509 -text`.
    pub fn names(&self) -> Vec<String> {
        match self {
            Self::Xmpp(identities) => identities.names(),
            Self::Sip(identities) => identities.names(),
        }
    }
}

fn parse<'a>(
    certificate: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, CertificateProblem> {
    let (_, parsed) = X509Certificate::from_der(certificate.as_ref())
        .map_err(|error| CertificateProblem::Malformed(error.to_string()))?;
    Ok(parsed)
}

/// The subject alternative names, or `None` when the certificate has no such extension (an empty one is
/// `Some`: both protocols fall back to the CN only when the extension is absent).
fn alternative_names<'a>(
    certificate: &'a X509Certificate<'_>,
) -> Result<Option<&'a [GeneralName<'a>]>, CertificateProblem> {
    let extension = certificate.subject_alternative_name().map_err(|error| {
        CertificateProblem::Malformed(format!("subject alternative names: {error}"))
    })?;
    Ok(extension.map(|extension| extension.value.general_names.as_slice()))
}

/// The subject's common names, lower-cased since both protocols compare them as DNS names.
fn common_names(certificate: &X509Certificate<'_>) -> Vec<String> {
    certificate
        .subject()
        .iter_common_name()
        .filter_map(|attribute| attribute.as_str().ok())
        .map(str::to_ascii_lowercase)
        .collect()
}

fn without_root(name: &str) -> &str {
    name.strip_suffix('.').unwrap_or(name)
}
