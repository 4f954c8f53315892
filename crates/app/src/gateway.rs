//! Starting and stopping the whole gateway.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use sixgate_route::{LocalDelivery, Route, SharedRouteTable};
use sixgate_xmpp::discovery::{Discovery, DnsConfig};
use sixgate_xmpp::tls::TlsContext;
use sixgate_xmpp::{S2sConfig, S2sService};
use sixgate_xmpp_proto::dialback::DialbackSecret;
use sixgate_xmpp_proto::session::SessionConfig;
use sixgate_xmpp_proto::stanza;
use sixgate_xmpp_proto::xml::Element;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use crate::config::Config;
use crate::presence::PresenceSide;
use crate::sip_side::SipSide;
use crate::{certificates, echo, routing};
use sixgate_sip_net::{SipConfig, SipDiscovery, SipService, SipTls};

/// Stanzas waiting for local delivery; beyond this, s2s reads pause (back-pressure instead of memory).
const DELIVERY_QUEUE: usize = 1024;
/// How long shutdown waits for SIP watchers to answer their final NOTIFY.
const NOTIFY_GRACE: Duration = Duration::from_secs(2);
/// How long shutdown waits for streams to close cleanly.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long we wait for a peer's `</stream:stream>` after ours (Prosody's `s2s_close_timeout` is 5 s).
const CLOSE_TIMEOUT: Duration = Duration::from_secs(5);
/// Inbound s2s connections served at once.
const MAX_INBOUND_CONNECTIONS: usize = 1000;

/// A running gateway.
pub struct Gateway {
    s2s: Arc<S2sService>,
    sip: Option<Arc<SipService>>,
    delivery: JoinHandle<()>,
    /// Presence federation, when SIP runs.
    presence: Option<Arc<PresenceSide>>,
    /// The presence subscription table's timer task, when SIP runs.
    presence_timers: Option<JoinHandle<()>>,
    routes: SharedRouteTable,
    /// The configuration running now, to tell what a reload can apply.
    config: Config,
}

