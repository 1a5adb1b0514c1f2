// Ephemera's page: the lobby at `/`, a room at `/r/{room_id}`. Text from the network is only
// ever set as textContent: names, room names and messages can never become HTML.
"use strict";

const $ = (id) => document.getElementById(id);
const roomId = (location.pathname.match(/^\/r\/([A-Za-z0-9_-]{21})\/?$/) || [])[1];
// The instance's presence grace: how long a member may be away before it counts as gone.
const GRACE_SECONDS = Number(document.querySelector("meta[name='ephemera:grace-seconds']")?.content) || 10;
// The bounds of a room's end: at least this long from now, at most this long from its creation.
const [MIN_EXPIRY_SECONDS, MAX_EXPIRY_SECONDS] = (document.querySelector("meta[name='ephemera:expiry-seconds']")?.content || "60 86400").split(" ").map(Number);
// How long after sending its author may edit a message.
const EDIT_WINDOW_SECONDS = Number(document.querySelector("meta[name='ephemera:edit-window-seconds']")?.content) || 900;
// Phones and tablets: Enter makes a new line there, the Send button sends.
const TOUCH = window.matchMedia("(pointer: coarse)").matches;

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
  removed: ["You were removed", "The room's owner removed you from this room. You cannot join it again."],
  banned: ["You cannot join this room", "Its owner removed you from it."],
  locked: ["This room is locked", "Its owner is not letting anyone new in right now. Try again later."],
  // The page held a membership or the owner token, and the room is gone now.
  ended_while_away: ["This room has ended", "It ended while you were away. Every message in it is gone."],
  owner_ended_while_away: ["Your room has ended", "It ended while you were away: it expired, was destroyed, or you were offline longer than it waits for its owner. Every message in it is gone."],
};
// Not an end: this member is live in another tab or device, which may hand it back.
const REPLACED = ["Opened in another tab", "This room is open in another tab or on another device. You can keep using it there, or use it here instead."];
// Refusals shown on the join form: the user can fix these.
const REFUSED = {
  invalid_password: "Wrong password. Try again.",
  password_required: "This room needs a password.",
  name_taken: "That name is taken in this room. Pick another one.",
  rate_limited: "Too many attempts.",
  invalid_request: "That name cannot be used. Pick another one.",
  room_full: "This room is full.",
  room_locked: "This room is locked: its owner is not letting anyone new in. Try again later.",
};

// ---- lobby -----------------------------------------------------------------------------

function lobby() {
  show("lobby");
  document.title = "Ephemera";
  const gone = new URLSearchParams(location.search).get("gone");
  if (GONE[gone]) banner(`${GONE[gone][0]}. ${GONE[gone][1]}`);
  // Said once: a reload (or Back) shows a fresh lobby, not an old room's ending.
  if (location.search) history.replaceState(null, "", "/");
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
  // Encryption needs WebCrypto, which browsers give only to secure (HTTPS or local) pages.
  if (!EphemeraSeal.available) {
    f.encrypted.checked = false;
    f.encrypted.disabled = true;
    $("create-encrypted-hint").textContent = "End-to-end encryption needs a secure (HTTPS) connection to this site.";
  }
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
      const name = f.name.value.trim() || undefined;
      const body = {
        owner_name: owner,
        name,
        password: f.password.value || undefined,
        expiry_seconds: minutes * 60,
        max_users: maxUsers,
        destroy_on_owner_offline: f.destroy_on_owner_offline.checked,
        members_can_destroy: f.members_can_destroy.checked,
      };
      // An encrypted room: its key is made here and travels only in the link's fragment; the
      // server gets the key check and, for a name, its ciphertext.
      let fragment = "";
      if (f.encrypted.checked) {
        const key = await EphemeraSeal.newKey();
        body.encrypted = true;
        body.key_check = await EphemeraSeal.keyCheck(key);
        body.name = undefined;
        if (name) body.name_ciphertext = await EphemeraSeal.seal(key, name, EphemeraSeal.NAME_AAD);
        fragment = `#k=${EphemeraSeal.toBase64url(key.raw)}`;
      }
      const room = await api("POST", "/rooms", { body });
      // `invite`: the owner lands on the invite view once.
      local.set(ownerKey(room.room_id), { token: room.owner_token, expires_at: room.expires_at, invite: true });
      location.assign(`/r/${room.room_id}${fragment}`);
    } catch (err) {
      // The server says why (the creation rate, or the rooms this address holds open) and when.
      banner(err.message);
      button.disabled = false;
    }
  });
}

// ---- room ------------------------------------------------------------------------------

let details = null; // GET /rooms/{id} (for a password room: once joined); `name` decrypted
let roomKey = null; // an encrypted room's key, from the link's fragment
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
  warned: new Set(),   // the countdown warnings already given (300, 60 s)
  attempt: 0,          // reconnect attempts since the last welcome
  retryAt: 0,          // performance.now() of the next reconnect, while one waits
  retryTimer: 0,
  lostAt: 0,           // performance.now() when the connection dropped (0 while live)
  ended: false,
  replaced: false,     // another tab or device holds this membership now
  lastTypingSent: 0,
  unread: 0,           // messages from others that arrived while the page was hidden
  pending: null,       // {client_id, text, sent}: the message in the box, until the server takes it
  resuming: false,     // a resume ticket is being asked for
  ownerId: null,       // the owner's member_id, once seen online
  stay: null,          // what the overlay's "stay" button does (another tab holds the room)
  encrypted: false,    // the room's messages are ciphertext (from the welcome)
  unlocked: false,     // this page's key passed the room's key check
  held: null,          // frames that arrived while the key was being checked, in order
  locked: false,       // the owner locked the room (no new members)
  ownerAwayUntil: 0,   // performance.now() at which the room ends unless its away owner returns
  target: null,        // the member the owner's open dialog (remove, make owner) is about
  msgs: new Map(),     // message id -> {m, li, body, plain}: the messages this page shows
  names: new Map(),    // member_id -> display name, of everyone seen (reactions name them)
  replyTo: null,       // the message the next one answers
  editing: null,       // the message the box is editing
  deleting: null,      // the message the open delete dialog is about
  mentionPick: 0,      // the highlighted name of the @mention list
};

function setStatus(text, kind) {
  $("status").textContent = text;
  $("status").className = `status ${kind || ""}`;
}

const roomName = () => (details && details.name) || "Untitled room";

// The overlay that explains why this page left the room. `stay` is a [label, action] that
// offers the room back (another tab holds it).
function overlay([title, text], stay) {
  $("overlay-title").textContent = title;
  $("overlay-text").textContent = text;
  $("overlay-stay").hidden = !stay;
  if (stay) $("overlay-stay").textContent = stay[0];
  state.stay = stay && stay[1];
  const dialog = $("overlay");
  if (!dialog.open) dialog.showModal();
  (stay ? $("overlay-stay") : $("overlay-home")).focus();
}

function end(reason) {
  if (state.ended) return;
  state.ended = true;
  forget(roomId);
  clearTimeout(state.retryTimer);
  state.deadline = 0; // the countdown stops: there is nothing left to count down to
  $("countdown").textContent = "Ended";
  $("countdown").className = "countdown ended";
  $("away").hidden = true;
  $("retry-btn").hidden = true;
  $("overlay-home").href = `/?gone=${encodeURIComponent(reason)}`;
  overlay(GONE[reason] || GONE.room_not_found);
  $("text").disabled = true;
  $("say").querySelector("button[type=submit]").disabled = true;
  setStatus("Ended", "off");
  if (state.socket) state.socket.close(1000);
}

