//! Standard Webhooks 1.0 signatures: `webhook-signature: v1,<base64 HMAC-SHA256 of
//! "{webhook-id}.{webhook-timestamp}.{body}">`, one per secret, space-separated (several while a
//! secret rotates). Secrets are `whsec_<base64>`. Written here because it is one HMAC over a
//! fixed string; the test checks the specification's own example.

use base64::Engine;

/// A new secret: `whsec_` and 24 random bytes in base64.
pub fn new_secret() -> String {
    cascade_core::secret::new_webhook_secret().expect("the system's random source")
}

/// The `webhook-signature` value for `body` sent as `id` at `timestamp` (Unix seconds).
pub fn signature(secrets: &[Vec<u8>], id: &str, timestamp: u64, body: &[u8]) -> String {
    use aws_lc_rs::hmac;
    let mut content = format!("{id}.{timestamp}.").into_bytes();
    content.extend_from_slice(body);
    let signed: Vec<String> = secrets
        .iter()
        .map(|s| {
            let tag = hmac::sign(&hmac::Key::new(hmac::HMAC_SHA256, s), &content);
            format!("v1,{}", base64::engine::general_purpose::STANDARD.encode(tag.as_ref()))
        })
        .collect();
    signed.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::webhooks::parse_secret;

    #[test]
    fn the_specifications_example_signs_alike() {
        let secret = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let sig = signature(std::slice::from_ref(&secret), "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert_eq!(sig, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        let two = signature(&[secret, b"another-secret-of-24-byte".to_vec()], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, br#"{"test": 2432232314}"#);
        assert!(two.starts_with("v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE= v1,") && two.split(' ').count() == 2);
        assert!(parse_secret(&new_secret()).is_some_and(|k| k.len() == 24));
    }
}
