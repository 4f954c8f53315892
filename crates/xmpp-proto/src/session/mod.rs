//! The s2s stream negotiation state machine, in the three roles a server plays (RFC 6120 §5–§6,
//! XEP-0178, XEP-0220):
//!
//! * **inbound**: a peer connected to us. We require STARTTLS, then let it authenticate one or more
//!   (remote, local) domain pairs with SASL EXTERNAL or dialback, answer dialback verification requests as the
//!   authoritative server, and pass on the stanzas of authenticated pairs;
//! * **outbound**: we connect to deliver stanzas from one local domain to one remote domain. We always use
//!   STARTTLS, judge the peer's certificate, authenticate with SASL EXTERNAL or fall back to dialback;
//! * **verify**: a short-lived outbound stream to a dialback peer's authoritative server, to check a key.
//!
//! A [`Session`] is fed bytes ([`Session::receive`]), the end of TLS handshakes
//! ([`Session::tls_established`]), answers to its requests and the time; it produces bytes
//! ([`Session::take_output`]), [`Event`]s and its next deadline ([`Session::poll_timeout`]). TLS itself is
//! done by the driver when the session asks for it with [`Event::StartTls`].

mod inbound;
mod outbound;

#[cfg(test)]
mod tests;

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls_pki_types::{CertificateDer, UnixTime};
use sixgate_core::Domain;
use tracing::{debug, trace};

use crate::certificate::{CertificateVerdict, TrustStore};
use crate::dialback::DialbackSecret;
use crate::error::SessionEnd;
use crate::policy::DomainPolicy;
use crate::stream_error::{StreamErrorCondition, stream_error};
use crate::xml::{
    Element, StreamEvent, StreamOpen, StreamParser, write_element, write_stream_close,
};

/// Settings shared by all sessions.
pub struct SessionConfig {
    /// Largest top-level element accepted, in bytes.
    pub stanza_size_limit: usize,
    /// From connect/accept to authenticated.
    pub negotiation_timeout: Duration,
    /// Close a stream that received nothing for this long.
    pub idle_timeout: Duration,
    /// Send a whitespace keepalive after this long without sending.
    pub keepalive_interval: Duration,
    /// How long to wait for the peer's `</stream:stream>` after ours.
    pub close_timeout: Duration,
    /// The secret behind our dialback keys.
    pub dialback_secret: DialbackSecret,
    /// CAs we trust for peer certificates.
    pub trust: Arc<TrustStore>,
    /// Which domains are ours and how remote ones must authenticate.
    pub policy: Arc<dyn DomainPolicy>,
}

/// How a domain pair was authenticated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AuthMethod {
    /// SASL EXTERNAL with a certificate (XEP-0178).
    SaslExternal,
    /// Server Dialback (XEP-0220).
    Dialback,
}

/// The result of a TLS handshake, as the session needs it.
#[derive(Debug, Clone)]
pub struct TlsInfo {
    /// The peer's certificate chain, end entity first (empty when it sent none).
    pub peer_certificates: Vec<CertificateDer<'static>>,
    /// Wall-clock time for certificate validity checks.
    pub now: UnixTime,
    /// Whether we presented a certificate ourselves (outbound: SASL EXTERNAL needs one).
    pub presented_certificate: bool,
}

/// What a session reports to its driver.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// Flush the output, then run the TLS handshake (as server for inbound sessions, as client otherwise)
    /// and call [`Session::tls_established`]. No more plaintext may be read.
    StartTls,
    /// A domain pair is authenticated. For outbound sessions the stream is now ready for stanzas.
    Authenticated {
        /// Our domain.
        local: Domain,
        /// The peer's domain.
        remote: Domain,
        /// How.
        method: AuthMethod,
    },
    /// A stanza from an authenticated pair, addressed to one of our domains.
    Stanza(Element),
    /// Inbound dialback: ask `remote`'s authoritative server whether `key` is valid for the stream
    /// `stream_id`, then call [`Session::dialback_verified`].
    VerifyDialback {
        /// Our (receiving) domain.
        local: Domain,
        /// The originating domain.
        remote: Domain,
        /// Our id of the inbound stream the key was sent on.
        stream_id: String,
        /// The key to check.
        key: String,
    },
    /// A verify session got its answer: whether the key was valid.
    DialbackVerdict(bool),
    /// The session is over; after flushing the output, close the connection.
    Closed(SessionEnd),
}

