#![allow(clippy::unwrap_used)]

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rcgen::{CertificateParams, Issuer, KeyPair, SanType, date_time_ymd};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, UnixTime};
use sixgate_core::Domain;
use sixgate_xmpp::tls::LocalCertificates;
use sixgate_xmpp_proto::certificate::{CertificateIdentities, TrustStore};

use super::{CA_KEY, DevCertificates, ensure_dev_certificates};

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!(
            "sixgate-dev-certificates-{}-{name}",
            std::process::id()
        ));
        let _ = fs::remove_dir_all(&path);
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn domains(names: &[&str]) -> Vec<Domain> {
    names
        .iter()
        .map(|name| Domain::parse(name).unwrap())
        .collect()
}

fn read(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap()
}

fn trust(files: &DevCertificates) -> TrustStore {
    TrustStore::from_der_certs([CertificateDer::from_pem_file(&files.ca_cert).unwrap()]).unwrap()
}

fn leaf_chain(files: &DevCertificates) -> Vec<CertificateDer<'static>> {
    CertificateDer::pem_file_iter(&files.leaf_cert)
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn assert_valid_for(files: &DevCertificates, names: &[&str]) {
    let trust = trust(files);
    let chain = leaf_chain(files);
    for domain in domains(names) {
        let verdict = trust.judge(&chain, &domain, UnixTime::now());
        assert!(verdict.is_valid(), "{domain}: {verdict:?}");
    }
}

#[test]
fn generates_a_ca_and_a_leaf_valid_for_every_domain() {
    let dir = TempDir::new("generates");
    let nested = dir.0.join("state").join("certificates");
    let names = ["gw.example", "other.example"];
    let files = ensure_dev_certificates(&nested, &domains(&names)).unwrap();

    assert!(files.regenerated);
    assert_eq!(files.ca_cert, nested.join("dev-ca.pem"));
    assert_eq!(files.leaf_cert, nested.join("dev-leaf.pem"));
    assert_eq!(files.leaf_key, nested.join("dev-leaf.key"));
    assert_valid_for(&files, &names);
    // Subdomains such as a MUC service are covered by the wildcard, the parent of a domain is not.
    assert_valid_for(&files, &["conference.gw.example"]);
    assert!(
        !trust(&files)
            .judge(
                &leaf_chain(&files),
                &domains(&["example"])[0],
                UnixTime::now()
            )
            .is_valid()
    );

    let identities = CertificateIdentities::of(&leaf_chain(&files)[0]).unwrap();
    assert_eq!(identities.xmpp_addrs, names);
    assert_eq!(
        identities.dns_names,
        [
            "gw.example",
            "*.gw.example",
            "other.example",
            "*.other.example"
        ]
    );
    // The gateway loads the pair the way it loads an operator's certificate.
    let local =
        LocalCertificates::load_pem(&files.leaf_cert, &files.leaf_key, &domains(&names)).unwrap();
    assert_eq!(local.domains().count(), 2);

    #[cfg(unix)]
    for key in [&files.leaf_key, &nested.join(CA_KEY)] {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = fs::metadata(key).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{}", key.display());
    }
}

#[test]
fn reuses_files_on_the_second_call() {
    let dir = TempDir::new("reuses");
    let names = domains(&["gw.example"]);
    let first = ensure_dev_certificates(&dir.0, &names).unwrap();
    let contents = [
        read(&first.ca_cert),
        read(&first.leaf_cert),
        read(&first.leaf_key),
    ];

    let second = ensure_dev_certificates(&dir.0, &names).unwrap();
    assert!(!second.regenerated);
    assert_eq!(
        [
            read(&second.ca_cert),
            read(&second.leaf_cert),
            read(&second.leaf_key)
        ],
        contents
    );
    // Fewer domains are still covered.
    assert!(!ensure_dev_certificates(&dir.0, &[]).unwrap().regenerated);
}

