//! The SIP service: TLS listeners, the pool of connections we opened, and sending requests through client
//! transactions.

use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sixgate_core::Domain;
use sixgate_sip::message::{HostPort, Request, Response};
use sixgate_sip::transaction::FlowId;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tracing::{Instrument as _, debug, field, info, info_span, warn};

use crate::config::SipConfig;
use crate::connection::{ConnectionSettings, drive};
use crate::discovery::{DiscoveryError, Endpoint, SipDiscovery};
use crate::engine::{Engine, Outcome};
use crate::incoming::{IncomingRequest, PeerInfo};
use crate::tls::SipTls;

/// Where to send a request, and whom the server there must prove to be.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct NextHop {
    /// How to find the server.
    pub target: Target,
    /// The SIP domain the server's certificate must name (RFC 5922 §7.2, no wildcards); the connection is
    /// refused otherwise (§7.3). Also sent as SNI.
    pub identity: Domain,
    /// Which of our domains' certificates to present as client certificate; `None` presents none, which
    /// most federation peers refuse.
    pub local: Option<Domain>,
}

/// How to find the server of a [`NextHop`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Target {
    /// A configured server: an IP literal (`[v6]` accepted) or a host name resolved to A and AAAA, and the
    /// port.
    Static {
        /// Host name or IP literal.
        host: String,
        /// TCP port, normally 5061.
        port: u16,
    },
    /// The domain's SIP server per DNS: `_sipfederationtls._tcp` SRV, then RFC 3263 (NAPTR `SIPS+D2T`,
    /// `_sips._tcp` SRV, A/AAAA on 5061); see [`crate::discovery`].
    Discover(Domain),
}

/// Why [`SipService::send_request`] returned no response.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// DNS says the domain has no SIP over TLS service (NXDOMAIN, no records, SRV `"."`).
    #[error("no SIP service found for the domain")]
    NotFound,
    /// No final response before Timer F (64·T1): act as on a 408 (RFC 3261 §8.1.3.1).
    #[error("no final response in time")]
    Timeout,
    /// Every server failed: DNS errors, connection or TLS failures, a server certificate not valid for
    /// the identity, or a connection lost before the final response. Says what happened last.
    #[error("{0}")]
    Transport(String),
    /// The request cannot be sent by this service: INVITE and ACK have no non-INVITE transaction.
    #[error("invalid request: {0}")]
    InvalidRequest(String),
    /// The forwarded request already passed through this gateway unchanged: a routing loop (answer 482).
    #[error("the request is looping through this gateway")]
    Loop,
}

/// A connection we opened is shared by every request with the same resolved address, expected server
/// identity and presented client certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    addr: SocketAddr,
    identity: Domain,
    local: Option<Domain>,
}

/// The flow of an opened connection, behind an async lock so that concurrent requests to a new
/// destination wait for one connection instead of each opening their own.
type PoolSlot = Arc<tokio::sync::Mutex<Option<FlowId>>>;

/// A running SIP over TLS service. Dropping it stops the listeners; [`SipService::shutdown`] also closes
/// the connections.
pub struct SipService {
    inner: Arc<Inner>,
    local_addrs: Vec<SocketAddr>,
    stop: watch::Sender<bool>,
}

struct Inner {
    tls: SipTls,
    discovery: SipDiscovery,
    engine: Arc<Engine>,
    via: Option<HostPort>,
    settings: ConnectionSettings,
    connect_timeout: Duration,
    handshake_timeout: Duration,
    permits: Arc<Semaphore>,
    pool: Mutex<HashMap<PoolKey, PoolSlot>>,
    /// Connections accepted by the listeners since the start.
    accepted: AtomicU64,
}

