//! RFC 3261 §17 non-INVITE transactions over reliable transports (TLS, TCP), without I/O or clocks.
//!
//! The gateway only exchanges MESSAGE, SUBSCRIBE, NOTIFY, OPTIONS and the like, all non-INVITE, and only
//! over TLS. On a reliable transport no request or response is retransmitted by the transaction itself
//! (Timer E is not used), so what is left is: match messages to transactions by branch, absorb the
//! retransmissions an upstream hop may still forward, give up on a request after Timer F (64·T1), and
//! tell the transaction user (TU) what happened.
//!
//! # Driving a [`TransactionLayer`]
//!
//! Time is passed in as [`Instant`]s, randomness through the closure given to
//! [`TransactionLayer::new`], and connections are opaque [`FlowId`]s chosen by the caller:
//!
//! 1. feed what arrives: [`handle_request`](TransactionLayer::handle_request),
//!    [`handle_response`](TransactionLayer::handle_response),
//!    [`handle_transport_error`](TransactionLayer::handle_transport_error);
//! 2. feed what the TU does: [`send_request`](TransactionLayer::send_request) and
//!    [`respond`](TransactionLayer::respond);
//! 3. after each call, drain [`poll_transmit`](TransactionLayer::poll_transmit) (messages to write on a
//!    flow) and [`poll_event`](TransactionLayer::poll_event) (news for the TU);
//! 4. sleep until [`poll_timeout`](TransactionLayer::poll_timeout), then call
//!    [`handle_timeout`](TransactionLayer::handle_timeout) with the current time.
//!
//! ```
//! use std::time::{Duration, Instant};
//!
//! use sixgate_sip::Message;
//! use sixgate_sip::message::StatusCode;
//! use sixgate_sip::stateless::response_for;
//! use sixgate_sip::transaction::{FlowId, TransactionConfig, TransactionEvent, TransactionLayer};
//!
//! let mut counter = 0;
//! let mut layer = TransactionLayer::new(TransactionConfig::default(), move || {
//!     counter += 1;
//!     counter
//! });
//! let start = Instant::now();
//! let received = Message::from_bytes(
//!     b"MESSAGE sip:alice@xmpp.example SIP/2.0\r\n\
//!       Via: SIP/2.0/TLS edge.corp.example:5061;branch=z9hG4bK74bf9\r\n\
//!       Max-Forwards: 69\r\nFrom: <sip:bob@corp.example>;tag=9fxced76sl\r\n\
//!       To: <sip:alice@xmpp.example>\r\nCall-ID: 3848276298220188511@corp.example\r\n\
//!       CSeq: 1 MESSAGE\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nhi",
//! )
//! .unwrap();
//! let Message::Request(request) = received else { unreachable!() };
//! layer.handle_request(start, FlowId(1), request);
//!
//! // The TU takes the request and answers it.
//! let Some(TransactionEvent::Request { key, request, .. }) = layer.poll_event() else {
//!     unreachable!()
//! };
//! let tag = layer.new_tag();
//! let accepted = response_for(&request, StatusCode::ACCEPTED, "", &tag);
//! layer.respond(start + Duration::from_millis(3), &key, accepted).unwrap();
//!
//! let transmit = layer.poll_transmit().unwrap();
//! assert_eq!(transmit.flow, FlowId(1));
//! assert!(transmit.message.to_bytes().starts_with(b"SIP/2.0 202 Accepted\r\n"));
//! // On TLS the transaction ends with its final response: no timer is left.
//! assert_eq!(layer.poll_timeout(), None);
//! ```
//!
//! # Timers on reliable transports
//!
//! | timer | RFC 3261 value on TLS/TCP | here |
//! |---|---|---|
//! | E (request retransmit) | not used | not used |
//! | F (client gives up) | 64·T1 = 32 s | [`TransactionConfig::timer_f`] |
//! | K (client lingers after a final response) | 0 | [`TransactionConfig::timer_k`], default 0 |
//! | J (server lingers after a final response) | 0 | [`TransactionConfig::timer_j`], default 0 |
//!
//! With J = 0 a server transaction ends as soon as its final response is sent, so a copy of the request
//! arriving later (a stateless hop upstream may still forward the retransmissions of a UDP client)
//! starts a new transaction and reaches the TU again. Setting J to 64·T1 absorbs such copies and
//! answers them with the stored final response, at the cost of keeping each transaction 32 s longer.
//!
//! RFC 3261 sets no limit on how long a server transaction waits for the TU to answer. Here a server
//! transaction still unanswered after Timer F's duration ends with [`TransactionEvent::Unanswered`]: by
//! then the client has given up, and a TU that never answers would otherwise hold memory forever.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt;
use std::time::{Duration, Instant};

