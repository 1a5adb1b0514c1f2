//! One process's share of a scenario: connect its members, send on schedule, check and time
//! every delivery. Speaks only the open-room subset of the API: `display_name` joins answered by
//! a `welcome` frame, `{"type":"message","text":...}` out, `message` frames in. Every wait has
//! a deadline, so a server that speaks less fails the run's counts instead of hanging it.

use crate::Plan;
use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::net::TcpSocket;
use tokio::sync::Semaphore;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// What one process saw; the coordinator adds these up.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct Tally {
    pub connected: u64,
    /// Joins that got no welcome, by the close code the server sent instead (1006: none, or
    /// no connection at all).
    pub refused_by_code: ByCode,
    /// Connections that ended before the scenario did, by the close code the server sent
    /// (1006: none, the connection just ended).
    pub dropped_by_code: ByCode,
    /// Resumes done on purpose (`churn`).
    pub reconnects: u64,
    pub sent: u64,
    /// Messages the server answered with an `error` frame instead of delivering.
    pub rejected: u64,
    /// Deliveries inside the measured window.
    pub delivered: u64,
    /// Every delivery, window or not.
    pub delivered_total: u64,
    pub gaps: u64,
    pub duplicates: u64,
    /// Milliseconds from the first connect to the last welcome of this process.
    pub join_ms: u64,
    /// Milliseconds from the first connect until the last member of this process saw its room
    /// full (every member online); `unsettled`: connected members that never did.
    pub settle_ms: u64,
    pub unsettled: u64,
    /// Latency in microseconds: (value, count) pairs of the histogram.
    pub latency_us: Vec<(u64, u64)>,
    /// The worst latency (µs) of the messages sent in each second of the window: shows stalls.
    pub worst_us: Vec<u64>,
    /// This process's CPU and memory over the window.
    pub usage: Vec<crate::proc_stats::Usage>,
}

/// Connections counted by close code.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub struct ByCode(BTreeMap<u16, u64>);

impl ByCode {
    fn count(&mut self, code: u16, n: u64) {
        *self.0.entry(code).or_default() += n;
    }

    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }

    fn add(&mut self, other: &ByCode) {
        for (&code, &n) in &other.0 {
            self.count(code, n);
        }
    }
}

impl Tally {
    /// Adds `other`'s counts to these (join time: the slowest).
    pub fn add(&mut self, other: &Tally) {
        self.connected += other.connected;
        self.refused_by_code.add(&other.refused_by_code);
        self.dropped_by_code.add(&other.dropped_by_code);
        self.reconnects += other.reconnects;
        self.sent += other.sent;
        self.rejected += other.rejected;
        self.delivered += other.delivered;
        self.delivered_total += other.delivered_total;
        self.gaps += other.gaps;
        self.duplicates += other.duplicates;
        self.join_ms = self.join_ms.max(other.join_ms);
        self.settle_ms = self.settle_ms.max(other.settle_ms);
        self.unsettled += other.unsettled;
        if self.worst_us.len() < other.worst_us.len() {
            self.worst_us.resize(other.worst_us.len(), 0);
        }
        for (mine, theirs) in self.worst_us.iter_mut().zip(&other.worst_us) {
            *mine = (*mine).max(*theirs);
        }
    }
}

/// A latency histogram in microseconds, up to a minute.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

pub fn now_us() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as u64)
}

/// Joiners of this process: (room index, joiner index) for `shard` of `shards`. Each room has
/// `members + over` joiners, who race for its `members` free slots.
fn mine(plan: &Plan) -> Vec<(usize, usize)> {
    let joiners = plan.members + plan.over;
    (0..plan.rooms * joiners)
        .filter(|i| i % plan.shards == plan.shard)
        .map(|i| (i / joiners, i % joiners))
        .collect()
}

struct Shared {
    tally: Mutex<Tally>,
    latency: Mutex<Histogram<u64>>,
    /// When the first member started to connect.
    started: std::time::Instant,
}

/// Whether a member has seen its room full yet: every member online, by the `online_count` of
/// its welcome or of a presence frame.
struct Settle {
    full: u64,
    done: bool,
}

