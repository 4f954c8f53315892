//! Pager-mode instant messages between SIP and XMPP (RFC 7572): a SIP `MESSAGE` request becomes a
//! `<message/>` stanza and back, with addresses mapped per RFC 7247 §6 by the translation core.
//!
//! Pure functions: the caller supplies ids, tags and sequence numbers, and does the I/O.

use sixgate_core::error_map::StanzaCondition;
use sixgate_core::message::{
    call_id_from_thread, content_language_from_xml_lang, exceeds_pager_limit, sip_body_to_text,
    subject_to_sip, text_to_sip_body, thread_from_call_id, xml_lang_from_content_language,
};
use sixgate_core::{AddressMapError, CallId, Jid, SipUri, jid_to_sip, sip_to_jid};
use sixgate_sip::Request;
use sixgate_sip::message::{HeaderName, Method, NameAddr, Uri};
use sixgate_xmpp_proto::xml::{Element, ns};

/// Why a SIP request cannot become a stanza, as the SIP response to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal {
    /// The status code.
    pub(crate) status: u16,
    /// The reason phrase.
    pub(crate) reason: String,
    /// Whether to add `Accept: text/plain` (for 415, RFC 3261 §21.4.13).
    pub(crate) accept_text_plain: bool,
}

impl Refusal {
    fn new(status: u16, reason: impl Into<String>) -> Self {
        Self {
            status,
            reason: reason.into(),
            accept_text_plain: false,
        }
    }
}

/// The JID a SIP URI maps to, or the SIP refusal when it cannot be mapped.
pub(crate) fn jid_of(uri: &Uri, role: &str) -> Result<Jid, Refusal> {
    let parsed = SipUri::parse(uri.as_str())
        .map_err(|_| Refusal::new(416, format!("unsupported {role} URI")))?;
    sip_to_jid(&parsed).map_err(|error| match error {
        // RFC 7247 §9: a SIPS URI must not be mapped into XMPP, which cannot promise TLS end to end.
        AddressMapError::Sips => Refusal::new(416, "sips: URIs are not mapped to XMPP"),
        other => Refusal::new(
            if role == "request" { 404 } else { 403 },
            format!("the {role} address cannot be mapped to XMPP: {other}"),
        ),
    })
}

/// `MESSAGE` → `<message type='normal'/>` (RFC 7572 §5). `id` becomes the stanza id.
pub(crate) fn stanza_from_message(request: &Request, id: &str) -> Result<Element, Refusal> {
    let to = jid_of(&request.uri, "request")?;
    let from = jid_of(&request.from.uri, "From")?;
    let content_type = request
        .headers
        .get(&HeaderName::CONTENT_TYPE)
        .unwrap_or("text/plain");
    let body = sip_body_to_text(content_type, &request.body).map_err(|error| Refusal {
        status: error.sip_status(),
        reason: error.to_string(),
        accept_text_plain: error.sip_status() == 415,
    })?;
    let mut message = Element::new(ns::SERVER, "message")
        .with_attr("from", from.to_string())
        .with_attr("to", to.to_string())
        .with_attr("id", id)
        .with_attr("type", "normal");
    if let Some(lang) = request
        .headers
        .get(&HeaderName::CONTENT_LANGUAGE)
        .and_then(xml_lang_from_content_language)
    {
        message.set_attr_ns(ns::XML, "lang", lang);
    }
    if let Ok(Some(subject)) = request.headers.subject() {
        message.push_child(Element::new(ns::SERVER, "subject").with_text(subject));
    }
    message.push_child(Element::new(ns::SERVER, "body").with_text(body));
    message.push_child(
        Element::new(ns::SERVER, "thread").with_text(thread_from_call_id(&request.call_id)),
    );
    Ok(message)
}

/// Why a stanza cannot become a SIP request, as the stanza error to bounce.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct StanzaRefusal {
    /// The condition.
    pub(crate) condition: StanzaCondition,
    /// What went wrong, for the sender.
    pub(crate) text: String,
}

/// What to make of a `<message/>` for a SIP user.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// Send this `MESSAGE`.
    Message(Box<Request>),
    /// Nothing to send: no body (chat states, receipts) has no SIP equivalent in pager mode.
    Nothing,
}

/// The parts of a `MESSAGE` the caller chooses: the From tag, the CSeq and a Call-ID for messages
/// without a thread.
pub(crate) struct Identifiers<'a> {
    pub(crate) from_tag: &'a str,
    pub(crate) cseq: u32,
    pub(crate) fresh_call_id: &'a CallId,
}

