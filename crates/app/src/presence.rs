//! Presence federation (RFC 8048): the I/O around `sixgate_presence::SubscriptionTable`.
//!
//! Direction A (a SIP watcher behind one of our edges subscribes to an XMPP contact): the SUBSCRIBE creates a
//! notifier dialog (`Dialog::as_notifier`), the table decides the answer, and its `Notify` actions become
//! in-dialog NOTIFYs to the edge; its stanza actions become `<presence/>` to the contact's server.
//!
//! Direction B (an XMPP user subscribes to a SIP user of ours): the table's `SendSubscribe` actions become
//! SUBSCRIBEs through the edge, the subscriber dialog is created by the 2xx or by a NOTIFY that overtakes it,
//! and the NOTIFYs' PIDF bodies become `<presence/>` stanzas to the XMPP user.
//!
//! The table is in memory: a restart loses every subscription (see docs/presence.md, "Restarts").
//! Actions of one event are carried out in order by the task that produced them; sends in one dialog from
//! different events may overtake each other, which the peer answers with 500 (out of order) at worst.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use sixgate_core::{Domain, Jid, SipUri, jid_to_sip, sip_to_jid};
use sixgate_presence::subscription::{NotifyAnswer, SubscribeKind, SubscribeResponse};
use sixgate_presence::{
    Action, SubscriptionConfig, SubscriptionState, SubscriptionTable, parse_pidf,
};
use sixgate_route::{LocalDelivery, Route, SharedRouteTable, SipHop};
use sixgate_sip::dialog::{
    self, Dialog, DialogId, SubscribeAnswer, notify_matches_subscribe, notify_state,
};
use sixgate_sip::message::{CallId, HeaderName, Method, NameAddr, StatusCode, Uri};
use sixgate_sip::{Request, Response};
use sixgate_sip_net::{NextHop, Responder, SendError, SipService};
use sixgate_xmpp::S2sService;
use sixgate_xmpp_proto::xml::Element;
use tokio::sync::Notify;
use tracing::{debug, info, warn};

use crate::presence_wire::{
    ContactPresence, PIDF, action_stanza, build_notify, contact_presence, table_state,
};
use crate::sip_side::{edge_hop, random_token, uri_domain};

type Pair = (Jid, Jid);

/// The shortest time between two scans of the subscription table for its next deadline.
const RESCAN_INTERVAL: std::time::Duration = std::time::Duration::from_millis(100);

/// A dialog in which we are the notifier (direction A).
struct NotifierDialog {
    dialog: Dialog,
    hop: NextHop,
    /// The XMPP contact the watcher subscribed to (the PIDF entity of the dialog's NOTIFYs).
    contact: Jid,
}

/// A SUBSCRIBE we sent (direction B), with its dialog once a 2xx or NOTIFY created it.
struct Subscriber {
    subscribe: Request,
    dialog: Option<Dialog>,
    hop: NextHop,
}

#[derive(Default)]
struct Dialogs {
    /// Direction A, by dialog id.
    notifier: HashMap<DialogId, NotifierDialog>,
    /// Direction B subscriptions, by (XMPP user, SIP contact).
    subscriptions: HashMap<Pair, Subscriber>,
    /// Direction B fetches (`Expires: 0` on a new dialog), by (XMPP user, SIP contact).
    fetches: HashMap<Pair, Subscriber>,
    /// Direction B dialogs: the pair and whether it is a fetch.
    subscriber_ids: HashMap<DialogId, (Pair, bool)>,
}

struct State {
    table: SubscriptionTable<DialogId>,
    dialogs: Dialogs,
}

/// Presence federation, shared by the SIP side, local delivery and the timer task.
pub(crate) struct PresenceSide {
    sip: Arc<SipService>,
    s2s: Arc<S2sService>,
    routes: SharedRouteTable,
    /// Our `Contact` in dialogs.
    contact: NameAddr,
    state: Mutex<State>,
    /// Wakes the timer task when the table's next deadline may have moved.
    wake: Notify,
}

/// A SIP request to send, and what to do with its outcome.
enum Outgoing {
    /// A NOTIFY in a notifier dialog: a 481 or no answer ends the dialog (`sip_dialog_gone`).
    Notify {
        request: Request,
        hop: NextHop,
        id: DialogId,
        watcher: Jid,
        contact: Jid,
    },
    /// A SUBSCRIBE for an XMPP user.
    Subscribe {
        request: Request,
        hop: NextHop,
        pair: Pair,
        kind: SubscribeKind,
    },
    /// A stanza.
    Stanza(Element),
}

impl PresenceSide {
    pub(crate) fn new(
        sip: Arc<SipService>,
        s2s: Arc<S2sService>,
        routes: SharedRouteTable,
        contact: NameAddr,
    ) -> Self {
        Self {
            sip,
            s2s,
            routes,
            contact,
            state: Mutex::new(State {
                table: SubscriptionTable::new(SubscriptionConfig::default()),
                dialogs: Dialogs::default(),
            }),
            wake: Notify::new(),
        }
    }

