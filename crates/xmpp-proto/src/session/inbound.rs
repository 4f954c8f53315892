//! The receiving side: a peer connected to us.

use std::time::Instant;

use base64::Engine as _;
use sixgate_core::Domain;
use tracing::{debug, info, trace};

use super::{
    AuthMethod, DialbackOutcome, Event, Pairs, Role, Session, State, header_domains, new_stream_id,
};
use crate::certificate::CertificateVerdict;
use crate::dialback::{self, Verdict};
use crate::stanza;
use crate::stream_error::StreamErrorCondition;
use crate::xml::{Element, StreamOpen, ns, write_stream_open};

/// Dialback verifications one inbound stream may have under way at once.
const MAX_PENDING_DIALBACK: usize = 8;

#[derive(Debug, Default)]
pub(super) struct InboundState {
    /// `from` of the current stream header (may be absent: dialback then names the domains).
    header_from: Option<Domain>,
    /// `to` of the current stream header: always one of ours.
    header_to: Option<Domain>,
    sasl_done: bool,
    authenticated: Pairs,
    /// Dialback requests waiting for the authoritative server.
    pending_dialback: Pairs,
}

impl InboundState {
    pub(super) fn header_to(&self) -> Option<&Domain> {
        self.header_to.as_ref()
    }

    pub(super) fn header_from(&self) -> Option<&Domain> {
        self.header_from.as_ref()
    }
}

impl Session {
    fn inbound_state(&mut self) -> &mut InboundState {
        match &mut self.role {
            Role::Inbound(state) => state,
            Role::Outbound(_) => unreachable!("inbound handler on an outbound session"),
        }
    }

    pub(super) fn inbound_header(&mut self, header: StreamOpen) {
        let (from, to) = header_domains(&header);
        let id = new_stream_id();
        let our_name = to.as_ref().map(Domain::to_string).unwrap_or_default();
        let their_name = from.as_ref().map(Domain::to_string).unwrap_or_default();
        write_stream_open(&mut self.output, &our_name, &their_name, Some(&id));
        self.stream_id = Some(id);
        let Some(to) = to.filter(|to| self.config.policy.is_local(to)) else {
            self.fail(
                StreamErrorCondition::HostUnknown,
                "this server does not serve that domain",
            );
            return;
        };
        let tls = self.tls.is_some();
        let sasl_done;
        {
            let state = self.inbound_state();
            state.header_from = from.clone();
            state.header_to = Some(to.clone());
            sasl_done = state.sasl_done;
        }
        debug!(from = ?from, to = %to, tls, "inbound stream header");
        let mut features = Element::new(ns::STREAMS, "features");
        if !tls {
            features.push_child(
                Element::new(ns::TLS, "starttls").with_child(Element::new(ns::TLS, "required")),
            );
        } else {
            let policy = from
                .as_ref()
                .and_then(|from| self.config.policy.remote(from));
            if !sasl_done {
                // XEP-0178 §3: offer EXTERNAL only when the certificate is good for the domain it will claim.
                if let (Some(from), Some(_)) = (&from, policy)
                    && self.judge_peer(from) == CertificateVerdict::Valid
                {
                    features.push_child(
                        Element::new(ns::SASL, "mechanisms")
                            .with_child(Element::new(ns::SASL, "mechanism").with_text("EXTERNAL")),
                    );
                }
            }
            // Without a `from` we cannot tell yet; dialback requests are checked one by one anyway.
            if policy.is_none_or(|p| p.allow_dialback) {
                features.push_child(
                    Element::new(ns::DIALBACK_FEATURE, "dialback")
                        .with_child(Element::new(ns::DIALBACK_FEATURE, "errors")),
                );
            }
        }
        self.send_element(&features);
        self.state = State::Open;
    }

    pub(super) fn inbound_element(&mut self, element: Element, now: Instant) {
        if self.state != State::Open {
            self.fail(
                StreamErrorCondition::InvalidXml,
                "element before the stream header",
            );
            return;
        }
        if self.tls.is_none() {
            if element.is(ns::TLS, "starttls") {
                self.send_element(&Element::new(ns::TLS, "proceed"));
                self.state = State::TlsHandshake;
                self.events.push_back(Event::StartTls);
            } else {
                // RFC 6120 §5.3.1: we announced STARTTLS as required.
                self.fail(
                    StreamErrorCondition::PolicyViolation,
                    "STARTTLS is required before anything else",
                );
            }
            return;
        }
        match (element.ns(), element.name()) {
            (ns::SASL, "auth") => self.inbound_sasl(&element),
            (ns::DIALBACK, "result") => self.inbound_dialback_result(&element),
            (ns::DIALBACK, "verify") => self.inbound_dialback_verify(&element),
            (ns::SERVER, "message" | "presence" | "iq") => self.inbound_stanza(element, now),
            (ns::CLIENT, _) => self.fail(
                StreamErrorCondition::InvalidNamespace,
                "jabber:client on a server stream",
            ),
            (ns::TLS, "starttls") => self.fail(
                StreamErrorCondition::PolicyViolation,
                "TLS is already in place",
            ),
            _ => self.fail(
                StreamErrorCondition::UnsupportedStanzaType,
                &format!("unexpected element {{{}}}{}", element.ns(), element.name()),
            ),
        }
    }