/// The outcome of checking a dialback key with the authoritative server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DialbackOutcome {
    /// The authoritative server confirmed the key.
    Valid,
    /// The authoritative server said the key is wrong.
    Invalid,
    /// The authoritative server could not be reached or did not answer.
    Unreachable,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the peer's stream header.
    AwaitHeader,
    /// Outbound: waiting for stream features.
    AwaitFeatures,
    /// Outbound: sent `<starttls/>`.
    AwaitProceed,
    /// The driver is doing TLS.
    TlsHandshake,
    /// Inbound: header exchanged, handling negotiation elements and stanzas.
    Open,
    /// Outbound: sent SASL `<auth/>`.
    AwaitSaslResult,
    /// Outbound: sent `<db:result/>`.
    AwaitDialbackResult,
    /// Verify: sent `<db:verify/>`.
    AwaitVerifyResult,
    /// Outbound: authenticated, stanzas flow.
    Established,
    /// We sent `</stream:stream>` and wait for the peer's.
    Closing,
    /// Over.
    Done,
}

#[derive(Debug)]
enum Role {
    Inbound(inbound::InboundState),
    Outbound(outbound::OutboundState),
}

/// One s2s stream (one TCP connection), in any role.
pub struct Session {
    config: Arc<SessionConfig>,
    role: Role,
    state: State,
    parser: StreamParser,
    output: Vec<u8>,
    events: VecDeque<Event>,
    tls: Option<TlsInfo>,
    /// The stream id of the current stream (ours inbound, the peer's outbound).
    stream_id: Option<String>,
    negotiation_deadline: Option<Instant>,
    last_activity: Instant,
    last_sent: Instant,
    close_deadline: Option<Instant>,
    /// Why we are closing, reported once the peer has closed too.
    ending: Option<SessionEnd>,
}

impl Session {
    /// A session for a connection a peer opened to us.
    pub fn inbound(config: Arc<SessionConfig>, now: Instant) -> Self {
        Self::new(config, Role::Inbound(inbound::InboundState::default()), now)
    }

    /// A session that delivers stanzas from `local` to `remote`. Writes our stream header right away.
    pub fn outbound(
        config: Arc<SessionConfig>,
        local: Domain,
        remote: Domain,
        now: Instant,
    ) -> Self {
        Self::new_outbound(config, outbound::OutboundState::deliver(local, remote), now)
    }

    /// A session that asks `remote`'s authoritative server whether `key` is valid for the inbound stream
    /// `stream_id` it opened to `local`.
    pub fn verify(
        config: Arc<SessionConfig>,
        local: Domain,
        remote: Domain,
        stream_id: String,
        key: String,
        now: Instant,
    ) -> Self {
        Self::new_outbound(
            config,
            outbound::OutboundState::verify(local, remote, stream_id, key),
            now,
        )
    }

    /// An outbound-role session whose stream starts with direct TLS (XEP-0368): the driver has already done
    /// the handshake.
    pub fn with_direct_tls(mut self, info: TlsInfo) -> Self {
        if let Role::Outbound(out) = &mut self.role {
            out.direct_tls = true;
        }
        self.output.clear();
        self.tls_established(info);
        self
    }

    fn new_outbound(
        config: Arc<SessionConfig>,
        state: outbound::OutboundState,
        now: Instant,
    ) -> Self {
        let mut session = Self::new(config, Role::Outbound(state), now);
        session.send_header();
        session
    }

