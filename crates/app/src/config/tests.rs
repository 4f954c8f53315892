use std::fs;
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

/// A scratch directory holding the files the must-exist checks look for; removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(name: &str) -> Self {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "sixgate-config-{}-{name}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("certs")).expect("create scratch dir");
        for file in [
            "gw.crt",
            "gw.key",
            "ca.pem",
            "certs/other.crt",
            "certs/other.key",
        ] {
            fs::write(dir.join(file), "placeholder").expect("write scratch file");
        }
        Self(dir)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn domain(text: &str) -> Domain {
    Domain::parse(text).expect("valid test domain")
}

const MINIMAL: &str = r#"
[[local_domains]]
domain = "echo.localhost"
delivery = "echo"
"#;

/// The errors for `text`, as `(key, message)`, failing the test if it parses.
fn errors(text: &str, base_dir: &Path) -> Vec<(String, String)> {
    match parse(text, base_dir) {
        Ok(config) => panic!("expected errors, got {config:#?}"),
        Err(ConfigErrors(errors)) => errors
            .into_iter()
            .map(|error| (error.key, error.message))
            .collect(),
    }
}

/// The errors for `text` appended to a valid minimal file.
fn errors_with_minimal(text: &str) -> Vec<(String, String)> {
    // The extra text goes first, so its top-level keys do not end up inside `[[local_domains]]`.
    errors(&format!("{text}\n{MINIMAL}"), Path::new("/nonexistent"))
}

/// Asserts that exactly one error concerns `key` and that its message contains `needle`.
#[track_caller]
fn assert_error(errors: &[(String, String)], key: &str, needle: &str) {
    let matching: Vec<_> = errors.iter().filter(|(k, _)| k == key).collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one error for {key:?} in {errors:#?}"
    );
    assert!(
        matching[0].1.contains(needle),
        "error for {key:?} is {:?}, expected it to contain {needle:?}",
        matching[0].1
    );
}

/// Asserts that `text` fails with exactly one error, for `key`, containing `needle`.
#[track_caller]
fn assert_only_error(text: &str, key: &str, needle: &str) {
    let errors = errors_with_minimal(text);
    assert_eq!(errors.len(), 1, "expected exactly one error in {errors:#?}");
    assert_error(&errors, key, needle);
}

fn parse_ok(text: &str, base_dir: &Path) -> Config {
    match parse(text, base_dir) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    }
}

