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
            outbound_queue_limit: 1000,
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
///
/// Not `Copy`, so that a later delivery carrying its own settings (SIP) can be added without breaking users.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalDelivery {
    /// Every message is sent back to its sender; for testing federation without a SIP side.
    Echo,
}

impl LocalDelivery {
    /// The name of this delivery in the file.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Echo => "echo",
        }
    }
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
const DNS_KEYS: &[&str] = &["nameservers", "timeout"];
const TLS_KEYS: &[&str] = &[
    "trust_system_roots",
    "ca_files",
    "dev_certificate_dir",
    "certificates",
];
const CERTIFICATE_KEYS: &[&str] = &["certificate", "key", "domains"];
const LOCAL_DOMAIN_KEYS: &[&str] = &["domain", "delivery"];
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
];

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
        let delivery = entry.required("delivery", errors, local_delivery);
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
            other => Err(errors.push(
                path,
                format!("unknown route \"{other}\" (expected \"xmpp\" or \"deny\")"),
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
                other => Err(errors.push(
                    path,
                    format!("unknown route \"{other}\" (expected \"xmpp\" or \"deny\")"),
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
        let route = match route {
            Ok(RouteName::Deny) => {
                for key in XMPP_REMOTE_KEYS {
                    if entry.has(key) {
                        errors.push(
                            entry.key(key),
                            "only applies to route = \"xmpp\", but this domain has route = \"deny\"",
                        );
                    }
                }
                RemoteRoute::Deny
            }
            Ok(RouteName::Xmpp) => RemoteRoute::Xmpp(XmppRemote {
                require_valid_certificate: require_valid_certificate
                    .ok()
                    .flatten()
                    .unwrap_or(federation.require_valid_certificate),
                allow_dialback: allow_dialback
                    .ok()
                    .flatten()
                    .unwrap_or(federation.allow_dialback),
                connect: connect.ok().flatten().unwrap_or_default(),
            }),
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

fn local_delivery(value: &Value, path: &str, errors: &mut Errors) -> Read<LocalDelivery> {
    // A delivery that needs settings of its own can also be accepted as a table here, e.g.
    // `delivery = { sip = { ... } }`, keeping the plain string form for the simple ones.
    match string(value, path, errors)? {
        "echo" => Ok(LocalDelivery::Echo),
        other => Err(errors.push(
            path,
            format!("unknown delivery \"{other}\" (expected \"echo\")"),
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
