//! One task per connection: join (ticket, name or resume), welcome, then a loop over three
//! sources: a close request from outside, the connection's queue, and the client's frames.
//!
//! The connection joins its room's fan-out before it reads history, and drops queued messages
//! it already sent (`id <= last_id`), so it sees every message exactly once and in order. A
//! message id that skips ahead means something was lost: the connection closes with 4008 and the
//! client resumes, never a silent gap. Once the session is in its loop, the fan-out writes
//! messages to the socket itself while nothing is queued (`Conn::fast`); the session writes
//! everything else.

use crate::conn::{Conn, Event, Writing};
use crate::hub::Hub;
use crate::{Change, Draft, Gone, Inbound, Refusal, Transport};
use futures_util::{Stream, StreamExt};
use protocol::frames::{
    ClientFrame, OfflineReason, OwnerTokenFrame, RelayFrame, ServerFrame, SystemFrame, TypingFrame,
    Welcome,
};
use protocol::{ErrorCode, Role, close, limits, now_ms, rfc3339, seconds_until};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};
use store::secret::{TokenHash, new_id, new_token};
use store::{Actor, Claim, Joined, Live, Member, RoomChange, Via};
use tokio::sync::mpsc;

/// How a connection enters its room (the WebSocket URL's query).
#[derive(Debug, Clone)]
pub enum Entry {
    /// Redeem a join ticket; with `last_id`, the welcome's history is what follows it, as on
    /// a resume (an owner's event stream coming back, its member still there).
    Ticket {
        ticket: String,
        last_id: Option<u64>,
    },
    /// Direct join of a room without password.
    Name(String),
    /// Reconnect as an existing member; `last_id` is the last message the client has.
    Resume { token: String, last_id: u64 },
    /// The same with a resume ticket (`POST .../resume`), so no long-lived secret is in a URL.
    ResumeTicket { ticket: String, last_id: u64 },
}

