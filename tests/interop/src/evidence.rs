//! The log lines that prove how two servers authenticated an s2s stream, as seen by Prosody 0.12 and
//! ejabberd 23. Each is a set of substrings that must all occur on one line (Prosody writes attributes
//! in no fixed order, so they are separate substrings).
//!
//! Prosody's `debug` lines need `debug_log` in [`crate::prosody::Options`] (the default).

use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::logs;

/// A log line to look for.
#[derive(Debug, Clone)]
pub struct Evidence {
    /// What the line proves, for the test output.
    pub meaning: String,
    /// Substrings that must all occur on the line.
    pub needles: Vec<String>,
}

impl Evidence {
    fn new(meaning: String, needles: &[&str]) -> Self {
        Self {
            meaning,
            needles: needles.iter().map(|s| (*s).to_owned()).collect(),
        }
    }

    /// Waits (polling, without blocking the runtime) for the line in `log`; returns it.
    pub async fn wait(&self, log: &Path, timeout: Duration) -> Result<String> {
        let needles: Vec<&str> = self.needles.iter().map(String::as_str).collect();
        logs::wait_for_line_async(log, &needles, timeout)
            .await
            .map_err(|e| e.context(format!("expected evidence: {}", self.meaning)))
    }

    /// The matching lines in `log` so far.
    pub fn find(&self, log: &Path) -> Vec<String> {
        let needles: Vec<&str> = self.needles.iter().map(String::as_str).collect();
        logs::find_lines(log, &needles)
    }
}

/// Prosody accepted SASL EXTERNAL on an inbound stream from `peer` (info).
pub fn prosody_inbound_external(peer: &str) -> Evidence {
    let line = format!("Accepting SASL EXTERNAL identity from {peer}");
    Evidence::new(
        format!("{peer} -> Prosody authenticated with SASL EXTERNAL"),
        &[&line],
    )
}

/// Prosody's outbound stream to `peer` authenticated with SASL EXTERNAL (debug).
pub fn prosody_outbound_external(peer: &str) -> Evidence {
    let line = format!("SASL EXTERNAL with {peer} succeeded");
    Evidence::new(
        format!("Prosody -> {peer} authenticated with SASL EXTERNAL"),
        &[&line],
    )
}

/// Prosody accepted dialback on an inbound stream from `peer`: after checking the key with the
/// authoritative server it sends `<db:result type='valid'/>` (debug).
pub fn prosody_inbound_dialback(peer: &str) -> Evidence {
    let to = format!("to='{peer}'");
    Evidence::new(
        format!("{peer} -> Prosody authenticated with dialback"),
        &["Sending[s2sin", "<db:result", &to, "type='valid'"],
    )
}

/// Prosody's outbound stream to `peer` authenticated with dialback: the peer answered its
/// `<db:result/>` with `type='valid'` (debug).
pub fn prosody_outbound_dialback(peer: &str) -> Evidence {
    let from = format!("from='{peer}'");
    Evidence::new(
        format!("Prosody -> {peer} authenticated with dialback"),
        &[
            "Received[s2sout",
            "<result",
            "jabber:server:dialback",
            &from,
            "type='valid'",
        ],
    )
}

/// Prosody sent its dialback key on an outbound stream (debug; the stream's peer is not on the line).
pub fn prosody_sent_dialback_key() -> Evidence {
    Evidence::new(
        "Prosody sent a dialback key".to_owned(),
        &["sent dialback key on outgoing s2s stream"],
    )
}

/// Prosody refused `peer` because of its certificate (warn). `reason` completes "its certificate …",
/// e.g. `is not valid for this name`, `is not trusted`.
pub fn prosody_forbids_insecure(peer: &str, reason: &str) -> Evidence {
    let line =
        format!("Forbidding insecure connection to/from {peer} because its certificate {reason}");
    Evidence::new(
        format!("Prosody refused {peer}: its certificate {reason}"),
        &[&line],
    )
}

/// Prosody completed an outbound s2s stream to `peer` (info).
pub fn prosody_outbound_complete(local: &str, peer: &str) -> Evidence {
    let line = format!("Outgoing s2s connection {local}->{peer} complete");
    Evidence::new(format!("Prosody -> {peer} stream established"), &[&line])
}

/// Prosody completed an inbound s2s stream from `peer` (info).
pub fn prosody_inbound_complete(peer: &str, local: &str) -> Evidence {
    let line = format!("Incoming s2s connection {peer}->{local} complete");
    Evidence::new(format!("{peer} -> Prosody stream established"), &[&line])
}

/// Prosody's outbound stream received the peer's stream features: it reached the peer over TCP
/// (debug; the peer is not on the line, so use it where Prosody talks to one peer only).
pub fn prosody_outbound_got_features() -> Evidence {
    Evidence::new(
        "Prosody's outbound stream received stream features".to_owned(),
        &["Received[s2sout_unauthed]: <features"],
    )
}

/// Prosody's outbound stream completed TLS (info; the peer is not on the line).
pub fn prosody_outbound_encrypted() -> Evidence {
    Evidence::new(
        "Prosody's outbound stream is encrypted".to_owned(),
        &["s2sout", "Stream encrypted"],
    )
}

/// How ejabberd names an authentication mechanism in its log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// SASL EXTERNAL (XEP-0178).
    External,
    /// Server dialback (XEP-0220).
    Dialback,
}

impl Mechanism {
    fn ejabberd_word(self) -> &'static str {
        match self {
            Self::External => "EXTERNAL",
            Self::Dialback => "dialback",
        }
    }
}

/// ejabberd accepted an inbound stream from `peer` to `local` with `mechanism` (info).
pub fn ejabberd_inbound(mechanism: Mechanism, peer: &str, local: &str) -> Evidence {
    let line = format!(
        "Accepted inbound s2s {} authentication {peer} -> {local}",
        mechanism.ejabberd_word()
    );
    Evidence::new(
        format!(
            "{peer} -> ejabberd authenticated with {}",
            mechanism.ejabberd_word()
        ),
        &[&line],
    )
}

/// ejabberd's outbound stream from `local` to `peer` authenticated with `mechanism` (info).
pub fn ejabberd_outbound(mechanism: Mechanism, local: &str, peer: &str) -> Evidence {
    let line = format!(
        "Accepted outbound s2s {} authentication {local} -> {peer}",
        mechanism.ejabberd_word()
    );
    Evidence::new(
        format!(
            "ejabberd -> {peer} authenticated with {}",
            mechanism.ejabberd_word()
        ),
        &[&line],
    )
}
