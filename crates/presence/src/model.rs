//! The protocol-neutral presence model both sides translate into and out of.

/// Everything known about one presentity: one entry per XMPP resource or PIDF tuple.
///
/// No resources at all is a valid state (a PIDF document without tuples); RFC 8048 §5.2.1 leaves what that
/// means to the caller, which treats it as "unknown, so closed".
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Presence {
    /// One entry per resource, in document order; resource names are unique.
    pub resources: Vec<ResourcePresence>,
}

impl Presence {
    /// Whether any resource is available.
    pub fn is_available(&self) -> bool {
        self.resources.iter().any(|r| r.available)
    }
}

/// The presence of one XMPP resource (one PIDF tuple).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResourcePresence {
    /// The XMPP resource; for a SIP tuple without the `ID-` prefix, the tuple id itself.
    pub resource: String,
    /// PIDF `basic` open (true) or closed (false); XMPP no `type` versus `type='unavailable'`.
    pub available: bool,
    /// The availability sub-state; always `None` when `available` is false.
    pub show: Option<Show>,
    /// Human-readable text: XMPP `<status/>`, PIDF `<note/>`.
    pub status: Option<Status>,
    /// XMPP `<priority/>`; PIDF carries only 0..=127 (RFC 8048 §6.2), so negative values do not survive.
    pub priority: i8,
}

impl ResourcePresence {
    /// An available resource with no show, status or priority.
    pub fn available(resource: impl Into<String>) -> Self {
        Self {
            resource: resource.into(),
            available: true,
            show: None,
            status: None,
            priority: 0,
        }
    }

    /// An unavailable resource.
    pub fn unavailable(resource: impl Into<String>) -> Self {
        Self {
            available: false,
            ..Self::available(resource)
        }
    }
}

/// XMPP `<show/>` values (RFC 6121 §4.7.2.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Show {
    /// Free for chat.
    Chat,
    /// Temporarily away.
    Away,
    /// Away for an extended period.
    Xa,
    /// Do not disturb: busy.
    Dnd,
}

impl Show {
    /// The XMPP wire token.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Away => "away",
            Self::Xa => "xa",
            Self::Dnd => "dnd",
        }
    }

    /// Parses an XMPP wire token (exact, case-sensitive as in RFC 6121).
    pub fn from_token(token: &str) -> Option<Self> {
        match token {
            "chat" => Some(Self::Chat),
            "away" => Some(Self::Away),
            "xa" => Some(Self::Xa),
            "dnd" => Some(Self::Dnd),
            _ => None,
        }
    }
}

/// Status text with its language (`xml:lang` on the note or inherited; SIP `Content-Language` otherwise).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Status {
    /// The text, as sent.
    pub text: String,
    /// The language tag, if any was given.
    pub lang: Option<String>,
}

impl Status {
    /// Status text without a language.
    pub fn new(text: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            lang: None,
        }
    }

    /// Status text in a given language.
    pub fn with_lang(text: impl Into<String>, lang: impl Into<String>) -> Self {
        Self {
            text: text.into(),
            lang: Some(lang.into()),
        }
    }
}