use thiserror::Error;

use crate::message::{Message, Method, Request, Response, StatusCode, Token, Via};
use crate::stateless::response_for;

/// Timer settings. The defaults are RFC 3261's values for reliable transports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionConfig {
    /// T1, the round-trip time estimate (§17.1.1.1). Default 500 ms.
    pub t1: Duration,
    /// How long a server transaction stays Completed to absorb request copies. Default 0.
    pub timer_j: Duration,
    /// How long a client transaction stays Completed to absorb response copies. Default 0.
    pub timer_k: Duration,
}

impl Default for TransactionConfig {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            timer_j: Duration::ZERO,
            timer_k: Duration::ZERO,
        }
    }
}

impl TransactionConfig {
    /// Timer F: 64·T1, after which a client transaction without a final response times out.
    pub fn timer_f(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// A connection (or connection slot) chosen by the caller. Messages for a server transaction go out
/// on the flow its request came in on (RFC 3261 §18.2.2); a client transaction's request goes out on
/// the flow given to [`TransactionLayer::send_request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FlowId(pub u64);

/// Identifies a client transaction: the branch of the request's top `Via` and its method (§17.1.3).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientKey {
    /// Lower-cased: tokens compare ignoring case (§7.3.1).
    branch: Box<str>,
    method: Method,
}

impl ClientKey {
    /// The key of a request we send: `None` without a magic-cookie branch in the top `Via`.
    pub fn for_request(request: &Request) -> Option<Self> {
        Some(Self {
            branch: cookie_branch(request.top_via()?)?,
            method: request.cseq.method.clone(),
        })
    }

    /// The key of the transaction a response belongs to: top `Via` branch and `CSeq` method.
    pub fn for_response(response: &Response) -> Option<Self> {
        Some(Self {
            branch: cookie_branch(response.top_via()?)?,
            method: response.cseq.method.clone(),
        })
    }

    /// The branch, lower-cased.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }
}

impl fmt::Display for ClientKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.method, self.branch)
    }
}

/// Identifies a server transaction: branch and sent-by of the request's top `Via`, and its method
/// (§17.2.3). The sent-by keeps two clients that chose the same branch apart.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServerKey {
    branch: Box<str>,
    /// `host[:port]`, lower-cased.
    sent_by: Box<str>,
    method: Method,
}

impl ServerKey {
    /// The key of a received request: `None` without a magic-cookie branch in the top `Via`.
    pub fn for_request(request: &Request) -> Option<Self> {
        let via = request.top_via()?;
        Some(Self {
            branch: cookie_branch(via)?,
            sent_by: via.sent_by.to_string().to_ascii_lowercase().into(),
            method: request.method.clone(),
        })
    }

    /// The key of the transaction a response we send belongs to.
    fn for_response(response: &Response) -> Option<Self> {
        let via = response.top_via()?;
        Some(Self {
            branch: cookie_branch(via)?,
            sent_by: via.sent_by.to_string().to_ascii_lowercase().into(),
            method: response.cseq.method.clone(),
        })
    }

    /// The branch, lower-cased.
    pub fn branch(&self) -> &str {
        &self.branch
    }

