use std::collections::HashSet;

use proptest::prelude::*;

use super::*;

fn jid(s: &str) -> Jid {
    Jid::parse(s).expect("test JID")
}

fn t0() -> Instant {
    Instant::now()
}

fn secs_after(t: Instant, s: u64) -> Instant {
    t + Duration::from_secs(s)
}

const W: &str = "alice@sip.example";
const C: &str = "romeo@xmpp.example";

fn table() -> SubscriptionTable<u32> {
    SubscriptionTable::new(SubscriptionConfig::default())
}

fn notify(dialog: u32, state: SubscriptionState, body: NotifyBody) -> Action<u32> {
    Action::Notify {
        dialog,
        watcher: jid(W),
        contact: jid(C),
        state,
        body,
    }
}

fn terminated(reason: TerminationReason) -> SubscriptionState {
    SubscriptionState::terminated(reason)
}

fn one(rp: ResourcePresence) -> Presence {
    Presence {
        resources: vec![rp],
    }
}

// ----- Direction A -----

#[test]
fn a_subscribe_pending_then_subscribed_then_presence() {
    let now = t0();
    let mut t = table();
    let (resp, actions) = t.sip_subscribe(now, &jid(W), &jid(C), None, 1);
    assert_eq!(resp, SubscribeResponse::Accept { expires: 3600 });
    assert_eq!(
        actions,
        vec![
            Action::SendSubscribeStanza {
                from: jid(W),
                to: jid(C)
            },
            notify(
                1,
                SubscriptionState::Pending { expires: 3600 },
                NotifyBody::None
            ),
        ]
    );
    // §9.2: presence before `subscribed` is kept, not sent.
    let rp = ResourcePresence::available("balcony");
    assert!(
        t.xmpp_presence(now, &jid("romeo@xmpp.example/balcony"), &jid(W), rp.clone())
            .is_empty()
    );
    let later = secs_after(now, 10);
    assert_eq!(
        t.xmpp_subscribed(later, &jid(C), &jid(W)),
        vec![notify(
            1,
            SubscriptionState::Active { expires: 3590 },
            NotifyBody::Presence(one(rp.clone()))
        )]
    );
    // A change after the coalescing window goes out at once, with the whole state.
    let mut away = ResourcePresence::available("orchard");
    away.show = Some(crate::Show::Away);
    let actions = t.xmpp_presence(secs_after(now, 20), &jid(C), &jid(W), away.clone());
    assert_eq!(
        actions,
        vec![notify(
            1,
            SubscriptionState::Active { expires: 3580 },
            NotifyBody::Presence(Presence {
                resources: vec![rp, away]
            })
        )]
    );
}

#[test]
fn a_presence_is_coalesced_within_the_interval() {
    let now = t0();
    let mut t = table();
    t.sip_subscribe(now, &jid(W), &jid(C), None, 1);
    assert_eq!(t.xmpp_subscribed(now, &jid(C), &jid(W)).len(), 1);
    let p = |r: &str| ResourcePresence::available(r);
    assert!(t.xmpp_presence(now, &jid(C), &jid(W), p("a")).is_empty());
    assert!(t.xmpp_presence(now, &jid(C), &jid(W), p("b")).is_empty());
    assert_eq!(t.poll_timeout(), Some(now + Duration::from_secs(1)));
    let actions = t.handle_timeout(now + Duration::from_secs(1));
    assert_eq!(actions.len(), 1);
    let Action::Notify {
        body: NotifyBody::Presence(body),
        ..
    } = &actions[0]
    else {
        panic!("{actions:?}");
    };
    assert_eq!(body.resources.len(), 2);
}

