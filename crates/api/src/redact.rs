//! Room ids in logs: a room id is the capability to an open room, so logs carry only a keyed
//! hash of it (HMAC-SHA-256, 16 hex digits), the same for one room on every instance that shares
//! `EPHEMERA_LOG_KEY` (without it, a random key of this process).

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::sync::OnceLock;

static KEY: OnceLock<Vec<u8>> = OnceLock::new();

/// Sets the key once, at start-up (a random one without `EPHEMERA_LOG_KEY`); later calls, and
/// tags made before any call (unit tests), keep the first.
pub fn init(key: Option<&str>) {
    let _ = KEY.set(key.map_or_else(random_key, |k| k.as_bytes().to_vec()));
}

fn random_key() -> Vec<u8> {
    store::secret::new_token().into_bytes()
}

/// The log tag of a room id.
pub fn room(id: &str) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(KEY.get_or_init(random_key))
        .expect("HMAC takes a key of any length");
    mac.update(id.as_bytes());
    mac.finalize().into_bytes()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A request path as logged: a room id in it (`/rooms/{id}...`, `/r/{id}...`) becomes its tag.
pub fn path(path: &str) -> String {
    for prefix in ["/rooms/", "/r/"] {
        if let Some(rest) = path.strip_prefix(prefix) {
            let (id, tail) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
            if protocol::is_room_id(id) {
                return format!("{prefix}~{}{tail}", room(id));
            }
        }
    }
    path.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_ids_leave_no_trace_in_a_logged_path() {
        let id = "V1StGXR8_Z5jdHi6B-myT";
        let logged = path(&format!("/rooms/{id}/messages"));
        assert!(!logged.contains(id), "{logged}");
        assert_eq!(logged, format!("/rooms/~{}/messages", room(id)));
        assert_eq!(path(&format!("/r/{id}")), format!("/r/~{}", room(id)));
        assert_eq!(room(id), room(id), "one room, one tag");
        assert_ne!(room(id), room("V1StGXR8_Z5jdHi6B-myU"));
        assert_eq!(room(id).len(), 16);
        assert_eq!(path("/rooms"), "/rooms");
        assert_eq!(path("/healthz"), "/healthz");
    }
}
