//! The per-domain route table: for every domain, whether it is one of ours, a remote XMPP domain (and how it
//! must authenticate), or denied.
//!
//! Lookups run on every stanza, so the table is an immutable snapshot behind an [`arc_swap::ArcSwap`]:
//! readers never lock, and a reload swaps in a whole new table without disturbing streams in flight.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use sixgate_core::Domain;

/// What the gateway does with messages for one of its own domains.
// Deliberately exhaustive: a new delivery kind must be handled wherever deliveries are dispatched.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalDelivery {
    /// Every message is sent back to its sender (a test target that proves the s2s stack).
    Echo,
    /// The domain's users are reached through its SIP edge proxy.
    Sip(SipHop),
}

/// A SIP next hop and the identity its certificate must carry (RFC 5922).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipHop {
    /// Host name or IP address.
    pub host: String,
    /// Port.
    pub port: u16,
    /// The SIP domain identity of its certificate.
    pub identity: Domain,
}

/// How a remote XMPP domain is reached and must authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XmppPeer {
    /// The peer's certificate must be valid for its domain; false means the operator marked it insecure.
    pub require_valid_certificate: bool,
    /// Server Dialback may authenticate the domain.
    pub allow_dialback: bool,
    /// Static `host:port` endpoints that replace DNS discovery; empty means discover.
    pub connect: Vec<(String, u16)>,
}

/// The decision for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// One of ours.
    Local(LocalDelivery),
    /// A remote XMPP domain.
    Xmpp(XmppPeer),
    /// A remote domain federated over SIP: a static next hop, or `None` to find its servers in DNS.
    Sip(Option<SipHop>),
    /// No federation with this domain.
    Deny,
}

/// What happens to remote domains that are not listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DefaultRoute {
    /// Refuse them.
    Deny,
    /// Federate over XMPP with the given policy, discovering servers through DNS.
    Xmpp {
        /// See [`XmppPeer::require_valid_certificate`].
        require_valid_certificate: bool,
        /// See [`XmppPeer::allow_dialback`].
        allow_dialback: bool,
    },
    /// Federate over SIP, finding servers in DNS.
    Sip,
}

/// An immutable route table.
#[derive(Debug, Clone)]
pub struct RouteTable {
    local: HashMap<Domain, LocalDelivery>,
    remote: HashMap<Domain, Route>,
    default: DefaultRoute,
}

/// A domain listed twice or as both local and remote.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("domain {0} is listed more than once")]
pub struct DuplicateDomain(pub Domain);

impl RouteTable {
    /// Builds a table. `remote` entries must be `Route::Xmpp` or `Route::Deny`.
    pub fn new(
        local: impl IntoIterator<Item = (Domain, LocalDelivery)>,
        remote: impl IntoIterator<Item = (Domain, Route)>,
        default: DefaultRoute,
    ) -> Result<Self, DuplicateDomain> {
        let mut table = Self {
            local: HashMap::new(),
            remote: HashMap::new(),
            default,
        };
        for (domain, delivery) in local {
            if table.local.insert(domain.clone(), delivery).is_some() {
                return Err(DuplicateDomain(domain));
            }
        }
        for (domain, route) in remote {
            if table.local.contains_key(&domain)
                || table.remote.insert(domain.clone(), route).is_some()
            {
                return Err(DuplicateDomain(domain));
            }
        }
        Ok(table)
    }

    /// The route for `domain`.
    pub fn route(&self, domain: &Domain) -> Route {
        if let Some(delivery) = self.local.get(domain) {
            return Route::Local(delivery.clone());
        }
        if let Some(route) = self.remote.get(domain) {
            return route.clone();
        }
        match &self.default {
            DefaultRoute::Deny => Route::Deny,
            DefaultRoute::Xmpp {
                require_valid_certificate,
                allow_dialback,
            } => Route::Xmpp(XmppPeer {
                require_valid_certificate: *require_valid_certificate,
                allow_dialback: *allow_dialback,
                connect: Vec::new(),
            }),
            DefaultRoute::Sip => Route::Sip(None),
        }
    }

    /// Whether `domain` is one of ours.
    pub fn is_local(&self, domain: &Domain) -> bool {
        self.local.contains_key(domain)
    }

