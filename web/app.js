// Ephemera's page: the lobby at `/`, a room at `/r/{room_id}`. Text from the network is only
// ever set as textContent: names, room names and messages can never become HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const roomId = (location.pathname.match(/^\/r\/([A-Za-z0-9_-]{21})\/?$/) || [])[1];

// ---- small helpers ---------------------------------------------------------------------

// Browser storage that never throws (private modes may refuse it).
function storage(area) {
  return {
    get(key) { try { return JSON.parse(area.getItem(key)); } catch { return null; } },
    set(key, value) { try { area.setItem(key, JSON.stringify(value)); } catch { /* full or off */ } },
    del(key) { try { area.removeItem(key); } catch { /* off */ } },
  };
}
const local = storage(window.localStorage);
const session = storage(window.sessionStorage);
// The owner token outlives a reload and a closed tab (so the owner can come back within the
// grace); the resume token lives in this tab only. Both are dropped when the room ends.
const ownerKey = (id) => `ephemera:owner:${id}`;
const sessionKey = (id) => `ephemera:session:${id}`;

function forget(id) {
  local.del(ownerKey(id));
  session.del(sessionKey(id));
}

// Drops owner tokens of rooms that have ended by now.
function purgeExpired() {
  for (let i = localStorage.length - 1; i >= 0; i--) {
    const key = localStorage.key(i);
    if (!key || !key.startsWith("ephemera:owner:")) continue;
    const entry = local.get(key);
    if (!entry || !(Date.parse(entry.expires_at) > Date.now())) local.del(key);
  }
}

const ADJECTIVES = ["Quiet", "Brave", "Calm", "Swift", "Sunny", "Clever", "Gentle", "Lucky", "Misty", "Bold"];
const ANIMALS = ["Otter", "Heron", "Lynx", "Falcon", "Panda", "Fox", "Koala", "Marten", "Robin", "Seal"];
function displayName() {
  let name = local.get("ephemera:name");
  if (typeof name !== "string" || !name.trim()) {
    const pick = (list) => list[Math.floor(Math.random() * list.length)];
    name = `${pick(ADJECTIVES)} ${pick(ANIMALS)}`;
    local.set("ephemera:name", name);
  }
  return name;
}
function rememberName(input) {
  input.value = displayName();
  input.addEventListener("change", () => { if (input.value.trim()) local.set("ephemera:name", input.value.trim()); });
}

class ApiError extends Error {
  constructor(status, code, detail, retryAfter) {
    super(detail);
    this.status = status;
    this.code = code;
    this.retryAfter = retryAfter; // seconds, from a limit's Retry-After
  }
}
const tryAgain = (err) => (err.retryAfter ? `Try again in ${err.retryAfter} s.` : "Wait a minute and try again.");
async function api(method, path, { body, token, password } = {}) {
  const headers = { "content-type": "application/json" };
  if (token) headers.authorization = `Bearer ${token}`;
  if (password) headers["x-room-password"] = password;
  let res;
  try {
    res = await fetch(path, { method, headers, body: body ? JSON.stringify(body) : undefined });
  } catch {
    throw new ApiError(0, "network", "Cannot reach the server. Check your connection.");
  }
  const data = await res.json().catch(() => ({}));
  if (!res.ok) {
    const retryAfter = Number(res.headers.get("retry-after")) || 0;
    throw new ApiError(res.status, data.code || "unknown", data.detail || res.statusText, retryAfter);
  }
  return data;
}

function banner(text) {
  $("banner").textContent = text || "";
  $("banner").hidden = !text;
}

function show(section) {
  for (const id of ["lobby", "join", "room"]) $(id).hidden = id !== section;
  document.body.classList.toggle("in-room", section === "room");
}