/// `<message/>` → `MESSAGE` (RFC 7572 §4). `body_override` replaces the body (for delivery notices).
pub(crate) fn message_from_stanza(
    stanza: &Element,
    ids: &Identifiers<'_>,
    body_override: Option<&str>,
) -> Result<Outbound, StanzaRefusal> {
    let refuse = |condition, text: String| StanzaRefusal { condition, text };
    let body = match body_override {
        Some(text) => text.to_owned(),
        None => match stanza.child(ns::SERVER, "body") {
            Some(body) => body.text(),
            None => return Ok(Outbound::Nothing),
        },
    };
    let address = |attr: &str| -> Result<Uri, StanzaRefusal> {
        let jid = stanza
            .attr(attr)
            .and_then(|text| Jid::parse(text).ok())
            .ok_or_else(|| {
                refuse(
                    StanzaCondition::JidMalformed,
                    format!("invalid {attr} address"),
                )
            })?;
        let uri = jid_to_sip(&jid).map_err(|error| {
            refuse(
                StanzaCondition::JidMalformed,
                format!("the {attr} address cannot be mapped to SIP: {error}"),
            )
        })?;
        Uri::parse(&uri.to_string()).map_err(|_| {
            refuse(
                StanzaCondition::JidMalformed,
                format!("the {attr} address cannot be mapped to SIP"),
            )
        })
    };
    let to = address("to")?;
    let from = address("from")?;
    let call_id = stanza
        .child(ns::SERVER, "thread")
        .map(|thread| call_id_from_thread(&thread.text()))
        .unwrap_or_else(|| ids.fresh_call_id.clone());
    let mut from = NameAddr::new(from);
    from.params
        .set("tag", Some(ids.from_tag))
        .map_err(|_| refuse(StanzaCondition::InternalServerError, "bad tag".to_owned()))?;
    let mut request = Request::new(
        Method::Message,
        to.clone(),
        from,
        NameAddr::new(to),
        call_id,
        ids.cseq,
    );
    let (content_type, bytes) = text_to_sip_body(&body);
    let internal = |_| {
        refuse(
            StanzaCondition::InternalServerError,
            "cannot build the SIP request".to_owned(),
        )
    };
    request
        .headers
        .set(HeaderName::CONTENT_TYPE, content_type)
        .map_err(internal)?;
    if let Some(language) = stanza
        .attr_ns(ns::XML, "lang")
        .and_then(content_language_from_xml_lang)
    {
        request
            .headers
            .set(HeaderName::CONTENT_LANGUAGE, language)
            .map_err(internal)?;
    }
    if let Some(subject) = stanza.child(ns::SERVER, "subject") {
        request
            .headers
            .set(HeaderName::SUBJECT, subject_to_sip(&subject.text()))
            .map_err(internal)?;
    }
    request.body = bytes;
    // RFC 7572 §6: a MESSAGE over 1300 bytes may not reach its recipient; refuse it with policy-violation
    // rather than risk a silent loss (the Via our transport adds is counted in the margin).
    if exceeds_pager_limit(request.to_bytes().len() + VIA_ALLOWANCE) {
        return Err(refuse(
            StanzaCondition::PolicyViolation,
            "the message is too long for SIP pager mode (RFC 3428 §8: 1300 bytes)".to_owned(),
        ));
    }
    Ok(Outbound::Message(Box::new(request)))
}

