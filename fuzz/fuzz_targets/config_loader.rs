//! The configuration loader on any text: parsed and checked (as a bundle held in memory), it is
//! accepted or refused with problems, never a panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = cascade_relay::config::parse("fuzz.yaml", text);
    let files = std::collections::BTreeMap::from([("relay.yaml".to_string(), data.to_vec())]);
    let _ = cascade_relay::config::load_bundle("fuzz", &files);
});
