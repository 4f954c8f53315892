//! Presence federation (RFC 8048) through the in-process gateway, between the SIP edge of corp.example
//! (played by the test) and real Prosody (all flows) and ejabberd (flow 1).
//!
//! | test | what it proves |
//! |---|---|
//! | `presence1_…` | Prosody's bob subscribes to `alice@corp.example`: the edge gets SUBSCRIBE, answers 202 and NOTIFY active with PIDF (away + note); bob gets `subscribed`, then presence with show=away and the status |
//! | `presence2_…` | the edge's watcher alice subscribes to bob: NOTIFY pending; bob approves; NOTIFY active with PIDF; bob sets dnd + status; the edge's NOTIFY parses to dnd + status, with no tuple for an empty resource |
//! | `presence3_…` | unsubscribe both ways: the watcher's `Expires: 0` ends with NOTIFY terminated; bob's `unsubscribe` reaches the edge as `Expires: 0` in the dialog |
//! | `presence4_…` | after flow 1, the edge revokes (in-dialog NOTIFY `terminated;reason=rejected`): bob gets `unsubscribed` from `alice@corp.example` |
//! | `presence5_…` | flows 1 and 2, then a gateway restart: shutdown sends the watcher NOTIFY `terminated;reason=deactivated`; the watcher's refresh gets 481 and its new SUBSCRIBE is active again with bob's presence; the edge's NOTIFY in the old dialog gets 481; bob's re-login probe only fetches (no subscription); bob's re-subscribe restores it |
//! | `presence_ejabberd_…` | flow 1 with ejabberd |

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use sixgate_interop::c2s::C2sClient;
use sixgate_interop::gateway_env::{
    CORP, EDGE_IP, Env, SIP_USER, TIMEOUT, XMPP_USER, answer, ensure_host, expect_request,
    print_request, print_response, send_from,
};
use sixgate_interop::run::RunDir;
use sixgate_interop::sip_peer::{SIP_PORT, SipPeer, status_line};
use sixgate_interop::{PROSODY_DOMAIN, run_test};
use sixgate_presence::{
    EntityScheme, PidfEntity, Presence, ResourcePresence, Show, Status, parse_pidf, to_pidf,
};
use sixgate_sip::Request;
use sixgate_sip::dialog::{
    self as sip_dialog, Dialog, SubscribeAnswer, SubscriptionStatus, TerminationReason,
};
use sixgate_sip::message::{
    CallId, HeaderName, Method, NameAddr, StatusCode, SubState, Token, Uri,
};
use sixgate_sip_net::IncomingRequest;
use tokio::time::Instant;

/// The PIDF media type (RFC 3863).
const PIDF: &str = "application/pidf+xml";

/// The edge's Contact for its dialogs.
fn edge_contact() -> NameAddr {
    NameAddr::new(
        Uri::parse(&format!(
            "sip:{SIP_USER}@{EDGE_IP}:{SIP_PORT};transport=tls"
        ))
        .unwrap_or_else(|e| panic!("{e}")),
    )
}

#[test]
fn presence1_prosody_xmpp_user_subscribes_to_sip_user() {
    run_test("presence1", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.prosody_bob(&prosody).await?;
        let (_dialog, _) = xmpp_subscribes_to_sip("presence1", &mut edge, &mut bob).await?;
        gateway.shutdown("presence1").await;
        Ok(())
    });
}

#[test]
fn presence_ejabberd_xmpp_user_subscribes_to_sip_user() {
    run_test("presence_ejabberd", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let ejabberd = env.ejabberd(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.ejabberd_bob(&ejabberd).await?;
        let (_dialog, _) = xmpp_subscribes_to_sip("presence_ejabberd", &mut edge, &mut bob).await?;
        gateway.shutdown("presence_ejabberd").await;
        Ok(())
    });
}

#[test]
fn presence2_prosody_sip_watcher_subscribes_to_xmpp_user() {
    run_test("presence2", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.prosody_bob(&prosody).await?;
        let _dialog = sip_subscribes_to_xmpp("presence2", &mut edge, &mut bob).await?;
        gateway.shutdown("presence2").await;
        Ok(())
    });
}

