//! The encryption of Ephemera's encrypted rooms, as a client does it (API.md, "Encrypted
//! rooms"). The server never holds a key and never calls this: it relays and keeps ciphertext.
//!
//! - The room key: 256 random bits, carried only in the fragment of the room link
//!   (`/r/<room_id>#k=<base64url key>`).
//! - A message: AES-256-GCM under the room key with a fresh random 96-bit IV, sent as unpadded
//!   base64url of IV ‖ ciphertext ‖ tag, with additional data `ephemera/1|<room_id>|<member_id>`
//!   ([`message_aad`]), so a message moved to another room or another author does not open.
//! - The room name: the same, with additional data [`NAME_AAD`].
//! - The key check: HMAC-SHA-256 over `ephemera/1` under a key HKDF-SHA-256 derives from the
//!   room key (no salt, info `ephemera key check`), so a client tells a wrong key from a broken
//!   message before it joins.
//!
//! The primitives are RustCrypto's (`aes-gcm`, `hkdf`, `hmac`, `sha2`); the page does the same
//! with WebCrypto (web/seal.js), and both suites check the same vectors.

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;

/// Additional data of an encrypted room name (the room id does not exist yet when the creating
/// client encrypts it).
pub const NAME_AAD: &str = "ephemera/1|name";

/// What the key check signs, and the HKDF info its key is derived with.
const CHECKED: &[u8] = b"ephemera/1";
const CHECK_INFO: &[u8] = b"ephemera key check";

const IV_BYTES: usize = 12;
const TAG_BYTES: usize = 16;

/// The additional data of a message by `member_id` in `room_id`.
pub fn message_aad(room_id: &str, member_id: &str) -> String {
    format!("ephemera/1|{room_id}|{member_id}")
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    #[error("not a room key: 43 characters of unpadded base64url (256 bits)")]
    BadKey,
    #[error("the link has no key: it must end in #k=<key>")]
    NoKey,
    #[error("not a room link: /r/<room_id>#k=<key>")]
    BadLink,
    /// Not ciphertext, or ciphertext this key, room and author do not open.
    #[error("could not be decrypted")]
    Undecryptable,
}

/// A room's key. Its `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct RoomKey([u8; 32]);

impl std::fmt::Debug for RoomKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RoomKey(..)")
    }
}

impl RoomKey {
    /// A new random key, from the operating system's generator.
    pub fn generate() -> RoomKey {
        let mut key = [0; 32];
        rand::rngs::OsRng.fill_bytes(&mut key);
        RoomKey(key)
    }

    pub fn from_bytes(key: [u8; 32]) -> RoomKey {
        RoomKey(key)
    }

