//! XMPP stanza error conditions (RFC 6120 §8.3.3) and their mapping to and from SIP response codes
//! (RFC 7247 §7, Tables 2 and 3).
//!
//! RFC 7247 §7 calls the mapping "more of an art than a science" and lets implementations deviate; every place
//! where we chose between alternatives it offers is marked "Choice:" below and listed in `docs/translation.md`.

use std::fmt;

/// The `type` attribute of an XMPP `<error/>` (RFC 6120 §8.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StanzaErrorType {
    /// Retry after providing credentials.
    Auth,
    /// Do not retry (the error cannot be remedied).
    Cancel,
    /// Proceed (the condition was only a warning).
    Continue,
    /// Retry after changing the data sent.
    Modify,
    /// Retry after waiting (the error is temporary).
    Wait,
}

impl StanzaErrorType {
    /// The attribute value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auth => "auth",
            Self::Cancel => "cancel",
            Self::Continue => "continue",
            Self::Modify => "modify",
            Self::Wait => "wait",
        }
    }

    /// Parses the attribute value (case-sensitive, as XML is).
    pub fn from_name(name: &str) -> Option<Self> {
        Some(match name {
            "auth" => Self::Auth,
            "cancel" => Self::Cancel,
            "continue" => Self::Continue,
            "modify" => Self::Modify,
            "wait" => Self::Wait,
            _ => return None,
        })
    }
}

impl fmt::Display for StanzaErrorType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A defined stanza error condition (RFC 6120 §8.3.3). The set is closed: RFC 6120 §8.3.2 says an unknown
/// condition is treated as [`StanzaCondition::UndefinedCondition`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StanzaCondition {
    /// `<bad-request/>` (§8.3.3.1)
    BadRequest,
    /// `<conflict/>` (§8.3.3.2)
    Conflict,
    /// `<feature-not-implemented/>` (§8.3.3.3)
    FeatureNotImplemented,
    /// `<forbidden/>` (§8.3.3.4)
    Forbidden,
    /// `<gone/>` (§8.3.3.5); may carry the new address as character data.
    Gone,
    /// `<internal-server-error/>` (§8.3.3.6)
    InternalServerError,
    /// `<item-not-found/>` (§8.3.3.7)
    ItemNotFound,
    /// `<jid-malformed/>` (§8.3.3.8)
    JidMalformed,
    /// `<not-acceptable/>` (§8.3.3.9)
    NotAcceptable,
    /// `<not-allowed/>` (§8.3.3.10)
    NotAllowed,
    /// `<not-authorized/>` (§8.3.3.11)
    NotAuthorized,
    /// `<policy-violation/>` (§8.3.3.12)
    PolicyViolation,
    /// `<recipient-unavailable/>` (§8.3.3.13)
    RecipientUnavailable,
    /// `<redirect/>` (§8.3.3.14); carries the alternate address as character data.
    Redirect,
    /// `<registration-required/>` (§8.3.3.15)
    RegistrationRequired,
    /// `<remote-server-not-found/>` (§8.3.3.16)
    RemoteServerNotFound,
    /// `<remote-server-timeout/>` (§8.3.3.17)
    RemoteServerTimeout,
    /// `<resource-constraint/>` (§8.3.3.18)
    ResourceConstraint,
    /// `<service-unavailable/>` (§8.3.3.19)
    ServiceUnavailable,
    /// `<subscription-required/>` (§8.3.3.20)
    SubscriptionRequired,
    /// `<undefined-condition/>` (§8.3.3.21)
    UndefinedCondition,
    /// `<unexpected-request/>` (§8.3.3.22)
    UnexpectedRequest,
}

impl StanzaCondition {
    /// Every condition, in RFC 6120 §8.3.3 order.
    pub const ALL: [Self; 22] = [
        Self::BadRequest,
        Self::Conflict,
        Self::FeatureNotImplemented,
        Self::Forbidden,
        Self::Gone,
        Self::InternalServerError,
        Self::ItemNotFound,
        Self::JidMalformed,
        Self::NotAcceptable,
        Self::NotAllowed,
        Self::NotAuthorized,
        Self::PolicyViolation,
        Self::RecipientUnavailable,
        Self::Redirect,
        Self::RegistrationRequired,
        Self::RemoteServerNotFound,
        Self::RemoteServerTimeout,
        Self::ResourceConstraint,
        Self::ServiceUnavailable,
        Self::SubscriptionRequired,
        Self::UndefinedCondition,
        Self::UnexpectedRequest,
    ];

