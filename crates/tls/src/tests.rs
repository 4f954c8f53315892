#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rcgen::{CertificateParams, ExtendedKeyUsagePurpose, KeyPair};
use rustls::sign::CertifiedKey;
use rustls::{ClientConfig, ServerConfig};
use rustls_pki_types::UnixTime;
use sixgate_core::Domain;
use sixgate_pki::{CertificateProblem, IdentityRules};

use super::{
    CertificateLoadError, ClientAuth, LocalCertificates, client_config, crypto_provider,
    server_config,
};
use crate::testing::{TestPki as Pki, handshake, pkcs8};

use ExtendedKeyUsagePurpose::{ClientAuth as ClientAuthUsage, ServerAuth};

fn domain(text: &str) -> Domain {
    Domain::parse(text).unwrap()
}

fn local(certificates: &[(&str, Arc<CertifiedKey>)]) -> Arc<LocalCertificates> {
    let mut local = LocalCertificates::new();
    for (name, certified) in certificates {
        local.insert(domain(name), Arc::clone(certified));
    }
    Arc::new(local)
}

fn server(
    local: &Arc<LocalCertificates>,
    fallback: Option<&str>,
    client_auth: ClientAuth,
) -> Arc<ServerConfig> {
    Arc::new(server_config(Arc::clone(local), fallback.map(domain), client_auth, &[]).unwrap())
}

/// A client presenting its certificate for `name`, if `local` has one.
fn client(local: &LocalCertificates, name: Option<&str>) -> Arc<ClientConfig> {
    Arc::new(client_config(local, name.map(domain).as_ref(), &[]).unwrap())
}

#[tokio::test]
async fn server_certificate_is_chosen_by_sni_then_fallback_then_first() {
    let pki = Pki::new("gateway");
    let a = pki.certified("a.example", &[ServerAuth]);
    let b = pki.certified("b.example", &[ServerAuth]);
    let gateway = local(&[("a.example", a.clone()), ("b.example", b.clone())]);
    let nobody = LocalCertificates::new();
    let mut no_sni = (*client(&nobody, None)).clone();
    no_sni.enable_sni = false;
    let no_sni = Arc::new(no_sni);

    let cases = [
        // (SNI, fallback, expected)
        (true, Some("a.example"), &b),
        (false, Some("b.example"), &b),
        (false, Some("unknown.example"), &a),
        (false, None, &a),
    ];
    for (sni, fallback, expected) in cases {
        let config = if sni {
            client(&nobody, None)
        } else {
            Arc::clone(&no_sni)
        };
        let outcome = handshake(
            server(&gateway, fallback, ClientAuth::Optional),
            config,
            "b.example",
        )
        .await;
        assert_eq!(
            outcome.server_certificate(),
            expected.cert[0],
            "{sni} {fallback:?}"
        );
    }

    // An SNI that is not ours is ignored.
    let outcome = handshake(
        server(&gateway, Some("b.example"), ClientAuth::Optional),
        client(&nobody, None),
        "elsewhere.example",
    )
    .await;
    assert_eq!(outcome.server_certificate(), b.cert[0]);
}

#[tokio::test]
async fn without_local_certificates_the_handshake_fails() {
    let outcome = handshake(
        server(&local(&[]), None, ClientAuth::Optional),
        client(&LocalCertificates::new(), None),
        "gw.example",
    )
    .await;
    assert!(outcome.server.is_err());
    assert!(outcome.client.is_err());
}

#[tokio::test]
async fn optional_client_auth_accepts_a_client_without_certificate() {
    let pki = Pki::new("gateway");
    let gateway = local(&[("gw.example", pki.certified("gw.example", &[ServerAuth]))]);
    let outcome = handshake(
        server(&gateway, None, ClientAuth::Optional),
        client(&LocalCertificates::new(), Some("peer.example")),
        "gw.example",
    )
    .await;
    assert_eq!(outcome.server().peer_certificates(), None);
}

#[tokio::test]
async fn required_client_auth_refuses_a_client_without_certificate() {
    let pki = Pki::new("gateway");
    let gateway = local(&[("gw.example", pki.certified("gw.example", &[ServerAuth]))]);
    // A client that has no certificate for the domain it speaks for presents none.
    let peer = local(&[(
        "other.example",
        pki.certified("other.example", &[ServerAuth]),
    )]);
    let outcome = handshake(
        server(&gateway, None, ClientAuth::Required),
        client(&peer, Some("peer.example")),
        "gw.example",
    )
    .await;
    let error = outcome.server.unwrap_err();
    assert!(error.to_string().contains("no certificates"), "{error}");
    assert!(outcome.client.is_err());
}

