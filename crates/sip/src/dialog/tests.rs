//! SUBSCRIBE dialogs in both roles, through a two-proxy edge.

#![allow(clippy::unwrap_used)]

use super::*;
use crate::message::{Message, SubState, Via};

fn parse(text: &str) -> Message {
    Message::from_bytes(text.as_bytes()).unwrap()
}

fn request(text: &str) -> Request {
    match parse(text) {
        Message::Request(request) => request,
        Message::Response(_) => panic!("expected a request"),
    }
}

fn response(text: &str) -> Response {
    match parse(text) {
        Message::Response(response) => response,
        Message::Request(_) => panic!("expected a response"),
    }
}

fn token(text: &str) -> Token {
    Token::new(text).unwrap()
}

fn contact(uri: &str) -> NameAddr {
    NameAddr::new(Uri::parse(uri).unwrap())
}

/// Writes and parses back, so every check also holds on the wire.
fn round_trip(mut request: Request) -> Request {
    request.via.push(Via::new(
        token("TLS"),
        "gw.xmpp.example:5061".parse().unwrap(),
        &token("z9hG4bKgw1"),
    ));
    match Message::from_bytes(&request.to_bytes()).unwrap() {
        Message::Request(request) => request,
        Message::Response(_) => panic!("expected a request"),
    }
}

fn routes(request: &Request) -> Vec<String> {
    request
        .headers
        .route()
        .unwrap()
        .iter()
        .map(|route| route.uri.to_string())
        .collect()
}

/// Dave's UA → edge1 → edge2 → gateway, both proxies record-routing: edge2, nearest us, is on top.
fn watcher_subscribe() -> Request {
    request(
        "SUBSCRIBE sip:carol@xmpp.example SIP/2.0\r\n\
         Via: SIP/2.0/TLS edge2.sip.example:5061;branch=z9hG4bKe2, SIP/2.0/TLS edge1.sip.example:5061;branch=z9hG4bKe1\r\n\
         Via: SIP/2.0/TLS ua.sip.example:5061;branch=z9hG4bKua\r\n\
         Max-Forwards: 68\r\n\
         Record-Route: <sip:edge2.sip.example:5061;transport=tls;lr>\r\n\
         Record-Route: <sip:edge1.sip.example:5061;transport=tls;lr>\r\n\
         From: Dave <sip:dave@sip.example>;tag=ffd2\r\n\
         To: <sip:carol@xmpp.example>\r\n\
         Call-ID: 12345601@ua.sip.example\r\n\
         CSeq: 17766 SUBSCRIBE\r\n\
         Contact: <sip:dave@ua.sip.example:5061;transport=tls>\r\n\
         Event: presence\r\n\
         Expires: 600\r\n\
         Accept: application/pidf+xml\r\n\
         Content-Length: 0\r\n\r\n",
    )
}

fn notifier() -> Dialog {
    Dialog::as_notifier(
        &watcher_subscribe(),
        token("gw77"),
        contact("sip:gw.xmpp.example:5061;transport=tls"),
        1,
    )
    .unwrap()
}

#[test]
fn notifier_dialog_takes_the_uas_view_of_the_subscribe() {
    let dialog = notifier();
    assert_eq!(dialog.id().call_id.as_str(), "12345601@ua.sip.example");
    assert_eq!(dialog.id().local_tag, token("gw77"));
    assert_eq!(dialog.id().remote_tag, token("ffd2"));
    assert_eq!(dialog.local_uri().to_string(), "<sip:carol@xmpp.example>");
    assert_eq!(
        dialog.remote_uri().to_string(),
        "\"Dave\" <sip:dave@sip.example>"
    );
    assert_eq!(
        dialog.remote_target().as_str(),
        "sip:dave@ua.sip.example:5061;transport=tls"
    );
    assert_eq!(dialog.remote_cseq(), Some(17766));
    assert_eq!(
        dialog.next_hop().as_str(),
        "sip:edge2.sip.example:5061;transport=tls;lr"
    );
}

