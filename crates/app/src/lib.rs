//! Wiring of the gateway: configuration, certificates, the route table, delivery targets and the protocol
//! services.

mod certificates;
pub mod config;
pub mod dev_certificates;
mod echo;
mod gateway;
mod routing;

pub use gateway::Gateway;
