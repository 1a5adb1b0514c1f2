//! A member that behaves like a real client: it resumes with its token and last message id,
//! with backoff and jitter, whenever a close code says it should, and records every message id
//! it gets so tests can check the invariants (no gap, no duplicate, nothing lost).

use crate::helpers::{Frame, TestApp, Ws};
use rand::Rng;
use serde_json::{Value, json};
use std::time::Duration;
use tokio::time::Instant;

/// Close codes after which a client resumes (API.md, "Close codes"); 1006 is a dropped TCP
/// connection (a killed instance). A close without a code (1005) is not one of them: the server
/// always says why, so a codeless close ends the client, and a test sees it.
pub const RESUMABLE: [u16; 5] = [1001, 1006, 1011, 1013, 4008];

/// The frames that take the room's next id (API.md, "One event stream"): a client tracks them
/// all as one sequence.
pub const STREAM: [&str; 4] = ["message", "message_edited", "message_deleted", "reaction"];

pub struct Resilient {
    pub name: String,
    pub room: String,
    /// Where reconnects go (nginx).
    app: TestApp,
    pub token: String,
    /// This member's id (its welcome's `member_id`).
    pub member_id: String,
    ws: Option<Ws>,
    /// The last id of the room's event stream this client has.
    pub last_id: u64,
    /// The id of the latest message (not another event) this client has.
    pub last_message: u64,
    /// The id of the latest message of this member's own that it has, not deleted.
    pub last_own: u64,
    /// How many events of each type of the stream this client received, live or in history.
    pub kinds: std::collections::BTreeMap<String, usize>,
    /// Every id of the event stream received (messages, edits, deletions, reactions), in
    /// order, across resumes.
    pub ids: Vec<u64>,
    /// Presence, typing and system frames received.
    pub others: Vec<Value>,
    /// Who is online as this client knows it (member id to name): its last welcome's list,
    /// then each presence frame since.
    pub roster: std::collections::BTreeMap<String, String>,
    /// Ids that did not follow the previous one (a gap or a duplicate).
    pub violations: Vec<(u64, u64)>,
    pub resumes: u32,
    /// Every close this client's sockets got, in order: where the docs say a client sees
    /// nothing, tests assert there is none.
    pub closes: Vec<u16>,
    /// The last message id this client had at each of those closes.
    pub closed_after: Vec<u64>,
    /// Resumes whose history no longer covered the gap (`recovered: false`).
    pub unrecovered: u32,
    /// A close code after which this client stays closed.
    pub terminal: Option<u16>,
    /// Why recent resume attempts failed (for diagnostics).
    pub failures: Vec<String>,
    /// What happened to the connection, with seconds since the client was made.
    pub trace: Vec<String>,
    born: Instant,
}

impl Resilient {
    /// Joins by name on `direct` (an instance, or nginx); reconnects go through `via`. Retries
    /// like a client while refused with a resumable code (an instance dying, 1013).
    pub async fn join(direct: &TestApp, via: &TestApp, room: &str, name: &str) -> Resilient {
        let deadline = Instant::now() + Duration::from_secs(20);
        let (ws, welcome) = loop {
            let url = format!("{}/rooms/{room}/ws?display_name={name}", direct.ws_base);
            let attempt = match Ws::try_connect(&url, None).await {
                Ok(mut ws) => match ws.recv_within(Duration::from_secs(5)).await {
                    Some(Frame::Json(v)) if v["event"] == "welcome" => break (ws, v),
                    other => format!("{other:?}"),
                },
                Err(err) => err.to_string(),
            };
            assert!(
                Instant::now() < deadline,
                "{name} could not join: {attempt}"
            );
            tokio::time::sleep(Duration::from_millis(100 + rand::random::<u64>() % 200)).await;
        };
        let mut client = Resilient {
            name: name.to_owned(),
            room: room.to_owned(),
            app: via.clone(),
            token: welcome["resume_token"].as_str().expect("token").to_owned(),
            member_id: text(&welcome["member_id"]),
            ws: Some(ws),
            last_id: 0,
            last_message: 0,
            last_own: 0,
            kinds: Default::default(),
            ids: Vec::new(),
            others: Vec::new(),
            roster: Default::default(),
            violations: Vec::new(),
            resumes: 0,
            closes: Vec::new(),
            closed_after: Vec::new(),
            unrecovered: 0,
            terminal: None,
            failures: Vec::new(),
            trace: Vec::new(),
            born: Instant::now(),
        };
        client.take_history(&welcome, true);
        client
    }