#[test]
fn a_new_domain_reissues_the_leaf_but_keeps_the_ca() {
    let dir = TempDir::new("new-domain");
    let first = ensure_dev_certificates(&dir.0, &domains(&["gw.example"])).unwrap();
    let ca = read(&first.ca_cert);
    let leaf = read(&first.leaf_cert);

    let names = ["gw.example", "added.example"];
    let second = ensure_dev_certificates(&dir.0, &domains(&names)).unwrap();
    assert!(second.regenerated);
    assert_eq!(read(&second.ca_cert), ca);
    assert_ne!(read(&second.leaf_cert), leaf);
    assert_valid_for(&second, &names);
}

#[test]
fn a_damaged_leaf_or_foreign_key_is_replaced() {
    let dir = TempDir::new("damaged");
    let names = domains(&["gw.example"]);
    let files = ensure_dev_certificates(&dir.0, &names).unwrap();
    let ca = read(&files.ca_cert);

    fs::write(&files.leaf_cert, "not a certificate").unwrap();
    let files = ensure_dev_certificates(&dir.0, &names).unwrap();
    assert!(files.regenerated);
    assert_valid_for(&files, &["gw.example"]);

    fs::write(
        &files.leaf_key,
        KeyPair::generate().unwrap().serialize_pem(),
    )
    .unwrap();
    let files = ensure_dev_certificates(&dir.0, &names).unwrap();
    assert!(files.regenerated);
    assert_eq!(read(&files.ca_cert), ca);
    LocalCertificates::load_pem(&files.leaf_cert, &files.leaf_key, &names).unwrap();
}

#[test]
fn an_expired_leaf_is_replaced() {
    let dir = TempDir::new("expired");
    let names = domains(&["gw.example"]);
    let files = ensure_dev_certificates(&dir.0, &names).unwrap();

    // Reissue the leaf from the same CA, but expired.
    let ca_key = KeyPair::from_pem(&fs::read_to_string(dir.0.join(CA_KEY)).unwrap()).unwrap();
    let ca_der = CertificateDer::from_pem_file(&files.ca_cert).unwrap();
    let issuer = Issuer::from_ca_cert_der(&ca_der, ca_key).unwrap();
    let mut params = CertificateParams::default();
    params.subject_alt_names = vec![SanType::DnsName("gw.example".try_into().unwrap())];
    params.not_before = date_time_ymd(2020, 1, 1);
    params.not_after = date_time_ymd(2021, 1, 1);
    let key = KeyPair::generate().unwrap();
    let expired = params.signed_by(&key, &issuer).unwrap();
    fs::write(&files.leaf_cert, expired.pem()).unwrap();
    fs::write(&files.leaf_key, key.serialize_pem()).unwrap();

    let files = ensure_dev_certificates(&dir.0, &names).unwrap();
    assert!(files.regenerated);
    assert_valid_for(&files, &["gw.example"]);
}

#[test]
fn a_missing_ca_key_replaces_the_ca_and_the_leaf() {
    let dir = TempDir::new("missing-ca-key");
    let names = domains(&["gw.example"]);
    let first = ensure_dev_certificates(&dir.0, &names).unwrap();
    let ca = read(&first.ca_cert);
    fs::remove_file(dir.0.join(CA_KEY)).unwrap();

    let second = ensure_dev_certificates(&dir.0, &names).unwrap();
    assert!(second.regenerated);
    assert_ne!(read(&second.ca_cert), ca);
    assert_valid_for(&second, &["gw.example"]);
}

#[test]
fn a_ca_about_to_expire_is_replaced() {
    let dir = TempDir::new("expiring-ca");
    fs::create_dir_all(&dir.0).unwrap();
    let mut params = CertificateParams::default();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    params.not_after = (SystemTime::now() + Duration::from_secs(3 * 86_400)).into();
    let key = KeyPair::generate().unwrap();
    let ca = params.self_signed(&key).unwrap();
    fs::write(dir.0.join("dev-ca.pem"), ca.pem()).unwrap();
    fs::write(dir.0.join(CA_KEY), key.serialize_pem()).unwrap();

    let files = ensure_dev_certificates(&dir.0, &domains(&["gw.example"])).unwrap();
    assert!(files.regenerated);
    assert_ne!(read(&files.ca_cert), ca.pem().into_bytes());
    assert_valid_for(&files, &["gw.example"]);
}