    fn new(config: Arc<SessionConfig>, role: Role, now: Instant) -> Self {
        let parser = StreamParser::new(config.stanza_size_limit);
        let negotiation_deadline = Some(now + config.negotiation_timeout);
        Self {
            config,
            role,
            state: State::AwaitHeader,
            parser,
            output: Vec::new(),
            events: VecDeque::new(),
            tls: None,
            stream_id: None,
            negotiation_deadline,
            last_activity: now,
            last_sent: now,
            close_deadline: None,
            ending: None,
        }
    }

    /// Feeds bytes received from the peer.
    pub fn receive(&mut self, now: Instant, mut data: &[u8]) {
        self.last_activity = now;
        while !data.is_empty() {
            match self.state {
                State::Done => return,
                State::TlsHandshake => {
                    // The peer must wait for the TLS handshake: bytes here are a protocol violation.
                    self.fail(
                        StreamErrorCondition::PolicyViolation,
                        "data after STARTTLS before the TLS handshake",
                    );
                    return;
                }
                _ => {}
            }
            match self.parser.next_event(&mut data) {
                Ok(Some(event)) => self.handle_stream_event(event, now),
                Ok(None) => return,
                Err(error) => {
                    let condition = StreamErrorCondition::for_xml_error(&error);
                    self.fail(condition, &error.to_string());
                    return;
                }
            }
        }
    }

    /// The peer closed the connection (TCP FIN or TLS close_notify).
    pub fn receive_eof(&mut self) {
        if self.state == State::Done {
            return;
        }
        let end = match self.state {
            State::Closing => self.ending.take().unwrap_or(SessionEnd::Closed),
            _ => SessionEnd::ConnectionLost,
        };
        self.finish(end);
    }

    /// The TLS handshake the session asked for is complete.
    pub fn tls_established(&mut self, info: TlsInfo) {
        if self.state == State::Done {
            return;
        }
        debug!(
            peer_certificates = info.peer_certificates.len(),
            "TLS established"
        );
        self.tls = Some(info);
        // A new stream starts over TLS (RFC 6120 §5.4.3.3).
        self.restart_parser();
        self.state = State::AwaitHeader;
        if let Role::Outbound(_) = self.role {
            self.outbound_after_tls();
        }
    }

