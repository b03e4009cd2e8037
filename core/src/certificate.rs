//! Certificates (rcgen): self-signed ones for the dev relay and a pool's first SMTP certificate
//! before cert-manager or the user provides one, and each pool's private [`Authority`] for the
//! admin channel (mutual TLS between the operator and the relays and between relays).

use rcgen::{BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose};

#[derive(Debug, thiserror::Error)]
#[error("generating a certificate: {0}")]
pub struct CertificateError(#[from] rcgen::Error);

/// A self-signed certificate and key (PEM) for `names`.
pub fn self_signed(names: &[&str]) -> Result<(String, String), CertificateError> {
    let ck = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem()))
}

/// What an issued certificate may be used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Usage {
    /// A relay: its admin listener's server certificate and its client certificate to peers.
    ServerAndClient,
    /// The operator (or a dev tool): a client only.
    Client,
}

/// A private certificate authority (ECDSA P-256). Its certificate is derived from its name and
/// key alone, so an authority loaded from its key issues certificates that chain to the CA
/// certificate it was first created with.
pub struct Authority {
    params: CertificateParams,
    key: KeyPair,
}

fn at(unix: u64) -> time::OffsetDateTime {
    time::OffsetDateTime::from_unix_timestamp(i64::try_from(unix).unwrap_or(i64::MAX)).unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

impl Authority {
    fn params(name: &str, not_before: u64, not_after: u64) -> Result<CertificateParams, CertificateError> {
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        (params.not_before, params.not_after) = (at(not_before), at(not_after));
        Ok(params)
    }

    /// A new authority valid from `now` for `valid_secs`: (authority, CA certificate PEM, key PEM).
    pub fn generate(name: &str, now: u64, valid_secs: u64) -> Result<(Self, String, String), CertificateError> {
        let key = KeyPair::generate()?;
        let params = Self::params(name, now.saturating_sub(300), now.saturating_add(valid_secs))?;
        let cert = params.self_signed(&key)?.pem();
        let key_pem = key.serialize_pem();
        Ok((Self { params, key }, cert, key_pem))
    }

    /// The authority from its name, validity and key (PEM), as [`Authority::generate`] made it.
    pub fn load(name: &str, not_before: u64, not_after: u64, key_pem: &str) -> Result<Self, CertificateError> {
        Ok(Self { params: Self::params(name, not_before, not_after)?, key: KeyPair::from_pem(key_pem)? })
    }

    /// A certificate for `names` (DNS names or IP addresses), valid from a little before `now`
    /// for `valid_secs`: (certificate PEM, key PEM).
    pub fn issue(&self, names: &[&str], usage: Usage, now: u64, valid_secs: u64) -> Result<(String, String), CertificateError> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or("cascade"));
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match usage {
            Usage::ServerAndClient => vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth],
            Usage::Client => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.use_authority_key_identifier_extension = true;
        (params.not_before, params.not_after) = (at(now.saturating_sub(300)), at(now.saturating_add(valid_secs)));
        let issuer = rcgen::Issuer::from_params(&self.params, &self.key);
        Ok((params.signed_by(&key, &issuer)?.pem(), key.serialize_pem()))
    }
}

/// A complete admin authority for a relay run outside a cluster (`dev`, `render`), as the
/// operator makes one per pool: PEM of the CA and its key, the relay's certificate (server and
/// client) and key, and a client certificate and key for the platform's tools.
pub struct AdminFiles {
    pub ca_cert: String,
    pub ca_key: String,
    pub relay_cert: String,
    pub relay_key: String,
    pub client_cert: String,
    pub client_key: String,
}

const YEAR: u64 = 365 * 86_400;

/// A new authority named `name` (ten years) with a relay certificate for `relay_names` and a
/// client certificate for `operator.cascade.internal` (a year each).
pub fn admin_files(name: &str, relay_names: &[&str], now: u64) -> Result<AdminFiles, CertificateError> {
    let (ca, ca_cert, ca_key) = Authority::generate(name, now, 10 * YEAR)?;
    let (relay_cert, relay_key) = ca.issue(relay_names, Usage::ServerAndClient, now, YEAR)?;
    let (client_cert, client_key) = ca.issue(&["operator.cascade.internal"], Usage::Client, now, YEAR)?;
    Ok(AdminFiles { ca_cert, ca_key, relay_cert, relay_key, client_cert, client_key })
}
