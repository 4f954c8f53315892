//! The s2s service: the inbound listener, one outbound stream per (local domain, remote domain) pair with its
//! bounded queue, and the short-lived connections that verify dialback keys.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use rustls_pki_types::{ServerName, UnixTime};
use sixgate_core::Domain;
use sixgate_xmpp_proto::error::SessionEnd;
use sixgate_xmpp_proto::session::{DialbackOutcome, Event, Session, SessionConfig, TlsInfo};
use sixgate_xmpp_proto::stanza::{self, StanzaErrorCondition};
use sixgate_xmpp_proto::xml::Element;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, mpsc, watch};
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::connection::{Connection, Control, Handler, TlsSide};
use crate::discovery::{Discovery, DiscoveryError, Endpoint};
use crate::outgoing::{Outgoing, Undeliverable};
use crate::tls::TlsContext;
use crate::transport::Transport;

/// Settings of the s2s service.
pub struct S2sConfig {
    /// Addresses to accept inbound s2s connections on (none: outbound only).
    pub listen: Vec<SocketAddr>,
    /// TCP connect timeout per endpoint (also bounds each TLS handshake).
    pub connect_timeout: Duration,
    /// Stanzas queued per (local, remote) pair while its stream is being set up.
    pub outbound_queue_limit: usize,
    /// Inbound connections accepted at once; further ones wait in the kernel's backlog.
    pub max_inbound_connections: usize,
    /// Session settings (limits, timers, dialback secret, trust, domain policy).
    pub session: Arc<SessionConfig>,
}

/// A running s2s service.
pub struct S2sService {
    inner: Arc<Inner>,
    local_addrs: Vec<SocketAddr>,
}

struct Inner {
    config: S2sConfig,
    tls: TlsContext,
    discovery: Discovery,
    /// Stanzas for our local domains: inbound stanzas and bounces of our own.
    deliver: mpsc::Sender<Element>,
    outbound: Mutex<HashMap<(Domain, Domain), mpsc::Sender<Outgoing>>>,
    shutdown: watch::Sender<bool>,
    live_tasks: AtomicUsize,
    all_done: Notify,
}

/// Counts a running task so that shutdown can wait for it.
struct TaskGuard(Arc<Inner>);

impl TaskGuard {
    fn new(inner: &Arc<Inner>) -> Self {
        inner.live_tasks.fetch_add(1, Ordering::SeqCst);
        Self(inner.clone())
    }
}

impl Drop for TaskGuard {
    fn drop(&mut self) {
        if self.0.live_tasks.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.0.all_done.notify_waiters();
        }
    }
}

impl S2sService {
    /// Binds the listeners and starts accepting. Stanzas for our domains (and bounces of stanzas we could
    /// not deliver) are sent to `deliver`; waiting on it slows the peers down rather than buffering.
    pub async fn start(
        config: S2sConfig,
        tls: TlsContext,
        discovery: Discovery,
        deliver: mpsc::Sender<Element>,
    ) -> std::io::Result<Self> {
        let mut listeners = Vec::new();
        for address in &config.listen {
            let listener = TcpListener::bind(address).await.map_err(|error| {
                std::io::Error::new(error.kind(), format!("cannot listen on {address}: {error}"))
            })?;
            listeners.push(listener);
        }
        let local_addrs = listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect();
        let (shutdown, _) = watch::channel(false);
        let inner = Arc::new(Inner {
            config,
            tls,
            discovery,
            deliver,
            outbound: Mutex::new(HashMap::new()),
            shutdown,
            live_tasks: AtomicUsize::new(0),
            all_done: Notify::new(),
        });
        let permits = Arc::new(Semaphore::new(inner.config.max_inbound_connections.max(1)));
        for listener in listeners {
            let guard = TaskGuard::new(&inner);
            let permits = permits.clone();
            tokio::spawn(async move {
                accept_loop(guard, listener, permits).await;
            });
        }
        Ok(Self { inner, local_addrs })
    }

    /// The addresses the listeners are bound to.
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Sends a stanza from one of our domains to a remote XMPP domain, over the pair's stream (opened on
    /// demand). If it cannot be delivered, an error bounce goes to `deliver`.
    pub async fn send(&self, stanza: Element) {
        self.inner.enqueue(Outgoing::plain(stanza)).await;
    }

