//! The backup archive's bytes. Written by hand: no maintained crate seals one document with a
//! key the user holds *and* sections under keys the live system holds (crypto-shredding); the
//! primitives are aws-lc-rs's AES-256-GCM and HKDF and the `argon2` crate. Pure.
//!
//! ```text
//! MAGIC | u32 BE header length | header (JSON, plaintext) | nonce(12) | AES-256-GCM(payload JSON)
//! ```
//! The header names the format version and how the backup key is derived (a key file through
//! HKDF-SHA256, or a passphrase through Argon2id, each with the archive's own salt); it is the
//! associated data of the payload, so the whole file is authenticated at once. Each tenant's
//! objects inside the payload are sealed again under that tenant's data key, bound to the archive
//! id and the namespace.

use super::{Item, Manifest};
use aws_lc_rs::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

pub const MAGIC: &[u8] = b"CASCADE-BACKUP\n";
/// The format this build writes and reads.
pub const FORMAT: u32 = 1;
const B64: base64::engine::general_purpose::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// Why an archive could not be written or opened. Every open failure changes nothing.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("not a Cascade backup (no {MAGIC:?} header)")]
    NotABackup,
    #[error("backup format {0} is not supported by this build (it reads format {FORMAT})")]
    Format(u32),
    #[error("the archive header is damaged: {0}")]
    Header(String),
    #[error("the archive was sealed with {sealed}; give {give}")]
    WrongKeyKind { sealed: &'static str, give: &'static str },
    #[error("the archive does not open with this key: wrong key or passphrase, or the file was altered")]
    Authentication,
    #[error("the section of tenant {0} does not open with its data key (altered, or the key is not this archive's)")]
    Tenant(String),
    #[error("the key file must hold the base64 of at least 32 bytes")]
    KeyFile,
    #[error("deriving the key from the passphrase: {0}")]
    Kdf(String),
    #[error("random number generator failed")]
    Rng,
    #[error("payload: {0}")]
    Json(#[from] serde_json::Error),
}

/// What the user holds to open the archive.
pub enum KeySource {
    /// The decoded contents of a key file (≥ 32 random bytes).
    KeyFile(Vec<u8>),
    Passphrase(Vec<u8>),
}

impl KeySource {
    /// A key file's text: base64 of at least 32 bytes (`head -c 32 /dev/urandom | base64`).
    pub fn key_file(text: &str) -> Result<Self, ArchiveError> {
        let bytes = B64.decode(text.trim()).map_err(|_| ArchiveError::KeyFile)?;
        if bytes.len() < 32 {
            return Err(ArchiveError::KeyFile);
        }
        Ok(Self::KeyFile(bytes))
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(tag = "type", rename_all = "camelCase", deny_unknown_fields)]
pub enum Kdf {
    #[serde(rename_all = "camelCase")]
    KeyFile { salt: String },
    #[serde(rename_all = "camelCase")]
    Argon2id { salt: String, memory_kib: u32, iterations: u32, parallelism: u32 },
}

#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Header {
    pub format: u32,
    /// Random; binds each tenant section to this archive.
    pub id: String,
    pub kdf: Kdf,
}

/// A tenant's objects sealed under its data key.
#[derive(Serialize, Deserialize, Clone, Debug)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SealedTenant {
    pub key_id: String,
    pub sealed: String,
}

/// A tenant data key: the id names it in the archive, the key never leaves sealed form.
#[derive(Serialize, Deserialize, Clone, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TenantKey {
    pub id: String,
    pub key: String,
}

impl std::fmt::Debug for TenantKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TenantKey").field("id", &self.id).finish_non_exhaustive()
    }
}

#[derive(Serialize, Deserialize, Clone, Debug, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Payload {
    pub manifest: Manifest,
    /// The operator's and the pools' objects (not per tenant).
    pub platform: Vec<Item>,
    pub tenants: BTreeMap<String, SealedTenant>,
    /// Only in a key escrow file: the tenant data keys, under the backup key.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tenant_keys: BTreeMap<String, TenantKey>,
}

pub fn random(n: usize) -> Result<Vec<u8>, ArchiveError> {
    let mut out = vec![0u8; n];
    SystemRandom::new().fill(&mut out).map_err(|_| ArchiveError::Rng)?;
    Ok(out)
}

