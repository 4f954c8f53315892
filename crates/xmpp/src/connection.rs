//! Drives one [`Session`] over one connection: moves bytes between the socket and the session, performs the
//! TLS upgrades it asks for, fires its timers, and hands its events to a role-specific handler.

use std::time::Duration;

use rustls_pki_types::{ServerName, UnixTime};
use sixgate_xmpp_proto::error::SessionEnd;
use sixgate_xmpp_proto::session::{Event, Session, TlsInfo};
use sixgate_xmpp_proto::stream_error::StreamErrorCondition;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, warn};

use crate::outgoing::Outgoing;
use crate::tls::TlsContext;
use crate::transport::Transport;

/// Bytes read from the socket at once. The session caps what it buffers; this only bounds one read.
const READ_CHUNK: usize = 16 * 1024;

/// What the connection does with session events that need the rest of the service.
pub(crate) trait Handler: Send {
    /// An event other than `StartTls` and `Closed`, which the connection handles itself.
    fn event(&mut self, event: Event, session: &mut Session) -> impl Future<Output = ()> + Send;
}

/// Messages from the rest of the service to a running connection.
#[derive(Debug)]
pub(crate) enum Control {
    /// The answer to a dialback verification the session asked for.
    DialbackVerified {
        local: sixgate_core::Domain,
        remote: sixgate_core::Domain,
        outcome: sixgate_xmpp_proto::session::DialbackOutcome,
    },
}

/// How the connection plays TLS when the session asks for it.
pub(crate) enum TlsSide {
    /// We accepted the connection.
    Server,
    /// We opened it.
    Client,
}

pub(crate) struct Connection<'a> {
    pub(crate) session: Session,
    pub(crate) transport: Transport,
    pub(crate) tls: &'a TlsContext,
    pub(crate) side: TlsSide,
    /// Upper bound for a TLS handshake, so that a silent peer cannot hold a connection open.
    pub(crate) handshake_timeout: Duration,
}

