//! What Redis keeps, read back: member records, tickets' grants, room views and replies.

use super::*;

/// A ticket as kept in Redis: its grant and the folded name the claim checks.
#[derive(Serialize, Deserialize)]
pub(super) struct Grant {
    pub(super) display_name: String,
    pub(super) fold: String,
    pub(super) role: Role,
    /// A resume ticket's resume token hash (hex).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(super) resume: Option<String>,
}

/// A member as kept in the room's `members` hash (written by the scripts with cjson).
#[derive(Deserialize)]
pub(super) struct MemberRecord {
    pub(super) id: String,
    pub(super) display_name: String,
    pub(super) role: Role,
    pub(super) connected_at: f64,
}

pub(super) fn flag(on: bool) -> String {
    if on { "1" } else { "0" }.into()
}

pub(super) fn channel(room_id: &str) -> String {
    format!("eph:{{{room_id}}}")
}

pub(super) fn malformed() -> Error {
    Error::Unavailable("malformed reply from Redis".into())
}

pub(super) fn closed_frame(room_id: &str, reason: CloseReason, now: Millis) -> Result<String> {
    let frame = ServerFrame::System(SystemFrame::RoomClosed(RoomClosedFrame::new(
        room_id, reason, now,
    )));
    serde_json::to_string(&frame).map_err(unavailable)
}

pub(super) fn parse_member(json: &str) -> Result<Member> {
    let record: MemberRecord = serde_json::from_str(json).map_err(unavailable)?;
    Ok(Member {
        id: record.id,
        display_name: record.display_name,
        role: record.role,
        connected_at: record.connected_at as Millis,
    })
}

/// A claim's or resume's `{member, view, deadline}` (the schedule was moved before it ran).
pub(super) fn joined(reply: Vec<Value>) -> Result<Joined> {
    let mut reply = reply.into_iter();
    let member = reply
        .next()
        .and_then(|v| v.as_string())
        .ok_or_else(malformed)?;
    let member = parse_member(&member)?;
    let mut parts = reply.next().ok_or_else(malformed)?.into_array().into_iter();
    let meta = parts.next().ok_or_else(malformed)?;
    let members = parts.next().ok_or_else(malformed)?;
    let view = view_from(meta, members, None)?;
    Ok(Joined { member, view })
}

/// `{meta pairs, member records}` and the latest id into a [`RoomView`].
pub(super) fn parse_view(view: Value, seq: &Value) -> Result<RoomView> {
    let mut parts = view.into_array().into_iter();
    let meta = parts.next().ok_or_else(malformed)?;
    let members = parts.next().ok_or_else(malformed)?;
    view_from(meta, members, seq.as_u64())
}

pub(super) fn view_from(meta: Value, members: Value, seq: Option<u64>) -> Result<RoomView> {
    let pairs: Vec<String> = meta
        .into_array()
        .iter()
        .filter_map(Value::as_string)
        .collect();
    let meta: HashMap<&str, &str> = pairs
        .chunks_exact(2)
        .map(|pair| (pair[0].as_str(), pair[1].as_str()))
        .collect();
    let field = |name: &str| meta.get(name).copied().ok_or_else(malformed);
    let number = |name: &str| field(name).and_then(|v| v.parse::<u64>().map_err(|_| malformed()));
    let room = Room {
        id: field("id")?.to_owned(),
        name: meta.get("name").map(|n| (*n).to_owned()),
        owner_name: field("owner_name")?.to_owned(),
        password_hash: meta.get("password_hash").map(|h| (*h).to_owned()),
        // None between a handover and the new owner's token (owner_token.lua).
        owner_token: TokenHash::from_hex(field("owner_token")?).unwrap_or_else(TokenHash::none),
        created_at: number("created_at")?,
        expires_at: number("expires_at")?,
        max_users: number("max_users")? as u32,
        destroy_on_owner_offline: field("destroy_on_owner_offline")? == "1",
        members_can_destroy: field("members_can_destroy")? == "1",
        sealing: Sealing {
            encrypted: meta.get("encrypted") == Some(&"1"),
            name_ciphertext: meta.get("name_ciphertext").map(|n| (*n).to_owned()),
            key_check: meta.get("key_check").map(|c| (*c).to_owned()),
        },
        // Rooms made before owners had their id at creation: the id it joined as, if it did.
        owner_member_id: meta
            .get("owner_id")
            .or(meta.get("owner_member"))
            .map_or_else(String::new, |id| (*id).to_owned()),
        // Rooms made before owners had a grace of their own: none beyond the presence grace.
        owner_grace_ms: meta
            .get("owner_grace")
            .and_then(|ms| ms.parse().ok())
            .unwrap_or(0),
        locked: meta.get("locked") == Some(&"1"),
        owner_away_until: meta.get("owner_away_until").and_then(|ms| ms.parse().ok()),
    };
    let last_id = match seq {
        Some(seq) => seq,
        None => number("seq")?,
    };
    let members = members
        .into_array()
        .iter()
        .map(|v| {
            v.as_string()
                .ok_or_else(malformed)
                .and_then(|json| parse_member(&json))
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(RoomView::new(room, members, last_id))
}
