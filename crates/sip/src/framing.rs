//! SIP message framing for stream transports (RFC 3261 §18.3), with RFC 5626 CRLF keep-alives.
//!
//! Framing is check-then-cut, as in mini-redis: an incomplete frame is `Ok(None)`, never an error, so the
//! caller simply reads more. Only the bytes needed to find a message's end are looked at: the blank line
//! closing the head and the `Content-Length` header. Everything else in the head, the start line
//! included, is left to the SIP parser, so a message this module accepts may still be rejected there.

use thiserror::Error;

const CR: u8 = b'\r';
const LF: u8 = b'\n';
const CRLF: &[u8] = b"\r\n";
const CRLFCRLF: &[u8] = b"\r\n\r\n";

/// Capacity a [`Framer`] keeps while idle. A connection that once carried a 1 MiB body should not hold
/// on to that much memory for the rest of its life; most SIP messages fit well within this.
const RETAINED_CAPACITY: usize = 16 * 1024;

/// Size limits for what a peer may send in one message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest head accepted, from the first byte of the start line through the blank line that ends the
    /// headers. Default 64 KiB.
    pub max_head: usize,
    /// Largest `Content-Length` accepted. Default 1 MiB.
    pub max_body: usize,
}

impl Default for FrameLimits {
    fn default() -> Self {
        Self {
            max_head: 64 * 1024,
            max_body: 1024 * 1024,
        }
    }
}

impl FrameLimits {
    /// Most bytes a [`Framer`] holds before [`Framer::push`] refuses more: the largest message in
    /// progress, plus one more message's worth, so that a read which completes one message and starts
    /// the next always fits.
    pub fn max_buffered(&self) -> usize {
        self.max_head
            .saturating_add(self.max_body)
            .saturating_mul(2)
    }
}

/// One complete item from the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A SIP request or response, still unparsed.
    Message {
        /// Start line and headers, including the `"\r\n\r\n"` that ends them.
        head: Vec<u8>,
        /// Exactly `Content-Length` bytes.
        body: Vec<u8>,
    },
    /// A double CRLF between messages: the peer's RFC 5626 ping (§4.4.1). The caller must answer it with
    /// a single `"\r\n"` on the same connection, immediately (§5.4).
    KeepAlivePing,
    /// A single CRLF between messages: the pong answering a ping we sent (RFC 5626 §4.4.1). A connection
    /// that never pings can ignore it, as RFC 3261 §7.5 says of any CRLF before a start line.
    KeepAlivePong,
}

/// Why a stream cannot be framed.
///
/// Every variant but [`FrameError::BufferFull`] is the peer's fault. After any of those the connection is
/// out of step: where the bad message ends is unknown, so nothing after it can be framed and the
/// [`Framer`] keeps returning the same error. The transport answers [`FrameError::response_code`] where a
/// response is still possible (the message was a request and its head, [`Framer::rejected_head`], is
/// readable enough to build one), and closes the connection either way.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The head reached `limit` bytes without the blank line that ends it.
    #[error("message head longer than {limit} bytes")]
    HeadTooLarge {
        /// [`FrameLimits::max_head`].
        limit: usize,
    },
    /// The message announced a body larger than `limit`.
    #[error("Content-Length {length} exceeds the limit of {limit} bytes")]
    BodyTooLarge {
        /// The announced `Content-Length`.
        length: usize,
        /// [`FrameLimits::max_body`].
        limit: usize,
    },
    /// The head has no `Content-Length` header, which stream transports require (RFC 3261 §18.3).
    #[error("message without Content-Length on a stream transport")]
    MissingContentLength,
    /// A `Content-Length` value is not a decimal number, or does not fit in memory addresses.
    #[error("Content-Length is not a valid length")]
    InvalidContentLength,
    /// Two `Content-Length` headers disagree, so the message's end is ambiguous.
    #[error("conflicting Content-Length headers: {first} and {second}")]
    ConflictingContentLength {
        /// The first value in the head.
        first: usize,
        /// The first value that differs from it.
        second: usize,
    },
    /// [`Framer::push`] would exceed `limit` buffered bytes. The caller's fault, not the peer's: it pushed
    /// without taking frames out. Nothing was appended and the framer is still usable; drain it with
    /// [`Framer::next_frame`] and push again.
    #[error("framer already holds the most it may buffer ({limit} bytes)")]
    BufferFull {
        /// [`FrameLimits::max_buffered`].
        limit: usize,
    },
}

