// The encryption of encrypted rooms, in WebCrypto (API.md, "Encrypted rooms"); crates/seal does
// the same in Rust, and both suites check the same vectors. The key never leaves this page: it
// comes from the link's fragment (#k=…), which browsers never send to the server.
"use strict";

const EphemeraSeal = (() => {
  const subtle = window.crypto && window.crypto.subtle; // only on secure (HTTPS or local) pages
  const utf8 = new TextEncoder();
  const NAME_AAD = "ephemera/1|name";
  const messageAad = (roomId, memberId) => `ephemera/1|${roomId}|${memberId}`;

  function toBase64url(bytes) {
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }
  // Bytes of unpadded base64url; null for anything else.
  function fromBase64url(text) {
    if (typeof text !== "string" || !/^[A-Za-z0-9_-]*$/.test(text) || text.length % 4 === 1) return null;
    try {
      const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
      return Uint8Array.from(binary, (c) => c.charCodeAt(0));
    } catch {
      return null;
    }
  }

  // A room key: the raw bytes (for the link) and the AES-GCM key made of them.
  async function importKey(raw) {
    const aes = await subtle.importKey("raw", raw, "AES-GCM", false, ["encrypt", "decrypt"]);
    return { raw, aes };
  }
  const newKey = () => importKey(crypto.getRandomValues(new Uint8Array(32)));
  // The key of a link fragment ("#k=…"), or null when it has none or a malformed one.
  async function fromFragment(hash) {
    const raw = fromBase64url(new URLSearchParams(hash.replace(/^#/, "")).get("k"));
    return raw && raw.length === 32 ? importKey(raw) : null;
  }

  // HMAC-SHA-256 over "ephemera/1" under HKDF-SHA-256(key, no salt, "ephemera key check").
  async function keyCheck(key) {
    const ikm = await subtle.importKey("raw", key.raw, "HKDF", false, ["deriveKey"]);
    const mac = await subtle.deriveKey(
      { name: "HKDF", hash: "SHA-256", salt: new Uint8Array(0), info: utf8.encode("ephemera key check") },
      ikm, { name: "HMAC", hash: "SHA-256", length: 256 }, false, ["sign"]);
    return toBase64url(new Uint8Array(await subtle.sign("HMAC", mac, utf8.encode("ephemera/1"))));
  }

  // IV ‖ ciphertext ‖ tag of `text`, as unpadded base64url. `iv` only for test vectors: a
  // fresh random one otherwise.
  async function seal(key, text, aad, iv = crypto.getRandomValues(new Uint8Array(12))) {
    const sealed = await subtle.encrypt({ name: "AES-GCM", iv, additionalData: utf8.encode(aad) }, key.aes, utf8.encode(text));
    const out = new Uint8Array(12 + sealed.byteLength);
    out.set(iv);
    out.set(new Uint8Array(sealed), 12);
    return toBase64url(out);
  }

  // The text of `ciphertext`; throws when this key, room and author do not open it.
  async function open(key, ciphertext, aad) {
    const bytes = fromBase64url(ciphertext);
    if (!bytes || bytes.length < 28) throw new Error("not ciphertext");
    const text = await subtle.decrypt({ name: "AES-GCM", iv: bytes.slice(0, 12), additionalData: utf8.encode(aad) }, key.aes, bytes.slice(12));
    return new TextDecoder("utf-8", { fatal: true }).decode(text);
  }

  return { available: !!subtle, NAME_AAD, messageAad, toBase64url, fromBase64url, importKey, newKey, fromFragment, keyCheck, seal, open };
})();
