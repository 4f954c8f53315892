//! Real-world shaped messages from `tests/data/`: framed as they would arrive on a TLS connection,
//! parsed, read through the typed accessors, written back and parsed again.
//!
//! The files keep their CRLF line ends byte for byte (`tests/data/.gitattributes`), and each
//! `Content-Length` is exact.

#![allow(clippy::unwrap_used)]

use std::net::IpAddr;

use sixgate_sip::message::{HeaderName, Host, Method, StatusCode, SubState};
use sixgate_sip::{Frame, Framer, Message, Request, Response};

fn data(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|error| panic!("{path}: {error}"))
}

/// Frames `bytes` as a TLS connection would, byte by byte, and parses the one message in it.
fn receive(name: &str) -> Message {
    let bytes = data(name);
    let mut framer = Framer::default();
    let mut frames = Vec::new();
    for byte in &bytes {
        framer.push(std::slice::from_ref(byte)).unwrap();
        while let Some(frame) = framer.next_frame().unwrap() {
            frames.push(frame);
        }
    }
    assert_eq!(framer.buffered(), 0, "{name}: bytes left over");
    let [Frame::Message { head, body }] = <[Frame; 1]>::try_from(frames).unwrap() else {
        panic!("{name}: expected one message");
    };
    let message = Message::parse(&head, body).unwrap_or_else(|error| panic!("{name}: {error}"));
    assert_eq!(Message::from_bytes(&bytes).unwrap(), message, "{name}");
    assert_round_trip(name, &message);
    message
}

/// Serialising and parsing again gives the same message, and serialising that gives the same bytes.
fn assert_round_trip(name: &str, message: &Message) {
    let written = message.to_bytes();
    let again = Message::from_bytes(&written).unwrap_or_else(|error| panic!("{name}: {error}"));
    assert_eq!(&again, message, "{name}");
    assert_eq!(again.to_bytes(), written, "{name}");
    let text = String::from_utf8_lossy(&written);
    // Canonical long names only: no compact form starts a line.
    for line in text.split("\r\n").skip(1) {
        if let Some((name_part, _)) = line.split_once(':') {
            assert!(name_part.len() > 1, "{name}: compact header {line:?}");
        }
    }
}

fn request(name: &str) -> Request {
    match receive(name) {
        Message::Request(request) => request,
        Message::Response(_) => panic!("{name}: expected a request"),
    }
}

fn response(name: &str) -> Response {
    match receive(name) {
        Message::Response(response) => response,
        Message::Request(_) => panic!("{name}: expected a response"),
    }
}

fn header(name: &str) -> HeaderName {
    HeaderName::new(name).unwrap()
}

#[test]
fn lync_message_with_two_vias_ms_headers_and_record_route() {
    let request = request("lync_message.sip");
    assert_eq!(request.method, Method::Message);
    assert_eq!(request.uri.as_str(), "sip:alice@xmpp.example");
    assert_eq!(request.max_forwards, Some(68));

    assert_eq!(request.via.len(), 2);
    let [edge, client] = [&request.via[0], &request.via[1]];
    assert_eq!(edge.transport.as_str(), "TLS");
    assert_eq!(edge.sent_by.to_string(), "192.0.2.20:5061");
    assert_eq!(edge.branch(), Some("z9hG4bK8A1F0A2B.5C3E6D7F8A9B0C1D.2"));
    assert_eq!(edge.cookie_branch(), edge.branch());
    assert_eq!(edge.params.value("ms-received-port"), Some("5061"));
    assert_eq!(
        edge.params
            .get("ms-internal-info")
            .unwrap()
            .text()
            .as_deref(),
        Some("cxAAdD3k8Q2mJm0qL1aUmQ0hJh3gAA")
    );
    assert_eq!(client.received(), Some(IpAddr::from([198, 51, 100, 7])));
    assert_eq!(client.branch(), Some("z9hG4bK3d8e9f1a"));
    assert!(!client.has_rport());

    assert_eq!(request.from.display_name.as_deref(), Some("Bob Jones"));
    assert_eq!(request.from.uri.as_str(), "sip:bob@corp.example");
    assert_eq!(request.from.tag(), Some("8f1c2d3e4b"));
    assert_eq!(request.from.params.value("epid"), Some("5a6b7c8d9e"));
    assert_eq!(request.to.tag(), None);
    assert_eq!(request.call_id.as_str(), "7d9e1f2a3b4c4d5e8f9a0b1c2d3e4f5a");
    assert_eq!(
        (request.cseq.number, &request.cseq.method),
        (1, &Method::Message)
    );

    let record_route = request.headers.record_route().unwrap();
    assert_eq!(record_route.len(), 1);
    let hop = &record_route[0];
    let host_port = hop.uri.host_port().unwrap();
    assert_eq!(host_port.to_string(), "edge.corp.example:5061");
    assert!(hop.uri.has_param("lr"));
    assert_eq!(hop.uri.param("transport"), Some("tls"));
    assert_eq!(hop.uri.param("ms-route-sig"), Some("gaBhp3K"));
    assert_eq!(hop.tag(), Some("4A5B6C7D"));

    let supported: Vec<String> = request
        .headers
        .supported()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(
        supported,
        ["ms-dialog-route-set-update", "ms-embedded-first-message"]
    );
    assert_eq!(
        request.headers.get(&header("ms-conversation-id")),
        Some("AdK2c3d4e5f6g7h8i9j0kLmNoPqRsT==")
    );
    assert_eq!(
        request.headers.get(&header("MS-ENDPOINT-ID")),
        Some("5a6b7c8d9e")
    );
    assert!(
        request
            .headers
            .get(&HeaderName::AUTHENTICATION_INFO)
            .unwrap()
            .starts_with("TLS-DSK ")
    );
    let content_type = request.headers.content_type().unwrap().unwrap();
    assert!(content_type.is("TEXT", "Plain"));
    assert_eq!(content_type.charset().as_deref(), Some("UTF-8"));
    assert_eq!(
        String::from_utf8(request.body).unwrap(),
        "Hello, Alice! \u{e9}"
    );
}

