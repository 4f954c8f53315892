//! The mapping tables between PIDF vocabularies and the model. RFC 8048 §6 standardises only `basic`,
//! `note`, the contact priority and an embedded `<show/>`; everything else here is our choice, recorded in
//! `docs/presence.md`.

use crate::model::Show;

/// Maps one RPID activity (RFC 4480 §3.2, element local name) to a show.
///
/// `None` for activities that say nothing about reachability (`working`, `unknown`, `other` and unknown
/// extension activities).
pub fn activity_to_show(activity: &str) -> Option<Show> {
    match activity {
        "busy" | "on-the-phone" | "meeting" | "appointment" | "performance" | "presentation" => {
            Some(Show::Dnd)
        }
        "holiday" | "vacation" | "sleeping" | "permanent-absence" => Some(Show::Xa),
        "away" | "breakfast" | "dinner" | "lunch" | "meal" | "shopping" | "spectator"
        | "steering" | "travel" | "in-transit" | "looking-for-work" | "playing" | "tv"
        | "worship" => Some(Show::Away),
        _ => None,
    }
}

/// Combines several activities into one show: the most restrictive wins (dnd over xa over away), so that the
/// result does not depend on the order a client listed them in.
pub fn activities_to_show<'a>(activities: impl IntoIterator<Item = &'a str>) -> Option<Show> {
    activities
        .into_iter()
        .filter_map(activity_to_show)
        .max_by_key(|show| restrictiveness(*show))
}

fn restrictiveness(show: Show) -> u8 {
    match show {
        Show::Chat => 0,
        Show::Away => 1,
        Show::Xa => 2,
        Show::Dnd => 3,
    }
}

/// The RPID activity written for a show, if any (`chat` has none: it is plain availability).
pub fn show_to_activity(show: Show) -> Option<&'static str> {
    match show {
        Show::Chat => None,
        Show::Away | Show::Xa => Some("away"),
        Show::Dnd => Some("busy"),
    }
}

/// A Lync/OCS availability number (standards.md b.4 ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LyncAvailability {
    /// Show, when online.
    Online(Option<Show>),
    /// 18000 and above.
    Offline,
}

/// Maps a Lync availability number to the model.
pub fn lync_availability(value: u32) -> LyncAvailability {
    match value {
        0..=4499 => LyncAvailability::Online(None),
        4500..=5999 => LyncAvailability::Online(Some(Show::Away)),
        6000..=11999 => LyncAvailability::Online(Some(Show::Dnd)),
        12000..=17999 => LyncAvailability::Online(Some(Show::Away)),
        _ => LyncAvailability::Offline,
    }
}

/// RPID `<user-input>` (RFC 4480 §3.11): `idle` suggests away, anything else says nothing.
pub fn user_input_to_show(value: &str) -> Option<Show> {
    (value == "idle").then_some(Show::Away)
}

/// PIDF contact priority (a qvalue, "0".."1" with up to three decimals) → XMPP priority 0..=127.
///
/// Rounds to the nearest integer, so that every value [`priority_to_qvalue`] writes reads back unchanged.
/// Anything that is not a qvalue (out of range, extra digits, garbage) reads as 0, the XMPP default.
pub fn qvalue_to_priority(text: &str) -> i8 {
    let Some(thousandths) = parse_qvalue(text.trim()) else {
        return 0;
    };
    let scaled = (thousandths * 127 + 500) / 1000;
    i8::try_from(scaled).unwrap_or(i8::MAX)
}

fn parse_qvalue(text: &str) -> Option<u32> {
    let (int, frac) = text.split_once('.').unwrap_or((text, ""));
    if int.len() != 1 || frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut value = match int {
        "0" => 0,
        "1" => 1000,
        _ => return None,
    };
    let mut weight = 100;
    for digit in frac.bytes() {
        value += u32::from(digit - b'0') * weight;
        weight /= 10;
    }
    (value <= 1000).then_some(value)
}

