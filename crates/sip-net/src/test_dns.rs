//! An in-process authoritative DNS server on loopback, for discovery tests.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use hickory_resolver::proto::rr::{Name, RData};
use hickory_server::Server;
use hickory_server::net::runtime::TokioRuntimeProvider as ServerRuntime;
use hickory_server::proto::rr::rdata::SOA;
use hickory_server::proto::rr::{LowerName, Record};
use hickory_server::store::in_memory::InMemoryZoneHandler;
use hickory_server::zone_handler::{AxfrPolicy, Catalog, ZoneType};
use tokio::net::{TcpListener, UdpSocket};

use crate::discovery::{DnsConfig, SipDiscovery};

/// An authoritative server for `example.` on 127.0.0.1, UDP and TCP on the same random port.
pub(crate) struct TestDns {
    server: Server<Catalog>,
    pub(crate) addr: SocketAddr,
}

impl TestDns {
    pub(crate) async fn start(records: Vec<Record>) -> Self {
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

    pub(crate) fn discovery(&self) -> SipDiscovery {
        SipDiscovery::new(&DnsConfig {
            nameservers: vec![self.addr],
            timeout: Duration::from_secs(2),
        })
        .expect("discovery")
    }

    pub(crate) async fn stop(mut self) {
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

pub(crate) fn name(text: &str) -> Name {
    Name::from_ascii(text).expect("test name")
}
