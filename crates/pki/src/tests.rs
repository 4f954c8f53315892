#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CustomExtension, DistinguishedName, DnType,
    ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose, OtherNameValue, SanType,
    date_time_ymd,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use sixgate_core::Domain;

use super::{CertificateIdentities, CertificateProblem, CertificateVerdict, TrustStore};

mod sip;

const XMPP_ADDR: [u64; 9] = [1, 3, 6, 1, 5, 5, 7, 8, 5];

struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    certificate: CertificateDer<'static>,
}

impl TestCa {
    fn new(name: &str) -> Self {
        let params = ca_params(name);
        let key = KeyPair::generate().unwrap();
        let certificate = params.self_signed(&key).unwrap().der().clone();
        Self {
            issuer: Issuer::new(params, key),
            certificate,
        }
    }

    fn intermediate(&self, name: &str) -> Self {
        let params = ca_params(name);
        let key = KeyPair::generate().unwrap();
        let certificate = params.signed_by(&key, &self.issuer).unwrap().der().clone();
        Self {
            issuer: Issuer::new(params, key),
            certificate,
        }
    }

    fn store(&self) -> TrustStore {
        TrustStore::from_der_certs([self.certificate.clone()]).unwrap()
    }

    fn issue(&self, params: &CertificateParams) -> CertificateDer<'static> {
        let key = KeyPair::generate().unwrap();
        params.signed_by(&key, &self.issuer).unwrap().der().clone()
    }
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("{name} test CA"));
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

/// Leaf parameters with the given subject alternative names and extended key usages, and no subject CN.
fn leaf(names: Vec<SanType>, usages: &[ExtendedKeyUsagePurpose]) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.distinguished_name = DistinguishedName::new();
    params.subject_alt_names = names;
    params.extended_key_usages = usages.to_vec();
    params
}

fn dns(name: &str) -> SanType {
    SanType::DnsName(name.try_into().unwrap())
}

fn xmpp_addr(address: &str) -> SanType {
    SanType::OtherName((
        XMPP_ADDR.to_vec(),
        OtherNameValue::Utf8String(address.into()),
    ))
}

fn domain(text: &str) -> Domain {
    Domain::parse(text).unwrap()
}

use ExtendedKeyUsagePurpose::{ClientAuth, ServerAuth};

fn judge(store: &TrustStore, chain: &[CertificateDer<'_>], name: &str) -> CertificateVerdict {
    store.judge(chain, &domain(name), UnixTime::now())
}

fn problem(verdict: CertificateVerdict) -> CertificateProblem {
    match verdict {
        CertificateVerdict::Invalid(problem) => problem,
        CertificateVerdict::Valid => panic!("expected an invalid verdict"),
    }
}

#[test]
fn server_auth_only_certificate_is_valid() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(vec![dns("example.org")], &[ServerAuth]));
    assert_eq!(
        judge(&ca.store(), &[certificate], "example.org"),
        CertificateVerdict::Valid
    );
}

#[test]
fn client_auth_only_certificate_is_valid() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(vec![dns("example.org")], &[ClientAuth]));
    assert_eq!(
        judge(&ca.store(), &[certificate], "example.org"),
        CertificateVerdict::Valid
    );
}

#[test]
fn certificates_with_both_or_no_usages_are_valid() {
    let ca = TestCa::new("a");
    for usages in [&[ServerAuth, ClientAuth][..], &[]] {
        let certificate = ca.issue(&leaf(vec![dns("example.org")], usages));
        assert!(judge(&ca.store(), &[certificate], "example.org").is_valid());
    }
}

#[test]
fn certificate_for_other_purposes_is_refused() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(
        vec![dns("example.org")],
        &[ExtendedKeyUsagePurpose::CodeSigning],
    ));
    let problem = problem(judge(&ca.store(), &[certificate], "example.org"));
    assert_eq!(
        problem,
        CertificateProblem::WrongUsage("1.3.6.1.5.5.7.3.3".into())
    );
}

#[test]
fn wrong_name_is_refused_and_says_what_the_certificate_names() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(
        vec![dns("example.org"), xmpp_addr("example.org")],
        &[ServerAuth],
    ));
    let problem = problem(judge(&ca.store(), &[certificate], "example.net"));
    assert_eq!(
        problem,
        CertificateProblem::NameMismatch {
            domain: domain("example.net"),
            presented: vec!["DNS:example.org".into(), "XmppAddr:example.org".into()],
        }
    );
    assert_eq!(
        problem.to_string(),
        "certificate not valid for example.net (it names: DNS:example.org, XmppAddr:example.org)"
    );
}

