//! The XMPP sink: an s2s service for `sink.example` that accepts the gateway's stream (SASL EXTERNAL with
//! the test CA) and counts the `<message/>`s delivered to it.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sixgate_core::Domain;
use sixgate_xmpp::discovery::{Discovery, DnsConfig};
use sixgate_xmpp::tls::{LocalCertificates, TlsContext};
use sixgate_xmpp::{S2sConfig, S2sService};
use sixgate_xmpp_proto::certificate::TrustStore;
use sixgate_xmpp_proto::dialback::DialbackSecret;
use sixgate_xmpp_proto::policy::{DomainPolicy, RemotePolicy};
use sixgate_xmpp_proto::session::SessionConfig;
use tokio::sync::{Notify, mpsc};

/// `sink.example` is ours; `corp.example` (the gateway) may federate, with a valid certificate only.
struct SinkPolicy {
    local: Domain,
    gateway: Domain,
}

impl DomainPolicy for SinkPolicy {
    fn is_local(&self, domain: &Domain) -> bool {
        *domain == self.local
    }

    fn remote(&self, domain: &Domain) -> Option<RemotePolicy> {
        (*domain == self.gateway).then_some(RemotePolicy {
            require_valid_certificate: true,
            allow_dialback: false,
        })
    }
}

/// Arrivals since the last [`Sink::reset`].
#[derive(Debug, Clone, Default)]
pub(crate) struct Arrivals {
    /// `<message/>` stanzas received.
    pub(crate) messages: u64,
    /// Of those, the ones whose recipient (`sink<i>@…`, one per MESSAGE sent) had not been seen before.
    pub(crate) unique: u64,
    /// Other stanzas (there should be none).
    pub(crate) other: u64,
    pub(crate) first: Option<Instant>,
    pub(crate) last: Option<Instant>,
    seen: HashSet<String>,
}

/// The running sink.
pub(crate) struct Sink {
    service: S2sService,
    arrivals: Arc<Mutex<Arrivals>>,
    changed: Arc<Notify>,
}

impl Sink {
    pub(crate) async fn start(
        listen: SocketAddr,
        domain: &str,
        gateway_domain: &str,
        local: LocalCertificates,
        trust: TrustStore,
    ) -> anyhow::Result<Self> {
        let session = Arc::new(SessionConfig {
            stanza_size_limit: 524_288,
            negotiation_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(600),
            keepalive_interval: Duration::from_secs(60),
            close_timeout: Duration::from_secs(1),
            dialback_secret: DialbackSecret::new(b"sixgate-loadgen sink, dialback is off"),
            trust: Arc::new(trust.clone()),
            policy: Arc::new(SinkPolicy {
                local: Domain::parse(domain)?,
                gateway: Domain::parse(gateway_domain)?,
            }),
        });
        let tls = TlsContext::new(local, trust).context("sink TLS configuration")?;
        // The sink never connects out, so its resolver is never asked; port 9 refuses at once if it were.
        let discovery = Discovery::new(&DnsConfig {
            nameservers: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
            timeout: Duration::from_millis(200),
        })
        .context("sink resolver")?;
        let (deliver, mut inbox) = mpsc::channel(4096);
        let service = S2sService::start(
            S2sConfig {
                listen: vec![listen],
                connect_timeout: Duration::from_secs(5),
                outbound_queue_limit: 16,
                max_inbound_connections: 64,
                session,
            },
            tls,
            discovery,
            deliver,
        )
        .await
        .with_context(|| format!("starting the XMPP sink on {listen}"))?;
        let arrivals = Arc::new(Mutex::new(Arrivals::default()));
        let changed = Arc::new(Notify::new());
        let (counted, notify) = (arrivals.clone(), changed.clone());
        tokio::spawn(async move {
            while let Some(stanza) = inbox.recv().await {
                let now = Instant::now();
                {
                    let mut arrivals = counted.lock().unwrap_or_else(PoisonError::into_inner);
                    if stanza.name() == "message" {
                        arrivals.messages += 1;
                        let to = stanza.attr("to").unwrap_or_default();
                        if !arrivals.seen.contains(to) {
                            arrivals.seen.insert(to.to_owned());
                            arrivals.unique += 1;
                        }
                    } else {
                        arrivals.other += 1;
                    }
                    arrivals.first.get_or_insert(now);
                    arrivals.last = Some(now);
                }
                notify.notify_waiters();
            }
        });
        Ok(Self {
            service,
            arrivals,
            changed,
        })
    }

    /// The counts so far (without the set of recipients seen).
    pub(crate) fn arrivals(&self) -> Arrivals {
        let arrivals = self.arrivals.lock().unwrap_or_else(PoisonError::into_inner);
        Arrivals {
            seen: HashSet::new(),
            ..*arrivals
        }
    }

    /// Starts counting afresh (after the warm-up).
    pub(crate) fn reset(&self) {
        *self.arrivals.lock().unwrap_or_else(PoisonError::into_inner) = Arrivals::default();
    }

    /// Waits until `count` distinct messages have arrived since the last reset, or `patience` passes without a new
    /// arrival. Returns what arrived.
    pub(crate) async fn wait_for(&self, count: u64, patience: Duration) -> Arrivals {
        loop {
            let notified = self.changed.notified();
            let arrivals = self.arrivals();
            if arrivals.unique >= count {
                return arrivals;
            }
            if tokio::time::timeout(patience, notified).await.is_err() {
                return self.arrivals();
            }
        }
    }

    pub(crate) async fn shutdown(&self) {
        self.service.shutdown(Duration::from_secs(2)).await;
    }
}