impl SipService {
    /// Binds the listeners of `config.listen` and starts accepting mutual TLS. Requests from peers, on
    /// accepted connections and on those we opened alike, go to `inbound`; while it is full, the
    /// connection they came on stops reading.
    pub async fn start(
        config: SipConfig,
        tls: SipTls,
        discovery: SipDiscovery,
        inbound: mpsc::Sender<IncomingRequest>,
    ) -> io::Result<Self> {
        let via = config
            .via_host
            .as_deref()
            .map(|host| {
                HostPort::parse(host).map_err(|err| {
                    io::Error::new(io::ErrorKind::InvalidInput, format!("via_host: {err}"))
                })
            })
            .transpose()?;
        let mut listeners = Vec::new();
        for address in &config.listen {
            let listener = TcpListener::bind(address).await.map_err(|err| {
                io::Error::new(err.kind(), format!("cannot listen on {address}: {err}"))
            })?;
            listeners.push(listener);
        }
        let local_addrs = listeners
            .iter()
            .map(TcpListener::local_addr)
            .collect::<io::Result<Vec<_>>>()?;
        let inner = Arc::new(Inner {
            tls,
            discovery,
            engine: Engine::start(config.transaction, inbound),
            via,
            settings: ConnectionSettings {
                idle_timeout: config.idle_timeout,
                frame_limits: config.frame_limits,
            },
            connect_timeout: config.connect_timeout,
            handshake_timeout: config.handshake_timeout,
            permits: Arc::new(Semaphore::new(config.max_connections.max(1))),
            pool: Mutex::new(HashMap::new()),
            accepted: AtomicU64::new(0),
        });
        let (stop, _) = watch::channel(false);
        for listener in listeners {
            tokio::spawn(accept_loop(Arc::clone(&inner), listener, stop.subscribe()));
        }
        Ok(Self {
            inner,
            local_addrs,
            stop,
        })
    }

    /// The addresses the listeners are bound to, in the order of [`SipConfig::listen`].
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Sends `request` to `next_hop` and returns its final response (provisional ones are skipped).
    ///
    /// The request goes out through a client transaction with our own top `Via`
    /// (`SIP/2.0/TLS <sent-by>;branch=z9hG4bK…;rport`, see [`SipConfig::via_host`]), which is removed from
    /// the response again; `Max-Forwards: 70` is added when missing. Servers are tried in discovery
    /// order until one takes the request; an open connection to the same address, identity and client
    /// certificate is reused, and if a reused connection turns out dead the request is sent once more on a
    /// new one.
    pub async fn send_request(
        &self,
        next_hop: &NextHop,
        request: Request,
    ) -> Result<Response, SendError> {
        let span = info_span!(
            "sip_request",
            call_id = %request.call_id,
            method = %request.method,
            identity = %next_hop.identity,
            branch = field::Empty,
        );
        if *self.stop.borrow() {
            return Err(SendError::Transport(
                "the SIP service is shutting down".to_owned(),
            ));
        }
        self.inner.send(next_hop, request).instrument(span).await
    }

    /// Stops accepting and closes every connection; requests in flight and later ones fail with
    /// [`SendError::Transport`].
    pub fn shutdown(&self) {
        self.stop.send_replace(true);
        self.inner
            .pool
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        self.inner.engine.close_all();
    }

    /// Connections the listeners accepted since the start, whether their handshake succeeded or not.
    #[cfg(test)]
    pub(crate) fn accepted(&self) -> u64 {
        self.inner.accepted.load(Ordering::Relaxed)
    }
}