#[test]
fn a_bare_unavailable_closes_every_cached_resource() {
    let now = t0();
    let mut t = table();
    t.sip_subscribe(now, &jid(W), &jid(C), None, 1);
    // Nothing cached yet: nothing changes, nothing is sent.
    assert!(
        t.xmpp_contact_unavailable(now, &jid(C), &jid(W), None)
            .is_empty()
    );
    t.xmpp_subscribed(now, &jid(C), &jid(W));
    let a = secs_after(now, 10);
    t.xmpp_presence(
        a,
        &jid("romeo@xmpp.example/a"),
        &jid(W),
        ResourcePresence::available("a"),
    );
    t.xmpp_presence(
        secs_after(now, 20),
        &jid("romeo@xmpp.example/b"),
        &jid(W),
        ResourcePresence::available("b"),
    );
    let mut closed_a = ResourcePresence::unavailable("a");
    closed_a.status = Some(crate::Status::new("gone"));
    let mut closed_b = ResourcePresence::unavailable("b");
    closed_b.status = Some(crate::Status::new("gone"));
    assert_eq!(
        t.xmpp_contact_unavailable(
            secs_after(now, 30),
            &jid(C),
            &jid(W),
            Some(crate::Status::new("gone"))
        ),
        vec![notify(
            1,
            SubscriptionState::Active { expires: 3570 },
            NotifyBody::Presence(Presence {
                resources: vec![closed_a, closed_b]
            })
        )]
    );
}

#[test]
fn a_unsubscribed_rejects_and_removes() {
    let now = t0();
    let mut t = table();
    t.sip_subscribe(now, &jid(W), &jid(C), Some(600), 1);
    t.sip_subscribe(now, &jid(W), &jid(C), Some(600), 2);
    assert_eq!(
        t.xmpp_unsubscribed(&jid(C), &jid(W)),
        vec![
            notify(1, terminated(TerminationReason::Rejected), NotifyBody::None),
            notify(2, terminated(TerminationReason::Rejected), NotifyBody::None),
        ]
    );
    assert!(t.is_empty());
    assert_eq!(t.count_for_local_user(&jid(W)), 0);
}

#[test]
fn a_expires_table() {
    // (requested, response)
    let rows: &[(Option<u32>, SubscribeResponse)] = &[
        (None, SubscribeResponse::Accept { expires: 3600 }),
        (
            Some(59),
            SubscribeResponse::IntervalTooBrief { min_expires: 60 },
        ),
        (Some(60), SubscribeResponse::Accept { expires: 60 }),
        (Some(100_000), SubscribeResponse::Accept { expires: 28_800 }),
    ];
    for (requested, expected) in rows {
        let mut t = table();
        let (resp, _) = t.sip_subscribe(t0(), &jid(W), &jid(C), *requested, 1);
        assert_eq!(&resp, expected, "{requested:?}");
        let stored = usize::from(matches!(resp, SubscribeResponse::Accept { .. }));
        assert_eq!(t.stats().inbound_pairs, stored);
    }
}

#[test]
fn a_refresh_and_expiry() {
    let now = t0();
    let mut t = table();
    t.sip_subscribe(now, &jid(W), &jid(C), Some(600), 1);
    let (resp, actions) = t.sip_subscribe(secs_after(now, 500), &jid(W), &jid(C), Some(600), 1);
    assert_eq!(resp, SubscribeResponse::Accept { expires: 600 });
    // A refresh sends no second subscribe stanza, just the NOTIFY.
    assert_eq!(
        actions,
        vec![notify(
            1,
            SubscriptionState::Pending { expires: 600 },
            NotifyBody::None
        )]
    );
    assert_eq!(t.poll_timeout(), Some(secs_after(now, 1100)));
    assert!(t.handle_timeout(secs_after(now, 1099)).is_empty());
    assert_eq!(
        t.handle_timeout(secs_after(now, 1100)),
        vec![
            notify(1, terminated(TerminationReason::Timeout), NotifyBody::None),
            Action::SendUnavailableStanza {
                from: jid(W),
                to: jid(C)
            },
        ]
    );
    assert!(t.is_empty());
    assert_eq!(t.poll_timeout(), None);
}

