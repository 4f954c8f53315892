//! A minimal XMPP client (c2s) for test users: connect, STARTTLS (trusting the test CA), SASL PLAIN,
//! stream restart, resource binding, initial presence; then send messages and wait for the next one.
//!
//! [`XmlStream`] is the reusable part: an XML stream over any byte stream, also used by tests that
//! speak raw s2s.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail};
use base64::Engine as _;
use rustls::RootCertStore;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use crate::xml::{Element, Event, StreamParser, escape};

/// The namespace of stream errors.
pub const NS_STREAMS: &str = "urn:ietf:params:xml:ns:xmpp-streams";
/// The namespace of stanza error conditions.
pub const NS_STANZAS: &str = "urn:ietf:params:xml:ns:xmpp-stanzas";
const NS_TLS: &str = "urn:ietf:params:xml:ns:xmpp-tls";
const NS_SASL: &str = "urn:ietf:params:xml:ns:xmpp-sasl";
const NS_BIND: &str = "urn:ietf:params:xml:ns:xmpp-bind";
const NS_SESSION: &str = "urn:ietf:params:xml:ns:xmpp-session";

/// A byte stream the client can run over (TCP or TLS over TCP).
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// An XML stream over a byte stream: writes raw text, reads [`Event`]s. Keeps a short transcript for
/// error messages.
pub struct XmlStream<S> {
    io: S,
    parser: StreamParser,
    transcript: Vec<String>,
}

impl<S> std::fmt::Debug for XmlStream<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XmlStream")
            .field("pending", &self.parser.pending().len())
            .finish_non_exhaustive()
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> XmlStream<S> {
    /// Wraps a connected byte stream.
    pub fn new(io: S) -> Self {
        Self {
            io,
            parser: StreamParser::new(),
            transcript: Vec::new(),
        }
    }

    /// Sends raw XML text.
    pub async fn send(&mut self, xml: &str) -> Result<()> {
        self.note(format!("C: {xml}"));
        self.io.write_all(xml.as_bytes()).await?;
        self.io.flush().await?;
        Ok(())
    }

    /// The next event, waiting at most until `deadline`. `Ok(None)` on timeout. A closed connection
    /// is an error.
    pub async fn next_event(&mut self, deadline: Instant) -> Result<Option<Event>> {
        let mut buf = [0u8; 8192];
        loop {
            if let Some(event) = self.parser.next_event()? {
                self.note(match &event {
                    Event::StreamOpen(e) => {
                        let xml = e.to_xml();
                        format!("S: {}>", xml.strip_suffix("/>").unwrap_or(&xml))
                    }
                    Event::Element(e) => format!("S: {}", e.to_xml()),
                    Event::StreamClose => "S: </stream:stream>".to_owned(),
                });
                return Ok(Some(event));
            }
            let read = tokio::time::timeout_at(deadline, self.io.read(&mut buf)).await;
            match read {
                Err(_) => return Ok(None),
                Ok(Ok(0)) => bail!("connection closed by the server"),
                Ok(Ok(n)) => self.parser.push(&buf[..n]),
                Ok(Err(e)) => return Err(e.into()),
            }
        }
    }

    /// The next event; a timeout is an error naming `what` was awaited.
    pub async fn expect_event(&mut self, deadline: Instant, what: &str) -> Result<Event> {
        self.next_event(deadline)
            .await?
            .ok_or_else(|| anyhow!("timed out waiting for {what}"))
    }

    /// The next top-level element; a stream error, the stream's end or a header is an error.
    pub async fn expect_element(&mut self, deadline: Instant, what: &str) -> Result<Element> {
        match self.expect_event(deadline, what).await? {
            Event::Element(e) if e.name == "stream:error" => {
                bail!("stream error while waiting for {what}: {}", e.to_xml())
            }
            Event::Element(e) => Ok(e),
            other => bail!("unexpected {other:?} while waiting for {what}"),
        }
    }

    /// Waits for the server's stream header and then its features.
    pub async fn expect_header_and_features(&mut self, deadline: Instant) -> Result<Element> {
        match self.expect_event(deadline, "the stream header").await? {
            Event::StreamOpen(_) => {}
            other => bail!("expected a stream header, got {other:?}"),
        }
        let features = self.expect_element(deadline, "stream features").await?;
        if features.name != "stream:features" {
            bail!("expected stream features, got {}", features.to_xml());
        }
        Ok(features)
    }

    /// Forgets the parser state (for a stream restart).
    pub fn restart(&mut self) {
        self.parser = StreamParser::new();
    }

    /// The last sent and received items, for error messages.
    pub fn transcript(&self) -> String {
        self.transcript.join("\n")
    }

    /// Bytes read but not parsed into an event yet.
    pub fn pending(&self) -> &[u8] {
        self.parser.pending()
    }

    /// The underlying byte stream.
    pub fn into_inner(self) -> (S, Vec<String>) {
        (self.io, self.transcript)
    }

    fn note(&mut self, line: String) {
        const KEEP: usize = 40;
        if self.transcript.len() == KEEP {
            self.transcript.remove(0);
        }
        self.transcript.push(line);
    }
}