impl Gateway {
    /// Loads certificates, binds the listeners and starts serving. Returns once the listeners accept.
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let started_with = config.clone();
        let local_domains = config.local_domain_names();
        let local_certificates = certificates::local_certificates(&config.tls, &local_domains)?;
        let trust = certificates::trust_store(&config.tls)?;
        if trust.is_empty() {
            warn!(
                "no CA is trusted: peers can only authenticate with dialback, for domains marked insecure"
            );
        }
        let routes = SharedRouteTable::new(routing::route_table(&config)?);
        let secret = match &config.xmpp.dialback_secret {
            Some(secret) => DialbackSecret::new(secret.as_bytes()),
            None => DialbackSecret::new(&random_secret()?),
        };
        let session = Arc::new(SessionConfig {
            stanza_size_limit: config.xmpp.stanza_size_limit,
            negotiation_timeout: config.xmpp.negotiation_timeout,
            idle_timeout: config.xmpp.idle_timeout,
            keepalive_interval: config.xmpp.keepalive_interval,
            close_timeout: CLOSE_TIMEOUT,
            dialback_secret: secret,
            trust: Arc::new(trust.clone()),
            policy: Arc::new(routing::RoutePolicy(routes.clone())),
        });
        let sip_tls = SipTls::new(local_certificates.clone(), trust.clone())
            .context("building the SIP TLS configuration")?;
        let tls =
            TlsContext::new(local_certificates, trust).context("building the TLS configuration")?;
        let discovery = Discovery::new(&DnsConfig {
            nameservers: config.dns.nameservers.clone(),
            timeout: config.dns.timeout,
        })
        .context("setting up the DNS resolver")?;
        let (deliver_tx, deliver_rx) = mpsc::channel(DELIVERY_QUEUE);
        let s2s = S2sService::start(
            S2sConfig {
                listen: config.xmpp.listen.clone(),
                connect_timeout: config.xmpp.connect_timeout,
                outbound_queue_limit: config.xmpp.outbound_queue_limit,
                max_inbound_connections: MAX_INBOUND_CONNECTIONS,
                session,
            },
            tls,
            discovery,
            deliver_tx,
        )
        .await?;
        let s2s = Arc::new(s2s);
        let mut presence_timers = None;
        let sip_side = if uses_sip(&config) {
            let (inbound_tx, inbound_rx) = mpsc::channel(DELIVERY_QUEUE);
            let discovery = SipDiscovery::new(&sixgate_sip_net::DnsConfig {
                nameservers: config.dns.nameservers.clone(),
                timeout: config.dns.timeout,
            })
            .context("setting up the SIP DNS resolver")?;
            let sip = SipService::start(
                SipConfig {
                    listen: config.sip.listen.clone(),
                    via_host: config.sip.via_host.clone(),
                    idle_timeout: config.sip.idle_timeout,
                    connect_timeout: config.sip.connect_timeout,
                    handshake_timeout: config.sip.connect_timeout,
                    ..SipConfig::default()
                },
                sip_tls,
                discovery,
                inbound_tx,
            )
            .await?;
            info!(listen = ?sip.local_addrs(), "SIP over TLS started");
            let sip = Arc::new(sip);
            let contact_host = match &config.sip.via_host {
                Some(host) => host.clone(),
                None => sip
                    .local_addrs()
                    .first()
                    .map(ToString::to_string)
                    .context("the SIP service has no listener")?,
            };
            let contact =
                sixgate_sip::message::Uri::parse(&format!("sip:{contact_host};transport=tls"))
                    .context("the SIP Contact of the gateway")?;
            let presence = Arc::new(PresenceSide::new(
                sip.clone(),
                s2s.clone(),
                routes.clone(),
                sixgate_sip::message::NameAddr::new(contact),
            ));
            presence_timers = Some(tokio::spawn(presence.clone().run_timers()));
            let side = Arc::new(SipSide {
                presence,
                sip,
                s2s: s2s.clone(),
                routes: routes.clone(),
                awaiting_error: std::sync::Mutex::default(),
            });
            tokio::spawn(side.clone().serve(inbound_rx));
            Some(side)
        } else {
            None
        };
        let domains: Vec<&str> = local_domains.iter().map(|d| d.as_str()).collect();
        info!(listen = ?s2s.local_addrs(), domains = ?domains, "gateway started");
        let sip = sip_side.as_ref().map(|side| side.sip.clone());
        let presence = sip_side.as_ref().map(|side| side.presence.clone());
        let delivery = tokio::spawn(deliver_locally(
            deliver_rx,
            routes.clone(),
            s2s.clone(),
            sip_side,
        ));
        Ok(Self {
            s2s,
            sip,
            presence,
            delivery,
            presence_timers,
            routes,
            config: started_with,
        })
    }

    /// Applies a new configuration's route table and federation policy without dropping connections: streams
    /// and stanzas in flight keep going, new lookups see the new table. Everything else (listeners, DNS,
    /// certificates, limits, the set of local domains) needs a restart; changes there are refused, so that
    /// what runs is always exactly what some configuration file says.
    pub fn reload(&mut self, config: Config) -> anyhow::Result<()> {
        let needs_restart = needs_restart(&self.config, &config);
        if !needs_restart.is_empty() {
            anyhow::bail!(
                "these settings change only with a restart: {}",
                needs_restart.join(", ")
            );
        }
        self.routes.replace(routing::route_table(&config)?);
        info!(
            remote_domains = config.remote_domains.len(),
            default_route = ?config.federation.default_route,
            "route table reloaded"
        );
        self.config = config;
        Ok(())
    }

    /// The route the live table gives `domain`.
    pub fn route(&self, domain: &sixgate_core::Domain) -> Route {
        self.routes.route(domain)
    }

    /// The addresses the s2s listeners are bound to (useful when configured with port 0).
    pub fn s2s_addrs(&self) -> &[std::net::SocketAddr] {
        self.s2s.local_addrs()
    }

    /// The addresses the SIP listeners are bound to; empty when no route uses SIP.
    pub fn sip_addrs(&self) -> &[std::net::SocketAddr] {
        self.sip.as_ref().map_or(&[], |sip| sip.local_addrs())
    }

    /// Closes every stream cleanly and stops.
    pub async fn shutdown(self) {
        info!("shutting down");
        // Before the SIP service stops: SIP watchers are told to re-subscribe (the table is in memory).
        if let Some(presence) = &self.presence {
            presence.deactivate_watchers(NOTIFY_GRACE).await;
        }
        if let Some(sip) = &self.sip {
            sip.shutdown();
        }
        self.s2s.shutdown(SHUTDOWN_GRACE).await;
        self.delivery.abort();
        let _ = self.delivery.await;
        // XMPP users' subscriptions end here without a stanza (docs/presence.md, "Restarts").
        if let Some(timers) = self.presence_timers {
            timers.abort();
            let _ = timers.await;
        }
    }
}