impl FrameError {
    /// SIP status code to answer the offending request with, if any. `None` means close without
    /// answering.
    pub fn response_code(&self) -> Option<u16> {
        match self {
            // RFC 3261 §21.5.7: "the message length exceeded its capabilities".
            Self::HeadTooLarge { .. } => Some(513),
            // RFC 3261 §21.4.11, which also allows closing the connection afterwards.
            Self::BodyTooLarge { .. } => Some(413),
            Self::MissingContentLength
            | Self::InvalidContentLength
            | Self::ConflictingContentLength { .. } => Some(400),
            Self::BufferFull { .. } => None,
        }
    }
}

/// Cuts one connection's byte stream into [`Frame`]s. Holds no I/O: [`push`](Self::push) what was read,
/// then take frames with [`next_frame`](Self::next_frame) until it returns `Ok(None)`.
///
/// Splitting the same bytes differently across `push` calls gives the same frames. The one cost of that
/// is a CRLF at the very end of the data received so far: it may be a pong or the first half of a ping,
/// so it is held until the next byte arrives. A connection that pings should call
/// [`expect_pong`](Self::expect_pong) when it does, or the pong it waits for may be held back.
#[derive(Debug, Default)]
pub struct Framer {
    limits: FrameLimits,
    /// Received bytes; those before `start` are already framed.
    buf: Vec<u8>,
    start: usize,
    state: State,
    pong_expected: bool,
    failure: Option<Failure>,
}

#[derive(Debug, Clone, Copy)]
enum State {
    /// Looking for the end of a head. The first `scanned` bytes after `start` hold no complete CRLFCRLF,
    /// which keeps a head that trickles in byte by byte linear to search.
    Head { scanned: usize },
    /// The head is known and its body is arriving.
    Body { head_len: usize, body_len: usize },
}

impl Default for State {
    fn default() -> Self {
        Self::Head { scanned: 0 }
    }
}

#[derive(Debug)]
struct Failure {
    error: FrameError,
    /// Length of the offending head at `start`, for [`Framer::rejected_head`].
    head_len: usize,
}

/// What the bytes at the start of a frame say about a keep-alive.
enum KeepAlive {
    Ping,
    Pong,
    /// Could still turn out either way: wait for more bytes.
    Undecided,
    /// Not a keep-alive: a message starts here.
    No,
}

impl Framer {
    /// A framer for one connection.
    pub fn new(limits: FrameLimits) -> Self {
        Self {
            limits,
            ..Self::default()
        }
    }

