//! RFC 3261 §12 dialogs as SUBSCRIBE creates them (RFC 6665 §4), for presence federation (RFC 8048).
//!
//! The gateway is a notifier when a SIP watcher subscribes to an XMPP user ([`Dialog::as_notifier`]),
//! and a subscriber when it subscribes to a SIP user for an XMPP user ([`Dialog::as_subscriber`]). Either
//! way the dialog is only bookkeeping: it builds the in-dialog requests ([`Dialog::request`]), checks the
//! ones received ([`Dialog::receive`]), and holds nothing that needs a clock. Subscription expiry lives
//! with the caller, which knows the time.
//!
//! # Decisions
//!
//! - **Strict routing is implemented, not refused** (§12.2.1.1). It costs a few lines, and a refusal
//!   would surface only after the dialog exists (a 2xx already sent or received), leaving the caller
//!   nothing better to do than tear the subscription down.
//! - **The route set of a subscriber dialog created by a NOTIFY is in received order.** For that NOTIFY
//!   the gateway is the UAS, so §12.1.1 applies rather than the reversal of §12.1.2 (RFC 6665
//!   §4.1.2.4 refers to the UAS rules for exactly this case).
//! - **A missing `From` tag is refused.** RFC 3261 §12.2.2 keeps tag-less RFC 2543 peers working, but
//!   a dialog identified by an empty tag would match any tag-less request on the same Call-ID, and every
//!   SIP implementation the gateway federates with sends tags.
//! - **Target refresh is the caller's call** ([`Dialog::refresh_remote_target`]): §12.2.2 refreshes the
//!   target only once the request is accepted, which this module cannot know.

use std::fmt;

use thiserror::Error;

use crate::message::{
    CSeq, CallId, HeaderError, HeaderName, Headers, Method, NameAddr, Request, Response,
    StatusCode, SubscriptionState, Token, Uri,
};
use crate::stateless::response_for;

#[cfg(test)]
mod tests;

/// The `Event` package of presence (RFC 3856 §6.2).
pub const PRESENCE_PACKAGE: &str = "presence";

/// Why a dialog could not be created, or a request not accepted into one.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum DialogError {
    /// A header the dialog is built from is malformed.
    #[error(transparent)]
    Header(#[from] HeaderError),
    /// `From` (or, for a response or NOTIFY creating a subscriber dialog, the peer's side) has no tag,
    /// or one that is not a token.
    #[error("missing or invalid tag")]
    MissingTag,
    /// The request or response has no `Contact`, or more than one; a dialog needs exactly one remote
    /// target (RFC 3261 §12.1.1, RFC 6665 §4.1.1, §4.2.1.1).
    #[error("expected exactly one Contact")]
    Contact,
    /// The SUBSCRIBE already has a `To` tag: it belongs to an existing dialog and cannot create one.
    #[error("request is already inside a dialog")]
    AlreadyInDialog,
    /// The response or NOTIFY does not answer our SUBSCRIBE (Call-ID, tag or `Event` differ).
    #[error("message does not belong to this subscription")]
    NotOurs,
    /// The request carries another dialog's Call-ID or tags (RFC 3261 §12.2.2).
    #[error("request does not belong to this dialog")]
    NotThisDialog,
    /// The request's CSeq is not above the last one received: answer 500 (RFC 3261 §12.2.2).
    #[error("CSeq {received} is not above {last}")]
    OutOfOrder {
        /// The CSeq number received.
        received: u32,
        /// The last CSeq number accepted in the dialog.
        last: u32,
    },
    /// The local CSeq reached 2³¹−1, so no further request can be sent in this dialog.
    #[error("local CSeq exhausted")]
    CSeqExhausted,
    /// A NOTIFY without `Subscription-State`, which RFC 6665 §8.2.3 requires: answer 400.
    #[error("NOTIFY without Subscription-State")]
    MissingSubscriptionState,
}

