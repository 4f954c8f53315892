//! Locating the SIP server of a remote domain: which addresses to connect to for SIP over TLS, in which
//! order.
//!
//! The order, first answer wins:
//! 1. `_sipfederationtls._tcp.<domain>` SRV, which Microsoft Lync and Skype for Business publish for
//!    federation and which is not part of RFC 3263;
//! 2. RFC 3263 §4.1: NAPTR records of the domain with service `SIPS+D2T`, each leading to an SRV name;
//! 3. RFC 3263 §4.2: `_sips._tcp.<domain>` SRV;
//! 4. the domain's own A and AAAA records on port 5061, only when none of the SRV names above exists.
//!
//! SRV answers are ordered by [`sixgate_core::srv::order_srv`] (RFC 2782), never in wire order. The
//! resolver setup mirrors `sixgate-xmpp`'s discovery: explicit name servers are the only ones asked, without
//! search domains or hosts file, and hickory's own timeout is backed by a budget of our own.

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
use hickory_resolver::proto::rr::{Name, RData, RecordType};
use sixgate_core::Domain;
use sixgate_core::srv::{SrvOrder, SrvRecord, WeightRandom, order_srv};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Port of SIP over TLS when no SRV record names one (RFC 3261 §19.1.2, RFC 3263 §4.2).
pub const DEFAULT_SIPS_PORT: u16 = 5061;

/// SRV records used per SRV name; the rest of a larger answer is ignored.
pub const MAX_SRV_RECORDS: usize = 16;

/// NAPTR records followed per domain.
pub const MAX_NAPTR_RECORDS: usize = 4;

/// Addresses used per target host name, IPv4 first.
pub const MAX_ADDRESSES_PER_TARGET: usize = 8;

/// The SRV name Microsoft federation (Lync, Skype for Business) publishes.
const FEDERATION_SERVICE: &str = "_sipfederationtls._tcp";

/// The RFC 3263 SRV name of SIP over TLS.
const SIPS_SERVICE: &str = "_sips._tcp";

/// The NAPTR service of SIP over TLS over TCP (RFC 3263 §4.1).
const NAPTR_SIPS: &[u8] = b"SIPS+D2T";

/// How many host names are resolved at once, so that a full SRV answer does not trip the resolver's
/// per-connection request cap.
const CONCURRENT_HOST_LOOKUPS: usize = 8;

/// Retries hickory makes after a failed or timed-out query, pinned so that our own budget matches even
/// when the system configuration says otherwise.
const ATTEMPTS: usize = 2;

/// Where DNS questions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Name servers to ask, over UDP and TCP. Empty means the system configuration (`/etc/resolv.conf`
    /// on Unix, with its search domains); otherwise only these servers are asked, with no search domains
    /// and no hosts file.
    pub nameservers: Vec<SocketAddr>,
    /// How long one DNS query waits for an answer. A query that times out is retried twice.
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

/// One address to try, in the order returned.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint {
    /// The SRV target or configured host the address came from, without a trailing dot. For logs: the
    /// server certificate is checked against the SIP domain, never against this name (RFC 5922 §4).
    pub host: String,
    /// Address and port to connect to.
    pub addr: SocketAddr,
}

/// Why discovery produced no endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The domain, or every name it points to, has no usable records, or it publishes the SRV target
    /// `"."` (RFC 2782: no such service). The domain has no SIP over TLS service.
    #[error("no SIP over TLS service found in DNS")]
    NotFound,
    /// A name server did not answer in time.
    #[error("DNS lookup timed out")]
    Timeout,
    /// DNS failed for another reason (SERVFAIL, refused, I/O, bad configuration): the domain may exist,
    /// we just could not find out.
    #[error("DNS lookup failed: {0}")]
    Failed(String),
}

/// Resolves SIP domains and configured hosts to endpoints. Cheap to clone; clones share the resolver and
/// its cache.
#[derive(Debug, Clone)]
pub struct SipDiscovery {
    resolver: TokioResolver,
    // Hickory normally answers within timeout × (ATTEMPTS + 1); this safety net keeps one lookup from
    // outliving its budget whatever its connection pool does.
    lookup_budget: Duration,
    host_lookups: Arc<Semaphore>,
}

/// What one SRV name said.
#[derive(Debug)]
enum SrvAnswer {
    /// NXDOMAIN, or the name exists without SRV records.
    Absent,
    /// Only `"."` targets.
    Unavailable,
    /// Targets in RFC 2782 order, capped.
    Targets(Vec<SrvRecord>),
}

impl SipDiscovery {
    /// Builds the resolver. Fails only if the system configuration is asked for and cannot be read.
    pub fn new(config: &DnsConfig) -> Result<Self, DiscoveryError> {
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
                    // The operator chose these servers, so their NXDOMAIN is final rather than a reason
                    // to ask the next one.
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
                .map_err(|err| {
                    DiscoveryError::Failed(format!("building the DNS resolver: {err}"))
                })?;
        let lookup_budget = config
            .timeout
            .saturating_mul(u32::try_from(ATTEMPTS + 2).unwrap_or(u32::MAX));
        Ok(Self {
            resolver,
            lookup_budget,
            host_lookups: Arc::new(Semaphore::new(CONCURRENT_HOST_LOOKUPS)),
        })
    }

