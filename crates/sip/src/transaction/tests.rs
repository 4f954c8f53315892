//! Transactions driven with a fake clock: every instant is `start` plus an offset, and nothing sleeps.

#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use super::*;
use crate::message::{CallId, HostPort, Message, NameAddr, Uri};

const T1: Duration = Duration::from_millis(500);
const FLOW: FlowId = FlowId(1);

/// A layer whose branches and tags come from a counter.
fn layer(config: TransactionConfig) -> TransactionLayer {
    let mut counter = 0;
    TransactionLayer::new(config, move || {
        counter += 1;
        counter
    })
}

fn lingering() -> TransactionConfig {
    TransactionConfig {
        timer_j: T1 * 64,
        timer_k: Duration::from_secs(5),
        ..TransactionConfig::default()
    }
}

/// A request as the edge proxy would send it to us.
fn incoming(method: &str, branch: &str, sent_by: &str) -> Request {
    let text = format!(
        "{method} sip:alice@xmpp.example SIP/2.0\r\n\
         Via: SIP/2.0/TLS {sent_by};branch={branch}\r\n\
         Via: SIP/2.0/TLS 10.0.0.15:49712;branch=z9hG4bKclient\r\n\
         Max-Forwards: 69\r\n\
         From: <sip:bob@corp.example>;tag=from1\r\n\
         To: <sip:alice@xmpp.example>\r\n\
         Call-ID: call-{branch}\r\n\
         CSeq: 1 {method}\r\n\
         Content-Length: 0\r\n\r\n"
    );
    match Message::from_bytes(text.as_bytes()).unwrap() {
        Message::Request(request) => request,
        Message::Response(_) => unreachable!(),
    }
}

/// A request we originate, with a branch from the layer.
fn outgoing(layer: &mut TransactionLayer, method: Method) -> Request {
    let mut request = Request::new(
        method,
        Uri::parse("sip:bob@corp.example").unwrap(),
        NameAddr::new(Uri::parse("sip:alice@xmpp.example").unwrap()),
        NameAddr::new(Uri::parse("sip:bob@corp.example").unwrap()),
        CallId::parse("out-1@gw.xmpp.example").unwrap(),
        1,
    );
    let branch = layer.new_branch();
    request.via.push(Via::new(
        Token::new("TLS").unwrap(),
        HostPort::parse("gw.xmpp.example:5061").unwrap(),
        &branch,
    ));
    let tag = layer.new_tag();
    request.from.params.set("tag", Some(tag.as_str())).unwrap();
    request
}

fn answer(request: &Request, code: u16) -> Response {
    response_for(
        request,
        StatusCode::new(code).unwrap(),
        "",
        &Token::new("ours").unwrap(),
    )
}

fn transmits(layer: &mut TransactionLayer) -> Vec<Transmit> {
    std::iter::from_fn(|| layer.poll_transmit()).collect()
}

fn events(layer: &mut TransactionLayer) -> Vec<TransactionEvent> {
    std::iter::from_fn(|| layer.poll_event()).collect()
}

/// Delivers `request` and returns the key of the server transaction it created.
fn deliver(layer: &mut TransactionLayer, now: Instant, request: &Request) -> ServerKey {
    layer.handle_request(now, FLOW, request.clone());
    match events(layer).as_slice() {
        [
            TransactionEvent::Request {
                key,
                flow,
                request: got,
            },
        ] => {
            assert_eq!((flow, got), (&FLOW, request));
            key.clone()
        }
        other => panic!("expected one new request, got {other:?}"),
    }
}

fn sent_response(transmit: &Transmit) -> &Response {
    match &transmit.message {
        Message::Response(response) => response,
        Message::Request(request) => panic!("expected a response, sent {request:?}"),
    }
}