#[test]
fn full_example_round_trips() {
    let scratch = Scratch::new("full");
    let dir = scratch.path();
    let text = r#"
[xmpp]
listen = ["127.0.0.1:5269", "[::1]:5270"]
stanza_size_limit = 65536
connect_timeout = 10
negotiation_timeout = 20
idle_timeout = 300
keepalive_interval = 45
outbound_queue_limit = 50
dialback_secret = "0123456789abcdef0123"

[sip]
listen = ["127.0.0.1:5061"]
connect_timeout = 5
idle_timeout = 120
via_host = "gw.example"

[dns]
nameservers = ["127.0.0.53", "192.0.2.1:5353", "::1", "[2001:db8::1]:54"]
timeout = 3

[tls]
trust_system_roots = false
ca_files = ["ca.pem"]
dev_certificate_dir = "/var/lib/sixgate/dev-certs"

[[tls.certificates]]
certificate = "gw.crt"
key = "gw.key"
domains = ["gw.example", "Echo.Localhost."]

[[tls.certificates]]
certificate = "certs/other.crt"
key = "certs/other.key"
domains = ["other.example"]

[[local_domains]]
domain = "echo.localhost"
delivery = "echo"

[[local_domains]]
domain = "gw.example"
delivery = "echo"

[[local_domains]]
domain = "other.example"
delivery = "sip"
edge = "edge.other.example:5061"

[[local_domains]]
domain = "corp.example"
delivery = "sip"
edge = "192.0.2.9:5061"
edge_identity = "edge.corp.example"

[federation]
default_route = "xmpp"
require_valid_certificate = false
allow_dialback = false

[[remote_domains]]
domain = "partner.example"
route = "xmpp"
require_valid_certificate = true
connect = ["xmpp.Partner.example:5269", "192.0.2.7:5270", "[2001:db8::7]:5269"]

[[remote_domains]]
domain = "legacy.example"
route = "xmpp"
allow_dialback = true

[[remote_domains]]
domain = "blocked.example"
route = "deny"

[[remote_domains]]
domain = "sip-partner.example"
route = "sip"
next_hop = "sip.sip-partner.example:5061"

[[remote_domains]]
domain = "discovered.example"
route = "sip"
"#;
    let expected = Config {
        sip: SipSettings {
            listen: vec!["127.0.0.1:5061".parse().expect("address")],
            connect_timeout: Duration::from_secs(5),
            idle_timeout: Duration::from_secs(120),
            via_host: Some("gw.example".to_owned()),
        },
        xmpp: XmppConfig {
            listen: vec![
                "127.0.0.1:5269".parse().expect("address"),
                "[::1]:5270".parse().expect("address"),
            ],
            stanza_size_limit: 65536,
            connect_timeout: Duration::from_secs(10),
            negotiation_timeout: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(300),
            keepalive_interval: Duration::from_secs(45),
            outbound_queue_limit: 50,
            dialback_secret: Some("0123456789abcdef0123".to_owned()),
        },
        dns: DnsSettings {
            nameservers: vec![
                "127.0.0.53:53".parse().expect("address"),
                "192.0.2.1:5353".parse().expect("address"),
                "[::1]:53".parse().expect("address"),
                "[2001:db8::1]:54".parse().expect("address"),
            ],
            timeout: Duration::from_secs(3),
        },
        tls: TlsSettings {
            trust_system_roots: false,
            ca_files: vec![dir.join("ca.pem")],
            dev_certificate_dir: PathBuf::from("/var/lib/sixgate/dev-certs"),
            certificates: vec![
                CertificateConfig {
                    certificate: dir.join("gw.crt"),
                    key: dir.join("gw.key"),
                    domains: vec![domain("gw.example"), domain("echo.localhost")],
                },
                CertificateConfig {
                    certificate: dir.join("certs/other.crt"),
                    key: dir.join("certs/other.key"),
                    domains: vec![domain("other.example")],
                },
            ],
        },
        local_domains: vec![
            LocalDomain {
                domain: domain("echo.localhost"),
                delivery: LocalDelivery::Echo,
            },
            LocalDomain {
                domain: domain("gw.example"),
                delivery: LocalDelivery::Echo,
            },
            LocalDomain {
                domain: domain("other.example"),
                delivery: LocalDelivery::Sip(SipEdge {
                    host: "edge.other.example".to_owned(),
                    port: 5061,
                    identity: domain("edge.other.example"),
                }),
            },
            LocalDomain {
                domain: domain("corp.example"),
                delivery: LocalDelivery::Sip(SipEdge {
                    host: "192.0.2.9".to_owned(),
                    port: 5061,
                    identity: domain("edge.corp.example"),
                }),
            },
        ],
        federation: Federation {
            default_route: DefaultRoute::Xmpp,
            require_valid_certificate: false,
            allow_dialback: false,
        },
        remote_domains: vec![
            RemoteDomain {
                domain: domain("partner.example"),
                route: RemoteRoute::Xmpp(XmppRemote {
                    require_valid_certificate: true,
                    allow_dialback: false,
                    connect: vec![
                        ("xmpp.partner.example".to_owned(), 5269),
                        ("192.0.2.7".to_owned(), 5270),
                        ("2001:db8::7".to_owned(), 5269),
                    ],
                }),
            },
            RemoteDomain {
                domain: domain("legacy.example"),
                route: RemoteRoute::Xmpp(XmppRemote {
                    require_valid_certificate: false,
                    allow_dialback: true,
                    connect: Vec::new(),
                }),
            },
            RemoteDomain {
                domain: domain("blocked.example"),
                route: RemoteRoute::Deny,
            },
            RemoteDomain {
                domain: domain("sip-partner.example"),
                route: RemoteRoute::Sip(SipRemote {
                    next_hop: Some(("sip.sip-partner.example".to_owned(), 5061)),
                }),
            },
            RemoteDomain {
                domain: domain("discovered.example"),
                route: RemoteRoute::Sip(SipRemote { next_hop: None }),
            },
        ],
    };
    assert_eq!(parse_ok(text, dir), expected);
    assert_eq!(
        expected.local_domain_names(),
        vec![
            domain("echo.localhost"),
            domain("gw.example"),
            domain("other.example"),
            domain("corp.example")
        ]
    );
}

