//! Outbound server-to-server discovery: which addresses to try for a remote XMPP domain, in which order, and
//! whether to start TLS directly (XEP-0368) or through STARTTLS (RFC 6120 §3.2).
//!
//! The order is the one Prosody 0.12 and ejabberd use: `_xmpps-server._tcp` targets, then
//! `_xmpp-server._tcp` targets, then the domain's own address records on port 5269 when neither SRV name
//! exists. SRV ordering (RFC 2782) is done by [`sixgate_xmpp_proto::srv`], not by the resolver, which
//! returns records in wire order. The DNS mechanics are `sixgate-dns`'s, shared with SIP.

use std::collections::HashSet;
use std::net::SocketAddr;

use sixgate_core::Domain;
use sixgate_dns::{
    DnsError, Name, Resolver, SrvAnswer, dns_name, ip_literal, order, seeded_random, service_name,
};
use sixgate_xmpp_proto::srv::SrvRecord;

pub use sixgate_dns::{DnsConfig, MAX_ADDRESSES_PER_TARGET, MAX_SRV_RECORDS};

/// Port of `xmpp-server` when no SRV record names one (RFC 6120 §3.2.2).
pub const DEFAULT_S2S_PORT: u16 = 5269;

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

impl From<DnsError> for DiscoveryError {
    fn from(err: DnsError) -> Self {
        err.classify(Self::NotFound, Self::Timeout, Self::Failed)
    }
}

/// Resolves remote XMPP domains to endpoints. Cheap to clone; clones share the resolver and its cache.
#[derive(Debug, Clone)]
pub struct Discovery {
    resolver: Resolver,
}

impl Discovery {
    /// Builds the resolver. Fails only if the system configuration is asked for and cannot be read.
    pub fn new(config: &DnsConfig) -> Result<Self, DiscoveryError> {
        Ok(Self {
            resolver: Resolver::new(config)?,
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
        let srv_name = |service: &str| service_name(service, &base).ok_or(DiscoveryError::NotFound);
        let direct_name = srv_name("_xmpps-server._tcp")?;
        let starttls_name = srv_name("_xmpp-server._tcp")?;

        let mut random = seeded_random();
        let (direct, starttls) = tokio::join!(
            self.resolver.srv(&direct_name),
            self.resolver.srv(&starttls_name)
        );
        let mut ordered = |answer: Result<_, DnsError>| {
            answer
                .map(|records| order(records, &mut random))
                .map_err(DiscoveryError::from)
        };
        let direct = ordered(direct);
        let starttls = ordered(starttls);

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

        let hosts: Vec<(&str, u16)> = targets
            .iter()
            .map(|(record, _)| (record.target.as_str(), record.port))
            .collect();
        let resolved = self.resolver.resolve_targets(&hosts).await?;
        Ok(distinct(resolved.into_iter().map(|found| Endpoint {
            direct_tls: targets.get(found.index).is_some_and(|(_, direct)| *direct),
            host: found.host,
            addr: found.addr,
        })))
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
        let resolved = self.resolver.resolve_targets(targets).await?;
        Ok(distinct(resolved.into_iter().map(|found| Endpoint {
            host: found.host,
            addr: found.addr,
            direct_tls: false,
        })))
    }

    /// RFC 6120 §3.2.2: the domain's own addresses on the default port.
    async fn fallback(&self, domain: &Domain, name: Name) -> Result<Vec<Endpoint>, DiscoveryError> {
        let addrs = self.resolver.addresses_on(name, DEFAULT_S2S_PORT).await?;
        let host = domain.to_string();
        Ok(addrs
            .into_iter()
            .map(|addr| Endpoint {
                host: host.clone(),
                addr,
                direct_tls: false,
            })
            .collect())
    }
}

/// Endpoints without repeats of the same address and TLS mode, first kept.
fn distinct(endpoints: impl Iterator<Item = Endpoint>) -> Vec<Endpoint> {
    let mut seen = HashSet::new();
    endpoints
        .filter(|endpoint| seen.insert((endpoint.addr, endpoint.direct_tls)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use sixgate_dns::testing::{Record, TestDns, a, aaaa, srv};
    use tokio::net::UdpSocket;

    use super::*;

    fn new_discovery(dns: &TestDns) -> Discovery {
        Discovery::new(&dns.config()).expect("discovery")
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
        let discovery = new_discovery(&dns);
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
        let got = new_discovery(&dns)
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
        let discovery = new_discovery(&dns);
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
        let got = new_discovery(&dns)
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
        let got = new_discovery(&dns)
            .resolve(&domain("missing.example"))
            .await;
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
        let discovery = new_discovery(&dns);
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
        let discovery = new_discovery(&dns);

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
        let got = new_discovery(&dns)
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
            new_discovery(&dns).resolve_static(&only_missing).await,
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