#[test]
fn a_expires_zero_cancels_with_closed() {
    let now = t0();
    let mut t = table();
    t.sip_subscribe(now, &jid(W), &jid(C), None, 1);
    t.xmpp_subscribed(now, &jid(C), &jid(W));
    let (resp, actions) = t.sip_subscribe(now, &jid(W), &jid(C), Some(0), 1);
    assert_eq!(resp, SubscribeResponse::Accept { expires: 0 });
    assert_eq!(
        actions,
        vec![
            notify(
                1,
                terminated(TerminationReason::Timeout),
                NotifyBody::Closed
            ),
            Action::SendUnavailableStanza {
                from: jid(W),
                to: jid(C)
            },
        ]
    );
    assert!(t.is_empty());
}

#[test]
fn a_expires_zero_unauthorized_cancel_has_no_body() {
    let now = t0();
    let mut t = table();
    t.sip_subscribe(now, &jid(W), &jid(C), None, 1);
    let (_, actions) = t.sip_subscribe(now, &jid(W), &jid(C), Some(0), 1);
    assert_eq!(
        actions[0],
        notify(1, terminated(TerminationReason::Timeout), NotifyBody::None)
    );
}

#[test]
fn a_fetch_probes_then_terminates_with_the_answer() {
    let now = t0();
    let mut t = table();
    let (resp, actions) = t.sip_subscribe(now, &jid(W), &jid(C), Some(0), 7);
    assert_eq!(resp, SubscribeResponse::Accept { expires: 0 });
    assert_eq!(
        actions,
        vec![Action::SendProbe {
            from: jid(W),
            to: jid(C)
        }]
    );
    let rp = ResourcePresence::available("balcony");
    let at = now + Duration::from_secs(1);
    assert!(t.xmpp_presence(at, &jid(C), &jid(W), rp.clone()).is_empty());
    let settle = at + Duration::from_millis(500);
    assert_eq!(t.poll_timeout(), Some(settle));
    assert_eq!(
        t.handle_timeout(settle),
        vec![notify(
            7,
            terminated(TerminationReason::Timeout),
            NotifyBody::Presence(one(rp))
        )]
    );
    // §9.1: a second fetch inside the probe interval does not probe again.
    let (_, actions) = t.sip_subscribe(settle, &jid(W), &jid(C), Some(0), 8);
    assert_eq!(
        actions,
        vec![notify(
            8,
            terminated(TerminationReason::Timeout),
            NotifyBody::None
        )]
    );
    t.handle_timeout(now + Duration::from_secs(61));
    assert!(t.is_empty());
}

#[test]
fn a_fetch_without_answer_times_out_empty() {
    let now = t0();
    let mut t = table();
    t.sip_subscribe(now, &jid(W), &jid(C), Some(0), 7);
    assert_eq!(
        t.handle_timeout(now + Duration::from_secs(5)),
        vec![notify(
            7,
            terminated(TerminationReason::Timeout),
            NotifyBody::None
        )]
    );
}

#[test]
fn a_fetch_on_authorized_pair_uses_the_cache() {
    let now = t0();
    let mut t = table();
    t.sip_subscribe(now, &jid(W), &jid(C), None, 1);
    t.xmpp_subscribed(now, &jid(C), &jid(W));
    let rp = ResourcePresence::available("r");
    t.xmpp_presence(now + Duration::from_secs(5), &jid(C), &jid(W), rp.clone());
    let (_, actions) = t.sip_subscribe(now, &jid(W), &jid(C), Some(0), 2);
    assert_eq!(
        actions,
        vec![notify(
            2,
            terminated(TerminationReason::Timeout),
            NotifyBody::Presence(one(rp))
        )]
    );
    assert_eq!(t.stats().inbound_dialogs, 1);
}

#[test]
fn a_presence_is_per_watcher() {
    // Directed presence to one watcher never reaches another (§9.2).
    let now = t0();
    let mut t = table();
    let bob = jid("bob@sip.example");
    t.sip_subscribe(now, &jid(W), &jid(C), None, 1);
    t.sip_subscribe(now, &bob, &jid(C), None, 2);
    t.xmpp_subscribed(now, &jid(C), &jid(W));
    t.xmpp_subscribed(now, &jid(C), &bob);
    let later = now + Duration::from_secs(5);
    let actions = t.xmpp_presence(later, &jid(C), &jid(W), ResourcePresence::available("r"));
    assert_eq!(actions.len(), 1);
    assert!(matches!(&actions[0], Action::Notify { dialog: 1, .. }));
}