    /// The method.
    pub fn method(&self) -> &Method {
        &self.method
    }
}

impl fmt::Display for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.method, self.sent_by, self.branch)
    }
}

fn cookie_branch(via: &Via) -> Option<Box<str>> {
    Some(via.cookie_branch()?.to_ascii_lowercase().into())
}

/// Misuse of a transaction by the TU; never caused by the peer.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TransactionError {
    /// The request has no top `Via` with a `z9hG4bK` branch.
    #[error("request has no magic-cookie branch in its top Via")]
    NoCookieBranch,
    /// INVITE and ACK have transactions of their own kind (§17.1.1, §17.2.1), not built here.
    #[error("INVITE and ACK are not non-INVITE transactions")]
    NotNonInvite,
    /// A client transaction with this branch and method already exists.
    #[error("a transaction with this branch already exists")]
    BranchInUse,
    /// No such transaction, or it has ended.
    #[error("no such transaction")]
    UnknownTransaction,
    /// The response's top `Via` or `CSeq` method does not match the transaction's request.
    #[error("response does not belong to this transaction")]
    ResponseMismatch,
    /// The transaction already sent its final response.
    #[error("a final response was already sent")]
    AlreadyCompleted,
}

/// States of a non-INVITE client transaction (§17.1.2.2, Figure 6).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Request sent, nothing received yet.
    Trying,
    /// A provisional response arrived.
    Proceeding,
    /// A final response arrived; absorbing copies of it for Timer K.
    Completed,
    /// Over.
    Terminated,
}

/// A non-INVITE client transaction on a reliable transport.
#[derive(Debug, Clone)]
pub struct ClientTransaction {
    key: ClientKey,
    request: Request,
    state: ClientState,
    /// Timer F while Trying or Proceeding, Timer K while Completed.
    deadline: Option<Instant>,
    timer_k: Duration,
}

impl ClientTransaction {
    /// Starts a transaction for `request`, which the caller sends now. Its top `Via` must carry a
    /// magic-cookie branch unique to this request.
    pub fn new(
        now: Instant,
        request: Request,
        config: &TransactionConfig,
    ) -> Result<Self, TransactionError> {
        if matches!(request.method, Method::Invite | Method::Ack) {
            return Err(TransactionError::NotNonInvite);
        }
        let key = ClientKey::for_request(&request).ok_or(TransactionError::NoCookieBranch)?;
        Ok(Self {
            key,
            request,
            state: ClientState::Trying,
            deadline: now.checked_add(config.timer_f()),
            timer_k: config.timer_k,
        })
    }

    /// The key responses are matched on.
    pub fn key(&self) -> &ClientKey {
        &self.key
    }

    /// The request.
    pub fn request(&self) -> &Request {
        &self.request
    }

    /// The current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// A response arrived for this transaction. Returns it if the TU must see it; a copy of the final
    /// response, anything after the end, and a response of another transaction are absorbed.
    pub fn handle_response(&mut self, now: Instant, response: Response) -> Option<Response> {
        if ClientKey::for_response(&response).as_ref() != Some(&self.key) {
            return None;
        }
        match self.state {
            ClientState::Trying | ClientState::Proceeding if response.status.is_provisional() => {
                self.state = ClientState::Proceeding;
                Some(response)
            }
            ClientState::Trying | ClientState::Proceeding => {
                if self.timer_k.is_zero() {
                    self.terminate();
                } else {
                    self.state = ClientState::Completed;
                    self.deadline = now.checked_add(self.timer_k);
                }
                Some(response)
            }
            ClientState::Completed | ClientState::Terminated => None,
        }
    }

