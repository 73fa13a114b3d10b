// Cluster health at a glance: polls /api/status (stored probe results, no etcd call) every
// few seconds, draws the cluster line above every view and tells the views the members' health.
import * as Cluster from "./cluster.js";
import { $, api, clear, clock, el, format } from "./common.js";

const POLL_SECONDS = 5;
const WORDS = { healthy: "Healthy", degraded: "Degraded", critical: "Critical", unreachable: "Unreachable", unknown: "Unknown" };
const listeners = [];
let last = null; // the latest /api/status answer
// The current cluster's firing alerts (GET /api/alerts?state=firing), null while unknown.
let firing = null;
const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
let timer = null;
// Disk latency of the slowest member: {wal, commit: {value, member, sinceStart}} (or null).
let disk = null;
let diskFetchedAt = 0;
// etcd's guidance (and the mixin's alerts): WAL fsync p99 < 10 ms, backend commit p99 < 25 ms.
const DISK_TARGETS = {
  wal: { metric: "etcd_disk_wal_fsync_duration_seconds_p99", label: "WAL fsync p99", target: 0.01 },
  commit: { metric: "etcd_disk_backend_commit_duration_seconds_p99", label: "Commit p99", target: 0.025 },
};

function memberName(members, id) {
  const m = members.find((x) => x.id === id);
  return m ? m.name || m.id : id;
}

// "leader" / "follower" / "learner"; a down or unknown member has no role we can vouch for.
export function role(m) {
  if (m.health !== "up") return m.health === "down" ? "down" : "unknown";
  return m.is_leader ? "leader" : "follower";
}

function versions(members) {
  return [...new Set(members.map((m) => m.etcd_version).filter(Boolean))].sort();
}

function item(label, value, cls) {
  return el("span", { className: "cl-item" + (cls ? " " + cls : "") },
    el("span", { className: "cl-label" }, label + " "), el("strong", {}, value));
}

function render(status) {
  const line = $("cluster-line");
  // Built aside and put in front of the alerts item, which stays in place (updated, never
  // replaced) so that a keyboard user's focus on its link survives the 5 s poll.
  const frag = document.createDocumentFragment();
  const c = status.cluster;
  const members = status.members || [];
  line.dataset.health = c.health;
  frag.appendChild(el("span", { className: "cl-status " + c.health, id: "cluster-health" }, WORDS[c.health] || c.health));
  frag.appendChild(item("Leader", c.leader_id ? memberName(members, c.leader_id) : "none", c.leader_id ? "" : "bad"));
  const up = c.members_up === null || c.members_up === undefined ? "–" : String(c.members_up);
  const margin = c.quorum_margin === null || c.quorum_margin === undefined ? "" :
    ` · quorum margin ${c.quorum_margin}`;
  frag.appendChild(item("Members", `${up}/${c.members_total} up${margin}`,
    c.members_up !== null && c.members_up < c.members_total ? "bad" : ""));
  const alarms = (c.alarms || []).map((a) => `${a.alarm} on ${memberName(members, a.member_id)}`);
  frag.appendChild(item("Alarms", alarms.length ? alarms.join(", ") : "none", alarms.length ? "bad" : ""));
  const db = c.db_quota_ratio === null || c.db_quota_ratio === undefined ? format("bytes", c.db_size_bytes) :
    `${(c.db_quota_ratio * 100).toFixed(1)} % of ${format("bytes", c.db_quota_bytes)} quota (${format("bytes", c.db_size_bytes)})`;
  frag.appendChild(item("DB", db, c.db_quota_ratio >= 0.8 ? "bad" : ""));
  for (const [key, spec] of Object.entries(DISK_TARGETS)) {
    const d = disk && disk[key];
    const text = d ? `${format("duration", d.value)} on ${memberName(members, d.member)}${d.sinceStart ? " (since start)" : ""}` : "–";
    // Red only for a recent value: a since-start p99 may be an old spike, no alarm we can prove.
    const node = item(spec.label, text, d && !d.sinceStart && d.value > spec.target ? "bad" : "");
    node.id = "cl-disk-" + key;
    node.title = `slowest member; target < ${format("duration", spec.target)}`;
    node.appendChild(el("span", { className: "cl-label" }, ` / ${format("duration", spec.target)}`));
    frag.appendChild(node);
  }
  const seen = versions(members);
  if (seen.length > 1) {
    frag.appendChild(el("span", { className: "cl-item warn", id: "mixed-versions" },
      "Mixed etcd versions: " + seen.join(", ")));
  }
  const alerts = alertsItem();
  for (const child of [...line.childNodes]) if (child !== alerts) line.removeChild(child);
  line.insertBefore(frag, alerts.parentNode === line ? alerts : null);
  if (alerts.parentNode !== line) line.appendChild(alerts);
  if (c.as_of) line.appendChild(el("span", { className: "cl-item muted small", id: "cl-as-of" }, "as of " + clock(c.as_of)));
}

