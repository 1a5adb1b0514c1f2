// Renders /openapi.json: operations grouped by tag, each with its responses and a small
// "try it" form, then the schemas.
"use strict";
function el(tag, text, attrs = {}) {
  const e = document.createElement(tag);
  if (text) e.textContent = text;
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  return e;
}

let schemas = {};
const refName = (schema) => (schema && schema.$ref ? schema.$ref.split("/").pop() : "");
const resolve = (schema) => schemas[refName(schema)] || schema || {};

function operation(path, method, op) {
  const box = el("details", "", { id: op.operationId });
  box.append(el("summary", `${method.toUpperCase()} ${path} — ${op.summary || ""}`));
  if (op.description) box.append(el("p", op.description));
  const responses = el("ul");
  for (const [status, res] of Object.entries(op.responses || {})) {
    const body = res.content && Object.values(res.content)[0];
    const name = body ? refName(body.schema) : "";
    responses.append(el("li", `${status}: ${res.description || ""}${name ? ` (${name})` : ""}`));
  }
  box.append(el("h3", "Responses"), responses);

  const form = el("form");
  for (const p of op.parameters || []) {
    const label = el("label", `${p.name} (${p.in}${p.required ? ", required" : ""})`);
    label.append(el("input", "", { name: p.name, "data-in": p.in, title: p.description || "" }));
    form.append(label);
  }
  if (op.security) {
    const auth = el("label", "Authorization: Bearer");
    auth.append(el("input", "", { name: "__bearer", autocomplete: "off" }));
    form.append(auth);
  }
  if (op.requestBody) {
    const media = op.requestBody.content["application/json"];
    const example = media.example || resolve(media.schema).example || {};
    const label = el("label", `JSON body (${refName(media.schema)})`);
    label.append(el("textarea", JSON.stringify(example, null, 2), { name: "__body", rows: "6", cols: "60" }));
    form.append(label);
  }
  const out = el("pre", "", { "aria-live": "polite" });
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
    const bearer = form.elements.__bearer && form.elements.__bearer.value;
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
  schemas = (doc.components && doc.components.schemas) || {};
  const root = document.getElementById("operations");
  root.append(el("p", doc.info.description || ""));
  const sections = new Map();
  for (const [path, item] of Object.entries(doc.paths)) {
    for (const [method, op] of Object.entries(item)) {
      const tag = (op.tags && op.tags[0]) || "other";
      if (!sections.has(tag)) {
        const section = el("section");
        section.append(el("h2", tag));
        sections.set(tag, section);
        root.append(section);
      }
      sections.get(tag).append(operation(path, method, op));
    }
  }
  const types = el("section");
  types.append(el("h2", "schemas"));
  for (const [name, schema] of Object.entries(schemas)) {
    const box = el("details", "", { id: `schema-${name}` });
    box.append(el("summary", name), el("pre", JSON.stringify(schema, null, 2)));
    types.append(box);
  }
  root.append(types);
});
