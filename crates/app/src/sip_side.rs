//! The SIP side of the gateway: requests from edge proxies and SIP partners, and `MESSAGE`s to them.
//!
//! Towards XMPP the gateway is a B2BUA (RFC 7247 §9): a `MESSAGE` becomes a stanza, and the response says
//! what became of it. Between SIP domains (a partner and one of our edges) it is a stateful proxy: the
//! request is forwarded with our `Via` and a decremented `Max-Forwards`, and the response relayed back.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::oneshot;

use sixgate_core::error_map::{StanzaCondition, sip_to_xmpp, xmpp_to_sip};
use sixgate_core::{CallId, Domain, Jid};
use sixgate_route::{LocalDelivery, Route, SharedRouteTable, SipHop};
use sixgate_sip::message::{HeaderName, Method, StatusCode, Token};
use sixgate_sip::stateless::{decrement_max_forwards, response_for};
use sixgate_sip::{Request, Response};
use sixgate_sip_net::{IncomingRequest, NextHop, SendError, SipService, Target};
use sixgate_xmpp::S2sService;
use sixgate_xmpp_proto::stanza;
use sixgate_xmpp_proto::xml::Element;
use tracing::{Instrument as _, debug, info, info_span, warn};

use crate::pager::{self, Identifiers, Outbound, Refusal};
use crate::presence::PresenceSide;

/// Methods we answer; everything else gets 405 (known methods) or 501 (unknown ones) with this list.
const ALLOW: &str = "MESSAGE, OPTIONS, SUBSCRIBE, NOTIFY";

/// How long a `MESSAGE` sent to XMPP waits, after its stanza is on its way, for an error from the recipient's
/// server before it is answered 202. Servers answer a message to a user that does not exist at once, so a
/// short wait turns the common failure into a SIP error response instead of a later notice.
const XMPP_ERROR_WAIT: Duration = Duration::from_secs(1);

/// The SIP half of the gateway, shared by the tasks that serve requests.
pub(crate) struct SipSide {
    pub(crate) sip: Arc<SipService>,
    pub(crate) s2s: Arc<S2sService>,
    pub(crate) routes: SharedRouteTable,
    /// Stanza ids of MESSAGEs not yet answered, waiting for a possible error.
    pub(crate) awaiting_error: Mutex<HashMap<String, oneshot::Sender<Element>>>,
    /// Presence federation (SUBSCRIBE, NOTIFY, `<presence/>`).
    pub(crate) presence: Arc<PresenceSide>,
}

/// Where a request came from, according to the peer's certificate and the route table.
#[derive(Debug, PartialEq, Eq)]
enum Origin {
    /// One of our edge proxies: its users are in these local domains.
    Edge(Vec<Domain>),
    /// A SIP federation partner.
    Partner(Vec<Domain>),
}

impl SipSide {
    /// Serves requests until the SIP service stops.
    pub(crate) async fn serve(
        self: Arc<Self>,
        mut inbound: tokio::sync::mpsc::Receiver<IncomingRequest>,
    ) {
        while let Some(incoming) = inbound.recv().await {
            let side = self.clone();
            let span = info_span!(
                "sip_request",
                method = %incoming.request.method,
                call_id = %incoming.request.call_id,
                peer = %incoming.peer.addr,
            );
            tokio::spawn(async move { side.handle(incoming).await }.instrument(span));
        }
    }