#[test]
fn presence3_prosody_unsubscribe_both_ways() {
    run_test("presence3", async |run: &RunDir| -> Result<()> {
        let test = "presence3";
        let env = Env::new(run)?;
        let prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.prosody_bob(&prosody).await?;

        // SIP watcher → XMPP: Expires: 0 in the dialog ends with NOTIFY terminated.
        let mut watcher = sip_subscribes_to_xmpp(test, &mut edge, &mut bob).await?;
        let mut cancel = watcher.request(Method::Subscribe)?;
        sip_dialog::set_presence_event(&mut cancel.headers, None);
        sip_dialog::set_expires(&mut cancel.headers, 0);
        let response = send_from(&edge, cancel).await?;
        ensure!(
            response.status.is_success(),
            "[{test}] unsubscribe: {}",
            status_line(&response)
        );
        let (state, _) = next_notify(test, &mut edge, |s| s.state == SubState::Terminated).await?;
        println!(
            "[{test}] RESULT watcher Expires: 0 -> {} / NOTIFY {state}",
            status_line(&response)
        );

        // XMPP → SIP contact: bob's unsubscribe becomes Expires: 0 in the dialog.
        let (mut notifier, subscribe) = xmpp_subscribes_to_sip(test, &mut edge, &mut bob).await?;
        bob.send_presence(
            Some("unsubscribe"),
            Some(&format!("{SIP_USER}@{CORP}")),
            None,
            None,
        )
        .await?;
        let incoming = expect_request(test, &mut edge, "the unsubscribing SUBSCRIBE").await?;
        let request = incoming.request.clone();
        ensure!(
            request.method == Method::Subscribe,
            "[{test}] expected SUBSCRIBE, got {}",
            request.method
        );
        ensure!(
            notifier.matches(&request),
            "[{test}] the unsubscribe is not in the dialog"
        );
        ensure!(
            request.headers.expires()? == Some(0),
            "[{test}] Expires is not 0"
        );
        ensure!(
            request.call_id == subscribe.call_id,
            "[{test}] another Call-ID"
        );
        notifier.receive(&request)?;
        let response = notifier.response(&request, StatusCode::ACCEPTED, "Accepted");
        incoming.respond(response).map_err(|e| anyhow!("{e}"))?;
        let mut notify = notifier.request(Method::Notify)?;
        sip_dialog::set_presence_event(&mut notify.headers, None);
        sip_dialog::set_subscription_state(
            &mut notify.headers,
            &SubscriptionStatus::Terminated {
                reason: Some(TerminationReason::Timeout),
                retry_after: None,
            },
        );
        let answer = send_from(&edge, notify).await?;
        println!(
            "[{test}] final NOTIFY terminated answered {}",
            status_line(&answer)
        );
        let unsubscribed = wait_presence(&mut bob, Duration::from_secs(5), |p| {
            p.attr("type") == Some("unsubscribed")
        })
        .await?;
        println!(
            "[{test}] RESULT bob unsubscribe -> SUBSCRIBE Expires: 0 in the dialog; unsubscribed at bob: {}",
            unsubscribed.map_or_else(
                || "not delivered by Prosody (bob's subscription was already none)".to_owned(),
                |p| p.to_xml()
            )
        );
        gateway.shutdown(test).await;
        Ok(())
    });
}

#[test]
fn presence4_prosody_sip_contact_revokes() {
    run_test("presence4", async |run: &RunDir| -> Result<()> {
        let test = "presence4";
        let env = Env::new(run)?;
        let prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.prosody_bob(&prosody).await?;

        let (mut notifier, _) = xmpp_subscribes_to_sip(test, &mut edge, &mut bob).await?;
        let mut notify = notifier.request(Method::Notify)?;
        sip_dialog::set_presence_event(&mut notify.headers, None);
        sip_dialog::set_subscription_state(
            &mut notify.headers,
            &SubscriptionStatus::Terminated {
                reason: Some(TerminationReason::Rejected),
                retry_after: None,
            },
        );
        let answer = send_from(&edge, notify).await?;
        ensure!(
            answer.status.as_u16() == 200,
            "[{test}] NOTIFY terminated;reason=rejected answered {}",
            status_line(&answer)
        );
        let alice = format!("{SIP_USER}@{CORP}");
        let unsubscribed = wait_presence(&mut bob, TIMEOUT, |p| {
            if p.attr("type") == Some("unavailable") {
                println!("[{test}] bob received {}", p.to_xml());
            }
            p.attr("type") == Some("unsubscribed")
        })
        .await?
        .ok_or_else(|| anyhow!("[{test}] bob got no unsubscribed\n{}", bob.transcript()))?;
        ensure!(
            unsubscribed.attr("from") == Some(alice.as_str()),
            "[{test}] unsubscribed from {:?}, not {alice}: {}",
            unsubscribed.attr("from"),
            unsubscribed.to_xml()
        );
        println!(
            "[{test}] RESULT edge NOTIFY terminated;reason=rejected -> 200; bob received {}",
            unsubscribed.to_xml()
        );
        gateway.shutdown(test).await;
        Ok(())
    });
}

