//! The DNS mechanics shared by XMPP s2s discovery (`sixgate-xmpp`) and SIP discovery (`sixgate-sip-net`):
//! one way to build the resolver, SRV, NAPTR and address lookups with the same error classes, bounded
//! concurrent host resolution, and the glue to [`sixgate_core::srv::order_srv`] (RFC 2782). Which names are
//! asked and in which order is the protocol crates' business.
//!
//! The resolver setup: explicit name servers are the only ones asked, without search domains or hosts file,
//! and hickory's own timeout is backed by a budget of our own. With no name servers configured, the system
//! configuration is used.
//!
//! With the cargo feature `testing`, the module `testing` holds an in-process authoritative DNS server on
//! loopback and record helpers.

use std::collections::HashSet;
use std::hash::{BuildHasher, Hasher, RandomState};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hickory_resolver::TokioResolver;
use hickory_resolver::config::{
    ConnectionConfig, NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts,
};
use hickory_resolver::net::NetError;
use hickory_resolver::net::runtime::TokioRuntimeProvider;
use hickory_resolver::proto::rr::{RData, RecordType};
use sixgate_core::srv::{SrvOrder, SrvRecord, WeightRandom, order_srv};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use hickory_resolver::proto::rr::Name;

#[cfg(feature = "testing")]
pub mod testing;

/// SRV records used per SRV name; the rest of a larger answer is ignored.
pub const MAX_SRV_RECORDS: usize = 16;

/// Addresses used per target host name, IPv4 first.
pub const MAX_ADDRESSES_PER_TARGET: usize = 8;

/// How many host names are resolved at once. A full answer is 2 × 16 targets, each needing A and AAAA;
/// a limit keeps that from tripping the resolver's per-connection request cap.
const CONCURRENT_HOST_LOOKUPS: usize = 8;

/// Retries hickory makes after a failed or timed-out query (its default, pinned so that the budget in
/// [`Resolver`] matches even when the system configuration says otherwise).
const ATTEMPTS: usize = 2;

/// Where DNS questions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Name servers to ask, over UDP and TCP. Empty means the system configuration (`/etc/resolv.conf`
    /// on Unix, including its search domains for names that are not absolute); otherwise only these
    /// servers are asked, with no search domains and no hosts file.
    pub nameservers: Vec<SocketAddr>,
    /// How long one DNS query waits for an answer. A query that times out is retried twice, so a name
    /// server that never answers costs three times this before a timeout is reported.
    pub timeout: Duration,
}

impl Default for DnsConfig {
    fn default() -> Self {
        Self {
            nameservers: Vec::new(),
            timeout: Duration::from_secs(5),
        }
    }
}

/// Why a lookup produced nothing.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnsError {
    /// The name, or every name it points to, has no usable records.
    #[error("no DNS records for the name or its targets")]
    NotFound,
    /// A name server did not answer in time.
    #[error("DNS lookup timed out")]
    Timeout,
    /// DNS failed for another reason (SERVFAIL, refused, I/O, bad configuration): the name may exist, we
    /// just could not find out.
    #[error("DNS lookup failed: {0}")]
    Failed(String),
}

impl DnsError {
    /// Whether a retry may succeed: true for [`Timeout`](Self::Timeout) and [`Failed`](Self::Failed).
    pub fn is_transient(&self) -> bool {
        !matches!(self, Self::NotFound)
    }

    /// This error in a protocol's own terms: `not_found`, `timeout`, or `failed` with the reason.
    pub fn classify<T>(self, not_found: T, timeout: T, failed: impl FnOnce(String) -> T) -> T {
        match self {
            Self::NotFound => not_found,
            Self::Timeout => timeout,
            Self::Failed(reason) => failed(reason),
        }
    }

    /// The most telling of `errors`: the first transient one (the answer may exist after all), else
    /// [`NotFound`](Self::NotFound).
    pub fn most_telling(errors: impl IntoIterator<Item = Self>) -> Self {
        errors
            .into_iter()
            .find(Self::is_transient)
            .unwrap_or(Self::NotFound)
    }
}

/// What one SRV name said, after RFC 2782 ordering.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SrvAnswer {
    /// NXDOMAIN, or the name exists without SRV records.
    Absent,
    /// Only `"."` targets: the service is decidedly not offered.
    Unavailable,
    /// Targets in RFC 2782 order, at most [`MAX_SRV_RECORDS`].
    Targets(Vec<SrvRecord>),
}

/// One address of a `(host, port)` target, from [`Resolver::resolve_targets`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// Index of the target in the slice given.
    pub index: usize,
    /// The target's host, without a trailing dot.
    pub host: String,
    /// Address and the target's port.
    pub addr: SocketAddr,
}

