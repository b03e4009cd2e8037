//! Each pool's admin authority: a private CA (Secret `<pool>-admin-ca`, its key sealed under
//! the master key and bound to the pool, never mounted by a relay) that issues the relays'
//! admin certificate and, for every reconcile, a short-lived client certificate for the
//! operator. The relays' admin listener asks for a certificate of this authority on every
//! endpoint but `/metrics`, and `/handover` only from the relay certificate (it carries
//! [`relay_name`]), so one pool's relays and whoever holds a certificate of another pool cannot
//! reach it. Pure: [`desired`] computes the Secret, [`operator_client`] the operator's TLS.

use crate::error::ReconcileError;
use crate::secrets::SecretData;
use cascade_core::certificate::{Authority, Usage};
use cascade_core::http_client::Tls;
use cascade_core::seal::KeyRing;

pub fn secret_name(pool: &str) -> String {
    format!("{pool}-admin-ca")
}

/// The name in the pool's relay certificate, under which relays and the operator verify relays.
pub fn relay_name(ns: &str, pool: &str) -> String {
    format!("{pool}.{ns}.relays.cascade.internal")
}

/// The bundle files the relays read (`adminTls` in `relay.yaml`).
pub const CERT_FILE: &str = "admin.crt";
pub const KEY_FILE: &str = "admin.key";
pub const CA_FILE: &str = "admin-ca.crt";

const CA_CERT: &str = "ca.crt";
const CA_KEY: &str = "ca.key.sealed";
/// `<notBefore> <notAfter>` of the CA (unix seconds): with the key, the authority.
const CA_VALIDITY: &str = "ca.validity";
const RELAY_CERT: &str = "relay.crt";
const RELAY_KEY: &str = "relay.key.sealed";
const RELAY_NOT_AFTER: &str = "relay.notAfter";

const DAY: u64 = 86_400;
const CA_LIFETIME: u64 = 10 * 365 * DAY;
const RELAY_LIFETIME: u64 = 365 * DAY;
/// A relay certificate is renewed this long before it expires (the relays reload it).
const RENEW_BEFORE: u64 = 30 * DAY;
/// The operator's client certificate: issued for each reconcile, never stored.
const CLIENT_LIFETIME: u64 = 3600;

fn context(ns: &str, pool: &str, what: &str) -> String {
    format!("admin-ca/{ns}/{pool}/{what}")
}

fn text(data: &SecretData, entry: &str) -> Option<String> {
    data.get(entry).and_then(|b| String::from_utf8(b.clone()).ok())
}

fn open(master: &KeyRing, data: &SecretData, ns: &str, pool: &str, entry: &str) -> Option<String> {
    let sealed = data.get(entry)?;
    cascade_core::seal::open_blob(master, &context(ns, pool, entry), sealed).ok().and_then(|k| String::from_utf8(k).ok())
}

fn authority(master: &KeyRing, data: &SecretData, ns: &str, pool: &str) -> Option<Authority> {
    let validity = text(data, CA_VALIDITY)?;
    let (from, to) = validity.split_once(' ')?;
    let key = open(master, data, ns, pool, CA_KEY)?;
    Authority::load(&ca_name(ns, pool), from.parse().ok()?, to.parse().ok()?, &key).ok()
}

fn ca_name(ns: &str, pool: &str) -> String {
    format!("Cascade admin authority {ns}/{pool}")
}

fn seal(master: &KeyRing, ns: &str, pool: &str, entry: &str, pem: &str) -> Result<Vec<u8>, ReconcileError> {
    cascade_core::seal::seal_blob(master, &context(ns, pool, entry), pem.as_bytes()).map_err(|source| ReconcileError::Seal { what: format!("Secret {} {entry}", secret_name(pool)), source })
}

