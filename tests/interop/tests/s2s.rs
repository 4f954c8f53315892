//! The gateway (in-process, `sixgate_app::Gateway`) against real Prosody 0.12 and ejabberd 23 on
//! loopback.
//!
//! | test | peer | what it proves |
//! |---|---|---|
//! | `a_…` | Prosody | SASL EXTERNAL in both directions with test-CA certificates; the echo arrives intact |
//! | `b_…` | ejabberd | the same with ejabberd |
//! | `c_…` | Prosody | dialback in both directions when neither side can validate the other's certificate |
//! | `d_…` | ejabberd | the same with ejabberd |
//! | `e1_…` | Prosody | Prosody refuses a gateway certificate for the wrong name |
//! | `e2_…` | Prosody | the gateway refuses a Prosody certificate for the wrong name |
//! | `f1_…` | raw TCP | the gateway answers plaintext dialback with a stream error and closes |
//! | `f2_…` | Prosody | the gateway does not accept a plaintext-only server |
//! | `g_…` | Prosody | the gateway accepts a serverAuth-only client certificate for SASL EXTERNAL |
//!
//! Each test prints what it observed (`--show-output` or `--nocapture`), which gives the interop matrix.

use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result, anyhow, bail, ensure};
use sixgate_interop::c2s::{C2sClient, Login, NS_STREAMS, ReceivedMessage, Security, XmlStream};
use sixgate_interop::dns::{Dns, Records};
use sixgate_interop::evidence::{self, Evidence, Mechanism};
use sixgate_interop::pki::{Leaf, Pki, Usage};
use sixgate_interop::run::RunDir;
use sixgate_interop::xml::{Event, escape};
use sixgate_interop::{
    DNS_IP, EJABBERD_DOMAIN, EJABBERD_IP, GATEWAY_DOMAIN, GATEWAY_IP, PROSODY_DOMAIN, PROSODY_IP,
    S2S_PORT, ejabberd, gateway_log, logs, process, prosody, run_test,
};
use tokio::net::TcpStream;
use tokio::time::Instant;

/// Time allowed for logins and for an echo to come back.
const TIMEOUT: Duration = Duration::from_secs(30);
/// How long a negative test waits for an echo that must not come.
const NO_ECHO_WINDOW: Duration = Duration::from_secs(8);
/// How long to wait for a log line after the fact it proves.
const EVIDENCE_WAIT: Duration = Duration::from_secs(10);
/// The body of every echo test: Unicode and every XML-special character.
const BODY: &str = "echo ✓ ünïcødé 漢字 🚀 <&>'\" ]]> &amp; end";
const ECHO_JID: &str = "echo@gw.example";

// ---------------------------------------------------------------------------------------------
// a, b: SASL EXTERNAL both ways.

#[test]
fn a_prosody_sasl_external_both_ways() {
    run_test("s2s-a", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let prosody = env.prosody(run, |_| {})?;
        let gateway = env
            .gateway(run, GatewayOptions::secure(env.pki.leaf(GATEWAY_DOMAIN)?))
            .await?;
        let mut alice = env
            .alice(&prosody, Security::StartTls(env.pki.root_store()?))
            .await?;

        let echo = expect_echo(&mut alice, "a-1").await?;
        println!(
            "[a] prosody.example -> gw.example -> prosody.example: echo arrived intact ({:?})",
            echo.body
        );
        show_evidence(
            "a",
            prosody.log(),
            &[
                evidence::prosody_outbound_external(GATEWAY_DOMAIN),
                evidence::prosody_inbound_external(GATEWAY_DOMAIN),
            ],
        )
        .await?;
        ensure_absent(
            "a",
            prosody.log(),
            &[
                evidence::prosody_sent_dialback_key(),
                evidence::prosody_inbound_dialback(GATEWAY_DOMAIN),
            ],
        )?;
        println!("[a] RESULT Prosody <-> gateway: SASL EXTERNAL both ways, echo OK");

        alice.close().await;
        gateway.shutdown().await;
        Ok(())
    });
}

