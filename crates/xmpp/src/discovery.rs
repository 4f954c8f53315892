//! Outbound server-to-server discovery: which addresses to try for a remote XMPP domain, in which order, and
//! whether to start TLS directly (XEP-0368) or through STARTTLS (RFC 6120 §3.2).
//!
//! The order is the one Prosody 0.12 and ejabberd use: `_xmpps-server._tcp` targets, then
//! `_xmpp-server._tcp` targets, then the domain's own address records on port 5269 when neither SRV name
//! exists. SRV ordering (RFC 2782) is done by [`sixgate_xmpp_proto::srv`], not by the resolver, which
//! returns records in wire order.

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
use sixgate_xmpp_proto::srv::{SrvOrder, SrvRecord, WeightRandom, order_srv};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

/// Port of `xmpp-server` when no SRV record names one (RFC 6120 §3.2.2).
pub const DEFAULT_S2S_PORT: u16 = 5269;

/// SRV records used per SRV name; the rest of a larger answer is ignored.
pub const MAX_SRV_RECORDS: usize = 16;

/// Addresses used per target host name, IPv4 first.
pub const MAX_ADDRESSES_PER_TARGET: usize = 8;

/// How many host names are resolved at once. A full answer is 2 × 16 targets, each needing A and AAAA;
/// a limit keeps that from tripping the resolver's per-connection request cap.
const CONCURRENT_HOST_LOOKUPS: usize = 8;

/// Retries hickory makes after a failed or timed-out query (its default, pinned so that the budget in
/// [`Discovery`] matches even when the system configuration says otherwise).
const ATTEMPTS: usize = 2;

/// Where DNS questions go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsConfig {
    /// Name servers to ask, over UDP and TCP. Empty means the system configuration (`/etc/resolv.conf`
    /// on Unix, including its search domains for names that are not absolute); otherwise only these
    /// servers are asked, with no search domains and no hosts file.
    pub nameservers: Vec<SocketAddr>,
    /// How long one DNS query waits for an answer. A query that times out is retried twice, so a name
    /// server that never answers costs three times this before [`DiscoveryError::Timeout`].
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
    /// The SRV target or configured host name the address came from, without a trailing dot. For logs;
    /// the certificate is checked against the XMPP domain, not this name.
    pub host: String,
    /// Address and port to connect to.
    pub addr: SocketAddr,
    /// Start TLS immediately (XEP-0368, `_xmpps-server`) instead of negotiating STARTTLS.
    pub direct_tls: bool,
}

/// Why discovery produced no endpoint.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DiscoveryError {
    /// The domain publishes an SRV target of `"."`: it decidedly offers no s2s service (RFC 2782,
    /// RFC 6120 §3.2.1, XEP-0368). Report as `remote-server-not-found`.
    #[error("the domain publishes no XMPP server-to-server service")]
    NoService,
    /// The domain, or every name it points to, has no usable records. Report as `remote-server-not-found`.
    #[error("no DNS records for the domain or its targets")]
    NotFound,
    /// A name server did not answer in time. Report as `remote-server-timeout`.
    #[error("DNS lookup timed out")]
    Timeout,
    /// DNS failed for another reason (SERVFAIL, refused, I/O, bad configuration). Report as
    /// `remote-server-timeout`: the domain may exist, we just could not find out.
    #[error("DNS lookup failed: {0}")]
    Failed(String),
}

impl DiscoveryError {
    /// Whether this should be reported as `remote-server-timeout` rather than `remote-server-not-found`:
    /// true for [`Timeout`](Self::Timeout) and [`Failed`](Self::Failed), which may go away on a retry.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Self::Timeout | Self::Failed(_))
    }
}

/// Resolves remote XMPP domains to endpoints. Cheap to clone; clones share the resolver and its cache.
#[derive(Debug, Clone)]
pub struct Discovery {
    resolver: TokioResolver,
    // A safety net over hickory's own timeout and retries (which normally answer first, at
    // timeout × (ATTEMPTS + 1)), so that one lookup cannot outlive its budget whatever the pool does.
    lookup_budget: Duration,
    host_lookups: Arc<Semaphore>,
}

/// What one SRV name said.
enum SrvAnswer {
    /// NXDOMAIN, or the name exists without SRV records.
    Absent,
    /// A `"."` target.
    Unavailable,
    /// Targets in RFC 2782 order, capped.
    Targets(Vec<SrvRecord>),
}

impl Discovery {
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

