//! A throw-away certificate authority and the three leaf certificates of a run.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sixgate_core::Domain;
use sixgate_xmpp::tls::LocalCertificates;
use sixgate_xmpp_proto::certificate::TrustStore;

/// The names a leaf certificate carries.
pub(crate) struct Names<'a> {
    /// DNS SANs.
    pub(crate) dns: &'a [&'a str],
    /// URI SANs (`sip:domain` for RFC 5922 identities).
    pub(crate) uris: &'a [&'a str],
}

/// A leaf certificate and its key, in memory and as PEM files.
pub(crate) struct Leaf {
    pub(crate) certificate: CertificateDer<'static>,
    key_der: Vec<u8>,
    pub(crate) certificate_file: PathBuf,
    pub(crate) key_file: PathBuf,
}

impl Leaf {
    /// The certificate as `LocalCertificates` for `domain` (no file round trip, no identity warnings).
    pub(crate) fn local_certificates(&self, domain: &str) -> anyhow::Result<LocalCertificates> {
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(self.key_der.clone()));
        let certified = LocalCertificates::from_der(vec![self.certificate.clone()], key)
            .context("loading a generated certificate")?;
        let mut local = LocalCertificates::new();
        local.insert(Domain::parse(domain)?, certified);
        Ok(local)
    }
}

/// The test CA, written to `ca.pem`.
pub(crate) struct Pki {
    issuer: Issuer<'static, KeyPair>,
    certificate: CertificateDer<'static>,
    pub(crate) ca_file: PathBuf,
    dir: PathBuf,
}

impl Pki {
    pub(crate) fn new(dir: &Path) -> anyhow::Result<Self> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params
            .distinguished_name
            .push(DnType::CommonName, "sixgate-loadgen test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate()?;
        let certificate = params.self_signed(&key)?;
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, certificate.pem())
            .with_context(|| format!("writing {}", ca_file.display()))?;
        Ok(Self {
            issuer: Issuer::new(params, key),
            certificate: certificate.der().clone(),
            ca_file,
            dir: dir.to_owned(),
        })
    }

    /// Trust in this CA only.
    pub(crate) fn trust(&self) -> anyhow::Result<TrustStore> {
        TrustStore::from_der_certs([self.certificate.clone()]).context("trusting the test CA")
    }

    /// Issues a leaf (serverAuth only, as public CAs issue them now; it also serves as client certificate)
    /// and writes `<stem>.crt` and `<stem>.key`.
    pub(crate) fn leaf(&self, stem: &str, names: &Names<'_>) -> anyhow::Result<Leaf> {
        let mut params = CertificateParams::default();
        params.distinguished_name = DistinguishedName::new();
        params.distinguished_name.push(
            DnType::CommonName,
            names
                .dns
                .first()
                .or(names.uris.first())
                .copied()
                .unwrap_or(stem),
        );
        let mut sans = Vec::new();
        for dns in names.dns {
            sans.push(SanType::DnsName((*dns).try_into()?));
        }
        for uri in names.uris {
            sans.push(SanType::URI((*uri).try_into()?));
        }
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        let key = KeyPair::generate()?;
        let certificate = params.signed_by(&key, &self.issuer)?;
        let certificate_file = self.dir.join(format!("{stem}.crt"));
        let key_file = self.dir.join(format!("{stem}.key"));
        std::fs::write(&certificate_file, certificate.pem())
            .with_context(|| format!("writing {}", certificate_file.display()))?;
        std::fs::write(&key_file, key.serialize_pem())
            .with_context(|| format!("writing {}", key_file.display()))?;
        Ok(Leaf {
            certificate: certificate.der().clone(),
            key_der: key.serialize_der(),
            certificate_file,
            key_file,
        })
    }
}
