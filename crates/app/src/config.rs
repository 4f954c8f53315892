//! The operator's `gateway.toml`: reading, checking and defaults.
//!
//! The file is strict: an unknown key is an error rather than something silently ignored, because a
//! misspelt security setting (say `require_valid_certificat = true`) would otherwise leave the default in
//! force without anyone noticing. Every problem in the file is reported at once, each with the path of the
//! key it concerns, so an operator can fix them all before restarting. `docs/configuration.md` is the
//! operator's reference for the keys read here.

mod fields;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::collections::hash_map::Entry;
use std::fmt;
use std::hash::Hash;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use sixgate_core::Domain;
use toml::{Table, Value};

use fields::{Errors, Fields, Read, array, boolean, integer, list, string, table, tables};

/// One problem in the configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// Path of the key the problem concerns, such as `xmpp.listen[1]` or `tls.certificates[0].key`.
    ///
    /// Empty when the problem concerns the file as a whole (it cannot be read, or is not valid TOML).
    pub key: String,
    /// What is wrong, for the operator.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.key.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.key, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in the configuration file; never empty when returned by [`load`] or [`parse`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// The whole gateway configuration, checked and with defaults applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Server-to-server XMPP streams (`[xmpp]`).
    pub xmpp: XmppConfig,
    /// SIP over TLS towards edge proxies and SIP partners (`[sip]`).
    pub sip: SipSettings,
    /// How remote domains are looked up (`[dns]`).
    pub dns: DnsSettings,
    /// Certificates and trust anchors (`[tls]`).
    pub tls: TlsSettings,
    /// The domains this gateway serves (`[[local_domains]]`); never empty.
    pub local_domains: Vec<LocalDomain>,
    /// Defaults for remote domains (`[federation]`).
    pub federation: Federation,
    /// Per-domain policy for remote domains (`[[remote_domains]]`).
    pub remote_domains: Vec<RemoteDomain>,
}

impl Config {
    /// The names of the local domains, in file order.
    pub fn local_domain_names(&self) -> Vec<Domain> {
        self.local_domains
            .iter()
            .map(|local| local.domain.clone())
            .collect()
    }
}

/// Server-to-server XMPP settings (`[xmpp]`).
#[derive(Clone, PartialEq)]
pub struct XmppConfig {
    /// Addresses to accept inbound streams on; empty means no inbound federation.
    pub listen: Vec<SocketAddr>,
    /// Largest stanza accepted from a peer, in bytes.
    pub stanza_size_limit: usize,
    /// Time allowed for the TCP connection to one endpoint.
    pub connect_timeout: Duration,
    /// Time allowed from connect or accept until the stream is authenticated.
    pub negotiation_timeout: Duration,
    /// A stream that receives nothing for this long is closed.
    pub idle_timeout: Duration,
    /// A whitespace keepalive is sent after this long without sending; always less than `idle_timeout`.
    pub keepalive_interval: Duration,
    /// Stanzas queued per (local, remote) domain pair while the outbound stream is being set up.
    pub outbound_queue_limit: usize,
    /// Secret for dialback keys; `None` means the application picks a random one per process.
    pub dialback_secret: Option<String>,
}

impl Default for XmppConfig {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 5269))],
            stanza_size_limit: 524_288,
            connect_timeout: Duration::from_secs(30),
            negotiation_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(600),
            keepalive_interval: Duration::from_secs(60),
            outbound_queue_limit: 10_000,
            dialback_secret: None,
        }
    }
}