/// A hickory resolver with the timeout budget and host-lookup limit. Cheap to clone; clones share the
/// resolver and its cache.
#[derive(Debug, Clone)]
pub struct Resolver {
    resolver: TokioResolver,
    // A safety net over hickory's own timeout and retries (which normally answer first, at
    // timeout × (ATTEMPTS + 1)), so that one lookup cannot outlive its budget whatever the pool does.
    lookup_budget: Duration,
    host_lookups: Arc<Semaphore>,
}

impl Resolver {
    /// Builds the resolver. Fails only if the system configuration is asked for and cannot be read.
    pub fn new(config: &DnsConfig) -> Result<Self, DnsError> {
        let (resolver_config, mut options) = if config.nameservers.is_empty() {
            system_config()?
        } else {
            let servers = config
                .nameservers
                .iter()
                .map(|server| {
                    let mut udp = ConnectionConfig::udp();
                    udp.port = server.port();
                    let mut tcp = ConnectionConfig::tcp();
                    tcp.port = server.port();
                    // These servers are the operator's choice, so their NXDOMAIN is final rather than
                    // a reason to ask the next one.
                    NameServerConfig::new(server.ip(), true, vec![udp, tcp])
                })
                .collect();
            let mut options = ResolverOpts::default();
            options.use_hosts_file = ResolveHosts::Never;
            (
                ResolverConfig::from_parts(None, Vec::new(), servers),
                options,
            )
        };
        options.timeout = config.timeout;
        options.attempts = ATTEMPTS;
        let resolver =
            TokioResolver::builder_with_config(resolver_config, TokioRuntimeProvider::default())
                .with_options(options)
                .build()
                .map_err(|err| DnsError::Failed(format!("building the DNS resolver: {err}")))?;
        let lookup_budget = config
            .timeout
            .saturating_mul(u32::try_from(ATTEMPTS + 2).unwrap_or(u32::MAX));
        Ok(Self {
            resolver,
            lookup_budget,
            host_lookups: Arc::new(Semaphore::new(CONCURRENT_HOST_LOOKUPS)),
        })
    }

    /// [`addresses`](Self::addresses) of `name`, each on `port`.
    pub async fn addresses_on(&self, name: Name, port: u16) -> Result<Vec<SocketAddr>, DnsError> {
        let addresses = self.addresses(name).await?;
        Ok(addresses
            .into_iter()
            .map(|ip| SocketAddr::new(ip, port))
            .collect())
    }

