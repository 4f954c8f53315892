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
//! resolver is `sixgate-dns`'s, shared with `sixgate-xmpp`'s discovery: explicit name servers are the only
//! ones asked, without search domains or hosts file, and hickory's own timeout is backed by a budget of our
//! own.

use std::collections::HashSet;
use std::net::SocketAddr;

use sixgate_core::Domain;
use sixgate_dns::{
    DnsError, Name, Resolver, SrvAnswer, dns_name, ip_literal, order, seeded_random, service_name,
};

pub use sixgate_dns::{DnsConfig, MAX_ADDRESSES_PER_TARGET, MAX_SRV_RECORDS};

/// Port of SIP over TLS when no SRV record names one (RFC 3261 §19.1.2, RFC 3263 §4.2).
pub const DEFAULT_SIPS_PORT: u16 = 5061;

/// NAPTR records followed per domain.
pub const MAX_NAPTR_RECORDS: usize = 4;

/// The SRV name Microsoft federation (Lync, Skype for Business) publishes.
const FEDERATION_SERVICE: &str = "_sipfederationtls._tcp";

/// The RFC 3263 SRV name of SIP over TLS.
const SIPS_SERVICE: &str = "_sips._tcp";

/// The NAPTR service of SIP over TLS over TCP (RFC 3263 §4.1).
const NAPTR_SIPS: &[u8] = b"SIPS+D2T";

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

impl From<DnsError> for DiscoveryError {
    fn from(err: DnsError) -> Self {
        err.classify(Self::NotFound, Self::Timeout, Self::Failed)
    }
}

/// Resolves SIP domains and configured hosts to endpoints. Cheap to clone; clones share the resolver and
/// its cache.
#[derive(Debug, Clone)]
pub struct SipDiscovery {
    resolver: Resolver,
}

impl SipDiscovery {
    /// Builds the resolver. Fails only if the system configuration is asked for and cannot be read.
    pub fn new(config: &DnsConfig) -> Result<Self, DiscoveryError> {
        Ok(Self {
            resolver: Resolver::new(config)?,
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
        let federation_name =
            service_name(FEDERATION_SERVICE, &base).ok_or(DiscoveryError::NotFound)?;
        let sips_name = service_name(SIPS_SERVICE, &base).ok_or(DiscoveryError::NotFound)?;

        let mut random = seeded_random();
        let (federation, naptr, sips) = tokio::join!(
            self.resolver.srv(&federation_name),
            self.resolver.naptr(&base, NAPTR_SIPS),
            self.resolver.srv(&sips_name)
        );
        let federation = federation.map(|records| order(records, &mut random));
        let sips = sips.map(|records| order(records, &mut random));

        let mut answers: Vec<Result<SrvAnswer, DnsError>> = vec![federation];
        match naptr {
            Ok(mut names) => {
                names.truncate(MAX_NAPTR_RECORDS);
                for name in names {
                    // RFC 3263 §4.1 points `SIPS+D2T` at an SRV name, usually `_sips._tcp` itself.
                    if name == sips_name {
                        continue;
                    }
                    let answer = self
                        .resolver
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
                return Err(err.into());
            }
            if unavailable {
                return Err(DiscoveryError::NotFound);
            }
            tracing::debug!(%domain, "no SIP SRV records, falling back to address records on 5061");
            return self.fallback(domain, base).await;
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

    /// RFC 3263 §4.2: the domain's own addresses on port 5061.
    async fn fallback(&self, domain: &Domain, name: Name) -> Result<Vec<Endpoint>, DiscoveryError> {
        let host = domain.to_string();
        let addrs = self.resolver.addresses_on(name, DEFAULT_SIPS_PORT).await?;
        Ok(addrs
            .into_iter()
            .map(|addr| endpoint(&host, addr))
            .collect())
    }

    /// Every `(host, port)` resolved, in order, each address once; hosts that fail are skipped while
    /// others resolve.
    async fn resolve_hosts(
        &self,
        targets: &[(String, u16)],
    ) -> Result<Vec<Endpoint>, DiscoveryError> {
        let resolved = self.resolver.resolve_targets(targets).await?;
        let mut seen = HashSet::new();
        Ok(resolved
            .into_iter()
            .filter(|found| seen.insert(found.addr))
            .map(|found| endpoint(&found.host, found.addr))
            .collect())
    }
}

fn endpoint(host: &str, addr: SocketAddr) -> Endpoint {
    Endpoint {
        host: host.to_owned(),
        addr,
    }
}

#[cfg(test)]
mod tests;