impl Connection<'_> {
    /// Runs until the session is over and says how it ended. `stanzas` feeds an established outbound
    /// session (a stanza it could not send is put in `unsent`); `control` carries dialback answers;
    /// `shutdown` turning true closes the stream cleanly.
    pub(crate) async fn run(
        mut self,
        handler: &mut impl Handler,
        mut stanzas: Option<&mut mpsc::Receiver<Outgoing>>,
        unsent: &mut Vec<Outgoing>,
        mut control: Option<&mut mpsc::Receiver<Control>>,
        mut shutdown: watch::Receiver<bool>,
    ) -> Option<SessionEnd> {
        let mut buffer = vec![0u8; READ_CHUNK];
        let mut end = None;
        // Written to the session, not yet flushed to the socket.
        let mut writing: Vec<Outgoing> = Vec::new();
        let mut shutting_down = *shutdown.borrow();
        if shutting_down {
            self.session.close(Instant::now().into_std());
        }
        loop {
            // Events first: they may ask for TLS, which must happen before any more reading.
            while let Some(event) = self.session.poll_event() {
                match event {
                    Event::StartTls => {
                        if let Err(error) = self.flush().await {
                            debug!(%error, "write failed before TLS");
                            writing.drain(..).for_each(Outgoing::in_doubt);
                            return end;
                        }
                        if let Err(error) = self.upgrade().await {
                            debug!(%error, "TLS handshake failed");
                            self.session.receive_eof();
                        }
                    }
                    Event::Closed(reason) => end = Some(reason),
                    other => handler.event(other, &mut self.session).await,
                }
            }
            match self.flush().await {
                Ok(()) => writing.drain(..).for_each(Outgoing::sent),
                Err(error) => {
                    debug!(%error, "write failed");
                    writing.drain(..).for_each(Outgoing::in_doubt);
                    if end.is_none() {
                        self.session.receive_eof();
                        continue;
                    }
                }
            }
            if end.is_some() || self.session.is_done() {
                let _ =
                    tokio::time::timeout(Duration::from_secs(1), self.transport.shutdown()).await;
                return end;
            }
            let established = self.session.is_established();
            let deadline = self.session.poll_timeout().map(Instant::from_std);
            tokio::select! {
                read = self.transport.read(&mut buffer) => {
                    let now = Instant::now().into_std();
                    match read {
                        Ok(0) => self.session.receive_eof(),
                        Ok(n) => self.session.receive(now, &buffer[..n]),
                        Err(error) => {
                            debug!(%error, "read failed");
                            self.session.receive_eof();
                        }
                    }
                }
                stanza = recv_opt(&mut stanzas), if established && stanzas.is_some() => {
                    match stanza {
                        Some(outgoing) => {
                            let now = Instant::now().into_std();
                            if self.session.send_stanza(now, &outgoing.stanza) {
                                writing.push(outgoing);
                            } else {
                                // Not established after all: the caller sends it on another stream or fails it.
                                warn!("stanza could not be sent on this stream");
                                unsent.push(outgoing);
                            }
                        }
                        // The pool dropped us (shutdown): close cleanly.
                        None => {
                            stanzas = None;
                            self.session.close(Instant::now().into_std());
                        }
                    }
                }
                message = recv_opt(&mut control), if control.is_some() => {
                    match message {
                        Some(Control::DialbackVerified { local, remote, outcome }) => {
                            self.session.dialback_verified(&local, &remote, outcome);
                        }
                        None => control = None,
                    }
                }
                () = sleep_until(deadline) => {
                    self.session.handle_timeout(Instant::now().into_std());
                }
                changed = shutdown.changed(), if !shutting_down => {
                    shutting_down = true;
                    if changed.is_err() || *shutdown.borrow() {
                        if self.session.is_inbound() {
                            self.session.close_with_error(StreamErrorCondition::SystemShutdown, "the gateway is shutting down");
                        } else {
                            self.session.close(Instant::now().into_std());
                        }
                    }
                }
            }
        }
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if !self.session.has_output() {
            return Ok(());
        }
        let output = self.session.take_output();
        tracing::trace!(bytes = output.len(), "writing");
        self.transport.write_all(&output).await?;
        self.transport.flush().await
    }

    async fn upgrade(&mut self) -> std::io::Result<()> {
        // Take the TCP stream out of the transport; a placeholder is never observed because every error
        // path below ends the session.
        let plain = match std::mem::replace(&mut self.transport, Transport::Closed) {
            Transport::Plain(tcp) => tcp,
            other => {
                self.transport = other;
                return Err(std::io::Error::other(
                    "STARTTLS on a stream that already uses TLS",
                ));
            }
        };
        let presented_certificate;
        let stream = match self.side {
            TlsSide::Server => {
                let config = self.tls.server_config(self.session.local_domain());
                presented_certificate = true;
                let accept = tokio_rustls::TlsAcceptor::from(config).accept(plain);
                let tls = tokio::time::timeout(self.handshake_timeout, accept)
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                tokio_rustls::TlsStream::Server(tls)
            }
            TlsSide::Client => {
                let (Some(local), Some(remote)) =
                    (self.session.local_domain(), self.session.remote_domain())
                else {
                    return Err(std::io::Error::other("outbound session without domains"));
                };
                presented_certificate = self.tls.local_certificates().get(local).is_some();
                let config = self.tls.client_config(local, false);
                let name = ServerName::try_from(remote.as_str().to_owned())
                    .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
                let connect = tokio_rustls::TlsConnector::from(config).connect(name, plain);
                let tls = tokio::time::timeout(self.handshake_timeout, connect)
                    .await
                    .map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake timed out")
                    })??;
                tokio_rustls::TlsStream::Client(tls)
            }
        };
        self.transport = Transport::Tls(Box::new(stream));
        let info = TlsInfo {
            peer_certificates: self.transport.peer_certificates(),
            now: UnixTime::now(),
            presented_certificate,
        };
        self.session.tls_established(info);
        Ok(())
    }
}

async fn recv_opt<T>(receiver: &mut Option<&mut mpsc::Receiver<T>>) -> Option<T> {
    match receiver {
        Some(receiver) => receiver.recv().await,
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