    /// The key as the link's fragment spells it: unpadded base64url.
    pub fn from_base64url(text: &str) -> Result<RoomKey, Error> {
        let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|_| Error::BadKey)?;
        bytes.try_into().map(RoomKey).map_err(|_| Error::BadKey)
    }

    pub fn to_base64url(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.0)
    }

    /// The room id and the key of a room link (`…/r/<room_id>#k=<key>`).
    pub fn from_link(link: &str) -> Result<(String, RoomKey), Error> {
        let (page, fragment) = link.split_once('#').unwrap_or((link, ""));
        let room_id = page
            .trim_end_matches('/')
            .rsplit_once("/r/")
            .map(|(_, id)| id)
            .filter(|id| !id.is_empty() && !id.contains('/'))
            .ok_or(Error::BadLink)?;
        let key = fragment
            .split('&')
            .find_map(|part| part.strip_prefix("k="))
            .ok_or(Error::NoKey)?;
        Ok((room_id.to_owned(), RoomKey::from_base64url(key)?))
    }

    /// The room's link with its key in the fragment.
    pub fn link(&self, join_url: &str) -> String {
        format!("{join_url}#k={}", self.to_base64url())
    }

    /// The key check the server keeps and shows (`key_check`).
    pub fn key_check(&self) -> String {
        let hkdf = hkdf::Hkdf::<Sha256>::new(None, &self.0);
        let mut check_key = [0; 32];
        // 32 bytes is far below HKDF-SHA-256's most (255 * 32).
        if hkdf.expand(CHECK_INFO, &mut check_key).is_err() {
            unreachable!("HKDF-SHA-256 gives 32 bytes");
        }
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&check_key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(CHECKED);
        URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
    }

    /// Whether `key_check` is this key's: compared in constant time.
    pub fn checks(&self, key_check: &str) -> bool {
        use subtle::ConstantTimeEq;
        self.key_check()
            .as_bytes()
            .ct_eq(key_check.as_bytes())
            .into()
    }

    /// `text` encrypted with a fresh random IV, as `ciphertext` carries it.
    pub fn seal(&self, text: &str, aad: &str) -> String {
        let mut iv = [0; IV_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut iv);
        self.seal_with_iv(text, aad, iv)
    }

    /// `text` encrypted with the IV given: only for test vectors, since an IV used twice under
    /// one key gives GCM's secrecy and integrity away.
    pub fn seal_with_iv(&self, text: &str, aad: &str, iv: [u8; IV_BYTES]) -> String {
        let payload = Payload {
            msg: text.as_bytes(),
            aad: aad.as_bytes(),
        };
        let sealed = self
            .cipher()
            .encrypt(Nonce::from_slice(&iv), payload)
            .unwrap_or_else(|_| unreachable!("AES-GCM encrypts any text under 64 GiB"));
        let mut out = Vec::with_capacity(IV_BYTES + sealed.len());
        out.extend_from_slice(&iv);
        out.extend_from_slice(&sealed);
        URL_SAFE_NO_PAD.encode(out)
    }

    /// The text of `ciphertext`, if this key opens it with this additional data.
    pub fn open(&self, ciphertext: &str, aad: &str) -> Result<String, Error> {
        let bytes = URL_SAFE_NO_PAD
            .decode(ciphertext)
            .map_err(|_| Error::Undecryptable)?;
        if bytes.len() < IV_BYTES + TAG_BYTES {
            return Err(Error::Undecryptable);
        }
        let (iv, sealed) = bytes.split_at(IV_BYTES);
        let payload = Payload {
            msg: sealed,
            aad: aad.as_bytes(),
        };
        let text = self
            .cipher()
            .decrypt(Nonce::from_slice(iv), payload)
            .map_err(|_| Error::Undecryptable)?;
        String::from_utf8(text).map_err(|_| Error::Undecryptable)
    }

    fn cipher(&self) -> Aes256Gcm {
        Aes256Gcm::new(&self.0.into())
    }
}

/// Fixed inputs and outputs, computed a third way (Python's `cryptography`) when they were
/// written, that the page's WebCrypto code must match too (tests/browser checks them in
/// Chromium).
pub mod vectors {
    /// Bytes 0, 1, …, 31.
    pub const KEY: [u8; 32] = {
        let mut key = [0; 32];
        let mut i = 0;
        while i < 32 {
            key[i] = i as u8;
            i += 1;
        }
        key
    };
    /// Bytes 0xa0, 0xa1, …, 0xab.
    pub const IV: [u8; 12] = [
        0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab,
    ];
    pub const ROOM_ID: &str = "V1StGXR8_Z5jdHi6B-myT";
    pub const MEMBER_ID: &str = "dUyB2QnL7kV0xWq9pR3sT";
    pub const TEXT: &str = "héllo, wörld 👋 <b>&</b>";
    pub const NAME: &str = "Standup ☕";
    /// [`KEY`] as the fragment spells it.
    pub const KEY_BASE64URL: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";
    /// [`KEY`]'s key check.
    pub const KEY_CHECK: &str = "CpLI6cLhJWisbghgyaeT8aeOogx6KWsw9SClXE6_hCg";
    /// [`TEXT`] by [`MEMBER_ID`] in [`ROOM_ID`], under [`KEY`] with [`IV`].
    pub const MESSAGE: &str =
        "oKGio6SlpqeoqaqrjtvVQSmkLp8VpjGhax7gLu890jCu1XxKoCFEuPr9m9vGey02L9y4vCmm1E0";
    /// [`NAME`] under [`KEY`] with [`IV`].
    pub const SEALED_NAME: &str = "oKGio6SlpqeoqaqrtWwdQyG-cp-A_RJrcjZ791OXLAjB4dqBVYNR";
}