#[test]
fn minimal_file_gets_defaults() {
    let base = Path::new("/etc/sixgate");
    let config = parse_ok(MINIMAL, base);
    assert_eq!(
        config,
        Config {
            sip: SipSettings::default(),
            xmpp: XmppConfig {
                listen: vec!["0.0.0.0:5269".parse().expect("address")],
                stanza_size_limit: 524_288,
                connect_timeout: Duration::from_secs(30),
                negotiation_timeout: Duration::from_secs(60),
                idle_timeout: Duration::from_secs(600),
                keepalive_interval: Duration::from_secs(60),
                outbound_queue_limit: 10_000,
                dialback_secret: None,
            },
            dns: DnsSettings {
                nameservers: Vec::new(),
                timeout: Duration::from_secs(5),
            },
            tls: TlsSettings {
                trust_system_roots: true,
                ca_files: Vec::new(),
                dev_certificate_dir: base.join("dev-certs"),
                certificates: Vec::new(),
            },
            local_domains: vec![LocalDomain {
                domain: domain("echo.localhost"),
                delivery: LocalDelivery::Echo,
            }],
            federation: Federation {
                default_route: DefaultRoute::Deny,
                require_valid_certificate: true,
                allow_dialback: true,
            },
            remote_domains: Vec::new(),
        }
    );
    assert_eq!(config.xmpp, XmppConfig::default());
    assert_eq!(config.dns, DnsSettings::default());
    assert_eq!(config.federation, Federation::default());
}

#[test]
fn empty_sections_and_empty_listen_are_accepted() {
    let config = parse_ok(
        &format!("{MINIMAL}\n[xmpp]\nlisten = []\n[dns]\n[tls]\n[federation]\n"),
        Path::new("/"),
    );
    assert!(config.xmpp.listen.is_empty());
}

#[test]
fn listen_addresses_are_checked() {
    let errors = errors_with_minimal(
        "[xmpp]\nlisten = [\"127.0.0.1:5269\", \"1.2.3.4\", 5, \"127.0.0.1:5269\"]",
    );
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(
        &errors,
        "xmpp.listen[1]",
        "invalid socket address \"1.2.3.4\"",
    );
    assert_error(
        &errors,
        "xmpp.listen[2]",
        "expected a string, found integer",
    );

    assert_only_error(
        "[xmpp]\nlisten = [\"127.0.0.1:5269\", \"127.0.0.1:5269\"]",
        "xmpp.listen[1]",
        "duplicate address \"127.0.0.1:5269\" (also xmpp.listen[0])",
    );
    assert_only_error(
        "[xmpp]\nlisten = \"127.0.0.1:5269\"",
        "xmpp.listen",
        "expected an array, found string",
    );
}

#[test]
fn stanza_size_limit_is_bounded() {
    assert_only_error(
        "[xmpp]\nstanza_size_limit = 9999",
        "xmpp.stanza_size_limit",
        "RFC 6120",
    );
    assert_only_error(
        "[xmpp]\nstanza_size_limit = 16777217",
        "xmpp.stanza_size_limit",
        "got 16777217",
    );
    assert_only_error(
        "[xmpp]\nstanza_size_limit = \"big\"",
        "xmpp.stanza_size_limit",
        "expected an integer, found string",
    );
    for ok in [10_000, 16_777_216] {
        let config = parse_ok(
            &format!("{MINIMAL}\n[xmpp]\nstanza_size_limit = {ok}"),
            Path::new("/"),
        );
        assert_eq!(config.xmpp.stanza_size_limit, ok);
    }
}

#[test]
fn durations_must_be_positive_whole_seconds() {
    for key in [
        "connect_timeout",
        "negotiation_timeout",
        "idle_timeout",
        "keepalive_interval",
    ] {
        assert_only_error(
            &format!("[xmpp]\n{key} = 0"),
            &format!("xmpp.{key}"),
            "must be between 1 and",
        );
        assert_only_error(
            &format!("[xmpp]\n{key} = 1.5"),
            &format!("xmpp.{key}"),
            "expected a whole number of seconds, found float",
        );
    }
    assert_only_error("[dns]\ntimeout = -1", "dns.timeout", "got -1");
    assert_only_error(
        "[xmpp]\nidle_timeout = 99999999999",
        "xmpp.idle_timeout",
        "seconds",
    );
}

