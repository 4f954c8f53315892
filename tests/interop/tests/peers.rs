//! Harness self-test: proves the peers work before (and without) the gateway.
//!
//! A user on Prosody and a user on ejabberd exchange messages over real s2s, both servers requiring
//! STARTTLS and trusting only the test CA; both directions authenticate with SASL EXTERNAL.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use sixgate_interop::c2s::{C2sClient, Login, Security};
use sixgate_interop::dns::{Dns, Records};
use sixgate_interop::evidence::Mechanism;
use sixgate_interop::pki::Pki;
use sixgate_interop::run::RunDir;
use sixgate_interop::{
    DNS_IP, EJABBERD_DOMAIN, EJABBERD_IP, GATEWAY_DOMAIN, GATEWAY_IP, PROSODY_DOMAIN, PROSODY_IP,
    S2S_PORT, ejabberd, evidence, logs, process, prosody, run_test,
};

const TIMEOUT: Duration = Duration::from_secs(30);
const EVIDENCE_WAIT: Duration = Duration::from_secs(10);

#[test]
fn prosody_and_ejabberd_federate_with_sasl_external_both_ways() {
    run_test("peers", async |run: &RunDir| -> Result<()> {
        let pki = Pki::new(run)?;
        let records = Records::default()
            .xmpp_server(PROSODY_DOMAIN, PROSODY_IP, S2S_PORT)
            .xmpp_server(EJABBERD_DOMAIN, EJABBERD_IP, S2S_PORT)
            .xmpp_server(GATEWAY_DOMAIN, GATEWAY_IP, S2S_PORT);
        let dns = Dns::start(run, DNS_IP, &records)?;

        let prosody = prosody::Prosody::start(
            run,
            &dns,
            &prosody::Options::secure(
                PROSODY_DOMAIN,
                PROSODY_IP,
                &pki.ca_file(),
                pki.leaf(PROSODY_DOMAIN)?,
            )
            .user("alice", "alice-secret"),
        )?;
        let ejabberd = ejabberd::Ejabberd::start(
            run,
            &dns,
            &ejabberd::Options::new(
                EJABBERD_DOMAIN,
                EJABBERD_IP,
                &pki.ca_file(),
                pki.leaf(EJABBERD_DOMAIN)?,
            )
            .user("bob", "bob-secret"),
        )?;
        let listening = process::check_loopback_only(&[dns.pid(), prosody.pid(), ejabberd.pid()])?;
        println!(
            "[peers] listening (all loopback): {}",
            listening
                .iter()
                .map(|l| format!("{} {}", l.proto, l.local))
                .collect::<Vec<_>>()
                .join(", ")
        );

        let roots = pki.root_store()?;
        let mut alice = C2sClient::connect(
            &Login {
                addr: prosody.c2s_addr(),
                domain: PROSODY_DOMAIN.into(),
                user: "alice".into(),
                password: "alice-secret".into(),
                resource: "interop".into(),
                security: Security::StartTls(roots.clone()),
            },
            TIMEOUT,
        )
        .await?;
        let mut bob = C2sClient::connect(
            &Login {
                addr: ejabberd.c2s_addr(),
                domain: EJABBERD_DOMAIN.into(),
                user: "bob".into(),
                password: "bob-secret".into(),
                resource: "interop".into(),
                security: Security::StartTls(roots),
            },
            TIMEOUT,
        )
        .await?;
        println!("[peers] logged in: {} and {}", alice.jid(), bob.jid());

        // Prosody -> ejabberd.
        let body = "hello from Prosody: <&>'\" ünïcødé ✓ 🚀";
        let bob_jid = format!("bob@{EJABBERD_DOMAIN}");
        alice.send_message(&bob_jid, "chat", "p2e-1", body).await?;
        let got = bob
            .next_message(TIMEOUT)
            .await?
            .context("bob received nothing from alice")?;
        ensure!(got.kind == "chat", "unexpected message type: {}", got.raw);
        ensure!(
            got.body.as_deref() == Some(body),
            "unexpected body: {}",
            got.raw
        );
        ensure!(
            got.from.as_deref() == Some(alice.jid()),
            "unexpected from: {}",
            got.raw
        );
        println!("[peers] prosody.example -> ejabberd.example: message arrived, body intact");

        // ejabberd -> Prosody.
        let body = "hello from ejabberd: <&>'\" ünïcødé ✓ 🚀";
        let alice_jid = format!("alice@{PROSODY_DOMAIN}");
        bob.send_message(&alice_jid, "chat", "e2p-1", body).await?;
        let got = alice
            .next_message(TIMEOUT)
            .await?
            .context("alice received nothing from bob")?;
        ensure!(got.kind == "chat", "unexpected message type: {}", got.raw);
        ensure!(
            got.body.as_deref() == Some(body),
            "unexpected body: {}",
            got.raw
        );
        ensure!(
            got.from.as_deref() == Some(bob.jid()),
            "unexpected from: {}",
            got.raw
        );
        println!("[peers] ejabberd.example -> prosody.example: message arrived, body intact");

        // How the two servers authenticated each other.
        for (log, evidence) in [
            (
                prosody.log().to_owned(),
                evidence::prosody_inbound_external(EJABBERD_DOMAIN),
            ),
            (
                prosody.log().to_owned(),
                evidence::prosody_outbound_external(EJABBERD_DOMAIN),
            ),
            (
                ejabberd.log(),
                evidence::ejabberd_inbound(Mechanism::External, PROSODY_DOMAIN, EJABBERD_DOMAIN),
            ),
            (
                ejabberd.log(),
                evidence::ejabberd_outbound(Mechanism::External, EJABBERD_DOMAIN, PROSODY_DOMAIN),
            ),
        ] {
            let line = evidence.wait(&log, EVIDENCE_WAIT).await?;
            println!("[peers] {}: {}", evidence.meaning, logs::short(&line));
        }
        ensure!(
            evidence::prosody_sent_dialback_key()
                .find(prosody.log())
                .is_empty(),
            "Prosody used dialback with ejabberd"
        );

        let queries = dns.queries();
        println!("[peers] DNS queries seen by the test DNS server: {queries:?}");
        ensure!(
            queries
                .iter()
                .any(|q| q.contains(&format!("_xmpp-server._tcp.{EJABBERD_DOMAIN}"))),
            "Prosody did not look up ejabberd's SRV record"
        );
        ensure!(
            queries
                .iter()
                .any(|q| q.contains(&format!("_xmpp-server._tcp.{PROSODY_DOMAIN}"))),
            "ejabberd did not look up Prosody's SRV record"
        );

        alice.close().await;
        bob.close().await;
        Ok(())
    });
}