    /// Appends bytes read from the connection.
    ///
    /// Refuses them, appending nothing, once the framer would hold more than
    /// [`FrameLimits::max_buffered`], and after the stream failed (returning that failure again).
    pub fn push(&mut self, data: &[u8]) -> Result<(), FrameError> {
        if let Some(failure) = &self.failure {
            return Err(failure.error.clone());
        }
        let limit = self.limits.max_buffered();
        if self.buffered().saturating_add(data.len()) > limit {
            return Err(FrameError::BufferFull { limit });
        }
        // Compacting here rather than in `next_frame` moves the unframed tail once per read, however
        // many frames that read completed.
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.start = 0;
        }
        if self.buf.is_empty() && self.buf.capacity() > RETAINED_CAPACITY {
            self.buf.shrink_to(RETAINED_CAPACITY);
        }
        self.buf.extend_from_slice(data);
        Ok(())
    }

    /// The next complete frame, or `Ok(None)` if more bytes are needed.
    ///
    /// Once this returns an error the stream cannot be framed any further, and every later call to
    /// `next_frame` or [`push`](Self::push) returns the same error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        if let Some(failure) = &self.failure {
            return Err(failure.error.clone());
        }
        self.cut().map_err(|failure| {
            let error = failure.error.clone();
            self.failure = Some(failure);
            error
        })
    }

    /// Declares that we just sent a ping on this connection, so the next lone CRLF from the peer is its
    /// pong and is reported as soon as it arrives, rather than once the byte after it shows it is not
    /// half of a ping. Only the side that sends pings may call this: peers answer pings, they do not
    /// send their own on the same connection.
    pub fn expect_pong(&mut self) {
        self.pong_expected = true;
    }

    /// Bytes received but not yet returned as frames. Non-zero when the connection closes means the peer
    /// stopped in the middle of a message (or after a lone CRLF).
    pub fn buffered(&self) -> usize {
        self.unframed().len()
    }

    /// After an error, the head of the message that caused it, for building a response. For
    /// [`FrameError::HeadTooLarge`] this is only the first [`FrameLimits::max_head`] bytes, without the
    /// blank line. `None` while the stream is fine.
    pub fn rejected_head(&self) -> Option<&[u8]> {
        let failure = self.failure.as_ref()?;
        self.unframed().get(..failure.head_len)
    }

    fn unframed(&self) -> &[u8] {
        self.buf.get(self.start..).unwrap_or_default()
    }

    fn cut(&mut self) -> Result<Option<Frame>, Failure> {
        loop {
            match self.state {
                State::Head { scanned } => match self.find_head(scanned)? {
                    HeadSearch::KeepAlive(frame) => return Ok(Some(frame)),
                    HeadSearch::Incomplete => return Ok(None),
                    HeadSearch::Head { head_len, body_len } => {
                        self.state = State::Body { head_len, body_len };
                    }
                },
                State::Body { head_len, body_len } => {
                    let rest = self.unframed();
                    let total = head_len.saturating_add(body_len);
                    let Some(message) = rest.get(..total) else {
                        return Ok(None);
                    };
                    let (head, body) = message.split_at(head_len.min(message.len()));
                    let frame = Frame::Message {
                        head: head.to_vec(),
                        body: body.to_vec(),
                    };
                    self.consume(total);
                    return Ok(Some(frame));
                }
            }
        }
    }

    fn find_head(&mut self, scanned: usize) -> Result<HeadSearch, Failure> {
        let rest = self.unframed();
        match keep_alive(rest, self.pong_expected) {
            KeepAlive::Ping => {
                self.consume(CRLFCRLF.len());
                return Ok(HeadSearch::KeepAlive(Frame::KeepAlivePing));
            }
            KeepAlive::Pong => {
                self.pong_expected = false;
                self.consume(CRLF.len());
                return Ok(HeadSearch::KeepAlive(Frame::KeepAlivePong));
            }
            KeepAlive::Undecided => return Ok(HeadSearch::Incomplete),
            KeepAlive::No => {}
        }

        let max_head = self.limits.max_head;
        // Searching only the first `max_head` bytes means a found head always fits the limit.
        let window = rest.get(..max_head).unwrap_or(rest);
        // The last three scanned bytes may be the start of a CRLFCRLF completed by new bytes.
        let from = scanned.saturating_sub(CRLFCRLF.len() - 1);
        let Some(end) = find(window, from, CRLFCRLF) else {
            if rest.len() >= max_head {
                return Err(Failure {
                    error: FrameError::HeadTooLarge { limit: max_head },
                    head_len: max_head,
                });
            }
            self.state = State::Head {
                scanned: window.len(),
            };
            return Ok(HeadSearch::Incomplete);
        };
        let head_len = end + CRLFCRLF.len();
        let head = window.get(..head_len).unwrap_or(window);
        let fail = |error| Failure { error, head_len };
        let body_len = content_length(head).map_err(fail)?;
        if body_len > self.limits.max_body {
            return Err(fail(FrameError::BodyTooLarge {
                length: body_len,
                limit: self.limits.max_body,
            }));
        }
        Ok(HeadSearch::Head { head_len, body_len })
    }

    /// Drops a finished frame's bytes; the next frame starts right after them.
    fn consume(&mut self, len: usize) {
        self.state = State::default();
        self.start = self.start.saturating_add(len).min(self.buf.len());
        if self.start == self.buf.len() {
            self.buf.clear();
            self.start = 0;
        }
    }
}

enum HeadSearch {
    KeepAlive(Frame),
    Incomplete,
    Head { head_len: usize, body_len: usize },
}

/// Classifies the bytes where a frame starts; nothing at all is `Undecided`. CRLFs are taken greedily, two at a time as a ping: RFC 5626
/// only has clients ping and servers pong, so "\r\n\r\n" is never two pongs on a well-behaved connection.
fn keep_alive(rest: &[u8], pong_expected: bool) -> KeepAlive {
    match rest {
        [] | [CR] => KeepAlive::Undecided,
        [CR, LF, ..] if pong_expected => KeepAlive::Pong,
        [CR, LF, CR, LF, ..] => KeepAlive::Ping,
        [CR, LF] | [CR, LF, CR] => KeepAlive::Undecided,
        [CR, LF, ..] => KeepAlive::Pong,
        _ => KeepAlive::No,
    }
}

