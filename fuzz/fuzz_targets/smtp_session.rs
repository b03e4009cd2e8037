//! The whole SMTP session over an in-memory stream: the first input byte picks plaintext or
//! implicit TLS, the rest is what the client sends (`@AUTH@` becomes valid credentials). Whatever
//! the bytes, the session ends and writes only well-formed replies.
#![no_main]

use cascade_relay::smtp::harness::{replay, replay_fixture, well_formed_replies, Fixture};
use std::sync::{Mutex, OnceLock};

static WORLD: OnceLock<(tokio::runtime::Runtime, Mutex<Fixture>)> = OnceLock::new();

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else { return };
    let (rt, fixture) = WORLD.get_or_init(|| {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        (rt, Mutex::new(replay_fixture()))
    });
    let mut f = fixture.lock().expect("fixture");
    let out = rt.block_on(replay(&mut f, input, mode & 1 == 1));
    assert!(out.starts_with(b"220 "), "no greeting");
    if let Err(e) = well_formed_replies(&out) {
        panic!("{e}");
    }
});
