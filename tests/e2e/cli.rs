//! `eph`, the command-line client, driven as a user drives it: against a real cluster through
//! nginx (create, show, say, tail across an instance kill, destroy) and in a pseudo-terminal
//! (`chat`, through `script`).

use crate::cluster::Cluster;
use crate::process::eph;
use seal::{RoomKey, message_aad};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

fn run(args: &[&str], stdin: Option<&str>) -> Output {
    let mut child = Command::new(eph())
        .args(args)
        .env_remove("EPHEMERA_TOKEN")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("eph runs");
    let mut input = child.stdin.take().expect("stdin");
    input
        .write_all(stdin.unwrap_or("").as_bytes())
        .expect("stdin");
    drop(input);
    child.wait_with_output().expect("eph ends")
}

fn stdout(out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn eph_creates_says_tails_across_an_instance_kill_and_destroys() {
    let mut cluster = Cluster::start(2, &[("EPHEMERA_PRESENCE_GRACE_SECONDS", "10")]);
    let site = format!("http://127.0.0.1:{}", cluster.nginx.port);
    let dir =
        std::env::temp_dir().join(format!("eph-{}-{}", std::process::id(), cluster.nginx.port));
    std::fs::create_dir_all(&dir).expect("dir");
    let token_file = dir.join("owner.token");
    let token_path = token_file.to_str().expect("path");

    // Bad usage is exit 2, said on stderr.
    let out = run(
        &["say", &format!("{site}/r/V1StGXR8_Z5jdHi6B-myT"), "x"],
        None,
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("owner token"));

    // Create: the link (with its key) on stdout, the token in a file only its owner reads.
    let out = run(
        &[
            "create",
            "--url",
            &site,
            "--owner",
            "alice",
            "--name",
            "Ops war room",
            "--keep-when-owner-leaves",
            "--token-file",
            token_path,
        ],
        None,
    );
    let link = stdout(&out).trim().to_owned();
    let (id, key) = RoomKey::from_link(&link).expect("a link with its key");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&token_file)
        .expect("token file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let shown = stdout(&run(&["show", &link, "--token-file", token_path], None));
    assert!(
        shown.contains("Ops war room") && shown.contains("end-to-end encrypted"),
        "{shown}"
    );

    // Tail follows as the owner; say posts from an argument and from stdin.
    let mut tail = Command::new(eph())
        .args(["tail", &link, "--token-file", token_path])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tail runs");
    let (lines_tx, lines) = mpsc::channel::<Value>();
    let out = tail.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            let _ = lines_tx.send(serde_json::from_str(&line).expect("a JSON line"));
        }
    });
    let next_message = |lines: &mpsc::Receiver<Value>| loop {
        let event = lines
            .recv_timeout(Duration::from_secs(15))
            .expect("an event");
        if event["event"] == "message" {
            return event;
        }
    };
    let welcome = lines
        .recv_timeout(Duration::from_secs(15))
        .expect("welcome");
    assert_eq!(welcome["event"], "welcome");
    stdout(&run(
        &["say", &link, "--token-file", token_path, "first", "words"],
        None,
    ));
    stdout(&run(
        &["say", &link, "--token-file", token_path],
        Some("second, from stdin\n"),
    ));
    let mut seen = Vec::new();
    for expected in ["first words", "second, from stdin"] {
        let m = next_message(&lines);
        assert_eq!(m["text"], expected, "decrypted: {m}");
        assert!(m["ciphertext"].is_string(), "it came encrypted: {m}");
        seen.push(m["id"].as_u64().expect("id"));
    }
    // What eph encrypted, anyone with the key reads.
    let history = cluster.app().messages(&id, None).await;
    let first = &history["messages"][0];
    let author = first["member_id"].as_str().expect("author");
    assert_eq!(
        key.open(
            first["ciphertext"].as_str().expect("sealed"),
            &message_aad(&id, author)
        ),
        Ok("first words".to_owned())
    );

    // The instance streaming to tail dies; tail resumes through nginx, missing nothing.
    let streaming = cluster.holding_the_one_connection().await;
    cluster.instances[streaming].kill();
    stdout(&run(
        &["say", &link, "--token-file", token_path, "third"],
        None,
    ));
    let m = next_message(&lines);
    assert_eq!(m["text"], "third");
    seen.push(m["id"].as_u64().expect("id"));
    assert_eq!(seen, [1, 2, 3], "nothing missed, nothing twice");

    // Destroy: tail ends (exit 0, the room ended), and the room is gone (exit 3).
    stdout(&run(&["destroy", &link, "--token-file", token_path], None));
    let closed = lines
        .recv_timeout(Duration::from_secs(15))
        .expect("room_closed");
    assert_eq!(closed["event"], "room_closed");
    let status = exit_within(
        &mut tail,
        Duration::from_secs(10),
        "tail ends with the room",
    );
    assert!(status.success());
    let out = run(&["show", &link, "--token-file", token_path], None);
    assert_eq!(out.status.code(), Some(3));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn eph_chat_in_a_terminal_sends_and_shows_messages() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let site = format!("http://127.0.0.1:{}", cluster.nginx.port);
    let out = run(
        &["create", "--url", &site, "--owner", "alice", "--json"],
        None,
    );
    let created: Value = serde_json::from_str(stdout(&out).trim()).expect("json");
    let link = created["link"].as_str().expect("link").to_owned();
    let (id, key) = RoomKey::from_link(&link).expect("key");
    let (mut bob, welcome) = app.member(&id, "bob").await;
    let bob_id = welcome["member_id"].as_str().expect("id").to_owned();

    // carol chats in a pseudo-terminal (`script` gives eph a tty), 100 x 30.
    let command = format!(
        "stty rows 30 cols 100; exec {} chat '{link}' --name carol",
        eph()
    );
    let mut chat = Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("script (util-linux) runs");
    let mut keys = chat.stdin.take().expect("stdin");
    // What the terminal shows, as a terminal (a VT100 emulator) draws the bytes eph writes.
    let (screen_tx, screen) = mpsc::channel::<Vec<u8>>();
    let mut out = chat.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = out.read(&mut buf) {
            if n == 0 {
                break;
            }
            let _ = screen_tx.send(buf[..n].to_vec());
        }
    });
    let mut terminal = vt100::Parser::new(30, 100, 0);
    let online = bob.presence("user_online").await;
    assert_eq!(online["display_name"], "carol");
    let sealed = key.seal("hi carol, from bob", &message_aad(&id, &bob_id));
    bob.send_json(json!({"type": "message", "ciphertext": sealed}))
        .await;
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shown = terminal.screen().contents();
        if shown.contains("bob: hi carol, from bob") {
            assert!(shown.contains("Online 2"), "who is online:\n{shown}");
            assert!(shown.contains("ends in 0:59:"), "the countdown:\n{shown}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the terminal shows bob's message:\n{shown}"
        );
        if let Ok(more) = screen.recv_timeout(Duration::from_millis(200)) {
            terminal.process(&more);
        }
    }
    // Bob edits (sealed, as his message), reacts and deletes: one line each, the edit decrypted.
    let fixed = key.seal("hi carol, fixed", &message_aad(&id, &bob_id));
    for frame in [
        json!({"type": "edit", "target": 1, "ciphertext": fixed}),
        json!({"type": "react", "target": 1, "emoji": "👍"}),
        json!({"type": "delete", "target": 1}),
    ] {
        bob.send_json(frame).await;
    }
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let shown = terminal.screen().contents();
        if shown.contains("bob deleted message 1") {
            assert!(
                shown.contains("bob edited message 1: hi carol, fixed"),
                "{shown}"
            );
            assert!(shown.contains("bob reacted 👍 to message 1"), "{shown}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the terminal shows the edit, the reaction and the deletion:\n{shown}"
        );
        if let Ok(more) = screen.recv_timeout(Duration::from_millis(200)) {
            terminal.process(&more);
        }
    }
    keys.write_all(b"hello from the terminal\r").expect("types");
    keys.flush().expect("flush");
    let said = loop {
        let m = bob.next_of("message").await;
        if m["display_name"] == "carol" {
            break m;
        }
    };
    let author = said["member_id"].as_str().expect("author");
    assert_eq!(
        key.open(
            said["ciphertext"].as_str().expect("encrypted"),
            &message_aad(&id, author)
        ),
        Ok("hello from the terminal".to_owned())
    );
    // Ctrl-C quits: a disconnect, and the terminal is given back.
    keys.write_all(b"\x03").expect("ctrl-c");
    keys.flush().expect("flush");
    let status = exit_within(&mut chat, Duration::from_secs(10), "chat quits on Ctrl-C");
    assert!(status.success(), "{status}");
}

/// The child's exit status; panics with `what` if it still runs after `within`.
fn exit_within(child: &mut Child, within: Duration, what: &str) -> ExitStatus {
    let deadline = Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "{what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}