/// The authority's Secret as it must be: kept when it holds a usable authority and a relay
/// certificate that is not due for renewal; a CA created when missing or unreadable; the relay
/// certificate issued when missing or due. Returns the data and whether it must be written.
pub fn desired(current: Option<&SecretData>, master: &KeyRing, ns: &str, pool: &str, now: u64) -> Result<(SecretData, bool), ReconcileError> {
    let mut data = current.cloned().unwrap_or_default();
    let mut write = false;
    let ca = match authority(master, &data, ns, pool) {
        Some(ca) => ca,
        None => {
            let (ca, cert, key) = Authority::generate(&ca_name(ns, pool), now, CA_LIFETIME)?;
            data = SecretData::new();
            data.insert(CA_CERT.into(), cert.into_bytes());
            data.insert(CA_KEY.into(), seal(master, ns, pool, CA_KEY, &key)?);
            data.insert(CA_VALIDITY.into(), format!("{} {}", now.saturating_sub(300), now.saturating_add(CA_LIFETIME)).into_bytes());
            write = true;
            ca
        }
    };
    let due = text(&data, RELAY_NOT_AFTER).and_then(|t| t.parse::<u64>().ok()).is_none_or(|end| end < now.saturating_add(RENEW_BEFORE));
    if due || open(master, &data, ns, pool, RELAY_KEY).is_none() || !data.contains_key(RELAY_CERT) {
        let (cert, key) = ca.issue(&[&relay_name(ns, pool)], Usage::ServerAndClient, now, RELAY_LIFETIME)?;
        data.insert(RELAY_CERT.into(), cert.into_bytes());
        data.insert(RELAY_KEY.into(), seal(master, ns, pool, RELAY_KEY, &key)?);
        data.insert(RELAY_NOT_AFTER.into(), now.saturating_add(RELAY_LIFETIME).to_string().into_bytes());
        write = true;
    }
    Ok((data, write))
}

/// The relays' files for the bundle: their certificate and key, and the CA certificate.
pub fn relay_files(data: &SecretData, master: &KeyRing, ns: &str, pool: &str) -> SecretData {
    let mut files = SecretData::new();
    if let (Some(cert), Some(key), Some(ca)) = (data.get(RELAY_CERT), open(master, data, ns, pool, RELAY_KEY), data.get(CA_CERT)) {
        files.insert(CERT_FILE.into(), cert.clone());
        files.insert(KEY_FILE.into(), key.into_bytes());
        files.insert(CA_FILE.into(), ca.clone());
    }
    files
}

/// The operator's mutual TLS to the pool's relays: a client certificate issued now for an hour,
/// relays verified under [`relay_name`]. `None` until the authority exists.
pub fn operator_client(data: &SecretData, master: &KeyRing, ns: &str, pool: &str, now: u64) -> Option<Tls> {
    let ca = authority(master, data, ns, pool)?;
    let (cert, key) = ca.issue(&["operator.cascade.internal"], Usage::Client, now, CLIENT_LIFETIME).ok()?;
    Tls::mutual(data.get(CA_CERT)?, cert.as_bytes(), key.as_bytes(), &relay_name(ns, pool)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> KeyRing {
        KeyRing::parse(&KeyRing::generate_line("m1").unwrap()).unwrap()
    }

    #[test]
    fn the_authority_is_created_once_and_the_relay_certificate_renewed_when_due() {
        let (m, now) = (master(), 1_800_000_000);
        let (first, write) = desired(None, &m, "mail", "main", now).unwrap();
        assert!(write);
        assert!(!String::from_utf8_lossy(&first[CA_KEY]).contains("PRIVATE KEY"), "the CA key is sealed");
        let (same, write) = desired(Some(&first), &m, "mail", "main", now + DAY).unwrap();
        assert!(!write);
        assert_eq!(same, first);
        let (renewed, write) = desired(Some(&first), &m, "mail", "main", now + RELAY_LIFETIME - RENEW_BEFORE + DAY).unwrap();
        assert!(write);
        assert_eq!(renewed[CA_CERT], first[CA_CERT], "the authority stays");
        assert_ne!(renewed[RELAY_CERT], first[RELAY_CERT]);
        // Moved to another pool, the sealed keys do not open: a new authority.
        let (other, _) = desired(Some(&first), &m, "mail", "other", now).unwrap();
        assert_ne!(other[CA_CERT], first[CA_CERT]);
    }

    #[test]
    fn relay_files_hold_the_opened_key_and_the_operator_gets_a_client() {
        let (m, now) = (master(), 1_800_000_000);
        let (data, _) = desired(None, &m, "mail", "main", now).unwrap();
        let files = relay_files(&data, &m, "mail", "main");
        assert!(String::from_utf8_lossy(&files[KEY_FILE]).contains("PRIVATE KEY"));
        assert_eq!(files[CA_FILE], data[CA_CERT]);
        assert!(operator_client(&data, &m, "mail", "main", now).is_some());
        assert!(operator_client(&data, &master(), "mail", "main", now).is_none(), "another master key opens nothing");
    }
}