/// Why a connection ends.
enum Exit {
    /// Send a close frame with this code and reason.
    Close(u16, &'static str),
    /// The socket is gone: nothing to send.
    Gone,
}

impl From<Gone> for Exit {
    fn from(_: Gone) -> Exit {
        Exit::Gone
    }
}

/// A connection's session number: its start time in the high bits, so that the sessions of
/// one member order by age across instances, and a counter in the low 20 bits, so that no two
/// of this instance's are equal (the hub keys its connections by it). The counter starts at
/// random, against ties across instances.
fn new_session() -> u64 {
    static NEXT: LazyLock<AtomicU64> = LazyLock::new(|| AtomicU64::new(rand::random()));
    (now_ms() << 20) | (NEXT.fetch_add(1, Ordering::Relaxed) & 0xF_FFFF)
}

/// Most frames a connection's queue holds (its bytes are bounded by `HubConfig::queue_bytes`).
const QUEUE_FRAMES: usize = 4096;

/// How long a close frame may wait behind unread frames before the socket is just dropped.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// What a join's store calls may take (a claim and a history read, each bounded by the store's
/// command timeout), on top of the stall timeout its welcome may take to be written.
const JOIN_STORE_TIME: Duration = Duration::from_secs(5);

/// A refused message: more than `MESSAGE_BURST` refusals within this window is abuse (4029).
const ABUSE_WINDOW: Duration = Duration::from_secs(10);

impl Hub {
    /// Serves one WebSocket until it closes.
    /// `client` is the client's key (its address, IPv6 on its prefix): the owner may bar it.
    pub async fn serve<T, S>(
        &self,
        room_id: &str,
        client: &str,
        entry: Entry,
        mut transport: T,
        inbound: S,
    ) where
        T: Transport,
        S: Stream<Item = Inbound> + Unpin,
    {
        let resume = matches!(entry, Entry::Resume { .. } | Entry::ResumeTicket { .. });
        if !self.admit(resume) {
            refuse(transport, ErrorCode::Unavailable, close::TRY_AGAIN_LATER).await;
            return;
        }
        let room_id: Arc<str> = Arc::from(room_id);
        let session = new_session();
        let (tx, rx) = mpsc::channel(QUEUE_FRAMES);
        let conn = Arc::new(Conn::new(session, tx));
        // The store's futures are large and short-lived: boxed, they do not weigh on the
        // memory every idle connection holds for its whole life.
        if let Err(err) = Box::pin(self.register(&room_id, conn.clone())).await {
            self.unregister(&room_id, session);
            refuse(transport, err.code(), err.code().close_code()).await;
            return;
        }
        // A client that never reads its welcome (or a store that hangs) must not hold the
        // member, its name and this task: the whole join has a deadline.
        let deadline = self.config().stall_timeout + JOIN_STORE_TIME;
        let joined = Box::pin(self.join(&room_id, client, entry, session, &mut transport));
        let joined = tokio::time::timeout(deadline, joined)
            .await
            .unwrap_or(Err(Exit::Gone));
        let exit = match joined {
            Ok((joined, last_id)) => {
                let member_id: Arc<str> = Arc::from(joined.member.id.as_str());
                let live = Live {
                    room_id: room_id.clone(),
                    member_id,
                    session,
                };
                let _ = conn.live.set(live.clone());
                self.metrics().members.inc();
                conn.start_direct(transport.direct(), last_id);
                let mut s = Session {
                    hub: self.clone(),
                    members_can_destroy: joined.view.room.members_can_destroy,
                    encrypted: joined.view.room.sealing.encrypted,
                    live,
                    conn: conn.clone(),
                    transport,
                    strikes: Vec::new(),
                    typed_at: None,
                    member: joined.member,
                };
                // Made owner by a handover while away: its token is made now.
                let pending = joined.view.room.owner_token.matches(&TokenHash::none());
                let exit = match s.member.role == Role::Owner && pending {
                    // Boxed, as every store call here: an idle connection's task holds the
                    // largest state its future can be in.
                    true => match Box::pin(s.take_ownership()).await {
                        Ok(()) => s.run(rx, inbound).await,
                        Err(exit) => exit,
                    },
                    false => s.run(rx, inbound).await,
                };
                conn.stop_direct();
                // Queued before the connection stops counting, so a drain waits for it.
                self.leave(s.live);
                self.unregister(&room_id, session);
                transport = s.transport;
                exit
            }
            Err(exit) => {
                self.unregister(&room_id, session);
                exit
            }
        };
        if let Exit::Close(code, reason) = exit {
            // The close frame queues behind what the client has not read yet; a client that
            // never reads again must not hold the task forever.
            let _ = tokio::time::timeout(CLOSE_TIMEOUT, transport.close(code, reason)).await;
        }
    }