#[test]
fn keepalive_must_be_shorter_than_idle_timeout() {
    assert_only_error(
        "[xmpp]\nidle_timeout = 60\nkeepalive_interval = 60",
        "xmpp.keepalive_interval",
        "must be less than idle_timeout (60 seconds)",
    );
    // Against the default idle timeout of 600 seconds.
    assert_only_error(
        "[xmpp]\nkeepalive_interval = 900",
        "xmpp.keepalive_interval",
        "idle_timeout (600 seconds)",
    );
    // An invalid idle timeout is reported once, without a knock-on error for the keepalive.
    assert_only_error(
        "[xmpp]\nidle_timeout = 0\nkeepalive_interval = 60",
        "xmpp.idle_timeout",
        "between 1 and",
    );
    let config = parse_ok(
        &format!("{MINIMAL}\n[xmpp]\nidle_timeout = 61\nkeepalive_interval = 60"),
        Path::new("/"),
    );
    assert_eq!(config.xmpp.keepalive_interval, Duration::from_secs(60));
}

#[test]
fn outbound_queue_limit_is_bounded() {
    assert_only_error(
        "[xmpp]\noutbound_queue_limit = 0",
        "xmpp.outbound_queue_limit",
        "between 1 and 100000",
    );
    assert_only_error(
        "[xmpp]\noutbound_queue_limit = 100001",
        "xmpp.outbound_queue_limit",
        "between 1 and 100000",
    );
}

#[test]
fn dialback_secret_must_be_long_and_is_never_shown() {
    let errors = errors_with_minimal("[xmpp]\ndialback_secret = \"short-secret\"");
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(&errors, "xmpp.dialback_secret", "at least 16 characters");
    assert!(!errors[0].1.contains("short-secret"));

    let config = parse_ok(
        &format!("{MINIMAL}\n[xmpp]\ndialback_secret = \"a very long secret value\""),
        Path::new("/"),
    );
    assert_eq!(
        config.xmpp.dialback_secret.as_deref(),
        Some("a very long secret value")
    );
    assert!(!format!("{config:?}").contains("a very long secret value"));
}

#[test]
fn nameservers_are_checked() {
    let errors = errors_with_minimal("[dns]\nnameservers = [\"dns.example\", \"10.0.0.1:0\"]");
    assert_eq!(errors.len(), 2, "{errors:#?}");
    assert_error(
        &errors,
        "dns.nameservers[0]",
        "invalid name server address \"dns.example\"",
    );
    assert_error(&errors, "dns.nameservers[1]", "invalid name server address");
    let config = parse_ok(
        &format!("{MINIMAL}\n[dns]\nnameservers = [\"[::1]\"]"),
        Path::new("/"),
    );
    assert_eq!(
        config.dns.nameservers,
        vec!["[::1]:53".parse::<SocketAddr>().expect("address")]
    );
}

#[test]
fn files_must_exist() {
    let scratch = Scratch::new("files");
    let dir = scratch.path();
    let text = format!(
        r#"{MINIMAL}
[tls]
ca_files = ["ca.pem", "missing-ca.pem", "certs"]
dev_certificate_dir = "gw.crt"
[[tls.certificates]]
certificate = "gw.crt"
key = "/x/y.key"
domains = ["echo.localhost"]
"#
    );
    let errors = errors(&text, dir);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_error(
        &errors,
        "tls.ca_files[1]",
        &format!("file not found: {}", dir.join("missing-ca.pem").display()),
    );
    assert_error(&errors, "tls.ca_files[2]", "not a regular file");
    assert_error(&errors, "tls.dev_certificate_dir", "not a directory");
    assert_error(
        &errors,
        "tls.certificates[0].key",
        "file not found: /x/y.key",
    );
}

