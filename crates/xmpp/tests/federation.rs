//! Two s2s services federating with each other over loopback TCP: the whole driver (listener, pool, TLS
//! upgrade, SASL EXTERNAL, dialback with a separate verify connection, bounces) without an external server.
//! Interop with real Prosody and ejabberd is tested in `tests/interop`.

#![allow(clippy::unwrap_used, missing_docs)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rcgen::{ExtendedKeyUsagePurpose, SanType};
use sixgate_core::Domain;
use sixgate_tls::testing::TestPki as Pki;
use sixgate_xmpp::discovery::{Discovery, DnsConfig};
use sixgate_xmpp::tls::TlsContext;
use sixgate_xmpp::{S2sConfig, S2sService};
use sixgate_xmpp_proto::certificate::TrustStore;
use sixgate_xmpp_proto::dialback::DialbackSecret;
use sixgate_xmpp_proto::policy::{DomainPolicy, RemotePolicy};
use sixgate_xmpp_proto::session::SessionConfig;
use sixgate_xmpp_proto::stanza;
use sixgate_xmpp_proto::xml::{Element, ns};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

struct Policy {
    local: Domain,
    remote: Domain,
    remote_addr: SocketAddr,
    require_valid_certificate: bool,
}

impl DomainPolicy for Policy {
    fn is_local(&self, domain: &Domain) -> bool {
        *domain == self.local
    }
    fn remote(&self, domain: &Domain) -> Option<RemotePolicy> {
        (*domain == self.remote || domain.as_str() == "unreachable.example").then_some(
            RemotePolicy {
                require_valid_certificate: self.require_valid_certificate,
                allow_dialback: true,
            },
        )
    }
    fn static_endpoints(&self, domain: &Domain) -> Vec<(String, u16)> {
        if *domain == self.remote {
            vec![(self.remote_addr.ip().to_string(), self.remote_addr.port())]
        } else {
            // Nothing listens on port 9 of loopback: the connection is refused at once.
            vec![("127.0.0.1".to_owned(), 9)]
        }
    }
}

struct Side {
    service: S2sService,
    inbox: mpsc::Receiver<Element>,
}

async fn start(
    pki: &Pki,
    local: &str,
    remote: &str,
    listener: TcpListener,
    remote_addr: SocketAddr,
    trusted: bool,
) -> Side {
    let trust = if trusted {
        pki.trust()
    } else {
        TrustStore::empty()
    };
    let session = Arc::new(SessionConfig {
        stanza_size_limit: 100_000,
        negotiation_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        keepalive_interval: Duration::from_secs(30),
        close_timeout: Duration::from_secs(1),
        dialback_secret: DialbackSecret::new(local.as_bytes()),
        trust: Arc::new(trust.clone()),
        policy: Arc::new(Policy {
            local: Domain::parse(local).unwrap(),
            remote: Domain::parse(remote).unwrap(),
            remote_addr,
            require_valid_certificate: trusted,
        }),
    });
    let address = listener.local_addr().unwrap();
    drop(listener);
    // serverAuth only, as public CAs issue them since 2026: must still work as a client certificate.
    let leaf = pki.local_with(
        local,
        vec![SanType::DnsName(local.try_into().unwrap())],
        &[ExtendedKeyUsagePurpose::ServerAuth],
    );
    let tls = TlsContext::new(leaf, trust).unwrap();
    let discovery = Discovery::new(&DnsConfig {
        nameservers: vec!["127.0.0.1:9".parse().unwrap()],
        timeout: Duration::from_millis(200),
    })
    .unwrap();
    let (deliver, inbox) = mpsc::channel(16);
    let service = S2sService::start(
        S2sConfig {
            listen: vec![address],
            connect_timeout: Duration::from_secs(5),
            outbound_queue_limit: 4,
            max_inbound_connections: 16,
            session,
        },
        tls,
        discovery,
        deliver,
    )
    .await
    .unwrap();
    Side { service, inbox }
}

async fn pair(trusted: bool) -> (Side, Side) {
    let pki = Pki::new("federation");
    // Reserve two ports, then hand them to the services.
    let la = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let lb = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let (aa, ab) = (la.local_addr().unwrap(), lb.local_addr().unwrap());
    let a = start(&pki, "a.example", "b.example", la, ab, trusted).await;
    let b = start(&pki, "b.example", "a.example", lb, aa, trusted).await;
    (a, b)
}

