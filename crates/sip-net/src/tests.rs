//! Services talking mutual TLS over loopback, and raw TLS peers that send exactly the bytes a test needs.

#![allow(clippy::unwrap_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{ExtendedKeyUsagePurpose, SanType};
use rustls_pki_types::ServerName;
use sixgate_core::Domain;
use sixgate_dns::testing::{TestDns, a, srv};
use sixgate_pki::TrustStore;
use sixgate_sip::message::{CallId, HeaderName, Method, NameAddr, StatusCode, Uri};
use sixgate_sip::transaction::TransactionConfig;
use sixgate_sip::{Frame, Framer, Message, Request, Response};
use sixgate_tls::testing::TestPki as Pki;
use sixgate_tls::{ClientAuth, LocalCertificates, client_config, server_config};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::{TlsAcceptor, TlsConnector};

use crate::{
    DnsConfig, IncomingRequest, NextHop, PeerInfo, SendError, SipConfig, SipDiscovery, SipService,
    SipTls, Target,
};

const WAIT: Duration = Duration::from_secs(5);

/// Our certificate for `domain` from `pki`: SAN URI `sip:<domain>` and DNS name `<domain>`, serverAuth only,
/// as public CAs issue them since clientAuth was dropped.
fn sip_local(pki: &Pki, domain: &str) -> LocalCertificates {
    pki.local_with(
        domain,
        vec![
            SanType::URI(format!("sip:{domain}").try_into().unwrap()),
            SanType::DnsName(domain.try_into().unwrap()),
        ],
        &[ExtendedKeyUsagePurpose::ServerAuth],
    )
}

fn domain_of(text: &str) -> Domain {
    Domain::parse(text).unwrap()
}

/// A discovery whose name server is never asked: tests with static IP targets must not touch DNS.
fn no_dns() -> SipDiscovery {
    SipDiscovery::new(&DnsConfig {
        nameservers: vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 9))],
        timeout: Duration::from_millis(200),
    })
    .unwrap()
}

/// A service on loopback and the requests it receives.
struct Node {
    service: SipService,
    inbound: mpsc::Receiver<IncomingRequest>,
}

impl Node {
    async fn start(local: LocalCertificates, trust: TrustStore) -> Self {
        Self::start_with(local, trust, no_dns(), SipConfig::default()).await
    }

    async fn start_with(
        local: LocalCertificates,
        trust: TrustStore,
        discovery: SipDiscovery,
        mut config: SipConfig,
    ) -> Self {
        config.listen = vec![SocketAddr::from((Ipv4Addr::LOCALHOST, 0))];
        let (sender, inbound) = mpsc::channel(16);
        let tls = SipTls::new(local, trust).unwrap();
        let service = SipService::start(config, tls, discovery, sender)
            .await
            .unwrap();
        Self { service, inbound }
    }

    fn addr(&self) -> SocketAddr {
        self.service.local_addrs()[0]
    }

    /// How to reach this node as `identity`, presenting our certificate for `local`.
    fn hop(&self, identity: &str, local: Option<&str>) -> NextHop {
        NextHop {
            target: Target::Static {
                host: self.addr().ip().to_string(),
                port: self.addr().port(),
            },
            identity: domain_of(identity),
            local: local.map(domain_of),
        }
    }

    async fn next_request(&mut self) -> IncomingRequest {
        tokio::time::timeout(WAIT, self.inbound.recv())
            .await
            .expect("no request arrived")
            .expect("service gone")
    }

    /// Asserts that no request arrives for a while.
    async fn assert_quiet(&mut self) {
        let got = tokio::time::timeout(Duration::from_millis(300), self.inbound.recv()).await;
        assert!(got.is_err(), "unexpected request: {got:?}");
    }
}

/// Answers the next request with `status`; returns the node, the request and who sent it.
fn answer_next(
    mut node: Node,
    status: StatusCode,
) -> tokio::task::JoinHandle<(Node, Request, PeerInfo)> {
    tokio::spawn(async move {
        let incoming = node.next_request().await;
        let response = incoming.response(status, "");
        let (request, peer, responder) = incoming.into_parts();
        responder.respond(response).unwrap();
        (node, request, peer)
    })
}

