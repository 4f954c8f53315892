//! Conversations between a session and a scripted peer, byte for byte as Prosody and ejabberd send them
//! (shared/docs/real-peers.md §9).

#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
};
use rustls_pki_types::{CertificateDer, UnixTime};
use sixgate_core::Domain;

use super::*;
use crate::certificate::TrustStore;
use crate::policy::{DomainPolicy, RemotePolicy};

const OURS: &str = "gw.example";
const THEIRS: &str = "prosody.example";

struct TestPolicy {
    require_valid_certificate: bool,
    allow_dialback: bool,
}

impl DomainPolicy for TestPolicy {
    fn is_local(&self, domain: &Domain) -> bool {
        domain.as_str() == OURS
    }
    fn remote(&self, domain: &Domain) -> Option<RemotePolicy> {
        (domain.as_str() != "denied.example").then_some(RemotePolicy {
            require_valid_certificate: self.require_valid_certificate,
            allow_dialback: self.allow_dialback,
        })
    }
}

struct Pki {
    ca: CertificateDer<'static>,
    theirs: CertificateDer<'static>,
}

fn pki() -> Pki {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "test CA");
    let ca_cert = ca_params.self_signed(&ca_key).unwrap();
    let issuer = Issuer::new(ca_params, ca_key);
    let leaf_key = KeyPair::generate().unwrap();
    let mut leaf_params = CertificateParams::new(vec![THEIRS.to_owned()]).unwrap();
    leaf_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    Pki {
        ca: ca_cert.der().clone(),
        theirs: leaf.der().clone(),
    }
}

fn config(pki: &Pki, require_valid_certificate: bool, allow_dialback: bool) -> Arc<SessionConfig> {
    Arc::new(SessionConfig {
        stanza_size_limit: 10_000,
        negotiation_timeout: Duration::from_secs(60),
        idle_timeout: Duration::from_secs(600),
        keepalive_interval: Duration::from_secs(60),
        close_timeout: Duration::from_secs(5),
        dialback_secret: DialbackSecret::new(b"test secret"),
        trust: Arc::new(TrustStore::from_der_certs([pki.ca.clone()]).unwrap()),
        policy: Arc::new(TestPolicy {
            require_valid_certificate,
            allow_dialback,
        }),
    })
}

fn tls(chain: Vec<CertificateDer<'static>>) -> TlsInfo {
    TlsInfo {
        peer_certificates: chain,
        now: UnixTime::now(),
        presented_certificate: true,
    }
}

fn d(s: &str) -> Domain {
    Domain::parse(s).unwrap()
}

/// A session plus the text it has written so far.
struct Conversation {
    session: Session,
    now: Instant,
}

impl Conversation {
    fn send(&mut self, text: &str) -> String {
        self.session.receive(self.now, text.as_bytes());
        self.output()
    }
    fn output(&mut self) -> String {
        String::from_utf8(self.session.take_output()).unwrap()
    }
    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.session.poll_event()).collect()
    }
}

// Prosody's header (real-peers.md §9.1), empty id included.
fn prosody_header() -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xml:lang='en' \
         xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
         id='' version='1.0' to='{OURS}' from='{THEIRS}'>"
    )
}

fn inbound(config: Arc<SessionConfig>) -> Conversation {
    let now = Instant::now();
    Conversation {
        session: Session::inbound(config, now),
        now,
    }
}

