//! The environment of the SIP-side interop tests (`tests/sip.rs`, `tests/presence.rs`): the in-process
//! gateway serving `corp.example` (`delivery = "sip"`) behind the edge proxy played by the test, the SIP
//! partner, Prosody and ejabberd with user bob, and the SIP helpers both test files use.
//!
//! The gateway serves `corp.example` behind the edge proxy `edge.corp.example` (127.0.0.20:5061), routes
//! `partner.example` over SIP to 127.0.0.21:5061, denies `denied.example`, sends `down.example` to an
//! address where nothing listens, and federates with everything else over XMPP.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result, anyhow, ensure};
use sixgate_core::Domain;
use sixgate_sip::message::{HeaderName, StatusCode};
use sixgate_sip::{Request, Response};
use sixgate_sip_net::IncomingRequest;
use tokio::time::Instant;

use crate::c2s::{C2sClient, Login, Security};
use crate::dns::{Dns, Records};
use crate::pki::Pki;
use crate::run::RunDir;
use crate::sip_peer::{self, SIP_PORT, SipPeer, status_line};
use crate::{
    DNS_IP, EJABBERD_DOMAIN, EJABBERD_IP, GATEWAY_DOMAIN, GATEWAY_IP, PROSODY_DOMAIN, PROSODY_IP,
    S2S_PORT, ejabberd, gateway_log, logs, process, prosody,
};

/// Time allowed for logins, messages and responses.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// The gateway's SIP domain (`delivery = "sip"`).
pub const CORP: &str = "corp.example";
/// The SIP domain identity of corp.example's edge proxy.
pub const EDGE_IDENTITY: &str = "edge.corp.example";
/// The SIP federation partner.
pub const PARTNER: &str = "partner.example";
/// A domain with `route = "deny"`.
pub const DENIED: &str = "denied.example";
/// A domain with `route = "xmpp"` and a static endpoint where nothing listens.
pub const DOWN: &str = "down.example";
/// A domain nobody configured, whose certificate the test CA nevertheless signs.
pub const STRANGER: &str = "stranger.example";

/// The edge proxy (played by the test).
pub const EDGE_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 20);
/// The SIP partner's proxy (played by the test).
pub const PARTNER_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 21);
/// down.example's configured endpoint: nothing listens there.
pub const DOWN_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 99);

/// The XMPP user on Prosody and ejabberd.
pub const XMPP_USER: &str = "bob";
/// The XMPP user's password.
pub const XMPP_PASSWORD: &str = "bob-secret";
/// The XMPP user's resource.
pub const XMPP_RESOURCE: &str = "interop";
/// The SIP user behind the edge.
pub const SIP_USER: &str = "alice";

/// The gateway's SIP listener.
pub fn gateway_sip_addr() -> SocketAddr {
    SocketAddr::from((GATEWAY_IP, SIP_PORT))
}

/// corp.example as a [`Domain`].
pub fn corp() -> Domain {
    sip_peer::domain(CORP).unwrap_or_else(|e| panic!("{e}"))
}

// ---------------------------------------------------------------------------------------------
// SIP helpers.

/// Sends `request` from the edge to the gateway (which must prove corp.example); a transport error
/// fails the test.
pub async fn send_from(edge: &SipPeer, request: Request) -> Result<Response> {
    edge.send_to(gateway_sip_addr(), &corp(), request)
        .await
        .map_err(|e| anyhow!("{} -> gateway: no response: {e}", edge.name()))
}

/// The next request the gateway sent to `peer`.
pub async fn expect_request(test: &str, peer: &mut SipPeer, what: &str) -> Result<IncomingRequest> {
    peer.next_request(TIMEOUT).await.ok_or_else(|| {
        anyhow!(
            "[{test}] {} received no request ({what}) within {TIMEOUT:?}",
            peer.name()
        )
    })
}

/// Answers a received request with `code` and the standard reason phrase.
pub fn answer(incoming: IncomingRequest, code: u16) -> Result<()> {
    answer_with(incoming, code, "").map(drop)
}

/// Answers a received request with `code` and `reason` (empty: the standard phrase); returns the
/// response's `To` tag.
pub fn answer_with(incoming: IncomingRequest, code: u16, reason: &str) -> Result<String> {
    let status = StatusCode::new(code).ok_or_else(|| anyhow!("bad status {code}"))?;
    let response = incoming.response(status, reason);
    let tag = response.to.tag().unwrap_or_default().to_owned();
    incoming
        .respond(response)
        .map_err(|e| anyhow!("answering {code}: {e}"))?;
    Ok(tag)
}

