//! Presence subscription state for both directions of RFC 8048 §5, sans-IO.
//!
//! [`SubscriptionTable`] is fed events (SIP requests and responses, XMPP stanzas, time) and answers with
//! [`Action`]s for the caller to perform. Both sides are named by [`Jid`]: the SIP side maps its URIs with
//! `sixgate_core::sip_to_jid` before calling, so the table never sees SIP syntax.
//!
//! - Direction A, SIP watcher → XMPP contact: the gateway is the notifier ([`SubscriptionTable::sip_subscribe`]
//!   and the `xmpp_*` events addressed to a SIP watcher).
//! - Direction B, XMPP user → SIP contact: the gateway is the subscriber ([`SubscriptionTable::xmpp_subscribe`],
//!   [`SubscriptionTable::subscribe_response`], [`SubscriptionTable::notify_received`] and friends).
//!
//! The SIP party is the *local user* and the XMPP party's domain the *remote domain* for the caps in
//! [`SubscriptionConfig`]. Time only moves through the `now` arguments; the caller sleeps until
//! [`SubscriptionTable::poll_timeout`] and then calls [`SubscriptionTable::handle_timeout`].
//!
//! `docs/presence.md` §6 describes the flows and every decision.

use std::collections::HashMap;
use std::fmt::Debug;
use std::time::{Duration, Instant};

use sixgate_core::{Domain, Jid};

use crate::model::{Presence, ResourcePresence, Status};

#[cfg(test)]
mod tests;

/// Limits and timers. [`Default`] gives the values documented on each field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionConfig {
    /// Subscriptions (both directions, fetches included) one local SIP user may take part in. Default 1000.
    pub max_per_local_user: usize,
    /// Subscriptions (both directions, fetches included) with one remote XMPP domain. Default 1000, as the
    /// Lync Edge limit per federated partner.
    pub max_per_remote_domain: usize,
    /// SIP dialogs one (watcher, contact) pair may hold at once (one per watcher endpoint). Default 4.
    pub max_dialogs_per_pair: usize,
    /// Resources kept per cached presence; beyond it closed resources are forgotten first and new ones
    /// ignored. Default 16.
    pub max_resources: usize,
    /// Expiry granted to a SIP SUBSCRIBE without `Expires` (RFC 3856 §6.4). Default 3600 s.
    pub default_expires: u32,
    /// Shortest expiry accepted; shorter requests get 423 (RFC 6665 §4.2.1.1). Default 60 s.
    pub min_expires: u32,
    /// Longest expiry granted; longer requests are shortened. Default 28,800 s (Lync's refresh interval).
    pub max_expires: u32,
    /// Expiry asked for in the SUBSCRIBEs the gateway sends (RFC 8048 §5.2.1). Default 3600 s.
    pub outgoing_expires: u32,
    /// Least time between two NOTIFYs on one pair; changes inside it are coalesced (RFC 8048 §9.1).
    /// Default 1 s.
    pub notify_interval: Duration,
    /// Least time between two probes or fetches for the same pair (RFC 8048 §9.1). Default 60 s.
    pub probe_interval: Duration,
    /// How long a one-shot fetch (SIP `Expires: 0`) waits for the probe's first answer. Default 5 s.
    pub fetch_timeout: Duration,
    /// After the first answer to a probe, how long to wait for the other resources. Default 500 ms.
    pub fetch_settle: Duration,
    /// How long a sent SUBSCRIBE may stay unanswered before it counts as a 408 (2 × Timer F). Default 64 s.
    pub response_timeout: Duration,
    /// Wait before re-subscribing after a transient failure (second and later attempts). Default 30 s.
    pub retry_delay: Duration,
    /// Attempts in a row before a failing outgoing subscription is given up. Default 3.
    pub max_retries: u32,
}

impl Default for SubscriptionConfig {
    fn default() -> Self {
        Self {
            max_per_local_user: 1000,
            max_per_remote_domain: 1000,
            max_dialogs_per_pair: 4,
            max_resources: 16,
            default_expires: 3600,
            min_expires: 60,
            max_expires: 28_800,
            outgoing_expires: 3600,
            notify_interval: Duration::from_secs(1),
            probe_interval: Duration::from_secs(60),
            fetch_timeout: Duration::from_secs(5),
            fetch_settle: Duration::from_millis(500),
            response_timeout: Duration::from_secs(64),
            retry_delay: Duration::from_secs(30),
            max_retries: 3,
        }
    }
}

/// RFC 6665 §4.1.3 (and RFC 3265 §3.2.4) `reason` values of `Subscription-State: terminated`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TerminationReason {
    /// The subscriber may re-subscribe at once.
    Deactivated,
    /// The subscriber may re-subscribe after `retry-after`.
    Probation,
    /// Authorization was refused; do not re-subscribe.
    Rejected,
    /// The subscription expired (or was a one-shot fetch); the subscriber may re-subscribe.
    Timeout,
    /// The notifier could not get authorization in time.
    Giveup,
    /// The resource no longer exists; do not re-subscribe.
    Noresource,
    /// The state will not change again.
    Invariant,
    /// Any other token, kept as received.
    Other(String),
}

impl TerminationReason {
    /// The wire token.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Deactivated => "deactivated",
            Self::Probation => "probation",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::Giveup => "giveup",
            Self::Noresource => "noresource",
            Self::Invariant => "invariant",
            Self::Other(token) => token,
        }
    }

    /// Parses a wire token; tokens are case-insensitive (RFC 3261 §7.3.1).
    pub fn from_token(token: &str) -> Self {
        match token.to_ascii_lowercase().as_str() {
            "deactivated" => Self::Deactivated,
            "probation" => Self::Probation,
            "rejected" => Self::Rejected,
            "timeout" => Self::Timeout,
            "giveup" => Self::Giveup,
            "noresource" => Self::Noresource,
            "invariant" => Self::Invariant,
            _ => Self::Other(token.to_owned()),
        }
    }
}

/// A `Subscription-State` header value (RFC 6665 §8.2.3), sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscriptionState {
    /// `pending;expires=N`.
    Pending {
        /// Seconds left.
        expires: u32,
    },
    /// `active;expires=N`.
    Active {
        /// Seconds left.
        expires: u32,
    },
    /// `terminated[;reason=…][;retry-after=N]`.
    Terminated {
        /// The reason, if any.
        reason: Option<TerminationReason>,
        /// Seconds before a new subscription may be tried, if given.
        retry_after: Option<u32>,
    },
}

