//! Discovery against an in-process authoritative DNS server on loopback.

use std::net::Ipv4Addr;
use std::time::Duration;

use sixgate_dns::testing::{TestDns, a, aaaa, naptr, srv};
use tokio::net::UdpSocket;

use super::*;

fn new_discovery(dns: &TestDns) -> SipDiscovery {
    SipDiscovery::new(&dns.config()).expect("discovery")
}

fn domain(text: &str) -> Domain {
    Domain::parse(text).expect("test domain")
}

fn endpoint(host: &str, addr: &str) -> Endpoint {
    Endpoint {
        host: host.to_owned(),
        addr: addr.parse().expect("socket address"),
    }
}

#[tokio::test]
async fn microsoft_federation_srv_is_preferred() {
    let dns = TestDns::start(vec![
        srv(
            "_sipfederationtls._tcp.lync.example.",
            0,
            0,
            5061,
            "edge.lync.example.",
        ),
        naptr(
            "lync.example.",
            10,
            "s",
            "SIPS+D2T",
            "_sips._tcp.lync.example.",
        ),
        srv("_sips._tcp.lync.example.", 0, 0, 5061, "sip.lync.example."),
        a("edge.lync.example.", "192.0.2.1"),
        a("sip.lync.example.", "192.0.2.2"),
        a("lync.example.", "192.0.2.3"),
    ])
    .await;
    let got = new_discovery(&dns)
        .resolve(&domain("lync.example"))
        .await
        .expect("resolve");
    assert_eq!(got, vec![endpoint("edge.lync.example", "192.0.2.1:5061")]);
    dns.stop().await;
}

#[tokio::test]
async fn naptr_leads_to_its_srv_name() {
    let dns = TestDns::start(vec![
        // Other transports and a worse-ordered SIPS record are ignored.
        naptr(
            "naptr.example.",
            5,
            "s",
            "SIP+D2U",
            "_sip._udp.naptr.example.",
        ),
        naptr(
            "naptr.example.",
            20,
            "s",
            "SIPS+D2T",
            "_later._tcp.naptr.example.",
        ),
        naptr(
            "naptr.example.",
            10,
            "s",
            "SIPS+D2T",
            "_tls._tcp.naptr.example.",
        ),
        srv("_sip._udp.naptr.example.", 0, 0, 5060, "udp.naptr.example."),
        srv("_tls._tcp.naptr.example.", 20, 0, 5063, "b.naptr.example."),
        srv("_tls._tcp.naptr.example.", 10, 0, 5062, "a.naptr.example."),
        srv("_later._tcp.naptr.example.", 0, 0, 5064, "c.naptr.example."),
        a("udp.naptr.example.", "192.0.2.9"),
        a("a.naptr.example.", "192.0.2.10"),
        aaaa("a.naptr.example.", "2001:db8::10"),
        a("b.naptr.example.", "192.0.2.11"),
        a("c.naptr.example.", "192.0.2.12"),
    ])
    .await;
    let got = new_discovery(&dns)
        .resolve(&domain("naptr.example"))
        .await
        .expect("resolve");
    assert_eq!(
        got,
        vec![
            endpoint("a.naptr.example", "192.0.2.10:5062"),
            endpoint("a.naptr.example", "[2001:db8::10]:5062"),
            endpoint("b.naptr.example", "192.0.2.11:5063"),
        ]
    );
    dns.stop().await;
}

#[tokio::test]
async fn sips_srv_in_priority_order() {
    let dns = TestDns::start(vec![
        srv("_sips._tcp.plain.example.", 20, 0, 5071, "c.plain.example."),
        srv("_sips._tcp.plain.example.", 10, 0, 5061, "a.plain.example."),
        srv("_sips._tcp.plain.example.", 15, 0, 5070, "b.plain.example."),
        a("a.plain.example.", "192.0.2.21"),
        a("b.plain.example.", "192.0.2.22"),
        a("c.plain.example.", "192.0.2.23"),
    ])
    .await;
    let discovery = new_discovery(&dns);
    // Repeated so that a lucky wire order cannot pass the test.
    for _ in 0..3 {
        let got = discovery
            .resolve(&domain("plain.example"))
            .await
            .expect("resolve");
        assert_eq!(
            got,
            vec![
                endpoint("a.plain.example", "192.0.2.21:5061"),
                endpoint("b.plain.example", "192.0.2.22:5070"),
                endpoint("c.plain.example", "192.0.2.23:5071"),
            ]
        );
    }
    dns.stop().await;
}