// By hand so that logging the configuration cannot leak the dialback secret.
impl fmt::Debug for XmppConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("XmppConfig")
            .field("listen", &self.listen)
            .field("stanza_size_limit", &self.stanza_size_limit)
            .field("connect_timeout", &self.connect_timeout)
            .field("negotiation_timeout", &self.negotiation_timeout)
            .field("idle_timeout", &self.idle_timeout)
            .field("keepalive_interval", &self.keepalive_interval)
            .field("outbound_queue_limit", &self.outbound_queue_limit)
            .field(
                "dialback_secret",
                &self.dialback_secret.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// SIP over TLS settings (`[sip]`).
#[derive(Debug, Clone, PartialEq)]
pub struct SipSettings {
    /// Addresses to accept SIP over (mutual) TLS on; empty means no inbound SIP.
    pub listen: Vec<SocketAddr>,
    /// Time allowed to connect (TCP and TLS) to a next hop.
    pub connect_timeout: Duration,
    /// A connection that carries nothing for this long is closed.
    pub idle_timeout: Duration,
    /// Host written in our `Via` headers; `None` means the local address of each connection.
    pub via_host: Option<String>,
}

impl Default for SipSettings {
    fn default() -> Self {
        Self {
            listen: vec![SocketAddr::from(([0, 0, 0, 0], 5061))],
            connect_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(600),
            via_host: None,
        }
    }
}

/// DNS settings (`[dns]`).
#[derive(Debug, Clone, PartialEq)]
pub struct DnsSettings {
    /// Name servers to query; empty means the system resolver configuration.
    pub nameservers: Vec<SocketAddr>,
    /// Time allowed for one lookup.
    pub timeout: Duration,
}

impl Default for DnsSettings {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// TLS settings (`[tls]`). Every path is already resolved against the configuration file's directory.
#[derive(Debug, Clone, PartialEq)]
pub struct TlsSettings {
    /// Whether the operating system's root certificates are trusted for peers.
    pub trust_system_roots: bool,
    /// Extra PEM files of trusted CA certificates; each existed when the file was read.
    pub ca_files: Vec<PathBuf>,
    /// Where development certificates are generated for local domains without a configured certificate.
    pub dev_certificate_dir: PathBuf,
    /// Configured certificates (`[[tls.certificates]]`).
    pub certificates: Vec<CertificateConfig>,
}

/// One configured certificate (`[[tls.certificates]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct CertificateConfig {
    /// PEM certificate chain, leaf first; existed when the file was read.
    pub certificate: PathBuf,
    /// PEM private key; existed when the file was read.
    pub key: PathBuf,
    /// Local domains this certificate is presented for; never empty, and no domain is in two certificates.
    pub domains: Vec<Domain>,
}

/// A domain served by this gateway (`[[local_domains]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct LocalDomain {
    /// The domain; unique among local domains and never also a remote domain.
    pub domain: Domain,
    /// What happens to messages addressed to the domain.
    pub delivery: LocalDelivery,
}

/// What happens to messages addressed to a local domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalDelivery {
    /// Every message is sent back to its sender; for testing federation without a SIP side.
    Echo,
    /// The domain's users are behind a SIP edge proxy.
    Sip(SipEdge),
}

impl LocalDelivery {
    /// The name of this delivery in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Echo => "echo",
            Self::Sip(_) => "sip",
        }
    }
}

/// The SIP edge proxy of a local domain: where requests for its users go, and who may send theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipEdge {
    /// Host name or IP address (IPv6 without brackets) of the next hop.
    pub host: String,
    /// Its port.
    pub port: u16,
    /// The SIP domain identity its certificate must carry (RFC 5922), both when we connect to it and when
    /// it connects to us.
    pub identity: Domain,
}

/// Defaults for remote domains (`[federation]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Federation {
    /// Route for remote domains not listed in `remote_domains`.
    pub default_route: DefaultRoute,
    /// Whether remote XMPP domains must present a certificate valid for their name, unless overridden.
    pub require_valid_certificate: bool,
    /// Whether dialback is offered and accepted, unless overridden.
    pub allow_dialback: bool,
}

impl Default for Federation {
    fn default() -> Self {
        Self {
            default_route: DefaultRoute::Deny,
            require_valid_certificate: true,
            allow_dialback: true,
        }
    }
}

/// Route for remote domains that have no `[[remote_domains]]` entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DefaultRoute {
    /// Refuse traffic to and from them.
    Deny,
    /// Federate with them over XMPP, with the `[federation]` defaults.
    Xmpp,
    /// Federate with them over SIP, finding their servers in DNS.
    Sip,
}

/// Policy for one remote domain (`[[remote_domains]]`).
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteDomain {
    /// The domain; unique among remote domains and never a local domain.
    pub domain: Domain,
    /// How traffic for it is handled.
    pub route: RemoteRoute,
}

/// How traffic for one remote domain is handled.
#[derive(Debug, Clone, PartialEq)]
pub enum RemoteRoute {
    /// Refuse traffic to and from the domain.
    Deny,
    /// Federate with the domain over XMPP.
    Xmpp(XmppRemote),
    /// Federate with the domain over SIP.
    Sip(SipRemote),
}

/// SIP federation with one remote domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipRemote {
    /// A static next hop `(host, port)`; `None` means DNS (`_sipfederationtls._tcp`, then RFC 3263).
    pub next_hop: Option<(String, u16)>,
}

/// XMPP federation policy for one remote domain, with `[federation]` defaults already applied.
#[derive(Debug, Clone, PartialEq)]
pub struct XmppRemote {
    /// Whether the domain must present a certificate valid for its name; `false` marks it insecure.
    pub require_valid_certificate: bool,
    /// Whether dialback is offered and accepted for the domain.
    pub allow_dialback: bool,
    /// Static `(host, port)` endpoints used instead of DNS, in order; empty means DNS.
    ///
    /// IPv6 hosts are given without brackets, so `(host.as_str(), port)` can be handed to a resolver or
    /// connect call directly.
    pub connect: Vec<(String, u16)>,
}

