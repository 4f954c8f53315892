//! Chain validation against our trust anchors, and the verdict that combines it with an identity check.

use std::sync::Arc;

use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use sixgate_core::Domain;
use webpki::{EndEntityCert, KeyUsage};

use crate::IdentityRules;

/// Signature algorithms accepted in certificate chains.
///
/// Spelled out from webpki's aws-lc-rs module instead of using `webpki::ALL_VERIFICATION_ALGS`, which would also
/// pick up *ring* implementations if any crate in the build enabled webpki's `ring` feature: the gateway keeps
/// one crypto provider.
static SIGNATURE_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P256_SHA512,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA512,
    webpki::aws_lc_rs::ECDSA_P521_SHA256,
    webpki::aws_lc_rs::ECDSA_P521_SHA384,
    webpki::aws_lc_rs::ECDSA_P521_SHA512,
    webpki::aws_lc_rs::ED25519,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512_ABSENT_PARAMS,
    webpki::aws_lc_rs::RSA_PKCS1_3072_8192_SHA384,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA512_LEGACY_KEY,
    webpki::aws_lc_rs::ML_DSA_44,
    webpki::aws_lc_rs::ML_DSA_65,
    webpki::aws_lc_rs::ML_DSA_87,
];

/// The certificate authorities whose certificates make a peer's chain valid. Cheap to clone.
#[derive(Clone, Default)]
pub struct TrustStore {
    inner: Arc<Anchors>,
}

#[derive(Clone, Default)]
struct Anchors {
    anchors: Vec<TrustAnchor<'static>>,
    certificates: Vec<CertificateDer<'static>>,
}

impl TrustStore {
    /// A store that trusts nobody: every chain is judged [`CertificateProblem::UntrustedChain`], so peers can only
    /// authenticate with dialback.
    pub fn empty() -> Self {
        Self::default()
    }

