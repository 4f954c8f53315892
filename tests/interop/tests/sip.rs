//! The gateway's SIP side (in-process `sixgate_app::Gateway`, SIP over mutual TLS on 127.0.0.10:5061)
//! between SIP peers played by the test (`sixgate_sip_net::SipService`s with test-CA certificates) and
//! real Prosody 0.12 and ejabberd 23 on loopback.
//!
//! The gateway serves `corp.example` with `delivery = "sip"` behind the edge proxy `edge.corp.example`
//! (127.0.0.20:5061), routes `partner.example` over SIP to 127.0.0.21:5061, denies `denied.example`,
//! sends `down.example` to an address where nothing listens, and federates with everything else over
//! XMPP. The SIP user is `alice@corp.example`; the XMPP user is `bob` on Prosody or ejabberd.
//!
//! | test | peers | what it proves |
//! |---|---|---|
//! | `sip1_…` | edge, Prosody | SIP → XMPP: 202, body intact, `from='alice@corp.example'` |
//! | `sip2_…` | Prosody, edge | XMPP → SIP: Request-URI, `From` with `;gr=<resource>` (RFC 7247), body, Content-Type; 200 |
//! | `sip3_…` | edge, Prosody | `o'malley` becomes `o\27malley` in XMPP and `o'malley` again in SIP |
//! | `sip4_…` | edge, Prosody | MESSAGE to an unknown XMPP user: a 4xx |
//! | `sip5_…` | Prosody, edge | the edge's 404 reaches the XMPP sender as `<item-not-found/>` |
//! | `sip6_…` | edge | MESSAGE to a denied domain: 403 |
//! | `sip7_…` | edge | MESSAGE to an XMPP domain whose server is down: 404 or 408 |
//! | `sip8_…` | edge, partner | proxying between SIP domains both ways (Via, Max-Forwards); no open relay |
//! | `sip9_…` | stranger, edge | a certificate that does not cover the `From` domain: 403 |
//! | `sip_ejabberd_…` | edge, ejabberd | cases 1 and 2 with ejabberd |
//!
//! Each test prints what it observed (`--show-output` or `--nocapture`): the interop matrix.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::{Result, anyhow, ensure};
use sixgate_interop::c2s::{C2sClient, ReceivedMessage};
use sixgate_interop::evidence::{self, Mechanism};
use sixgate_interop::gateway_env::{
    CORP, DENIED, DOWN, DOWN_IP, Env, PARTNER, SIP_USER, STRANGER, TIMEOUT, XMPP_RESOURCE,
    XMPP_USER, answer, answer_with, corp, ensure_body, ensure_host, expect_request,
    gateway_sip_addr, print_request, print_response, send_from,
};
use sixgate_interop::run::RunDir;
use sixgate_interop::sip_peer::{self, SipPeer, decoded_user, status_line};
use sixgate_interop::{DNS_IP, EJABBERD_DOMAIN, PROSODY_DOMAIN, S2S_PORT, logs, process, run_test};
use sixgate_sip::message::HeaderName;
use sixgate_sip::{Request, Response};
use tokio::time::Instant;

/// How long to wait for log lines after the fact they prove.
const EVIDENCE_WAIT: Duration = Duration::from_secs(10);
/// How long a test waits for something that must not come (an error bounce after a 200).
const QUIET_WINDOW: Duration = Duration::from_millis(1500);
/// Unicode, every XML-special character, and an emoji.
const BODY: &str = "sip ✓ ünïcødé 漢字 🚀 <&>'\" ]]> &amp; end";

// ---------------------------------------------------------------------------------------------
// 1-5: messages between the edge and Prosody.

