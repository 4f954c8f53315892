//! A throw-away test CA and leaf certificates (rcgen with aws-lc-rs), written as PEM files that the
//! `prosody` and `ejabberd` users can read. The CA key never leaves this process.
//!
//! Leaves for SIP peers also carry `sip:<domain>` URI SANs, the identity RFC 5922 §7.1 looks for first.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType, date_time_ymd,
};
use rustls_pki_types::CertificateDer;

use crate::run::RunDir;

/// What a leaf certificate may be used for (its extended key usage).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Usage {
    /// `serverAuth` and `clientAuth`: what s2s needs (both ends act as TLS server and client).
    ServerAndClient,
    /// `serverAuth` only, like Let's Encrypt certificates issued from 2026 on.
    ServerOnly,
}

/// The files of one leaf certificate.
#[derive(Debug, Clone)]
pub struct Leaf {
    /// The DNS names in the subjectAltName.
    pub names: Vec<String>,
    /// The `sip:` URIs in the subjectAltName (RFC 5922 SIP domain identities), e.g. `sip:corp.example`.
    pub sip_uris: Vec<String>,
    /// The certificate (PEM).
    pub cert: PathBuf,
    /// The private key (PKCS#8 PEM).
    pub key: PathBuf,
    /// Key, certificate and CA certificate in one PEM file (ejabberd's `certfiles`).
    pub full: PathBuf,
    /// The certificate (DER).
    pub der: CertificateDer<'static>,
}

/// The test CA.
pub struct Pki {
    dir: PathBuf,
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    issuer: Issuer<'static, KeyPair>,
}

impl std::fmt::Debug for Pki {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pki")
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

impl Pki {
    /// Creates a CA and writes its certificate to `<run>/certs/ca.pem`.
    pub fn new(run: &RunDir) -> Result<Self> {
        Self::in_subdir(run, "certs", "sixgate interop test CA")
    }

    /// Creates a further, independent CA in `<run>/<subdir>/` (for certificates a peer does not
    /// trust).
    pub fn in_subdir(run: &RunDir, subdir: &str, common_name: &str) -> Result<Self> {
        let dir = run.subdir(subdir)?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, common_name);
        dn.push(DnType::OrganizationName, "sixgate interop tests");
        params.distinguished_name = dn;
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2049, 12, 31);
        let key = KeyPair::generate().context("CA key")?;
        let cert = params.self_signed(&key).context("CA certificate")?;
        let ca_pem = cert.pem();
        write_readable(&dir.join("ca.pem"), &ca_pem)?;
        Ok(Self {
            dir,
            ca_pem,
            ca_der: cert.der().clone(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The directory holding the PEM files.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The CA certificate file.
    pub fn ca_file(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The CA certificate (DER).
    pub fn ca_der(&self) -> &CertificateDer<'static> {
        &self.ca_der
    }

    /// A rustls root store holding only the test CA.
    pub fn root_store(&self) -> Result<Arc<rustls::RootCertStore>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca_der.clone())?;
        Ok(Arc::new(roots))
    }

    /// The usual leaf for an XMPP domain: SAN `DNS:<domain>` and `DNS:*.<domain>`, serverAuth +
    /// clientAuth, files `<domain>.crt`, `<domain>.key`, `<domain>.full.pem`.
    pub fn leaf(&self, domain: &str) -> Result<Leaf> {
        self.issue(
            domain,
            &[domain.to_owned(), format!("*.{domain}")],
            Usage::ServerAndClient,
        )
    }

    /// A serverAuth-only leaf for `domain`, files `<domain>.serveronly.*`.
    pub fn leaf_server_only(&self, domain: &str) -> Result<Leaf> {
        self.issue(
            &format!("{domain}.serveronly"),
            &[domain.to_owned(), format!("*.{domain}")],
            Usage::ServerOnly,
        )
    }

    /// A leaf with the given file stem, names and usage (for example a certificate for the wrong
    /// name: `issue("wrong-for-gw", &["wrong.example".into()], ..)`).
    pub fn issue(&self, stem: &str, names: &[String], usage: Usage) -> Result<Leaf> {
        self.issue_with_sip_uris(stem, names, &[], usage)
    }

    /// The leaf of a SIP domain (a gateway domain, an edge proxy, a SIP partner): SAN `DNS:<domain>`
    /// and `URI:sip:<domain>` (no wildcard: RFC 5922 ignores them), serverAuth + clientAuth, files
    /// `<domain>.sip.crt`, `.key`, `.full.pem`.
    pub fn sip_leaf(&self, domain: &str) -> Result<Leaf> {
        self.issue_with_sip_uris(
            &format!("{domain}.sip"),
            &[domain.to_owned()],
            &[format!("sip:{domain}")],
            Usage::ServerAndClient,
        )
    }

    /// A leaf with DNS names `names` and URI SANs `sip_uris` (each a full URI such as
    /// `sip:corp.example`).
    pub fn issue_with_sip_uris(
        &self,
        stem: &str,
        names: &[String],
        sip_uris: &[String],
        usage: Usage,
    ) -> Result<Leaf> {
        let mut params = CertificateParams::new(names.to_vec())?;
        for uri in sip_uris {
            let uri = uri
                .as_str()
                .try_into()
                .with_context(|| format!("{uri:?} is not an IA5 string"))?;
            params.subject_alt_names.push(SanType::URI(uri));
        }
        let mut dn = DistinguishedName::new();
        dn.push(
            DnType::CommonName,
            names.first().map_or(stem, String::as_str),
        );
        params.distinguished_name = dn;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.extended_key_usages = match usage {
            Usage::ServerAndClient => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            Usage::ServerOnly => vec![ExtendedKeyUsagePurpose::ServerAuth],
        };
        params.use_authority_key_identifier_extension = true;
        params.not_before = date_time_ymd(2020, 1, 1);
        params.not_after = date_time_ymd(2049, 12, 31);
        let key = KeyPair::generate().context("leaf key")?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("signing the leaf {stem}"))?;
        let cert_pem = cert.pem();
        let key_pem = key.serialize_pem();
        let leaf = Leaf {
            names: names.to_vec(),
            sip_uris: sip_uris.to_vec(),
            cert: self.dir.join(format!("{stem}.crt")),
            key: self.dir.join(format!("{stem}.key")),
            full: self.dir.join(format!("{stem}.full.pem")),
            der: cert.der().clone(),
        };
        write_readable(&leaf.cert, &cert_pem)?;
        write_readable(&leaf.key, &key_pem)?;
        write_readable(&leaf.full, &format!("{key_pem}{cert_pem}{}", self.ca_pem))?;
        Ok(leaf)
    }
}

/// Writes a test file readable by the peers' users (these are test keys).
fn write_readable(path: &Path, contents: &str) -> Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))?;
    fs::set_permissions(path, fs::Permissions::from_mode(0o644))?;
    Ok(())
}