    /// A welcome: its history (a fresh one, or one that could not recover, is the full state:
    /// the ids start where it starts, and must follow one another from there), and who is
    /// online.
    fn take_history(&mut self, welcome: &Value, fresh: bool) {
        let recovered = welcome["recovered"].as_bool().unwrap_or(false);
        if !fresh && !recovered {
            self.unrecovered += 1;
        }
        let history = welcome["history"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        if let Some(first) = history.first().and_then(|m| m["id"].as_u64())
            && (fresh || !recovered)
        {
            self.last_id = self.last_id.max(first - 1);
            // A fresh join's history is the room's last messages: all it keeps, unless the room
            // has had fewer.
            let limit = protocol::limits::HISTORY_LIMIT;
            if fresh && first > 1 && history.len() != limit {
                self.violations.push((first, history.len() as u64));
            }
        }
        for m in history {
            self.take_event(m);
        }
        self.roster = welcome["online_users"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|u| (text(&u["member_id"]), text(&u["display_name"])))
            .collect();
    }

    /// The names this client sees online.
    pub fn online(&self) -> std::collections::BTreeSet<String> {
        self.roster.values().cloned().collect()
    }

    fn take_event(&mut self, event: &Value) {
        let id = event["id"].as_u64().expect("id");
        *self.kinds.entry(text(&event["type"])).or_default() += 1;
        if event["type"] == "message" && event["deleted"] != true {
            self.last_message = self.last_message.max(id);
            if event["member_id"] == self.member_id.as_str() {
                self.last_own = self.last_own.max(id);
            }
        }
        if event["type"] == "message_deleted" && event["target"] == self.last_own {
            self.last_own = 0;
        }
        self.take_message(id);
    }

    fn take_message(&mut self, id: u64) {
        if id != self.last_id + 1 {
            self.violations.push((self.last_id, id));
        }
        self.last_id = self.last_id.max(id);
        self.ids.push(id);
    }

    pub fn is_connected(&self) -> bool {
        self.ws.is_some()
    }

    /// Leaves the room for good: over the socket (the server closes it with 1000), or, while
    /// disconnected, with `POST .../leave` and the resume token, as a client would.
    pub async fn leave(&mut self) {
        if let Some(ws) = self.ws.as_mut()
            && ws.try_send(r#"{"type":"leave"}"#).await
        {
            self.pump(Duration::from_secs(5)).await;
        }
        if self.terminal.is_none() {
            let url = self.app.url(&format!("/rooms/{}/leave", self.room));
            let res = self
                .app
                .http
                .post(url)
                .bearer_auth(&self.token)
                .send()
                .await
                .expect("leave");
            assert!(
                res.status().is_success() || res.status() == 401,
                "leave: {}",
                res.status()
            );
            self.ws = None;
            self.terminal = Some(1000);
        }
    }

    /// Drops the socket without a close (as a network blip would).
    pub fn drop_connection(&mut self) {
        self.note("drop");
        self.ws = None;
    }

    fn note(&mut self, what: &str) {
        let at = self.born.elapsed().as_secs_f32();
        self.trace
            .push(format!("{at:.1}s {what} (last {})", self.last_id));
    }

    /// Reconnects as the page does: a resume ticket over POST (the resume token never in a
    /// URL), then the WebSocket with it and `last_id`, backing off with jitter while refused
    /// with a resumable code, for up to `within`. False if it ended terminally or ran out of time.
    pub async fn resume(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut backoff = Duration::from_millis(50);
        while Instant::now() < deadline && self.terminal.is_none() {
            let ticket = self
                .app
                .http
                .post(self.app.url(&format!("/rooms/{}/resume", self.room)))
                .bearer_auth(&self.token)
                .send()
                .await;
            let ticket = match ticket {
                Ok(res) if res.status() == 200 => res
                    .json::<serde_json::Value>()
                    .await
                    .ok()
                    .and_then(|v| v["ticket"].as_str().map(str::to_owned)),
                // The member or the room is gone: what the socket would say with 4401 or 4004.
                Ok(res) if res.status() == 401 => {
                    let said = res.text().await.unwrap_or_default();
                    self.note(&format!("resume refused: 401 {said}"));
                    self.terminal = Some(4401);
                    None
                }
                Ok(res) if res.status() == 404 => {
                    self.terminal = Some(4004);
                    None
                }
                _ => None,
            };
            let connected = match &ticket {
                Some(ticket) => {
                    let query = format!("resume_ticket={ticket}&last_id={}", self.last_id);
                    let url = format!("{}/rooms/{}/ws?{query}", self.app.ws_base, self.room);
                    Ws::try_connect(&url, None).await.ok()
                }
                None => None,
            };
            if let Some(mut ws) = connected {
                match ws.recv_within(Duration::from_secs(5)).await {
                    Some(Frame::Json(v)) if v["event"] == "welcome" => {
                        self.note("resumed");
                        self.resumes += 1;
                        self.take_history(&v, false);
                        self.ws = Some(ws);
                        return true;
                    }
                    Some(Frame::Json(refusal)) => {
                        match ws.recv_within(Duration::from_secs(5)).await {
                            Some(Frame::Closed(code)) if !RESUMABLE.contains(&code) => {
                                self.note(&format!("resume refused: {refusal}, {code}"));
                                self.terminal = Some(code)
                            }
                            _ => {}
                        }
                    }
                    Some(Frame::Closed(code)) if !RESUMABLE.contains(&code) => {
                        self.terminal = Some(code)
                    }
                    _ => {}
                }
            }
            let jitter = rand::thread_rng().gen_range(0..=backoff.as_millis() as u64);
            tokio::time::sleep(Duration::from_millis(jitter)).await;
            backoff = (backoff * 2).min(Duration::from_secs(1));
        }
        false
    }

    /// Reads frames for `within`, resuming after resumable closes.
    pub async fn pump(&mut self, within: Duration) {
        let deadline = Instant::now() + within;
        while self.terminal.is_none() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            let Some(ws) = self.ws.as_mut() else {
                if !self.resume(left).await {
                    return;
                }
                continue;
            };
            match ws.recv_within(left).await {
                None => return,
                Some(Frame::Json(v))
                    if STREAM.contains(&v["type"].as_str().unwrap_or_default()) =>
                {
                    self.take_event(&v)
                }
                Some(Frame::Json(v)) => {
                    if v["type"] == "presence" {
                        let id = text(&v["member_id"]);
                        match v["event"].as_str() {
                            Some("user_online") => {
                                self.roster.insert(id, text(&v["display_name"]));
                            }
                            _ => {
                                self.roster.remove(&id);
                            }
                        }
                    }
                    self.others.push(v);
                }
                Some(Frame::Closed(code)) => {
                    self.note(&format!("closed {code}"));
                    self.closes.push(code);
                    self.closed_after.push(self.last_id);
                    self.ws = None;
                    if !RESUMABLE.contains(&code) {
                        self.terminal = Some(code);
                    }
                }
            }
        }
    }

    /// Reads until a message with id `id` arrived (resuming as needed), for up to `within`.
    pub async fn until_id(&mut self, id: u64, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        while self.last_id < id && Instant::now() < deadline && self.terminal.is_none() {
            self.pump(Duration::from_millis(200)).await;
        }
        self.last_id >= id
    }

    /// Sends a chat message; false if the socket was gone (the message never left).
    pub async fn say(&mut self, text: &str) -> bool {
        self.send(json!({"type": "message", "text": text})).await
    }

    /// Toggles this member's `emoji` reaction on message `target`; false if the socket was gone.
    pub async fn react(&mut self, target: u64, emoji: &str) -> bool {
        self.send(json!({"type": "react", "target": target, "emoji": emoji}))
            .await
    }

    /// Any frame (a message, an edit, a deletion); false if the socket was gone.
    pub async fn send(&mut self, frame: Value) -> bool {
        match self.ws.as_mut() {
            Some(ws) => ws.try_send(&frame.to_string()).await,
            None => false,
        }
    }

    /// Offline presence frames about `name` that this client saw.
    pub fn offline_of(&self, name: &str) -> usize {
        self.others
            .iter()
            .filter(|f| f["event"] == "user_offline" && f["display_name"] == name)
            .count()
    }
}

fn text(v: &Value) -> String {
    v.as_str().unwrap_or_default().to_owned()
}
