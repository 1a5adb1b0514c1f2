// Placeholder UI: create a room, join it, chat. Text is always rendered as text.
"use strict";
const $ = (id) => document.getElementById(id);
const roomId = (location.pathname.match(/^\/r\/([A-Za-z0-9_-]+)$/) || [])[1];
let socket, me, lastId = 0, expiresAt = 0;

function banner(text) { $("banner").textContent = text; $("banner").hidden = !text; }

async function api(method, path, body, headers = {}) {
  const res = await fetch(path, { method, headers: { "content-type": "application/json", ...headers },
    body: body ? JSON.stringify(body) : undefined });
  const data = await res.json().catch(() => ({}));
  if (!res.ok) throw new Error(data.detail || res.statusText);
  return data;
}

function show(id) { for (const s of ["create", "join", "chat"]) $(s).hidden = s !== id; }

function line(text, mine) {
  const li = document.createElement("li");
  li.textContent = text;
  if (mine) li.className = "me";
  $("messages").append(li);
  li.scrollIntoView({ block: "end" });
}

function connect(url) {
  socket = new WebSocket(url);
  socket.onmessage = (e) => {
    const f = JSON.parse(e.data);
    if (f.type === "system" && f.event === "welcome") {
      me = f; expiresAt = Date.now() + f.expires_in * 1000;
      sessionStorage.setItem("resume:" + f.room_id, f.resume_token);
      show("chat"); $("online").textContent = f.online_count + " online";
      f.history.forEach(show_message);
    } else if (f.type === "message") show_message(f);
    else if (f.type === "presence") { line(f.display_name + (f.event === "user_online" ? " joined" : " left")); $("online").textContent = f.online_count + " online"; }
    else if (f.type === "system" && f.event === "room_closed") line("Room closed: " + f.reason);
    else if (f.type === "error") banner(f.message);
  };
  socket.onclose = (e) => {
    if ([1001, 1011, 1013, 4008].includes(e.code) && me) {
      setTimeout(() => connect(`${wsBase()}/rooms/${roomId}/ws?resume=${encodeURIComponent(me.resume_token)}&last_id=${lastId}`), 1000 + Math.random() * 1000);
    } else banner("Disconnected (" + e.code + ") " + (e.reason || ""));
  };
}

function show_message(m) { if (m.id <= lastId) return; lastId = m.id; line(m.display_name + ": " + m.text, me && m.member_id === me.member_id); }
function wsBase() { return (location.protocol === "https:" ? "wss://" : "ws://") + location.host; }

function tick() {
  if (expiresAt) { const s = Math.max(0, Math.round((expiresAt - Date.now()) / 1000)); $("countdown").textContent = `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")} left`; }
}

$("create").onsubmit = async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  try {
    const room = await api("POST", "/rooms", { owner_name: f.get("owner_name"), name: f.get("name") || null,
      password: f.get("password") || null, expiry_seconds: Number(f.get("minutes")) * 60, max_users: Number(f.get("max_users")) });
    sessionStorage.setItem("owner:" + room.room_id, room.owner_token);
    location.href = "/r/" + room.room_id;
  } catch (err) { banner(err.message); }
};

$("join").onsubmit = async (e) => {
  e.preventDefault();
  const f = new FormData(e.target);
  try {
    const t = await api("POST", `/rooms/${roomId}/join`, { display_name: f.get("display_name"), password: f.get("password") || undefined });
    connect(`${wsBase()}/rooms/${roomId}/ws?ticket=${encodeURIComponent(t.ticket)}`);
  } catch (err) { banner(err.message); }
};

$("say").onsubmit = (e) => {
  e.preventDefault();
  const input = e.target.elements.text;
  if (socket && input.value.trim()) socket.send(JSON.stringify({ type: "message", text: input.value }));
  input.value = "";
};

async function start() {
  setInterval(tick, 1000);
  if (!roomId) return show("create");
  const owner = sessionStorage.getItem("owner:" + roomId);
  if (owner) {
    try { const t = await api("POST", `/rooms/${roomId}/join`, {}, { authorization: "Bearer " + owner }); return connect(`${wsBase()}/rooms/${roomId}/ws?ticket=${encodeURIComponent(t.ticket)}`); }
    catch (err) { banner(err.message); }
  }
  try {
    const room = await api("GET", `/rooms/${roomId}`);
    $("join-title").textContent = "Join " + (room.name || "room");
  } catch (err) {
    if (!/password/i.test(err.message)) return banner(err.message);
    $("password-field").hidden = false;
  }
  show("join");
}
start();
