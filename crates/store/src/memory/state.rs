//! The memory backend's state behind its one lock: rooms, members, the deadline schedule,
//! and the bus events each change publishes.

use super::*;

pub(super) struct State {
    pub(super) rooms: HashMap<String, RoomState>,
    /// Every room's next deadline (expiry or a member's grace), earliest first.
    pub(super) schedule: BTreeSet<(Millis, String)>,
    /// Fixed-window rate counters: key -> (count, window end).
    pub(super) counters: HashMap<String, (u32, Millis)>,
    /// Rooms whose events this instance receives.
    pub(super) subscribed: HashSet<String>,
    pub(super) bus: mpsc::Sender<BusItem>,
    /// Set when an event found the bus full: a `Resync` goes ahead of the next one.
    pub(super) lost: std::sync::atomic::AtomicBool,
}

pub(super) struct RoomState {
    pub(super) room: Room,
    pub(super) members: HashMap<String, MemberState>,
    /// The client that created the room (it counts against that client's cap).
    pub(super) creator: Option<String>,
    /// The newest events of the conversation (ids contiguous), each with the size of its
    /// JSON, and their total size.
    pub(super) history: VecDeque<(ChatEvent, usize)>,
    pub(super) history_bytes: usize,
    pub(super) last_id: u64,
    pub(super) tickets: HashMap<TokenHash, Ticket>,
    /// Wrong passwords by client: (count, window end).
    pub(super) attempts: HashMap<String, (u32, Millis)>,
    /// This room's entry in `State::schedule`.
    pub(super) scheduled: Millis,
    /// When the room's message and join buckets are full again (GCRA, as the Redis scripts).
    pub(super) messages_full_at: f64,
    pub(super) joins_full_at: f64,
    /// When each author's message bucket is full again (GCRA): a member's goes with it, the
    /// owner's stays while it posts without a connection.
    pub(super) rates: HashMap<String, f64>,
    /// (member, client_id) of each kept message that has one, to its id: a retry finds it.
    pub(super) client_ids: HashMap<(String, String), u64>,
    /// What the owner barred: `c:` and a client key, `n:` and a folded name.
    pub(super) bans: HashSet<String>,
    /// A handover happened and the new owner has not set its owner token yet.
    pub(super) owner_pending: bool,
}

/// A GCRA bucket that is full again at `full_at` (ms): the value after one more event now, or
/// `None` if the bucket is empty.
pub(super) fn gcra(full_at: f64, now: Millis, rate: Rate) -> Option<f64> {
    let interval = 1000.0 / f64::from(rate.per_second);
    let next = full_at.max(now as f64) + interval;
    (next - now as f64 <= interval * f64::from(rate.burst)).then_some(next)
}

pub(super) struct MemberState {
    pub(super) member: Member,
    pub(super) resume: TokenHash,
    /// The connection holding the member now.
    pub(super) session: u64,
    /// When the member goes offline unless a live connection refreshes it.
    pub(super) deadline: Millis,
    /// Its client's key, barred with it if the owner removes it.
    pub(super) client: String,
}

pub(super) fn refused<T>(code: ErrorCode) -> Result<T> {
    Err(Error::Refused(code))
}

impl RoomState {
    pub(super) fn view(&self) -> RoomView {
        let members = self.members.values().map(|m| m.member.clone()).collect();
        RoomView::new(self.room.clone(), members, self.last_id)
    }

    /// Event `id`, if history still keeps it.
    pub(super) fn kept(&self, id: u64) -> Option<&ChatEvent> {
        let first = self.history.front()?.0.id();
        let at = usize::try_from(id.checked_sub(first)?).ok()?;
        self.history.get(at).map(|(e, _)| e)
    }

    /// Puts `event` in place of the kept event with its id (its size follows).
    pub(super) fn replace_kept(&mut self, event: ChatEvent) -> Result<()> {
        let json = serde_json::to_string(&event).map_err(|e| Error::Unavailable(e.to_string()))?;
        let first = self.history.front().map_or(0, |(e, _)| e.id());
        let slot = usize::try_from(event.id().saturating_sub(first))
            .ok()
            .and_then(|at| self.history.get_mut(at))
            .ok_or(Error::Refused(ErrorCode::NotFound))?;
        self.history_bytes = self.history_bytes - slot.1 + json.len();
        *slot = (event, json.len());
        Ok(())
    }

    pub(super) fn member_by_resume(&self, token: &TokenHash) -> Option<&MemberState> {
        self.members.values().find(|m| m.resume.matches(token))
    }

    /// Whether the owner barred this client key or folded name.
    pub(super) fn barred(&self, client: &str, fold: &str) -> bool {
        self.bans.contains(&format!("n:{fold}"))
            || (!client.is_empty() && self.bans.contains(&format!("c:{client}")))
    }
}

impl State {
    /// The room, unless it has ended or passed its expiry (the sweep may not have run yet).
    pub(super) fn live_room(&self, room_id: &str) -> Option<&RoomState> {
        self.rooms
            .get(room_id)
            .filter(|r| r.room.expires_at > now_ms())
    }

    pub(super) fn live_room_mut(&mut self, room_id: &str) -> Option<&mut RoomState> {
        self.rooms
            .get_mut(room_id)
            .filter(|r| r.room.expires_at > now_ms())
    }

    pub(super) fn publish(&self, room_id: &str, event: &BusEvent) {
        match serde_json::to_string(event) {
            Ok(json) => self.send(room_id, json),
            Err(err) => tracing::error!(%err, "cannot serialize a bus event"),
        }
    }