#[test]
fn server_absorbs_a_retransmission_and_resends_the_final_response() {
    let start = Instant::now();
    let mut layer = layer(lingering());
    let request = incoming("MESSAGE", "z9hG4bKedge1", "edge.corp.example:5061");
    let key = deliver(&mut layer, start, &request);
    assert_eq!(layer.server_state(&key), Some(ServerState::Trying));

    let ok = answer(&request, 200);
    layer.respond(start + T1, &key, ok.clone()).unwrap();
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    assert_eq!((sent[0].flow, sent_response(&sent[0])), (FLOW, &ok));
    assert_eq!(layer.server_state(&key), Some(ServerState::Completed));

    // A copy (RFC 3261 §17.2.3: same branch, sent-by and method) is absorbed: the TU does not see it
    // and the stored final response goes out again.
    layer.handle_request(start + T1 * 2, FLOW, request.clone());
    assert!(events(&mut layer).is_empty());
    let resent = transmits(&mut layer);
    assert_eq!(resent.len(), 1);
    assert_eq!(sent_response(&resent[0]), &ok);
    // A copy that came over a new connection is answered there.
    layer.handle_request(start + T1 * 2, FlowId(9), request.clone());
    assert_eq!(transmits(&mut layer)[0].flow, FlowId(9));
    assert_eq!(
        layer.respond(start + T1 * 2, &key, answer(&request, 500)),
        Err(TransactionError::AlreadyCompleted)
    );

    // Timer J ends it silently, 64·T1 after the final response.
    assert_eq!(layer.poll_timeout(), Some(start + T1 + T1 * 64));
    layer.handle_timeout(start + T1 * 64);
    assert_eq!(layer.server_state(&key), Some(ServerState::Completed));
    layer.handle_timeout(start + T1 + T1 * 64);
    assert_eq!(layer.server_state(&key), None);
    assert!(events(&mut layer).is_empty());
    assert!(layer.is_empty());
    assert_eq!(layer.poll_timeout(), None);
}

#[test]
fn server_with_reliable_defaults_ends_with_its_final_response() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let request = incoming("MESSAGE", "z9hG4bKedge1", "edge.corp.example:5061");
    let key = deliver(&mut layer, start, &request);
    layer.respond(start, &key, answer(&request, 202)).unwrap();
    assert_eq!(transmits(&mut layer).len(), 1);
    // Timer J is 0 on TLS: nothing is left to absorb a late copy, which is a new request to the TU.
    assert_eq!(layer.server_state(&key), None);
    assert_eq!(layer.poll_timeout(), None);
    assert_eq!(deliver(&mut layer, start + T1, &request), key);
}

#[test]
fn server_absorbs_copies_in_trying_and_resends_provisionals_in_proceeding() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let request = incoming("SUBSCRIBE", "z9hG4bKsub", "edge.corp.example:5061");
    let key = deliver(&mut layer, start, &request);

    layer.handle_request(start, FLOW, request.clone());
    assert!(events(&mut layer).is_empty());
    assert!(
        transmits(&mut layer).is_empty(),
        "nothing to resend before the TU answered"
    );

    let trying = answer(&request, 100);
    assert_eq!(
        trying.to.tag(),
        None,
        "no To tag on 100 (RFC 3261 §8.2.6.2)"
    );
    layer.respond(start, &key, trying.clone()).unwrap();
    assert_eq!(layer.server_state(&key), Some(ServerState::Proceeding));
    assert_eq!(transmits(&mut layer).len(), 1);
    layer.handle_request(start, FLOW, request.clone());
    let resent = transmits(&mut layer);
    assert_eq!(resent.len(), 1);
    assert_eq!(sent_response(&resent[0]), &trying);

    layer.respond(start, &key, answer(&request, 202)).unwrap();
    assert_eq!(layer.server_state(&key), None);
}

#[test]
fn server_transactions_are_keyed_by_branch_sent_by_and_method() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let first = deliver(
        &mut layer,
        start,
        &incoming("MESSAGE", "z9hG4bKsame", "a.example"),
    );
    // Another client that happened to choose the same branch.
    let other_host = deliver(
        &mut layer,
        start,
        &incoming("MESSAGE", "z9hG4bKsame", "b.example"),
    );
    // CANCEL shares the branch of the request it cancels but is its own transaction.
    let cancel = deliver(
        &mut layer,
        start,
        &incoming("CANCEL", "z9hG4bKsame", "a.example"),
    );
    assert_ne!(first, other_host);
    assert_ne!(first, cancel);
    assert_eq!(layer.len(), 3);
    // Branches are tokens, compared ignoring case (§7.3.1); host names too.
    layer.handle_request(start, FLOW, incoming("MESSAGE", "Z9HG4BKSAME", "A.EXAMPLE"));
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.len(), 3);
}

