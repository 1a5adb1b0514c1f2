//! Inbound WebSocket text frames: `ClientFrame::parse`, then the text rules a message meets.
#![no_main]

use libfuzzer_sys::fuzz_target;
use protocol::frames::ClientFrame;
use protocol::{limits, text};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(ClientFrame::Message {
        text: body,
        client_id,
    }) = ClientFrame::parse(input)
    {
        if let Ok(kept) = text::message(&body, limits::MAX_MESSAGE_CHARS) {
            assert!(!kept.is_empty() && kept.chars().count() <= limits::MAX_MESSAGE_CHARS);
        }
        if let Some(id) = client_id {
            let _ = text::name(&id, limits::CLIENT_ID_MAX_CHARS);
        }
    }
});