/// Reads and checks the configuration file at `path`; relative paths in it are taken from its directory.
pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
    let text = std::fs::read_to_string(path).map_err(|err| {
        ConfigErrors(vec![ConfigError {
            key: String::new(),
            message: format!("cannot read {}: {err}", path.display()),
        }])
    })?;
    let dir = path
        .parent()
        .filter(|dir| !dir.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    // Absolute, so the paths in the result stay right whatever the process's working directory later is.
    let dir = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    parse(&text, &dir)
}

/// Checks the text of a configuration file; relative paths in it are taken from `base_dir`.
pub fn parse(text: &str, base_dir: &Path) -> Result<Config, ConfigErrors> {
    let root: Table = text
        .parse()
        .map_err(|err| ConfigErrors(vec![syntax_error(text, &err)]))?;
    let mut errors = Errors::default();
    let config = read_config(&root, base_dir, &mut errors);
    if errors.0.is_empty() {
        Ok(config)
    } else {
        Err(ConfigErrors(errors.0))
    }
}

fn syntax_error(text: &str, err: &toml::de::Error) -> ConfigError {
    let message = err.message().trim().replace('\n', "; ");
    let message = match err.span() {
        Some(span) => {
            let before = text.get(..span.start).unwrap_or(text);
            let line = before.matches('\n').count() + 1;
            let line_start = before.rfind('\n').map_or(0, |at| at + 1);
            let column = before[line_start..].chars().count() + 1;
            format!("TOML syntax error at line {line}, column {column}: {message}")
        }
        None => format!("TOML syntax error: {message}"),
    };
    ConfigError {
        key: String::new(),
        message,
    }
}

/// Longest duration accepted anywhere: longer is surely a unit mistake, and it keeps `Instant` arithmetic
/// far from overflow.
const MAX_SECONDS: i64 = 7 * 24 * 3600;
/// RFC 6120 §13.12 requires servers to accept stanzas of at least 10000 bytes.
const MIN_STANZA_SIZE: i64 = 10_000;
const MAX_STANZA_SIZE: i64 = 16 * 1024 * 1024;
const MAX_OUTBOUND_QUEUE: i64 = 100_000;
const MIN_DIALBACK_SECRET_CHARS: usize = 16;

const ROOT_KEYS: &[&str] = &[
    "xmpp",
    "sip",
    "dns",
    "tls",
    "local_domains",
    "federation",
    "remote_domains",
];
const XMPP_KEYS: &[&str] = &[
    "listen",
    "stanza_size_limit",
    "connect_timeout",
    "negotiation_timeout",
    "idle_timeout",
    "keepalive_interval",
    "outbound_queue_limit",
    "dialback_secret",
];
const SIP_KEYS: &[&str] = &["listen", "connect_timeout", "idle_timeout", "via_host"];
const DNS_KEYS: &[&str] = &["nameservers", "timeout"];
const TLS_KEYS: &[&str] = &[
    "trust_system_roots",
    "ca_files",
    "dev_certificate_dir",
    "certificates",
];
const CERTIFICATE_KEYS: &[&str] = &["certificate", "key", "domains"];
const LOCAL_DOMAIN_KEYS: &[&str] = &["domain", "delivery", "edge", "edge_identity"];
/// Keys of `[[local_domains]]` that only mean something for `delivery = "sip"`.
const SIP_EDGE_KEYS: &[&str] = &["edge", "edge_identity"];
const FEDERATION_KEYS: &[&str] = &[
    "default_route",
    "require_valid_certificate",
    "allow_dialback",
];
/// Keys of `[[remote_domains]]` that only mean something for `route = "xmpp"`.
const XMPP_REMOTE_KEYS: &[&str] = &["require_valid_certificate", "allow_dialback", "connect"];
const REMOTE_DOMAIN_KEYS: &[&str] = &[
    "domain",
    "route",
    "require_valid_certificate",
    "allow_dialback",
    "connect",
    "next_hop",
];
/// Keys of `[[remote_domains]]` that only mean something for `route = "sip"`.
const SIP_REMOTE_KEYS: &[&str] = &["next_hop"];