// Why a room is gone or refused: [title, explanation]. Keys are close reasons and error codes.
const GONE = {
  expired: ["This room has expired", "Its time ran out, and every message in it is gone."],
  closed: ["This room was destroyed", "It was closed on purpose. Every message in it is gone."],
  owner_offline: ["The owner left", "The room's owner went offline, so the room destroyed itself."],
  room_not_found: ["Room not found", "This room does not exist. It may have expired or been destroyed."],
  room_full: ["This room is full", "It has reached its user limit. Try again later."],
  left: ["You left the room", "You are no longer in this room."],
  replaced: ["Opened somewhere else", "You joined this room from another tab or device."],
};
// Refusals shown on the join form: the user can fix these.
const REFUSED = {
  invalid_password: "Wrong password. Try again.",
  password_required: "This room needs a password.",
  name_taken: "That name is taken in this room. Pick another one.",
  rate_limited: "Too many attempts.",
  invalid_request: "That name cannot be used. Pick another one.",
  room_full: "This room is full.",
};

// ---- lobby -----------------------------------------------------------------------------

function lobby() {
  show("lobby");
  document.title = "Ephemera";
  const gone = new URLSearchParams(location.search).get("gone");
  if (GONE[gone]) banner(`${GONE[gone][0]}. ${GONE[gone][1]}`);
  const form = $("create");
  rememberName(form.elements.owner_name);
  // The server renders its limits into the inputs: the presets outside them are hidden, and
  // the default lifetime is its preset, or else the custom one.
  const f = form.elements;
  const [minMinutes, maxMinutes] = [Number(f.minutes.min), Number(f.minutes.max)];
  const maxUsersLimit = Number(f.max_users.max);
  for (const radio of f.lifetime) {
    const minutes = Number(radio.value);
    if (radio.value !== "custom") radio.parentElement.hidden = minutes < minMinutes || minutes > maxMinutes;
    radio.checked = radio.value === f.minutes.value && !radio.parentElement.hidden;
  }
  if (!form.querySelector("input[name=lifetime]:checked")) form.querySelector("input[value=custom]").checked = true;
  const custom = () => form.querySelector("input[name=lifetime]:checked").value === "custom";
  const syncCustom = () => form.classList.toggle("custom-lifetime", custom());
  for (const radio of f.lifetime) radio.addEventListener("change", syncCustom);
  syncCustom();
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const owner = f.owner_name.value.trim();
    if (!owner) { banner("Enter your name."); f.owner_name.focus(); return; }
    const minutes = custom() ? Number(f.minutes.value) : Number(form.querySelector("input[name=lifetime]:checked").value);
    if (!Number.isInteger(minutes) || minutes < minMinutes || minutes > maxMinutes) {
      banner(`The lifetime is ${minMinutes} to ${maxMinutes} minutes.`); f.minutes.focus(); return;
    }
    const maxUsers = Number(f.max_users.value);
    if (!Number.isInteger(maxUsers) || maxUsers < 1 || maxUsers > maxUsersLimit) {
      banner(`The user limit is 1 to ${maxUsersLimit}.`); f.max_users.focus(); return;
    }
    local.set("ephemera:name", owner);
    const button = form.querySelector("button[type=submit]");
    button.disabled = true;
    try {
      const room = await api("POST", "/rooms", { body: {
        owner_name: owner,
        name: f.name.value.trim() || undefined,
        password: f.password.value || undefined,
        expiry_seconds: minutes * 60,
        max_users: maxUsers,
        destroy_on_owner_offline: f.destroy_on_owner_offline.checked,
        members_can_destroy: f.members_can_destroy.checked,
      } });
      local.set(ownerKey(room.room_id), { token: room.owner_token, expires_at: room.expires_at });
      location.assign(`/r/${room.room_id}`);
    } catch (err) {
      banner(err.code === "rate_limited" ? `You created many rooms just now. ${tryAgain(err)}` : err.message);
      button.disabled = false;
    }
  });
}

// ---- room ------------------------------------------------------------------------------