    /// Endpoints of the SIP over TLS server of `domain`, best first (see the module documentation for
    /// the order). Never returns an empty list.
    ///
    /// A domain that is an IP literal is used as is, on port 5061, without DNS (RFC 3263 §4.2).
    pub async fn resolve(&self, domain: &Domain) -> Result<Vec<Endpoint>, DiscoveryError> {
        if let Some(ip) = ip_literal(domain.as_str()) {
            return Ok(vec![Endpoint {
                host: domain.to_string(),
                addr: SocketAddr::new(ip, DEFAULT_SIPS_PORT),
            }]);
        }
        let base = dns_name(domain.as_str()).ok_or(DiscoveryError::NotFound)?;
        let federation_name = service_name(FEDERATION_SERVICE, &base)?;
        let sips_name = service_name(SIPS_SERVICE, &base)?;

        let mut random = seeded_random();
        let (federation, naptr, sips) = tokio::join!(
            self.srv(&federation_name),
            self.naptr(&base),
            self.srv(&sips_name)
        );
        let federation = federation.map(|records| order(records, &mut random));
        let sips = sips.map(|records| order(records, &mut random));

        let mut answers: Vec<Result<SrvAnswer, DiscoveryError>> = vec![federation];
        match naptr {
            Ok(names) => {
                for name in names {
                    // RFC 3263 §4.1 points `SIPS+D2T` at an SRV name, usually `_sips._tcp` itself.
                    if name == sips_name {
                        continue;
                    }
                    let answer = self
                        .srv(&name)
                        .await
                        .map(|records| order(records, &mut random));
                    answers.push(answer);
                }
            }
            Err(err) => answers.push(Err(err)),
        }
        answers.push(sips);

        let mut unavailable = false;
        let mut first_error = None;
        let mut targets = None;
        for answer in answers {
            match answer {
                Ok(SrvAnswer::Targets(records)) => {
                    targets = Some(records);
                    break;
                }
                Ok(SrvAnswer::Absent) => {}
                Ok(SrvAnswer::Unavailable) => unavailable = true,
                Err(err) => {
                    first_error.get_or_insert(err);
                }
            }
        }
        let Some(targets) = targets else {
            // An error next to "absent" could be hiding the records that matter, so it wins over the
            // address-record fallback.
            if let Some(err) = first_error {
                return Err(err);
            }
            if unavailable {
                return Err(DiscoveryError::NotFound);
            }
            tracing::debug!(%domain, "no SIP SRV records, falling back to address records on 5061");
            let addresses = self.addresses(base).await?;
            return Ok(addresses
                .into_iter()
                .map(|ip| Endpoint {
                    host: domain.to_string(),
                    addr: SocketAddr::new(ip, DEFAULT_SIPS_PORT),
                })
                .collect());
        };

        let targets: Vec<(String, u16)> = targets
            .into_iter()
            .map(|record| (record.target, record.port))
            .collect();
        self.resolve_hosts(&targets).await
    }

    /// Endpoints of configured `(host, port)` pairs, in the given order. A host may be an IP literal (used
    /// as is, `[v6]` accepted) or a name resolved to A and AAAA. Hosts that do not resolve are skipped
    /// while others remain; at most [`MAX_SRV_RECORDS`] pairs are used.
    pub async fn resolve_static(
        &self,
        targets: &[(String, u16)],
    ) -> Result<Vec<Endpoint>, DiscoveryError> {
        let targets = targets.get(..MAX_SRV_RECORDS).unwrap_or(targets);
        self.resolve_hosts(targets).await
    }

