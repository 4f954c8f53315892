#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use rcgen::ExtendedKeyUsagePurpose;
use rustls::sign::CertifiedKey;
use rustls_pki_types::UnixTime;
use sixgate_core::Domain;
use sixgate_xmpp_proto::certificate::{CertificateProblem, CertificateVerdict};

use sixgate_tls::testing::{TestPki as Pki, handshake};

use super::{ALPN_XMPP_SERVER, LocalCertificates, TlsContext};

use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};

fn domain(text: &str) -> Domain {
    Domain::parse(text).unwrap()
}

fn context(pki: &Pki, certificates: &[(&str, Arc<CertifiedKey>)]) -> TlsContext {
    let mut local = LocalCertificates::new();
    for (name, certified) in certificates {
        local.insert(domain(name), Arc::clone(certified));
    }
    TlsContext::new(local, pki.trust()).unwrap()
}

#[tokio::test]
async fn server_certificate_is_chosen_by_sni() {
    let pki = Pki::new("gateway");
    let a = pki.certified("a.example", &[ServerAuth]);
    let b = pki.certified("b.example", &[ServerAuth]);
    let gateway = context(&pki, &[("a.example", a.clone()), ("b.example", b.clone())]);
    let peer = context(&pki, &[]);

    // SNI wins over the stream header's domain.
    let outcome = handshake(
        gateway.server_config(Some(&domain("a.example"))),
        peer.client_config(&domain("peer.example"), false),
        "b.example",
    )
    .await;
    assert_eq!(outcome.server().server_name(), Some("b.example"));
    assert_eq!(outcome.server_certificate(), b.cert[0]);
    let chain = outcome.client().peer_certificates().unwrap();
    assert!(
        peer.trust()
            .judge(chain, &domain("b.example"), UnixTime::now())
            .is_valid()
    );

    // An SNI that is not ours falls back to the stream header's domain.
    let outcome = handshake(
        gateway.server_config(Some(&domain("b.example"))),
        peer.client_config(&domain("peer.example"), false),
        "elsewhere.example",
    )
    .await;
    assert_eq!(outcome.server_certificate(), b.cert[0]);
}

#[tokio::test]
async fn without_sni_the_stream_header_domain_chooses() {
    let pki = Pki::new("gateway");
    let a = pki.certified("a.example", &[ServerAuth]);
    let b = pki.certified("b.example", &[ServerAuth]);
    let gateway = context(&pki, &[("a.example", a.clone()), ("b.example", b.clone())]);
    let peer = context(&pki, &[]);
    // Prosody 0.12 sends no SNI on s2s.
    let mut no_sni = (*peer.client_config(&domain("peer.example"), false)).clone();
    no_sni.enable_sni = false;
    let no_sni = Arc::new(no_sni);

    let cases = [
        (Some("b.example"), &b),
        (Some("a.example"), &a),
        (Some("unknown.example"), &a),
        (None, &a),
    ];
    for (fallback, expected) in cases {
        let fallback = fallback.map(domain);
        let outcome = handshake(
            gateway.server_config(fallback.as_ref()),
            Arc::clone(&no_sni),
            "b.example",
        )
        .await;
        assert_eq!(outcome.server().server_name(), None);
        assert_eq!(
            outcome.server_certificate(),
            expected.cert[0],
            "{fallback:?}"
        );
    }
}

#[tokio::test]
async fn client_certificate_is_recorded_and_judged_afterwards() {
    let pki = Pki::new("shared");
    let gateway = context(
        &pki,
        &[("gw.example", pki.certified("gw.example", &[ServerAuth]))],
    );
    let peer_certificate = pki.certified("peer.example", &[ServerAuth, ClientAuth]);
    let peer = context(&pki, &[("peer.example", peer_certificate.clone())]);

    let outcome = handshake(
        gateway.server_config(None),
        peer.client_config(&domain("peer.example"), false),
        "gw.example",
    )
    .await;
    let chain = outcome.server().peer_certificates().unwrap();
    assert_eq!(chain, peer_certificate.cert);
    let now = UnixTime::now();
    let trust = gateway.trust();
    assert_eq!(
        trust.judge(chain, &domain("peer.example"), now),
        CertificateVerdict::Valid
    );
    assert!(matches!(
        trust.judge(chain, &domain("other.example"), now),
        CertificateVerdict::Invalid(CertificateProblem::NameMismatch { .. })
    ));
}