let details = null; // GET /rooms/{id} (for a password room: once joined)
const state = {
  socket: null,
  credentials: null,   // {name, password} of this tab's join, to fetch a new ticket
  refusal: null,       // the code of the error frame a refused connection got
  me: null,            // member_id
  role: null,
  lastId: 0,           // the last message id shown
  resumeToken: null,
  membersCanDestroy: false,
  online: new Map(),   // member_id -> {display_name, role}
  typers: new Map(),   // member_id -> {name, until}
  deadline: 0,         // performance.now() at which the room expires
  attempt: 0,          // reconnect attempts since the last welcome
  ended: false,
  lastTypingSent: 0,
  unread: 0,           // messages from others that arrived while the page was hidden
};

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = `status ${kind || ""}`;
}

function end(reason) {
  if (state.ended) return;
  state.ended = true;
  forget(roomId);
  const [title, text] = GONE[reason] || GONE.room_not_found;
  $("overlay-title").textContent = title;
  $("overlay-text").textContent = text;
  $("overlay-home").href = `/?gone=${encodeURIComponent(reason)}`;
  $("overlay").hidden = false;
  $("say").querySelector("textarea").disabled = true;
  setStatus("Disconnected", "off");
  if (state.socket) state.socket.close(1000);
  $("overlay-home").focus();
}

// Countdown from the server's expires_in, measured on the monotonic clock.
function setExpiry(seconds) {
  state.deadline = performance.now() + seconds * 1000;
  tick();
}
function tick() {
  if (!state.deadline) return;
  const left = Math.max(0, Math.round((state.deadline - performance.now()) / 1000));
  const h = Math.floor(left / 3600), m = Math.floor((left % 3600) / 60), s = left % 60;
  const pad = (n) => String(n).padStart(2, "0");
  const el = $("countdown");
  el.textContent = h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
  el.setAttribute("aria-label", `Self-destructs in ${h ? `${h} h ` : ""}${m} min ${s} s`);
  el.classList.toggle("warning", left < 300 && left >= 60);
  el.classList.toggle("critical", left < 60);
}

function renderPeople() {
  const list = $("online");
  list.replaceChildren();
  const people = [...state.online.entries()].sort(([, a], [, b]) =>
    (a.role === "owner" ? -1 : 0) - (b.role === "owner" ? -1 : 0) || a.display_name.localeCompare(b.display_name));
  for (const [id, person] of people) {
    const li = document.createElement("li");
    const name = document.createElement("span");
    name.textContent = person.display_name;
    li.append(name);
    if (person.role === "owner") li.append(badge("owner"));
    if (id === state.me) li.append(badge("you"));
    list.append(li);
  }
  $("online-count").textContent = String(state.online.size);
}
function badge(text) {
  const b = document.createElement("span");
  b.className = `badge ${text}`;
  b.textContent = text;
  return b;
}

function renderTyping() {
  const now = Date.now();
  for (const [id, t] of state.typers) if (t.until < now) state.typers.delete(id);
  const names = [...state.typers.values()].map((t) => t.name);
  $("typing").textContent =
    names.length === 0 ? "" :
    names.length === 1 ? `${names[0]} is typing…` :
    names.length === 2 ? `${names[0]} and ${names[1]} are typing…` : "Several people are typing…";
}

const messages = () => $("messages");
const nearBottom = () => {
  const m = messages();
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
};
function scrollDown() {
  messages().scrollTop = messages().scrollHeight;
  $("jump").hidden = true;
}

// Appends `node` without yanking a reader who scrolled up.
function append(node, force) {
  const follow = force || nearBottom();
  messages().append(node);
  if (follow) scrollDown(); else $("jump").hidden = false;
}

function notice(text) {
  const li = document.createElement("li");
  li.className = "notice";
  li.textContent = text;
  append(li);
}

