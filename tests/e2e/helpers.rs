//! Test harness: the real application on a free port, an HTTP client, and a WebSocket client.

use ephemera_api::Application;
use ephemera_api::config::{Config, Settings};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::{Instant, timeout};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long any single expected frame may take.
pub const WAIT: Duration = Duration::from_secs(5);

#[derive(Clone)]
pub struct TestApp {
    pub base: String,
    pub ws_base: String,
    pub http: reqwest::Client,
    /// The app's hub, when it runs in this process.
    pub hub: Option<realtime::Hub>,
}

/// Settings for tests: short grace and expiry minimum so time-based tests take seconds.
pub fn test_settings() -> Settings {
    Settings {
        bind_addr: "127.0.0.1:0".into(),
        public_url: "http://chat.test".into(),
        presence_grace_seconds: 1,
        min_expiry_seconds: 1,
        // Every test client is 127.0.0.1: the per-client rates have tests of their own.
        connect_rate_per_ip_per_second: 100_000,
        joins_per_minute: 100_000,
        max_rooms_per_client: 100_000,
        room_message_rate_per_second: 100_000,
        room_join_rate_per_second: 100_000,
        reads_per_minute: 100_000,
        ..Settings::default()
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_with(|_| {}).await
}

pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> TestApp {
    let mut settings = test_settings();
    adjust(&mut settings);
    let config = Config::new(settings).expect("valid test config");
    let app = Application::build(config).await.expect("app builds");
    let port = app.port();
    let hub = app.hub().clone();
    // Tests stop instances by dropping their runtime, or drain the hub directly.
    tokio::spawn(app.run(std::future::pending()));
    let mut test_app = TestApp::at(port);
    test_app.hub = Some(hub);
    test_app
}

impl TestApp {
    /// A client for a server listening on this local port.
    pub fn at(port: u16) -> TestApp {
        TestApp {
            base: format!("http://127.0.0.1:{port}"),
            ws_base: format!("ws://127.0.0.1:{port}"),
            http: reqwest::Client::new(),
            hub: None,
        }
    }
}

/// A created room as the tests use it.
pub struct Room {
    pub id: String,
    pub owner_token: String,
    pub body: Value,
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn post(&self, path: &str, body: Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .json(&body)
            .send()
            .await
            .expect("request")
    }

    /// A POST with no body, as the holder of `token` (leave, resume).
    pub async fn post_as(&self, path: &str, token: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(token)
            .send()
            .await
            .expect("request")
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http.get(self.url(path)).send().await.expect("request")
    }

    /// Polls `/readyz` until it answers `status`; panics at `deadline`.
    pub async fn await_readyz(&self, status: u16, deadline: Instant) {
        while self.get("/readyz").await.status() != status {
            assert!(
                Instant::now() < deadline,
                "{}: /readyz did not answer {status} in time",
                self.base
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET /rooms/{id}/messages` (with `token` as bearer when given), the body as JSON whatever
    /// the status.
    pub async fn messages(&self, room_id: &str, token: Option<&str>) -> Value {
        let mut req = self
            .http
            .get(self.url(&format!("/rooms/{room_id}/messages")));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        req.send()
            .await
            .expect("history")
            .json()
            .await
            .expect("json")
    }

    /// `GET /rooms/{id}` of an open room, as JSON.
    pub async fn details(&self, room_id: &str) -> Value {
        self.get(&format!("/rooms/{room_id}"))
            .await
            .json()
            .await
            .expect("json")
    }

    /// Creates a room; panics unless 201.
    pub async fn create_room(&self, body: Value) -> Room {
        let res = self.post("/rooms", body).await;
        assert_eq!(res.status(), 201, "create room");
        let body: Value = res.json().await.expect("json");
        Room {
            id: body["room_id"].as_str().expect("room_id").to_owned(),
            owner_token: body["owner_token"]
                .as_str()
                .expect("owner_token")
                .to_owned(),
            body,
        }
    }

    /// An open room owned by "alice".
    pub async fn open_room(&self) -> Room {
        self.create_room(json!({"owner_name": "alice"})).await
    }

    /// A ticket from `POST /join`; panics unless 200.
    pub async fn ticket(&self, room: &str, body: Value) -> String {
        let res = self.post(&format!("/rooms/{room}/join"), body).await;
        assert_eq!(res.status(), 200, "join");
        let body: Value = res.json().await.expect("json");
        body["ticket"].as_str().expect("ticket").to_owned()
    }

    /// `DELETE /rooms/{id}` with the owner's token; panics unless 200.
    pub async fn close_room(&self, room: &Room) {
        let res = self
            .http
            .delete(self.url(&format!("/rooms/{}", room.id)))
            .bearer_auth(&room.owner_token)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "owner closes the room");
    }

    pub async fn owner_ticket(&self, room: &Room) -> String {
        let res = self
            .http
            .post(self.url(&format!("/rooms/{}/join", room.id)))
            .bearer_auth(&room.owner_token)
            .send()
            .await
            .expect("request");
        assert_eq!(res.status(), 200, "owner join");
        let body: Value = res.json().await.expect("json");
        assert_eq!(body["role"], "owner");
        body["ticket"].as_str().expect("ticket").to_owned()
    }

    pub async fn ws(&self, room: &str, query: &str) -> Ws {
        Ws::connect(&format!("{}/rooms/{room}/ws?{query}", self.ws_base), None).await
    }

    /// Joins an open room by name and reads the welcome.
    pub async fn member(&self, room: &str, name: &str) -> (Ws, Value) {
        let mut ws = self.ws(room, &format!("display_name={name}")).await;
        let welcome = ws.next_of("system").await;
        assert_eq!(welcome["event"], "welcome", "{welcome}");
        (ws, welcome)
    }

    /// Joins as the owner and reads the welcome.
    pub async fn owner(&self, room: &Room) -> (Ws, Value) {
        let ticket = self.owner_ticket(room).await;
        let mut ws = self.ws(&room.id, &format!("ticket={ticket}")).await;
        let welcome = ws.next_of("system").await;
        assert_eq!(welcome["role"], "owner", "{welcome}");
        (ws, welcome)
    }
}

/// What a WebSocket client saw next.
#[derive(Debug)]
pub enum Frame {
    Json(Value),
    Closed(u16),
}

pub struct Ws {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

impl Ws {
    pub async fn connect(url: &str, origin: Option<&str>) -> Ws {
        Ws::try_connect(url, origin)
            .await
            .expect("websocket connects")
    }

    pub async fn try_connect(
        url: &str,
        origin: Option<&str>,
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let headers: Vec<(&str, &str)> = origin.map(|o| ("origin", o)).into_iter().collect();
        Ws::with_headers(url, &headers).await
    }

    /// Connects with these request headers.
    pub async fn with_headers(
        url: &str,
        headers: &[(&str, &str)],
    ) -> Result<Ws, tokio_tungstenite::tungstenite::Error> {
        let mut request = url.into_client_request()?;
        for (name, value) in headers {
            let name: tokio_tungstenite::tungstenite::http::HeaderName =
                name.parse().expect("header name");
            request
                .headers_mut()
                .insert(name, value.parse().expect("header value"));
        }
        let (stream, _) = tokio_tungstenite::connect_async(request).await?;
        Ok(Ws { stream })
    }

    /// A client with a tiny TCP receive buffer, so that not reading backs up into the server
    /// quickly (as a phone on a slow link would).
    pub async fn connect_small_buffer(url: &str) -> Ws {
        let request = url.into_client_request().expect("request");
        let host = request
            .uri()
            .authority()
            .expect("authority")
            .as_str()
            .to_owned();
        let socket = tokio::net::TcpSocket::new_v4().expect("socket");
        socket.set_recv_buffer_size(4096).expect("rcvbuf");
        let tcp = socket
            .connect(host.parse().expect("addr"))
            .await
            .expect("connect");
        let (stream, _) = tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(tcp))
            .await
            .expect("handshake");
        Ws { stream }
    }

    /// The next JSON frame or the close code; panics after [`WAIT`].
    pub async fn recv(&mut self) -> Frame {
        let deadline = Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let msg = timeout(left, self.stream.next())
                .await
                .expect("a frame within the wait");
            match msg {
                Some(Ok(Message::Text(text))) => {
                    return Frame::Json(
                        serde_json::from_str(&text).expect("server frames are JSON"),
                    );
                }
                Some(Ok(Message::Close(frame))) => {
                    return Frame::Closed(frame.map_or(1005, |f| f.code.into()));
                }
                Some(Ok(_)) => continue,
                Some(Err(_)) | None => return Frame::Closed(1006),
            }
        }
    }

    /// The next JSON frame or close code, or `None` if nothing came within `within`.
    pub async fn recv_within(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match timeout(left, self.stream.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(text)))) => {
                    return Some(Frame::Json(
                        serde_json::from_str(&text).expect("server frames are JSON"),
                    ));
                }
                Ok(Some(Ok(Message::Close(frame)))) => {
                    return Some(Frame::Closed(frame.map_or(1005, |f| f.code.into())));
                }
                Ok(Some(Ok(_))) => continue,
                Ok(Some(Err(_)) | None) => return Some(Frame::Closed(1006)),
            }
        }
    }

    /// Sends without panicking; false if the socket is gone.
    pub async fn try_send(&mut self, text: &str) -> bool {
        self.stream.send(Message::text(text)).await.is_ok()
    }

    /// The next JSON frame; panics on close.
    pub async fn json(&mut self) -> Value {
        match self.recv().await {
            Frame::Json(v) => v,
            Frame::Closed(code) => panic!("closed with {code} while a frame was expected"),
        }
    }

    /// The next frame of this `type`, skipping others.
    pub async fn next_of(&mut self, kind: &str) -> Value {
        loop {
            let v = self.json().await;
            if v["type"] == kind {
                return v;
            }
        }
    }

    /// The next presence frame with this event, skipping others.
    pub async fn presence(&mut self, event: &str) -> Value {
        loop {
            let v = self.next_of("presence").await;
            if v["event"] == event {
                return v;
            }
        }
    }

    /// Reads until the close frame; returns its code and the frames before it.
    pub async fn closed(&mut self) -> (u16, Vec<Value>) {
        let mut seen = Vec::new();
        loop {
            match self.recv().await {
                Frame::Json(v) => seen.push(v),
                Frame::Closed(code) => return (code, seen),
            }
        }
    }

    /// Reads until the close; asserts its code and a `room_closed` frame with `reason` before it.
    pub async fn closed_with_room_closed(&mut self, code: u16, reason: &str) -> Vec<Value> {
        let (got, frames) = self.closed().await;
        assert_eq!(got, code);
        let told = frames
            .iter()
            .any(|f| f["event"] == "room_closed" && f["reason"] == reason);
        assert!(told, "no room_closed ({reason}) before {code}: {frames:?}");
        frames
    }

    /// Collects every frame that arrives within `within`.
    pub async fn drain(&mut self, within: Duration) -> Vec<Value> {
        let mut seen = Vec::new();
        let deadline = Instant::now() + within;
        while let Ok(Some(Ok(msg))) = timeout(
            deadline.saturating_duration_since(Instant::now()),
            self.stream.next(),
        )
        .await
        {
            if let Message::Text(text) = msg {
                seen.push(serde_json::from_str(&text).expect("json"));
            }
        }
        seen
    }

    pub async fn send(&mut self, text: &str) {
        self.stream.send(Message::text(text)).await.expect("send");
    }

    pub async fn send_json(&mut self, value: Value) {
        self.send(&value.to_string()).await;
    }

    pub async fn send_binary(&mut self, bytes: Vec<u8>) {
        self.stream
            .send(Message::binary(bytes))
            .await
            .expect("send");
    }

    pub async fn say(&mut self, text: &str, client_id: &str) {
        self.send_json(json!({"type": "message", "text": text, "client_id": client_id}))
            .await;
    }

    /// Closes from the client side (a disconnect, not a leave).
    pub async fn disconnect(mut self) {
        let _ = self.stream.close(None).await;
    }

    /// Drops the TCP connection without a close handshake.
    pub fn kill(self) {
        drop(self);
    }
}