/// Room for the `Via` header the transport adds to every request we send.
const VIA_ALLOWANCE: usize = 100;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn message(extra_headers: &str, body: &str) -> Request {
        let text = format!(
            "MESSAGE sip:o%27malley@xmpp.example SIP/2.0\r\n\
             Via: SIP/2.0/TLS edge.corp.example;branch=z9hG4bK776asdhds\r\n\
             Max-Forwards: 69\r\n\
             From: \"Alice\" <sip:alice@corp.example>;tag=1928301774\r\n\
             To: <sip:o%27malley@xmpp.example>\r\n\
             Call-ID: a84b4c76e66710@pc33.corp.example\r\n\
             CSeq: 314159 MESSAGE\r\n\
             {extra_headers}\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        match sixgate_sip::Message::from_bytes(text.as_bytes()).unwrap() {
            sixgate_sip::Message::Request(request) => request,
            sixgate_sip::Message::Response(_) => unreachable!(),
        }
    }

    #[test]
    fn sip_message_becomes_a_stanza() {
        let request = message(
            "Content-Type: text/plain;charset=UTF-8\r\nContent-Language: de\r\nSubject: Gruß\r\n",
            "Grüße <&> 漢字",
        );
        let stanza = stanza_from_message(&request, "m1").unwrap();
        assert_eq!(stanza.attr("to"), Some("o\\27malley@xmpp.example"));
        assert_eq!(stanza.attr("from"), Some("alice@corp.example"));
        assert_eq!(stanza.attr("type"), Some("normal"));
        assert_eq!(stanza.attr("id"), Some("m1"));
        assert_eq!(stanza.attr_ns(ns::XML, "lang"), Some("de"));
        assert_eq!(
            stanza.child(ns::SERVER, "body").unwrap().text(),
            "Grüße <&> 漢字"
        );
        assert_eq!(stanza.child(ns::SERVER, "subject").unwrap().text(), "Gruß");
        assert_eq!(
            stanza.child(ns::SERVER, "thread").unwrap().text(),
            "a84b4c76e66710@pc33.corp.example"
        );
    }

    #[test]
    fn other_content_types_get_415_with_accept() {
        let refusal = stanza_from_message(&message("Content-Type: text/html\r\n", "<b>x</b>"), "m")
            .unwrap_err();
        assert_eq!(refusal.status, 415);
        assert!(refusal.accept_text_plain);
    }

    #[test]
    fn sips_targets_are_not_mapped() {
        let mut request = message("Content-Type: text/plain\r\n", "x");
        request.uri = Uri::parse("sips:bob@xmpp.example").unwrap();
        assert_eq!(stanza_from_message(&request, "m").unwrap_err().status, 416);
    }

    fn ids(call_id: &CallId) -> Identifiers<'_> {
        Identifiers {
            from_tag: "t1",
            cseq: 7,
            fresh_call_id: call_id,
        }
    }

    #[test]
    fn stanza_becomes_a_sip_message() {
        let fresh = CallId::parse("fresh@gw").unwrap();
        let mut stanza = Element::new(ns::SERVER, "message")
            .with_attr("from", "o\\27malley@xmpp.example/phone")
            .with_attr("to", "alice@corp.example")
            .with_attr("type", "chat")
            .with_child(Element::new(ns::SERVER, "subject").with_text("Hi\nthere"))
            .with_child(Element::new(ns::SERVER, "body").with_text("Grüße <&>"))
            .with_child(Element::new(ns::SERVER, "thread").with_text("thread-1"));
        stanza.set_attr_ns(ns::XML, "lang", "de");
        let Outbound::Message(request) = message_from_stanza(&stanza, &ids(&fresh), None).unwrap()
        else {
            panic!("expected a MESSAGE");
        };
        assert_eq!(request.uri.as_str(), "sip:alice@corp.example");
        assert_eq!(
            request.from.uri.as_str(),
            "sip:o'malley@xmpp.example;gr=phone"
        );
        assert_eq!(request.from.tag(), Some("t1"));
        assert_eq!(request.call_id.as_str(), "thread-1");
        assert_eq!(request.cseq.number, 7);
        assert_eq!(
            request.headers.get(&HeaderName::CONTENT_TYPE),
            Some("text/plain;charset=UTF-8")
        );
        assert_eq!(
            request.headers.get(&HeaderName::CONTENT_LANGUAGE),
            Some("de")
        );
        assert_eq!(request.headers.get(&HeaderName::SUBJECT), Some("Hi there"));
        assert_eq!(
            String::from_utf8(request.body.clone()).unwrap(),
            "Grüße <&>"
        );
        // And back: the round trip keeps body, subject and thread.
        let back = stanza_from_message(&request, "x").unwrap();
        assert_eq!(back.child(ns::SERVER, "body").unwrap().text(), "Grüße <&>");
        assert_eq!(back.attr("from"), Some("o\\27malley@xmpp.example/phone"));
    }

    #[test]
    fn bodiless_and_oversized_stanzas() {
        let fresh = CallId::parse("fresh@gw").unwrap();
        let typing = Element::new(ns::SERVER, "message")
            .with_attr("from", "a@xmpp.example")
            .with_attr("to", "alice@corp.example")
            .with_child(Element::new(
                "http://jabber.org/protocol/chatstates",
                "composing",
            ));
        assert!(matches!(
            message_from_stanza(&typing, &ids(&fresh), None).unwrap(),
            Outbound::Nothing
        ));
        let long = Element::new(ns::SERVER, "message")
            .with_attr("from", "a@xmpp.example")
            .with_attr("to", "alice@corp.example")
            .with_child(Element::new(ns::SERVER, "body").with_text("x".repeat(1300)));
        let refusal = message_from_stanza(&long, &ids(&fresh), None).unwrap_err();
        assert_eq!(refusal.condition, StanzaCondition::PolicyViolation);
    }
}