    /// Like [`S2sService::send`], but instead of a bounce the caller learns the outcome: `Ok` once the
    /// stanza has been written to an authenticated stream (or handed to local delivery), the reason
    /// otherwise. This is what lets the SIP side answer a MESSAGE only when it is really on its way.
    pub async fn send_confirmed(&self, stanza: Element) -> Result<(), Undeliverable> {
        let (outgoing, outcome) = Outgoing::confirmed(stanza);
        self.inner.enqueue(outgoing).await;
        outcome.await.unwrap_or_else(|_| {
            Err(Undeliverable {
                condition: StanzaErrorCondition::RemoteServerTimeout,
                text: "the gateway is shutting down".to_owned(),
            })
        })
    }

    /// Stops accepting, closes every stream cleanly and waits (at most `grace`) for them to finish.
    pub async fn shutdown(&self, grace: Duration) {
        self.inner.shutdown.send_replace(true);
        self.inner
            .outbound
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
        let wait = async {
            loop {
                let notified = self.inner.all_done.notified();
                if self.inner.live_tasks.load(Ordering::SeqCst) == 0 {
                    return;
                }
                notified.await;
            }
        };
        if tokio::time::timeout(grace, wait).await.is_err() {
            warn!(
                remaining = self.inner.live_tasks.load(Ordering::SeqCst),
                "s2s connections still open after the shutdown grace period"
            );
        }
    }
}

async fn accept_loop(guard: TaskGuard, listener: TcpListener, permits: Arc<Semaphore>) {
    let inner = guard.0.clone();
    let mut shutdown = inner.shutdown.subscribe();
    let local = listener.local_addr().ok();
    info!(address = ?local, "accepting s2s connections");
    loop {
        let Ok(permit) = permits.clone().acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = shutdown.wait_for(|stop| *stop) => return,
        };
        let (tcp, peer) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                // Typically EMFILE; back off briefly instead of spinning.
                warn!(%error, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let connection_guard = TaskGuard::new(&inner);
        let span = info_span!("s2s_in", %peer, stream = tracing::field::Empty, remote = tracing::field::Empty);
        tokio::spawn(
            async move {
                serve_inbound(connection_guard, tcp).await;
                drop(permit);
            }
            .instrument(span),
        );
    }
}

struct InboundHandler {
    inner: Arc<Inner>,
    control: mpsc::Sender<Control>,
}

impl Handler for InboundHandler {
    async fn event(&mut self, event: Event, session: &mut Session) {
        match event {
            Event::Stanza(stanza) => {
                if self.inner.deliver.send(stanza).await.is_err() {
                    warn!("local delivery has stopped; inbound stanza dropped");
                }
            }
            Event::VerifyDialback {
                local,
                remote,
                stream_id,
                key,
            } => {
                let inner = self.inner.clone();
                let control = self.control.clone();
                let guard = TaskGuard::new(&inner);
                let span = info_span!("dialback_verify", %remote, %local);
                tokio::spawn(
                    async move {
                        let outcome =
                            verify_dialback(&inner, &local, &remote, stream_id, key).await;
                        let _ = control
                            .send(Control::DialbackVerified {
                                local,
                                remote,
                                outcome,
                            })
                            .await;
                        drop(guard);
                    }
                    .instrument(span),
                );
            }
            Event::Authenticated {
                local,
                remote,
                method,
            } => {
                let span = tracing::Span::current();
                span.record("remote", remote.as_str());
                span.record("stream", session.stream_id().unwrap_or_default());
                info!(%local, %remote, ?method, stream = session.stream_id(), "inbound pair authenticated");
            }
            Event::StartTls | Event::DialbackVerdict(_) | Event::Closed(_) => {}
        }
    }
}

async fn serve_inbound(guard: TaskGuard, tcp: TcpStream) {
    let inner = &guard.0;
    let (control, mut control_rx) = mpsc::channel(16);
    let mut handler = InboundHandler {
        inner: inner.clone(),
        control,
    };
    let session = Session::inbound(inner.config.session.clone(), std::time::Instant::now());
    let end = inner
        .connection(session, Transport::Plain(tcp), TlsSide::Server)
        .run(
            &mut handler,
            None,
            &mut Vec::new(),
            Some(&mut control_rx),
            inner.shutdown.subscribe(),
        )
        .await;
    log_end("inbound", end.as_ref());
}

fn log_end(direction: &str, end: Option<&SessionEnd>) {
    match end {
        None | Some(SessionEnd::Closed) => debug!(direction, "stream closed"),
        Some(end) => info!(direction, reason = %end, fault = ?end.fault(), "stream ended"),
    }
}

