//! PIDF (RFC 3863) → model.
//!
//! The document is read into a small tree first (it is capped at [`MAX_PIDF_SIZE`] bytes, so the tree is
//! small), then each tuple is interpreted with the presentity-wide hints (`<dm:person>`, root-level RPID and
//! Microsoft elements) as a fallback. Unknown elements and namespaces are skipped wherever they appear.

use rxml::{Event, Parse, Parser};

use crate::map::{self, LyncAvailability};
use crate::model::{Presence, ResourcePresence, Show, Status};

/// Default size cap for a PIDF body. Real documents are a few KiB; Lync's largest category documents stay
/// well below this.
pub const MAX_PIDF_SIZE: usize = 64 * 1024;

/// Deepest nesting accepted: PIDF with extensions is about six levels deep, and the cap bounds the tree.
const MAX_DEPTH: usize = 32;

const NS_PIDF: &str = "urn:ietf:params:xml:ns:pidf";
const NS_DM: &str = "urn:ietf:params:xml:ns:pidf:data-model";
const NS_RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";
const NS_RPID_STATUS: &str = "urn:ietf:params:xml:ns:pidf:status:rpid-status";
const NS_JABBER_CLIENT: &str = "jabber:client";
const NS_XML: &str = "http://www.w3.org/XML/1998/namespace";
/// Every Microsoft presence namespace (`…/2002/09/sip/presence`, `…/2006/09/sip/state`, msrtc extensions)
/// lives under this prefix.
const NS_MICROSOFT_PREFIX: &str = "http://schemas.microsoft.com/";

/// Why a body is not a PIDF document we accept. Always the sender's fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PidfError {
    /// The body exceeds the size cap (checked before parsing).
    #[error("PIDF document of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// Size of the body.
        size: usize,
        /// The cap.
        limit: usize,
    },
    /// XML that rxml refuses on principle: a DTD (and with it any entity declaration), comments or
    /// processing instructions.
    #[error("restricted XML: {0}")]
    Restricted(String),
    /// Not well-formed XML (including an empty body, or bytes that are not UTF-8).
    #[error("not well-formed XML: {0}")]
    NotWellFormed(String),
    /// Elements nested deeper than we accept.
    #[error("elements nested deeper than {MAX_DEPTH} levels")]
    TooDeep,
    /// Well-formed XML whose root is not `<presence xmlns='urn:ietf:params:xml:ns:pidf'>`.
    #[error("not a PIDF document: root element is {{{namespace}}}{name}")]
    NotPidf {
        /// Namespace of the root element.
        namespace: String,
        /// Local name of the root element.
        name: String,
    },
}

/// Parses a PIDF body with the default cap of [`MAX_PIDF_SIZE`] bytes.
pub fn parse_pidf(body: &[u8]) -> Result<Presence, PidfError> {
    parse_pidf_with_limit(body, MAX_PIDF_SIZE)
}

/// Parses a PIDF body of at most `limit` bytes.
pub fn parse_pidf_with_limit(body: &[u8], limit: usize) -> Result<Presence, PidfError> {
    if body.len() > limit {
        return Err(PidfError::TooLarge {
            size: body.len(),
            limit,
        });
    }
    let root = read_tree(body).map_err(|error| classify(error, body))?;
    if root.namespace != NS_PIDF || root.name != "presence" {
        return Err(PidfError::NotPidf {
            namespace: root.namespace,
            name: root.name,
        });
    }
    Ok(interpret(&root))
}

/// One element of the document, with the language in effect (`xml:lang` inherits, XML 1.0 §2.12).
#[derive(Debug)]
struct Node {
    namespace: String,
    name: String,
    attrs: Vec<(String, String, String)>,
    lang: Option<String>,
    children: Vec<Self>,
    /// Direct text content, concatenated.
    text: String,
}

impl Node {
    fn is(&self, namespace: &str, name: &str) -> bool {
        self.namespace == namespace && self.name == name
    }

    fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(ns, n, _)| ns.is_empty() && n == name)
            .map(|(_, _, v)| v.as_str())
    }

    fn child_elements<'a>(
        &'a self,
        namespace: &'a str,
        name: &'a str,
    ) -> impl Iterator<Item = &'a Self> + 'a {
        self.children.iter().filter(move |c| c.is(namespace, name))
    }

    /// Descendants in document order, not entering elements for which `skip` holds.
    fn descendants<'a>(&'a self, skip: &dyn Fn(&Self) -> bool, out: &mut Vec<&'a Self>) {
        for child in &self.children {
            if skip(child) {
                continue;
            }
            out.push(child);
            child.descendants(skip, out);
        }
    }
}

fn read_tree(mut body: &[u8]) -> Result<Node, PidfError> {
    let mut parser = Parser::new();
    let mut stack: Vec<Node> = Vec::new();
    let mut root = None;
    loop {
        let event = match parser.parse(&mut body, true) {
            Ok(Some(event)) => event,
            Ok(None) => break,
            Err(rxml::error::EndOrError::NeedMoreData) => {
                // With `at_eof` set rxml reports truncation as an error; this is only a safety net.
                return Err(PidfError::NotWellFormed("truncated document".to_owned()));
            }
            Err(rxml::error::EndOrError::Error(e)) => return Err(convert_error(&e)),
        };
        match event {
            Event::XmlDeclaration(..) => {}
            Event::StartElement(_, (namespace, name), attrs) => {
                if stack.len() >= MAX_DEPTH {
                    return Err(PidfError::TooDeep);
                }
                let mut lang = stack.last().and_then(|parent| parent.lang.clone());
                let mut list = Vec::new();
                for ((attr_ns, attr_name), value) in attrs.iter() {
                    if attr_ns.as_str() == NS_XML && attr_name.as_str() == "lang" {
                        // `xml:lang=''` cancels an inherited language.
                        lang = (!value.is_empty()).then(|| value.to_string());
                    } else {
                        list.push((
                            attr_ns.as_str().to_owned(),
                            attr_name.as_str().to_owned(),
                            value.to_string(),
                        ));
                    }
                }
                stack.push(Node {
                    namespace: namespace.as_str().to_owned(),
                    name: name.as_str().to_owned(),
                    attrs: list,
                    lang,
                    children: Vec::new(),
                    text: String::new(),
                });
            }
            Event::EndElement(_) => {
                let Some(node) = stack.pop() else {
                    return Err(PidfError::NotWellFormed("unbalanced end tag".to_owned()));
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(node),
                    None => root = Some(node),
                }
            }
            Event::Text(_, text) => {
                if let Some(parent) = stack.last_mut() {
                    parent.text.push_str(&text);
                }
            }
        }
    }
    root.ok_or_else(|| PidfError::NotWellFormed("no root element".to_owned()))
}

/// rxml refuses a DTD as a syntax error at `<!`; naming it makes the log line say why the peer was refused.
/// The refusal itself is rxml's: this only relabels an error that already happened.
fn classify(error: PidfError, body: &[u8]) -> PidfError {
    let has_doctype = body.windows(9).any(|w| w == b"<!DOCTYPE");
    match error {
        PidfError::NotWellFormed(_) if has_doctype => {
            PidfError::Restricted("document type declaration (DTD)".to_owned())
        }
        other => other,
    }
}

fn convert_error(error: &rxml::Error) -> PidfError {
    match error {
        rxml::Error::RestrictedXml(what) => PidfError::Restricted((*what).to_owned()),
        other => PidfError::NotWellFormed(other.to_string()),
    }
}

/// Presence hints found in one scope (a tuple, or the presentity as a whole).
#[derive(Debug, Default)]
struct Hints {
    embedded_show: Option<Show>,
    activities: Option<Show>,
    lync: Option<LyncAvailability>,
    idle: Option<Show>,
    note: Option<Status>,
}

