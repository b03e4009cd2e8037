//! DKIM signing (RFC 6376, RFC 8463) with mail-auth: relaxed/relaxed, the usual header set, and
//! `From` listed twice so no second `From:` can be added after signing (oversigning). Also key
//! generation and the DNS TXT value to publish, for `cascade-relay dev`.

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der, PublicKeyX509Der};
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{Ed25519KeyPair, KeyPair};
use base64::Engine;
use cascade_crds::relay_config::DkimAlgorithm;
use mail_auth::crypto::{Ed25519Key, RsaKey, Sha256};
use mail_auth::dkim::DkimSigner;
use mail_auth::headers::HeaderWriter;
use mail_auth::signer::Ready;
use rustls_pki_types::{pem::PemObject, PrivateKeyDer};

/// The headers signed; `From` twice oversigns it.
const SIGNED_HEADERS: &[&str] = &[
    "From",
    "From",
    "To",
    "Cc",
    "Subject",
    "Date",
    "Message-ID",
    "Reply-To",
    "In-Reply-To",
    "References",
    "MIME-Version",
    "Content-Type",
    "Content-Transfer-Encoding",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
];

pub enum Signer {
    Rsa(DkimSigner<RsaKey<Sha256>, Ready>),
    Ed25519(DkimSigner<Ed25519Key, Ready>),
}

#[derive(Debug, thiserror::Error)]
pub enum DkimError {
    #[error("not a PEM private key: {0}")]
    Pem(String),
    #[error("RSA key is shorter than 2048 bits; at least 2048 are required")]
    WeakRsa,
    #[error("key does not match algorithm {0}: {1}")]
    Load(&'static str, String),
    #[error("signing failed: {0}")]
    Sign(String),
    #[error("key generation failed")]
    Generate,
}

impl Signer {
    pub fn from_pem(domain: &str, selector: &str, algorithm: DkimAlgorithm, pem: &[u8]) -> Result<Self, DkimError> {
        let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| DkimError::Pem(e.to_string()))?;
        match algorithm {
            DkimAlgorithm::RsaSha256 => {
                let pair = match &der {
                    PrivateKeyDer::Pkcs8(k) => RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()),
                    PrivateKeyDer::Pkcs1(k) => RsaKeyPair::from_der(k.secret_pkcs1_der()),
                    _ => return Err(DkimError::Load("rsa-sha256", "not an RSA key".into())),
                }
                .map_err(|e| if e.to_string().contains("TooSmall") { DkimError::WeakRsa } else { DkimError::Load("rsa-sha256", e.to_string()) })?;
                if pair.public_modulus_len() * 8 < 2048 {
                    return Err(DkimError::WeakRsa);
                }
                let key = RsaKey::<Sha256>::from_key_der(der).map_err(|e| DkimError::Load("rsa-sha256", e.to_string()))?;
                Ok(Self::Rsa(DkimSigner::from_key(key).domain(domain).selector(selector).headers(SIGNED_HEADERS.iter().copied())))
            }
            DkimAlgorithm::Ed25519Sha256 => {
                let PrivateKeyDer::Pkcs8(k) = &der else {
                    return Err(DkimError::Load("ed25519-sha256", "Ed25519 keys must be PKCS#8".into()));
                };
                let key = Ed25519Key::from_pkcs8_maybe_unchecked_der(k.secret_pkcs8_der()).map_err(|e| DkimError::Load("ed25519-sha256", e.to_string()))?;
                Ok(Self::Ed25519(DkimSigner::from_key(key).domain(domain).selector(selector).headers(SIGNED_HEADERS.iter().copied())))
            }
        }
    }

    /// The `DKIM-Signature:` header field (with CRLF) for `message`.
    pub fn sign(&self, message: &[&[u8]]) -> Result<String, DkimError> {
        let chunks = message.iter().copied();
        let sig = match self {
            Self::Rsa(s) => s.sign_chained(chunks),
            Self::Ed25519(s) => s.sign_chained(chunks),
        };
        sig.map(|s| s.to_header()).map_err(|e| DkimError::Sign(e.to_string()))
    }
}