    /// Endpoints for `domain`, best first: direct-TLS SRV targets, STARTTLS SRV targets, or the domain's
    /// own addresses on port 5269 when it has neither SRV name. Never returns an empty list.
    ///
    /// A domain that is an IP literal is used as is, on port 5269, without DNS (RFC 6120 §3.2.1).
    pub async fn resolve(&self, domain: &Domain) -> Result<Vec<Endpoint>, DiscoveryError> {
        if let Some(ip) = ip_literal(domain.as_str()) {
            return Ok(vec![Endpoint {
                host: domain.to_string(),
                addr: SocketAddr::new(ip, DEFAULT_S2S_PORT),
                direct_tls: false,
            }]);
        }
        let base = dns_name(domain.as_str()).ok_or(DiscoveryError::NotFound)?;
        let srv_name = |service: &str| {
            Name::from_ascii(service)
                .and_then(|prefix| prefix.append_domain(&base))
                .map_err(|_| DiscoveryError::NotFound)
        };
        let direct_name = srv_name("_xmpps-server._tcp")?;
        let starttls_name = srv_name("_xmpp-server._tcp")?;

        let mut random = seeded_random();
        let (direct, starttls) = tokio::join!(self.srv(&direct_name), self.srv(&starttls_name));
        let direct = direct.map(|records| order(records, &mut random));
        let starttls = starttls.map(|records| order(records, &mut random));

        let mut targets: Vec<(SrvRecord, bool)> = Vec::new();
        match (direct, starttls) {
            (Ok(SrvAnswer::Absent), Ok(SrvAnswer::Absent)) => {
                tracing::debug!(%domain, "no SRV records, falling back to address records on 5269");
                return self.fallback(domain, base).await;
            }
            (
                Ok(SrvAnswer::Absent | SrvAnswer::Unavailable),
                Ok(SrvAnswer::Absent | SrvAnswer::Unavailable),
            ) => {
                return Err(DiscoveryError::NoService);
            }
            (direct, starttls) => {
                // Half an answer is still usable when the other half has targets, but an error next to
                // "absent" or "." could be hiding the records that matter, so it is reported.
                let have_targets = matches!(direct, Ok(SrvAnswer::Targets(_)))
                    || matches!(starttls, Ok(SrvAnswer::Targets(_)));
                for (answer, direct_tls) in [(direct, true), (starttls, false)] {
                    match answer {
                        Ok(SrvAnswer::Targets(records)) => {
                            targets.extend(records.into_iter().map(|r| (r, direct_tls)));
                        }
                        Ok(SrvAnswer::Absent | SrvAnswer::Unavailable) => {}
                        Err(err) if have_targets => {
                            tracing::debug!(
                                %domain, direct_tls, %err,
                                "SRV lookup failed, using the other service"
                            );
                        }
                        Err(err) => return Err(err),
                    }
                }
            }
        }

        let names: Vec<String> = targets
            .iter()
            .map(|(record, _)| record.target.clone())
            .collect();
        let resolved = self.resolve_hosts(&names).await;
        let mut endpoints = Vec::new();
        let mut errors = Vec::new();
        for ((record, direct_tls), addresses) in targets.iter().zip(resolved) {
            match addresses {
                Ok(addresses) => endpoints.extend(addresses.into_iter().map(|ip| Endpoint {
                    host: trim_dot(&record.target).to_owned(),
                    addr: SocketAddr::new(ip, record.port),
                    direct_tls: *direct_tls,
                })),
                Err(err) => {
                    tracing::debug!(
                        %domain, target = %record.target, %err,
                        "skipping SRV target that did not resolve"
                    );
                    errors.push(err);
                }
            }
        }
        finish(endpoints, errors)
    }

    /// Endpoints for operator-configured `(host, port)` overrides, in the given order, all STARTTLS. A host
    /// may be an IP literal (used as is, `[v6]` accepted) or a name resolved to A and AAAA. Hosts that do
    /// not resolve are skipped while others remain; at most [`MAX_SRV_RECORDS`] entries are used.
    pub async fn resolve_static(
        &self,
        targets: &[(String, u16)],
    ) -> Result<Vec<Endpoint>, DiscoveryError> {
        if targets.len() > MAX_SRV_RECORDS {
            tracing::warn!(
                configured = targets.len(),
                used = MAX_SRV_RECORDS,
                "too many static s2s targets"
            );
        }
        let targets = &targets[..targets.len().min(MAX_SRV_RECORDS)];
        let names: Vec<String> = targets.iter().map(|(host, _)| host.clone()).collect();
        let resolved = self.resolve_hosts(&names).await;
        let mut endpoints = Vec::new();
        let mut errors = Vec::new();
        for ((host, port), addresses) in targets.iter().zip(resolved) {
            match addresses {
                Ok(addresses) => endpoints.extend(addresses.into_iter().map(|ip| Endpoint {
                    host: trim_dot(host).to_owned(),
                    addr: SocketAddr::new(ip, *port),
                    direct_tls: false,
                })),
                Err(err) => {
                    tracing::debug!(%host, %err, "skipping static s2s target that did not resolve");
                    errors.push(err);
                }
            }
        }
        finish(endpoints, errors)
    }