impl SubscriptionState {
    fn terminated(reason: TerminationReason) -> Self {
        Self::Terminated {
            reason: Some(reason),
            retry_after: None,
        }
    }
}

/// What a NOTIFY carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifyBody {
    /// No body (presence unknown, or the watcher is not authorized).
    None,
    /// A PIDF document with one closed tuple (RFC 8048 §5.3.3); the caller renders it.
    Closed,
    /// A PIDF document of this presence, one tuple per resource ([`crate::to_pidf`]).
    Presence(Presence),
}

/// Which SUBSCRIBE the gateway sends in direction B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscribeKind {
    /// A new dialog (first subscription, or a re-subscription after the old dialog ended or got 481).
    Initial,
    /// In the existing dialog.
    Refresh,
    /// `Expires: 0` in the existing dialog, ending the subscription (RFC 8048 §5.2.3).
    Unsubscribe,
    /// `Expires: 0` on a new dialog: a one-shot fetch for a probe (RFC 8048 §7). Its NOTIFY goes to
    /// [`SubscriptionTable::fetch_notify_received`] and its final response to
    /// [`SubscriptionTable::fetch_response`].
    Fetch,
}

/// How the caller answers a SIP SUBSCRIBE (direction A).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubscribeResponse {
    /// 202 Accepted with this `Expires` (0 for a cancel or fetch); the actions hold the NOTIFY(s) to send
    /// after it.
    Accept {
        /// Seconds granted.
        expires: u32,
    },
    /// 423 Interval Too Brief with this `Min-Expires`.
    IntervalTooBrief {
        /// Seconds.
        min_expires: u32,
    },
    /// A final error response: a cap was hit.
    Refuse(Refusal),
}

/// Why a new subscription was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// The local user has [`SubscriptionConfig::max_per_local_user`] subscriptions.
    LocalUserCap,
    /// The remote domain has [`SubscriptionConfig::max_per_remote_domain`] subscriptions.
    RemoteDomainCap,
    /// The pair already has [`SubscriptionConfig::max_dialogs_per_pair`] dialogs.
    DialogCap,
}

impl Refusal {
    /// The SIP status code to answer a SUBSCRIBE with.
    ///
    /// A local user over their own cap must drop contacts first, so 403 (RFC 6665 §4.2.1.2 allows it for
    /// policy); the domain cap frees up as other users' subscriptions end, so 480 (temporarily unable).
    pub fn sip_code(self) -> u16 {
        match self {
            Self::LocalUserCap | Self::DialogCap => 403,
            Self::RemoteDomainCap => 480,
        }
    }
}

/// How the caller answers a NOTIFY received in direction B.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotifyAnswer {
    /// 200 OK.
    Ok,
    /// 481 Subscription Does Not Exist: the table knows no such subscription.
    NoSubscription,
}

/// Something for the caller to do. `D` is the caller's SIP dialog handle for direction A.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action<D> {
    /// A: send a NOTIFY in `dialog`.
    Notify {
        /// The dialog.
        dialog: D,
        /// The SIP watcher.
        watcher: Jid,
        /// The XMPP contact (bare).
        contact: Jid,
        /// The `Subscription-State` header.
        state: SubscriptionState,
        /// The body.
        body: NotifyBody,
    },
    /// A: `<presence type='subscribe' from=watcher to=contact/>`.
    SendSubscribeStanza {
        /// The SIP watcher's JID.
        from: Jid,
        /// The XMPP contact (bare).
        to: Jid,
    },
    /// A: `<presence type='probe' from=watcher to=contact/>`.
    SendProbe {
        /// The SIP watcher's JID.
        from: Jid,
        /// The XMPP contact (bare).
        to: Jid,
    },
    /// A: directed `<presence type='unavailable' from=watcher to=contact/>` (RFC 8048 §5.3.3).
    SendUnavailableStanza {
        /// The SIP watcher's JID.
        from: Jid,
        /// The XMPP contact (bare).
        to: Jid,
    },
    /// B: send a SUBSCRIBE (`Event: presence`, `Accept: application/pidf+xml`) from the XMPP user to the SIP
    /// contact, through the local domain's edge.
    SendSubscribe {
        /// The XMPP user (bare).
        user: Jid,
        /// The SIP contact.
        contact: Jid,
        /// The `Expires` value.
        expires: u32,
        /// New dialog, in-dialog, cancel or fetch.
        kind: SubscribeKind,
    },
    /// B: `<presence type='subscribed' from=contact to=user/>`.
    SendSubscribed {
        /// The SIP contact.
        from: Jid,
        /// The XMPP user (bare).
        to: Jid,
    },
    /// B: `<presence type='unsubscribed' from=contact to=user/>`.
    SendUnsubscribed {
        /// The SIP contact.
        from: Jid,
        /// The XMPP user (bare).
        to: Jid,
    },
    /// B: a `<presence/>` (available or unavailable) for one resource of the SIP contact.
    SendPresence {
        /// The SIP contact, with the resource when it is a valid JID resource.
        from: Jid,
        /// The XMPP user (bare).
        to: Jid,
        /// The resource's presence.
        presence: ResourcePresence,
    },
    /// B: the XMPP user's subscribe cannot be taken on (a cap); answer with a presence error
    /// `<resource-constraint/>` of type `wait` (RFC 6120 §8.3.3.18).
    RefuseSubscribe {
        /// The XMPP user (bare).
        user: Jid,
        /// The SIP contact.
        contact: Jid,
        /// Which cap.
        refusal: Refusal,
    },
}

/// Entry counts, for metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SubscriptionStats {
    /// Direction A (watcher, contact) pairs.
    pub inbound_pairs: usize,
    /// Direction A SIP dialogs.
    pub inbound_dialogs: usize,
    /// Direction A one-shot fetches in flight.
    pub inbound_fetches: usize,
    /// Direction B (user, contact) subscriptions.
    pub outbound: usize,
    /// Direction B one-shot fetches in flight.
    pub outbound_fetches: usize,
    /// Remembered recent probes (rate limiting).
    pub recent_probes: usize,
}

type Pair = (Jid, Jid);

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Dir {
    In,
    Out,
}