impl std::fmt::Debug for SipService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SipService")
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl Inner {
    async fn send(
        self: &Arc<Self>,
        next_hop: &NextHop,
        request: Request,
    ) -> Result<Response, SendError> {
        let endpoints = self.resolve(&next_hop.target).await?;
        let mut failure = None;
        for endpoint in endpoints {
            let key = PoolKey {
                addr: endpoint.addr,
                identity: next_hop.identity.clone(),
                local: next_hop.local.clone(),
            };
            // A pooled connection may have died without us noticing yet (the peer closed it while idle);
            // then the request deserves one more try on a fresh connection to the same server.
            for _ in 0..2 {
                let (flow, reused) = match self.connection(&key, &endpoint).await {
                    Ok(connection) => connection,
                    Err(err) => {
                        debug!(server = %endpoint.addr, %err, "server unusable");
                        failure = Some(err);
                        break;
                    }
                };
                match self.transact(flow, request.clone()).await {
                    // Only a request that never reached the connection is tried again: one that was
                    // written may have been processed, and a second copy would deliver the message twice.
                    Err(Attempt::NotSent(reason)) => {
                        debug!(server = %endpoint.addr, %reason, "connection unusable");
                        failure = Some(SendError::Transport(reason));
                        if !reused {
                            break;
                        }
                    }
                    Err(Attempt::Failed(error)) => return Err(error),
                    Ok(response) => return Ok(response),
                }
            }
        }
        Err(failure.unwrap_or_else(|| SendError::Transport("no server to try".to_owned())))
    }

    async fn resolve(&self, target: &Target) -> Result<Vec<Endpoint>, SendError> {
        let resolved = match target {
            Target::Static { host, port } => {
                self.discovery
                    .resolve_static(&[(host.clone(), *port)])
                    .await
            }
            Target::Discover(domain) => self.discovery.resolve(domain).await,
        };
        resolved.map_err(|err| match err {
            DiscoveryError::NotFound => SendError::NotFound,
            other => SendError::Transport(other.to_string()),
        })
    }

    /// The pooled connection for `key` if it is still open (`true`), else a new one (`false`).
    async fn connection(
        self: &Arc<Self>,
        key: &PoolKey,
        endpoint: &Endpoint,
    ) -> Result<(FlowId, bool), SendError> {
        let slot = Arc::clone(
            self.pool
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(key.clone())
                .or_default(),
        );
        let mut current = slot.lock().await;
        if let Some(flow) = *current
            && self.engine.flow_is_open(flow)
        {
            return Ok((flow, true));
        }
        match self.open(key, endpoint).await {
            Ok(flow) => {
                *current = Some(flow);
                Ok((flow, false))
            }
            Err(err) => {
                *current = None;
                drop(current);
                drop(slot);
                self.forget(key, None);
                Err(err)
            }
        }
    }

    /// Opens a TLS connection for `key` and starts driving it.
    async fn open(
        self: &Arc<Self>,
        key: &PoolKey,
        endpoint: &Endpoint,
    ) -> Result<FlowId, SendError> {
        let permit = Arc::clone(&self.permits)
            .try_acquire_owned()
            .map_err(|_| SendError::Transport("too many connections open".to_owned()))?;
        let addr = key.addr;
        let tcp = tokio::time::timeout(self.connect_timeout, TcpStream::connect(addr))
            .await
            .map_err(|_| SendError::Transport(format!("connecting to {addr} timed out")))?
            .map_err(|err| SendError::Transport(format!("connecting to {addr}: {err}")))?;
        let _ = tcp.set_nodelay(true);
        let local_addr = tcp
            .local_addr()
            .map_err(|err| SendError::Transport(format!("connection to {addr}: {err}")))?;
        let (stream, identities) = self
            .tls
            .connect(
                tcp,
                &key.identity,
                key.local.as_ref(),
                self.handshake_timeout,
            )
            .await
            .map_err(|reason| {
                SendError::Transport(format!("{} ({addr}): {reason}", endpoint.host))
            })?;
        let span = info_span!(
            parent: None,
            "sip_connection",
            peer = %addr,
            direction = "out",
            host = %endpoint.host,
            identities = ?identities,
        );
        span.in_scope(|| info!("connected"));
        let peer = PeerInfo { addr, identities };
        let flow = self.engine.register_flow(peer, local_addr);
        let id = flow.id;
        let this = Arc::clone(self);
        let key = key.clone();
        tokio::spawn(
            async move {
                drive(Arc::clone(&this.engine), stream, addr, flow, this.settings).await;
                this.forget(&key, Some(id));
                drop(permit);
            }
            .instrument(span),
        );
        Ok(id)
    }

    /// Removes the pool entry of `key` if nobody is using it and it holds `flow` (or nothing).
    fn forget(&self, key: &PoolKey, flow: Option<FlowId>) {
        let mut pool = self.pool.lock().unwrap_or_else(PoisonError::into_inner);
        let unused = pool.get(key).is_some_and(|slot| {
            Arc::strong_count(slot) == 1
                && slot
                    .try_lock()
                    .is_ok_and(|current| current.is_none() || *current == flow)
        });
        if unused {
            pool.remove(key);
        }
    }

    /// Runs one client transaction on `flow`.
    async fn transact(&self, flow: FlowId, request: Request) -> Result<Response, Attempt> {
        let (key, outcome) = self
            .engine
            .start_client(flow, request, self.via.as_ref())
            .map_err(|error| match error {
                SendError::Transport(reason) => Attempt::NotSent(reason),
                other => Attempt::Failed(other),
            })?;
        tracing::Span::current().record("branch", key.branch());
        match outcome.await {
            Ok(Outcome::Final(response)) => {
                let mut response = *response;
                let ours = response
                    .top_via()
                    .and_then(|via| via.cookie_branch())
                    .is_some_and(|branch| branch.eq_ignore_ascii_case(key.branch()));
                if ours {
                    response.via.remove(0);
                }
                debug!(status = %response.status, "final response");
                Ok(response)
            }
            Ok(Outcome::Timeout) => Err(Attempt::Failed(SendError::Timeout)),
            Ok(Outcome::Transport) | Err(_) => Err(Attempt::Failed(SendError::Transport(
                "connection lost before the final response".to_owned(),
            ))),
        }
    }
}