    fn with_state<T>(&self, f: impl FnOnce(&mut State) -> T) -> T {
        let result = f(&mut self.state.lock().unwrap_or_else(PoisonError::into_inner));
        self.wake.notify_one();
        result
    }

    /// Ends every SIP watcher's subscription with NOTIFY `terminated;reason=deactivated` (RFC 6665 §4.2.2:
    /// the watcher may re-subscribe at once), so that after a restart watchers come back straight away
    /// instead of at their next refresh, up to hours later. Waits at most `grace` for the answers.
    pub(crate) async fn deactivate_watchers(&self, grace: std::time::Duration) {
        let notifies: Vec<(Request, NextHop)> = self.with_state(|state| {
            let terminated = SubscriptionState::Terminated {
                reason: Some(sixgate_presence::subscription::TerminationReason::Deactivated),
                retry_after: None,
            };
            state
                .dialogs
                .notifier
                .drain()
                .filter_map(|(_, mut notifier)| {
                    let request = build_notify(
                        &mut notifier.dialog,
                        &notifier.contact,
                        &terminated,
                        sixgate_presence::subscription::NotifyBody::None,
                    )?;
                    Some((request, notifier.hop))
                })
                .collect()
        });
        if notifies.is_empty() {
            return;
        }
        info!(
            watchers = notifies.len(),
            "ending SIP watchers' subscriptions before shutdown"
        );
        let mut sends = tokio::task::JoinSet::new();
        for (request, hop) in notifies {
            let sip = self.sip.clone();
            sends.spawn(async move { sip.send_request(&hop, request).await });
        }
        let _ = tokio::time::timeout(grace, sends.join_all()).await;
    }

    /// Drives the table's timers until the task is aborted.
    pub(crate) async fn run_timers(self: Arc<Self>) {
        loop {
            let scanned_at = tokio::time::Instant::now();
            let deadline = self
                .state
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .table
                .poll_timeout();
            // `poll_timeout` scans the whole table (2-3 ms at 100,000 subscriptions, docs/benchmarks.md),
            // so a change wakes the task but the next scan waits until RESCAN_INTERVAL after this one: under a
            // flow of presence the scans stay at ten per second, and a new earlier deadline is at most that
            // late, which no presence timer minds.
            match deadline {
                Some(deadline) => {
                    tokio::select! {
                        () = tokio::time::sleep_until(deadline.into()) => {}
                        () = self.wake.notified() => {
                            tokio::time::sleep_until(scanned_at + RESCAN_INTERVAL).await;
                            continue;
                        }
                    }
                }
                None => {
                    self.wake.notified().await;
                    tokio::time::sleep_until(scanned_at + RESCAN_INTERVAL).await;
                    continue;
                }
            }
            let outgoing = self.with_state(|state| {
                let actions = state.table.handle_timeout(Instant::now());
                self.plan(state, actions)
            });
            if !outgoing.is_empty() {
                let side = self.clone();
                tokio::spawn(async move { side.perform(outgoing).await });
            }
        }
    }

    // ===== SIP requests from the edge =====

    /// A SUBSCRIBE from an edge for one of its users (the caller checked the certificate against the
    /// `From` domain, `from_domain`). Answers it, then sends what follows.
    pub(crate) async fn subscribe(
        &self,
        request: Request,
        responder: Responder,
        from_domain: Domain,
    ) {
        let (response, outgoing) = self.subscribe_inner(&request, &responder, from_domain);
        debug!(status = response.status.as_u16(), "SUBSCRIBE answered");
        if let Err(error) = responder.respond(response) {
            debug!(%error, "the response could not be sent");
        }
        self.perform(outgoing).await;
    }