#[test]
fn a_caps() {
    let now = t0();
    let config = SubscriptionConfig {
        max_per_local_user: 2,
        max_per_remote_domain: 3,
        ..SubscriptionConfig::default()
    };
    let mut t: SubscriptionTable<u32> = SubscriptionTable::new(config);
    let sub = |t: &mut SubscriptionTable<u32>, w: &str, c: &str, d: u32| {
        t.sip_subscribe(now, &jid(w), &jid(c), None, d).0
    };
    let ok = SubscribeResponse::Accept { expires: 3600 };
    assert_eq!(sub(&mut t, W, "a@xmpp.example", 1), ok);
    assert_eq!(sub(&mut t, W, "b@xmpp.example", 2), ok);
    let user_cap = sub(&mut t, W, "c@xmpp.example", 3);
    assert_eq!(user_cap, SubscribeResponse::Refuse(Refusal::LocalUserCap));
    assert_eq!(Refusal::LocalUserCap.sip_code(), 403);
    assert_eq!(sub(&mut t, "bob@sip.example", "c@xmpp.example", 4), ok);
    let domain_cap = sub(&mut t, "bob@sip.example", "d@xmpp.example", 5);
    assert_eq!(
        domain_cap,
        SubscribeResponse::Refuse(Refusal::RemoteDomainCap)
    );
    assert_eq!(Refusal::RemoteDomainCap.sip_code(), 480);
    // Another domain is not affected, and a refresh of a held pair is never refused.
    assert_eq!(sub(&mut t, "bob@sip.example", "d@other.example", 6), ok);
    assert_eq!(sub(&mut t, W, "a@xmpp.example", 1), ok);
    assert_eq!(t.count_for_remote_domain(jid(C).domain()), 3);
}

// ----- Direction B -----

const U: &str = "juliet@xmpp.example";
const S: &str = "bob@sip.example";

fn send(expires: u32, kind: SubscribeKind) -> Action<u32> {
    Action::SendSubscribe {
        user: jid(U),
        contact: jid(S),
        expires,
        kind,
    }
}

fn subscribed() -> Action<u32> {
    Action::SendSubscribed {
        from: jid(S),
        to: jid(U),
    }
}

fn unsubscribed() -> Action<u32> {
    Action::SendUnsubscribed {
        from: jid(S),
        to: jid(U),
    }
}

fn pres(resource: &str, available: bool) -> Action<u32> {
    Action::SendPresence {
        from: jid(&format!("{S}/{resource}")),
        to: jid(U),
        presence: if available {
            ResourcePresence::available(resource)
        } else {
            ResourcePresence::unavailable(resource)
        },
    }
}

/// Subscribes and gets a 200 with 3600 s at `now`.
fn established(now: Instant) -> SubscriptionTable<u32> {
    let mut t = table();
    assert_eq!(
        t.xmpp_subscribe(now, &jid(U), &jid(S)),
        vec![send(3600, SubscribeKind::Initial)]
    );
    assert!(
        t.subscribe_response(now, &jid(U), &jid(S), 200, Some(3600), None)
            .is_empty()
    );
    t
}

#[test]
fn b_pending_then_active_then_presence() {
    let now = t0();
    let mut t = established(now);
    let (answer, actions) = t.notify_received(
        now,
        &jid(U),
        &jid(S),
        SubscriptionState::Pending { expires: 3600 },
        None,
    );
    assert_eq!((answer, actions), (NotifyAnswer::Ok, vec![]));
    let two = Presence {
        resources: vec![
            ResourcePresence::available("desk"),
            ResourcePresence::available("phone"),
        ],
    };
    let active = SubscriptionState::Active { expires: 3600 };
    let (_, actions) = t.notify_received(now, &jid(U), &jid(S), active.clone(), Some(two));
    assert_eq!(
        actions,
        vec![subscribed(), pres("desk", true), pres("phone", true)]
    );
    // The phone tuple disappears: unavailable for it, nothing for the unchanged desk.
    let (_, actions) = t.notify_received(
        now,
        &jid(U),
        &jid(S),
        active,
        Some(one(ResourcePresence::available("desk"))),
    );
    assert_eq!(actions, vec![pres("phone", false)]);
}

