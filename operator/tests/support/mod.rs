//! Shared by several test binaries; each uses a subset.
#![allow(dead_code)]

pub mod apiserver;
pub mod calls;
pub mod crds;
pub mod dns;
pub mod operator;
pub mod proxy;
pub mod relay;
pub mod rewrite;
pub mod trail;
pub mod world;