#[derive(Debug)]
struct InDialog<D> {
    dialog: D,
    expires_at: Instant,
}

#[derive(Debug)]
struct Inbound<D> {
    dialogs: Vec<InDialog<D>>,
    /// The XMPP contact sent `subscribed`; until then no presence reaches the watcher (RFC 8048 §9.2).
    authorized: bool,
    /// Presence received from the contact addressed to this watcher only, so directed presence never leaks
    /// to another watcher.
    presence: Presence,
    last_notify: Option<Instant>,
    notify_due: Option<Instant>,
}

#[derive(Debug)]
struct InFetch<D> {
    dialog: D,
    deadline: Instant,
    presence: Presence,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum OutPhase {
    /// A SUBSCRIBE of this kind awaits its final response.
    Subscribing(SubscribeKind),
    /// Established; the deadline is the refresh time.
    Established,
    /// Waiting to re-subscribe on a new dialog at the deadline.
    Waiting,
    /// `Expires: 0` sent; the entry goes on its response or at the deadline.
    Unsubscribing,
}

#[derive(Debug)]
struct Outbound {
    phase: OutPhase,
    deadline: Instant,
    /// When the current dialog's subscription runs out, once a 2xx granted it.
    expires_at: Option<Instant>,
    requested: u32,
    /// The XMPP user was told `subscribed`.
    authorized: bool,
    presence: Presence,
    retries: u32,
}

/// Subscription state of both directions, with caps, timers and caches. See the module documentation.
#[derive(Debug)]
pub struct SubscriptionTable<D> {
    config: SubscriptionConfig,
    inbound: HashMap<Pair, Inbound<D>>,
    in_fetches: HashMap<Pair, InFetch<D>>,
    outbound: HashMap<Pair, Outbound>,
    out_fetches: HashMap<Pair, Instant>,
    recent_probes: HashMap<(Dir, Jid, Jid), Instant>,
    per_user: HashMap<Jid, usize>,
    per_domain: HashMap<Domain, usize>,
}

fn secs(d: Duration) -> u32 {
    u32::try_from(d.as_secs()).unwrap_or(u32::MAX)
}

fn remaining(at: Instant, now: Instant) -> u32 {
    secs(at.saturating_duration_since(now))
}

/// Replaces or adds one resource, keeping the cache bounded (RFC 8048 §9.1: a contact cannot make NOTIFY
/// bodies grow without limit by inventing resources).
fn merge_resource(presence: &mut Presence, rp: ResourcePresence, max: usize) {
    if let Some(slot) = presence
        .resources
        .iter_mut()
        .find(|r| r.resource == rp.resource)
    {
        *slot = rp;
        return;
    }
    if presence.resources.len() >= max {
        match presence.resources.iter().position(|r| !r.available) {
            Some(closed) => {
                presence.resources.remove(closed);
            }
            None => return,
        }
    }
    presence.resources.push(rp);
}

impl<D: Clone + PartialEq + Debug> SubscriptionTable<D> {
    /// An empty table.
    pub fn new(config: SubscriptionConfig) -> Self {
        Self {
            config,
            inbound: HashMap::new(),
            in_fetches: HashMap::new(),
            outbound: HashMap::new(),
            out_fetches: HashMap::new(),
            recent_probes: HashMap::new(),
            per_user: HashMap::new(),
            per_domain: HashMap::new(),
        }
    }

    /// The configuration in use.
    pub fn config(&self) -> &SubscriptionConfig {
        &self.config
    }

    /// Entries of every kind; 0 means the table holds nothing at all.
    pub fn len(&self) -> usize {
        let s = self.stats();
        s.inbound_pairs + s.inbound_fetches + s.outbound + s.outbound_fetches + s.recent_probes
    }

    /// Whether the table holds nothing.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Entry counts.
    pub fn stats(&self) -> SubscriptionStats {
        SubscriptionStats {
            inbound_pairs: self.inbound.len(),
            inbound_dialogs: self.inbound.values().map(|e| e.dialogs.len()).sum(),
            inbound_fetches: self.in_fetches.len(),
            outbound: self.outbound.len(),
            outbound_fetches: self.out_fetches.len(),
            recent_probes: self.recent_probes.len(),
        }
    }

    /// Counted entries (pairs and fetches) a local SIP user takes part in.
    pub fn count_for_local_user(&self, user: &Jid) -> usize {
        self.per_user.get(&user.to_bare()).copied().unwrap_or(0)
    }

    /// Counted entries (pairs and fetches) with a remote XMPP domain.
    pub fn count_for_remote_domain(&self, domain: &Domain) -> usize {
        self.per_domain.get(domain).copied().unwrap_or(0)
    }

    // ----- caps -----

    fn try_reserve(&mut self, local: &Jid, remote: &Domain) -> Result<(), Refusal> {
        if self.count_for_local_user(local) >= self.config.max_per_local_user {
            return Err(Refusal::LocalUserCap);
        }
        if self.count_for_remote_domain(remote) >= self.config.max_per_remote_domain {
            return Err(Refusal::RemoteDomainCap);
        }
        *self.per_user.entry(local.to_bare()).or_insert(0) += 1;
        *self.per_domain.entry(remote.clone()).or_insert(0) += 1;
        Ok(())
    }