/// Fails unless `uri`'s host is `domain` (ASCII case-insensitively).
pub fn ensure_host(uri: &sixgate_sip::message::Uri, domain: &str) -> Result<()> {
    let host = uri.host_port().map(|hp| hp.host.to_string());
    ensure!(
        host.as_deref()
            .is_some_and(|h| h.eq_ignore_ascii_case(domain)),
        "{uri} is not in {domain}"
    );
    Ok(())
}

/// Fails unless `request`'s body is `body`.
pub fn ensure_body(request: &Request, body: &str) -> Result<()> {
    ensure!(
        request.body == body.as_bytes(),
        "the body differs: {:?} (expected {body:?})",
        String::from_utf8_lossy(&request.body)
    );
    Ok(())
}

/// Prints a request's start line, dialog headers, Via, Max-Forwards, Content-Type and body.
pub fn print_request(test: &str, what: &str, request: &Request) {
    let vias: Vec<String> = request.via.iter().map(ToString::to_string).collect();
    println!(
        "[{test}] {what}: {} {} | From: {} | To: {} | Call-ID: {} | CSeq: {} {} | Via: {vias:?} | \
         Max-Forwards: {:?} | Content-Type: {:?} | body: {:?}",
        request.method,
        request.uri,
        request.from,
        request.to,
        request.call_id,
        request.cseq.number,
        request.cseq.method,
        request.max_forwards,
        request.headers.get(&HeaderName::CONTENT_TYPE),
        String::from_utf8_lossy(&request.body)
    );
}

/// Prints a response, its `To` and its other headers, with the time since `started`.
pub fn print_response(test: &str, response: &Response, started: Instant) {
    let headers: Vec<String> = response
        .headers
        .iter()
        .map(|h| format!("{}: {}", h.name().as_str(), h.value()))
        .collect();
    println!(
        "[{test}] response after {:.2} s: {} | To: {} | other headers: {headers:?}",
        started.elapsed().as_secs_f64(),
        status_line(response),
        response.to
    );
}

// ---------------------------------------------------------------------------------------------
// The environment of one test.

/// The test CA and DNS server of one test, and what starts the peers and the gateway.
pub struct Env {
    /// The test CA.
    pub pki: Pki,
    /// The test DNS server.
    pub dns: Dns,
}

impl Env {
    /// A test CA and the test DNS server with A and `_xmpp-server._tcp` SRV records for gw.example
    /// and corp.example (the gateway), prosody.example and ejabberd.example.
    pub fn new(run: &RunDir) -> Result<Self> {
        let pki = Pki::new(run)?;
        let records = Records::default()
            .xmpp_server(GATEWAY_DOMAIN, GATEWAY_IP, S2S_PORT)
            .xmpp_server(CORP, GATEWAY_IP, S2S_PORT)
            .xmpp_server(PROSODY_DOMAIN, PROSODY_IP, S2S_PORT)
            .xmpp_server(EJABBERD_DOMAIN, EJABBERD_IP, S2S_PORT);
        let dns = Dns::start(run, DNS_IP, &records)?;
        Ok(Self { pki, dns })
    }

    /// Prosody for prosody.example with the shipped secure policy and user bob.
    pub fn prosody(&self, run: &RunDir) -> Result<prosody::Prosody> {
        let opts = prosody::Options::secure(
            PROSODY_DOMAIN,
            PROSODY_IP,
            &self.pki.ca_file(),
            self.pki.leaf(PROSODY_DOMAIN)?,
        )
        .user(XMPP_USER, XMPP_PASSWORD);
        prosody::Prosody::start(run, &self.dns, &opts)
    }

    /// A fresh ejabberd for ejabberd.example with user bob.
    pub fn ejabberd(&self, run: &RunDir) -> Result<ejabberd::Ejabberd> {
        ejabberd::Ejabberd::start(
            run,
            &self.dns,
            &ejabberd::Options::new(
                EJABBERD_DOMAIN,
                EJABBERD_IP,
                &self.pki.ca_file(),
                self.pki.leaf(EJABBERD_DOMAIN)?,
            )
            .user(XMPP_USER, XMPP_PASSWORD),
        )
    }

    /// bob logged in to Prosody.
    pub async fn prosody_bob(&self, prosody: &prosody::Prosody) -> Result<C2sClient> {
        self.login(prosody.c2s_addr(), PROSODY_DOMAIN).await
    }