/// A fresh header for `source`: a new id and salt; Argon2id at 64 MiB, 3 passes for passphrases.
pub fn new_header(source: &KeySource) -> Result<Header, ArchiveError> {
    let salt = B64.encode(random(16)?);
    let kdf = match source {
        KeySource::KeyFile(_) => Kdf::KeyFile { salt },
        KeySource::Passphrase(_) => Kdf::Argon2id { salt, memory_kib: 64 * 1024, iterations: 3, parallelism: 1 },
    };
    Ok(Header { format: FORMAT, id: hex(&random(16)?), kdf })
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The 256-bit backup key of this header.
fn derive(kdf: &Kdf, source: &KeySource) -> Result<[u8; 32], ArchiveError> {
    let mut key = [0u8; 32];
    match (kdf, source) {
        (Kdf::KeyFile { salt }, KeySource::KeyFile(secret)) => {
            let salt = B64.decode(salt).map_err(|e| ArchiveError::Header(e.to_string()))?;
            let prk = aws_lc_rs::hkdf::Salt::new(aws_lc_rs::hkdf::HKDF_SHA256, &salt).extract(secret);
            let okm = prk.expand(&[b"cascade backup key"], aws_lc_rs::hkdf::HKDF_SHA256).map_err(|_| ArchiveError::Kdf("HKDF".into()))?;
            okm.fill(&mut key).map_err(|_| ArchiveError::Kdf("HKDF".into()))?;
        }
        (Kdf::Argon2id { salt, memory_kib, iterations, parallelism }, KeySource::Passphrase(pass)) => {
            let salt = B64.decode(salt).map_err(|e| ArchiveError::Header(e.to_string()))?;
            let params = argon2::Params::new(*memory_kib, *iterations, *parallelism, Some(32)).map_err(|e| ArchiveError::Kdf(e.to_string()))?;
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params).hash_password_into(pass, &salt, &mut key).map_err(|e| ArchiveError::Kdf(e.to_string()))?;
        }
        (Kdf::KeyFile { .. }, KeySource::Passphrase(_)) => return Err(ArchiveError::WrongKeyKind { sealed: "a key file", give: "--key-file" }),
        (Kdf::Argon2id { .. }, KeySource::KeyFile(_)) => return Err(ArchiveError::WrongKeyKind { sealed: "a passphrase", give: "--passphrase-file" }),
    }
    Ok(key)
}

fn aead(key: &[u8]) -> LessSafeKey {
    LessSafeKey::new(UnboundKey::new(&AES_256_GCM, key).expect("a 32-byte key"))
}

/// nonce | ciphertext | tag.
fn seal(key: &[u8], aad: &[u8], mut plaintext: Vec<u8>) -> Result<Vec<u8>, ArchiveError> {
    let nonce: [u8; NONCE_LEN] = random(NONCE_LEN)?.try_into().expect("12 bytes");
    aead(key).seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad), &mut plaintext).map_err(|_| ArchiveError::Rng)?;
    let mut out = nonce.to_vec();
    out.append(&mut plaintext);
    Ok(out)
}

fn open(key: &[u8], aad: &[u8], sealed: &[u8]) -> Option<Vec<u8>> {
    let nonce = Nonce::try_assume_unique_for_key(sealed.get(..NONCE_LEN)?).ok()?;
    let mut buf = sealed[NONCE_LEN..].to_vec();
    let plain = aead(key).open_in_place(nonce, Aad::from(aad), &mut buf).ok()?;
    Some(plain.to_vec())
}

/// A new random tenant data key.
pub fn new_tenant_key() -> Result<TenantKey, ArchiveError> {
    Ok(TenantKey { id: hex(&random(8)?), key: B64.encode(random(32)?) })
}

fn tenant_aad(header: &Header, ns: &str, key_id: &str) -> Vec<u8> {
    format!("cascade backup tenant\0{}\0{ns}\0{key_id}", header.id).into_bytes()
}

pub fn seal_tenant(header: &Header, ns: &str, key: &TenantKey, items: &[Item]) -> Result<SealedTenant, ArchiveError> {
    let raw = B64.decode(&key.key).map_err(|_| ArchiveError::Tenant(ns.into()))?;
    let sealed = seal(&raw, &tenant_aad(header, ns, &key.id), serde_json::to_vec(items)?)?;
    Ok(SealedTenant { key_id: key.id.clone(), sealed: B64.encode(sealed) })
}

pub fn open_tenant(header: &Header, ns: &str, key: &TenantKey, section: &SealedTenant) -> Result<Vec<Item>, ArchiveError> {
    let fail = || ArchiveError::Tenant(ns.into());
    let raw = B64.decode(&key.key).map_err(|_| fail())?;
    let sealed = B64.decode(&section.sealed).map_err(|_| fail())?;
    let plain = open(&raw, &tenant_aad(header, ns, &section.key_id), &sealed).ok_or_else(fail)?;
    Ok(serde_json::from_slice(&plain)?)
}

/// The archive file.
pub fn write(header: &Header, source: &KeySource, payload: &Payload) -> Result<Vec<u8>, ArchiveError> {
    let key = derive(&header.kdf, source)?;
    let head = serde_json::to_vec(header)?;
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&(head.len() as u32).to_be_bytes());
    out.extend_from_slice(&head);
    let aad = out.clone();
    out.extend(seal(&key, &aad, serde_json::to_vec(payload)?)?);
    Ok(out)
}