// Another tab took this membership over (4000): nothing is forgotten, and this tab can take it
// back.
function replaced() {
  state.replaced = true;
  clearTimeout(state.retryTimer);
  setStatus("Open in another tab", "off");
  overlay(REPLACED, ["Use this tab", takeOver]);
}
function takeOver() {
  if (!state.replaced) return;
  state.replaced = false;
  if ($("overlay").open) $("overlay").close();
  // The owner's newest tab holds the resume token now; the owner token gets the room back.
  if (local.get(ownerKey(roomId))) join(null); else reconnect();
}

// Tabs of one browser tell each other when they let a room go, so a tab that was replaced
// takes the room back by itself when the newer tab is closed.
const tabs = roomId && typeof BroadcastChannel === "function" ? new BroadcastChannel(`ephemera:${roomId}`) : null;
if (tabs) {
  tabs.onmessage = (e) => { if (e.data === "released") takeOver(); };
  window.addEventListener("pagehide", () => { if (live()) tabs.postMessage("released"); });
}

// The countdown's warnings: seconds left, and what is said then.
const WARNINGS = [[300, "This room self-destructs in 5 minutes."], [60, "This room self-destructs in 1 minute."]];

// Countdown from the server's expires_in, measured on the monotonic clock.
function setExpiry(seconds) {
  state.deadline = performance.now() + seconds * 1000;
  // Warnings already past are not given again (a reload at 0:45 says nothing of 5 minutes).
  for (const [at] of WARNINGS) if (seconds <= at) state.warned.add(at);
  tick();
}
const hms = (left) => [Math.floor(left / 3600), Math.floor((left % 3600) / 60), left % 60];
const clock = (left) => {
  const [h, m, s] = hms(left);
  const pad = (n) => String(n).padStart(2, "0");
  return h ? `${h}:${pad(m)}:${pad(s)}` : `${m}:${pad(s)}`;
};
function tick() {
  renderAway();
  renderOwnerAway();
  if (!state.deadline) return;
  const left = Math.max(0, Math.round((state.deadline - performance.now()) / 1000));
  const [h, m, s] = hms(left);
  const el = $("countdown");
  el.textContent = clock(left);
  el.setAttribute("aria-label", `Self-destructs in ${h ? `${h} h ` : ""}${m} min ${s} s`);
  el.classList.toggle("warning", left < 300 && left >= 60);
  el.classList.toggle("critical", left < 60);
  // Said in the conversation and to screen readers, once each, not by colour alone.
  for (const [at, text] of WARNINGS) {
    if (left <= at && left > 0 && !state.warned.has(at)) {
      state.warned.add(at);
      notice(text, "warning");
      announce(text);
    }
  }
}
function announce(text) {
  // Re-set, so the same words are read again.
  $("announce").textContent = "";
  setTimeout(() => { $("announce").textContent = text; }, 50);
}

// While disconnected: when the next attempt comes, and for an owner whose room ends with them,
// how long the room has left.
function renderAway() {
  if (state.ended || state.replaced || !state.lostAt) return;
  if (state.retryAt) {
    const wait = Math.max(0, Math.ceil((state.retryAt - performance.now()) / 1000));
    setStatus(wait ? `Reconnecting in ${wait} s…` : "Reconnecting…", "pending");
  }
  const risky = state.role === "owner" && details && details.destroy_on_owner_offline;
  const away = $("away");
  away.hidden = !risky;
  if (risky) {
    const grace = details.owner_grace_seconds || GRACE_SECONDS;
    const left = Math.max(0, Math.round(grace - (performance.now() - state.lostAt) / 1000));
    away.textContent = `This room ends in ${clock(left)} unless you reconnect.`;
  }
}

