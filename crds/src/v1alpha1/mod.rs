//! `cascade-mail.com/v1alpha1`: the custom resources platform teams write. All are namespaced;
//! a tenant is a namespace. Every field's doc comment is its `kubectl explain` text.

mod api_key;
pub mod bounds;
mod dkim_key;
mod erasure_request;
mod pod_settings;
mod relay_pool;
mod relay_pool_status;
mod sending_domain;
mod suppression_shard;
mod webhook_endpoint;

pub use api_key::*;
pub use dkim_key::*;
pub use erasure_request::*;
pub use pod_settings::*;
pub use relay_pool::*;
pub use relay_pool_status::*;
pub use sending_domain::*;
pub use suppression_shard::*;
pub use webhook_endpoint::*;

pub const GROUP: &str = "cascade-mail.com";