// Message text as text nodes, with http(s) links made clickable (never fetched or previewed).
function linkify(target, text) {
  const pattern = /https?:\/\/[^\s<>"']+/g;
  let at = 0;
  for (const match of text.matchAll(pattern)) {
    target.append(text.slice(at, match.index));
    let url = null;
    try { url = new URL(match[0]); } catch { /* not a URL */ }
    if (url && (url.protocol === "https:" || url.protocol === "http:")) {
      const a = document.createElement("a");
      a.href = url.href;
      a.textContent = match[0];
      a.rel = "noopener noreferrer nofollow ugc";
      a.target = "_blank";
      target.append(a);
    } else {
      target.append(match[0]);
    }
    at = match.index + match[0].length;
  }
  target.append(text.slice(at));
}

function message(m) {
  if (m.id <= state.lastId) return; // already shown (replay after a resume)
  state.lastId = m.id;
  session.set(sessionKey(roomId), { resume_token: state.resumeToken, last_id: state.lastId });
  const mine = m.member_id === state.me;
  const when = new Date(m.timestamp);
  const prev = messages().lastElementChild;
  const grouped = prev && prev.dataset.member === m.member_id && when - Number(prev.dataset.time) < 5 * 60 * 1000;
  const li = document.createElement("li");
  li.className = `message${mine ? " mine" : ""}${grouped ? " grouped" : ""}`;
  li.dataset.id = String(m.id);
  li.dataset.member = m.member_id;
  li.dataset.time = String(when.getTime());
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("span");
  who.className = "who";
  who.textContent = mine ? `${m.display_name} (you)` : m.display_name;
  const time = document.createElement("time");
  time.dateTime = m.timestamp;
  time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  meta.append(who, " ", time);
  const body = document.createElement("p");
  body.className = "text";
  linkify(body, m.text);
  li.append(meta, body);
  state.typers.delete(m.member_id);
  renderTyping();
  append(li, mine);
  if (!mine && document.hidden) {
    state.unread += 1;
    renderTitle();
  }
}

// The tab's title: the room's name, after the count of unread messages while the tab is hidden.
function renderTitle() {
  const name = `${(details && details.name) || "Room"} · Ephemera`;
  document.title = state.unread ? `(${state.unread}) ${name}` : name;
}

function presence(p) {
  if (p.event === "user_online") {
    if (!state.online.has(p.member_id)) notice(`${p.display_name} joined`);
    state.online.set(p.member_id, { display_name: p.display_name, role: p.role });
  } else {
    state.online.delete(p.member_id);
    state.typers.delete(p.member_id);
    renderTyping();
    notice(`${p.display_name} left`);
  }
  renderPeople();
}

function welcome(w) {
  state.me = w.member_id;
  state.role = w.role;
  state.resumeToken = w.resume_token;
  state.attempt = 0;
  state.online = new Map(w.online_users.map((u) => [u.member_id, { display_name: u.display_name, role: u.role }]));
  renderPeople();
  setExpiry(w.expires_in);
  if (details) showDetails();
  else {
    // A password room: its details are readable now, with this member's token.
    api("GET", `/rooms/${roomId}`, { token: w.resume_token })
      .then((d) => { details = d; showDetails(); })
      .catch(() => { /* the title stays generic */ });
  }
  if (!w.recovered && state.lastId > 0) {
    // Some missed messages are no longer kept: history is the whole state now.
    messages().replaceChildren();
    state.lastId = 0;
    notice("Some earlier messages are no longer available.");
  }
  for (const m of w.history) message(m);
  session.set(sessionKey(roomId), { resume_token: state.resumeToken, last_id: state.lastId });
  setStatus("Live", "live");
  $("text").disabled = false;
}

function frame(f) {
  if (f.type === "message") message(f);
  else if (f.type === "presence") presence(f);
  else if (f.type === "typing") {
    state.typers.set(f.member_id, { name: f.display_name, until: Date.now() + 3000 });
    renderTyping();
  } else if (f.type === "system" && f.event === "welcome") welcome(f);
  else if (f.type === "system" && f.event === "room_closed") end(f.reason);
  else if (f.type === "error") {
    const text = {
      rate_limited: "You are sending too fast. Slow down.",
      message_too_long: "That message is too long.",
      empty_message: "That message is empty.",
      unavailable: "The server is busy: your message may not have been sent. If it does not appear, send it again.",
      forbidden: "You are not allowed to do that.",
    }[f.code];
    if (text) notice(text);
    if (!state.me) state.refusal = f.code;
  }
}

// Close codes: which end the room for this page, which send back to the join form, and which
// reconnect (with backoff, jitter and the resume token).
const TERMINAL = { 1000: "left", 4000: "replaced", 4001: "expired", 4002: "closed", 4003: "owner_offline", 4004: "room_not_found", 4403: "room_full" };
const REJOIN = new Set([4401, 4409, 4422]);

function connect(query) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${proto}//${location.host}/rooms/${roomId}/ws?${query}`);
  state.socket = socket;
  state.refusal = null;
  setStatus(state.attempt ? "Reconnecting…" : "Connecting…", "pending");
  socket.onmessage = (e) => {
    let f;
    try { f = JSON.parse(e.data); } catch { return; }
    frame(f);
  };
  socket.onclose = (e) => {
    if (state.socket !== socket || state.ended) return;
    state.socket = null;
    $("text").disabled = true;
    if (TERMINAL[e.code]) { end(TERMINAL[e.code]); return; }
    if (REJOIN.has(e.code)) {
      session.del(sessionKey(roomId));
      state.resumeToken = null;
      askToJoin(REFUSED[state.refusal] || "Your session ended. Join again.");
      return;
    }
    // 1001 drain, 1006 lost, 1011/1013 server trouble, 4008 fell behind, 4029 too fast.
    const base = e.code === 4029 ? 10000 : Math.min(30000, 500 * 2 ** state.attempt);
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    state.attempt += 1;
    setStatus(`Reconnecting in ${Math.ceil(delay / 1000)} s…`, "pending");
    setTimeout(() => {
      if (state.ended) return;
      if (state.resumeToken) connect(`resume=${encodeURIComponent(state.resumeToken)}&last_id=${state.lastId}`);
      else join(state.credentials);
    }, delay);
  };
}