function renderPeople() {
  const list = $("online");
  list.replaceChildren();
  const people = [...state.online.entries()].sort(([, a], [, b]) =>
    (a.role === "owner" ? -1 : 0) - (b.role === "owner" ? -1 : 0) || a.display_name.localeCompare(b.display_name));
  for (const [id, person] of people) {
    const li = document.createElement("li");
    li.append(isolated(person.display_name));
    if (person.role === "owner") li.append(badge("owner"));
    if (id === state.me) li.append(badge("you"));
    if (state.role === "owner" && id !== state.me) li.append(memberMenu(id, person.display_name));
    list.append(li);
  }
  $("online-count").textContent = String(state.online.size);
}
// The owner's menu for another member: remove (and bar) it, or make it the owner.
function memberMenu(id, name) {
  const menu = document.createElement("span");
  menu.className = "member-menu";
  const button = (label, dialogId, text) => {
    const b = document.createElement("button");
    b.type = "button";
    b.className = "link";
    b.textContent = label;
    b.setAttribute("aria-label", `${label}: ${name}`);
    b.addEventListener("click", () => {
      state.target = id;
      $(`${dialogId}-text`).textContent = text;
      $(dialogId).showModal();
    });
    return b;
  };
  menu.append(
    button("Remove", "confirm-kick", `${name} is disconnected now, and can no longer join this room from their address or under that name.`),
    button("Make owner", "confirm-handover", `${name} gets the owner's controls, and the room then ends with them instead of you. You stay as a member.`),
  );
  return menu;
}
function badge(text) {
  const b = document.createElement("span");
  b.className = `badge ${text}`;
  b.textContent = text;
  return b;
}
// User text in its own bidirectional context: a name can never reorder what stands beside it.
function isolated(text) {
  const b = document.createElement("bdi");
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
const scroller = () => $("scroller");
const nearBottom = () => {
  const m = scroller();
  return m.scrollHeight - m.scrollTop - m.clientHeight < 80;
};
function scrollDown() {
  scroller().scrollTop = scroller().scrollHeight;
  $("jump").hidden = true;
}

// Appends `node` without yanking a reader who scrolled up.
function append(node, force) {
  const follow = force || nearBottom();
  messages().append(node);
  if (follow) scrollDown(); else $("jump").hidden = false;
}

// A line from the page itself. The same words twice in a row become one line with a count.
function notice(text, kind) {
  const last = messages().lastElementChild;
  if (last && last.classList.contains("notice") && last.dataset.text === text) {
    const times = Number(last.dataset.times) + 1;
    last.dataset.times = String(times);
    last.textContent = `${text} (×${times})`;
    return;
  }
  const li = document.createElement("li");
  li.className = `notice${kind ? ` ${kind}` : ""}`;
  li.dataset.text = text;
  li.dataset.times = "1";
  li.textContent = text;
  append(li);
}

// ---- the conversation: messages, and the edits, deletions and reactions that change them -

// Every event of the conversation takes the room's next id (API.md): the last one seen is where
// a resume starts.
function seen(id) {
  state.lastId = id;
  session.set(sessionKey(roomId), { resume_token: state.resumeToken, last_id: state.lastId });
}
const nameOf = (id) => (state.online.get(id) || {}).display_name || state.names.get(id) || "someone who left";
// Who can be @mentioned: everyone online.
const mentionable = () => [...state.online.values()].map((p) => p.display_name);
const myName = () => (state.online.get(state.me) || {}).display_name || "";

// `fresh`: it arrived live (not from a welcome's history), so it may notify.
function message(m, fresh) {
  const mine = m.member_id === state.me;
  // Its echo, or (for a retry the server already had) the original, which may be older.
  if (mine && state.pending && m.client_id === state.pending.client_id) taken();
  if (m.id <= state.lastId) return; // already shown (replay after a resume)
  seen(m.id);
  state.names.set(m.member_id, m.display_name);
  const when = new Date(m.timestamp);
  const prev = messages().lastElementChild;
  const grouped = prev && prev.dataset.member === m.member_id && !m.reply_to && when - Number(prev.dataset.time) < 5 * 60 * 1000;
  const li = document.createElement("li");
  li.className = `message${mine ? " mine" : ""}${grouped ? " grouped" : ""}`;
  li.id = `m-${m.id}`;
  li.dataset.id = String(m.id);
  li.dataset.member = m.member_id;
  li.dataset.time = String(when.getTime());
  const meta = document.createElement("div");
  meta.className = "meta";
  const who = document.createElement("span");
  who.className = "who";
  who.append(isolated(m.display_name));
  if (mine) who.append(" (you)");
  // The owner's name is reserved in its room, so it marks the owner even while they are away.
  if (m.member_id === state.ownerId || (details && m.display_name === details.owner_name)) who.append(" ", badge("owner"));
  const time = document.createElement("time");
  time.dateTime = m.timestamp;
  time.textContent = when.toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  const edited = document.createElement("span");
  edited.className = "edited";
  edited.textContent = " · edited";
  meta.append(who, " ", time, edited);
  const body = document.createElement("div");
  body.className = "text";
  const reactions = document.createElement("div");
  reactions.className = "reactions";
  li.append(meta);
  if (m.reply_to) {
    const quote = document.createElement("button");
    quote.type = "button";
    quote.className = "quote";
    quote.dataset.target = String(m.reply_to);
    quote.addEventListener("click", () => jumpTo(m.reply_to));
    li.append(quote);
  }
  li.append(body, reactions, messageMenu(li));
  const shown = { m, li, body, fresh };
  state.msgs.set(m.id, shown);
  renderMessage(shown);
  for (const q of li.querySelectorAll(".quote")) renderQuote(q);
  state.typers.delete(m.member_id);
  renderTyping();
  append(li, mine);
  if (!mine && document.hidden) {
    state.unread += 1;
    renderTitle();
  }
}

// An edit, a deletion or a reaction: applied to its message where this page shows it (one
// older than what the page holds has nothing to change).
function amend(e) {
  if (e.id <= state.lastId) return;
  seen(e.id);
  state.names.set(e.member_id, e.display_name);
  const shown = state.msgs.get(e.target);
  if (!shown) return;
  const m = shown.m;
  if (e.type === "message_edited") {
    // An edit of a message deleted since has lost its content: the deletion follows.
    if (e.text === undefined && e.ciphertext === undefined) return;
    Object.assign(m, { text: e.text, ciphertext: e.ciphertext, edited: true });
    shown.fresh = false;
    renderMessage(shown);
  } else if (e.type === "message_deleted") {
    Object.assign(m, { text: undefined, ciphertext: undefined, deleted: true, edited: false, reactions: [] });
    renderMessage(shown);
    if (state.editing === e.target) stopContext();
    if (state.replyTo === e.target) stopContext();
  } else if (e.type === "reaction") {
    const list = m.reactions || (m.reactions = []);
    let r = list.find((x) => x.emoji === e.emoji);
    if (!r) { r = { emoji: e.emoji, member_ids: [] }; list.push(r); }
    r.member_ids = r.member_ids.filter((id) => id !== e.member_id);
    if (e.on) r.member_ids.push(e.member_id);
    m.reactions = list.filter((x) => x.member_ids.length);
    renderReactions(shown);
  }
  for (const q of document.querySelectorAll(`.quote[data-target="${e.target}"]`)) renderQuote(q);
}

// A message's text, its marks and its reactions, as it is now.
function renderMessage(shown) {
  const { m, li, body } = shown;
  shown.version = (shown.version || 0) + 1;
  li.classList.toggle("deleted", Boolean(m.deleted));
  li.classList.toggle("is-edited", Boolean(m.edited));
  body.replaceChildren();
  body.className = "text";
  if (m.deleted) {
    body.textContent = "Message deleted";
    body.classList.add("gone");
  } else if (state.encrypted) {
    reveal(shown);
  } else {
    showText(shown, m.text);
  }
  renderReactions(shown);
}

// The text, formatted; a mention of this member marks the message (and may notify).
function showText(shown, text) {
  const { m, li, body } = shown;
  shown.plain = text;
  body.replaceChildren();
  EphemeraFormat.render(body, text, mentionable());
  const me = m.member_id !== state.me && EphemeraFormat.mentions(text, myName());
  li.classList.toggle("mentions-me", me);
  if (shown.fresh) {
    shown.fresh = false;
    alertFor(m, text, me);
  }
  for (const q of document.querySelectorAll(`.quote[data-target="${m.id}"]`)) renderQuote(q);
}

// An encrypted message's text, once decrypted (in place, so the order on screen is the order
// of ids). A message that does not open with this key as its room and author, or that came as
// plaintext into an encrypted room, is never shown as text.
function reveal(shown) {
  const { m, body } = shown;
  body.textContent = "Decrypting…";
  body.classList.add("sealed");
  const opened = typeof m.ciphertext === "string"
    ? EphemeraSeal.open(roomKey, m.ciphertext, EphemeraSeal.messageAad(roomId, m.member_id))
    : Promise.reject(new Error("plaintext in an encrypted room"));
  const version = shown.version;
  opened.then((text) => {
    if (shown.version !== version) return; // edited or deleted meanwhile
    const follow = nearBottom();
    body.classList.remove("sealed");
    showText(shown, text);
    if (follow) scrollDown();
  }, () => {
    if (shown.version !== version) return;
    body.textContent = "This message could not be decrypted.";
    body.classList.replace("sealed", "undecryptable");
  });
}

function renderReactions(shown) {
  const box = shown.li.querySelector(".reactions");
  box.replaceChildren();
  for (const r of shown.m.reactions || []) {
    const mine = r.member_ids.includes(state.me);
    const b = document.createElement("button");
    b.type = "button";
    b.className = "reaction";
    b.setAttribute("aria-pressed", String(mine));
    const who = r.member_ids.map(nameOf).join(", ");
    b.title = who;
    b.setAttribute("aria-label", `${r.emoji} ${r.member_ids.length}: ${who}`);
    b.textContent = `${r.emoji} ${r.member_ids.length}`;
    b.addEventListener("click", () => act({ type: "react", target: shown.m.id, emoji: r.emoji }));
    box.append(b);
  }
}

// A reply's quote of the message it answers: who and what it said, or that it is gone.
function renderQuote(q) {
  const shown = state.msgs.get(Number(q.dataset.target));
  q.classList.toggle("missing", !shown || Boolean(shown.m.deleted));
  if (!shown) q.textContent = "↩ a message no longer here";
  else if (shown.m.deleted) q.textContent = `↩ ${shown.m.display_name}: message deleted`;
  else q.textContent = `↩ ${shown.m.display_name}: ${shown.plain === undefined ? "…" : EphemeraFormat.excerpt(shown.plain)}`;
}
function jumpTo(id) {
  const li = $(`m-${id}`);
  if (!li) return;
  li.scrollIntoView({ block: "center", behavior: "smooth" });
  li.classList.remove("flash");
  void li.offsetWidth; // restarts the highlight
  li.classList.add("flash");
}

// The actions on a message: reply, react, and (its author) edit, (its author or the owner)
// delete.
const QUICK_EMOJI = ["👍", "❤️", "😂", "🎉", "😮", "😢"];
function messageMenu(li) {
  const menu = document.createElement("details");
  menu.className = "msg-menu";
  const summary = document.createElement("summary");
  summary.setAttribute("aria-label", "Message actions");
  summary.textContent = "⋯";
  const box = document.createElement("div");
  box.className = "msg-actions";
  menu.append(summary, box);
  menu.addEventListener("toggle", () => {
    if (!menu.open) return;
    for (const other of document.querySelectorAll(".msg-menu[open]")) if (other !== menu) other.open = false;
    fillMenu(box, state.msgs.get(Number(li.dataset.id)));
  });
  box.addEventListener("click", (e) => { if (e.target.closest("button")) menu.open = false; });
  return menu;
}
function fillMenu(box, shown) {
  box.replaceChildren();
  const { m } = shown;
  const button = (label, run, cls) => {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = label;
    if (cls) b.className = cls;
    b.addEventListener("click", run);
    box.append(b);
    return b;
  };
  if (m.deleted) { button("Reply", () => startReply(m)); return; }
  const row = document.createElement("div");
  row.className = "quick-emoji";
  row.setAttribute("role", "group");
  row.setAttribute("aria-label", "React");
  for (const emoji of QUICK_EMOJI) {
    const b = document.createElement("button");
    b.type = "button";
    b.textContent = emoji;
    b.setAttribute("aria-label", `React ${emoji}`);
    b.addEventListener("click", () => act({ type: "react", target: m.id, emoji }));
    row.append(b);
  }
  box.append(row);
  button("Reply", () => startReply(m));
  const mine = m.member_id === state.me;
  const sent = Date.parse(m.timestamp);
  if (mine && shown.plain !== undefined && Date.now() - sent < EDIT_WINDOW_SECONDS * 1000) button("Edit", () => startEdit(shown));
  if (mine || state.role === "owner") {
    button("Delete", () => {
      state.deleting = m.id;
      $("confirm-delete-text").textContent = mine ? "It is deleted for everyone, now." : `${m.display_name}'s message is deleted for everyone, now.`;
      $("confirm-delete").showModal();
    }, "danger");
  }
}

// Sends an action on a message; its broadcast is the answer.
function act(f) {
  if (live()) state.socket.send(JSON.stringify(f));
  else notice("Not connected: try again in a moment.");
}

// Replying to, or editing, a message: a line above the box says which, with a way out.
function startReply(m) {
  state.replyTo = m.id;
  state.editing = null;
  const shown = state.msgs.get(m.id);
  const what = m.deleted ? "a deleted message" : EphemeraFormat.excerpt((shown && shown.plain) || "");
  showContext(`Replying to ${m.display_name}: ${what}`);
}
function startEdit(shown) {
  if (state.pending) return;
  state.editing = shown.m.id;
  state.replyTo = null;
  showContext("Editing your message");
  $("text").value = shown.plain;
  renderBox();
}
function showContext(text) {
  $("context-text").textContent = text;
  $("context").hidden = false;
  $("text").focus();
}
function stopContext() {
  if (state.editing) { $("text").value = ""; renderBox(); }
  state.replyTo = null;
  state.editing = null;
  $("context").hidden = true;
}

// ---- alerts: desktop notifications and a sound, each asked for and off until then ---------

const prefs = () => ({ notify: local.get("ephemera:notify") === true, sound: local.get("ephemera:sound") === true });
function renderAlerts() {
  const p = prefs();
  const granted = "Notification" in window && Notification.permission === "granted";
  $("notify-btn").setAttribute("aria-pressed", String(p.notify && granted));
  $("notify-btn").textContent = p.notify && granted ? "Notifications: on" : "Notifications: off";
  $("sound-btn").setAttribute("aria-pressed", String(p.sound));
  $("sound-btn").textContent = p.sound ? "Sound: on" : "Sound: off";
}
// Asked only here, on the user's click: never on load.
async function toggleNotify() {
  if (!("Notification" in window)) { notice("This browser cannot show notifications."); return; }
  if (prefs().notify && Notification.permission === "granted") {
    local.set("ephemera:notify", false);
  } else {
    const answer = Notification.permission === "default" ? await Notification.requestPermission() : Notification.permission;
    if (answer === "granted") local.set("ephemera:notify", true);
    else notice("Notifications are blocked for this site: allow them in the browser's site settings.");
  }
  renderAlerts();
}
function toggleSound() {
  local.set("ephemera:sound", !prefs().sound);
  if (prefs().sound) beep();
  renderAlerts();
}
let audio = null;
function beep() {
  try {
    audio = audio || new AudioContext();
    const tone = audio.createOscillator();
    const gain = audio.createGain();
    tone.frequency.value = 880;
    gain.gain.setValueAtTime(0.08, audio.currentTime);
    gain.gain.exponentialRampToValueAtTime(0.0001, audio.currentTime + 0.25);
    tone.connect(gain).connect(audio.destination);
    tone.start();
    tone.stop(audio.currentTime + 0.25);
  } catch { /* no audio here */ }
}
// A new message from someone else: a notification for a mention, or for anything while the
// tab is hidden; the sound with it, where asked for.
function alertFor(m, text, mentioned) {
  if (m.member_id === state.me || !(mentioned || document.hidden)) return;
  const p = prefs();
  if (p.notify && "Notification" in window && Notification.permission === "granted") {
    const title = mentioned ? `${m.display_name} mentioned you` : `${m.display_name} · ${roomName()}`;
    const n = new Notification(title, { body: EphemeraFormat.excerpt(text, 140), tag: `ephemera:${roomId}` });
    n.onclick = () => { window.focus(); jumpTo(m.id); n.close(); };
  }
  if (p.sound) beep();
}

// ---- @mentions: the names of who is online, offered as "@" is typed ------------------------

// The "@word" being typed at the caret, if any.
function mentionAtCaret() {
  const text = $("text");
  const before = text.value.slice(0, text.selectionStart);
  const match = before.match(/(?:^|\s)@([^\s@]*)$/u);
  return match ? { query: match[1], start: before.length - match[1].length - 1 } : null;
}
function renderMentions() {
  const list = $("mentions");
  const at = mentionAtCaret();
  const query = at ? at.query.toLocaleLowerCase() : "";
  const names = at ? mentionable().filter((n) => n !== myName() && n.toLocaleLowerCase().startsWith(query)).sort().slice(0, 6) : [];
  list.replaceChildren();
  state.mentionPick = 0;
  for (const [i, name] of names.entries()) {
    const li = document.createElement("li");
    li.setAttribute("role", "option");
    li.id = `mention-${i}`;
    li.textContent = `@${name}`;
    li.dataset.name = name;
    li.addEventListener("mousedown", (e) => { e.preventDefault(); pickMention(name); });
    list.append(li);
  }
  list.hidden = !names.length;
  $("text").setAttribute("aria-expanded", String(!list.hidden));
  highlightMention();
}
function highlightMention() {
  const options = [...$("mentions").children];
  options.forEach((o, i) => o.setAttribute("aria-selected", String(i === state.mentionPick)));
  if (options.length) $("text").setAttribute("aria-activedescendant", `mention-${state.mentionPick}`);
  else $("text").removeAttribute("aria-activedescendant");
}
function pickMention(name) {
  const at = mentionAtCaret();
  const text = $("text");
  if (!at) return;
  const rest = text.value.slice(text.selectionStart);
  text.value = `${text.value.slice(0, at.start)}@${name} ${rest}`;
  const caret = at.start + name.length + 2;
  text.setSelectionRange(caret, caret);
  $("mentions").hidden = true;
  renderBox();
}

// The tab's title: the room's name, after the count of unread messages while the tab is hidden.
function renderTitle() {
  const name = `${roomName()} · Ephemera`;
  document.title = state.unread ? `(${state.unread}) ${name}` : name;
}

function presence(p) {
  if (p.event === "user_online") {
    if (!state.online.has(p.member_id)) notice(`${p.display_name} joined`);
    state.online.set(p.member_id, { display_name: p.display_name, role: p.role });
    state.names.set(p.member_id, p.display_name);
    if (p.role === "owner") state.ownerId = p.member_id;
  } else {
    state.online.delete(p.member_id);
    state.typers.delete(p.member_id);
    renderTyping();
    notice(p.reason === "kicked" ? `${p.display_name} was removed by the owner` : `${p.display_name} left`);
  }
  renderPeople();
}

function welcome(w) {
  state.encrypted = w.encrypted === true;
  if (state.encrypted && !state.unlocked) { unlockThenWelcome(w); return; }
  state.me = w.member_id;
  state.role = w.role;
  // A resume by ticket does not repeat the token: this tab holds it already.
  state.resumeToken = w.resume_token || state.resumeToken;
  state.attempt = 0;
  state.lostAt = 0;
  state.retryAt = 0;
  $("away").hidden = true;
  $("retry-btn").hidden = true;
  state.online = new Map(w.online_users.map((u) => [u.member_id, { display_name: u.display_name, role: u.role }]));
  for (const u of w.online_users) {
    if (u.role === "owner") state.ownerId = u.member_id;
    state.names.set(u.member_id, u.display_name);
  }
  roomUpdated({ ...w, timestamp: w.timestamp }, true);
  renderPeople();
  setExpiry(w.expires_in);
  if (details) showDetails();
  else {
    // A password room: its details are readable now, with this member's token.
    readDetails(state.resumeToken)
      .then((d) => { details = d; showDetails(); })
      .catch(() => { /* the title stays generic */ });
  }
  const first = !messages().querySelector(".message");
  if (!w.recovered && state.lastId > 0) {
    // Some missed messages are no longer kept: what is on screen stays, and the gap is said.
    notice("Some messages were missed while you were away: they are no longer kept.", "warning");
  }
  for (const e of w.history) event(e, false);
  session.set(sessionKey(roomId), { resume_token: state.resumeToken, last_id: state.lastId });
  setStatus("Live", "live");
  $("text").disabled = false;
  $("say").querySelector("button[type=submit]").disabled = false;
  if (state.pending) resend(w);
  const owner = local.get(ownerKey(roomId));
  if (owner && owner.invite && w.role === "owner") {
    // A new room: its owner lands on the invite view.
    local.set(ownerKey(roomId), { ...owner, invite: false });
    openShare(true);
  } else if (first) {
    $("text").focus();
  }
}

// A password room tells that it is encrypted only once the password let this page in: its key
// is checked now, before anything is shown, with the frames that arrive meanwhile held in
// order. A missing or wrong key leaves the room at once.
function unlockThenWelcome(w) {
  if (state.held) return;
  state.held = [];
  const socket = state.socket;
  readDetails(w.resume_token || state.resumeToken).then(async (d) => {
    details = d;
    if (!(await unlock(d))) {
      if (socket) socket.send(JSON.stringify({ type: "leave" }));
      return;
    }
    const held = state.held;
    state.held = null;
    welcome(w);
    for (const f of held) frame(f);
  }, () => {
    // The details could not be read: this connection is dropped and the next one tries again.
    state.held = null;
    if (socket && state.socket === socket) socket.close(3000);
  });
}

// GET /rooms/{id}, with an encrypted room's name decrypted in place (when this page has the key).
async function readDetails(token) {
  const d = await api("GET", `/rooms/${roomId}`, { token });
  if (d.encrypted) {
    d.name = null;
    if (roomKey && d.name_ciphertext) {
      d.name = await EphemeraSeal.open(roomKey, d.name_ciphertext, EphemeraSeal.NAME_AAD).catch(() => null);
    }
  }
  return d;
}

// Whether this page can take part in an encrypted room: a secure page, a key in the link, and
// the right one (the room's key check). If not, it says so and goes no further.
async function unlock(d) {
  let problem = null;
  if (!EphemeraSeal.available) problem = "insecure";
  else if (!roomKey) problem = "missing";
  else if ((await EphemeraSeal.keyCheck(roomKey)) !== d.key_check) problem = "wrong";
  if (problem) keyProblem(problem);
  state.unlocked = !problem;
  return !problem;
}

const KEY_PROBLEMS = {
  missing: ["This link is missing its key", "This room is end-to-end encrypted, and its key travels only in the full link (the part after #k=). Ask whoever shared it for the whole link."],
  wrong: ["This link has the wrong key", "This room is end-to-end encrypted, and the key in this link does not open it. Ask whoever shared it for the whole link again."],
  insecure: ["This room needs a secure connection", "This room is end-to-end encrypted, and this browser encrypts only on a secure (HTTPS) page."],
};
function keyProblem(kind) {
  state.ended = true;
  clearTimeout(state.retryTimer);
  show("room");
  banner("");
  $("room-title").textContent = "Encrypted room";
  document.title = "Encrypted room · Ephemera";
  setStatus("Locked", "off");
  $("text").disabled = true;
  $("say").querySelector("button[type=submit]").disabled = true;
  $("overlay-home").href = "/";
  overlay(KEY_PROBLEMS[kind]);
}

// ---- the message box: text leaves it only when the server has taken it -----------------

const LIMIT = Number($("text").dataset.limit) || 2000;
const newClientId = () => `p-${Date.now().toString(36)}-${Math.random().toString(36).slice(2, 10)}`;
const live = () => state.socket && state.socket.readyState === WebSocket.OPEN && state.me && !state.ended;

function renderBox(note) {
  const text = $("text");
  const chars = [...text.value].length;
  const el = $("text-state");
  const box = $("say");
  box.classList.toggle("pending", Boolean(state.pending));
  box.classList.toggle("over", chars > LIMIT);
  if (note) el.textContent = note;
  else if (state.pending && !live()) el.textContent = "Not sent yet: it goes out when you are back online.";
  else if (state.pending) el.textContent = "Sending…";
  else if (chars > LIMIT) el.textContent = `${chars - LIMIT} over the limit of ${LIMIT}`;
  else if (chars >= LIMIT - Math.max(20, Math.floor(LIMIT / 10))) el.textContent = `${LIMIT - chars} left`;
  else el.textContent = "";
  // The box grows with its text, up to a few lines (where `field-sizing` is not there to do it).
  if (!CSS.supports("field-sizing", "content")) {
    text.style.height = "auto";
    text.style.height = `${text.scrollHeight + 2}px`;
  }
}

function submit() {
  const text = $("text");
  if (state.pending) return; // one message at a time: the last is not taken yet
  const value = text.value.trim();
  if (!value) return;
  const chars = [...value].length;
  if (chars > LIMIT) {
    renderBox(`Too long to send: ${chars - LIMIT} over the limit of ${LIMIT}. Shorten it first.`);
    return;
  }
  if (state.editing) { sendEdit(state.editing, value); return; }
  state.pending = { client_id: newClientId(), text: value, sent: false, reply_to: state.replyTo };
  state.replyTo = null;
  $("context").hidden = true;
  text.readOnly = true;
  if (live()) send();
  renderBox();
}

// Sends the pending message: in an encrypted room its ciphertext, bound to this room and this
// member (encrypted once per member id, so a resend is the same ciphertext).
async function send() {
  const p = state.pending;
  if (p.sending) return;
  const out = { type: "message", client_id: p.client_id };
  if (p.reply_to) out.reply_to = p.reply_to;
  if (state.encrypted) {
    const me = state.me;
    if (p.sealedFor !== me) {
      p.sending = true;
      try {
        p.ciphertext = await EphemeraSeal.seal(roomKey, p.text, EphemeraSeal.messageAad(roomId, me));
        p.sealedFor = me;
      } finally {
        p.sending = false;
      }
      // The connection changed meanwhile: the next welcome sends it.
      if (state.pending !== p || !live() || state.me !== me) return;
    }
    out.ciphertext = p.ciphertext;
  } else {
    out.text = p.text;
  }
  p.sent = true;
  state.socket.send(JSON.stringify(out));
  renderBox();
}

// An edit goes out as it is (in an encrypted room sealed as its author's message); its
// broadcast changes the message, and a refusal is said in the conversation.
async function sendEdit(target, text) {
  if (!live()) { renderBox("Not connected: edit it again in a moment."); return; }
  const out = { type: "edit", target };
  if (state.encrypted) out.ciphertext = await EphemeraSeal.seal(roomKey, text, EphemeraSeal.messageAad(roomId, state.me));
  else out.text = text;
  state.socket.send(JSON.stringify(out));
  stopContext();
}

// The server took the pending message (its echo came back, or it is in the history).
function taken() {
  state.pending = null;
  const text = $("text");
  text.readOnly = false;
  text.value = "";
  renderBox();
  text.focus();
}

// The server refused the pending message: the text stays for the user to send again.
function refused(why) {
  if (!state.pending) return;
  state.pending = null;
  $("text").readOnly = false;
  renderBox(`Not sent: ${why}`);
}

// After a reconnect: a pending message the resumed history holds was taken; one it does not hold
// was not, and goes out again with the same client_id. When history could not cover the gap,
// nothing tells, so it is not resent blindly: the user decides.
function resend(w) {
  const p = state.pending;
  if (!p.sent) { send(); renderBox(); return; }
  if (w.history.some((m) => m.member_id === state.me && m.client_id === p.client_id)) return; // taken() ran
  if (w.recovered) { send(); renderBox(); return; }
  refused("the connection dropped and it may not have arrived. Check the conversation before sending it again.");
}

// The conversation's events, each with the room's next id.
const CONVERSATION = new Set(["message", "message_edited", "message_deleted", "reaction"]);
function event(e, fresh) {
  if (e.type === "message") message(e, fresh);
  else amend(e);
}

function frame(f) {
  if (state.held) { state.held.push(f); return; }
  if (CONVERSATION.has(f.type)) event(f, true);
  else if (f.type === "presence") presence(f);
  else if (f.type === "typing") {
    state.typers.set(f.member_id, { name: f.display_name, until: Date.now() + 3000 });
    renderTyping();
  } else if (f.type === "system" && f.event === "welcome") welcome(f);
  else if (f.type === "system" && f.event === "room_closed") end(f.reason);
  else if (f.type === "room_updated") roomUpdated(f, false);
  else if (f.type === "owner_token") {
    // Made owner by a handover: this browser now holds the room's owner token.
    local.set(ownerKey(roomId), { token: f.owner_token, invite: false });
  }
  else if (f.type === "error") {
    const why = {
      rate_limited: "you are sending too fast. Wait a moment and send it again.",
      room_busy: "the room is very busy. Wait a moment and send it again.",
      message_too_long: "that message is too long.",
      empty_message: "that message is empty.",
      unavailable: "the server is busy. Send it again in a moment.",
      invalid_frame: "the server did not accept it.",
    }[f.code];
    if (state.pending && state.pending.sent && why) { refused(why); return; }
    const said = typeof f.message === "string" && f.message ? `${f.message[0].toUpperCase()}${f.message.slice(1)}.`.replace(/\.\.$/, ".") : "";
    if (f.code === "forbidden" || f.code === "not_found") notice(said || "You are not allowed to do that.");
    else if (why) notice(`${why[0].toUpperCase()}${why.slice(1)}`);
    if (!state.me) state.refusal = f.code;
  }
}

// Close codes: which end the room for this page, which send back to the join form, and which
// reconnect (with jitter and the resume token, well within the presence grace).
const TERMINAL = { 1000: "left", 4001: "expired", 4002: "closed", 4003: "owner_offline", 4004: "room_not_found", 4010: "removed", 4403: "room_full", 4423: "locked" };
const REJOIN = new Set([4401, 4409, 4422]);

// Reconnect delays stay well under the grace, so a blip never costs a member its place.
function retryDelay(code) {
  if (code === 4029) return 10000; // told to slow down
  const steps = [500, 1000, 2000, 3000];
  const cap = Math.max(500, Math.min(3000, (GRACE_SECONDS * 1000) / 3));
  const base = Math.min(cap, steps[Math.min(state.attempt, steps.length - 1)]);
  return Math.round(base * (0.6 + Math.random() * 0.4));
}

function connect(query) {
  const proto = location.protocol === "https:" ? "wss:" : "ws:";
  const socket = new WebSocket(`${proto}//${location.host}/rooms/${roomId}/ws?${query}`);
  state.socket = socket;
  state.refusal = null;
  state.me = null;
  state.retryAt = 0;
  setStatus(state.attempt ? "Reconnecting…" : "Connecting…", "pending");
  socket.onmessage = (e) => {
    let f;
    try { f = JSON.parse(e.data); } catch { return; }
    frame(f);
  };
  socket.onclose = (e) => {
    if (state.socket !== socket || state.ended) return;
    state.socket = null;
    state.me = null;
    if (state.pending) renderBox();
    if (e.code === 4000) { replaced(); return; }
    if (TERMINAL[e.code]) { end(TERMINAL[e.code]); return; }
    if (REJOIN.has(e.code)) { sessionEnded(REFUSED[state.refusal]); return; }
    // 1001 drain, 1006 lost, 1011/1013 server trouble, 4008 fell behind, 4029 too fast.
    retryLater(e.code);
  };
}

// This tab's membership is gone (its token no longer counts): the owner comes back with the
// owner token this browser still holds; anyone else joins again.
function sessionEnded(why) {
  session.del(sessionKey(roomId));
  state.resumeToken = null;
  if (local.get(ownerKey(roomId))) { join(null); return; }
  askToJoin(why || "Your session ended. Join again.");
}

// Tries again after a delay well within the presence grace (see retryDelay).
function retryLater(code) {
  if (!state.lostAt) state.lostAt = performance.now();
  const delay = retryDelay(code);
  state.attempt += 1;
  state.retryAt = performance.now() + delay;
  $("retry-btn").hidden = false;
  clearTimeout(state.retryTimer);
  state.retryTimer = setTimeout(reconnect, delay);
  renderAway();
}

// Reconnects now: resuming this member, or joining again when there is nothing to resume.
function reconnect() {
  clearTimeout(state.retryTimer);
  if (state.ended || state.replaced || state.resuming) return;
  if (state.socket && state.socket.readyState <= WebSocket.OPEN) return;
  if (state.resumeToken) resume(state.lastId);
  else join(state.credentials);
}

// Resumes this member with a single-use resume ticket, asked for with the resume token over
// POST: the long-lived token never travels in a URL (where proxies log URLs).
async function resume(lastId) {
  state.resuming = true;
  try {
    const res = await api("POST", `/rooms/${roomId}/resume`, { token: state.resumeToken });
    if (state.ended || state.replaced) return;
    connect(`resume_ticket=${encodeURIComponent(res.ticket)}&last_id=${lastId}`);
  } catch (err) {
    if (err.code === "room_not_found") { show("room"); end(local.get(ownerKey(roomId)) ? "owner_ended_while_away" : "ended_while_away"); return; }
    if (err.status === 401) { sessionEnded(); return; }
    retryLater(0);
  } finally {
    state.resuming = false;
  }
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
    if (err.code === "room_not_found") { show("room"); end(owner ? "owner_ended_while_away" : "room_not_found"); return; }
    if (err.code === "unauthorized" && owner) { local.del(ownerKey(roomId)); askToJoin("Join as a member."); return; }
    if (err.code === "banned") { show("room"); end("banned"); return; }
    if (err.status === 0 || err.status >= 500) {
      // The network or the server: keep trying, as a dropped socket would.
      enterRoom();
      retryLater(0);
      return;
    }
    askToJoin(err.code === "rate_limited" ? `${REFUSED.rate_limited} ${tryAgain(err)}` : REFUSED[err.code] || err.message);
  }
}

