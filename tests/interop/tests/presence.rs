//! Presence federation (RFC 8048) through the in-process gateway, between the SIP edge of corp.example
//! (played by the test) and real Prosody (all flows) and ejabberd (flow 1).
//!
//! | test | what it proves |
//! |---|---|
//! | `presence1_…` | Prosody's bob subscribes to `alice@corp.example`: the edge gets SUBSCRIBE, answers 202 and NOTIFY active with PIDF (away + note); bob gets `subscribed`, then presence with show=away and the status |
//! | `presence2_…` | the edge's watcher alice subscribes to bob: NOTIFY pending; bob approves; NOTIFY active with PIDF; bob sets dnd + status; the edge's NOTIFY parses to dnd + status, with no tuple for an empty resource |
//! | `presence3_…` | unsubscribe both ways: the watcher's `Expires: 0` ends with NOTIFY terminated; bob's `unsubscribe` reaches the edge as `Expires: 0` in the dialog |
//! | `presence4_…` | after flow 1, the edge revokes (in-dialog NOTIFY `terminated;reason=rejected`): bob gets `unsubscribed` from `alice@corp.example` |
//! | `presence_ejabberd_…` | flow 1 with ejabberd |

use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use sixgate_interop::c2s::C2sClient;
use sixgate_interop::gateway_env::{
    CORP, EDGE_IP, Env, SIP_USER, TIMEOUT, XMPP_USER, answer, ensure_host, expect_request,
    print_request, send_from,
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

    let presence = Presence {
        resources: vec![ResourcePresence {
            resource: "pc".to_owned(),
            available: true,
            show: Some(Show::Away),
            status: Some(Status {
                text: "Out for lunch".to_owned(),
                lang: None,
            }),
            priority: 0,
        }],
    };
    let entity = PidfEntity::new(&sixgate_core::Jid::parse(&alice)?, EntityScheme::Sip)?;
    let mut notify = dialog.request(Method::Notify)?;
    sip_dialog::set_presence_event(&mut notify.headers, None);
    sip_dialog::set_subscription_state(
        &mut notify.headers,
        &SubscriptionStatus::Active { expires },
    );
    notify.headers.set(HeaderName::CONTENT_TYPE, PIDF)?;
    notify.body = to_pidf(&presence, &entity).into_bytes();
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
    let bob_uri = format!("sip:{XMPP_USER}@{PROSODY_DOMAIN}");
    let to = Uri::parse(&bob_uri)?;
    let mut from = NameAddr::new(Uri::parse(&format!("sip:{SIP_USER}@{CORP}"))?);
    from.params.set("tag", Some("watcher-1"))?;
    let call_id = CallId::parse(&format!("watch-{}@edge.corp.example", std::process::id()))?;
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