    fn inbound_sasl(&mut self, auth: &Element) {
        let (sasl_done, header_from, header_to) = {
            let state = self.inbound_state();
            (
                state.sasl_done,
                state.header_from.clone(),
                state.header_to.clone(),
            )
        };
        if sasl_done {
            self.fail(
                StreamErrorCondition::PolicyViolation,
                "SASL is already done on this stream",
            );
            return;
        }
        if auth.attr("mechanism") != Some("EXTERNAL") {
            self.sasl_failure("invalid-mechanism");
            return;
        }
        // The authorization identity is the base64 of the domain, or "=" / empty to mean the header's `from`.
        let content = auth.text();
        let content = content.trim();
        let claimed = if content.is_empty() || content == "=" {
            header_from.clone()
        } else {
            base64::engine::general_purpose::STANDARD
                .decode(content)
                .ok()
                .and_then(|bytes| String::from_utf8(bytes).ok())
                .and_then(|text| Domain::parse(&text).ok())
        };
        let (Some(remote), Some(local)) = (claimed, header_to) else {
            self.sasl_failure("invalid-authzid");
            return;
        };
        if header_from.as_ref().is_some_and(|from| *from != remote) {
            self.sasl_failure("invalid-authzid");
            return;
        }
        if self.config.policy.remote(&remote).is_none() {
            info!(remote = %remote, "SASL EXTERNAL refused: federation with this domain is not allowed");
            self.sasl_failure("not-authorized");
            return;
        }
        if let CertificateVerdict::Invalid(problem) = self.judge_peer(&remote) {
            info!(remote = %remote, %problem, "SASL EXTERNAL refused");
            self.sasl_failure("not-authorized");
            return;
        }
        self.send_element(&Element::new(ns::SASL, "success"));
        info!(remote = %remote, local = %local, "inbound stream authenticated with SASL EXTERNAL");
        let state = self.inbound_state();
        state.sasl_done = true;
        state.authenticated.insert((remote.clone(), local.clone()));
        self.negotiation_done();
        self.events.push_back(Event::Authenticated {
            local,
            remote,
            method: AuthMethod::SaslExternal,
        });
        // The peer restarts the stream (RFC 6120 §6.4.6); bytes after <success/> belong to the new stream.
        self.restart_parser();
        self.state = State::AwaitHeader;
    }

    fn sasl_failure(&mut self, condition: &str) {
        self.send_element(
            &Element::new(ns::SASL, "failure").with_child(Element::new(ns::SASL, condition)),
        );
    }

    /// A peer asks us to accept it as `from` for our `to` with a dialback key (we are the receiving server).
    fn inbound_dialback_result(&mut self, request: &Element) {
        if Verdict::from_attr(request.attr("type")).is_some() {
            self.fail(
                StreamErrorCondition::UnsupportedStanzaType,
                "db:result answer on an inbound stream",
            );
            return;
        }
        let (Some(remote), Some(local)) = (
            request.attr("from").and_then(|d| Domain::parse(d).ok()),
            request.attr("to").and_then(|d| Domain::parse(d).ok()),
        ) else {
            self.fail(
                StreamErrorCondition::ImproperAddressing,
                "db:result without valid from/to",
            );
            return;
        };
        let refuse = |session: &mut Self, condition: &str, why: &str| {
            info!(remote = %remote, local = %local, why, "dialback refused");
            session.send_element(&dialback::result_answer(
                &local,
                &remote,
                Verdict::Error,
                Some(condition),
            ));
        };
        if !self.config.policy.is_local(&local) {
            refuse(self, "item-not-found", "not our domain");
            return;
        }
        let Some(policy) = self.config.policy.remote(&remote) else {
            refuse(
                self,
                "not-allowed",
                "federation with this domain is not allowed",
            );
            return;
        };
        if !policy.allow_dialback {
            refuse(
                self,
                "not-allowed",
                "dialback is not allowed for this domain",
            );
            return;
        }
        if policy.require_valid_certificate
            && let CertificateVerdict::Invalid(problem) = self.judge_peer(&remote)
        {
            info!(remote = %remote, %problem, "dialback needs a valid certificate for this domain");
            refuse(self, "policy-violation", "a valid certificate is required");
            return;
        }
        let key = request.text();
        let pair = (remote.clone(), local.clone());
        let state = self.inbound_state();
        if state.authenticated.contains(&pair) {
            self.send_element(&dialback::result_answer(
                &local,
                &remote,
                Verdict::Valid,
                None,
            ));
            return;
        }
        if state.pending_dialback.len() >= MAX_PENDING_DIALBACK {
            // Each request makes us open a connection: a peer must not be able to make us open many.
            self.send_element(&dialback::result_answer(
                &local,
                &remote,
                Verdict::Error,
                Some("resource-constraint"),
            ));
            return;
        }
        let state = self.inbound_state();
        if !state.pending_dialback.insert(pair) {
            // A second request for the same pair while the first is being checked: the first answer covers it.
            return;
        }
        let stream_id = self.stream_id.clone().unwrap_or_default();
        debug!(remote = %remote, local = %local, "verifying dialback key with the authoritative server");
        self.events.push_back(Event::VerifyDialback {
            local,
            remote,
            stream_id,
            key: key.trim().to_owned(),
        });
    }