function enterRoom() {
  show("room");
  banner("");
  // An encrypted room's link carries its key: the only way anyone else can read the room.
  const fragment = roomKey ? `#k=${EphemeraSeal.toBase64url(roomKey.raw)}` : "";
  $("share-link").value = `${location.origin}/r/${roomId}${fragment}`;
  if (details) showDetails();
}

function showDetails() {
  $("room-title").textContent = roomName();
  $("room-title").title = roomName(); // a long name is cut at two lines; hovering shows it whole
  renderTitle();
  state.membersCanDestroy = details.members_can_destroy;
  $("destroy-btn").hidden = !(state.role === "owner" || state.membersCanDestroy);
  $("owner-tools").hidden = state.role !== "owner";
}

// The room's state its owner changes, from the welcome or a room_updated: the lock, the end,
// who the owner is, and whether the room is waiting for its owner to come back.
function roomUpdated(r, fromWelcome) {
  const wasLocked = state.locked;
  state.locked = r.locked === true;
  $("locked").hidden = !state.locked;
  $("lock-btn").textContent = state.locked ? "Unlock" : "Lock";
  $("lock-btn").setAttribute("aria-pressed", String(state.locked));
  if (!fromWelcome && wasLocked !== state.locked) {
    notice(state.locked ? "The owner locked the room: nobody new can join." : "The owner unlocked the room.");
  }
  if (!fromWelcome) {
    const before = state.deadline;
    setExpiry(r.expires_in);
    const moved = Math.abs(state.deadline - before) > 5000;
    if (before && moved) {
      const text = `The owner changed when this room self-destructs: in ${clock(r.expires_in)}.`;
      notice(text);
      announce(text);
    }
  }
  if (details) details.expires_at = r.expires_at;
  const owner = r.owner_member_id;
  if (owner && owner !== state.ownerId) {
    const was = state.ownerId;
    state.ownerId = owner;
    for (const [id, person] of state.online) person.role = id === owner ? "owner" : "member";
    if (!fromWelcome && was) {
      const name = state.online.get(owner)?.display_name || "Someone";
      notice(owner === state.me ? "You are the owner of this room now." : `${name} is the owner of this room now.`);
    }
    if (owner === state.me) state.role = "owner";
    else if (state.role === "owner") {
      // Handed over: this browser's owner token no longer works.
      state.role = "member";
      local.del(ownerKey(roomId));
    }
    renderPeople();
    if (details) showDetails();
  }
  // While the owner is away: when the room ends unless it returns, counted down here.
  state.ownerAwayUntil = r.owner_away_until ? performance.now() + (Date.parse(r.owner_away_until) - Date.parse(r.timestamp)) : 0;
  if (!fromWelcome && r.owner_away_until) announce("The owner is away. This room ends unless they return.");
  renderOwnerAway();
}
function renderOwnerAway() {
  const banner = $("owner-away");
  const away = state.ownerAwayUntil && !state.ended && state.role !== "owner";
  banner.hidden = !away;
  if (!away) return;
  const left = Math.max(0, Math.round((state.ownerAwayUntil - performance.now()) / 1000));
  banner.textContent = `The owner is away; this room ends in ${clock(left)} unless they return.`;
}

