//! `eph chat`: a room in the terminal. The conversation scrolls above a line editor (PageUp and
//! PageDown go back and forth in it); beside it, who is online; above it, the countdown and the
//! connection. Enter sends, Esc or Ctrl-C quits (a disconnect: the room keeps your place for its
//! grace), `/leave` leaves the room.

use crate::room::{Failure, RESUMABLE, Room, answer};
use crossterm::event::{Event, EventStream, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use futures_util::{SinkExt, StreamExt};
use ratatui::layout::{Constraint, Direction, Layout};
use ratatui::style::{Modifier, Style};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Borders, List, ListItem, Paragraph, Wrap};
use seal::message_aad;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use tokio_tungstenite::tungstenite::Message;

type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// What the screen shows.
struct Screen {
    title: String,
    status: String,
    lines: Vec<Line<'static>>,
    online: BTreeMap<String, (String, bool)>,
    typing: BTreeMap<String, (String, Instant)>,
    ends_at: Option<Instant>,
    input: Vec<char>,
    cursor: usize,
    /// Lines scrolled back from the newest (PageUp, PageDown).
    back: usize,
}

/// The connection's state.
struct Session {
    me: String,
    resume_token: Option<String>,
    last_id: u64,
    encrypted: bool,
    typed_at: Option<Instant>,
}