/// Reads the whole file; the result is only meaningful when no error was collected, since values that
/// failed to read are replaced by defaults or left out so the rest of the file can still be checked.
fn read_config(root: &Table, base_dir: &Path, errors: &mut Errors) -> Config {
    let root = Fields::new(root, "", ROOT_KEYS, errors);
    let empty = Table::new();
    let section = |key: &str, errors: &mut Errors| {
        root.optional(key, errors, table)
            .ok()
            .flatten()
            .unwrap_or(&empty)
    };

    let xmpp = read_xmpp(
        &Fields::new(section("xmpp", errors), "xmpp", XMPP_KEYS, errors),
        errors,
    );
    let sip = read_sip(
        &Fields::new(section("sip", errors), "sip", SIP_KEYS, errors),
        errors,
    );
    let dns = read_dns(
        &Fields::new(section("dns", errors), "dns", DNS_KEYS, errors),
        errors,
    );
    let (tls, certificate_domains) = read_tls(
        &Fields::new(section("tls", errors), "tls", TLS_KEYS, errors),
        base_dir,
        errors,
    );
    let (local_domains, local_index) = read_local_domains(&root, errors);
    let federation = read_federation(
        &Fields::new(
            section("federation", errors),
            "federation",
            FEDERATION_KEYS,
            errors,
        ),
        errors,
    );
    let remote_domains = read_remote_domains(&root, &federation, local_index.as_ref(), errors);

    // Checked last because it needs the local domains; skipped when they could not all be read, since a
    // local domain with a typo would otherwise also turn up here as "not a local domain".
    if let Some(local_index) = &local_index {
        for (key, domain) in &certificate_domains {
            if !local_index.contains_key(domain) {
                errors.push(
                    key.as_str(),
                    format!(
                        "\"{domain}\" is not a local domain (add a [[local_domains]] entry for it or remove it here)"
                    ),
                );
            }
        }
    }

    Config {
        xmpp,
        sip,
        dns,
        tls,
        local_domains,
        federation,
        remote_domains,
    }
}

fn read_xmpp(xmpp: &Fields<'_>, errors: &mut Errors) -> XmppConfig {
    let defaults = XmppConfig::default();
    let listen = xmpp.or(
        "listen",
        defaults.listen.clone(),
        errors,
        |value, path, errors| {
            let addresses = list(value, path, errors, socket_address)?;
            let keyed: Vec<_> = addresses
                .iter()
                .enumerate()
                .map(|(i, address)| {
                    let key = fields::index(path, i);
                    (key.clone(), key, *address)
                })
                .collect();
            report_duplicates(&keyed, "address", errors);
            Ok(addresses)
        },
    );
    let stanza_size_limit = xmpp.or(
        "stanza_size_limit",
        defaults.stanza_size_limit,
        errors,
        |value, path, errors| {
            let bytes = integer_in(
                value,
                path,
                MIN_STANZA_SIZE..=MAX_STANZA_SIZE,
                " (RFC 6120 §13.12 requires at least 10000 bytes; at most 16 MiB)",
                errors,
            )?;
            Ok(usize::try_from(bytes).unwrap_or(usize::MAX))
        },
    );
    let connect_timeout = xmpp.or("connect_timeout", defaults.connect_timeout, errors, seconds);
    let negotiation_timeout = xmpp.or(
        "negotiation_timeout",
        defaults.negotiation_timeout,
        errors,
        seconds,
    );
    let idle_timeout = xmpp.or("idle_timeout", defaults.idle_timeout, errors, seconds);
    let keepalive_interval = xmpp.or(
        "keepalive_interval",
        defaults.keepalive_interval,
        errors,
        seconds,
    );
    // Otherwise a peer with the same settings would time a quiet stream out before our keepalive arrives.
    if let (Ok(idle), Ok(keepalive)) = (idle_timeout, keepalive_interval)
        && keepalive >= idle
    {
        errors.push(
            xmpp.key("keepalive_interval"),
            format!(
                "must be less than idle_timeout ({} seconds), got {} seconds",
                idle.as_secs(),
                keepalive.as_secs()
            ),
        );
    }
    let outbound_queue_limit = xmpp.or(
        "outbound_queue_limit",
        defaults.outbound_queue_limit,
        errors,
        |value, path, errors| {
            let limit = integer_in(value, path, 1..=MAX_OUTBOUND_QUEUE, "", errors)?;
            Ok(usize::try_from(limit).unwrap_or(usize::MAX))
        },
    );
    let dialback_secret = xmpp.optional("dialback_secret", errors, |value, path, errors| {
        let secret = string(value, path, errors)?;
        // The secret itself is never echoed: error output tends to end up in logs.
        let length = secret.chars().count();
        if length < MIN_DIALBACK_SECRET_CHARS {
            return Err(errors.push(
                path,
                format!(
                    "must be at least {MIN_DIALBACK_SECRET_CHARS} characters long, got {length}"
                ),
            ));
        }
        Ok(secret.to_owned())
    });

    XmppConfig {
        listen: listen.unwrap_or_default(),
        stanza_size_limit: stanza_size_limit.unwrap_or(defaults.stanza_size_limit),
        connect_timeout: connect_timeout.unwrap_or(defaults.connect_timeout),
        negotiation_timeout: negotiation_timeout.unwrap_or(defaults.negotiation_timeout),
        idle_timeout: idle_timeout.unwrap_or(defaults.idle_timeout),
        keepalive_interval: keepalive_interval.unwrap_or(defaults.keepalive_interval),
        outbound_queue_limit: outbound_queue_limit.unwrap_or(defaults.outbound_queue_limit),
        dialback_secret: dialback_secret.ok().flatten(),
    }
}