#[test]
fn presence5_prosody_gateway_restart() {
    run_test("presence5", async |run: &RunDir| -> Result<()> {
        let test = "presence5";
        let env = Env::new(run)?;
        let prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.prosody_bob(&prosody).await?;
        let alice = format!("{SIP_USER}@{CORP}");

        // Both directions live: bob → alice (flow 1) and the edge's watcher → bob (flow 2).
        let (mut notifier, flow1_subscribe) =
            xmpp_subscribes_to_sip(test, &mut edge, &mut bob).await?;
        let watcher = sip_subscribes_to_xmpp(test, &mut edge, &mut bob).await?;
        println!(
            "[{test}] before the restart, bob's roster item for {alice}: {}",
            roster_item(&mut bob, &alice).await?
        );

        // The restart: shutdown, then a new gateway from the same gateway.toml on the same addresses.
        let gateway = gateway.restart(test, run).await?;
        let at_edge = edge_requests_within(test, &mut edge, Duration::from_secs(1)).await?;
        let at_bob = presences_within(&mut bob, Duration::from_millis(500)).await?;
        println!(
            "[{test}] OBSERVED across the restart: {} request(s) at the edge, {} presence(s) at bob {:?}",
            at_edge.len(),
            at_bob.len(),
            at_bob.iter().map(|p| p.to_xml()).collect::<Vec<_>>()
        );
        // Shutdown ends the watcher's subscription with NOTIFY terminated;reason=deactivated (RFC 6665 §4.2.2),
        // which tells it to re-subscribe at once; nothing else reaches the edge.
        ensure!(
            at_edge.len() == 1
                && at_edge[0].method == Method::Notify
                && at_edge[0]
                    .headers
                    .get(&HeaderName::SUBSCRIPTION_STATE)
                    .is_some_and(|state| state.replace(' ', "") == "terminated;reason=deactivated"),
            "[{test}] expected one NOTIFY terminated;reason=deactivated at the edge, got {at_edge:?}"
        );
        ensure!(
            at_bob.is_empty(),
            "[{test}] the shutdown or the start sent bob {at_bob:?}"
        );

        // (a) The watcher's refresh in its old dialog → 481; a new SUBSCRIBE → pending, then active with
        // bob's dnd (the new gateway sends `subscribe`; Prosody answers it because bob approved before).
        let mut old_watcher = watcher;
        let mut refresh = old_watcher.request(Method::Subscribe)?;
        sip_dialog::set_presence_event(&mut refresh.headers, None);
        sip_dialog::set_expires(&mut refresh.headers, 600);
        refresh.headers.set(HeaderName::ACCEPT, PIDF)?;
        let started = Instant::now();
        let response = send_from(&edge, refresh).await?;
        print_response(test, &response, started);
        ensure!(
            response.status.as_u16() == 481,
            "[{test}] the refresh in the old dialog was answered {}, not 481",
            status_line(&response)
        );
        let subscribe = watcher_subscribe(2)?;
        let started = Instant::now();
        let response = send_from(&edge, subscribe.clone()).await?;
        print_response(test, &response, started);
        ensure!(
            response.status.as_u16() == 202,
            "[{test}] the new SUBSCRIBE was answered {}",
            status_line(&response)
        );
        // The new gateway sends `subscribe`; Prosody answers it itself (bob approved alice before):
        // `subscribed`, bob's presence, and, since bob is subscribed to alice too, a `probe` to alice.
        // That probe finds no subscription in the new table, so it becomes a §7 fetch (SUBSCRIBE
        // Expires: 0 on a new dialog) at the edge, interleaved with the watcher's NOTIFYs.
        let deadline = Instant::now() + TIMEOUT;
        let mut first = None;
        let mut active = None;
        let mut fetch = None;
        while active.is_none() || fetch.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            let incoming = edge.next_request(left).await.ok_or_else(|| {
                anyhow!(
                    "[{test}] after the new SUBSCRIBE: NOTIFY active with dnd {}, fetch SUBSCRIBE {} \
                     within {TIMEOUT:?}",
                    if active.is_some() { "came" } else { "missing" },
                    if fetch.is_some() { "came" } else { "missing" },
                )
            })?;
            let request = incoming.request.clone();
            if request.method == Method::Subscribe {
                print_request(test, "edge received after the new SUBSCRIBE", &request);
                ensure!(fetch.is_none(), "[{test}] a second SUBSCRIBE");
                fetch = Some(incoming);
                continue;
            }
            ensure!(
                request.method == Method::Notify && request.call_id == subscribe.call_id,
                "[{test}] expected a NOTIFY in the new watcher dialog: {} {}",
                request.method,
                request.call_id
            );
            answer(incoming, 200)?;
            let state = sip_dialog::notify_state(&request)?;
            let presence = if request.body.is_empty() {
                None
            } else {
                Some(parse_pidf(&request.body)?)
            };
            println!("[{test}] edge received NOTIFY {state} with {presence:?}");
            first.get_or_insert_with(|| state.clone());
            let dnd = presence.as_ref().is_some_and(|p| {
                p.resources.iter().any(|r| {
                    r.available
                        && r.show == Some(Show::Dnd)
                        && r.status.as_ref().is_some_and(|s| s.text == "In a meeting")
                })
            });
            if state.state == SubState::Active && dnd {
                active = Some((state, presence));
            }
        }
        let first = first.ok_or_else(|| anyhow!("[{test}] no NOTIFY"))?;
        ensure!(
            first.state == SubState::Pending,
            "[{test}] the new subscription's first NOTIFY is {first}"
        );
        let (state, presence) = active.ok_or_else(|| anyhow!("[{test}] no active NOTIFY"))?;
        println!(
            "[{test}] RESULT (a) refresh in the old dialog -> 481; new SUBSCRIBE -> 202, NOTIFY \
             {first}, then NOTIFY {state} with {presence:?} after {:.2} s",
            started.elapsed().as_secs_f64()
        );
        let fetch = fetch.ok_or_else(|| anyhow!("[{test}] no fetch"))?;
        let fetch_expires = fetch.request.headers.expires()?;
        ensure!(
            fetch_expires == Some(0),
            "[{test}] the probe's SUBSCRIBE has Expires {fetch_expires:?}, not 0 (a fetch)"
        );
        ensure!(
            fetch.request.call_id != flow1_subscribe.call_id && fetch.request.to.tag().is_none(),
            "[{test}] the fetch is not on a new dialog"
        );
        let mut fetch_dialog = edge_accepts(fetch, "edge-tag-fetch", 0)?;
        let notify = alice_notify(
            &mut fetch_dialog,
            &SubscriptionStatus::Terminated {
                reason: Some(TerminationReason::Timeout),
                retry_after: None,
            },
            None,
            "Back at my desk",
        )?;
        let response = send_from(&edge, notify).await?;
        ensure!(
            response.status.as_u16() == 200,
            "[{test}] the fetch's NOTIFY terminated was answered {}",
            status_line(&response)
        );
        let from_alice = |p: &sixgate_interop::xml::Element| {
            p.attr("from").is_some_and(|f| f.starts_with(&alice))
        };
        let mut bob_saw = Vec::new();
        let fetched = wait_presence(&mut bob, TIMEOUT, |p| {
            from_alice(p) && p.attr("type").is_none()
        })
        .await?
        .ok_or_else(|| {
            anyhow!(
                "[{test}] bob got no presence from the fetch\n{}",
                bob.transcript()
            )
        })?;
        ensure!(
            fetched.child("status").map(|s| s.text()).as_deref() == Some("Back at my desk"),
            "[{test}] the fetched presence: {}",
            fetched.to_xml()
        );
        bob_saw.extend(presences_within(&mut bob, Duration::from_millis(500)).await?);
        println!(
            "[{test}] OBSERVED (a) bob's client was not asked again (Prosody answered the gateway's \
             subscribe itself); it received the fetch's {} and then {:?}",
            fetched.to_xml(),
            bob_saw.iter().map(|p| p.to_xml()).collect::<Vec<_>>()
        );
        ensure!(
            !bob_saw.iter().any(|p| p.attr("type") == Some("subscribe")),
            "[{test}] bob was asked to approve alice again"
        );

        // (b) The edge's notifier (flow 1's dialog) sends alice's new state in its old dialog → 481; bob
        // sees nothing, and the fetch left no subscription behind: the gateway subscribes to nothing.
        let notify = alice_notify(
            &mut notifier,
            &SubscriptionStatus::Active { expires: 3000 },
            Some(Show::Chat),
            "Free to talk",
        )?;
        let started = Instant::now();
        let response = send_from(&edge, notify).await?;
        print_response(test, &response, started);
        ensure!(
            response.status.as_u16() == 481,
            "[{test}] the NOTIFY in the old subscriber dialog was answered {}, not 481",
            status_line(&response)
        );
        let seen = wait_presence(&mut bob, Duration::from_secs(1), from_alice).await?;
        ensure!(
            seen.is_none(),
            "[{test}] bob received {seen:?} after a NOTIFY answered 481"
        );
        // (Only NOTIFYs in the watcher's new dialog may come: Prosody sent bob's presence twice, and
        // the gateway sends at most one NOTIFY per second per pair.)
        let later = edge_requests_within(test, &mut edge, Duration::from_secs(2)).await?;
        ensure!(
            later
                .iter()
                .all(|r| r.method == Method::Notify && r.call_id == subscribe.call_id),
            "[{test}] after the fetch the gateway sent the edge {later:?}"
        );
        println!(
            "[{test}] bob's roster item for {alice} after the restart: {}",
            roster_item(&mut bob, &alice).await?
        );
        println!(
            "[{test}] RESULT (b) NOTIFY in the old dialog -> 481, nothing reaches bob; Prosody's probe \
             -> one fetch (SUBSCRIBE Expires: 0) -> bob received {}; no SUBSCRIBE within 2 s after it",
            fetched.to_xml()
        );

        // bob logs in again: Prosody probes alice again, less than probe_interval (60 s) after the
        // first probe, so the gateway sends nothing (§9.1 rate limit) and bob sees no presence of alice.
        bob.close().await;
        let mut bob = env.prosody_bob(&prosody).await?;
        bob.request_roster(TIMEOUT).await?;
        let relogin = edge_requests_within(test, &mut edge, Duration::from_secs(2)).await?;
        let seen = wait_presence(&mut bob, Duration::from_millis(500), from_alice).await?;
        ensure!(
            relogin.iter().all(|r| r.method == Method::Notify),
            "[{test}] bob's re-login made the gateway send the edge a SUBSCRIBE"
        );
        ensure!(
            seen.is_none(),
            "[{test}] bob received presence from alice after his re-login: {seen:?}"
        );
        let notify = alice_notify(
            &mut notifier,
            &SubscriptionStatus::Active { expires: 3000 },
            Some(Show::Xa),
            "Gone home",
        )?;
        let response = send_from(&edge, notify).await?;
        ensure!(
            response.status.as_u16() == 481,
            "[{test}] the second NOTIFY in the old dialog was answered {}",
            status_line(&response)
        );
        println!(
            "[{test}] RESULT (b) bob's re-login (probe within 60 s) -> only NOTIFYs to the watcher \
             ({} request(s)), no SUBSCRIBE, no presence of alice at bob; the old dialog still gets 481",
            relogin.len()
        );

        // Recovery: bob subscribes again → a new subscription (SUBSCRIBE on a new dialog); the edge's
        // NOTIFY active reaches bob.
        bob.send_presence(Some("subscribe"), Some(&alice), None, None)
            .await?;
        let incoming = loop {
            let incoming = expect_request(test, &mut edge, "the re-subscribe").await?;
            if incoming.request.method == Method::Notify {
                answer(incoming, 200)?;
                continue;
            }
            break incoming;
        };
        print_request(
            test,
            "edge received after bob's subscribe",
            &incoming.request,
        );
        let expires = incoming.request.headers.expires()?.unwrap_or(3600);
        ensure!(
            incoming.request.method == Method::Subscribe && expires > 0,
            "[{test}] expected a SUBSCRIBE with Expires > 0"
        );
        let mut renewed = edge_accepts(incoming, "edge-tag-2", expires)?;
        let notify = alice_notify(
            &mut renewed,
            &SubscriptionStatus::Active { expires },
            Some(Show::Xa),
            "Gone home",
        )?;
        let response = send_from(&edge, notify).await?;
        ensure!(
            response.status.as_u16() == 200,
            "[{test}] NOTIFY in the new dialog answered {}",
            status_line(&response)
        );
        let subscribed = std::cell::Cell::new(false);
        let restored = wait_presence(&mut bob, TIMEOUT, |p| {
            if p.attr("type") == Some("subscribed") {
                println!("[{test}] bob received {}", p.to_xml());
                subscribed.set(true);
            }
            from_alice(p)
                && p.attr("type").is_none()
                && p.child("status").is_some_and(|s| s.text() == "Gone home")
        })
        .await?
        .ok_or_else(|| {
            anyhow!(
                "[{test}] bob got no presence after re-subscribing\n{}",
                bob.transcript()
            )
        })?;
        println!(
            "[{test}] RESULT recovery: bob's subscribe -> SUBSCRIBE Expires: {expires} on a new dialog; \
             NOTIFY active -> bob received {} (a `subscribed` reached bob's client: {})",
            restored.to_xml(),
            subscribed.get()
        );
        gateway.shutdown(test).await;
        Ok(())
    });
}