impl Settle {
    /// The first count that shows the room full records how long the room took to get there.
    fn see(&mut self, shared: &Shared, online: Option<u64>) {
        if !self.done && online >= Some(self.full) {
            self.done = true;
            let ms = shared.started.elapsed().as_millis() as u64;
            let mut tally = shared.tally.lock().expect("tally");
            tally.settle_ms = tally.settle_ms.max(ms);
        }
    }
}

/// The `online_count` of a presence frame, read without parsing the rest.
fn online_count(frame: &str) -> Option<u64> {
    let (_, rest) = frame.split_once("\"online_count\":")?;
    let digits = rest.trim_start();
    let end = digits
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(digits.len());
    digits[..end].parse().ok()
}

/// Plays this process's members. Once they have all joined (or failed to), `barrier` says when
/// sending starts (every process waits for the slowest to join), as a wall-clock time.
pub async fn run(
    plan: Plan,
    room_ids: Vec<String>,
    watch: Vec<(String, u32)>,
    barrier: impl std::future::Future<Output = u64>,
) -> Tally {
    let shared = Arc::new(Shared {
        tally: Mutex::new(Tally::default()),
        latency: Mutex::new(histogram()),
        started: std::time::Instant::now(),
    });
    let gate = Arc::new(Semaphore::new(plan.ramp));
    let (start_tx, start_rx) = tokio::sync::watch::channel(0u64);
    let mut tasks = Vec::new();
    let members = mine(&plan);
    let (joined_tx, mut joined_rx) = tokio::sync::mpsc::unbounded_channel::<()>();
    for (n, (room, member)) in members.iter().copied().enumerate() {
        let url = format!(
            "{}{}?display_name=m{member}",
            plan.targets[n % plan.targets.len()],
            plan.ws_path.replace("{room}", &room_ids[room])
        );
        let source = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + (n % plan.sources) as u8));
        let sends = member < plan.senders && room < plan.active;
        // Senders start spread over one period (golden-ratio steps), never all at once: a
        // synchronized burst would measure the load generator's own queueing.
        let phase = ((room * plan.senders + member) as f64 * 0.618_033_988_75).fract();
        tasks.push(tokio::spawn(member_task(
            plan.clone(),
            url,
            source,
            sends.then_some(phase),
            room,
            gate.clone(),
            shared.clone(),
            joined_tx.clone(),
            start_rx.clone(),
        )));
    }
    // Returns once every member task has dropped its sender: joined, or failed to.
    drop(joined_tx);
    let _ = joined_rx.recv().await;
    shared.tally.lock().expect("tally").join_ms = shared.started.elapsed().as_millis() as u64;
    let start = barrier.await;
    let _ = start_tx.send(start);
    let window = (
        start + plan.warmup_us,
        start + plan.warmup_us + plan.duration_us,
    );
    let own = format!("loadgen-{}", plan.shard);
    let usage = tokio::spawn(crate::proc_stats::measure(own, watch, window.0, window.1));
    for task in tasks {
        let _ = task.await;
    }
    let mut tally = std::mem::take(&mut *shared.tally.lock().expect("tally"));
    tally.usage = usage.await.unwrap_or_default();
    let latency = shared.latency.lock().expect("latency");
    tally.latency_us = latency
        .iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect();
    tally
}

/// One member's checks: ids in order, each once; latency of what was sent in the window.
struct Checks {
    last_id: Option<u64>,
    tally: Tally,
    samples: Vec<u64>,
    window: (u64, u64),
}

impl Checks {
    fn delivered(&mut self, shared: &Shared, id: u64, sent_us: u64) {
        let at = now_us();
        self.tally.delivered_total += 1;
        match self.last_id {
            Some(last) if id <= last => self.tally.duplicates += 1,
            Some(last) if id > last + 1 => self.tally.gaps += id - last - 1,
            _ => {}
        }
        self.last_id = Some(self.last_id.map_or(id, |l| l.max(id)));
        if (self.window.0..self.window.1).contains(&sent_us) {
            self.tally.delivered += 1;
            let latency = at.saturating_sub(sent_us).max(1);
            self.samples.push(latency);
            let second = ((sent_us - self.window.0) / 1_000_000) as usize;
            if self.tally.worst_us.len() <= second {
                self.tally.worst_us.resize(second + 1, 0);
            }
            self.tally.worst_us[second] = self.tally.worst_us[second].max(latency);
            if self.samples.len() == self.samples.capacity() {
                flush(shared, &mut self.samples);
            }
        }
    }
}