    fn subscribe_inner(
        &self,
        request: &Request,
        responder: &Responder,
        from_domain: Domain,
    ) -> (Response, Vec<Outgoing>) {
        let reply = |code: u16, reason: &str| {
            let status = StatusCode::new(code).unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
            (responder.response(status, reason), Vec::new())
        };
        match request.headers.event() {
            Ok(Some(event)) if event.package.eq_ignore_case(dialog::PRESENCE_PACKAGE) => {}
            Ok(_) => {
                let (mut response, none) = reply(489, "Bad Event");
                let _ = response
                    .headers
                    .set(HeaderName::ALLOW_EVENTS, dialog::PRESENCE_PACKAGE);
                return (response, none);
            }
            Err(_) => return reply(400, "Bad Event header"),
        }
        match request.headers.accept() {
            Ok(None) => {}
            Ok(Some(types))
                if types.iter().any(|t| {
                    t.is("application", "pidf+xml") || t.is("*", "*") || t.is("application", "*")
                }) => {}
            Ok(Some(_)) => {
                let (mut response, none) = reply(406, "Not Acceptable");
                let _ = response.headers.set(HeaderName::ACCEPT, PIDF);
                return (response, none);
            }
            Err(_) => return reply(400, "Bad Accept header"),
        }
        let Ok(requested) = request.headers.expires() else {
            return reply(400, "Bad Expires header");
        };
        let (watcher, contact) = match (
            jid_of(&request.from.uri),
            jid_of(&request.uri),
            uri_domain(&request.uri),
        ) {
            (Some(watcher), Some(contact), Some(target)) => {
                if !matches!(self.routes.route(&target), Route::Xmpp(_)) {
                    return reply(403, "Presence is federated with XMPP domains only");
                }
                (watcher, contact)
            }
            _ => return reply(404, "The address cannot be mapped to XMPP"),
        };
        let Some(edge) = self.edge_of(&from_domain) else {
            return reply(403, "No edge for the sender's domain");
        };
        let now = Instant::now();
        self.with_state(|state| {
            let in_dialog = request.to.tag().is_some();
            let (id, response_dialog) = if in_dialog {
                let Some(id) = DialogId::of_request(request) else {
                    return reply(481, "Subscription does not exist");
                };
                let Some(known) = state.dialogs.notifier.get_mut(&id) else {
                    return reply(481, "Subscription does not exist");
                };
                if let Err(error) = known.dialog.receive(request) {
                    let code = error.response_code();
                    return (known.dialog.response(request, code, ""), Vec::new());
                }
                let _ = known.dialog.refresh_remote_target(&request.headers);
                (id, known.dialog.clone())
            } else {
                let tag = random_token("n");
                match Dialog::as_notifier(request, tag, self.contact.clone(), 1) {
                    Ok(dialog) => (dialog.id().clone(), dialog),
                    Err(error) => {
                        return reply(error.response_code().as_u16(), &error.to_string());
                    }
                }
            };
            let (answer, actions) =
                state
                    .table
                    .sip_subscribe(now, &watcher, &contact, requested, id.clone());
            let response = match answer {
                SubscribeResponse::Accept { expires } => {
                    if !in_dialog {
                        state.dialogs.notifier.insert(
                            id,
                            NotifierDialog {
                                dialog: response_dialog.clone(),
                                hop: edge_hop(&edge, &from_domain),
                                contact: contact.clone(),
                            },
                        );
                    }
                    let mut response =
                        response_dialog.response(request, StatusCode::ACCEPTED, "Accepted");
                    dialog::set_expires(&mut response.headers, expires);
                    response
                }
                SubscribeResponse::IntervalTooBrief { min_expires } => {
                    let status = StatusCode::new(423).unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
                    let mut response =
                        response_dialog.response(request, status, "Interval Too Brief");
                    let _ = response
                        .headers
                        .set(HeaderName::MIN_EXPIRES, min_expires.to_string());
                    response
                }
                SubscribeResponse::Refuse(refusal) => {
                    let status = StatusCode::new(refusal.sip_code())
                        .unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
                    response_dialog.response(request, status, "Subscription refused")
                }
            };
            let outgoing = self.plan(state, actions);
            (response, outgoing)
        })
    }

    /// A NOTIFY from an edge: it must belong to one of our subscriber dialogs (or overtake the 2xx of one
    /// of our SUBSCRIBEs); otherwise 481.
    pub(crate) async fn notify(&self, request: Request, responder: Responder) {
        let (code, outgoing) = self.notify_inner(&request);
        let status = StatusCode::new(code).unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
        let reason = match code {
            200 => "OK",
            481 => "Subscription does not exist",
            _ => "",
        };
        let response = responder.response(status, reason);
        if let Err(error) = responder.respond(response) {
            debug!(%error, "the response could not be sent");
        }
        self.perform(outgoing).await;
    }

    fn notify_inner(&self, request: &Request) -> (u16, Vec<Outgoing>) {
        let Ok(received) = notify_state(request) else {
            return (400, Vec::new());
        };
        let state_value = table_state(&received);
        let body = if request.body.is_empty() {
            None
        } else {
            match parse_pidf(&request.body) {
                Ok(presence) => Some(presence),
                Err(error) => {
                    info!(%error, "NOTIFY with an unusable PIDF body");
                    return (400, Vec::new());
                }
            }
        };
        let now = Instant::now();
        self.with_state(|state| {
            let Some((pair, fetch)) = self.find_subscriber(state, request) else {
                return (481, Vec::new());
            };
            let terminated = matches!(state_value, SubscriptionState::Terminated { .. });
            let (answer, actions) = if fetch {
                state
                    .table
                    .fetch_notify_received(&pair.0, &pair.1, &state_value, body)
            } else {
                state
                    .table
                    .notify_received(now, &pair.0, &pair.1, state_value, body)
            };
            if terminated {
                forget_subscriber(&mut state.dialogs, &pair, fetch);
            }
            let outgoing = self.plan(state, actions);
            let code = match answer {
                NotifyAnswer::Ok => 200,
                NotifyAnswer::NoSubscription => 481,
            };
            (code, outgoing)
        })
    }