/// alice's item in bob's roster (its `subscription` and `ask`), as XML.
async fn roster_item(bob: &mut C2sClient, jid: &str) -> Result<String> {
    let roster = bob.request_roster(TIMEOUT).await?;
    let item = roster.child("query").and_then(|q| {
        q.children.iter().find_map(|n| match n {
            sixgate_interop::xml::Node::Element(e) if e.attr("jid") == Some(jid) => {
                Some(e.to_xml())
            }
            _ => None,
        })
    });
    Ok(item.unwrap_or_else(|| "none".to_owned()))
}

/// Every `<presence/>` bob receives within `window`.
async fn presences_within(
    client: &mut C2sClient,
    window: Duration,
) -> Result<Vec<sixgate_interop::xml::Element>> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(out);
        }
        match client.next_presence(left).await? {
            Some(p) => out.push(p),
            None => return Ok(out),
        }
    }
}

/// Every request the gateway sends the edge within `window`: NOTIFYs are answered 200, anything else 500
/// (printed either way).
async fn edge_requests_within(
    test: &str,
    edge: &mut SipPeer,
    window: Duration,
) -> Result<Vec<Request>> {
    let deadline = Instant::now() + window;
    let mut out = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(out);
        }
        let Some(incoming) = edge.next_request(left).await else {
            return Ok(out);
        };
        let request = incoming.request.clone();
        print_request(test, "edge received", &request);
        let status = if request.method == Method::Notify {
            200
        } else {
            500
        };
        // The NOTIFY the old gateway sent while shutting down is read after it is gone: no one to answer.
        if let Err(error) = answer(incoming, status) {
            println!("[{test}] (answer not sent: {error})");
        }
        out.push(request);
    }
}