#[test]
fn request_without_magic_cookie_is_refused_with_400() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let request = incoming("MESSAGE", "rfc2543-style", "old.example");
    layer.handle_request(start, FLOW, request.clone());
    assert!(events(&mut layer).is_empty());
    assert!(layer.is_empty());
    let sent = transmits(&mut layer);
    assert_eq!(sent.len(), 1);
    let response = sent_response(&sent[0]);
    assert_eq!(response.status, StatusCode::BAD_REQUEST);
    assert_eq!(response.via, request.via);
    assert_eq!(response.to.tag(), Some("0000000000000001"));
    assert_eq!(response.cseq, request.cseq);
}

#[test]
fn invite_and_ack_are_left_to_the_caller() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    for method in ["INVITE", "ACK"] {
        let request = incoming(method, "z9hG4bKinv", "edge.corp.example");
        layer.handle_request(start, FLOW, request.clone());
        assert_eq!(
            events(&mut layer),
            [TransactionEvent::NotHandled {
                flow: FLOW,
                request
            }]
        );
    }
    assert!(layer.is_empty());
    let mut invite = outgoing(&mut layer, Method::Invite);
    invite.cseq.method = Method::Invite;
    assert_eq!(
        layer.send_request(start, FLOW, invite),
        Err(TransactionError::NotNonInvite)
    );
}

#[test]
fn client_times_out_at_exactly_64_t1() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let request = outgoing(&mut layer, Method::Message);
    let key = layer.send_request(start, FLOW, request.clone()).unwrap();
    let sent = transmits(&mut layer);
    assert_eq!(
        sent,
        [Transmit {
            flow: FLOW,
            message: Message::Request(request.clone())
        }]
    );
    assert_eq!(layer.client_state(&key), Some(ClientState::Trying));

    let timer_f = start + Duration::from_secs(32);
    assert_eq!(layer.poll_timeout(), Some(timer_f));
    layer.handle_timeout(timer_f - Duration::from_nanos(1));
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.client_state(&key), Some(ClientState::Trying));
    // Reliable transport: Timer E is not used, so nothing was retransmitted while waiting.
    assert!(transmits(&mut layer).is_empty());

    layer.handle_timeout(timer_f);
    assert_eq!(
        events(&mut layer),
        [TransactionEvent::Timeout {
            key: key.clone(),
            request: request.clone()
        }]
    );
    assert_eq!(layer.client_state(&key), None);
    assert_eq!(layer.poll_timeout(), None);
    // The caller turns the timeout into a 408 for its TU.
    let timeout = answer(&request, 408);
    assert_eq!(timeout.reason, "Request Timeout");
    // A response after the timeout belongs to no transaction.
    layer.handle_response(timer_f, FLOW, answer(&request, 200));
    assert!(matches!(
        events(&mut layer).as_slice(),
        [TransactionEvent::StrayResponse { .. }]
    ));
}

#[test]
fn timer_f_follows_a_configured_t1() {
    let start = Instant::now();
    let config = TransactionConfig {
        t1: Duration::from_millis(100),
        ..TransactionConfig::default()
    };
    assert_eq!(config.timer_f(), Duration::from_millis(6400));
    let mut layer = layer(config);
    let request = outgoing(&mut layer, Method::Options);
    layer.send_request(start, FLOW, request).unwrap();
    assert_eq!(
        layer.poll_timeout(),
        Some(start + Duration::from_millis(6400))
    );
}