#[cfg(test)]
mod tests {
    use super::vectors::*;
    use super::*;

    #[test]
    fn the_vectors_hold() {
        let key = RoomKey::from_bytes(KEY);
        assert_eq!(key.to_base64url(), KEY_BASE64URL);
        assert_eq!(key.key_check(), KEY_CHECK);
        let aad = message_aad(ROOM_ID, MEMBER_ID);
        assert_eq!(key.seal_with_iv(TEXT, &aad, IV), MESSAGE);
        assert_eq!(key.seal_with_iv(NAME, NAME_AAD, IV), SEALED_NAME);
        assert_eq!(key.open(MESSAGE, &aad).as_deref(), Ok(TEXT));
        assert_eq!(key.open(SEALED_NAME, NAME_AAD).as_deref(), Ok(NAME));
    }

    #[test]
    fn a_message_opens_only_with_its_key_room_and_author() {
        let key = RoomKey::generate();
        let aad = message_aad("room", "alice");
        let sealed = key.seal("hello", &aad);
        assert_eq!(key.open(&sealed, &aad).as_deref(), Ok("hello"));
        assert_ne!(key.seal("hello", &aad), sealed, "a fresh IV each time");
        for (key, aad) in [
            (RoomKey::generate(), aad.clone()),
            (key.clone(), message_aad("room", "mallory")),
            (key.clone(), message_aad("other", "alice")),
            (key.clone(), NAME_AAD.to_owned()),
        ] {
            assert_eq!(key.open(&sealed, &aad), Err(Error::Undecryptable));
        }
        let mut bytes = URL_SAFE_NO_PAD.decode(&sealed).expect("base64url");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let tampered = URL_SAFE_NO_PAD.encode(bytes);
        assert_eq!(key.open(&tampered, &aad), Err(Error::Undecryptable));
        for junk in ["", "AAAA", "not base64!", &"A".repeat(38)] {
            assert_eq!(key.open(junk, &aad), Err(Error::Undecryptable), "{junk}");
        }
    }

    #[test]
    fn the_key_check_tells_keys_apart() {
        let key = RoomKey::generate();
        let check = key.key_check();
        assert_eq!(check.len(), 43);
        assert!(key.checks(&check));
        assert!(!RoomKey::generate().checks(&check));
    }

    #[test]
    fn links_carry_the_key_in_their_fragment() {
        let key = RoomKey::generate();
        let link = key.link("https://chat.example/r/V1StGXR8_Z5jdHi6B-myT");
        assert_eq!(
            RoomKey::from_link(&link),
            Ok(("V1StGXR8_Z5jdHi6B-myT".to_owned(), key.clone()))
        );
        assert_eq!(
            RoomKey::from_link("https://chat.example/r/V1StGXR8_Z5jdHi6B-myT"),
            Err(Error::NoKey)
        );
        assert_eq!(
            RoomKey::from_link("https://chat.example/r/abc#k=short"),
            Err(Error::BadKey)
        );
        assert_eq!(
            RoomKey::from_link("https://chat.example/#k=x"),
            Err(Error::BadLink)
        );
        assert_eq!(
            format!("{key:?}"),
            "RoomKey(..)",
            "Debug never shows the key"
        );
    }
}
