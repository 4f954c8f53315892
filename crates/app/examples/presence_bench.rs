//! Presence benchmark (docs/benchmarks.md, "Presence"): memory of 100,000 live subscriptions in a
//! `SubscriptionTable`, the cost of one `poll_timeout()` scan over them, and the CPU per NOTIFY → presence and
//! per presence → NOTIFY.
//!
//! Single-threaded, in one process; run it in release mode:
//!
//! ```sh
//! cargo run --release -p sixgate-app --example presence_bench
//! ```
//!
//! Everything measured is the real code: the gateway's translations come from `sixgate_app::presence_wire`.

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use sixgate_app::presence_wire::{
    ContactPresence, PIDF, action_stanza, build_notify, contact_presence, table_state,
};
use sixgate_core::Jid;
use sixgate_presence::subscription::NotifyAnswer;
use sixgate_presence::{
    Action, EntityScheme, PidfEntity, Presence, ResourcePresence, Show, Status, SubscriptionConfig,
    SubscriptionState, SubscriptionTable, parse_pidf, to_pidf,
};
use sixgate_sip::Request;
use sixgate_sip::dialog::{self, Dialog, DialogId, SubscriptionStatus, notify_state};
use sixgate_sip::message::{CallId, HeaderName, Method, NameAddr, Token, Uri};
use sixgate_xmpp_proto::xml::{Element, ns, write_element};

/// SIP users of `corp.example` (watchers in direction A, contacts in direction B).
const SIP_USERS: usize = 100;
/// XMPP users of `xmpp.example` (contacts in direction A, subscribers in direction B).
const XMPP_USERS: usize = 1000;
/// Subscriptions per table: every SIP user with every XMPP user.
const PAIRS: usize = SIP_USERS * XMPP_USERS;
/// `poll_timeout()` calls timed per table.
const POLLS: usize = 200;

/// A PIDF body as a SIP client sends it (data model, RPID activity, note, device); 861 bytes (874 for the busy one).
const PIDF_AWAY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
          xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
          xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
          entity="sip:carol@corp.example">
  <tuple id="t5e0c2a91">
    <status><basic>open</basic></status>
    <dm:deviceID>urn:uuid:3f2a9c1e-5b7d-4e8f-9a01-2c3d4e5f6a7b</dm:deviceID>
    <contact priority="0.8">sip:carol@10.1.2.3:5061;transport=tls</contact>
    <timestamp>2026-11-21T07:30:00Z</timestamp>
  </tuple>
  <dm:person id="p4c2b">
    <rpid:activities><rpid:away/></rpid:activities>
    <dm:note xml:lang="en">Back after lunch</dm:note>
  </dm:person>
  <dm:device id="d9e1">
    <rpid:user-input idle-threshold="600">idle</rpid:user-input>
    <dm:deviceID>urn:uuid:3f2a9c1e-5b7d-4e8f-9a01-2c3d4e5f6a7b</dm:deviceID>
  </dm:device>
</presence>
"#;

/// The same document a moment later: busy, in a meeting.
const PIDF_BUSY: &str = r#"<?xml version="1.0" encoding="UTF-8"?>
<presence xmlns="urn:ietf:params:xml:ns:pidf"
          xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model"
          xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid"
          entity="sip:carol@corp.example">
  <tuple id="t5e0c2a91">
    <status><basic>open</basic></status>
    <dm:deviceID>urn:uuid:3f2a9c1e-5b7d-4e8f-9a01-2c3d4e5f6a7b</dm:deviceID>
    <contact priority="0.8">sip:carol@10.1.2.3:5061;transport=tls</contact>
    <timestamp>2026-11-21T07:45:00Z</timestamp>
  </tuple>
  <dm:person id="p4c2b">
    <rpid:activities><rpid:meeting/></rpid:activities>
    <dm:note xml:lang="en">In a meeting until 11:00</dm:note>
  </dm:person>
  <dm:device id="d9e1">
    <rpid:user-input idle-threshold="600">active</rpid:user-input>
    <dm:deviceID>urn:uuid:3f2a9c1e-5b7d-4e8f-9a01-2c3d4e5f6a7b</dm:deviceID>
  </dm:device>