#[test]
fn b_active_without_body_is_closed() {
    let now = t0();
    let mut t = established(now);
    let (_, actions) = t.notify_received(
        now,
        &jid(U),
        &jid(S),
        SubscriptionState::Active { expires: 3600 },
        None,
    );
    assert_eq!(
        actions,
        vec![
            subscribed(),
            Action::SendPresence {
                from: jid(S),
                to: jid(U),
                presence: ResourcePresence::unavailable("")
            }
        ]
    );
}

#[test]
fn b_refresh_at_ninety_percent() {
    let now = t0();
    let mut t = established(now);
    assert_eq!(t.poll_timeout(), Some(secs_after(now, 3240)));
    let at = secs_after(now, 3240);
    assert_eq!(
        t.handle_timeout(at),
        vec![send(3600, SubscribeKind::Refresh)]
    );
    assert!(
        t.subscribe_response(at, &jid(U), &jid(S), 200, Some(1800), None)
            .is_empty()
    );
    assert_eq!(t.poll_timeout(), Some(secs_after(at, 1620)));
}

#[test]
fn b_response_table() {
    // (code, granted, min-expires, actions after the initial SUBSCRIBE, entry kept)
    type Row = (u16, Option<u32>, Option<u32>, Vec<Action<u32>>, bool);
    let rows: Vec<Row> = vec![
        (200, Some(3600), None, vec![], true),
        (202, None, None, vec![], true),
        (
            423,
            None,
            Some(7200),
            vec![send(7200, SubscribeKind::Initial)],
            true,
        ),
        (423, None, Some(100_000), vec![unsubscribed()], false),
        (
            481,
            None,
            None,
            vec![send(3600, SubscribeKind::Initial)],
            true,
        ),
        (403, None, None, vec![unsubscribed()], false),
        (489, None, None, vec![unsubscribed()], false),
        (603, None, None, vec![unsubscribed()], false),
        (404, None, None, vec![unsubscribed()], false),
        (503, None, None, vec![], true),
        (180, None, None, vec![], true),
    ];
    for (code, granted, min, expected, kept) in rows {
        let now = t0();
        let mut t = table();
        t.xmpp_subscribe(now, &jid(U), &jid(S));
        let actions = t.subscribe_response(now, &jid(U), &jid(S), code, granted, min);
        assert_eq!(actions, expected, "{code}");
        assert_eq!(t.stats().outbound == 1, kept, "{code}");
    }
}

#[test]
fn b_refresh_rejected_cancels_and_tells_xmpp() {
    let now = t0();
    let mut t = established(now);
    t.notify_received(
        now,
        &jid(U),
        &jid(S),
        SubscriptionState::Active { expires: 3600 },
        Some(one(ResourcePresence::available("desk"))),
    );
    let at = secs_after(now, 3240);
    t.handle_timeout(at);
    assert_eq!(
        t.subscribe_response(at, &jid(U), &jid(S), 403, None, None),
        vec![pres("desk", false), unsubscribed()]
    );
    assert!(t.is_empty());
}

#[test]
fn b_terminated_reasons() {
    let rows: Vec<(Option<TerminationReason>, Vec<Action<u32>>, bool)> = vec![
        (
            Some(TerminationReason::Deactivated),
            vec![send(3600, SubscribeKind::Initial)],
            true,
        ),
        (
            Some(TerminationReason::Timeout),
            vec![send(3600, SubscribeKind::Initial)],
            true,
        ),
        (None, vec![send(3600, SubscribeKind::Initial)], true),
        (Some(TerminationReason::Probation), vec![], true),
        (
            Some(TerminationReason::Rejected),
            vec![unsubscribed()],
            false,
        ),
        (
            Some(TerminationReason::Noresource),
            vec![unsubscribed()],
            false,
        ),
        (Some(TerminationReason::Giveup), vec![unsubscribed()], false),
    ];
    for (reason, expected, kept) in rows {
        let now = t0();
        let mut t = established(now);
        let state = SubscriptionState::Terminated {
            reason: reason.clone(),
            retry_after: None,
        };
        let (_, actions) = t.notify_received(now, &jid(U), &jid(S), state, None);
        assert_eq!(actions, expected, "{reason:?}");
        assert_eq!(t.stats().outbound == 1, kept, "{reason:?}");
    }
}