/// How the client protects the connection.
#[derive(Debug, Clone)]
pub enum Security {
    /// STARTTLS (required), verifying the server certificate for the domain against these roots.
    StartTls(Arc<RootCertStore>),
    /// No TLS (for a plaintext-only server).
    Plaintext,
}

/// Where and as whom to log in.
#[derive(Debug, Clone)]
pub struct Login {
    /// The server's c2s address.
    pub addr: SocketAddr,
    /// The user's domain (stream `to`, TLS server name).
    pub domain: String,
    /// The localpart.
    pub user: String,
    /// The password.
    pub password: String,
    /// The resource to bind.
    pub resource: String,
    /// TLS or not.
    pub security: Security,
}

/// A message the client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedMessage {
    /// `from`.
    pub from: Option<String>,
    /// `to`.
    pub to: Option<String>,
    /// `id`.
    pub id: Option<String>,
    /// `type` (`normal` when absent).
    pub kind: String,
    /// The `<body/>` text.
    pub body: Option<String>,
    /// For `type='error'`: the error `type` attribute.
    pub error_type: Option<String>,
    /// For `type='error'`: the name of the defined condition element (e.g. `remote-server-timeout`).
    pub error_condition: Option<String>,
    /// For `type='error'`: the `<text/>`.
    pub error_text: Option<String>,
    /// The stanza as received.
    pub raw: String,
}

impl ReceivedMessage {
    /// Reads the interesting parts of a `<message/>`.
    pub fn from_element(e: &Element) -> Self {
        let error = e.child("error");
        let condition = error.and_then(|err| {
            err.elements()
                .find(|c| c.xmlns() == Some(NS_STANZAS) && c.local_name() != "text")
                .or_else(|| err.elements().find(|c| c.local_name() != "text"))
        });
        Self {
            from: e.attr("from").map(str::to_owned),
            to: e.attr("to").map(str::to_owned),
            id: e.attr("id").map(str::to_owned),
            kind: e.attr("type").unwrap_or("normal").to_owned(),
            body: e.child("body").map(Element::text),
            error_type: error.and_then(|err| err.attr("type")).map(str::to_owned),
            error_condition: condition.map(|c| c.local_name().to_owned()),
            error_text: error.and_then(|err| err.child("text")).map(Element::text),
            raw: e.to_xml(),
        }
    }
}

/// A logged-in client.
pub struct C2sClient {
    stream: XmlStream<Box<dyn Io>>,
    jid: String,
    next_id: u64,
}

impl std::fmt::Debug for C2sClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("C2sClient")
            .field("jid", &self.jid)
            .finish_non_exhaustive()
    }
}