#[test]
fn sip1_prosody_sip_to_xmpp() {
    run_test("sip1", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.prosody_bob(&prosody).await?;

        let response = sip_to_xmpp(
            "sip1",
            &mut edge,
            &mut bob,
            &format!("sip:{SIP_USER}@{CORP}"),
            &format!("sip:{XMPP_USER}@{PROSODY_DOMAIN}"),
            &format!("{SIP_USER}@{CORP}"),
        )
        .await?;
        let line = evidence::prosody_inbound_external(CORP)
            .wait(prosody.log(), EVIDENCE_WAIT)
            .await?;
        println!(
            "[sip1] the gateway's stream corp.example -> prosody.example: {}",
            logs::short(&line)
        );
        println!(
            "[sip1] RESULT edge -> gateway -> Prosody: {}; body intact; from alice@corp.example",
            status_line(&response)
        );

        bob.close().await;
        edge.shutdown();
        gateway.shutdown("sip1").await;
        Ok(())
    });
}

#[test]
fn sip2_prosody_xmpp_to_sip_with_gruu() {
    run_test("sip2", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.prosody_bob(&prosody).await?;

        let request = xmpp_to_sip(
            "sip2",
            &mut bob,
            &mut edge,
            &format!("{SIP_USER}@{CORP}"),
            PROSODY_DOMAIN,
        )
        .await?;
        let line = evidence::prosody_outbound_external(CORP)
            .wait(prosody.log(), EVIDENCE_WAIT)
            .await?;
        println!(
            "[sip2] Prosody's stream prosody.example -> corp.example: {}",
            logs::short(&line)
        );
        println!(
            "[sip2] RESULT Prosody -> gateway -> edge: MESSAGE {} From {}; body intact; edge answered 200, no bounce",
            request.uri, request.from
        );

        bob.close().await;
        edge.shutdown();
        gateway.shutdown("sip2").await;
        Ok(())
    });
}

#[test]
fn sip3_prosody_escaped_localpart_both_ways() {
    run_test("sip3", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.prosody_bob(&prosody).await?;

        // SIP -> XMPP: the apostrophe, percent-encoded in the SIP URI, is escaped as \27 (XEP-0106).
        let escaped_jid = format!("o\\27malley@{CORP}");
        let response = sip_to_xmpp(
            "sip3",
            &mut edge,
            &mut bob,
            &format!("sip:o%27malley@{CORP}"),
            &format!("sip:{XMPP_USER}@{PROSODY_DOMAIN}"),
            &escaped_jid,
        )
        .await?;
        println!(
            "[sip3] sip:o%27malley@corp.example -> {}; Prosody saw from='{escaped_jid}'",
            status_line(&response)
        );

        // And the reply back, to the JID bob saw.
        let reply = "reply to o'malley";
        bob.send_message(&escaped_jid, "chat", "sip3-reply", reply)
            .await?;
        let incoming = expect_request("sip3", &mut edge, "the reply to o'malley").await?;
        let request = incoming.request.clone();
        print_request("sip3", "edge received", &request);
        answer(incoming, 200)?;
        let user = decoded_user(&request.uri);
        ensure!(
            user.as_deref() == Some("o'malley"),
            "Request-URI {} has user {user:?}, not o'malley",
            request.uri
        );
        ensure_host(&request.uri, CORP)?;
        ensure!(
            decoded_user(&request.to.uri).as_deref() == Some("o'malley"),
            "To {} is not o'malley",
            request.to
        );
        ensure_body(&request, reply)?;
        ensure_nothing_more("sip3", &mut bob, &mut edge).await?;
        println!(
            "[sip3] RESULT o'malley: SIP sip:o%27malley -> XMPP {escaped_jid} -> SIP {} (decoded user o'malley)",
            request.uri
        );

        bob.close().await;
        edge.shutdown();
        gateway.shutdown("sip3").await;
        Ok(())
    });
}