/// Runs an inbound conversation up to the features after TLS.
fn inbound_after_tls(
    config: Arc<SessionConfig>,
    chain: Vec<CertificateDer<'static>>,
) -> (Conversation, String) {
    let mut c = inbound(config);
    let out = c.send(&prosody_header());
    assert!(
        out.contains("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>"),
        "{out}"
    );
    let out = c.send("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_eq!(out, "<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_eq!(c.events(), vec![Event::StartTls]);
    c.session.tls_established(tls(chain));
    let features = c.send(&prosody_header());
    (c, features)
}

fn message(from: &str, to: &str) -> String {
    format!("<message from='{from}' to='{to}' type='chat' id='m1'><body>hi</body></message>")
}

#[test]
fn inbound_sasl_external_then_stanzas() {
    let pki = pki();
    let (mut c, features) = inbound_after_tls(config(&pki, true, true), vec![pki.theirs.clone()]);
    assert!(
        features.contains("<mechanism>EXTERNAL</mechanism>"),
        "{features}"
    );
    assert!(features.contains("<dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback>"));
    // Prosody sends the base64 of its domain as authzid; the restart header follows in the same read.
    let out = c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>cHJvc29keS5leGFtcGxl</auth>{}",
        prosody_header()
    ));
    assert!(
        out.starts_with("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>"),
        "{out}"
    );
    assert!(out.contains("<stream:features>"), "{out}");
    assert!(
        !out.contains("EXTERNAL"),
        "SASL is not offered twice: {out}"
    );
    assert_eq!(
        c.events(),
        vec![Event::Authenticated {
            local: d(OURS),
            remote: d(THEIRS),
            method: AuthMethod::SaslExternal
        }]
    );
    // Pipelined stanzas (Prosody sends presence and message in one record).
    c.send(&format!(
        "<presence from='a@{THEIRS}/r' to='b@{OURS}'/>{}",
        message(&format!("a@{THEIRS}/r"), &format!("b@{OURS}"))
    ));
    let events = c.events();
    assert_eq!(events.len(), 2);
    assert!(
        matches!(&events[1], Event::Stanza(m) if m.name() == "message" && m.attr("id") == Some("m1"))
    );
}

#[test]
fn sasl_external_is_refused_for_an_invalid_certificate() {
    let pki = pki();
    let (mut c, features) = inbound_after_tls(config(&pki, true, true), vec![]);
    assert!(!features.contains("EXTERNAL"), "{features}");
    let out =
        c.send("<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>");
    assert_eq!(
        out,
        "<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>"
    );
    assert!(c.events().is_empty());
}

