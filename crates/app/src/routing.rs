//! The route table built from the configuration, and the view of it the s2s layer asks.

use sixgate_core::Domain;
use sixgate_route::{
    DefaultRoute, LocalDelivery, Route, RouteTable, SharedRouteTable, SipHop, XmppPeer,
};
use sixgate_xmpp_proto::policy::{DomainPolicy, RemotePolicy};

use crate::config::{self, Config, RemoteRoute};

/// Builds the route table of a configuration.
pub(crate) fn route_table(config: &Config) -> anyhow::Result<RouteTable> {
    let local = config.local_domains.iter().map(|local| {
        let delivery = match &local.delivery {
            config::LocalDelivery::Echo => LocalDelivery::Echo,
            config::LocalDelivery::Sip(edge) => LocalDelivery::Sip(SipHop {
                host: edge.host.clone(),
                port: edge.port,
                identity: edge.identity.clone(),
            }),
        };
        (local.domain.clone(), delivery)
    });
    let remote = config.remote_domains.iter().map(|remote| {
        let route = match &remote.route {
            RemoteRoute::Deny => Route::Deny,
            RemoteRoute::Xmpp(xmpp) => Route::Xmpp(XmppPeer {
                require_valid_certificate: xmpp.require_valid_certificate,
                allow_dialback: xmpp.allow_dialback,
                connect: xmpp.connect.clone(),
            }),
            // A partner's proxy must present a certificate for the partner's domain (RFC 5922 §7.3).
            RemoteRoute::Sip(sip) => Route::Sip(sip.next_hop.as_ref().map(|(host, port)| SipHop {
                host: host.clone(),
                port: *port,
                identity: remote.domain.clone(),
            })),
        };
        (remote.domain.clone(), route)
    });
    let default = match config.federation.default_route {
        config::DefaultRoute::Deny => DefaultRoute::Deny,
        config::DefaultRoute::Xmpp => DefaultRoute::Xmpp {
            require_valid_certificate: config.federation.require_valid_certificate,
            allow_dialback: config.federation.allow_dialback,
        },
        config::DefaultRoute::Sip => DefaultRoute::Sip,
    };
    Ok(RouteTable::new(local, remote, default)?)
}

/// The s2s layer's view of the live route table.
pub(crate) struct RoutePolicy(pub(crate) SharedRouteTable);

impl DomainPolicy for RoutePolicy {
    fn is_local(&self, domain: &Domain) -> bool {
        self.0.load().is_local(domain)
    }

    fn remote(&self, domain: &Domain) -> Option<RemotePolicy> {
        match self.0.route(domain) {
            Route::Xmpp(peer) => Some(RemotePolicy {
                require_valid_certificate: peer.require_valid_certificate,
                allow_dialback: peer.allow_dialback,
            }),
            Route::Local(_) | Route::Sip(_) | Route::Deny => None,
        }
    }

    fn static_endpoints(&self, domain: &Domain) -> Vec<(String, u16)> {
        match self.0.route(domain) {
            Route::Xmpp(peer) => peer.connect,
            Route::Local(_) | Route::Sip(_) | Route::Deny => Vec::new(),
        }
    }
}