fn read_sip(sip: &Fields<'_>, errors: &mut Errors) -> SipSettings {
    let defaults = SipSettings::default();
    let listen = sip.or(
        "listen",
        defaults.listen.clone(),
        errors,
        |value, path, errors| {
            let addresses = list(value, path, errors, socket_address)?;
            let keyed: Vec<_> = addresses
                .iter()
                .enumerate()
                .map(|(i, address)| {
                    let key = fields::index(path, i);
                    (key.clone(), key, *address)
                })
                .collect();
            report_duplicates(&keyed, "address", errors);
            Ok(addresses)
        },
    );
    let connect_timeout = sip.or("connect_timeout", defaults.connect_timeout, errors, seconds);
    let idle_timeout = sip.or("idle_timeout", defaults.idle_timeout, errors, seconds);
    let via_host = sip.optional("via_host", errors, |value, path, errors| {
        // Goes into every Via we write: a host name or an IP address, nothing that could break the header.
        let text = string(value, path, errors)?;
        let bare = text
            .strip_prefix('[')
            .and_then(|rest| rest.strip_suffix(']'))
            .unwrap_or(text);
        if bare.parse::<IpAddr>().is_ok()
            || Domain::parse(text).is_ok_and(|d| !d.as_str().contains(['[', ']', ':']))
        {
            Ok(text.to_owned())
        } else {
            Err(errors.push(
                path,
                format!("invalid host \"{text}\" (expected a host name or IP address)"),
            ))
        }
    });
    SipSettings {
        listen: listen.unwrap_or_default(),
        connect_timeout: connect_timeout.unwrap_or(defaults.connect_timeout),
        idle_timeout: idle_timeout.unwrap_or(defaults.idle_timeout),
        via_host: via_host.ok().flatten(),
    }
}

fn read_dns(dns: &Fields<'_>, errors: &mut Errors) -> DnsSettings {
    let defaults = DnsSettings::default();
    let nameservers = dns.or("nameservers", Vec::new(), errors, |value, path, errors| {
        list(value, path, errors, nameserver)
    });
    let timeout = dns.or("timeout", defaults.timeout, errors, seconds);
    DnsSettings {
        nameservers: nameservers.unwrap_or_default(),
        timeout: timeout.unwrap_or(defaults.timeout),
    }
}

/// Reads `[tls]`; also gives each certificate domain with its key, for the check against the local domains.
fn read_tls(
    tls: &Fields<'_>,
    base_dir: &Path,
    errors: &mut Errors,
) -> (TlsSettings, Vec<(String, Domain)>) {
    let trust_system_roots = tls.or("trust_system_roots", true, errors, boolean);
    let ca_files = tls.or("ca_files", Vec::new(), errors, |value, path, errors| {
        list(value, path, errors, |value, path, errors| {
            existing_file(value, path, base_dir, errors)
        })
    });
    let dev_certificate_dir = tls.or(
        "dev_certificate_dir",
        base_dir.join("dev-certs"),
        errors,
        |value, path, errors| {
            let dir = resolved_path(value, path, base_dir, errors)?;
            if dir.exists() && !dir.is_dir() {
                return Err(errors.push(path, format!("not a directory: {}", dir.display())));
            }
            Ok(dir)
        },
    );

    let mut certificates = Vec::new();
    let mut certificate_domains = Vec::new();
    let entries = tls
        .optional("certificates", errors, tables)
        .ok()
        .flatten()
        .unwrap_or_default();
    for (path, entry) in entries {
        let entry = Fields::new(entry, path, CERTIFICATE_KEYS, errors);
        let certificate = entry.required("certificate", errors, |value, path, errors| {
            existing_file(value, path, base_dir, errors)
        });
        let key = entry.required("key", errors, |value, path, errors| {
            existing_file(value, path, base_dir, errors)
        });
        // Element by element rather than with `list`, so the good domains of a list with a bad one are
        // still checked against the local domains.
        let domains = entry.required("domains", errors, |value, path, errors| {
            let items = array(value, path, errors)?;
            if items.is_empty() {
                return Err(errors.push(path, "must list at least one domain"));
            }
            let mut domains = Vec::with_capacity(items.len());
            let mut complete = Ok(());
            for (i, item) in items.iter().enumerate() {
                let key = fields::index(path, i);
                match domain(item, &key, errors) {
                    Ok(domain) => {
                        certificate_domains.push((key, entry.path().to_owned(), domain.clone()));
                        domains.push(domain);
                    }
                    Err(reported) => complete = Err(reported),
                }
            }
            complete.map(|()| domains)
        });
        if let (Ok(certificate), Ok(key), Ok(domains)) = (certificate, key, domains) {
            certificates.push(CertificateConfig {
                certificate,
                key,
                domains,
            });
        }
    }
    // Two certificates for one domain would leave the choice between them to chance.
    report_duplicates(&certificate_domains, "domain", errors);

    let settings = TlsSettings {
        trust_system_roots: trust_system_roots.unwrap_or(true),
        ca_files: ca_files.unwrap_or_default(),
        dev_certificate_dir: dev_certificate_dir.unwrap_or_default(),
        certificates,
    };
    let certificate_domains = certificate_domains
        .into_iter()
        .map(|(key, _, domain)| (key, domain))
        .collect();
    (settings, certificate_domains)
}