    /// SRV records of `name` in wire order, or `None` when there are none. See [`order`].
    pub async fn srv(&self, name: &Name) -> Result<Option<Vec<SrvRecord>>, DnsError> {
        let Some(lookup) = self.lookup(name.clone(), RecordType::SRV).await? else {
            return Ok(None);
        };
        let records: Vec<SrvRecord> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                RData::SRV(srv) => Some(SrvRecord {
                    priority: srv.priority,
                    weight: srv.weight,
                    port: srv.port,
                    target: srv.target.to_ascii(),
                }),
                _ => None,
            })
            .collect();
        Ok((!records.is_empty()).then_some(records))
    }

    /// SRV names that the NAPTR records of `name` with `service` (such as `SIPS+D2T`) point to, in
    /// RFC 3403 order (order, then preference), without repeats. Only flag `S` records without a regexp
    /// are followed. Empty when there are none.
    pub async fn naptr(&self, name: &Name, service: &[u8]) -> Result<Vec<Name>, DnsError> {
        let Some(lookup) = self.lookup(name.clone(), RecordType::NAPTR).await? else {
            return Ok(Vec::new());
        };
        let mut records: Vec<(u16, u16, Name)> = lookup
            .answers()
            .iter()
            .filter_map(|record| match &record.data {
                // Flag "S": the replacement is an SRV name (RFC 3263 §4.1). A regexp rewrite is never
                // used for SIP, so records with one are skipped rather than interpreted.
                RData::NAPTR(naptr)
                    if naptr.services.eq_ignore_ascii_case(service)
                        && naptr.flags.eq_ignore_ascii_case(b"s")
                        && naptr.regexp.is_empty()
                        && !naptr.replacement.is_root() =>
                {
                    Some((naptr.order, naptr.preference, naptr.replacement.clone()))
                }
                _ => None,
            })
            .collect();
        records.sort_by_key(|(order, preference, _)| (*order, *preference));
        let mut names: Vec<Name> = Vec::new();
        for (_, _, mut replacement) in records {
            replacement.set_fqdn(true);
            if !names.contains(&replacement) {
                names.push(replacement);
            }
        }
        Ok(names)
    }

    /// A then AAAA addresses of `name`, at most [`MAX_ADDRESSES_PER_TARGET`]. One failed family is
    /// tolerated while the other has addresses.
    pub async fn addresses(&self, name: Name) -> Result<Vec<IpAddr>, DnsError> {
        let (v4, v6) = tokio::join!(
            self.lookup(name.clone(), RecordType::A),
            self.lookup(name.clone(), RecordType::AAAA)
        );
        let mut addresses = Vec::new();
        let mut failure = None;
        for answer in [v4, v6] {
            match answer {
                Ok(Some(lookup)) => addresses.extend(lookup.answers().iter().filter_map(
                    |record| match &record.data {
                        RData::A(a) => Some(IpAddr::V4(a.0)),
                        RData::AAAA(aaaa) => Some(IpAddr::V6(aaaa.0)),
                        _ => None,
                    },
                )),
                Ok(None) => {}
                Err(err) => failure = failure.or(Some(err)),
            }
        }
        if addresses.is_empty() {
            return Err(failure.unwrap_or(DnsError::NotFound));
        }
        if let Some(err) = failure {
            tracing::debug!(%name, %err, "one address family failed, using the other");
        }
        let mut seen = HashSet::new();
        addresses.retain(|ip| seen.insert(*ip));
        addresses.truncate(MAX_ADDRESSES_PER_TARGET);
        Ok(addresses)
    }

    /// Addresses of every host in `hosts`, in the same order. A host may be an IP literal (used as is,
    /// `[v6]` accepted) or a name resolved with [`addresses`](Self::addresses). Each distinct name
    /// (trailing dot and case aside) is looked up once, a few at a time.
    pub async fn resolve_hosts<S: AsRef<str>>(
        &self,
        hosts: &[S],
    ) -> Vec<Result<Vec<IpAddr>, DnsError>> {
        let mut distinct: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for host in hosts {
            let key = trim_dot(host.as_ref());
            if seen.insert(key.to_ascii_lowercase()) {
                distinct.push(key);
            }
        }

        let mut tasks = JoinSet::new();
        for (index, host) in distinct.iter().enumerate() {
            let this = self.clone();
            let host = (*host).to_owned();
            tasks.spawn(async move {
                let result = match ip_literal(&host) {
                    Some(ip) => Ok(vec![ip]),
                    None => match dns_name(&host) {
                        Some(name) => {
                            // Never closed, so the permit is always granted; an Err would merely run unthrottled.
                            let _permit = this.host_lookups.acquire().await;
                            this.addresses(name).await
                        }
                        None => Err(DnsError::NotFound),
                    },
                };
                (index, result)
            });
        }
        let mut results: Vec<Option<Result<Vec<IpAddr>, DnsError>>> = vec![None; distinct.len()];
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, result)) => results[index] = Some(result),
                Err(err) => tracing::debug!(%err, "host lookup task ended early"),
            }
        }
        let by_name: Vec<(String, Result<Vec<IpAddr>, DnsError>)> = distinct
            .iter()
            .zip(results)
            .map(|(host, result)| {
                let result = result
                    .unwrap_or_else(|| Err(DnsError::Failed("host lookup task failed".into())));
                (host.to_ascii_lowercase(), result)
            })
            .collect();
        hosts
            .iter()
            .map(|host| {
                let key = trim_dot(host.as_ref()).to_ascii_lowercase();
                by_name
                    .iter()
                    .find(|(name, _)| *name == key)
                    .map_or_else(|| Err(DnsError::NotFound), |(_, result)| result.clone())
            })
            .collect()
    }

    /// Every address of every `(host, port)` target, in target order, through
    /// [`resolve_hosts`](Self::resolve_hosts). Targets that do not resolve are skipped while others
    /// remain; with none left, the [most telling](DnsError::most_telling) error. Not deduplicated.
    pub async fn resolve_targets<S: AsRef<str>>(
        &self,
        targets: &[(S, u16)],
    ) -> Result<Vec<Resolved>, DnsError> {
        let hosts: Vec<&str> = targets.iter().map(|(host, _)| host.as_ref()).collect();
        let resolved = self.resolve_hosts(&hosts).await;
        let mut found = Vec::new();
        let mut errors = Vec::new();
        for (index, ((host, port), addresses)) in targets.iter().zip(resolved).enumerate() {
            let host = host.as_ref();
            match addresses {
                Ok(addresses) => found.extend(addresses.into_iter().map(|ip| Resolved {
                    index,
                    host: trim_dot(host).to_owned(),
                    addr: SocketAddr::new(ip, *port),
                })),
                Err(err) => {
                    tracing::debug!(%host, %err, "skipping target that did not resolve");
                    errors.push(err);
                }
            }
        }
        if found.is_empty() {
            return Err(DnsError::most_telling(errors));
        }
        Ok(found)
    }

    /// One query; `Ok(None)` for NXDOMAIN or no records of that type.
    async fn lookup(
        &self,
        name: Name,
        record_type: RecordType,
    ) -> Result<Option<hickory_resolver::lookup::Lookup>, DnsError> {
        let result =
            tokio::time::timeout(self.lookup_budget, self.resolver.lookup(name, record_type)).await;
        match result {
            Err(_elapsed) => Err(DnsError::Timeout),
            Ok(Ok(lookup)) => Ok(Some(lookup)),
            Ok(Err(err)) if err.is_no_records_found() => Ok(None),
            Ok(Err(NetError::Timeout)) => Err(DnsError::Timeout),
            Ok(Err(err)) => Err(DnsError::Failed(err.to_string())),
        }
    }
}