impl DialogError {
    /// The status code to answer a received request with that failed this way.
    pub fn response_code(&self) -> StatusCode {
        match self {
            Self::OutOfOrder { .. } | Self::CSeqExhausted => StatusCode::SERVER_INTERNAL_ERROR,
            Self::NotThisDialog | Self::NotOurs => StatusCode::CALL_OR_TRANSACTION_DOES_NOT_EXIST,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

/// What identifies a dialog (RFC 3261 §12): Call-ID, local tag and remote tag, as seen from our side.
/// Tags compare case-sensitively, which is stricter than §19.3 asks but matches what peers echo back.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DialogId {
    /// `Call-ID`.
    pub call_id: CallId,
    /// Our tag.
    pub local_tag: Token,
    /// The peer's tag.
    pub remote_tag: Token,
}

impl DialogId {
    /// The id of the dialog a received request claims to be in: `To` tag is ours, `From` tag the
    /// peer's. `None` when either tag is missing, so the request is outside any dialog.
    pub fn of_request(request: &Request) -> Option<Self> {
        Some(Self {
            call_id: request.call_id.clone(),
            local_tag: tag_of(&request.to).ok()?,
            remote_tag: tag_of(&request.from).ok()?,
        })
    }

    /// The id of the dialog a response to one of our requests belongs to: `From` tag is ours, `To` tag
    /// the peer's.
    pub fn of_response(response: &Response) -> Option<Self> {
        Some(Self {
            call_id: response.call_id.clone(),
            local_tag: tag_of(&response.from).ok()?,
            remote_tag: tag_of(&response.to).ok()?,
        })
    }
}

/// What created a subscriber dialog: the 2xx to our SUBSCRIBE, or a NOTIFY that overtook it.
#[derive(Debug, Clone, Copy)]
pub enum SubscribeAnswer<'a> {
    /// A 2xx response to our SUBSCRIBE.
    Response(&'a Response),
    /// A NOTIFY for our SUBSCRIBE that arrived before its 2xx (RFC 6665 §4.1.2.4).
    Notify(&'a Request),
}

/// One SIP dialog created by SUBSCRIBE (RFC 3261 §12.1, RFC 6665 §4).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dialog {
    id: DialogId,
    local_uri: NameAddr,
    remote_uri: NameAddr,
    remote_target: Uri,
    route_set: Vec<NameAddr>,
    /// CSeq of the next request we send; `None` once 2³¹−1 has been used.
    next_cseq: Option<u32>,
    remote_cseq: Option<u32>,
    our_contact: NameAddr,
}

impl Dialog {
    /// The dialog of a SUBSCRIBE we accept (the UAS side, §12.1.1). `our_tag` goes into the `To` of our
    /// 2xx ([`Dialog::response`] puts it there), `our_contact` into its `Contact` and into every request
    /// we send; our first NOTIFY carries `our_first_cseq`.
    pub fn as_notifier(
        subscribe: &Request,
        our_tag: Token,
        our_contact: NameAddr,
        our_first_cseq: u32,
    ) -> Result<Self, DialogError> {
        if subscribe.to.tag().is_some() {
            return Err(DialogError::AlreadyInDialog);
        }
        Ok(Self {
            id: DialogId {
                call_id: subscribe.call_id.clone(),
                local_tag: our_tag,
                remote_tag: tag_of(&subscribe.from)?,
            },
            local_uri: without_tag(&subscribe.to),
            remote_uri: without_tag(&subscribe.from),
            remote_target: single_contact(&subscribe.headers)?,
            route_set: subscribe.headers.record_route()?,
            next_cseq: (our_first_cseq <= CSeq::MAX).then_some(our_first_cseq),
            remote_cseq: Some(subscribe.cseq.number),
            our_contact,
        })
    }

    /// The dialog of a SUBSCRIBE we sent, created by its 2xx (the UAC side, §12.1.2: route set from the
    /// response's `Record-Route`, reversed) or by a NOTIFY that arrived first (we are that NOTIFY's UAS,
    /// so its `Record-Route` is taken in order and its CSeq becomes the remote CSeq). Our `Contact` and
    /// the local CSeq come from `our_subscribe`.
    pub fn as_subscriber(
        our_subscribe: &Request,
        answer: SubscribeAnswer<'_>,
    ) -> Result<Self, DialogError> {
        let our_contact = single_contact_addr(&our_subscribe.headers)?;
        let local_tag = tag_of(&our_subscribe.from)?;
        let (remote, headers, route_set, remote_cseq) = match answer {
            SubscribeAnswer::Response(response) => {
                let ours = response.call_id == our_subscribe.call_id
                    && response.from.tag() == Some(local_tag.as_str())
                    && response.cseq == our_subscribe.cseq
                    && response.status.is_success();
                if !ours {
                    return Err(DialogError::NotOurs);
                }
                let mut route_set = response.headers.record_route()?;
                route_set.reverse();
                (&response.to, &response.headers, route_set, None)
            }
            SubscribeAnswer::Notify(notify) => {
                if !notify_matches_subscribe(our_subscribe, notify)? {
                    return Err(DialogError::NotOurs);
                }
                let route_set = notify.headers.record_route()?;
                (
                    &notify.from,
                    &notify.headers,
                    route_set,
                    Some(notify.cseq.number),
                )
            }
        };
        let remote_target = single_contact(headers)?;
        Ok(Self {
            id: DialogId {
                call_id: our_subscribe.call_id.clone(),
                local_tag,
                remote_tag: tag_of(remote)?,
            },
            local_uri: without_tag(&our_subscribe.from),
            remote_uri: without_tag(&our_subscribe.to),
            remote_target,
            route_set,
            next_cseq: our_subscribe
                .cseq
                .number
                .checked_add(1)
                .filter(|n| *n <= CSeq::MAX),
            remote_cseq,
            our_contact,
        })
    }

    /// The dialog's id, for tables of dialogs.
    pub fn id(&self) -> &DialogId {
        &self.id
    }

    /// Our address (`From` of our requests), without tag.
    pub fn local_uri(&self) -> &NameAddr {
        &self.local_uri
    }

    /// The peer's address (`To` of our requests), without tag.
    pub fn remote_uri(&self) -> &NameAddr {
        &self.remote_uri
    }

    /// Where our requests go: the peer's `Contact`.
    pub fn remote_target(&self) -> &Uri {
        &self.remote_target
    }

    /// The proxies our requests pass through, first hop first.
    pub fn route_set(&self) -> &[NameAddr] {
        &self.route_set
    }

    /// The CSeq of the last in-dialog request received, if any.
    pub fn remote_cseq(&self) -> Option<u32> {
        self.remote_cseq
    }

    /// Our `Contact`.
    pub fn our_contact(&self) -> &NameAddr {
        &self.our_contact
    }

    /// The URI to resolve (RFC 3263) to send the next request: the first route, or the remote target
    /// when there is no route set. Same as the first `Route` of a loose-routed request, and as the
    /// Request-URI of a strict-routed one.
    pub fn next_hop(&self) -> &Uri {
        self.route_set
            .first()
            .map_or(&self.remote_target, |route| &route.uri)
    }

    /// Whether `request` claims to be in this dialog (§12.2.2): same Call-ID, its `To` tag ours and its
    /// `From` tag the peer's.
    pub fn matches(&self, request: &Request) -> bool {
        DialogId::of_request(request).is_some_and(|id| id == self.id)
    }

    /// Accepts a received in-dialog request: it must [match](Dialog::matches) and have a CSeq above the
    /// last one (§12.2.2), which it then becomes. On [`DialogError::OutOfOrder`] answer 500
    /// ([`DialogError::response_code`]); the dialog is unchanged.
    pub fn receive(&mut self, request: &Request) -> Result<(), DialogError> {
        if !self.matches(request) {
            return Err(DialogError::NotThisDialog);
        }
        let received = request.cseq.number;
        if let Some(last) = self.remote_cseq
            && received <= last
        {
            return Err(DialogError::OutOfOrder { received, last });
        }
        self.remote_cseq = Some(received);
        Ok(())
    }

    /// Replaces the remote target with the `Contact` of an accepted target refresh: a re-SUBSCRIBE, a
    /// NOTIFY (RFC 6665 §4.1.2.4 and §4.2.1.1), or a 2xx to our re-SUBSCRIBE. Without a `Contact` the
    /// target stays; returns whether it changed.
    pub fn refresh_remote_target(&mut self, headers: &Headers) -> Result<bool, DialogError> {
        if !headers.contains(&HeaderName::CONTACT) {
            return Ok(false);
        }
        let target = single_contact(headers)?;
        let changed = target != self.remote_target;
        self.remote_target = target;
        Ok(changed)
    }

    /// A new request in the dialog (§12.2.1.1), with the next local CSeq, `Max-Forwards: 70` and our
    /// `Contact`. The caller adds the `Via` of the hop that sends it, then the method's headers (see
    /// [`set_presence_event`], [`set_subscription_state`], [`set_expires`]) and body.
    ///
    /// With a loose first route (`lr`), the Request-URI is the remote target and the route set becomes
    /// `Route`. With a strict first route, that route's URI becomes the Request-URI and the remote target
    /// the last `Route`, as §12.2.1.1 prescribes for RFC 2543 proxies.
    pub fn request(&mut self, method: Method) -> Result<Request, DialogError> {
        let cseq = self.next_cseq.ok_or(DialogError::CSeqExhausted)?;
        self.next_cseq = cseq.checked_add(1).filter(|n| *n <= CSeq::MAX);
        let mut from = self.local_uri.clone();
        let mut to = self.remote_uri.clone();
        // Tokens are always valid parameter values.
        let _ = from.params.set("tag", Some(self.id.local_tag.as_str()));
        let _ = to.params.set("tag", Some(self.id.remote_tag.as_str()));
        let (uri, routes) = match self.route_set.split_first() {
            Some((first, rest)) if !first.uri.has_param("lr") => {
                let mut routes: Vec<NameAddr> = rest.to_vec();
                routes.push(NameAddr::new(self.remote_target.clone()));
                (request_uri_form(&first.uri), routes)
            }
            _ => (self.remote_target.clone(), self.route_set.clone()),
        };
        let mut request = Request::new(method, uri, from, to, self.id.call_id.clone(), cseq);
        // Route and Contact are neither reserved nor able to hold line breaks: they were parsed or built
        // from validated parts.
        for route in routes {
            let _ = request.headers.push(HeaderName::ROUTE, route.to_string());
        }
        let _ = request
            .headers
            .push(HeaderName::CONTACT, self.our_contact.to_string());
        Ok(request)
    }

    /// A response to a request of this dialog, or to the SUBSCRIBE that creates it: our tag in `To`
    /// (RFC 3261 §8.2.6.2), and for a 2xx our `Contact` (RFC 6665 §4.2.1.1 requires it of a 2xx to
    /// SUBSCRIBE) plus the request's `Record-Route` as [`response_for`] copies it.
    pub fn response(&self, request: &Request, status: StatusCode, reason: &str) -> Response {
        let mut response = response_for(request, status, reason, &self.id.local_tag);
        if status.is_success() {
            let _ = response
                .headers
                .push(HeaderName::CONTACT, self.our_contact.to_string());
        }
        response
    }
}

/// Whether `notify` belongs to the subscription `our_subscribe` created, before any dialog exists
/// (RFC 6665 §4.1.2.4): same Call-ID, its `To` tag is our `From` tag, and the same `Event` package and
/// `id`. Its `From` tag is then the dialog's remote tag.
pub fn notify_matches_subscribe(
    our_subscribe: &Request,
    notify: &Request,
) -> Result<bool, DialogError> {
    if notify.method != Method::Notify
        || notify.call_id != our_subscribe.call_id
        || notify.to.tag().is_none()
        || notify.to.tag() != our_subscribe.from.tag()
    {
        return Ok(false);
    }
    let (Some(ours), Some(theirs)) = (our_subscribe.headers.event()?, notify.headers.event()?)
    else {
        return Ok(false);
    };
    Ok(ours.package.eq_ignore_case(theirs.package.as_str()) && ours.id() == theirs.id())
}

/// The `Subscription-State` of a received NOTIFY, which RFC 6665 §8.2.3 makes mandatory.
pub fn notify_state(notify: &Request) -> Result<SubscriptionState, DialogError> {
    notify
        .headers
        .subscription_state()?
        .ok_or(DialogError::MissingSubscriptionState)
}

/// Why the notifier ended a subscription (RFC 6665 §4.1.3, `event-reason-value`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminationReason {
    /// `deactivated`: the subscriber may resubscribe at once.
    Deactivated,
    /// `probation`: resubscribe later, after `retry-after` if given.
    Probation,
    /// `rejected`: the subscription was refused.
    Rejected,
    /// `timeout`: it was not refreshed in time.
    Timeout,
    /// `giveup`: the notifier could not get authorisation in time.
    Giveup,
    /// `noresource`: the resource no longer exists.
    Noresource,
    /// `invariant`: the resource will never change state.
    Invariant,
    /// A registered extension reason.
    Other(Token),
}

impl fmt::Display for TerminationReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Deactivated => "deactivated",
            Self::Probation => "probation",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::Giveup => "giveup",
            Self::Noresource => "noresource",
            Self::Invariant => "invariant",
            Self::Other(token) => token.as_str(),
        })
    }
}