    /// The flow the request went out on failed. Returns whether the TU must be told (§17.1.4): it must
    /// if no final response had arrived yet.
    pub fn handle_transport_error(&mut self) -> bool {
        let pending = matches!(self.state, ClientState::Trying | ClientState::Proceeding);
        self.terminate();
        pending
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Advances time. Returns `true` when Timer F fired: no final response came in time and the TU
    /// must act as if it had received a 408 (§8.1.3.1).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.deadline.is_none_or(|deadline| now < deadline) {
            return false;
        }
        let timed_out = matches!(self.state, ClientState::Trying | ClientState::Proceeding);
        self.terminate();
        timed_out
    }

    fn terminate(&mut self) {
        self.state = ClientState::Terminated;
        self.deadline = None;
    }
}

/// States of a non-INVITE server transaction (§17.2.2, Figure 8).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServerState {
    /// Request passed to the TU, no response yet.
    Trying,
    /// A provisional response was sent.
    Proceeding,
    /// The final response was sent; absorbing request copies for Timer J.
    Completed,
    /// Over.
    Terminated,
}

/// A non-INVITE server transaction on a reliable transport.
#[derive(Debug, Clone)]
pub struct ServerTransaction {
    key: ServerKey,
    state: ServerState,
    last_response: Option<Response>,
    /// The TU's answer deadline while Trying or Proceeding, Timer J while Completed.
    deadline: Option<Instant>,
    timer_j: Duration,
}

impl ServerTransaction {
    /// Starts a transaction for a received `request`, which the caller passes to the TU.
    pub fn new(
        now: Instant,
        request: &Request,
        config: &TransactionConfig,
    ) -> Result<Self, TransactionError> {
        if matches!(request.method, Method::Invite | Method::Ack) {
            return Err(TransactionError::NotNonInvite);
        }
        let key = ServerKey::for_request(request).ok_or(TransactionError::NoCookieBranch)?;
        Ok(Self {
            key,
            state: ServerState::Trying,
            last_response: None,
            deadline: now.checked_add(config.timer_f()),
            timer_j: config.timer_j,
        })
    }

    /// The key requests are matched on.
    pub fn key(&self) -> &ServerKey {
        &self.key
    }

    /// The current state.
    pub fn state(&self) -> ServerState {
        self.state
    }

    /// A copy of the request arrived (same [`ServerKey`]). Returns the response to send again: the last
    /// provisional one in Proceeding, the final one in Completed (§17.2.2). In Trying there is none and
    /// the copy is simply absorbed.
    pub fn handle_retransmission(&self) -> Option<&Response> {
        match self.state {
            ServerState::Proceeding | ServerState::Completed => self.last_response.as_ref(),
            ServerState::Trying | ServerState::Terminated => None,
        }
    }

    /// The TU's response. Returns it for sending. A provisional response may follow another; nothing
    /// may follow the final one.
    pub fn respond(
        &mut self,
        now: Instant,
        response: Response,
    ) -> Result<&Response, TransactionError> {
        if ServerKey::for_response(&response).as_ref() != Some(&self.key) {
            return Err(TransactionError::ResponseMismatch);
        }
        match self.state {
            ServerState::Trying | ServerState::Proceeding => {}
            ServerState::Completed | ServerState::Terminated => {
                return Err(TransactionError::AlreadyCompleted);
            }
        }
        if response.status.is_provisional() {
            self.state = ServerState::Proceeding;
        } else if self.timer_j.is_zero() {
            self.state = ServerState::Terminated;
            self.deadline = None;
        } else {
            self.state = ServerState::Completed;
            self.deadline = now.checked_add(self.timer_j);
        }
        Ok(self.last_response.insert(response))
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.deadline
    }

    /// Advances time. Returns `true` when the transaction ended without the TU ever sending a final
    /// response (see the module documentation).
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        if self.deadline.is_none_or(|deadline| now < deadline) {
            return false;
        }
        let unanswered = matches!(self.state, ServerState::Trying | ServerState::Proceeding);
        self.state = ServerState::Terminated;
        self.deadline = None;
        unanswered
    }
}

/// A message to write on a flow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to write it.
    pub flow: FlowId,
    /// What to write; [`Message::to_bytes`] gives the bytes.
    pub message: Message,
}

