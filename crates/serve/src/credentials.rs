//! Node credentials for the aggregator: a secret of 256 random bits per node, shown once when
//! the node is added and kept only as its SHA-256.
//!
//! Invariants:
//! - The secret is hex, so it goes unchanged into a URL's user info (`set mmonit
//!   https://db1:SECRET@aggregator/collector`) and a token file.
//! - Verification compares digests in constant time; the secret is never logged, stored or
//!   echoed, and a wrong one is indistinguishable from an unknown node.

use ring::rand::SecureRandom;

use crate::ServeError;

/// A new secret: 32 bytes from the system's CSPRNG, as 64 hex digits.
pub fn new_secret() -> Result<String, ServeError> {
    let mut bytes = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ServeError::Random)?;
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

/// The least strength a secret from a file must have, in bits (see [`strength_bits`]).
pub const MIN_SECRET_BITS: f64 = 128.0;

/// A simple estimate of a secret's strength: its length times log2 of the smaller of its
/// alphabet (hex 16, digits 10, lowercase and digits 36, letters and digits 62, with
/// `-_.~` 66) and the number of distinct characters it uses. A secret of 32 `a`s is 0 bits;
/// `openssl rand -hex 32` is about 256.
pub fn strength_bits(secret: &str) -> f64 {
    let has = |f: fn(char) -> bool| secret.chars().any(f);
    let hex = secret.chars().all(|c| c.is_ascii_hexdigit())
        && !(has(|c| c.is_ascii_lowercase()) && has(|c| c.is_ascii_uppercase()));
    let alphabet = if secret.chars().all(|c| c.is_ascii_digit()) {
        10
    } else if hex {
        16
    } else {
        let mut n = 10;
        if has(|c| c.is_ascii_lowercase()) {
            n += 26;
        }
        if has(|c| c.is_ascii_uppercase()) {
            n += 26;
        }
        if has(|c| !c.is_ascii_alphanumeric()) {
            n += 4;
        }
        n
    };
    let mut distinct: Vec<char> = secret.chars().collect();
    distinct.sort_unstable();
    distinct.dedup();
    let per_char = (alphabet.min(distinct.len()) as f64).log2().max(0.0);
    secret.chars().count() as f64 * per_char
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_is_length_by_the_alphabet_actually_used() {
        assert_eq!(strength_bits(&"a".repeat(32)), 0.0);
        assert!(strength_bits(&"ab".repeat(32)) < MIN_SECRET_BITS);
        let generated = new_secret().unwrap();
        assert!(strength_bits(&generated) > 200.0, "{generated}");
        // 43 characters of base64url (openssl rand -base64 32, made URL-safe).
        assert!(strength_bits("q8Zr-3kT_x0Vb7LmN2pWc9YdE4sHf6Ju1oRiAgKzXtB") > MIN_SECRET_BITS);
        // Digits only: 40 of them are 132 bits at best.
        assert!(strength_bits("3141592653589793238462643383279502884197") > MIN_SECRET_BITS);
        assert!(strength_bits("31415926535897932384") < MIN_SECRET_BITS);
    }

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