/// Both peers fall back to dialback when neither can validate the other's certificate: ejabberd's
/// certificate comes from a CA Prosody does not trust (Prosody lists ejabberd.example in
/// `s2s_insecure_domains`), and ejabberd trusts only that other CA, so it cannot validate Prosody's.
/// This checks the harness options and the log lines the gateway's dialback scenarios assert on.
#[test]
fn prosody_and_ejabberd_fall_back_to_dialback_both_ways() {
    run_test("peers-dialback", async |run: &RunDir| -> Result<()> {
        let pki = Pki::new(run)?;
        let other_ca = Pki::in_subdir(run, "certs-other-ca", "an untrusted CA")?;
        let records = Records::default()
            .xmpp_server(PROSODY_DOMAIN, PROSODY_IP, S2S_PORT)
            .xmpp_server(EJABBERD_DOMAIN, EJABBERD_IP, S2S_PORT);
        let dns = Dns::start(run, DNS_IP, &records)?;
        let mut prosody_opts = prosody::Options::secure(
            PROSODY_DOMAIN,
            PROSODY_IP,
            &pki.ca_file(),
            pki.leaf(PROSODY_DOMAIN)?,
        )
        .user("alice", "alice-secret");
        prosody_opts.insecure_domains = vec![EJABBERD_DOMAIN.to_owned()];
        let prosody = prosody::Prosody::start(run, &dns, &prosody_opts)?;
        let ejabberd = ejabberd::Ejabberd::start(
            run,
            &dns,
            &ejabberd::Options::new(
                EJABBERD_DOMAIN,
                EJABBERD_IP,
                &other_ca.ca_file(),
                other_ca.leaf(EJABBERD_DOMAIN)?,
            )
            .user("bob", "bob-secret"),
        )?;

        let mut alice = C2sClient::connect(
            &Login {
                addr: prosody.c2s_addr(),
                domain: PROSODY_DOMAIN.into(),
                user: "alice".into(),
                password: "alice-secret".into(),
                resource: "interop".into(),
                security: Security::StartTls(pki.root_store()?),
            },
            TIMEOUT,
        )
        .await?;
        let mut bob = C2sClient::connect(
            &Login {
                addr: ejabberd.c2s_addr(),
                domain: EJABBERD_DOMAIN.into(),
                user: "bob".into(),
                password: "bob-secret".into(),
                resource: "interop".into(),
                security: Security::StartTls(other_ca.root_store()?),
            },
            TIMEOUT,
        )
        .await?;

        alice
            .send_message(
                &format!("bob@{EJABBERD_DOMAIN}"),
                "chat",
                "p2e-db",
                "via dialback →",
            )
            .await?;
        let got = bob
            .next_message(TIMEOUT)
            .await?
            .context("bob received nothing")?;
        ensure!(got.body.as_deref() == Some("via dialback →"), "{}", got.raw);
        bob.send_message(
            &format!("alice@{PROSODY_DOMAIN}"),
            "chat",
            "e2p-db",
            "← via dialback",
        )
        .await?;
        let got = alice
            .next_message(TIMEOUT)
            .await?
            .context("alice received nothing")?;
        ensure!(got.body.as_deref() == Some("← via dialback"), "{}", got.raw);
        println!("[peers-dialback] messages arrived in both directions");

        for (log, evidence) in [
            (
                prosody.log().to_owned(),
                evidence::prosody_inbound_dialback(EJABBERD_DOMAIN),
            ),
            (
                prosody.log().to_owned(),
                evidence::prosody_outbound_dialback(EJABBERD_DOMAIN),
            ),
            (
                ejabberd.log(),
                evidence::ejabberd_inbound(Mechanism::Dialback, PROSODY_DOMAIN, EJABBERD_DOMAIN),
            ),
            (
                ejabberd.log(),
                evidence::ejabberd_outbound(Mechanism::Dialback, EJABBERD_DOMAIN, PROSODY_DOMAIN),
            ),
        ] {
            let line = evidence.wait(&log, EVIDENCE_WAIT).await?;
            println!(
                "[peers-dialback] {}: {}",
                evidence.meaning,
                logs::short(&line)
            );
        }
        ensure!(
            evidence::prosody_inbound_external(EJABBERD_DOMAIN)
                .find(prosody.log())
                .is_empty()
                && evidence::prosody_outbound_external(EJABBERD_DOMAIN)
                    .find(prosody.log())
                    .is_empty(),
            "Prosody used SASL EXTERNAL with ejabberd"
        );
        alice.close().await;
        bob.close().await;
        Ok(())
    });
}