// "Alerts 2 firing · worst critical": the firing alerts' count and worst severity, a word and
// a colour, as a link to the Alerts view (app.js switches views in place for a click on a
// [data-view] link). One node, updated in place.
let alertsNode = null;
function alertsItem() {
  let text = "–";
  let worst = "";
  if (firing) {
    worst = firing.reduce((w, a) => (w === "" || SEVERITY_RANK[a.severity] < SEVERITY_RANK[w] ? a.severity : w), "");
    text = firing.length ? `${firing.length} firing · worst ${worst}` : "none firing";
  }
  if (!alertsNode) {
    alertsNode = el("span", { id: "cl-alerts" }, el("span", { className: "cl-label" }, "Alerts "),
      el("a", { id: "cl-alerts-link", className: "cl-alerts-link", dataset: { view: "alerts" } }));
  }
  const link = alertsNode.querySelector("a");
  alertsNode.className = "cl-item cl-alerts" + (worst ? " sev-" + worst : "");
  alertsNode.dataset.firing = firing ? String(firing.length) : "";
  alertsNode.dataset.worst = worst;
  link.href = Cluster.pathFor("/alerts");
  if (link.textContent !== text) link.textContent = text;
  return alertsNode;
}

async function refreshAlerts(clusterId) {
  try {
    const data = await api("GET", "/api/alerts?state=firing&cluster_id=" + encodeURIComponent(clusterId));
    return data.alerts || [];
  } catch (err) {
    return null; // no alert count is shown rather than a wrong one
  }
}

// The slowest member's disk p99s: every member that is up and not stale is asked for its
// current values (a slow follower's disk slows every commit too, so the leader's alone is not
// enough). Asked once per collection interval at most; values are new only that often.
async function refreshDisk(status) {
  const interval = Math.max(5, Math.min(status.collect_interval || 30, 60));
  if (Date.now() - diskFetchedAt < (interval * 1000) / 2) return false;
  diskFetchedAt = Date.now();
  const up = (status.members || []).filter((m) => m.health === "up");
  const answers = await Promise.all(up.map((m) =>
    api("GET", Cluster.scoped("/api/current?member_id=" + encodeURIComponent(m.id))).catch(() => null)));
  const next = {};
  for (const [key, spec] of Object.entries(DISK_TARGETS)) {
    let worst = null;
    for (const a of answers) {
      if (!a || a.stale || !a.metrics) continue; // old values are never shown as current
      const value = a.metrics[spec.metric];
      if (typeof value !== "number") continue;
      const sinceStart = (a.basis || {})[spec.metric] === "cumulative";
      // A window quantile beats a since-start one; among equals the larger value wins.
      const better = !worst || (worst.sinceStart && !sinceStart) ||
        (worst.sinceStart === sinceStart && value > worst.value);
      if (better) worst = { value, member: a.member_id, sinceStart };
    }
    next[key] = worst;
  }
  disk = next;
  return true;
}

async function poll() {
  const asked = Cluster.currentId();
  try {
    const [status, alerts] = await Promise.all([api("GET", Cluster.scoped("/api/status")), refreshAlerts(asked)]);
    if (asked !== Cluster.currentId()) return; // the picker moved on meanwhile
    last = status;
    firing = alerts;
    render(status);
    for (const fn of listeners) fn(status);
    if (await refreshDisk(status).catch(() => false)) render(last);
  } catch (err) {
    if (err.status === 401 || asked !== Cluster.currentId()) return;
    const line = clear($("cluster-line"));
    line.dataset.health = "unknown";
    line.appendChild(el("span", { className: "cl-status unknown", id: "cluster-health" }, "Unknown"));
    line.appendChild(el("span", { className: "cl-item muted" }, "cluster status unavailable: " + err.message));
  }
}

// Poll again now (after an ack or a silence the line should not wait for the next tick).
export function refresh() {
  poll();
}

export function start() {
  if (timer) return;
  Cluster.subscribe(() => {
    disk = null;
    diskFetchedAt = 0;
    firing = null;
    poll();
  });
  poll();
  timer = setInterval(poll, POLL_SECONDS * 1000);
}

// fn(status) after every poll; called at once when a status is already known.
export function subscribe(fn) {
  listeners.push(fn);
  if (last) fn(last);
}
