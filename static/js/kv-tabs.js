// KV cluster tabs: the strip of browser-style tabs above the KV tree (default first, then the
// user's tabs in their saved order), the add and re-enter-credentials dialogs, close with
// confirmation, drag reorder and the status poll. Names, endpoints and errors are text only.
import { $, api, clear, confirmAction, el, toast } from "./common.js";
import * as Perm from "./permissions.js";
import { dragReorder } from "./drag-reorder.js";

const MAX_TABS = 10;
const POLL_MS = 60 * 1000;
const NOTIFY_EVERY_MS = 60 * 1000;
const DEFAULT_TAB = { id: "default", name: "default", endpoint: "", is_default: true, last_status: "ok", last_error: "" };

let tabs = [DEFAULT_TAB]; // as GET /api/kv/tabs answers: default first, then by sort_order
// A shared cluster chosen in the cluster picker: no tab of the user's, so it is shown as a
// last, fixed tab (no close, no drag, no credentials) while it is the one in use.
let shared = null;
let active = "default";
let hooks = { onSelect() {}, onClosed() {}, onReconnected() {} };
let addRun = 0; // counts opened add dialogs: an answer for an earlier one is dropped
let credTab = null; // the tab the re-enter dialog edits
let refreshTimer = null;
let started = false;
const notified = new Map(); // "<tab id>|<reason>" -> time of the last toast

export function get(id) {
  return tabs.find((t) => t.id === id) || null;
}
function own() {
  return tabs.filter((t) => !t.is_default && !t.shared);
}
// The default tab and a shared cluster's: neither closed, dragged nor given credentials here.
function fixed(tab) {
  return tab.is_default || !!tab.shared;
}
export function isFixed(id) {
  const tab = get(id);
  return !tab || fixed(tab);
}
function tabPath(id, suffix) {
  return "/api/kv/tabs/" + encodeURIComponent(id) + (suffix || "");
}
function message(err) {
  const body = (err && err.body) || {};
  return String(body.message || body.error || (err && err.message) || err);
}
function reasonOf(tab) {
  return (tab.last_error || "").split(":")[0] || "unknown_error";
}

// --- the strip ---
function tabTitle(tab) {
  const lines = [tab.endpoint || tab.name];
  if (tab.last_status === "error") lines.push(tab.last_error || "connection problem");
  else if (tab.last_status === "unknown") lines.push("status not checked yet");
  return lines.join("\n");
}

function tabElement(tab) {
  const isActive = tab.id === active;
  const error = tab.last_status === "error";
  // ⚠ and × are mouse shortcuts, not buttons: a tab must not contain controls (axe
  // nested-interactive; even an unfocusable, aria-hidden button counts). The keyboard closes
  // the focused tab with Delete (aria-keyshortcuts) and re-enters credentials from the info
  // bar's button; the tab's title, its description, carries the connection problem.
  const warn = error ? el("span", {
    className: "kv-tab-warn", title: tabTitle(tab) + "\nClick to re-enter credentials", "aria-hidden": "true",
    onclick: (e) => { e.stopPropagation(); reenter(tab.id); },
  }, "⚠") : null;
  const close = fixed(tab) ? null : el("span", {
    className: "kv-tab-close", title: "Close tab (Delete)", "aria-hidden": "true",
    onclick: (e) => { e.stopPropagation(); closeTab(tab.id); },
  }, "×");
  const node = el("div", {
    className: "kv-tab" + (isActive ? " active" : "") + (error ? " error" : "") + (tab.is_default ? " default" : ""),
    role: "tab", tabindex: isActive ? "0" : "-1", "aria-selected": isActive ? "true" : "false",
    "aria-keyshortcuts": fixed(tab) ? null : "Delete",
    title: tabTitle(tab), draggable: fixed(tab) ? false : "true",
    dataset: { tabId: tab.id, status: tab.last_status || "", ...(tab.shared ? { shared: "true" } : {}) },
  }, warn, el("span", { className: "kv-tab-name" }, tab.name), close);
  node.addEventListener("click", () => select(tab.id));
  node.addEventListener("keydown", (e) => {
    if (e.target !== node) return;
    if (e.key === "Enter" || e.key === " ") {
      e.preventDefault();
      select(tab.id);
    } else if (e.key === "Delete" && !fixed(tab)) {
      closeTab(tab.id);
    } else if (["ArrowLeft", "ArrowRight", "Home", "End"].includes(e.key)) {
      // Arrows move focus along the strip; Enter or Space opens the focused tab.
      e.preventDefault();
      const all = [...$("kv-tab-list").querySelectorAll("[role=tab]")];
      const at = all.indexOf(node);
      const next = { ArrowLeft: all[at - 1], ArrowRight: all[at + 1], Home: all[0], End: all[all.length - 1] }[e.key];
      if (next) {
        all.forEach((t) => { t.tabIndex = t === next ? 0 : -1; });
        next.focus();
      }
    }
  });
  return node;
}