/// A `Subscription-State` for a NOTIFY we send. Pending and active carry `expires`, which RFC 6665
/// §4.2.2 makes mandatory in those states.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionStatus {
    /// `pending;expires=N`: authorisation is still awaited.
    Pending {
        /// Seconds left.
        expires: u32,
    },
    /// `active;expires=N`.
    Active {
        /// Seconds left.
        expires: u32,
    },
    /// `terminated[;reason=R][;retry-after=N]`.
    Terminated {
        /// Why; RFC 6665 §4.2.2 says it should be given.
        reason: Option<TerminationReason>,
        /// Seconds before resubscribing makes sense.
        retry_after: Option<u32>,
    },
}

impl fmt::Display for SubscriptionStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Pending { expires } => write!(f, "pending;expires={expires}"),
            Self::Active { expires } => write!(f, "active;expires={expires}"),
            Self::Terminated {
                reason,
                retry_after,
            } => {
                f.write_str("terminated")?;
                if let Some(reason) = reason {
                    write!(f, ";reason={reason}")?;
                }
                if let Some(seconds) = retry_after {
                    write!(f, ";retry-after={seconds}")?;
                }
                Ok(())
            }
        }
    }
}

/// Sets `Subscription-State` (RFC 6665 §8.2.3).
pub fn set_subscription_state(headers: &mut Headers, status: &SubscriptionStatus) {
    // Built from numbers and tokens: neither reserved nor able to hold a line break.
    let _ = headers.set(HeaderName::SUBSCRIPTION_STATE, status.to_string());
}