    /// Every removal goes through here so the counters never drift and empty counters never linger.
    fn release(&mut self, local: &Jid, remote: &Domain) {
        let bare = local.to_bare();
        if let Some(n) = self.per_user.get_mut(&bare) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_user.remove(&bare);
            }
        }
        if let Some(n) = self.per_domain.get_mut(remote) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.per_domain.remove(remote);
            }
        }
    }

    /// Records a probe unless one for the same pair is too recent (RFC 8048 §9.1).
    fn probe_allowed(&mut self, dir: Dir, a: &Jid, b: &Jid, now: Instant) -> bool {
        let key = (dir, a.clone(), b.clone());
        match self.recent_probes.get(&key) {
            Some(&until) if until > now => false,
            _ => {
                self.recent_probes
                    .insert(key, now + self.config.probe_interval);
                true
            }
        }
    }

    // ===== Direction A: SIP watcher → XMPP contact =====

    /// A SIP SUBSCRIBE (`Event: presence`) from `watcher` for the XMPP `contact`, in `dialog`.
    ///
    /// `requested_expires` is the `Expires` header (`None` when absent). A dialog the table already holds is a
    /// refresh; `Expires: 0` in a known dialog cancels it (RFC 8048 §5.3.3) and in a new one is a one-shot
    /// fetch (§7). On [`SubscribeResponse::Accept`] the caller answers 202, then performs the actions (which
    /// start with the NOTIFY RFC 6665 §4.2.1.2 wants right after, except for a fetch waiting on its probe).
    pub fn sip_subscribe(
        &mut self,
        now: Instant,
        watcher: &Jid,
        contact: &Jid,
        requested_expires: Option<u32>,
        dialog: D,
    ) -> (SubscribeResponse, Vec<Action<D>>) {
        let watcher = watcher.to_bare();
        let contact = contact.to_bare();
        let pair = (watcher.clone(), contact.clone());
        let requested = requested_expires.unwrap_or(self.config.default_expires);
        if self
            .in_fetches
            .get(&pair)
            .is_some_and(|f| f.dialog == dialog)
        {
            if requested == 0 {
                // The fetch in this dialog is still waiting for its probe; its NOTIFY will come.
                return (SubscribeResponse::Accept { expires: 0 }, Vec::new());
            }
            // The subscriber turned its fetch into a subscription: the dialog now belongs to that.
            self.in_fetches.remove(&pair);
            self.release(&watcher, contact.domain());
        }
        if requested == 0 {
            return self.sip_expires_zero(now, pair, dialog);
        }
        if requested < self.config.min_expires {
            return (
                SubscribeResponse::IntervalTooBrief {
                    min_expires: self.config.min_expires,
                },
                Vec::new(),
            );
        }
        let expires = requested.min(self.config.max_expires);
        let expires_at = now + Duration::from_secs(u64::from(expires));
        let mut actions = Vec::new();
        if !self.inbound.contains_key(&pair) {
            if let Err(refusal) = self.try_reserve(&watcher, contact.domain()) {
                return (SubscribeResponse::Refuse(refusal), actions);
            }
            self.inbound.insert(
                pair.clone(),
                Inbound {
                    dialogs: Vec::new(),
                    authorized: false,
                    presence: Presence::default(),
                    last_notify: None,
                    notify_due: None,
                },
            );
            actions.push(Action::SendSubscribeStanza {
                from: watcher.clone(),
                to: contact.clone(),
            });
        }
        let max_dialogs = self.config.max_dialogs_per_pair.max(1);
        let Some(entry) = self.inbound.get_mut(&pair) else {
            return (SubscribeResponse::Refuse(Refusal::DialogCap), actions);
        };
        let count = entry.dialogs.len();
        match entry.dialogs.iter_mut().find(|d| d.dialog == dialog) {
            Some(known) => known.expires_at = expires_at,
            None if count >= max_dialogs => {
                return (SubscribeResponse::Refuse(Refusal::DialogCap), actions);
            }
            None => entry.dialogs.push(InDialog {
                dialog: dialog.clone(),
                expires_at,
            }),
        }
        // The immediate NOTIFY: pending while unauthorized; active with what is known otherwise (§5.3.2).
        let (state, body) = if entry.authorized {
            entry.last_notify = Some(now);
            let body = if entry.presence.resources.is_empty() {
                NotifyBody::None
            } else {
                NotifyBody::Presence(entry.presence.clone())
            };
            (SubscriptionState::Active { expires }, body)
        } else {
            (SubscriptionState::Pending { expires }, NotifyBody::None)
        };
        actions.push(Action::Notify {
            dialog,
            watcher,
            contact,
            state,
            body,
        });
        (SubscribeResponse::Accept { expires }, actions)
    }

    fn sip_expires_zero(
        &mut self,
        now: Instant,
        pair: Pair,
        dialog: D,
    ) -> (SubscribeResponse, Vec<Action<D>>) {
        let accept = SubscribeResponse::Accept { expires: 0 };
        let (watcher, contact) = pair.clone();
        let mut actions = Vec::new();
        if let Some(entry) = self.inbound.get_mut(&pair) {
            if let Some(i) = entry.dialogs.iter().position(|d| d.dialog == dialog) {
                // §5.3.3: a cancel. The body says closed, never the real state, and only to an authorized
                // watcher.
                entry.dialogs.remove(i);
                let body = if entry.authorized {
                    NotifyBody::Closed
                } else {
                    NotifyBody::None
                };
                actions.push(Action::Notify {
                    dialog,
                    watcher: watcher.clone(),
                    contact: contact.clone(),
                    state: SubscriptionState::terminated(TerminationReason::Timeout),
                    body,
                });
                if entry.dialogs.is_empty() {
                    self.remove_inbound(&pair, &mut actions);
                }
                return (accept, actions);
            }
            // §7 with the state already at hand: answer from the cache, if the watcher may see it.
            let body = if entry.authorized && !entry.presence.resources.is_empty() {
                NotifyBody::Presence(entry.presence.clone())
            } else {
                NotifyBody::None
            };
            actions.push(Action::Notify {
                dialog,
                watcher,
                contact,
                state: SubscriptionState::terminated(TerminationReason::Timeout),
                body,
            });
            return (accept, actions);
        }
        let busy = self.in_fetches.contains_key(&pair);
        let reserved = !busy
            && self.probe_allowed(Dir::In, &watcher, &contact, now)
            && self.try_reserve(&watcher, contact.domain()).is_ok();
        if !reserved {
            // Rate-limited, capped or already fetching: the fetch ends at once with nothing to say.
            actions.push(Action::Notify {
                dialog,
                watcher,
                contact,
                state: SubscriptionState::terminated(TerminationReason::Timeout),
                body: NotifyBody::None,
            });
            return (accept, actions);
        }
        // §7: probe, and send the one (terminating) NOTIFY once the answer is in.
        self.in_fetches.insert(
            pair,
            InFetch {
                dialog,
                deadline: now + self.config.fetch_timeout,
                presence: Presence::default(),
            },
        );
        actions.push(Action::SendProbe {
            from: watcher,
            to: contact,
        });
        (accept, actions)
    }

    fn remove_inbound(&mut self, pair: &Pair, actions: &mut Vec<Action<D>>) {
        if self.inbound.remove(pair).is_some() {
            self.release(&pair.0, pair.1.domain());
            actions.push(Action::SendUnavailableStanza {
                from: pair.0.clone(),
                to: pair.1.clone(),
            });
        }
    }

    /// The XMPP `contact` approved the SIP `watcher` (`<presence type='subscribed'/>`).
    pub fn xmpp_subscribed(
        &mut self,
        now: Instant,
        contact: &Jid,
        watcher: &Jid,
    ) -> Vec<Action<D>> {
        let pair = (watcher.to_bare(), contact.to_bare());
        let Some(entry) = self.inbound.get_mut(&pair) else {
            return Vec::new();
        };
        if entry.authorized {
            return Vec::new();
        }
        entry.authorized = true;
        Self::notify_all(&pair, entry, now)
    }

    /// The XMPP `contact` refused or revoked the SIP `watcher` (`<presence type='unsubscribed'/>`): every
    /// dialog ends with `terminated;reason=rejected` and the entry goes.
    pub fn xmpp_unsubscribed(&mut self, contact: &Jid, watcher: &Jid) -> Vec<Action<D>> {
        let pair = (watcher.to_bare(), contact.to_bare());
        let mut actions = Vec::new();
        let rejected = || SubscriptionState::terminated(TerminationReason::Rejected);
        if let Some(entry) = self.inbound.remove(&pair) {
            self.release(&pair.0, pair.1.domain());
            for d in entry.dialogs {
                actions.push(Action::Notify {
                    dialog: d.dialog,
                    watcher: pair.0.clone(),
                    contact: pair.1.clone(),
                    state: rejected(),
                    body: NotifyBody::None,
                });
            }
        }
        if let Some(fetch) = self.in_fetches.remove(&pair) {
            self.release(&pair.0, pair.1.domain());
            actions.push(Action::Notify {
                dialog: fetch.dialog,
                watcher: pair.0,
                contact: pair.1,
                state: rejected(),
                body: NotifyBody::None,
            });
        }
        actions
    }

    /// A `<presence/>` (available or unavailable) from one resource of the XMPP `contact`, addressed to the SIP
    /// `watcher`. `presence.resource` names the resource; `contact` may be bare or full.
    ///
    /// Nothing reaches the watcher before the contact's `subscribed` (RFC 8048 §9.2); NOTIFYs on a pair are at
    /// most one per [`SubscriptionConfig::notify_interval`], carrying the latest state (§9.1).
    pub fn xmpp_presence(
        &mut self,
        now: Instant,
        contact: &Jid,
        watcher: &Jid,
        presence: ResourcePresence,
    ) -> Vec<Action<D>> {
        let max = self.config.max_resources;
        self.update_contact(now, contact, watcher, |cached| {
            merge_resource(cached, presence.clone(), max);
            true
        })
    }

    /// `<presence type='unavailable'/>` from the XMPP `contact`'s **bare** JID, addressed to the SIP `watcher`:
    /// every cached resource of the contact becomes unavailable (with `status`, if the stanza had one). With
    /// no resource cached nothing changes and nothing is sent. Delivery rules as for
    /// [`xmpp_presence`](Self::xmpp_presence).
    pub fn xmpp_contact_unavailable(
        &mut self,
        now: Instant,
        contact: &Jid,
        watcher: &Jid,
        status: Option<Status>,
    ) -> Vec<Action<D>> {
        self.update_contact(now, contact, watcher, |cached| {
            for slot in &mut cached.resources {
                let mut closed = ResourcePresence::unavailable(std::mem::take(&mut slot.resource));
                closed.status.clone_from(&status);
                *slot = closed;
            }
            !cached.resources.is_empty()
        })
    }

    /// Applies `update` to the pair's cached presence (a fetch in flight and the subscription); `update` says
    /// whether it changed anything. Notifies an authorized subscription, coalesced per `notify_interval`.
    fn update_contact(
        &mut self,
        now: Instant,
        contact: &Jid,
        watcher: &Jid,
        update: impl Fn(&mut Presence) -> bool,
    ) -> Vec<Action<D>> {
        let pair = (watcher.to_bare(), contact.to_bare());
        if let Some(fetch) = self.in_fetches.get_mut(&pair)
            && update(&mut fetch.presence)
        {
            // A probe answer only comes to an authorized watcher (RFC 6121 §4.3.2); wait briefly for the
            // contact's other resources.
            fetch.deadline = fetch.deadline.min(now + self.config.fetch_settle);
        }
        let interval = self.config.notify_interval;
        let Some(entry) = self.inbound.get_mut(&pair) else {
            return Vec::new();
        };
        if !update(&mut entry.presence) || !entry.authorized || entry.notify_due.is_some() {
            return Vec::new();
        }
        match entry.last_notify {
            Some(last) if now < last + interval => {
                entry.notify_due = Some(last + interval);
                Vec::new()
            }
            _ => Self::notify_all(&pair, entry, now),
        }
    }

    /// An active NOTIFY with the whole cached presence on every dialog of an authorized pair.
    fn notify_all(pair: &Pair, entry: &mut Inbound<D>, now: Instant) -> Vec<Action<D>> {
        entry.last_notify = Some(now);
        entry.notify_due = None;
        let body = if entry.presence.resources.is_empty() {
            NotifyBody::None
        } else {
            NotifyBody::Presence(entry.presence.clone())
        };
        entry
            .dialogs
            .iter()
            .map(|d| Action::Notify {
                dialog: d.dialog.clone(),
                watcher: pair.0.clone(),
                contact: pair.1.clone(),
                state: SubscriptionState::Active {
                    expires: remaining(d.expires_at, now),
                },
                body: body.clone(),
            })
            .collect()
    }

    /// The SIP side lost `dialog` without a SUBSCRIBE (a 481 or timeout on a NOTIFY, RFC 6665 §4.2.2): drop it
    /// without notifying.
    pub fn sip_dialog_gone(&mut self, watcher: &Jid, contact: &Jid, dialog: &D) -> Vec<Action<D>> {
        let pair = (watcher.to_bare(), contact.to_bare());
        let mut actions = Vec::new();
        if let Some(entry) = self.inbound.get_mut(&pair) {
            entry.dialogs.retain(|d| &d.dialog != dialog);
            if entry.dialogs.is_empty() {
                self.remove_inbound(&pair, &mut actions);
            }
        }
        if self
            .in_fetches
            .get(&pair)
            .is_some_and(|f| &f.dialog == dialog)
        {
            self.in_fetches.remove(&pair);
            self.release(&pair.0, pair.1.domain());
        }
        actions
    }

    // ===== Direction B: XMPP user → SIP contact =====

    /// `<presence type='subscribe'/>` from the XMPP `user` to the SIP `contact` (RFC 8048 §5.2.1).
    pub fn xmpp_subscribe(&mut self, now: Instant, user: &Jid, contact: &Jid) -> Vec<Action<D>> {
        let pair = (user.to_bare(), contact.to_bare());
        if let Some(entry) = self.outbound.get(&pair) {
            // Already approved: answer as an XMPP server would for an existing subscription.
            if entry.authorized && entry.phase != OutPhase::Unsubscribing {
                let mut actions = vec![Action::SendSubscribed {
                    from: pair.1.clone(),
                    to: pair.0.clone(),
                }];
                presence_stanzas(&pair, &entry.presence, &mut actions);
                return actions;
            }
            if entry.phase != OutPhase::Unsubscribing {
                return Vec::new();
            }
            // Re-subscribing while the cancel is in flight: start over once it has been settled.
            self.outbound.remove(&pair);
            self.release(&pair.1, pair.0.domain());
        }
        if let Err(refusal) = self.try_reserve(&pair.1, pair.0.domain()) {
            return vec![Action::RefuseSubscribe {
                user: pair.0,
                contact: pair.1,
                refusal,
            }];
        }
        let requested = self.config.outgoing_expires;
        self.outbound.insert(
            pair.clone(),
            Outbound {
                phase: OutPhase::Subscribing(SubscribeKind::Initial),
                deadline: now + self.config.response_timeout,
                expires_at: None,
                requested,
                authorized: false,
                presence: Presence::default(),
                retries: 0,
            },
        );
        vec![Action::SendSubscribe {
            user: pair.0,
            contact: pair.1,
            expires: requested,
            kind: SubscribeKind::Initial,
        }]
    }

    /// The final response to a SUBSCRIBE the table asked for (any kind but [`SubscribeKind::Fetch`]).
    ///
    /// `granted_expires` is the 2xx `Expires`, `min_expires` the 423 `Min-Expires`. 1xx are ignored; the
    /// caller reports a transaction timeout as 408.
    pub fn subscribe_response(
        &mut self,
        now: Instant,
        user: &Jid,
        contact: &Jid,
        code: u16,
        granted_expires: Option<u32>,
        min_expires: Option<u32>,
    ) -> Vec<Action<D>> {
        let pair = (user.to_bare(), contact.to_bare());
        let mut actions = Vec::new();
        if code < 200 {
            return actions;
        }
        let config = self.config.clone();
        let Some(entry) = self.outbound.get_mut(&pair) else {
            return actions;
        };
        let kind = match entry.phase {
            OutPhase::Subscribing(kind) => kind,
            OutPhase::Unsubscribing => {
                // §5.2.3: whatever the answer, the subscription is over for the XMPP user.
                self.finish_outbound(&pair, &mut actions);
                return actions;
            }
            OutPhase::Established | OutPhase::Waiting => return actions,
        };
        match code {
            200..=299 => {
                let granted = granted_expires
                    .unwrap_or(entry.requested)
                    .min(entry.requested);
                if granted == 0 {
                    self.finish_outbound(&pair, &mut actions);
                    return actions;
                }
                let lifetime = Duration::from_secs(u64::from(granted));
                entry.phase = OutPhase::Established;
                entry.expires_at = Some(now + lifetime);
                entry.deadline = now + lifetime.mul_f64(0.9);
                if kind == SubscribeKind::Refresh {
                    entry.retries = 0;
                }
            }
            423 => match min_expires {
                Some(min) if min > entry.requested && min <= config.max_expires => {
                    entry.requested = min;
                    entry.deadline = now + config.response_timeout;
                    actions.push(Action::SendSubscribe {
                        user: pair.0.clone(),
                        contact: pair.1.clone(),
                        expires: min,
                        kind,
                    });
                }
                _ => self.cancel_outbound(&pair, &mut actions),
            },
            481 => self.retry_outbound(now, &pair, true, &mut actions),
            403 | 489 | 603 => self.cancel_outbound(&pair, &mut actions),
            408 | 480 | 500 | 503 | 504 => self.retry_outbound(now, &pair, false, &mut actions),
            _ => self.cancel_outbound(&pair, &mut actions),
        }
        actions
    }

    /// A NOTIFY in the subscription of `user` to `contact` (not a fetch), with its `Subscription-State` and
    /// parsed PIDF body, if any.
    pub fn notify_received(
        &mut self,
        now: Instant,
        user: &Jid,
        contact: &Jid,
        state: SubscriptionState,
        body: Option<Presence>,
    ) -> (NotifyAnswer, Vec<Action<D>>) {
        let pair = (user.to_bare(), contact.to_bare());
        let mut actions = Vec::new();
        let Some(entry) = self.outbound.get_mut(&pair) else {
            return (NotifyAnswer::NoSubscription, actions);
        };
        if entry.phase == OutPhase::Unsubscribing {
            return (NotifyAnswer::Ok, actions);
        }
        match state {
            // RFC 3856 §6.7: authorization stays neutral; nothing for the XMPP side.
            SubscriptionState::Pending { .. } => {}
            SubscriptionState::Active { .. } => {
                if !entry.authorized {
                    entry.authorized = true;
                    entry.retries = 0;
                    actions.push(Action::SendSubscribed {
                        from: pair.1.clone(),
                        to: pair.0.clone(),
                    });
                    // §5.2.1: an active NOTIFY without a body means unknown, treated as closed.
                    let new = body.unwrap_or_default();
                    presence_diff(&pair, &Presence::default(), &new, true, &mut actions);
                    entry.presence = new;
                } else if let Some(new) = body {
                    presence_diff(&pair, &entry.presence, &new, false, &mut actions);
                    entry.presence = new;
                }
            }
            SubscriptionState::Terminated {
                reason,
                retry_after,
            } => match reason {
                None | Some(TerminationReason::Deactivated | TerminationReason::Timeout) => {
                    self.retry_outbound(now, &pair, true, &mut actions);
                }
                Some(TerminationReason::Probation) => {
                    let wait = retry_after.map_or(self.config.retry_delay, |s| {
                        Duration::from_secs(u64::from(s))
                    });
                    self.schedule_retry(now, &pair, wait, &mut actions);
                }
                Some(_) => self.cancel_outbound(&pair, &mut actions),
            },
        }
        (NotifyAnswer::Ok, actions)
    }

    /// `<presence type='unsubscribe'/>` from the XMPP `user`: SUBSCRIBE `Expires: 0` (RFC 8048 §5.2.3); the
    /// entry goes on its response.
    pub fn xmpp_unsubscribe(&mut self, now: Instant, user: &Jid, contact: &Jid) -> Vec<Action<D>> {
        let pair = (user.to_bare(), contact.to_bare());
        let timeout = self.config.response_timeout;
        let Some(entry) = self.outbound.get_mut(&pair) else {
            return Vec::new();
        };
        if entry.phase == OutPhase::Unsubscribing {
            return Vec::new();
        }
        let had_dialog = entry.expires_at.is_some();
        entry.phase = OutPhase::Unsubscribing;
        entry.deadline = now + timeout;
        if !had_dialog {
            // No dialog to cancel in: the caller cancels any SUBSCRIBE still in flight.
            let mut actions = Vec::new();
            self.finish_outbound(&pair, &mut actions);
            return actions;
        }
        vec![Action::SendSubscribe {
            user: pair.0,
            contact: pair.1,
            expires: 0,
            kind: SubscribeKind::Unsubscribe,
        }]
    }

    /// `<presence type='probe'/>` from the XMPP `user` for the SIP `contact` (RFC 8048 §7): the cached state of
    /// an active subscription, else a one-shot fetch (at most one per pair per
    /// [`SubscriptionConfig::probe_interval`]).
    pub fn xmpp_probe(&mut self, now: Instant, user: &Jid, contact: &Jid) -> Vec<Action<D>> {
        let pair = (user.to_bare(), contact.to_bare());
        let mut actions = Vec::new();
        if let Some(entry) = self.outbound.get(&pair)
            && entry.authorized
        {
            presence_stanzas(&pair, &entry.presence, &mut actions);
            return actions;
        }
        if self.out_fetches.contains_key(&pair)
            || !self.probe_allowed(Dir::Out, &pair.0, &pair.1, now)
            || self.try_reserve(&pair.1, pair.0.domain()).is_err()
        {
            return actions;
        }
        self.out_fetches
            .insert(pair.clone(), now + self.config.response_timeout);
        actions.push(Action::SendSubscribe {
            user: pair.0,
            contact: pair.1,
            expires: 0,
            kind: SubscribeKind::Fetch,
        });
        actions
    }

    /// The final response to a [`SubscribeKind::Fetch`]; a failure ends the fetch.
    pub fn fetch_response(&mut self, user: &Jid, contact: &Jid, code: u16) {
        if code >= 300 {
            self.end_out_fetch(&(user.to_bare(), contact.to_bare()));
        }
    }

    /// The NOTIFY of a [`SubscribeKind::Fetch`]: its presence goes to the XMPP user, and a terminated state
    /// ends the fetch. Only what the SIP notifier chose to send is forwarded (it does the authorization).
    pub fn fetch_notify_received(
        &mut self,
        user: &Jid,
        contact: &Jid,
        state: &SubscriptionState,
        body: Option<Presence>,
    ) -> (NotifyAnswer, Vec<Action<D>>) {
        let pair = (user.to_bare(), contact.to_bare());
        let mut actions = Vec::new();
        if !self.out_fetches.contains_key(&pair) {
            return (NotifyAnswer::NoSubscription, actions);
        }
        if let Some(presence) = body
            && !matches!(state, SubscriptionState::Pending { .. })
        {
            presence_stanzas(&pair, &presence, &mut actions);
        }
        if matches!(state, SubscriptionState::Terminated { .. }) {
            self.end_out_fetch(&pair);
        }
        (NotifyAnswer::Ok, actions)
    }

    fn end_out_fetch(&mut self, pair: &Pair) {
        if self.out_fetches.remove(pair).is_some() {
            self.release(&pair.1, pair.0.domain());
        }
    }

    /// Removes the entry, telling the XMPP user it is unsubscribed.
    fn finish_outbound(&mut self, pair: &Pair, actions: &mut Vec<Action<D>>) {
        if self.outbound.remove(pair).is_some() {
            self.release(&pair.1, pair.0.domain());
            actions.push(Action::SendUnsubscribed {
                from: pair.1.clone(),
                to: pair.0.clone(),
            });
        }
    }

    /// Permanent failure: the XMPP user sees the contact go offline, then `unsubscribed` (§5.2.2).
    fn cancel_outbound(&mut self, pair: &Pair, actions: &mut Vec<Action<D>>) {
        if let Some(entry) = self.outbound.get(pair) {
            go_offline(pair, &entry.presence, actions);
        }
        self.finish_outbound(pair, actions);
    }

    /// A new dialog, at once the first time in a row and after `retry_delay` later, until `max_retries`.
    fn retry_outbound(
        &mut self,
        now: Instant,
        pair: &Pair,
        new_dialog_now: bool,
        actions: &mut Vec<Action<D>>,
    ) {
        let immediate = new_dialog_now && self.outbound.get(pair).is_some_and(|e| e.retries == 0);
        let wait = if immediate {
            Duration::ZERO
        } else {
            self.config.retry_delay
        };
        self.schedule_retry(now, pair, wait, actions);
    }

    fn schedule_retry(
        &mut self,
        now: Instant,
        pair: &Pair,
        wait: Duration,
        actions: &mut Vec<Action<D>>,
    ) {
        let max_retries = self.config.max_retries;
        let outgoing = self.config.outgoing_expires;
        let timeout = self.config.response_timeout;
        let Some(entry) = self.outbound.get_mut(pair) else {
            return;
        };
        if entry.retries >= max_retries {
            self.cancel_outbound(pair, actions);
            return;
        }
        entry.retries += 1;
        entry.expires_at = None;
        entry.requested = outgoing;
        if wait.is_zero() {
            entry.phase = OutPhase::Subscribing(SubscribeKind::Initial);
            entry.deadline = now + timeout;
            actions.push(Action::SendSubscribe {
                user: pair.0.clone(),
                contact: pair.1.clone(),
                expires: outgoing,
                kind: SubscribeKind::Initial,
            });
        } else {
            entry.phase = OutPhase::Waiting;
            entry.deadline = now + wait;
        }
    }

    // ===== Time =====

    /// The next instant [`Self::handle_timeout`] has work to do, if any.
    ///
    /// A linear scan: tables are bounded by the caps, and this keeps every deadline in exactly one place.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let inbound = self
            .inbound
            .values()
            .flat_map(|e| e.dialogs.iter().map(|d| d.expires_at).chain(e.notify_due));
        inbound
            .chain(self.in_fetches.values().map(|f| f.deadline))
            .chain(self.outbound.values().map(|e| e.deadline))
            .chain(self.out_fetches.values().copied())
            .chain(self.recent_probes.values().copied())
            .min()
    }

    /// Runs every timer due at `now`: expiries, coalesced NOTIFYs, fetch answers, refreshes, retries and
    /// forgetting old probes.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Action<D>> {
        let mut actions = Vec::new();
        self.recent_probes.retain(|_, until| *until > now);

        let pairs: Vec<Pair> = self.inbound.keys().cloned().collect();
        for pair in pairs {
            let Some(entry) = self.inbound.get_mut(&pair) else {
                continue;
            };
            let (expired, kept): (Vec<_>, Vec<_>) =
                entry.dialogs.drain(..).partition(|d| d.expires_at <= now);
            entry.dialogs = kept;
            for d in expired {
                actions.push(Action::Notify {
                    dialog: d.dialog,
                    watcher: pair.0.clone(),
                    contact: pair.1.clone(),
                    state: SubscriptionState::terminated(TerminationReason::Timeout),
                    body: NotifyBody::None,
                });
            }
            if entry.dialogs.is_empty() {
                self.remove_inbound(&pair, &mut actions);
            } else if entry.notify_due.is_some_and(|due| due <= now) {
                actions.extend(Self::notify_all(&pair, entry, now));
            }
        }

        let due: Vec<Pair> = self
            .in_fetches
            .iter()
            .filter(|(_, f)| f.deadline <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for pair in due {
            if let Some(fetch) = self.in_fetches.remove(&pair) {
                self.release(&pair.0, pair.1.domain());
                let body = if fetch.presence.resources.is_empty() {
                    NotifyBody::None
                } else {
                    NotifyBody::Presence(fetch.presence)
                };
                actions.push(Action::Notify {
                    dialog: fetch.dialog,
                    watcher: pair.0,
                    contact: pair.1,
                    state: SubscriptionState::terminated(TerminationReason::Timeout),
                    body,
                });
            }
        }

        let due: Vec<Pair> = self
            .out_fetches
            .iter()
            .filter(|(_, deadline)| **deadline <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for pair in due {
            self.end_out_fetch(&pair);
        }

        let due: Vec<Pair> = self
            .outbound
            .iter()
            .filter(|(_, e)| e.deadline <= now)
            .map(|(p, _)| p.clone())
            .collect();
        for pair in due {
            self.outbound_timer(now, &pair, &mut actions);
        }
        actions
    }

    fn outbound_timer(&mut self, now: Instant, pair: &Pair, actions: &mut Vec<Action<D>>) {
        let timeout = self.config.response_timeout;
        let outgoing = self.config.outgoing_expires;
        let Some(entry) = self.outbound.get_mut(pair) else {
            return;
        };
        match entry.phase {
            OutPhase::Established => {
                // §5.2.2: refresh before expiry; the response must come before the old expiry.
                let expires_at = entry.expires_at.unwrap_or(now);
                entry.phase = OutPhase::Subscribing(SubscribeKind::Refresh);
                entry.requested = outgoing;
                entry.deadline = (now + timeout).min(expires_at.max(now + Duration::from_secs(1)));
                actions.push(Action::SendSubscribe {
                    user: pair.0.clone(),
                    contact: pair.1.clone(),
                    expires: outgoing,
                    kind: SubscribeKind::Refresh,
                });
            }
            // No answer in time counts as 408: transient.
            OutPhase::Subscribing(_) => self.retry_outbound(now, pair, false, actions),
            OutPhase::Waiting => {
                entry.phase = OutPhase::Subscribing(SubscribeKind::Initial);
                entry.deadline = now + timeout;
                actions.push(Action::SendSubscribe {
                    user: pair.0.clone(),
                    contact: pair.1.clone(),
                    expires: entry.requested,
                    kind: SubscribeKind::Initial,
                });
            }
            OutPhase::Unsubscribing => self.finish_outbound(pair, actions),
        }
    }
}