#[test]
fn client_passes_provisional_and_final_responses_up() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let request = outgoing(&mut layer, Method::Message);
    let key = layer.send_request(start, FLOW, request.clone()).unwrap();

    let trying = answer(&request, 100);
    layer.handle_response(start + T1, FLOW, trying.clone());
    assert_eq!(
        events(&mut layer),
        [TransactionEvent::Response {
            key: key.clone(),
            response: trying
        }]
    );
    assert_eq!(layer.client_state(&key), Some(ClientState::Proceeding));
    assert_eq!(
        layer.poll_timeout(),
        Some(start + T1 * 64),
        "Timer F keeps running in Proceeding"
    );

    let accepted = answer(&request, 202);
    layer.handle_response(start + T1 * 2, FLOW, accepted.clone());
    assert_eq!(
        events(&mut layer),
        [TransactionEvent::Response {
            key: key.clone(),
            response: accepted
        }]
    );
    // Timer K is 0 on TLS.
    assert_eq!(layer.client_state(&key), None);
    assert_eq!(layer.poll_timeout(), None);
    layer.handle_timeout(start + T1 * 64);
    assert!(events(&mut layer).is_empty());
}

#[test]
fn client_with_timer_k_absorbs_a_copy_of_the_final_response() {
    let start = Instant::now();
    let mut layer = layer(lingering());
    let request = outgoing(&mut layer, Method::Message);
    let key = layer.send_request(start, FLOW, request.clone()).unwrap();
    layer.handle_response(start, FLOW, answer(&request, 200));
    assert_eq!(events(&mut layer).len(), 1);
    assert_eq!(layer.client_state(&key), Some(ClientState::Completed));
    layer.handle_response(start, FLOW, answer(&request, 200));
    assert!(events(&mut layer).is_empty());
    assert_eq!(layer.poll_timeout(), Some(start + Duration::from_secs(5)));
    layer.handle_timeout(start + Duration::from_secs(5));
    assert_eq!(layer.client_state(&key), None);
    assert!(events(&mut layer).is_empty(), "Timer K is not a timeout");
}

#[test]
fn responses_match_the_right_client_transaction_by_branch() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let first = outgoing(&mut layer, Method::Message);
    let second = outgoing(&mut layer, Method::Message);
    let first_key = layer.send_request(start, FLOW, first.clone()).unwrap();
    let second_key = layer.send_request(start, FLOW, second.clone()).unwrap();
    assert_ne!(first_key, second_key);

    let mut response = answer(&second, 200);
    // Branches compare ignoring case.
    let branch = second.via[0]
        .branch()
        .unwrap()
        .to_ascii_uppercase()
        .replace("Z9HG4BK", "z9hG4bK");
    response.via[0].params.set("branch", Some(&branch)).unwrap();
    layer.handle_response(start, FLOW, response.clone());
    assert_eq!(
        events(&mut layer),
        [TransactionEvent::Response {
            key: second_key.clone(),
            response
        }]
    );
    assert_eq!(layer.client_state(&second_key), None);
    assert_eq!(layer.client_state(&first_key), Some(ClientState::Trying));
}

#[test]
fn responses_without_a_transaction_are_stray() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let request = outgoing(&mut layer, Method::Message);
    let key = layer.send_request(start, FLOW, request.clone()).unwrap();

    let mut unknown = answer(&request, 200);
    unknown.via[0]
        .params
        .set("branch", Some("z9hG4bKnot-ours"))
        .unwrap();
    let mut other_method = answer(&request, 200);
    other_method.cseq.method = Method::Options;
    let mut no_cookie = answer(&request, 200);
    no_cookie.via[0].params.set("branch", Some("1234")).unwrap();
    for response in [unknown, other_method, no_cookie] {
        layer.handle_response(start, FlowId(7), response.clone());
        assert_eq!(
            events(&mut layer),
            [TransactionEvent::StrayResponse {
                flow: FlowId(7),
                response
            }]
        );
    }
    assert_eq!(layer.client_state(&key), Some(ClientState::Trying));
}

