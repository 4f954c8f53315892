//! Wiring of the gateway: configuration, certificates, the route table, delivery targets and the protocol
//! services.

mod certificates;
pub mod config;
pub mod dev_certificates;
mod echo;
mod gateway;
mod pager;
mod presence;
pub mod presence_wire;
mod routing;
mod sip_side;

pub use gateway::Gateway;