/// The header alone (no key needed): what kind of key the archive wants.
pub fn header(bytes: &[u8]) -> Result<(Header, usize), ArchiveError> {
    let rest = bytes.strip_prefix(MAGIC).ok_or(ArchiveError::NotABackup)?;
    let len = rest.get(..4).map(|b| u32::from_be_bytes(b.try_into().expect("4 bytes")) as usize).ok_or_else(|| ArchiveError::Header("truncated".into()))?;
    let head = rest.get(4..4 + len).ok_or_else(|| ArchiveError::Header("truncated".into()))?;
    let header: Header = serde_json::from_slice(head).map_err(|e| ArchiveError::Header(e.to_string()))?;
    if header.format != FORMAT {
        return Err(ArchiveError::Format(header.format));
    }
    Ok((header, MAGIC.len() + 4 + len))
}

/// Opens and authenticates the whole archive.
pub fn read(bytes: &[u8], source: &KeySource) -> Result<(Header, Payload), ArchiveError> {
    let (header, body) = header(bytes)?;
    let key = derive(&header.kdf, source)?;
    let plain = open(&key, &bytes[..body], &bytes[body..]).ok_or(ArchiveError::Authentication)?;
    Ok((header, serde_json::from_slice(&plain)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(name: &str) -> Item {
        Item { kind: "ApiKey".into(), object: serde_json::json!({ "metadata": { "name": name } }), owner: None }
    }

    fn archive(source: &KeySource, tenant_key: &TenantKey) -> (Header, Vec<u8>) {
        let header = new_header(source).unwrap();
        let mut payload = Payload { platform: vec![item("pool")], ..Default::default() };
        payload.tenants.insert("shop".into(), seal_tenant(&header, "shop", tenant_key, &[item("web")]).unwrap());
        (header.clone(), write(&header, source, &payload).unwrap())
    }

    #[test]
    fn an_archive_opens_with_its_key_and_a_tenant_section_with_its_data_key() {
        let source = KeySource::key_file(&B64.encode([7u8; 32])).unwrap();
        let tk = new_tenant_key().unwrap();
        let (_, bytes) = archive(&source, &tk);
        let (header, payload) = read(&bytes, &source).unwrap();
        assert_eq!(payload.platform[0].object["metadata"]["name"], "pool");
        let items = open_tenant(&header, "shop", &tk, &payload.tenants["shop"]).unwrap();
        assert_eq!(items[0].object["metadata"]["name"], "web");
        // Another tenant's key, or the section read as another namespace: refused.
        assert!(matches!(open_tenant(&header, "shop", &new_tenant_key().unwrap(), &payload.tenants["shop"]), Err(ArchiveError::Tenant(_))));
        assert!(matches!(open_tenant(&header, "other", &tk, &payload.tenants["shop"]), Err(ArchiveError::Tenant(_))));
        // No plaintext of either section in the file.
        assert!(!String::from_utf8_lossy(&bytes).contains("\"web\"") && !String::from_utf8_lossy(&bytes).contains("pool"));
    }

    #[test]
    fn a_wrong_key_a_flipped_bit_anywhere_or_a_truncation_is_refused() {
        let source = KeySource::key_file(&B64.encode([7u8; 32])).unwrap();
        let (_, bytes) = archive(&source, &new_tenant_key().unwrap());
        let wrong = KeySource::key_file(&B64.encode([8u8; 32])).unwrap();
        assert!(matches!(read(&bytes, &wrong), Err(ArchiveError::Authentication)));
        for at in [MAGIC.len() + 10, bytes.len() / 2, bytes.len() - 1] {
            let mut bad = bytes.clone();
            bad[at] ^= 1;
            assert!(read(&bad, &source).is_err(), "bit flipped at {at}");
        }
        assert!(read(&bytes[..bytes.len() - 5], &source).is_err());
        assert!(matches!(read(b"hello", &source), Err(ArchiveError::NotABackup)));
        assert!(matches!(read(&bytes, &KeySource::Passphrase(b"x".to_vec())), Err(ArchiveError::WrongKeyKind { .. })));
        assert!(matches!(KeySource::key_file("c2hvcnQ="), Err(ArchiveError::KeyFile)));
    }

    #[test]
    fn a_passphrase_goes_through_argon2id_with_the_archives_salt() {
        let source = KeySource::Passphrase(b"correct horse battery staple".to_vec());
        let mut header = new_header(&source).unwrap();
        assert!(matches!(header.kdf, Kdf::Argon2id { memory_kib: 65536, iterations: 3, .. }));
        // Small parameters keep the unit test fast; they are read from the header.
        if let Kdf::Argon2id { memory_kib, iterations, .. } = &mut header.kdf {
            (*memory_kib, *iterations) = (64, 1);
        }
        let bytes = write(&header, &source, &Payload::default()).unwrap();
        assert!(read(&bytes, &source).is_ok());
        assert!(matches!(read(&bytes, &KeySource::Passphrase(b"Correct horse battery staple".to_vec())), Err(ArchiveError::Authentication)));
    }
}