    /// The subscription a NOTIFY belongs to, creating the dialog when the NOTIFY overtook the 2xx; `None`
    /// when there is none or the NOTIFY fails the dialog's checks.
    fn find_subscriber(&self, state: &mut State, request: &Request) -> Option<(Pair, bool)> {
        let dialogs = &mut state.dialogs;
        if let Some(id) = DialogId::of_request(request)
            && let Some((pair, fetch)) = dialogs.subscriber_ids.get(&id).cloned()
        {
            let map = if fetch {
                &mut dialogs.fetches
            } else {
                &mut dialogs.subscriptions
            };
            let dialog = map.get_mut(&pair)?.dialog.as_mut()?;
            dialog.receive(request).ok()?;
            let _ = dialog.refresh_remote_target(&request.headers);
            return Some((pair, fetch));
        }
        for fetch in [false, true] {
            let map = if fetch {
                &mut dialogs.fetches
            } else {
                &mut dialogs.subscriptions
            };
            let found = map.iter_mut().find(|(_, sub)| {
                sub.dialog.is_none()
                    && notify_matches_subscribe(&sub.subscribe, request).unwrap_or(false)
            });
            if let Some((pair, sub)) = found {
                let dialog =
                    Dialog::as_subscriber(&sub.subscribe, SubscribeAnswer::Notify(request)).ok()?;
                let pair = pair.clone();
                dialogs
                    .subscriber_ids
                    .insert(dialog.id().clone(), (pair.clone(), fetch));
                sub.dialog = Some(dialog);
                return Some((pair, fetch));
            }
        }
        None
    }

    // ===== XMPP stanzas for local SIP users =====

    /// A `<presence/>` addressed to a user of a local SIP domain.
    pub(crate) async fn stanza(&self, stanza: Element) {
        let (Some(from), Some(to)) = (
            stanza.attr("from").and_then(|a| Jid::parse(a).ok()),
            stanza.attr("to").and_then(|a| Jid::parse(a).ok()),
        ) else {
            return;
        };
        let now = Instant::now();
        let outgoing = self.with_state(|state| {
            let table = &mut state.table;
            let actions = match stanza.attr("type") {
                kind @ (None | Some("unavailable")) => {
                    match contact_presence(&stanza, &from, kind.is_none()) {
                        ContactPresence::Resource(presence) => {
                            table.xmpp_presence(now, &from, &to, presence)
                        }
                        ContactPresence::AllUnavailable(status) => {
                            table.xmpp_contact_unavailable(now, &from, &to, status)
                        }
                        ContactPresence::BareAvailable => {
                            debug!(%from, "available presence from a bare JID ignored: not a resource");
                            Vec::new()
                        }
                    }
                }
                Some("subscribed") => table.xmpp_subscribed(now, &from, &to),
                Some("unsubscribed") => table.xmpp_unsubscribed(&from, &to),
                Some("subscribe") => table.xmpp_subscribe(now, &from, &to),
                Some("unsubscribe") => table.xmpp_unsubscribe(now, &from, &to),
                Some("probe") => table.xmpp_probe(now, &from, &to),
                Some(other) => {
                    debug!(kind = other, "presence stanza not carried to SIP");
                    Vec::new()
                }
            };
            self.plan(state, actions)
        });
        self.perform(outgoing).await;
    }

    // ===== Actions =====

    /// Turns actions into requests and stanzas, updating the dialogs (CSeq, new subscriber entries) while the
    /// lock is held, so that requests of one event are numbered in order.
    fn plan(&self, state: &mut State, actions: Vec<Action<DialogId>>) -> Vec<Outgoing> {
        let mut outgoing = Vec::new();
        for action in actions {
            match action {
                Action::Notify {
                    dialog: id,
                    watcher,
                    contact,
                    state: sub_state,
                    body,
                } => {
                    let terminated = matches!(sub_state, SubscriptionState::Terminated { .. });
                    let Some(known) = state.dialogs.notifier.get_mut(&id) else {
                        debug!("NOTIFY for a dialog that is gone");
                        continue;
                    };
                    let Some(request) = build_notify(&mut known.dialog, &contact, &sub_state, body)
                    else {
                        warn!("no CSeq left in a notifier dialog");
                        continue;
                    };
                    let hop = known.hop.clone();
                    if terminated {
                        state.dialogs.notifier.remove(&id);
                    }
                    outgoing.push(Outgoing::Notify {
                        request,
                        hop,
                        id,
                        watcher,
                        contact,
                    });
                }
                Action::SendUnsubscribed { ref from, ref to } => {
                    forget_subscriber(&mut state.dialogs, &(to.clone(), from.clone()), false);
                    if let Some(stanza) = action_stanza(&action) {
                        outgoing.push(Outgoing::Stanza(stanza));
                    }
                }
                other @ (Action::SendSubscribeStanza { .. }
                | Action::SendProbe { .. }
                | Action::SendUnavailableStanza { .. }
                | Action::SendSubscribed { .. }
                | Action::SendPresence { .. }
                | Action::RefuseSubscribe { .. }) => {
                    if let Some(stanza) = action_stanza(&other) {
                        outgoing.push(Outgoing::Stanza(stanza));
                    }
                }
                Action::SendSubscribe {
                    user,
                    contact,
                    expires,
                    kind,
                } => {
                    if let Some(send) = self.plan_subscribe(state, user, contact, expires, kind) {
                        outgoing.push(send);
                    }
                }
            }
        }
        outgoing
    }