#[cfg(unix)]
fn system_config() -> Result<(ResolverConfig, ResolverOpts), DnsError> {
    hickory_resolver::system_conf::read_system_conf()
        .map_err(|err| DnsError::Failed(format!("reading the system DNS configuration: {err}")))
}

#[cfg(not(unix))]
fn system_config() -> Result<(ResolverConfig, ResolverOpts), DnsError> {
    Err(DnsError::Failed(
        "no system DNS configuration on this platform; configure name servers".into(),
    ))
}

/// Applies RFC 2782 ordering ([`order_srv`]) and the per-name cap to an answer of [`Resolver::srv`].
pub fn order(records: Option<Vec<SrvRecord>>, random: &mut WeightRandom) -> SrvAnswer {
    let Some(records) = records else {
        return SrvAnswer::Absent;
    };
    match order_srv(records, &mut |n| random.upto(n)) {
        SrvOrder::ServiceUnavailable => SrvAnswer::Unavailable,
        SrvOrder::Targets(mut records) if !records.is_empty() => {
            records.truncate(MAX_SRV_RECORDS);
            SrvAnswer::Targets(records)
        }
        SrvOrder::Targets(_) => SrvAnswer::Absent,
    }
}

/// `<service>.<base>`, such as `_sips._tcp.example.org.`; `None` when that is no valid name.
pub fn service_name(service: &str, base: &Name) -> Option<Name> {
    Name::from_ascii(service)
        .and_then(|prefix| prefix.append_domain(base))
        .ok()
}

/// An absolute DNS name for `host`; ASCII names are taken as they are so that labels such as `_foo` or
/// `a_b`, which IDNA rejects, still work.
pub fn dns_name(host: &str) -> Option<Name> {
    let host = trim_dot(host);
    if host.is_empty() {
        return None;
    }
    let mut name = if host.is_ascii() {
        Name::from_ascii(host)
    } else {
        Name::from_utf8(host)
    }
    .ok()?;
    name.set_fqdn(true);
    Some(name)
}

/// `192.0.2.1`, `2001:db8::1` or `[2001:db8::1]`.
pub fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

/// `host` without one trailing dot.
pub fn trim_dot(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// A weight generator for [`order`], seeded differently per process and call: load spreading needs no
/// cryptographic quality.
pub fn seeded_random() -> WeightRandom {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    hasher.write_u128(nanos);
    WeightRandom::new(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_classes() {
        assert!(DnsError::Timeout.is_transient());
        assert!(DnsError::Failed("servfail".into()).is_transient());
        assert!(!DnsError::NotFound.is_transient());
        assert_eq!(DnsError::most_telling([]), DnsError::NotFound);
        assert_eq!(
            DnsError::most_telling([
                DnsError::NotFound,
                DnsError::Timeout,
                DnsError::Failed("x".into())
            ]),
            DnsError::Timeout
        );
    }

    #[test]
    fn rng_stays_in_range() {
        let mut rng = seeded_random();
        assert_eq!(rng.upto(0), 0);
        for n in [1, 2, 100, u32::MAX] {
            assert!((0..1000).all(|_| rng.upto(n) <= n));
        }
        // Both ends of a small range are reachable.
        let draws: HashSet<u32> = (0..1000).map(|_| rng.upto(1)).collect();
        assert_eq!(draws.len(), 2);
    }

    #[test]
    fn literals_and_names() {
        assert_eq!(
            ip_literal("[2001:db8::1]"),
            Some("2001:db8::1".parse().expect("v6"))
        );
        assert_eq!(
            ip_literal("192.0.2.1"),
            Some("192.0.2.1".parse().expect("v4"))
        );
        assert_eq!(ip_literal("example.org"), None);
        assert_eq!(
            dns_name("a_b.example.").map(|n| n.to_ascii()),
            Some("a_b.example.".into())
        );
        assert_eq!(
            dns_name("bücher.example").map(|n| n.to_ascii()),
            Some("xn--bcher-kva.example.".into())
        );
        assert_eq!(dns_name("."), None);
        assert_eq!(trim_dot("a.example."), "a.example");
        assert_eq!(
            dns_name("example.org")
                .and_then(|base| service_name("_sips._tcp", &base))
                .map(|n| n.to_ascii()),
            Some("_sips._tcp.example.org.".into())
        );
    }
}
