//! The pure translations of presence federation: table states and actions to SIP headers, NOTIFYs and
//! `<presence/>` stanzas, and contacts' stanzas to the table's terms (docs/presence.md §7). Public so that
//! the presence benchmark (`examples/presence_bench.rs`) measures this code rather than a copy of it.

use sixgate_core::Jid;
use sixgate_presence::subscription::{NotifyBody, TerminationReason};
use sixgate_presence::{
    Action, EntityScheme, PidfEntity, Presence, ResourcePresence, Show, Status, SubscriptionState,
    to_pidf,
};
use sixgate_sip::Request;
use sixgate_sip::dialog::{self, Dialog, SubscriptionStatus};
use sixgate_sip::message::{HeaderName, Method, SubState, Token};
use sixgate_xmpp_proto::xml::{Element, ns};

/// The PIDF media type (RFC 3863).
pub const PIDF: &str = "application/pidf+xml";

/// The table's state → the header we send.
pub fn sip_status(state: &SubscriptionState) -> SubscriptionStatus {
    match state {
        SubscriptionState::Pending { expires } => SubscriptionStatus::Pending { expires: *expires },
        SubscriptionState::Active { expires } => SubscriptionStatus::Active { expires: *expires },
        SubscriptionState::Terminated {
            reason,
            retry_after,
        } => SubscriptionStatus::Terminated {
            reason: reason.as_ref().map(sip_reason),
            retry_after: *retry_after,
        },
    }
}

/// The table's termination reason → the `Subscription-State` reason (RFC 6665 §4.2.2).
pub fn sip_reason(reason: &TerminationReason) -> dialog::TerminationReason {
    use dialog::TerminationReason as R;
    match reason {
        TerminationReason::Deactivated => R::Deactivated,
        TerminationReason::Probation => R::Probation,
        TerminationReason::Rejected => R::Rejected,
        TerminationReason::Timeout => R::Timeout,
        TerminationReason::Giveup => R::Giveup,
        TerminationReason::Noresource => R::Noresource,
        TerminationReason::Invariant => R::Invariant,
        TerminationReason::Other(text) => match Token::new(text) {
            Ok(token) => R::Other(token),
            Err(_) => R::Deactivated,
        },
    }
}

/// The header received → the table's state (RFC 6665 §4.1.3: extension states count as active).
pub fn table_state(received: &sixgate_sip::message::SubscriptionState) -> SubscriptionState {
    let expires = received.expires().unwrap_or(0);
    match received.state {
        SubState::Pending => SubscriptionState::Pending { expires },
        SubState::Active | SubState::Extension(_) => SubscriptionState::Active { expires },
        SubState::Terminated => SubscriptionState::Terminated {
            reason: received.reason().map(TerminationReason::from_token),
            retry_after: received.retry_after(),
        },
    }
}

/// The next NOTIFY in a notifier dialog: `Event: presence`, `Subscription-State` from the table's state and,
/// with a body, `Content-Type: application/pidf+xml` and the PIDF of `contact` (entity `sip:`). `None` when
/// the dialog has no CSeq left.
pub fn build_notify(
    dialog: &mut Dialog,
    contact: &Jid,
    state: &SubscriptionState,
    body: NotifyBody,
) -> Option<Request> {
    let mut request = dialog.request(Method::Notify).ok()?;
    dialog::set_presence_event(&mut request.headers, None);
    dialog::set_subscription_state(&mut request.headers, &sip_status(state));
    if let Some(pidf) = render_body(contact, body) {
        let _ = request.headers.set(HeaderName::CONTENT_TYPE, PIDF);
        request.body = pidf.into_bytes();
    }
    Some(request)
}

/// The stanza an action sends to XMPP; `None` for the SIP actions (`Notify`, `SendSubscribe`).
pub fn action_stanza<D>(action: &Action<D>) -> Option<Element> {
    let stanza = match action {
        Action::SendSubscribeStanza { from, to } => presence_stanza(from, to, Some("subscribe")),
        Action::SendProbe { from, to } => presence_stanza(from, to, Some("probe")),
        Action::SendUnavailableStanza { from, to } => {
            presence_stanza(from, to, Some("unavailable"))
        }
        Action::SendSubscribed { from, to } => presence_stanza(from, to, Some("subscribed")),
        Action::SendUnsubscribed { from, to } => presence_stanza(from, to, Some("unsubscribed")),
        Action::SendPresence { from, to, presence } => available_stanza(from, to, presence),
        Action::RefuseSubscribe { user, contact, .. } => {
            presence_stanza(contact, user, Some("error")).with_child(
                Element::new(ns::SERVER, "error")
                    .with_attr("type", "wait")
                    .with_child(Element::new(ns::STANZA_ERRORS, "resource-constraint")),
            )
        }
        Action::Notify { .. } | Action::SendSubscribe { .. } => return None,
    };
    Some(stanza)
}