pub async fn run(
    room: Room,
    name: Option<String>,
    password: Option<String>,
    token: Option<String>,
) -> Result<(), Failure> {
    let details = room.details(password.as_deref(), token.as_deref()).await;
    // A password room's details need the password; without it the join below says why.
    if let Ok(details) = &details {
        room.check_key(details)?;
    }
    let title = details
        .as_ref()
        .ok()
        .and_then(|d| d["name"].as_str().map(str::to_owned))
        .unwrap_or_else(|| "Ephemera".to_owned());
    let mut socket = connect(
        &room,
        &join_query(
            &room,
            name.as_deref(),
            password.as_deref(),
            token.as_deref(),
        )
        .await?,
    )
    .await?;
    let mut terminal = ratatui::init();
    let mut screen = Screen {
        title,
        status: "Connecting…".into(),
        lines: Vec::new(),
        online: BTreeMap::new(),
        typing: BTreeMap::new(),
        ends_at: None,
        input: Vec::new(),
        cursor: 0,
        back: 0,
    };
    let mut session = Session {
        me: String::new(),
        resume_token: None,
        last_id: 0,
        encrypted: false,
        typed_at: None,
    };
    let mut keys = EventStream::new();
    let mut tick = tokio::time::interval(Duration::from_millis(250));
    let outcome = loop {
        let _ = terminal.draw(|f| draw(f, &screen));
        tokio::select! {
            frame = socket.next() => match frame {
                Some(Ok(Message::Text(text))) => {
                    if let Ok(mut frame) = serde_json::from_str::<Value>(&text) {
                        room.reveal(&mut frame);
                        on_frame(&mut screen, &mut session, &frame);
                    }
                }
                Some(Ok(Message::Close(close))) => {
                    let code = close.map(|c| u16::from(c.code)).unwrap_or(1005);
                    match reconnect(&room, &session, code).await {
                        Some(next) => { socket = next; screen.status = "Live".into(); }
                        None => { screen.status = format!("Ended ({code}): press a key"); let _ = terminal.draw(|f| draw(f, &screen)); wait_key(&mut keys).await; break Ok(()); }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => match reconnect(&room, &session, 1006).await {
                    Some(next) => { socket = next; screen.status = "Live".into(); }
                    None => break Err(Failure { message: "the connection was lost".into(), exit: 1 }),
                },
            },
            key = keys.next() => match key {
                Some(Ok(Event::Key(key))) if key.kind != KeyEventKind::Release => {
                    match on_key(&mut screen, key) {
                        Action::Quit => break Ok(()),
                        Action::Send(text) if text == "/leave" => {
                            let _ = socket.send(Message::text(json!({"type": "leave"}).to_string())).await;
                        }
                        Action::Send(text) => {
                            let out = outgoing(&room, &session, &text);
                            let _ = socket.send(Message::text(out.to_string())).await;
                        }
                        Action::Typed => {
                            if session.typed_at.is_none_or(|at| at.elapsed() > Duration::from_secs(2)) {
                                session.typed_at = Some(Instant::now());
                                let _ = socket.send(Message::text(json!({"type": "typing"}).to_string())).await;
                            }
                        }
                        Action::None => {}
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => break Ok(()),
            },
            _ = tick.tick() => screen.typing.retain(|_, (_, until)| *until > Instant::now()),
        }
    };
    ratatui::restore();
    let _ = socket.close(None).await;
    outcome
}

/// The WebSocket query of a first join: a ticket from `POST .../join`.
async fn join_query(
    room: &Room,
    name: Option<&str>,
    password: Option<&str>,
    token: Option<&str>,
) -> Result<String, Failure> {
    let mut req = room
        .http
        .post(format!("{}/rooms/{}/join", room.base, room.id))
        .json(&json!({"display_name": name, "password": password}));
    if let Some(token) = token {
        req = req.bearer_auth(token);
    }
    let ticket = answer(req.send().await).await?;
    Ok(format!(
        "ticket={}",
        ticket["ticket"].as_str().unwrap_or_default()
    ))
}

async fn connect(room: &Room, query: &str) -> Result<Socket, Failure> {
    let ws = room.base.replacen("http", "ws", 1);
    let url = format!("{ws}/rooms/{}/ws?{query}", room.id);
    let (socket, _) = tokio_tungstenite::connect_async(url)
        .await
        .map_err(|e| Failure {
            message: format!("cannot connect: {e}"),
            exit: 1,
        })?;
    Ok(socket)
}

/// After a close: a new connection resuming this member, or none when the code says to stay
/// closed (or the member is gone).
async fn reconnect(room: &Room, session: &Session, code: u16) -> Option<Socket> {
    if !(RESUMABLE.contains(&code) || code == 1006) {
        return None;
    }
    let token = session.resume_token.as_deref()?;
    for attempt in 0..10u64 {
        tokio::time::sleep(Duration::from_millis(300 * (attempt + 1))).await;
        let req = room
            .http
            .post(format!("{}/rooms/{}/resume", room.base, room.id))
            .bearer_auth(token);
        match answer(req.send().await).await {
            Ok(ticket) => {
                let query = format!(
                    "resume_ticket={}&last_id={}",
                    ticket["ticket"].as_str().unwrap_or_default(),
                    session.last_id
                );
                if let Ok(socket) = connect(room, &query).await {
                    return Some(socket);
                }
            }
            Err(failure) if failure.exit != 1 || failure.message.contains("HTTP 401") => {
                return None;
            }
            Err(_) => {}
        }
    }
    None
}

/// A message frame to send: ciphertext in an encrypted room.
fn outgoing(room: &Room, session: &Session, text: &str) -> Value {
    let client_id = format!("eph-{}", nanoid::nanoid!(12));
    match (session.encrypted, room.key.as_ref()) {
        (true, Some(key)) => {
            let sealed = key.seal(text, &message_aad(&room.id, &session.me));
            json!({"type": "message", "ciphertext": sealed, "client_id": client_id})
        }
        _ => json!({"type": "message", "text": text, "client_id": client_id}),
    }
}

fn on_frame(screen: &mut Screen, session: &mut Session, frame: &Value) {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_owned();
    match (frame["type"].as_str(), frame["event"].as_str()) {
        (Some("system"), Some("welcome")) => {
            session.me = text(&frame["member_id"]);
            session.encrypted = frame["encrypted"] == true;
            if let Some(token) = frame["resume_token"].as_str() {
                session.resume_token = Some(token.to_owned());
            }
            screen.online.clear();
            for user in frame["online_users"].as_array().into_iter().flatten() {
                let owner = user["role"] == "owner";
                screen.online.insert(
                    text(&user["member_id"]),
                    (text(&user["display_name"]), owner),
                );
            }
            let left = frame["expires_in"].as_u64().unwrap_or(0);
            screen.ends_at = Some(Instant::now() + Duration::from_secs(left));
            if frame["recovered"] == false && session.last_id > 0 {
                screen
                    .lines
                    .push(Line::from("— some messages were missed: no longer kept —"));
            }
            for event in frame["history"].as_array().into_iter().flatten() {
                match event["type"].as_str() {
                    Some("message") => show_message(screen, session, event),
                    _ => show_change(screen, session, event),
                }
            }
            screen.status = "Live".into();
        }
        (Some("system"), Some("room_closed")) => {
            screen
                .lines
                .push(Line::from(format!("— {} —", text(&frame["message"]))));
        }
        (Some("message"), _) => show_message(screen, session, frame),
        (Some("message_edited" | "message_deleted" | "reaction"), _) => {
            show_change(screen, session, frame)
        }
        (Some("presence"), _) => {
            let (id, name) = (text(&frame["member_id"]), text(&frame["display_name"]));
            if frame["event"] == "user_online" {
                screen
                    .online
                    .insert(id, (name.clone(), frame["role"] == "owner"));
                screen.lines.push(Line::from(format!("— {name} joined —")));
            } else {
                screen.online.remove(&id);
                screen.typing.remove(&id);
                let why = match frame["reason"].as_str() {
                    Some("kicked") => "was removed by the owner",
                    _ => "left",
                };
                screen.lines.push(Line::from(format!("— {name} {why} —")));
            }
        }
        (Some("room_updated"), _) => {
            // The whole state the owner changes, in one line.
            let mut state = vec![match frame["locked"] == true {
                true => "locked (nobody new can join)".to_owned(),
                false => "open to new members".to_owned(),
            }];
            state.push(format!("ends {}", text(&frame["expires_at"])));
            if let Some(until) = frame["owner_away_until"].as_str() {
                state.push(format!(
                    "the owner is away: it ends at {until} unless they return"
                ));
            }
            screen
                .lines
                .push(Line::from(format!("— the room: {} —", state.join("; "))));
        }
        (Some("typing"), _) => {
            let until = Instant::now() + Duration::from_secs(3);
            screen.typing.insert(
                text(&frame["member_id"]),
                (text(&frame["display_name"]), until),
            );
        }
        (Some("error"), _) => {
            screen.lines.push(Line::from(format!(
                "— not sent: {} —",
                text(&frame["message"])
            )));
        }
        _ => {}
    }
}

fn show_message(screen: &mut Screen, session: &mut Session, message: &Value) {
    let id = message["id"].as_u64().unwrap_or(0);
    if id <= session.last_id {
        return;
    }
    session.last_id = id;
    let author = message["display_name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    screen
        .typing
        .remove(message["member_id"].as_str().unwrap_or_default());
    let said = match (message["text"].as_str(), message["deleted"] == true) {
        (_, true) => "(deleted)".to_owned(),
        (Some(text), _) => text.to_owned(),
        (None, _) => "(this message could not be decrypted)".to_owned(),
    };
    let time = message["timestamp"]
        .as_str()
        .and_then(|t| t.get(11..16))
        .unwrap_or("")
        .to_owned();
    screen.lines.push(Line::from(vec![
        Span::styled(
            format!("{time} "),
            Style::default().add_modifier(Modifier::DIM),
        ),
        Span::styled(
            format!("{author}: "),
            Style::default().add_modifier(Modifier::BOLD),
        ),
        Span::raw(said),
    ]));
}

/// An edit, a deletion or a reaction, as one line naming the message it changes by its id.
fn show_change(screen: &mut Screen, session: &mut Session, event: &Value) {
    let id = event["id"].as_u64().unwrap_or(0);
    if id <= session.last_id {
        return;
    }
    session.last_id = id;
    let who = event["display_name"].as_str().unwrap_or_default();
    let target = event["target"].as_u64().unwrap_or(0);
    let line = match event["type"].as_str() {
        Some("message_edited") => match event["text"].as_str() {
            Some(text) => format!("— {who} edited message {target}: {text} —"),
            None if event["ciphertext"].is_string() => {
                format!("— {who} edited message {target} (could not be decrypted) —")
            }
            // Its message was deleted since: the deletion follows.
            None => return,
        },
        Some("message_deleted") => format!("— {who} deleted message {target} —"),
        _ => {
            let emoji = event["emoji"].as_str().unwrap_or_default();
            match event["on"] == true {
                true => format!("— {who} reacted {emoji} to message {target} —"),
                false => format!("— {who} took back {emoji} from message {target} —"),
            }
        }
    };
    screen.lines.push(Line::from(line));
}

enum Action {
    None,
    Typed,
    Send(String),
    Quit,
}

/// Line editing: characters, Backspace, Delete, Left, Right, Home, End; Enter sends.
fn on_key(screen: &mut Screen, key: KeyEvent) -> Action {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    match key.code {
        KeyCode::Esc => Action::Quit,
        KeyCode::Char('c' | 'd') if ctrl => Action::Quit,
        KeyCode::Char('a') if ctrl => {
            screen.cursor = 0;
            Action::None
        }
        KeyCode::Char('e') if ctrl => {
            screen.cursor = screen.input.len();
            Action::None
        }
        KeyCode::Char('u') if ctrl => {
            screen.input.drain(..screen.cursor);
            screen.cursor = 0;
            Action::None
        }
        KeyCode::Char(c) => {
            screen.input.insert(screen.cursor, c);
            screen.cursor += 1;
            Action::Typed
        }
        KeyCode::Backspace if screen.cursor > 0 => {
            screen.cursor -= 1;
            screen.input.remove(screen.cursor);
            Action::None
        }
        KeyCode::Delete if screen.cursor < screen.input.len() => {
            screen.input.remove(screen.cursor);
            Action::None
        }
        KeyCode::Left => {
            screen.cursor = screen.cursor.saturating_sub(1);
            Action::None
        }
        KeyCode::Right => {
            screen.cursor = (screen.cursor + 1).min(screen.input.len());
            Action::None
        }
        KeyCode::PageUp => {
            screen.back = (screen.back + 10).min(screen.lines.len().saturating_sub(1));
            Action::None
        }
        KeyCode::PageDown => {
            screen.back = screen.back.saturating_sub(10);
            Action::None
        }
        KeyCode::Home => {
            screen.cursor = 0;
            Action::None
        }
        KeyCode::End => {
            screen.cursor = screen.input.len();
            Action::None
        }
        KeyCode::Enter => {
            let text: String = screen.input.drain(..).collect();
            screen.cursor = 0;
            match text.trim().is_empty() {
                true => Action::None,
                false => Action::Send(text.trim().to_owned()),
            }
        }
        _ => Action::None,
    }
}

async fn wait_key(keys: &mut EventStream) {
    while let Some(Ok(event)) = keys.next().await {
        if matches!(event, Event::Key(_)) {
            return;
        }
    }
}

fn draw(frame: &mut ratatui::Frame, screen: &Screen) {
    let rows = Layout::default()
        .direction(Direction::Vertical)
        .constraints([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
            Constraint::Length(3),
        ])
        .split(frame.area());
    let countdown = screen.ends_at.map_or(String::new(), |end| {
        let left = end.saturating_duration_since(Instant::now()).as_secs();
        format!(
            "ends in {}:{:02}:{:02}",
            left / 3600,
            left / 60 % 60,
            left % 60
        )
    });
    let head = format!("{} · {} · {}", screen.title, screen.status, countdown);
    frame.render_widget(
        Paragraph::new(head).style(Style::default().add_modifier(Modifier::BOLD)),
        rows[0],
    );
    let middle = Layout::default()
        .direction(Direction::Horizontal)
        .constraints([Constraint::Min(20), Constraint::Length(24)])
        .split(rows[1]);
    // The newest lines that fit (or those PageUp went back to), the last at the bottom.
    let height = middle[0].height.saturating_sub(2) as usize;
    let end = screen.lines.len().saturating_sub(screen.back);
    let shown: Vec<Line> = screen.lines[end.saturating_sub(height)..end].to_vec();
    let title = match screen.back {
        0 => "Conversation".to_owned(),
        n => format!("Conversation ({n} lines back; PageDown returns)"),
    };
    frame.render_widget(
        Paragraph::new(shown)
            .wrap(Wrap { trim: false })
            .block(Block::default().borders(Borders::ALL).title(title)),
        middle[0],
    );
    let people: Vec<ListItem> = screen
        .online
        .values()
        .map(|(name, owner)| {
            ListItem::new(if *owner {
                format!("{name} (owner)")
            } else {
                name.clone()
            })
        })
        .collect();
    frame.render_widget(
        List::new(people).block(
            Block::default()
                .borders(Borders::ALL)
                .title(format!("Online {}", screen.online.len())),
        ),
        middle[1],
    );
    let typers: Vec<&str> = screen.typing.values().map(|(n, _)| n.as_str()).collect();
    let typing = match typers.len() {
        0 => String::new(),
        1 => format!("{} is typing…", typers[0]),
        _ => format!("{} are typing…", typers.join(", ")),
    };
    frame.render_widget(Paragraph::new(typing), rows[2]);
    let input: String = screen.input.iter().collect();
    frame.render_widget(
        Paragraph::new(input).block(
            Block::default()
                .borders(Borders::ALL)
                .title("Message (Enter sends, Esc quits)"),
        ),
        rows[3],
    );
    frame.set_cursor_position((rows[3].x + 1 + screen.cursor as u16, rows[3].y + 1));
}