    /// The answer to an [`Event::VerifyDialback`].
    pub fn dialback_verified(&mut self, local: &Domain, remote: &Domain, outcome: DialbackOutcome) {
        let Role::Inbound(state) = &mut self.role else {
            return;
        };
        if !state
            .pending_dialback
            .remove(&(remote.clone(), local.clone()))
            || self.state == State::Done
        {
            return;
        }
        match outcome {
            DialbackOutcome::Valid => {
                state.authenticated.insert((remote.clone(), local.clone()));
                self.send_element(&dialback::result_answer(
                    local,
                    remote,
                    Verdict::Valid,
                    None,
                ));
                info!(remote = %remote, local = %local, "inbound stream authenticated with dialback");
                self.negotiation_done();
                self.events.push_back(Event::Authenticated {
                    local: local.clone(),
                    remote: remote.clone(),
                    method: AuthMethod::Dialback,
                });
            }
            DialbackOutcome::Invalid => {
                info!(remote = %remote, local = %local, "dialback key rejected by the authoritative server");
                self.send_element(&dialback::result_answer(
                    local,
                    remote,
                    Verdict::Invalid,
                    None,
                ));
            }
            DialbackOutcome::Unreachable => {
                self.send_element(&dialback::result_answer(
                    local,
                    remote,
                    Verdict::Error,
                    Some("remote-connection-failed"),
                ));
            }
        }
    }

    /// A peer asks us, as authoritative server for `to`, whether a key we generated is valid.
    fn inbound_dialback_verify(&mut self, request: &Element) {
        let (Some(receiving), Some(originating), Some(id)) = (
            request.attr("from").and_then(|d| Domain::parse(d).ok()),
            request.attr("to").and_then(|d| Domain::parse(d).ok()),
            request.attr("id"),
        ) else {
            self.fail(
                StreamErrorCondition::ImproperAddressing,
                "db:verify without valid from/to/id",
            );
            return;
        };
        let answer = if !self.config.policy.is_local(&originating) {
            dialback::verify_answer(
                &originating,
                &receiving,
                id,
                Verdict::Error,
                Some("item-not-found"),
            )
        } else {
            let valid =
                self.config
                    .dialback_secret
                    .verify(&receiving, &originating, id, &request.text());
            debug!(receiving = %receiving, originating = %originating, valid, "answered dialback verification");
            let verdict = if valid {
                Verdict::Valid
            } else {
                Verdict::Invalid
            };
            dialback::verify_answer(&originating, &receiving, id, verdict, None)
        };
        self.send_element(&answer);
    }

    fn inbound_stanza(&mut self, stanza: Element, _now: Instant) {
        let Some((from, to)) = stanza::addresses(&stanza) else {
            self.fail(
                StreamErrorCondition::ImproperAddressing,
                "stanza without valid from and to",
            );
            return;
        };
        let state = self.inbound_state();
        if state.authenticated.is_empty() {
            self.fail(
                StreamErrorCondition::NotAuthorized,
                "stanza before authentication",
            );
            return;
        }
        if !self.config.policy.is_local(to.domain()) {
            self.fail(
                StreamErrorCondition::HostUnknown,
                "stanza for a domain this server does not serve",
            );
            return;
        }
        let pair = (from.domain().clone(), to.domain().clone());
        if !self.inbound_state().authenticated.contains(&pair) {
            self.fail(
                StreamErrorCondition::InvalidFrom,
                "the stanza's from/to domains are not authenticated on this stream",
            );
            return;
        }
        trace!(stanza = ?stanza, "inbound stanza");
        self.events.push_back(Event::Stanza(stanza));
    }
}