    /// RFC 6120 §3.2.2: the domain's own addresses on the default port.
    async fn fallback(&self, domain: &Domain, name: Name) -> Result<Vec<Endpoint>, DiscoveryError> {
        let addresses = self.addresses(name).await?;
        Ok(addresses
            .into_iter()
            .map(|ip| Endpoint {
                host: domain.to_string(),
                addr: SocketAddr::new(ip, DEFAULT_S2S_PORT),
                direct_tls: false,
            })
            .collect())
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

    /// Addresses of every host in `hosts`, in the same order. Each distinct name is looked up once.
    async fn resolve_hosts(&self, hosts: &[String]) -> Vec<Result<Vec<IpAddr>, DiscoveryError>> {
        let mut distinct: Vec<&str> = Vec::new();
        let mut seen = HashSet::new();
        for host in hosts {
            let key = trim_dot(host);
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
                        None => Err(DiscoveryError::NotFound),
                    },
                };
                (index, result)
            });
        }
        let mut results: Vec<Option<Result<Vec<IpAddr>, DiscoveryError>>> =
            vec![None; distinct.len()];
        while let Some(joined) = tasks.join_next().await {
            match joined {
                Ok((index, result)) => results[index] = Some(result),
                Err(err) => tracing::debug!(%err, "host lookup task ended early"),
            }
        }
        let by_name: Vec<(String, Result<Vec<IpAddr>, DiscoveryError>)> = distinct
            .iter()
            .zip(results)
            .map(|(host, result)| {
                let result = result.unwrap_or_else(|| {
                    Err(DiscoveryError::Failed("host lookup task failed".into()))
                });
                (host.to_ascii_lowercase(), result)
            })
            .collect();
        hosts
            .iter()
            .map(|host| {
                let key = trim_dot(host).to_ascii_lowercase();
                by_name.iter().find(|(name, _)| *name == key).map_or_else(
                    || Err(DiscoveryError::NotFound),
                    |(_, result)| result.clone(),
                )
            })
            .collect()
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

/// Endpoints deduplicated, or the most telling error: a transient one means the answer may exist.
fn finish(
    mut endpoints: Vec<Endpoint>,
    errors: Vec<DiscoveryError>,
) -> Result<Vec<Endpoint>, DiscoveryError> {
    let mut seen = HashSet::new();
    endpoints.retain(|endpoint| seen.insert((endpoint.addr, endpoint.direct_tls)));
    if !endpoints.is_empty() {
        return Ok(endpoints);
    }
    Err(errors
        .iter()
        .find(|err| err.is_timeout())
        .cloned()
        .unwrap_or(DiscoveryError::NotFound))
}

/// An absolute DNS name for `host`; ASCII names are taken as they are so that labels such as `_foo` or
/// `a_b`, which IDNA rejects, still work.
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
fn ip_literal(host: &str) -> Option<IpAddr> {
    let bare = host
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .unwrap_or(host);
    bare.parse().ok()
}

fn trim_dot(host: &str) -> &str {
    host.strip_suffix('.').unwrap_or(host)
}