fn message(from: &str, to: &str, body: &str) -> Element {
    Element::new(ns::SERVER, "message")
        .with_attr("from", from)
        .with_attr("to", to)
        .with_attr("type", "chat")
        .with_child(Element::new(ns::SERVER, "body").with_text(body))
}

async fn receive(inbox: &mut mpsc::Receiver<Element>) -> Element {
    tokio::time::timeout(Duration::from_secs(10), inbox.recv())
        .await
        .expect("nothing arrived in time")
        .unwrap()
}

async fn round_trip(a: &mut Side, b: &mut Side) {
    // Several messages queued before the stream exists arrive in order.
    for i in 0..3 {
        a.service
            .send(message(
                "alice@a.example/r",
                "bob@b.example",
                &format!("hello {i} <&> ☺"),
            ))
            .await;
    }
    for i in 0..3 {
        let got = receive(&mut b.inbox).await;
        assert_eq!(got.attr("from"), Some("alice@a.example/r"));
        assert_eq!(
            got.child(ns::SERVER, "body").unwrap().text(),
            format!("hello {i} <&> ☺")
        );
    }
    // And the other direction, over B's own outbound stream.
    b.service
        .send(message("bob@b.example", "alice@a.example/r", "back"))
        .await;
    let got = receive(&mut a.inbox).await;
    assert_eq!(got.child(ns::SERVER, "body").unwrap().text(), "back");
}

#[tokio::test]
async fn sasl_external_both_ways() {
    let (mut a, mut b) = pair(true).await;
    round_trip(&mut a, &mut b).await;
    a.service.shutdown(Duration::from_secs(3)).await;
    b.service.shutdown(Duration::from_secs(3)).await;
}

#[tokio::test]
async fn dialback_both_ways_when_no_certificate_is_trusted() {
    let (mut a, mut b) = pair(false).await;
    round_trip(&mut a, &mut b).await;
    a.service.shutdown(Duration::from_secs(3)).await;
    b.service.shutdown(Duration::from_secs(3)).await;
}

#[tokio::test]
async fn unreachable_and_denied_domains_bounce() {
    let (mut a, _b) = pair(true).await;
    a.service
        .send(message(
            "alice@a.example/r",
            "x@unreachable.example",
            "lost?",
        ))
        .await;
    let bounce = receive(&mut a.inbox).await;
    assert_eq!(bounce.attr("to"), Some("alice@a.example/r"));
    assert_eq!(
        stanza::error_condition(&bounce),
        Some("remote-server-timeout")
    );
    assert_eq!(bounce.child(ns::SERVER, "body").unwrap().text(), "lost?");

    a.service
        .send(message("alice@a.example/r", "x@denied.example", "no"))
        .await;
    let bounce = receive(&mut a.inbox).await;
    assert_eq!(stanza::error_condition(&bounce), Some("not-allowed"));
}

#[tokio::test]
async fn confirmed_sends_report_the_outcome_instead_of_bouncing() {
    let (a, mut b) = pair(true).await;
    // Confirmed once written to the authenticated stream; the stanza then arrives.
    a.service
        .send_confirmed(message("alice@a.example/r", "bob@b.example", "confirmed"))
        .await
        .unwrap();
    let got = receive(&mut b.inbox).await;
    assert_eq!(got.child(ns::SERVER, "body").unwrap().text(), "confirmed");

    let unreachable = a
        .service
        .send_confirmed(message(
            "alice@a.example/r",
            "x@unreachable.example",
            "lost?",
        ))
        .await
        .unwrap_err();
    assert_eq!(
        unreachable.condition,
        stanza::StanzaErrorCondition::RemoteServerTimeout
    );
    assert!(unreachable.text.contains("127.0.0.1:9"), "{unreachable}");

    let denied = a
        .service
        .send_confirmed(message("alice@a.example/r", "x@denied.example", "no"))
        .await
        .unwrap_err();
    assert_eq!(denied.condition, stanza::StanzaErrorCondition::NotAllowed);
    // Nothing was bounced: the outcome went to the caller.
    let mut a = a;
    assert!(
        tokio::time::timeout(Duration::from_millis(300), a.inbox.recv())
            .await
            .is_err()
    );
}