fn message(from: &str, to: &str, call_id: &str, body: &str) -> Request {
    let mut request = Request::new(
        Method::Message,
        Uri::parse(&format!("sip:{to}")).unwrap(),
        NameAddr::new(Uri::parse(&format!("sip:{from}")).unwrap()),
        NameAddr::new(Uri::parse(&format!("sip:{to}")).unwrap()),
        CallId::parse(call_id).unwrap(),
        1,
    );
    request.from.params.set("tag", Some("fromtag1")).unwrap();
    request
        .headers
        .push(HeaderName::CONTENT_TYPE, "text/plain")
        .unwrap();
    request.body = body.as_bytes().to_vec();
    request
}

/// A raw TLS client presenting `local`'s certificate for `domain` (none for `None`).
async fn raw_client(
    addr: SocketAddr,
    local: &LocalCertificates,
    domain: Option<&str>,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let config = client_config(local, domain.map(domain_of).as_ref(), &[]).unwrap();
    let tcp = TcpStream::connect(addr).await?;
    TlsConnector::from(Arc::new(config))
        .connect(ServerName::try_from("b.example").unwrap(), tcp)
        .await
}

/// Reads the next SIP message from a raw peer.
async fn read_message<S: AsyncRead + Unpin>(stream: &mut S, framer: &mut Framer) -> Message {
    let mut buffer = [0u8; 4096];
    loop {
        if let Some(frame) = framer.next_frame().unwrap() {
            if let Frame::Message { head, body } = frame {
                return Message::parse(&head, body).unwrap();
            }
            continue;
        }
        let read = tokio::time::timeout(WAIT, stream.read(&mut buffer))
            .await
            .expect("nothing to read")
            .unwrap();
        assert!(read > 0, "connection closed");
        framer.push(&buffer[..read]).unwrap();
    }
}

fn response(message: Message) -> Response {
    match message {
        Message::Response(response) => response,
        Message::Request(request) => panic!("expected a response, got {request:?}"),
    }
}