</presence>
"#;

fn main() {
    let ticks_per_second = clock_ticks();
    println!(
        "presence_bench: {PAIRS} subscriptions per direction ({SIP_USERS} SIP users x {XMPP_USERS} XMPP users)"
    );
    println!(
        "machine: {} CPU(s), load average {}",
        std::thread::available_parallelism().map_or(0, usize::from),
        load_average()
    );

    let sip_users: Vec<Jid> = (0..SIP_USERS)
        .map(|i| jid(&format!("user{i}@corp.example")))
        .collect();
    let xmpp_users: Vec<Jid> = (0..XMPP_USERS)
        .map(|i| jid(&format!("contact{i}@xmpp.example")))
        .collect();
    let pairs: Vec<(usize, usize)> = (0..SIP_USERS)
        .flat_map(|s| (0..XMPP_USERS).map(move |x| (s, x)))
        .collect();
    let config = SubscriptionConfig {
        // Every SIP user takes part in 1,000 subscriptions per direction: 2,000 with both tables' worth.
        max_per_local_user: 2 * XMPP_USERS,
        // All 100,000 XMPP parties are in one domain.
        max_per_remote_domain: PAIRS,
        ..SubscriptionConfig::default()
    };
    println!(
        "caps: max_per_local_user {}, max_per_remote_domain {} (defaults 1000 / 1000)",
        config.max_per_local_user, config.max_per_remote_domain
    );
    let body_away = parse_pidf(PIDF_AWAY.as_bytes()).expect("PIDF");
    let body_busy = parse_pidf(PIDF_BUSY.as_bytes()).expect("PIDF");
    assert_ne!(body_away, body_busy);
    assert_eq!(body_away.resources.len(), 1);
    let t0 = Instant::now();

    // ----- 1. Memory -----
    let rss_start = rss_kib();

    // Direction A: SIP watcher → XMPP contact, authorized, one cached resource.
    let mut table_a: SubscriptionTable<DialogId> = SubscriptionTable::new(config.clone());
    let cached = {
        let mut laptop = ResourcePresence::available("laptop");
        laptop.show = Some(Show::Away);
        laptop.status = Some(Status::with_lang("Back after lunch", "en"));
        laptop.priority = 5;
        laptop
    };
    for (i, &(s, x)) in pairs.iter().enumerate() {
        let (watcher, contact) = (&sip_users[s], &xmpp_users[x]);
        let (answer, _) = table_a.sip_subscribe(t0, watcher, contact, Some(3600), dialog_id(i));
        assert!(matches!(
            answer,
            sixgate_presence::subscription::SubscribeResponse::Accept { .. }
        ));
        // Presence before `subscribed` is cached; `subscribed` then sends one active NOTIFY with it, so the
        // pair is not left with a coalesced NOTIFY due.
        let _ = table_a.xmpp_presence(t0, &resource(contact, "laptop"), watcher, cached.clone());
        let actions = table_a.xmpp_subscribed(t0, contact, watcher);
        assert_eq!(actions.len(), 1);
    }
    let rss_a = rss_kib();
    assert_eq!(table_a.stats().inbound_pairs, PAIRS);

    // Direction B: XMPP user → SIP contact, 2xx, active NOTIFY with one tuple.
    let mut table_b: SubscriptionTable<DialogId> = SubscriptionTable::new(config.clone());
    for &(s, x) in &pairs {
        let (user, contact) = (&xmpp_users[x], &sip_users[s]);
        let _ = table_b.xmpp_subscribe(t0, user, contact);
        let _ = table_b.subscribe_response(t0, user, contact, 202, Some(3600), None);
        let (answer, actions) = table_b.notify_received(
            t0,
            user,
            contact,
            SubscriptionState::Active { expires: 3600 },
            Some(body_away.clone()),
        );
        assert_eq!(answer, NotifyAnswer::Ok);
        assert_eq!(actions.len(), 2);
    }
    let rss_b = rss_kib();
    assert_eq!(table_b.stats().outbound, PAIRS);

    // The app keeps a notifier `Dialog` per direction-A dialog next to the table (`Dialogs::notifier`).
    let our_contact = NameAddr::new(uri("sip:gw.corp.example:5061;transport=tls"));
    let mut notifier: HashMap<DialogId, Dialog> = HashMap::new();
    for (i, &(s, x)) in pairs.iter().enumerate() {
        let subscribe = subscribe_request(i, s, x);
        let dialog = Dialog::as_notifier(
            &subscribe,
            Token::from_u64("n", i as u64),
            our_contact.clone(),
            2,
        )
        .expect("dialog");
        assert_eq!(dialog.id(), &dialog_id(i));
        notifier.insert(dialog.id().clone(), dialog);
    }
    let rss_dialogs = rss_kib();

    let per_sub = |from: u64, to: u64| (to.saturating_sub(from) * 1024) as f64 / PAIRS as f64;
    println!(
        "RSS: start {:.1} MiB; +table A {:.1} MiB ({:.0} B/subscription); +table B {:.1} MiB ({:.0} B/subscription); \
         +notifier dialogs {:.1} MiB ({:.0} B/dialog); total {:.1} MiB",
        mib(rss_start),
        mib(rss_a - rss_start),
        per_sub(rss_start, rss_a),
        mib(rss_b - rss_a),
        per_sub(rss_a, rss_b),
        mib(rss_dialogs - rss_b),
        per_sub(rss_b, rss_dialogs),
        mib(rss_dialogs),
    );

    // ----- poll_timeout -----
    for (name, table) in [("A", &table_a), ("B", &table_b)] {
        let mut best = Duration::MAX;
        let start = Instant::now();
        for _ in 0..POLLS {
            let one = Instant::now();
            black_box(black_box(table).poll_timeout());
            best = best.min(one.elapsed());
        }
        let mean = start.elapsed() / POLLS as u32;
        println!(
            "poll_timeout, table {name} ({PAIRS} entries): mean {:.2} ms, best {:.2} ms per call ({POLLS} calls)",
            ms(mean),
            ms(best)
        );
    }

    // ----- 2. NOTIFY → presence (direction B) -----
    // Time has moved on (no coalescing applies to direction B, but keep `now` realistic).
    let now = t0 + Duration::from_secs(10);
    let notify = notify_request(PIDF_BUSY);
    let meter = Meter::start();
    for _ in 0..PAIRS {
        black_box(parse_pidf(black_box(notify.body.as_slice())).expect("PIDF"));
    }
    meter.report("parse_pidf alone", PAIRS, ticks_per_second);

    let mut stanzas = 0usize;
    let mut stanza_bytes = 0usize;
    let meter = Meter::start();
    for &(s, x) in &pairs {
        let (user, contact) = (&xmpp_users[x], &sip_users[s]);
        let received = notify_state(&notify).expect("Subscription-State");
        let state = table_state(&received);
        let body = parse_pidf(&notify.body).expect("PIDF");
        let (answer, actions) = table_b.notify_received(now, user, contact, state, Some(body));
        debug_assert_eq!(answer, NotifyAnswer::Ok);
        for action in &actions {
            if let Some(stanza) = action_stanza(action) {
                let mut out = Vec::new();
                write_element(&mut out, &stanza);
                stanzas += 1;
                stanza_bytes += out.len();
                black_box(out);
            }
        }
    }
    meter.report(
        "NOTIFY → presence (Subscription-State + parse_pidf + notify_received + action_stanza + write_element)",
        PAIRS,
        ticks_per_second,
    );
    assert_eq!(
        stanzas, PAIRS,
        "one changed resource, one stanza per NOTIFY"
    );
    println!(
        "  {stanzas} stanzas, {} bytes each on average",
        stanza_bytes / stanzas
    );

    // ----- 3. presence → NOTIFY (direction A) -----
    let entity = PidfEntity::new(&xmpp_users[0], EntityScheme::Sip).expect("entity");
    let changed = Presence {
        resources: vec![ResourcePresence {
            show: Some(Show::Dnd),
            status: Some(Status::with_lang("In a meeting until 11:00", "en")),
            ..cached.clone()
        }],
    };
    let meter = Meter::start();
    for _ in 0..PAIRS {
        black_box(to_pidf(black_box(&changed), &entity));
    }
    meter.report("to_pidf alone", PAIRS, ticks_per_second);

    // The stanzas as the s2s parser hands them over; built beforehand, not timed.
    let incoming: Vec<Element> = pairs
        .iter()
        .map(|&(s, x)| {
            Element::new(ns::SERVER, "presence")
                .with_attr("from", resource(&xmpp_users[x], "laptop").to_string())
                .with_attr("to", sip_users[s].to_string())
                .with_child(Element::new(ns::SERVER, "show").with_text("dnd"))
                .with_child({
                    let mut status =
                        Element::new(ns::SERVER, "status").with_text("In a meeting until 11:00");
                    status.set_attr_ns(ns::XML, "lang", "en");
                    status
                })
                .with_child(Element::new(ns::SERVER, "priority").with_text("5"))
        })
        .collect();
    // More than `notify_interval` after the NOTIFY the setup sent: nothing is coalesced.
    let now = t0 + Duration::from_secs(10);
    let mut notifies = 0usize;
    let mut notify_bytes = 0usize;
    let meter = Meter::start();
    for stanza in &incoming {
        let (Some(from), Some(to)) = (
            stanza.attr("from").and_then(|a| Jid::parse(a).ok()),
            stanza.attr("to").and_then(|a| Jid::parse(a).ok()),
        ) else {
            unreachable!("valid JIDs");
        };
        let ContactPresence::Resource(presence) = contact_presence(stanza, &from, true) else {
            unreachable!("presence from a full JID");
        };
        let actions = table_a.xmpp_presence(now, &from, &to, presence);
        for action in actions {
            if let Action::Notify {
                dialog: id,
                contact,
                state,
                body,
                ..
            } = action
            {
                let known = notifier.get_mut(&id).expect("dialog");
                let request = build_notify(known, &contact, &state, body).expect("NOTIFY");
                let bytes = request.to_bytes();
                notifies += 1;
                notify_bytes += bytes.len();
                black_box(bytes);
            }
        }
    }
    meter.report(
        "presence → NOTIFY (JIDs + contact_presence + xmpp_presence + build_notify + to_bytes)",
        PAIRS,
        ticks_per_second,
    );
    assert_eq!(notifies, PAIRS, "one NOTIFY per presence");
    println!(
        "  {notifies} NOTIFYs, {} bytes each on average (headers and PIDF body)",
        notify_bytes / notifies
    );
    println!(
        "VmRSS at the end {:.1} MiB, VmHWM {:.1} MiB",
        mib(rss_kib()),
        mib(status_kib("VmHWM"))
    );
}