impl Inner {
    async fn enqueue(self: &Arc<Self>, outgoing: Outgoing) {
        let policy = &self.config.session.policy;
        let Some((from, to)) = stanza::addresses(&outgoing.stanza) else {
            warn!("outbound stanza without valid from/to refused");
            self.refuse(
                outgoing,
                StanzaErrorCondition::InternalServerError,
                "stanza without valid addresses",
            )
            .await;
            return;
        };
        let (local, remote) = (from.domain().clone(), to.domain().clone());
        if policy.is_local(&remote) {
            // Between two of our own domains: no s2s needed.
            if self.deliver.send(outgoing.stanza.clone()).await.is_ok() {
                outgoing.sent();
            } else {
                self.refuse(
                    outgoing,
                    StanzaErrorCondition::InternalServerError,
                    "local delivery has stopped",
                )
                .await;
            }
            return;
        }
        if !policy.is_local(&local) {
            warn!(%local, "outbound stanza not from one of our domains refused");
            self.refuse(
                outgoing,
                StanzaErrorCondition::NotAllowed,
                "the sender is not in one of our domains",
            )
            .await;
            return;
        }
        if policy.remote(&remote).is_none() {
            self.refuse(
                outgoing,
                StanzaErrorCondition::NotAllowed,
                "federation with this domain is not allowed",
            )
            .await;
            return;
        }
        let mut outgoing = outgoing;
        let pair = (local, remote);
        for _ in 0..2 {
            let result = {
                let mut map = self.outbound.lock().unwrap_or_else(PoisonError::into_inner);
                if *self.shutdown.borrow() {
                    Err(outgoing)
                } else {
                    let sender = map
                        .entry(pair.clone())
                        .or_insert_with(|| self.spawn_pair(pair.clone()));
                    Ok(sender.try_send(outgoing))
                }
            };
            match result {
                Err(back) => {
                    self.refuse(
                        back,
                        StanzaErrorCondition::RemoteServerTimeout,
                        "the gateway is shutting down",
                    )
                    .await;
                    return;
                }
                Ok(Ok(())) => return,
                Ok(Err(mpsc::error::TrySendError::Full(back))) => {
                    self.refuse(
                        back,
                        StanzaErrorCondition::ResourceConstraint,
                        "too many stanzas waiting for this domain",
                    )
                    .await;
                    return;
                }
                Ok(Err(mpsc::error::TrySendError::Closed(back))) => {
                    // The pair's task ended between lookups; start a new one.
                    self.outbound
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .remove(&pair);
                    outgoing = back;
                }
            }
        }
        self.refuse(
            outgoing,
            StanzaErrorCondition::InternalServerError,
            "no stream could be started",
        )
        .await;
    }

    fn spawn_pair(self: &Arc<Self>, pair: (Domain, Domain)) -> mpsc::Sender<Outgoing> {
        let (sender, receiver) = mpsc::channel(self.config.outbound_queue_limit.max(1));
        let guard = TaskGuard::new(self);
        let span = info_span!("s2s_out", local = %pair.0, remote = %pair.1, stream = tracing::field::Empty);
        let weak_sender = sender.downgrade();
        tokio::spawn(run_pair(guard, pair, receiver, weak_sender).instrument(span));
        sender
    }

    /// Reports a failed stanza: to its waiting sender, or with an error bounce.
    async fn refuse(&self, outgoing: Outgoing, condition: StanzaErrorCondition, text: &str) {
        if let Some(stanza) = outgoing.fail(condition, text) {
            self.bounce(&stanza, condition, text).await;
        }
    }

    async fn bounce(&self, stanza: &Element, condition: StanzaErrorCondition, text: &str) {
        let by = stanza::addresses(stanza).map(|(_, to)| to.domain().clone());
        if let Some(reply) = stanza::bounce(stanza, condition, text, by.as_ref()) {
            debug!(condition = condition.as_str(), text, "bouncing stanza");
            if self.deliver.send(reply).await.is_err() {
                warn!("local delivery has stopped; bounce dropped");
            }
        }
    }

