//! Self-signed certificates (rcgen): the dev relay's and a pool's first certificate before
//! cert-manager or the user provides one.

#[derive(Debug, thiserror::Error)]
#[error("generating a self-signed certificate: {0}")]
pub struct CertificateError(#[from] rcgen::Error);

/// A self-signed certificate and key (PEM) for `names`.
pub fn self_signed(names: &[&str]) -> Result<(String, String), CertificateError> {
    let ck = rcgen::generate_simple_self_signed(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())?;
    Ok((ck.cert.pem(), ck.signing_key.serialize_pem()))
}