#[test]
fn certificates_are_checked() {
    let scratch = Scratch::new("certificates");
    let dir = scratch.path();
    let text = r#"
[[local_domains]]
domain = "a.example"
delivery = "echo"

[[tls.certificates]]
domains = []

[[tls.certificates]]
certificate = "gw.crt"
key = "gw.key"
domains = ["a.example", "b.example", "bad domain"]

[[tls.certificates]]
certificate = "gw.crt"
key = "gw.key"
domains = ["A.example"]
"#;
    let errors = errors(text, dir);
    assert_eq!(errors.len(), 6, "{errors:#?}");
    assert_error(
        &errors,
        "tls.certificates[0].certificate",
        "missing required key",
    );
    assert_error(&errors, "tls.certificates[0].key", "missing required key");
    assert_error(
        &errors,
        "tls.certificates[0].domains",
        "at least one domain",
    );
    assert_error(
        &errors,
        "tls.certificates[1].domains[2]",
        "invalid domain \"bad domain\"",
    );
    assert_error(
        &errors,
        "tls.certificates[2].domains[0]",
        "duplicate domain \"a.example\" (also tls.certificates[1])",
    );
    assert_error(
        &errors,
        "tls.certificates[1].domains[1]",
        "\"b.example\" is not a local domain",
    );
}

#[test]
fn certificate_domains_are_not_checked_against_broken_local_domains() {
    let scratch = Scratch::new("broken-local");
    let text = r#"
[[local_domains]]
domain = "a example"
delivery = "echo"

[[tls.certificates]]
certificate = "gw.crt"
key = "gw.key"
domains = ["a.example"]
"#;
    let errors = errors(text, scratch.path());
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(
        &errors,
        "local_domains[0].domain",
        "invalid domain \"a example\"",
    );
}