#[test]
fn nothing_before_tls() {
    let pki = pki();
    let mut c = inbound(config(&pki, true, true));
    c.send(&prosody_header());
    let out = c.send(&message(&format!("a@{THEIRS}"), &format!("b@{OURS}")));
    assert!(
        out.contains("<policy-violation xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{out}"
    );
    assert!(out.ends_with("</stream:stream>"));
    assert!(matches!(
        c.events().as_slice(),
        [Event::Closed(SessionEnd::StreamError {
            condition: StreamErrorCondition::PolicyViolation,
            ..
        })]
    ));
    // Dialback before TLS is refused the same way.
    let mut c = inbound(config(&pki, false, true));
    c.send(&prosody_header());
    let out = c.send(&format!(
        "<db:result from='{THEIRS}' to='{OURS}'>abc</db:result>"
    ));
    assert!(out.contains("policy-violation"), "{out}");
}

#[test]
fn unknown_host_and_bad_version() {
    let pki = pki();
    let mut c = inbound(config(&pki, true, true));
    let out = c.send(&prosody_header().replace(OURS, "elsewhere.example"));
    assert!(
        out.contains("<host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/>"),
        "{out}"
    );
    let mut c = inbound(config(&pki, true, true));
    let out = c.send(&prosody_header().replace("id='' version='1.0'", "id='' version='0.9'"));
    assert!(out.contains("unsupported-version"), "{out}");
}

#[test]
fn stanzas_must_come_from_authenticated_pairs() {
    let pki = pki();
    let authenticate = || {
        let (mut c, _) = inbound_after_tls(config(&pki, true, true), vec![pki.theirs.clone()]);
        c.send(&format!(
            "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>{}",
            prosody_header()
        ));
        c.events();
        c
    };
    let mut c = authenticate();
    let out = c.send(&message("a@evil.example", &format!("b@{OURS}")));
    assert!(out.contains("<invalid-from "), "{out}");
    let mut c = authenticate();
    let out = c.send(&message(&format!("a@{THEIRS}"), "b@elsewhere.example"));
    assert!(out.contains("<host-unknown "), "{out}");
    let mut c = authenticate();
    let out = c.send(&format!("<message to='b@{OURS}'><body>x</body></message>"));
    assert!(out.contains("<improper-addressing "), "{out}");
    // Before authentication: not-authorized.
    let (mut c, _) = inbound_after_tls(config(&pki, true, true), vec![pki.theirs.clone()]);
    let out = c.send(&message(&format!("a@{THEIRS}"), &format!("b@{OURS}")));
    assert!(out.contains("<not-authorized "), "{out}");
}

#[test]
fn inbound_dialback_as_receiving_server() {
    let pki = pki();
    // Insecure domain: no certificate needed.
    let (mut c, features) = inbound_after_tls(config(&pki, false, true), vec![]);
    assert!(features.contains("urn:xmpp:features:dialback"));
    let stream_id = c.session.stream_id().unwrap().to_owned();
    c.send(&format!(
        "<db:result from='{THEIRS}' to='{OURS}'>0123abcd</db:result>"
    ));
    assert_eq!(
        c.events(),
        vec![Event::VerifyDialback {
            local: d(OURS),
            remote: d(THEIRS),
            stream_id,
            key: "0123abcd".into()
        }]
    );
    // Stanzas wait for the verdict.
    c.session
        .dialback_verified(&d(OURS), &d(THEIRS), DialbackOutcome::Valid);
    assert_eq!(
        c.output(),
        format!("<db:result from='{OURS}' to='{THEIRS}' type='valid'/>")
    );
    assert!(matches!(
        c.events().as_slice(),
        [Event::Authenticated {
            method: AuthMethod::Dialback,
            ..
        }]
    ));
    c.send(&message(&format!("a@{THEIRS}"), &format!("b@{OURS}")));
    assert!(matches!(c.events().as_slice(), [Event::Stanza(_)]));
}

#[test]
fn inbound_dialback_refusals() {
    let pki = pki();
    // A valid certificate is required but absent.
    let (mut c, _) = inbound_after_tls(config(&pki, true, true), vec![]);
    let out = c.send(&format!(
        "<db:result from='{THEIRS}' to='{OURS}'>k</db:result>"
    ));
    assert!(
        out.contains("type='error'") && out.contains("<policy-violation "),
        "{out}"
    );
    assert!(c.events().is_empty());
    // Dialback not allowed.
    let (mut c, _) = inbound_after_tls(config(&pki, false, false), vec![]);
    let out = c.send(&format!(
        "<db:result from='{THEIRS}' to='{OURS}'>k</db:result>"
    ));
    assert!(out.contains("<not-allowed "), "{out}");
    // Denied domain and a domain that is not ours.
    let (mut c, _) = inbound_after_tls(config(&pki, false, true), vec![]);
    let out = c.send(&format!(
        "<db:result from='denied.example' to='{OURS}'>k</db:result>"
    ));
    assert!(out.contains("<not-allowed "), "{out}");
    let out = c.send(&format!(
        "<db:result from='{THEIRS}' to='other.example'>k</db:result>"
    ));
    assert!(out.contains("<item-not-found "), "{out}");
    // The authoritative server says no.
    c.send(&format!(
        "<db:result from='{THEIRS}' to='{OURS}'>k</db:result>"
    ));
    c.events();
    c.session
        .dialback_verified(&d(OURS), &d(THEIRS), DialbackOutcome::Invalid);
    assert!(c.output().contains("type='invalid'"));
    let out = c.send(&message(&format!("a@{THEIRS}"), &format!("b@{OURS}")));
    assert!(out.contains("not-authorized"), "{out}");
}

#[test]
fn authoritative_verification() {
    let pki = pki();
    let config = config(&pki, false, true);
    let key = config.dialback_secret.key(&d(THEIRS), &d(OURS), "s-123");
    let (mut c, _) = inbound_after_tls(config, vec![]);
    // ejabberd's verify connection: no authentication, just db:verify.
    let out = c.send(&format!(
        "<db:verify from='{THEIRS}' to='{OURS}' id='s-123'>{key}</db:verify>"
    ));
    assert_eq!(
        out,
        format!("<db:verify from='{OURS}' to='{THEIRS}' id='s-123' type='valid'/>")
    );
    let out = c.send(&format!(
        "<db:verify from='{THEIRS}' to='{OURS}' id='s-124'>{key}</db:verify>"
    ));
    assert!(out.contains("type='invalid'"), "{out}");
    let out = c.send(&format!(
        "<db:verify from='{THEIRS}' to='x.example' id='s-124'>{key}</db:verify>"
    ));
    assert!(out.contains("type='error'"), "{out}");
    c.send("</stream:stream>");
    assert_eq!(c.events(), vec![Event::Closed(SessionEnd::Closed)]);
}

// ----- outbound -----

fn server_header(id: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:server' xmlns:stream='http://etherx.jabber.org/streams' \
         xmlns:db='jabber:server:dialback' version='1.0' from='{THEIRS}' to='{OURS}' id='{id}' xml:lang='en'>"
    )
}

