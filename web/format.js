// Safe formatting of message text (API.md, "Formatting"): code blocks, quotes, inline code,
// bold, italics, links and @mentions, built as DOM nodes. Text from the network only ever
// becomes text nodes: no markup in a message can become HTML, and the CSP needs no exception.
"use strict";

const EphemeraFormat = (() => {
  // Links: http(s) URLs and www. names, without the punctuation that ends a sentence around
  // them, and without a closing bracket they did not open.
  const LINK = /\b(?:https?:\/\/|www\.)[^\s<>"']+/gi;
  function trimLink(raw) {
    let link = raw.replace(/[.,;:!?'"]+$/, "");
    while (link.endsWith(")") && (link.match(/\(/g) || []).length < (link.match(/\)/g) || []).length) {
      link = link.slice(0, -1).replace(/[.,;:!?'"]+$/, "");
    }
    return link;
  }

  const escape = (s) => s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  // "@name" for any of `names` (longest first, so "@Ann Lee" wins over "@Ann"), not inside a
  // word; null when there is nobody to mention.
  function mentionPattern(names) {
    const sorted = [...new Set(names)].filter(Boolean).sort((a, b) => b.length - a.length);
    if (!sorted.length) return null;
    return new RegExp(`(?<![\\p{L}\\p{N}_])@(${sorted.map(escape).join("|")})(?![\\p{L}\\p{N}_])`, "giu");
  }
  // Whether `text` mentions `name`.
  function mentions(text, name) {
    const pattern = mentionPattern([name]);
    return Boolean(pattern && text.match(pattern));
  }

  // Plain text with its links made clickable (never fetched or previewed) and its mentions
  // marked.
  function links(target, text, at) {
    let from = 0;
    for (const match of text.matchAll(LINK)) {
      const link = trimLink(match[0]);
      let url = null;
      try { url = new URL(/^www\./i.test(link) ? `https://${link}` : link); } catch { /* not a URL */ }
      if (!url || (url.protocol !== "https:" && url.protocol !== "http:")) continue;
      marks(target, text.slice(from, match.index), at);
      const a = document.createElement("a");
      a.href = url.href;
      a.textContent = link;
      a.rel = "noopener noreferrer nofollow ugc";
      a.target = "_blank";
      target.append(a);
      from = match.index + link.length;
    }
    marks(target, text.slice(from), at);
  }
  function marks(target, text, at) {
    if (!at) { target.append(text); return; }
    let from = 0;
    for (const match of text.matchAll(at)) {
      target.append(text.slice(from, match.index));
      const b = document.createElement("b");
      b.className = "mention";
      b.textContent = match[0];
      target.append(b);
      from = match.index + match[0].length;
    }
    target.append(text.slice(from));
  }

  // `code`, **bold**, *italics* or _italics_ (not inside a word), within one line.
  const INLINE = /`([^`\n]+)`|\*\*(?=\S)([^\n]*?\S)\*\*|(?<![\p{L}\p{N}*])\*(?=\S)([^*\n]*?\S)\*(?![\p{L}\p{N}*])|(?<![\p{L}\p{N}_])_(?=\S)([^_\n]*?\S)_(?![\p{L}\p{N}_])/gu;
  function inline(target, text, at) {
    let from = 0;
    for (const m of text.matchAll(INLINE)) {
      links(target, text.slice(from, m.index), at);
      let el;
      if (m[1] !== undefined) {
        el = document.createElement("code");
        el.textContent = m[1];
      } else {
        el = document.createElement(m[2] !== undefined ? "strong" : "em");
        inline(el, m[2] ?? m[3] ?? m[4], at);
      }
      target.append(el);
      from = m.index + m[0].length;
    }
    links(target, text.slice(from), at);
  }

  // Blocks: a fenced code block (``` to the closing fence, or to the end), lines starting with
  // ">" as a quote, and the rest as text with its line breaks.
  function render(target, text, names = []) {
    const at = mentionPattern(names);
    const lines = text.split("\n");
    let plain = [];
    const flush = () => {
      if (!plain.length) return;
      const span = document.createElement("span");
      inline(span, plain.join("\n"), at);
      target.append(span);
      plain = [];
    };
    for (let i = 0; i < lines.length; i++) {
      if (/^```/.test(lines[i])) {
        flush();
        const code = [];
        let j = i + 1;
        while (j < lines.length && !/^```\s*$/.test(lines[j])) code.push(lines[j++]);
        const pre = document.createElement("pre");
        const c = document.createElement("code");
        c.textContent = code.join("\n");
        pre.append(c);
        target.append(pre);
        i = j;
      } else if (/^>/.test(lines[i])) {
        flush();
        const quoted = [];
        while (i < lines.length && /^>/.test(lines[i])) quoted.push(lines[i++].replace(/^> ?/, ""));
        i -= 1;
        const q = document.createElement("blockquote");
        inline(q, quoted.join("\n"), at);
        target.append(q);
      } else {
        plain.push(lines[i]);
      }
    }
    flush();
  }

  // The first line of `text` without its markup, cut to `max` characters (a reply's quote).
  function excerpt(text, max = 80) {
    const line = text.replace(/^```.*$/gm, "").replace(/[`*_>]/g, "").split("\n").find((l) => l.trim()) || "";
    const chars = [...line.trim()];
    return chars.length > max ? `${chars.slice(0, max - 1).join("")}…` : chars.join("");
  }

  return { render, mentions, excerpt };
})();