    /// Our domains.
    pub fn local_domains(&self) -> impl Iterator<Item = &Domain> {
        self.local.keys()
    }

    /// Our domains whose SIP edge proxy carries `identity` in its certificate: the domains a SIP peer with
    /// that identity may send requests from.
    pub fn domains_behind_edge<'a>(
        &'a self,
        identity: &'a Domain,
    ) -> impl Iterator<Item = &'a Domain> + 'a {
        self.local
            .iter()
            .filter_map(move |(domain, delivery)| match delivery {
                LocalDelivery::Sip(hop) if hop.identity == *identity => Some(domain),
                LocalDelivery::Sip(_) | LocalDelivery::Echo => None,
            })
    }
}

/// The live table, shared by every connection; [`SharedRouteTable::replace`] swaps it atomically.
#[derive(Debug, Clone)]
pub struct SharedRouteTable(Arc<ArcSwap<RouteTable>>);

impl SharedRouteTable {
    /// Shares `table`.
    pub fn new(table: RouteTable) -> Self {
        Self(Arc::new(ArcSwap::from_pointee(table)))
    }

    /// The current snapshot.
    pub fn load(&self) -> Arc<RouteTable> {
        self.0.load_full()
    }

    /// The route for `domain` in the current snapshot.
    pub fn route(&self, domain: &Domain) -> Route {
        self.0.load().route(domain)
    }

    /// Replaces the table; lookups already under way finish with the old one.
    pub fn replace(&self, table: RouteTable) {
        self.0.store(Arc::new(table));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::parse(s).unwrap()
    }

    fn peer(require: bool) -> XmppPeer {
        XmppPeer {
            require_valid_certificate: require,
            allow_dialback: true,
            connect: vec![("127.0.0.1".into(), 5269)],
        }
    }

    #[test]
    fn lookups_follow_the_table_then_the_default() {
        let table = RouteTable::new(
            [(d("gw.example"), LocalDelivery::Echo)],
            [
                (d("partner.example"), Route::Xmpp(peer(false))),
                (d("bad.example"), Route::Deny),
            ],
            DefaultRoute::Deny,
        )
        .unwrap();
        assert_eq!(
            table.route(&d("gw.example")),
            Route::Local(LocalDelivery::Echo)
        );
        assert_eq!(table.route(&d("partner.example")), Route::Xmpp(peer(false)));
        assert_eq!(table.route(&d("bad.example")), Route::Deny);
        assert_eq!(table.route(&d("unknown.example")), Route::Deny);
        assert!(table.is_local(&d("gw.example")));
        assert!(!table.is_local(&d("partner.example")));
    }

    #[test]
    fn open_federation_default() {
        let table = RouteTable::new(
            [],
            [],
            DefaultRoute::Xmpp {
                require_valid_certificate: true,
                allow_dialback: false,
            },
        )
        .unwrap();
        assert_eq!(
            table.route(&d("any.example")),
            Route::Xmpp(XmppPeer {
                require_valid_certificate: true,
                allow_dialback: false,
                connect: vec![]
            })
        );
    }

    #[test]
    fn duplicates_are_refused() {
        assert!(
            RouteTable::new(
                [(d("a.example"), LocalDelivery::Echo)],
                [(d("a.example"), Route::Deny)],
                DefaultRoute::Deny
            )
            .is_err()
        );
        assert!(
            RouteTable::new(
                [],
                [(d("b.example"), Route::Deny), (d("b.example"), Route::Deny)],
                DefaultRoute::Deny
            )
            .is_err()
        );
    }

    #[test]
    fn replace_swaps_for_new_lookups() {
        let shared = SharedRouteTable::new(RouteTable::new([], [], DefaultRoute::Deny).unwrap());
        let before = shared.load();
        shared.replace(
            RouteTable::new(
                [(d("gw.example"), LocalDelivery::Echo)],
                [],
                DefaultRoute::Deny,
            )
            .unwrap(),
        );
        assert_eq!(before.route(&d("gw.example")), Route::Deny);
        assert_eq!(
            shared.route(&d("gw.example")),
            Route::Local(LocalDelivery::Echo)
        );
    }
}