/// Local domains by name, each with the path of its entry.
type LocalIndex = HashMap<Domain, String>;

/// Reads `[[local_domains]]`; the index is `None` when some domain could not be read.
fn read_local_domains(
    root: &Fields<'_>,
    errors: &mut Errors,
) -> (Vec<LocalDomain>, Option<LocalIndex>) {
    let entries = root.required("local_domains", errors, |value, path, errors| {
        if matches!(value, Value::Array(items) if items.is_empty()) {
            return Err(errors.push(path, "at least one [[local_domains]] entry is required"));
        }
        tables(value, path, errors)
    });
    let Ok(entries) = entries else {
        return (Vec::new(), None);
    };
    let mut local_domains = Vec::new();
    let mut names = Vec::new();
    let mut complete = true;
    for (path, entry) in entries {
        let entry = Fields::new(entry, path, LOCAL_DOMAIN_KEYS, errors);
        let name = entry.required("domain", errors, domain);
        let delivery = entry.required("delivery", errors, delivery_name);
        let edge = entry.optional("edge", errors, endpoint);
        let edge_identity = entry.optional("edge_identity", errors, domain);
        let delivery = match delivery {
            Ok(DeliveryName::Echo) => {
                for key in SIP_EDGE_KEYS {
                    if entry.has(key) {
                        errors.push(
                            entry.key(key),
                            "only applies to delivery = \"sip\", but this domain has delivery = \"echo\"",
                        );
                    }
                }
                Ok(LocalDelivery::Echo)
            }
            Ok(DeliveryName::Sip) => match (edge, edge_identity) {
                (Ok(Some((host, port))), Ok(identity)) => {
                    // The edge's own name is the natural identity; an IP address cannot be one (RFC 5922).
                    let identity = identity.or_else(|| Domain::parse(&host).ok().filter(|_| host.parse::<IpAddr>().is_err()));
                    match identity {
                        Some(identity) => Ok(LocalDelivery::Sip(SipEdge { host, port, identity })),
                        None => Err(errors.push(
                            entry.key("edge_identity"),
                            "required when edge is an IP address: the SIP domain name its certificate carries (RFC 5922)",
                        )),
                    }
                }
                (Ok(None), _) => Err(errors.push(
                    entry.key("edge"),
                    "required with delivery = \"sip\": the host:port of the domain's SIP edge proxy",
                )),
                (Err(reported), _) | (_, Err(reported)) => Err(reported),
            },
            Err(reported) => Err(reported),
        };
        match &name {
            Ok(name) => names.push((entry.key("domain"), entry.path().to_owned(), name.clone())),
            Err(_) => complete = false,
        }
        if let (Ok(domain), Ok(delivery)) = (name, delivery) {
            local_domains.push(LocalDomain { domain, delivery });
        }
    }
    report_duplicates(&names, "domain", errors);
    let index = complete.then(|| {
        let mut index = LocalIndex::new();
        for (_, entry_path, name) in names {
            index.entry(name).or_insert(entry_path);
        }
        index
    });
    (local_domains, index)
}

fn read_federation(federation: &Fields<'_>, errors: &mut Errors) -> Federation {
    let defaults = Federation::default();
    let default_route = federation.or(
        "default_route",
        defaults.default_route,
        errors,
        |value, path, errors| match string(value, path, errors)? {
            "deny" => Ok(DefaultRoute::Deny),
            "xmpp" => Ok(DefaultRoute::Xmpp),
            "sip" => Ok(DefaultRoute::Sip),
            other => Err(errors.push(
                path,
                format!("unknown route \"{other}\" (expected \"xmpp\", \"sip\" or \"deny\")"),
            )),
        },
    );
    let require_valid_certificate = federation.or(
        "require_valid_certificate",
        defaults.require_valid_certificate,
        errors,
        boolean,
    );
    let allow_dialback = federation.or("allow_dialback", defaults.allow_dialback, errors, boolean);
    Federation {
        default_route: default_route.unwrap_or(defaults.default_route),
        require_valid_certificate: require_valid_certificate
            .unwrap_or(defaults.require_valid_certificate),
        allow_dialback: allow_dialback.unwrap_or(defaults.allow_dialback),
    }
}