/// Hands stanzas for our domains to their delivery target, and the targets' answers back to s2s.
async fn deliver_locally(
    mut inbound: mpsc::Receiver<Element>,
    routes: SharedRouteTable,
    s2s: Arc<S2sService>,
    sip: Option<Arc<SipSide>>,
) {
    while let Some(stanza) = inbound.recv().await {
        let Some((_, to)) = stanza::addresses(&stanza) else {
            debug!("stanza without addresses dropped");
            continue;
        };
        match routes.route(to.domain()) {
            Route::Local(LocalDelivery::Echo) => {
                if let Some(reply) = echo::answer(&stanza) {
                    s2s.send(reply).await;
                }
            }
            Route::Local(LocalDelivery::Sip(edge)) => match &sip {
                Some(side) => {
                    let side = side.clone();
                    let local = to.domain().clone();
                    tokio::spawn(async move { side.deliver(stanza, edge, local).await });
                }
                // Started whenever a route uses SIP; a reload cannot add the first SIP route.
                None => warn!(to = %to, "no SIP service for a SIP domain; stanza dropped"),
            },
            // The route table changed since the stanza was accepted.
            Route::Xmpp(_) | Route::Sip(_) | Route::Deny => {
                debug!(to = %to, "stanza for a domain that is no longer ours dropped")
            }
        }
    }
}

/// Whether any route needs the SIP service. It is not started otherwise, so that a gateway without SIP
/// routes does not listen on 5061.
fn uses_sip(config: &Config) -> bool {
    config
        .local_domains
        .iter()
        .any(|local| matches!(local.delivery, crate::config::LocalDelivery::Sip(_)))
        || config
            .remote_domains
            .iter()
            .any(|remote| matches!(remote.route, crate::config::RemoteRoute::Sip(_)))
        || config.federation.default_route == crate::config::DefaultRoute::Sip
}

/// The sections of `new` that differ from `running` and that only a restart can apply.
fn needs_restart(running: &Config, new: &Config) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if running.xmpp != new.xmpp {
        changed.push("[xmpp]");
    }
    if running.sip != new.sip || uses_sip(running) != uses_sip(new) {
        changed.push("[sip]");
    }
    if running.dns != new.dns {
        changed.push("[dns]");
    }
    if running.tls != new.tls {
        changed.push("[tls]");
    }
    if running.local_domains != new.local_domains {
        changed.push("[[local_domains]]");
    }
    changed
}

fn random_secret() -> anyhow::Result<[u8; 32]> {
    let mut secret = [0u8; 32];
    aws_lc_rs::rand::fill(&mut secret)
        .map_err(|_| anyhow::anyhow!("the system random generator failed"))?;
    Ok(secret)
}
