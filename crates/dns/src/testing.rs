//! An in-process authoritative DNS server on loopback and record helpers, for discovery tests. Behind the
//! cargo feature `testing`; use it from `[dev-dependencies]` only.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider as ServerRuntime;
use hickory_server::proto::rr::rdata::{A, AAAA, NAPTR, SOA, SRV};
use hickory_server::proto::rr::{LowerName, RData};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

use crate::{DnsConfig, Name};

pub use hickory_server::proto::rr::Record;

/// An authoritative server for `example.` on 127.0.0.1, UDP and TCP on the same random port. Dropping it
/// aborts its tasks; [`TestDns::stop`] shuts it down cleanly.
pub struct TestDns {
    server: Server<Catalog>,
    /// Where it listens, UDP and TCP.
    pub addr: SocketAddr,
}

impl TestDns {
    /// Serves `records`, which must lie in `example.`, next to a SOA record.
    pub async fn start(records: Vec<Record>) -> Self {
        let origin = name("example.");
        let mut zone = InMemoryZoneHandler::<ServerRuntime>::empty(
            origin.clone(),
            ZoneType::Primary,
            AxfrPolicy::Deny,
        );
        let soa = SOA::new(
            name("ns.example."),
            name("hostmaster.example."),
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

    /// A configuration asking only this server, with a 2 s timeout.
    pub fn config(&self) -> DnsConfig {
        DnsConfig {
            nameservers: vec![self.addr],
            timeout: Duration::from_secs(2),
        }
    }

    /// Shuts the server down, failing if that takes more than 5 s.
    pub async fn stop(mut self) {
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

/// `text` as a DNS name.
pub fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test name")
}

/// An SRV record with a TTL of 60 s.
pub fn srv(owner: &str, priority: u16, weight: u16, port: u16, target: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::SRV(SRV::new(priority, weight, port, name(target))),
    )
}

/// A NAPTR record with preference 10 and no regexp.
pub fn naptr(owner: &str, order: u16, flags: &str, service: &str, replacement: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::NAPTR(NAPTR::new(
            order,
            10,
            flags.as_bytes().into(),
            service.as_bytes().into(),
            Box::default(),
            name(replacement),
        )),
    )
}

/// An A record.
pub fn a(owner: &str, ip: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::A(A(Ipv4Addr::from_str(ip).expect("ipv4"))),
    )
}

/// An AAAA record.
pub fn aaaa(owner: &str, ip: &str) -> Record {
    Record::from_rdata(
        name(owner),
        60,
        RData::AAAA(AAAA(Ipv6Addr::from_str(ip).expect("ipv6"))),
    )
}