    /// The element name in the `urn:ietf:params:xml:ns:xmpp-stanzas` namespace.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BadRequest => "bad-request",
            Self::Conflict => "conflict",
            Self::FeatureNotImplemented => "feature-not-implemented",
            Self::Forbidden => "forbidden",
            Self::Gone => "gone",
            Self::InternalServerError => "internal-server-error",
            Self::ItemNotFound => "item-not-found",
            Self::JidMalformed => "jid-malformed",
            Self::NotAcceptable => "not-acceptable",
            Self::NotAllowed => "not-allowed",
            Self::NotAuthorized => "not-authorized",
            Self::PolicyViolation => "policy-violation",
            Self::RecipientUnavailable => "recipient-unavailable",
            Self::Redirect => "redirect",
            Self::RegistrationRequired => "registration-required",
            Self::RemoteServerNotFound => "remote-server-not-found",
            Self::RemoteServerTimeout => "remote-server-timeout",
            Self::ResourceConstraint => "resource-constraint",
            Self::ServiceUnavailable => "service-unavailable",
            Self::SubscriptionRequired => "subscription-required",
            Self::UndefinedCondition => "undefined-condition",
            Self::UnexpectedRequest => "unexpected-request",
        }
    }

    /// Looks a condition up by element name. `None` for an unknown name, which the caller treats as
    /// [`StanzaCondition::UndefinedCondition`] (RFC 6120 §8.3.2).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// The error type RFC 6120 §8.3.3 says the condition SHOULD carry.
    ///
    /// Choice: where RFC 6120 offers two types we take the first it names (feature-not-implemented: cancel,
    /// policy-violation: modify, unexpected-request: wait). It allows any type for undefined-condition; we use
    /// cancel, because a client that does not know what went wrong should not retry blindly.
    pub fn default_type(self) -> StanzaErrorType {
        use StanzaErrorType::{Auth, Cancel, Modify, Wait};
        match self {
            Self::BadRequest => Modify,
            Self::Conflict => Cancel,
            Self::FeatureNotImplemented => Cancel,
            Self::Forbidden => Auth,
            Self::Gone => Cancel,
            Self::InternalServerError => Cancel,
            Self::ItemNotFound => Cancel,
            Self::JidMalformed => Modify,
            Self::NotAcceptable => Modify,
            Self::NotAllowed => Cancel,
            Self::NotAuthorized => Auth,
            Self::PolicyViolation => Modify,
            Self::RecipientUnavailable => Wait,
            Self::Redirect => Modify,
            Self::RegistrationRequired => Auth,
            Self::RemoteServerNotFound => Cancel,
            Self::RemoteServerTimeout => Wait,
            Self::ResourceConstraint => Wait,
            Self::ServiceUnavailable => Cancel,
            Self::SubscriptionRequired => Auth,
            Self::UndefinedCondition => Cancel,
            Self::UnexpectedRequest => Wait,
        }
    }
}

