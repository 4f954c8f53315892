//! Our certificates and the CAs we trust, from the configuration; development certificates for local
//! domains that have none.

use std::path::Path;

use anyhow::{Context as _, bail};
use rustls_pki_types::CertificateDer;
use rustls_pki_types::pem::PemObject as _;
use sixgate_core::Domain;
use sixgate_xmpp::tls::LocalCertificates;
use sixgate_xmpp_proto::certificate::TrustStore;
use tracing::{info, warn};

use crate::config::TlsSettings;
use crate::dev_certificates::ensure_dev_certificates;

/// Loads the configured certificates, and generates development ones for local domains they do not cover.
pub(crate) fn local_certificates(
    settings: &TlsSettings,
    local_domains: &[Domain],
) -> anyhow::Result<LocalCertificates> {
    let mut all = LocalCertificates::new();
    for entry in &settings.certificates {
        let loaded = LocalCertificates::load_pem(&entry.certificate, &entry.key, &entry.domains)
            .with_context(|| format!("loading certificate {}", entry.certificate.display()))?;
        for domain in loaded.domains() {
            if let Some(key) = loaded.get(domain) {
                all.insert(domain.clone(), key.clone());
            }
        }
    }
    let uncovered: Vec<Domain> = local_domains
        .iter()
        .filter(|domain| all.get(domain).is_none())
        .cloned()
        .collect();
    if uncovered.is_empty() {
        return Ok(all);
    }
    let dev = ensure_dev_certificates(&settings.dev_certificate_dir, &uncovered)
        .context("generating development certificates")?;
    let names: Vec<&str> = uncovered.iter().map(Domain::as_str).collect();
    warn!(
        domains = ?names,
        certificate = %dev.leaf_cert.display(),
        ca = %dev.ca_cert.display(),
        "USING A DEVELOPMENT CERTIFICATE: no real XMPP server trusts it, so federation with them will fail \
         (or fall back to dialback where they allow it). Configure a CA-issued certificate in [[tls.certificates]]."
    );
    let loaded = LocalCertificates::load_pem(&dev.leaf_cert, &dev.leaf_key, &uncovered)
        .context("loading the development certificate")?;
    for domain in &uncovered {
        if let Some(key) = loaded.get(domain) {
            all.insert(domain.clone(), key.clone());
        }
    }
    Ok(all)
}

/// The CAs whose certificates authenticate peers: the system's (optional) and the configured files.
pub(crate) fn trust_store(settings: &TlsSettings) -> anyhow::Result<TrustStore> {
    let mut certificates = Vec::new();
    if settings.trust_system_roots {
        let found = rustls_native_certs::load_native_certs();
        for error in &found.errors {
            warn!(%error, "problem reading the system's CA certificates");
        }
        let (system, skipped) = TrustStore::from_parsable_der_certs(found.certs);
        info!(
            trusted = system.len(),
            skipped, "loaded the system's CA certificates"
        );
        certificates.extend(system.certificates().iter().cloned());
    }
    for path in &settings.ca_files {
        certificates.extend(read_ca_file(path)?);
    }
    TrustStore::from_der_certs(certificates).context("building the trust store")
}

fn read_ca_file(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certificates = CertificateDer::pem_file_iter(path)
        .and_then(|iter| iter.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("reading CA file {}", path.display()))?;
    if certificates.is_empty() {
        bail!("CA file {} holds no certificate", path.display());
    }
    Ok(certificates)
}
