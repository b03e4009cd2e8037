//! What report senders attach: plain XML, gzip, or a zip holding one XML file. Decompression is
//! bounded: past [`MAX_XML`] bytes the input is refused (a zip bomb gets an error, not memory).

use super::ReportError;
use flate2::read::{DeflateDecoder, GzDecoder};
use std::io::Read;

/// The largest report (decompressed) accepted.
pub const MAX_XML: usize = 20 * 1024 * 1024;

fn bounded(mut r: impl Read, what: &str) -> Result<Vec<u8>, ReportError> {
    let mut out = Vec::new();
    r.by_ref().take(MAX_XML as u64 + 1).read_to_end(&mut out).map_err(|e| ReportError::new(format!("{what}: cannot decompress: {e}")))?;
    if out.len() > MAX_XML {
        return Err(ReportError::new(format!("{what}: decompresses to more than {} MiB; refused", MAX_XML / 1024 / 1024)));
    }
    Ok(out)
}

fn le16(b: &[u8], at: usize) -> usize {
    usize::from(b[at]) | usize::from(b[at + 1]) << 8
}

fn le32(b: &[u8], at: usize) -> usize {
    le16(b, at) | le16(b, at + 2) << 16
}

/// The first file of a zip archive (reports carry exactly one).
fn unzip(b: &[u8]) -> Result<Vec<u8>, ReportError> {
    if b.len() < 30 {
        return Err(ReportError::new("zip: truncated local file header"));
    }
    let (flags, method, compressed) = (le16(b, 6), le16(b, 8), le32(b, 18));
    let start = 30 + le16(b, 26) + le16(b, 28);
    if flags & 1 != 0 {
        return Err(ReportError::new("zip: encrypted entries are not supported"));
    }
    let data = b.get(start..).ok_or_else(|| ReportError::new("zip: truncated before the file data"))?;
    // With a data descriptor (flag bit 3) the sizes come after the data; deflate ends by itself.
    let data = if flags & 8 == 0 { data.get(..compressed).ok_or_else(|| ReportError::new("zip: truncated file data"))? } else { data };
    match method {
        0 => bounded(data, "zip"),
        8 => bounded(DeflateDecoder::new(data), "zip"),
        m => Err(ReportError::new(format!("zip: compression method {m} is not supported (only stored and deflate)"))),
    }
}

/// The XML inside `bytes`, whatever the wrapping.
pub fn unpack(bytes: &[u8]) -> Result<Vec<u8>, ReportError> {
    match bytes {
        [0x1f, 0x8b, ..] => bounded(GzDecoder::new(bytes), "gzip"),
        [b'P', b'K', 3, 4, ..] => unzip(bytes),
        _ if bytes.len() > MAX_XML => Err(ReportError::new(format!("report larger than {} MiB; refused", MAX_XML / 1024 / 1024))),
        _ => Ok(bytes.to_vec()),
    }
}
