//! The in-memory backend: the whole state behind one mutex, so every operation is atomic.
//!
//! It implements exactly the semantics the Redis backend has, including the bus: events are
//! delivered only for rooms this instance subscribed to, in the order operations applied them.

mod state;

use self::state::*;
use crate::secret::TokenHash;
use crate::{
    Actor, Amend, AttemptLimits, Bus, BusItem, Claim, Credential, EVERY_CLIENT, Error, History,
    Joined, Limit, Live, MAX_TICKETS_PER_CLIENT, MAX_TICKETS_PER_ROOM, Member, NewMessage, Posted,
    Rate, Result, Room, RoomChange, RoomView, Stale, StoreConfig, Ticket, Via,
};
use protocol::frames::{
    BusEvent, ChatEvent, MessageFrame, OfflineReason, PresenceEvent, RelayFrame, RoomClosedFrame,
    RoomNote, SystemFrame,
};
use protocol::{CloseReason, ErrorCode, Millis, Role, now_ms, text};
use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::mpsc;

#[derive(Clone)]
pub struct MemoryStore {
    state: Arc<Mutex<State>>,
    config: Arc<StoreConfig>,
}

impl MemoryStore {
    pub fn new(config: StoreConfig) -> (MemoryStore, Bus) {
        let (tx, rx) = mpsc::channel(crate::BUS_CAPACITY);
        let state = State {
            rooms: HashMap::new(),
            schedule: BTreeSet::new(),
            counters: HashMap::new(),
            subscribed: HashSet::new(),
            bus: tx,
            lost: std::sync::atomic::AtomicBool::new(false),
        };
        (
            MemoryStore {
                state: Arc::new(Mutex::new(state)),
                config: Arc::new(config),
            },
            rx,
        )
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave half an operation behind that matters
        // more than stopping the service would; keep serving.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub async fn ping(&self) -> Result<()> {
        Ok(())
    }

    pub async fn create_room(&self, room: Room, creator: Option<&str>) -> Result<()> {
        let mut state = self.lock();
        let live = || {
            state
                .rooms
                .values()
                .filter(|r| r.room.expires_at > now_ms())
        };
        if live().count() >= self.config.max_rooms {
            return refused(ErrorCode::Unavailable);
        }
        if let Some(client) = creator
            && live()
                .filter(|r| r.creator.as_deref() == Some(client))
                .count()
                >= self.config.max_rooms_per_client
        {
            return refused(ErrorCode::RateLimited);
        }
        let id = room.id.clone();
        let expires_at = room.expires_at;
        state.rooms.insert(
            id.clone(),
            RoomState {
                room,
                creator: creator.map(str::to_owned),
                members: HashMap::new(),
                history: VecDeque::new(),
                history_bytes: 0,
                last_id: 0,
                tickets: HashMap::new(),
                attempts: HashMap::new(),
                scheduled: Millis::MAX,
                messages_full_at: 0.0,
                joins_full_at: 0.0,
                rates: HashMap::new(),
                client_ids: HashMap::new(),
                bans: HashSet::new(),
                owner_pending: false,
            },
        );
        state.schedule_at(&id, expires_at);
        Ok(())
    }

    pub async fn room(&self, room_id: &str) -> Result<Option<RoomView>> {
        Ok(self.lock().live_room(room_id).map(RoomState::view))
    }