#[test]
fn b_retries_are_bounded() {
    let now = t0();
    let mut t = table();
    t.xmpp_subscribe(now, &jid(U), &jid(S));
    let mut at = now;
    let mut sends = 0;
    for _ in 0..20 {
        let Some(next) = t.poll_timeout() else { break };
        at = next.max(at);
        for a in t.handle_timeout(at) {
            if matches!(a, Action::SendSubscribe { .. }) {
                sends += 1;
            }
        }
    }
    assert_eq!(sends, 3);
    assert!(t.is_empty());
}

#[test]
fn b_unsubscribe() {
    let now = t0();
    let mut t = established(now);
    assert_eq!(
        t.xmpp_unsubscribe(now, &jid(U), &jid(S)),
        vec![send(0, SubscribeKind::Unsubscribe)]
    );
    let state = terminated(TerminationReason::Timeout);
    assert_eq!(
        t.notify_received(now, &jid(U), &jid(S), state, None).1,
        vec![]
    );
    assert_eq!(
        t.subscribe_response(now, &jid(U), &jid(S), 200, Some(0), None),
        vec![unsubscribed()]
    );
    assert!(t.is_empty());
    let (answer, _) = t.notify_received(
        now,
        &jid(U),
        &jid(S),
        SubscriptionState::Active { expires: 1 },
        None,
    );
    assert_eq!(answer, NotifyAnswer::NoSubscription);
}

#[test]
fn b_probe_from_cache_or_fetch() {
    let now = t0();
    let mut t = established(now);
    t.notify_received(
        now,
        &jid(U),
        &jid(S),
        SubscriptionState::Active { expires: 3600 },
        Some(one(ResourcePresence::available("desk"))),
    );
    assert_eq!(
        t.xmpp_probe(now, &jid(U), &jid(S)),
        vec![pres("desk", true)]
    );

    let mut t = table();
    assert_eq!(
        t.xmpp_probe(now, &jid(U), &jid(S)),
        vec![send(0, SubscribeKind::Fetch)]
    );
    assert!(
        t.xmpp_probe(now, &jid(U), &jid(S)).is_empty(),
        "one fetch per interval"
    );
    let (answer, actions) = t.fetch_notify_received(
        &jid(U),
        &jid(S),
        &terminated(TerminationReason::Timeout),
        Some(one(ResourcePresence::available("desk"))),
    );
    assert_eq!(
        (answer, actions),
        (NotifyAnswer::Ok, vec![pres("desk", true)])
    );
    assert_eq!(t.stats().outbound_fetches, 0);
    t.handle_timeout(now + Duration::from_secs(60));
    assert!(t.is_empty());
}

#[test]
fn b_cap_refuses() {
    let now = t0();
    let config = SubscriptionConfig {
        max_per_remote_domain: 1,
        ..SubscriptionConfig::default()
    };
    let mut t: SubscriptionTable<u32> = SubscriptionTable::new(config);
    t.xmpp_subscribe(now, &jid(U), &jid(S));
    assert_eq!(
        t.xmpp_subscribe(now, &jid("nurse@xmpp.example"), &jid(S)),
        vec![Action::RefuseSubscribe {
            user: jid("nurse@xmpp.example"),
            contact: jid(S),
            refusal: Refusal::RemoteDomainCap
        }]
    );
}

#[test]
fn reason_tokens() {
    for token in [
        "deactivated",
        "probation",
        "rejected",
        "timeout",
        "giveup",
        "noresource",
        "invariant",
        "x-other",
    ] {
        assert_eq!(TerminationReason::from_token(token).as_str(), token);
    }
    assert_eq!(
        TerminationReason::from_token("REJECTED"),
        TerminationReason::Rejected
    );
}