#[test]
fn b_ejabberd_sasl_external_both_ways() {
    run_test("s2s-b", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let ejabberd = env.ejabberd(run, &env.pki)?;
        let gateway = env
            .gateway(run, GatewayOptions::secure(env.pki.leaf(GATEWAY_DOMAIN)?))
            .await?;
        let mut bob = env.bob(&ejabberd, &env.pki).await?;

        let echo = expect_echo(&mut bob, "b-1").await?;
        println!(
            "[b] ejabberd.example -> gw.example -> ejabberd.example: echo arrived intact ({:?})",
            echo.body
        );
        show_evidence(
            "b",
            &ejabberd.log(),
            &[
                evidence::ejabberd_outbound(Mechanism::External, EJABBERD_DOMAIN, GATEWAY_DOMAIN),
                evidence::ejabberd_inbound(Mechanism::External, GATEWAY_DOMAIN, EJABBERD_DOMAIN),
            ],
        )
        .await?;
        ensure_absent(
            "b",
            &ejabberd.log(),
            &[
                evidence::ejabberd_outbound(Mechanism::Dialback, EJABBERD_DOMAIN, GATEWAY_DOMAIN),
                evidence::ejabberd_inbound(Mechanism::Dialback, GATEWAY_DOMAIN, EJABBERD_DOMAIN),
            ],
        )?;
        println!("[b] RESULT ejabberd <-> gateway: SASL EXTERNAL both ways, echo OK");

        bob.close().await;
        gateway.shutdown().await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// c, d: dialback both ways.

#[test]
fn c_prosody_dialback_both_ways() {
    run_test("s2s-c", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        // Prosody cannot validate the gateway's development certificate: it lists gw.example as
        // insecure. The gateway does not trust the test CA and marks prosody.example insecure, so
        // it offers only dialback.
        let prosody = env.prosody(run, |o| {
            o.insecure_domains = vec![GATEWAY_DOMAIN.to_owned()]
        })?;
        let gateway = env
            .gateway(run, GatewayOptions::dialback_only(PROSODY_DOMAIN))
            .await?;
        let mut alice = env
            .alice(&prosody, Security::StartTls(env.pki.root_store()?))
            .await?;

        let echo = expect_echo(&mut alice, "c-1").await?;
        println!(
            "[c] prosody.example -> gw.example -> prosody.example: echo arrived intact ({:?})",
            echo.body
        );
        show_evidence(
            "c",
            prosody.log(),
            &[
                evidence::prosody_outbound_dialback(GATEWAY_DOMAIN),
                evidence::prosody_inbound_dialback(GATEWAY_DOMAIN),
            ],
        )
        .await?;
        ensure_absent(
            "c",
            prosody.log(),
            &[
                evidence::prosody_outbound_external(GATEWAY_DOMAIN),
                evidence::prosody_inbound_external(GATEWAY_DOMAIN),
            ],
        )?;
        println!("[c] RESULT Prosody <-> gateway: dialback both ways, echo OK");

        alice.close().await;
        gateway.shutdown().await;
        Ok(())
    });
}

#[test]
fn d_ejabberd_dialback_both_ways() {
    run_test("s2s-d", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        // ejabberd accepts dialback from a peer whose certificate it cannot validate
        // (mod_s2s_dialback); the gateway does not trust the test CA and marks ejabberd.example
        // insecure, so it offers and uses only dialback.
        let ejabberd = env.ejabberd(run, &env.pki)?;
        let gateway = env
            .gateway(run, GatewayOptions::dialback_only(EJABBERD_DOMAIN))
            .await?;
        let mut bob = env.bob(&ejabberd, &env.pki).await?;

        let echo = expect_echo(&mut bob, "d-1").await?;
        println!(
            "[d] ejabberd.example -> gw.example -> ejabberd.example: echo arrived intact ({:?})",
            echo.body
        );
        show_evidence(
            "d",
            &ejabberd.log(),
            &[
                evidence::ejabberd_outbound(Mechanism::Dialback, EJABBERD_DOMAIN, GATEWAY_DOMAIN),
                evidence::ejabberd_inbound(Mechanism::Dialback, GATEWAY_DOMAIN, EJABBERD_DOMAIN),
            ],
        )
        .await?;
        ensure_absent(
            "d",
            &ejabberd.log(),
            &[
                evidence::ejabberd_outbound(Mechanism::External, EJABBERD_DOMAIN, GATEWAY_DOMAIN),
                evidence::ejabberd_inbound(Mechanism::External, GATEWAY_DOMAIN, EJABBERD_DOMAIN),
            ],
        )?;
        println!("[d] RESULT ejabberd <-> gateway: dialback both ways, echo OK");

        bob.close().await;
        gateway.shutdown().await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// e: certificates for the wrong name.

#[test]
fn e1_prosody_refuses_gateway_certificate_for_wrong_name() {
    run_test("s2s-e1", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let prosody = env.prosody(run, |_| {})?;
        // A valid test-CA certificate, but for wrong.example, configured for gw.example.
        let wrong = env.pki.issue(
            "gw-wrong-name",
            &["wrong.example".to_owned(), "*.wrong.example".to_owned()],
            Usage::ServerAndClient,
        )?;
        let gateway = env.gateway(run, GatewayOptions::secure(wrong)).await?;
        let mut alice = env
            .alice(&prosody, Security::StartTls(env.pki.root_store()?))
            .await?;

        let bounce = expect_no_echo("e1", &mut alice, "e1-1").await?;
        let line = evidence::prosody_forbids_insecure(GATEWAY_DOMAIN, "is not valid for this name")
            .wait(prosody.log(), EVIDENCE_WAIT)
            .await?;
        println!(
            "[e1] Prosody refused the gateway's certificate: {}",
            logs::short(&line)
        );
        ensure_absent(
            "e1",
            prosody.log(),
            &[evidence::prosody_outbound_complete(
                PROSODY_DOMAIN,
                GATEWAY_DOMAIN,
            )],
        )?;
        println!(
            "[e1] RESULT Prosody refuses a gateway certificate for the wrong name; no echo; bounce: {}",
            describe_bounce(bounce.as_ref())
        );

        alice.close().await;
        gateway.shutdown().await;
        Ok(())
    });
}

#[test]
fn e2_gateway_refuses_prosody_certificate_for_wrong_name() {
    run_test("s2s-e2", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        // Prosody presents a valid test-CA certificate for other.example on s2s (its c2s keeps the
        // right one, so that alice can log in).
        let other = env.pki.leaf("other.example")?;
        let prosody = env.prosody(run, |o| {
            if let prosody::Tls::Secure { s2s_cert, .. } = &mut o.tls {
                *s2s_cert = Some(other.clone());
            }
        })?;
        // The gateway trusts the test CA and requires valid certificates (the default).
        let gateway = env
            .gateway(run, GatewayOptions::secure(env.pki.leaf(GATEWAY_DOMAIN)?))
            .await?;
        let mut alice = env
            .alice(&prosody, Security::StartTls(env.pki.root_store()?))
            .await?;

        let bounce = expect_no_echo("e2", &mut alice, "e2-1").await?;
        // Prosody did reach the gateway and finish TLS: the refusal came after that.
        show_evidence(
            "e2",
            prosody.log(),
            &[evidence::prosody_outbound_encrypted()],
        )
        .await?;
        ensure_absent(
            "e2",
            prosody.log(),
            &[
                evidence::prosody_outbound_complete(PROSODY_DOMAIN, GATEWAY_DOMAIN),
                evidence::prosody_inbound_complete(GATEWAY_DOMAIN, PROSODY_DOMAIN),
            ],
        )?;
        show_prosody_s2s_ending("e2", prosody.log());
        println!(
            "[e2] RESULT the gateway refuses a Prosody certificate for the wrong name; no echo; bounce: {}",
            describe_bounce(bounce.as_ref())
        );

        alice.close().await;
        gateway.shutdown().await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// f: plaintext.

#[test]
fn f1_gateway_refuses_plaintext_s2s() {
    run_test("s2s-f1", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        // alice is online on a normal Prosody: if the gateway wrongly accepted the plaintext
        // message below, its echo would reach her over a proper (EXTERNAL) stream.
        let prosody = env.prosody(run, |_| {})?;
        let gateway = env
            .gateway(run, GatewayOptions::secure(env.pki.leaf(GATEWAY_DOMAIN)?))
            .await?;
        let mut alice = env
            .alice(&prosody, Security::StartTls(env.pki.root_store()?))
            .await?;

        let addr = std::net::SocketAddr::from((GATEWAY_IP, S2S_PORT));
        let tcp = TcpStream::connect(addr)
            .await
            .context("connecting to the gateway")?;
        let mut raw = XmlStream::new(tcp);
        let deadline = Instant::now() + TIMEOUT;
        raw.send(&format!(
            "<?xml version='1.0'?><stream:stream xmlns='jabber:server' \
             xmlns:stream='http://etherx.jabber.org/streams' xmlns:db='jabber:server:dialback' \
             from='{PROSODY_DOMAIN}' to='{GATEWAY_DOMAIN}' version='1.0' xml:lang='en'>"
        ))
        .await?;
        // No STARTTLS: straight to dialback and a stanza.
        let key = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
        let send = raw
            .send(&format!(
                "<db:result from='{PROSODY_DOMAIN}' to='{GATEWAY_DOMAIN}'>{key}</db:result>\
                 <message from='{}' to='{ECHO_JID}' type='chat' id='f1-1'><body>{}</body></message>",
                escape(alice.jid()),
                escape("plaintext must not be echoed")
            ))
            .await;
        if let Err(e) = &send {
            println!("[f1] sending after the header failed (the gateway already closed?): {e}");
        }

        let mut stream_error = None;
        let mut features = None;
        let closed = loop {
            match raw.next_event(deadline).await {
                Ok(Some(Event::Element(e))) if e.name == "stream:error" => stream_error = Some(e),
                Ok(Some(Event::Element(e))) if e.name == "stream:features" => features = Some(e),
                Ok(Some(Event::Element(e))) => {
                    bail!(
                        "the gateway answered plaintext with {}\n{}",
                        e.to_xml(),
                        raw.transcript()
                    )
                }
                Ok(Some(Event::StreamOpen(_))) => {}
                Ok(Some(Event::StreamClose)) => {}
                Ok(None) => break false,
                Err(_) => break true, // connection closed
            }
        };
        if let Some(f) = &features {
            println!(
                "[f1] the gateway's features before the refusal: {}",
                f.to_xml()
            );
        }
        let stream_error = stream_error
            .ok_or_else(|| anyhow!("no stream error from the gateway\n{}", raw.transcript()))?;
        let condition = stream_error
            .elements()
            .find(|c| c.xmlns() == Some(NS_STREAMS) && c.local_name() != "text")
            .map(|c| c.local_name().to_owned())
            .ok_or_else(|| {
                anyhow!(
                    "stream error without a condition: {}",
                    stream_error.to_xml()
                )
            })?;
        ensure!(
            condition == "policy-violation" || condition == "not-authorized",
            "unexpected stream error condition {condition}: {}",
            stream_error.to_xml()
        );
        ensure!(
            closed,
            "the gateway did not close the connection\n{}",
            raw.transcript()
        );
        println!(
            "[f1] the gateway answered plaintext dialback with <{condition}/> and closed: {}",
            stream_error.to_xml()
        );

        let got = alice.messages_within(Duration::from_secs(3)).await?;
        ensure!(
            got.is_empty(),
            "alice received messages after the plaintext attempt: {got:?}"
        );
        println!(
            "[f1] RESULT plaintext s2s refused with a <{condition}/> stream error; nothing echoed"
        );

        alice.close().await;
        gateway.shutdown().await;
        Ok(())
    });
}

#[test]
fn f2_gateway_refuses_plaintext_only_prosody() {
    run_test("s2s-f2", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let prosody = env.prosody(run, |o| o.tls = prosody::Tls::Plaintext)?;
        let mut gw = GatewayOptions::secure(env.pki.leaf(GATEWAY_DOMAIN)?);
        gw.remotes.push(Remote {
            domain: PROSODY_DOMAIN,
            require_valid_certificate: false,
            allow_dialback: true,
        });
        let gateway = env.gateway(run, gw).await?;
        let mut alice = env.alice(&prosody, Security::Plaintext).await?;

        let bounce = expect_no_echo("f2", &mut alice, "f2-1").await?;
        // Prosody did reach the gateway (the refusal is the gateway's, not a failed connect).
        show_evidence(
            "f2",
            prosody.log(),
            &[evidence::prosody_outbound_got_features()],
        )
        .await?;
        ensure_absent(
            "f2",
            prosody.log(),
            &[
                evidence::prosody_outbound_complete(PROSODY_DOMAIN, GATEWAY_DOMAIN),
                evidence::prosody_inbound_complete(GATEWAY_DOMAIN, PROSODY_DOMAIN),
            ],
        )?;
        show_prosody_s2s_ending("f2", prosody.log());
        println!(
            "[f2] RESULT the gateway does not accept a plaintext-only Prosody; no echo; bounce: {}",
            describe_bounce(bounce.as_ref())
        );

        alice.close().await;
        gateway.shutdown().await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// g: a serverAuth-only client certificate (what Let's Encrypt issues from 2026 on).

#[test]
fn g_gateway_accepts_server_auth_only_client_certificate() {
    run_test("s2s-g", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        // Prosody presents, on s2s, a test-CA certificate for prosody.example whose extended key
        // usage is serverAuth only; it is also its TLS client certificate towards the gateway.
        let server_only = env.pki.leaf_server_only(PROSODY_DOMAIN)?;
        let prosody = env.prosody(run, |o| {
            if let prosody::Tls::Secure { s2s_cert, .. } = &mut o.tls {
                *s2s_cert = Some(server_only.clone());
            }
        })?;
        let gateway = env
            .gateway(run, GatewayOptions::secure(env.pki.leaf(GATEWAY_DOMAIN)?))
            .await?;
        let mut alice = env
            .alice(&prosody, Security::StartTls(env.pki.root_store()?))
            .await?;

        let echo = expect_echo(&mut alice, "g-1").await?;
        println!(
            "[g] prosody.example -> gw.example -> prosody.example: echo arrived intact ({:?})",
            echo.body
        );
        // Prosody -> gateway is the direction where the serverAuth-only certificate is a client
        // certificate: the gateway accepted it for SASL EXTERNAL.
        show_evidence(
            "g",
            prosody.log(),
            &[
                evidence::prosody_outbound_external(GATEWAY_DOMAIN),
                evidence::prosody_inbound_external(GATEWAY_DOMAIN),
            ],
        )
        .await?;
        ensure_absent("g", prosody.log(), &[evidence::prosody_sent_dialback_key()])?;
        println!(
            "[g] RESULT the gateway accepts a serverAuth-only client certificate with SASL EXTERNAL"
        );

        alice.close().await;
        gateway.shutdown().await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// The environment of one test.

struct Env {
    pki: Pki,
    dns: Dns,
}

impl Env {
    /// A test CA and the test DNS server with A and `_xmpp-server._tcp` SRV records for the three
    /// domains.
    fn new(run: &RunDir) -> Result<Self> {
        let pki = Pki::new(run)?;
        let records = Records::default()
            .xmpp_server(GATEWAY_DOMAIN, GATEWAY_IP, S2S_PORT)
            .xmpp_server(PROSODY_DOMAIN, PROSODY_IP, S2S_PORT)
            .xmpp_server(EJABBERD_DOMAIN, EJABBERD_IP, S2S_PORT);
        let dns = Dns::start(run, DNS_IP, &records)?;
        Ok(Self { pki, dns })
    }

    /// Prosody for prosody.example with user alice: the shipped secure policy unless `adjust`
    /// changes it.
    fn prosody(
        &self,
        run: &RunDir,
        adjust: impl FnOnce(&mut prosody::Options),
    ) -> Result<prosody::Prosody> {
        let mut opts = prosody::Options::secure(
            PROSODY_DOMAIN,
            PROSODY_IP,
            &self.pki.ca_file(),
            self.pki.leaf(PROSODY_DOMAIN)?,
        )
        .user("alice", "alice-secret");
        adjust(&mut opts);
        prosody::Prosody::start(run, &self.dns, &opts)
    }

    /// A fresh ejabberd for ejabberd.example with user bob (fresh, because ejabberd backs off for
    /// minutes after a failed connection).
    fn ejabberd(&self, run: &RunDir, pki: &Pki) -> Result<ejabberd::Ejabberd> {
        ejabberd::Ejabberd::start(
            run,
            &self.dns,
            &ejabberd::Options::new(
                EJABBERD_DOMAIN,
                EJABBERD_IP,
                &pki.ca_file(),
                pki.leaf(EJABBERD_DOMAIN)?,
            )
            .user("bob", "bob-secret"),
        )
    }

    async fn alice(&self, prosody: &prosody::Prosody, security: Security) -> Result<C2sClient> {
        C2sClient::connect(
            &Login {
                addr: prosody.c2s_addr(),
                domain: PROSODY_DOMAIN.into(),
                user: "alice".into(),
                password: "alice-secret".into(),
                resource: "interop".into(),
                security,
            },
            TIMEOUT,
        )
        .await
    }

    async fn bob(&self, ejabberd: &ejabberd::Ejabberd, pki: &Pki) -> Result<C2sClient> {
        C2sClient::connect(
            &Login {
                addr: ejabberd.c2s_addr(),
                domain: EJABBERD_DOMAIN.into(),
                user: "bob".into(),
                password: "bob-secret".into(),
                resource: "interop".into(),
                security: Security::StartTls(pki.root_store()?),
            },
            TIMEOUT,
        )
        .await
    }

    /// Writes `gateway.toml`, starts the gateway in-process on 127.0.0.10:5269 with its log in the
    /// run directory, and checks it listens on loopback only.
    async fn gateway(&self, run: &RunDir, opts: GatewayOptions) -> Result<RunningGateway> {
        let dir = run.subdir("gateway")?;
        let toml = gateway_toml(&dir, &self.pki, &self.dns, &opts);
        std::fs::write(dir.join("gateway.toml"), &toml)?;
        let log_path = dir.join("gateway.log");
        let capture = gateway_log::capture_to(&log_path)?;
        run.register_log("gateway", &log_path);
        let addr = std::net::SocketAddr::from((GATEWAY_IP, S2S_PORT));
        process::ensure_free(addr)?;
        let config = sixgate_app::config::parse(&toml, &dir)
            .map_err(|e| anyhow!("gateway.toml rejected:\n{e}\n---\n{toml}"))?;
        let gateway = sixgate_app::Gateway::start(config)
            .await
            .context("starting the gateway")?;
        ensure!(
            process::is_listening(addr)?,
            "the gateway does not listen on {addr}"
        );
        let listening = process::check_loopback_only(&[std::process::id()])?;
        println!(
            "[gateway] listening on {} (loopback only)",
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
        })
    }
}

/// The gateway and its log capture (which must outlive it).
struct RunningGateway {
    gateway: sixgate_app::Gateway,
    log: std::path::PathBuf,
    _capture: gateway_log::Capture,
}

impl RunningGateway {
    /// Prints the gateway's own view of its streams (informational: the tests assert on the peers'
    /// logs), then shuts it down.
    async fn shutdown(self) {
        for needles in [
            &["authenticated"][..],
            &["refused"][..],
            &["stream ended"][..],
        ] {
            for line in logs::find_lines(&self.log, needles) {
                println!("[gateway] {}", logs::short(&line));
            }
        }
        self.gateway.shutdown().await;
    }
}

/// A `[[remote_domains]]` entry.
struct Remote {
    domain: &'static str,
    require_valid_certificate: bool,
    allow_dialback: bool,
}

/// What goes into `gateway.toml`.
struct GatewayOptions {
    /// `[[tls.certificates]]` for gw.example; `None`: a development certificate is generated.
    certificate: Option<Leaf>,
    /// Whether `ca_files` holds the test CA.
    trust_test_ca: bool,
    remotes: Vec<Remote>,
}

impl GatewayOptions {
    /// A test-CA certificate `cert` configured for gw.example, trusting the test CA, valid
    /// certificates required from everyone.
    fn secure(cert: Leaf) -> Self {
        Self {
            certificate: Some(cert),
            trust_test_ca: true,
            remotes: Vec::new(),
        }
    }

    /// A development certificate, no trusted CA, and `peer` marked insecure: only dialback can work.
    fn dialback_only(peer: &'static str) -> Self {
        Self {
            certificate: None,
            trust_test_ca: false,
            remotes: vec![Remote {
                domain: peer,
                require_valid_certificate: false,
                allow_dialback: true,
            }],
        }
    }
}

fn toml_str(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

fn toml_path(p: &Path) -> String {
    toml_str(&p.display().to_string())
}

fn gateway_toml(dir: &Path, pki: &Pki, dns: &Dns, opts: &GatewayOptions) -> String {
    let mut t = String::new();
    t.push_str("# Generated by the sixgate interop tests.\n");
    t.push_str(&format!(
        "[xmpp]\nlisten = [\"{GATEWAY_IP}:{S2S_PORT}\"]\ndialback_secret = \"interop-test-secret-0123456789\"\n\n"
    ));
    t.push_str(&format!(
        "[dns]\nnameservers = [\"{}:53\"]\ntimeout = 2\n\n",
        dns.ip()
    ));
    let ca_files = if opts.trust_test_ca {
        format!("[{}]", toml_path(&pki.ca_file()))
    } else {
        "[]".to_owned()
    };
    t.push_str(&format!(
        "[tls]\ntrust_system_roots = false\nca_files = {ca_files}\ndev_certificate_dir = {}\n\n",
        toml_path(&dir.join("gw-dev-certs"))
    ));
    if let Some(cert) = &opts.certificate {
        t.push_str(&format!(
            "[[tls.certificates]]\ncertificate = {}\nkey = {}\ndomains = [\"{GATEWAY_DOMAIN}\"]\n\n",
            toml_path(&cert.cert),
            toml_path(&cert.key)
        ));
    }
    t.push_str(&format!(
        "[[local_domains]]\ndomain = \"{GATEWAY_DOMAIN}\"\ndelivery = \"echo\"\n\n"
    ));
    t.push_str(
        "[federation]\ndefault_route = \"xmpp\"\nrequire_valid_certificate = true\nallow_dialback = true\n\n",
    );
    for remote in &opts.remotes {
        t.push_str(&format!(
            "[[remote_domains]]\ndomain = \"{}\"\nroute = \"xmpp\"\nrequire_valid_certificate = {}\nallow_dialback = {}\n\n",
            remote.domain, remote.require_valid_certificate, remote.allow_dialback
        ));
    }
    t
}

// ---------------------------------------------------------------------------------------------
// Checks.

/// Sends [`BODY`] to echo@gw.example and waits for the echo: from echo@gw.example to the sender's
/// full JID, same type and body.
async fn expect_echo(client: &mut C2sClient, id: &str) -> Result<ReceivedMessage> {
    client.send_message(ECHO_JID, "chat", id, BODY).await?;
    let got = client
        .next_message(TIMEOUT)
        .await?
        .ok_or_else(|| anyhow!("no echo within {TIMEOUT:?}\n{}", client.transcript()))?;
    ensure!(
        got.kind != "error",
        "the message bounced: {} ({:?}: {:?})",
        got.raw,
        got.error_condition,
        got.error_text
    );
    ensure!(
        got.kind == "chat",
        "echo has type {}: {}",
        got.kind,
        got.raw
    );
    ensure!(
        got.body.as_deref() == Some(BODY),
        "echo body differs: {}",
        got.raw
    );
    ensure!(
        got.from.as_deref() == Some(ECHO_JID),
        "echo comes from {:?}, not {ECHO_JID}: {}",
        got.from,
        got.raw
    );
    ensure!(
        got.to.as_deref() == Some(client.jid()),
        "echo goes to {:?}, not {}: {}",
        got.to,
        client.jid(),
        got.raw
    );
    Ok(got)
}

/// Sends a message to echo@gw.example and checks that no echo arrives within [`NO_ECHO_WINDOW`].
/// Returns the error bounce, if one came (and prints it).
async fn expect_no_echo(
    test: &str,
    client: &mut C2sClient,
    id: &str,
) -> Result<Option<ReceivedMessage>> {
    client.send_message(ECHO_JID, "chat", id, BODY).await?;
    // An error bounce means the message was not delivered: no echo can follow it.
    match client.next_message(NO_ECHO_WINDOW).await? {
        None => {
            println!("[{test}] no echo and no bounce within {NO_ECHO_WINDOW:?}");
            Ok(None)
        }
        Some(got) if got.kind == "error" => {
            ensure!(
                !got.error_text
                    .as_deref()
                    .unwrap_or("")
                    .contains("connection refused"),
                "[{test}] the gateway was not reachable: {}",
                got.raw
            );
            println!(
                "[{test}] bounce: type={:?} condition={:?} text={:?}",
                got.error_type, got.error_condition, got.error_text
            );
            Ok(Some(got))
        }
        Some(got) => bail!(
            "[{test}] a message arrived although the gateway must refuse: {}",
            got.raw
        ),
    }
}

fn describe_bounce(bounce: Option<&ReceivedMessage>) -> String {
    match bounce {
        Some(b) => format!(
            "<{}/> (type {})",
            b.error_condition.as_deref().unwrap_or("?"),
            b.error_type.as_deref().unwrap_or("?")
        ),
        None => "none".to_owned(),
    }
}

/// Waits for each piece of evidence in `log` and prints it.
async fn show_evidence(test: &str, log: &Path, evidence: &[Evidence]) -> Result<()> {
    for e in evidence {
        let line = e.wait(log, EVIDENCE_WAIT).await?;
        println!("[{test}] {}: {}", e.meaning, logs::short(&line));
    }
    Ok(())
}

/// Fails if any of `evidence` occurs in `log`.
fn ensure_absent(test: &str, log: &Path, evidence: &[Evidence]) -> Result<()> {
    for e in evidence {
        let found = e.find(log);
        ensure!(
            found.is_empty(),
            "[{test}] unexpected: {}: {}",
            e.meaning,
            found.join("\n")
        );
        println!("[{test}] (as expected, no line for: {})", e.meaning);
    }
    Ok(())
}

/// Prints Prosody's lines about how its streams with the gateway ended (for the matrix).
fn show_prosody_s2s_ending(test: &str, log: &Path) {
    for needles in [
        &["gw.example", "closed"][..],
        &["Session closed by remote"][..],
        &["Sending error replies"][..],
        &["Forbidding insecure connection"][..],
        &["No SASL EXTERNAL offer"][..],
        &["Encrypted server-to-server communication is required"][..],
    ] {
        for line in logs::find_lines(log, needles) {
            println!("[{test}] Prosody: {}", logs::short(&line));
        }
    }
}
