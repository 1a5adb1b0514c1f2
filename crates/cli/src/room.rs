//! A room as `eph` reaches it: its link (server, id, key), the REST calls, and `tail`.

use protocol::rest::PostMessageRequest;
use seal::{RoomKey, message_aad};
use serde_json::Value;
use std::time::Duration;

/// Why a command failed, and the exit code that says so.
#[derive(Debug)]
pub struct Failure {
    pub message: String,
    pub exit: u8,
}

impl Failure {
    pub fn usage(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            exit: 2,
        }
    }

    fn refused(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            exit: 1,
        }
    }

    fn gone(message: impl Into<String>) -> Failure {
        Failure {
            message: message.into(),
            exit: 3,
        }
    }
}

/// A room: the server it lives on, its id, and its key when the link carries one.
pub struct Room {
    pub base: String,
    pub id: String,
    pub key: Option<RoomKey>,
    pub http: reqwest::Client,
}

impl Room {
    /// `http(s)://host[:port]/r/<room_id>[#k=<key>]`.
    pub fn from_link(link: &str) -> Result<Room, Failure> {
        let bad = || Failure::usage(format!("not a room link: {link} (…/r/<room_id>)"));
        let page = link.split('#').next().unwrap_or(link).trim_end_matches('/');
        let (base, id) = page.rsplit_once("/r/").ok_or_else(bad)?;
        if !protocol::is_room_id(id)
            || !(base.starts_with("http://") || base.starts_with("https://"))
        {
            return Err(bad());
        }
        let key = match link.split_once('#') {
            Some((_, fragment)) if fragment.contains("k=") => Some(
                RoomKey::from_link(link)
                    .map_err(|e| Failure::usage(format!("{e}")))?
                    .1,
            ),
            _ => None,
        };
        Ok(Room {
            base: base.to_owned(),
            id: id.to_owned(),
            key,
            http: client(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/rooms/{}{path}", self.base, self.id)
    }

    /// The room's details, its name decrypted in an encrypted room.
    pub async fn details(
        &self,
        password: Option<&str>,
        token: Option<&str>,
    ) -> Result<Value, Failure> {
        let mut req = self.http.get(self.url(""));
        if let Some(password) = password {
            req = req.header("X-Room-Password", password);
        }
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let mut details = answer(req.send().await).await?;
        if details["encrypted"] == true {
            let key = self.key()?;
            details["name"] = match details["name_ciphertext"].as_str() {
                Some(sealed) => key
                    .open(sealed, seal::NAME_AAD)
                    .map(Value::String)
                    .unwrap_or(Value::Null),
                None => Value::Null,
            };
        }
        Ok(details)
    }

    /// The key of an encrypted room, checked against the room's key check.
    pub fn key(&self) -> Result<&RoomKey, Failure> {
        self.key.as_ref().ok_or_else(|| {
            Failure::usage(
                "this room is end-to-end encrypted, and the link is missing its key (#k=…)",
            )
        })
    }

    /// Checks the link's key against `details` (an encrypted room's `key_check`).
    pub fn check_key(&self, details: &Value) -> Result<(), Failure> {
        if details["encrypted"] != true {
            return Ok(());
        }
        let check = details["key_check"].as_str().unwrap_or_default();
        if !self.key()?.checks(check) {
            return Err(Failure::usage("the link's key is not this room's key"));
        }
        Ok(())
    }

    /// Posts as the owner; encrypts in an encrypted room, as its owner member.
    pub async fn say(&self, token: &str, text: &str, client_id: &str) -> Result<Value, Failure> {
        let details = self.details(None, Some(token)).await?;
        self.check_key(&details)?;
        let mut body = PostMessageRequest {
            client_id: Some(client_id.to_owned()),
            ..PostMessageRequest::default()
        };
        match details["encrypted"] == true {
            true => {
                let owner = details["owner_member_id"].as_str().unwrap_or_default();
                let aad = message_aad(&self.id, owner);
                body.ciphertext = Some(self.key()?.seal(text.trim(), &aad));
            }
            false => body.text = Some(text.to_owned()),
        }
        let req = self
            .http
            .post(self.url("/messages"))
            .bearer_auth(token)
            .json(&body);
        let mut posted = answer(req.send().await).await?;
        self.reveal(&mut posted);
        Ok(posted)
    }

    pub async fn destroy(&self, token: &str) -> Result<(), Failure> {
        answer(
            self.http
                .delete(self.url(""))
                .bearer_auth(token)
                .send()
                .await,
        )
        .await?;
        Ok(())
    }

    /// In a message frame of an encrypted room, `text` decrypted beside `ciphertext` (or
    /// `"undecryptable": true`); a welcome's history the same way.
    pub fn reveal(&self, frame: &mut Value) {
        if let Some(history) = frame.get_mut("history").and_then(Value::as_array_mut) {
            for message in history {
                self.reveal(message);
            }
            return;
        }
        let (Some(sealed), Some(author)) =
            (frame["ciphertext"].as_str(), frame["member_id"].as_str())
        else {
            return;
        };
        let opened = self
            .key
            .as_ref()
            .and_then(|key| key.open(sealed, &message_aad(&self.id, author)).ok());
        match opened {
            Some(text) => frame["text"] = text.into(),
            None => frame["undecryptable"] = true.into(),
        }
    }

    /// Follows the room over Server-Sent Events, printing each event's frame as one JSON line
    /// (with `"event"` added; a welcome's messages as message lines of their own), and resumes
    /// after the last message id on every reconnect: every message is printed once.
    pub async fn tail(&self, token: &str) -> Result<(), Failure> {
        let details = self.details(None, Some(token)).await?;
        self.check_key(&details)?;
        let mut last_id: Option<u64> = None;
        let mut backoff = Duration::from_millis(200);
        loop {
            let mut req = self
                .http
                .get(self.url("/events"))
                .bearer_auth(token)
                .timeout(Duration::from_secs(24 * 3600));
            if let Some(id) = last_id {
                req = req.header("Last-Event-ID", id.to_string());
            }
            let res = match req.send().await {
                Ok(res) if res.status().is_success() => res,
                Ok(res) if res.status().is_server_error() => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
                Ok(res) => return answer(Ok(res)).await.map(|_| ()),
                Err(_) => {
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(5));
                    continue;
                }
            };
            backoff = Duration::from_millis(200);
            match self.follow(res, &mut last_id).await {
                Some(code) if RESUMABLE.contains(&code) => continue,
                // The room ended, or this membership did: nothing more to follow.
                Some(code) if (4001..=4004).contains(&code) || code == 1000 => return Ok(()),
                Some(code) => {
                    return Err(Failure::refused(format!(
                        "the server closed the stream ({code})"
                    )));
                }
                // The connection broke: resume.
                None => continue,
            }
        }
    }

    /// Prints one stream's events; the close code it ended with, if it said one.
    async fn follow(&self, mut res: reqwest::Response, last_id: &mut Option<u64>) -> Option<u16> {
        let mut buffer = String::new();
        loop {
            while let Some(end) = buffer.find("\n\n") {
                let block: String = buffer.drain(..end + 2).collect();
                let (mut kind, mut data) = ("message".to_owned(), None);
                for line in block.lines() {
                    if let Some(k) = line.strip_prefix("event: ") {
                        kind = k.to_owned();
                    } else if let Some(id) = line.strip_prefix("id: ") {
                        *last_id = id.parse().ok().or(*last_id);
                    } else if let Some(d) = line.strip_prefix("data: ") {
                        data = serde_json::from_str::<Value>(d).ok();
                    }
                }
                let Some(mut frame) = data else { continue };
                if kind == "close" {
                    return frame["code"].as_u64().map(|c| c as u16);
                }
                self.reveal(&mut frame);
                // The messages a welcome brings (a first connection's history, or what a
                // resume missed) are message lines like any other, after the welcome's.
                let brought = match frame.get_mut("history") {
                    Some(history) => std::mem::replace(history, Value::Array(Vec::new())),
                    None => Value::Null,
                };
                frame["event"] = kind.into();
                println!("{frame}");
                for mut message in brought.as_array().cloned().unwrap_or_default() {
                    message["event"] = "message".into();
                    println!("{message}");
                }
            }
            match res.chunk().await {
                Ok(Some(bytes)) => buffer.push_str(&String::from_utf8_lossy(&bytes)),
                _ => return None,
            }
        }
    }
}

/// Close codes after which a client comes back (API.md, "Close codes").
pub const RESUMABLE: [u16; 5] = [1001, 1011, 1013, 4008, 4029];

pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default()
}

/// `POST /rooms` on the server at `base`.
pub async fn create(base: &str, body: &Value) -> Result<Value, Failure> {
    let url = format!("{}/rooms", base.trim_end_matches('/'));
    answer(client().post(url).json(body).send().await).await
}

/// A JSON answer, or the failure the server (or the network) says.
pub async fn answer(res: reqwest::Result<reqwest::Response>) -> Result<Value, Failure> {
    let res = res.map_err(|e| Failure::refused(format!("cannot reach the server: {e}")))?;
    let status = res.status();
    let body: Value = res.json().await.unwrap_or(Value::Null);
    if status.is_success() {
        return Ok(body);
    }
    let detail = body["detail"].as_str().unwrap_or("refused");
    let code = body["code"].as_str().unwrap_or("unknown");
    let message = format!("{detail} ({code}, HTTP {})", status.as_u16());
    Err(match code {
        "room_not_found" => Failure::gone(message),
        _ => Failure::refused(message),
    })
}