#[test]
fn names_match_case_insensitively() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(vec![dns("Chat.Example.ORG")], &[ServerAuth]));
    assert!(judge(&ca.store(), &[certificate], "CHAT.example.org").is_valid());
}

#[test]
fn wildcard_covers_exactly_one_left_most_label() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(vec![dns("*.example.org")], &[ServerAuth]));
    let store = ca.store();
    let chain = [certificate];
    assert!(judge(&store, &chain, "a.example.org").is_valid());
    assert!(judge(&store, &chain, "conference.example.org").is_valid());
    for refused in [
        "example.org",
        "a.b.example.org",
        "aexample.org",
        "a.example.net",
    ] {
        let problem = problem(judge(&store, &chain, refused));
        assert!(
            matches!(problem, CertificateProblem::NameMismatch { .. }),
            "{refused}: {problem}"
        );
    }
}

#[test]
fn partial_and_top_level_wildcards_cover_nothing() {
    let identities = CertificateIdentities {
        dns_names: vec![
            "a*.example.org".into(),
            "*.org".into(),
            "*.*.example.org".into(),
        ],
        ..CertificateIdentities::default()
    };
    for name in [
        "ab.example.org",
        "a.example.org",
        "example.org",
        "a.b.example.org",
    ] {
        assert!(!identities.covers(&domain(name)), "{name}");
    }
}

#[test]
fn xmpp_addr_only_certificate_is_valid() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(vec![xmpp_addr("example.org")], &[ServerAuth]));
    let identities = CertificateIdentities::of(&certificate).unwrap();
    assert_eq!(identities.xmpp_addrs, ["example.org"]);
    assert!(identities.dns_names.is_empty());
    let store = ca.store();
    let chain = [certificate];
    assert!(judge(&store, &chain, "example.org").is_valid());
    assert!(!judge(&store, &chain, "a.example.org").is_valid());
}

#[test]
fn xmpp_addr_of_a_user_does_not_identify_a_server() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(vec![xmpp_addr("admin@example.org")], &[ServerAuth]));
    assert!(!judge(&ca.store(), &[certificate], "example.org").is_valid());
}

/// rcgen writes otherNames as UTF8String only, so the SRVName (IA5String) extension is encoded by hand.
fn srv_name_extension(service: &str) -> CustomExtension {
    fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
        let length = u8::try_from(content.len()).unwrap();
        assert!(length < 0x80, "short-form lengths only");
        [&[tag, length][..], content].concat()
    }
    const ID_ON_DNS_SRV: &[u8] = &[0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x08, 0x07];
    let value = tlv(0xa0, &tlv(0x16, service.as_bytes()));
    let other_name = tlv(0xa0, &[tlv(0x06, ID_ON_DNS_SRV), value].concat());
    let general_names = tlv(0x30, &other_name);
    CustomExtension::from_oid_content(&[2, 5, 29, 17], general_names)
}

#[test]
fn srv_id_for_xmpp_server_is_valid() {
    let ca = TestCa::new("a");
    let mut params = leaf(vec![], &[ServerAuth]);
    params
        .distinguished_name
        .push(DnType::CommonName, "cn.example.org");
    params
        .custom_extensions
        .push(srv_name_extension("_xmpp-server.example.org"));
    let certificate = ca.issue(&params);
    let identities = CertificateIdentities::of(&certificate).unwrap();
    assert_eq!(identities.srv_names, ["_xmpp-server.example.org"]);
    let store = ca.store();
    let chain = [certificate];
    assert!(judge(&store, &chain, "example.org").is_valid());
    // The SAN extension exists, so the CN is not a fallback.
    assert!(!judge(&store, &chain, "cn.example.org").is_valid());
}

#[test]
fn srv_id_for_another_service_is_not_enough() {
    let ca = TestCa::new("a");
    let mut params = leaf(vec![], &[ServerAuth]);
    params
        .custom_extensions
        .push(srv_name_extension("_xmpp-client.example.org"));
    let certificate = ca.issue(&params);
    assert!(!judge(&ca.store(), &[certificate], "example.org").is_valid());
}

#[test]
fn common_name_is_used_only_without_alternative_names() {
    let ca = TestCa::new("a");
    let store = ca.store();

    let mut cn_only = leaf(vec![], &[ServerAuth]);
    cn_only
        .distinguished_name
        .push(DnType::CommonName, "example.org");
    let certificate = ca.issue(&cn_only);
    assert_eq!(
        CertificateIdentities::of(&certificate)
            .unwrap()
            .common_names,
        ["example.org"]
    );
    assert!(judge(&store, &[certificate], "example.org").is_valid());

    let mut both = leaf(vec![dns("other.example")], &[ServerAuth]);
    both.distinguished_name
        .push(DnType::CommonName, "example.org");
    let certificate = ca.issue(&both);
    assert!(
        CertificateIdentities::of(&certificate)
            .unwrap()
            .common_names
            .is_empty()
    );
    assert!(!judge(&store, &[certificate], "example.org").is_valid());
}