function render() {
  const list = clear($("kv-tab-list"));
  for (const tab of tabs) list.appendChild(tabElement(tab));
  const full = own().length >= MAX_TABS;
  $("kv-tab-add").disabled = full;
  $("kv-tab-add").hidden = !Perm.globalAllows("operator"); // adding a tab is an operator's
  $("kv-tab-add").title = full ? `At most ${MAX_TABS} cluster tabs` : "Add a cluster tab";
}

async function load() {
  let data;
  try {
    data = await api("GET", "/api/kv/tabs");
  } catch (err) {
    if (err.status !== 401) toast("Cannot load the cluster tabs: " + message(err), "error");
    return;
  }
  const before = new Map(tabs.map((t) => [t.id, t.last_status]));
  tabs = (data && data.tabs) || [DEFAULT_TAB];
  if (shared && !get(shared.id)) tabs.push(shared);
  for (const tab of tabs) {
    const was = before.get(tab.id);
    if (was && was !== "error" && tab.last_status === "error") notify(tab);
  }
  if (!get(active)) {
    select("default"); // closed in another window
    return;
  }
  render();
}

export function refreshSoon() {
  clearTimeout(refreshTimer);
  refreshTimer = setTimeout(load, 300);
}

// Called by the tree after a successful connect: a tab shown as failing may have recovered.
export function connected(id) {
  const tab = get(id);
  if (tab && !tab.is_default && tab.last_status !== "ok") refreshSoon();
}

function notify(tab) {
  const reason = reasonOf(tab);
  const key = tab.id + "|" + reason;
  const now = Date.now();
  if (now - (notified.get(key) || 0) < NOTIFY_EVERY_MS) return;
  notified.set(key, now);
  const text = reason === "auth_failed"
    ? `Credentials no longer valid for ${tab.name}`
    : `Cannot connect to ${tab.name} (${tab.endpoint})`;
  const box = $("toasts");
  const item = el("div", { className: "toast error", role: "status" }, el("span", {}, text), " ",
    el("button", { type: "button", className: "toast-action", onclick: () => { item.remove(); reenter(tab.id); } }, "Re-enter"));
  box.appendChild(item);
  setTimeout(() => item.remove(), 10000);
}

function select(id) {
  if (!get(id)) id = "default";
  if (shared && id !== shared.id) {
    tabs = tabs.filter((t) => t !== shared); // left: its tab goes
    shared = null;
  }
  active = id;
  render();
  hooks.onSelect(id);
}

// The cluster picker chose `id` (named `name`): its tab, or a fixed one for a shared cluster.
export function show(id, name) {
  if (id === active) return;
  if (!get(id)) {
    shared = { id, name, endpoint: "", is_default: false, shared: true, last_status: "ok", last_error: "" };
    tabs = [...tabs, shared];
  }
  select(id);
}

// --- close ---
async function closeTab(id) {
  const tab = get(id);
  if (!tab || fixed(tab)) return;
  const ok = await confirmAction("Close tab",
    `Close the tab "${tab.name}" (${tab.endpoint})? Its stored credentials are deleted; the cluster itself is not changed.`,
    "Close tab");
  if (!ok) return;
  try {
    await api("DELETE", tabPath(id));
  } catch (err) {
    if (err.status !== 404) { // 404: already gone, so drop it here too
      toast(`Cannot close ${tab.name}: ${message(err)}`, "error");
      return;
    }
  }
  tabs = tabs.filter((t) => t.id !== id);
  if (active === id) select("default");
  else render();
  hooks.onClosed(id);
  toast("Closed " + tab.name, "success");
}

// --- dialogs ---
function showResult(id, kind, text) {
  const box = $(id);
  box.className = "kv-tab-result " + (kind || "");
  box.textContent = text || "";
  box.hidden = !text;
}
function busy(prefix, on) {
  for (const suffix of ["-test", "-ok"]) $(prefix + suffix).disabled = on;
}