/// Whether the peer closes the connection (or fails it) without sending anything.
async fn closed_without_data<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut S) -> bool {
    let _ = stream
        .write_all(b"OPTIONS sip:b.example SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        .await;
    let mut buffer = [0u8; 512];
    match tokio::time::timeout(WAIT, stream.read(&mut buffer)).await {
        Ok(Ok(0) | Err(_)) => true,
        Ok(Ok(_)) => false,
        Err(_) => panic!("connection neither answered nor closed"),
    }
}

const RAW_MESSAGE: &str = "MESSAGE sip:bob@b.example SIP/2.0\r\n\
    Via: SIP/2.0/TLS client.a.example:5061;branch=z9hG4bKraw1;rport\r\n\
    Max-Forwards: 70\r\n\
    From: <sip:alice@a.example>;tag=raw\r\n\
    To: <sip:bob@b.example>\r\n\
    Call-ID: raw-1@a.example\r\n\
    CSeq: 7 MESSAGE\r\n\
    Content-Type: text/plain\r\n\
    Content-Length: 5\r\n\r\nhello";

#[tokio::test]
async fn message_over_mutual_tls_with_identities_checked_both_ways() {
    let pki = Pki::new("federation");
    let a = Node::start(sip_local(&pki, "a.example"), pki.trust()).await;
    let b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let hop = b.hop("b.example", Some("a.example"));
    let server = answer_next(b, StatusCode::OK);

    let request = message(
        "alice@a.example",
        "bob@b.example",
        "call-1@a.example",
        "hello",
    );
    let got = a.service.send_request(&hop, request).await.unwrap();
    assert_eq!(got.status, StatusCode::OK);
    // Our Via was taken off again; the request had no other.
    assert!(got.via.is_empty(), "{:?}", got.via);
    assert_eq!(got.call_id.as_str(), "call-1@a.example");
    assert!(got.to.tag().is_some());

    let (_b, received, peer) = server.await.unwrap();
    // The server judged our certificate: its identities are those of a.example's certificate.
    assert_eq!(peer.identities, vec![domain_of("a.example")]);
    assert_eq!(received.method, Method::Message);
    assert_eq!(received.body, b"hello");
    assert_eq!(received.max_forwards, Some(70));
    let via = received.top_via().unwrap();
    assert_eq!(via.transport.as_str(), "TLS");
    assert!(via.cookie_branch().is_some());
    assert_eq!(via.rport(), Some(peer.addr.port()));
}

#[tokio::test]
async fn via_host_is_our_sent_by() {
    let pki = Pki::new("federation");
    let config = SipConfig {
        via_host: Some("sip.a.example:5061".to_owned()),
        ..SipConfig::default()
    };
    let a = Node::start_with(sip_local(&pki, "a.example"), pki.trust(), no_dns(), config).await;
    let b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let hop = b.hop("b.example", Some("a.example"));
    let server = answer_next(b, StatusCode::ACCEPTED);
    let request = message(
        "alice@a.example",
        "bob@b.example",
        "call-via@a.example",
        "hi",
    );
    let got = a.service.send_request(&hop, request).await.unwrap();
    assert_eq!(got.status, StatusCode::ACCEPTED);
    let (_b, received, _) = server.await.unwrap();
    let via = received.top_via().unwrap();
    assert_eq!(via.sent_by.to_string(), "sip.a.example:5061");
    assert_eq!(
        via.received(),
        Some(std::net::IpAddr::from(Ipv4Addr::LOCALHOST))
    );
}

#[tokio::test]
async fn forwarded_request_keeps_a_loop_mark_and_a_loop_is_refused() {
    let pki = Pki::new("federation");
    let config = SipConfig {
        via_host: Some("sip.a.example:5061".to_owned()),
        ..SipConfig::default()
    };
    let a = Node::start_with(sip_local(&pki, "a.example"), pki.trust(), no_dns(), config).await;
    let b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let hop = b.hop("b.example", Some("a.example"));
    let server = answer_next(b, StatusCode::ACCEPTED);
    // A request that came from upstream (it has a Via): forwarding marks our Via with its loop hash.
    let mut upstream = message(
        "alice@a.example",
        "bob@b.example",
        "call-loop@a.example",
        "hi",
    );
    upstream.via.push(sixgate_sip::message::Via::new(
        sixgate_sip::message::Token::new("TLS").unwrap(),
        sixgate_sip::message::HostPort::parse("edge.a.example").unwrap(),
        &sixgate_sip::message::Token::new("z9hG4bKedge1").unwrap(),
    ));
    let got = a
        .service
        .send_request(&hop, upstream.clone())
        .await
        .unwrap();
    assert_eq!(got.status, StatusCode::ACCEPTED);
    let (_b, received, _) = server.await.unwrap();
    assert_eq!(received.via.len(), 2, "our Via on top of the upstream one");
    // The same request arriving back at us with our Via in it is a loop.
    let looped = received.clone();
    assert_eq!(
        a.service.send_request(&hop, looped).await,
        Err(SendError::Loop)
    );
}

#[tokio::test]
async fn client_without_certificate_is_refused() {
    let pki = Pki::new("federation");
    let mut b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    // TLS 1.3 lets the client finish its side before the server has checked its certificate, so the
    // refusal may only show on the first read.
    match raw_client(b.addr(), &LocalCertificates::new(), None).await {
        Ok(mut stream) => assert!(closed_without_data(&mut stream).await),
        Err(_refused) => {}
    }
    b.assert_quiet().await;
}

#[tokio::test]
async fn client_with_untrusted_chain_is_refused_after_the_handshake() {
    let pki = Pki::new("federation");
    let rogue = Pki::new("rogue");
    let mut b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let local = sip_local(&rogue, "a.example");
    let mut stream = raw_client(b.addr(), &local, Some("a.example"))
        .await
        .expect("the handshake itself succeeds");
    assert!(closed_without_data(&mut stream).await);
    b.assert_quiet().await;
}

#[tokio::test]
async fn certificate_of_another_domain_is_accepted_with_its_real_identities() {
    let pki = Pki::new("federation");
    let c = Node::start(sip_local(&pki, "c.example"), pki.trust()).await;
    let b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let hop = b.hop("b.example", Some("c.example"));
    let server = answer_next(b, StatusCode::FORBIDDEN);
    // Claims a.example in From, but can only prove c.example.
    let request = message("alice@a.example", "bob@b.example", "spoof@a.example", "hi");
    let got = c.service.send_request(&hop, request).await.unwrap();
    assert_eq!(got.status, StatusCode::FORBIDDEN);
    let (_b, received, peer) = server.await.unwrap();
    assert_eq!(peer.identities, vec![domain_of("c.example")]);
    assert_eq!(
        received.from.uri.host_port().unwrap().to_string(),
        "a.example"
    );
}

#[tokio::test]
async fn server_certificate_must_name_the_identity() {
    let pki = Pki::new("federation");
    let a = Node::start(sip_local(&pki, "a.example"), pki.trust()).await;
    let mut b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let hop = b.hop("other.example", Some("a.example"));
    let request = message(
        "alice@a.example",
        "bob@other.example",
        "wrong@a.example",
        "hi",
    );
    match a.service.send_request(&hop, request).await {
        Err(SendError::Transport(reason)) => {
            assert!(reason.contains("not valid for other.example"), "{reason}");
        }
        other => panic!("expected a transport error, got {other:?}"),
    }
    b.assert_quiet().await;

    // An untrusted server is refused the same way.
    let rogue = Pki::new("rogue");
    let mut r = Node::start(sip_local(&rogue, "b.example"), pki.trust()).await;
    let request = message("alice@a.example", "bob@b.example", "rogue@a.example", "hi");
    let outcome = a
        .service
        .send_request(&r.hop("b.example", Some("a.example")), request)
        .await;
    assert!(
        matches!(outcome, Err(SendError::Transport(_))),
        "{outcome:?}"
    );
    r.assert_quiet().await;
}

#[tokio::test]
async fn unanswered_request_times_out_after_timer_f() {
    let pki = Pki::new("federation");
    let config = SipConfig {
        transaction: TransactionConfig {
            t1: Duration::from_millis(10),
            ..TransactionConfig::default()
        },
        ..SipConfig::default()
    };
    let a = Node::start_with(sip_local(&pki, "a.example"), pki.trust(), no_dns(), config).await;
    let mut b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let hop = b.hop("b.example", Some("a.example"));
    // B's application takes the request and sits on it.
    let holder = tokio::spawn(async move {
        let incoming = b.next_request().await;
        tokio::time::sleep(Duration::from_secs(2)).await;
        drop(incoming);
    });
    let started = tokio::time::Instant::now();
    let request = message("alice@a.example", "bob@b.example", "slow@a.example", "hi");
    let outcome = a.service.send_request(&hop, request).await;
    assert_eq!(outcome, Err(SendError::Timeout));
    let elapsed = started.elapsed();
    // Timer F is 64·T1 = 640 ms.
    assert!(elapsed >= Duration::from_millis(600), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(2), "{elapsed:?}");
    holder.abort();
}

#[tokio::test]
async fn dropped_responder_answers_500() {
    let pki = Pki::new("federation");
    let a = Node::start(sip_local(&pki, "a.example"), pki.trust()).await;
    let mut b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let hop = b.hop("b.example", Some("a.example"));
    let dropper = tokio::spawn(async move {
        drop(b.next_request().await);
        b
    });
    let request = message("alice@a.example", "bob@b.example", "drop@a.example", "hi");
    let got = a.service.send_request(&hop, request).await.unwrap();
    assert_eq!(got.status, StatusCode::SERVER_INTERNAL_ERROR);
    dropper.await.unwrap();
}

#[tokio::test]
async fn retransmission_is_absorbed_and_answered_again() {
    let pki = Pki::new("federation");
    let mut b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let local = sip_local(&pki, "a.example");
    let mut stream = raw_client(b.addr(), &local, Some("a.example"))
        .await
        .unwrap();
    let mut framer = Framer::default();

    stream.write_all(RAW_MESSAGE.as_bytes()).await.unwrap();
    let incoming = b.next_request().await;
    assert_eq!(incoming.peer.identities, vec![domain_of("a.example")]);
    // A copy arriving while the application still decides is absorbed without an answer.
    stream.write_all(RAW_MESSAGE.as_bytes()).await.unwrap();
    b.assert_quiet().await;
    let ok = incoming.response(StatusCode::OK, "");
    incoming.respond(ok).unwrap();
    let first = response(read_message(&mut stream, &mut framer).await);
    assert_eq!(first.status, StatusCode::OK);

    // A copy after the final response gets the same response again, and the application never sees it.
    stream.write_all(RAW_MESSAGE.as_bytes()).await.unwrap();
    let again = response(read_message(&mut stream, &mut framer).await);
    assert_eq!(again, first);
    b.assert_quiet().await;
}

#[tokio::test]
async fn crlf_ping_gets_a_pong() {
    let pki = Pki::new("federation");
    let b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let local = sip_local(&pki, "a.example");
    let mut stream = raw_client(b.addr(), &local, Some("a.example"))
        .await
        .unwrap();
    for _ in 0..2 {
        stream.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        tokio::time::timeout(WAIT, stream.read_exact(&mut pong))
            .await
            .unwrap()
            .unwrap();
        assert_eq!(&pong, b"\r\n");
    }
}

#[tokio::test]
async fn unparsable_requests_are_answered() {
    let pki = Pki::new("federation");
    let mut b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let local = sip_local(&pki, "a.example");
    let mut stream = raw_client(b.addr(), &local, Some("a.example"))
        .await
        .unwrap();
    let mut framer = Framer::default();

    // Framed but not parsable (CSeq names another method): 400, and the connection stays usable.
    let bad_cseq = RAW_MESSAGE.replace("CSeq: 7 MESSAGE", "CSeq: 7 OPTIONS");
    stream.write_all(bad_cseq.as_bytes()).await.unwrap();
    let rejected = response(read_message(&mut stream, &mut framer).await);
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
    assert_eq!(rejected.call_id.as_str(), "raw-1@a.example");

    // An INVITE has no transaction here but still reaches the application, which answers it.
    let invite = RAW_MESSAGE
        .replace("MESSAGE sip:", "INVITE sip:")
        .replace("CSeq: 7 MESSAGE", "CSeq: 7 INVITE")
        .replace("z9hG4bKraw1", "z9hG4bKinvite");
    stream.write_all(invite.as_bytes()).await.unwrap();
    let incoming = b.next_request().await;
    assert_eq!(incoming.request.method, Method::Invite);
    let mut not_implemented = incoming.response(StatusCode::NOT_IMPLEMENTED, "");
    not_implemented
        .headers
        .push(HeaderName::ALLOW, "MESSAGE, OPTIONS")
        .unwrap();
    incoming.respond(not_implemented).unwrap();
    let answered = response(read_message(&mut stream, &mut framer).await);
    assert_eq!(answered.status, StatusCode::NOT_IMPLEMENTED);

    // No Content-Length: the stream cannot be framed, so 400 and the connection closes.
    let unframed = "OPTIONS sip:b.example SIP/2.0\r\n\
        Via: SIP/2.0/TLS client.a.example;branch=z9hG4bKnolength\r\n\
        From: <sip:alice@a.example>;tag=x\r\nTo: <sip:b.example>\r\n\
        Call-ID: nolength@a.example\r\nCSeq: 1 OPTIONS\r\n\r\n";
    stream.write_all(unframed.as_bytes()).await.unwrap();
    let rejected = response(read_message(&mut stream, &mut framer).await);
    assert_eq!(rejected.status, StatusCode::BAD_REQUEST);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(WAIT, stream.read_to_end(&mut rest)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?} {rest:?}");
    b.assert_quiet().await;
}

#[tokio::test]
async fn one_connection_carries_several_requests() {
    let pki = Pki::new("federation");
    let a = Node::start(sip_local(&pki, "a.example"), pki.trust()).await;
    let b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let hop = b.hop("b.example", Some("a.example"));
    let server = answer_next(b, StatusCode::OK);
    let first = message(
        "alice@a.example",
        "bob@b.example",
        "reuse-1@a.example",
        "one",
    );
    assert_eq!(
        a.service.send_request(&hop, first).await.unwrap().status,
        StatusCode::OK
    );
    let (b, _, first) = server.await.unwrap();
    let server = answer_next(b, StatusCode::OK);
    let second = message(
        "alice@a.example",
        "bob@b.example",
        "reuse-2@a.example",
        "two",
    );
    assert_eq!(
        a.service.send_request(&hop, second).await.unwrap().status,
        StatusCode::OK
    );
    let (b, _, second) = server.await.unwrap();
    assert_eq!(b.service.accepted(), 1);
    assert_eq!(first.addr, second.addr);
}

#[tokio::test]
async fn lost_pooled_connection_is_replaced() {
    let pki = Pki::new("federation");
    let a = Node::start(sip_local(&pki, "a.example"), pki.trust()).await;
    let config = SipConfig {
        idle_timeout: Duration::from_millis(200),
        ..SipConfig::default()
    };
    let b = Node::start_with(sip_local(&pki, "b.example"), pki.trust(), no_dns(), config).await;
    let hop = b.hop("b.example", Some("a.example"));
    let server = answer_next(b, StatusCode::OK);
    let first = message(
        "alice@a.example",
        "bob@b.example",
        "idle-1@a.example",
        "one",
    );
    assert_eq!(
        a.service.send_request(&hop, first).await.unwrap().status,
        StatusCode::OK
    );
    let (b, _, _) = server.await.unwrap();
    // B closes the idle connection; A notices and opens a new one for the next request.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let server = answer_next(b, StatusCode::OK);
    let second = message(
        "alice@a.example",
        "bob@b.example",
        "idle-2@a.example",
        "two",
    );
    assert_eq!(
        a.service.send_request(&hop, second).await.unwrap().status,
        StatusCode::OK
    );
    let (b, _, _) = server.await.unwrap();
    assert_eq!(b.service.accepted(), 2);
}

#[tokio::test]
async fn peer_may_send_requests_on_the_connection_we_opened() {
    let pki = Pki::new("federation");
    let mut a = Node::start(sip_local(&pki, "a.example"), pki.trust()).await;
    // A raw server for b.example that answers A's request, then sends its own on the same connection.
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server_config = server_config(
        Arc::new(sip_local(&pki, "b.example")),
        None,
        ClientAuth::Required,
        &[],
    )
    .unwrap();
    let raw = tokio::spawn(async move {
        let (tcp, _) = listener.accept().await.unwrap();
        let mut stream = TlsAcceptor::from(Arc::new(server_config))
            .accept(tcp)
            .await
            .unwrap();
        let mut framer = Framer::default();
        let Message::Request(request) = read_message(&mut stream, &mut framer).await else {
            panic!("expected a request");
        };
        let ok = sixgate_sip::stateless::response_for(
            &request,
            StatusCode::OK,
            "",
            &sixgate_sip::message::Token::new("srv").unwrap(),
        );
        stream.write_all(&ok.to_bytes()).await.unwrap();
        let reverse = RAW_MESSAGE
            .replace("sip:bob@b.example", "sip:alice@a.example")
            .replace(
                "<sip:alice@a.example>;tag=raw",
                "<sip:bob@b.example>;tag=raw",
            );
        stream.write_all(reverse.as_bytes()).await.unwrap();
        let answer = response(read_message(&mut stream, &mut framer).await);
        (request, answer)
    });

    let hop = NextHop {
        target: Target::Static {
            host: "127.0.0.1".to_owned(),
            port: addr.port(),
        },
        identity: domain_of("b.example"),
        local: Some(domain_of("a.example")),
    };
    let request = message("alice@a.example", "bob@b.example", "out@a.example", "hi");
    let got = a.service.send_request(&hop, request).await.unwrap();
    assert_eq!(got.status, StatusCode::OK);

    let incoming = a.next_request().await;
    assert_eq!(incoming.peer.addr, addr);
    assert_eq!(incoming.peer.identities, vec![domain_of("b.example")]);
    let accepted = incoming.response(StatusCode::ACCEPTED, "");
    incoming.respond(accepted).unwrap();
    let (sent, answer) = raw.await.unwrap();
    assert_eq!(answer.status, StatusCode::ACCEPTED);
    assert_eq!(sent.call_id.as_str(), "out@a.example");
}

#[tokio::test]
async fn discovered_server_is_used_and_missing_domain_is_not_found() {
    let pki = Pki::new("federation");
    let b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let dns = TestDns::start(vec![
        srv(
            "_sips._tcp.b.example.",
            0,
            0,
            b.addr().port(),
            "sip.b.example.",
        ),
        a("sip.b.example.", "127.0.0.1"),
    ])
    .await;
    let a = Node::start_with(
        sip_local(&pki, "a.example"),
        pki.trust(),
        SipDiscovery::new(&dns.config()).unwrap(),
        SipConfig::default(),
    )
    .await;
    let hop = NextHop {
        target: Target::Discover(domain_of("b.example")),
        identity: domain_of("b.example"),
        local: Some(domain_of("a.example")),
    };
    let server = answer_next(b, StatusCode::OK);
    let request = message("alice@a.example", "bob@b.example", "dns@a.example", "hi");
    assert_eq!(
        a.service.send_request(&hop, request).await.unwrap().status,
        StatusCode::OK
    );
    server.await.unwrap();

    let missing = NextHop {
        target: Target::Discover(domain_of("missing.example")),
        identity: domain_of("missing.example"),
        local: Some(domain_of("a.example")),
    };
    let request = message(
        "alice@a.example",
        "bob@missing.example",
        "nx@a.example",
        "hi",
    );
    assert_eq!(
        a.service.send_request(&missing, request).await,
        Err(SendError::NotFound)
    );
    dns.stop().await;
}

#[tokio::test]
async fn shutdown_closes_listeners_and_connections() {
    let pki = Pki::new("federation");
    let a = Node::start(sip_local(&pki, "a.example"), pki.trust()).await;
    let b = Node::start(sip_local(&pki, "b.example"), pki.trust()).await;
    let hop = b.hop("b.example", Some("a.example"));
    let server = answer_next(b, StatusCode::OK);
    let request = message("alice@a.example", "bob@b.example", "before@a.example", "hi");
    assert_eq!(
        a.service.send_request(&hop, request).await.unwrap().status,
        StatusCode::OK
    );
    let (b, _, _) = server.await.unwrap();

    b.service.shutdown();
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The pooled connection is gone and nobody accepts a new one.
    let request = message("alice@a.example", "bob@b.example", "after@a.example", "hi");
    let outcome = a.service.send_request(&hop, request).await;
    assert!(
        matches!(outcome, Err(SendError::Transport(_))),
        "{outcome:?}"
    );

    a.service.shutdown();
    let request = message("alice@a.example", "bob@b.example", "late@a.example", "hi");
    assert_eq!(
        a.service.send_request(&hop, request).await,
        Err(SendError::Transport(
            "the SIP service is shutting down".to_owned()
        ))
    );
}
