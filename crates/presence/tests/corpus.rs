//! Real-world-shaped PIDF documents from `tests/data/`, and the mapping rows that need a whole document.
#![allow(clippy::unwrap_used, missing_docs)]

use sixgate_core::Jid;
use sixgate_presence::{
    EntityScheme, MAX_PIDF_SIZE, PidfEntity, PidfError, Presence, ResourcePresence, Show, Status,
    parse_pidf, parse_pidf_with_limit, to_pidf,
};

fn data(name: &str) -> Vec<u8> {
    std::fs::read(format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn res(
    resource: &str,
    available: bool,
    show: Option<Show>,
    status: Option<Status>,
    priority: i8,
) -> ResourcePresence {
    ResourcePresence {
        resource: resource.to_owned(),
        available,
        show,
        status,
        priority,
    }
}

#[test]
fn rfc3863_example() {
    let presence = parse_pidf(&data("rfc3863-basic.xml")).unwrap();
    assert_eq!(
        presence.resources,
        vec![
            res(
                "bs35r9",
                true,
                None,
                Some(Status::with_lang("Don't Disturb Please!", "en")),
                102
            ),
            // The closed tuple has no note of its own and takes the presentity's.
            res(
                "eg92n8",
                false,
                None,
                Some(Status::new("I'll be in Tokyo next week")),
                127
            ),
        ]
    );
}

#[test]
fn rfc3863_minimal() {
    let presence = parse_pidf(&data("rfc3863-minimal.xml")).unwrap();
    assert_eq!(presence.resources, vec![res("sg89ae", true, None, None, 0)]);
}

#[test]
fn rfc4480_rpid_person_activity() {
    let presence = parse_pidf(&data("rfc4480-rpid.xml")).unwrap();
    // Person-level `away` applies to the tuple; the device's idleness and note are ignored.
    assert_eq!(
        presence.resources,
        vec![res(
            "bs35r9",
            true,
            Some(Show::Away),
            Some(Status::new("Busy saving the world")),
            102
        )]
    );
}

#[test]
fn rfc4479_data_model() {
    let presence = parse_pidf(&data("rfc4479-data-model.xml")).unwrap();
    let note = Some(Status::with_lang("On a call, text me", "en"));
    assert_eq!(
        presence.resources,
        vec![
            res("sip-softphone", true, Some(Show::Dnd), note.clone(), 0),
            // The tuple's idleness ranks below the person's activity.
            res("sip-deskphone", true, Some(Show::Dnd), note, 25),
        ]
    );
}

#[test]
fn rfc8048_embedded_show() {
    let presence = parse_pidf(&data("rfc8048-xmpp.xml")).unwrap();
    assert_eq!(
        presence.resources,
        vec![
            res(
                "orchard",
                true,
                Some(Show::Away),
                Some(Status::with_lang("retired to the chamber", "en")),
                64
            ),
            res("balcony", false, None, None, 0),
        ]
    );
}

#[test]
fn lync_with_microsoft_namespaces() {
    let presence = parse_pidf(&data("lync-msrtc.xml")).unwrap();
    assert_eq!(
        presence.resources,
        vec![res(
            "0",
            true,
            Some(Show::Dnd),
            Some(Status::new("In a meeting until 3pm")),
            127
        )]
    );
}

#[test]
fn lync_availability_without_basic() {
    let presence = parse_pidf(&data("lync-no-basic.xml")).unwrap();
    assert_eq!(
        presence.resources,
        vec![
            res("lync-ep-1", true, Some(Show::Away), None, 0),
            res("lync-ep-2", false, None, None, 0)
        ]
    );
}

#[test]
fn no_tuple_is_valid() {
    assert_eq!(
        parse_pidf(&data("no-tuple.xml")).unwrap(),
        Presence::default()
    );
}

#[test]
fn doctype_is_refused() {
    let r = parse_pidf(&data("doctype.xml"));
    assert!(matches!(r, Err(PidfError::Restricted(_))), "{r:?}");
}

#[test]
fn oversized_is_refused_before_parsing() {
    let body = data("oversized.xml");
    assert!(body.len() > MAX_PIDF_SIZE);
    assert_eq!(
        parse_pidf(&body),
        Err(PidfError::TooLarge {
            size: body.len(),
            limit: MAX_PIDF_SIZE
        })
    );
    // The same document is fine under a larger cap: the refusal is about size, not content.
    assert_eq!(
        parse_pidf_with_limit(&body, body.len())
            .unwrap()
            .resources
            .len(),
        1000
    );
}

#[test]
fn garbage_is_a_clear_error() {
    let error = parse_pidf(&data("garbage.xml")).unwrap_err();
    assert!(matches!(error, PidfError::NotWellFormed(_)), "{error:?}");
    assert!(error.to_string().starts_with("not well-formed XML"));
}

#[test]
fn other_refusals() {
    assert!(matches!(parse_pidf(b""), Err(PidfError::NotWellFormed(_))));
    assert!(matches!(
        parse_pidf(b"<presence xmlns='urn:ietf:params:xml:ns:pidf'>"),
        Err(PidfError::NotWellFormed(_))
    ));
    assert!(matches!(
        parse_pidf(b"<a><!-- c --></a>"),
        Err(PidfError::Restricted(_))
    ));
    assert_eq!(
        parse_pidf(b"<presence xmlns='urn:example'/>"),
        Err(PidfError::NotPidf {
            namespace: "urn:example".into(),
            name: "presence".into()
        })
    );
    let deep = format!(
        "<presence xmlns='urn:ietf:params:xml:ns:pidf'>{}{}</presence>",
        "<x>".repeat(40),
        "</x>".repeat(40)
    );
    assert_eq!(parse_pidf(deep.as_bytes()), Err(PidfError::TooDeep));
}

fn tuple(inner: &str) -> Presence {
    let doc = format!(
        "<presence xmlns='urn:ietf:params:xml:ns:pidf' xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' \
         xmlns:dm='urn:ietf:params:xml:ns:pidf:data-model' entity='pres:a@example.com'>{inner}</presence>"
    );
    parse_pidf(doc.as_bytes()).unwrap()
}

fn one(inner: &str) -> ResourcePresence {
    let mut presence = tuple(inner);
    assert_eq!(presence.resources.len(), 1, "{inner}");
    presence.resources.remove(0)
}

/// PIDF → model, one row per mapping-table row in docs/presence.md §2.
#[test]
fn pidf_to_model_rows() {
    let open = "<status><basic>open</basic></status>";
    let rows: Vec<(String, bool, Option<Show>)> = vec![
        (format!("<tuple id='t'>{open}</tuple>"), true, None),
        ("<tuple id='t'><status><basic>closed</basic></status></tuple>".into(), false, None),
        ("<tuple id='t'><status><basic> open </basic></status></tuple>".into(), true, None),
        ("<tuple id='t'><status><basic>OPEN</basic></status></tuple>".into(), false, None),
        ("<tuple id='t'><status/></tuple>".into(), false, None),
        ("<tuple id='t'/>".into(), false, None),
        // Embedded XMPP show, each value.
        ("<tuple id='t'><status><basic>open</basic><show xmlns='jabber:client'>chat</show></status></tuple>".into(), true, Some(Show::Chat)),
        ("<tuple id='t'><status><basic>open</basic><show xmlns='jabber:client'>away</show></status></tuple>".into(), true, Some(Show::Away)),
        ("<tuple id='t'><status><basic>open</basic><show xmlns='jabber:client'>xa</show></status></tuple>".into(), true, Some(Show::Xa)),
        ("<tuple id='t'><status><basic>open</basic><show xmlns='jabber:client'>dnd</show></status></tuple>".into(), true, Some(Show::Dnd)),
        ("<tuple id='t'><status><basic>open</basic><show xmlns='jabber:client'>bogus</show></status></tuple>".into(), true, None),
        // A show in no namespace is not XMPP's.
        ("<tuple id='t'><status><basic>open</basic><show xmlns=''>dnd</show></status></tuple>".into(), true, None),
        // Closed wins over any show.
        ("<tuple id='t'><status><basic>closed</basic><show xmlns='jabber:client'>dnd</show></status></tuple>".into(), false, None),
        // RPID activities in the tuple, and in the person.
        (format!("<tuple id='t'>{open}<rpid:activities><rpid:busy/></rpid:activities></tuple>"), true, Some(Show::Dnd)),
        (format!("<tuple id='t'>{open}</tuple><dm:person id='p'><rpid:activities><rpid:vacation/></rpid:activities></dm:person>"), true, Some(Show::Xa)),
        (format!("<tuple id='t'>{open}<rpid:activities><rpid:lunch/></rpid:activities></tuple><dm:person id='p'><rpid:activities><rpid:busy/></rpid:activities></dm:person>"), true, Some(Show::Away)),
        // The embedded show beats activities.
        ("<tuple id='t'><status><basic>open</basic><show xmlns='jabber:client'>xa</show></status><rpid:activities><rpid:away/></rpid:activities></tuple>".into(), true, Some(Show::Xa)),
        // Idleness.
        (format!("<tuple id='t'>{open}<rpid:user-input>idle</rpid:user-input></tuple>"), true, Some(Show::Away)),
        (format!("<tuple id='t'>{open}<rpid:user-input>active</rpid:user-input></tuple>"), true, None),
        (format!("<tuple id='t'>{open}</tuple><dm:device id='d'><rpid:user-input>idle</rpid:user-input></dm:device>"), true, None),
        // Lync numbers in the tuple, at the root, and without `basic`.
        (format!("<tuple id='t'>{open}<availability xmlns='http://schemas.microsoft.com/2002/09/sip/presence'>6500</availability></tuple>"), true, Some(Show::Dnd)),
        (format!("<tuple id='t'>{open}</tuple><state xmlns='http://schemas.microsoft.com/2006/09/sip/state'><availability>12500</availability></state>"), true, Some(Show::Away)),
        (format!("<tuple id='t'>{open}<availability xmlns='http://schemas.microsoft.com/2002/09/sip/presence'>3500</availability></tuple>"), true, None),
        (format!("<tuple id='t'>{open}<availability xmlns='http://schemas.microsoft.com/2002/09/sip/presence'>x</availability></tuple>"), true, None),
        (format!("<tuple id='t'>{open}<availability xmlns='urn:not-microsoft'>9500</availability></tuple>"), true, None),
        ("<tuple id='t'><availability xmlns='http://schemas.microsoft.com/2002/09/sip/presence'>3500</availability></tuple>".into(), true, None),
        ("<tuple id='t'><availability xmlns='http://schemas.microsoft.com/2002/09/sip/presence'>18000</availability></tuple>".into(), false, None),
        // Activities beat Lync numbers.
        (format!("<tuple id='t'>{open}<rpid:activities><rpid:vacation/></rpid:activities><availability xmlns='http://schemas.microsoft.com/x'>9500</availability></tuple>"), true, Some(Show::Xa)),
        // Pre-RFC RPID.
        (format!("<tuple id='t'>{open}<ep:activities xmlns:ep='urn:ietf:params:xml:ns:pidf:status:rpid-status'><ep:activity>away</ep:activity></ep:activities></tuple>"), true, Some(Show::Away)),
    ];
    for (inner, available, show) in rows {
        let r = one(&inner);
        assert_eq!((r.available, r.show), (available, show), "{inner}");
    }
}

#[test]
fn notes_and_languages() {
    let open = "<status><basic>open</basic></status>";
    let rows: Vec<(String, Option<Status>)> = vec![
        (
            format!("<tuple id='t'>{open}<note>hi</note></tuple>"),
            Some(Status::new("hi")),
        ),
        (
            format!("<tuple id='t'>{open}<note xml:lang='de'>hallo</note><note>hi</note></tuple>"),
            Some(Status::with_lang("hallo", "de")),
        ),
        (
            format!("<tuple id='t'>{open}<note> </note><note>second</note></tuple>"),
            Some(Status::new("second")),
        ),
        (
            format!("<tuple id='t' xml:lang='fr'>{open}<note>salut</note></tuple>"),
            Some(Status::with_lang("salut", "fr")),
        ),
        (
            format!("<tuple id='t' xml:lang='fr'>{open}<note xml:lang=''>plain</note></tuple>"),
            Some(Status::new("plain")),
        ),
        (
            format!("<tuple id='t'>{open}<note>a &amp; &lt;b&gt; &#x263A;</note></tuple>"),
            Some(Status::new("a & <b> \u{263A}")),
        ),
        (
            format!("<tuple id='t'>{open}</tuple><note>root</note>"),
            Some(Status::new("root")),
        ),
        (
            format!(
                "<tuple id='t'>{open}</tuple><dm:person id='p'><dm:note>person</dm:note></dm:person>"
            ),
            Some(Status::new("person")),
        ),
        (
            format!("<tuple id='t'>{open}<note>own</note></tuple><note>root</note>"),
            Some(Status::new("own")),
        ),
        (
            format!(
                "<tuple id='t'>{open}</tuple><dm:device id='d'><dm:note>device</dm:note></dm:device>"
            ),
            None,
        ),
    ];
    for (inner, status) in rows {
        assert_eq!(one(&inner).status, status, "{inner}");
    }
}

#[test]
fn tuple_ids_and_priorities() {
    let p = tuple(
        "<tuple id='ID-my_20phone'><status><basic>open</basic></status><contact priority='0.992'>sip:a@example.com</contact></tuple>\
         <tuple id='ID-my_20phone'><status><basic>closed</basic></status></tuple>\
         <tuple><status><basic>open</basic></status><contact priority='7'>x</contact></tuple>",
    );
    assert_eq!(
        p.resources,
        vec![
            res("my phone", true, None, None, 126),
            res("tuple-3", true, None, None, 0)
        ]
    );
}

fn entity(jid: &str, scheme: EntityScheme) -> PidfEntity {
    PidfEntity::new(&Jid::parse(jid).unwrap(), scheme).unwrap()
}

#[test]
fn entity_uris() {
    assert_eq!(
        entity("juliet@example.com/balcony", EntityScheme::Pres).uri(),
        "pres:juliet@example.com"
    );
    assert_eq!(
        entity("juliet@example.com", EntityScheme::Sip).uri(),
        "sip:juliet@example.com"
    );
    assert_eq!(
        entity("a\\20b@example.com", EntityScheme::Pres).uri(),
        "pres:a%20b@example.com"
    );
}

#[test]
fn generated_document_shape() {
    let presence = Presence {
        resources: vec![
            ResourcePresence {
                show: Some(Show::Dnd),
                status: Some(Status::with_lang("in <a> 'meeting' & \"call\"", "en")),
                priority: 1,
                ..ResourcePresence::available("orchard")
            },
            ResourcePresence {
                priority: -5,
                ..ResourcePresence::unavailable("my phone")
            },
        ],
    };
    let pidf = to_pidf(&presence, &entity("juliet@example.com", EntityScheme::Pres));
    let expected = "<?xml version='1.0' encoding='UTF-8'?>
<presence xmlns='urn:ietf:params:xml:ns:pidf' xmlns:xmpp='jabber:client' xmlns:rpid='urn:ietf:params:xml:ns:pidf:rpid' entity='pres:juliet@example.com'>
  <tuple id='ID-orchard'>
    <status>
      <basic>open</basic>
      <xmpp:show>dnd</xmpp:show>
    </status>
    <rpid:activities><rpid:busy/></rpid:activities>
    <contact priority='0.007'>sip:juliet@example.com;gr=orchard</contact>
    <note xml:lang='en'>in &lt;a&gt; &apos;meeting&apos; &amp; &quot;call&quot;</note>
  </tuple>
  <tuple id='ID-my_20phone'>
    <status>
      <basic>closed</basic>
    </status>
    <contact priority='0'>sip:juliet@example.com;gr=my%20phone</contact>
  </tuple>
</presence>
";
    assert_eq!(pidf, expected);
}

#[test]
fn minimal_generated_document_declares_only_pidf() {
    let presence = Presence {
        resources: vec![ResourcePresence::available("r")],
    };
    let pidf = to_pidf(&presence, &entity("a@example.com", EntityScheme::Sip));
    assert!(
        !pidf.contains("xmlns:xmpp") && !pidf.contains("xmlns:rpid"),
        "{pidf}"
    );
    assert_eq!(parse_pidf(pidf.as_bytes()).unwrap(), presence);
    let empty = to_pidf(
        &Presence::default(),
        &entity("a@example.com", EntityScheme::Sip),
    );
    assert_eq!(parse_pidf(empty.as_bytes()).unwrap(), Presence::default());
}

/// Model → PIDF → model, for every show and the edge values of every field.
#[test]
fn round_trips() {
    let e = entity("juliet@example.com", EntityScheme::Pres);
    let shows = [
        None,
        Some(Show::Chat),
        Some(Show::Away),
        Some(Show::Xa),
        Some(Show::Dnd),
    ];
    for show in shows {
        for priority in [0, 1, 64, 126, 127] {
            let presence = Presence {
                resources: vec![
                    ResourcePresence {
                        show,
                        priority,
                        status: Some(Status::with_lang(
                            "line1\r\nline2\ttab ]]> \u{1F600}",
                            "en-GB",
                        )),
                        ..ResourcePresence::available("héllo wörld/_x")
                    },
                    ResourcePresence {
                        priority,
                        ..ResourcePresence::unavailable("2nd")
                    },
                ],
            };
            let pidf = to_pidf(&presence, &e);
            assert_eq!(parse_pidf(pidf.as_bytes()).unwrap(), presence, "{pidf}");
        }
    }
}

#[test]
fn generation_normalises_what_pidf_cannot_carry() {
    let e = entity("juliet@example.com", EntityScheme::Pres);
    let presence = Presence {
        resources: vec![
            ResourcePresence {
                show: Some(Show::Away),
                priority: -1,
                ..ResourcePresence::unavailable("a")
            },
            ResourcePresence::available("a"),
            ResourcePresence {
                status: Some(Status::new("bell\u{7}")),
                ..ResourcePresence::available("b")
            },
        ],
    };
    let parsed = parse_pidf(to_pidf(&presence, &e).as_bytes()).unwrap();
    assert_eq!(
        parsed.resources,
        vec![
            ResourcePresence::unavailable("a"),
            ResourcePresence {
                status: Some(Status::new("bell")),
                ..ResourcePresence::available("b")
            }
        ]
    );
}