/// After the window: how long a member's room must be quiet before it stops reading, and the
/// longest it reads on.
const DRAIN_QUIET_US: u64 = 2_000_000;
const DRAIN_MAX_US: u64 = 60_000_000;

/// RFC 6455's code for a connection that ended without a close frame.
const CLOSED_ABNORMALLY: u16 = 1006;

/// The close code if this read ended the connection.
fn ended(frame: Option<Result<Message, tokio_tungstenite::tungstenite::Error>>) -> Option<u16> {
    match frame {
        Some(Ok(Message::Close(close))) => {
            Some(close.map_or(CLOSED_ABNORMALLY, |c| u16::from(c.code)))
        }
        Some(Ok(_)) => None,
        _ => Some(CLOSED_ABNORMALLY),
    }
}

/// The longest a join may take, from the connect to the `welcome`: a server that never sends
/// one (or never answers) has the join counted as refused with 1006 instead of holding the
/// run. Long, since a join storm queues joins at the server.
const JOIN_TIMEOUT: Duration = Duration::from_secs(30);

/// The longest a sender waits for one message to be taken by a server that stopped reading.
const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Connects and reads up to the `welcome`; returns the socket's halves and the welcome, or the
/// close code that came instead (1006: none, no connection at all, or nothing within
/// `JOIN_TIMEOUT`).
async fn join(url: &str, source: IpAddr) -> Result<(Sink, SplitStream<Socket>, Value), u16> {
    let joined = async {
        let socket = connect(url, source).await.map_err(|_| CLOSED_ABNORMALLY)?;
        let (tx, mut rx) = socket.split();
        let hello = welcome(&mut rx).await?;
        Ok((tx, rx, hello))
    };
    tokio::time::timeout(JOIN_TIMEOUT, joined)
        .await
        .unwrap_or(Err(CLOSED_ABNORMALLY))
}

