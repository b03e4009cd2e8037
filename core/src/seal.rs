//! The on-disk form of one queued message: a short clear header naming the format and the key id,
//! then AES-256-GCM over the envelope and the message. Pure functions, no I/O.
//!
//! ```text
//! "CSPOOL1\n" | key-id length (u8) | key-id | nonce (12) | ciphertext | tag (16)
//! plaintext  = envelope length (u32 BE) | envelope JSON | message
//! AAD        = "CSPOOL1\n" | key-id length | key-id | queue id
//! ```
//! The queue id in the AAD binds a file to its name: a file renamed or swapped is refused. Nonces
//! are 96 random bits from the system RNG, fresh on every write.

use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use std::collections::HashMap;

const MAGIC: &[u8; 8] = b"CSPOOL1\n";

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FormatError {
    #[error("not a spool file (bad magic)")]
    Magic,
    #[error("truncated spool file")]
    Truncated,
    #[error("encrypted with unknown key id {0:?}")]
    UnknownKey(String),
    #[error("authentication failed: the file was modified, truncated or belongs to another queue id")]
    Auth,
    #[error("envelope length exceeds the file")]
    Envelope,
    #[error("random number generator failed")]
    Rng,
}

/// The spool keys: the first encrypts, every one decrypts.
pub struct KeyRing {
    active: String,
    keys: HashMap<String, LessSafeKey>,
}

impl KeyRing {
    /// Parses the key file: lines `<key-id> <base64 of 32 bytes>`, `#` comments and blank lines
    /// ignored. Errors name the line.
    pub fn parse(text: &str) -> Result<Self, String> {
        let mut active = None;
        let mut keys = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let at = |msg: &str| format!("line {}: {msg}", n + 1);
            let (id, b64) = line.split_once(char::is_whitespace).ok_or_else(|| at("expected `<key-id> <base64 key>`"))?;
            if id.is_empty() || id.len() > 64 || !id.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b)) {
                return Err(at("key id must be 1-64 characters of letters, digits, '-', '_' or '.'"));
            }
            let raw = base64::engine::general_purpose::STANDARD.decode(b64.trim()).map_err(|_| at("key is not base64"))?;
            let unbound = UnboundKey::new(&AES_256_GCM, &raw).map_err(|_| at("key must be exactly 32 bytes (AES-256)"))?;
            if keys.insert(id.to_string(), LessSafeKey::new(unbound)).is_some() {
                return Err(at("duplicate key id"));
            }
            active.get_or_insert_with(|| id.to_string());
        }
        let active = active.ok_or("no key in file")?;
        Ok(Self { active, keys })
    }

    /// The id of the key new files are sealed with (the file's first).
    pub fn active(&self) -> &str {
        &self.active
    }

    /// A new key file line with a random key.
    pub fn generate_line(id: &str) -> Result<String, FormatError> {
        let mut key = [0u8; 32];
        SystemRandom::new().fill(&mut key).map_err(|_| FormatError::Rng)?;
        Ok(format!("{id} {}\n", base64::engine::general_purpose::STANDARD.encode(key)))
    }
}

impl std::fmt::Debug for KeyRing {
    /// Key ids only: key material is never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut ids: Vec<&String> = self.keys.keys().collect();
        ids.sort();
        f.debug_struct("KeyRing").field("active", &self.active).field("ids", &ids).finish()
    }
}

fn aad(key_id: &str, queue_id: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(MAGIC.len() + 1 + key_id.len() + queue_id.len());
    aad.extend_from_slice(MAGIC);
    aad.push(key_id.len() as u8);
    aad.extend_from_slice(key_id.as_bytes());
    aad.extend_from_slice(queue_id.as_bytes());
    aad
}

pub fn seal(keys: &KeyRing, queue_id: &str, envelope: &[u8], message: &[&[u8]]) -> Result<Vec<u8>, FormatError> {
    let key_id = &keys.active;
    let key = &keys.keys[key_id];
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).map_err(|_| FormatError::Rng)?;
    let body_len: usize = message.iter().map(|m| m.len()).sum();
    let mut out = Vec::with_capacity(MAGIC.len() + 1 + key_id.len() + NONCE_LEN + 4 + envelope.len() + body_len + 16);
    out.extend_from_slice(MAGIC);
    out.push(key_id.len() as u8);
    out.extend_from_slice(key_id.as_bytes());
    out.extend_from_slice(&nonce);
    let start = out.len();
    out.extend_from_slice(&(envelope.len() as u32).to_be_bytes());
    out.extend_from_slice(envelope);
    for part in message {
        out.extend_from_slice(part);
    }
    let mut plaintext = out.split_off(start);
    key.seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(key_id, queue_id)), &mut plaintext).map_err(|_| FormatError::Rng)?;
    out.append(&mut plaintext);
    Ok(out)
}

/// Encrypts a small blob (a private key) bound to `context` (a name): a copy moved to another
/// name does not decrypt.
pub fn seal_blob(keys: &KeyRing, context: &str, plaintext: &[u8]) -> Result<Vec<u8>, FormatError> {
    seal(keys, context, b"", &[plaintext])
}

pub fn open_blob(keys: &KeyRing, context: &str, sealed: &[u8]) -> Result<Vec<u8>, FormatError> {
    open(keys, context, sealed.to_vec()).map(|(_, plaintext)| plaintext)
}

