//! Stateless helpers for an element at the edge: building responses (RFC 3261 §8.2.6), the hop limit
//! (§16.3 item 3, §16.6 item 3) and loop detection (§16.3 item 4).
//!
//! These keep no state and need no transaction: they are what a proxy or B2BUA applies to a request
//! before deciding what to do with it.

use std::fmt::Write as _;

use thiserror::Error;

use crate::message::{
    HeaderName, Headers, HostPort, Method, Request, Response, StatusCode, Token, Via,
};

/// A response to `request` (RFC 3261 §8.2.6): `Via` (all values, in order), `From`, `To`, `Call-ID`
/// and `CSeq` copied, and `to_tag` added to `To` unless it already has a tag or the status is 100.
/// An empty `reason` becomes the status code's standard phrase.
///
/// `to_tag` is the caller's because it must be the same in every response to one request (§8.2.6.2)
/// and random (§19.3); [`TransactionLayer::new_tag`](crate::transaction::TransactionLayer::new_tag)
/// makes one.
///
/// For a 101–299 response to a request that can create a dialog (SUBSCRIBE, REFER, NOTIFY, INVITE),
/// `Record-Route` is copied too, as §12.1.1 requires of a UAS; it is harmless when the request was
/// inside a dialog already.
pub fn response_for(
    request: &Request,
    status: StatusCode,
    reason: &str,
    to_tag: &Token,
) -> Response {
    let mut to = request.to.clone();
    if status != StatusCode::TRYING && to.tag().is_none() {
        // A token is always a valid parameter value.
        let _ = to.params.set("tag", Some(to_tag.as_str()));
    }
    let mut headers = Headers::new();
    let creates_dialog = matches!(
        request.method,
        Method::Subscribe | Method::Refer | Method::Notify | Method::Invite
    );
    if creates_dialog && (101..300).contains(&status.as_u16()) {
        for record_route in request.headers.get_all(&HeaderName::RECORD_ROUTE) {
            // Copied from a parsed request, so neither reserved nor containing line breaks.
            let _ = headers.push(HeaderName::RECORD_ROUTE, record_route);
        }
    }
    Response {
        status,
        reason: if reason.is_empty() {
            status.canonical_reason().to_owned()
        } else {
            reason.to_owned()
        },
        via: request.via.clone(),
        from: request.from.clone(),
        to,
        call_id: request.call_id.clone(),
        cseq: request.cseq.clone(),
        headers,
        body: Vec::new(),
    }
}

/// Why a request must not be forwarded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum ForwardError {
    /// `Max-Forwards` reached zero (§16.3 item 3).
    #[error("Max-Forwards reached zero")]
    TooManyHops,
    /// The request already went through this element with the same loop-relevant content (§16.3
    /// item 4).
    #[error("request loops through this element")]
    LoopDetected,
}

impl ForwardError {
    /// The status code to answer with: 483 or 482.
    pub fn status(self) -> StatusCode {
        match self {
            Self::TooManyHops => StatusCode::TOO_MANY_HOPS,
            Self::LoopDetected => StatusCode::LOOP_DETECTED,
        }
    }
}

/// What a request's `Max-Forwards` becomes when forwarded (§16.6 item 3): one less, or 70 if it had
/// none. A request that arrived with 0 must not be forwarded: answer [`ForwardError::status`] (483).
pub fn decrement_max_forwards(request: &mut Request) -> Result<u32, ForwardError> {
    let hops = match request.max_forwards {
        Some(0) => return Err(ForwardError::TooManyHops),
        Some(hops) => hops - 1,
        None => 70,
    };
    request.max_forwards = Some(hops);
    Ok(hops)
}

/// Prefix after the magic cookie that marks a branch made by [`forwarding_branch`].
const LOOP_MARK: &str = "lp";

/// A branch for forwarding `received`: the magic cookie, a hash of what identifies the request for loop
/// detection ([`loop_hash`]), and `unique` so that each forwarded copy has its own transaction.
///
/// Written into the `Via` this element adds, it lets [`detect_loop`] recognise the request if it comes
/// back (§16.6 item 8).
pub fn forwarding_branch(received: &Request, unique: u64) -> Token {
    let mut text = format!("{}{LOOP_MARK}", Via::MAGIC_COOKIE);
    let _ = write!(text, "{:016x}.{unique:016x}", loop_hash(received));
    // Cookie, letters, hex digits and a dot: always a token.
    Token::new(&text).unwrap_or_else(|_| Token::from_u64(Via::MAGIC_COOKIE, unique))
}

/// Checks a received request for a loop through this element (§16.3 item 4): a `Via` with our
/// `sent_by` whose branch came from [`forwarding_branch`] with the same [`loop_hash`] as this request.
/// A `Via` of ours with a different hash is a spiral (the request came back changed, typically with a
/// new Request-URI) and is allowed.
pub fn detect_loop(request: &Request, own_sent_by: &HostPort) -> Result<(), ForwardError> {
    let hash = format!("{:016x}", loop_hash(request));
    let prefix_len = Via::MAGIC_COOKIE.len() + LOOP_MARK.len();
    let looped = request
        .via
        .iter()
        .filter(|via| via.sent_by.matches(own_sent_by))
        .filter_map(Via::cookie_branch)
        .filter_map(|branch| branch.get(prefix_len..))
        .any(|rest| {
            rest.get(..hash.len())
                .is_some_and(|ours| ours.eq_ignore_ascii_case(&hash))
        });
    if looped {
        Err(ForwardError::LoopDetected)
    } else {
        Ok(())
    }
}