    fn connection(&self, session: Session, transport: Transport, side: TlsSide) -> Connection<'_> {
        Connection {
            session,
            transport,
            tls: &self.tls,
            side,
            handshake_timeout: self.config.connect_timeout,
        }
    }

    /// Endpoints for `remote`: the operator's static ones, or DNS.
    async fn endpoints(&self, remote: &Domain) -> Result<Vec<Endpoint>, DiscoveryError> {
        let configured = self.config.session.policy.static_endpoints(remote);
        if configured.is_empty() {
            self.discovery.resolve(remote).await
        } else {
            self.discovery.resolve_static(&configured).await
        }
    }

    /// Connects to the first reachable endpoint of `remote` and returns the transport (TLS already up for
    /// direct-TLS endpoints) with its session.
    async fn connect(
        &self,
        endpoint: &Endpoint,
        local: &Domain,
        make_session: impl FnOnce() -> Session,
    ) -> std::io::Result<(Transport, Session)> {
        let timeout = self.config.connect_timeout;
        let tcp = tokio::time::timeout(timeout, TcpStream::connect(endpoint.addr))
            .await
            .map_err(|_| {
                std::io::Error::new(std::io::ErrorKind::TimedOut, "connect timed out")
            })??;
        let _ = tcp.set_nodelay(true);
        let session = make_session();
        if !endpoint.direct_tls {
            return Ok((Transport::Plain(tcp), session));
        }
        let Some(remote) = session.remote_domain().cloned() else {
            return Err(std::io::Error::other(
                "outbound session without a remote domain",
            ));
        };
        let config = self.tls.client_config(local, true);
        let name = ServerName::try_from(remote.as_str().to_owned())
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        let tls = tokio::time::timeout(
            timeout,
            tokio_rustls::TlsConnector::from(config).connect(name, tcp),
        )
        .await
        .map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
        })??;
        let transport = Transport::Tls(Box::new(tokio_rustls::TlsStream::Client(tls)));
        let info = TlsInfo {
            peer_certificates: transport.peer_certificates(),
            now: UnixTime::now(),
            presented_certificate: self.tls.local_certificates().get(local).is_some(),
        };
        Ok((transport, session.with_direct_tls(info)))
    }
}

/// How one attempt to serve a pair ended.
enum PairOutcome {
    /// The stream was authenticated and has now ended (idle, peer closed, connection lost).
    EndedAfterUse,
    /// No stream could be authenticated.
    Failed(StanzaErrorCondition, String),
}

struct OutboundHandler {
    established: bool,
}

impl Handler for OutboundHandler {
    async fn event(&mut self, event: Event, session: &mut Session) {
        if let Event::Authenticated { method, .. } = event {
            self.established = true;
            tracing::Span::current().record("stream", session.stream_id().unwrap_or_default());
            info!(?method, "outbound stream ready");
        }
    }
}

/// New streams opened in a row for stanzas left over when a stream closed.
const MAX_REOPEN: u32 = 3;

async fn run_pair(
    guard: TaskGuard,
    pair: (Domain, Domain),
    mut queue: mpsc::Receiver<Outgoing>,
    us: mpsc::WeakSender<Outgoing>,
) {
    let inner = guard.0.clone();
    let mut reopened = 0;
    loop {
        let outcome = serve_pair_once(&inner, &pair, &mut queue).await;
        let failure = match outcome {
            // A peer that keeps closing streams right after authenticating must not make us reconnect
            // in a loop: after a few tries, what is still queued is bounced.
            PairOutcome::EndedAfterUse if reopened >= MAX_REOPEN => Some((
                StanzaErrorCondition::RemoteServerTimeout,
                "the server-to-server stream keeps closing".to_owned(),
            )),
            PairOutcome::EndedAfterUse => None,
            PairOutcome::Failed(condition, text) => Some((condition, text)),
        };
        {
            let mut map = inner
                .outbound
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            // Only retire the entry if it is still ours (a shutdown may have cleared it already).
            let ours = map
                .get(&pair)
                .is_some_and(|sender| us.upgrade().is_some_and(|mine| mine.same_channel(sender)));
            if failure.is_none() && !queue.is_empty() && !*inner.shutdown.borrow() {
                // Stanzas arrived while the stream was closing: open a new one for them.
                drop(map);
                reopened += 1;
                continue;
            }
            if ours {
                map.remove(&pair);
            }
        }
        // Nobody can queue more now; what is left is bounced.
        queue.close();
        let (condition, text) = failure.unwrap_or((
            StanzaErrorCondition::RemoteServerTimeout,
            "the server-to-server stream closed".to_owned(),
        ));
        let mut bounced = 0usize;
        while let Ok(outgoing) = queue.try_recv() {
            inner.refuse(outgoing, condition, &text).await;
            bounced += 1;
        }
        if bounced > 0 {
            info!(bounced, condition = condition.as_str(), reason = %text, "bounced queued stanzas");
        }
        return;
    }
}

