//! Node credentials for the aggregator: a secret of 256 random bits per node, shown once when
//! the node is added and kept only as its SHA-256.
//!
//! Invariants:
//! - The secret is hex, so it goes unchanged into a URL's user info (`set mmonit
//!   https://db1:SECRET@aggregator/collector`) and a token file.
//! - Verification compares digests in constant time; the secret is never logged, stored or
//!   echoed, and a wrong one is indistinguishable from an unknown node.

use ring::rand::SecureRandom;

use crate::AppError;

/// A new secret: 32 bytes from the system's CSPRNG, as 64 hex digits.
pub fn new_secret() -> Result<String, AppError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| AppError::Usage("the system's random number generator failed".into()))?;
    Ok(hex(&bytes))
}

/// What is stored for a secret.
pub fn digest(secret: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, secret.as_bytes()).as_ref())
}

/// Does `secret` match the stored digest? Constant time in the digests' contents.
pub fn verify(secret: &str, stored: &str) -> bool {
    let given = digest(secret);
    given.len() == stored.len()
        && given
            .bytes()
            .zip(stored.bytes())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_verifies_against_its_digest_only() {
        let s = new_secret().unwrap();
        assert_eq!(s.len(), 64);
        assert!(s.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(s, new_secret().unwrap());
        let d = digest(&s);
        assert!(verify(&s, &d));
        assert!(!verify(&new_secret().unwrap(), &d));
        assert!(!verify(&s, &d[..10]));
        assert_eq!(
            digest("abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }
}