/// Reads frames up to the `welcome`.
async fn welcome(rx: &mut SplitStream<Socket>) -> Result<Value, u16> {
    loop {
        let frame = rx.next().await;
        if let Some(Ok(Message::Text(text))) = &frame
            && text.contains("\"welcome\"")
        {
            return serde_json::from_str(text).map_err(|_| CLOSED_ABNORMALLY);
        }
        if let Some(code) = ended(frame) {
            return Err(code);
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn member_task(
    plan: Plan,
    url: String,
    source: IpAddr,
    sends: Option<f64>,
    room: usize,
    gate: Arc<Semaphore>,
    shared: Arc<Shared>,
    joined: tokio::sync::mpsc::UnboundedSender<()>,
    mut start_at: tokio::sync::watch::Receiver<u64>,
) {
    let permit = gate.acquire_owned().await.expect("gate");
    // The welcome first: it proves the join, and holds the resume token.
    let (tx, mut rx, hello) = match join(&url, source).await {
        Ok(joined) => joined,
        Err(code) => {
            shared
                .tally
                .lock()
                .expect("tally")
                .refused_by_code
                .count(code, 1);
            return;
        }
    };
    let resume_token = hello["resume_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    drop(permit);
    shared.tally.lock().expect("tally").connected += 1;
    drop(joined);
    let mut settle = Settle {
        full: plan.members as u64,
        done: false,
    };
    settle.see(&shared, hello["online_count"].as_u64());

    // Keep reading until every member has joined: the server pings, tungstenite answers as it
    // reads, and a socket silent for two ping intervals is closed (a long ramp outlasts them).
    // No message can come before the start: no one sends until then.
    let start = loop {
        tokio::select! {
            biased;
            at = start_at.wait_for(|at| *at != 0) => match at {
                Ok(at) => break *at,
                Err(_) => return,
            },
            frame = rx.next() => match frame {
                Some(Ok(Message::Text(text))) => settle.see(&shared, online_count(&text)),
                other => if let Some(code) = ended(other) {
                    shared.tally.lock().expect("tally").dropped_by_code.count(code, 1);
                    return;
                },
            },
        }
    };
    let window = (
        start + plan.warmup_us,
        start + plan.warmup_us + plan.duration_us,
    );
    // After the window a member reads on until its room has been quiet for `DRAIN_QUIET_US`: a
    // saturated run delivers late, and only what never comes is lost.
    let end = window.1 + DRAIN_QUIET_US;
    let mut sink = Some(tx);
    // The id of this member's latest message, which its sender reacts to and edits (`--mix`).
    let me = hello["member_id"].as_str().unwrap_or_default().to_owned();
    let own_last = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let sender = sends.and_then(|phase| {
        let mut tx = sink.take()?;
        let shared = shared.clone();
        let rate = plan.rate / plan.senders as f64;
        let encrypted = plan.encrypted;
        let client_ids = plan.client_ids;
        let mix = plan.mix;
        let own = own_last.clone();
        Some(tokio::spawn(async move {
            if rate == 0.0 {
                return tx;
            }
            let period = Duration::from_secs_f64(1.0 / rate);
            let first = start + (phase * period.as_micros() as f64) as u64;
            let wait = first.saturating_sub(now_us());
            tokio::time::sleep(Duration::from_micros(wait)).await;
            let mut tick = tokio::time::interval(period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut seq = 0u64;
            let filler = encrypted.then(random_base64url);
            while now_us() < window.1 {
                tick.tick().await;
                seq += 1;
                let said = format!("{seq} {} {room}", now_us());
                let client_id = match client_ids {
                    true => format!(",\"client_id\":\"s{seq}\""),
                    false => String::new(),
                };
                let content = match &filler {
                    None => format!("\"text\":\"{said}\""),
                    Some(filler) => format!("\"ciphertext\":\"{}\"", as_ciphertext(&said, filler)),
                };
                // Every `mix`th send changes the sender's latest message, once there is one:
                // reactions (toggling) and edits (carrying their send time) in turn.
                let target = own.load(std::sync::atomic::Ordering::Relaxed);
                let text = match (
                    mix > 0 && seq.is_multiple_of(mix) && target > 0,
                    seq / mix.max(1) % 2,
                ) {
                    (true, 0) => {
                        format!("{{\"type\":\"react\",\"target\":{target},\"emoji\":\"👍\"}}")
                    }
                    (true, _) => format!("{{\"type\":\"edit\",\"target\":{target},{content}}}"),
                    (false, _) => format!("{{\"type\":\"message\",{content}{client_id}}}"),
                };
                let sent = tokio::time::timeout(SEND_TIMEOUT, tx.send(Message::text(text))).await;
                if !matches!(sent, Ok(Ok(()))) {
                    break;
                }
                shared.tally.lock().expect("tally").sent += 1;
            }
            tx
        }))
    });

    // Receive until the end, checking ids and timing deliveries. With churn, members that do
    // not send drop their connection now and then and resume it with what they last saw.
    let mut checks = Checks {
        last_id: None,
        tally: Tally::default(),
        samples: Vec::with_capacity(1024),
        window,
    };
    let churn = plan.churn_us.filter(|_| sender.is_none());
    let churn_at = |from: u64| from + churn.unwrap_or(u64::MAX / 4);
    let first_churn = churn_at(start + (room as u64 * 7919 % 1000) * churn.unwrap_or(0) / 1000);
    let reconnect = tokio::time::sleep(Duration::from_micros(first_churn.saturating_sub(now_us())));
    let deadline = tokio::time::sleep(Duration::from_micros(end.saturating_sub(now_us())));
    tokio::pin!(deadline, reconnect);
    let mut ended_early = None;
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = &mut reconnect, if now_us() < window.1 => {
                drop(sink.take());
                let last = checks.last_id.unwrap_or(0);
                let url = format!(
                    "{}?resume={resume_token}&last_id={last}",
                    url.split_once('?').map_or(url.as_str(), |(base, _)| base)
                );
                let Ok((tx, fresh, hello)) = join(&url, source).await else {
                    ended_early = Some(CLOSED_ABNORMALLY);
                    break;
                };
                for missed in hello["history"].as_array().into_iter().flatten() {
                    let id = missed["id"].as_u64().unwrap_or(0);
                    let said = missed["text"].as_str().or(missed["ciphertext"].as_str());
                    let sent = said.and_then(sent_at).unwrap_or(0);
                    checks.delivered(&shared, id, sent);
                }
                sink = Some(tx);
                rx = fresh;
                checks.tally.reconnects += 1;
                let next = churn_at(now_us());
                reconnect.as_mut().reset(tokio::time::Instant::now() + Duration::from_micros(next - now_us()));
            }
            frame = rx.next() => match frame {
                Some(Ok(Message::Text(text))) => match parse_message(&text, &me) {
                    Some((id, sent_us, mine)) => {
                        if mine {
                            own_last.store(id, std::sync::atomic::Ordering::Relaxed);
                        }
                        checks.delivered(&shared, id, sent_us);
                        let now = now_us();
                        if now > window.1 {
                            let quiet_until = (now + DRAIN_QUIET_US).min(window.1 + DRAIN_MAX_US);
                            let wait = Duration::from_micros(quiet_until.saturating_sub(now));
                            deadline.as_mut().reset(tokio::time::Instant::now() + wait);
                        }
                    }
                    None => {
                        settle.see(&shared, online_count(&text));
                        checks.tally.rejected += u64::from(text.contains("\"type\":\"error\""));
                    }
                },
                other => if let Some(code) = ended(other) {
                    ended_early = Some(code);
                    break;
                },
            }
        }
    }
    flush(&shared, &mut checks.samples);
    if let Some(code) = ended_early {
        checks.tally.dropped_by_code.count(code, 1);
    }
    checks.tally.unsettled += u64::from(!settle.done);
    shared.tally.lock().expect("tally").add(&checks.tally);
    if let Some(sender) = sender
        && let Ok(mut tx) = sender.await
    {
        let _ = tx.close().await;
    }
}

fn flush(shared: &Shared, samples: &mut Vec<u64>) {
    let mut latency = shared.latency.lock().expect("latency");
    for &us in samples.iter() {
        let _ = latency.record(us.min(60_000_000));
    }
    samples.clear();
}

/// The send time carried in a message text "<seq> <sent_us> <room>", or in the stand-in for
/// its ciphertext "<seq>-<sent_us>-<filler>".
fn sent_at(text: &str) -> Option<u64> {
    text.split([' ', '-']).nth(1)?.parse().ok()
}

/// Random unpadded base64url, more than any stand-in ciphertext needs.
fn random_base64url() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    (0..4096)
        .map(|_| char::from(ALPHABET[rand::random::<usize>() % ALPHABET.len()]))
        .collect()
}

/// A stand-in for the ciphertext of `said`, as long as its real one (IV, text and tag in
/// unpadded base64url) and still carrying its sequence and send time, in base64url's alphabet:
/// the server checks ciphertext for shape only, so it costs the server what real ciphertext does.
fn as_ciphertext(said: &str, filler: &str) -> String {
    let (seq, rest) = said.split_once(' ').unwrap_or((said, ""));
    let sent = rest.split(' ').next().unwrap_or("");
    let len = ((said.len() + 28) * 4).div_ceil(3);
    let mut sealed = format!("{seq}-{sent}-");
    let pad = len.saturating_sub(sealed.len()).min(filler.len());
    sealed.push_str(&filler[..pad]);
    sealed
}

/// `(id, sent_us, mine)` of an event of the conversation: a `message` or `message_edited`
/// frame whose text is "<seq> <sent_us> <room>", or a `reaction` (no send time: 0, so it counts
/// for order and loss, not latency); `mine` for a message `me` wrote.
fn parse_message(frame: &str, me: &str) -> Option<(u64, u64, bool)> {
    #[derive(Deserialize)]
    struct Frame<'a> {
        #[serde(rename = "type")]
        kind: &'a str,
        #[serde(default)]
        id: u64,
        #[serde(default, borrow)]
        member_id: &'a str,
        #[serde(default, borrow)]
        text: &'a str,
        #[serde(default, borrow)]
        ciphertext: &'a str,
    }
    let frame: Frame = serde_json::from_str(frame).ok()?;
    let said = if frame.text.is_empty() {
        frame.ciphertext
    } else {
        frame.text
    };
    match frame.kind {
        "message" => Some((frame.id, sent_at(said)?, frame.member_id == me)),
        "message_edited" => Some((frame.id, sent_at(said)?, false)),
        "reaction" => Some((frame.id, 0, false)),
        _ => None,
    }
}

type Socket = tokio_tungstenite::WebSocketStream<tokio::net::TcpStream>;
type Sink = SplitSink<Socket, Message>;

async fn connect(
    url: &str,
    source: IpAddr,
) -> Result<Socket, Box<dyn std::error::Error + Send + Sync>> {
    let request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(url)?;
    let authority = request
        .uri()
        .authority()
        .ok_or("no host")?
        .as_str()
        .to_owned();
    let addr: SocketAddr = tokio::net::lookup_host(&authority)
        .await?
        .next()
        .ok_or("no address")?;
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(source, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0)
        .max_write_buffer_size(1 << 20);
    let (socket, _) =
        tokio_tungstenite::client_async_with_config(request, stream, Some(config)).await?;
    Ok(socket)
}

/// Merges (value, count) pairs into one histogram.
pub fn merge(into: &mut Histogram<u64>, pairs: &[(u64, u64)]) {
    for &(value, count) in pairs {
        let _ = into.record_n(value, count);
    }
}

/// The rooms a scenario runs in, created over REST with the open-room subset.
pub async fn create_rooms(plan: &Plan) -> Result<Vec<String>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| e.to_string())?;
    let mut ids = Vec::with_capacity(plan.rooms);
    for i in 0..plan.rooms {
        let res = client
            .post(format!("{}{}", plan.http, plan.create_path))
            .json(&room_body(plan, i))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !res.status().is_success() {
            return Err(format!("create room: {}", res.status()));
        }
        let body: Value = res.json().await.map_err(|e| e.to_string())?;
        let id = body["room_id"].as_str().ok_or("no room_id")?.to_owned();
        ids.push(id);
    }
    Ok(ids)
}

