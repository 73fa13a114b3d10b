// Fleet view: one row per cluster the user can see (GET /api/fleet, polled while shown):
// environment, status, leader, members and quorum margin, alarms, DB % of quota, WAL fsync p99,
// versions, last collection age and firing alerts. Columns sort (buttons in the headers, with
// aria-sort), rows filter by label and status, and a row opens that cluster's monitor, KV or ops.
import { $, api, clear, el, format } from "./common.js";
import * as Cluster from "./cluster.js";

const POLL_SECONDS = 5;
const WORDS = { healthy: "Healthy", degraded: "Degraded", critical: "Critical", unreachable: "Unreachable", unknown: "Unknown" };
// Worst first when sorting by status.
const STATUS_RANK = { unreachable: 0, critical: 1, degraded: 2, unknown: 3, healthy: 4 };
const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };

let entries = [];
let fetchedAt = 0;
let sort = { key: "status", dir: 1 };
let timer = null;
let started = false;
let openView = () => {};

const COLUMNS = [
  { key: "name", label: "Cluster", value: (c) => c.name.toLowerCase() },
  { key: "status", label: "Status", value: (c) => STATUS_RANK[c.status.health] ?? 9 },
  { key: "leader", label: "Leader", value: (c) => c.leader || "" },
  { key: "members", label: "Members", value: (c) => c.status.quorum_margin ?? -99 },
  { key: "alarms", label: "Alarms", value: (c) => -(c.status.alarms || []).length },
  { key: "db", label: "DB % quota", value: (c) => -(c.status.db_quota_ratio ?? -1) },
  { key: "wal", label: "WAL fsync p99", value: (c) => -(c.wal_fsync_p99 ?? -1) },
  { key: "versions", label: "Versions", value: (c) => (c.versions || []).join(",") },
  { key: "collected", label: "Last collection", value: (c) => -(c.last_collected || 0) },
  { key: "alerts", label: "Alerts", value: (c) => [SEVERITY_RANK[c.alerts.worst] ?? 9, -c.alerts.firing] },
];

