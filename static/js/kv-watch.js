// KV live watch: tails a v3 prefix of the tab on screen as server-sent events
// (GET /api/kv/v3/watch, authenticated by the session cookie). The panel lists the newest
// events first and keeps at most MAX_ROWS; a stream the server ends (logout, member lost for
// good, too slow) says why and is not reopened behind the user's back.
import { $, clear, clock, el, visible } from "./common.js";
import { SEP, currentView, kvUrl } from "./kv-shared.js";

const MAX_ROWS = 500;
const PREVIEW = 160;
let source = null;

function status(text, kind) {
  const line = $("kv-watch-status");
  line.textContent = text;
  line.className = "small " + (kind || "muted");
}

function defaultPrefix(view) {
  const node = view && view.selected ? view.selected.node : null;
  if (!node) return SEP;
  return node.dir ? node.key.replace(/\/?$/, SEP) : node.key;
}

function preview(data, kind) {
  if (kind === "delete") return "";
  if (data.encoding === "base64") return `binary · ${atob(data.value).length} bytes (base64)`;
  const text = visible(data.value);
  return text.length > PREVIEW ? text.slice(0, PREVIEW) + "…" : text;
}

function addRow(kind, data) {
  const list = $("kv-watch-events");
  const row = el("li", { className: `kv-watch-row ${kind}`, dataset: { revision: String(data.revision) } },
    el("span", { className: "muted small" }, clock(Date.now() / 1000)),
    el("span", { className: `badge ${kind === "put" ? "ok" : "down"}` }, kind),
    el("code", { className: "kv-watch-key" }, visible(data.key)),
    el("span", { className: "muted small" }, `rev ${data.revision}`),
    el("span", { className: "kv-watch-value" }, preview(data, kind)));
  list.prepend(row);
  while (list.children.length > MAX_ROWS) list.lastChild.remove();
}

export function stopWatch(message) {
  if (source) {
    source.close();
    source = null;
  }
  $("kv-watch-start").hidden = false;
  $("kv-watch-stop").hidden = true;
  $("kv-watch-prefix").disabled = false;
  if (message) status(message.text, message.kind);
}

function startWatch() {
  const view = currentView();
  if (!view || view.proto !== "v3") {
    status("Live watch is available for v3 keys only.", "error");
    return;
  }
  stopWatch();
  const prefix = $("kv-watch-prefix").value;
  clear($("kv-watch-events"));
  status(`Connecting to ${prefix || "(every key)"}…`);
  $("kv-watch-start").hidden = true;
  $("kv-watch-stop").hidden = false;
  $("kv-watch-prefix").disabled = true;
  const stream = new EventSource(kvUrl(view, "watch", { prefix }));
  source = stream;
  stream.addEventListener("ready", (e) => {
    const { revision } = JSON.parse(e.data);
    status(`Watching ${prefix || "(every key)"} — changes after revision ${revision}`, "success");
  });
  stream.addEventListener("put", (e) => addRow("put", JSON.parse(e.data)));
  stream.addEventListener("delete", (e) => addRow("delete", JSON.parse(e.data)));
  stream.addEventListener("error", (e) => {
    if (source !== stream) return;
    // The server's own `event: error` carries a reason; the browser's has no data (the
    // connection failed or was refused, e.g. 429 beyond four watches).
    const reason = e.data ? JSON.parse(e.data).error : "the connection was lost or refused";
    stopWatch({ text: `Watch ended: ${reason}`, kind: "error" });
  });
}

function toggle() {
  const panel = $("kv-watch-panel");
  panel.hidden = !panel.hidden;
  $("kv-watch").setAttribute("aria-expanded", String(!panel.hidden));
  if (!panel.hidden && !source) $("kv-watch-prefix").value = defaultPrefix(currentView());
  if (panel.hidden) stopWatch({ text: "" });
}

export function wireWatch() {
  $("kv-watch").addEventListener("click", toggle);
  $("kv-watch-form").addEventListener("submit", (e) => {
    e.preventDefault();
    startWatch();
  });
  $("kv-watch-stop").addEventListener("click", () => stopWatch({ text: "Stopped." }));
  $("kv-watch-clear").addEventListener("click", () => clear($("kv-watch-events")));
}