// A failed test answers 400 {status, error}; null means the connection works.
async function testTab(id, body) {
  try {
    await api("POST", tabPath(id, "/test"), body);
    return null;
  } catch (err) {
    if (err.status === 400 && err.body && err.body.status) return `${err.body.status}: ${err.body.error || ""}`;
    throw err;
  }
}

function addFields() {
  return {
    name: $("kv-tab-name").value.trim(),
    endpoint: $("kv-tab-endpoint").value.trim(),
    username: $("kv-tab-username").value,
    password: $("kv-tab-password").value,
    ca_cert: $("kv-tab-ca").value,
    insecure_skip_verify: $("kv-tab-insecure").checked,
  };
}

function openAdd() {
  addRun += 1;
  for (const id of ["kv-tab-name", "kv-tab-endpoint", "kv-tab-username", "kv-tab-password", "kv-tab-ca"]) $(id).value = "";
  $("kv-tab-insecure").checked = false;
  showResult("kv-tab-result", "", "");
  busy("kv-tab", false);
  $("kv-tab-dialog").showModal();
  $("kv-tab-endpoint").focus();
}

function endpointMissing(fields) {
  if (fields.endpoint) return false;
  showResult("kv-tab-result", "error", "Enter the endpoint, e.g. http://10.0.0.5:2379.");
  return true;
}

// Tests the typed fields without creating anything; "Add" tests them again on the server.
async function testAdd() {
  const fields = addFields();
  if (endpointMissing(fields)) return;
  delete fields.name; // the test takes the connection fields only
  const run = addRun;
  busy("kv-tab", true);
  showResult("kv-tab-result", "pending", "Testing the connection…");
  let kind = "ok";
  let text = "✓ Connection OK";
  try {
    const data = await api("POST", "/api/kv/tabs/test", fields);
    if (data && data.warning === "degraded_member_check") {
      text += " (the default cluster's member list could not be read to compare)";
    }
  } catch (err) {
    kind = "error";
    const status = err.status === 400 && err.body && err.body.status;
    text = status ? `${message(err)} (${status})` : message(err);
  }
  if (run !== addRun) return; // the dialog was closed or reopened meanwhile
  showResult("kv-tab-result", kind, text);
  busy("kv-tab", false);
}

async function dropCreated(tab) {
  try {
    await api("DELETE", tabPath(tab.id));
  } catch (err) {
    /* already gone */
  }
}

async function submitAdd(event) {
  event.preventDefault();
  const fields = addFields();
  if (endpointMissing(fields)) return;
  const run = addRun;
  busy("kv-tab", true);
  showResult("kv-tab-result", "pending", "Connecting…");
  try {
    const data = await api("POST", "/api/kv/tabs", fields);
    const tab = data.tab;
    if (run !== addRun || !$("kv-tab-dialog").open) {
      await dropCreated(tab); // cancelled while the server was adding it
      return;
    }
    if (data.warning === "degraded_member_check") {
      const keep = await confirmAction("Keep the tab?",
        "The default cluster's member list could not be read, so this endpoint was not checked against it. " +
        "If it is a member of the default cluster, use the default tab instead.", "Keep tab");
      if (!keep) {
        await dropCreated(tab);
        $("kv-tab-dialog").close();
        return;
      }
    }
    $("kv-tab-dialog").close();
    tabs = [...tabs.filter((t) => t.id !== tab.id), tab];
    select(tab.id);
    toast("Added " + tab.name, "success");
    load();
  } catch (err) {
    if (run === addRun) showResult("kv-tab-result", "error", message(err)); // the fields keep what was typed
  } finally {
    if (run === addRun) busy("kv-tab", false);
  }
}

export function reenter(id) {
  const tab = get(id);
  if (!tab || fixed(tab)) return;
  credTab = tab;
  $("kv-cred-target").textContent = `${tab.name} — ${tab.endpoint}`;
  const reason = tab.last_status === "error" ? tab.last_error || "connection problem" : "";
  $("kv-cred-reason").textContent = reason;
  $("kv-cred-reason").hidden = !reason;
  $("kv-cred-username").value = tab.username || "";
  $("kv-cred-password").value = "";
  $("kv-cred-password").placeholder = tab.has_password ? "leave empty to keep the stored password" : "";
  $("kv-cred-clear").checked = false;
  $("kv-cred-clear").disabled = !tab.has_password;
  syncClear();
  showResult("kv-cred-result", "", "");
  busy("kv-cred", false);
  if (!$("kv-cred-dialog").open) $("kv-cred-dialog").showModal();
  $("kv-cred-password").focus();
}
function syncClear() {
  const clearing = $("kv-cred-clear").checked;
  $("kv-cred-password").disabled = clearing;
  $("kv-cred-test").hidden = clearing; // the test endpoint cannot try "no password"
}
function credFields() {
  const body = { username: $("kv-cred-username").value };
  if ($("kv-cred-password").value) body.password = $("kv-cred-password").value;
  return body;
}