    /// bob logged in to ejabberd.
    pub async fn ejabberd_bob(&self, ejabberd: &ejabberd::Ejabberd) -> Result<C2sClient> {
        self.login(ejabberd.c2s_addr(), EJABBERD_DOMAIN).await
    }

    /// bob logged in to the server at `addr` (STARTTLS, test CA).
    pub async fn login(&self, addr: SocketAddr, domain: &str) -> Result<C2sClient> {
        C2sClient::connect(
            &Login {
                addr,
                domain: domain.into(),
                user: XMPP_USER.into(),
                password: XMPP_PASSWORD.into(),
                resource: XMPP_RESOURCE.into(),
                security: Security::StartTls(self.pki.root_store()?),
            },
            TIMEOUT,
        )
        .await
    }

    /// The edge proxy of corp.example on 127.0.0.20:5061, certificate for edge.corp.example.
    pub async fn edge(&self) -> Result<SipPeer> {
        self.listening_peer("edge", EDGE_IDENTITY, EDGE_IP).await
    }

    /// The SIP partner's proxy on 127.0.0.21:5061, certificate for partner.example.
    pub async fn partner(&self) -> Result<SipPeer> {
        self.listening_peer("partner", PARTNER, PARTNER_IP).await
    }

    /// A SIP peer with a certificate for `identity`, listening on `ip`:5061.
    pub async fn listening_peer(
        &self,
        name: &str,
        identity: &str,
        ip: Ipv4Addr,
    ) -> Result<SipPeer> {
        let addr = SocketAddr::from((ip, SIP_PORT));
        let peer = SipPeer::start(
            name,
            identity,
            &self.pki.sip_leaf(identity)?,
            &self.pki,
            Some(addr),
            self.dns.ip(),
        )
        .await?;
        ensure!(
            process::is_listening(addr)?,
            "the {name} does not listen on {addr}"
        );
        process::check_loopback_only(&[std::process::id()])?;
        println!("[{name}] SIP peer {identity} listening on {addr}");
        Ok(peer)
    }

    /// Writes `gateway.toml`, starts the gateway in-process (s2s on 127.0.0.10:5269, SIP on
    /// 127.0.0.10:5061) with its log in the run directory, and checks it listens on loopback only.
    pub async fn gateway(&self, run: &RunDir) -> Result<RunningGateway> {
        let dir = run.subdir("gateway")?;
        let toml = gateway_toml(&dir, &self.pki, &self.dns)?;
        std::fs::write(dir.join("gateway.toml"), &toml)?;
        start_gateway(run, dir, toml, 0).await
    }
}