/// Decrypts and splits a spool file into (envelope JSON, message).
pub fn open(keys: &KeyRing, queue_id: &str, mut file: Vec<u8>) -> Result<(Vec<u8>, Vec<u8>), FormatError> {
    if file.len() < MAGIC.len() + 1 {
        return Err(if file.starts_with(&MAGIC[..file.len().min(MAGIC.len())]) { FormatError::Truncated } else { FormatError::Magic });
    }
    if &file[..MAGIC.len()] != MAGIC {
        return Err(FormatError::Magic);
    }
    let id_len = file[MAGIC.len()] as usize;
    let nonce_at = MAGIC.len() + 1 + id_len;
    if file.len() < nonce_at + NONCE_LEN + 16 + 4 {
        return Err(FormatError::Truncated);
    }
    let key_id = String::from_utf8_lossy(&file[MAGIC.len() + 1..nonce_at]).into_owned();
    let key = keys.keys.get(&key_id).ok_or_else(|| FormatError::UnknownKey(key_id.clone()))?;
    let nonce = Nonce::try_assume_unique_for_key(&file[nonce_at..nonce_at + NONCE_LEN]).map_err(|_| FormatError::Truncated)?;
    let mut sealed = file.split_off(nonce_at + NONCE_LEN);
    let plain_len = key.open_in_place(nonce, Aad::from(aad(&key_id, queue_id)), &mut sealed).map_err(|_| FormatError::Auth)?.len();
    sealed.truncate(plain_len);
    let env_len = u32::from_be_bytes(sealed[..4].try_into().map_err(|_| FormatError::Envelope)?) as usize;
    if 4 + env_len > sealed.len() {
        return Err(FormatError::Envelope);
    }
    let message = sealed.split_off(4 + env_len);
    sealed.drain(..4);
    Ok((sealed, message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ring(lines: &[&str]) -> KeyRing {
        let text: String = lines.iter().map(|id| KeyRing::generate_line(id).unwrap()).collect();
        KeyRing::parse(&text).unwrap()
    }

    #[test]
    fn round_trips_and_hides_content() {
        let keys = ring(&["k1"]);
        let file = seal(&keys, "q1", b"{\"to\":\"secret@x.test\"}", &[b"Subject: MARKER\r\n", b"\r\nbody MARKER\r\n"]).unwrap();
        let hay = String::from_utf8_lossy(&file);
        assert!(!hay.contains("MARKER") && !hay.contains("secret@"));
        let (env, msg) = open(&keys, "q1", file).unwrap();
        assert_eq!(env, b"{\"to\":\"secret@x.test\"}");
        assert_eq!(msg, b"Subject: MARKER\r\n\r\nbody MARKER\r\n");
    }

    #[test]
    fn nonces_differ_between_writes() {
        let keys = ring(&["k1"]);
        let a = seal(&keys, "q", b"{}", &[b"same"]).unwrap();
        let b = seal(&keys, "q", b"{}", &[b"same"]).unwrap();
        assert_ne!(a, b);
    }

    #[test]
    fn old_keys_still_decrypt_after_rotation() {
        let old = ring(&["k1"]);
        let file = seal(&old, "q", b"{}", &[b"m"]).unwrap();
        let text = format!("{}{}", KeyRing::generate_line("k2").unwrap(), "k1 ".to_string() + &base64::engine::general_purpose::STANDARD.encode([0u8; 32]));
        let rotated = KeyRing::parse(&text).unwrap();
        assert_eq!(rotated.active, "k2");
        // The k1 in `rotated` is a different key, so this fails authentication, not lookup.
        assert_eq!(open(&rotated, "q", file.clone()).unwrap_err(), FormatError::Auth);
        assert_eq!(open(&ring(&["k9"]), "q", file).unwrap_err(), FormatError::UnknownKey("k1".into()));
    }

    #[test]
    fn detects_tampering_truncation_and_swaps() {
        let keys = ring(&["k1"]);
        let file = seal(&keys, "q1", b"{}", &[b"message"]).unwrap();
        let mut flipped = file.clone();
        *flipped.last_mut().unwrap() ^= 1;
        assert_eq!(open(&keys, "q1", flipped).unwrap_err(), FormatError::Auth);
        assert_eq!(open(&keys, "q1", file[..20].to_vec()).unwrap_err(), FormatError::Truncated);
        assert_eq!(open(&keys, "q1", file[..file.len() - 1].to_vec()).unwrap_err(), FormatError::Auth);
        assert_eq!(open(&keys, "q2", file.clone()).unwrap_err(), FormatError::Auth);
        assert_eq!(open(&keys, "q1", b"garbage!!".to_vec()).unwrap_err(), FormatError::Magic);
        assert_eq!(open(&keys, "q1", vec![]).unwrap_err(), FormatError::Truncated);
    }

    #[test]
    fn key_file_errors_name_the_line() {
        assert!(KeyRing::parse("# only a comment\n").unwrap_err().contains("no key"));
        assert!(KeyRing::parse("k1 c2hvcnQ=\n").unwrap_err().starts_with("line 1: key must be exactly 32 bytes"));
        assert!(KeyRing::parse("\nbad id!! AAAA\n").unwrap_err().starts_with("line 2"));
        let line = KeyRing::generate_line("k1").unwrap();
        assert!(KeyRing::parse(&format!("{line}{line}")).unwrap_err().contains("duplicate"));
    }
}
