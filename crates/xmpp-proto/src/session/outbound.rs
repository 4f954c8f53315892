//! The initiating side: streams we open, to deliver stanzas or to verify a dialback key.

use std::time::Instant;

use base64::Engine as _;
use sixgate_core::Domain;
use tracing::{debug, info};

use super::{AuthMethod, Event, Role, Session, State};
use crate::certificate::CertificateVerdict;
use crate::dialback::{self, Verdict};
use crate::error::SessionEnd;
use crate::policy::RemotePolicy;
use crate::stream_error::StreamErrorCondition;
use crate::xml::{Element, StreamOpen, ns};

#[derive(Debug)]
pub(super) struct OutboundState {
    pub(super) local: Domain,
    pub(super) remote: Domain,
    pub(super) direct_tls: bool,
    purpose: Purpose,
    sasl_done: bool,
}

#[derive(Debug)]
enum Purpose {
    Deliver,
    Verify { stream_id: String, key: String },
}

impl OutboundState {
    pub(super) fn deliver(local: Domain, remote: Domain) -> Self {
        Self {
            local,
            remote,
            direct_tls: false,
            purpose: Purpose::Deliver,
            sasl_done: false,
        }
    }

    pub(super) fn verify(local: Domain, remote: Domain, stream_id: String, key: String) -> Self {
        Self {
            purpose: Purpose::Verify { stream_id, key },
            ..Self::deliver(local, remote)
        }
    }

    /// Whether a peer's close in this state is the normal end of our business.
    pub(super) fn finished_ok(&self, state: State) -> bool {
        state == State::Established
    }
}

impl Session {
    fn outbound_state(&mut self) -> &mut OutboundState {
        match &mut self.role {
            Role::Outbound(state) => state,
            Role::Inbound(_) => unreachable!("outbound handler on an inbound session"),
        }
    }

    fn remote_policy(&mut self) -> Option<RemotePolicy> {
        let remote = self.outbound_state().remote.clone();
        self.config.policy.remote(&remote)
    }

    pub(super) fn outbound_header(&mut self, header: StreamOpen) {
        // The id matters only for dialback keys; Prosody sends UUIDs, ejabberd decimal numbers.
        self.stream_id = header.id.filter(|id| !id.is_empty());
        self.state = State::AwaitFeatures;
    }

    pub(super) fn outbound_element(&mut self, element: Element, now: Instant) {
        match self.state {
            State::AwaitFeatures if element.is(ns::STREAMS, "features") => {
                self.outbound_features(&element)
            }
            State::AwaitProceed if element.is(ns::TLS, "proceed") => {
                self.state = State::TlsHandshake;
                self.events.push_back(Event::StartTls);
            }
            State::AwaitProceed if element.is(ns::TLS, "failure") => {
                self.abandon(SessionEnd::TlsRefused);
            }
            State::AwaitSaslResult if element.is(ns::SASL, "success") => {
                self.outbound_state().sasl_done = true;
                // RFC 6120 §6.4.6: restart the stream; the features that follow complete authentication.
                self.restart_parser();
                self.state = State::AwaitHeader;
                self.send_header();
            }
            State::AwaitSaslResult if element.is(ns::SASL, "failure") => {
                let reason = element
                    .children()
                    .next()
                    .map_or("failure", Element::name)
                    .to_owned();
                info!(reason, "peer refused SASL EXTERNAL");
                self.try_dialback(&format!("SASL EXTERNAL refused ({reason})"));
            }
            State::AwaitDialbackResult if element.is(ns::DIALBACK, "result") => {
                self.outbound_dialback_result(&element)
            }
            State::AwaitVerifyResult if element.is(ns::DIALBACK, "verify") => {
                let valid = Verdict::from_attr(element.attr("type")) == Some(Verdict::Valid);
                self.events.push_back(Event::DialbackVerdict(valid));
                self.negotiation_done();
                self.close(now);
            }
            State::Established => {
                // No bidi (XEP-0288) is negotiated, so nothing should arrive here.
                debug!(
                    element = element.name(),
                    "ignoring element on an outbound stream"
                );
            }
            _ => self.fail(
                StreamErrorCondition::UnsupportedStanzaType,
                &format!(
                    "unexpected element {{{}}}{} during negotiation",
                    element.ns(),
                    element.name()
                ),
            ),
        }
    }

