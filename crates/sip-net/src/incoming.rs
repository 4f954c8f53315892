//! Requests handed to the application, and the handle that answers them.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use sixgate_core::Domain;
use sixgate_sip::message::{Request, Response, StatusCode, Token};
use sixgate_sip::stateless::response_for;
use tracing::debug;

use crate::engine::{Engine, ReplyPath, server_error};

/// Who sent a request: the connection it came in on, as authenticated by mutual TLS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// The remote address of the connection.
    pub addr: SocketAddr,
    /// The SIP domains the peer's certificate names (RFC 5922 §7.1), computed once per connection from a
    /// chain that leads to our trust anchors. Whether a request's `From` domain must be among them is the
    /// application's policy (§7.4).
    pub identities: Vec<Domain>,
}

/// A request received from a peer, to be answered exactly once through its [`Responder`].
///
/// Every method is delivered, not only MESSAGE and OPTIONS: the application answers what it does not
/// support (405 or 501 with `Allow`). Retransmissions never reach the application; the transaction
/// layer absorbs them and repeats the final response.
pub struct IncomingRequest {
    /// The request as received (with `received`/`rport` added to its top `Via`, RFC 3261 §18.2.1).
    pub request: Request,
    /// Who sent it.
    pub peer: PeerInfo,
    responder: Responder,
    span: tracing::Span,
}

impl IncomingRequest {
    pub(crate) fn new(
        request: Request,
        peer: PeerInfo,
        responder: Responder,
        span: tracing::Span,
    ) -> Self {
        Self {
            request,
            peer,
            responder,
            span,
        }
    }

    /// A response to this request with our `To` tag (the same one in every response to it), no body and
    /// `reason` (empty: the standard phrase).
    pub fn response(&self, status: StatusCode, reason: &str) -> Response {
        self.responder.response(status, reason)
    }

    /// Sends the final response; see [`Responder::respond`].
    pub fn respond(self, response: Response) -> Result<(), RespondError> {
        self.responder.respond(response)
    }

    /// The tracing span of the request's transaction (Call-ID, method, branch), for the application to
    /// enter while it handles the request.
    pub fn span(&self) -> &tracing::Span {
        &self.span
    }

    /// Splits the request from its responder, such as to answer after a request to the other side.
    pub fn into_parts(self) -> (Request, PeerInfo, Responder) {
        (self.request, self.peer, self.responder)
    }
}

impl fmt::Debug for IncomingRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IncomingRequest")
            .field("method", &self.request.method)
            .field("call_id", &self.request.call_id)
            .field("peer", &self.peer)
            .finish_non_exhaustive()
    }
}

/// Answers one received request with its final response, on the connection it came in on.
///
/// Dropping a `Responder` without responding answers 500, so a request is never left hanging; so does a
/// call to [`respond`](Self::respond) with a response that cannot be sent for this request.
pub struct Responder {
    engine: Arc<Engine>,
    path: ReplyPath,
    /// The request without its body: enough to build responses to it.
    request: Request,
    tag: Token,
    answered: bool,
}

impl Responder {
    pub(crate) fn new(engine: Arc<Engine>, path: ReplyPath, request: &Request, tag: Token) -> Self {
        let request = Request {
            body: Vec::new(),
            ..request.clone()
        };
        Self {
            engine,
            path,
            request,
            tag,
            answered: false,
        }
    }

    /// The `To` tag of responses built by [`response`](Self::response), random per request (RFC 3261
    /// §19.3).
    pub fn to_tag(&self) -> &Token {
        &self.tag
    }

    /// A response to the request (RFC 3261 §8.2.6) with our `To` tag, no body, and `reason` (empty: the
    /// standard phrase). Add headers and a body before sending it.
    pub fn response(&self, status: StatusCode, reason: &str) -> Response {
        response_for(&self.request, status, reason, &self.tag)
    }

    /// Sends the final response through the request's server transaction, which then answers copies of
    /// the request with it.
    ///
    /// A provisional response, or one that does not belong to this request (another `Via` branch or
    /// `CSeq` method), is refused and 500 is sent instead. [`RespondError::ConnectionClosed`] and
    /// [`RespondError::TransactionEnded`] say the response could not reach the peer.
    pub fn respond(mut self, response: Response) -> Result<(), RespondError> {
        self.answered = true;
        if !response.status.is_final() {
            self.fail();
            return Err(RespondError::Provisional);
        }
        match self.engine.respond(&self.path, response) {
            Err(RespondError::Mismatch) => {
                self.fail();
                Err(RespondError::Mismatch)
            }
            other => other,
        }
    }

    /// Answers 500, so that the transaction ends.
    fn fail(&self) {
        let response = server_error(&self.request, &self.tag);
        if let Err(err) = self.engine.respond(&self.path, response) {
            debug!(%err, "could not answer 500");
        }
    }
}

impl Drop for Responder {
    fn drop(&mut self) {
        if !self.answered {
            debug!(
                call_id = %self.request.call_id,
                method = %self.request.method,
                "request dropped unanswered, answering 500"
            );
            self.fail();
        }
    }
}

impl fmt::Debug for Responder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Responder")
            .field("call_id", &self.request.call_id)
            .field("method", &self.request.method)
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}

/// Why a response could not be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RespondError {
    /// The response was provisional; a `Responder` sends the final one. 500 was sent instead.
    #[error("a provisional response cannot end the transaction")]
    Provisional,
    /// The response's top `Via` or `CSeq` method belongs to another request. 500 was sent instead.
    #[error("the response does not belong to this request")]
    Mismatch,
    /// The server transaction had already ended: unanswered for longer than Timer F.
    #[error("the transaction has already ended")]
    TransactionEnded,
    /// The connection the request came in on has closed; the response was not sent.
    #[error("the connection has closed")]
    ConnectionClosed,
}
