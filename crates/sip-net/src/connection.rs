//! One connection, after TLS: bytes in through the [`Framer`] and the parser into the engine, queued
//! messages out, keep-alives answered, idle connections closed.
//!
//! Generic over the stream so that the same driver serves accepted and opened TLS connections (and plain
//! in-memory pipes in tests). Reading and writing are separate tasks: a peer whose requests wait for a busy
//! application must still receive the responses to earlier ones.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use sixgate_sip::message::{HostPort, Request, StatusCode};
use sixgate_sip::stateless::reject_unparsable;
use sixgate_sip::{Frame, FrameError, FrameLimits, Framer, Message};
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::{Instrument as _, debug, trace};

use crate::engine::{Engine, FlowHandle};
use crate::incoming::IncomingRequest;

/// Bytes read at once.
const READ_CHUNK: usize = 16 * 1024;

/// How long queued messages (such as the 400 before closing) may take to go out once the connection
/// is closing.
const FLUSH_GRACE: Duration = Duration::from_secs(5);

/// What a connection needs besides its stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnectionSettings {
    pub(crate) idle_timeout: Duration,
    pub(crate) frame_limits: FrameLimits,
}

/// When the connection last carried something, either way.
struct Activity(Mutex<Instant>);

impl Activity {
    fn touch(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn last(&self) -> Instant {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Runs the connection until the peer closes it, it fails, idles out or the engine closes it. The flow
/// is unregistered before this returns.
pub(crate) async fn drive<S>(
    engine: Arc<Engine>,
    stream: S,
    peer: SocketAddr,
    flow: FlowHandle,
    settings: ConnectionSettings,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let FlowHandle {
        id,
        outgoing,
        close,
    } = flow;
    let (reader, write_half) = tokio::io::split(stream);
    let activity = Arc::new(Activity(Mutex::new(Instant::now())));
    let mut write_task = tokio::spawn(
        write_loop(
            write_half,
            outgoing,
            Arc::clone(&activity),
            Arc::clone(&close),
        )
        .in_current_span(),
    );
    let mut reading = Reader {
        engine: Arc::clone(&engine),
        flow: id,
        peer,
        framer: Framer::new(settings.frame_limits),
    };
    let reason = reading
        .run(reader, &close, &activity, settings.idle_timeout)
        .await;
    debug!(reason, "closing connection");
    // The flow held the write queue's only sender: without it the write task sends what is queued (such
    // as the answer to a request that could not be framed) and ends.
    engine.unregister_flow(id);
    if tokio::time::timeout(FLUSH_GRACE, &mut write_task)
        .await
        .is_err()
    {
        write_task.abort();
    }
}

async fn write_loop<W: AsyncWrite>(
    writer: W,
    mut outgoing: mpsc::Receiver<Vec<u8>>,
    activity: Arc<Activity>,
    close: Arc<Notify>,
) {
    let mut writer = std::pin::pin!(writer);
    while let Some(bytes) = outgoing.recv().await {
        trace!(len = bytes.len(), "writing");
        let written = async {
            writer.write_all(&bytes).await?;
            writer.flush().await
        }
        .await;
        if let Err(err) = written {
            debug!(%err, "write failed");
            close.notify_one();
            return;
        }
        activity.touch();
    }
    // Ends TLS with close_notify.
    let _ = writer.shutdown().await;
}

struct Reader {
    engine: Arc<Engine>,
    flow: sixgate_sip::transaction::FlowId,
    peer: SocketAddr,
    framer: Framer,
}

impl Reader {
    /// Reads until the connection must close; returns why.
    async fn run<R: AsyncRead>(
        &mut self,
        reader: R,
        close: &Notify,
        activity: &Activity,
        idle_timeout: Duration,
    ) -> &'static str {
        let mut reader = std::pin::pin!(reader);
        let mut buffer = vec![0u8; READ_CHUNK];
        loop {
            let idle_at = activity.last() + idle_timeout;
            let read = tokio::select! {
                () = close.notified() => return "closed by the gateway",
                () = tokio::time::sleep_until(idle_at) => {
                    if activity.last() + idle_timeout <= Instant::now() {
                        return "idle";
                    }
                    continue;
                }
                read = reader.read(&mut buffer) => read,
            };
            let received = match read {
                Ok(0) => return "closed by the peer",
                Ok(received) => received,
                Err(err) => {
                    debug!(%err, "read failed");
                    return "read failed";
                }
            };
            activity.touch();
            let chunk = buffer.get(..received).unwrap_or_default();
            if let Err(err) = self.framer.push(chunk) {
                return self.reject_stream(&err);
            }
            loop {
                match self.framer.next_frame() {
                    Ok(None) => break,
                    // RFC 5626 §4.4.1: a double CRLF is a ping, answered with a single CRLF at once. The
                    // write queue holds whole messages, so the pong never lands inside one.
                    Ok(Some(Frame::KeepAlivePing)) => {
                        trace!("keep-alive ping");
                        self.engine.write_raw(self.flow, b"\r\n".to_vec());
                    }
                    Ok(Some(Frame::KeepAlivePong)) => trace!("keep-alive pong"),
                    Ok(Some(Frame::Message { head, body })) => {
                        for incoming in self.message(&head, body) {
                            // Waiting here is the back-pressure on a busy application: nothing more is
                            // read from this peer meanwhile.
                            let span = incoming.span().clone();
                            tokio::select! {
                                () = self.engine.deliver(incoming).instrument(span) => {}
                                () = close.notified() => return "closed by the gateway",
                            }
                        }
                    }
                    Err(err) => return self.reject_stream(&err),
                }
            }
        }
    }

    /// Feeds one framed message to the engine; returns the requests the application must be given.
    fn message(&mut self, head: &[u8], body: Vec<u8>) -> Vec<IncomingRequest> {
        match Message::parse(head, body) {
            Ok(Message::Request(mut request)) => {
                stamp_received(&mut request, self.peer);
                self.engine.receive_request(self.flow, request)
            }
            Ok(Message::Response(response)) => {
                trace!(status = %response.status, call_id = %response.call_id, "response received");
                trace!(body = %String::from_utf8_lossy(&response.body), "response body");
                self.engine.receive_response(self.flow, response);
                Vec::new()
            }
            Err(err) => {
                // The framer found the message's end, so the connection stays usable: answer a request
                // (responses are dropped) and go on.
                debug!(%err, "unparsable message");
                self.reject(head, err.response_code(), &err.to_string());
                Vec::new()
            }
        }
    }

    /// The stream cannot be framed any further: answer the offending request if possible, then close.
    fn reject_stream(&mut self, err: &FrameError) -> &'static str {
        debug!(%err, "unframeable input");
        let status = err.response_code().and_then(StatusCode::new);
        if let (Some(status), Some(head)) = (status, self.framer.rejected_head()) {
            let head = head.to_vec();
            self.reject(&head, status, &err.to_string());
        }
        "unframeable input"
    }

    fn reject(&self, head: &[u8], status: StatusCode, reason: &str) {
        let tag = self.engine.new_tag();
        if let Some(response) = reject_unparsable(head, status, reason, &tag) {
            self.engine.write_raw(self.flow, response);
        }
    }
}

/// RFC 3261 §18.2.1 and RFC 3581 §4: records in the top `Via` where the request really came from, so
/// that responses and logs show it.
fn stamp_received(request: &mut Request, peer: SocketAddr) {
    let Some(via) = request.via.first_mut() else {
        return;
    };
    let differs = via.sent_by.host.ip() != Some(peer.ip());
    if differs || via.has_rport() {
        let _ = via.params.set(
            "received",
            Some(&HostPort::new(peer.ip(), None).to_string()),
        );
    }
    if via.has_rport() {
        let _ = via.params.set("rport", Some(&peer.port().to_string()));
    }
}

#[cfg(test)]
mod tests;