/// A new private key as PKCS#8 PEM, and the `p=` value (base64 SubjectPublicKeyInfo for RSA, raw
/// public key for Ed25519, RFC 8463).
pub fn generate(algorithm: DkimAlgorithm) -> Result<(String, String), DkimError> {
    let b64 = base64::engine::general_purpose::STANDARD;
    let (pkcs8, public) = match algorithm {
        DkimAlgorithm::RsaSha256 => {
            let pair = RsaKeyPair::generate(KeySize::Rsa2048).map_err(|_| DkimError::Generate)?;
            let der: Pkcs8V1Der = pair.as_der().map_err(|_| DkimError::Generate)?;
            let spki: PublicKeyX509Der = pair.public_key().as_der().map_err(|_| DkimError::Generate)?;
            (der.as_ref().to_vec(), b64.encode(spki.as_ref()))
        }
        DkimAlgorithm::Ed25519Sha256 => {
            let pair = Ed25519KeyPair::generate().map_err(|_| DkimError::Generate)?;
            let der = pair.to_pkcs8v1().map_err(|_| DkimError::Generate)?;
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
pub fn public_key_of(algorithm: DkimAlgorithm, pem: &[u8]) -> Result<String, DkimError> {
    let der = PrivateKeyDer::from_pem_slice(pem).map_err(|e| DkimError::Pem(e.to_string()))?;
    let PrivateKeyDer::Pkcs8(k) = der else { return Err(DkimError::Pem("expected a PKCS#8 key".into())) };
    let b64 = base64::engine::general_purpose::STANDARD;
    match algorithm {
        DkimAlgorithm::RsaSha256 => {
            let pair = RsaKeyPair::from_pkcs8(k.secret_pkcs8_der()).map_err(|e| DkimError::Load("rsa-sha256", e.to_string()))?;
            let spki: PublicKeyX509Der = pair.public_key().as_der().map_err(|_| DkimError::Generate)?;
            Ok(b64.encode(spki.as_ref()))
        }
        DkimAlgorithm::Ed25519Sha256 => {
            let pair = Ed25519KeyPair::from_pkcs8_maybe_unchecked(k.secret_pkcs8_der()).map_err(|e| DkimError::Load("ed25519-sha256", e.to_string()))?;
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
    fn signs_with_generated_keys_and_oversigns_from() {
        for alg in [DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256] {
            let (pem, public) = generate(alg).unwrap();
            assert!(!public.is_empty());
            let signer = Signer::from_pem("example.test", "s1", alg, pem.as_bytes()).unwrap();
            let header = signer.sign(&[b"From: a@example.test\r\nSubject: hi\r\n\r\nbody\r\n"]).unwrap();
            assert!(header.starts_with("DKIM-Signature:"), "{header}");
            assert!(header.contains("d=example.test") && header.contains("s=s1"), "{header}");
            let h = header.split("h=").nth(1).unwrap().to_ascii_lowercase();
            let h = h.split(';').next().unwrap().replace(['\r', '\n', '\t', ' '], "");
            assert_eq!(h.split(':').filter(|n| *n == "from").count(), 2, "{header}");
        }
    }

    #[test]
    fn public_key_is_derived_from_the_private_key() {
        for alg in [DkimAlgorithm::RsaSha256, DkimAlgorithm::Ed25519Sha256] {
            let (pem, public) = generate(alg).unwrap();
            assert_eq!(public_key_of(alg, pem.as_bytes()).unwrap(), public);
        }
    }

    #[test]
    fn refuses_wrong_algorithm_and_garbage() {
        let (pem, _) = generate(DkimAlgorithm::Ed25519Sha256).unwrap();
        assert!(Signer::from_pem("x.test", "s", DkimAlgorithm::RsaSha256, pem.as_bytes()).is_err());
        assert!(matches!(Signer::from_pem("x.test", "s", DkimAlgorithm::RsaSha256, b"nope"), Err(DkimError::Pem(_))));
    }
}