    fn plan_subscribe(
        &self,
        state: &mut State,
        user: Jid,
        contact: Jid,
        expires: u32,
        kind: SubscribeKind,
    ) -> Option<Outgoing> {
        let pair = (user.clone(), contact.clone());
        let dialogs = &mut state.dialogs;
        let in_dialog = matches!(kind, SubscribeKind::Refresh | SubscribeKind::Unsubscribe);
        let existing = dialogs
            .subscriptions
            .get_mut(&pair)
            .filter(|_| in_dialog)
            .and_then(|sub| Some((sub.dialog.as_mut()?, sub.hop.clone())));
        let (mut request, hop) = match existing {
            Some((dialog, hop)) => (dialog.request(Method::Subscribe).ok()?, hop),
            None => {
                let local = contact.domain().clone();
                let edge = self.edge_of(&local)?;
                let hop = edge_hop(&edge, &local);
                let to = sip_uri_of(&contact)?;
                let mut from = NameAddr::new(sip_uri_of(&user)?);
                let tag = random_token("s");
                from.params.set("tag", Some(tag.as_str())).ok()?;
                let call_id =
                    CallId::parse(&format!("{}@{}", random_token("p").as_str(), local)).ok()?;
                let mut request = Request::new(
                    Method::Subscribe,
                    to.clone(),
                    from,
                    NameAddr::new(to),
                    call_id,
                    1,
                );
                request
                    .headers
                    .push(HeaderName::CONTACT, self.contact.to_string())
                    .ok()?;
                let fetch = kind == SubscribeKind::Fetch;
                // A new dialog replaces whatever the pair had.
                forget_subscriber(dialogs, &pair, fetch);
                (request, hop)
            }
        };
        dialog::set_presence_event(&mut request.headers, None);
        dialog::set_expires(&mut request.headers, expires);
        let _ = request.headers.set(HeaderName::ACCEPT, PIDF);
        if !in_dialog
            || dialogs
                .subscriptions
                .get(&pair)
                .is_none_or(|s| s.dialog.is_none())
        {
            let entry = Subscriber {
                subscribe: request.clone(),
                dialog: None,
                hop: hop.clone(),
            };
            if kind == SubscribeKind::Fetch {
                dialogs.fetches.insert(pair.clone(), entry);
            } else {
                dialogs.subscriptions.insert(pair.clone(), entry);
            }
        }
        Some(Outgoing::Subscribe {
            request,
            hop,
            pair,
            kind,
        })
    }

    /// Sends what `plan` prepared, in order, and feeds the outcomes back into the table.
    async fn perform(&self, outgoing: Vec<Outgoing>) {
        for item in outgoing {
            match item {
                Outgoing::Stanza(stanza) => self.s2s.send(stanza).await,
                Outgoing::Notify {
                    request,
                    hop,
                    id,
                    watcher,
                    contact,
                } => {
                    let gone = match self.sip.send_request(&hop, request).await {
                        Ok(response) => {
                            matches!(response.status.as_u16(), 408 | 481)
                        }
                        Err(error) => {
                            debug!(%error, "NOTIFY not answered");
                            true
                        }
                    };
                    if gone {
                        let more = self.with_state(|state| {
                            state.dialogs.notifier.remove(&id);
                            let actions = state.table.sip_dialog_gone(&watcher, &contact, &id);
                            self.plan(state, actions)
                        });
                        Box::pin(self.perform(more)).await;
                    }
                }
                Outgoing::Subscribe {
                    request,
                    hop,
                    pair,
                    kind,
                } => {
                    let sent = request.clone();
                    let (code, response) = match self.sip.send_request(&hop, request).await {
                        Ok(response) => (response.status.as_u16(), Some(response)),
                        Err(SendError::Timeout) => (408, None),
                        Err(error) => {
                            info!(%error, "SUBSCRIBE could not be sent");
                            (503, None)
                        }
                    };
                    let more = self.with_state(|state| {
                        subscribe_answered(state, &pair, kind, &sent, code, response.as_ref())
                    });
                    let more = self.with_state(|state| self.plan(state, more));
                    Box::pin(self.perform(more)).await;
                }
            }
        }
    }

    fn edge_of(&self, local: &Domain) -> Option<SipHop> {
        match self.routes.route(local) {
            Route::Local(LocalDelivery::Sip(edge)) => Some(edge),
            _ => None,
        }
    }
}

