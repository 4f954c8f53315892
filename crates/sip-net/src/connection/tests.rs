//! The driver over in-memory pipes, on tokio's paused clock: no TLS, no sockets, no waiting.

#![allow(clippy::unwrap_used)]

use sixgate_sip::transaction::TransactionConfig;
use tokio::io::DuplexStream;

use super::*;
use crate::incoming::PeerInfo;

const PEER: &str = "192.0.2.1:5061";

/// A connection driven over a pipe; returns the engine, the peer's end, the flow and the requests for
/// the application.
fn connect(
    settings: ConnectionSettings,
) -> (
    Arc<Engine>,
    DuplexStream,
    sixgate_sip::transaction::FlowId,
    mpsc::Receiver<IncomingRequest>,
    tokio::task::JoinHandle<()>,
) {
    let (sender, inbound) = mpsc::channel(4);
    let engine = Engine::start(TransactionConfig::default(), sender);
    let (ours, theirs) = tokio::io::duplex(64 * 1024);
    let peer = PeerInfo {
        addr: PEER.parse().unwrap(),
        identities: Vec::new(),
    };
    let flow = engine.register_flow(peer.clone(), "127.0.0.1:5061".parse().unwrap());
    let id = flow.id;
    let task = tokio::spawn(drive(Arc::clone(&engine), ours, peer.addr, flow, settings));
    (engine, theirs, id, inbound, task)
}

#[tokio::test(start_paused = true)]
async fn pings_keep_a_connection_open_and_silence_closes_it() {
    let settings = ConnectionSettings {
        idle_timeout: Duration::from_secs(10),
        frame_limits: FrameLimits::default(),
    };
    let (engine, mut theirs, flow, _inbound, task) = connect(settings);
    for _ in 0..3 {
        tokio::time::sleep(Duration::from_secs(6)).await;
        theirs.write_all(b"\r\n\r\n").await.unwrap();
        let mut pong = [0u8; 2];
        theirs.read_exact(&mut pong).await.unwrap();
        assert_eq!(&pong, b"\r\n");
    }
    assert!(engine.flow_is_open(flow));

    let started = Instant::now();
    let mut rest = Vec::new();
    theirs.read_to_end(&mut rest).await.unwrap();
    assert!(rest.is_empty());
    assert_eq!(started.elapsed(), Duration::from_secs(10));
    task.await.unwrap();
    assert!(!engine.flow_is_open(flow));
}

#[tokio::test(start_paused = true)]
async fn oversized_body_is_answered_413_and_the_connection_closed() {
    let settings = ConnectionSettings {
        idle_timeout: Duration::from_secs(300),
        frame_limits: FrameLimits {
            max_head: 4096,
            max_body: 16,
        },
    };
    let (_engine, mut theirs, _flow, mut inbound, task) = connect(settings);
    let request = "MESSAGE sip:bob@b.example SIP/2.0\r\n\
        Via: SIP/2.0/TLS a.example;branch=z9hG4bKbig\r\n\
        From: <sip:alice@a.example>;tag=1\r\nTo: <sip:bob@b.example>\r\n\
        Call-ID: big@a.example\r\nCSeq: 1 MESSAGE\r\nContent-Length: 17\r\n\r\n";
    theirs.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    theirs.read_to_end(&mut answer).await.unwrap();
    let answer = String::from_utf8(answer).unwrap();
    // The reason phrase says what was wrong, for the peer's logs.
    assert!(
        answer.starts_with("SIP/2.0 413 Content-Length 17 exceeds the limit of 16 bytes\r\n"),
        "{answer}"
    );
    assert!(answer.contains("Call-ID: big@a.example\r\n"), "{answer}");
    task.await.unwrap();
    assert!(inbound.try_recv().is_err());
}
