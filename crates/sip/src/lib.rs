//! Sans-IO core of the gateway's SIP side (RFC 3261 over TLS on port 5061).
//!
//! Nothing here touches a socket, a clock or a TLS library: code in this crate is fed bytes and hands back
//! SIP messages, as `sixgate-xmpp-proto` does for XMPP. That keeps every protocol rule testable with plain
//! byte strings, and keeps tokio and rustls in the transport crate that drives this one. Adding an I/O
//! crate to `[dependencies]` here would undo that split.
//!
//! # Scope
//!
//! The layers, bottom up:
//!
//! - [`framing`]: cutting a stream transport's byte stream into whole SIP messages and RFC 5626 CRLF
//!   keep-alives.
//! - [`message`]: parsing a framed message into a typed [`Request`] or [`Response`] and writing them
//!   back. The module documentation records why this is our own parser rather than `ezk-sip-types`.
//! - [`transaction`]: RFC 3261 §17 non-INVITE client and server transactions over TLS, driven with
//!   explicit times (`handle_*(now)` in, `poll_*()` out).
//! - [`stateless`]: what an edge element applies to a request without state: building responses
//!   (§8.2.6), `Max-Forwards` (483) and loop detection (482).
//! - [`dialog`]: RFC 3261 §12 dialogs as SUBSCRIBE creates them (RFC 6665), for notifier and subscriber,
//!   with the `Event` / `Subscription-State` / `Expires` headers.
//!
//! INVITE transactions are not here yet.
//!
//! # Framing on stream transports
//!
//! On TCP or TLS nothing marks where one message ends, so `Content-Length` is mandatory (RFC 3261 §18.3
//! and §20.14) and is the only length the framer trusts. One [`Framer`] serves one connection:
//!
//! 1. [`Framer::push`] the bytes read from the connection;
//! 2. call [`Framer::next_frame`] until it returns `Ok(None)`, which only means "need more bytes";
//! 3. for [`Frame::KeepAlivePing`], write `"\r\n"` back at once (RFC 5626 §5.4), though never into the
//!    middle of a message being written (§4.4.1); for [`Frame::Message`], hand `head` and `body` to
//!    [`Message::parse`]; a [`Frame::KeepAlivePong`] answers a ping we sent (see [`Framer::expect_pong`]).
//! 4. On [`FrameError`] the connection is out of step and cannot be resynchronised. Answer
//!    [`FrameError::response_code`] if the offending message was a request (its head is in
//!    [`Framer::rejected_head`], and [`stateless::reject_unparsable`] builds the response), then close
//!    the connection.
//!
//! The framer never reserves memory on the strength of a length the peer announced: a head is refused as
//! soon as [`FrameLimits::max_head`] bytes have arrived without its blank line, and a body as soon as its
//! `Content-Length` is seen to exceed [`FrameLimits::max_body`], before any of the body is waited for.
//!
//! ```
//! use sixgate_sip::{Frame, FrameError, Framer};
//!
//! # fn main() -> Result<(), FrameError> {
//! let mut framer = Framer::default();
//! let mut to_send: Vec<u8> = Vec::new();
//! // What one read from a TLS connection might return: a ping, then a request.
//! framer.push(b"\r\n\r\nOPTIONS sip:gw.example SIP/2.0\r\nl: 0\r\n\r\n")?;
//! while let Some(frame) = framer.next_frame()? {
//!     match frame {
//!         Frame::KeepAlivePing => to_send.extend_from_slice(b"\r\n"),
//!         Frame::KeepAlivePong => {}
//!         Frame::Message { head, body } => {
//!             assert!(head.starts_with(b"OPTIONS "));
//!             assert!(body.is_empty());
//!         }
//!     }
//! }
//! assert_eq!(to_send, b"\r\n");
//! # Ok(())
//! # }
//! ```

pub mod dialog;
pub mod framing;
pub mod message;
pub mod stateless;
pub mod transaction;

pub use framing::{Frame, FrameError, FrameLimits, Framer};
pub use message::{Message, ParseError, Request, Response};