/// The final response (or its absence, as `code` 408/503) to a SUBSCRIBE we sent.
fn subscribe_answered(
    state: &mut State,
    pair: &Pair,
    kind: SubscribeKind,
    sent: &Request,
    code: u16,
    response: Option<&Response>,
) -> Vec<Action<DialogId>> {
    let now = Instant::now();
    let fetch = kind == SubscribeKind::Fetch;
    let dialogs = &mut state.dialogs;
    let map = if fetch {
        &mut dialogs.fetches
    } else {
        &mut dialogs.subscriptions
    };
    if let Some(sub) = map.get_mut(pair)
        && sub.subscribe.call_id == sent.call_id
        && let Some(response) = response.filter(|r| r.status.is_success())
    {
        match &mut sub.dialog {
            Some(dialog) => {
                let _ = dialog.refresh_remote_target(&response.headers);
            }
            None => {
                if let Ok(dialog) = Dialog::as_subscriber(sent, SubscribeAnswer::Response(response))
                {
                    dialogs
                        .subscriber_ids
                        .insert(dialog.id().clone(), (pair.clone(), fetch));
                    sub.dialog = Some(dialog);
                }
            }
        }
    }
    let success = (200..300).contains(&code);
    if !success || kind == SubscribeKind::Unsubscribe {
        // Our side of that dialog is over (a failed SUBSCRIBE, or the end of an unsubscribe).
        if map_call_id(dialogs, pair, fetch).as_ref() == Some(&sent.call_id) {
            forget_subscriber(dialogs, pair, fetch);
        }
    }
    if fetch {
        state.table.fetch_response(&pair.0, &pair.1, code);
        return Vec::new();
    }
    let granted = response.and_then(|r| r.headers.expires().ok().flatten());
    let min_expires = response.and_then(|r| r.headers.min_expires().ok().flatten());
    state
        .table
        .subscribe_response(now, &pair.0, &pair.1, code, granted, min_expires)
}

fn map_call_id(dialogs: &Dialogs, pair: &Pair, fetch: bool) -> Option<CallId> {
    let map = if fetch {
        &dialogs.fetches
    } else {
        &dialogs.subscriptions
    };
    map.get(pair).map(|sub| sub.subscribe.call_id.clone())
}

fn forget_subscriber(dialogs: &mut Dialogs, pair: &Pair, fetch: bool) {
    let map = if fetch {
        &mut dialogs.fetches
    } else {
        &mut dialogs.subscriptions
    };
    if let Some(sub) = map.remove(pair)
        && let Some(dialog) = sub.dialog
    {
        dialogs.subscriber_ids.remove(dialog.id());
    }
}

fn jid_of(uri: &Uri) -> Option<Jid> {
    sip_to_jid(&SipUri::parse(uri.as_str()).ok()?).ok()
}

fn sip_uri_of(jid: &Jid) -> Option<Uri> {
    Uri::parse(&jid_to_sip(&jid.to_bare()).ok()?.to_string()).ok()
}

#[cfg(test)]
mod tests {
    use sixgate_presence::subscription::{NotifyBody, TerminationReason};
    use sixgate_presence::{Presence, ResourcePresence, Show, Status};
    use sixgate_sip::dialog::notify_state;
    use sixgate_sip::message::{SubState, Token};
    use sixgate_xmpp_proto::xml::ns;

    use crate::presence_wire::presence_stanza;

    use super::*;

    fn jid(s: &str) -> Jid {
        Jid::parse(s).expect("test JID")
    }

    fn stanza(from: &str, kind: Option<&str>) -> Element {
        let mut stanza = presence_stanza(&jid(from), &jid("alice@corp.example"), kind);
        stanza.set_attr_ns(ns::XML, "lang", "en");
        stanza
    }

    fn child(name: &str, text: &str) -> Element {
        Element::new(ns::SERVER, name).with_text(text)
    }

    // ----- stanza → ResourcePresence -----

    #[test]
    fn available_with_show_status_and_priority() {
        let mut status = child("status", "In a meeting");
        status.set_attr_ns(ns::XML, "lang", "de");
        let stanza = stanza("bob@prosody.example/pc", None)
            .with_child(child("show", " dnd "))
            .with_child(status)
            .with_child(child("priority", "-5"));
        let presence = contact_presence(&stanza, &jid("bob@prosody.example/pc"), true);
        assert_eq!(
            presence,
            ContactPresence::Resource(ResourcePresence {
                resource: "pc".to_owned(),
                available: true,
                show: Some(Show::Dnd),
                status: Some(Status::with_lang("In a meeting", "de")),
                priority: -5,
            })
        );
    }

    #[test]
    fn available_defaults_and_stanza_lang() {
        let stanza = stanza("bob@prosody.example/pc", None)
            .with_child(child("show", "bogus"))
            .with_child(child("status", "here"))
            .with_child(child("priority", "1000"));
        let ContactPresence::Resource(presence) =
            contact_presence(&stanza, &jid("bob@prosody.example/pc"), true)
        else {
            panic!("not a resource");
        };
        assert!(presence.available);
        assert_eq!(presence.show, None);
        // The status inherits the stanza's xml:lang; an out-of-range priority counts as 0.
        assert_eq!(presence.status, Some(Status::with_lang("here", "en")));
        assert_eq!(presence.priority, 0);
    }

    #[test]
    fn unavailable_from_a_resource() {
        let stanza = stanza("bob@prosody.example/pc", Some("unavailable"))
            .with_child(child("show", "away"))
            .with_child(child("status", "bye"));
        let mut expected = ResourcePresence::unavailable("pc");
        expected.status = Some(Status::with_lang("bye", "en"));
        assert_eq!(
            contact_presence(&stanza, &jid("bob@prosody.example/pc"), false),
            ContactPresence::Resource(expected)
        );
    }