    async fn handle(&self, incoming: IncomingRequest) {
        let (request, peer, responder) = incoming.into_parts();
        let origin = self.origin(&peer.identities);
        let response = match request.method {
            Method::Subscribe => {
                // Only an edge may subscribe, for users of its own domains (the rule of MESSAGE).
                match (uri_domain(&request.from.uri), &origin) {
                    (Some(from_domain), Origin::Edge(domains))
                        if domains.contains(&from_domain) =>
                    {
                        self.presence
                            .subscribe(request, responder, from_domain)
                            .await;
                        return;
                    }
                    _ => {
                        info!(
                            ?origin,
                            "SUBSCRIBE from a peer not authorized for its From domain"
                        );
                        reply(
                            &request,
                            403,
                            "Only our edge proxies may subscribe, for their users",
                        )
                    }
                }
            }
            Method::Notify => match &origin {
                // NOTIFYs come from the edge we subscribed through; the dialog check does the rest.
                Origin::Edge(_) => {
                    self.presence.notify(request, responder).await;
                    return;
                }
                Origin::Partner(_) => reply(&request, 481, "Subscription does not exist"),
            },
            Method::Message => self.message(request.clone(), &origin).await,
            Method::Options => {
                let mut response = reply(&request, 200, "OK");
                let _ = response.headers.set(HeaderName::ALLOW, ALLOW);
                let _ = response.headers.set(HeaderName::ACCEPT, "text/plain");
                response
            }
            Method::Extension(_) => with_allow(reply(&request, 501, "Not Implemented")),
            _ => with_allow(reply(&request, 405, "Method Not Allowed")),
        };
        debug!(status = response.status.as_u16(), "answered");
        if let Err(error) = responder.respond(response) {
            debug!(%error, "the response could not be sent");
        }
    }

    fn origin(&self, identities: &[Domain]) -> Origin {
        let table = self.routes.load();
        let edge_domains: Vec<Domain> = identities
            .iter()
            .flat_map(|identity| {
                table
                    .domains_behind_edge(identity)
                    .cloned()
                    .collect::<Vec<_>>()
            })
            .collect();
        if !edge_domains.is_empty() {
            return Origin::Edge(edge_domains);
        }
        // A partner's proxy presents a certificate for the partner's domain (RFC 5922 §7).
        Origin::Partner(
            identities
                .iter()
                .filter(|identity| matches!(table.route(identity), Route::Sip(_)))
                .cloned()
                .collect(),
        )
    }

    async fn message(&self, request: Request, origin: &Origin) -> Response {
        let (Some(from_domain), Some(target)) =
            (uri_domain(&request.from.uri), uri_domain(&request.uri))
        else {
            return reply(&request, 400, "Bad From or Request-URI");
        };
        // The certificate, not the From header, says who is talking: a peer may only send for its own domains.
        let from_edge = match origin {
            Origin::Edge(domains) if domains.contains(&from_domain) => true,
            Origin::Partner(domains) if domains.contains(&from_domain) => false,
            _ => {
                info!(%from_domain, ?origin, "request from a peer not authorized for its From domain");
                return reply(
                    &request,
                    403,
                    "Your certificate does not cover the sender's domain",
                );
            }
        };
        match (self.routes.route(&target), from_edge) {
            (Route::Xmpp(_), true) => self.to_xmpp(&request).await,
            (Route::Sip(hop), true) => {
                let next = NextHop {
                    target: hop
                        .as_ref()
                        .map_or_else(|| Target::Discover(target.clone()), static_target),
                    identity: hop.map_or(target.clone(), |hop| hop.identity),
                    local: Some(from_domain),
                };
                self.forward(request, &next).await
            }
            (Route::Local(LocalDelivery::Sip(edge)), _) => {
                self.forward(request, &edge_hop(&edge, &target)).await
            }
            (Route::Local(LocalDelivery::Echo), _) => {
                reply(&request, 404, "No SIP users in this domain")
            }
            (Route::Deny, _) => reply(&request, 403, "Federation with this domain is not allowed"),
            // A partner may reach our users, not other domains through us: no open relay.
            (Route::Xmpp(_) | Route::Sip(_), false) => {
                reply(&request, 403, "Not a domain of this gateway")
            }
        }
    }