/// News for the transaction user.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TransactionEvent {
    /// A new request. The TU must answer it with [`TransactionLayer::respond`] and `key`.
    Request {
        /// The server transaction.
        key: ServerKey,
        /// The flow it came in on.
        flow: FlowId,
        /// The request.
        request: Request,
    },
    /// A response to a request sent with [`TransactionLayer::send_request`].
    Response {
        /// The client transaction.
        key: ClientKey,
        /// The response.
        response: Response,
    },
    /// Timer F fired before a final response arrived: act as if a 408 had (§8.1.3.1). The request is
    /// returned so that a 408 can be built with [`response_for`].
    Timeout {
        /// The client transaction, now ended.
        key: ClientKey,
        /// The request that timed out.
        request: Request,
    },
    /// The flow of a client transaction without a final response failed: act as if a 503 had arrived
    /// (§8.1.3.1).
    TransportError {
        /// The client transaction, now ended.
        key: ClientKey,
        /// The request.
        request: Request,
    },
    /// The TU did not answer a request before the client's Timer F ran out; the transaction ended.
    Unanswered {
        /// The server transaction, now ended.
        key: ServerKey,
    },
    /// A response that matches no client transaction (§17.1.3): its branch is unknown or not ours.
    StrayResponse {
        /// The flow it came in on.
        flow: FlowId,
        /// The response.
        response: Response,
    },
    /// INVITE or ACK, which this layer does not handle. No transaction was created: answer an INVITE
    /// statelessly (such as 501 with [`response_for`]) and drop an ACK.
    NotHandled {
        /// The flow it came in on.
        flow: FlowId,
        /// The request.
        request: Request,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum TimerRef {
    Client(ClientKey),
    Server(ServerKey),
}

/// All transactions of one gateway instance, matched by branch, with one timer queue.
pub struct TransactionLayer {
    config: TransactionConfig,
    random: Box<dyn FnMut() -> u64 + Send>,
    clients: HashMap<ClientKey, (ClientTransaction, FlowId)>,
    servers: HashMap<ServerKey, (ServerTransaction, FlowId)>,
    timers: BTreeSet<(Instant, TimerRef)>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<TransactionEvent>,
}

impl fmt::Debug for TransactionLayer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TransactionLayer")
            .field("config", &self.config)
            .field("clients", &self.clients.len())
            .field("servers", &self.servers.len())
            .finish_non_exhaustive()
    }
}

impl TransactionLayer {
    /// A layer without transactions. `random` supplies the numbers that branches and tags are made of:
    /// a CSPRNG in production (RFC 3261 §19.3 wants tags cryptographically random), a counter in tests.
    pub fn new(config: TransactionConfig, random: impl FnMut() -> u64 + Send + 'static) -> Self {
        Self {
            config,
            random: Box::new(random),
            clients: HashMap::new(),
            servers: HashMap::new(),
            timers: BTreeSet::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
        }
    }

    /// The timer settings.
    pub fn config(&self) -> &TransactionConfig {
        &self.config
    }

    /// A fresh branch for a request we originate: `z9hG4bK` and 16 hex digits.
    pub fn new_branch(&mut self) -> Token {
        Token::from_u64(Via::MAGIC_COOKIE, (self.random)())
    }

    /// A fresh tag for a `From` or `To` header: 16 hex digits.
    pub fn new_tag(&mut self) -> Token {
        Token::from_u64("", (self.random)())
    }