#[test]
fn certificate_from_an_unknown_ca_is_refused() {
    let ours = TestCa::new("ours");
    let theirs = TestCa::new("theirs");
    let certificate = theirs.issue(&leaf(vec![dns("example.org")], &[ServerAuth]));
    let problem = problem(judge(&ours.store(), &[certificate], "example.org"));
    assert!(
        matches!(problem, CertificateProblem::UntrustedChain(_)),
        "{problem}"
    );
}

#[test]
fn self_signed_certificate_is_refused() {
    let ca = TestCa::new("a");
    let key = KeyPair::generate().unwrap();
    let certificate = leaf(vec![dns("example.org")], &[ServerAuth])
        .self_signed(&key)
        .unwrap()
        .der()
        .clone();
    let problem = problem(judge(&ca.store(), &[certificate], "example.org"));
    assert!(
        matches!(problem, CertificateProblem::UntrustedChain(_)),
        "{problem}"
    );
}

#[test]
fn empty_store_trusts_nobody() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(vec![dns("example.org")], &[ServerAuth]));
    let store = TrustStore::empty();
    assert!(store.is_empty());
    let problem = problem(judge(&store, &[certificate], "example.org"));
    assert!(
        matches!(problem, CertificateProblem::UntrustedChain(_)),
        "{problem}"
    );
}

#[test]
fn intermediate_must_be_sent_by_the_peer() {
    let root = TestCa::new("root");
    let intermediate = root.intermediate("intermediate");
    let certificate = intermediate.issue(&leaf(vec![dns("example.org")], &[ServerAuth]));
    let store = root.store();
    let full = [certificate.clone(), intermediate.certificate.clone()];
    assert!(judge(&store, &full, "example.org").is_valid());
    let problem = problem(judge(&store, &[certificate], "example.org"));
    assert!(
        matches!(problem, CertificateProblem::UntrustedChain(_)),
        "{problem}"
    );
}

#[test]
fn expired_certificate_is_refused() {
    let ca = TestCa::new("a");
    let mut params = leaf(vec![dns("example.org")], &[ServerAuth]);
    params.not_before = date_time_ymd(2019, 1, 1);
    params.not_after = date_time_ymd(2020, 1, 1);
    let certificate = ca.issue(&params);
    let problem = problem(judge(&ca.store(), &[certificate], "example.org"));
    assert_eq!(
        problem,
        CertificateProblem::Expired {
            not_after: 1_577_836_800
        }
    );
    assert_eq!(
        problem.to_string(),
        "certificate expired at 2020-01-01T00:00:00Z"
    );
}

#[test]
fn certificate_not_yet_valid_is_refused() {
    let ca = TestCa::new("a");
    let certificate = ca.issue(&leaf(vec![dns("example.org")], &[ServerAuth]));
    // rcgen's default notBefore is 1975-01-01.
    let before = UnixTime::since_unix_epoch(Duration::from_secs(86_400));
    let problem = problem(
        ca.store()
            .judge(&[certificate], &domain("example.org"), before),
    );
    assert!(
        matches!(problem, CertificateProblem::NotYetValid { .. }),
        "{problem}"
    );
}

#[test]
fn empty_chain_is_no_certificate() {
    let ca = TestCa::new("a");
    assert_eq!(
        problem(judge(&ca.store(), &[], "example.org")),
        CertificateProblem::NoCertificate
    );
}

#[test]
fn garbage_is_malformed() {
    let ca = TestCa::new("a");
    let garbage = CertificateDer::from(vec![0x30, 0x03, 0x02, 0x01, 0x01]);
    let problem = problem(judge(&ca.store(), &[garbage], "example.org"));
    assert!(
        matches!(problem, CertificateProblem::Malformed(_)),
        "{problem}"
    );
}

#[test]
fn trust_store_refuses_garbage_anchors_or_skips_them() {
    let ca = TestCa::new("a");
    let garbage = CertificateDer::from(vec![1, 2, 3]);
    let error = TrustStore::from_der_certs([ca.certificate.clone(), garbage.clone()]).unwrap_err();
    assert_eq!(error.position, 1);
    let (store, skipped) = TrustStore::from_parsable_der_certs([garbage, ca.certificate.clone()]);
    assert_eq!((store.len(), skipped), (1, 1));
    assert_eq!(store.certificates(), std::slice::from_ref(&ca.certificate));
}