// Gets a ticket (as the owner when this browser holds the owner token) and connects with it.
async function join(credentials) {
  const owner = local.get(ownerKey(roomId));
  state.credentials = credentials;
  try {
    const ticket = owner
      ? await api("POST", `/rooms/${roomId}/join`, { body: {}, token: owner.token })
      : await api("POST", `/rooms/${roomId}/join`, { body: { display_name: credentials.name, password: credentials.password || undefined } });
    enterRoom();
    connect(`ticket=${encodeURIComponent(ticket.ticket)}`);
  } catch (err) {
    if (err.code === "room_not_found") { end("room_not_found"); return; }
    if (err.code === "unauthorized" && owner) { local.del(ownerKey(roomId)); askToJoin("Join as a member."); return; }
    askToJoin(err.code === "rate_limited" ? `${REFUSED.rate_limited} ${tryAgain(err)}` : REFUSED[err.code] || err.message);
  }
}

function enterRoom() {
  show("room");
  banner("");
  $("share-link").value = `${location.origin}/r/${roomId}`;
  if (details) showDetails();
}

function showDetails() {
  $("room-title").textContent = details.name || "Untitled room";
  renderTitle();
  state.membersCanDestroy = details.members_can_destroy;
  $("destroy-btn").hidden = !(state.role === "owner" || state.membersCanDestroy);
}

function askToJoin(message) {
  show("join");
  banner(message || "");
  const needsPassword = !details || details.has_password;
  $("join-password").hidden = !needsPassword;
  $("join-title").textContent = details ? `Join ${details.name || "this room"}` : "Join a password-protected room";
  $("join-info").textContent = details
    ? `${details.online_users_count} of ${details.max_users} online · hosted by ${details.owner_name}`
    : "Ask the person who shared the link for the password.";
  const input = $("join-name");
  if (!input.value) rememberName(input);
  (needsPassword && input.value ? $("join-pass") : input).focus();
}