impl C2sClient {
    /// Connects, secures, authenticates, binds and sends initial presence, all within `timeout`.
    pub async fn connect(login: &Login, timeout: Duration) -> Result<Self> {
        let deadline = Instant::now() + timeout;
        let what = format!("{}@{} via {}", login.user, login.domain, login.addr);
        let tcp = tokio::time::timeout_at(deadline, TcpStream::connect(login.addr))
            .await
            .map_err(|_| anyhow!("{what}: TCP connect timed out"))?
            .with_context(|| format!("{what}: TCP connect"))?;
        tcp.set_nodelay(true)?;
        let mut plain = XmlStream::new(tcp);
        plain.send(&header(&login.domain)).await?;
        let features = plain.expect_header_and_features(deadline).await?;

        let (stream, features) = match &login.security {
            Security::StartTls(roots) => {
                if features.child_ns("starttls", NS_TLS).is_none() {
                    bail!(
                        "{what}: the server offers no STARTTLS: {}",
                        features.to_xml()
                    );
                }
                plain.send(&format!("<starttls xmlns='{NS_TLS}'/>")).await?;
                let proceed = plain.expect_element(deadline, "<proceed/>").await?;
                if proceed.local_name() != "proceed" {
                    bail!("{what}: STARTTLS refused: {}", proceed.to_xml());
                }
                if !plain.pending().is_empty() {
                    bail!("{what}: data after <proceed/> before the TLS handshake");
                }
                let (tcp, transcript) = plain.into_inner();
                let config = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::aws_lc_rs::default_provider(),
                ))
                .with_safe_default_protocol_versions()?
                .with_root_certificates(Arc::clone(roots))
                .with_no_client_auth();
                let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
                let name = ServerName::try_from(login.domain.clone())?;
                let tls = tokio::time::timeout_at(deadline, connector.connect(name, tcp))
                    .await
                    .map_err(|_| anyhow!("{what}: TLS handshake timed out"))?
                    .with_context(|| format!("{what}: TLS handshake"))?;
                let mut stream = XmlStream::new(Box::new(tls) as Box<dyn Io>);
                stream.transcript = transcript;
                stream.send(&header(&login.domain)).await?;
                let features = stream.expect_header_and_features(deadline).await?;
                (stream, features)
            }
            Security::Plaintext => {
                let (tcp, transcript) = plain.into_inner();
                let mut stream = XmlStream::new(Box::new(tcp) as Box<dyn Io>);
                stream.transcript = transcript;
                (stream, features)
            }
        };
        Self::authenticate(stream, features, login, deadline)
            .await
            .with_context(|| format!("{what}: logging in"))
    }

    async fn authenticate(
        mut stream: XmlStream<Box<dyn Io>>,
        features: Element,
        login: &Login,
        deadline: Instant,
    ) -> Result<Self> {
        let offers_plain = features
            .child_ns("mechanisms", NS_SASL)
            .is_some_and(|m| m.elements().any(|c| c.text().trim() == "PLAIN"));
        if !offers_plain {
            bail!(
                "the server offers no SASL PLAIN: {}\n{}",
                features.to_xml(),
                stream.transcript()
            );
        }
        let credentials = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{}\0{}", login.user, login.password));
        stream
            .send(&format!(
                "<auth xmlns='{NS_SASL}' mechanism='PLAIN'>{credentials}</auth>"
            ))
            .await?;
        let outcome = stream.expect_element(deadline, "the SASL outcome").await?;
        if outcome.local_name() != "success" {
            bail!("SASL PLAIN failed: {}", outcome.to_xml());
        }
        stream.restart();
        stream.send(&header(&login.domain)).await?;
        let features = stream.expect_header_and_features(deadline).await?;
        if features.child_ns("bind", NS_BIND).is_none() {
            bail!("no resource binding offered: {}", features.to_xml());
        }
        let mut client = Self {
            stream,
            jid: String::new(),
            next_id: 0,
        };
        let bind_id = client.new_id("bind");
        client
            .stream
            .send(&format!(
                "<iq type='set' id='{bind_id}'><bind xmlns='{NS_BIND}'><resource>{}</resource></bind></iq>",
                escape(&login.resource)
            ))
            .await?;
        let result = client.wait_iq_result(&bind_id, deadline).await?;
        client.jid = result
            .child("bind")
            .and_then(|b| b.child("jid"))
            .map(Element::text)
            .ok_or_else(|| anyhow!("no JID in the bind result: {}", result.to_xml()))?;
        // Session establishment: only if the server says it is not optional.
        if let Some(session) = features.child_ns("session", NS_SESSION)
            && session.child("optional").is_none()
        {
            let session_id = client.new_id("session");
            client
                .stream
                .send(&format!(
                    "<iq type='set' id='{session_id}'><session xmlns='{NS_SESSION}'/></iq>"
                ))
                .await?;
            client.wait_iq_result(&session_id, deadline).await?;
        }
        client.stream.send("<presence/>").await?;
        Ok(client)
    }

    async fn wait_iq_result(&mut self, id: &str, deadline: Instant) -> Result<Element> {
        loop {
            let e = self
                .stream
                .expect_element(deadline, &format!("the result of iq {id}"))
                .await
                .with_context(|| self.stream.transcript())?;
            if e.local_name() == "iq" && e.attr("id") == Some(id) {
                if e.attr("type") == Some("result") {
                    return Ok(e);
                }
                bail!("iq {id} failed: {}", e.to_xml());
            }
            self.handle_other(&e).await?;
        }
    }

    /// The bound full JID.
    pub fn jid(&self) -> &str {
        &self.jid
    }

    /// A fresh stanza id with a prefix.
    pub fn new_id(&mut self, prefix: &str) -> String {
        self.next_id += 1;
        format!("{prefix}-{}", self.next_id)
    }

    /// Sends `<message type=kind to=… id=…><body>…</body></message>` (the body is escaped).
    pub async fn send_message(&mut self, to: &str, kind: &str, id: &str, body: &str) -> Result<()> {
        self.stream
            .send(&format!(
                "<message type='{}' to='{}' id='{}'><body>{}</body></message>",
                escape(kind),
                escape(to),
                escape(id),
                escape(body)
            ))
            .await
    }

    /// Sends raw XML.
    pub async fn send_raw(&mut self, xml: &str) -> Result<()> {
        self.stream.send(xml).await
    }

    /// Waits up to `timeout` for the next `<message/>` (answering iq requests and skipping presence
    /// meanwhile). `Ok(None)` if none arrived.
    pub async fn next_message(&mut self, timeout: Duration) -> Result<Option<ReceivedMessage>> {
        let deadline = Instant::now() + timeout;
        loop {
            let event = self
                .stream
                .next_event(deadline)
                .await
                .with_context(|| self.stream.transcript())?;
            match event {
                None => return Ok(None),
                Some(Event::Element(e)) if e.name == "stream:error" => {
                    bail!("stream error: {}\n{}", e.to_xml(), self.stream.transcript())
                }
                Some(Event::Element(e)) if e.local_name() == "message" => {
                    return Ok(Some(ReceivedMessage::from_element(&e)));
                }
                Some(Event::Element(e)) => self.handle_other(&e).await?,
                Some(other) => bail!("unexpected {other:?}\n{}", self.stream.transcript()),
            }
        }
    }

    /// Waits up to `timeout` for the next `<presence/>` (any type: subscription requests and answers
    /// included), answering iq requests and skipping messages meanwhile. `Ok(None)` if none arrived.
    pub async fn next_presence(&mut self, timeout: Duration) -> Result<Option<Element>> {
        let deadline = Instant::now() + timeout;
        loop {
            let event = self
                .stream
                .next_event(deadline)
                .await
                .with_context(|| self.stream.transcript())?;
            match event {
                None => return Ok(None),
                Some(Event::Element(e)) if e.name == "stream:error" => {
                    bail!("stream error: {}\n{}", e.to_xml(), self.stream.transcript())
                }
                Some(Event::Element(e)) if e.local_name() == "presence" => return Ok(Some(e)),
                Some(Event::Element(e)) => self.handle_other(&e).await?,
                Some(other) => bail!("unexpected {other:?}\n{}", self.stream.transcript()),
            }
        }
    }

    /// Fetches the roster (`jabber:iq:roster`), which makes this resource "interested" (RFC 6121 §2.1.6):
    /// servers deliver subscription stanzas and roster pushes only to such resources.
    pub async fn request_roster(&mut self, timeout: Duration) -> Result<Element> {
        let id = self.new_id("roster");
        self.stream
            .send(&format!(
                "<iq type='get' id='{id}'><query xmlns='jabber:iq:roster'/></iq>"
            ))
            .await?;
        self.wait_iq_result(&id, Instant::now() + timeout).await
    }

    /// Sends `<presence/>` of `kind` (`subscribe`, `subscribed`, `unsubscribe`, …; `None`: available) to
    /// `to` (`None`: broadcast), with optional `<show/>` and `<status/>`.
    pub async fn send_presence(
        &mut self,
        kind: Option<&str>,
        to: Option<&str>,
        show: Option<&str>,
        status: Option<&str>,
    ) -> Result<()> {
        let mut xml = String::from("<presence");
        if let Some(kind) = kind {
            xml.push_str(&format!(" type='{}'", escape(kind)));
        }
        if let Some(to) = to {
            xml.push_str(&format!(" to='{}'", escape(to)));
        }
        xml.push('>');
        if let Some(show) = show {
            xml.push_str(&format!("<show>{}</show>", escape(show)));
        }
        if let Some(status) = status {
            xml.push_str(&format!("<status>{}</status>", escape(status)));
        }
        xml.push_str("</presence>");
        self.stream.send(&xml).await
    }

    /// Collects every `<message/>` that arrives within `window`.
    pub async fn messages_within(&mut self, window: Duration) -> Result<Vec<ReceivedMessage>> {
        let deadline = Instant::now() + window;
        let mut out = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(out);
            }
            match self.next_message(left).await? {
                Some(m) => out.push(m),
                None => return Ok(out),
            }
        }
    }

    /// What was sent and received recently.
    pub fn transcript(&self) -> String {
        self.stream.transcript()
    }

    /// Closes the stream (`</stream:stream>`) and waits briefly for the server's close.
    pub async fn close(mut self) {
        if self
            .stream
            .send("<presence type='unavailable'/></stream:stream>")
            .await
            .is_ok()
        {
            let deadline = Instant::now() + Duration::from_secs(2);
            while let Ok(Some(event)) = self.stream.next_event(deadline).await {
                if event == Event::StreamClose {
                    break;
                }
            }
        }
    }

    async fn handle_other(&mut self, e: &Element) -> Result<()> {
        // Answer requests so that servers don't wait on us; ignore presence and everything else.
        if e.local_name() == "iq" && matches!(e.attr("type"), Some("get" | "set")) {
            let mut reply = format!(
                "<iq type='error' id='{}'",
                escape(e.attr("id").unwrap_or(""))
            );
            if let Some(from) = e.attr("from") {
                reply.push_str(&format!(" to='{}'", escape(from)));
            }
            reply.push_str(&format!(
                "><error type='cancel'><service-unavailable xmlns='{NS_STANZAS}'/></error></iq>"
            ));
            self.stream.send(&reply).await?;
        }
        Ok(())
    }
}

/// A client stream header to `domain`.
fn header(domain: &str) -> String {
    format!(
        "<?xml version='1.0'?><stream:stream xmlns='jabber:client' \
         xmlns:stream='http://etherx.jabber.org/streams' to='{}' version='1.0' xml:lang='en'>",
        escape(domain)
    )
}
