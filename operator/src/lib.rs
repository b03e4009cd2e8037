//! `cascade-operator`: turns Cascade's custom resources into what the relays run.
//!
//! The controllers, each gather → evaluate (pure) → apply: [`relay_pool`] (a module tree with
//! one file per step), [`dkim_key`], [`api_key`] and [`sending_domain`]. [`controller`] runs
//! them and is imported by none. What they share imports no controller: [`context`] (the
//! client, keys, clock), [`error`], [`apply`] (the one server-side apply of children),
//! [`status`] (statuses written only when changed), [`labels`] (names and labels),
//! [`secrets`], [`events`], [`bundle`] (the relay bundle, built once for the cluster and for
//! `render`), [`workloads`] (the typed relay workloads). [`render::evaluate`] is the pure core
//! (resources in, relay configuration, DNS records and statuses out); [`render`] runs it on
//! files without a cluster; [`crdgen`] prints the CRDs; [`suppression_sync`] shares the relays' suppression lists; [`probes`] serves metrics and health; [`plugin`] is `kubectl cascade`.
#![forbid(unsafe_code)]

pub mod admin_authority;
pub mod admin_records;
pub mod api_key;
pub mod apply;
pub mod backup;
pub mod bundle;
pub mod caches;
pub mod check_dns;
pub mod connection;
pub mod context;
pub mod controller;
pub mod crdgen;
pub mod credentials;
pub mod dkim_key;
pub mod dkim_lifecycle;
pub mod dmarc_reports;
pub mod dns;
pub mod domain_cleanup;
pub mod erasure;
pub mod error;
pub mod events;
pub mod external_dns;
pub mod failure;
pub mod key_usage;
pub mod labels;
pub mod leader;
pub mod lean;
pub mod lockdown;
pub mod master_key;
pub mod metrics;
pub mod plugin;
pub mod pod_shape;
pub mod probes;
pub mod records;
pub mod relay_admin;
pub mod relay_pool;
pub mod render;
pub mod secrets;
pub mod sending_domain;
pub mod spool_drain;
pub mod spool_key;
pub mod status;
pub mod suppression_sync;
pub mod suspensions;
pub mod webhook_endpoint;
pub mod workloads;

pub use context::{Clock, Context};
