//! Settings of a [`SipService`](crate::SipService).

use std::net::SocketAddr;
use std::time::Duration;

use sixgate_sip::FrameLimits;
use sixgate_sip::transaction::TransactionConfig;

/// Settings of a [`SipService`](crate::SipService). `Default` gives production values and no listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipConfig {
    /// Addresses to accept SIP over TLS on, port 0 for any free port (see
    /// [`SipService::local_addrs`](crate::SipService::local_addrs)). Empty: no listener; connections we
    /// open still carry requests from peers that reuse them.
    pub listen: Vec<SocketAddr>,
    /// `sent-by` host (and optional port) of the `Via` we add to requests we send, such as
    /// `sip.example.com:5061`. `None`: the local address of the connection the request goes out on.
    pub via_host: Option<String>,
    /// Connections open at once, inbound and outbound together. An inbound connection beyond the limit
    /// waits in the kernel's backlog; an outbound one fails with [`SendError::Transport`](crate::SendError).
    pub max_connections: usize,
    /// A connection that carried no message in either direction (keep-alives included) for this long is
    /// closed.
    pub idle_timeout: Duration,
    /// Longest a TCP connect may take.
    pub connect_timeout: Duration,
    /// Longest a TLS handshake may take, inbound or outbound.
    pub handshake_timeout: Duration,
    /// Size limits of one received message.
    pub frame_limits: FrameLimits,
    /// Transaction timers: T1 (Timer F is 64·T1) and the lingering timers J and K. The default keeps a
    /// server transaction for Timer J = 64·T1 after its final response, unlike RFC 3261's 0 for reliable
    /// transports.
    pub transaction: TransactionConfig,
}

impl Default for SipConfig {
    fn default() -> Self {
        Self {
            listen: Vec::new(),
            via_host: None,
            max_connections: 1024,
            // Longer than RFC 5626's recommended keep-alive interval for connection-oriented transports
            // (95 to 120 s), so a peer that pings is never cut off.
            idle_timeout: Duration::from_secs(300),
            connect_timeout: Duration::from_secs(10),
            handshake_timeout: Duration::from_secs(10),
            frame_limits: FrameLimits::default(),
            transaction: absorbing_transactions(),
        }
    }
}

/// RFC 3261's timers, except that Timer J is 8·T1 (4 s) rather than 0. A stateless hop upstream may still
/// forward its UDP client's retransmissions over our TLS connection; with J = 0 a copy of a MESSAGE that
/// arrives after our answer would be a new request, and the XMPP side would see the chat message twice.
/// Such copies follow the original within T2 (4 s), so holding each answered transaction that long absorbs
/// them; holding it for the RFC's 64·T1 would keep 32 s of traffic in memory (about 1 GiB at 5,000
/// MESSAGE/s, measured with `sixgate-loadgen`) for retransmissions that come much earlier.
fn absorbing_transactions() -> TransactionConfig {
    let rfc = TransactionConfig::default();
    TransactionConfig {
        timer_j: rfc.t1 * 8,
        ..rfc
    }
}
