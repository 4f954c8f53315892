//! The one [`TransactionLayer`] of a service, shared by every connection, and the bookkeeping around it:
//! which flow (connection) writes where, which caller waits for which client transaction, and the task
//! that fires the layer's timers.
//!
//! The layer sits behind a `std` mutex that is never held across an `.await`: each entry point locks,
//! feeds the layer, drains what it queued ([`Engine::drain`]) and unlocks. Writes only go into the flows'
//! bounded queues, so draining never waits; handing requests to the application may wait (that is the
//! back-pressure on a busy application), so those are returned to the caller and delivered after the
//! lock is released.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Instant;

use sixgate_sip::message::{HostPort, Method, Request, Response, StatusCode, Token, Via};
use sixgate_sip::stateless::response_for;
use sixgate_sip::stateless::{detect_loop, forwarding_branch};
use sixgate_sip::transaction::{
    ClientKey, FlowId, TransactionConfig, TransactionError, TransactionEvent, TransactionLayer,
};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, info_span, trace, warn};

use crate::incoming::{IncomingRequest, PeerInfo, RespondError, Responder};
use crate::service::SendError;

/// Messages queued per connection before it counts as stuck and is closed. A peer that sends requests but
/// never reads our responses must not make us buffer without end; but answers come in bursts (every
/// MESSAGE to XMPP is answered about one second after it arrived, so thousands in flight are answered
/// together), and a burst must not cost the connection: `sixgate-loadgen` lost connections at 256 with
/// 2,000 in flight. 16,384 messages of a few hundred bytes bound a stuck peer to a few MiB.
const WRITE_QUEUE: usize = 16_384;

/// How a client transaction ended, for the caller waiting on it.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A final response (boxed: it dwarfs the other variants).
    Final(Box<Response>),
    /// Timer F fired.
    Timeout,
    /// The connection failed first.
    Transport,
}

/// Where the final response to a received request goes.
#[derive(Debug, Clone)]
pub(crate) enum ReplyPath {
    /// Through the server transaction, which then absorbs copies of the request.
    Transaction {
        key: sixgate_sip::transaction::ServerKey,
        flow: FlowId,
    },
    /// Straight onto the connection: an INVITE, for which the layer keeps no transaction.
    Stateless { flow: FlowId },
}

impl ReplyPath {
    fn flow(&self) -> FlowId {
        match self {
            Self::Transaction { flow, .. } | Self::Stateless { flow } => *flow,
        }
    }
}

/// What a connection task needs from its registration.
pub(crate) struct FlowHandle {
    pub(crate) id: FlowId,
    /// Everything to write on the connection, whole messages and pongs, in order. Its only sender is
    /// the engine's, so it ends once the flow is unregistered.
    pub(crate) outgoing: mpsc::Receiver<Vec<u8>>,
    /// Notified when the engine wants the connection closed.
    pub(crate) close: Arc<Notify>,
}

struct Flow {
    writer: mpsc::Sender<Vec<u8>>,
    close: Arc<Notify>,
    peer: PeerInfo,
    local_addr: SocketAddr,
}

struct State {
    layer: TransactionLayer,
    flows: HashMap<FlowId, Flow>,
    waiting: HashMap<ClientKey, oneshot::Sender<Outcome>>,
    next_flow: u64,
}

/// The transaction layer of one service and the flows it drives.
pub(crate) struct Engine {
    state: Mutex<State>,
    /// Wakes the timer task when a timer may have been added.
    timers: Arc<Notify>,
    inbound: mpsc::Sender<IncomingRequest>,
}