impl fmt::Display for StanzaCondition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The SIP response code for an XMPP error (RFC 7247 §7.1, Table 2).
///
/// `target_is_full_jid` says whether the stanza that failed was addressed to a full JID (one client session):
/// where Table 2 gives two codes, a full JID gets the 4xx and a bare JID the 6xx (notes 1 and 2), because SIP
/// 6xx means "fails at every device of this user". `has_new_address` says whether `<gone/>` carried the new
/// address as character data (note 3); it is ignored for every other condition.
///
/// Choices where Table 2 leaves one:
/// - `service-unavailable` → **403**. Note 5 rules out 503 (in SIP it stops all traffic to the whole server)
///   and names 403 and 405 as closest. 405 promises the method is unsupported and MUST carry an `Allow` header
///   (RFC 3261 §21.4.6), which would be false for MESSAGE and SUBSCRIBE, which the far side does support;
///   XMPP servers send service-unavailable mostly to refuse without revealing whether the account exists
///   (RFC 6121 §8.5.2), which is what 403 says ("do not repeat").
/// - `remote-server-not-found` → **404**. Note 4 gives 404 for "does not exist" and 408 for "cannot be
///   resolved or reached", but the XMPP error does not say which, and 404 does not invite the retry 408 does.
/// - `unexpected-request` → **400**. Table 2 offers 491 or 400; 491 (Request Pending) is about a competing
///   re-INVITE in the same dialog (RFC 3261 §14.2), which never applies to the out-of-dialog MESSAGE and
///   SUBSCRIBE we send, and makes SIP UAs retry after a random delay.
///
/// A 405 (feature-not-implemented to a full JID) needs an `Allow` header; the SIP side adds it.
pub fn xmpp_to_sip(
    condition: StanzaCondition,
    target_is_full_jid: bool,
    has_new_address: bool,
) -> u16 {
    let (full, bare) = match condition {
        StanzaCondition::BadRequest => (400, 400),
        StanzaCondition::Conflict => (400, 400),
        StanzaCondition::FeatureNotImplemented => (405, 501),
        StanzaCondition::Forbidden => (403, 603),
        StanzaCondition::Gone => {
            let code = if has_new_address { 301 } else { 410 };
            (code, code)
        }
        StanzaCondition::InternalServerError => (500, 500),
        StanzaCondition::ItemNotFound => (404, 604),
        StanzaCondition::JidMalformed => (400, 400),
        StanzaCondition::NotAcceptable => (406, 606),
        StanzaCondition::NotAllowed => (403, 403),
        StanzaCondition::NotAuthorized => (401, 401),
        StanzaCondition::PolicyViolation => (403, 403),
        StanzaCondition::RecipientUnavailable => (480, 600),
        StanzaCondition::Redirect => (302, 302),
        StanzaCondition::RegistrationRequired => (407, 407),
        StanzaCondition::RemoteServerNotFound => (404, 404),
        StanzaCondition::RemoteServerTimeout => (408, 408),
        StanzaCondition::ResourceConstraint => (500, 500),
        StanzaCondition::ServiceUnavailable => (403, 403),
        StanzaCondition::SubscriptionRequired => (400, 400),
        StanzaCondition::UndefinedCondition => (400, 400),
        StanzaCondition::UnexpectedRequest => (400, 400),
    };
    if target_is_full_jid { full } else { bare }
}

/// The XMPP error condition for a SIP failure response (RFC 7247 §7.2, Table 3).
///
/// Codes Table 3 does not list get their class default: 3xx → redirect, 4xx → bad-request,
/// 5xx → internal-server-error, 6xx → recipient-unavailable.
///
/// - 301 and 410 both give `gone`; for 301 the caller puts the `Contact` in `<gone/>` (Table 3 note 1), for
///   410 it MUST NOT. 3xx `redirect` likewise carries the `Contact`.
/// - Choice: for 403, 404 and 408 Table 3 notes alternatives (not-allowed or policy-violation,
///   remote-server-not-found, remote-server-not-found); we use the primary entries, since a SIP response does
///   not say which scenario applies.
/// - The SIP Reason-Phrase goes in `<text/>` (RFC 7247 §7); that is the caller's job.
/// - Codes outside 300–699 are not failures (1xx, 2xx) or not SIP (RFC 3261 §7.2 allows only 100–699). They
///   should never reach this function; if they do, the gateway failed to handle them, so the answer is
///   internal-server-error.
pub fn sip_to_xmpp(code: u16) -> StanzaCondition {
    table_3(code).unwrap_or_else(|| class_default(code))
}

/// The rows of RFC 7247 Table 3 that name a single code.
fn table_3(code: u16) -> Option<StanzaCondition> {
    use StanzaCondition as C;
    Some(match code {
        300 => C::Redirect,
        301 => C::Gone,
        302 => C::Redirect,
        305 => C::Redirect,
        380 => C::NotAcceptable,
        400 => C::BadRequest,
        401 => C::NotAuthorized,
        // RFC 6120 removed payment-required, so Table 3 note 2 falls back to bad-request.
        402 => C::BadRequest,
        403 => C::Forbidden,
        404 => C::ItemNotFound,
        405 => C::FeatureNotImplemented,
        406 => C::NotAcceptable,
        407 => C::RegistrationRequired,
        408 => C::RemoteServerTimeout,
        410 => C::Gone,
        413 => C::PolicyViolation,
        414 => C::PolicyViolation,
        415 => C::NotAcceptable,
        416 => C::NotAcceptable,
        420 => C::FeatureNotImplemented,
        421 => C::NotAcceptable,
        423 => C::ResourceConstraint,
        430 => C::RecipientUnavailable,
        439 => C::FeatureNotImplemented,
        440 => C::PolicyViolation,
        480 => C::RecipientUnavailable,
        481 => C::ItemNotFound,
        482 => C::NotAcceptable,
        483 => C::NotAcceptable,
        484 => C::ItemNotFound,
        485 => C::ItemNotFound,
        486 => C::RecipientUnavailable,
        487 => C::RecipientUnavailable,
        488 => C::NotAcceptable,
        489 => C::PolicyViolation,
        491 => C::UnexpectedRequest,
        493 => C::BadRequest,
        500 => C::InternalServerError,
        501 => C::FeatureNotImplemented,
        502 => C::RemoteServerNotFound,
        // Table 3 note 9: SIP 503 is about the server, not the user, so it is not service-unavailable.
        503 => C::InternalServerError,
        504 => C::RemoteServerTimeout,
        505 => C::NotAcceptable,
        513 => C::PolicyViolation,
        600 => C::RecipientUnavailable,
        603 => C::RecipientUnavailable,
        604 => C::ItemNotFound,
        606 => C::NotAcceptable,
        _ => return None,
    })
}