/// XMPP priority → PIDF contact priority (RFC 8048 §6.2: 0 → 0, 127 → 1, 1 → 0.007, 126 → 0.992).
///
/// The RFC does not map negative priorities; we write 0, the lowest qvalue, so that the tuple still sorts
/// last rather than losing its contact element.
pub fn priority_to_qvalue(priority: i8) -> String {
    match priority {
        ..=0 => "0".to_owned(),
        127 => "1".to_owned(),
        // Truncating matches the RFC's examples; rounding back in `qvalue_to_priority` still recovers it.
        p => format!("0.{:03}", u32::from(p.unsigned_abs()) * 1000 / 127),
    }
}

/// Tuple id for a resource: `ID-` (RFC 8048 §6.2: an xs:ID cannot start with a digit) followed by the
/// resource with every byte outside `[A-Za-z0-9.-]` written as `_XX` (upper-case hex of its UTF-8 bytes).
///
/// The escape keeps the id an NCName whatever the resource contains (spaces, `/`, `@`, non-ASCII), and it is
/// reversible because `_` itself is escaped.
pub fn resource_to_tuple_id(resource: &str) -> String {
    let mut id = String::with_capacity(resource.len() + 3);
    id.push_str("ID-");
    for byte in resource.bytes() {
        if byte.is_ascii_alphanumeric() || byte == b'.' || byte == b'-' {
            id.push(char::from(byte));
        } else {
            id.push('_');
            id.push_str(&format!("{byte:02X}"));
        }
    }
    id
}

/// Resource for a tuple id: the inverse of [`resource_to_tuple_id`] for ids with the `ID-` prefix.
///
/// Other gateways write `ID-` plus the raw resource, so an `ID-` id whose escapes do not decode keeps the
/// text after the prefix as it is. Ids without the prefix (ordinary SIP tuples) are the resource unchanged.
pub fn tuple_id_to_resource(id: &str) -> String {
    match id.strip_prefix("ID-") {
        Some(rest) if !rest.is_empty() => unescape_id(rest).unwrap_or_else(|| rest.to_owned()),
        _ => id.to_owned(),
    }
}