// ----- Property: no leaks, caps hold, terminated means gone -----

#[derive(Debug, Clone)]
enum Ev {
    SipSub(usize, usize, u32, Option<u32>),
    Subscribed(usize, usize),
    Unsubscribed(usize, usize),
    Presence(usize, usize, bool),
    Gone(usize, usize, u32),
    XSub(usize, usize),
    Resp(usize, usize, u16, Option<u32>),
    Notify(usize, usize, u8),
    XUnsub(usize, usize),
    Probe(usize, usize),
    Fetch(usize, usize, bool),
    Advance(u64),
}

const SIP: [&str; 3] = ["a@sip.example", "b@sip.example", "c@sip.example"];
const XMPP: [&str; 3] = ["x@one.example", "y@one.example", "z@two.example"];

fn ev() -> impl Strategy<Value = Ev> {
    let i = || 0usize..3;
    prop_oneof![
        (
            i(),
            i(),
            0u32..3,
            prop::option::of(prop_oneof![Just(0u32), Just(30), Just(60), Just(600)])
        )
            .prop_map(|(a, b, d, e)| Ev::SipSub(a, b, d, e)),
        (i(), i()).prop_map(|(a, b)| Ev::Subscribed(a, b)),
        (i(), i()).prop_map(|(a, b)| Ev::Unsubscribed(a, b)),
        (i(), i(), any::<bool>()).prop_map(|(a, b, c)| Ev::Presence(a, b, c)),
        (i(), i(), 0u32..3).prop_map(|(a, b, d)| Ev::Gone(a, b, d)),
        (i(), i()).prop_map(|(a, b)| Ev::XSub(a, b)),
        (
            i(),
            i(),
            prop_oneof![
                Just(200u16),
                Just(423),
                Just(481),
                Just(403),
                Just(503),
                Just(404)
            ],
            prop::option::of(0u32..4000)
        )
            .prop_map(|(a, b, c, e)| Ev::Resp(a, b, c, e)),
        (i(), i(), 0u8..5).prop_map(|(a, b, s)| Ev::Notify(a, b, s)),
        (i(), i()).prop_map(|(a, b)| Ev::XUnsub(a, b)),
        (i(), i()).prop_map(|(a, b)| Ev::Probe(a, b)),
        (i(), i(), any::<bool>()).prop_map(|(a, b, t)| Ev::Fetch(a, b, t)),
        (0u64..5000).prop_map(Ev::Advance),
    ]
}