    /// Every `(host, port)` resolved, in order; hosts that fail are skipped while others resolve.
    async fn resolve_hosts(
        &self,
        targets: &[(String, u16)],
    ) -> Result<Vec<Endpoint>, DiscoveryError> {
        let mut distinct: Vec<String> = Vec::new();
        let mut seen = HashSet::new();
        for (host, _) in targets {
            let key = trim_dot(host).to_ascii_lowercase();
            if seen.insert(key.clone()) {
                distinct.push(key);
            }
        }

        let mut tasks = JoinSet::new();
        for (index, host) in distinct.iter().enumerate() {
            let this = self.clone();
            let host = host.clone();
            tasks.spawn(async move {
                let result = match ip_literal(&host) {
                    Some(ip) => Ok(vec![ip]),
                    None => match dns_name(&host) {
                        Some(name) => {
                            // Never closed, so the permit is always granted.
                            let _permit = this.host_lookups.acquire().await;
                            this.addresses(name).await
                        }
                        None => Err(DiscoveryError::NotFound),
                    },
                };
                (index, result)
            });
        }
        let mut results: Vec<Result<Vec<IpAddr>, DiscoveryError>> = distinct
            .iter()
            .map(|_| Err(DiscoveryError::Failed("host lookup task failed".into())))
            .collect();
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, result)) => {
                    if let Some(slot) = results.get_mut(index) {
                        *slot = result;
                    }
                }
                Err(err) => tracing::debug!(%err, "host lookup task ended early"),
            }
        }

        let mut endpoints = Vec::new();
        let mut errors = Vec::new();
        for (host, port) in targets {
            let key = trim_dot(host).to_ascii_lowercase();
            let Some(result) = distinct
                .iter()
                .position(|name| *name == key)
                .and_then(|index| results.get(index))
            else {
                continue;
            };
            match result {
                Ok(addresses) => endpoints.extend(addresses.iter().map(|ip| Endpoint {
                    host: trim_dot(host).to_owned(),
                    addr: SocketAddr::new(*ip, *port),
                })),
                Err(err) => {
                    tracing::debug!(%host, %err, "skipping SIP target that did not resolve");
                    errors.push(err.clone());
                }
            }
        }
        let mut seen = HashSet::new();
        endpoints.retain(|endpoint| seen.insert(endpoint.addr));
        if !endpoints.is_empty() {
            return Ok(endpoints);
        }
        // A transient error means the answer may exist after all.
        Err(errors
            .into_iter()
            .find(|err| !matches!(err, DiscoveryError::NotFound))
            .unwrap_or(DiscoveryError::NotFound))
    }

    /// SRV names that the domain's `SIPS+D2T` NAPTR records point to, in RFC 3403 order (order, then
    /// preference). Empty when there are none.
    async fn naptr(&self, name: &Name) -> Result<Vec<Name>, DiscoveryError> {
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
                    if naptr.services.eq_ignore_ascii_case(NAPTR_SIPS)
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
        names.truncate(MAX_NAPTR_RECORDS);
        Ok(names)
    }

    /// SRV records of `name` in wire order, or `None` when there are none.
    async fn srv(&self, name: &Name) -> Result<Option<Vec<SrvRecord>>, DiscoveryError> {
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

    /// A then AAAA addresses of `name`, at most [`MAX_ADDRESSES_PER_TARGET`].
    async fn addresses(&self, name: Name) -> Result<Vec<IpAddr>, DiscoveryError> {
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
            return Err(failure.unwrap_or(DiscoveryError::NotFound));
        }
        if let Some(err) = failure {
            tracing::debug!(%name, %err, "one address family failed, using the other");
        }
        let mut seen = HashSet::new();
        addresses.retain(|ip| seen.insert(*ip));
        addresses.truncate(MAX_ADDRESSES_PER_TARGET);
        Ok(addresses)
    }

    /// One query; `Ok(None)` for NXDOMAIN or no records of that type.
    async fn lookup(
        &self,
        name: Name,
        record_type: RecordType,
    ) -> Result<Option<hickory_resolver::lookup::Lookup>, DiscoveryError> {
        let result =
            tokio::time::timeout(self.lookup_budget, self.resolver.lookup(name, record_type)).await;
        match result {
            Err(_elapsed) => Err(DiscoveryError::Timeout),
            Ok(Ok(lookup)) => Ok(Some(lookup)),
            Ok(Err(err)) if err.is_no_records_found() => Ok(None),
            Ok(Err(NetError::Timeout)) => Err(DiscoveryError::Timeout),
            Ok(Err(err)) => Err(DiscoveryError::Failed(err.to_string())),
        }
    }
}

#[cfg(unix)]
fn system_config() -> Result<(ResolverConfig, ResolverOpts), DiscoveryError> {
    hickory_resolver::system_conf::read_system_conf().map_err(|err| {
        DiscoveryError::Failed(format!("reading the system DNS configuration: {err}"))
    })
}

#[cfg(not(unix))]
fn system_config() -> Result<(ResolverConfig, ResolverOpts), DiscoveryError> {
    Err(DiscoveryError::Failed(
        "no system DNS configuration on this platform; configure name servers".into(),
    ))
}

fn service_name(service: &str, base: &Name) -> Result<Name, DiscoveryError> {
    Name::from_ascii(service)
        .and_then(|prefix| prefix.append_domain(base))
        .map_err(|_| DiscoveryError::NotFound)
}

/// Applies RFC 2782 ordering and the per-name cap.
fn order(records: Option<Vec<SrvRecord>>, random: &mut WeightRandom) -> SrvAnswer {
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

/// An absolute DNS name for `host`; ASCII names are taken as they are so that labels such as `_foo`,
/// which IDNA rejects, still work.
fn dns_name(host: &str) -> Option<Name> {
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
pub(crate) fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn trim_dot(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// A weight generator seeded differently per process and call: load spreading needs no cryptographic
/// quality.
fn seeded_random() -> WeightRandom {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    hasher.write_u128(nanos);
    WeightRandom::new(hasher.finish())
}

#[cfg(test)]
mod tests;