/// The route named in a `[[remote_domains]]` entry, before the XMPP settings are attached.
#[derive(Clone, Copy)]
enum RouteName {
    Deny,
    Xmpp,
    Sip,
}

fn read_remote_domains(
    root: &Fields<'_>,
    federation: &Federation,
    local_index: Option<&LocalIndex>,
    errors: &mut Errors,
) -> Vec<RemoteDomain> {
    let entries = root
        .optional("remote_domains", errors, tables)
        .ok()
        .flatten()
        .unwrap_or_default();
    let mut remote_domains = Vec::new();
    let mut names = Vec::new();
    for (path, entry) in entries {
        let entry = Fields::new(entry, path, REMOTE_DOMAIN_KEYS, errors);
        let name = entry.required("domain", errors, domain);
        if let Ok(name) = &name {
            if let Some(local_path) = local_index.and_then(|index| index.get(name)) {
                errors.push(
                    entry.key("domain"),
                    format!(
                        "\"{name}\" is a local domain ({local_path}); a domain cannot be both local and remote"
                    ),
                );
            }
            names.push((entry.key("domain"), entry.path().to_owned(), name.clone()));
        }
        let route = entry.required("route", errors, |value, path, errors| {
            match string(value, path, errors)? {
                "deny" => Ok(RouteName::Deny),
                "xmpp" => Ok(RouteName::Xmpp),
                "sip" => Ok(RouteName::Sip),
                other => Err(errors.push(
                    path,
                    format!("unknown route \"{other}\" (expected \"xmpp\", \"sip\" or \"deny\")"),
                )),
            }
        });
        // Read even for a denied domain, so a wrong type is reported alongside the misplaced key.
        let require_valid_certificate =
            entry.optional("require_valid_certificate", errors, boolean);
        let allow_dialback = entry.optional("allow_dialback", errors, boolean);
        let connect = entry.optional("connect", errors, |value, path, errors| {
            list(value, path, errors, endpoint)
        });
        let next_hop = entry.optional("next_hop", errors, endpoint);
        let misplaced = |keys: &[&str], wanted: &str, actual: &str, errors: &mut Errors| {
            for key in keys {
                if entry.has(key) {
                    errors.push(
                        entry.key(key),
                        format!("only applies to route = \"{wanted}\", but this domain has route = \"{actual}\""),
                    );
                }
            }
        };
        let route = match route {
            Ok(RouteName::Deny) => {
                misplaced(XMPP_REMOTE_KEYS, "xmpp", "deny", errors);
                misplaced(SIP_REMOTE_KEYS, "sip", "deny", errors);
                RemoteRoute::Deny
            }
            Ok(RouteName::Sip) => {
                misplaced(XMPP_REMOTE_KEYS, "xmpp", "sip", errors);
                RemoteRoute::Sip(SipRemote {
                    next_hop: next_hop.ok().flatten(),
                })
            }
            Ok(RouteName::Xmpp) => {
                misplaced(SIP_REMOTE_KEYS, "sip", "xmpp", errors);
                RemoteRoute::Xmpp(XmppRemote {
                    require_valid_certificate: require_valid_certificate
                        .ok()
                        .flatten()
                        .unwrap_or(federation.require_valid_certificate),
                    allow_dialback: allow_dialback
                        .ok()
                        .flatten()
                        .unwrap_or(federation.allow_dialback),
                    connect: connect.ok().flatten().unwrap_or_default(),
                })
            }
            Err(_) => continue,
        };
        if let Ok(domain) = name {
            remote_domains.push(RemoteDomain { domain, route });
        }
    }
    report_duplicates(&names, "domain", errors);
    remote_domains
}

/// Reports every value seen before, as `(key of the value, where it is listed, value)`.
fn report_duplicates<T: Eq + Hash + fmt::Display>(
    items: &[(String, String, T)],
    what: &str,
    errors: &mut Errors,
) {
    let mut first_seen: HashMap<&T, &str> = HashMap::new();
    for (key, listed_at, value) in items {
        match first_seen.entry(value) {
            Entry::Occupied(first) => {
                errors.push(
                    key.as_str(),
                    format!("duplicate {what} \"{value}\" (also {})", first.get()),
                );
            }
            Entry::Vacant(slot) => {
                slot.insert(listed_at);
            }
        }
    }
}

fn integer_in(
    value: &Value,
    path: &str,
    range: std::ops::RangeInclusive<i64>,
    why: &str,
    errors: &mut Errors,
) -> Read<i64> {
    let number = integer(value, path, errors)?;
    if !range.contains(&number) {
        return Err(errors.push(
            path,
            format!(
                "must be between {} and {}{why}, got {number}",
                range.start(),
                range.end()
            ),
        ));
    }
    Ok(number)
}

