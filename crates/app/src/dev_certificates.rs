//! Development certificates: a private CA and one certificate for all of the gateway's domains, so that a test
//! setup (the gateway next to a local Prosody or ejabberd) can use SASL EXTERNAL without a public CA.
//!
//! The peers must be told to trust `dev-ca.pem`. The CA is kept when the leaf certificate is reissued (a new
//! domain, expiry), so that peers keep trusting it; only a missing, unreadable or expiring CA is replaced, and the
//! leaf with it. Never use these files in production: the CA key lies next to the certificates.

use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, OtherNameValue, SanType,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use sixgate_core::Domain;
use sixgate_xmpp::tls::LocalCertificates;
use sixgate_xmpp_proto::certificate::{CertificateVerdict, TrustStore};

#[cfg(test)]
mod tests;

const CA_CERT: &str = "dev-ca.pem";
const CA_KEY: &str = "dev-ca.key";
const LEAF_CERT: &str = "dev-leaf.pem";
const LEAF_KEY: &str = "dev-leaf.key";

const DAY: Duration = Duration::from_secs(86_400);
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// Much longer than the leaf: peers were told to trust the CA, so it should rarely change.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// Files this close to expiry are replaced, so that a running test setup does not break halfway.
const RENEW_BEFORE: Duration = Duration::from_secs(7 * 86_400);
/// `id-on-xmppAddr` (RFC 6120 §13.7.1.4).
const XMPP_ADDR: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];

/// Where [`ensure_dev_certificates`] left the files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevCertificates {
    /// The CA certificate (PEM) that peers must trust.
    pub ca_cert: PathBuf,
    /// The gateway's certificate (PEM), signed by the CA.
    pub leaf_cert: PathBuf,
    /// The gateway's private key (PEM, PKCS#8, mode 0600).
    pub leaf_key: PathBuf,
    /// Whether the leaf certificate was (re)issued by this call, rather than reused.
    pub regenerated: bool,
}

/// Why the development certificates could not be written. The environment's fault (the directory is not
/// writable), except for the other variants, which are bugs.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DevCertificateError {
    /// The directory could not be created.
    #[error("creating {}: {source}", path.display())]
    CreateDirectory {
        /// The directory.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// A file could not be written.
    #[error("writing {}: {source}", path.display())]
    Write {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        source: io::Error,
    },
    /// rcgen refused to make a key or certificate.
    #[error("generating a development certificate: {0}")]
    Generate(#[from] rcgen::Error),
    /// webpki cannot use the CA certificate rcgen made as a trust anchor.
    #[error("the development CA cannot be used as a trust anchor: {0}")]
    UnusableCa(String),
    /// A freshly issued certificate is not valid for a domain (for example a name rcgen cannot encode).
    #[error("the new development certificate is not valid for {domain}: {problem}")]
    Unusable {
        /// The domain.
        domain: Domain,
        /// Why, as judged by [`TrustStore::judge`].
        problem: String,
    },
}

/// Makes sure `dir` holds a development CA (`dev-ca.pem`, `dev-ca.key`) and a certificate signed by it for all
/// `domains` (`dev-leaf.pem`, `dev-leaf.key`), creating the directory if needed.
///
/// Existing files are reused when they can be read, the keys match, nothing expires within a week and the
/// leaf is valid for every domain. A new leaf names each domain `d` as `DNS:d`, `DNS:*.d` (for MUC and other
/// subdomains) and XmppAddr `d`, allows serverAuth and clientAuth, and is valid for a year.
pub fn ensure_dev_certificates(
    dir: &Path,
    domains: &[Domain],
) -> Result<DevCertificates, DevCertificateError> {
    fs::create_dir_all(dir).map_err(|source| DevCertificateError::CreateDirectory {
        path: dir.to_owned(),
        source,
    })?;
    let mut files = DevCertificates {
        ca_cert: dir.join(CA_CERT),
        leaf_cert: dir.join(LEAF_CERT),
        leaf_key: dir.join(LEAF_KEY),
        regenerated: false,
    };
    let ca_key = dir.join(CA_KEY);
    let now = SystemTime::now();
    let horizon = now + RENEW_BEFORE;

    let ca = match load_ca(&files.ca_cert, &ca_key, horizon) {
        Some(ca) => ca,
        None => {
            let (ca, pem) = create_ca(now)?;
            write_file(&ca_key, ca.issuer.key().serialize_pem().as_bytes(), true)?;
            write_file(&files.ca_cert, pem.as_bytes(), false)?;
            tracing::warn!(path = %files.ca_cert.display(), "created a development CA; peers must trust it");
            ca
        }
    };
    let trust = TrustStore::from_der_certs([ca.der.clone()])
        .map_err(|error| DevCertificateError::UnusableCa(error.reason))?;
    if leaf_is_usable(&files, &trust, domains, horizon) {
        return Ok(files);
    }

    let (leaf, key) = issue_leaf(&ca.issuer, domains, now)?;
    let chain = [leaf.der().clone()];
    for domain in domains {
        if let CertificateVerdict::Invalid(problem) = trust.judge(&chain, domain, unix_time(now)) {
            return Err(DevCertificateError::Unusable {
                domain: domain.clone(),
                problem: problem.to_string(),
            });
        }
    }
    write_file(&files.leaf_key, key.serialize_pem().as_bytes(), true)?;
    write_file(&files.leaf_cert, leaf.pem().as_bytes(), false)?;
    tracing::info!(path = %files.leaf_cert.display(), ?domains, "issued a development certificate");
    files.regenerated = true;
    Ok(files)
}

struct DevCa {
    der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

/// The existing CA, if it can sign further leaves until `horizon`.
fn load_ca(cert_path: &Path, key_path: &Path, horizon: SystemTime) -> Option<DevCa> {
    let der = CertificateDer::from_pem_file(cert_path).ok()?;
    let key_pem = fs::read_to_string(key_path).ok()?;
    let key_der = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).ok()?;
    // The same key check as for the gateway's own certificates; a stale key next to a new CA must not pass.
    LocalCertificates::from_der(vec![der.clone()], key_der).ok()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    let not_after = parsed.validity().not_after.timestamp();
    let horizon_seconds = horizon
        .duration_since(SystemTime::UNIX_EPOCH)
        .ok()?
        .as_secs();
    if !parsed.is_ca() || not_after <= i64::try_from(horizon_seconds).ok()? {
        return None;
    }
    let key = KeyPair::from_pem(&key_pem).ok()?;
    let issuer = Issuer::from_ca_cert_der(&der, key).ok()?;
    Some(DevCa { der, issuer })
}

/// A new CA and its certificate in PEM.
fn create_ca(now: SystemTime) -> Result<(DevCa, String), rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    // The creation time tells apart the CAs of several checkouts in a peer's trust store.
    let created = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    params.distinguished_name.push(
        DnType::CommonName,
        format!("sixgate development CA {created}"),
    );
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = (now - DAY).into();
    params.not_after = (now + CA_VALIDITY).into();
    let key = KeyPair::generate()?;
    let certificate = params.self_signed(&key)?;
    let ca = DevCa {
        der: certificate.der().clone(),
        issuer: Issuer::new(params, key),
    };
    Ok((ca, certificate.pem()))
}