// The owner's changes: over the socket when live (lock), over REST with the owner token (the end).
function ownerSend(f) {
  if (live()) state.socket.send(JSON.stringify(f));
  else notice("Not connected: try again in a moment.");
}
async function moveEnd(seconds) {
  const owner = local.get(ownerKey(roomId));
  if (!owner) { notice("Only the owner can change when the room ends."); return; }
  const at = new Date(Date.now() + seconds * 1000).toISOString();
  try {
    await api("PATCH", `/rooms/${roomId}`, { body: { expires_at: at }, token: owner.token });
  } catch (err) {
    notice(err.code === "invalid_request" ? `That is outside what this room allows: ${err.message}` : `The room's end was not changed: ${err.message}`);
  }
}
// Seconds left now, and the most a room may still be given (from its creation).
function endBounds() {
  const left = Math.max(0, Math.round((state.deadline - performance.now()) / 1000));
  const created = details && Date.parse(details.created_at);
  const most = created ? Math.floor((created + MAX_EXPIRY_SECONDS * 1000 - Date.now()) / 1000) : left;
  return { left, least: MIN_EXPIRY_SECONDS, most };
}
function extendBy(seconds) {
  const { left, least, most } = endBounds();
  const want = Math.min(left + seconds, most);
  if (want <= left) { notice("This room cannot live any longer."); return; }
  moveEnd(Math.max(want, least));
}