    /// Builds a store from CA certificates, failing on the first one that cannot be used as a trust anchor.
    ///
    /// Use this for anchors the operator named explicitly; for an operating-system bundle, which often holds a
    /// few certificates webpki cannot parse, use [`TrustStore::from_parsable_der_certs`].
    pub fn from_der_certs(
        certificates: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> Result<Self, TrustStoreError> {
        let mut store = Self::empty();
        for (position, certificate) in certificates.into_iter().enumerate() {
            store
                .add(certificate)
                .map_err(|reason| TrustStoreError { position, reason })?;
        }
        Ok(store)
    }

    /// Builds a store from the CA certificates that can be used as trust anchors, and says how many were skipped.
    pub fn from_parsable_der_certs(
        certificates: impl IntoIterator<Item = CertificateDer<'static>>,
    ) -> (Self, usize) {
        let mut store = Self::empty();
        let skipped = certificates
            .into_iter()
            .filter(|certificate| store.add(certificate.clone()).is_err())
            .count();
        (store, skipped)
    }

    /// Adds one CA certificate as a trust anchor; the error says why webpki cannot use it.
    pub fn add(&mut self, certificate: CertificateDer<'static>) -> Result<(), String> {
        let anchor = webpki::anchor_from_trusted_cert(&certificate)
            .map_err(|error| error.to_string())?
            .to_owned();
        let inner = Arc::make_mut(&mut self.inner);
        inner.anchors.push(anchor);
        inner.certificates.push(certificate);
        Ok(())
    }

    /// Whether the store trusts nobody.
    pub fn is_empty(&self) -> bool {
        self.inner.anchors.is_empty()
    }

    /// The number of trust anchors.
    pub fn len(&self) -> usize {
        self.inner.anchors.len()
    }

    /// The CA certificates the store was built from, in the order they were added.
    pub fn certificates(&self) -> &[CertificateDer<'static>] {
        &self.inner.certificates
    }

    /// Judges a peer's chain (end-entity certificate first, as sent in TLS) for the XMPP server `domain`, the
    /// domain the peer claims in its stream header (inbound) or the domain we connected to (outbound), at the
    /// time `now`.
    ///
    /// The chain must pass [`TrustStore::verify_chain`], and the certificate must name `domain` by the XMPP rules
    /// (see [`crate::CertificateIdentities`]). The same as [`TrustStore::judge_with`] with
    /// [`IdentityRules::Xmpp`].
    pub fn judge(
        &self,
        chain: &[CertificateDer<'_>],
        domain: &Domain,
        now: UnixTime,
    ) -> CertificateVerdict {
        self.judge_with(chain, domain, now, IdentityRules::Xmpp)
    }

    /// Judges a peer's chain (end-entity certificate first, as sent in TLS) for `domain` at the time `now`: the
    /// chain must pass [`TrustStore::verify_chain`], and the certificate must name `domain` by `rules`.
    pub fn judge_with(
        &self,
        chain: &[CertificateDer<'_>],
        domain: &Domain,
        now: UnixTime,
        rules: IdentityRules,
    ) -> CertificateVerdict {
        match self.check(chain, domain, now, rules) {
            Ok(()) => CertificateVerdict::Valid,
            Err(problem) => CertificateVerdict::Invalid(problem),
        }
    }

    /// Checks that a peer's chain (end-entity certificate first, as sent in TLS) leads to one of our anchors at
    /// the time `now`, with an end-entity certificate whose extended key usage allows serverAuth or clientAuth.
    /// Says nothing about whom the certificate names: pair it with [`crate::sip_identities`] or
    /// [`IdentityRules::read`], or use [`TrustStore::judge_with`].
    pub fn verify_chain(
        &self,
        chain: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), CertificateProblem> {
        self.verified_end_entity(chain, now).map(drop)
    }

    fn verified_end_entity<'c, 'd>(
        &self,
        chain: &'c [CertificateDer<'d>],
        now: UnixTime,
    ) -> Result<&'c CertificateDer<'d>, CertificateProblem> {
        let (end_entity, intermediates) = chain
            .split_first()
            .ok_or(CertificateProblem::NoCertificate)?;
        let parsed = EndEntityCert::try_from(end_entity)
            .map_err(|error| CertificateProblem::Malformed(error.to_string()))?;
        self.verify_path(&parsed, intermediates, now)?;
        Ok(end_entity)
    }

    fn check(
        &self,
        chain: &[CertificateDer<'_>],
        domain: &Domain,
        now: UnixTime,
        rules: IdentityRules,
    ) -> Result<(), CertificateProblem> {
        let end_entity = self.verified_end_entity(chain, now)?;
        let identities = rules.read(end_entity)?;
        if identities.covers(domain) {
            Ok(())
        } else {
            Err(CertificateProblem::NameMismatch {
                domain: domain.clone(),
                presented: identities.names(),
            })
        }
    }

    fn verify_path(
        &self,
        end_entity: &EndEntityCert<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<(), CertificateProblem> {
        let verify = |usage| {
            end_entity
                .verify_for_usage(
                    SIGNATURE_ALGORITHMS,
                    &self.inner.anchors,
                    intermediates,
                    now,
                    usage,
                    None,
                    None,
                )
                .map(drop)
        };
        let Err(as_server) = verify(KeyUsage::server_auth()) else {
            return Ok(());
        };
        let Err(as_client) = verify(KeyUsage::client_auth()) else {
            return Ok(());
        };
        // webpki checks the usage before it looks for an issuer, so a usage failure of the first attempt can hide
        // the real reason, which the second attempt then reports.
        let error = if is_usage_error(&as_server) {
            as_client
        } else {
            as_server
        };
        Err(CertificateProblem::from_webpki(error))
    }
}

impl std::fmt::Debug for TrustStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrustStore")
            .field("anchors", &self.inner.anchors.len())
            .finish()
    }
}

fn is_usage_error(error: &webpki::Error) -> bool {
    #[allow(deprecated)] // Older webpki releases report the context-free variant.
    let plain = matches!(error, webpki::Error::RequiredEkuNotFound);
    plain || matches!(error, webpki::Error::RequiredEkuNotFoundContext(_))
}

/// A CA certificate could not be used as a trust anchor. The operator's fault: the file named in the
/// configuration holds something else than CA certificates webpki understands.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("trust anchor #{position}: {reason}")]
pub struct TrustStoreError {
    /// Zero-based position of the certificate in the input.
    pub position: usize,
    /// webpki's reason.
    pub reason: String,
}

/// The result of [`TrustStore::judge`] and [`TrustStore::judge_with`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum CertificateVerdict {
    /// The chain leads to one of our anchors and names the domain: for XMPP, SASL EXTERNAL may be offered or
    /// used.
    Valid,
    /// The certificate does not authenticate the domain; an XMPP peer may still use dialback.
    Invalid(CertificateProblem),
}

impl CertificateVerdict {
    /// Whether the verdict is [`CertificateVerdict::Valid`].
    pub fn is_valid(&self) -> bool {
        matches!(self, Self::Valid)
    }
}

/// Why a peer's certificate does not authenticate a domain.
///
/// Every variant describes the peer's certificate, so it is the peer's fault, except that
/// [`CertificateProblem::UntrustedChain`] may also mean that our trust store lacks the peer's CA.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CertificateProblem {
    /// The peer presented no certificate (an XMPP peer is allowed to; then only dialback can authenticate it).
    #[error("no certificate presented")]
    NoCertificate,
    /// A certificate of the chain could not be parsed.
    #[error("malformed certificate: {0}")]
    Malformed(String),
    /// No path leads from the certificate to one of our trust anchors: unknown or self-signed issuer, missing
    /// intermediate, bad signature, violated CA constraints.
    #[error("certificate chain not trusted: {0}")]
    UntrustedChain(String),
    /// A certificate of the chain expired before the time of judgement.
    #[error("certificate expired at {}", format_unix_time(*.not_after))]
    Expired {
        /// The certificate's notAfter, in seconds since the Unix epoch.
        not_after: u64,
    },
    /// A certificate of the chain is not valid yet (or our clock is wrong).
    #[error("certificate not valid before {}", format_unix_time(*.not_before))]
    NotYetValid {
        /// The certificate's notBefore, in seconds since the Unix epoch.
        not_before: u64,
    },
    /// The extended key usage extension of the certificate allows neither serverAuth nor clientAuth. Holds the
    /// purposes it does allow, as dotted OIDs.
    #[error("certificate allows neither serverAuth nor clientAuth (its extended key usages: {0})")]
    WrongUsage(String),
    /// The chain is trusted but the certificate names other domains.
    #[error("certificate not valid for {domain} (it names: {})", format_names(.presented))]
    NameMismatch {
        /// The domain the certificate had to name.
        domain: Domain,
        /// The identities the certificate presents, as in [`crate::PresentedIdentities::names`].
        presented: Vec<String>,
    },
}