#[test]
fn subscribe_with_comma_joined_via_and_route() {
    let request = request("subscribe_comma.sip");
    assert_eq!(request.method, Method::Subscribe);
    let vias: Vec<String> = request
        .via
        .iter()
        .map(|via| via.sent_by.to_string())
        .collect();
    assert_eq!(
        vias,
        [
            "proxy2.sip.example:5061",
            "proxy1.sip.example:5061",
            "ua.sip.example:50332"
        ]
    );
    let branches: Vec<&str> = request.via.iter().filter_map(|via| via.branch()).collect();
    assert_eq!(
        branches,
        ["z9hG4bK2d4790.1", "z9hG4bK8b2a.0", "z9hG4bKnashds8"]
    );
    assert_eq!(
        request.via[1].received(),
        Some(IpAddr::from([203, 0, 113, 9]))
    );
    assert_eq!(request.via[2].rport(), Some(50332));

    let route = request.headers.route().unwrap();
    let uris: Vec<&str> = route.iter().map(|hop| hop.uri.as_str()).collect();
    assert_eq!(
        uris,
        [
            "sip:gw.xmpp.example;lr",
            "sip:10.1.1.1;transport=tls;lr",
            "sips:core.xmpp.example:5061;lr"
        ]
    );
    assert!(route[2].uri.is_sips());
    assert_eq!(
        route[1].uri.host_port().unwrap().host,
        Host::Ipv4([10, 1, 1, 1].into())
    );

    let event = request.headers.event().unwrap().unwrap();
    assert_eq!(event.package.as_str(), "presence");
    assert_eq!(event.id(), None);
    assert_eq!(request.headers.expires(), Ok(Some(3600)));
    let accept = request.headers.accept().unwrap().unwrap();
    assert_eq!(accept.len(), 2);
    assert!(accept[0].is("application", "pidf+xml"));
    assert!(accept[1].is("application", "cpim-pidf+xml"));
    let allow = request.headers.allow().unwrap().unwrap();
    assert_eq!(allow.len(), 8);
    assert!(allow.contains(&Method::Subscribe) && allow.contains(&Method::Notify));
    let supported: Vec<String> = request
        .headers
        .supported()
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(supported, ["eventlist", "path"]);
    let contact = request.headers.contact().unwrap();
    assert_eq!(contact[0].uri.param("transport"), Some("tls"));
    assert!(request.body.is_empty());
}