/// RFC 7247 §7.2's defaults for codes Table 3 does not list.
fn class_default(code: u16) -> StanzaCondition {
    match code / 100 {
        3 => StanzaCondition::Redirect,
        4 => StanzaCondition::BadRequest,
        5 => StanzaCondition::InternalServerError,
        6 => StanzaCondition::RecipientUnavailable,
        _ => StanzaCondition::InternalServerError,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use StanzaCondition as C;

    #[test]
    fn names_round_trip() {
        for condition in C::ALL {
            assert_eq!(C::from_name(condition.as_str()), Some(condition));
            assert_eq!(condition.to_string(), condition.as_str());
        }
        assert_eq!(C::from_name("payment-required"), None);
        assert_eq!(C::from_name("Bad-Request"), None);
        let mut names: Vec<_> = C::ALL.iter().map(|c| c.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), 22);
    }

    /// RFC 6120 §8.3.3, one row per condition.
    #[test]
    fn default_types() {
        use StanzaErrorType::*;
        let table = [
            (C::BadRequest, Modify),
            (C::Conflict, Cancel),
            (C::FeatureNotImplemented, Cancel),
            (C::Forbidden, Auth),
            (C::Gone, Cancel),
            (C::InternalServerError, Cancel),
            (C::ItemNotFound, Cancel),
            (C::JidMalformed, Modify),
            (C::NotAcceptable, Modify),
            (C::NotAllowed, Cancel),
            (C::NotAuthorized, Auth),
            (C::PolicyViolation, Modify),
            (C::RecipientUnavailable, Wait),
            (C::Redirect, Modify),
            (C::RegistrationRequired, Auth),
            (C::RemoteServerNotFound, Cancel),
            (C::RemoteServerTimeout, Wait),
            (C::ResourceConstraint, Wait),
            (C::ServiceUnavailable, Cancel),
            (C::SubscriptionRequired, Auth),
            (C::UndefinedCondition, Cancel),
            (C::UnexpectedRequest, Wait),
        ];
        assert_eq!(table.map(|(c, _)| c), C::ALL);
        for (condition, error_type) in table {
            assert_eq!(condition.default_type(), error_type, "{condition}");
        }
        for t in [Auth, Cancel, Continue, Modify, Wait] {
            assert_eq!(StanzaErrorType::from_name(t.as_str()), Some(t));
        }
        assert_eq!(StanzaErrorType::from_name("Wait"), None);
    }

    /// RFC 7247 Table 2, every row, as (condition, full JID, bare JID, with a new address).
    #[test]
    fn table_2_xmpp_to_sip() {
        let table: [(C, u16, u16); 22] = [
            (C::BadRequest, 400, 400),
            (C::Conflict, 400, 400),
            (C::FeatureNotImplemented, 405, 501),
            (C::Forbidden, 403, 603),
            (C::Gone, 410, 410),
            (C::InternalServerError, 500, 500),
            (C::ItemNotFound, 404, 604),
            (C::JidMalformed, 400, 400),
            (C::NotAcceptable, 406, 606),
            (C::NotAllowed, 403, 403),
            (C::NotAuthorized, 401, 401),
            (C::PolicyViolation, 403, 403),
            (C::RecipientUnavailable, 480, 600),
            (C::Redirect, 302, 302),
            (C::RegistrationRequired, 407, 407),
            (C::RemoteServerNotFound, 404, 404),
            (C::RemoteServerTimeout, 408, 408),
            (C::ResourceConstraint, 500, 500),
            (C::ServiceUnavailable, 403, 403),
            (C::SubscriptionRequired, 400, 400),
            (C::UndefinedCondition, 400, 400),
            (C::UnexpectedRequest, 400, 400),
        ];
        assert_eq!(table.map(|(c, ..)| c), C::ALL);
        for (condition, full, bare) in table {
            assert_eq!(
                xmpp_to_sip(condition, true, false),
                full,
                "{condition} full"
            );
            assert_eq!(
                xmpp_to_sip(condition, false, false),
                bare,
                "{condition} bare"
            );
            if condition != C::Gone {
                assert_eq!(
                    xmpp_to_sip(condition, true, true),
                    full,
                    "{condition} full, address"
                );
                assert_eq!(
                    xmpp_to_sip(condition, false, true),
                    bare,
                    "{condition} bare, address"
                );
            }
        }
        assert_eq!(xmpp_to_sip(C::Gone, true, true), 301);
        assert_eq!(xmpp_to_sip(C::Gone, false, true), 301);
        for full in [true, false] {
            assert_ne!(xmpp_to_sip(C::ServiceUnavailable, full, false), 503);
        }
    }

    /// RFC 7247 Table 3, every row.
    const TABLE_3: [(u16, C); 48] = [
        (300, C::Redirect),
        (301, C::Gone),
        (302, C::Redirect),
        (305, C::Redirect),
        (380, C::NotAcceptable),
        (400, C::BadRequest),
        (401, C::NotAuthorized),
        (402, C::BadRequest),
        (403, C::Forbidden),
        (404, C::ItemNotFound),
        (405, C::FeatureNotImplemented),
        (406, C::NotAcceptable),
        (407, C::RegistrationRequired),
        (408, C::RemoteServerTimeout),
        (410, C::Gone),
        (413, C::PolicyViolation),
        (414, C::PolicyViolation),
        (415, C::NotAcceptable),
        (416, C::NotAcceptable),
        (420, C::FeatureNotImplemented),
        (421, C::NotAcceptable),
        (423, C::ResourceConstraint),
        (430, C::RecipientUnavailable),
        (439, C::FeatureNotImplemented),
        (440, C::PolicyViolation),
        (480, C::RecipientUnavailable),
        (481, C::ItemNotFound),
        (482, C::NotAcceptable),
        (483, C::NotAcceptable),
        (484, C::ItemNotFound),
        (485, C::ItemNotFound),
        (486, C::RecipientUnavailable),
        (487, C::RecipientUnavailable),
        (488, C::NotAcceptable),
        (489, C::PolicyViolation),
        (491, C::UnexpectedRequest),
        (493, C::BadRequest),
        (500, C::InternalServerError),
        (501, C::FeatureNotImplemented),
        (502, C::RemoteServerNotFound),
        (503, C::InternalServerError),
        (504, C::RemoteServerTimeout),
        (505, C::NotAcceptable),
        (513, C::PolicyViolation),
        (600, C::RecipientUnavailable),
        (603, C::RecipientUnavailable),
        (604, C::ItemNotFound),
        (606, C::NotAcceptable),
    ];

    #[test]
    fn table_3_sip_to_xmpp() {
        for (code, condition) in TABLE_3 {
            assert_eq!(sip_to_xmpp(code), condition, "{code}");
        }
    }

    #[test]
    fn class_defaults_for_unlisted_codes() {
        let listed: Vec<u16> = TABLE_3.iter().map(|(code, _)| *code).collect();
        for code in 300..=699 {
            if listed.contains(&code) {
                continue;
            }
            let expected = match code / 100 {
                3 => C::Redirect,
                4 => C::BadRequest,
                5 => C::InternalServerError,
                _ => C::RecipientUnavailable,
            };
            assert_eq!(sip_to_xmpp(code), expected, "{code}");
        }
        for (code, condition) in [
            (399, C::Redirect),
            (409, C::BadRequest),
            (422, C::BadRequest),
            (494, C::BadRequest),
            (499, C::BadRequest),
            (580, C::InternalServerError),
            (599, C::InternalServerError),
            (607, C::RecipientUnavailable),
            (699, C::RecipientUnavailable),
        ] {
            assert_eq!(sip_to_xmpp(code), condition, "{code}");
        }
    }

    #[test]
    fn non_failure_codes_are_internal_errors() {
        for code in [0, 100, 180, 200, 202, 299, 700, 999, u16::MAX] {
            assert_eq!(sip_to_xmpp(code), C::InternalServerError, "{code}");
        }
    }
}