#[test]
fn accepting_response_has_our_tag_contact_and_record_route() {
    let subscribe = watcher_subscribe();
    let dialog = notifier();
    let mut accepted = dialog.response(&subscribe, StatusCode::ACCEPTED, "");
    set_expires(&mut accepted.headers, 600);
    let bytes = String::from_utf8(accepted.to_bytes()).unwrap();
    assert!(bytes.starts_with("SIP/2.0 202 Accepted\r\n"), "{bytes}");
    assert!(bytes.contains("To: <sip:carol@xmpp.example>;tag=gw77\r\n"));
    assert!(bytes.contains("Contact: <sip:gw.xmpp.example:5061;transport=tls>\r\n"));
    assert!(bytes.contains("Expires: 600\r\n"));
    let accepted = response(&bytes);
    assert_eq!(
        accepted.headers.record_route().unwrap(),
        subscribe.headers.record_route().unwrap()
    );
    // The response is what the watcher's dialog is built from: its id mirrors ours.
    let watcher_id = DialogId::of_response(&accepted).unwrap();
    assert_eq!(watcher_id.local_tag, dialog.id().remote_tag);
    assert_eq!(watcher_id.remote_tag, dialog.id().local_tag);
    // An error response carries no Contact.
    let refused = dialog.response(&subscribe, StatusCode::FORBIDDEN, "");
    assert!(!refused.headers.contains(&HeaderName::CONTACT));
}

#[test]
fn notifies_go_to_the_contact_through_the_record_route_in_order() {
    let mut dialog = notifier();
    let mut first = dialog.request(Method::Notify).unwrap();
    set_presence_event(&mut first.headers, None);
    set_subscription_state(
        &mut first.headers,
        &SubscriptionStatus::Active { expires: 600 },
    );
    let first = round_trip(first);
    assert_eq!(
        first.uri.as_str(),
        "sip:dave@ua.sip.example:5061;transport=tls"
    );
    assert_eq!(
        routes(&first),
        [
            "sip:edge2.sip.example:5061;transport=tls;lr",
            "sip:edge1.sip.example:5061;transport=tls;lr"
        ]
    );
    assert_eq!(first.from.uri.as_str(), "sip:carol@xmpp.example");
    assert_eq!(first.from.tag(), Some("gw77"));
    assert_eq!(first.to.uri.as_str(), "sip:dave@sip.example");
    assert_eq!(first.to.tag(), Some("ffd2"));
    assert_eq!(first.call_id.as_str(), "12345601@ua.sip.example");
    assert_eq!(first.cseq.number, 1);
    assert_eq!(first.cseq.method, Method::Notify);
    assert_eq!(first.max_forwards, Some(70));
    assert_eq!(
        first.headers.get(&HeaderName::CONTACT),
        Some("<sip:gw.xmpp.example:5061;transport=tls>")
    );
    assert_eq!(first.headers.get(&HeaderName::EVENT), Some("presence"));
    // The watcher's side sees its own dialog in it.
    let watcher_view = DialogId::of_request(&first).unwrap();
    assert_eq!(watcher_view.local_tag, token("ffd2"));

    let second = dialog.request(Method::Notify).unwrap();
    assert_eq!(second.cseq.number, 2);
    assert_eq!(second.call_id, first.call_id);
}

#[test]
fn subscription_state_is_written_as_rfc_6665_writes_it() {
    let cases = [
        (
            SubscriptionStatus::Active { expires: 3599 },
            "active;expires=3599",
        ),
        (
            SubscriptionStatus::Pending { expires: 600 },
            "pending;expires=600",
        ),
        (
            SubscriptionStatus::Terminated {
                reason: Some(TerminationReason::Timeout),
                retry_after: None,
            },
            "terminated;reason=timeout",
        ),
        (
            SubscriptionStatus::Terminated {
                reason: Some(TerminationReason::Probation),
                retry_after: Some(3600),
            },
            "terminated;reason=probation;retry-after=3600",
        ),
        (
            SubscriptionStatus::Terminated {
                reason: None,
                retry_after: None,
            },
            "terminated",
        ),
    ];
    for (status, text) in cases {
        let mut headers = Headers::new();
        set_subscription_state(&mut headers, &status);
        assert_eq!(headers.get(&HeaderName::SUBSCRIPTION_STATE), Some(text));
        // Our typed reader understands what we write.
        let parsed = headers.subscription_state().unwrap().unwrap();
        assert_eq!(parsed.to_string(), text);
    }
}

