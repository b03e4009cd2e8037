//! DKIM key material (RFC 6376, RFC 8463): new RSA-2048 and Ed25519 keys from aws-lc-rs, the
//! public key of a stored private key, and the TXT record to publish. The relay signs with it;
//! the operator generates, seals and publishes it.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use cascade_crds::relay_config::DkimAlgorithm;
use rustls_pki_types::{pem::PemObject, PrivateKeyDer};

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("generating a DKIM key failed")]
    Generate,
    #[error("DKIM key is not a PEM private key: {0}")]
    Pem(String),
    #[error("DKIM key is not a valid {0} key: {1}")]
    Load(&'static str, String),
}

/// A new private key as PKCS#8 PEM, and the `p=` value (base64 SubjectPublicKeyInfo for RSA, raw
/// public key for Ed25519, RFC 8463).
pub fn generate(algorithm: DkimAlgorithm) -> Result<(String, String), KeyError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (pkcs8, public) = match algorithm {
        DkimAlgorithm::RsaSha256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| KeyError::Generate)?;
            let der: Pkcs8V1Der = pair.as_der().map_err(|_| KeyError::Generate)?;
            let spki: PublicKeyX509Der = pair.public_key().as_der().map_err(|_| KeyError::Generate)?;
            (der.as_ref().to_vec(), b64.encode(spki.as_ref()))
        }
        DkimAlgorithm::Ed25519Sha256 => {
            let pair = Ed25519KeyPair::generate().map_err(|_| KeyError::Generate)?;
            let der = pair.to_pkcs8v1().map_err(|_| KeyError::Generate)?;
            (der.as_ref().to_vec(), b64.encode(pair.public_key().as_ref()))
        }
    };
    Ok((pem_encode("PRIVATE KEY", &pkcs8), public))
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.as_bytes().chunks(64) {
        out.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// The public key (`p=` value) of a PKCS#8 PEM private key.
pub fn public_key_of(algorithm: DkimAlgorithm, pem: &[u8]) -> Result<String, KeyError> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| KeyError::Pem(e.to_string()))?;
    let PrivateKeyDer::Pkcs8(k) = der else { return Err(KeyError::Pem("expected a PKCS#8 key".into())) };
    let b64 = base64::engine::general_purpose::STANDARD;
    match algorithm {
        DkimAlgorithm::RsaSha256 => {
            let pair = RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).map_err(|e| KeyError::Load("rsa-sha256", e.to_string()))?;
            let spki: PublicKeyX509Der = pair.public_key().as_der().map_err(|_| KeyError::Generate)?;
            Ok(b64.encode(spki.as_ref()))
        }
        DkimAlgorithm::Ed25519Sha256 => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(k.secret_pkcs8_der()).map_err(|e| KeyError::Load("ed25519-sha256", e.to_string()))?;
            Ok(b64.encode(pair.public_key().as_ref()))
        }
    }
}

/// One zone-file line `NAME 300 IN TXT "..." "..."`, the value split into 255-byte strings.
pub fn txt_zone_line(name: &str, value: &str) -> String {
    let chunks: Vec<String> = value.as_bytes().chunks(255).map(|c| format!("\"{}\"", String::from_utf8_lossy(c))).collect();
    format!("{name} 300 IN TXT {}\n", chunks.join(" "))
}

/// The TXT record value to publish at `<selector>._domainkey.<domain>`.
pub fn txt_record(algorithm: DkimAlgorithm, public_b64: &str) -> String {
    let k = match algorithm {
        DkimAlgorithm::RsaSha256 => "rsa",
        DkimAlgorithm::Ed25519Sha256 => "ed25519",
    };
    format!("v=DKIM1; k={k}; p={public_b64}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_is_derived_from_the_private_key() {
        for alg in [DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256] {
            let (pem, public) = generate(alg).unwrap();
            assert_eq!(public_key_of(alg, pem.as_bytes()).unwrap(), public);
        }
    }
}