#[test]
fn transport_error_ends_the_client_transactions_on_that_flow() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let on_one = outgoing(&mut layer, Method::Message);
    let on_two = outgoing(&mut layer, Method::Message);
    let one = layer
        .send_request(start, FlowId(1), on_one.clone())
        .unwrap();
    let two = layer.send_request(start, FlowId(2), on_two).unwrap();
    layer.handle_transport_error(FlowId(1));
    assert_eq!(
        events(&mut layer),
        [TransactionEvent::TransportError {
            key: one.clone(),
            request: on_one
        }]
    );
    assert_eq!(layer.client_state(&one), None);
    assert_eq!(layer.client_state(&two), Some(ClientState::Trying));
    // Only the survivor's Timer F is left.
    layer.handle_timeout(start + T1 * 64);
    assert!(
        matches!(events(&mut layer).as_slice(), [TransactionEvent::Timeout { key, .. }] if *key == two)
    );
}

#[test]
fn unanswered_server_transactions_end_after_64_t1() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let request = incoming("NOTIFY", "z9hG4bKnotify", "edge.corp.example");
    let key = deliver(&mut layer, start, &request);
    layer.handle_timeout(start + T1 * 64);
    assert_eq!(
        events(&mut layer),
        [TransactionEvent::Unanswered { key: key.clone() }]
    );
    assert_eq!(
        layer.respond(start + T1 * 64, &key, answer(&request, 200)),
        Err(TransactionError::UnknownTransaction)
    );
}

#[test]
fn misuse_is_reported() {
    let start = Instant::now();
    let mut layer = layer(TransactionConfig::default());
    let request = incoming("MESSAGE", "z9hG4bKm", "edge.corp.example");
    let key = deliver(&mut layer, start, &request);
    let other = incoming("MESSAGE", "z9hG4bKother", "edge.corp.example");
    assert_eq!(
        layer.respond(start, &key, answer(&other, 200)),
        Err(TransactionError::ResponseMismatch)
    );

    let mut no_cookie = outgoing(&mut layer, Method::Message);
    no_cookie.via[0]
        .params
        .set("branch", Some("plain"))
        .unwrap();
    assert_eq!(
        layer.send_request(start, FLOW, no_cookie),
        Err(TransactionError::NoCookieBranch)
    );
    let twice = outgoing(&mut layer, Method::Message);
    layer.send_request(start, FLOW, twice.clone()).unwrap();
    assert_eq!(
        layer.send_request(start, FLOW, twice),
        Err(TransactionError::BranchInUse)
    );
}

#[test]
fn generated_branches_and_tags_are_deterministic() {
    let mut layer = layer(TransactionConfig::default());
    assert_eq!(layer.new_branch().as_str(), "z9hG4bK0000000000000001");
    assert_eq!(layer.new_tag().as_str(), "0000000000000002");
}

#[test]
fn standalone_state_machines() {
    let start = Instant::now();
    let config = TransactionConfig::default();
    let mut layer = layer(config);
    let request = outgoing(&mut layer, Method::Message);
    let mut client = ClientTransaction::new(start, request.clone(), &config).unwrap();
    assert_eq!(client.poll_timeout(), Some(start + T1 * 64));
    assert!(!client.handle_timeout(start + T1));
    assert_eq!(
        client
            .handle_response(start, answer(&request, 180))
            .map(|r| r.status.as_u16()),
        Some(180)
    );
    assert!(client.handle_timeout(start + T1 * 64));
    assert_eq!(client.state(), ClientState::Terminated);
    assert!(
        client
            .handle_response(start, answer(&request, 200))
            .is_none()
    );
    assert!(!client.handle_transport_error());

    let incoming = incoming("MESSAGE", "z9hG4bKs", "edge.corp.example");
    let mut server = ServerTransaction::new(start, &incoming, &config).unwrap();
    assert!(server.handle_retransmission().is_none());
    let sent = server
        .respond(start, answer(&incoming, 200))
        .unwrap()
        .status;
    assert_eq!(sent, StatusCode::OK);
    assert_eq!(server.state(), ServerState::Terminated);
    assert!(!server.handle_timeout(start + T1 * 64));
}
