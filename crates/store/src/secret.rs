//! Secrets (owner tokens, tickets, resume tokens) and their hashes.
//!
//! A secret is shown to its holder once and never kept: the store keeps only its SHA-256.

use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// Length of a new secret: 43 nanoid characters, about 258 bits.
const TOKEN_LEN: usize = 43;

/// A fresh random secret.
pub fn new_token() -> String {
    nanoid::nanoid!(TOKEN_LEN)
}

/// A fresh random room or member id (21 characters, about 126 bits).
pub fn new_id() -> String {
    const LEN: usize = protocol::limits::ROOM_ID_LEN;
    nanoid::nanoid!(LEN)
}

/// The SHA-256 of a secret: what the store keeps and looks secrets up by.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct TokenHash([u8; 32]);

impl TokenHash {
    pub fn of(secret: &str) -> TokenHash {
        TokenHash(Sha256::digest(secret.as_bytes()).into())
    }

    /// A hash no secret has (no known input hashes to zeros): the owner token of a room
    /// between a handover and the new owner's own token.
    pub fn none() -> TokenHash {
        TokenHash([0; 32])
    }

    /// Compares in constant time.
    pub fn matches(&self, other: &TokenHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }

    pub fn to_hex(self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// Reads what [`TokenHash::to_hex`] wrote.
    pub fn from_hex(hex: &str) -> Option<TokenHash> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (i, byte) in bytes.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
        }
        Some(TokenHash(bytes))
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenHash(..)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_long_random_and_hashed() {
        let a = new_token();
        let b = new_token();
        assert_eq!(a.len(), TOKEN_LEN);
        assert_ne!(a, b);
        assert!(TokenHash::of(&a).matches(&TokenHash::of(&a)));
        assert!(!TokenHash::of(&a).matches(&TokenHash::of(&b)));
        let hash = TokenHash::of("abc");
        assert_eq!(hash.to_hex().len(), 64);
        assert_eq!(TokenHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(TokenHash::from_hex("zz"), None);
        assert_eq!(format!("{:?}", TokenHash::of(&a)), "TokenHash(..)");
        assert_eq!(new_id().len(), 21);
    }
}