#[test]
fn compact_forms() {
    let request = request("compact.sip");
    assert_eq!(request.via.len(), 1);
    assert_eq!(request.via[0].branch(), Some("z9hG4bKcompact1"));
    assert!(request.via[0].has_rport());
    assert_eq!(request.via[0].rport(), None);
    assert_eq!(request.from.display_name.as_deref(), Some("Frank"));
    assert_eq!(request.from.tag(), Some("77aa"));
    assert_eq!(request.to.uri.as_str(), "sip:erin@xmpp.example");
    assert_eq!(
        request.call_id.as_str(),
        "3848276298220188511@client.sip.example"
    );
    assert_eq!(
        request.headers.contact().unwrap()[0].uri.as_str(),
        "sip:frank@client.sip.example;transport=tls"
    );
    assert!(
        request
            .headers
            .content_type()
            .unwrap()
            .unwrap()
            .is("text", "plain")
    );
    assert_eq!(
        request.headers.get(&HeaderName::CONTENT_ENCODING),
        Some("identity")
    );
    assert_eq!(request.headers.subject(), Ok(Some("Lunch")));
    assert_eq!(request.headers.supported().unwrap()[0].as_str(), "100rel");
    assert_eq!(
        request.headers.event().unwrap().unwrap().package.as_str(),
        "presence"
    );
    assert_eq!(
        request.headers.get(&HeaderName::ALLOW_EVENTS),
        Some("presence, message-summary")
    );
    assert_eq!(request.body, b"See you at noon");

    let written = String::from_utf8(request.to_bytes()).unwrap();
    for long in [
        "\r\nVia: ",
        "\r\nFrom: ",
        "\r\nTo: ",
        "\r\nCall-ID: ",
        "\r\nContact: ",
        "\r\nContent-Type: ",
        "\r\nContent-Encoding: ",
        "\r\nSubject: ",
        "\r\nSupported: ",
        "\r\nEvent: ",
        "\r\nAllow-Events: ",
        "\r\nContent-Length: 15\r\n",
    ] {
        assert!(written.contains(long), "{long:?} missing from {written}");
    }
}

#[test]
fn folded_headers() {
    let request = request("folded.sip");
    assert_eq!(request.via[0].branch(), Some("z9hG4bKfolded77"));
    assert_eq!(request.via[0].sent_by.port, Some(5061));
    assert_eq!(request.max_forwards, Some(70));
    assert_eq!(
        request.headers.subject(),
        Ok(Some(
            "This is a long subject line that was folded twice by a careful client"
        ))
    );
    let written = String::from_utf8(request.to_bytes()).unwrap();
    assert!(
        !written.contains("\r\n ") && !written.contains("\r\n\t"),
        "{written}"
    );
}

#[test]
fn ipv6_via_sips_and_tel() {
    let request = request("ipv6_via.sip");
    assert!(request.uri.is_sips());
    let via = &request.via[0];
    assert_eq!(
        via.sent_by.host,
        Host::Ipv6("2001:db8::10".parse().unwrap())
    );
    assert_eq!(via.sent_by.port, Some(5061));
    assert_eq!(via.sent_by.to_string(), "[2001:db8::10]:5061");
    assert_eq!(via.received(), Some("2001:db8::10".parse().unwrap()));
    assert_eq!(via.rport(), Some(5061));
    // The From URI keeps its port through serialisation, unlike with ezk-sip-types 0.6.5.
    assert_eq!(request.from.uri.as_str(), "sips:judy@[2001:db8::10]:5061");
    assert_eq!(request.from.uri.host_port().unwrap().port, Some(5061));
    assert!(
        String::from_utf8(request.to_bytes())
            .unwrap()
            .contains("<sips:judy@[2001:db8::10]:5061>;tag=v6tag")
    );
    assert_eq!(request.to.uri.scheme(), "tel");
    assert_eq!(request.to.uri.host_port(), None);
    assert_eq!(request.call_id.as_str(), "v6-call@[2001:db8::10]");
}

#[test]
fn notify_with_subscription_state() {
    let request = request("notify.sip");
    assert_eq!(request.method, Method::Notify);
    assert_eq!(request.uri.param("transport"), Some("tls"));
    let state = request.headers.subscription_state().unwrap().unwrap();
    assert_eq!(state.state, SubState::Active);
    assert_eq!(state.expires(), Some(3599));
    let event = request.headers.event().unwrap().unwrap();
    assert_eq!(event.package.as_str(), "presence");
    assert_eq!(event.id(), Some("42"));
    assert!(
        request
            .headers
            .content_type()
            .unwrap()
            .unwrap()
            .is("application", "pidf+xml")
    );
    assert_eq!(request.to.tag(), Some("1928301774"));
    assert!(
        String::from_utf8(request.body)
            .unwrap()
            .contains("<basic>open</basic>")
    );
}