impl CertificateProblem {
    fn from_webpki(error: webpki::Error) -> Self {
        use webpki::Error as E;
        match error {
            E::CertExpired { not_after, .. } => Self::Expired {
                not_after: not_after.as_secs(),
            },
            E::CertNotValidYet { not_before, .. } => Self::NotYetValid {
                not_before: not_before.as_secs(),
            },
            E::RequiredEkuNotFoundContext(context) => Self::WrongUsage(
                context
                    .present
                    .iter()
                    .map(|oid| {
                        oid.iter()
                            .map(usize::to_string)
                            .collect::<Vec<_>>()
                            .join(".")
                    })
                    .collect::<Vec<_>>()
                    .join(", "),
            ),
            ref usage if is_usage_error(usage) => Self::WrongUsage("not reported".to_owned()),
            E::BadDer
            | E::BadDerTime
            | E::EmptyEkuExtension
            | E::ExtensionValueInvalid
            | E::InvalidCertValidity
            | E::InvalidSerialNumber
            | E::MalformedExtensions
            | E::TrailingData(_)
            | E::UnsupportedCertVersion
            | E::UnsupportedCriticalExtension => Self::Malformed(error.to_string()),
            other => Self::UntrustedChain(other.to_string()),
        }
    }
}

/// Lists presented names for a log line, cut short because a certificate may carry hundreds.
fn format_names(names: &[String]) -> String {
    const SHOWN: usize = 8;
    if names.is_empty() {
        return "nothing usable".to_owned();
    }
    let mut text = names
        .iter()
        .take(SHOWN)
        .map(String::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

/// RFC 3339 in UTC, so that an expiry in a log line can be read without a calculator.
fn format_unix_time(seconds: u64) -> String {
    let days = seconds / 86_400;
    let rest = seconds % 86_400;
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60
    )
}

/// Howard Hinnant's `civil_from_days`, restricted to dates after 1970.
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}