    /// B2BUA towards XMPP: answered once the stanza is on an authenticated stream (RFC 7247 §7, 202 as
    /// RFC 3428 §7 asks of a relay into a non-SIP domain: delivery to the user is not confirmed).
    async fn to_xmpp(&self, request: &Request) -> Response {
        let id = random_token("m");
        let stanza = match pager::stanza_from_message(request, id.as_str()) {
            Ok(stanza) => stanza,
            Err(refusal) => return refuse(request, &refusal),
        };
        let full_jid = stanza
            .attr("to")
            .and_then(|to| Jid::parse(to).ok())
            .is_some_and(|jid| jid.resource().is_some());
        let (error_tx, error_rx) = oneshot::channel();
        self.awaiting(|pending| pending.insert(id.as_str().to_owned(), error_tx));
        let sent = self.s2s.send_confirmed(stanza).await;
        let early_error = match sent {
            Ok(()) => tokio::time::timeout(XMPP_ERROR_WAIT, error_rx)
                .await
                .ok()
                .and_then(Result::ok),
            Err(_) => None,
        };
        self.awaiting(|pending| pending.remove(id.as_str()));
        match sent {
            Ok(()) => match early_error {
                None => reply(request, 202, "Accepted"),
                Some(error) => {
                    let condition = stanza::error_condition(&error)
                        .and_then(StanzaCondition::from_name)
                        .unwrap_or(StanzaCondition::UndefinedCondition);
                    let code = xmpp_to_sip(condition, full_jid, false);
                    let text =
                        stanza::error_text(&error).unwrap_or_else(|| condition.as_str().to_owned());
                    info!(
                        code,
                        condition = condition.as_str(),
                        "the XMPP recipient's server refused the message"
                    );
                    reply(request, code, &text)
                }
            },
            Err(undeliverable) => {
                let condition = StanzaCondition::from_name(undeliverable.condition.as_str())
                    .unwrap_or(StanzaCondition::InternalServerError);
                let code = xmpp_to_sip(condition, full_jid, false);
                info!(code, reason = %undeliverable, "MESSAGE to XMPP failed");
                // The details (addresses, OS errors) are ours to log, not to tell a peer.
                reply(request, code, condition.as_str())
            }
        }
    }

    /// Stateful proxy between SIP domains: the transport adds our `Via`; the response is relayed.
    async fn forward(&self, mut request: Request, next: &NextHop) -> Response {
        let original = request.clone();
        if decrement_max_forwards(&mut request).is_err() {
            return reply(&original, 483, "Too Many Hops");
        }
        let table = self.routes.load();
        if strip_own_route(&mut request, |host| {
            Domain::parse(host).is_ok_and(|domain| table.is_local(&domain))
                || self
                    .sip
                    .local_addrs()
                    .iter()
                    .any(|addr| addr.ip().to_string() == host)
        })
        .is_err()
        {
            return reply(&original, 400, "Bad Route header");
        }
        match self.sip.send_request(next, request).await {
            Ok(response) => response,
            Err(SendError::Timeout) => reply(&original, 408, "Request Timeout"),
            Err(SendError::NotFound) => reply(&original, 404, "No SIP service for the domain"),
            Err(SendError::Loop) => reply(&original, 482, "Loop Detected"),
            Err(error) => {
                warn!(%error, "forwarding failed");
                reply(&original, 503, "Next hop unreachable")
            }
        }
    }