const STARTTLS_FEATURES: &str = "<stream:features><starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'><required/></starttls>\
    <dialback xmlns='urn:xmpp:features:dialback'/></stream:features>";
const EXTERNAL_FEATURES: &str = "<stream:features><mechanisms xmlns='urn:ietf:params:xml:ns:xmpp-sasl'>\
    <mechanism>EXTERNAL</mechanism></mechanisms><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>";
const DIALBACK_FEATURES: &str = "<stream:features><dialback xmlns='urn:xmpp:features:dialback'><errors/></dialback></stream:features>";

fn outbound(config: Arc<SessionConfig>) -> Conversation {
    let now = Instant::now();
    let mut c = Conversation {
        session: Session::outbound(config, d(OURS), d(THEIRS), now),
        now,
    };
    let header = c.output();
    assert!(
        header.contains(&format!("from='{OURS}' to='{THEIRS}'")),
        "{header}"
    );
    assert!(
        header.contains("xmlns:db='jabber:server:dialback'"),
        "{header}"
    );
    assert!(!header.contains(" id="), "initiators send no id: {header}");
    c
}

fn outbound_to_tls(c: &mut Conversation, chain: Vec<CertificateDer<'static>>) -> String {
    let out = c.send(&format!("{}{STARTTLS_FEATURES}", server_header("pre")));
    assert_eq!(out, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    c.send("<proceed xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_eq!(c.events(), vec![Event::StartTls]);
    c.session.tls_established(tls(chain));
    c.output()
}

#[test]
fn outbound_sasl_external() {
    let pki = pki();
    let mut c = outbound(config(&pki, true, true));
    let header = outbound_to_tls(&mut c, vec![pki.theirs.clone()]);
    assert!(header.contains("<stream:stream"), "{header}");
    let out = c.send(&format!("{}{EXTERNAL_FEATURES}", server_header("s1")));
    assert_eq!(
        out,
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>Z3cuZXhhbXBsZQ==</auth>"
    );
    assert!(
        c.send("<success xmlns='urn:ietf:params:xml:ns:xmpp-sasl'/>")
            .contains("<stream:stream")
    );
    assert!(!c.session.is_established());
    // ejabberd's features after SASL.
    c.send(&format!("{}{DIALBACK_FEATURES}", server_header("s2")));
    assert_eq!(
        c.events(),
        vec![Event::Authenticated {
            local: d(OURS),
            remote: d(THEIRS),
            method: AuthMethod::SaslExternal
        }]
    );
    let stanza =
        Element::new(crate::xml::ns::SERVER, "message").with_attr("to", "x@prosody.example");
    assert!(c.session.send_stanza(c.now, &stanza));
    assert_eq!(c.output(), "<message to='x@prosody.example'/>");
}

#[test]
fn outbound_falls_back_to_dialback() {
    let pki = pki();
    let config = config(&pki, true, true);
    let secret = config.dialback_secret.clone();
    let mut c = outbound(config);
    outbound_to_tls(&mut c, vec![pki.theirs.clone()]);
    // The peer does not accept our certificate: no EXTERNAL.
    let out = c.send(&format!("{}{DIALBACK_FEATURES}", server_header("s-77")));
    let key = secret.key(&d(THEIRS), &d(OURS), "s-77");
    assert_eq!(
        out,
        format!("<db:result from='{OURS}' to='{THEIRS}'>{key}</db:result>")
    );
    // Prosody's answer echoes the key and adds an id.
    c.send(&format!("<db:result xmlns:db='jabber:server:dialback' from='{THEIRS}' to='{OURS}' type='valid' id='x'>{key}</db:result>"));
    assert!(matches!(
        c.events().as_slice(),
        [Event::Authenticated {
            method: AuthMethod::Dialback,
            ..
        }]
    ));
    assert!(c.session.is_established());
}

#[test]
fn outbound_sasl_failure_then_dialback_refused() {
    let pki = pki();
    let mut c = outbound(config(&pki, true, true));
    outbound_to_tls(&mut c, vec![pki.theirs.clone()]);
    c.send(&format!("{}{EXTERNAL_FEATURES}", server_header("s1")));
    let out =
        c.send("<failure xmlns='urn:ietf:params:xml:ns:xmpp-sasl'><not-authorized/></failure>");
    assert!(out.starts_with("<db:result "), "{out}");
    let out = c.send(&format!(
        "<db:result from='{THEIRS}' to='{OURS}' type='invalid'/>"
    ));
    assert!(matches!(
        c.events().as_slice(),
        [Event::Closed(SessionEnd::AuthenticationRefused(_))]
    ));
    assert!(out.ends_with("</stream:stream>"), "{out}");
}

#[test]
fn outbound_refuses_a_bad_certificate_unless_insecure() {
    let pki = pki();
    let mut c = outbound(config(&pki, true, true));
    let out = outbound_to_tls(&mut c, vec![]);
    assert!(out.contains("policy-violation"), "{out}");
    assert!(matches!(
        c.events().as_slice(),
        [Event::Closed(SessionEnd::CertificateRejected(_))]
    ));

    let mut c = outbound(config(&pki, false, true));
    outbound_to_tls(&mut c, vec![]);
    assert!(c.events().is_empty());
    let out = c.send(&format!("{}{DIALBACK_FEATURES}", server_header("s9")));
    assert!(out.starts_with("<db:result "), "{out}");
}

#[test]
fn outbound_without_dialback_permission_gives_up() {
    let pki = pki();
    let mut c = outbound(config(&pki, true, false));
    outbound_to_tls(&mut c, vec![pki.theirs.clone()]);
    c.send(&format!("{}{DIALBACK_FEATURES}", server_header("s1")));
    assert!(matches!(
        c.events().as_slice(),
        [Event::Closed(SessionEnd::AuthenticationRefused(_))]
    ));
}

#[test]
fn outbound_plaintext_peer_is_refused() {
    let pki = pki();
    let mut c = outbound(config(&pki, false, true));
    // A server without TLS offers only dialback; we ask for STARTTLS anyway and it refuses.
    let out = c.send(&format!("{}{DIALBACK_FEATURES}", server_header("p")));
    assert_eq!(out, "<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    c.send("<failure xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>");
    assert_eq!(c.events(), vec![Event::Closed(SessionEnd::TlsRefused)]);
}

#[test]
fn verify_session_asks_and_closes() {
    let pki = pki();
    let now = Instant::now();
    let mut c = Conversation {
        session: Session::verify(
            config(&pki, false, true),
            d(OURS),
            d(THEIRS),
            "in-1".into(),
            "k3y".into(),
            now,
        ),
        now,
    };
    c.output();
    outbound_to_tls(&mut c, vec![pki.theirs.clone()]);
    let out = c.send(&format!("{}{DIALBACK_FEATURES}", server_header("v1")));
    assert_eq!(
        out,
        format!("<db:verify from='{OURS}' to='{THEIRS}' id='in-1'>k3y</db:verify>")
    );
    // ejabberd's empty answer.
    let out = c.send(&format!(
        "<db:verify from='{THEIRS}' to='{OURS}' id='in-1' type='valid'/>"
    ));
    assert_eq!(out, "</stream:stream>");
    assert_eq!(c.events(), vec![Event::DialbackVerdict(true)]);
    c.send("</stream:stream>");
    assert_eq!(c.events(), vec![Event::Closed(SessionEnd::Closed)]);
}

// ----- time, limits, errors -----

#[test]
fn negotiation_timeout_keepalive_and_idle_close() {
    let pki = pki();
    let config = config(&pki, true, true);
    let mut c = inbound(config.clone());
    let start = c.now;
    assert_eq!(
        c.session.poll_timeout(),
        Some(start + config.negotiation_timeout)
    );
    c.session.handle_timeout(start + Duration::from_secs(61));
    assert!(c.output().contains("connection-timeout"));
    assert!(matches!(
        c.events().as_slice(),
        [Event::Closed(SessionEnd::StreamError { .. })]
    ));

    // Authenticated stream: whitespace keepalives, then an idle close.
    let (mut c, _) = inbound_after_tls(config.clone(), vec![pki.theirs.clone()]);
    c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>{}",
        prosody_header()
    ));
    c.events();
    let t = c.now + Duration::from_secs(60);
    assert_eq!(c.session.poll_timeout(), Some(t));
    c.session.handle_timeout(t);
    assert_eq!(c.output(), " ");
    let idle = c.now + config.idle_timeout;
    c.session.handle_timeout(idle);
    assert_eq!(c.output(), "</stream:stream>");
    assert!(c.events().is_empty(), "waits for the peer's close");
    c.session.handle_timeout(idle + config.close_timeout);
    assert_eq!(c.events(), vec![Event::Closed(SessionEnd::Timeout("idle"))]);
}

#[test]
fn oversized_stanza_and_garbage() {
    let pki = pki();
    let (mut c, _) = inbound_after_tls(config(&pki, true, true), vec![pki.theirs.clone()]);
    c.send(&format!(
        "<auth xmlns='urn:ietf:params:xml:ns:xmpp-sasl' mechanism='EXTERNAL'>=</auth>{}",
        prosody_header()
    ));
    c.events();
    let big = format!(
        "<message from='a@{THEIRS}' to='b@{OURS}'><body>{}</body></message>",
        "x".repeat(20_000)
    );
    let out = c.send(&big);
    assert!(out.contains("policy-violation"), "{out}");

    let mut c = inbound(config(&pki, true, true));
    // rxml holds text until the next markup (bounded by its token limit; the negotiation timeout ends a
    // peer that never sends any), so the garbage is noticed at the first '<'.
    let out = c.send("GET / HTTP/1.1\r\n\r\n<html>");
    assert!(
        out.contains("not-well-formed") || out.contains("invalid-namespace"),
        "{out}"
    );
    assert!(matches!(c.events().as_slice(), [Event::Closed(_)]));
}

#[test]
fn peer_stream_error_and_eof() {
    let pki = pki();
    let mut c = outbound(config(&pki, true, true));
    c.send(&format!(
        "{}<stream:error><host-unknown xmlns='urn:ietf:params:xml:ns:xmpp-streams'/></stream:error>",
        server_header("x")
    ));
    assert_eq!(
        c.events(),
        vec![Event::Closed(SessionEnd::PeerStreamError(
            "host-unknown".into()
        ))]
    );
    let mut c = outbound(config(&pki, true, true));
    c.session.receive_eof();
    assert_eq!(c.events(), vec![Event::Closed(SessionEnd::ConnectionLost)]);
}

// ----- hostile input -----

mod arbitrary_input {
    use proptest::prelude::*;

    use super::*;

    /// Fragments that take a session deep into negotiation, mixed with garbage.
    fn fragment() -> impl Strategy<Value = String> {
        prop_oneof![
            Just(prosody_header()),
            Just("<starttls xmlns='urn:ietf:params:xml:ns:xmpp-tls'/>".to_owned()),
            Just(format!(
                "<db:result from='{THEIRS}' to='{OURS}'>k</db:result>"
            )),
            Just(format!(
                "<db:verify from='{THEIRS}' to='{OURS}' id='x'>k</db:verify>"
            )),
            Just(message(&format!("a@{THEIRS}"), &format!("b@{OURS}"))),
            Just("</stream:stream>".to_owned()),
            Just("<a><b><c/></b>".to_owned()),
            "[ -~]{0,40}",
            proptest::collection::vec(any::<u8>(), 0..40)
                .prop_map(|bytes| String::from_utf8_lossy(&bytes).into_owned()),
        ]
    }

    proptest! {
        /// Whatever arrives, in whatever pieces, the session neither panics nor keeps going after it
        /// reported its end, and what it writes stays small.
        #[test]
        fn sessions_survive_anything(fragments in proptest::collection::vec(fragment(), 0..12), tls_after in 0usize..12) {
            let pki_ = pki();
            for inbound_role in [true, false] {
                let now = Instant::now();
                let config = config(&pki_, false, true);
                let mut session = if inbound_role {
                    Session::inbound(config, now)
                } else {
                    Session::outbound(config, d(OURS), d(THEIRS), now)
                };
                let mut written = session.take_output().len();
                let mut closed = false;
                for (i, fragment) in fragments.iter().enumerate() {
                    session.receive(now, fragment.as_bytes());
                    while let Some(event) = session.poll_event() {
                        prop_assert!(!closed, "event after Closed: {event:?}");
                        match event {
                            Event::StartTls if i >= tls_after => session.tls_established(tls(vec![])),
                            Event::Closed(_) => closed = true,
                            _ => {}
                        }
                    }
                    written += session.take_output().len();
                }
                session.handle_timeout(now + Duration::from_secs(3600));
                prop_assert!(written < 4096 * (fragments.len() + 2));
            }
        }
    }
}
