//! The SMTP command grammar and the DATA stream reader on any bytes: a command parses or gets a
//! reply; the DATA reader consumes any split of the input without panicking.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cascade_relay::smtp::command::parse(data);
    let split = data.first().map_or(0, |b| usize::from(*b)).min(data.len());
    let mut reader = cascade_relay::smtp::dotstuff::DataReader::new(64 * 1024, 1000);
    let _ = reader.feed(&data[..split]);
    let _ = reader.feed(&data[split..]);
});
