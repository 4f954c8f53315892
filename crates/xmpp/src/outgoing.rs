//! Stanzas on their way out, and the confirmation some senders wait for.
//!
//! The SIP side answers a MESSAGE only once its stanza has been handed to an authenticated stream (or with
//! the mapped error when that fails), so it sends with a confirmation channel. Other senders (the echo
//! target, replies) get the XMPP behaviour instead: failures come back as error bounces.

use sixgate_xmpp_proto::stanza::StanzaErrorCondition;
use sixgate_xmpp_proto::xml::Element;
use tokio::sync::oneshot;
use tracing::debug;

/// Why a stanza was not handed to an authenticated stream.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}: {text}", condition.as_str())]
pub struct Undeliverable {
    /// The stanza error condition a bounce would carry.
    pub condition: StanzaErrorCondition,
    /// What happened, for the sender.
    pub text: String,
}

/// A stanza queued for a remote domain.
#[derive(Debug)]
pub(crate) struct Outgoing {
    pub(crate) stanza: Element,
    confirm: Option<oneshot::Sender<Result<(), Undeliverable>>>,
}

impl Outgoing {
    /// A stanza whose failure is reported with an error bounce.
    pub(crate) fn plain(stanza: Element) -> Self {
        Self {
            stanza,
            confirm: None,
        }
    }

    /// A stanza whose sender waits for the outcome.
    pub(crate) fn confirmed(
        stanza: Element,
    ) -> (Self, oneshot::Receiver<Result<(), Undeliverable>>) {
        let (tx, rx) = oneshot::channel();
        (
            Self {
                stanza,
                confirm: Some(tx),
            },
            rx,
        )
    }

    /// The stanza was written to an authenticated stream and flushed.
    pub(crate) fn sent(self) {
        if let Some(confirm) = self.confirm {
            let _ = confirm.send(Ok(()));
        }
    }

    /// The stanza failed. Returns it when its sender expects a bounce instead of a confirmation.
    pub(crate) fn fail(self, condition: StanzaErrorCondition, text: &str) -> Option<Element> {
        match self.confirm {
            Some(confirm) => {
                let _ = confirm.send(Err(Undeliverable {
                    condition,
                    text: text.to_owned(),
                }));
                None
            }
            None => Some(self.stanza),
        }
    }

    /// The stream broke after the stanza was written but before the write was known to succeed: the peer
    /// may or may not have it. A waiting sender is told it failed (a retry may duplicate, but nothing
    /// acknowledged is lost); a plain stanza is not bounced, as no XMPP server bounces what it wrote to a
    /// stream that then failed.
    pub(crate) fn in_doubt(self) {
        match self.confirm {
            Some(confirm) => {
                let _ = confirm.send(Err(Undeliverable {
                    condition: StanzaErrorCondition::RemoteServerTimeout,
                    text: "the server-to-server stream failed while sending".to_owned(),
                }));
            }
            None => debug!("stanza lost with a failed stream"),
        }
    }
}