async function testCred() {
  if (!credTab) return;
  busy("kv-cred", true);
  showResult("kv-cred-result", "pending", "Testing the connection…");
  try {
    const failure = await testTab(credTab.id, credFields());
    showResult("kv-cred-result", failure ? "error" : "ok", failure || "✓ Connection OK");
  } catch (err) {
    showResult("kv-cred-result", "error", message(err));
  } finally {
    busy("kv-cred", false);
  }
}

// Test first, then PATCH: credentials that do not work are not stored.
async function submitCred(event) {
  event.preventDefault();
  const tab = credTab;
  if (!tab) return;
  const clearing = $("kv-cred-clear").checked;
  busy("kv-cred", true);
  showResult("kv-cred-result", "pending", clearing ? "Saving…" : "Testing the connection…");
  try {
    const fields = credFields();
    if (!clearing) {
      const failure = await testTab(tab.id, fields);
      if (failure) {
        showResult("kv-cred-result", "error", "Not saved, the connection test failed: " + failure);
        return;
      }
    }
    const body = clearing ? { username: fields.username, clear_password: true } : fields;
    await api("PATCH", tabPath(tab.id), body);
    $("kv-cred-dialog").close();
    toast("Credentials updated for " + tab.name, "success");
    await load();
    hooks.onReconnected(tab.id);
  } catch (err) {
    showResult("kv-cred-result", "error", message(err));
  } finally {
    busy("kv-cred", false);
  }
}

// --- drag reorder (the default tab stays first) ---
async function move(id, targetId, after) {
  const ids = own().map((t) => t.id).filter((x) => x !== id);
  const index = targetId === "default" ? 0 : ids.indexOf(targetId) + (after ? 1 : 0);
  ids.splice(index, 0, id);
  const previous = tabs;
  tabs = [get("default") || DEFAULT_TAB, ...ids.map(get), ...(shared ? [shared] : [])];
  render();
  try {
    await api("PUT", "/api/kv/tabs/order", { ids: ["default", ...ids] });
  } catch (err) {
    toast("Cannot save the tab order: " + message(err), "error");
    tabs = previous;
    render();
    load();
  }
}
function wireDrag(list) {
  dragReorder(list, {
    item: ".kv-tab",
    canDrag: (node) => node.dataset.tabId !== "default" && !node.dataset.shared,
    idOf: (node) => node.dataset.tabId,
    // Dropped on the default tab: right after it, since it stays first.
    isAfter: (e, node) => {
      const rect = node.getBoundingClientRect();
      return node.dataset.tabId === "default" || e.clientX >= rect.left + rect.width / 2;
    },
    markClass: (after, isDragged) => (isDragged ? "" : after ? "drop-after" : "drop-before"),
    onDrop: (dragged, target, after) => move(dragged.dataset.tabId, target.dataset.tabId, after),
  });
}

export function init(callbacks) {
  if (started) return;
  started = true;
  hooks = { ...hooks, ...callbacks };
  render();
  wireDrag($("kv-tab-list"));
  $("kv-tab-add").addEventListener("click", openAdd);
  $("kv-tab-test").addEventListener("click", testAdd);
  $("kv-tab-form").addEventListener("submit", submitAdd);
  $("kv-tab-cancel").addEventListener("click", () => $("kv-tab-dialog").close());
  $("kv-tab-dialog").addEventListener("close", () => { addRun += 1; });
  $("kv-cred-test").addEventListener("click", testCred);
  $("kv-cred-form").addEventListener("submit", submitCred);
  $("kv-cred-cancel").addEventListener("click", () => $("kv-cred-dialog").close());
  $("kv-cred-clear").addEventListener("change", syncClear);
  load();
  setInterval(() => {
    if (!document.hidden && !$("kv-view").hidden) load();
  }, POLL_MS);
}