#[tokio::test]
async fn required_client_auth_accepts_any_chain_for_judging_afterwards() {
    let ours = Pki::new("ours");
    let theirs = Pki::new("theirs");
    let gateway = local(&[("gw.example", ours.certified("gw.example", &[ServerAuth]))]);
    let self_signed = {
        let key = KeyPair::generate().unwrap();
        let certificate = CertificateParams::new(vec!["self.example".to_owned()])
            .unwrap()
            .self_signed(&key)
            .unwrap();
        LocalCertificates::from_der(vec![certificate.der().clone()], pkcs8(&key)).unwrap()
    };
    let peers = [
        (
            "trusted.example",
            ours.certified("trusted.example", &[ServerAuth]),
        ),
        (
            "untrusted.example",
            theirs.certified("untrusted.example", &[ClientAuthUsage]),
        ),
        ("self.example", self_signed),
    ];
    let trust = ours.trust();
    for (name, certified) in peers {
        let peer = local(&[(name, certified.clone())]);
        let outcome = handshake(
            server(&gateway, None, ClientAuth::Required),
            client(&peer, Some(name)),
            "gw.example",
        )
        .await;
        let chain = outcome.server().peer_certificates().unwrap();
        assert_eq!(chain, certified.cert, "{name}");
        let verdict = trust.judge_with(chain, &domain(name), UnixTime::now(), IdentityRules::Sip);
        if name == "trusted.example" {
            assert!(verdict.is_valid(), "{name}: {verdict:?}");
        } else {
            assert!(
                matches!(
                    verdict,
                    sixgate_pki::CertificateVerdict::Invalid(CertificateProblem::UntrustedChain(_))
                ),
                "{name}: {verdict:?}"
            );
        }
    }
}

#[tokio::test]
async fn alpn_protocols_are_offered_and_chosen() {
    let pki = Pki::new("gateway");
    let gateway = local(&[("gw.example", pki.certified("gw.example", &[ServerAuth]))]);
    let server_config = Arc::new(
        server_config(
            Arc::clone(&gateway),
            None,
            ClientAuth::Optional,
            &[b"one", b"two"],
        )
        .unwrap(),
    );
    let nobody = LocalCertificates::new();
    let offering = |alpn: &[&[u8]]| Arc::new(client_config(&nobody, None, alpn).unwrap());

    let outcome = handshake(
        Arc::clone(&server_config),
        offering(&[b"two"]),
        "gw.example",
    )
    .await;
    assert_eq!(outcome.server().alpn_protocol(), Some(&b"two"[..]));
    let outcome = handshake(Arc::clone(&server_config), offering(&[]), "gw.example").await;
    assert_eq!(outcome.server().alpn_protocol(), None);
    let outcome = handshake(server_config, offering(&[b"three"]), "gw.example").await;
    assert!(outcome.server.is_err());
}

#[tokio::test]
async fn client_certificate_without_its_key_is_refused() {
    let pki = Pki::new("shared");
    let gateway = local(&[("gw.example", pki.certified("gw.example", &[ServerAuth]))]);
    // Someone else's (public) certificate, with the impostor's own key.
    let stolen = pki.certified("victim.example", &[ServerAuth]).cert.clone();
    let impostor_key = pki.certified("impostor.example", &[ServerAuth]).key.clone();
    let impostor = local(&[(
        "victim.example",
        Arc::new(CertifiedKey::new(stolen, impostor_key)),
    )]);

    for client_auth in [ClientAuth::Optional, ClientAuth::Required] {
        let outcome = handshake(
            server(&gateway, None, client_auth),
            client(&impostor, Some("victim.example")),
            "gw.example",
        )
        .await;
        let error = outcome.server.unwrap_err();
        assert!(error.to_string().contains("BadSignature"), "{error}");
    }
}

#[tokio::test]
async fn server_certificate_without_its_key_is_refused() {
    let pki = Pki::new("shared");
    let stolen = pki.certified("victim.example", &[ServerAuth]).cert.clone();
    let impostor_key = pki.certified("impostor.example", &[ServerAuth]).key.clone();
    let impostor = local(&[(
        "victim.example",
        Arc::new(CertifiedKey::new(stolen, impostor_key)),
    )]);

    let outcome = handshake(
        server(&impostor, None, ClientAuth::Optional),
        client(&LocalCertificates::new(), None),
        "victim.example",
    )
    .await;
    let error = outcome.client.unwrap_err();
    assert!(error.to_string().contains("BadSignature"), "{error}");
}