    fn outbound_features(&mut self, features: &Element) {
        if self.tls.is_none() {
            // We always use TLS (RFC 6120 §5.3.1); asking even when not offered is what Prosody does, and a
            // plaintext-only peer answers with a failure or a stream error, which ends the attempt.
            self.send_element(&Element::new(ns::TLS, "starttls"));
            self.state = State::AwaitProceed;
            return;
        }
        let (sasl_done, is_verify) = {
            let out = self.outbound_state();
            (out.sasl_done, matches!(out.purpose, Purpose::Verify { .. }))
        };
        if sasl_done {
            self.established(AuthMethod::SaslExternal);
            return;
        }
        if is_verify {
            let out = self.outbound_state();
            let Purpose::Verify { stream_id, key } = &out.purpose else {
                return;
            };
            let request = dialback::verify_request(&out.local, &out.remote, stream_id, key);
            self.send_element(&request);
            self.state = State::AwaitVerifyResult;
            return;
        }
        let offers_external = features.child(ns::SASL, "mechanisms").is_some_and(|m| {
            m.children()
                .any(|c| c.is(ns::SASL, "mechanism") && c.text().trim() == "EXTERNAL")
        });
        let presented = self.tls.as_ref().is_some_and(|t| t.presented_certificate);
        if offers_external && presented {
            let local = self.outbound_state().local.clone();
            let authzid = base64::engine::general_purpose::STANDARD.encode(local.as_str());
            self.send_element(
                &Element::new(ns::SASL, "auth")
                    .with_attr("mechanism", "EXTERNAL")
                    .with_text(authzid),
            );
            self.state = State::AwaitSaslResult;
        } else {
            self.try_dialback("the peer does not offer SASL EXTERNAL for our certificate");
        }
    }

    fn try_dialback(&mut self, why_not_sasl: &str) {
        let allowed = self.remote_policy().is_some_and(|p| p.allow_dialback);
        if !allowed {
            self.abandon(SessionEnd::AuthenticationRefused(format!(
                "{why_not_sasl}, and dialback is not allowed for this domain"
            )));
            return;
        }
        let Some(stream_id) = self.stream_id.clone() else {
            self.abandon(SessionEnd::AuthenticationRefused(format!(
                "{why_not_sasl}, and the peer gave no stream id for dialback"
            )));
            return;
        };
        let out = self.outbound_state();
        let (local, remote) = (out.local.clone(), out.remote.clone());
        let key = self.config.dialback_secret.key(&remote, &local, &stream_id);
        let request = dialback::result_request(&local, &remote, &key);
        debug!("authenticating with dialback");
        self.send_element(&request);
        self.state = State::AwaitDialbackResult;
    }

    fn outbound_dialback_result(&mut self, answer: &Element) {
        match Verdict::from_attr(answer.attr("type")) {
            Some(Verdict::Valid) => self.established(AuthMethod::Dialback),
            Some(Verdict::Invalid) => self.abandon(SessionEnd::AuthenticationRefused(
                "dialback key rejected".into(),
            )),
            Some(Verdict::Error) => {
                let condition = answer
                    .child(ns::SERVER, "error")
                    .and_then(|e| e.children().next())
                    .map_or("unknown", Element::name)
                    .to_owned();
                self.abandon(SessionEnd::AuthenticationRefused(format!(
                    "dialback error: {condition}"
                )));
            }
            None => self.fail(
                StreamErrorCondition::UnsupportedStanzaType,
                "db:result request on an outbound stream",
            ),
        }
    }

    fn established(&mut self, method: AuthMethod) {
        let out = self.outbound_state();
        let (local, remote) = (out.local.clone(), out.remote.clone());
        info!(local = %local, remote = %remote, ?method, "outbound stream authenticated");
        self.state = State::Established;
        self.negotiation_done();
        self.events.push_back(Event::Authenticated {
            local,
            remote,
            method,
        });
    }

    /// After TLS on an outbound stream: judge the server's certificate, then start the new stream.
    pub(super) fn outbound_after_tls(&mut self) {
        let remote = self.outbound_state().remote.clone();
        let require_valid = self
            .remote_policy()
            .is_none_or(|p| p.require_valid_certificate);
        match self.judge_peer(&remote) {
            CertificateVerdict::Valid => {}
            CertificateVerdict::Invalid(problem) if require_valid => {
                info!(remote = %remote, %problem, "refusing the peer's certificate");
                self.send_header();
                self.send_element(&crate::stream_error::stream_error(
                    StreamErrorCondition::PolicyViolation,
                    "your certificate is not valid for your domain",
                ));
                self.abandon(SessionEnd::CertificateRejected(problem));
                return;
            }
            CertificateVerdict::Invalid(problem) => {
                debug!(remote = %remote, %problem, "peer certificate not valid; domain is marked insecure");
            }
        }
        self.send_header();
    }
}