/// What room `i` is created with; an encrypted room needs a key check (of no key: nobody
/// here decrypts).
fn room_body(plan: &Plan, i: usize) -> Value {
    let mut body = serde_json::json!({
        "owner_name": format!("owner{i}"),
        "max_users": plan.max_users,
        "expiry_seconds": plan.expiry_seconds,
    });
    if plan.encrypted {
        body["encrypted"] = true.into();
        body["key_check"] = random_base64url()[..43].into();
    }
    body
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stand_in_ciphertext_is_as_long_as_the_real_one_and_carries_the_send_time() {
        let filler = random_base64url();
        let said = "17 1764000000123456 V1StGXR8_Z5jdHi6B-myT";
        let sealed = as_ciphertext(said, &filler);
        assert_eq!(sealed.len(), ((said.len() + 28) * 4).div_ceil(3));
        assert!(sealed.starts_with("17-1764000000123456-"), "{sealed}");
        assert_eq!(sent_at(&sealed), Some(1_764_000_000_123_456));
        assert_eq!(sent_at(said), Some(1_764_000_000_123_456));
        let frame =
            format!(r#"{{"type":"message","id":3,"member_id":"m","ciphertext":"{sealed}"}}"#);
        assert_eq!(
            parse_message(&frame, "m"),
            Some((3, 1_764_000_000_123_456, true))
        );
    }

    #[test]
    fn edits_and_reactions_count_as_events_and_edits_carry_their_send_time() {
        let edit = r#"{"type":"message_edited","id":9,"target":3,"member_id":"m","text":"4 1764000000000001 r"}"#;
        assert_eq!(
            parse_message(edit, "m"),
            Some((9, 1_764_000_000_000_001, false))
        );
        let reaction =
            r#"{"type":"reaction","id":10,"target":3,"member_id":"m","emoji":"x","on":true}"#;
        assert_eq!(parse_message(reaction, "m"), Some((10, 0, false)));
        let other = r#"{"type":"message","id":11,"member_id":"o","text":"5 1764000000000002 r"}"#;
        assert_eq!(
            parse_message(other, "m"),
            Some((11, 1_764_000_000_000_002, false))
        );
        assert_eq!(
            parse_message(r#"{"type":"typing","member_id":"m"}"#, "m"),
            None
        );
    }

    #[test]
    fn the_online_count_is_read_from_a_presence_frame() {
        let frame = r#"{"type":"presence","event":"user_online","member_id":"m","online_count": 37,"timestamp":"t"}"#;
        assert_eq!(online_count(frame), Some(37));
        assert_eq!(online_count(r#"{"online_count":5}"#), Some(5));
        assert_eq!(online_count(r#"{"type":"typing","member_id":"m"}"#), None);
        assert_eq!(online_count(r#"{"online_count":"x"}"#), None);
    }
}