    /// Claims or resumes the member and sends the welcome; returns the last message id the
    /// client now has.
    async fn join<T: Transport>(
        &self,
        room_id: &str,
        client: &str,
        entry: Entry,
        session: u64,
        transport: &mut T,
    ) -> Result<(Joined, u64), Exit> {
        let store = self.store();
        let (result, resume_token, after) = match entry {
            Entry::Resume { token, last_id } => (
                store
                    .resume_member(room_id, &TokenHash::of(&token), session)
                    .await,
                Some(token),
                Some(last_id),
            ),
            Entry::ResumeTicket { ticket, last_id } => (
                store
                    .resume_with_ticket(room_id, &TokenHash::of(&ticket), session)
                    .await,
                None,
                Some(last_id),
            ),
            Entry::Ticket { ticket, last_id } => {
                let token = new_token();
                let claim = Claim {
                    via: Via::Ticket(TokenHash::of(&ticket)),
                    member_id: new_id(),
                    resume: TokenHash::of(&token),
                    session,
                    client: client.to_owned(),
                };
                (
                    store.claim_membership(room_id, claim).await,
                    Some(token),
                    last_id,
                )
            }
            Entry::Name(name) => {
                let name = match crate::commands::display_name(&name) {
                    Ok(name) => name,
                    Err(refused) => {
                        return Err(refusal(
                            transport,
                            refused.code,
                            &refused.detail,
                            close::INVALID_NAME,
                        )
                        .await);
                    }
                };
                let token = new_token();
                let claim = Claim {
                    via: Via::Name(name),
                    member_id: new_id(),
                    resume: TokenHash::of(&token),
                    session,
                    client: client.to_owned(),
                };
                (
                    store.claim_membership(room_id, claim).await,
                    Some(token),
                    None,
                )
            }
        };
        let joined = match result {
            Ok(joined) => joined,
            Err(err) => {
                let code = err.code();
                return Err(refusal(transport, code, code.sentence(), code.close_code()).await);
            }
        };
        let limit = self.config().history_limit;
        let history = match store
            .history_after(room_id, after.unwrap_or(0), limit)
            .await
        {
            Ok(history) => history,
            Err(err) => {
                let code = err.code();
                return Err(refusal(transport, code, code.sentence(), code.close_code()).await);
            }
        };
        let now = store.now();
        let online_users: Vec<_> = joined
            .view
            .members
            .iter()
            .map(|m| m.online_user())
            .collect();
        let welcome = ServerFrame::System(SystemFrame::Welcome(Welcome {
            message: "Connected to room".into(),
            room_id: room_id.to_owned(),
            member_id: joined.member.id.clone(),
            connection_id: joined.member.id.clone(),
            display_name: joined.member.display_name.clone(),
            role: joined.member.role,
            resume_token,
            expires_at: rfc3339(joined.view.room.expires_at),
            expires_in: seconds_until(joined.view.room.expires_at, now),
            encrypted: joined.view.room.sealing.encrypted,
            locked: joined.view.room.locked,
            owner_member_id: joined.view.room.owner_member_id.clone(),
            owner_away_until: joined.view.room.owner_away_until.map(rfc3339),
            online_count: online_users.len(),
            online_users,
            history: history.events,
            recovered: after.is_none() || history.complete,
            timestamp: rfc3339(now),
        }));
        // Under the stall timeout like every write: a client that does not read its welcome is
        // dropped, and its grace starts now.
        let stall = self.config().stall_timeout;
        let Ok(sent) = tokio::time::timeout(stall, send_frame(transport, &welcome)).await else {
            self.leave(Live {
                room_id: Arc::from(room_id),
                member_id: Arc::from(joined.member.id.as_str()),
                session,
            });
            return Err(Exit::Gone);
        };
        sent?;
        self.note_welcome(room_id, history.last_id, &joined.view.members);
        Ok((joined, history.last_id))
    }
}

struct Session<T> {
    hub: Hub,
    member: Member,
    live: Live,
    conn: Arc<Conn>,
    transport: T,
    /// The room lets members destroy it (the owner always may).
    members_can_destroy: bool,
    /// Its messages are ciphertext.
    encrypted: bool,
    /// When recent messages were refused by the rate limit.
    strikes: Vec<Instant>,
    typed_at: Option<Instant>,
}

impl<T: Transport> Session<T> {
    async fn run<S>(&mut self, mut rx: mpsc::Receiver<Arc<Event>>, mut inbound: S) -> Exit
    where
        S: Stream<Item = Inbound> + Unpin,
    {
        loop {
            let step = tokio::select! {
                biased;
                _ = self.conn.wake.notified() => Err(requested_close(&self.conn)),
                event = rx.recv() => match event {
                    Some(event) => {
                        self.conn.taken(&event);
                        let handled = self.on_event(&event).await;
                        self.conn.handled();
                        handled
                    }
                    None => Err(Exit::Gone),
                },
                frame = inbound.next() => {
                    self.conn.last_seen.store(now_ms(), Ordering::Relaxed);
                    Box::pin(self.on_inbound(frame.unwrap_or(Inbound::Broken))).await
                }
            };
            if let Err(exit) = step {
                return exit;
            }
        }
    }

    /// Writes a frame, unless a close request comes first (the client may not be reading).
    async fn write(&mut self, json: bytestring::ByteString) -> Result<(), Exit> {
        guarded(&self.hub, &self.conn, self.transport.send(json)).await
    }