/// Index of the first `needle` in `haystack` at or after `from`.
fn find(haystack: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    haystack
        .get(from..)?
        .windows(needle.len())
        .position(|window| window == needle)
        .map(|at| at + from)
}

/// The body length a complete head announces. `head` ends with its first CRLFCRLF.
fn content_length(head: &[u8]) -> Result<usize, FrameError> {
    let mut length: Option<usize> = None;
    for header in HeaderFields::new(head) {
        let Some(value) = header.content_length_value() else {
            continue;
        };
        let parsed = parse_length(&value)?;
        match length {
            None => length = Some(parsed),
            Some(first) if first != parsed => {
                return Err(FrameError::ConflictingContentLength {
                    first,
                    second: parsed,
                });
            }
            Some(_) => {}
        }
    }
    length.ok_or(FrameError::MissingContentLength)
}

/// `1*DIGIT` (RFC 3261 §20.14) with surrounding whitespace allowed. Leading zeros are fine; a number
/// past `usize::MAX` is not a length anything could send.
fn parse_length(value: &[u8]) -> Result<usize, FrameError> {
    let digits = trim_whitespace(value);
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(FrameError::InvalidContentLength);
    }
    digits.iter().try_fold(0usize, |acc, &digit| {
        acc.checked_mul(10)
            .and_then(|acc| acc.checked_add(usize::from(digit - b'0')))
            .ok_or(FrameError::InvalidContentLength)
    })
}

/// The header fields of a head, each with its folded continuation lines (RFC 3261 §7.3.1).
struct HeaderFields<'a> {
    lines: Lines<'a>,
    /// The next field's first line, already read while looking for the previous field's continuations.
    pending: Option<&'a [u8]>,
}

impl<'a> HeaderFields<'a> {
    fn new(head: &'a [u8]) -> Self {
        let mut lines = Lines { rest: head };
        // The start line cannot be continued: a folded line right after it belongs to no header, and is
        // skipped like any other line that is not a header field.
        let _start_line = lines.next();
        let mut fields = Self {
            lines,
            pending: None,
        };
        fields.pending = fields.lines.find(|line| !is_continuation(line));
        fields
    }
}

impl<'a> Iterator for HeaderFields<'a> {
    type Item = HeaderField<'a>;

    fn next(&mut self) -> Option<Self::Item> {
        let first = self.pending.take()?;
        let mut continuations = Vec::new();
        for line in self.lines.by_ref() {
            if is_continuation(line) {
                continuations.push(line);
            } else {
                self.pending = Some(line);
                break;
            }
        }
        Some(HeaderField {
            first,
            continuations,
        })
    }
}

struct HeaderField<'a> {
    first: &'a [u8],
    continuations: Vec<&'a [u8]>,
}

impl HeaderField<'_> {
    /// The unfolded value if this is `Content-Length` (or its compact form `l`), matched as RFC 3261 §7.3.1
    /// allows: any case, whitespace before the colon. Fold points become one space, as the RFC defines.
    fn content_length_value(&self) -> Option<Vec<u8>> {
        let colon = self.first.iter().position(|&b| b == b':')?;
        let (name, value) = self.first.split_at(colon);
        let name = trim_whitespace(name);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            return None;
        }
        let mut unfolded = value.get(1..).unwrap_or_default().to_vec();
        for line in &self.continuations {
            unfolded.push(b' ');
            unfolded.extend_from_slice(line);
        }
        Some(unfolded)
    }
}

/// Lines of a head, without their CRLF. The empty line that ends the head ends the iteration.
struct Lines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<Self::Item> {
        let end = find(self.rest, 0, CRLF)?;
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest.get(CRLF.len()..).unwrap_or_default();
        (!line.is_empty()).then_some(line)
    }
}

fn is_continuation(line: &[u8]) -> bool {
    matches!(line.first(), Some(b' ' | b'\t'))
}

fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let is_whitespace = |b: &u8| matches!(b, b' ' | b'\t');
    let start = bytes
        .iter()
        .position(|b| !is_whitespace(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_whitespace(b))
        .map_or(start, |at| at + 1);
    bytes.get(start..end).unwrap_or_default()
}

#[cfg(test)]
mod tests;
