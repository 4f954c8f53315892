//! Response building, hop limits and loop detection.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::message::{Message, Params, ParseError, Uri};

const OWN: &str = "gw.xmpp.example:5061";

fn parse(text: &str) -> Request {
    match Message::from_bytes(text.as_bytes()).unwrap() {
        Message::Request(request) => request,
        Message::Response(_) => panic!("expected a request"),
    }
}

fn subscribe(max_forwards: &str) -> Request {
    parse(&format!(
        "SUBSCRIBE sip:carol@xmpp.example SIP/2.0\r\n\
         Via: SIP/2.0/TLS proxy2.sip.example:5061;branch=z9hG4bK2d4790.1, SIP/2.0/TLS ua.sip.example;branch=z9hG4bKua\r\n\
         {max_forwards}\
         Record-Route: <sip:proxy2.sip.example;lr>\r\n\
         Record-Route: <sip:proxy1.sip.example;lr>\r\n\
         From: Dave <sip:dave@sip.example>;tag=1928301774\r\n\
         To: <sip:carol@xmpp.example>\r\n\
         Call-ID: a84b4c76e66710@ua.sip.example\r\n\
         CSeq: 314159 SUBSCRIBE\r\n\
         Event: presence\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn tag() -> Token {
    Token::new("gw-tag").unwrap()
}

#[test]
fn response_copies_what_rfc_3261_8_2_6_says() {
    let request = subscribe("Max-Forwards: 70\r\n");
    let response = response_for(&request, StatusCode::ACCEPTED, "", &tag());
    assert_eq!(response.status, StatusCode::ACCEPTED);
    assert_eq!(response.reason, "Accepted");
    assert_eq!(response.via, request.via);
    assert_eq!(response.via.len(), 2);
    assert_eq!(response.from, request.from);
    assert_eq!(response.call_id, request.call_id);
    assert_eq!(response.cseq, request.cseq);
    assert_eq!(response.to.uri, request.to.uri);
    assert_eq!(response.to.tag(), Some("gw-tag"));
    // A 2xx to SUBSCRIBE creates a dialog: Record-Route is copied, in order (§12.1.1).
    let record_route: Vec<&str> = response
        .headers
        .get_all(&HeaderName::RECORD_ROUTE)
        .collect();
    assert_eq!(
        record_route,
        ["<sip:proxy2.sip.example;lr>", "<sip:proxy1.sip.example;lr>"]
    );
    assert!(!response.headers.contains(&HeaderName::EVENT));
    // It writes and parses back.
    let again = Message::from_bytes(&response.to_bytes()).unwrap();
    assert_eq!(again, Message::Response(response));
}

#[test]
fn response_keeps_an_existing_to_tag_and_omits_one_on_100() {
    let mut request = subscribe("");
    request.to.params.set("tag", Some("theirs")).unwrap();
    let response = response_for(&request, StatusCode::NOT_FOUND, "No such user", &tag());
    assert_eq!(response.to.tag(), Some("theirs"));
    assert_eq!(response.reason, "No such user");
    assert!(response.headers.is_empty(), "no Record-Route on an error");

    let trying = response_for(&subscribe(""), StatusCode::TRYING, "", &tag());
    assert_eq!(trying.to.params, Params::new());
}

#[test]
fn max_forwards() {
    let mut request = subscribe("Max-Forwards: 1\r\n");
    assert_eq!(decrement_max_forwards(&mut request), Ok(0));
    assert_eq!(request.max_forwards, Some(0));
    // Forwarded once more, it would arrive with 0: refuse with 483.
    let error = decrement_max_forwards(&mut request).unwrap_err();
    assert_eq!(error, ForwardError::TooManyHops);
    assert_eq!(error.status(), StatusCode::TOO_MANY_HOPS);
    let response = response_for(&request, error.status(), "", &tag());
    assert_eq!(
        (response.status.as_u16(), response.reason.as_str()),
        (483, "Too Many Hops")
    );

    let mut zero = subscribe("Max-Forwards: 0\r\n");
    assert_eq!(
        decrement_max_forwards(&mut zero),
        Err(ForwardError::TooManyHops)
    );
    assert_eq!(zero.max_forwards, Some(0), "unchanged when refused");

    let mut missing = subscribe("");
    assert_eq!(decrement_max_forwards(&mut missing), Ok(70));
}

/// `request` as it leaves us: our `Via` on top with a forwarding branch.
fn forward(request: &Request, unique: u64) -> Request {
    let mut forwarded = request.clone();
    let via = Via::new(
        Token::new("TLS").unwrap(),
        HostPort::parse(OWN).unwrap(),
        &forwarding_branch(request, unique),
    );
    forwarded.via.insert(0, via);
    forwarded
}

/// `request` as the next hop sends it back to us: its own `Via` on top.
fn bounce(mut request: Request) -> Request {
    let via = Via::new(
        Token::new("TLS").unwrap(),
        HostPort::parse("edge.corp.example:5061").unwrap(),
        &Token::new("z9hG4bKedge").unwrap(),
    );
    request.via.insert(0, via);
    request
}

#[test]
fn loop_through_this_element_is_482() {
    let own = HostPort::parse(OWN).unwrap();
    let received = subscribe("Max-Forwards: 70\r\n");
    assert_eq!(detect_loop(&received, &own), Ok(()));
    let branch = forwarding_branch(&received, 7);
    assert!(branch.as_str().starts_with("z9hG4bKlp"));

    let looped = bounce(forward(&received, 7));
    let error = detect_loop(&looped, &own).unwrap_err();
    assert_eq!(error, ForwardError::LoopDetected);
    assert_eq!(error.status(), StatusCode::LOOP_DETECTED);
    // Host names compare ignoring case.
    assert_eq!(
        detect_loop(&looped, &HostPort::parse("GW.xmpp.example:5061").unwrap()),
        Err(ForwardError::LoopDetected)
    );
    // Another element's sent-by, or ours on another port, is not us.
    assert_eq!(
        detect_loop(&looped, &HostPort::parse("gw.xmpp.example").unwrap()),
        Ok(())
    );
}

#[test]
fn spiral_is_not_a_loop() {
    let own = HostPort::parse(OWN).unwrap();
    let received = subscribe("Max-Forwards: 70\r\n");
    let mut spiral = bounce(forward(&received, 7));
    // The next hop retargeted the request: same dialog identifiers, new Request-URI.
    spiral.uri = Uri::parse("sip:carol@other.example").unwrap();
    assert_eq!(detect_loop(&spiral, &own), Ok(()));
}

#[test]
fn loop_hash_covers_the_rfc_3261_16_6_fields_except_via_and_max_forwards() {
    let base = subscribe("Max-Forwards: 70\r\n");
    let hash = loop_hash(&base);

    let mut hops = base.clone();
    hops.max_forwards = Some(12);
    assert_eq!(loop_hash(&bounce(hops)), hash);

    let changes: [fn(&mut Request); 6] = [
        |r| r.uri = Uri::parse("sip:x@y.example").unwrap(),
        |r| {
            r.from.params.set("tag", Some("other")).unwrap();
        },
        |r| {
            r.to.params.set("tag", Some("dialog")).unwrap();
        },
        |r| r.call_id = crate::message::CallId::parse("other").unwrap(),
        |r| r.cseq.number += 1,
        |r| r.headers.push(HeaderName::PROXY_REQUIRE, "foo").unwrap(),
    ];
    for change in changes {
        let mut changed = base.clone();
        change(&mut changed);
        assert_ne!(loop_hash(&changed), hash);
    }
}

#[test]
fn unparsable_requests_can_still_be_answered() {
    let head = b"MESSAGE sip:a@b.example SIP/2.0\r\n\
        v: SIP/2.0/TLS c.example;branch=z9hG4bK1\r\n\
        Via: SIP/2.0/TLS d.example\r\n ;branch=z9hG4bK2\r\n\
        From: <sip:c@c.example>;tag=1\r\n\
        t: <sip:a@b.example>\r\n\
        i: x@c.example\r\n\
        CSeq: 1 MESSAGE\r\n\
        Content-Length: abc\r\n\r\n";
    assert_eq!(Message::from_bytes(head), Err(ParseError::ContentLength));
    let response =
        reject_unparsable(head, StatusCode::BAD_REQUEST, "Bad Content-Length", &tag()).unwrap();
    let text = String::from_utf8(response.clone()).unwrap();
    assert_eq!(
        text,
        "SIP/2.0 400 Bad Content-Length\r\n\
         Via: SIP/2.0/TLS c.example;branch=z9hG4bK1\r\n\
         Via: SIP/2.0/TLS d.example ;branch=z9hG4bK2\r\n\
         From: <sip:c@c.example>;tag=1\r\n\
         To: <sip:a@b.example>;tag=gw-tag\r\n\
         Call-ID: x@c.example\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Length: 0\r\n\r\n"
    );
    assert!(Message::from_bytes(&response).is_ok());

    let tagged =
        String::from_utf8_lossy(head).replace("t: <sip:a@b.example>", "To: sip:a@b.example;tag=9");
    let response =
        reject_unparsable(tagged.as_bytes(), StatusCode::MESSAGE_TOO_LARGE, "", &tag()).unwrap();
    let text = String::from_utf8(response).unwrap();
    assert!(text.starts_with("SIP/2.0 513 Message Too Large\r\n"));
    assert!(text.contains("\r\nTo: sip:a@b.example;tag=9\r\n"), "{text}");

    let ack = String::from_utf8_lossy(head).replace("MESSAGE sip", "ACK sip");
    assert_eq!(
        reject_unparsable(ack.as_bytes(), StatusCode::BAD_REQUEST, "", &tag()),
        None
    );
    let response_head = b"SIP/2.0 200 OK\r\nVia: x\r\n\r\n";
    assert_eq!(
        reject_unparsable(response_head, StatusCode::BAD_REQUEST, "", &tag()),
        None
    );
    let no_call_id = String::from_utf8_lossy(head).replace("i: x@c.example\r\n", "");
    assert_eq!(
        reject_unparsable(no_call_id.as_bytes(), StatusCode::BAD_REQUEST, "", &tag()),
        None
    );
}