// ----- measurement -----

/// Wall-clock time and process CPU time (`utime + stime` from `/proc/self/stat`) of a loop.
struct Meter {
    wall: Instant,
    ticks: u64,
}

impl Meter {
    fn start() -> Self {
        Self {
            ticks: cpu_ticks(),
            wall: Instant::now(),
        }
    }

    fn report(self, what: &str, ops: usize, ticks_per_second: u64) {
        let wall = self.wall.elapsed();
        let ticks = cpu_ticks() - self.ticks;
        let cpu_ns = ticks as f64 * 1e9 / ticks_per_second as f64;
        println!(
            "{what}: {:.0} ns/op wall, {:.0} ns/op CPU ({ops} ops, {:.3} s wall, {ticks} ticks)",
            wall.as_nanos() as f64 / ops as f64,
            cpu_ns / ops as f64,
            wall.as_secs_f64()
        );
    }
}

fn clock_ticks() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

/// `utime + stime` of this process, in clock ticks.
fn cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("/proc/self/stat");
    // Fields after the command name (which is in parentheses): `rest[0]` is field 3, utime field 14.
    let rest: Vec<&str> = stat
        .rsplit_once(')')
        .expect("stat format")
        .1
        .split_whitespace()
        .collect();
    let field = |n: usize| rest[n - 3].parse::<u64>().expect("a number");
    field(14) + field(15)
}