/// The PIDF document a NOTIFY carries for `body` (entity `sip:` + the contact); `None` for no body.
pub fn render_body(contact: &Jid, body: NotifyBody) -> Option<String> {
    let presence = match body {
        NotifyBody::None => return None,
        NotifyBody::Closed => Presence {
            resources: vec![ResourcePresence::unavailable("")],
        },
        NotifyBody::Presence(presence) => presence,
    };
    let entity = PidfEntity::new(contact, EntityScheme::Sip).ok()?;
    Some(to_pidf(&presence, &entity))
}

/// What an available or unavailable `<presence/>` from an XMPP contact says (docs/presence.md §7).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ContactPresence {
    /// From a full JID: the state of that resource.
    Resource(ResourcePresence),
    /// `unavailable` from the bare JID: every resource of the contact is unavailable (with the status).
    AllUnavailable(Option<Status>),
    /// Available from the bare JID: not a resource of its own; ignored.
    BareAvailable,
}

/// A `<presence/>` without `type` (`available`) or with `type='unavailable'` from `from`.
pub fn contact_presence(stanza: &Element, from: &Jid, available: bool) -> ContactPresence {
    let Some(resource) = from.resource().filter(|r| !r.is_empty()) else {
        return if available {
            ContactPresence::BareAvailable
        } else {
            ContactPresence::AllUnavailable(status_of(stanza))
        };
    };
    let resource = resource.to_owned();
    if !available {
        let mut presence = ResourcePresence::unavailable(resource);
        presence.status = status_of(stanza);
        return ContactPresence::Resource(presence);
    }
    ContactPresence::Resource(ResourcePresence {
        resource,
        available: true,
        show: stanza
            .child(ns::SERVER, "show")
            .and_then(|show| Show::from_token(show.text().trim())),
        status: status_of(stanza),
        priority: stanza
            .child(ns::SERVER, "priority")
            .and_then(|p| p.text().trim().parse::<i8>().ok())
            .unwrap_or(0),
    })
}

/// The `<status/>` of a presence stanza, with its `xml:lang` or the stanza's.
pub fn status_of(stanza: &Element) -> Option<Status> {
    let status = stanza.child(ns::SERVER, "status")?;
    Some(Status {
        text: status.text(),
        lang: status
            .attr_ns(ns::XML, "lang")
            .or_else(|| stanza.attr_ns(ns::XML, "lang"))
            .map(str::to_owned),
    })
}

/// A `<presence/>` of `kind` (`None`: available) from `from` to `to`.
pub fn presence_stanza(from: &Jid, to: &Jid, kind: Option<&str>) -> Element {
    let mut stanza = Element::new(ns::SERVER, "presence")
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string());
    if let Some(kind) = kind {
        stanza.set_attr("type", kind);
    }
    stanza
}

/// The `<presence/>` that carries one resource's state (show, status, priority; unavailable when it is).
pub fn available_stanza(from: &Jid, to: &Jid, presence: &ResourcePresence) -> Element {
    let mut stanza = presence_stanza(from, to, (!presence.available).then_some("unavailable"));
    if presence.available
        && let Some(show) = presence.show
    {
        stanza.push_child(Element::new(ns::SERVER, "show").with_text(show.as_str()));
    }
    if let Some(status) = &presence.status {
        let mut element = Element::new(ns::SERVER, "status").with_text(status.text.clone());
        if let Some(lang) = &status.lang {
            element.set_attr_ns(ns::XML, "lang", lang.clone());
        }
        stanza.push_child(element);
    }
    if presence.available && presence.priority != 0 {
        stanza.push_child(
            Element::new(ns::SERVER, "priority").with_text(presence.priority.to_string()),
        );
    }
    stanza
}