/// A duration written as whole seconds.
fn seconds(value: &Value, path: &str, errors: &mut Errors) -> Read<Duration> {
    let number = match value {
        Value::Integer(number) => *number,
        other => {
            return Err(errors.push(
                path,
                format!(
                    "expected a whole number of seconds, found {}",
                    other.type_str()
                ),
            ));
        }
    };
    if !(1..=MAX_SECONDS).contains(&number) {
        return Err(errors.push(
            path,
            format!("must be between 1 and {MAX_SECONDS} seconds, got {number}"),
        ));
    }
    Ok(Duration::from_secs(number.unsigned_abs()))
}

fn socket_address(value: &Value, path: &str, errors: &mut Errors) -> Read<SocketAddr> {
    let text = string(value, path, errors)?;
    text.parse().map_err(|_| {
        errors.push(
            path,
            format!("invalid socket address \"{text}\" (expected IP:port, or [IPv6]:port)"),
        )
    })
}

/// A name server: an IP address with an optional port, 53 when absent.
fn nameserver(value: &Value, path: &str, errors: &mut Errors) -> Read<SocketAddr> {
    let text = string(value, path, errors)?;
    let bare = text
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(text);
    let address = text.parse::<SocketAddr>().ok().or_else(|| {
        bare.parse::<IpAddr>()
            .ok()
            .map(|ip| SocketAddr::new(ip, 53))
    });
    match address {
        Some(address) if address.port() != 0 => Ok(address),
        _ => Err(errors.push(
            path,
            format!(
                "invalid name server address \"{text}\" (expected an IP address, optionally with a port)"
            ),
        )),
    }
}

fn domain(value: &Value, path: &str, errors: &mut Errors) -> Read<Domain> {
    let text = string(value, path, errors)?;
    Domain::parse(text)
        .map_err(|err| errors.push(path, format!("invalid domain \"{text}\": {err}")))
}

/// The delivery named in a `[[local_domains]]` entry, before its settings are attached.
#[derive(Clone, Copy)]
enum DeliveryName {
    Echo,
    Sip,
}

fn delivery_name(value: &Value, path: &str, errors: &mut Errors) -> Read<DeliveryName> {
    match string(value, path, errors)? {
        "echo" => Ok(DeliveryName::Echo),
        "sip" => Ok(DeliveryName::Sip),
        other => Err(errors.push(
            path,
            format!("unknown delivery \"{other}\" (expected \"sip\" or \"echo\")"),
        )),
    }
}

/// A static endpoint `host:port`, with IPv6 addresses in brackets.
fn endpoint(value: &Value, path: &str, errors: &mut Errors) -> Read<(String, u16)> {
    let text = string(value, path, errors)?;
    let mut bad = |why: &str| errors.push(path, format!("invalid endpoint \"{text}\": {why}"));
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let Some((ip, port)) = rest.split_once("]:") else {
            return Err(bad("expected [IPv6]:port"));
        };
        let Ok(ip) = ip.parse::<Ipv6Addr>() else {
            return Err(bad("only an IPv6 address can be written in brackets"));
        };
        (ip.to_string(), port)
    } else {
        let Some((host, port)) = text.rsplit_once(':') else {
            return Err(bad(
                "missing port (expected host:port, such as xmpp.example.org:5269)",
            ));
        };
        if host.contains([':', '[', ']']) {
            return Err(bad(
                "an IPv6 address must be written in brackets, such as [2001:db8::1]:5269",
            ));
        }
        match Domain::parse(host) {
            Ok(host) => (host.as_str().to_owned(), port),
            Err(err) => return Err(bad(&format!("bad host: {err}"))),
        }
    };
    match port.parse::<u16>() {
        Ok(port) if port != 0 => Ok((host, port)),
        _ => Err(bad("the port must be a number from 1 to 65535")),
    }
}

/// A non-empty path, taken from `base_dir` when relative.
fn resolved_path(value: &Value, path: &str, base_dir: &Path, errors: &mut Errors) -> Read<PathBuf> {
    let text = string(value, path, errors)?;
    if text.is_empty() {
        return Err(errors.push(path, "must not be empty"));
    }
    Ok(base_dir.join(text))
}

/// A path that must name an existing regular file.
fn existing_file(value: &Value, path: &str, base_dir: &Path, errors: &mut Errors) -> Read<PathBuf> {
    let file = resolved_path(value, path, base_dir, errors)?;
    match std::fs::metadata(&file) {
        Ok(metadata) if metadata.is_file() => Ok(file),
        Ok(_) => Err(errors.push(path, format!("not a regular file: {}", file.display()))),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            Err(errors.push(path, format!("file not found: {}", file.display())))
        }
        Err(err) => Err(errors.push(path, format!("cannot access {}: {err}", file.display()))),
    }
}