/// The part of a request that stays the same when it loops back unchanged (§16.6 item 8): Request-URI,
/// `From` and `To` tags, `Call-ID`, `CSeq` number, `Proxy-Require` and `Proxy-Authorization`, hashed
/// with FNV-1a.
///
/// Unlike the RFC's list it leaves out the top `Via`: on a looped request that `Via` is the previous
/// hop's, never the one the request first arrived with, so including it would hide every loop that
/// passes through another element. `Max-Forwards` is left out because it changes at every hop. The hash is not a secret; a collision only costs a false 482 with
/// probability 2⁻⁶⁴.
pub fn loop_hash(request: &Request) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut hash = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(PRIME);
        }
        // A byte that never occurs in UTF-8 text separates fields, so moving text from one field to the
        // next changes the hash.
        hash ^= 0xff;
        hash = hash.wrapping_mul(PRIME);
    };
    feed(request.uri.as_str().as_bytes());
    feed(request.from.tag().unwrap_or_default().as_bytes());
    feed(request.to.tag().unwrap_or_default().as_bytes());
    feed(request.call_id.as_str().as_bytes());
    feed(request.cseq.number.to_string().as_bytes());
    for name in [HeaderName::PROXY_REQUIRE, HeaderName::PROXY_AUTHORIZATION] {
        for value in request.headers.get_all(&name) {
            feed(value.as_bytes());
        }
    }
    hash
}

/// A response to a request that could not be parsed, built from its raw head: the `Via`, `From`,
/// `To`, `Call-ID` and `CSeq` lines copied as they are (§8.2.6), `to_tag` added to `To`. For the
/// [`FrameError`](crate::FrameError) and [`ParseError`](crate::ParseError) cases where the peer should
/// still get an answer, such as 400 or 513.
///
/// `None` when no response is possible: the head is a response, an ACK (never answered), or lacks one
/// of those headers.
pub fn reject_unparsable(
    head: &[u8],
    status: StatusCode,
    reason: &str,
    to_tag: &Token,
) -> Option<Vec<u8>> {
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split("\r\n");
    let start = lines.next()?;
    let method = start.split(' ').next()?;
    if start
        .get(..4)
        .is_some_and(|prefix| prefix.eq_ignore_ascii_case("SIP/"))
        || method == "ACK"
        || Method::parse(method).is_err()
    {
        return None;
    }
    let mut fields: Vec<(HeaderName, String)> = Vec::new();
    for line in lines {
        if line.is_empty() {
            break;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = fields.last_mut() {
                value.push(' ');
                value.push_str(line.trim_matches([' ', '\t']));
            }
            continue;
        }
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let Ok(name) = HeaderName::new(name.trim_end_matches([' ', '\t'])) else {
            continue;
        };
        fields.push((name, value.trim_matches([' ', '\t']).to_owned()));
    }
    let first = |name: HeaderName| {
        fields
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, value)| value.as_str())
    };
    let (from, to, call_id, cseq) = (
        first(HeaderName::FROM)?,
        first(HeaderName::TO)?,
        first(HeaderName::CALL_ID)?,
        first(HeaderName::CSEQ)?,
    );
    let vias: Vec<&str> = fields
        .iter()
        .filter(|(name, _)| *name == HeaderName::VIA)
        .map(|(_, value)| value.as_str())
        .collect();
    if vias.is_empty() {
        return None;
    }
    let reason = if reason.is_empty() {
        status.canonical_reason()
    } else {
        reason
    };
    let mut response = format!(
        "SIP/2.0 {status} {}\r\n",
        reason.replace(['\r', '\n', '\0'], " ")
    );
    for via in vias {
        let _ = write!(response, "Via: {via}\r\n");
    }
    let _ = write!(response, "From: {from}\r\nTo: {to}");
    if status != StatusCode::TRYING && !has_tag(to) {
        let _ = write!(response, ";tag={to_tag}");
    }
    let _ = write!(
        response,
        "\r\nCall-ID: {call_id}\r\nCSeq: {cseq}\r\nContent-Length: 0\r\n\r\n"
    );
    Some(response.into_bytes())
}

/// Whether a raw `To` value has a `tag` parameter outside its `<...>`.
fn has_tag(to: &str) -> bool {
    let params = to.rsplit_once('>').map_or(to, |(_, params)| params);
    params.split(';').skip(1).any(|param| {
        param
            .split('=')
            .next()
            .is_some_and(|name| name.trim().eq_ignore_ascii_case("tag"))
    })
}

#[cfg(test)]
mod tests;
