//! Model → PIDF for an XMPP user (RFC 8048 §6.2).

use std::fmt::Write as _;

use sixgate_core::{AddressMapError, Jid, jid_to_sip};

use crate::map;
use crate::model::{Presence, ResourcePresence, Show};

/// Which URI scheme names the presentity in `<presence entity>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntityScheme {
    /// `pres:` (RFC 3859), as in RFC 8048's examples.
    Pres,
    /// `sip:`, for SIP peers that compare the entity with the SUBSCRIBE's Request-URI.
    Sip,
}

/// Why a JID cannot name a PIDF presentity.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the JID cannot be written as a SIP URI: {0}")]
pub struct EntityError(#[from] AddressMapError);

/// The presentity a PIDF document describes: an XMPP user's bare JID, written as a URI once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PidfEntity {
    jid: Jid,
    uri: String,
}

impl PidfEntity {
    /// The entity for `jid` (its resource, if any, is dropped: the presentity is the account, and
    /// resources become tuples). The user part is mapped as in RFC 7247 §6.5 (`jid_to_sip`).
    pub fn new(jid: &Jid, scheme: EntityScheme) -> Result<Self, EntityError> {
        let bare = jid.to_bare();
        let sip = jid_to_sip(&bare)?.to_string();
        let uri = match scheme {
            EntityScheme::Sip => sip,
            EntityScheme::Pres => match sip.strip_prefix("sip:") {
                Some(rest) => format!("pres:{rest}"),
                None => sip,
            },
        };
        Ok(Self { jid: bare, uri })
    }

    /// The `entity` attribute value.
    pub fn uri(&self) -> &str {
        &self.uri
    }

    /// The contact URI of one resource: its SIP GRUU form (`;gr=resource`, RFC 7247 §6.5 step 8), or the
    /// bare `sip:` URI for a resource that is not a valid JID resourcepart.
    fn contact(&self, resource: &str) -> String {
        let full = Jid::new(self.jid.local(), self.jid.domain().clone(), Some(resource));
        let uri = full.ok().and_then(|full| jid_to_sip(&full).ok());
        match uri {
            Some(uri) => uri.to_string(),
            None => jid_to_sip(&self.jid)
                .map(|uri| uri.to_string())
                .unwrap_or_else(|_| self.uri.clone()),
        }
    }
}

/// Renders `presence` as an `application/pidf+xml` body for `entity`.
///
/// One tuple per resource, in order (a resource repeated later is skipped, as the parser does). An
/// unavailable resource gets `basic` closed and no show; an available one with a show gets the embedded
/// `<show xmlns='jabber:client'>` RFC 8048 §6.2 recommends plus an RPID activity for SIP clients that only
/// understand RFC 4480. Namespaces are declared once, on the root, and only when used.
pub fn to_pidf(presence: &Presence, entity: &PidfEntity) -> String {
    let mut resources: Vec<&ResourcePresence> = Vec::with_capacity(presence.resources.len());
    for resource in &presence.resources {
        if !resources.iter().any(|r| r.resource == resource.resource) {
            resources.push(resource);
        }
    }
    let shown = |r: &&ResourcePresence| if r.available { r.show } else { None };
    let uses_show = resources.iter().any(|r| shown(r).is_some());
    let uses_rpid = resources
        .iter()
        .any(|r| shown(r).and_then(map::show_to_activity).is_some());

    let mut out = String::with_capacity(256 + 256 * resources.len());
    out.push_str(
        "<?xml version='1.0' encoding='UTF-8'?>\n<presence xmlns='urn:ietf:params:xml:ns:pidf'",
    );
    if uses_show {
        out.push_str(" xmlns:xmpp='jabber:client'");
    }
    if uses_rpid {
        out.push_str(" xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid'");
    }
    out.push_str(" entity='");
    escape_into(entity.uri(), &mut out);
    out.push_str("'>\n");
    for resource in resources {
        write_tuple(resource, shown(&resource), entity, &mut out);
    }
    out.push_str("</presence>\n");
    out
}

fn write_tuple(
    resource: &ResourcePresence,
    show: Option<Show>,
    entity: &PidfEntity,
    out: &mut String,
) {
    out.push_str("  <tuple id='");
    escape_into(&map::resource_to_tuple_id(&resource.resource), out);
    out.push_str("'>\n    <status>\n      <basic>");
    out.push_str(if resource.available { "open" } else { "closed" });
    out.push_str("</basic>\n");
    if let Some(show) = show {
        let _ = writeln!(out, "      <xmpp:show>{}</xmpp:show>", show.as_str());
    }
    out.push_str("    </status>\n");
    // PIDF puts extension elements between <status> and <contact> (RFC 3863 §4.1.1 schema order).
    if let Some(activity) = show.and_then(map::show_to_activity) {
        let _ = writeln!(
            out,
            "    <rpid:activities><rpid:{activity}/></rpid:activities>"
        );
    }
    let _ = write!(
        out,
        "    <contact priority='{}'>",
        map::priority_to_qvalue(resource.priority)
    );
    escape_into(&entity.contact(&resource.resource), out);
    out.push_str("</contact>\n");
    if let Some(status) = &resource.status {
        out.push_str("    <note");
        if let Some(lang) = &status.lang {
            out.push_str(" xml:lang='");
            escape_into(lang, out);
            out.push('\'');
        }
        out.push('>');
        escape_into(&status.text, out);
        out.push_str("</note>\n");
    }
    out.push_str("  </tuple>\n");
}

/// Escapes text for both content and single- or double-quoted attributes.
///
/// Characters XML 1.0 cannot carry at all (most C0 controls, U+FFFE, U+FFFF) are dropped rather than making
/// the whole document unparseable; CR and TAB are written as references so that the receiver's end-of-line
/// and attribute normalisation give back the same text.
fn escape_into(text: &str, out: &mut String) {
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '\'' => out.push_str("&apos;"),
            '"' => out.push_str("&quot;"),
            '\r' => out.push_str("&#13;"),
            '\t' => out.push_str("&#9;"),
            '\n' => out.push_str("&#10;"),
            c if is_xml_char(c) => out.push(c),
            _ => {}
        }
    }
}

/// XML 1.0 `Char` production.
pub(crate) fn is_xml_char(c: char) -> bool {
    matches!(c, '\t' | '\n' | '\r' | '\u{20}'..='\u{D7FF}' | '\u{E000}'..='\u{FFFD}' | '\u{10000}'..)
}
