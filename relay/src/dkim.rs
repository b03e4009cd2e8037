//! DKIM signing (RFC 6376, RFC 8463) with mail-auth: relaxed/relaxed, the usual header set, and
//! `From` listed twice so no second `From:` can be added after signing (oversigning). Key material
//! (generation, the DNS record) is `cascade_core::dkim_key`.

use aws_lc_rs::rsa::KeyPair as RsaKeyPair;
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

#[cfg(test)]
mod tests {
    use super::*;
    use cascade_core::dkim_key::generate;

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
    fn refuses_wrong_algorithm_and_garbage() {
        let (pem, _) = generate(DkimAlgorithm::Ed25519Sha256).unwrap();
        assert!(Signer::from_pem("x.test", "s", DkimAlgorithm::RsaSha256, pem.as_bytes()).is_err());
        assert!(matches!(Signer::from_pem("x.test", "s", DkimAlgorithm::RsaSha256, b"nope"), Err(DkimError::Pem(_))));
    }
}