    /// Puts an event's JSON on the bus, if the room is subscribed. A full bus drops it and owes
    /// the dispatcher a Resync, sent ahead of the next event that fits (the receiver is gone
    /// only at shutdown).
    pub(super) fn send(&self, room_id: &str, json: String) {
        use std::sync::atomic::Ordering;
        if !self.subscribed.contains(room_id) {
            return;
        }
        if self.lost.load(Ordering::Acquire) {
            if self.bus.try_send(BusItem::Resync).is_err() {
                return;
            }
            self.lost.store(false, Ordering::Release);
        }
        let item = BusItem::Event(Arc::from(room_id), json.into());
        if let Err(mpsc::error::TrySendError::Full(_)) = self.bus.try_send(item) {
            self.lost.store(true, Ordering::Release);
        }
    }

    /// Moves the room's deadline earlier (never later: a late entry just finds nothing due).
    pub(super) fn schedule_at(&mut self, room_id: &str, at: Millis) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if at >= room.scheduled {
            return;
        }
        let old = std::mem::replace(&mut room.scheduled, at);
        self.schedule.remove(&(old, room_id.to_owned()));
        self.schedule.insert((at, room_id.to_owned()));
    }

    /// Publishes the room's state the owner changes (`room_updated`).
    pub(super) fn publish_room(&self, room_id: &str, now: Millis) {
        let Some(room) = self.rooms.get(room_id) else {
            return;
        };
        let note = RoomNote {
            locked: room.room.locked,
            expires_at: room.room.expires_at,
            owner_id: room.room.owner_member_id.clone(),
            owner_away_until: room.room.owner_away_until,
            at: now,
        };
        self.publish(room_id, &BusEvent::Room(note));
    }

    /// The member's presence grace ran out: if it is the owner of a room that ends with its
    /// owner, and not yet away, it is away until the rest of its owner grace has passed
    /// (true), and everyone is told; else false (the member goes).
    pub(super) fn owner_away(
        &mut self,
        room_id: &str,
        member_id: &str,
        presence_grace_ms: Millis,
        now: Millis,
    ) -> bool {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return false;
        };
        let rest = room.room.owner_grace_ms.saturating_sub(presence_grace_ms);
        let owner = member_id == room.room.owner_member_id && room.room.destroy_on_owner_offline;
        if !owner || room.room.owner_away_until.is_some() || rest == 0 {
            return false;
        }
        let Some(m) = room.members.get_mut(member_id) else {
            return false;
        };
        m.deadline = now + rest;
        room.room.owner_away_until = Some(now + rest);
        self.publish_room(room_id, now);
        true
    }

    /// A connection of the member came (back): if the room was waiting for its owner, it no
    /// longer ends, and everyone is told.
    pub(super) fn owner_back(&mut self, room_id: &str, member_id: &str, now: Millis) {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return;
        };
        if member_id == room.room.owner_member_id && room.room.owner_away_until.take().is_some() {
            self.publish_room(room_id, now);
        }
    }

    pub(super) fn member_mut(&mut self, live: &Live) -> Option<&mut MemberState> {
        self.rooms
            .get_mut(&*live.room_id)?
            .members
            .get_mut(&*live.member_id)
            .filter(|m| m.session == live.session)
    }

    /// Attaches `session` to the member holding this resume token, live until `deadline`.
    pub(super) fn resume(
        &mut self,
        room_id: &str,
        resume: &TokenHash,
        session: u64,
        deadline: Millis,
    ) -> Result<Joined> {
        let Some(room) = self.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        let Some(member_id) = room.member_by_resume(resume).map(|m| m.member.id.clone()) else {
            return refused(ErrorCode::Unauthorized);
        };
        let Some(m) = room.members.get_mut(&member_id) else {
            return refused(ErrorCode::Unauthorized);
        };
        m.session = session;
        m.deadline = deadline;
        let member = m.member.clone();
        self.publish(room_id, &BusEvent::Replaced { member_id, session });
        self.owner_back(room_id, &member.id, now_ms());
        self.schedule_at(room_id, deadline);
        let view = self.rooms[room_id].view();
        Ok(Joined { member, view })
    }

    /// Removes a member and publishes `user_offline`; destroys the room, for `reason`, if the
    /// owner left a room that says so. Returns whether the room was destroyed.
    pub(super) fn remove_member(
        &mut self,
        room_id: &str,
        member_id: &str,
        why: OfflineReason,
        reason: CloseReason,
        now: Millis,
    ) -> bool {
        let Some(room) = self.rooms.get_mut(room_id) else {
            return false;
        };
        let Some(gone) = room.members.remove(member_id) else {
            return false;
        };
        room.rates.remove(member_id);
        let count = room.members.len();
        let destroy = gone.member.role == Role::Owner && room.room.destroy_on_owner_offline;
        let offline = gone
            .member
            .presence(PresenceEvent::UserOffline, Some(why), count, now);
        self.publish(room_id, &BusEvent::Presence(offline));
        if destroy {
            self.destroy(room_id, reason, now);
        }
        destroy
    }

    pub(super) fn destroy(&mut self, room_id: &str, reason: CloseReason, now: Millis) -> bool {
        let Some(room) = self.rooms.remove(room_id) else {
            return false;
        };
        self.schedule.remove(&(room.scheduled, room_id.to_owned()));
        let event = BusEvent::System(SystemFrame::RoomClosed(RoomClosedFrame::new(
            room_id, reason, now,
        )));
        self.publish(room_id, &event);
        true
    }
}
