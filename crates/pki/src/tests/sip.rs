//! RFC 5922 §7.1–7.2: which SIP domains a certificate names.

use rcgen::{DnType, SanType};
use rustls_pki_types::{CertificateDer, UnixTime};

use super::{ServerAuth, TestCa, dns, domain, leaf, problem, xmpp_addr};
use crate::{
    CertificateProblem, CertificateVerdict, IdentityRules, SipIdentities, TrustStore,
    sip_identities,
};

fn uri(text: &str) -> SanType {
    SanType::URI(text.try_into().unwrap())
}

/// A certificate from the test CA with these subject alternative names (`None`: no extension at all, which is
/// what rcgen writes for an empty list) and CN.
fn certificate(
    ca: &TestCa,
    names: Option<Vec<SanType>>,
    common_name: Option<&str>,
) -> CertificateDer<'static> {
    let mut params = leaf(names.unwrap_or_default(), &[ServerAuth]);
    if let Some(common_name) = common_name {
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
    }
    ca.issue(&params)
}

struct Case {
    what: &'static str,
    names: Option<Vec<SanType>>,
    common_name: Option<&'static str>,
    /// The SIP domain identities, in the order RFC 5922 §7.1 yields them.
    identities: &'static [&'static str],
    /// Domains the certificate must not authenticate.
    refused: &'static [&'static str],
}

fn cases() -> Vec<Case> {
    vec![
        Case {
            what: "a sip URI without user part names its host",
            names: Some(vec![uri("sip:example.com")]),
            common_name: None,
            identities: &["example.com"],
            refused: &["sip.example.com", "com", "example.org"],
        },
        Case {
            what: "port and parameters are not part of the domain",
            names: Some(vec![uri("sip:example.com:5061;transport=tls")]),
            common_name: None,
            identities: &["example.com"],
            refused: &[],
        },
        Case {
            what: "a sip URI with user part names a user, not a domain",
            names: Some(vec![uri("sip:user@example.com")]),
            common_name: None,
            identities: &[],
            refused: &["example.com"],
        },
        Case {
            what: "a sips URI is no SIP domain identity",
            names: Some(vec![uri("sips:example.com")]),
            common_name: None,
            identities: &[],
            refused: &["example.com"],
        },
        Case {
            what: "URIs of other schemes are ignored",
            names: Some(vec![uri("https://example.com/"), dns("example.net")]),
            common_name: None,
            identities: &["example.net"],
            refused: &["example.com"],
        },
        Case {
            what: "DNS names count only without a sip URI identity",
            names: Some(vec![uri("sip:example.com"), dns("example.net")]),
            common_name: None,
            identities: &["example.com"],
            refused: &["example.net"],
        },
        Case {
            what: "a user's sip URI does not hide the DNS names",
            names: Some(vec![uri("sip:user@example.com"), dns("example.net")]),
            common_name: None,
            identities: &["example.net"],
            refused: &["example.com"],
        },
        Case {
            what: "DNS names alone are identities",
            names: Some(vec![dns("example.com"), dns("example.net")]),
            common_name: None,
            identities: &["example.com", "example.net"],
            refused: &["www.example.com"],
        },
        Case {
            what: "a wildcard DNS name names nothing",
            names: Some(vec![dns("*.example.com")]),
            common_name: None,
            identities: &[],
            refused: &["a.example.com", "example.com"],
        },
        Case {
            what: "the CN counts when there are no alternative names",
            names: None,
            common_name: Some("Example.COM"),
            identities: &["example.com"],
            refused: &["sip.example.com"],
        },
        Case {
            what: "the CN does not count beside alternative names",
            names: Some(vec![dns("example.net")]),
            common_name: Some("example.com"),
            identities: &["example.net"],
            refused: &["example.com"],
        },
        Case {
            what: "a CN that is no domain names nothing",
            names: None,
            common_name: Some("Example Inc. SIP proxy"),
            identities: &[],
            refused: &["example.com"],
        },
        Case {
            what: "an XmppAddr is no SIP identity",
            names: Some(vec![xmpp_addr("example.com")]),
            common_name: None,
            identities: &[],
            refused: &["example.com"],
        },
        Case {
            what: "names compare case-insensitively",
            names: Some(vec![uri("SIP:Example.COM"), uri("sip:SIP.example.com")]),
            common_name: None,
            identities: &["example.com", "sip.example.com"],
            refused: &[],
        },
    ]
}