/// The edge accepts a SUBSCRIBE from the gateway as alice's notifier: 202 with `Expires: expires`.
fn edge_accepts(incoming: IncomingRequest, tag: &str, expires: u32) -> Result<Dialog> {
    let dialog = Dialog::as_notifier(&incoming.request, Token::new(tag)?, edge_contact(), 1)?;
    let mut response = dialog.response(&incoming.request, StatusCode::ACCEPTED, "Accepted");
    sip_dialog::set_expires(&mut response.headers, expires);
    incoming.respond(response).map_err(|e| anyhow!("{e}"))?;
    Ok(dialog)
}

/// alice's presence as the edge's NOTIFY carries it: resource "pc", available, `show`, `status`.
fn alice_presence(show: Option<Show>, status: &str) -> Presence {
    Presence {
        resources: vec![ResourcePresence {
            resource: "pc".to_owned(),
            available: true,
            show,
            status: Some(Status {
                text: status.to_owned(),
                lang: None,
            }),
            priority: 0,
        }],
    }
}

/// The edge's next NOTIFY in `dialog` (a notifier dialog for alice): `state` and alice's PIDF.
fn alice_notify(
    dialog: &mut Dialog,
    state: &SubscriptionStatus,
    show: Option<Show>,
    status: &str,
) -> Result<Request> {
    let alice = sixgate_core::Jid::parse(&format!("{SIP_USER}@{CORP}"))?;
    let entity = PidfEntity::new(&alice, EntityScheme::Sip)?;
    let mut notify = dialog.request(Method::Notify)?;
    sip_dialog::set_presence_event(&mut notify.headers, None);
    sip_dialog::set_subscription_state(&mut notify.headers, state);
    notify.headers.set(HeaderName::CONTENT_TYPE, PIDF)?;
    notify.body = to_pidf(&alice_presence(show, status), &entity).into_bytes();
    Ok(notify)
}

