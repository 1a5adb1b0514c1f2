//! Every Lua script, declared once, and how they are called: by SHA, with a room's keys in
//! the order the prelude names them, answering `{'ok', ...}` or `{'refused', code}`.

use super::*;

pub(super) const PRELUDE: &str = include_str!("prelude.lua");

/// Declares every script once: `room` ones run after the shared prelude (`prelude.lua`: a
/// room's keys and helpers), `alone` ones stand by themselves. Each becomes a field of
/// `Scripts`, and `Scripts::all` lists them for loading.
macro_rules! scripts {
    ($($name:ident: $kind:ident($file:literal),)*) => {
        /// Every script, loaded on every primary at start-up and again on NOSCRIPT.
        pub(super) struct Scripts {
            $(pub(super) $name: Script,)*
        }

        impl Scripts {
            pub(super) fn new() -> Scripts {
                Scripts {
                    $($name: $kind(include_str!($file)),)*
                }
            }

            pub(super) fn all(&self) -> Vec<&Script> {
                vec![$(&self.$name),*]
            }
        }
    };
}

/// A room script: the prelude, then `body`.
pub(super) fn room(body: &str) -> Script {
    Script::from_lua(format!("{PRELUDE}\n{body}"))
}

/// A script that stands alone (no prelude).
pub(super) fn alone(body: &str) -> Script {
    Script::from_lua(body)
}

scripts! {
    create: room("create.lua"),
    room: room("room.lua"),
    authenticate: room("authenticate.lua"),
    ticket: room("ticket.lua"),
    claim: room("claim.lua"),
    resume: room("resume.lua"),
    release: room("release.lua"),
    // Each message: alone, with only the keys it touches.
    append: alone("append.lua"),
    history: room("history.lua"),
    relay: room("relay.lua"),
    destroy: room("destroy.lua"),
    sweep_room: room("sweep_room.lua"),
    attempts: room("attempts.lua"),
    rate: alone("rate.lua"),
    claim_due: alone("claim_due.lua"),
    reschedule: alone("reschedule.lua"),
    hold: alone("hold.lua"),
    admit: alone("admit.lua"),
}

impl RedisStore {
    pub(super) async fn run(
        &self,
        script: &Script,
        keys: Vec<String>,
        args: Vec<String>,
    ) -> Result<Value> {
        self.run_on(&self.client, script, keys, args).await
    }

    /// Runs a room script (with the prelude's keys and first arguments) whose reply is
    /// `{'ok', ...}` or `{'refused', code}`.
    pub(super) async fn room_op(
        &self,
        script: &Script,
        room_id: &str,
        now: Millis,
        args: Vec<String>,
    ) -> Result<Vec<Value>> {
        let mut all = vec![room_id.to_owned(), now.to_string(), rfc3339(now)];
        all.extend(args);
        room_reply(self.run(script, room_keys(room_id), all).await?)
    }
}

/// The room's keys, in the order the scripts' prelude names them.
pub(super) fn room_keys(room_id: &str) -> Vec<String> {
    keys_of(
        room_id,
        &[
            "meta",
            "members",
            "state",
            "names",
            "resume",
            "alive",
            "history",
            "rate",
            "tickets",
            "attempts",
            "ticket_expiry",
        ],
    )
}

/// A room script's `{'ok', ...}` as the values after 'ok', or its `{'refused', code}`.
pub(super) fn room_reply(reply: Value) -> Result<Vec<Value>> {
    let mut reply = reply.into_array().into_iter();
    match reply.next().and_then(|v| v.as_string()).as_deref() {
        Some("ok") => Ok(reply.collect()),
        Some("refused") => {
            let code = reply.next().and_then(|v| v.as_string()).unwrap_or_default();
            let code = serde_json::from_value(serde_json::Value::String(code))
                .map_err(|_| Error::Unavailable("unknown refusal from a script".into()))?;
            Err(Error::Refused(code))
        }
        _ => Err(Error::Unavailable("unexpected script reply".into())),
    }
}

pub(super) fn keys_of(room_id: &str, parts: &[&str]) -> Vec<String> {
    parts.iter().map(|part| key(room_id, part)).collect()
}

/// One of a room's keys, e.g. `eph:{<id>}:meta`.
pub(super) fn key(room_id: &str, part: &str) -> String {
    format!("eph:{{{room_id}}}:{part}")
}