    fn awaiting<T>(
        &self,
        f: impl FnOnce(&mut HashMap<String, oneshot::Sender<Element>>) -> T,
    ) -> T {
        f(&mut self
            .awaiting_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner))
    }

    /// A stanza for a user behind one of our SIP edges: a `MESSAGE` to the edge; failures are bounced to
    /// the XMPP sender with the condition RFC 7247 §7.2 gives the SIP response.
    pub(crate) async fn deliver(&self, stanza: Element, edge: SipHop, local: Domain) {
        // An error for a MESSAGE still waiting for its answer becomes that answer.
        if stanza.attr("type") == Some("error")
            && let Some(waiting) = stanza
                .attr("id")
                .and_then(|id| self.awaiting(|pending| pending.remove(id)))
        {
            let _ = waiting.send(stanza);
            return;
        }
        match stanza.name() {
            "message" => {}
            "presence" => {
                self.presence.stanza(stanza).await;
                return;
            }
            "iq" => {
                // RFC 6120 §8.2.3: every get/set gets an answer, and the SIP side serves none.
                self.bounce(&stanza, StanzaCondition::ServiceUnavailable, "")
                    .await;
                return;
            }
            _ => {
                debug!(stanza = stanza.name(), "not carried to SIP");
                return;
            }
        }
        // An error about a message one of our users sent earlier. The MESSAGE was already answered with 202,
        // so the user is told in a MESSAGE of its own rather than left believing it arrived.
        let notice = (stanza.attr("type") == Some("error")).then(|| delivery_notice(&stanza));
        let fresh_call_id = CallId::parse(&format!("{}@{local}", random_token("c").as_str()))
            .unwrap_or_else(|_| sixgate_core::message::call_id_from_thread("gateway"));
        let from_tag = random_token("t");
        let ids = Identifiers {
            from_tag: from_tag.as_str(),
            cseq: 1,
            fresh_call_id: &fresh_call_id,
        };
        let request = match pager::message_from_stanza(&stanza, &ids, notice.as_deref()) {
            Ok(Outbound::Message(request)) => request,
            Ok(Outbound::Nothing) => return,
            Err(refusal) => {
                self.bounce(&stanza, refusal.condition, &refusal.text).await;
                return;
            }
        };
        let (condition, text) = match self
            .sip
            .send_request(&edge_hop(&edge, &local), *request)
            .await
        {
            Ok(response) if response.status.is_success() => return,
            Ok(response) => (sip_to_xmpp(response.status.as_u16()), response.reason),
            Err(SendError::Timeout) => (
                StanzaCondition::RemoteServerTimeout,
                "the SIP edge did not answer".to_owned(),
            ),
            Err(error) => (
                StanzaCondition::RemoteServerTimeout,
                format!("the SIP edge is unreachable: {error}"),
            ),
        };
        if notice.is_none() {
            info!(condition = condition.as_str(), %text, "MESSAGE to SIP failed");
            self.bounce(&stanza, condition, &text).await;
        }
    }

    async fn bounce(&self, stanza: &Element, condition: StanzaCondition, text: &str) {
        let by = stanza
            .attr("to")
            .and_then(|to| Jid::parse(to).ok())
            .map(|jid| jid.domain().clone());
        if let Some(reply) = stanza::bounce_with(
            stanza,
            condition.as_str(),
            condition.default_type().as_str(),
            text,
            by.as_ref(),
        ) {
            self.s2s.send(reply).await;
        }
    }
}

/// Removes the top `Route` entry when it names us (RFC 3261 §16.4): an edge proxy that routes requests to
/// the gateway with a loose-route `Route` header would otherwise have them sent back to us by the next hop.
fn strip_own_route(request: &mut Request, is_ours: impl Fn(&str) -> bool) -> Result<(), ()> {
    let routes = request.headers.route().map_err(|_| ())?;
    let Some(top) = routes.first() else {
        return Ok(());
    };
    let ours = top.uri.host_port().is_some_and(|host_port| {
        is_ours(
            host_port
                .host
                .to_string()
                .trim_start_matches('[')
                .trim_end_matches(']'),
        )
    });
    if !ours {
        return Ok(());
    }
    request.headers.remove(&HeaderName::ROUTE);
    for route in &routes[1..] {
        request
            .headers
            .push(HeaderName::ROUTE, route.to_string())
            .map_err(|_| ())?;
    }
    Ok(())
}

/// The text of the `MESSAGE` that tells a SIP user an earlier message failed.
fn delivery_notice(error: &Element) -> String {
    let condition = stanza::error_condition(error).unwrap_or("undefined-condition");
    let from = error.attr("from").unwrap_or("the recipient");
    match stanza::error_text(error) {
        Some(text) if !text.is_empty() => {
            format!("Your message to {from} was not delivered: {condition} ({text})")
        }
        _ => format!("Your message to {from} was not delivered: {condition}"),
    }
}

fn static_target(hop: &SipHop) -> Target {
    Target::Static {
        host: hop.host.clone(),
        port: hop.port,
    }
}

