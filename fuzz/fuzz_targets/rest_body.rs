//! REST request bodies: what the API parses them into, the text rules it applies, and that
//! whatever parses writes back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::rest::{CreateRoomRequest, JoinRequest, PostMessageRequest};
use protocol::{limits, text};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt::Debug;

fn round_trip<T: Serialize + DeserializeOwned + PartialEq + Debug>(value: &T) {
    let json = serde_json::to_string(value).expect("serializes");
    let back: T = serde_json::from_str(&json).expect("parses back");
    assert_eq!(&back, value);
}

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<CreateRoomRequest>(data) {
        let _ = text::name(&req.owner_name, limits::DISPLAY_NAME_MAX_CHARS);
        let _ = req
            .name
            .as_deref()
            .map(|n| text::room_name(n, limits::ROOM_NAME_MAX_CHARS));
        let _ = req
            .password
            .as_deref()
            .map(|p| text::password(p, limits::PASSWORD_MAX_CHARS));
        round_trip(&req);
    }
    if let Ok(req) = serde_json::from_slice::<JoinRequest>(data) {
        let _ = req
            .display_name
            .as_deref()
            .map(|n| text::name(n, limits::DISPLAY_NAME_MAX_CHARS));
        round_trip(&req);
    }
    if let Ok(req) = serde_json::from_slice::<PostMessageRequest>(data) {
        let _ = text::message(&req.text, limits::MAX_MESSAGE_CHARS);
        round_trip(&req);
    }
});