impl Engine {
    /// An engine delivering requests to `inbound`, with its timer task running. Must be called within a
    /// tokio runtime.
    pub(crate) fn start(
        config: TransactionConfig,
        inbound: mpsc::Sender<IncomingRequest>,
    ) -> Arc<Self> {
        let timers = Arc::new(Notify::new());
        let engine = Arc::new(Self {
            state: Mutex::new(State {
                layer: TransactionLayer::new(config, secure_random()),
                flows: HashMap::new(),
                waiting: HashMap::new(),
                next_flow: 1,
            }),
            timers: Arc::clone(&timers),
            inbound,
        });
        tokio::spawn(run_timers(Arc::downgrade(&engine), timers));
        engine
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Registers a new connection to `peer`.
    pub(crate) fn register_flow(&self, peer: PeerInfo, local_addr: SocketAddr) -> FlowHandle {
        let (writer, outgoing) = mpsc::channel(WRITE_QUEUE);
        let close = Arc::new(Notify::new());
        let mut state = self.lock();
        let id = FlowId(state.next_flow);
        state.next_flow = state.next_flow.wrapping_add(1);
        state.flows.insert(
            id,
            Flow {
                writer,
                close: Arc::clone(&close),
                peer,
                local_addr,
            },
        );
        FlowHandle {
            id,
            outgoing,
            close,
        }
    }

    /// The connection of `flow` has closed: requests waiting on it fail over to their callers.
    pub(crate) fn unregister_flow(self: &Arc<Self>, flow: FlowId) {
        let mut state = self.lock();
        state.flows.remove(&flow);
        state.layer.handle_transport_error(flow);
        self.settle(state);
    }

    /// Whether the connection of `flow` is still open.
    pub(crate) fn flow_is_open(&self, flow: FlowId) -> bool {
        self.lock()
            .flows
            .get(&flow)
            .is_some_and(|entry| !entry.writer.is_closed())
    }

    /// Asks every connection to close.
    pub(crate) fn close_all(&self) {
        for flow in self.lock().flows.values() {
            flow.close.notify_one();
        }
    }

    /// A fresh tag for responses built outside a transaction.
    pub(crate) fn new_tag(&self) -> Token {
        self.lock().layer.new_tag()
    }

    /// A request arrived on `flow`. Returns what the application must be given.
    pub(crate) fn receive_request(
        self: &Arc<Self>,
        flow: FlowId,
        request: Request,
    ) -> Vec<IncomingRequest> {
        let mut state = self.lock();
        state.layer.handle_request(now(), flow, request);
        self.drain(&mut state)
    }

    /// A response arrived on `flow`.
    pub(crate) fn receive_response(self: &Arc<Self>, flow: FlowId, response: Response) {
        let mut state = self.lock();
        state.layer.handle_response(now(), flow, response);
        self.settle(state);
    }

    /// Hands `incoming` to the application, waiting while its queue is full. If the application is gone,
    /// dropping the request answers it with 500.
    pub(crate) async fn deliver(&self, incoming: IncomingRequest) {
        if self.inbound.send(incoming).await.is_err() {
            debug!("application no longer takes requests");
        }
    }

    /// Starts a client transaction for `request` on `flow`: adds our `Via` (sent-by `via` or the
    /// connection's local address) with a new branch, and queues the request. The receiver gets the
    /// outcome.
    pub(crate) fn start_client(
        self: &Arc<Self>,
        flow: FlowId,
        mut request: Request,
        via: Option<&HostPort>,
    ) -> Result<(ClientKey, oneshot::Receiver<Outcome>), SendError> {
        let mut state = self.lock();
        let local_addr = match state.flows.get(&flow) {
            Some(entry) if !entry.writer.is_closed() => entry.local_addr,
            _ => return Err(SendError::Transport("connection closed".to_owned())),
        };
        let sent_by = via
            .cloned()
            .unwrap_or_else(|| HostPort::new(local_addr.ip(), Some(local_addr.port())));
        // A request that already has a Via is being forwarded: its branch is derived from the request
        // (RFC 3261 §16.6 item 8), so that if it comes back to us unchanged we see our own mark and refuse
        // it with 482 instead of forwarding it until Max-Forwards runs out (§16.3 item 4).
        let branch = if request.via.is_empty() {
            state.layer.new_branch()
        } else {
            detect_loop(&request, &sent_by).map_err(|_| SendError::Loop)?;
            let unique = state.layer.new_branch();
            forwarding_branch(&request, loop_unique(unique.as_str()))
        };
        let transport =
            Token::new("TLS").map_err(|err| SendError::InvalidRequest(err.to_string()))?;
        let mut top = Via::new(transport, sent_by, &branch);
        // RFC 3581: lets the server report the port it saw, which helps debugging NATed peers.
        let _ = top.params.set("rport", None);
        request.via.insert(0, top);
        // RFC 3261 §8.1.1.6: a UAC must send Max-Forwards.
        request.max_forwards.get_or_insert(70);
        trace!(body = %String::from_utf8_lossy(&request.body), "request body");
        let key = state
            .layer
            .send_request(now(), flow, request)
            .map_err(|err| match err {
                TransactionError::NotNonInvite => SendError::InvalidRequest(
                    "INVITE and ACK are not sent through non-INVITE transactions".to_owned(),
                ),
                other => SendError::InvalidRequest(other.to_string()),
            })?;
        let (sender, receiver) = oneshot::channel();
        state.waiting.insert(key.clone(), sender);
        self.settle(state);
        Ok((key, receiver))
    }

    /// Sends the final `response` along `path`.
    pub(crate) fn respond(
        self: &Arc<Self>,
        path: &ReplyPath,
        response: Response,
    ) -> Result<(), RespondError> {
        let mut state = self.lock();
        let open = state
            .flows
            .get(&path.flow())
            .is_some_and(|flow| !flow.writer.is_closed());
        match path {
            ReplyPath::Transaction { key, .. } => {
                state
                    .layer
                    .respond(now(), key, response)
                    .map_err(|err| match err {
                        TransactionError::UnknownTransaction
                        | TransactionError::AlreadyCompleted => RespondError::TransactionEnded,
                        _ => RespondError::Mismatch,
                    })?;
                self.settle(state);
            }
            ReplyPath::Stateless { flow } => {
                if open {
                    write(&state, *flow, response.to_bytes());
                }
            }
        }
        if open {
            Ok(())
        } else {
            Err(RespondError::ConnectionClosed)
        }
    }

    /// Writes `bytes` on `flow` as they are; for pongs and answers to unparsable messages.
    pub(crate) fn write_raw(&self, flow: FlowId, bytes: Vec<u8>) {
        write(&self.lock(), flow, bytes);
    }

    /// Fires due timers.
    fn fire_timers(self: &Arc<Self>) {
        let mut state = self.lock();
        state.layer.handle_timeout(now());
        self.settle(state);
    }

    fn next_timeout(&self) -> Option<Instant> {
        self.lock().layer.poll_timeout()
    }

    /// [`drain`](Self::drain)s after a call that yields no new requests, and drops any that came anyway
    /// only once the lock is released: dropping one answers it, which takes the lock again.
    fn settle(self: &Arc<Self>, mut state: MutexGuard<'_, State>) {
        let unexpected = self.drain(&mut state);
        drop(state);
        drop(unexpected);
    }

    /// Carries out what the layer queued: writes go to their flows, outcomes to waiting callers, and new
    /// requests are returned for delivery.
    fn drain(self: &Arc<Self>, state: &mut State) -> Vec<IncomingRequest> {
        while let Some(transmit) = state.layer.poll_transmit() {
            write(state, transmit.flow, transmit.message.to_bytes());
        }
        let mut requests = Vec::new();
        while let Some(event) = state.layer.poll_event() {
            match event {
                TransactionEvent::Request { key, flow, request } => {
                    let path = ReplyPath::Transaction { key, flow };
                    if let Some(incoming) = self.incoming(state, path, request) {
                        requests.push(incoming);
                    }
                }
                TransactionEvent::NotHandled { flow, request } => {
                    // An ACK is never answered; an INVITE is, by the application (501 or 405 with Allow),
                    // without a transaction since this layer has no INVITE transactions.
                    if request.method == Method::Ack {
                        debug!("ignoring ACK");
                        continue;
                    }
                    let path = ReplyPath::Stateless { flow };
                    if let Some(incoming) = self.incoming(state, path, request) {
                        requests.push(incoming);
                    }
                }
                TransactionEvent::Response { key, response } => {
                    if !response.status.is_final() {
                        debug!(status = %response.status, "provisional response");
                        continue;
                    }
                    if let Some(waiter) = state.waiting.remove(&key) {
                        let _ = waiter.send(Outcome::Final(Box::new(response)));
                    }
                }
                TransactionEvent::Timeout { key, .. } => {
                    debug!(transaction = %key, "no final response before Timer F");
                    if let Some(waiter) = state.waiting.remove(&key) {
                        let _ = waiter.send(Outcome::Timeout);
                    }
                }
                TransactionEvent::TransportError { key, .. } => {
                    if let Some(waiter) = state.waiting.remove(&key) {
                        let _ = waiter.send(Outcome::Transport);
                    }
                }
                TransactionEvent::Unanswered { key } => {
                    warn!(transaction = %key, "request never answered by the application");
                }
                TransactionEvent::StrayResponse { flow, response } => {
                    debug!(
                        flow = flow.0,
                        status = %response.status,
                        call_id = %response.call_id,
                        "response matches no transaction"
                    );
                }
                other => debug!(event = ?other, "transaction event ignored"),
            }
        }
        // Whatever was fed to the layer may have started a timer earlier than the one the timer task
        // sleeps towards.
        self.timers.notify_one();
        requests
    }

    /// A request for the application, with its transaction span; `None` if its connection has gone.
    fn incoming(
        self: &Arc<Self>,
        state: &mut State,
        path: ReplyPath,
        request: Request,
    ) -> Option<IncomingRequest> {
        let peer = state.flows.get(&path.flow())?.peer.clone();
        let branch = request
            .top_via()
            .and_then(Via::branch)
            .unwrap_or_default()
            .to_owned();
        let span = info_span!(
            "sip_transaction",
            call_id = %request.call_id,
            method = %request.method,
            branch = %branch,
        );
        span.in_scope(|| {
            debug!(uri = %request.uri, from = %request.from, "request received");
            trace!(body = %String::from_utf8_lossy(&request.body), "request body");
        });
        let tag = state.layer.new_tag();
        let responder = Responder::new(Arc::clone(self), path, &request, tag);
        Some(IncomingRequest::new(request, peer, responder, span))
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        // Lets the timer task see that the engine is gone.
        self.timers.notify_one();
    }
}

/// Queues `bytes` on `flow`; a flow whose queue is full is closed, a closed one is skipped.
fn write(state: &State, flow: FlowId, bytes: Vec<u8>) {
    let Some(entry) = state.flows.get(&flow) else {
        // RFC 3261 §18.2.2 would open a new connection to the `Via` for a response; federation peers
        // reuse their connection and are not reachable at their `Via` in general, so it is dropped.
        debug!(flow = flow.0, "connection closed, message dropped");
        return;
    };
    match entry.writer.try_send(bytes) {
        Ok(()) => {}
        Err(mpsc::error::TrySendError::Full(_)) => {
            warn!(flow = flow.0, "peer does not read what we send, closing");
            entry.close.notify_one();
        }
        Err(mpsc::error::TrySendError::Closed(_)) => {
            debug!(flow = flow.0, "connection closing, message dropped");
        }
    }
}

/// Builds the 500 a [`Responder`] sends when dropped unanswered.
pub(crate) fn server_error(request: &Request, tag: &Token) -> Response {
    response_for(request, StatusCode::SERVER_INTERNAL_ERROR, "", tag)
}

/// The transaction layer runs on tokio's clock, so that paused time in tests drives its timers too.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

async fn run_timers(engine: Weak<Engine>, wake: Arc<Notify>) {
    loop {
        let Some(deadline) = engine.upgrade().map(|engine| engine.next_timeout()) else {
            return;
        };
        match deadline {
            Some(deadline) => {
                tokio::select! {
                    () = tokio::time::sleep_until(tokio::time::Instant::from_std(deadline)) => {}
                    () = wake.notified() => continue,
                }
            }
            None => {
                wake.notified().await;
                continue;
            }
        }
        let Some(engine) = engine.upgrade() else {
            return;
        };
        engine.fire_timers();
    }
}

/// Branches and tags from the operating system's CSPRNG through aws-lc-rs: RFC 3261 §19.3 wants tags
/// unguessable. Should it ever fail, a counter keeps them unique at least.
fn secure_random() -> impl FnMut() -> u64 + Send + 'static {
    let mut counter: u64 = 0;
    move || {
        counter = counter.wrapping_add(1);
        let mut bytes = [0u8; 8];
        if aws_lc_rs::rand::fill(&mut bytes).is_err() {
            warn!("system random number generator failed");
        }
        u64::from_le_bytes(bytes) ^ counter.wrapping_mul(0x9e37_79b9_7f4a_7c15)
    }
}

/// A number unique to one forwarded request, taken from a fresh branch (which the transaction layer makes
/// unique), for [`forwarding_branch`].
fn loop_unique(branch: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault, DefaultHasher};
    BuildHasherDefault::<DefaultHasher>::default().hash_one(branch)
}
