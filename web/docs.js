// Renders /openapi.json as a list of operations, each with a small "try it" form.
"use strict";
function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text) e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

function operation(path, method, op) {
  const box = el("details");
  box.append(el("summary", `${method.toUpperCase()} ${path} — ${op.summary || ""}`));
  if (op.description) box.append(el("p", op.description));
  const form = el("form");
  const params = (op.parameters || []).filter((p) => p.in !== "header" || p.name !== "Authorization");
  for (const p of params) {
    const label = el("label", `${p.name} (${p.in})`);
    label.append(el("input", "", { name: p.name, "data-in": p.in }));
    form.append(label);
  }
  const auth = el("label", "Authorization: Bearer");
  auth.append(el("input", "", { name: "__bearer" }));
  form.append(auth);
  if (op.requestBody) {
    const example = op.requestBody.content["application/json"].example;
    const label = el("label", "JSON body");
    const area = el("textarea", JSON.stringify(example || {}, null, 2), { name: "__body", rows: "6", cols: "60" });
    label.append(area);
    form.append(label);
  }
  const out = el("pre");
  form.append(el("button", "Try it"), out);
  form.onsubmit = async (e) => {
    e.preventDefault();
    let url = path;
    const query = new URLSearchParams();
    const headers = { "content-type": "application/json" };
    for (const input of form.querySelectorAll("input[data-in]")) {
      if (!input.value) continue;
      const where = input.getAttribute("data-in");
      if (where === "path") url = url.replace(`{${input.name}}`, encodeURIComponent(input.value));
      else if (where === "query") query.set(input.name, input.value);
      else if (where === "header") headers[input.name] = input.value;
    }
    const bearer = form.elements.__bearer.value;
    if (bearer) headers.authorization = "Bearer " + bearer;
    const body = form.elements.__body ? form.elements.__body.value : undefined;
    const qs = query.toString();
    try {
      const res = await fetch(url + (qs ? "?" + qs : ""), { method: method.toUpperCase(), headers, body });
      out.textContent = `${res.status} ${res.statusText}\n` + (await res.text());
    } catch (err) { out.textContent = String(err); }
  };
  box.append(form);
  return box;
}

fetch("/openapi.json").then((r) => r.json()).then((doc) => {
  const root = document.getElementById("operations");
  root.append(el("p", doc.info.description || ""));
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) root.append(operation(path, method, op));
  }
});