    #[test]
    fn bare_jid_presence_is_not_a_resource() {
        let bare = jid("bob@prosody.example");
        let unavailable = stanza("bob@prosody.example", Some("unavailable"))
            .with_child(child("status", "logged out"));
        assert_eq!(
            contact_presence(&unavailable, &bare, false),
            ContactPresence::AllUnavailable(Some(Status::with_lang("logged out", "en")))
        );
        assert_eq!(
            contact_presence(
                &stanza("bob@prosody.example", Some("unavailable")),
                &bare,
                false
            ),
            ContactPresence::AllUnavailable(None)
        );
        assert_eq!(
            contact_presence(&stanza("bob@prosody.example", None), &bare, true),
            ContactPresence::BareAvailable
        );
    }

    // ----- actions → stanzas -----

    #[test]
    fn simple_actions_become_typed_presence() {
        let (a, b) = (jid("alice@corp.example"), jid("bob@prosody.example"));
        for (action, kind) in [
            (
                Action::<DialogId>::SendSubscribeStanza {
                    from: a.clone(),
                    to: b.clone(),
                },
                "subscribe",
            ),
            (
                Action::SendProbe {
                    from: a.clone(),
                    to: b.clone(),
                },
                "probe",
            ),
            (
                Action::SendUnavailableStanza {
                    from: a.clone(),
                    to: b.clone(),
                },
                "unavailable",
            ),
            (
                Action::SendSubscribed {
                    from: a.clone(),
                    to: b.clone(),
                },
                "subscribed",
            ),
            (
                Action::SendUnsubscribed {
                    from: a.clone(),
                    to: b.clone(),
                },
                "unsubscribed",
            ),
        ] {
            let stanza = action_stanza(&action).expect("a stanza");
            assert_eq!(stanza.name(), "presence");
            assert_eq!(stanza.attr("type"), Some(kind));
            assert_eq!(stanza.attr("from"), Some("alice@corp.example"));
            assert_eq!(stanza.attr("to"), Some("bob@prosody.example"));
            assert_eq!(stanza.children().count(), 0);
        }
    }

    #[test]
    fn send_presence_carries_show_status_priority() {
        let presence = ResourcePresence {
            resource: "desk".to_owned(),
            available: true,
            show: Some(Show::Away),
            status: Some(Status::with_lang("Out for lunch", "en")),
            priority: 3,
        };
        let action = Action::<DialogId>::SendPresence {
            from: jid("alice@corp.example/desk"),
            to: jid("bob@prosody.example"),
            presence,
        };
        let stanza = action_stanza(&action).expect("a stanza");
        assert_eq!(stanza.attr("type"), None);
        assert_eq!(stanza.attr("from"), Some("alice@corp.example/desk"));
        assert_eq!(
            stanza.child(ns::SERVER, "show").map(Element::text),
            Some("away".to_owned())
        );
        let status = stanza.child(ns::SERVER, "status").expect("status");
        assert_eq!(status.text(), "Out for lunch");
        assert_eq!(status.attr_ns(ns::XML, "lang"), Some("en"));
        assert_eq!(
            stanza.child(ns::SERVER, "priority").map(Element::text),
            Some("3".to_owned())
        );

        // Unavailable: the type, the status, no show and no priority.
        let mut gone = ResourcePresence::unavailable("desk");
        gone.show = Some(Show::Away);
        gone.priority = 3;
        gone.status = Some(Status::new("bye"));
        let stanza = action_stanza(&Action::<DialogId>::SendPresence {
            from: jid("alice@corp.example/desk"),
            to: jid("bob@prosody.example"),
            presence: gone,
        })
        .expect("a stanza");
        assert_eq!(stanza.attr("type"), Some("unavailable"));
        assert!(stanza.child(ns::SERVER, "show").is_none());
        assert!(stanza.child(ns::SERVER, "priority").is_none());
        assert_eq!(
            stanza.child(ns::SERVER, "status").map(Element::text),
            Some("bye".to_owned())
        );
    }

    #[test]
    fn refuse_subscribe_is_a_wait_resource_constraint_error() {
        let action = Action::<DialogId>::RefuseSubscribe {
            user: jid("bob@prosody.example"),
            contact: jid("alice@corp.example"),
            refusal: sixgate_presence::subscription::Refusal::LocalUserCap,
        };
        let stanza = action_stanza(&action).expect("a stanza");
        assert_eq!(stanza.attr("type"), Some("error"));
        assert_eq!(stanza.attr("from"), Some("alice@corp.example"));
        assert_eq!(stanza.attr("to"), Some("bob@prosody.example"));
        let error = stanza.child(ns::SERVER, "error").expect("error");
        assert_eq!(error.attr("type"), Some("wait"));
        assert!(
            error
                .child(ns::STANZA_ERRORS, "resource-constraint")
                .is_some()
        );
    }