#[tokio::test]
async fn server_auth_only_client_certificate_is_accepted() {
    let pki = Pki::new("letsencrypt-like");
    let gateway = context(
        &pki,
        &[("gw.example", pki.certified("gw.example", &[ServerAuth]))],
    );
    let peer = context(
        &pki,
        &[("peer.example", pki.certified("peer.example", &[ServerAuth]))],
    );

    let outcome = handshake(
        gateway.server_config(None),
        peer.client_config(&domain("peer.example"), false),
        "gw.example",
    )
    .await;
    let chain = outcome.server().peer_certificates().unwrap();
    assert!(
        gateway
            .trust()
            .judge(chain, &domain("peer.example"), UnixTime::now())
            .is_valid()
    );
}

#[tokio::test]
async fn untrusted_client_certificate_is_recorded_not_refused() {
    let ours = Pki::new("ours");
    let theirs = Pki::new("theirs");
    let gateway = context(
        &ours,
        &[("gw.example", ours.certified("gw.example", &[ServerAuth]))],
    );
    let peer = context(
        &theirs,
        &[(
            "peer.example",
            theirs.certified("peer.example", &[ClientAuth]),
        )],
    );

    let outcome = handshake(
        gateway.server_config(None),
        peer.client_config(&domain("peer.example"), false),
        "gw.example",
    )
    .await;
    // Each side recorded a chain it does not trust; both may still go on to dialback.
    let verdict = gateway.trust().judge(
        outcome.server().peer_certificates().unwrap(),
        &domain("peer.example"),
        UnixTime::now(),
    );
    assert!(matches!(
        verdict,
        CertificateVerdict::Invalid(CertificateProblem::UntrustedChain(_))
    ));
    let verdict = peer.trust().judge(
        outcome.client().peer_certificates().unwrap(),
        &domain("gw.example"),
        UnixTime::now(),
    );
    assert!(!verdict.is_valid());
}

#[tokio::test]
async fn handshake_without_client_certificate_succeeds() {
    let pki = Pki::new("gateway");
    let gateway = context(
        &pki,
        &[("gw.example", pki.certified("gw.example", &[ServerAuth]))],
    );
    let peer = context(&pki, &[]);

    let outcome = handshake(
        gateway.server_config(None),
        peer.client_config(&domain("peer.example"), false),
        "gw.example",
    )
    .await;
    assert_eq!(outcome.server().peer_certificates(), None);
    assert_eq!(
        gateway
            .trust()
            .judge(&[], &domain("peer.example"), UnixTime::now()),
        CertificateVerdict::Invalid(CertificateProblem::NoCertificate)
    );
}

#[tokio::test]
async fn alpn_is_offered_for_direct_tls_only() {
    let pki = Pki::new("gateway");
    let gateway = context(
        &pki,
        &[("gw.example", pki.certified("gw.example", &[ServerAuth]))],
    );
    let peer = context(&pki, &[]);
    for (direct_tls, expected) in [(true, Some(ALPN_XMPP_SERVER)), (false, None)] {
        let outcome = handshake(
            gateway.server_config(None),
            peer.client_config(&domain("peer.example"), direct_tls),
            "gw.example",
        )
        .await;
        assert_eq!(outcome.server().alpn_protocol(), expected);
        assert_eq!(outcome.client().alpn_protocol(), expected);
    }
}

#[test]
fn configurations_are_cached_per_known_domain() {
    let pki = Pki::new("gateway");
    let gateway = context(
        &pki,
        &[("gw.example", pki.certified("gw.example", &[ServerAuth]))],
    );
    let ours = domain("gw.example");
    let unknown = domain("unknown.example");

    assert!(Arc::ptr_eq(
        &gateway.server_config(Some(&ours)),
        &gateway.server_config(Some(&ours))
    ));
    assert!(Arc::ptr_eq(
        &gateway.server_config(Some(&unknown)),
        &gateway.server_config(None)
    ));
    assert!(!Arc::ptr_eq(
        &gateway.server_config(Some(&ours)),
        &gateway.server_config(None)
    ));

    assert!(Arc::ptr_eq(
        &gateway.client_config(&ours, true),
        &gateway.client_config(&ours, true)
    ));
    assert!(!Arc::ptr_eq(
        &gateway.client_config(&ours, true),
        &gateway.client_config(&ours, false)
    ));
    assert!(Arc::ptr_eq(
        &gateway.client_config(&unknown, false),
        &gateway.client_config(&domain("other.example"), false)
    ));
    assert!(
        gateway
            .client_config(&ours, false)
            .client_auth_cert_resolver
            .has_certs()
    );
    assert!(
        !gateway
            .client_config(&unknown, false)
            .client_auth_cert_resolver
            .has_certs()
    );
}