#[tokio::test]
async fn no_srv_falls_back_to_address_records_on_5061() {
    let dns = TestDns::start(vec![
        a("bare.example.", "192.0.2.30"),
        aaaa("bare.example.", "2001:db8::30"),
    ])
    .await;
    let got = new_discovery(&dns)
        .resolve(&domain("bare.example"))
        .await
        .expect("resolve");
    assert_eq!(
        got,
        vec![
            endpoint("bare.example", "192.0.2.30:5061"),
            endpoint("bare.example", "[2001:db8::30]:5061"),
        ]
    );
    dns.stop().await;
}

#[tokio::test]
async fn nxdomain_and_dot_targets_are_not_found() {
    let dns = TestDns::start(vec![
        a("other.example.", "192.0.2.40"),
        // "." says there is no service: the A record must not be used.
        srv("_sips._tcp.none.example.", 0, 0, 0, "."),
        a("none.example.", "192.0.2.41"),
        // SRV targets exist but none resolves: no fallback to the domain's own A record (RFC 2782).
        srv(
            "_sips._tcp.gone.example.",
            0,
            0,
            5061,
            "missing.gone.example.",
        ),
        a("gone.example.", "192.0.2.42"),
    ])
    .await;
    let discovery = new_discovery(&dns);
    assert_eq!(
        discovery.resolve(&domain("missing.example")).await,
        Err(DiscoveryError::NotFound)
    );
    assert_eq!(
        discovery.resolve(&domain("none.example")).await,
        Err(DiscoveryError::NotFound)
    );
    assert_eq!(
        discovery.resolve(&domain("gone.example")).await,
        Err(DiscoveryError::NotFound)
    );
    dns.stop().await;
}

#[tokio::test]
async fn static_targets_keep_their_order() {
    let dns = TestDns::start(vec![a("proxy.example.", "192.0.2.60")]).await;
    let discovery = new_discovery(&dns);
    let got = discovery
        .resolve_static(&[
            ("192.0.2.99".to_owned(), 5062),
            ("missing.example".to_owned(), 5061),
            ("proxy.example.".to_owned(), 5061),
            ("[2001:db8::99]".to_owned(), 5063),
        ])
        .await
        .expect("static");
    assert_eq!(
        got,
        vec![
            endpoint("192.0.2.99", "192.0.2.99:5062"),
            endpoint("proxy.example", "192.0.2.60:5061"),
            endpoint("[2001:db8::99]", "[2001:db8::99]:5063"),
        ]
    );
    assert_eq!(
        discovery
            .resolve_static(&[("missing.example".to_owned(), 5061)])
            .await,
        Err(DiscoveryError::NotFound)
    );
    dns.stop().await;
}

#[tokio::test]
async fn ip_literal_domain_skips_dns() {
    // Nobody reads this socket: a query would time out, so success proves none was sent.
    let silent = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0))
        .await
        .expect("bind");
    let discovery = SipDiscovery::new(&DnsConfig {
        nameservers: vec![silent.local_addr().expect("addr")],
        timeout: Duration::from_millis(300),
    })
    .expect("discovery");
    assert_eq!(
        discovery.resolve(&domain("192.0.2.70")).await,
        Ok(vec![endpoint("192.0.2.70", "192.0.2.70:5061")])
    );
    let started = std::time::Instant::now();
    assert_eq!(
        discovery.resolve(&domain("slow.example")).await,
        Err(DiscoveryError::Timeout)
    );
    assert!(started.elapsed() < Duration::from_secs(3));
}
