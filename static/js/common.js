// Shared helpers of every page: DOM building (text only, never HTML), the JSON API client with
// CSRF, formatters, toasts, confirmation dialog and theme.

// Build an element. Children that are strings become text nodes, so data is never parsed as HTML.
export function el(tag, props, ...children) {
  const node = document.createElement(tag);
  for (const [key, value] of Object.entries(props || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key === "className") node.className = value;
    else if (key === "text") node.textContent = String(value);
    else if (key === "dataset") Object.assign(node.dataset, value);
    else if (key.startsWith("on") && typeof value === "function") node.addEventListener(key.slice(2), value);
    else if (key === "checked" || key === "disabled" || key === "value" || key === "selected") node[key] = value;
    else node.setAttribute(key, value === true ? "" : String(value));
  }
  for (const child of children.flat()) {
    if (child === undefined || child === null || child === false) continue;
    node.appendChild(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

// Control, bidi and invisible formatting characters of data (keys, audit fields) shown as
// "\u202e": displayed raw, "/rt/\u202eevil" reads as "/rt/live".
const INVISIBLE = /[\u0000-\u001f\u007f-\u009f\u00ad\u061c\u180e\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ufff9-\ufffb]/g;
export function visible(text) {
  return String(text).replace(INVISIBLE, (c) => "\\u" + c.charCodeAt(0).toString(16).padStart(4, "0"));
}

export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

export function $(id) {
  return document.getElementById(id);
}

export function jsonData(id) {
  const node = $(id);
  return node ? JSON.parse(node.textContent) : null;
}

function csrfToken() {
  const meta = document.querySelector('meta[name="csrf-token"]');
  if (meta && meta.content) return meta.content;
  const match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
  return match ? decodeURIComponent(match[1]) : "";
}

export class ApiError extends Error {
  constructor(message, status, body) {
    super(message);
    this.status = status;
    this.body = body || {};
  }
}

// The session is the HttpOnly cookie; page scripts never see the token. Unsafe methods carry
// the CSRF token the server rendered into the page.
export async function api(method, url, body, options) {
  const headers = { Accept: "application/json" };
  const init = { method, headers, credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  if (!["GET", "HEAD"].includes(method)) headers["X-CSRFToken"] = csrfToken();
  let response;
  try {
    response = await fetch(url, init);
  } catch (err) {
    throw new ApiError("network error: " + err.message, 0);
  }
  let data = null;
  try {
    data = await response.json();
  } catch (err) {
    data = null;
  }
  if (response.status === 401 && !(options && options.noRedirect)) {
    window.location.assign("/login");
    throw new ApiError("not authenticated", 401, data);
  }
  if (!response.ok) {
    const message = (data && (data.error || data.message || data.detail)) || "HTTP " + response.status;
    throw new ApiError(String(message), response.status, data);
  }
  return data;
}

// --- formatters (§3.1) ---
function trim2(n) {
  return String(Number(n.toFixed(2)));
}
// Three significant digits at most, trailing zeros dropped: 1.5, 12.3, 250.
function sig3(n) {
  const a = Math.abs(n);
  return String(Number(n.toFixed(a >= 100 ? 0 : a >= 10 ? 1 : 2)));
}
// Binary units (1 KiB = 1024 B), as etcd's quota and DB size are powers of two.
function bytes(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let i = 0;
  let n = Math.abs(v);
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
  return (v < 0 ? "-" : "") + trim2(n) + " " + units[i];
}
// Seconds in the unit of their magnitude: 850 µs, 12.3 ms, 1.25 s.
function duration(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a === 0) return "0 s";
  if (a < 0.0009995) return sig3(v * 1e6) + " µs"; // 999.5 µs would round to "1000 µs"
  if (a < 0.9995) return sig3(v * 1000) + " ms";
  return sig3(v) + " s";
}
function count(v) {
  if (v === null || v === undefined || !isFinite(v)) return "–";
  const a = Math.abs(v);
  if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
  if (a >= 1e3) return (v / 1e3).toFixed(1) + "K";
  return Number.isInteger(v) ? String(v) : trim2(v);
}
function integer(v) {
  return v === null || v === undefined || !isFinite(v) ? "–" : String(Math.round(v));
}
function percent(v) {
  return v === null || v === undefined || !isFinite(v) ? "–" : v.toFixed(1) + " %";
}
function perSecond(v) {
  return v === null || v === undefined || !isFinite(v) ? "–" : trim2(v) + "/s";
}
const formatters = {
  bytes, duration, count, integer, percent, per_second: perSecond,
  bytes_per_second: (v) => (v === null || v === undefined || !isFinite(v) ? "–" : bytes(v) + "/s"),
  bool: (v) => (v ? "YES" : "NO"),
};
export function format(unit, v) {
  return (formatters[unit] || count)(v);
}
export function clock(ts) {
  const d = new Date(ts * 1000);
  return d.toLocaleTimeString("en-GB", { hour12: false });
}
export function dateTime(ts) {
  return new Date(ts * 1000).toLocaleString("en-GB", { hour12: false });
}

// --- toasts and confirmation ---
export function toast(message, kind) {
  const box = $("toasts");
  if (!box) return;
  const item = el("div", { className: "toast " + (kind || ""), role: "status" }, message);
  box.appendChild(item);
  setTimeout(() => item.remove(), kind === "error" ? 6000 : 3000);
}

// `typed` (a cluster's name) asks the user to type it before the OK button works: the
// destructive actions' guard (compact, defragmenting the leader, a big delete, disarm). Only
// the UI asks; the API does not, so scripts keep working.
export function confirmAction(title, text, okLabel, typed) {
  const dialog = $("confirm-dialog");
  $("confirm-title").textContent = title;
  $("confirm-text").textContent = text;
  $("confirm-ok").textContent = okLabel || "Confirm";
  const input = $("confirm-typed");
  $("confirm-typed-wrap").hidden = !typed;
  $("confirm-typed-name").textContent = typed || "";
  input.value = "";
  const sync = () => { $("confirm-ok").disabled = !!typed && input.value !== typed; };
  sync();
  return new Promise((resolve) => {
    const done = (answer) => {
      $("confirm-ok").removeEventListener("click", ok);
      $("confirm-cancel").removeEventListener("click", cancel);
      dialog.removeEventListener("cancel", cancel);
      input.removeEventListener("input", sync);
      input.removeEventListener("keydown", enter);
      $("confirm-ok").disabled = false;
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const ok = () => done(!typed || input.value === typed);
    const cancel = () => done(false);
    const enter = (e) => { if (e.key === "Enter" && input.value === typed) { e.preventDefault(); ok(); } };
    $("confirm-ok").addEventListener("click", ok);
    $("confirm-cancel").addEventListener("click", cancel);
    dialog.addEventListener("cancel", cancel);
    input.addEventListener("input", sync);
    input.addEventListener("keydown", enter);
    dialog.showModal();
    if (typed) input.focus();
  });
}

// --- theme (the one thing kept in localStorage) ---
const PALETTES = {
  dark: ["#58a6ff", "#3fb950", "#f85149", "#d29922", "#bc8cff", "#39d2c0", "#e3b341", "#f778ba", "#8b949e"],
  light: ["#0969da", "#1a7f37", "#cf222e", "#bc4c00", "#8250df", "#0e8a7e", "#9a6700", "#bf3989", "#656d76"],
};
const NAMED = {
  dark: { green: "#3fb950", red: "#f85149", orange: "#d29922", yellow: "#e3b341", text: "#e6edf3", muted: "#8b949e", grid: "#30363d" },
  light: { green: "#1a7f37", red: "#cf222e", orange: "#bc4c00", yellow: "#9a6700", text: "#1f2328", muted: "#656d76", grid: "#d0d7de" },
};
export function theme() {
  return document.documentElement.getAttribute("data-theme") === "light" ? "light" : "dark";
}
export function setTheme(name) {
  document.documentElement.setAttribute("data-theme", name);
  try {
    localStorage.setItem("etcdmonitor-theme", name);
  } catch (err) {
    /* private mode: the theme just is not remembered */
  }
}
export function palette() {
  return PALETTES[theme()];
}
export function colors() {
  return NAMED[theme()];
}