/// Starts the gateway in-process from `toml` (start number `generation`: 0 is `gateway.log`, later ones
/// `gateway.<n>.log`) once its addresses are free, and checks it listens on loopback only.
async fn start_gateway(
    run: &RunDir,
    dir: PathBuf,
    toml: String,
    generation: u32,
) -> Result<RunningGateway> {
    let (log_name, log_path) = match generation {
        0 => ("gateway".to_owned(), dir.join("gateway.log")),
        n => (format!("gateway-{n}"), dir.join(format!("gateway.{n}.log"))),
    };
    let capture = gateway_log::capture_to(&log_path)?;
    run.register_log(&log_name, &log_path);
    let s2s = SocketAddr::from((GATEWAY_IP, S2S_PORT));
    let sip = gateway_sip_addr();
    process::ensure_free(s2s)?;
    process::ensure_free(sip)?;
    let config = sixgate_app::config::parse(&toml, &dir)
        .map_err(|e| anyhow!("gateway.toml rejected:\n{e}\n---\n{toml}"))?;
    let gateway = sixgate_app::Gateway::start(config)
        .await
        .context("starting the gateway")?;
    for addr in [s2s, sip] {
        ensure!(
            process::is_listening(addr)?,
            "the gateway does not listen on {addr}"
        );
    }
    let listening = process::check_loopback_only(&[std::process::id()])?;
    println!(
        "[{log_name}] listening on {} (loopback only)",
        listening
            .iter()
            .map(|l| format!("{} {}", l.proto, l.local))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(RunningGateway {
        gateway,
        log: log_path,
        _capture: capture,
        dir,
        toml,
        generation,
    })
}

/// The gateway and its log capture (which must outlive it), with what it was started from.
pub struct RunningGateway {
    gateway: sixgate_app::Gateway,
    log: PathBuf,
    _capture: gateway_log::Capture,
    dir: PathBuf,
    toml: String,
    generation: u32,
}

impl RunningGateway {
    /// Prints the gateway's own log lines about SIP decisions (informational), then shuts it down.
    pub async fn shutdown(self, test: &str) {
        print_gateway_lines(test, &self.log);
        self.gateway.shutdown().await;
    }

    /// The current gateway's log file.
    pub fn log(&self) -> &Path {
        &self.log
    }

    /// Restarts the gateway: [`sixgate_app::Gateway::shutdown`], waits (at most 10 s) until its s2s and
    /// SIP addresses are free, then starts a new gateway from the same `gateway.toml` on the same addresses,
    /// logging to `gateway.<n>.log`. Nothing survives but the configuration (the process's memory is gone,
    /// as in a real restart).
    pub async fn restart(self, test: &str, run: &RunDir) -> Result<Self> {
        let Self {
            gateway,
            log,
            _capture: capture,
            dir,
            toml,
            generation,
        } = self;
        print_gateway_lines(test, &log);
        let started = Instant::now();
        gateway.shutdown().await;
        // The capture switches the global log target: stop it before the next one starts.
        drop(capture);
        let addrs = [SocketAddr::from((GATEWAY_IP, S2S_PORT)), gateway_sip_addr()];
        let deadline = Instant::now() + Duration::from_secs(10);
        while !addrs.iter().all(|a| process::ensure_free(*a).is_ok()) {
            ensure!(
                Instant::now() < deadline,
                "[{test}] the gateway's addresses are still in use 10 s after its shutdown"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        println!(
            "[{test}] gateway shut down; addresses free after {:.2} s; starting it again",
            started.elapsed().as_secs_f64()
        );
        start_gateway(run, dir, toml, generation + 1).await
    }
}

fn print_gateway_lines(test: &str, log: &Path) {
    for needles in [
        &["refused the message"][..],
        &["MESSAGE to XMPP failed"][..],
        &["MESSAGE to SIP failed"][..],
        &["not authorized for its From domain"][..],
        &["forwarding failed"][..],
        &["sip_request", "answered"][..],
    ] {
        for line in logs::find_lines(log, needles) {
            println!("[{test}] [gateway] {}", logs::short(&line));
        }
    }
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn toml_path(p: &Path) -> String {
    toml_str(&p.display().to_string())
}

/// The gateway's configuration: gw.example (echo) and corp.example (SIP, behind the edge) with
/// test-CA certificates, trusting only the test CA, valid certificates required, default route XMPP,
/// and the remote domains of cases 6 to 8.
pub fn gateway_toml(dir: &Path, pki: &Pki, dns: &Dns) -> Result<String> {
    let gw = pki.leaf(GATEWAY_DOMAIN)?;
    let corp = pki.sip_leaf(CORP)?;
    Ok(format!(
        r#"# Generated by the sixgate interop tests (tests/sip.rs).
[xmpp]
listen = ["{GATEWAY_IP}:{S2S_PORT}"]
dialback_secret = "interop-test-secret-0123456789"

[sip]
listen = ["{GATEWAY_IP}:{SIP_PORT}"]
connect_timeout = 5

[dns]
nameservers = ["{dns_ip}:53"]
timeout = 2

[tls]
trust_system_roots = false
ca_files = [{ca}]
dev_certificate_dir = {dev}

[[tls.certificates]]
certificate = {gw_cert}
key = {gw_key}
domains = ["{GATEWAY_DOMAIN}"]

[[tls.certificates]]
certificate = {corp_cert}
key = {corp_key}
domains = ["{CORP}"]

[[local_domains]]
domain = "{GATEWAY_DOMAIN}"
delivery = "echo"

[[local_domains]]
domain = "{CORP}"
delivery = "sip"
edge = "{EDGE_IP}:{SIP_PORT}"
edge_identity = "{EDGE_IDENTITY}"

[federation]
default_route = "xmpp"
require_valid_certificate = true
allow_dialback = true

[[remote_domains]]
domain = "{DENIED}"
route = "deny"

[[remote_domains]]
domain = "{DOWN}"
route = "xmpp"
connect = ["{DOWN_IP}:{S2S_PORT}"]

[[remote_domains]]
domain = "{PARTNER}"
route = "sip"
next_hop = "{PARTNER_IP}:{SIP_PORT}"
"#,
        dns_ip = dns.ip(),
        ca = toml_path(&pki.ca_file()),
        dev = toml_path(&dir.join("gw-dev-certs")),
        gw_cert = toml_path(&gw.cert),
        gw_key = toml_path(&gw.key),
        corp_cert = toml_path(&corp.cert),
        corp_key = toml_path(&corp.key),
    ))
}