#[test]
fn from_der_refuses_a_key_of_another_certificate() {
    let pki = Pki::new("gateway");
    let (certificate, _) = pki.leaf("gw.example", &[ServerAuth]);
    let other_key = KeyPair::generate().unwrap();
    let error = LocalCertificates::from_der(vec![certificate.der().clone()], pkcs8(&other_key))
        .unwrap_err();
    assert!(
        matches!(error, CertificateLoadError::KeyMismatch),
        "{error}"
    );
    let error = LocalCertificates::from_der(vec![], pkcs8(&other_key)).unwrap_err();
    assert!(matches!(error, CertificateLoadError::EmptyChain), "{error}");
}

#[test]
fn load_pem_reads_chain_and_key_for_each_domain() {
    let pki = Pki::new("gateway");
    let (certificate, key) = pki.leaf("gw.example", &[ServerAuth]);
    let directory = std::env::temp_dir().join(format!("sixgate-tls-test-{}", std::process::id()));
    std::fs::create_dir_all(&directory).unwrap();
    let cert_path = directory.join("cert.pem");
    let key_path = directory.join("key.pem");
    let empty_path = directory.join("empty.pem");
    std::fs::write(&cert_path, certificate.pem() + pki.certificate_pem()).unwrap();
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    std::fs::write(&empty_path, "").unwrap();

    let domains = [domain("gw.example"), domain("muc.gw.example")];
    let local = LocalCertificates::load_pem(&cert_path, &key_path, &domains).unwrap();
    assert_eq!(local.domains().cloned().collect::<Vec<_>>(), domains);
    let certified = local.get(&domains[0]).unwrap();
    assert_eq!(
        certified.cert,
        [certificate.der().clone(), pki.certificate().clone()]
    );
    assert!(Arc::ptr_eq(certified, local.get(&domains[1]).unwrap()));
    // Uncovered domains are only warned about, by every set of rules asked for.
    let both = [IdentityRules::Xmpp, IdentityRules::Sip];
    let local = LocalCertificates::load_pem_for(&cert_path, &key_path, &domains, &both).unwrap();
    assert_eq!(local.domains().count(), 2);

    let error = LocalCertificates::load_pem(&empty_path, &key_path, &domains).unwrap_err();
    assert!(
        matches!(error, CertificateLoadError::NoCertificate { .. }),
        "{error}"
    );
    let error = LocalCertificates::load_pem(directory.join("missing.pem"), &key_path, &domains)
        .unwrap_err();
    assert!(
        matches!(error, CertificateLoadError::CertificateFile { .. }),
        "{error}"
    );
    let error = LocalCertificates::load_pem(&cert_path, &empty_path, &domains).unwrap_err();
    assert!(
        matches!(error, CertificateLoadError::KeyFile { .. }),
        "{error}"
    );

    std::fs::remove_dir_all(&directory).unwrap();
}

/// A peer limited to TLS 1.2, where the handshake signatures go through the other verification function.
fn tls12_client(certified: Option<Arc<CertifiedKey>>) -> Arc<ClientConfig> {
    let provider = crypto_provider();
    let algorithms = provider.signature_verification_algorithms;
    let builder = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(super::verifier::RecordServerCertificate::new(
            algorithms,
        )));
    Arc::new(match certified {
        Some(certified) => builder
            .with_client_cert_resolver(Arc::new(rustls::sign::SingleCertAndKey::from(certified))),
        None => builder.with_no_client_auth(),
    })
}

#[tokio::test]
async fn tls12_peers_are_served_and_their_signatures_checked() {
    let pki = Pki::new("shared");
    let gateway = local(&[("gw.example", pki.certified("gw.example", &[ServerAuth]))]);
    let peer_certificate = pki.certified("peer.example", &[ServerAuth]);

    let outcome = handshake(
        server(&gateway, None, ClientAuth::Required),
        tls12_client(Some(peer_certificate.clone())),
        "gw.example",
    )
    .await;
    assert_eq!(
        outcome.server().protocol_version(),
        Some(rustls::ProtocolVersion::TLSv1_2)
    );
    let chain = outcome.server().peer_certificates().unwrap();
    assert!(
        pki.trust()
            .judge(chain, &domain("peer.example"), UnixTime::now())
            .is_valid()
    );

    let stolen = peer_certificate.cert.clone();
    let impostor_key = pki.certified("impostor.example", &[ServerAuth]).key.clone();
    let outcome = handshake(
        server(&gateway, None, ClientAuth::Optional),
        tls12_client(Some(Arc::new(CertifiedKey::new(stolen, impostor_key)))),
        "gw.example",
    )
    .await;
    let error = outcome.server.unwrap_err();
    assert!(error.to_string().contains("BadSignature"), "{error}");

    let outcome = handshake(
        server(&gateway, None, ClientAuth::Required),
        tls12_client(None),
        "gw.example",
    )
    .await;
    assert!(outcome.server.is_err());
}
