//! Wiring of the gateway: configuration, certificates, the route table and the protocol services.

pub mod config;
pub mod dev_certificates;
