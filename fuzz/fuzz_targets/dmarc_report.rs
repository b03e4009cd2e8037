//! The DMARC report path on any bytes: as an upload (XML, gzip, zip) and as a mail (MIME with
//! attachments or a feedback report). It must return Ok or a ReportError, never panic, and stay
//! within its limits.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let _ = cascade_relay::dmarc::parse_upload(data);
    let _ = cascade_relay::dmarc::parse_mail(data);
});