    pub async fn authenticate(
        &self,
        room_id: &str,
        token: &TokenHash,
    ) -> Result<Option<Credential>> {
        let state = self.lock();
        let Some(room) = state.live_room(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        if room.room.owner_token.matches(token) {
            return Ok(Some(Credential::Owner));
        }
        Ok(room
            .member_by_resume(token)
            .map(|m| Credential::Member(m.member.clone())))
    }

    pub async fn issue_ticket(&self, room_id: &str, hash: TokenHash, ticket: Ticket) -> Result<()> {
        let now = now_ms();
        let mut state = self.lock();
        let Some(room) = state.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        room.tickets.retain(|_, t| t.expires_at > now);
        if ticket.role == Role::Member && ticket.resume.is_none() {
            if room.barred(&ticket.client, &text::fold(&ticket.display_name)) {
                return refused(ErrorCode::Banned);
            }
            if room.room.locked {
                return refused(ErrorCode::RoomLocked);
            }
        }
        let held = room
            .tickets
            .values()
            .filter(|t| t.client == ticket.client)
            .count();
        if room.tickets.len() >= MAX_TICKETS_PER_ROOM || held >= MAX_TICKETS_PER_CLIENT {
            return refused(ErrorCode::RateLimited);
        }
        room.tickets.insert(hash, ticket);
        Ok(())
    }

    pub async fn claim_membership(&self, room_id: &str, claim: Claim) -> Result<Joined> {
        let now = now_ms();
        let deadline = now + self.config.live_ms();
        let mut state = self.lock();
        let Some(room) = state.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        let Some(joins_full_at) = gcra(room.joins_full_at, now, self.config.room_joins) else {
            return refused(ErrorCode::RoomBusy);
        };
        let (name, role) = match claim.via {
            Via::Ticket(hash) => match room.tickets.remove(&hash) {
                Some(t) if t.expires_at > now && t.resume.is_none() => (t.display_name, t.role),
                _ => return refused(ErrorCode::Unauthorized),
            },
            Via::Name(_) if room.room.password_hash.is_some() => {
                return refused(ErrorCode::PasswordRequired);
            }
            Via::Name(name) => (name, Role::Member),
        };
        if role == Role::Owner {
            if let Some(owner) = room
                .members
                .values_mut()
                .find(|m| m.member.role == Role::Owner)
            {
                owner.resume = claim.resume;
                owner.session = claim.session;
                owner.deadline = deadline;
                owner.client = claim.client;
                let member = owner.member.clone();
                let event = BusEvent::Replaced {
                    member_id: member.id.clone(),
                    session: claim.session,
                };
                state.publish(room_id, &event);
                state.owner_back(room_id, &member.id, now);
                state.schedule_at(room_id, deadline);
                let view = state.rooms[room_id].view();
                return Ok(Joined { member, view });
            }
        } else {
            let folded = text::fold(&name);
            if room.barred(&claim.client, &folded) {
                return refused(ErrorCode::Banned);
            }
            if room.room.locked {
                return refused(ErrorCode::RoomLocked);
            }
            let taken = text::fold(&room.room.owner_name) == folded
                || room
                    .members
                    .values()
                    .any(|m| text::fold(&m.member.display_name) == folded);
            if taken {
                return refused(ErrorCode::NameTaken);
            }
            if room.view().is_full() {
                return refused(ErrorCode::RoomFull);
            }
        }
        let display_name = if role == Role::Owner {
            room.room.owner_name.clone()
        } else {
            name
        };
        let id = match role {
            Role::Owner => room.room.owner_member_id.clone(),
            Role::Member => claim.member_id,
        };
        let member = Member {
            id,
            display_name,
            role,
            connected_at: now,
        };
        room.members.insert(
            member.id.clone(),
            MemberState {
                member: member.clone(),
                resume: claim.resume,
                session: claim.session,
                deadline,
                client: claim.client,
            },
        );
        room.joins_full_at = joins_full_at;
        let view = room.view();
        let online = member.presence(PresenceEvent::UserOnline, None, view.members.len(), now);
        state.publish(room_id, &BusEvent::Presence(online));
        state.schedule_at(room_id, deadline);
        Ok(Joined { member, view })
    }

    pub async fn resume_with_ticket(
        &self,
        room_id: &str,
        ticket: &TokenHash,
        session: u64,
    ) -> Result<Joined> {
        let now = now_ms();
        let mut state = self.lock();
        let Some(room) = state.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        let resume = match room.tickets.remove(ticket) {
            Some(Ticket {
                resume: Some(resume),
                expires_at,
                ..
            }) if expires_at > now => resume,
            _ => return refused(ErrorCode::Unauthorized),
        };
        state.resume(room_id, &resume, session, now + self.config.live_ms())
    }

    pub async fn resume_member(
        &self,
        room_id: &str,
        resume: &TokenHash,
        session: u64,
    ) -> Result<Joined> {
        let deadline = now_ms() + self.config.live_ms();
        self.lock().resume(room_id, resume, session, deadline)
    }

    pub async fn touch_members(&self, live: &[Live]) -> Result<Vec<(usize, Stale)>> {
        let deadline = now_ms() + self.config.live_ms();
        let mut state = self.lock();
        let mut stale = Vec::new();
        for (i, l) in live.iter().enumerate() {
            let Some(room) = state.live_room_mut(&l.room_id) else {
                stale.push((i, Stale::RoomGone));
                continue;
            };
            match room.members.get_mut(&*l.member_id) {
                None => stale.push((i, Stale::Gone)),
                Some(m) if m.session != l.session => stale.push((i, Stale::Replaced)),
                Some(m) => m.deadline = deadline,
            }
        }
        Ok(stale)
    }

    pub async fn touch_members_and_latest(
        &self,
        live: &[Live],
    ) -> Result<(Vec<(usize, Stale)>, Vec<(Arc<str>, Option<u64>)>)> {
        let stale = self.touch_members(live).await?;
        let mut rooms: Vec<Arc<str>> = live.iter().map(|l| l.room_id.clone()).collect();
        rooms.sort_unstable();
        rooms.dedup();
        let state = self.lock();
        let latest = rooms
            .into_iter()
            .map(|id| {
                let last = state.live_room(&id).map(|r| r.last_id);
                (id, last)
            })
            .collect();
        Ok((stale, latest))
    }

    pub async fn disconnect_members(&self, live: &[Live]) -> Result<()> {
        let deadline = now_ms() + self.config.presence_grace_ms;
        let mut state = self.lock();
        for live in live {
            if let Some(m) = state.member_mut(live) {
                m.deadline = deadline;
                state.schedule_at(&live.room_id, deadline);
            }
        }
        Ok(())
    }

    pub async fn release_member(&self, room_id: &str, member_id: &str) -> Result<()> {
        let mut state = self.lock();
        if state.live_room(room_id).is_none() {
            return refused(ErrorCode::RoomNotFound);
        }
        state.remove_member(
            room_id,
            member_id,
            OfflineReason::Left,
            CloseReason::Closed,
            now_ms(),
        );
        Ok(())
    }

    pub async fn append_message(
        &self,
        room_id: &str,
        author: &Member,
        draft: NewMessage,
        rate: Rate,
    ) -> Result<Posted> {
        let now = now_ms();
        let mut state = self.lock();
        let Some(room) = state.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        let member_id = author.id.as_str();
        // A member, or the room's owner acting without a connection (a script with its token).
        if !room.members.contains_key(member_id) && member_id != room.room.owner_member_id {
            return refused(ErrorCode::Unauthorized);
        }
        let earlier = draft
            .client_id
            .as_ref()
            .and_then(|c| room.client_ids.get(&(member_id.to_owned(), c.clone())));
        if let Some(&id) = earlier
            && let Some(ChatEvent::Message(kept)) = room.kept(id)
        {
            let frame = kept.clone();
            return Ok(Posted { frame, new: false });
        }
        if let Some(answered) = draft.reply_to {
            let earlier = (1..=room.last_id).contains(&answered);
            if !earlier || room.kept(answered).is_some_and(|e| e.message().is_none()) {
                return refused(ErrorCode::InvalidFrame);
            }
        }
        self.take_message_rates(room, member_id, rate, now)?;
        let frame = author.message(room_id, room.last_id + 1, draft, now);
        let json = self.keep(room, ChatEvent::Message(frame.clone()))?;
        state.send(room_id, json);
        Ok(Posted { frame, new: true })
    }

    pub async fn amend_message(
        &self,
        room_id: &str,
        by: &Member,
        target: u64,
        amend: Amend,
        rate: Rate,
        edit_window_ms: Millis,
    ) -> Result<ChatEvent> {
        let now = now_ms();
        let mut state = self.lock();
        let Some(room) = state.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        if !room.members.contains_key(&by.id) && by.id != room.room.owner_member_id {
            return refused(ErrorCode::Unauthorized);
        }
        let first = room.history.front().map_or(u64::MAX, |(e, _)| e.id());
        Amend::locate(target, room.last_id, first)?;
        let kept: Vec<ChatEvent> = (room.history.iter())
            .skip((target - first) as usize)
            .take(amend.reach(self.config.history_limit))
            .map(|(e, _)| e.clone())
            .collect();
        let amended = amend.apply(&kept, by, now, edit_window_ms)?;
        if amended.owner_only && by.id != room.room.owner_member_id {
            return refused(ErrorCode::Forbidden);
        }
        self.take_message_rates(room, &by.id, rate, now)?;
        for (_, event) in amended.rewritten {
            room.replace_kept(event)?;
        }
        let mut event = amended.event;
        event.set_id(room.last_id + 1);
        let json = self.keep(room, event.clone())?;
        state.send(room_id, json);
        Ok(event)
    }

    /// Takes one message from the member's bucket and one from the room's (`rate_limited`,
    /// `room_busy` when empty; neither is taken then).
    fn take_message_rates(
        &self,
        room: &mut RoomState,
        member_id: &str,
        rate: Rate,
        now: Millis,
    ) -> Result<()> {
        let full_at = room.rates.get(member_id).copied().unwrap_or(0.0);
        let Some(member_full_at) = gcra(full_at, now, rate) else {
            return refused(ErrorCode::RateLimited);
        };
        let Some(messages_full_at) = gcra(room.messages_full_at, now, self.config.room_messages)
        else {
            return refused(ErrorCode::RoomBusy);
        };
        room.rates.insert(member_id.to_owned(), member_full_at);
        room.messages_full_at = messages_full_at;
        Ok(())
    }

    /// Appends the room's next event to its history, trimmed to the newest that fit, and
    /// answers its JSON to publish.
    fn keep(&self, room: &mut RoomState, event: ChatEvent) -> Result<String> {
        let (limit, max_bytes) = (self.config.history_limit, self.config.history_max_bytes);
        // Serialized once: sized as the Redis store sizes it (the frame's JSON), and published.
        let json = serde_json::to_string(&event).map_err(|e| Error::Unavailable(e.to_string()))?;
        let bytes = json.len();
        room.last_id = event.id();
        if let ChatEvent::Message(MessageFrame {
            id,
            member_id,
            client_id: Some(c),
            ..
        }) = &event
        {
            room.client_ids.insert((member_id.clone(), c.clone()), *id);
        }
        room.history.push_back((event, bytes));
        room.history_bytes += bytes;
        while room.history.len() > limit
            || (room.history_bytes > max_bytes && room.history.len() > 1)
        {
            if let Some((gone, bytes)) = room.history.pop_front() {
                room.history_bytes -= bytes;
                if let ChatEvent::Message(MessageFrame {
                    member_id,
                    client_id: Some(c),
                    ..
                }) = gone
                {
                    room.client_ids.remove(&(member_id, c));
                }
            }
        }
        Ok(json)
    }

    pub async fn history_after(&self, room_id: &str, after: u64, limit: usize) -> Result<History> {
        let state = self.lock();
        let Some(room) = state.live_room(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        let first_kept = room.history.front().map(|(e, _)| e.id());
        let events = room
            .history
            .iter()
            .map(|(e, _)| e)
            .filter(|e| e.id() > after)
            .take(limit)
            .cloned()
            .collect();
        Ok(History::read(after, events, room.last_id, first_kept))
    }

    pub async fn relay(&self, room_id: &str, frame: &RelayFrame) -> Result<()> {
        let state = self.lock();
        let Some(room) = state.live_room(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        if !room.members.contains_key(frame.author()) {
            return refused(ErrorCode::Unauthorized);
        }
        state.publish(room_id, &BusEvent::Relay(frame.clone()));
        Ok(())
    }

    pub async fn destroy_room(&self, room_id: &str, reason: CloseReason) -> Result<bool> {
        Ok(self.lock().destroy(room_id, reason, now_ms()))
    }

    pub async fn sweep(&self) -> Result<usize> {
        let now = now_ms();
        let mut state = self.lock();
        let mut seen = 0;
        while let Some((at, room_id)) = state.schedule.first().cloned() {
            if at > now {
                break;
            }
            state.schedule.remove(&(at, room_id.clone()));
            seen += 1;
            let Some(room) = state.rooms.get_mut(&room_id) else {
                continue;
            };
            room.scheduled = Millis::MAX;
            if room.room.expires_at <= now {
                state.destroy(&room_id, CloseReason::Expired, now);
                continue;
            }
            let mut gone: Vec<(Millis, String)> = room
                .members
                .values()
                .filter(|m| m.deadline <= now)
                .map(|m| (m.deadline, m.member.id.clone()))
                .collect();
            gone.sort();
            for (_, member_id) in gone {
                if state.owner_away(&room_id, &member_id, self.config.presence_grace_ms, now) {
                    continue;
                }
                let why = OfflineReason::Timeout;
                if state.remove_member(&room_id, &member_id, why, CloseReason::OwnerOffline, now) {
                    break;
                }
            }
            if let Some(room) = state.rooms.get(&room_id) {
                let next = room
                    .members
                    .values()
                    .map(|m| m.deadline)
                    .fold(room.room.expires_at, Millis::min);
                state.schedule_at(&room_id, next);
            }
        }
        state.counters.retain(|_, (_, end)| *end > now);
        Ok(seen)
    }

    pub async fn change_room(
        &self,
        room_id: &str,
        by: Actor<'_>,
        change: RoomChange,
    ) -> Result<RoomView> {
        let now = now_ms();
        let mut state = self.lock();
        let Some(room) = state.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        let owner = match by {
            Actor::Member(id) => id == room.room.owner_member_id,
            Actor::Token(token) => room.room.owner_token.matches(token),
        };
        if !owner {
            return refused(ErrorCode::Forbidden);
        }
        match change {
            RoomChange::Kick { member_id } | RoomChange::Handover { member_id }
                if member_id == room.room.owner_member_id =>
            {
                return refused(ErrorCode::Forbidden);
            }
            RoomChange::Kick { member_id } => {
                let Some(target) = room.members.get(&member_id) else {
                    return refused(ErrorCode::NotFound);
                };
                let name = format!("n:{}", text::fold(&target.member.display_name));
                let client = format!("c:{}", target.client);
                room.bans.insert(name);
                room.bans.insert(client);
                let (why, closed) = (OfflineReason::Kicked, CloseReason::Closed);
                state.remove_member(room_id, &member_id, why, closed, now);
            }
            RoomChange::Settings { locked, expires_at } => {
                if let Some(locked) = locked {
                    room.room.locked = locked;
                }
                if let Some(at) = expires_at {
                    room.room.expires_at = at;
                }
                state.schedule_at(room_id, expires_at.unwrap_or(Millis::MAX));
                state.publish_room(room_id, now);
            }
            RoomChange::Handover { member_id } => {
                if !room.members.contains_key(&member_id) {
                    return refused(ErrorCode::NotFound);
                }
                for m in room.members.values_mut() {
                    m.member.role = if m.member.id == member_id {
                        room.room.owner_name = m.member.display_name.clone();
                        Role::Owner
                    } else {
                        Role::Member
                    };
                }
                room.room.owner_member_id = member_id;
                room.room.owner_token = TokenHash::none();
                room.room.owner_away_until = None;
                room.owner_pending = true;
                state.publish_room(room_id, now);
            }
        }
        Ok(state.rooms[room_id].view())
    }

    pub async fn take_ownership(
        &self,
        room_id: &str,
        member_id: &str,
        token: TokenHash,
    ) -> Result<bool> {
        let mut state = self.lock();
        let Some(room) = state.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        if room.room.owner_member_id != member_id || !room.owner_pending {
            return Ok(false);
        }
        room.room.owner_token = token;
        room.owner_pending = false;
        Ok(true)
    }

    pub async fn rate_hit(&self, key: &str, limit: u32, window_ms: Millis) -> Result<Limit> {
        let now = now_ms();
        let mut state = self.lock();
        let entry = state
            .counters
            .entry(key.to_owned())
            .or_insert((0, now + window_ms));
        if entry.1 <= now {
            *entry = (0, now + window_ms);
        }
        entry.0 = entry.0.saturating_add(1);
        Ok(if entry.0 <= limit {
            Limit::Within
        } else {
            Limit::Reached(entry.1 - now)
        })
    }

    pub async fn reserve_password_attempt(
        &self,
        room_id: &str,
        client: &str,
        limits: AttemptLimits,
    ) -> Result<Limit> {
        let now = now_ms();
        let mut state = self.lock();
        let Some(room) = state.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        room.attempts.retain(|_, (_, end)| *end > now);
        for (key, limit) in [(client, limits.per_client), (EVERY_CLIENT, limits.per_room)] {
            if let Some((count, end)) = room.attempts.get(key)
                && *count >= limit
            {
                return Ok(Limit::Reached(end - now));
            }
        }
        for key in [client, EVERY_CLIENT] {
            let entry = room
                .attempts
                .entry(key.to_owned())
                .or_insert((0, now + limits.window_ms));
            entry.0 = entry.0.saturating_add(1);
        }
        Ok(Limit::Within)
    }

    pub async fn refund_password_attempt(&self, room_id: &str, client: &str) -> Result<()> {
        let mut state = self.lock();
        let Some(room) = state.live_room_mut(room_id) else {
            return refused(ErrorCode::RoomNotFound);
        };
        for key in [client, EVERY_CLIENT] {
            if let Some(entry) = room.attempts.get_mut(key) {
                entry.0 = entry.0.saturating_sub(1);
            }
        }
        Ok(())
    }

    pub async fn subscribe(&self, room_id: &str) -> Result<()> {
        self.lock().subscribed.insert(room_id.to_owned());
        Ok(())
    }

    pub async fn subscriptions_restored(&self) -> Result<()> {
        Ok(())
    }

    pub async fn unsubscribe(&self, room_id: &str) -> Result<()> {
        self.lock().subscribed.remove(room_id);
        Ok(())
    }
}