    async fn on_event(&mut self, event: &Event) -> Result<(), Exit> {
        let me = &*self.live.member_id;
        match event {
            Event::Message { id, json } => {
                {
                    let mut fast = self.conn.fast();
                    if *id <= fast.last_id {
                        return Ok(());
                    }
                    if *id != fast.last_id + 1 {
                        return Err(Exit::Close(close::FELL_BEHIND, "missed messages, resume"));
                    }
                    fast.last_id = *id;
                }
                self.write(json.clone()).await
            }
            Event::Flush => guarded(&self.hub, &self.conn, self.transport.flush()).await,
            Event::Presence {
                member_id,
                online,
                reason,
                json,
            } => match (member_id == me, online) {
                (true, false) if *reason == Some(OfflineReason::Left) => {
                    Err(Exit::Close(close::LEFT, "left the room"))
                }
                (true, false) if *reason == Some(OfflineReason::Kicked) => {
                    Err(Exit::Close(close::REMOVED, "removed by the owner"))
                }
                // Removed after the grace while this socket lived (a Redis brownout, a skewed
                // clock): not a leave the client chose; its membership is gone, so it joins again.
                (true, false) => Err(Exit::Close(
                    close::UNAUTHORIZED,
                    "removed after the presence grace, join again",
                )),
                (true, true) => Ok(()),
                (false, _) => self.write(json.clone()).await,
            },
            Event::Relay {
                author,
                to_author,
                json,
            } if *to_author || author != me => self.write(json.clone()).await,
            Event::Relay { .. } => Ok(()),
            Event::Room { owner_id, json } => {
                let owner = owner_id == me;
                self.write(json.clone()).await?;
                match (owner, self.member.role) {
                    (true, Role::Member) => {
                        self.member.role = Role::Owner;
                        Box::pin(self.take_ownership()).await
                    }
                    (false, Role::Owner) => {
                        self.member.role = Role::Member;
                        Ok(())
                    }
                    _ => Ok(()),
                }
            }
            Event::Closed { code, json } => {
                self.write(json.clone()).await?;
                Err(Exit::Close(*code, "room closed"))
            }
            // Only a newer connection replaces this one: a late event about an older
            // replacement must not close the member's newest connection.
            Event::Replaced { member_id, session }
                if member_id == me && *session > self.live.session =>
            {
                Err(Exit::Close(
                    close::REPLACED,
                    "replaced by a newer connection",
                ))
            }
            Event::Replaced { .. } => Ok(()),
            Event::Ping => self.transport.ping().await.map_err(Exit::from),
        }
    }

    async fn on_inbound(&mut self, frame: Inbound) -> Result<(), Exit> {
        match frame {
            Inbound::Text(text) => self.on_text(&text).await,
            Inbound::Binary => {
                self.error(ErrorCode::InvalidFrame, "binary frames are not supported")
                    .await
            }
            Inbound::Ping(payload) => self.transport.pong(payload).await.map_err(Exit::from),
            Inbound::Pong => Ok(()),
            Inbound::Close(code) => Err(Exit::Close(code.unwrap_or(close::LEFT), "")),
            Inbound::TooLarge => Err(Exit::Close(close::TOO_LARGE, "frame too large")),
            Inbound::Broken => Err(Exit::Gone),
        }
    }

