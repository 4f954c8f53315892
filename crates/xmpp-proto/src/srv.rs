//! RFC 2782 SRV target selection, now in [`sixgate_core::srv`] so that the SIP transport orders its SRV
//! answers the same way; re-exported here so that existing users compile unchanged.

pub use sixgate_core::srv::*;
