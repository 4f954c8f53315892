//! Mapping between SIP URIs and JIDs (RFC 7247 §6), with XEP-0106 escaping for the JID local part.
//!
//! The two directions are exact inverses on everything they accept: `sip_to_jid(jid_to_sip(j)) == j` for every
//! JID that `jid_to_sip` maps, and `jid_to_sip(sip_to_jid(u))` names the same user as `u` (same percent-decoded
//! user part, lower-cased, and the same `gr`). Anything that would break that is refused rather than mapped
//! approximately, because a reply to an approximate address reaches a different account.

use crate::address::{AddressError, Domain, Jid};
use crate::sip_uri::{
    self, Scheme, SipUri, SipUriError, is_param_byte, is_user_byte, percent_decode,
    percent_encode_into,
};

/// Why an address cannot be mapped to the other protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressMapError {
    /// A `sips:` URI asks for TLS on every hop, which XMPP cannot promise (RFC 7247 §9).
    #[error("sips: URIs are never mapped into XMPP (RFC 7247 §9)")]
    Sips,
    /// The URI carries a password (RFC 3261 §19.1.1 advises against it); mapping it would silently drop it.
    #[error("SIP URI carries a password")]
    Password,
    /// The percent-decoded user part or `gr` value is not UTF-8 (RFC 7247 §6.4 step 4).
    #[error("percent-decoded {0} is not UTF-8")]
    NotUtf8(&'static str),
    /// `;gr` without a value marks a temporary GRUU, which RFC 7247 §6.3 excludes from the mapping.
    #[error("temporary GRUU (gr without a value) cannot be mapped (RFC 7247 §6.3)")]
    TemporaryGruu,
    /// The local part would begin or end with a space, which XEP-0106 §4 (rule 6) forbids as `\20`.
    #[error("local part begins or ends with a space")]
    EdgeSpace,
    /// The JID local part is not what XEP-0106 escaping produces for any text (for example `a\5c`, which
    /// unescapes to `a\`, which escapes back to `a\`), so no SIP user part maps back to it.
    #[error("JID local part {0:?} is not in XEP-0106 canonical form")]
    NonCanonicalEscape(String),
    /// The JID domain cannot be a SIP host: a non-ASCII (IDN) name, or a character such as `_`. RFC 7247 §6.1
    /// leaves domain mapping out of scope, so we do not convert.
    #[error("domain {0} cannot be the host of a SIP URI")]
    DomainNotSipHost(Domain),
    /// The result is not a valid JID (too long, a control character, a disallowed domain, ...).
    #[error(transparent)]
    Jid(#[from] AddressError),
    /// The result is not a valid SIP URI (longer than [`crate::MAX_SIP_URI`] once percent-encoded).
    #[error(transparent)]
    Uri(#[from] SipUriError),
}

/// XEP-0106 §3.2 escapes. Case is significant: only these lower-case forms are escapes.
const ESCAPES: [(char, &str); 10] = [
    (' ', "20"),
    ('"', "22"),
    ('&', "26"),
    ('\'', "27"),
    ('/', "2f"),
    (':', "3a"),
    ('<', "3c"),
    ('>', "3e"),
    ('@', "40"),
    ('\\', "5c"),
];

fn escape_code(ch: char) -> Option<&'static str> {
    ESCAPES
        .iter()
        .find(|(c, _)| *c == ch)
        .map(|(_, code)| *code)
}

fn unescaped_char(code: &str) -> Option<char> {
    ESCAPES.iter().find(|(_, c)| *c == code).map(|(ch, _)| *ch)
}

/// Whether `rest` (the text after a backslash) starts with the two hex digits of one of the XEP-0106 escapes.
fn starts_with_escape(rest: &str) -> bool {
    rest.get(..2).and_then(unescaped_char).is_some()
}

/// Escapes a decoded local part for use in a JID (XEP-0106 §5.2 "Address Transformation Algorithm").
///
/// Escapes the nine characters XMPP forbids in a local part, and a backslash only where it starts a sequence
/// that would otherwise read as an escape (XEP-0106 §5.3): `c:\5commas` becomes `c\3a\5c5commas`, while
/// `foo\bar` stays as is.
pub fn escape_localpart(text: &str) -> Result<String, AddressMapError> {
    if text.starts_with(' ') || text.ends_with(' ') {
        return Err(AddressMapError::EdgeSpace);
    }
    let mut out = String::with_capacity(text.len());
    for (i, ch) in text.char_indices() {
        let code = match ch {
            '\\' if starts_with_escape(&text[i + 1..]) => Some("5c"),
            '\\' => None,
            _ => escape_code(ch),
        };
        match code {
            Some(code) => {
                out.push('\\');
                out.push_str(code);
            }
            None => out.push(ch),
        }
    }
    Ok(out)
}

/// Reverses [`escape_localpart`]: replaces each of the ten XEP-0106 escape sequences, and nothing else
/// (XEP-0106 §5.1 rule 3: `\2plus` and `foob\41r` are left alone).
pub fn unescape_localpart(local: &str) -> String {
    let mut out = String::with_capacity(local.len());
    let mut rest = local;
    while let Some(at) = rest.find('\\') {
        out.push_str(&rest[..at]);
        let after = &rest[at + 1..];
        match after.get(..2).and_then(unescaped_char) {
            Some(ch) => {
                out.push(ch);
                rest = &after[2..];
            }
            None => {
                out.push('\\');
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// Maps a SIP URI to a JID (RFC 7247 §6.4).
///
/// - `sips:` is refused (RFC 7247 §9), as is a URI with a password.
/// - The user part is percent-decoded and must be UTF-8 (steps 3 and 4), then lower-cased and XEP-0106
///   escaped (step 5): `sip:o'malley@example.com` becomes `o\27malley@example.com`. Lower-casing is the
///   optional canonicalisation of step 6; doing it before escaping stops `\2F` from turning into the escape
///   `\2f` when the JID is normalised.
/// - The host becomes the domain unchanged apart from case (RFC 7247 §6.1 leaves domain mapping out of scope).
///   The port, the URI headers and every parameter except `gr` are dropped.
/// - A `gr` value is percent-decoded and becomes the resource (step 8, §6.3). A `;gr` without a value is a
///   temporary GRUU and is refused.
pub fn sip_to_jid(uri: &SipUri) -> Result<Jid, AddressMapError> {
    if uri.scheme() == Scheme::Sips {
        return Err(AddressMapError::Sips);
    }
    if uri.password().is_some() {
        return Err(AddressMapError::Password);
    }
    let local = uri
        .user_decoded()
        .map_err(|_| AddressMapError::NotUtf8("user part"))?
        .map(|user| escape_localpart(&user.to_lowercase()))
        .transpose()?;
    let resource = match uri.param("gr") {
        None => None,
        Some(None) => return Err(AddressMapError::TemporaryGruu),
        Some(Some(gruu)) => Some(
            String::from_utf8(percent_decode(gruu))
                .map_err(|_| AddressMapError::NotUtf8("gr parameter"))?,
        ),
    };
    let domain = Domain::parse(uri.host())?;
    Ok(Jid::new(local.as_deref(), domain, resource.as_deref())?)
}

/// Maps a JID to a `sip:` URI (RFC 7247 §6.5).
///
/// - The local part is XEP-0106 unescaped (step 3), then every byte that RFC 3261 §25.1 does not allow bare in
///   a `user` (anything but `unreserved` and `& = + $ , ; ? /`, so including all non-ASCII) is percent-encoded
///   (step 5): `o\27malley@example.com` becomes `sip:o'malley@example.com`, `tschüss@example.com` becomes
///   `sip:tsch%C3%BCss@example.com`.
/// - The domain becomes the host; it must already be a valid SIP host (no IDN conversion, RFC 7247 §6.1).
/// - The resource becomes `;gr=` with every byte outside `paramchar` percent-encoded (step 8).
///
/// The scheme is always `sip:`: RFC 7247 §6.5 step 7 leaves `sip:` versus `sips:` to local policy, and `sips:`
/// would promise TLS on hops beyond our own.
pub fn jid_to_sip(jid: &Jid) -> Result<SipUri, AddressMapError> {
    let host = sip_uri::parse_host(jid.domain().as_str())
        .map_err(|_| AddressMapError::DomainNotSipHost(jid.domain().clone()))?;
    let mut text = String::from("sip:");
    if let Some(local) = jid.local() {
        let user = unescape_localpart(local);
        if escape_localpart(&user).ok().as_deref() != Some(local) {
            return Err(AddressMapError::NonCanonicalEscape(local.to_owned()));
        }
        percent_encode_into(&user, is_user_byte, &mut text);
        text.push('@');
    }
    text.push_str(&host);
    if let Some(resource) = jid.resource() {
        text.push_str(";gr=");
        percent_encode_into(resource, is_param_byte, &mut text);
    }
    Ok(SipUri::parse(&text)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jid(text: &str) -> Jid {
        Jid::parse(text).unwrap()
    }

    fn uri(text: &str) -> SipUri {
        SipUri::parse(text).unwrap()
    }

    /// XEP-0106 §6.1 "JID Examples", as (user input, escaped local part).
    const XEP_0106_EXAMPLES: [(&str, &str); 12] = [
        ("space cadet", r"space\20cadet"),
        (r#"call me "ishmael""#, r"call\20me\20\22ishmael\22"),
        ("at&t guy", r"at\26t\20guy"),
        ("d'artagnan", r"d\27artagnan"),
        ("/.fanboy", r"\2f.fanboy"),
        ("::foo::", r"\3a\3afoo\3a\3a"),
        ("<foo>", r"\3cfoo\3e"),
        ("user@host", r"user\40host"),
        (r"c:\net", r"c\3a\net"),
        (r"c:\\net", r"c\3a\\net"),
        (r"c:\cool stuff", r"c\3a\cool\20stuff"),
        (r"c:\5commas", r"c\3a\5c5commas"),
    ];

    #[test]
    fn xep_0106_examples_both_ways() {
        for (input, escaped) in XEP_0106_EXAMPLES {
            assert_eq!(escape_localpart(input).unwrap(), escaped, "{input}");
            assert_eq!(unescape_localpart(escaped), input, "{escaped}");
        }
    }

    #[test]
    fn xep_0106_exceptions_are_left_alone() {
        for text in [
            r"\2plus\2is\4",
            r"foo\bar",
            r"foob\41r",
            r"\2F",
            r"trailing\",
        ] {
            assert_eq!(unescape_localpart(text), text);
            assert_eq!(escape_localpart(text).unwrap(), text);
        }
        assert_eq!(escape_localpart(" a"), Err(AddressMapError::EdgeSpace));
        assert_eq!(escape_localpart("a "), Err(AddressMapError::EdgeSpace));
    }

    /// RFC 7247 §6.4 and §6.5 examples, plus the XEP-0106 §6.3 SIP example, as (SIP URI, JID) pairs that map
    /// to each other in both directions.
    const BOTH_WAYS: [(&str, &str); 11] = [
        ("sip:f%C3%BC@sip.example", "f\u{fc}@sip.example"),
        ("sip:o'malley@sip.example", r"o\27malley@sip.example"),
        ("sip:foo@sip.example;gr=bar", "foo@sip.example/bar"),
        ("sip:m&m@xmpp.example", r"m\26m@xmpp.example"),
        ("sip:tsch%C3%BCss@xmpp.example", "tsch\u{fc}ss@xmpp.example"),
        ("sip:baz@xmpp.example;gr=qux", "baz@xmpp.example/qux"),
        (
            "sip:here's_a_wild_&_/cr%25zy/_address@example.com",
            r"here\27s_a_wild_\26_\2fcr%zy\2f_address@example.com",
        ),
        ("sip:example.com", "example.com"),
        ("sip:%5C27@example.com", r"\5c27@example.com"),
        ("sip:a@example.com;gr=r%3Be", "a@example.com/r;e"),
        (
            "sip:a%20b%22%3A%3C%3E%5C27@example.com;gr=/%40x%20y%C3%A9",
            "a\\20b\\22\\3a\\3c\\3e\\5c27@example.com//@x y\u{e9}",
        ),
    ];

    #[test]
    fn rfc_7247_examples_both_ways() {
        for (sip, xmpp) in BOTH_WAYS {
            assert_eq!(sip_to_jid(&uri(sip)).unwrap(), jid(xmpp), "{sip}");
            assert_eq!(jid_to_sip(&jid(xmpp)).unwrap(), uri(sip), "{xmpp}");
        }
    }

    #[test]
    fn sip_to_jid_normalises() {
        let cases = [
            // Over-escaped or differently escaped user parts decode to the same user.
            ("sip:o%27malley@sip.example", r"o\27malley@sip.example"),
            (
                "sip:here%27s_a_wild_%26_%2Fcr%25zy%2F_address@example.com",
                r"here\27s_a_wild_\26_\2fcr%zy\2f_address@example.com",
            ),
            // JID local parts are case-insensitive; lower-casing comes before escaping.
            ("sip:Romeo@Example.NET", "romeo@example.net"),
            (r"sip:%5C2F@example.net", r"\5c2f@example.net"),
            // Port, other parameters and headers carry nothing an XMPP address can hold.
            (
                "sip:a@example.net:5070;transport=tls;user=phone?subject=x",
                "a@example.net",
            ),
            (
                "sip:+15551234@example.net;user=phone",
                "+15551234@example.net",
            ),
            ("sip:a@192.0.2.1", "a@192.0.2.1"),
            ("sip:a@[2001:db8::1]", "a@[2001:db8::1]"),
            ("sip:a@example.net.", "a@example.net"),
            (
                "sip:a@example.net;GR=urn:uuid:f81d4fae",
                "a@example.net/urn:uuid:f81d4fae",
            ),
        ];
        for (sip, xmpp) in cases {
            assert_eq!(sip_to_jid(&uri(sip)).unwrap(), jid(xmpp), "{sip}");
        }
    }

    #[test]
    fn sip_to_jid_refusals() {
        let cases = [
            ("sips:romeo@example.net", AddressMapError::Sips),
            ("sip:romeo:secret@example.net", AddressMapError::Password),
            ("sip:%FF@example.net", AddressMapError::NotUtf8("user part")),
            (
                "sip:a@example.net;gr=%C3",
                AddressMapError::NotUtf8("gr parameter"),
            ),
            ("sip:a@example.net;gr", AddressMapError::TemporaryGruu),
            ("sip:%20a@example.net", AddressMapError::EdgeSpace),
            ("sip:a%20@example.net", AddressMapError::EdgeSpace),
            (
                "sip:a%09b@example.net",
                AddressMapError::Jid(AddressError::BadLocalChar('\t')),
            ),
            (
                "sip:a%00@example.net",
                AddressMapError::Jid(AddressError::BadLocalChar('\0')),
            ),
            (
                "sip:a%C2%A0b@example.net",
                AddressMapError::Jid(AddressError::BadLocalChar('\u{a0}')),
            ),
        ];
        for (sip, error) in cases {
            assert_eq!(sip_to_jid(&uri(sip)), Err(error), "{sip}");
        }
        let long = format!("sip:{}@example.net", "a".repeat(1024));
        assert_eq!(
            sip_to_jid(&uri(&long)),
            Err(AddressMapError::Jid(AddressError::PartTooLong(
                "local part"
            )))
        );
    }

    #[test]
    fn jid_to_sip_encodes_everything_sip_forbids() {
        let cases = [
            // RFC 7247 §6.5 step 5's set, plus the characters XEP-0106 unescapes that SIP also forbids.
            (
                r"#%[\]^`{|}@example.com",
                r"sip:%23%25%5B%5C%5D%5E%60%7B%7C%7D@example.com",
            ),
            (
                r"a\20b\22\3a\3c\3e\40@example.com",
                "sip:a%20b%22%3A%3C%3E%40@example.com",
            ),
            // user-unreserved and mark characters stay bare.
            (
                "!$()*+,-.;=?_~@example.com",
                "sip:!$()*+,-.;=?_~@example.com",
            ),
            (
                "a@example.com/r;e=s?o u\u{263a}",
                "sip:a@example.com;gr=r%3Be%3Ds%3Fo%20u%E2%98%BA",
            ),
            ("example.com/[x]:&+$", "sip:example.com;gr=[x]:&+$"),
            ("a@[2001:DB8:0::1]", "sip:a@[2001:db8::1]"),
        ];
        for (xmpp, sip) in cases {
            assert_eq!(jid_to_sip(&jid(xmpp)).unwrap().to_string(), sip, "{xmpp}");
        }
    }

    #[test]
    fn jid_to_sip_refusals() {
        let idn = jid("a@b\u{fc}cher.example");
        assert_eq!(
            jid_to_sip(&idn),
            Err(AddressMapError::DomainNotSipHost(idn.domain().clone()))
        );
        let underscore = jid("a@under_score.example");
        assert!(matches!(
            jid_to_sip(&underscore),
            Err(AddressMapError::DomainNotSipHost(_))
        ));
        // A port-like suffix must not be read as a SIP port.
        assert!(matches!(
            jid_to_sip(&jid("a@example.com:5060")),
            Err(AddressMapError::DomainNotSipHost(_))
        ));
        for local in [r"a\5c", r"\20a", r"a\20"] {
            assert_eq!(
                jid_to_sip(&jid(&format!("{local}@example.com"))),
                Err(AddressMapError::NonCanonicalEscape(local.to_owned())),
                "{local}"
            );
        }
        // 1000 non-ASCII bytes become 3000 bytes of escapes: over the URI length cap.
        let long = jid(&format!("{}@example.com", "\u{e9}".repeat(500)));
        assert!(matches!(
            jid_to_sip(&long),
            Err(AddressMapError::Uri(SipUriError::TooLong(_)))
        ));
    }

    mod properties {
        use super::*;
        use proptest::prelude::*;

        /// Text built from the characters that matter to the mapping: every XEP-0106 special, backslashes
        /// followed by hex digits, SIP's reserved characters, and some non-ASCII (including upper case).
        fn tricky_text() -> impl Strategy<Value = String> {
            prop::collection::vec(
                prop_oneof![
                    prop::sample::select(vec![
                        " ",
                        "\"",
                        "&",
                        "'",
                        "/",
                        ":",
                        "<",
                        ">",
                        "@",
                        "\\",
                        "%",
                        "#",
                        ";",
                        "?",
                        "=",
                        "[",
                        "]",
                        "{",
                        "}",
                        "|",
                        "^",
                        "`",
                        "+",
                        "$",
                        ",",
                        "!",
                        "~",
                        "*",
                        "(",
                        ")",
                        "\\5c",
                        "\\27",
                        "\\2f",
                        "\\2F",
                        "\\20",
                        "\\41",
                        "\u{fc}",
                        "\u{c9}",
                        "\u{3a3}",
                        "\u{263a}",
                        "\u{1f600}",
                        "-",
                        ".",
                        "_",
                    ])
                    .prop_map(str::to_owned),
                    "[a-zA-Z0-9]{1,3}",
                ],
                1..12,
            )
            .prop_map(|pieces| pieces.concat())
        }

        fn domain() -> impl Strategy<Value = String> {
            "[a-z][a-z0-9-]{0,8}[a-z0-9](\\.[a-z]{2,6}){1,2}"
        }

        proptest! {
            /// SIP → XMPP → SIP names the same (lower-cased) user, host and GRUU.
            #[test]
            fn sip_jid_sip(user in tricky_text(), host in domain(), gr in proptest::option::of(tricky_text())) {
                let user = user.trim_matches(' ');
                prop_assume!(!user.is_empty());
                let mut text = String::from("sip:");
                percent_encode_into(user, is_user_byte, &mut text);
                text.push('@');
                text.push_str(&host);
                if let Some(gr) = &gr {
                    text.push_str(";gr=");
                    percent_encode_into(gr, is_param_byte, &mut text);
                }
                let original = SipUri::parse(&text).unwrap();
                let mapped = sip_to_jid(&original).unwrap();
                let back = jid_to_sip(&mapped).unwrap();
                prop_assert_eq!(back.user_decoded().unwrap(), Some(user.to_lowercase()));
                prop_assert_eq!(back.host(), original.host());
                let gr_back = back.param("gr").map(|v| String::from_utf8(percent_decode(v.unwrap())).unwrap());
                prop_assert_eq!(gr_back, gr);
                // And the second trip is exact.
                prop_assert_eq!(sip_to_jid(&back).unwrap(), mapped);
            }

            /// XMPP → SIP → XMPP gives back the same JID, for every JID that is the escaped form of some text.
            #[test]
            fn jid_sip_jid(local in proptest::option::of(tricky_text()), host in domain(), resource in proptest::option::of(tricky_text())) {
                let local = match local {
                    Some(text) => {
                        let text = text.trim_matches(' ').to_lowercase();
                        prop_assume!(!text.is_empty());
                        Some(escape_localpart(&text).unwrap())
                    }
                    None => None,
                };
                let original = Jid::new(local.as_deref(), Domain::parse(&host).unwrap(), resource.as_deref()).unwrap();
                let sip = jid_to_sip(&original).unwrap();
                prop_assert_eq!(SipUri::parse(&sip.to_string()).unwrap(), sip.clone());
                prop_assert_eq!(sip_to_jid(&sip).unwrap(), original);
            }

            /// Unescaping undoes escaping for any text, not only the tricky alphabet.
            #[test]
            fn unescape_inverts_escape(text in "\\PC{1,40}") {
                if let Ok(escaped) = escape_localpart(&text) {
                    prop_assert_eq!(unescape_localpart(&escaped), text);
                }
            }

            /// Whatever JID arrives, mapping it either fails cleanly or round-trips.
            #[test]
            fn arbitrary_jids_round_trip_or_refuse(local in "[^@/]{1,20}", resource in proptest::option::of("\\PC{1,20}")) {
                let Ok(original) = Jid::new(Some(&local), Domain::parse("example.com").unwrap(), resource.as_deref()) else {
                    return Ok(());
                };
                if let Ok(sip) = jid_to_sip(&original) {
                    prop_assert_eq!(sip_to_jid(&sip).unwrap(), original);
                }
            }
        }
    }
}