    async fn on_text(&mut self, raw: &str) -> Result<(), Exit> {
        let frame = match ClientFrame::parse(raw) {
            Ok(frame) => frame,
            Err(err) => {
                return self
                    .error(
                        ErrorCode::InvalidFrame,
                        &format!("invalid frame: {}", protocol::json_error(&err)),
                    )
                    .await;
            }
        };
        let store = self.hub.store().clone();
        let room_id = &*self.live.room_id;
        let member_id = &*self.live.member_id;
        match frame {
            ClientFrame::Message {
                text: None,
                ciphertext: None,
                ..
            } => {
                let detail =
                    "invalid frame: missing field `text` (`ciphertext` in an encrypted room)";
                self.error(ErrorCode::InvalidFrame, detail).await
            }
            ClientFrame::Message {
                text,
                ciphertext,
                client_id,
                reply_to,
            } => {
                let draft = Draft {
                    text: text.as_deref(),
                    ciphertext: ciphertext.as_deref(),
                    client_id: client_id.as_deref(),
                    reply_to,
                };
                let commands = self.hub.commands();
                match commands
                    .post_message(room_id, &self.member, self.encrypted, draft)
                    .await
                {
                    // The broadcast brings the echo.
                    Ok(posted) if posted.new => Ok(()),
                    // A retry: the original, to this connection alone.
                    Ok(posted) => {
                        let frame = ServerFrame::Message(posted.frame);
                        match serde_json::to_string(&frame) {
                            Ok(json) => self.write(json.into()).await,
                            Err(_) => Ok(()),
                        }
                    }
                    Err(refusal) => self.refused(refusal).await,
                }
            }
            ClientFrame::Edit {
                target,
                text,
                ciphertext,
            } => {
                let change = Change::Edit {
                    text: text.as_deref(),
                    ciphertext: ciphertext.as_deref(),
                };
                self.change_message(target, change).await
            }
            ClientFrame::Delete { target } => self.change_message(target, Change::Delete).await,
            ClientFrame::React { target, emoji } => {
                self.change_message(target, Change::React { emoji: &emoji })
                    .await
            }
            ClientFrame::Typing => {
                let due = self.typed_at.is_none_or(|at| {
                    at.elapsed() >= Duration::from_millis(limits::TYPING_INTERVAL_MS)
                });
                if due {
                    self.typed_at = Some(Instant::now());
                    let frame = RelayFrame::Typing(TypingFrame {
                        member_id: self.member.id.clone(),
                        display_name: self.member.display_name.clone(),
                        timestamp: rfc3339(store.now()),
                    });
                    if let Err(err) = store.relay(room_id, &frame).await {
                        return self.refused(err.into()).await;
                    }
                }
                Ok(())
            }
            ClientFrame::Leave => match self.hub.commands().leave(room_id, member_id).await {
                Ok(()) => Err(Exit::Close(close::LEFT, "left the room")),
                Err(refusal) => self.refused(refusal).await,
            },
            ClientFrame::Kick { member_id } => self.change(RoomChange::Kick { member_id }).await,
            ClientFrame::Lock { locked } => {
                let change = RoomChange::Settings {
                    locked: Some(locked),
                    expires_at: None,
                };
                self.change(change).await
            }
            ClientFrame::Handover { member_id } => {
                self.change(RoomChange::Handover { member_id }).await
            }
            ClientFrame::CloseRoom => {
                let commands = self.hub.commands();
                match commands
                    .destroy(room_id, self.member.role, self.members_can_destroy)
                    .await
                {
                    // The room_closed event closes this connection too.
                    Ok(()) => Ok(()),
                    Err(refusal) => self.refused(refusal).await,
                }
            }
        }
    }

    /// An edit, a deletion or a reaction over the socket; its broadcast is the answer.
    async fn change_message(&mut self, target: u64, change: Change<'_>) -> Result<(), Exit> {
        let commands = self.hub.commands();
        let room_id = &*self.live.room_id;
        match commands
            .change_message(room_id, &self.member, self.encrypted, target, change)
            .await
        {
            Ok(_) => Ok(()),
            Err(refusal) => self.refused(refusal).await,
        }
    }

    /// An owner's change over the socket; `room_updated` (or `user_offline`) is the answer.
    async fn change(&mut self, change: RoomChange) -> Result<(), Exit> {
        let commands = self.hub.commands();
        let by = Actor::Member(&self.live.member_id);
        match commands.change_room(&self.live.room_id, by, change).await {
            Ok(_) => Ok(()),
            Err(refusal) => self.refused(refusal).await,
        }
    }

    /// This member became the owner by a handover: it makes the owner token it will hold and
    /// sets its hash in the store (only the owner, once per handover), then tells its client
    /// alone.
    async fn take_ownership(&mut self) -> Result<(), Exit> {
        let token = new_token();
        let store = self.hub.store().clone();
        let room_id = &*self.live.room_id;
        match store
            .take_ownership(room_id, &self.member.id, TokenHash::of(&token))
            .await
        {
            Ok(true) => {
                let frame = ServerFrame::OwnerToken(OwnerTokenFrame {
                    room_id: room_id.to_owned(),
                    owner_token: token,
                });
                match serde_json::to_string(&frame) {
                    Ok(json) => self.write(json.into()).await,
                    Err(_) => Ok(()),
                }
            }
            Ok(false) => Ok(()),
            Err(err) => self.refused(err.into()).await,
        }
    }