#[test]
fn sip4_prosody_unknown_xmpp_user() {
    run_test("sip4", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let _prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let edge = env.edge().await?;

        let request = sip_peer::message(
            &format!("sip:{SIP_USER}@{CORP}"),
            &format!("sip:nobody@{PROSODY_DOMAIN}"),
            "to nobody",
        )?;
        let started = Instant::now();
        let response = send_from(&edge, request).await?;
        print_response("sip4", &response, started);
        let code = response.status.as_u16();
        ensure!(
            (400..500).contains(&code),
            "MESSAGE to nobody@prosody.example: expected a 4xx, got {}",
            status_line(&response)
        );
        println!(
            "[sip4] RESULT MESSAGE to an unknown Prosody user: {} ({})",
            status_line(&response),
            if code == 403 {
                "service-unavailable -> 403 as in docs/translation.md"
            } else {
                "not the 403 docs/translation.md gives service-unavailable"
            }
        );

        edge.shutdown();
        gateway.shutdown("sip4").await;
        Ok(())
    });
}

#[test]
fn sip5_prosody_unknown_sip_user() {
    run_test("sip5", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let prosody = env.prosody(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.prosody_bob(&prosody).await?;

        let to = format!("nobody@{CORP}");
        bob.send_message(&to, "chat", "sip5-1", "to a SIP user that does not exist")
            .await?;
        let incoming = expect_request("sip5", &mut edge, "the MESSAGE to nobody").await?;
        print_request("sip5", "edge received", &incoming.request);
        answer(incoming, 404)?;
        println!("[sip5] the edge answered 404 Not Found");

        let bounce = bob
            .next_message(TIMEOUT)
            .await?
            .ok_or_else(|| anyhow!("no error within {TIMEOUT:?}\n{}", bob.transcript()))?;
        println!(
            "[sip5] bob received: type={} from={:?} error type={:?} condition={:?} text={:?}: {}",
            bounce.kind,
            bounce.from,
            bounce.error_type,
            bounce.error_condition,
            bounce.error_text,
            bounce.raw
        );
        ensure!(
            bounce.kind == "error",
            "expected an error, got {}",
            bounce.raw
        );
        ensure!(
            bounce.error_condition.as_deref() == Some("item-not-found"),
            "expected <item-not-found/>, got {}",
            bounce.raw
        );
        ensure!(
            bounce.from.as_deref() == Some(to.as_str()),
            "the error comes from {:?}, not {to}: {}",
            bounce.from,
            bounce.raw
        );
        println!(
            "[sip5] RESULT edge 404 -> XMPP error <item-not-found/> (type {})",
            bounce.error_type.as_deref().unwrap_or("?")
        );

        bob.close().await;
        edge.shutdown();
        gateway.shutdown("sip5").await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// 6, 7: refusals and failures towards XMPP.

#[test]
fn sip6_denied_domain() {
    run_test("sip6", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let gateway = env.gateway(run).await?;
        let edge = env.edge().await?;

        let request = sip_peer::message(
            &format!("sip:{SIP_USER}@{CORP}"),
            &format!("sip:x@{DENIED}"),
            "to a denied domain",
        )?;
        let started = Instant::now();
        let response = send_from(&edge, request).await?;
        print_response("sip6", &response, started);
        ensure!(
            response.status.as_u16() == 403,
            "MESSAGE to a denied domain: expected 403, got {}",
            status_line(&response)
        );
        println!(
            "[sip6] RESULT MESSAGE to sip:x@denied.example (route = \"deny\"): {}",
            status_line(&response)
        );

        edge.shutdown();
        gateway.shutdown("sip6").await;
        Ok(())
    });
}

#[test]
fn sip7_xmpp_server_down() {
    run_test("sip7", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        process::ensure_free(SocketAddr::from((DOWN_IP, S2S_PORT)))?;
        let gateway = env.gateway(run).await?;
        let edge = env.edge().await?;

        let request = sip_peer::message(
            &format!("sip:{SIP_USER}@{CORP}"),
            &format!("sip:x@{DOWN}"),
            "to a server that is down",
        )?;
        let started = Instant::now();
        let response = send_from(&edge, request).await?;
        print_response("sip7", &response, started);
        let code = response.status.as_u16();
        ensure!(
            code == 404 || code == 408,
            "MESSAGE to a domain whose server is down: expected 404 or 408, got {}",
            status_line(&response)
        );
        println!(
            "[sip7] RESULT MESSAGE to sip:x@down.example (connect = 127.0.0.99:5269, refused): {} ({})",
            status_line(&response),
            if code == 404 {
                "remote-server-not-found"
            } else {
                "remote-server-timeout"
            }
        );

        edge.shutdown();
        gateway.shutdown("sip7").await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// 8: a native SIP partner.

#[test]
fn sip8_native_sip_partner() {
    run_test("sip8", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut partner = env.partner().await?;

        // a: edge -> partner through the gateway (stateful proxy).
        let request = sip_peer::message(
            &format!("sip:{SIP_USER}@{CORP}"),
            &format!("sip:carol@{PARTNER}"),
            BODY,
        )?;
        let reason = "OK from partner.example";
        let (sent, served) = tokio::join!(
            send_from(&edge, request.clone()),
            serve_one("sip8", &mut partner, "partner", 200, reason)
        );
        let served = served?;
        let response = sent?;
        println!(
            "[sip8] a: the partner saw the gateway's certificate as {:?}",
            served.peer.identities
        );
        check_proxied("sip8", "a", &request, &served, &response, reason)?;

        // b: partner -> edge through the gateway.
        let request = sip_peer::message(
            &format!("sip:carol@{PARTNER}"),
            &format!("sip:{SIP_USER}@{CORP}"),
            BODY,
        )?;
        let reason = "OK from the edge";
        let corp = corp();
        let (sent, served) = tokio::join!(
            partner.send_to(gateway_sip_addr(), &corp, request.clone()),
            serve_one("sip8", &mut edge, "edge", 200, reason)
        );
        let served = served?;
        let response = sent.map_err(|e| anyhow!("partner -> gateway: {e}"))?;
        println!(
            "[sip8] b: the edge saw the gateway's certificate as {:?}",
            served.peer.identities
        );
        check_proxied("sip8", "b", &request, &served, &response, reason)?;

        // c: the partner may reach our users only: no relaying to other domains.
        let request = sip_peer::message(
            &format!("sip:carol@{PARTNER}"),
            &format!("sip:{XMPP_USER}@{PROSODY_DOMAIN}"),
            "relay me",
        )?;
        let started = Instant::now();
        let response = partner
            .send_to(gateway_sip_addr(), &corp, request)
            .await
            .map_err(|e| anyhow!("partner -> gateway: {e}"))?;
        print_response("sip8", &response, started);
        ensure!(
            response.status.as_u16() == 403,
            "partner -> sip:bob@prosody.example: expected 403 (no open relay), got {}",
            status_line(&response)
        );
        let stray = edge.requests_within(Duration::from_millis(200)).await;
        ensure!(
            stray.is_empty(),
            "the edge received unexpected requests: {stray:?}"
        );
        println!(
            "[sip8] RESULT SIP partner: edge -> partner 200, partner -> edge 200 (gateway Via on top, Max-Forwards 70 -> 69); partner -> prosody.example {}",
            status_line(&response)
        );

        partner.shutdown();
        edge.shutdown();
        gateway.shutdown("sip8").await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// 9: the certificate decides who may send.

#[test]
fn sip9_certificate_does_not_cover_from_domain() {
    run_test("sip9", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let stranger = SipPeer::start(
            "stranger",
            STRANGER,
            &env.pki.sip_leaf(STRANGER)?,
            &env.pki,
            None,
            DNS_IP,
        )
        .await?;

        // a: a valid test-CA certificate, but for stranger.example, sending as corp.example.
        let request = sip_peer::message(
            &format!("sip:x@{CORP}"),
            &format!("sip:{XMPP_USER}@{PROSODY_DOMAIN}"),
            "spoofed",
        )?;
        let started = Instant::now();
        let response = stranger
            .send_to(gateway_sip_addr(), &corp(), request)
            .await
            .map_err(|e| anyhow!("stranger -> gateway: {e}"))?;
        print_response("sip9", &response, started);
        ensure!(
            response.status.as_u16() == 403,
            "stranger.example sending from sip:x@corp.example: expected 403, got {}",
            status_line(&response)
        );

        // b: the edge itself may only send for corp.example, not for the SIP partner's domain.
        let request = sip_peer::message(
            &format!("sip:carol@{PARTNER}"),
            &format!("sip:{SIP_USER}@{CORP}"),
            "spoofed by the edge",
        )?;
        let started = Instant::now();
        let edge_response = send_from(&edge, request).await?;
        print_response("sip9", &edge_response, started);
        ensure!(
            edge_response.status.as_u16() == 403,
            "the edge sending from sip:carol@partner.example: expected 403, got {}",
            status_line(&edge_response)
        );
        let stray = edge.requests_within(Duration::from_millis(200)).await;
        ensure!(
            stray.is_empty(),
            "the edge received unexpected requests: {stray:?}"
        );
        println!(
            "[sip9] RESULT certificate for stranger.example, From corp.example: {}; edge certificate, From partner.example: {}",
            status_line(&response),
            status_line(&edge_response)
        );

        stranger.shutdown();
        edge.shutdown();
        gateway.shutdown("sip9").await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// ejabberd: cases 1 and 2.

#[test]
fn sip_ejabberd_both_ways() {
    run_test("sip-ejabberd", async |run: &RunDir| -> Result<()> {
        let env = Env::new(run)?;
        let ejabberd = env.ejabberd(run)?;
        let gateway = env.gateway(run).await?;
        let mut edge = env.edge().await?;
        let mut bob = env.ejabberd_bob(&ejabberd).await?;

        let response = sip_to_xmpp(
            "sip-ejabberd",
            &mut edge,
            &mut bob,
            &format!("sip:{SIP_USER}@{CORP}"),
            &format!("sip:{XMPP_USER}@{EJABBERD_DOMAIN}"),
            &format!("{SIP_USER}@{CORP}"),
        )
        .await?;
        let request = xmpp_to_sip(
            "sip-ejabberd",
            &mut bob,
            &mut edge,
            &format!("{SIP_USER}@{CORP}"),
            EJABBERD_DOMAIN,
        )
        .await?;
        for e in [
            evidence::ejabberd_inbound(Mechanism::External, CORP, EJABBERD_DOMAIN),
            evidence::ejabberd_outbound(Mechanism::External, EJABBERD_DOMAIN, CORP),
        ] {
            let line = e.wait(&ejabberd.log(), EVIDENCE_WAIT).await?;
            println!("[sip-ejabberd] {}: {}", e.meaning, logs::short(&line));
        }
        println!(
            "[sip-ejabberd] RESULT edge -> ejabberd: {}, body intact; ejabberd -> edge: MESSAGE {} From {}, body intact, 200",
            status_line(&response),
            request.uri,
            request.from
        );

        bob.close().await;
        edge.shutdown();
        gateway.shutdown("sip-ejabberd").await;
        Ok(())
    });
}

// ---------------------------------------------------------------------------------------------
// The scenarios shared by Prosody and ejabberd.

/// The edge sends [`BODY`] from `from_uri` to `to_uri`; the gateway must answer 202 and `client` must
/// receive the body from `expect_from`, once.
async fn sip_to_xmpp(
    test: &str,
    edge: &mut SipPeer,
    client: &mut C2sClient,
    from_uri: &str,
    to_uri: &str,
    expect_from: &str,
) -> Result<Response> {
    let request = sip_peer::message(from_uri, to_uri, BODY)?;
    print_request(test, "edge sends", &request);
    let started = Instant::now();
    let response = send_from(edge, request).await?;
    print_response(test, &response, started);
    let got = client
        .next_message(TIMEOUT)
        .await?
        .ok_or_else(|| anyhow!("no message within {TIMEOUT:?}\n{}", client.transcript()))?;
    println!("[{test}] {} received: {}", client.jid(), got.raw);
    ensure!(
        response.status.as_u16() == 202,
        "the gateway answered {} instead of 202 Accepted",
        status_line(&response)
    );
    ensure!(
        got.kind != "error",
        "an error arrived instead of the message: {}",
        got.raw
    );
    ensure!(
        got.body.as_deref() == Some(BODY),
        "the body differs: {}",
        got.raw
    );
    ensure!(
        got.from.as_deref() == Some(expect_from),
        "the message comes from {:?}, not {expect_from}: {}",
        got.from,
        got.raw
    );
    ensure_nothing_more(test, client, edge).await?;
    Ok(response)
}

/// `client` sends [`BODY`] to `to_jid`; the edge must receive a MESSAGE for it from the client's full
/// JID as a GRUU (`sip:<user>@<domain>;gr=<resource>`, RFC 7247 §5.2), with the body and
/// `Content-Type: text/plain`. The edge answers 200, after which no bounce and no duplicate may come.
async fn xmpp_to_sip(
    test: &str,
    client: &mut C2sClient,
    edge: &mut SipPeer,
    to_jid: &str,
    client_domain: &str,
) -> Result<Request> {
    client
        .send_message(to_jid, "chat", &format!("{test}-x2s"), BODY)
        .await?;
    let incoming = expect_request(test, edge, "the MESSAGE from XMPP").await?;
    let request = incoming.request.clone();
    print_request(test, "edge received", &request);
    println!(
        "[{test}] the edge saw the gateway's certificate as {:?}",
        incoming.peer.identities
    );
    answer(incoming, 200)?;
    println!("[{test}] the edge answered 200 OK");

    ensure!(
        request.method.as_str() == "MESSAGE",
        "expected MESSAGE, got {}",
        request.method
    );
    let (user, domain) = to_jid
        .split_once('@')
        .ok_or_else(|| anyhow!("{to_jid} has no @"))?;
    ensure!(
        decoded_user(&request.uri).as_deref() == Some(user),
        "Request-URI {} is not for {user}",
        request.uri
    );
    ensure_host(&request.uri, domain)?;
    ensure!(
        request.uri.scheme() == "sip",
        "Request-URI {} is not a sip: URI",
        request.uri
    );
    let from = &request.from.uri;
    ensure!(
        decoded_user(from).as_deref() == Some(XMPP_USER),
        "From {} is not {XMPP_USER}",
        request.from
    );
    ensure_host(from, client_domain)?;
    ensure!(
        from.param("gr") == Some(XMPP_RESOURCE),
        "From {} has no ;gr={XMPP_RESOURCE} (RFC 7247: the full JID's resource as GRUU)",
        request.from
    );
    ensure!(
        request.from.tag().is_some(),
        "From {} has no tag",
        request.from
    );
    let content_type = request.headers.get(&HeaderName::CONTENT_TYPE).unwrap_or("");
    ensure!(
        content_type.to_ascii_lowercase().starts_with("text/plain"),
        "Content-Type is {content_type:?}, not text/plain"
    );
    ensure_body(&request, BODY)?;
    ensure_nothing_more(test, client, edge).await?;
    Ok(request)
}

// ---------------------------------------------------------------------------------------------
// SIP helpers.

/// What a SIP peer saw of a request it answered.
struct Served {
    request: Request,
    peer: sixgate_sip_net::PeerInfo,
    /// The `To` tag of its response.
    to_tag: String,
}

/// Waits for one request at `peer`, answers it with `code` and `reason`, and returns what it saw.
async fn serve_one(
    test: &str,
    peer: &mut SipPeer,
    name: &str,
    code: u16,
    reason: &str,
) -> Result<Served> {
    let incoming = expect_request(test, peer, "the proxied MESSAGE").await?;
    let request = incoming.request.clone();
    let info = incoming.peer.clone();
    print_request(test, &format!("{name} received"), &request);
    let to_tag = answer_with(incoming, code, reason)?;
    Ok(Served {
        request,
        peer: info,
        to_tag,
    })
}

/// A request the gateway proxied between SIP domains, and the response relayed back: our Via on top
/// of the sender's, Max-Forwards one less than the sender's 70; Request-URI, From, To, Call-ID, CSeq
/// and body unchanged; the response is the receiver's (its reason phrase and To tag).
fn check_proxied(
    test: &str,
    part: &str,
    sent: &Request,
    served: &Served,
    response: &Response,
    reason: &str,
) -> Result<()> {
    let forwarded = &served.request;
    let vias: Vec<String> = forwarded.via.iter().map(ToString::to_string).collect();
    println!(
        "[{test}] {part}: {} Via header(s), top first: {vias:?}; Max-Forwards {:?}",
        vias.len(),
        forwarded.max_forwards
    );
    println!(
        "[{test}] {part}: the sender got {} with To tag {:?} (the receiver's tag: {:?})",
        status_line(response),
        response.to.tag(),
        served.to_tag
    );
    ensure!(
        forwarded.uri == sent.uri,
        "Request-URI {} is not {}",
        forwarded.uri,
        sent.uri
    );
    ensure!(
        forwarded.via.len() == 2,
        "expected 2 Via headers (the gateway's on top of the sender's), got {vias:?}"
    );
    ensure!(
        forwarded.via[0].branch() != forwarded.via[1].branch(),
        "the two Via headers have the same branch: {vias:?}"
    );
    ensure!(
        forwarded.max_forwards == Some(69),
        "Max-Forwards is {:?}, not 69 (70 decremented)",
        forwarded.max_forwards
    );
    ensure!(
        forwarded.from == sent.from && forwarded.to == sent.to,
        "From/To changed: sent {} / {}, received {} / {}",
        sent.from,
        sent.to,
        forwarded.from,
        forwarded.to
    );
    ensure!(
        forwarded.call_id == sent.call_id && forwarded.cseq == sent.cseq,
        "Call-ID/CSeq changed: sent {} / {}, received {} / {}",
        sent.call_id,
        sent.cseq.number,
        forwarded.call_id,
        forwarded.cseq.number
    );
    ensure_body(forwarded, BODY)?;
    ensure!(
        response.status.as_u16() == 200 && response.reason == reason,
        "expected the receiver's \"200 {reason}\", got {}",
        status_line(response)
    );
    ensure!(
        response.to.tag() == Some(served.to_tag.as_str()),
        "the response's To tag {:?} is not the receiver's {:?}",
        response.to.tag(),
        served.to_tag
    );
    Ok(())
}

/// Fails if, within [`QUIET_WINDOW`], `client` receives anything more (an error bounce, a duplicate)
/// or the edge receives another request (a duplicate).
async fn ensure_nothing_more(test: &str, client: &mut C2sClient, edge: &mut SipPeer) -> Result<()> {
    let (late, more) = tokio::join!(
        client.messages_within(QUIET_WINDOW),
        edge.requests_within(QUIET_WINDOW)
    );
    let late: Vec<ReceivedMessage> = late?;
    for m in &late {
        println!("[{test}] afterwards {} received: {}", client.jid(), m.raw);
    }
    for r in &more {
        print_request(test, "afterwards the edge received", &r.request);
    }
    ensure!(
        late.is_empty() && more.is_empty(),
        "{} more message(s) at the XMPP client and {} more request(s) at the edge within {QUIET_WINDOW:?}",
        late.len(),
        more.len()
    );
    Ok(())
}