    /// A request arrived on `flow`.
    ///
    /// A new one becomes a [`TransactionEvent::Request`]; a copy of one in progress is absorbed, and the
    /// last response sent is sent again, on `flow`. A request without a magic-cookie branch is answered 400 here
    /// and goes no further: matching it would need the RFC 2543 rules of §17.2.3, which no peer of a
    /// TLS gateway should still need.
    pub fn handle_request(&mut self, now: Instant, flow: FlowId, request: Request) {
        if matches!(request.method, Method::Invite | Method::Ack) {
            self.events
                .push_back(TransactionEvent::NotHandled { flow, request });
            return;
        }
        let Some(key) = ServerKey::for_request(&request) else {
            let tag = self.new_tag();
            let mut response = response_for(&request, StatusCode::BAD_REQUEST, "", &tag);
            response.reason = "Missing Branch Magic Cookie".to_owned();
            self.transmits.push_back(Transmit {
                flow,
                message: response.into(),
            });
            return;
        };
        if let Some((transaction, _)) = self.servers.get(&key) {
            // Answered on the flow the copy came in on: if the peer resent on a new connection, that is
            // the one it reads.
            if let Some(response) = transaction.handle_retransmission() {
                self.transmits.push_back(Transmit {
                    flow,
                    message: response.clone().into(),
                });
            }
            return;
        }
        // `for_request` succeeded and the method is not INVITE or ACK, so this cannot fail.
        let Ok(transaction) = ServerTransaction::new(now, &request, &self.config) else {
            return;
        };
        self.schedule(
            None,
            transaction.poll_timeout(),
            TimerRef::Server(key.clone()),
        );
        self.servers.insert(key.clone(), (transaction, flow));
        self.events
            .push_back(TransactionEvent::Request { key, flow, request });
    }

    /// A response arrived on `flow`. It reaches the TU as a [`TransactionEvent::Response`] if it
    /// belongs to a client transaction that is still waiting, or as a
    /// [`TransactionEvent::StrayResponse`] if it belongs to none.
    pub fn handle_response(&mut self, now: Instant, flow: FlowId, response: Response) {
        let entry = ClientKey::for_response(&response)
            .and_then(|key| self.clients.get_mut(&key).map(|entry| (key, entry)));
        let Some((key, (transaction, _))) = entry else {
            self.events
                .push_back(TransactionEvent::StrayResponse { flow, response });
            return;
        };
        let before = transaction.poll_timeout();
        let delivered = transaction.handle_response(now, response);
        let after = transaction.poll_timeout();
        let terminated = transaction.state() == ClientState::Terminated;
        self.schedule(before, after, TimerRef::Client(key.clone()));
        if terminated {
            self.clients.remove(&key);
        }
        if let Some(response) = delivered {
            self.events
                .push_back(TransactionEvent::Response { key, response });
        }
    }

    /// Starts a client transaction and queues `request` for sending on `flow`. The request's top `Via`
    /// must carry a branch unique to it, such as one from [`new_branch`](Self::new_branch).
    pub fn send_request(
        &mut self,
        now: Instant,
        flow: FlowId,
        request: Request,
    ) -> Result<ClientKey, TransactionError> {
        let transaction = ClientTransaction::new(now, request.clone(), &self.config)?;
        let key = transaction.key().clone();
        if self.clients.contains_key(&key) {
            return Err(TransactionError::BranchInUse);
        }
        self.schedule(
            None,
            transaction.poll_timeout(),
            TimerRef::Client(key.clone()),
        );
        self.clients.insert(key.clone(), (transaction, flow));
        self.transmits.push_back(Transmit {
            flow,
            message: request.into(),
        });
        Ok(key)
    }

    /// The TU's response to the request of server transaction `key`; queued for sending on the flow the
    /// request came in on.
    pub fn respond(
        &mut self,
        now: Instant,
        key: &ServerKey,
        response: Response,
    ) -> Result<(), TransactionError> {
        let (transaction, flow) = self
            .servers
            .get_mut(key)
            .ok_or(TransactionError::UnknownTransaction)?;
        let flow = *flow;
        let before = transaction.poll_timeout();
        let response = transaction.respond(now, response)?.clone();
        let after = transaction.poll_timeout();
        let terminated = transaction.state() == ServerState::Terminated;
        self.schedule(before, after, TimerRef::Server(key.clone()));
        if terminated {
            self.servers.remove(key);
        }
        self.transmits.push_back(Transmit {
            flow,
            message: response.into(),
        });
        Ok(())
    }