/// The JID a SIP contact's resource speaks from: full when the resource is a valid JID resource.
fn resource_jid(contact: &Jid, resource: &str) -> Jid {
    Jid::new(contact.local(), contact.domain().clone(), Some(resource))
        .unwrap_or_else(|_| contact.clone())
}

/// Stanzas for a whole cached presence; none known means one unavailable from the bare JID (§5.2.1).
fn presence_stanzas<D>(pair: &Pair, presence: &Presence, actions: &mut Vec<Action<D>>) {
    presence_diff(pair, &Presence::default(), presence, true, actions);
}

/// Stanzas turning `old` into `new`: changed or new resources, and unavailable for the ones that went.
fn presence_diff<D>(
    pair: &Pair,
    old: &Presence,
    new: &Presence,
    unknown_is_closed: bool,
    actions: &mut Vec<Action<D>>,
) {
    let (user, contact) = pair;
    if new.resources.is_empty() && unknown_is_closed {
        actions.push(Action::SendPresence {
            from: contact.clone(),
            to: user.clone(),
            presence: ResourcePresence::unavailable(String::new()),
        });
    }
    for r in &new.resources {
        if old.resources.iter().any(|o| o == r) {
            continue;
        }
        actions.push(Action::SendPresence {
            from: resource_jid(contact, &r.resource),
            to: user.clone(),
            presence: r.clone(),
        });
    }
    for gone in old
        .resources
        .iter()
        .filter(|o| o.available && !new.resources.iter().any(|r| r.resource == o.resource))
    {
        actions.push(Action::SendPresence {
            from: resource_jid(contact, &gone.resource),
            to: user.clone(),
            presence: ResourcePresence::unavailable(gone.resource.clone()),
        });
    }
}

/// Unavailable for every resource the XMPP user may still believe online.
fn go_offline<D>(pair: &Pair, presence: &Presence, actions: &mut Vec<Action<D>>) {
    presence_diff(pair, presence, &Presence::default(), false, actions);
}