    #[test]
    fn sip_actions_are_not_stanzas() {
        let action = Action::<u32>::SendSubscribe {
            user: jid("bob@prosody.example"),
            contact: jid("alice@corp.example"),
            expires: 3600,
            kind: SubscribeKind::Initial,
        };
        assert!(action_stanza(&action).is_none());
    }

    // ----- NOTIFY building -----

    fn notifier_dialog() -> Dialog {
        let to = Uri::parse("sip:bob@prosody.example").expect("uri");
        let mut from = NameAddr::new(Uri::parse("sip:alice@corp.example").expect("uri"));
        from.params.set("tag", Some("watcher-1")).expect("tag");
        let mut subscribe = Request::new(
            Method::Subscribe,
            to.clone(),
            from,
            NameAddr::new(to),
            CallId::parse("unit-1@edge.corp.example").expect("call-id"),
            1,
        );
        subscribe
            .headers
            .push(
                HeaderName::CONTACT,
                "<sip:alice@127.0.0.20:5061;transport=tls>",
            )
            .expect("contact");
        dialog::set_presence_event(&mut subscribe.headers, None);
        let contact = NameAddr::new(Uri::parse("sip:127.0.0.10:5061;transport=tls").expect("uri"));
        Dialog::as_notifier(&subscribe, Token::new("n-1").expect("tag"), contact, 1)
            .expect("dialog")
    }

    #[test]
    fn notify_active_with_pidf_that_parses_back() {
        let mut dialog = notifier_dialog();
        let contact = jid("bob@prosody.example");
        let mut pc = ResourcePresence::available("pc");
        pc.show = Some(Show::Dnd);
        pc.status = Some(Status::new("In a meeting"));
        let presence = Presence {
            resources: vec![pc.clone(), ResourcePresence::unavailable("phone")],
        };
        let request = build_notify(
            &mut dialog,
            &contact,
            &SubscriptionState::Active { expires: 600 },
            NotifyBody::Presence(presence),
        )
        .expect("a NOTIFY");
        assert_eq!(request.method, Method::Notify);
        assert_eq!(request.headers.get(&HeaderName::EVENT), Some("presence"));
        assert_eq!(request.headers.get(&HeaderName::CONTENT_TYPE), Some(PIDF));
        let state = notify_state(&request).expect("Subscription-State");
        assert_eq!(state.state, SubState::Active);
        assert_eq!(state.expires(), Some(600));
        let parsed = parse_pidf(&request.body).expect("PIDF");
        let parsed_pc = parsed
            .resources
            .iter()
            .find(|r| r.resource == "pc")
            .expect("pc");
        assert!(parsed_pc.available);
        assert_eq!(parsed_pc.show, Some(Show::Dnd));
        assert_eq!(
            parsed_pc.status.as_ref().map(|s| s.text.as_str()),
            Some("In a meeting")
        );
        assert!(
            parsed
                .resources
                .iter()
                .any(|r| r.resource == "phone" && !r.available)
        );
        let body = String::from_utf8_lossy(&request.body).replace('\'', "\"");
        assert!(
            body.contains("entity=\"sip:bob@prosody.example\""),
            "{body}"
        );
        // The CSeq moves on in the dialog.
        let next = build_notify(
            &mut dialog,
            &contact,
            &SubscriptionState::Pending { expires: 10 },
            NotifyBody::None,
        )
        .expect("a NOTIFY");
        assert_eq!(next.cseq.number, request.cseq.number + 1);
    }

    #[test]
    fn notify_pending_and_terminated_without_body() {
        let mut dialog = notifier_dialog();
        let contact = jid("bob@prosody.example");
        let request = build_notify(
            &mut dialog,
            &contact,
            &SubscriptionState::Pending { expires: 3600 },
            NotifyBody::None,
        )
        .expect("a NOTIFY");
        assert!(request.body.is_empty());
        assert_eq!(request.headers.get(&HeaderName::CONTENT_TYPE), None);
        assert_eq!(
            notify_state(&request).expect("state").state,
            SubState::Pending
        );

        let request = build_notify(
            &mut dialog,
            &contact,
            &SubscriptionState::Terminated {
                reason: Some(TerminationReason::Rejected),
                retry_after: None,
            },
            NotifyBody::None,
        )
        .expect("a NOTIFY");
        let state = notify_state(&request).expect("state");
        assert_eq!(state.state, SubState::Terminated);
        assert_eq!(state.reason(), Some("rejected"));
        assert!(request.body.is_empty());
    }

    #[test]
    fn notify_closed_body_is_one_closed_tuple() {
        let mut dialog = notifier_dialog();
        let request = build_notify(
            &mut dialog,
            &jid("bob@prosody.example"),
            &SubscriptionState::Terminated {
                reason: Some(TerminationReason::Timeout),
                retry_after: None,
            },
            NotifyBody::Closed,
        )
        .expect("a NOTIFY");
        assert_eq!(request.headers.get(&HeaderName::CONTENT_TYPE), Some(PIDF));
        let parsed = parse_pidf(&request.body).expect("PIDF");
        assert_eq!(parsed.resources.len(), 1);
        assert!(!parsed.resources[0].available);
    }
}