    /// `flow` failed. Client transactions on it that still wait for a final response end with
    /// [`TransactionEvent::TransportError`]. Server transactions are kept: RFC 3261 §18.2.2 has their
    /// responses sent on a new connection to the request's source, and their [`Transmit`]s keep naming
    /// the old flow so that the caller can do so or drop them.
    pub fn handle_transport_error(&mut self, flow: FlowId) {
        let failed: Vec<ClientKey> = self
            .clients
            .iter()
            .filter(|(_, (_, on))| *on == flow)
            .map(|(key, _)| key.clone())
            .collect();
        for key in failed {
            let Some((mut transaction, _)) = self.clients.remove(&key) else {
                continue;
            };
            self.schedule(
                transaction.poll_timeout(),
                None,
                TimerRef::Client(key.clone()),
            );
            if transaction.handle_transport_error() {
                let request = transaction.request;
                self.events
                    .push_back(TransactionEvent::TransportError { key, request });
            }
        }
    }

    /// The next message to write.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the TU.
    pub fn poll_event(&mut self) -> Option<TransactionEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must next be called; `None` while no timer runs.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.timers.first().map(|(deadline, _)| *deadline)
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some((deadline, _)) = self.timers.first() {
            if *deadline > now {
                break;
            }
            let Some((_, timer)) = self.timers.pop_first() else {
                break;
            };
            match timer {
                TimerRef::Client(key) => self.client_timeout(now, key),
                TimerRef::Server(key) => self.server_timeout(now, key),
            }
        }
    }

    /// The state of a client transaction; `None` once it has ended and been removed.
    pub fn client_state(&self, key: &ClientKey) -> Option<ClientState> {
        self.clients
            .get(key)
            .map(|(transaction, _)| transaction.state())
    }

    /// The state of a server transaction; `None` once it has ended and been removed.
    pub fn server_state(&self, key: &ServerKey) -> Option<ServerState> {
        self.servers
            .get(key)
            .map(|(transaction, _)| transaction.state())
    }

    /// How many transactions are in progress, client and server.
    pub fn len(&self) -> usize {
        self.clients.len() + self.servers.len()
    }

    /// Whether no transaction is in progress.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn client_timeout(&mut self, now: Instant, key: ClientKey) {
        let Some((transaction, _)) = self.clients.get_mut(&key) else {
            return;
        };
        let timed_out = transaction.handle_timeout(now);
        if transaction.state() != ClientState::Terminated {
            // Not due yet after all; keep its timer.
            let next = transaction.poll_timeout();
            self.schedule(None, next, TimerRef::Client(key));
            return;
        }
        let Some((transaction, _)) = self.clients.remove(&key) else {
            return;
        };
        if timed_out {
            let request = transaction.request;
            self.events
                .push_back(TransactionEvent::Timeout { key, request });
        }
    }

    fn server_timeout(&mut self, now: Instant, key: ServerKey) {
        let Some((transaction, _)) = self.servers.get_mut(&key) else {
            return;
        };
        let unanswered = transaction.handle_timeout(now);
        if transaction.state() != ServerState::Terminated {
            let next = transaction.poll_timeout();
            self.schedule(None, next, TimerRef::Server(key));
            return;
        }
        self.servers.remove(&key);
        if unanswered {
            self.events.push_back(TransactionEvent::Unanswered { key });
        }
    }

    /// Moves a transaction's entry in the timer queue from `before` to `after`.
    fn schedule(&mut self, before: Option<Instant>, after: Option<Instant>, timer: TimerRef) {
        if before == after {
            return;
        }
        if let Some(before) = before {
            self.timers.remove(&(before, timer.clone()));
        }
        if let Some(after) = after {
            self.timers.insert((after, timer));
        }
    }
}

#[cfg(test)]
mod tests;