    /// A refused command: the room or the membership gone closes the connection; a rate limit
    /// counts a strike (too many within the window is abuse: 4029); anything else is an
    /// `error` frame and the connection stays.
    async fn refused(&mut self, refusal: Refusal) -> Result<(), Exit> {
        match refusal.code {
            ErrorCode::RoomNotFound => Err(Exit::Close(close::NOT_FOUND, "room not found")),
            ErrorCode::Unauthorized => Err(Exit::Close(close::UNAUTHORIZED, "no longer a member")),
            ErrorCode::RateLimited => {
                self.strikes.retain(|at| at.elapsed() < ABUSE_WINDOW);
                self.strikes.push(Instant::now());
                if self.strikes.len() > self.hub.config().rate.burst as usize {
                    return Err(Exit::Close(close::RATE_LIMITED, "rate limit abused"));
                }
                self.error(refusal.code, &refusal.detail).await
            }
            code => self.error(code, &refusal.detail).await,
        }
    }

    async fn error(&mut self, code: ErrorCode, message: &str) -> Result<(), Exit> {
        let frame = ServerFrame::error(code, message);
        match serde_json::to_string(&frame) {
            Ok(json) => self.write(json.into()).await,
            Err(_) => Ok(()),
        }
    }
}

/// Runs a write, unless a close request comes first (the client may not be reading); the
/// stall check sees how long it takes.
async fn guarded(
    hub: &Hub,
    conn: &Conn,
    write: impl Future<Output = Result<(), Gone>>,
) -> Result<(), Exit> {
    let _writing = Writing::start(&hub.inner.writing, conn);
    tokio::select! {
        biased;
        _ = conn.wake.notified() => Err(requested_close(conn)),
        sent = write => sent.map_err(Exit::from),
    }
}

fn requested_close(conn: &Conn) -> Exit {
    let code = conn.close_code();
    let reason = match code {
        close::FELL_BEHIND => "fell behind, resume",
        close::GOING_AWAY => "server shutting down",
        close::SERVER_ERROR => "ping timeout",
        close::NOT_FOUND => "room not found",
        close::UNAUTHORIZED => "no longer a member of the room",
        close::REPLACED => "replaced by a newer connection",
        _ => "closed",
    };
    Exit::Close(code, reason)
}

async fn send_frame<T: Transport>(transport: &mut T, frame: &ServerFrame) -> Result<(), Exit> {
    let json = serde_json::to_string(frame)
        .map_err(|_| Exit::Close(close::SERVER_ERROR, "server error"))?;
    transport.send(json.into()).await.map_err(Exit::from)
}

/// Sends an `error` frame and says to close with `close_code`.
async fn refusal<T: Transport>(
    transport: &mut T,
    code: ErrorCode,
    detail: &str,
    close_code: u16,
) -> Exit {
    // A client that never reads must not hold the task that refuses it.
    let frame = ServerFrame::error(code, detail);
    match tokio::time::timeout(CLOSE_TIMEOUT, send_frame(transport, &frame)).await {
        Ok(Ok(())) => Exit::Close(close_code, code.as_str()),
        Ok(Err(exit)) => exit,
        Err(_) => Exit::Gone,
    }
}

/// Refuses a connection: an `error` frame with the code's sentence, then `close_code`.
pub async fn refuse<T: Transport>(transport: T, code: ErrorCode, close_code: u16) {
    close_with(transport, code, code.sentence(), close_code).await;
}

/// Refuses a connection before it joins: an `error` frame, then the code's close code.
pub async fn reject<T: Transport>(transport: T, code: ErrorCode, detail: &str) {
    close_with(transport, code, detail, code.close_code()).await;
}

async fn close_with<T: Transport>(
    mut transport: T,
    code: ErrorCode,
    detail: &str,
    close_code: u16,
) {
    if let Exit::Close(code, reason) = refusal(&mut transport, code, detail, close_code).await {
        let _ = tokio::time::timeout(CLOSE_TIMEOUT, transport.close(code, reason)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::new_session;
    use std::collections::HashSet;

    /// Many sessions start in the same millisecond during a join storm; 20 random bits tied
    /// there (two connections of one room shared a key in the hub, and one lost its pings).
    #[test]
    fn sessions_never_repeat_within_an_instance() {
        let sessions: HashSet<u64> = (0..500_000).map(|_| new_session()).collect();
        assert_eq!(sessions.len(), 500_000);
    }
}
