//! `cascade-relay`: accepts mail from authenticated clients over TLS, DKIM-signs it, keeps it
//! encrypted in a durable spool, and delivers it.
//!
//! Data flow: [`server`] accepts connections → [`smtp`] runs the session (auth and sender rules
//! from [`policy`]) → DATA is signed ([`dkim`]) and written to the [`spool`] → `250` → the
//! [`delivery`] scheduler sends it on and bounces what fails. [`config`] loads and checks the
//! file everything runs on; [`metrics`] and [`http`] make it observable; [`dev`] is the
//! zero-configuration mode.
#![forbid(unsafe_code)]

pub mod anomalies;
pub mod api;
pub mod audit_check;
pub mod complaints;
pub mod config;
pub mod delivery;
pub mod dev;
pub mod dkim;
pub mod dmarc;
pub mod erase;
pub mod events;
pub mod handover;
pub mod http;
pub mod io;
pub mod metrics;
#[cfg(test)]
pub mod mutate;
pub mod policy;
pub mod proxy;
pub mod relay;
pub mod server;
pub mod smtp;
pub mod spool;
pub mod store;
pub mod submit;
pub mod suppression;
pub mod tls;
pub mod watch;