async function room() {
  try {
    details = await api("GET", `/rooms/${roomId}`);
    setExpiry(details.expires_in);
  } catch (err) {
    if (err.code === "room_not_found") { show("room"); end("room_not_found"); return; }
    if (err.code !== "password_required") { askToJoin(err.message); return; }
  }
  const saved = session.get(sessionKey(roomId));
  if (saved && saved.resume_token) {
    // A reload: resume this tab's membership and get the conversation again.
    state.resumeToken = saved.resume_token;
    enterRoom();
    connect(`resume=${encodeURIComponent(saved.resume_token)}&last_id=0`);
  } else if (local.get(ownerKey(roomId))) {
    join(null);
  } else {
    askToJoin("");
  }
}

function wireRoom() {
  $("join-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const name = $("join-name").value.trim();
    if (!name) { banner("Enter your name."); $("join-name").focus(); return; }
    local.set("ephemera:name", name);
    join({ name, password: $("join-pass").value });
  });
  const text = $("text");
  $("say").addEventListener("submit", (e) => {
    e.preventDefault();
    const value = text.value.trim();
    if (!value || !state.socket || state.socket.readyState !== WebSocket.OPEN) return;
    state.socket.send(JSON.stringify({ type: "message", text: value }));
    text.value = "";
  });
  text.addEventListener("keydown", (e) => {
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing) {
      e.preventDefault();
      $("say").requestSubmit();
    }
  });
  text.addEventListener("input", () => {
    const now = Date.now();
    if (text.value && now - state.lastTypingSent > 2000 && state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.lastTypingSent = now;
      state.socket.send(JSON.stringify({ type: "typing" }));
    }
  });
  $("jump").addEventListener("click", scrollDown);
  messages().addEventListener("scroll", () => { if (nearBottom()) $("jump").hidden = true; });
  $("share-btn").addEventListener("click", () => {
    const open = $("share").hidden;
    $("share").hidden = !open;
    $("share-btn").setAttribute("aria-expanded", String(open));
    if (open && !$("qr").getAttribute("src")) $("qr").src = `/r/${roomId}/qr.svg`;
  });
  $("copy-btn").addEventListener("click", async () => {
    const link = $("share-link");
    try { await navigator.clipboard.writeText(link.value); } catch { link.select(); document.execCommand("copy"); }
    $("copy-btn").textContent = "Copied";
    setTimeout(() => { $("copy-btn").textContent = "Copy link"; }, 2000);
  });
  const leave = async () => {
    state.ended = true;
    if (state.resumeToken) {
      await api("POST", `/rooms/${roomId}/leave`, { token: state.resumeToken }).catch(() => { /* gone already */ });
    }
    forget(roomId);
    location.assign("/");
  };
  // An owner whose room ends when they leave is asked first: it ends for everyone.
  const leaving = $("confirm-leave");
  $("leave-btn").addEventListener("click", () => {
    if (state.role === "owner" && details && details.destroy_on_owner_offline) leaving.showModal();
    else leave();
  });
  leaving.addEventListener("close", () => { if (leaving.returnValue === "leave") leave(); });
  const dialog = $("confirm-destroy");
  $("destroy-btn").addEventListener("click", () => dialog.showModal());
  dialog.addEventListener("close", () => {
    if (dialog.returnValue === "destroy" && state.socket && state.socket.readyState === WebSocket.OPEN) {
      state.socket.send(JSON.stringify({ type: "close_room" }));
    }
  });
  document.addEventListener("visibilitychange", () => {
    if (!document.hidden && state.unread) {
      state.unread = 0;
      renderTitle();
    }
  });
  setInterval(() => { tick(); renderTyping(); }, 1000);
}

// Length limits count characters (code points), as the server does; `maxlength` would count
// UTF-16 units, so an emoji would count twice.
document.addEventListener("input", (e) => {
  const max = Number(e.target.dataset?.maxChars);
  if (!max) return;
  const chars = [...e.target.value];
  if (chars.length > max) e.target.value = chars.slice(0, max).join("");
});

purgeExpired();
if (roomId) { wireRoom(); room(); } else { lobby(); }