function compare(a, b) {
  if (Array.isArray(a)) {
    for (let i = 0; i < a.length; i += 1) if (a[i] !== b[i]) return a[i] < b[i] ? -1 : 1;
    return 0;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

function age(ts) {
  if (!ts) return "never";
  const seconds = Math.max(0, Math.round(Date.now() / 1000 - ts));
  if (seconds < 120) return `${seconds} s ago`;
  if (seconds < 7200) return `${Math.round(seconds / 60)} min ago`;
  return `${Math.round(seconds / 3600)} h ago`;
}

// "label=value" or a bare word matched against every label; empty matches everything.
function labelMatches(c, text) {
  const wanted = text.trim().toLowerCase();
  if (!wanted) return true;
  const labels = Object.entries(c.labels || {}).map(([k, v]) => `${k}=${v}`.toLowerCase());
  if (wanted.includes("=")) return labels.includes(wanted);
  return labels.some((l) => l.includes(wanted)) || c.name.toLowerCase().includes(wanted);
}

function visible() {
  const status = $("fleet-status-filter").value;
  const label = $("fleet-label-filter").value;
  const column = COLUMNS.find((col) => col.key === sort.key) || COLUMNS[1];
  return entries
    .filter((c) => (!status || c.status.health === status) && labelMatches(c, label))
    .sort((a, b) => sort.dir * compare(column.value(a), column.value(b)) || compare(a.name, b.name));
}

function cell(label, ...content) {
  return el("td", { dataset: { label } }, ...content);
}

function opener(c, view, text) {
  return el("button", {
    type: "button", className: "ghost small fleet-open", dataset: { view, cluster: c.id },
    "aria-label": `${text} ${c.name}`,
    onclick: (e) => { e.stopPropagation(); open(c.id, view); },
  }, text);
}

function open(id, view) {
  Cluster.select(id);
  openView(view);
}

function row(c) {
  const s = c.status;
  const health = s.health || "unknown";
  const margin = s.quorum_margin === null || s.quorum_margin === undefined ? "" : ` · margin ${s.quorum_margin}`;
  const up = s.members_up === null || s.members_up === undefined ? "–" : s.members_up;
  const alarms = (s.alarms || []).map((a) => a.alarm);
  const db = s.db_quota_ratio === null || s.db_quota_ratio === undefined ? "–" : `${(s.db_quota_ratio * 100).toFixed(1)} %`;
  const wal = c.wal_fsync_p99 === null || c.wal_fsync_p99 === undefined ? "–" : format("duration", c.wal_fsync_p99);
  const alerts = c.alerts.firing ? `${c.alerts.firing} ${c.alerts.worst}` : "none";
  const tr = el("tr", { className: "fleet-row", dataset: { cluster: c.id, health } },
    cell("Cluster", el("span", { className: "fleet-name" },
      el("button", { type: "button", className: "link fleet-name-button", onclick: () => open(c.id, "monitor") }, c.name),
      " ", Cluster.envBadge(c), c.owner ? el("span", { className: "muted small" }, " (own)") : null)),
    cell("Status", el("span", { className: "cl-status " + health }, WORDS[health] || health),
      c.monitored ? null : el("span", { className: "muted small" }, " not monitored")),
    cell("Leader", c.leader || (health === "unknown" ? "–" : "none")),
    cell("Members", `${up}/${s.members_total ?? "–"}${margin}`),
    cell("Alarms", alarms.length ? alarms.join(", ") : "none"),
    cell("DB % quota", db),
    cell("WAL fsync p99", wal),
    cell("Versions", (c.versions || []).join(", ") || "–"),
    cell("Last collection", age(c.last_collected)),
    cell("Alerts", el("span", { className: c.alerts.firing ? "fleet-alert sev-" + c.alerts.worst : "" }, alerts)),
    cell("Open", el("span", { className: "fleet-actions" },
      opener(c, "monitor", "Monitor"), opener(c, "kv", "KV"),
      document.getElementById("view-ops") ? opener(c, "ops", "Ops") : null)));
  return tr;
}

function header() {
  const tr = el("tr", {});
  for (const col of COLUMNS) {
    const active = sort.key === col.key;
    const th = el("th", { scope: "col", "aria-sort": active ? (sort.dir === 1 ? "ascending" : "descending") : "none" },
      el("button", { type: "button", className: "fleet-sort", dataset: { sort: col.key },
        onclick: () => { sort = { key: col.key, dir: active ? -sort.dir : 1 }; render(); } },
      col.label, el("span", { "aria-hidden": "true" }, active ? (sort.dir === 1 ? " ▲" : " ▼") : "")));
    tr.appendChild(th);
  }
  tr.appendChild(el("th", { scope: "col" }, "Open"));
  return tr;
}

function render() {
  const table = clear($("fleet-table"));
  table.appendChild(el("caption", { className: "sr-only" }, "Clusters, one per row"));
  table.appendChild(el("thead", {}, header()));
  const shown = visible();
  const body = el("tbody", {});
  for (const c of shown) body.appendChild(row(c));
  table.appendChild(body);
  const total = entries.length;
  $("fleet-summary").textContent = shown.length === total ? `${total} cluster(s)` : `${shown.length} of ${total} cluster(s)`;
}

async function poll() {
  try {
    const data = await api("GET", "/api/fleet");
    entries = data.clusters || [];
    fetchedAt = Date.now();
    Cluster.update(entries);
    $("fleet-error").hidden = true;
    render();
  } catch (err) {
    if (err.status === 401) return;
    $("fleet-error").hidden = false;
    $("fleet-error").textContent = "Cannot load the fleet: " + err.message;
  }
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(() => {
    if (!document.hidden && !$("fleet-view").hidden) poll();
  }, POLL_SECONDS * 1000);
}

// show(view): the shell's view switch (app.js), so a row can open the monitor, KV or ops.
export function init(show) {
  openView = show;
}

export function activate() {
  if (!started) {
    started = true;
    $("fleet-status-filter").addEventListener("change", render);
    $("fleet-label-filter").addEventListener("input", render);
    schedule();
  }
  if (Date.now() - fetchedAt > 1000) poll();
}
