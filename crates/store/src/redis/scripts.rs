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
fn room(body: &str) -> Script {
    Script::from_lua(format!("{PRELUDE}\n{body}"))
}

/// A script that stands alone (no prelude).
fn alone(body: &str) -> Script {
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
    change: room("change.lua"),
    owner_token: room("owner_token.lua"),
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
        room_reply(self.room_op_reply(script, room_id, now, args).await?)
    }

    /// A room script whose reply is its own (not `{'ok', ...}` or `{'refused', code}`).
    pub(super) async fn room_op_reply(
        &self,
        script: &Script,
        room_id: &str,
        now: Millis,
        args: Vec<String>,
    ) -> Result<Value> {
        let all = prelude_args(room_id, now, args);
        self.run(script, room_keys(room_id), all).await
    }
}

/// A room script's ARGV: the prelude's three (the room id, now, and now as RFC 3339), then
/// the script's own.
pub(super) fn prelude_args(room_id: &str, now: Millis, args: Vec<String>) -> Vec<String> {
    let mut all = vec![room_id.to_owned(), now.to_string(), rfc3339(now)];
    all.extend(args);
    all
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
            "client_ids",
            "bans",
        ],
    )
}

/// append.lua's `{'dup', kept message}`: the message a retry's `client_id` already posted.
pub(super) fn retried(reply: &Value) -> Option<String> {
    let Value::Array(parts) = reply else {
        return None;
    };
    match (parts.first().and_then(Value::as_str), parts.get(1)) {
        (Some(tag), Some(kept)) if tag == "dup" => kept.as_string(),
        _ => None,
    }
}

/// append.lua's `{'changed'}`: the kept message an amendment read changed meanwhile.
pub(super) fn changed(reply: &Value) -> bool {
    let Value::Array(parts) = reply else {
        return false;
    };
    parts.first().and_then(Value::as_str).as_deref() == Some("changed")
}

/// Reads, decisions and compare-and-sets one amendment tries before giving up (`unavailable`):
/// each retry means another change to the same message landed between its read and its write.
pub(super) const AMEND_ATTEMPTS: usize = 32;

/// append.lua's keys.
pub(super) fn append_keys(room_id: &str) -> Vec<String> {
    keys_of(
        room_id,
        &["meta", "members", "history", "rate", "client_ids"],
    )
}

/// append.lua's arguments after `AppendArgs`: the message a message answers ('' for none), and
/// for an amendment whether only the owner may make it and the kept events it rewrites (id,
/// JSON as read, JSON from now on).
#[derive(Default)]
pub(super) struct Appended {
    pub(super) reply_to: String,
    pub(super) owner_only: &'static str,
    pub(super) rewrites: Vec<(u64, String, String)>,
}

impl Appended {
    /// `args` (append.lua's first twelve) followed by these.
    pub(super) fn after(self, mut args: Vec<String>) -> Vec<String> {
        args.extend([self.reply_to, self.owner_only.to_owned()]);
        for (id, read, now) in self.rewrites {
            args.extend([id.to_string(), read, now]);
        }
        args
    }
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

/// A script's arguments as a struct whose fields are in the order its Lua reads them (the doc
/// names the Lua side), so the order is written once on each side, not kept by convention.
macro_rules! script_args {
    ($($(#[$doc:meta])* $name:ident { $($field:ident: $ty:ty),* $(,)? })*) => {
        $(
            $(#[$doc])*
            pub(super) struct $name {
                $(pub(super) $field: $ty,)*
            }

            impl $name {
                /// The values, in ARGV order.
                pub(super) fn argv(self) -> Vec<String> {
                    vec![$(self.$field.to_string()),*]
                }
            }
        )*
    };
}

script_args! {
    /// hold.lua's ARGV[1..4] (KEYS[1]: the client's holds).
    HoldArgs { now: Millis, entry: String, expires_at: Millis, most: usize }
    /// admit.lua's ARGV[1..3] (KEYS[1]: the schedule).
    AdmitArgs { room_id: String, expires_at: Millis, most: usize }
    /// reschedule.lua's ARGV[1..3] (KEYS[1]: the schedule); `next`: a deadline, or `gone`.
    RescheduleArgs { room_id: String, lease: Millis, next: String }
    /// claim_due.lua's ARGV[1..3] (KEYS[1]: the schedule).
    ClaimDueArgs { now: Millis, lease_ms: Millis, most: usize }
    /// append.lua's ARGV[1..12] (KEYS: meta, members, history, rate, client_ids): the message
    /// frame's JSON in two halves, the id it assigns between them; the client_id as JSON
    /// spells it.
    AppendArgs {
        room_id: String,
        now: Millis,
        member_id: String,
        per_second: u32,
        burst: u32,
        history_limit: usize,
        before_id: String,
        after_id: String,
        history_max_bytes: usize,
        room_per_second: u32,
        room_burst: u32,
        client_id: String,
    }
    /// authenticate.lua's ARGV[4], after the prelude's three.
    AuthenticateArgs { token: String }
    /// ticket.lua's ARGV[4..7], after the prelude's three.
    TicketArgs { hash: String, value: String, most_in_room: usize, most_per_client: usize }
    /// claim.lua's ARGV[4..13], after the prelude's three: `via` is `ticket` or `name`, and
    /// `value` the ticket's hash or the name.
    ClaimArgs {
        via: &'static str,
        value: String,
        fold: String,
        member_id: String,
        resume: String,
        session: u64,
        live_ms: Millis,
        joins_per_second: u32,
        joins_burst: u32,
        client: String,
    }
    /// resume.lua's ARGV[4..7], after the prelude's three: `by` is `token` or `ticket`.
    ResumeArgs { hash: String, session: u64, live_ms: Millis, by: &'static str }
    /// release.lua's ARGV[4..5], after the prelude's three.
    ReleaseArgs { member_id: String, owner_left_frame: String }
    /// history.lua's ARGV[4..6], after the prelude's three.
    HistoryArgs { kept: usize, after: u64, limit: usize }
    /// relay.lua's ARGV[4..5], after the prelude's three.
    RelayArgs { author: String, frame: String }
    /// destroy.lua's ARGV[4], after the prelude's three.
    DestroyArgs { closed_frame: String }
    /// sweep_room.lua's ARGV[4..6], after the prelude's three.
    SweepRoomArgs { expired_frame: String, owner_offline_frame: String, presence_grace_ms: Millis }
    /// change.lua's ARGV[4..9], after the prelude's three: `by` is `member` or `token` and
    /// `actor` its member id or token hash; `what` is `kick` (`target`), `settings` (`locked`:
    /// '', '0' or '1'; `expires_at`: '' or ms) or `handover` (`target`).
    ChangeArgs {
        by: &'static str,
        actor: String,
        what: &'static str,
        target: String,
        locked: &'static str,
        expires_at: String,
    }
    /// owner_token.lua's ARGV[4..5], after the prelude's three.
    OwnerTokenArgs { member_id: String, token: String }
    /// attempts.lua's ARGV[4..9] to take an attempt, after the prelude's three.
    ReserveAttemptArgs {
        client: String,
        every_client: &'static str,
        reserve: &'static str,
        per_client: u32,
        per_room: u32,
        window_ms: Millis,
    }
    /// attempts.lua's ARGV[4..6] to give one back, after the prelude's three.
    RefundAttemptArgs { client: String, every_client: &'static str, refund: &'static str }
}