/// The edge's watcher alice's SUBSCRIBE number `n` (a new dialog: own Call-ID and From tag) for bob,
/// `Expires: 600`.
fn watcher_subscribe(n: u32) -> Result<Request> {
    let to = Uri::parse(&format!("sip:{XMPP_USER}@{PROSODY_DOMAIN}"))?;
    let mut from = NameAddr::new(Uri::parse(&format!("sip:{SIP_USER}@{CORP}"))?);
    from.params
        .set("tag", Some(format!("watcher-{n}").as_str()))?;
    let call_id = CallId::parse(&format!(
        "watch-{n}-{}@edge.corp.example",
        std::process::id()
    ))?;
    let mut subscribe = Request::new(
        Method::Subscribe,
        to.clone(),
        from,
        NameAddr::new(to),
        call_id,
        1,
    );
    subscribe
        .headers
        .push(HeaderName::CONTACT, edge_contact().to_string())?;
    sip_dialog::set_presence_event(&mut subscribe.headers, None);
    sip_dialog::set_expires(&mut subscribe.headers, 600);
    subscribe.headers.set(HeaderName::ACCEPT, PIDF)?;
    Ok(subscribe)
}

/// Flow 1: bob subscribes to alice; the edge accepts and notifies away + note. Returns the edge's notifier
/// dialog and the SUBSCRIBE.
async fn xmpp_subscribes_to_sip(
    test: &str,
    edge: &mut SipPeer,
    bob: &mut C2sClient,
) -> Result<(Dialog, Request)> {
    let alice = format!("{SIP_USER}@{CORP}");
    bob.request_roster(TIMEOUT).await?;
    bob.send_presence(Some("subscribe"), Some(&alice), None, None)
        .await?;
    let incoming = expect_request(test, edge, "the SUBSCRIBE").await?;
    let request = incoming.request.clone();
    print_request(test, "edge received", &request);
    ensure!(
        request.method == Method::Subscribe,
        "[{test}] expected SUBSCRIBE, got {}",
        request.method
    );
    let event = request
        .headers
        .event()?
        .ok_or_else(|| anyhow!("no Event"))?;
    ensure!(
        event.package.as_str() == "presence",
        "[{test}] Event {event}"
    );
    ensure!(
        request.headers.get(&HeaderName::ACCEPT) == Some(PIDF),
        "[{test}] Accept"
    );
    ensure_host(&request.uri, CORP)?;
    let expires = request.headers.expires()?.unwrap_or(3600);
    let mut dialog = Dialog::as_notifier(&request, Token::new("edge-tag-1")?, edge_contact(), 1)?;
    let mut response = dialog.response(&request, StatusCode::ACCEPTED, "Accepted");
    sip_dialog::set_expires(&mut response.headers, expires);
    incoming.respond(response).map_err(|e| anyhow!("{e}"))?;

    let notify = alice_notify(
        &mut dialog,
        &SubscriptionStatus::Active { expires },
        Some(Show::Away),
        "Out for lunch",
    )?;
    let answer = send_from(edge, notify).await?;
    ensure!(
        answer.status.as_u16() == 200,
        "[{test}] NOTIFY answered {}",
        status_line(&answer)
    );

    let subscribed = wait_presence(bob, TIMEOUT, |p| p.attr("type") == Some("subscribed"))
        .await?
        .ok_or_else(|| anyhow!("[{test}] bob got no subscribed\n{}", bob.transcript()))?;
    ensure!(
        subscribed
            .attr("from")
            .is_some_and(|f| f.starts_with(&alice)),
        "[{test}] subscribed from {:?}",
        subscribed.attr("from")
    );
    let available = wait_presence(bob, TIMEOUT, |p| p.attr("type").is_none())
        .await?
        .ok_or_else(|| anyhow!("[{test}] bob got no presence\n{}", bob.transcript()))?;
    let show = available.child("show").map(|s| s.text());
    let status = available.child("status").map(|s| s.text());
    ensure!(
        show.as_deref() == Some("away"),
        "[{test}] show {show:?}: {}",
        available.to_xml()
    );
    ensure!(
        status.as_deref() == Some("Out for lunch"),
        "[{test}] status {status:?}"
    );
    println!(
        "[{test}] RESULT XMPP subscribe -> SUBSCRIBE at the edge; 202 + NOTIFY active -> subscribed, then {}",
        available.to_xml()
    );
    Ok((dialog, request))
}