impl Hints {
    fn collect(nodes: &[&Node]) -> Self {
        let mut hints = Self::default();
        for node in nodes {
            match (node.namespace.as_str(), node.name.as_str()) {
                (NS_JABBER_CLIENT, "show") => {
                    hints.embedded_show = hints
                        .embedded_show
                        .or_else(|| Show::from_token(node.text.trim()));
                }
                (NS_RPID, "activities") => {
                    let names = node
                        .children
                        .iter()
                        .filter(|c| c.namespace == NS_RPID)
                        .map(|c| c.name.as_str());
                    hints.activities = hints.activities.or(map::activities_to_show(names));
                }
                // The pre-RFC RPID draft (Windows Messenger, OCS 2007 PIDF): `<activity>` elements with text.
                (NS_RPID_STATUS, "activities") => {
                    let names = node
                        .children
                        .iter()
                        .filter(|c| c.is(NS_RPID_STATUS, "activity"))
                        .map(|c| c.text.trim());
                    hints.activities = hints.activities.or(map::activities_to_show(names));
                }
                (NS_RPID, "user-input") => {
                    hints.idle = hints.idle.or(map::user_input_to_show(node.text.trim()));
                }
                (ns, "availability") if ns.starts_with(NS_MICROSOFT_PREFIX) => {
                    if let Ok(value) = node.text.trim().parse::<u32>() {
                        hints.lync = hints.lync.or(Some(map::lync_availability(value)));
                    }
                }
                (NS_PIDF | NS_DM, "note")
                    if hints.note.is_none() && !node.text.trim().is_empty() =>
                {
                    hints.note = Some(Status {
                        text: node.text.clone(),
                        lang: node.lang.clone(),
                    });
                }
                _ => {}
            }
        }
        hints
    }

    fn lync_show(&self) -> Option<Show> {
        match self.lync {
            Some(LyncAvailability::Online(show)) => show,
            _ => None,
        }
    }
}

/// The show for a tuple: by source, most specific first, and within one source the tuple before the
/// presentity (docs/presence.md §2). Ranking by source first means a person's "on-the-phone" outweighs a
/// device tuple that is merely idle.
fn resolve_show(own: &Hints, presentity: &Hints) -> Option<Show> {
    own.embedded_show
        .or(presentity.embedded_show)
        .or(own.activities)
        .or(presentity.activities)
        .or(own.lync_show())
        .or(presentity.lync_show())
        .or(own.idle)
        .or(presentity.idle)
}

fn interpret(root: &Node) -> Presence {
    let is_tuple = |n: &Node| n.is(NS_PIDF, "tuple");
    // Devices describe hardware, not the user; their idleness or notes must not colour every tuple.
    let is_device = |n: &Node| n.is(NS_DM, "device");
    let mut scope = Vec::new();
    root.descendants(&|n| is_tuple(n) || is_device(n), &mut scope);
    let presentity = Hints::collect(&scope);

    let mut presence = Presence::default();
    for (index, tuple) in root.child_elements(NS_PIDF, "tuple").enumerate() {
        let resource = match tuple.attr("id") {
            Some(id) if !id.is_empty() => map::tuple_id_to_resource(id),
            _ => format!("tuple-{}", index + 1),
        };
        // RFC 8048 maps one tuple per resource; a repeated id would make the resource ambiguous.
        if presence.resources.iter().any(|r| r.resource == resource) {
            continue;
        }
        let mut nodes = Vec::new();
        tuple.descendants(&|_| false, &mut nodes);
        let own = Hints::collect(&nodes);
        // The tuple's own `<note>` is what RFC 8048 maps; notes nested in extensions are a fallback.
        let tuple_note = tuple
            .child_elements(NS_PIDF, "note")
            .find(|note| !note.text.trim().is_empty())
            .map(|note| Status {
                text: note.text.clone(),
                lang: note.lang.clone(),
            });

        let basic = tuple
            .child_elements(NS_PIDF, "status")
            .flat_map(|status| status.child_elements(NS_PIDF, "basic"))
            .map(|basic| basic.text.trim())
            .next();
        let available = match basic {
            Some(value) => value == "open",
            // No `basic`: only a Lync number can still say "online"; otherwise status is unknown, which
            // RFC 8048 §5.2.1 treats as closed.
            None => matches!(
                own.lync.or(presentity.lync),
                Some(LyncAvailability::Online(_))
            ),
        };
        let show = if available {
            resolve_show(&own, &presentity)
        } else {
            None
        };
        let priority = tuple
            .child_elements(NS_PIDF, "contact")
            .find_map(|contact| contact.attr("priority"))
            .map_or(0, map::qvalue_to_priority);
        presence.resources.push(ResourcePresence {
            resource,
            available,
            show,
            status: tuple_note.or(own.note).or_else(|| presentity.note.clone()),
            priority,
        });
    }
    presence
}
