//! Property tests: hostile input never panics; generated documents always read back.
#![allow(clippy::unwrap_used, missing_docs)]

use proptest::prelude::*;
use sixgate_core::Jid;
use sixgate_presence::{
    EntityScheme, PidfEntity, Presence, ResourcePresence, Show, Status, parse_pidf, to_pidf,
};

fn show() -> impl Strategy<Value = Option<Show>> {
    prop_oneof![
        Just(None),
        Just(Some(Show::Chat)),
        Just(Some(Show::Away)),
        Just(Some(Show::Xa)),
        Just(Some(Show::Dnd))
    ]
}

fn resource() -> impl Strategy<Value = ResourcePresence> {
    (
        "[^\u{0}-\u{1f}\u{fffe}\u{ffff}]{1,12}",
        any::<bool>(),
        show(),
        proptest::option::of((
            "[^\u{0}-\u{8}\u{b}\u{c}\u{e}-\u{1f}\u{fffe}\u{ffff}]*[^\\s\\p{Cc}\u{fffe}\u{ffff}]",
            proptest::option::of("[a-z]{2}(-[A-Z]{2})?"),
        )),
        0..=i8::MAX,
    )
        .prop_map(
            |(resource, available, show, status, priority)| ResourcePresence {
                resource,
                available,
                show: if available { show } else { None },
                status: status.map(|(text, lang)| Status { text, lang }),
                priority,
            },
        )
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        let _ = parse_pidf(&bytes);
    }

    #[test]
    fn mangled_documents_never_panic(cut in 0usize..600, byte in any::<u8>(), at in 0usize..600) {
        let mut doc = include_bytes!("data/rfc4480-rpid.xml").to_vec();
        let at = at % doc.len();
        doc[at] = byte;
        doc.truncate(cut.max(1) * 3);
        let _ = parse_pidf(&doc);
    }

    #[test]
    fn model_round_trips(resources in proptest::collection::vec(resource(), 0..4)) {
        let mut unique: Vec<ResourcePresence> = Vec::new();
        for r in resources {
            if !unique.iter().any(|u| u.resource == r.resource) {
                unique.push(r);
            }
        }
        let presence = Presence { resources: unique };
        let entity = PidfEntity::new(&Jid::parse("juliet@example.com").unwrap(), EntityScheme::Pres).unwrap();
        let pidf = to_pidf(&presence, &entity);
        prop_assert_eq!(parse_pidf(pidf.as_bytes()).unwrap(), presence);
    }
}