async fn serve_pair_once(
    inner: &Arc<Inner>,
    pair: &(Domain, Domain),
    queue: &mut mpsc::Receiver<Outgoing>,
) -> PairOutcome {
    let (local, remote) = pair;
    let endpoints = match inner.endpoints(remote).await {
        Ok(endpoints) => endpoints,
        Err(error) => {
            info!(%error, "discovery failed");
            let condition = if error.is_timeout() {
                StanzaErrorCondition::RemoteServerTimeout
            } else {
                StanzaErrorCondition::RemoteServerNotFound
            };
            return PairOutcome::Failed(
                condition,
                format!("server-to-server connection failed: {error}"),
            );
        }
    };
    let mut last_error = String::from("no endpoint");
    for endpoint in &endpoints {
        if *inner.shutdown.borrow() {
            break;
        }
        debug!(host = %endpoint.host, address = %endpoint.addr, direct_tls = endpoint.direct_tls, "connecting");
        let make_session = || {
            Session::outbound(
                inner.config.session.clone(),
                local.clone(),
                remote.clone(),
                std::time::Instant::now(),
            )
        };
        let (transport, session) = match inner.connect(endpoint, local, make_session).await {
            Ok(connected) => connected,
            Err(error) => {
                info!(address = %endpoint.addr, %error, "connection failed");
                last_error = format!("{}: {error}", endpoint.addr);
                continue;
            }
        };
        let mut handler = OutboundHandler { established: false };
        let mut unsent = Vec::new();
        let end = inner
            .connection(session, transport, TlsSide::Client)
            .run(
                &mut handler,
                Some(queue),
                &mut unsent,
                None,
                inner.shutdown.subscribe(),
            )
            .await;
        log_end("outbound", end.as_ref());
        for outgoing in unsent {
            inner
                .refuse(
                    outgoing,
                    StanzaErrorCondition::RemoteServerTimeout,
                    "the server-to-server stream closed",
                )
                .await;
        }
        if handler.established {
            return PairOutcome::EndedAfterUse;
        }
        last_error = end.map_or_else(
            || "stream ended".to_owned(),
            |end| format!("{}: {end}", endpoint.addr),
        );
    }
    PairOutcome::Failed(
        StanzaErrorCondition::RemoteServerTimeout,
        format!("server-to-server connection failed: {last_error}"),
    )
}

struct VerifyHandler {
    verdict: Option<bool>,
}

impl Handler for VerifyHandler {
    async fn event(&mut self, event: Event, _session: &mut Session) {
        if let Event::DialbackVerdict(valid) = event {
            self.verdict = Some(valid);
        }
    }
}

/// Asks `remote`'s authoritative server whether `key` is valid (XEP-0220 §2.3), over a new connection.
async fn verify_dialback(
    inner: &Arc<Inner>,
    local: &Domain,
    remote: &Domain,
    stream_id: String,
    key: String,
) -> DialbackOutcome {
    let endpoints = match inner.endpoints(remote).await {
        Ok(endpoints) => endpoints,
        Err(error) => {
            info!(%error, "cannot find the authoritative server");
            return DialbackOutcome::Unreachable;
        }
    };
    for endpoint in &endpoints {
        let make_session = || {
            Session::verify(
                inner.config.session.clone(),
                local.clone(),
                remote.clone(),
                stream_id.clone(),
                key.clone(),
                std::time::Instant::now(),
            )
        };
        let (transport, session) = match inner.connect(endpoint, local, make_session).await {
            Ok(connected) => connected,
            Err(error) => {
                info!(address = %endpoint.addr, %error, "connection to the authoritative server failed");
                continue;
            }
        };
        let mut handler = VerifyHandler { verdict: None };
        let end = inner
            .connection(session, transport, TlsSide::Client)
            .run(
                &mut handler,
                None,
                &mut Vec::new(),
                None,
                inner.shutdown.subscribe(),
            )
            .await;
        match handler.verdict {
            Some(true) => return DialbackOutcome::Valid,
            Some(false) => return DialbackOutcome::Invalid,
            None => log_end("verify", end.as_ref()),
        }
    }
    DialbackOutcome::Unreachable
}
