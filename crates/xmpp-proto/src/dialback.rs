//! Server Dialback keys (XEP-0220, with keys generated as XEP-0185 recommends) and its elements.
//!
//! The key binds the receiving domain, the originating domain and the stream id to a secret only we know;
//! when a peer asks us to verify a key (we are the authoritative server), we recompute it. Keys are never
//! stored.

use aws_lc_rs::{constant_time, digest, hmac};
use sixgate_core::Domain;

use crate::xml::{Element, ns};

/// The secret behind our dialback keys.
#[derive(Clone)]
pub struct DialbackSecret {
    key: hmac::Key,
}

impl DialbackSecret {
    /// Derives the HMAC key from an operator-supplied secret: `key = HMAC-SHA256(hex(SHA256(secret)), …)`
    /// (XEP-0185 §3).
    pub fn new(secret: &[u8]) -> Self {
        let hashed = hex(digest::digest(&digest::SHA256, secret).as_ref());
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, hashed.as_bytes()),
        }
    }

    /// The key for a stream from `originating` (us) to `receiving` with the id the receiving server gave.
    pub fn key(&self, receiving: &Domain, originating: &Domain, stream_id: &str) -> String {
        let message = format!("{receiving} {originating} {stream_id}");
        hex(hmac::sign(&self.key, message.as_bytes()).as_ref())
    }

    /// Whether `key` is the one we would have generated (compared in constant time).
    pub fn verify(
        &self,
        receiving: &Domain,
        originating: &Domain,
        stream_id: &str,
        key: &str,
    ) -> bool {
        let expected = self.key(receiving, originating, stream_id);
        constant_time::verify_slices_are_equal(expected.as_bytes(), key.trim().as_bytes()).is_ok()
    }
}

impl std::fmt::Debug for DialbackSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DialbackSecret(..)")
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// The outcome carried in the `type` attribute of `db:result` and `db:verify` answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// `type='valid'`.
    Valid,
    /// `type='invalid'`.
    Invalid,
    /// `type='error'` (XEP-0220 §2.4, only towards peers that announced `<errors/>` support; others get
    /// `invalid`).
    Error,
}

impl Verdict {
    /// Parses the `type` attribute of an answer; `None` for requests (no type) and unknown values.
    pub fn from_attr(value: Option<&str>) -> Option<Self> {
        match value? {
            "valid" => Some(Self::Valid),
            "invalid" => Some(Self::Invalid),
            "error" => Some(Self::Error),
            _ => None,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Invalid => "invalid",
            Self::Error => "error",
        }
    }
}

/// `<db:result from to>key</db:result>`: the originating server's request.
pub fn result_request(from: &Domain, to: &Domain, key: &str) -> Element {
    Element::new(ns::DIALBACK, "result")
        .with_attr("from", from.as_str())
        .with_attr("to", to.as_str())
        .with_text(key)
}

/// `<db:result type/>`: the receiving server's answer, `condition` being a stanza error condition for
/// `Verdict::Error`.
pub fn result_answer(
    from: &Domain,
    to: &Domain,
    verdict: Verdict,
    condition: Option<&str>,
) -> Element {
    answer("result", from, to, None, verdict, condition)
}

/// `<db:verify from to id>key</db:verify>`: the receiving server asks the authoritative server.
pub fn verify_request(from: &Domain, to: &Domain, id: &str, key: &str) -> Element {
    Element::new(ns::DIALBACK, "verify")
        .with_attr("from", from.as_str())
        .with_attr("to", to.as_str())
        .with_attr("id", id)
        .with_text(key)
}

/// `<db:verify type/>`: the authoritative server's answer.
pub fn verify_answer(
    from: &Domain,
    to: &Domain,
    id: &str,
    verdict: Verdict,
    condition: Option<&str>,
) -> Element {
    answer("verify", from, to, Some(id), verdict, condition)
}

fn answer(
    name: &str,
    from: &Domain,
    to: &Domain,
    id: Option<&str>,
    verdict: Verdict,
    condition: Option<&str>,
) -> Element {
    let mut element = Element::new(ns::DIALBACK, name)
        .with_attr("from", from.as_str())
        .with_attr("to", to.as_str());
    if let Some(id) = id {
        element.set_attr("id", id);
    }
    element.set_attr("type", verdict.as_str());
    if let (Verdict::Error, Some(condition)) = (verdict, condition) {
        element.push_child(
            Element::new(ns::SERVER, "error")
                .with_attr("type", "cancel")
                .with_child(Element::new(ns::STANZA_ERRORS, condition)),
        );
    }
    element
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn d(s: &str) -> Domain {
        Domain::parse(s).unwrap()
    }

    #[test]
    fn xep_0185_example_key() {
        // The inputs of XEP-0185's example; the expected value was computed independently with Python's
        // hmac module: hmac(sha256(secret).hexdigest(), "example.net example.com D60000229F", sha256).
        let secret = DialbackSecret::new(b"s3cr3tf0rd14lb4ck");
        assert_eq!(
            secret.key(&d("example.net"), &d("example.com"), "D60000229F"),
            "008c689ff366b50c63d69a3e2d2c0e0e1f8404b0118eb688a0102c87cb691bdc"
        );
    }

    #[test]
    fn keys_are_bound_to_domains_and_stream() {
        let secret = DialbackSecret::new(b"secret");
        let key = secret.key(&d("r.example"), &d("o.example"), "id1");
        assert_eq!(key.len(), 64);
        assert!(secret.verify(&d("r.example"), &d("o.example"), "id1", &key));
        assert!(!secret.verify(&d("r.example"), &d("o.example"), "id2", &key));
        assert!(!secret.verify(&d("x.example"), &d("o.example"), "id1", &key));
        assert!(!DialbackSecret::new(b"other").verify(
            &d("r.example"),
            &d("o.example"),
            "id1",
            &key
        ));
    }

    #[test]
    fn answers_carry_type_and_error() {
        let e = verify_answer(
            &d("a.example"),
            &d("b.example"),
            "s1",
            Verdict::Error,
            Some("item-not-found"),
        );
        assert_eq!(e.attr("type"), Some("error"));
        assert_eq!(e.attr("id"), Some("s1"));
        assert!(
            e.child(ns::SERVER, "error")
                .unwrap()
                .child(ns::STANZA_ERRORS, "item-not-found")
                .is_some()
        );
        assert_eq!(Verdict::from_attr(Some("valid")), Some(Verdict::Valid));
        assert_eq!(Verdict::from_attr(None), None);
    }
}
