//! `cascade-operator`: turns Cascade's custom resources into what the relays run.
//!
//! [`render::evaluate`] is the pure core (resources in, relay configuration, DNS records and
//! statuses out); [`render`] runs it on files without a cluster; [`crdgen`] prints the CRDs.
#![forbid(unsafe_code)]

pub mod crdgen;
pub mod render;
