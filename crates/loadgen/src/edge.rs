//! The SIP edge proxy of `corp.example`: a SIP service presenting `edge.corp.example` that sends `MESSAGE`s
//! to the gateway, at most a given number at once.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use sixgate_core::Domain;
use sixgate_sip::Request;
use sixgate_sip::message::{CallId, HeaderName, Method, NameAddr, StatusCode, Uri};
use sixgate_sip_net::{DnsConfig, NextHop, SipConfig, SipDiscovery, SipService, SipTls, Target};
use sixgate_xmpp::tls::LocalCertificates;
use sixgate_xmpp_proto::certificate::TrustStore;
use tokio::sync::{Semaphore, mpsc};

/// How one batch of `MESSAGE`s went.
#[derive(Debug, Default)]
pub(crate) struct BatchResult {
    /// Final responses by status code.
    pub(crate) statuses: BTreeMap<u16, u64>,
    /// Requests that got no response, by error.
    pub(crate) errors: BTreeMap<String, u64>,
    /// Time from sending to the final response (or error), one per request, sorted.
    pub(crate) latencies: Vec<Duration>,
    /// From the first request sent to the last answer.
    pub(crate) elapsed: Duration,
}

impl BatchResult {
    pub(crate) fn successes(&self) -> u64 {
        self.statuses
            .iter()
            .filter(|(code, _)| (200..300).contains(*code))
            .map(|(_, count)| count)
            .sum()
    }

    pub(crate) fn failures(&self) -> u64 {
        let total: u64 = self.statuses.values().sum::<u64>() + self.errors.values().sum::<u64>();
        total - self.successes()
    }

    /// The latency at quantile `q` (0 to 1).
    pub(crate) fn latency(&self, q: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let last = self.latencies.len() - 1;
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((last as f64) * q).round() as usize;
        self.latencies[index.min(last)]
    }
}

/// The running edge.
pub(crate) struct Edge {
    /// The first one listens (for requests from the gateway); each opens its own connection to the
    /// gateway, and MESSAGEs take turns among them.
    services: Vec<Arc<SipService>>,
    gateway: NextHop,
    domain: String,
    remote_domain: String,
    /// Requests the gateway sent us (delivery notices); answered 200.
    pub(crate) received: Arc<AtomicU64>,
}

impl Edge {
    #[allow(clippy::too_many_arguments)]
    pub(crate) async fn start(
        connections: usize,
        listen: SocketAddr,
        identity: &str,
        domain: &str,
        remote_domain: &str,
        gateway: SocketAddr,
        gateway_identity: &str,
        local: LocalCertificates,
        trust: TrustStore,
    ) -> anyhow::Result<Self> {
        let tls = SipTls::new(local, trust).context("edge TLS configuration")?;
        let (inbound_tx, mut inbound) = mpsc::channel(64);
        let mut services = Vec::new();
        for n in 0..connections.max(1) {
            // Targets are IP literals: the resolver is never asked.
            let discovery = SipDiscovery::new(&DnsConfig {
                nameservers: vec![SocketAddr::from(([127, 0, 0, 1], 9))],
                timeout: Duration::from_millis(200),
            })
            .context("edge resolver")?;
            let service = SipService::start(
                SipConfig {
                    listen: if n == 0 { vec![listen] } else { Vec::new() },
                    ..SipConfig::default()
                },
                tls.clone(),
                discovery,
                inbound_tx.clone(),
            )
            .await
            .with_context(|| format!("starting the SIP edge on {listen}"))?;
            services.push(Arc::new(service));
        }
        let received = Arc::new(AtomicU64::new(0));
        let counter = received.clone();
        tokio::spawn(async move {
            while let Some(incoming) = inbound.recv().await {
                counter.fetch_add(1, Ordering::Relaxed);
                let response = incoming.response(StatusCode::OK, "");
                let _ = incoming.respond(response);
            }
        });
        Ok(Self {
            services,
            gateway: NextHop {
                target: Target::Static {
                    host: gateway.ip().to_string(),
                    port: gateway.port(),
                },
                identity: Domain::parse(gateway_identity)?,
                local: Some(Domain::parse(identity)?),
            },
            domain: domain.to_owned(),
            remote_domain: remote_domain.to_owned(),
            received,
        })
    }

    /// Sends `count` `MESSAGE`s numbered from `first`, at most `concurrency` in flight, and waits for every
    /// answer. The first `concurrency` are spread evenly over `ramp`; after that each answer lets the next
    /// one go, so the spacing carries on (a closed loop).
    pub(crate) async fn run(
        &self,
        first: u64,
        count: u64,
        concurrency: usize,
        ramp: Duration,
    ) -> anyhow::Result<BatchResult> {
        let permits = Arc::new(Semaphore::new(concurrency));
        let (results_tx, mut results) = mpsc::unbounded_channel();
        let start = Instant::now();
        let ramped = u32::try_from(concurrency).unwrap_or(u32::MAX);
        for (n, i) in (first..first + count).enumerate() {
            let request = self.message(i)?;
            if let Ok(n) = u32::try_from(n)
                && n < ramped
                && !ramp.is_zero()
            {
                tokio::time::sleep_until((start + ramp * n / ramped).into()).await;
            }
            let permit = permits.clone().acquire_owned().await?;
            let service = self.services[usize::try_from(i)? % self.services.len()].clone();
            let (hop, results_tx) = (self.gateway.clone(), results_tx.clone());
            tokio::spawn(async move {
                let sent = Instant::now();
                let outcome = service.send_request(&hop, request).await;
                let answered = Instant::now();
                let _ = results_tx.send((
                    outcome.map(|response| response.status.as_u16()),
                    sent,
                    answered,
                ));
                drop(permit);
            });
        }
        drop(results_tx);
        let mut result = BatchResult::default();
        let mut last_answer = start;
        while let Some((outcome, sent, answered)) = results.recv().await {
            match outcome {
                Ok(code) => *result.statuses.entry(code).or_default() += 1,
                Err(error) => *result.errors.entry(error.to_string()).or_default() += 1,
            }
            result.latencies.push(answered - sent);
            last_answer = last_answer.max(answered);
        }
        result.latencies.sort_unstable();
        result.elapsed = last_answer - start;
        Ok(result)
    }

    /// `MESSAGE sip:sink<i>@<remote>` from `sip:user<i>@<domain>`.
    fn message(&self, i: u64) -> anyhow::Result<Request> {
        let to = Uri::parse(&format!("sip:sink{i}@{}", self.remote_domain))?;
        let from = Uri::parse(&format!("sip:user{i}@{}", self.domain))?;
        let call_id = CallId::parse(&format!(
            "loadgen-{}-{i}@{}",
            std::process::id(),
            self.domain
        ))?;
        let mut request = Request::new(
            Method::Message,
            to.clone(),
            NameAddr::new(from),
            NameAddr::new(to),
            call_id,
            1,
        );
        request.from.params.set("tag", Some(&format!("lg{i}")))?;
        request
            .headers
            .push(HeaderName::CONTENT_TYPE, "text/plain")?;
        request.body = format!("load test message {i}").into_bytes();
        Ok(request)
    }

    pub(crate) fn shutdown(&self) {
        for service in &self.services {
            service.shutdown();
        }
    }
}