function askToJoin(message) {
  show("join");
  banner(message || "");
  const needsPassword = !details || details.has_password;
  $("join-password").hidden = !needsPassword;
  $("join-title").textContent = details ? `Join ${roomName()}` : "Join a password-protected room";
  document.title = details ? `Join ${roomName()} · Ephemera` : "Join a room · Ephemera";
  if (details) {
    const minutes = Math.max(1, Math.round(details.expires_in / 60));
    const left = minutes >= 120 ? `${Math.round(minutes / 60)} hours` : `${minutes} minute${minutes === 1 ? "" : "s"}`;
    $("join-info").textContent = `Hosted by ${details.owner_name} · ${details.online_users_count} of ${details.max_users} online · self-destructs in ${left}, and every message with it.`;
  } else {
    $("join-info").textContent = "Ask the person who shared the link for the password. The room self-destructs, and every message with it.";
  }
  const input = $("join-name");
  if (!input.value) rememberName(input);
  // The name first, selected, so typing replaces the suggestion; then the password.
  input.focus();
  input.select();
}

function openShare(invite) {
  $("share").hidden = false;
  $("share-hint").hidden = !invite;
  $("share-btn").setAttribute("aria-expanded", "true");
  // Drawn here, never by the server: an encrypted room's link holds what the server must not see.
  if (!$("qr").getAttribute("src")) $("qr").src = qrImage($("share-link").value);
  $("native-share").hidden = typeof navigator.share !== "function";
  $("copy-btn").focus();
}
// A QR code of `text` as a PNG data URL, with its quiet zone (qrcode-generator draws the modules).
function qrImage(text) {
  const qr = qrcode(0, "M");
  qr.addData(text);
  qr.make();
  const [modules, quiet, scale] = [qr.getModuleCount(), 4, 6];
  const canvas = document.createElement("canvas");
  canvas.width = canvas.height = (modules + 2 * quiet) * scale;
  const g = canvas.getContext("2d");
  g.fillStyle = "#fff";
  g.fillRect(0, 0, canvas.width, canvas.height);
  g.fillStyle = "#000";
  for (let r = 0; r < modules; r++) {
    for (let c = 0; c < modules; c++) if (qr.isDark(r, c)) g.fillRect((c + quiet) * scale, (r + quiet) * scale, scale, scale);
  }
  return canvas.toDataURL("image/png");
}