/// The next hop towards the edge proxy of our domain `local`, presenting `local`'s certificate.
pub(crate) fn edge_hop(edge: &SipHop, local: &Domain) -> NextHop {
    NextHop {
        target: static_target(edge),
        identity: edge.identity.clone(),
        local: Some(local.clone()),
    }
}

/// The domain of a SIP URI's host, if it is a domain.
pub(crate) fn uri_domain(uri: &sixgate_sip::message::Uri) -> Option<Domain> {
    Domain::parse(&uri.host_port()?.host.to_string()).ok()
}

fn reply(request: &Request, code: u16, reason: &str) -> Response {
    let status = StatusCode::new(code).unwrap_or(StatusCode::SERVER_INTERNAL_ERROR);
    response_for(request, status, reason, &random_token("g"))
}

fn refuse(request: &Request, refusal: &Refusal) -> Response {
    let mut response = reply(request, refusal.status, &refusal.reason);
    if refusal.accept_text_plain {
        let _ = response.headers.set(HeaderName::ACCEPT, "text/plain");
    }
    response
}

fn with_allow(mut response: Response) -> Response {
    let _ = response.headers.set(HeaderName::ALLOW, ALLOW);
    response
}

/// A random token for tags, ids and Call-IDs: unguessable, so tags cannot be forged into dialogs.
pub(crate) fn random_token(prefix: &str) -> Token {
    let mut bytes = [0u8; 8];
    let _ = aws_lc_rs::rand::fill(&mut bytes);
    Token::from_u64(prefix, u64::from_le_bytes(bytes))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use sixgate_xmpp_proto::xml::ns;

    use super::*;

    fn request_with_routes(routes: &str) -> Request {
        let text = format!(
            "MESSAGE sip:carol@partner.example SIP/2.0\r\n\
             Via: SIP/2.0/TLS edge.corp.example;branch=z9hG4bK1\r\n\
             {routes}\
             From: <sip:alice@corp.example>;tag=1\r\n\
             To: <sip:carol@partner.example>\r\n\
             Call-ID: r1@corp.example\r\n\
             CSeq: 1 MESSAGE\r\n\
             Content-Length: 0\r\n\r\n"
        );
        match sixgate_sip::Message::from_bytes(text.as_bytes()).unwrap() {
            sixgate_sip::Message::Request(request) => request,
            sixgate_sip::Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn our_route_entry_is_removed_before_forwarding() {
        let ours = |host: &str| host == "corp.example" || host == "127.0.0.10";
        let mut request = request_with_routes(
            "Route: <sip:corp.example;lr>, <sip:proxy.partner.example;lr>\r\nRoute: <sip:last.partner.example;lr>\r\n",
        );
        strip_own_route(&mut request, ours).unwrap();
        let left: Vec<String> = request
            .headers
            .route()
            .unwrap()
            .iter()
            .map(|r| r.uri.to_string())
            .collect();
        assert_eq!(
            left,
            [
                "sip:proxy.partner.example;lr",
                "sip:last.partner.example;lr"
            ]
        );
        // Someone else's route stays as it is; no Route at all is fine.
        let mut request = request_with_routes("Route: <sip:proxy.partner.example;lr>\r\n");
        strip_own_route(&mut request, ours).unwrap();
        assert_eq!(request.headers.route().unwrap().len(), 1);
        let mut request = request_with_routes("");
        strip_own_route(&mut request, ours).unwrap();
        assert!(request.headers.route().unwrap().is_empty());
    }

    #[test]
    fn notices_name_the_recipient_and_the_condition() {
        let error = Element::new(ns::SERVER, "message")
            .with_attr("type", "error")
            .with_attr("from", "bob@xmpp.example")
            .with_child(
                Element::new(ns::SERVER, "error")
                    .with_attr("type", "cancel")
                    .with_child(Element::new(ns::STANZA_ERRORS, "item-not-found")),
            );
        assert_eq!(
            delivery_notice(&error),
            "Your message to bob@xmpp.example was not delivered: item-not-found"
        );
    }
}
