//! Cascade's API contract.
//!
//! - [`v1alpha1`]: the custom resources (`SendingDomain`, `DkimKey`, `ApiKey`, `RelayPool`) and
//!   [`conditions`], behind the default `kube` feature;
//! - [`relay_config`]: the one YAML file a `cascade-relay` reads, which the operator renders from
//!   the custom resources; human-readable durations and sizes live in [`units`].
#![forbid(unsafe_code)]

#[cfg(feature = "kube")]
pub mod conditions;
pub mod relay_config;
pub mod units;
#[cfg(feature = "kube")]
pub mod v1alpha1;

pub use relay_config::RelayConfig;
pub use units::{ByteSize, HumanDuration};