fn status_kib(key: &str) -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|line| line.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|value| value.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a Vm line")
}

fn rss_kib() -> u64 {
    status_kib("VmRSS")
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

// ----- fixtures -----

fn jid(text: &str) -> Jid {
    Jid::parse(text).expect("JID")
}

fn resource(bare: &Jid, resource: &str) -> Jid {
    Jid::new(bare.local(), bare.domain().clone(), Some(resource)).expect("JID")
}

fn uri(text: &str) -> Uri {
    Uri::parse(text).expect("URI")
}

fn dialog_id(i: usize) -> DialogId {
    DialogId {
        call_id: CallId::parse(&format!("{i:08x}-7c1e9a@edge.corp.example")).expect("Call-ID"),
        local_tag: Token::from_u64("n", i as u64),
        remote_tag: Token::new(&format!("w{i:08x}")).expect("tag"),
    }
}

/// The SUBSCRIBE of pair `i` as the edge relays it (Record-Route of the edge, the watcher's GRUU Contact).
fn subscribe_request(i: usize, s: usize, x: usize) -> Request {
    let to = uri(&format!("sip:contact{x}@xmpp.example"));
    let mut from = NameAddr::new(uri(&format!("sip:user{s}@corp.example")));
    from.params
        .set("tag", Some(&format!("w{i:08x}")))
        .expect("tag");
    let mut request = Request::new(
        Method::Subscribe,
        to.clone(),
        from,
        NameAddr::new(to),
        CallId::parse(&format!("{i:08x}-7c1e9a@edge.corp.example")).expect("Call-ID"),
        1,
    );
    let headers = &mut request.headers;
    headers
        .push(
            HeaderName::CONTACT,
            format!("<sip:user{s}@10.1.2.3:5061;transport=tls;gr=urn:uuid:3f2a9c1e>"),
        )
        .expect("Contact");
    headers
        .push(
            HeaderName::RECORD_ROUTE,
            "<sip:edge.corp.example:5061;transport=tls;lr>",
        )
        .expect("Record-Route");
    dialog::set_presence_event(headers, None);
    request
}

/// A NOTIFY in a subscriber dialog, `active;expires=3000`, with `pidf` as its body.
fn notify_request(pidf: &str) -> Request {
    let mut request = Request::new(
        Method::Notify,
        uri("sip:gw.corp.example:5061;transport=tls"),
        NameAddr::new(uri("sip:user0@corp.example")),
        NameAddr::new(uri("sip:contact0@xmpp.example")),
        CallId::parse("b1@gw.corp.example").expect("Call-ID"),
        2,
    );
    dialog::set_presence_event(&mut request.headers, None);
    dialog::set_subscription_state(
        &mut request.headers,
        &SubscriptionStatus::Active { expires: 3000 },
    );
    request
        .headers
        .set(HeaderName::CONTENT_TYPE, PIDF)
        .expect("Content-Type");
    request.body = pidf.as_bytes().to_vec();
    request
}

// ----- copies of the private translations in crates/app/src/presence.rs -----