#[test]
fn local_domains_are_required() {
    let errors = errors("", Path::new("/"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    assert_error(&errors, "local_domains", "missing required key");

    let errors = errors_without_minimal("local_domains = []");
    assert_error(
        &errors,
        "local_domains",
        "at least one [[local_domains]] entry",
    );

    let errors = errors_without_minimal("local_domains = 3");
    assert_error(&errors, "local_domains", "expected an array of tables");

    let errors = errors_without_minimal("local_domains = [\"echo.localhost\"]");
    assert_error(
        &errors,
        "local_domains[0]",
        "expected a table, found string",
    );
}

fn errors_without_minimal(text: &str) -> Vec<(String, String)> {
    errors(text, Path::new("/"))
}

#[test]
fn local_domains_are_checked() {
    let text = r#"
[[local_domains]]
domain = "a.example"
delivery = "echo"

[[local_domains]]
domain = "A.EXAMPLE."
delivery = "echo"

[[local_domains]]
delivery = "fax"

[[local_domains]]
domain = "b.example"
"#;
    let errors = errors_without_minimal(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_error(
        &errors,
        "local_domains[1].domain",
        "duplicate domain \"a.example\" (also local_domains[0])",
    );
    assert_error(&errors, "local_domains[2].domain", "missing required key");
    assert_error(
        &errors,
        "local_domains[2].delivery",
        "unknown delivery \"fax\" (expected \"sip\" or \"echo\")",
    );
    assert_error(&errors, "local_domains[3].delivery", "missing required key");
}

#[test]
fn local_delivery_names_round_trip() {
    let config = parse_ok(MINIMAL, Path::new("/"));
    assert_eq!(config.local_domains[0].delivery.name(), "echo");
}

#[test]
fn federation_is_checked() {
    let errors = errors_with_minimal(
        "[federation]\ndefault_route = \"allow\"\nrequire_valid_certificate = \"yes\"\nallow_dialback = 1",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_error(
        &errors,
        "federation.default_route",
        "unknown route \"allow\" (expected \"xmpp\", \"sip\" or \"deny\")",
    );
    assert_error(
        &errors,
        "federation.require_valid_certificate",
        "expected true or false, found string",
    );
    assert_error(
        &errors,
        "federation.allow_dialback",
        "expected true or false, found integer",
    );
}

#[test]
fn remote_domains_inherit_federation_defaults() {
    let config = parse_ok(
        &format!(
            r#"{MINIMAL}
[federation]
require_valid_certificate = false
allow_dialback = false

[[remote_domains]]
domain = "inherits.example"
route = "xmpp"

[[remote_domains]]
domain = "overrides.example"
route = "xmpp"
require_valid_certificate = true
allow_dialback = true
connect = []
"#
        ),
        Path::new("/"),
    );
    let routes: Vec<_> = config.remote_domains.iter().map(|r| &r.route).collect();
    assert_eq!(
        routes,
        vec![
            &RemoteRoute::Xmpp(XmppRemote {
                require_valid_certificate: false,
                allow_dialback: false,
                connect: Vec::new(),
            }),
            &RemoteRoute::Xmpp(XmppRemote {
                require_valid_certificate: true,
                allow_dialback: true,
                connect: Vec::new(),
            }),
        ]
    );
}

#[test]
fn remote_domains_are_checked() {
    let text = r#"
[[remote_domains]]
domain = "a.example"
route = "xmpp"

[[remote_domains]]
domain = "b.example"
route = "deny"

[[remote_domains]]
domain = "A.example"
route = "deny"

[[remote_domains]]
domain = "echo.localhost"
route = "xmpp"

[[remote_domains]]
route = "smtp"

[[remote_domains]]
domain = "c.example"
"#;
    let errors = errors_with_minimal(text);
    assert_eq!(errors.len(), 5, "{errors:#?}");
    assert_error(
        &errors,
        "remote_domains[2].domain",
        "duplicate domain \"a.example\" (also remote_domains[0])",
    );
    assert_error(
        &errors,
        "remote_domains[3].domain",
        "\"echo.localhost\" is a local domain (local_domains[0])",
    );
    assert_error(&errors, "remote_domains[4].domain", "missing required key");
    assert_error(&errors, "remote_domains[4].route", "unknown route \"smtp\"");
    assert_error(&errors, "remote_domains[5].route", "missing required key");
}

#[test]
fn denied_domains_reject_xmpp_settings() {
    let text = r#"
[[remote_domains]]
domain = "blocked.example"
route = "deny"
require_valid_certificate = false
allow_dialback = "no"
connect = ["blocked.example:5269"]
"#;
    let errors = errors_with_minimal(text);
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_error(
        &errors,
        "remote_domains[0].require_valid_certificate",
        "only applies to route = \"xmpp\"",
    );
    assert_error(
        &errors,
        "remote_domains[0].connect",
        "only applies to route = \"xmpp\"",
    );
    // The wrong type and the misplaced key are both reported.
    let dialback: Vec<_> = errors
        .iter()
        .filter(|(key, _)| key == "remote_domains[0].allow_dialback")
        .collect();
    assert_eq!(dialback.len(), 2, "{errors:#?}");
}

#[test]
fn connect_endpoints_are_checked() {
    let text = r#"
[[remote_domains]]
domain = "partner.example"
route = "xmpp"
connect = [
    "xmpp.partner.example",
    "2001:db8::1:5269",
    "[2001:db8::1]",
    "[xmpp.partner.example]:5269",
    "xmpp.partner.example:0",
    "xmpp.partner.example:65536",
    ":5269",
    "bad host:5269",
    "ok.example:5269",
]
"#;
    let errors = errors_with_minimal(text);
    assert_eq!(errors.len(), 8, "{errors:#?}");
    let key = |i: usize| format!("remote_domains[0].connect[{i}]");
    assert_error(&errors, &key(0), "missing port");
    assert_error(&errors, &key(1), "must be written in brackets");
    assert_error(&errors, &key(2), "expected [IPv6]:port");
    assert_error(&errors, &key(3), "only an IPv6 address");
    assert_error(&errors, &key(4), "from 1 to 65535");
    assert_error(&errors, &key(5), "from 1 to 65535");
    assert_error(&errors, &key(6), "bad host");
    assert_error(&errors, &key(7), "bad host");
}

#[test]
fn unknown_keys_are_rejected_at_every_level() {
    let scratch = Scratch::new("unknown");
    let text = r#"
verbose = true

[xmpp]
listen = []
lisen = ["0.0.0.0:5269"]

[dns.extra]
a = 1

[[tls.certificates]]
certificate = "gw.crt"
key = "gw.key"
domains = ["echo.localhost"]
password = "hunter2"

[[local_domains]]
domain = "echo.localhost"
delivery = "echo"
"sip proxy" = "x"

[federation]
s2s_secure_auth = true

[[remote_domains]]
domain = "a.example"
route = "deny"

[[remote_domains]]
domain = "b.example"
route = "xmpp"
require_valid_certificat = true
"#;
    let errors = errors(text, scratch.path());
    assert_eq!(errors.len(), 7, "{errors:#?}");
    assert_error(&errors, "verbose", "unknown key");
    assert_error(
        &errors,
        "xmpp.lisen",
        "unknown key (expected one of: listen,",
    );
    assert_error(&errors, "dns.extra", "unknown key");
    assert_error(&errors, "tls.certificates[0].password", "unknown key");
    assert_error(&errors, "local_domains[0].\"sip proxy\"", "unknown key");
    assert_error(&errors, "federation.s2s_secure_auth", "unknown key");
    assert_error(
        &errors,
        "remote_domains[1].require_valid_certificat",
        "unknown key",
    );
}

#[test]
fn several_different_errors_are_all_reported() {
    let scratch = Scratch::new("several");
    let text = r#"
colour = "blue"

[xmpp]
listen = ["1.2.3.4"]
stanza_size_limit = 100

[tls]
[[tls.certificates]]
certificate = "gw.crt"
key = "missing.key"
domains = ["echo.localhost"]

[[local_domains]]
domain = "echo.localhost"
delivery = "echo"

[[remote_domains]]
domain = "echo.localhost"
route = "deny"
connect = ["echo.localhost:5269"]
"#;
    let errors = errors(text, scratch.path());
    let keys: Vec<&str> = errors.iter().map(|(key, _)| key.as_str()).collect();
    assert_eq!(
        keys,
        vec![
            "colour",
            "xmpp.listen[0]",
            "xmpp.stanza_size_limit",
            "tls.certificates[0].key",
            "remote_domains[0].domain",
            "remote_domains[0].connect",
        ]
    );
    assert_error(
        &errors,
        "xmpp.listen[0]",
        "invalid socket address \"1.2.3.4\"",
    );
    assert_error(
        &errors,
        "tls.certificates[0].key",
        &format!(
            "file not found: {}",
            scratch.path().join("missing.key").display()
        ),
    );
}

#[test]
fn wrongly_typed_sections_are_reported() {
    let errors = errors_with_minimal("xmpp = 5\ndns = []\nfederation = \"deny\"");
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_error(&errors, "xmpp", "expected a table, found integer");
    assert_error(&errors, "dns", "expected a table, found array");
    assert_error(&errors, "federation", "expected a table, found string");
}

#[test]
fn syntax_errors_have_a_line_and_column() {
    let text = "[[local_domains]]\ndomain = \"echo.localhost\"\ndelivery = echo\n";
    let errors = errors(text, Path::new("/"));
    assert_eq!(errors.len(), 1, "{errors:#?}");
    let (key, message) = &errors[0];
    assert_eq!(key, "");
    assert!(
        message.starts_with("TOML syntax error at line 3, column "),
        "{message}"
    );
    assert!(!message.contains('\n'), "{message}");

    let duplicate = "[xmpp]\nidle_timeout = 1\nidle_timeout = 2\n";
    let errors = errors_without_minimal(duplicate);
    assert!(errors[0].1.contains("line 3"), "{errors:#?}");
}

#[test]
fn relative_paths_are_resolved_against_base_dir() {
    let scratch = Scratch::new("relative");
    let dir = scratch.path();
    let absolute_ca = dir.join("ca.pem");
    let text = format!(
        r#"{MINIMAL}
[tls]
ca_files = ["ca.pem", "./certs/../ca.pem", {absolute_ca:?}]
dev_certificate_dir = "state/dev"
[[tls.certificates]]
certificate = "certs/other.crt"
key = "certs/other.key"
domains = ["echo.localhost"]
"#
    );
    let config = parse_ok(&text, dir);
    assert_eq!(
        config.tls.ca_files,
        vec![
            dir.join("ca.pem"),
            dir.join("./certs/../ca.pem"),
            absolute_ca.clone()
        ]
    );
    assert_eq!(config.tls.dev_certificate_dir, dir.join("state/dev"));
    assert_eq!(
        config.tls.certificates[0].certificate,
        dir.join("certs/other.crt")
    );

    // The same file read from elsewhere fails: the paths are not taken from the working directory.
    let elsewhere = errors(&text, Path::new("/nonexistent-sixgate"));
    assert_eq!(elsewhere.len(), 4, "{elsewhere:#?}");
}

#[test]
fn load_reads_the_file_and_uses_its_directory() {
    let scratch = Scratch::new("load");
    let dir = scratch.path();
    let file = dir.join("gateway.toml");
    fs::write(
        &file,
        format!("{MINIMAL}\n[tls]\nca_files = [\"ca.pem\"]\n"),
    )
    .expect("write config");
    let config = match load(&file) {
        Ok(config) => config,
        Err(errors) => panic!("unexpected errors:\n{errors}"),
    };
    assert_eq!(config.tls.ca_files, vec![dir.join("ca.pem")]);
    assert_eq!(config.tls.dev_certificate_dir, dir.join("dev-certs"));

    let missing = dir.join("missing.toml");
    let Err(ConfigErrors(errors)) = load(&missing) else {
        panic!("loading a missing file succeeded");
    };
    assert_eq!(errors.len(), 1);
    assert_eq!(errors[0].key, "");
    assert!(
        errors[0]
            .message
            .starts_with(&format!("cannot read {}", missing.display())),
        "{}",
        errors[0].message
    );
}

#[test]
fn errors_display_one_per_line() {
    let errors = ConfigErrors(vec![
        ConfigError {
            key: "xmpp.listen[1]".to_owned(),
            message: "invalid socket address \"1.2.3.4\"".to_owned(),
        },
        ConfigError {
            key: String::new(),
            message: "whole-file problem".to_owned(),
        },
    ]);
    assert_eq!(
        errors.to_string(),
        "xmpp.listen[1]: invalid socket address \"1.2.3.4\"\nwhole-file problem"
    );
}

#[test]
fn documented_example_is_valid() {
    let doc = include_str!("../../../../docs/configuration.md");
    let section = doc
        .split("## Complete example")
        .nth(1)
        .expect("docs/configuration.md has a complete example");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the complete example is a toml block");
    let scratch = Scratch::new("documented");
    for file in ["certs/gw.example.crt", "certs/gw.example.key"] {
        fs::write(scratch.path().join(file), "placeholder").expect("write scratch file");
    }
    let config = parse_ok(example, scratch.path());
    assert_eq!(config.remote_domains.len(), 4);
    assert_eq!(config.local_domains.len(), 3);
    assert_eq!(config.tls.certificates.len(), 1);
}

#[test]
fn sip_settings_are_checked() {
    let errors = errors_with_minimal(
        "[sip]\nlisten = [\"nowhere\"]\nidle_timeout = 0\nvia_host = \"bad host\"\ncolour = 1",
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
    assert_error(&errors, "sip.listen[0]", "invalid socket address");
    assert_error(&errors, "sip.idle_timeout", "must be between 1");
    assert_error(&errors, "sip.via_host", "invalid host");
    assert_error(&errors, "sip.colour", "unknown key");
}

#[test]
fn sip_delivery_needs_an_edge_and_an_identity() {
    let text = r#"
[[local_domains]]
domain = "a.example"
delivery = "sip"

[[local_domains]]
domain = "b.example"
delivery = "sip"
edge = "192.0.2.1:5061"

[[local_domains]]
domain = "c.example"
delivery = "echo"
edge = "edge.c.example:5061"
"#;
    let errors = errors_without_minimal(text);
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_error(
        &errors,
        "local_domains[0].edge",
        "required with delivery = \"sip\"",
    );
    assert_error(
        &errors,
        "local_domains[1].edge_identity",
        "required when edge is an IP address",
    );
    assert_error(
        &errors,
        "local_domains[2].edge",
        "only applies to delivery = \"sip\"",
    );
}

#[test]
fn sip_routes_take_only_sip_keys() {
    let errors = errors_with_minimal(
        "[[remote_domains]]\ndomain = \"p.example\"\nroute = \"sip\"\nallow_dialback = true\nnext_hop = \"h.example\"\n\n\
         [[remote_domains]]\ndomain = \"q.example\"\nroute = \"xmpp\"\nnext_hop = \"h.example:5061\"",
    );
    assert_eq!(errors.len(), 3, "{errors:#?}");
    assert_error(
        &errors,
        "remote_domains[0].allow_dialback",
        "only applies to route = \"xmpp\"",
    );
    assert_error(&errors, "remote_domains[0].next_hop", "missing port");
    assert_error(
        &errors,
        "remote_domains[1].next_hop",
        "only applies to route = \"sip\"",
    );
    let config = parse_ok(
        &format!("{MINIMAL}\n[federation]\ndefault_route = \"sip\"\n"),
        Path::new("/"),
    );
    assert_eq!(config.federation.default_route, DefaultRoute::Sip);
}