/// Flow 2: the edge's watcher alice subscribes to bob, bob approves and sets dnd. Returns the watcher's
/// dialog.
async fn sip_subscribes_to_xmpp(
    test: &str,
    edge: &mut SipPeer,
    bob: &mut C2sClient,
) -> Result<Dialog> {
    bob.request_roster(TIMEOUT).await?;
    let subscribe = watcher_subscribe(1)?;
    let response = send_from(edge, subscribe.clone()).await?;
    ensure!(
        response.status.as_u16() == 202,
        "[{test}] SUBSCRIBE answered {}",
        status_line(&response)
    );
    let dialog = Dialog::as_subscriber(&subscribe, SubscribeAnswer::Response(&response))?;
    let (state, _) = next_notify(test, edge, |_| true).await?;
    ensure!(
        state.state == SubState::Pending,
        "[{test}] first NOTIFY is {state}"
    );

    let request = wait_presence(bob, TIMEOUT, |p| p.attr("type") == Some("subscribe"))
        .await?
        .ok_or_else(|| anyhow!("[{test}] bob got no subscribe\n{}", bob.transcript()))?;
    let from = request.attr("from").unwrap_or_default().to_owned();
    ensure!(
        from.starts_with(&format!("{SIP_USER}@{CORP}")),
        "[{test}] subscribe from {from}"
    );
    bob.send_presence(Some("subscribed"), Some(&from), None, None)
        .await?;
    let (state, _) = next_notify(test, edge, |s| s.state == SubState::Active).await?;
    println!("[{test}] after bob's approval: NOTIFY {state}");

    bob.send_presence(None, None, Some("dnd"), Some("In a meeting"))
        .await?;
    let (_, presence) = next_notify_with(test, edge, |_, presence| {
        presence.is_some_and(|p| {
            p.resources.iter().any(|r| {
                r.show == Some(Show::Dnd)
                    && r.status.as_ref().is_some_and(|s| s.text == "In a meeting")
            })
        })
    })
    .await?;
    // A presence from bob's bare JID is not a resource: no tuple may have an empty resource.
    ensure!(
        presence
            .as_ref()
            .is_some_and(|p| p.resources.iter().all(|r| !r.resource.is_empty())),
        "[{test}] a PIDF tuple has an empty resource: {presence:?}"
    );
    println!("[{test}] RESULT SIP watcher: 202, NOTIFY pending, active, then PIDF {presence:?}");
    let _ = dialog.remote_target();
    Ok(dialog)
}

