//! Why a session ended, and whose fault it was.

use crate::certificate::CertificateProblem;
use crate::stanza::StanzaErrorCondition;
use crate::stream_error::StreamErrorCondition;

/// Whose fault a failure was: decides log levels and, on the SIP side later, response classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// The peer sent something malformed or broke the protocol.
    PeerMisbehaved,
    /// The peer is well-behaved but cannot work with us (no TLS, refuses our certificate, policy mismatch).
    PeerIncompatible,
    /// The peer was not reachable or too slow.
    Unreachable,
    /// We failed.
    Local,
}

/// How a session ended.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SessionEnd {
    /// Both sides closed the stream cleanly.
    #[error("stream closed")]
    Closed,
    /// The peer closed the stream with a stream error.
    #[error("peer sent stream error {0}")]
    PeerStreamError(String),
    /// We closed the stream with a stream error because of what the peer did.
    #[error("we sent stream error {condition:?}: {text}")]
    StreamError {
        /// The condition we sent.
        condition: StreamErrorCondition,
        /// Why.
        text: String,
    },
    /// The peer does not offer or accept STARTTLS.
    #[error("peer refused STARTTLS")]
    TlsRefused,
    /// The peer's certificate is not acceptable for its domain under our policy.
    #[error("peer certificate rejected: {0}")]
    CertificateRejected(CertificateProblem),
    /// The peer refused every authentication method we may use.
    #[error("authentication refused: {0}")]
    AuthenticationRefused(String),
    /// The connection closed before the stream was closed.
    #[error("connection closed unexpectedly")]
    ConnectionLost,
    /// The stream did not become usable in time, or the peer went silent.
    #[error("timed out: {0}")]
    Timeout(&'static str),
}

impl SessionEnd {
    /// Whose fault it was.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Closed => Fault::Local,
            Self::PeerStreamError(_)
            | Self::TlsRefused
            | Self::CertificateRejected(_)
            | Self::AuthenticationRefused(_) => Fault::PeerIncompatible,
            Self::StreamError { condition, .. } => match condition {
                StreamErrorCondition::InternalServerError
                | StreamErrorCondition::SystemShutdown => Fault::Local,
                StreamErrorCondition::ConnectionTimeout => Fault::Unreachable,
                _ => Fault::PeerMisbehaved,
            },
            Self::ConnectionLost | Self::Timeout(_) => Fault::Unreachable,
        }
    }

    /// The condition for stanzas that could not be delivered because of this. Everything but a missing
    /// domain is `remote-server-timeout`, as Prosody does: the sender may try again later.
    pub fn bounce_condition(&self) -> StanzaErrorCondition {
        StanzaErrorCondition::RemoteServerTimeout
    }
}