/// How one attempt to send a request on a connection failed.
enum Attempt {
    /// The connection was closed before the request was queued on it: safe to try another.
    NotSent(String),
    /// The request may have been sent.
    Failed(SendError),
}

async fn accept_loop(inner: Arc<Inner>, listener: TcpListener, mut stop: watch::Receiver<bool>) {
    let local = listener.local_addr().ok();
    info!(address = ?local, "accepting SIP over TLS");
    loop {
        let permit = tokio::select! {
            permit = Arc::clone(&inner.permits).acquire_owned() => permit,
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let Ok(permit) = permit else {
            return;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            // Also taken when the service is dropped, which drops the sender.
            _ = stop.wait_for(|stop| *stop) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(err) => {
                // Typically EMFILE; back off briefly instead of spinning.
                warn!(%err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        inner.accepted.fetch_add(1, Ordering::Relaxed);
        let _ = tcp.set_nodelay(true);
        let span = info_span!(
            "sip_connection",
            %peer,
            direction = "in",
            identities = field::Empty,
        );
        tokio::spawn(serve(Arc::clone(&inner), tcp, peer, permit).instrument(span));
    }
}

/// One accepted connection: mutual TLS, the judgement of the client's chain, then SIP.
async fn serve(inner: Arc<Inner>, tcp: TcpStream, peer: SocketAddr, permit: OwnedSemaphorePermit) {
    let local_addr = match tcp.local_addr() {
        Ok(addr) => addr,
        Err(err) => {
            debug!(%err, "connection lost before TLS");
            return;
        }
    };
    let (stream, identities) = match inner.tls.accept(tcp, inner.handshake_timeout).await {
        Ok(accepted) => accepted,
        Err(reason) => {
            info!(%reason, "peer refused");
            return;
        }
    };
    tracing::Span::current().record("identities", field::debug(&identities));
    info!("peer authenticated");
    let flow = inner.engine.register_flow(
        PeerInfo {
            addr: peer,
            identities,
        },
        local_addr,
    );
    drive(
        Arc::clone(&inner.engine),
        stream,
        peer,
        flow,
        inner.settings,
    )
    .await;
    drop(permit);
}