/// Answers NOTIFYs at the edge with 200 until one's state satisfies `done`.
async fn next_notify(
    test: &str,
    edge: &mut SipPeer,
    done: impl Fn(&sixgate_sip::message::SubscriptionState) -> bool,
) -> Result<(sixgate_sip::message::SubscriptionState, Option<Presence>)> {
    next_notify_with(test, edge, |state, _| done(state)).await
}

async fn next_notify_with(
    test: &str,
    edge: &mut SipPeer,
    done: impl Fn(&sixgate_sip::message::SubscriptionState, Option<&Presence>) -> bool,
) -> Result<(sixgate_sip::message::SubscriptionState, Option<Presence>)> {
    loop {
        let incoming = expect_request(test, edge, "a NOTIFY").await?;
        let request = incoming.request.clone();
        ensure!(
            request.method == Method::Notify,
            "[{test}] expected NOTIFY, got {}",
            request.method
        );
        answer(incoming, 200)?;
        let state = sip_dialog::notify_state(&request)?;
        let presence = if request.body.is_empty() {
            None
        } else {
            ensure!(
                request.headers.get(&HeaderName::CONTENT_TYPE) == Some(PIDF),
                "[{test}] NOTIFY Content-Type"
            );
            Some(parse_pidf(&request.body)?)
        };
        println!("[{test}] edge received NOTIFY {state} with {presence:?}");
        if done(&state, presence.as_ref()) {
            return Ok((state, presence));
        }
    }
}

/// The next `<presence/>` at `client` satisfying `wanted` within `timeout` (others are skipped).
async fn wait_presence(
    client: &mut C2sClient,
    timeout: Duration,
    wanted: impl Fn(&sixgate_interop::xml::Element) -> bool,
) -> Result<Option<sixgate_interop::xml::Element>> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Ok(None);
        }
        match client.next_presence(left).await? {
            Some(p) if wanted(&p) => return Ok(Some(p)),
            Some(_) => {}
            None => return Ok(None),
        }
    }
}
