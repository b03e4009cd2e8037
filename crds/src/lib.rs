//! Cascade's API contract.
//!
//! For now this crate holds the relay configuration format ([`relay_config`]): the one YAML file a
//! `cascade-relay` reads and, later, the file the operator renders from the custom resources.
//! Human-readable durations and sizes live in [`units`].
#![forbid(unsafe_code)]

pub mod relay_config;
pub mod units;

pub use relay_config::RelayConfig;
pub use units::{ByteSize, HumanDuration};