    /// Bytes to send to the peer (empties the buffer).
    pub fn take_output(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.output)
    }

    /// Whether there are bytes to send.
    pub fn has_output(&self) -> bool {
        !self.output.is_empty()
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Done {
            return None;
        }
        if let Some(deadline) = self.close_deadline {
            return Some(deadline);
        }
        let idle = self.last_activity + self.config.idle_timeout;
        let mut next = match self.negotiation_deadline {
            Some(deadline) => deadline.min(idle),
            None => idle,
        };
        if self.keepalives_allowed() {
            next = next.min(self.last_sent + self.config.keepalive_interval);
        }
        Some(next)
    }

    /// Acts on expired deadlines.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.state == State::Done {
            return;
        }
        if let Some(deadline) = self.close_deadline {
            if now >= deadline {
                let end = self.ending.take().unwrap_or(SessionEnd::Closed);
                self.finish(end);
            }
            return;
        }
        if self
            .negotiation_deadline
            .is_some_and(|deadline| now >= deadline)
        {
            self.fail(
                StreamErrorCondition::ConnectionTimeout,
                "stream negotiation took too long",
            );
            self.ending = Some(SessionEnd::Timeout("negotiation"));
            return;
        }
        if now >= self.last_activity + self.config.idle_timeout {
            debug!("closing idle stream");
            self.close_with(now, SessionEnd::Timeout("idle"));
            return;
        }
        if self.keepalives_allowed() && now >= self.last_sent + self.config.keepalive_interval {
            // RFC 6120 §4.6.1: a single space keeps NATs and the peer's idle timer happy.
            self.output.push(b' ');
            self.last_sent = now;
        }
    }

    /// Sends a stanza on an established outbound stream. Returns false when the stream is not (or no
    /// longer) able to carry it, so that the caller can queue or bounce it.
    #[must_use]
    pub fn send_stanza(&mut self, now: Instant, stanza: &Element) -> bool {
        if self.state != State::Established {
            return false;
        }
        trace!(stanza = ?stanza, "sending stanza");
        write_element(&mut self.output, stanza);
        self.last_sent = now;
        // Outbound streams carry traffic one way only: our stanzas count as activity, or a busy stream
        // would be closed as idle.
        self.last_activity = now;
        true
    }

    /// Whether an outbound session is authenticated and can take stanzas.
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }

    /// Whether the session is over.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Inbound: the local domain the peer addressed in its stream header (for certificate selection when
    /// the peer sends no SNI). Outbound: our domain.
    pub fn local_domain(&self) -> Option<&Domain> {
        match &self.role {
            Role::Inbound(state) => state.header_to(),
            Role::Outbound(out) => Some(&out.local),
        }
    }

    /// Outbound: the peer's domain. Inbound: the `from` of the stream header, if any.
    pub fn remote_domain(&self) -> Option<&Domain> {
        match &self.role {
            Role::Inbound(state) => state.header_from(),
            Role::Outbound(out) => Some(&out.remote),
        }
    }

    /// Whether this is a session a peer opened to us.
    pub fn is_inbound(&self) -> bool {
        matches!(self.role, Role::Inbound(_))
    }

    /// The id of the current stream.
    pub fn stream_id(&self) -> Option<&str> {
        self.stream_id.as_deref()
    }

    /// Closes the stream cleanly (`</stream:stream>`), e.g. when idle or shutting down.
    pub fn close(&mut self, now: Instant) {
        self.close_with(now, SessionEnd::Closed);
    }

    /// Closes the stream with a stream error, e.g. `system-shutdown`.
    pub fn close_with_error(&mut self, condition: StreamErrorCondition, text: &str) {
        self.fail(condition, text);
    }

    fn close_with(&mut self, now: Instant, end: SessionEnd) {
        match self.state {
            State::Done | State::Closing => {}
            State::TlsHandshake => self.finish(end),
            _ => {
                write_stream_close(&mut self.output);
                self.ending = Some(end);
                self.state = State::Closing;
                self.close_deadline = Some(now.max(self.last_activity) + self.config.close_timeout);
            }
        }
    }

    fn handle_stream_event(&mut self, event: StreamEvent, now: Instant) {
        match event {
            StreamEvent::Open(header) => {
                if self.state != State::AwaitHeader {
                    self.fail(StreamErrorCondition::InvalidXml, "unexpected stream header");
                    return;
                }
                if header.version.as_deref() != Some("1.0") {
                    // Pre-RFC 3920 peers cannot do STARTTLS or SASL, which we require.
                    self.fail(
                        StreamErrorCondition::UnsupportedVersion,
                        "version='1.0' is required",
                    );
                    return;
                }
                match self.role {
                    Role::Inbound(_) => self.inbound_header(header),
                    Role::Outbound(_) => self.outbound_header(header),
                }
            }
            StreamEvent::Close => {
                if self.state == State::Closing {
                    let end = self.ending.take().unwrap_or(SessionEnd::Closed);
                    self.finish(end);
                } else {
                    write_stream_close(&mut self.output);
                    let end = match &self.role {
                        Role::Outbound(out) if !out.finished_ok(self.state) => {
                            SessionEnd::AuthenticationRefused(
                                "peer closed the stream during negotiation".into(),
                            )
                        }
                        _ => SessionEnd::Closed,
                    };
                    self.finish(end);
                }
            }
            StreamEvent::Element(element) => {
                if element.is(crate::xml::ns::STREAMS, "error") {
                    let description = crate::stream_error::describe_peer_error(&element);
                    debug!(error = %description, "peer sent a stream error");
                    write_stream_close(&mut self.output);
                    self.finish(SessionEnd::PeerStreamError(description));
                    return;
                }
                if self.state == State::Closing {
                    // RFC 6120 §4.4: after our close, the peer may still flush stanzas; we can no longer act on
                    // them, so they are dropped (the peer bounces what it did not get acknowledged).
                    debug!(
                        element = element.name(),
                        "element after our stream close ignored"
                    );
                    return;
                }
                match self.role {
                    Role::Inbound(_) => self.inbound_element(element, now),
                    Role::Outbound(_) => self.outbound_element(element, now),
                }
            }
        }
    }

    fn send_element(&mut self, element: &Element) {
        write_element(&mut self.output, element);
    }

    fn restart_parser(&mut self) {
        self.parser = StreamParser::new(self.config.stanza_size_limit);
    }

    /// Sends a stream error and closes. The peer caused it (or the negotiation timed out).
    fn fail(&mut self, condition: StreamErrorCondition, text: &str) {
        if matches!(self.state, State::Done | State::Closing) {
            return;
        }
        debug!(
            condition = condition.as_str(),
            text, "closing stream with an error"
        );
        if self.state == State::AwaitHeader
            && matches!(self.role, Role::Inbound(_))
            && self.stream_id.is_none()
        {
            // We have not sent a header yet; a stream error needs one (RFC 6120 §4.9.1.2).
            crate::xml::write_stream_open(&mut self.output, "", "", Some(&new_stream_id()));
        }
        if self.state != State::TlsHandshake {
            self.send_element(&stream_error(condition, text));
            write_stream_close(&mut self.output);
        }
        let end = SessionEnd::StreamError {
            condition,
            text: text.to_owned(),
        };
        // There is nothing more to negotiate: report at once rather than waiting for the peer's close.
        self.finish(end);
    }

    /// Ends the session with a failure that is not the peer's protocol error (outbound refusals).
    fn abandon(&mut self, end: SessionEnd) {
        if !matches!(self.state, State::Done | State::TlsHandshake) {
            write_stream_close(&mut self.output);
        }
        self.finish(end);
    }

    fn finish(&mut self, end: SessionEnd) {
        if self.state == State::Done {
            return;
        }
        self.state = State::Done;
        self.close_deadline = None;
        self.events.push_back(Event::Closed(end));
    }

    fn keepalives_allowed(&self) -> bool {
        self.tls.is_some() && matches!(self.state, State::Open | State::Established)
    }

    fn judge_peer(&self, domain: &Domain) -> CertificateVerdict {
        match &self.tls {
            Some(info) => self
                .config
                .trust
                .judge(&info.peer_certificates, domain, info.now),
            None => {
                CertificateVerdict::Invalid(crate::certificate::CertificateProblem::NoCertificate)
            }
        }
    }

    fn negotiation_done(&mut self) {
        self.negotiation_deadline = None;
    }

    fn send_header(&mut self) {
        if let Role::Outbound(out) = &self.role {
            let (from, to) = (out.local.to_string(), out.remote.to_string());
            crate::xml::write_stream_open(&mut self.output, &from, &to, None);
        }
    }
}

/// A fresh, unguessable stream id: dialback keys are bound to it, so it must not be predictable.
pub(crate) fn new_stream_id() -> String {
    let mut bytes = [0u8; 16];
    // The system RNG failing is not recoverable in any useful way; a zero id would still be unique enough
    // for routing but not for dialback, so fall back to time-derived bytes rather than panicking.
    if aws_lc_rs::rand::fill(&mut bytes).is_err() {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        bytes = nanos.to_le_bytes();
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Domain pairs (remote, local) authenticated on an inbound stream.
type Pairs = HashSet<(Domain, Domain)>;

fn parse_domain(text: Option<&str>) -> Option<Domain> {
    text.and_then(|t| Domain::parse(t).ok())
}

fn header_domains(header: &StreamOpen) -> (Option<Domain>, Option<Domain>) {
    (
        parse_domain(header.from.as_deref()),
        parse_domain(header.to.as_deref()),
    )
}
