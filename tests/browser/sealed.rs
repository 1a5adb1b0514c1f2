//! Encrypted rooms in the page (API.md, "Encrypted rooms"): made in the lobby, the key only in
//! the link's fragment and its QR code, messages encrypted and decrypted in the page, and
//! nothing readable reaching Redis or any log. The Rust side (crates/seal) and the page's
//! WebCrypto side agree, on fixed vectors and on each other's messages.

use crate::browser::{Browser, Driver, overlay_says, site};
use crate::cluster::Cluster;
use crate::page::{create_in_lobby, shared_link};
use seal::{RoomKey, message_aad, vectors};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

/// `redis-cli MONITOR`: every command Redis receives, kept until dropped (stopped by PID).
struct Monitor {
    child: Child,
    seen: Arc<Mutex<String>>,
}

impl Monitor {
    fn start(port: u16) -> Monitor {
        let mut child = Command::new("redis-cli")
            .args(["-p", &port.to_string(), "MONITOR"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-cli starts");
        let out = child.stdout.take().expect("stdout");
        let seen = Arc::new(Mutex::new(String::new()));
        let sink = seen.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                let mut seen = sink.lock().expect("monitor");
                seen.push_str(&line);
                seen.push('\n');
            }
        });
        Monitor { child, seen }
    }

    /// Waits until MONITOR is on (its "OK"), so nothing after this escapes it.
    async fn until_on(&self) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while !self.text().starts_with("OK") {
            assert!(std::time::Instant::now() < deadline, "MONITOR starts");
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn text(&self) -> String {
        self.seen.lock().expect("monitor").clone()
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The text `#qr` encodes: its PNG decoded and its QR code read.
async fn qr_text(browser: &Browser) -> String {
    let url = browser.js("document.getElementById('qr').src").await;
    let url = url.as_str().expect("src");
    let png = url
        .strip_prefix("data:image/png;base64,")
        .expect("a PNG drawn in the page");
    let png = base64_decode(png);
    let mut decoder = png::Decoder::new(std::io::Cursor::new(png));
    decoder.set_transformations(png::Transformations::EXPAND);
    let mut reader = decoder.read_info().expect("a PNG");
    let mut pixels = vec![0; reader.output_buffer_size().expect("a size")];
    let info = reader.next_frame(&mut pixels).expect("a frame");
    let channels = info.color_type.samples();
    let (width, height) = (info.width as usize, info.height as usize);
    let mut image = rqrr::PreparedImage::prepare_from_greyscale(width, height, |x, y| {
        pixels[(y * width + x) * channels]
    });
    let grids = image.detect_grids();
    assert_eq!(grids.len(), 1, "one QR code");
    grids[0].decode().expect("a readable QR code").1
}

fn base64_decode(text: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .expect("base64")
}

/// Opens `link` and joins as `name` from the join form.
pub(crate) async fn join_link(browser: &Browser, link: &str, name: &str) {
    browser.goto(link).await;
    browser
        .until("!document.getElementById('join').hidden")
        .await;
    browser.fill("#join-name", name).await;
    browser.click("#join-form button[type=submit]").await;
    browser.wait_live().await;
}

/// Waits until the page shows `texts`, in order, as its messages.
async fn shows(browser: &Browser, texts: &[&str]) {
    let expected = serde_json::to_string(texts).expect("json");
    browser
        .until(&format!(
            "JSON.stringify([...document.querySelectorAll('#messages .message .text')].map(e => e.textContent)) === {expected:?}"
        ))
        .await;
}

const NAME: &str = "Operation Nightingale";
const FIRST: &str = "the eagle lands at dawn";
const SECOND: &str = "copy that, see you at dawn";
const SCRIPTED: &str = "posted by a script with crates/seal";

#[tokio::test]
async fn two_people_chat_encrypted_and_neither_redis_nor_any_log_sees_a_word_or_the_key() {
    let cluster = Cluster::start(
        2,
        &[(
            "RUST_LOG",
            "info,ephemera=debug,ephemera_api=debug,ephemera_realtime=debug,ephemera_store=debug",
        )],
    );
    let app = cluster.app();
    let site = site(&cluster);
    let monitor = Monitor::start(cluster.redis().port);
    monitor.until_on().await;
    let driver = Driver::start();
    let alice = driver.browser(1200, 800, false).await;
    let bob = driver.browser(1200, 800, false).await;

    // Alice creates a named room in the lobby: encrypted is the default.
    alice.goto(&format!("{site}/")).await;
    alice
        .until("!document.getElementById('lobby').hidden")
        .await;
    assert_eq!(
        alice
            .js("document.querySelector('input[name=encrypted]').checked")
            .await,
        json!(true),
        "rooms made in the page are encrypted by default"
    );
    let id = create_in_lobby(&alice, &site, "alice", Some(NAME)).await;
    alice
        .until(&format!(
            "document.getElementById('room-title').textContent === {NAME:?}"
        ))
        .await;

    // The link and its QR code carry the key; the server keeps only what checks it.
    let link = shared_link(&alice).await;
    let (linked, key) = RoomKey::from_link(&link).expect("a link with its key");
    assert_eq!(linked, id);
    alice
        .until("!document.getElementById('share').hidden && document.getElementById('qr').complete && document.getElementById('qr').naturalWidth > 0")
        .await;
    assert_eq!(qr_text(&alice).await, link, "the QR code is the whole link");
    let details = app.details(&id).await;
    assert_eq!(details["encrypted"], true);
    assert_eq!(details["name"], Value::Null);
    assert!(key.checks(details["key_check"].as_str().expect("check")));
    let sealed_name = details["name_ciphertext"].as_str().expect("name");
    assert_eq!(key.open(sealed_name, seal::NAME_AAD).as_deref(), Ok(NAME));

    // Bob opens the link; they talk; each sees the other's words.
    join_link(&bob, &link, "bob").await;
    bob.until(&format!(
        "document.getElementById('room-title').textContent === {NAME:?}"
    ))
    .await;
    alice.fill("#text", &format!("{FIRST}\n")).await;
    shows(&bob, &[FIRST]).await;
    bob.fill("#text", &format!("{SECOND}\n")).await;
    shows(&alice, &[FIRST, SECOND]).await;

    // A script reads what the page wrote, and writes what the page reads.
    let history = app.messages(&id, None).await;
    let kept = history["messages"].as_array().expect("messages");
    let mut read = Vec::new();
    for m in kept {
        assert!(m.get("text").is_none(), "{m}");
        let aad = message_aad(&id, m["member_id"].as_str().expect("author"));
        read.push(key.open(m["ciphertext"].as_str().expect("sealed"), &aad));
    }
    assert_eq!(read, [Ok(FIRST.to_owned()), Ok(SECOND.to_owned())]);
    let (mut script, welcome) = app.member(&id, "script").await;
    let token = welcome["resume_token"].as_str().expect("token");
    let me = welcome["member_id"].as_str().expect("id");
    let res = app
        .http
        .post(app.url(&format!("/rooms/{id}/messages")))
        .bearer_auth(token)
        .json(&json!({"ciphertext": key.seal(SCRIPTED, &message_aad(&id, me))}))
        .send()
        .await
        .expect("post");
    assert_eq!(res.status(), 201);
    shows(&bob, &[FIRST, SECOND, SCRIPTED]).await;
    // A message moved to another author does not open, and the page says so, never showing it.
    let forged = key.seal("forged", &message_aad(&id, "someone-else"));
    script
        .send_json(json!({"type": "message", "ciphertext": forged}))
        .await;
    alice
        .until("[...document.querySelectorAll('#messages .message .text')].pop().textContent === 'This message could not be decrypted.'")
        .await;
    script.next_of("message").await;

    // Without its key, or with another, the link says so and joins nobody.
    let carol = driver.browser(1000, 700, false).await;
    carol.goto(&format!("{site}/r/{id}")).await;
    overlay_says(&carol, "This link is missing its key").await;
    let other = RoomKey::generate().link(&format!("{site}/r/{id}"));
    carol.goto(&other).await;
    overlay_says(&carol, "This link has the wrong key").await;
    assert_eq!(
        app.details(&id).await["online_users_count"],
        3,
        "alice, bob and the script; carol never joined"
    );

    // Nothing readable reached Redis or a log: not a word, not the name, not the key.
    let monitored = monitor.text();
    assert!(
        monitored.contains(kept[0]["ciphertext"].as_str().expect("sealed")),
        "MONITOR saw the messages go by (as ciphertext)"
    );
    let mut logs = String::new();
    for instance in &cluster.instances {
        let log = instance.logs();
        assert!(!log.contains("(more)"), "every log line read");
        logs.push_str(&log);
    }
    assert!(logs.contains("room created"), "the logs were captured");
    logs.push_str(&cluster.nginx.access_log());
    logs.push_str(&cluster.nginx.error_log());
    for i in 0..cluster.instances.len() {
        let metrics = cluster.instance(i).get("/metrics").await.text().await;
        logs.push_str(&metrics.expect("metrics"));
    }
    let key_text = key.to_base64url();
    for (place, seen) in [("Redis", &monitored), ("the logs and metrics", &logs)] {
        for secret in [NAME, FIRST, SECOND, SCRIPTED, "forged", key_text.as_str()] {
            assert!(!seen.contains(secret), "{place} saw {secret:?}");
        }
    }
    for browser in [alice, bob, carol] {
        browser.close().await;
    }
}

/// The vectors of crates/seal, computed by the page's WebCrypto code in Chromium.
#[tokio::test]
async fn the_pages_webcrypto_matches_the_rust_vectors() {
    let cluster = Cluster::start(1, &[]);
    let driver = Driver::start();
    let browser = driver.browser(800, 600, false).await;
    browser.goto(&format!("{}/", site(&cluster))).await;
    browser.until("typeof EphemeraSeal === 'object'").await;
    let script = r"
        const [key, iv, roomId, memberId, text, name, message, sealedName] = arguments;
        const done = arguments[arguments.length - 1];
        (async () => {
          const k = await EphemeraSeal.importKey(Uint8Array.from(key));
          const aad = EphemeraSeal.messageAad(roomId, memberId);
          return {
            key: EphemeraSeal.toBase64url(k.raw),
            check: await EphemeraSeal.keyCheck(k),
            message: await EphemeraSeal.seal(k, text, aad, Uint8Array.from(iv)),
            name: await EphemeraSeal.seal(k, name, EphemeraSeal.NAME_AAD, Uint8Array.from(iv)),
            opened: await EphemeraSeal.open(k, message, aad),
            openedName: await EphemeraSeal.open(k, sealedName, EphemeraSeal.NAME_AAD),
            wrongAuthor: await EphemeraSeal.open(k, message, EphemeraSeal.messageAad(roomId, 'x')).then(() => 'opened', () => 'refused'),
          };
        })().then(done, (e) => done(String(e)));
    ";
    let args = vec![
        json!(vectors::KEY),
        json!(vectors::IV),
        json!(vectors::ROOM_ID),
        json!(vectors::MEMBER_ID),
        json!(vectors::TEXT),
        json!(vectors::NAME),
        json!(vectors::MESSAGE),
        json!(vectors::SEALED_NAME),
    ];
    let got = browser
        .client
        .execute_async(script, args)
        .await
        .expect("runs");
    assert_eq!(
        got,
        json!({
            "key": vectors::KEY_BASE64URL,
            "check": vectors::KEY_CHECK,
            "message": vectors::MESSAGE,
            "name": vectors::SEALED_NAME,
            "opened": vectors::TEXT,
            "openedName": vectors::NAME,
            "wrongAuthor": "refused",
        })
    );
    browser.close().await;
}

/// A password room shows whether it is encrypted only to whom the password lets in: a wrong key
/// is found right after the welcome, before anything is shown, and the member leaves at once.
#[tokio::test]
async fn in_a_password_room_a_wrong_key_is_found_after_the_password_and_leaves_at_once() {
    let cluster = Cluster::start(1, &[]);
    let app = cluster.app();
    let site = site(&cluster);
    let driver = Driver::start();
    let alice = driver.browser(1000, 700, false).await;
    alice.goto(&format!("{site}/")).await;
    alice
        .until("!document.getElementById('lobby').hidden")
        .await;
    alice.fill("#create-owner", "alice").await;
    alice.fill("#create-password", "s3cret").await;
    alice.click("#create button[type=submit]").await;
    alice.wait_live().await;
    alice.fill("#text", &format!("{FIRST}\n")).await;
    shows(&alice, &[FIRST]).await;
    let id = alice.js("location.pathname.split('/')[2]").await;
    let id = id.as_str().expect("id").to_owned();

    let mallory = driver.browser(1000, 700, false).await;
    mallory
        .goto(&RoomKey::generate().link(&format!("{site}/r/{id}")))
        .await;
    mallory
        .until("!document.getElementById('join').hidden && !document.getElementById('join-password').hidden")
        .await;
    mallory.fill("#join-name", "mallory").await;
    mallory.fill("#join-pass", "s3cret").await;
    mallory.click("#join-form button[type=submit]").await;
    overlay_says(&mallory, "This link has the wrong key").await;
    assert_eq!(
        mallory
            .js("document.querySelectorAll('#messages .message').length")
            .await,
        json!(0),
        "nothing of the room was shown"
    );
    // Alice saw Mallory come and go; the room is Alice's alone again.
    alice
        .until("document.getElementById('messages').textContent.includes('mallory left')")
        .await;
    alice
        .until("document.getElementById('online-count').textContent === '1'")
        .await;
    let details = app
        .http
        .get(app.url(&format!("/rooms/{id}")))
        .header("X-Room-Password", "s3cret")
        .send()
        .await
        .expect("details")
        .json::<Value>()
        .await
        .expect("json");
    assert_eq!(details["online_users_count"], 1, "{details}");
    mallory.close().await;
    alice.close().await;
}