fn issue_leaf(
    ca: &Issuer<'_, KeyPair>,
    domains: &[Domain],
    now: SystemTime,
) -> Result<(rcgen::Certificate, KeyPair), rcgen::Error> {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    let common_name = domains
        .first()
        .map_or("sixgate development certificate", Domain::as_str);
    params
        .distinguished_name
        .push(DnType::CommonName, common_name);
    for domain in domains {
        let name = domain.as_str();
        // dNSName is ASCII only; an internationalised domain is still named by its XmppAddr.
        if name.is_ascii() {
            params
                .subject_alt_names
                .push(SanType::DnsName(name.try_into()?));
            params
                .subject_alt_names
                .push(SanType::DnsName(format!("*.{name}").try_into()?));
        }
        params.subject_alt_names.push(SanType::OtherName((
            XMPP_ADDR.to_vec(),
            OtherNameValue::Utf8String(name.to_owned()),
        )));
    }
    params.extended_key_usages = vec![
        ExtendedKeyUsagePurpose::ServerAuth,
        ExtendedKeyUsagePurpose::ClientAuth,
    ];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.not_before = (now - DAY).into();
    params.not_after = (now + LEAF_VALIDITY).into();
    let key = KeyPair::generate()?;
    let certificate = params.signed_by(&key, ca)?;
    Ok((certificate, key))
}

/// Whether the existing leaf can be kept: readable, its key matches, and it is valid for every domain until
/// `horizon`.
fn leaf_is_usable(
    files: &DevCertificates,
    trust: &TrustStore,
    domains: &[Domain],
    horizon: SystemTime,
) -> bool {
    let Ok(chain) = CertificateDer::pem_file_iter(&files.leaf_cert)
        .and_then(|certificates| certificates.collect::<Result<Vec<_>, _>>())
    else {
        return false;
    };
    let Ok(key) = PrivateKeyDer::from_pem_file(&files.leaf_key) else {
        return false;
    };
    if LocalCertificates::from_der(chain.clone(), key).is_err() {
        return false;
    }
    let at = unix_time(horizon);
    domains
        .iter()
        .all(|domain| trust.judge(&chain, domain, at).is_valid())
}

/// Writes through a temporary file and a rename, so that an interrupted run leaves either the old file or the
/// new one. Private files are created with mode 0600 from the start rather than restricted afterwards.
fn write_file(path: &Path, contents: &[u8], private: bool) -> Result<(), DevCertificateError> {
    let error = |source| DevCertificateError::Write {
        path: path.to_owned(),
        source,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = PathBuf::from(temporary);
    match fs::remove_file(&temporary) {
        Err(problem) if problem.kind() != io::ErrorKind::NotFound => return Err(error(problem)),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(&temporary).map_err(error)?;
    file.write_all(contents).map_err(error)?;
    file.sync_all().map_err(error)?;
    drop(file);
    fs::rename(&temporary, path).map_err(error)
}

fn unix_time(time: SystemTime) -> UnixTime {
    UnixTime::since_unix_epoch(
        time.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    )
}
