//! The spool file reader on any bytes: a file opens (only with the right key and queue id) or is
//! refused as corrupt, never a panic.
#![no_main]

use std::sync::OnceLock;

static KEYS: OnceLock<cascade_core::seal::KeyRing> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let keys = KEYS.get_or_init(|| cascade_core::seal::KeyRing::parse("k1 MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=").expect("key"));
    let _ = cascade_core::seal::open(keys, "q1", data.to_vec());
    let _ = cascade_core::seal::KeyRing::parse(&String::from_utf8_lossy(data));
});