#[test]
fn sip_domain_identities_follow_rfc_5922() {
    let ca = TestCa::new("sip");
    let store = ca.store();
    let now = UnixTime::now();
    for case in cases() {
        let what = case.what;
        let certificate = certificate(&ca, case.names, case.common_name);
        let expected: Vec<_> = case.identities.iter().copied().map(domain).collect();
        assert_eq!(sip_identities(&certificate).unwrap(), expected, "{what}");
        let chain = [certificate];
        for name in case.identities {
            let upper = name.to_ascii_uppercase();
            assert_eq!(
                store.judge_with(&chain, &domain(&upper), now, IdentityRules::Sip),
                CertificateVerdict::Valid,
                "{what}: {name}"
            );
        }
        for name in case.refused {
            let problem = problem(store.judge_with(&chain, &domain(name), now, IdentityRules::Sip));
            assert!(
                matches!(problem, CertificateProblem::NameMismatch { .. }),
                "{what}: {name}: {problem}"
            );
        }
    }
}

#[test]
fn xmpp_and_sip_rules_differ_on_wildcards_and_uris() {
    let ca = TestCa::new("both");
    let store = ca.store();
    let now = UnixTime::now();
    let wildcard = [certificate(&ca, Some(vec![dns("*.example.com")]), None)];
    let chat = domain("chat.example.com");
    assert!(store.judge(&wildcard, &chat, now).is_valid());
    assert!(
        !store
            .judge_with(&wildcard, &chat, now, IdentityRules::Sip)
            .is_valid()
    );

    let sip_only = [certificate(&ca, Some(vec![uri("sip:example.com")]), None)];
    let example = domain("example.com");
    assert!(!store.judge(&sip_only, &example, now).is_valid());
    assert!(
        store
            .judge_with(&sip_only, &example, now, IdentityRules::Sip)
            .is_valid()
    );
}

#[test]
fn sip_name_mismatch_says_what_the_certificate_names() {
    let ca = TestCa::new("sip");
    let chain = [certificate(
        &ca,
        Some(vec![uri("sip:alice@example.com"), dns("example.net")]),
        None,
    )];
    let identities = SipIdentities::of(&chain[0]).unwrap();
    assert_eq!(identities.uris, ["sip:alice@example.com"]);
    assert_eq!(identities.domains(), [domain("example.net")]);
    let problem = problem(ca.store().judge_with(
        &chain,
        &domain("example.com"),
        UnixTime::now(),
        IdentityRules::Sip,
    ));
    assert_eq!(
        problem.to_string(),
        "certificate not valid for example.com (it names: URI:sip:alice@example.com, DNS:example.net)"
    );
}

#[test]
fn chain_is_verified_before_names_are_trusted() {
    let ours = TestCa::new("ours");
    let theirs = TestCa::new("theirs");
    let chain = [certificate(
        &theirs,
        Some(vec![uri("sip:example.com")]),
        None,
    )];
    let now = UnixTime::now();
    // The names can be read from any certificate; whether they mean anything is the chain's business.
    assert_eq!(sip_identities(&chain[0]).unwrap(), [domain("example.com")]);
    assert!(matches!(
        ours.store().verify_chain(&chain, now),
        Err(CertificateProblem::UntrustedChain(_))
    ));
    assert_eq!(theirs.store().verify_chain(&chain, now), Ok(()));
    assert_eq!(
        TrustStore::empty().verify_chain(&[], now),
        Err(CertificateProblem::NoCertificate)
    );
    let problem =
        problem(
            ours.store()
                .judge_with(&chain, &domain("example.com"), now, IdentityRules::Sip),
        );
    assert!(
        matches!(problem, CertificateProblem::UntrustedChain(_)),
        "{problem}"
    );
}

#[test]
fn only_the_host_of_a_sip_uri_is_a_domain() {
    let identities = SipIdentities {
        uris: [
            "sip:a.example",
            "sip:b.example:5061",
            "sip:c.example;transport=tls",
            "sip:d.example?subject=x",
            "Sip:E.Example.",
            "sip:f.example:tls",
            "sip:g.example:",
            "sip:[2001:db8::1]",
            "sip:",
            "sip:h;user=x@i.example",
            "sip:*.example",
            "sip",
            "tel:+15551234567",
        ]
        .map(String::from)
        .to_vec(),
        ..SipIdentities::default()
    };
    let expected = [
        "a.example",
        "b.example",
        "c.example",
        "d.example",
        "e.example",
    ]
    .map(domain);
    assert_eq!(identities.domains(), expected);
}