function closeShare() {
  $("share").hidden = true;
  $("share-btn").setAttribute("aria-expanded", "false");
  $("text").focus();
}

async function room(ownedHere) {
  if (EphemeraSeal.available) roomKey = await EphemeraSeal.fromFragment(location.hash);
  try {
    details = await readDetails();
    if (details.encrypted && !(await unlock(details))) return;
    setExpiry(details.expires_in);
  } catch (err) {
    if (err.code === "room_not_found") {
      // Say what happened to a room this browser was in, not just that it is not there.
      const was = ownedHere ? "owner_ended_while_away" : session.get(sessionKey(roomId)) ? "ended_while_away" : "room_not_found";
      show("room");
      end(was);
      return;
    }
    if (err.code !== "password_required") { askToJoin(err.message); return; }
  }
  const saved = session.get(sessionKey(roomId));
  if (saved && saved.resume_token) {
    // A reload: resume this tab's membership and get the conversation again.
    state.resumeToken = saved.resume_token;
    enterRoom();
    resume(0);
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
  $("say").addEventListener("submit", (e) => { e.preventDefault(); submit(); });
  text.addEventListener("keydown", (e) => {
    // The @mention list, while open: arrows move, Enter or Tab picks, Escape closes.
    const options = $("mentions").hidden ? [] : [...$("mentions").children];
    if (options.length && ["ArrowDown", "ArrowUp", "Enter", "Tab", "Escape"].includes(e.key)) {
      e.preventDefault();
      if (e.key === "Escape") { $("mentions").hidden = true; return; }
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        state.mentionPick = (state.mentionPick + (e.key === "ArrowDown" ? 1 : options.length - 1)) % options.length;
        highlightMention();
        return;
      }
      pickMention(options[state.mentionPick].dataset.name);
      return;
    }
    if (e.key === "Escape" && !$("context").hidden) { e.preventDefault(); stopContext(); return; }
    // On a touch keyboard Enter is a new line; the Send button sends.
    if (e.key === "Enter" && !e.shiftKey && !e.isComposing && !TOUCH) {
      e.preventDefault();
      submit();
    }
  });
  text.addEventListener("input", () => {
    renderBox();
    renderMentions();
    const now = Date.now();
    if (text.value && now - state.lastTypingSent > 2000 && live()) {
      state.lastTypingSent = now;
      state.socket.send(JSON.stringify({ type: "typing" }));
    }
  });
  text.addEventListener("blur", () => { $("mentions").hidden = true; });
  $("context-cancel").addEventListener("click", stopContext);
  $("notify-btn").addEventListener("click", toggleNotify);
  $("sound-btn").addEventListener("click", toggleSound);
  $("alerts").addEventListener("click", (e) => { if (e.target.closest("button")) $("alerts").open = false; });
  renderAlerts();
  const deleting = $("confirm-delete");
  deleting.addEventListener("close", () => {
    if (deleting.returnValue === "delete") act({ type: "delete", target: state.deleting });
  });
  $("jump").addEventListener("click", scrollDown);
  scroller().addEventListener("scroll", () => { if (nearBottom()) $("jump").hidden = true; });
  $("share-btn").addEventListener("click", () => { if ($("share").hidden) openShare(false); else closeShare(); });
  $("share-close").addEventListener("click", closeShare);
  document.addEventListener("keydown", (e) => {
    if (e.key === "Escape" && !$("share").hidden && !document.querySelector("dialog[open]")) closeShare();
  });
  $("copy-btn").addEventListener("click", async () => {
    const link = $("share-link");
    try { await navigator.clipboard.writeText(link.value); } catch { link.select(); document.execCommand("copy"); }
    $("copy-btn").textContent = "Copied";
    setTimeout(() => { $("copy-btn").textContent = "Copy link"; }, 2000);
  });
  $("native-share").addEventListener("click", () => {
    navigator.share({ title: roomName(), url: $("share-link").value }).catch(() => { /* dismissed */ });
  });
  $("retry-btn").addEventListener("click", reconnect);
  // The owner's menu closes once one of its actions is chosen.
  $("owner-tools").addEventListener("click", (e) => { if (e.target.closest(".owner-menu button")) $("owner-tools").open = false; });
  $("lock-btn").addEventListener("click", () => ownerSend({ type: "lock", locked: !state.locked }));
  $("extend-10m").addEventListener("click", () => extendBy(600));
  $("extend-1h").addEventListener("click", () => extendBy(3600));
  const extend = $("extend");
  $("extend-btn").addEventListener("click", () => {
    const { left, least, most } = endBounds();
    const input = $("extend-minutes");
    input.min = String(Math.ceil(least / 60));
    input.max = String(Math.max(Math.ceil(least / 60), Math.floor(most / 60)));
    input.value = String(Math.max(1, Math.round(left / 60)));
    $("extend-hint").textContent = `Between ${input.min} and ${input.max} minutes from now.`;
    extend.showModal();
    input.select();
  });
  extend.addEventListener("close", () => {
    if (extend.returnValue !== "set") return;
    const minutes = Number($("extend-minutes").value);
    if (Number.isFinite(minutes) && minutes > 0) moveEnd(Math.round(minutes * 60));
  });
  const kick = $("confirm-kick");
  kick.addEventListener("close", () => {
    if (kick.returnValue === "kick") ownerSend({ type: "kick", member_id: state.target });
  });
  const handover = $("confirm-handover");
  handover.addEventListener("close", () => {
    if (handover.returnValue === "handover") ownerSend({ type: "handover", member_id: state.target });
  });
  $("overlay-read").addEventListener("click", () => $("overlay").close());
  // Focus stays in the overlay while it is shown: Tab past its last button comes back round.
  $("overlay").addEventListener("keydown", (e) => {
    if (e.key !== "Tab") return;
    const stops = [...$("overlay").querySelectorAll("button, a[href]")].filter((el) => !el.hidden);
    const [first, last] = [stops[0], stops[stops.length - 1]];
    if (!e.shiftKey && document.activeElement === last) { e.preventDefault(); first.focus(); }
    else if (e.shiftKey && document.activeElement === first) { e.preventDefault(); last.focus(); }
  });
  $("overlay-stay").addEventListener("click", () => { if (state.stay) state.stay(); });
  $("overlay").addEventListener("close", () => {
    // Dismissed to read the conversation: the way back stays at hand.
    if (state.ended) banner(`${$("overlay-title").textContent}. You can still read and copy the conversation.`);
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
    if (dialog.returnValue === "destroy" && live()) state.socket.send(JSON.stringify({ type: "close_room" }));
  });
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    if (state.unread) {
      state.unread = 0;
      renderTitle();
    }
    // Shown again (a phone unlocked, a tab brought back): reconnect now, not at the next retry.
    if (state.lostAt) reconnect();
  });
  window.addEventListener("online", () => { if (state.lostAt) reconnect(); });
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

// A page restored by Back or Forward is a snapshot of the past: ask the server again.
window.addEventListener("pageshow", (e) => { if (e.persisted) location.reload(); });
// A room's key is in the fragment: a link pasted over this one with another key is another
// start, though the browser does not load the page again for it.
window.addEventListener("hashchange", () => { if (roomId) location.reload(); });

const ownedHere = roomId && local.get(ownerKey(roomId));
purgeExpired();
if (roomId) { wireRoom(); room(ownedHere); } else { lobby(); }