fn unescape_id(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'_' {
            let hex = text.get(i + 1..i + 3)?;
            if !hex
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'A'..=b'F').contains(&b))
            {
                return None;
            }
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn activity_table() {
        let rows: &[(&str, Option<Show>)] = &[
            ("busy", Some(Show::Dnd)),
            ("on-the-phone", Some(Show::Dnd)),
            ("meeting", Some(Show::Dnd)),
            ("appointment", Some(Show::Dnd)),
            ("performance", Some(Show::Dnd)),
            ("presentation", Some(Show::Dnd)),
            ("holiday", Some(Show::Xa)),
            ("vacation", Some(Show::Xa)),
            ("sleeping", Some(Show::Xa)),
            ("permanent-absence", Some(Show::Xa)),
            ("away", Some(Show::Away)),
            ("breakfast", Some(Show::Away)),
            ("dinner", Some(Show::Away)),
            ("lunch", Some(Show::Away)),
            ("meal", Some(Show::Away)),
            ("shopping", Some(Show::Away)),
            ("spectator", Some(Show::Away)),
            ("steering", Some(Show::Away)),
            ("travel", Some(Show::Away)),
            ("in-transit", Some(Show::Away)),
            ("looking-for-work", Some(Show::Away)),
            ("playing", Some(Show::Away)),
            ("tv", Some(Show::Away)),
            ("worship", Some(Show::Away)),
            ("working", None),
            ("unknown", None),
            ("other", None),
            ("Busy", None),
            ("x-custom", None),
        ];
        for (activity, show) in rows {
            assert_eq!(activity_to_show(activity), *show, "{activity}");
        }
    }

    #[test]
    fn most_restrictive_activity_wins() {
        assert_eq!(activities_to_show(["away", "meeting"]), Some(Show::Dnd));
        assert_eq!(activities_to_show(["meeting", "away"]), Some(Show::Dnd));
        assert_eq!(activities_to_show(["lunch", "vacation"]), Some(Show::Xa));
        assert_eq!(activities_to_show(["working", "unknown"]), None);
        assert_eq!(activities_to_show([]), None);
    }

    #[test]
    fn show_to_activity_table() {
        assert_eq!(show_to_activity(Show::Chat), None);
        assert_eq!(show_to_activity(Show::Away), Some("away"));
        assert_eq!(show_to_activity(Show::Xa), Some("away"));
        assert_eq!(show_to_activity(Show::Dnd), Some("busy"));
    }

    #[test]
    fn lync_table() {
        use LyncAvailability::*;
        let rows = [
            (0, Online(None)),
            (3500, Online(None)),
            (4499, Online(None)),
            (4500, Online(Some(Show::Away))),
            (5999, Online(Some(Show::Away))),
            (6000, Online(Some(Show::Dnd))),
            (6500, Online(Some(Show::Dnd))),
            (7500, Online(Some(Show::Dnd))),
            (8999, Online(Some(Show::Dnd))),
            (9000, Online(Some(Show::Dnd))),
            (9500, Online(Some(Show::Dnd))),
            (11999, Online(Some(Show::Dnd))),
            (12000, Online(Some(Show::Away))),
            (12500, Online(Some(Show::Away))),
            (15500, Online(Some(Show::Away))),
            (17999, Online(Some(Show::Away))),
            (18000, Offline),
            (18500, Offline),
            (u32::MAX, Offline),
        ];
        for (value, expected) in rows {
            assert_eq!(lync_availability(value), expected, "{value}");
        }
    }

    #[test]
    fn user_input_table() {
        assert_eq!(user_input_to_show("idle"), Some(Show::Away));
        assert_eq!(user_input_to_show("active"), None);
        assert_eq!(user_input_to_show("x"), None);
    }

    #[test]
    fn qvalue_table() {
        let rows = [
            ("0", 0),
            ("0.", 0),
            ("0.0", 0),
            ("0.007", 1),
            ("0.5", 64),
            ("0.992", 126),
            ("1", 127),
            ("1.000", 127),
            (" 0.8 ", 102),
            ("1.5", 0),
            ("1.001", 0),
            ("2", 0),
            ("-0.5", 0),
            ("0.1234", 0),
            ("abc", 0),
            ("", 0),
            (".5", 0),
        ];
        for (text, priority) in rows {
            assert_eq!(qvalue_to_priority(text), priority, "{text:?}");
        }
    }

    #[test]
    fn priority_table() {
        let rows = [
            (i8::MIN, "0"),
            (-1, "0"),
            (0, "0"),
            (1, "0.007"),
            (64, "0.503"),
            (126, "0.992"),
            (127, "1"),
        ];
        for (priority, text) in rows {
            assert_eq!(priority_to_qvalue(priority), text, "{priority}");
        }
    }

    #[test]
    fn every_non_negative_priority_round_trips() {
        for p in 0..=i8::MAX {
            assert_eq!(qvalue_to_priority(&priority_to_qvalue(p)), p);
        }
    }

    #[test]
    fn tuple_id_table() {
        let rows = [
            ("orchard", "ID-orchard"),
            ("balcony-2.1", "ID-balcony-2.1"),
            ("my phone", "ID-my_20phone"),
            ("a_b", "ID-a_5Fb"),
            ("x/y@z", "ID-x_2Fy_40z"),
            ("é", "ID-_C3_A9"),
            ("123", "ID-123"),
        ];
        for (resource, id) in rows {
            assert_eq!(resource_to_tuple_id(resource), id);
            assert_eq!(tuple_id_to_resource(id), resource);
        }
    }

    #[test]
    fn foreign_tuple_ids() {
        assert_eq!(tuple_id_to_resource("t8a9b"), "t8a9b");
        assert_eq!(tuple_id_to_resource("ID-"), "ID-");
        // Another gateway's raw resource with an underscore that is not one of our escapes.
        assert_eq!(tuple_id_to_resource("ID-home_pc"), "home_pc");
        // Escapes that decode to invalid UTF-8 are not ours either.
        assert_eq!(tuple_id_to_resource("ID-_FF"), "_FF");
    }
}