fn check_invariants(t: &SubscriptionTable<u32>, actions: &[Action<u32>]) {
    let config = t.config();
    let mut users: HashMap<Jid, usize> = HashMap::new();
    let mut domains: HashMap<Domain, usize> = HashMap::new();
    let mut count = |local: &Jid, remote: &Domain| {
        *users.entry(local.clone()).or_default() += 1;
        *domains.entry(remote.clone()).or_default() += 1;
    };
    for (w, c) in t.inbound.keys().chain(t.in_fetches.keys()) {
        count(w, c.domain());
    }
    for (u, s) in t.outbound.keys().chain(t.out_fetches.keys()) {
        count(s, u.domain());
    }
    assert_eq!(users, t.per_user, "user counters drift");
    assert_eq!(domains, t.per_domain, "domain counters drift");
    assert!(users.values().all(|&n| n <= config.max_per_local_user));
    assert!(domains.values().all(|&n| n <= config.max_per_remote_domain));
    assert!(
        t.inbound.values().all(|e| !e.dialogs.is_empty()),
        "pair without dialogs"
    );
    // A dialog told `terminated` is gone from the table.
    for a in actions {
        match a {
            Action::Notify {
                dialog,
                watcher,
                contact,
                state,
                body,
            } => {
                let pair = (watcher.clone(), contact.clone());
                let entry = t.inbound.get(&pair);
                if matches!(state, SubscriptionState::Terminated { .. }) {
                    assert!(entry.is_none_or(|e| e.dialogs.iter().all(|d| d.dialog != *dialog)));
                }
                // §9.2: presence only to authorized watchers.
                if let (NotifyBody::Presence(_), SubscriptionState::Active { .. }) = (body, state) {
                    assert!(entry.is_some_and(|e| e.authorized));
                }
            }
            Action::SendUnsubscribed { from, to } => {
                assert!(!t.outbound.contains_key(&(to.clone(), from.clone())));
            }
            _ => {}
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn no_leaks_and_caps_hold(events in prop::collection::vec(ev(), 1..80)) {
        let config = SubscriptionConfig {
            max_per_local_user: 3,
            max_per_remote_domain: 4,
            max_dialogs_per_pair: 2,
            ..SubscriptionConfig::default()
        };
        let mut t: SubscriptionTable<u32> = SubscriptionTable::new(config);
        let mut now = Instant::now();
        for e in events {
            let j = |s: &str| jid(s);
            let actions = match e {
                Ev::SipSub(w, c, d, exp) => t.sip_subscribe(now, &j(SIP[w]), &j(XMPP[c]), exp, d).1,
                Ev::Subscribed(w, c) => t.xmpp_subscribed(now, &j(XMPP[c]), &j(SIP[w])),
                Ev::Unsubscribed(w, c) => t.xmpp_unsubscribed(&j(XMPP[c]), &j(SIP[w])),
                Ev::Presence(w, c, avail) => {
                    let rp = if avail { ResourcePresence::available("r") } else { ResourcePresence::unavailable("r") };
                    t.xmpp_presence(now, &j(XMPP[c]), &j(SIP[w]), rp)
                }
                Ev::Gone(w, c, d) => t.sip_dialog_gone(&j(SIP[w]), &j(XMPP[c]), &d),
                Ev::XSub(u, s) => t.xmpp_subscribe(now, &j(XMPP[u]), &j(SIP[s])),
                Ev::Resp(u, s, code, g) => t.subscribe_response(now, &j(XMPP[u]), &j(SIP[s]), code, g, Some(3600)),
                Ev::Notify(u, s, k) => {
                    let state = match k {
                        0 => SubscriptionState::Pending { expires: 60 },
                        1 => SubscriptionState::Active { expires: 60 },
                        2 => SubscriptionState::terminated(TerminationReason::Deactivated),
                        3 => SubscriptionState::terminated(TerminationReason::Rejected),
                        _ => SubscriptionState::terminated(TerminationReason::Probation),
                    };
                    let body = Some(one(ResourcePresence::available("desk")));
                    t.notify_received(now, &j(XMPP[u]), &j(SIP[s]), state, body).1
                }
                Ev::XUnsub(u, s) => t.xmpp_unsubscribe(now, &j(XMPP[u]), &j(SIP[s])),
                Ev::Probe(u, s) => t.xmpp_probe(now, &j(XMPP[u]), &j(SIP[s])),
                Ev::Fetch(u, s, ok) => {
                    if ok {
                        t.fetch_notify_received(&j(XMPP[u]), &j(SIP[s]), &SubscriptionState::terminated(TerminationReason::Timeout), None).1
                    } else {
                        t.fetch_response(&j(XMPP[u]), &j(SIP[s]), 500);
                        Vec::new()
                    }
                }
                Ev::Advance(ms) => {
                    now += Duration::from_millis(ms * 1000);
                    t.handle_timeout(now)
                }
            };
            check_invariants(&t, &actions);
        }
        // Left alone (no SIP answers, no refreshes), everything drains.
        let mut seen = HashSet::new();
        while let Some(at) = t.poll_timeout() {
            prop_assert!(seen.insert(at) || at > now, "timer does not advance");
            now = now.max(at);
            let actions = t.handle_timeout(now);
            check_invariants(&t, &actions);
            prop_assert!(seen.len() < 10_000);
        }
        prop_assert!(t.is_empty());
        prop_assert!(t.per_user.is_empty() && t.per_domain.is_empty());
    }
}