#[test]
fn event_expires_and_allow_events_headers() {
    let mut headers = Headers::new();
    set_presence_event(&mut headers, Some(&token("42")));
    set_expires(&mut headers, 0);
    set_allow_events(&mut headers, &[token("presence"), token("message-summary")]);
    assert_eq!(headers.get(&HeaderName::EVENT), Some("presence;id=42"));
    assert_eq!(headers.event().unwrap().unwrap().id(), Some("42"));
    assert_eq!(headers.expires().unwrap(), Some(0));
    assert_eq!(
        headers.get(&HeaderName::ALLOW_EVENTS),
        Some("presence, message-summary")
    );
}

fn resubscribe(cseq: u32, from_tag: &str, to_tag: &str, contact: &str) -> Request {
    request(&format!(
        "SUBSCRIBE sip:gw.xmpp.example:5061;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS edge2.sip.example:5061;branch=z9hG4bKr{cseq}\r\n\
         Route: <sip:edge2.sip.example:5061;transport=tls;lr>\r\n\
         From: Dave <sip:dave@sip.example>;tag={from_tag}\r\n\
         To: <sip:carol@xmpp.example>;tag={to_tag}\r\n\
         Call-ID: 12345601@ua.sip.example\r\n\
         CSeq: {cseq} SUBSCRIBE\r\n\
         Contact: <{contact}>\r\n\
         Event: presence\r\n\
         Expires: 600\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

#[test]
fn in_dialog_requests_need_a_higher_cseq() {
    let mut dialog = notifier();
    let same = resubscribe(17766, "ffd2", "gw77", "sip:dave@ua.sip.example");
    let error = dialog.receive(&same).unwrap_err();
    assert_eq!(
        error,
        DialogError::OutOfOrder {
            received: 17766,
            last: 17766
        }
    );
    assert_eq!(error.response_code(), StatusCode::SERVER_INTERNAL_ERROR);
    let lower = resubscribe(17000, "ffd2", "gw77", "sip:dave@ua.sip.example");
    assert!(dialog.receive(&lower).is_err());
    assert_eq!(dialog.remote_cseq(), Some(17766));

    let refresh = resubscribe(17767, "ffd2", "gw77", "sip:dave@198.51.100.7:5061");
    dialog.receive(&refresh).unwrap();
    assert_eq!(dialog.remote_cseq(), Some(17767));
    // Once the refresh is accepted, its Contact becomes the target.
    assert!(dialog.refresh_remote_target(&refresh.headers).unwrap());
    let notify = dialog.request(Method::Notify).unwrap();
    assert_eq!(notify.uri.as_str(), "sip:dave@198.51.100.7:5061");
    // The route set does not change in mid-dialog (§12.2).
    assert_eq!(routes(&notify).len(), 2);
    assert!(!dialog.refresh_remote_target(&Headers::new()).unwrap());
}

#[test]
fn mismatched_tags_or_call_id_do_not_match() {
    let mut dialog = notifier();
    let ok = resubscribe(17767, "ffd2", "gw77", "sip:dave@ua.sip.example");
    assert!(dialog.matches(&ok));
    for (from_tag, to_tag) in [("other", "gw77"), ("ffd2", "gw78"), ("gw77", "ffd2")] {
        let wrong = resubscribe(17767, from_tag, to_tag, "sip:dave@ua.sip.example");
        assert!(!dialog.matches(&wrong), "{from_tag} {to_tag}");
        let error = dialog.receive(&wrong).unwrap_err();
        assert_eq!(error, DialogError::NotThisDialog);
        assert_eq!(
            error.response_code(),
            StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST
        );
    }
    let mut other_call = ok.clone();
    other_call.call_id = CallId::parse("other@ua.sip.example").unwrap();
    assert!(!dialog.matches(&other_call));
    // The first SUBSCRIBE has no To tag, so it is in no dialog.
    assert!(!dialog.matches(&watcher_subscribe()));
    assert_eq!(DialogId::of_request(&watcher_subscribe()), None);
}

#[test]
fn subscribe_that_cannot_create_a_dialog_is_refused() {
    let our = || contact("sip:gw.xmpp.example");
    let in_dialog = resubscribe(2, "ffd2", "gw77", "sip:dave@ua.sip.example");
    assert_eq!(
        Dialog::as_notifier(&in_dialog, token("x"), our(), 1),
        Err(DialogError::AlreadyInDialog)
    );
    let mut no_tag = watcher_subscribe();
    no_tag.from.params.remove("tag");
    assert_eq!(
        Dialog::as_notifier(&no_tag, token("x"), our(), 1),
        Err(DialogError::MissingTag)
    );
    let mut no_contact = watcher_subscribe();
    no_contact.headers.remove(&HeaderName::CONTACT);
    assert_eq!(
        Dialog::as_notifier(&no_contact, token("x"), our(), 1),
        Err(DialogError::Contact)
    );
}

/// Our SUBSCRIBE for juliet@xmpp.example to romeo@sip.example, through edgeA then edgeB.
fn our_subscribe() -> Request {
    let mut subscribe = Request::new(
        Method::Subscribe,
        Uri::parse("sip:romeo@sip.example").unwrap(),
        {
            let mut from = contact("sip:juliet@xmpp.example");
            from.params.set("tag", Some("gwsub1")).unwrap();
            from
        },
        contact("sip:romeo@sip.example"),
        CallId::parse("sub-9f2c@gw.xmpp.example").unwrap(),
        101,
    );
    subscribe
        .headers
        .push(
            HeaderName::CONTACT,
            "<sip:gw.xmpp.example:5061;transport=tls>",
        )
        .unwrap();
    set_presence_event(&mut subscribe.headers, None);
    set_expires(&mut subscribe.headers, 3600);
    round_trip(subscribe)
}

fn accepted(to_tag: &str) -> Response {
    // Record-Route as the UAS copied it from the request: edgeB, nearest the UAS, on top.
    response(&format!(
        "SIP/2.0 202 Accepted\r\n\
         Via: SIP/2.0/TLS gw.xmpp.example:5061;branch=z9hG4bKgw1\r\n\
         Record-Route: <sip:edgeB.sip.example;lr>, <sip:edgeA.sip.example;lr>\r\n\
         From: <sip:juliet@xmpp.example>;tag=gwsub1\r\n\
         To: <sip:romeo@sip.example>;tag={to_tag}\r\n\
         Call-ID: sub-9f2c@gw.xmpp.example\r\n\
         CSeq: 101 SUBSCRIBE\r\n\
         Contact: <sip:romeo@pc33.sip.example:5061;transport=tls>\r\n\
         Expires: 3600\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn romeo_notify(cseq: u32, to_tag: &str, event: &str, state: &str) -> Request {
    // Coming back, edgeA (nearest us) is on top.
    request(&format!(
        "NOTIFY sip:gw.xmpp.example:5061;transport=tls SIP/2.0\r\n\
         Via: SIP/2.0/TLS edgeA.sip.example;branch=z9hG4bKa{cseq}, SIP/2.0/TLS edgeB.sip.example;branch=z9hG4bKb{cseq}\r\n\
         Via: SIP/2.0/TLS pc33.sip.example:5061;branch=z9hG4bKpc{cseq}\r\n\
         Max-Forwards: 68\r\n\
         Record-Route: <sip:edgeA.sip.example;lr>\r\n\
         Record-Route: <sip:edgeB.sip.example;lr>\r\n\
         From: <sip:romeo@sip.example>;tag=r0m3o\r\n\
         To: <sip:juliet@xmpp.example>;tag={to_tag}\r\n\
         Call-ID: sub-9f2c@gw.xmpp.example\r\n\
         CSeq: {cseq} NOTIFY\r\n\
         Contact: <sip:romeo@pc33.sip.example:5061;transport=tls>\r\n\
         Event: {event}\r\n\
         Subscription-State: {state}\r\n\
         Content-Length: 0\r\n\r\n"
    ))
}

fn check_subscriber(dialog: &Dialog) {
    assert_eq!(dialog.id().call_id.as_str(), "sub-9f2c@gw.xmpp.example");
    assert_eq!(dialog.id().local_tag, token("gwsub1"));
    assert_eq!(dialog.id().remote_tag, token("r0m3o"));
    assert_eq!(
        dialog.remote_target().as_str(),
        "sip:romeo@pc33.sip.example:5061;transport=tls"
    );
    let uris: Vec<&str> = dialog.route_set().iter().map(|r| r.uri.as_str()).collect();
    assert_eq!(
        uris,
        ["sip:edgeA.sip.example;lr", "sip:edgeB.sip.example;lr"]
    );
}

#[test]
fn subscriber_dialog_from_the_2xx_reverses_the_record_route() {
    let subscribe = our_subscribe();
    let dialog =
        Dialog::as_subscriber(&subscribe, SubscribeAnswer::Response(&accepted("r0m3o"))).unwrap();
    check_subscriber(&dialog);
    assert_eq!(dialog.remote_cseq(), None);
    assert_eq!(
        DialogId::of_response(&accepted("r0m3o")).as_ref(),
        Some(dialog.id())
    );
}

#[test]
fn notify_before_the_2xx_creates_the_subscriber_dialog() {
    let subscribe = our_subscribe();
    let notify = romeo_notify(1, "gwsub1", "presence", "pending;expires=3600");
    assert!(notify_matches_subscribe(&subscribe, &notify).unwrap());
    let mut dialog = Dialog::as_subscriber(&subscribe, SubscribeAnswer::Notify(&notify)).unwrap();
    check_subscriber(&dialog);
    assert_eq!(dialog.remote_cseq(), Some(1));
    assert!(dialog.matches(&notify));
    let state = notify_state(&notify).unwrap();
    assert_eq!(state.state, SubState::Pending);
    assert_eq!(state.expires(), Some(3600));
    // The 2xx arriving afterwards belongs to the same dialog.
    assert_eq!(
        DialogId::of_response(&accepted("r0m3o")).as_ref(),
        Some(dialog.id())
    );

    // A retransmitted or reordered NOTIFY is refused; the next one is accepted.
    assert!(matches!(
        dialog.receive(&notify),
        Err(DialogError::OutOfOrder { .. })
    ));
    let active = romeo_notify(2, "gwsub1", "presence", "active;expires=3599");
    dialog.receive(&active).unwrap();
    assert_eq!(notify_state(&active).unwrap().state, SubState::Active);
}

#[test]
fn notify_for_another_subscription_does_not_create_a_dialog() {
    let subscribe = our_subscribe();
    for notify in [
        romeo_notify(1, "othertag", "presence", "active;expires=60"),
        romeo_notify(1, "gwsub1", "presence;id=7", "active;expires=60"),
        romeo_notify(1, "gwsub1", "dialog", "active;expires=60"),
    ] {
        assert!(!notify_matches_subscribe(&subscribe, &notify).unwrap());
        assert_eq!(
            Dialog::as_subscriber(&subscribe, SubscribeAnswer::Notify(&notify)),
            Err(DialogError::NotOurs)
        );
    }
    let mut no_state = romeo_notify(1, "gwsub1", "presence", "active");
    no_state.headers.remove(&HeaderName::SUBSCRIPTION_STATE);
    assert_eq!(
        notify_state(&no_state),
        Err(DialogError::MissingSubscriptionState)
    );
    let mut other_call = accepted("r0m3o");
    other_call.call_id = CallId::parse("elsewhere").unwrap();
    assert_eq!(
        Dialog::as_subscriber(&subscribe, SubscribeAnswer::Response(&other_call)),
        Err(DialogError::NotOurs)
    );
}

#[test]
fn refresh_and_unsubscribe_continue_our_cseq_through_the_route_set() {
    let subscribe = our_subscribe();
    let mut dialog =
        Dialog::as_subscriber(&subscribe, SubscribeAnswer::Response(&accepted("r0m3o"))).unwrap();
    let mut refresh = dialog.request(Method::Subscribe).unwrap();
    set_presence_event(&mut refresh.headers, None);
    set_expires(&mut refresh.headers, 3600);
    let refresh = round_trip(refresh);
    assert_eq!(
        refresh.uri.as_str(),
        "sip:romeo@pc33.sip.example:5061;transport=tls"
    );
    assert_eq!(
        routes(&refresh),
        ["sip:edgeA.sip.example;lr", "sip:edgeB.sip.example;lr"]
    );
    assert_eq!(refresh.cseq.number, 102);
    assert_eq!(refresh.from.tag(), Some("gwsub1"));
    assert_eq!(refresh.to.tag(), Some("r0m3o"));
    assert_eq!(refresh.from.uri.as_str(), "sip:juliet@xmpp.example");
    assert_eq!(refresh.to.uri.as_str(), "sip:romeo@sip.example");
    assert_eq!(refresh.call_id, subscribe.call_id);

    let mut unsubscribe = dialog.request(Method::Subscribe).unwrap();
    set_presence_event(&mut unsubscribe.headers, None);
    set_expires(&mut unsubscribe.headers, 0);
    let text = String::from_utf8(round_trip(unsubscribe).to_bytes()).unwrap();
    assert!(text.contains("CSeq: 103 SUBSCRIBE\r\n"), "{text}");
    assert!(text.contains("Expires: 0\r\n"));
    assert!(text.contains("Event: presence\r\n"));
}

#[test]
fn strict_first_route_moves_into_the_request_uri() {
    let mut subscribe = watcher_subscribe();
    subscribe.headers.remove(&HeaderName::RECORD_ROUTE);
    subscribe
        .headers
        .push(
            HeaderName::RECORD_ROUTE,
            "<sip:old.sip.example;maddr=192.0.2.9>, <sip:edge1.sip.example;lr>",
        )
        .unwrap();
    let mut dialog =
        Dialog::as_notifier(&subscribe, token("gw77"), contact("sip:gw.xmpp.example"), 5).unwrap();
    let notify = round_trip(dialog.request(Method::Notify).unwrap());
    // §12.2.1.1: first route as Request-URI, the rest as Route, the remote target last.
    assert_eq!(notify.uri.as_str(), "sip:old.sip.example;maddr=192.0.2.9");
    assert_eq!(
        routes(&notify),
        [
            "sip:edge1.sip.example;lr",
            "sip:dave@ua.sip.example:5061;transport=tls"
        ]
    );
    assert_eq!(notify.cseq.number, 5);
    assert_eq!(
        dialog.next_hop().as_str(),
        "sip:old.sip.example;maddr=192.0.2.9"
    );
}

#[test]
fn strict_route_request_uri_drops_what_a_request_uri_may_not_carry() {
    let uri = Uri::parse("sip:old.sip.example;method=NOTIFY;transport=tls?subject=x").unwrap();
    assert_eq!(
        request_uri_form(&uri).as_str(),
        "sip:old.sip.example;transport=tls"
    );
}

#[test]
fn local_cseq_runs_out_at_2_pow_31() {
    let mut dialog = Dialog::as_notifier(
        &watcher_subscribe(),
        token("gw77"),
        contact("sip:gw.xmpp.example"),
        CSeq::MAX,
    )
    .unwrap();
    assert_eq!(
        dialog.request(Method::Notify).unwrap().cseq.number,
        CSeq::MAX
    );
    assert_eq!(
        dialog.request(Method::Notify),
        Err(DialogError::CSeqExhausted)
    );
}