/// Sets `Event: presence`, with `;id=` when the subscription has one (RFC 6665 §8.2.1).
pub fn set_presence_event(headers: &mut Headers, id: Option<&Token>) {
    let value = match id {
        Some(id) => format!("{PRESENCE_PACKAGE};id={id}"),
        None => PRESENCE_PACKAGE.to_owned(),
    };
    let _ = headers.set(HeaderName::EVENT, value);
}

/// Sets `Expires`: the duration asked for in a SUBSCRIBE, 0 to unsubscribe (RFC 6665 §4.1.2.3), or
/// the one granted in its 2xx.
pub fn set_expires(headers: &mut Headers, seconds: u32) {
    let _ = headers.set(HeaderName::EXPIRES, seconds.to_string());
}

/// Sets `Allow-Events` to the packages we handle (RFC 6665 §8.2.2), for 489 responses and OPTIONS.
pub fn set_allow_events(headers: &mut Headers, packages: &[Token]) {
    let value = packages
        .iter()
        .map(Token::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    let _ = headers.set(HeaderName::ALLOW_EVENTS, value);
}

fn tag_of(address: &NameAddr) -> Result<Token, DialogError> {
    address
        .tag()
        .and_then(|tag| Token::new(tag).ok())
        .ok_or(DialogError::MissingTag)
}

fn without_tag(address: &NameAddr) -> NameAddr {
    let mut address = address.clone();
    address.params.remove("tag");
    address
}

fn single_contact_addr(headers: &Headers) -> Result<NameAddr, DialogError> {
    let mut contacts = headers.contact()?;
    match (contacts.pop(), contacts.is_empty()) {
        (Some(contact), true) => Ok(contact),
        _ => Err(DialogError::Contact),
    }
}

fn single_contact(headers: &Headers) -> Result<Uri, DialogError> {
    single_contact_addr(headers).map(|contact| contact.uri)
}

/// A route URI as a Request-URI: without URI headers (`?...`) or a `method` parameter, which §19.1.1
/// does not allow there.
fn request_uri_form(uri: &Uri) -> Uri {
    let text = uri.as_str();
    let text = text.split_once('?').map_or(text, |(before, _)| before);
    let mut parts = text.split(';');
    let mut kept = parts.next().unwrap_or_default().to_owned();
    for param in parts {
        let name = param.split_once('=').map_or(param, |(name, _)| name);
        if !name.eq_ignore_ascii_case("method") {
            kept.push(';');
            kept.push_str(param);
        }
    }
    Uri::parse(&kept).unwrap_or_else(|_| uri.clone())
}