/// Whitespace in every place RFC 3261 allows it, after RFC 4475 §3.1.1.1 ("wsinv"): a parser that
/// accepts this and round-trips it handles LWS, SWS and folding the way the grammar says.
#[test]
fn whitespace_torture() {
    let request = request("torture_wsinv.sip");
    assert_eq!(request.method, Method::Invite);
    assert!(request.uri.has_param("unknownparam"));
    assert_eq!(request.to.uri.as_str(), "sip:vivekg@chair-dnrc.example.com");
    assert_eq!(request.to.tag(), Some("1918181833n"));
    assert_eq!(
        request.from.display_name.as_deref(),
        Some("J Rosenberg \\\"")
    );
    assert_eq!(request.from.tag(), Some("98asjd8"));
    assert_eq!(request.max_forwards, Some(68));
    assert_eq!(request.cseq.number, 9);
    let vias: Vec<(String, Option<&str>)> = request
        .via
        .iter()
        .map(|via| (format!("{} {}", via.transport, via.sent_by), via.branch()))
        .collect();
    assert_eq!(
        vias,
        [
            ("UDP 192.0.2.2".to_owned(), Some("390skdjuw")),
            ("TCP spindle.example.com".to_owned(), Some("z9hG4bK9ikj8")),
            ("UDP 192.168.255.111".to_owned(), Some("z9hG4bK30239")),
        ]
    );
    assert_eq!(request.via[0].cookie_branch(), None, "an RFC 2543 branch");
    assert_eq!(request.headers.subject(), Ok(Some("")));
    assert_eq!(
        request.headers.get(&header("newfangledheader")),
        Some("newfangled value continued newfangled value")
    );
    assert_eq!(
        request
            .headers
            .get(&header("UnknownHeaderWithUnusualValue")),
        Some(";;,,;;,;")
    );
    let route = request.headers.route().unwrap();
    assert!(route[0].uri.has_param("unknown-no-value"));
    let contact = &request.headers.contact().unwrap()[0];
    assert_eq!(contact.display_name.as_deref(), Some("Quoted string \"\""));
    assert_eq!(contact.params.value("newparam"), Some("newvalue"));
    assert!(contact.params.contains("secondparam"));
    assert_eq!(contact.params.value("q"), Some("0.33"));
    assert_eq!(request.body.len(), 150);
}

#[test]
fn responses() {
    let ok = response("response_200.sip");
    assert_eq!((ok.status, ok.reason.as_str()), (StatusCode::OK, "OK"));
    assert_eq!(ok.via.len(), 2);
    assert_eq!(ok.to.tag(), Some("gw-1a2b3c"));
    assert_eq!(ok.cseq.method, Method::Message);

    let accepted = response("response_202.sip");
    assert_eq!(
        (accepted.status, accepted.reason.as_str()),
        (StatusCode::ACCEPTED, "Accepted")
    );
    assert_eq!(accepted.via.len(), 3);
    assert_eq!(accepted.headers.expires(), Ok(Some(3599)));
    assert_eq!(accepted.cseq.number, 314_159);

    let not_found = response("response_404.sip");
    assert_eq!(not_found.status, StatusCode::NOT_FOUND);
    assert_eq!(not_found.to.tag(), Some("nf-404"));
    let reason = &not_found.headers.reason().unwrap()[0];
    assert_eq!(reason.protocol.as_str(), "SIP");
    assert_eq!(reason.cause(), Some(404));
    assert_eq!(reason.text().as_deref(), Some("No such XMPP user"));

    let timeout = response("response_408.sip");
    assert_eq!(
        (timeout.status, timeout.reason.as_str()),
        (StatusCode::REQUEST_TIMEOUT, "Request Timeout")
    );
    assert_eq!(timeout.cseq.method, Method::Notify);
}

#[test]
fn every_file_in_the_corpus_is_tested() {
    let mut names: Vec<String> =
        std::fs::read_dir(format!("{}/tests/data", env!("CARGO_MANIFEST_DIR")))
            .unwrap()
            .map(|entry| entry.unwrap().file_name().into_string().unwrap())
            .filter(|name| name.ends_with(".sip"))
            .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "compact.sip",
            "folded.sip",
            "ipv6_via.sip",
            "lync_message.sip",
            "notify.sip",
            "response_200.sip",
            "response_202.sip",
            "response_404.sip",
            "response_408.sip",
            "subscribe_comma.sip",
            "torture_wsinv.sip",
        ]
    );
    for name in names {
        receive(&name);
    }
}