/// A weight generator seeded differently per process and call.
fn seeded_random() -> WeightRandom {
    let mut hasher = RandomState::new().build_hasher();
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_nanos());
    hasher.write_u128(nanos);
    WeightRandom::new(hasher.finish())
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};
    use std::str::FromStr;

    use hickory_server::Server;
    use hickory_server::net::runtime::TokioRuntimeProvider as ServerRuntime;
    use hickory_server::proto::rr::rdata::{A, AAAA, SOA, SRV};
    use hickory_server::proto::rr::{LowerName, Record};
    use hickory_server::store::in_memory::InMemoryZoneHandler;
    use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
    use tokio::net::{TcpListener, UdpSocket};

    use super::*;

    /// An authoritative server for `example.` on 127.0.0.1, UDP and TCP on the same random port. Dropping it
    /// aborts its tasks; [`TestDns::stop`] shuts it down cleanly.
    struct TestDns {
        server: Server<Catalog>,
        addr: SocketAddr,
    }

    impl TestDns {
        async fn start(records: Vec<Record>) -> Self {
            let origin = Name::from_ascii("example.").expect("origin");
            let mut zone = InMemoryZoneHandler::<ServerRuntime>::empty(
                origin.clone(),
                ZoneType::Primary,
                AxfrPolicy::Deny,
            );
            let soa = SOA::new(
                Name::from_ascii("ns.example.").expect("mname"),
                Name::from_ascii("hostmaster.example.").expect("rname"),
                1,
                3600,
                600,
                86_400,
                60,
            );
            assert!(zone.upsert_mut(Record::from_rdata(origin.clone(), 60, RData::SOA(soa)), 1));
            for record in records {
                assert!(zone.upsert_mut(record, 1), "record rejected");
            }
            let mut catalog = Catalog::new();
            catalog.upsert(LowerName::new(&origin), vec![Arc::new(zone)]);

            let (udp, tcp) = bind_pair().await;
            let addr = udp.local_addr().expect("udp addr");
            let mut server = Server::new(catalog);
            server.register_socket(udp);
            server.register_listener(tcp, Duration::from_secs(5), 32);
            Self { server, addr }
        }

        fn discovery(&self) -> Discovery {
            Discovery::new(&DnsConfig {
                nameservers: vec![self.addr],
                timeout: Duration::from_secs(2),
            })
            .expect("discovery")
        }

        async fn stop(mut self) {
            tokio::time::timeout(Duration::from_secs(5), self.server.shutdown_gracefully())
                .await
                .expect("DNS server did not stop")
                .expect("DNS server failed");
        }
    }

    /// A UDP socket and a TCP listener on the same free loopback port.
    async fn bind_pair() -> (UdpSocket, TcpListener) {
        for _ in 0..20 {
            let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
                .await
                .expect("bind udp");
            let port = udp.local_addr().expect("udp addr").port();
            if let Ok(tcp) = TcpListener::bind((Ipv4Addr::LOCALHOST, port)).await {
                return (udp, tcp);
            }
        }
        panic!("no free loopback port for both UDP and TCP");
    }

    fn name(text: &str) -> Name {
        Name::from_ascii(text).expect("test name")
    }

    fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
        Record::from_rdata(
            name(owner),
            60,
            RData::SRV(SRV::new(priority, weight, port, name(target))),
        )
    }

    fn a(owner: &str, ip: &str) -> Record {
        Record::from_rdata(
            name(owner),
            60,
            RData::A(A(Ipv4Addr::from_str(ip).expect("ipv4"))),
        )
    }

    fn aaaa(owner: &str, ip: &str) -> Record {
        Record::from_rdata(
            name(owner),
            60,
            RData::AAAA(AAAA(Ipv6Addr::from_str(ip).expect("ipv6"))),
        )
    }

    fn domain(text: &str) -> Domain {
        Domain::parse(text).expect("test domain")
    }

    fn endpoint(host: &str, addr: &str, direct_tls: bool) -> Endpoint {
        Endpoint {
            host: host.to_owned(),
            addr: addr.parse().expect("socket address"),
            direct_tls,
        }
    }

    #[test]
    fn error_classes() {
        assert!(DiscoveryError::Timeout.is_timeout());
        assert!(DiscoveryError::Failed("servfail".into()).is_timeout());
        assert!(!DiscoveryError::NotFound.is_timeout());
        assert!(!DiscoveryError::NoService.is_timeout());
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
    }

    #[tokio::test]
    async fn srv_priority_order_ignores_wire_order() {
        let dns = TestDns::start(vec![
            srv(
                "_xmpp-server._tcp.prio.example.",
                20,
                0,
                5271,
                "c.prio.example.",
            ),
            srv(
                "_xmpp-server._tcp.prio.example.",
                10,
                0,
                5269,
                "a.prio.example.",
            ),
            srv(
                "_xmpp-server._tcp.prio.example.",
                15,
                0,
                5270,
                "b.prio.example.",
            ),
            a("a.prio.example.", "192.0.2.1"),
            a("b.prio.example.", "192.0.2.2"),
            a("c.prio.example.", "192.0.2.3"),
        ])
        .await;
        let discovery = dns.discovery();
        // Repeated so that a lucky wire order cannot pass the test.
        for _ in 0..3 {
            let got = discovery
                .resolve(&domain("prio.example"))
                .await
                .expect("resolve");
            assert_eq!(
                got,
                vec![
                    endpoint("a.prio.example", "192.0.2.1:5269", false),
                    endpoint("b.prio.example", "192.0.2.2:5270", false),
                    endpoint("c.prio.example", "192.0.2.3:5271", false),
                ]
            );
        }
        dns.stop().await;
    }

    #[tokio::test]
    async fn direct_tls_targets_come_first_and_ipv4_before_ipv6() {
        let dns = TestDns::start(vec![
            srv(
                "_xmpp-server._tcp.both.example.",
                0,
                0,
                5269,
                "plain.both.example.",
            ),
            srv(
                "_xmpps-server._tcp.both.example.",
                0,
                0,
                5223,
                "tls.both.example.",
            ),
            aaaa("tls.both.example.", "2001:db8::10"),
            a("tls.both.example.", "192.0.2.10"),
            a("plain.both.example.", "192.0.2.11"),
        ])
        .await;
        let got = dns
            .discovery()
            .resolve(&domain("both.example"))
            .await
            .expect("resolve");
        assert_eq!(
            got,
            vec![
                endpoint("tls.both.example", "192.0.2.10:5223", true),
                endpoint("tls.both.example", "[2001:db8::10]:5223", true),
                endpoint("plain.both.example", "192.0.2.11:5269", false),
            ]
        );
        dns.stop().await;
    }

    #[tokio::test]
    async fn dot_target_means_no_service() {
        let dns = TestDns::start(vec![
            // "." for STARTTLS, nothing for direct TLS, and an A record that must not be used.
            srv("_xmpp-server._tcp.none.example.", 0, 0, 0, "."),
            a("none.example.", "192.0.2.30"),
            // "." on both names.
            srv("_xmpps-server._tcp.none2.example.", 0, 0, 0, "."),
            srv("_xmpp-server._tcp.none2.example.", 0, 0, 0, "."),
            // "." for direct TLS only: STARTTLS still works.
            srv("_xmpps-server._tcp.half.example.", 0, 0, 0, "."),
            srv(
                "_xmpp-server._tcp.half.example.",
                0,
                0,
                5269,
                "xmpp.half.example.",
            ),
            a("xmpp.half.example.", "192.0.2.31"),
        ])
        .await;
        let discovery = dns.discovery();
        assert_eq!(
            discovery.resolve(&domain("none.example")).await,
            Err(DiscoveryError::NoService)
        );
        assert_eq!(
            discovery.resolve(&domain("none2.example")).await,
            Err(DiscoveryError::NoService)
        );
        assert_eq!(
            discovery.resolve(&domain("half.example")).await,
            Ok(vec![endpoint(
                "xmpp.half.example",
                "192.0.2.31:5269",
                false
            )])
        );
        assert!(!DiscoveryError::NoService.is_timeout());
        dns.stop().await;
    }

    #[tokio::test]
    async fn no_srv_falls_back_to_address_records_on_5269() {
        let dns = TestDns::start(vec![
            a("fallback.example.", "192.0.2.20"),
            aaaa("fallback.example.", "2001:db8::20"),
        ])
        .await;
        let got = dns
            .discovery()
            .resolve(&domain("fallback.example"))
            .await
            .expect("resolve");
        assert_eq!(
            got,
            vec![
                endpoint("fallback.example", "192.0.2.20:5269", false),
                endpoint("fallback.example", "[2001:db8::20]:5269", false),
            ]
        );
        dns.stop().await;
    }

    #[tokio::test]
    async fn nxdomain_is_not_found() {
        let dns = TestDns::start(vec![a("other.example.", "192.0.2.40")]).await;
        let got = dns.discovery().resolve(&domain("missing.example")).await;
        assert_eq!(got, Err(DiscoveryError::NotFound));
        assert!(!DiscoveryError::NotFound.is_timeout());
        dns.stop().await;
    }

    #[tokio::test]
    async fn unresolvable_targets_are_skipped() {
        let dns = TestDns::start(vec![
            srv(
                "_xmpp-server._tcp.skip.example.",
                0,
                0,
                5269,
                "gone.skip.example.",
            ),
            srv(
                "_xmpp-server._tcp.skip.example.",
                10,
                0,
                5270,
                "ok.skip.example.",
            ),
            a("ok.skip.example.", "192.0.2.50"),
            srv(
                "_xmpp-server._tcp.allgone.example.",
                0,
                0,
                5269,
                "gone.allgone.example.",
            ),
            a("allgone.example.", "192.0.2.51"),
        ])
        .await;
        let discovery = dns.discovery();
        assert_eq!(
            discovery.resolve(&domain("skip.example")).await,
            Ok(vec![endpoint("ok.skip.example", "192.0.2.50:5270", false)])
        );
        // SRV records exist, so the domain's own A record is not a fallback (RFC 2782).
        assert_eq!(
            discovery.resolve(&domain("allgone.example")).await,
            Err(DiscoveryError::NotFound)
        );
        dns.stop().await;
    }

    #[tokio::test]
    async fn records_and_addresses_are_capped() {
        let mut records: Vec<Record> = (0..20u16)
            .map(|i| {
                srv(
                    "_xmpp-server._tcp.many.example.",
                    i,
                    0,
                    6000 + i,
                    &format!("t{i}.many.example."),
                )
            })
            .collect();
        records.extend((0..20u16).map(|i| {
            a(
                &format!("t{i}.many.example."),
                &format!("192.0.2.{}", 100 + i),
            )
        }));
        records.extend((1..=10u8).map(|i| a("wide.many.example.", &format!("198.51.100.{i}"))));
        records.push(srv(
            "_xmpps-server._tcp.wide.example.",
            0,
            0,
            5223,
            "wide.many.example.",
        ));
        let dns = TestDns::start(records).await;
        let discovery = dns.discovery();

        let many = discovery
            .resolve(&domain("many.example"))
            .await
            .expect("many");
        let ports: Vec<u16> = many.iter().map(|e| e.addr.port()).collect();
        assert_eq!(ports, (6000..6016).collect::<Vec<_>>());

        let wide = discovery
            .resolve(&domain("wide.example"))
            .await
            .expect("wide");
        assert_eq!(wide.len(), MAX_ADDRESSES_PER_TARGET);
        assert!(wide.iter().all(|e| e.direct_tls && e.addr.port() == 5223));
        dns.stop().await;
    }

    #[tokio::test]
    async fn static_overrides_keep_their_order() {
        let dns = TestDns::start(vec![
            a("static.example.", "192.0.2.60"),
            aaaa("static.example.", "2001:db8::60"),
        ])
        .await;
        let targets = [
            ("192.0.2.99".to_owned(), 5270),
            ("missing.example".to_owned(), 5269),
            ("static.example.".to_owned(), 5269),
            ("[2001:db8::99]".to_owned(), 5271),
        ];
        let got = dns
            .discovery()
            .resolve_static(&targets)
            .await
            .expect("static");
        assert_eq!(
            got,
            vec![
                endpoint("192.0.2.99", "192.0.2.99:5270", false),
                endpoint("static.example", "192.0.2.60:5269", false),
                endpoint("static.example", "[2001:db8::60]:5269", false),
                endpoint("[2001:db8::99]", "[2001:db8::99]:5271", false),
            ]
        );
        let only_missing = [("missing.example".to_owned(), 5269)];
        assert_eq!(
            dns.discovery().resolve_static(&only_missing).await,
            Err(DiscoveryError::NotFound)
        );
        dns.stop().await;
    }

    #[tokio::test]
    async fn ip_literal_domain_skips_dns() {
        // No name server at all: a query would fail, so success proves none was sent.
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let discovery = Discovery::new(&DnsConfig {
            nameservers: vec![silent.local_addr().expect("addr")],
            timeout: Duration::from_millis(300),
        })
        .expect("discovery");
        let got = discovery
            .resolve(&domain("192.0.2.70"))
            .await
            .expect("literal");
        assert_eq!(got, vec![endpoint("192.0.2.70", "192.0.2.70:5269", false)]);
    }

    #[tokio::test]
    async fn silent_name_server_times_out() {
        // Bound but never read: queries vanish without an ICMP error, like a dropped packet.
        let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind");
        let discovery = Discovery::new(&DnsConfig {
            nameservers: vec![silent.local_addr().expect("addr")],
            timeout: Duration::from_millis(300),
        })
        .expect("discovery");
        let started = std::time::Instant::now();
        let got = discovery.resolve(&domain("slow.example")).await;
        let elapsed = started.elapsed();
        let err = got.expect_err("a silent server cannot answer");
        assert!(err.is_timeout(), "{err:?}");
        assert_eq!(err, DiscoveryError::Timeout);
        assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");

        let got = discovery
            .resolve_static(&[("slow.example".to_owned(), 5269)])
            .await;
        assert_eq!(got, Err(DiscoveryError::Timeout));
    }
}
