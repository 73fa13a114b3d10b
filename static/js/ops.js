// Ops view: audit log, defragment, snapshot, alarms, move leader, HashKV, compact. Every
// mutating action asks for confirmation first (compact, disarm and defragmenting the leader:
// the cluster's name typed); audit fields are inserted as text only. Panes the user's role
// (or READ_ONLY) would have refused are not offered.
import * as Cluster from "./cluster.js";
import { $, api, clear, confirmAction, dateTime, el, format, toast, visible } from "./common.js";
import * as Health from "./health.js";
import * as Monitor from "./monitor.js";
import * as Perm from "./permissions.js";

// Roles and typed confirmations follow the cluster picked in the header.
function clusterName() {
  const id = Cluster.currentId();
  return id === Cluster.DEFAULT_ID ? Perm.defaultClusterName : (Cluster.get(id) || {}).name || id;
}
const PANES = {
  audit: () => Perm.globalAllows("operator"),
  defrag: () => Perm.mayChange("admin", Cluster.currentId()),
  snapshot: () => Perm.allows("operator", Cluster.currentId()),
  alarms: () => Perm.allows("operator", Cluster.currentId()),
  leader: () => Perm.mayChange("admin", Cluster.currentId()),
  hashkv: () => Perm.allows("operator", Cluster.currentId()),
  compact: () => Perm.mayChange("admin", Cluster.currentId()),
};
export function allowedPanes() {
  return Object.keys(PANES).filter((name) => PANES[name]());
}

const OPERATIONS = ["login", "login_lockout", "logout", "change_password", "initial_password_file_deleted",
  "cli_reset_password", "cli_unlock", "put", "delete", "defragment", "snapshot", "alarm_disarm", "move_leader",
  "hashkv", "compact"];
const PAGE_SIZE = 15;
let members = [];
let started = false;
let pane = "audit";
let audit = { page: 1, total: 0, entries: [], sort: "timestamp", desc: true };

function showError(err) {
  if (err && err.status === 401) return;
  toast(err.message || String(err), "error");
}
function memberLabel(m) {
  return `${m.name} (${m.id})`;
}
// A member the health probe found down: ops on it are refused by the server, so the
// views mark it and never pre-select it.
function isDown(m) {
  return m.health === "down";
}
function downLabel(m) {
  return memberLabel(m) + (isDown(m) ? " — DOWN" : "");
}
function followersFirst(list) {
  return [...list].sort((a, b) => (a.is_leader === b.is_leader ? a.name.localeCompare(b.name) : a.is_leader ? 1 : -1));
}
async function loadMembers() {
  const data = await api("GET", Cluster.scoped("/api/members"));
  members = data.members || [];
}

// --- audit log ---
function auditQuery(extra) {
  const params = new URLSearchParams();
  const operation = $("audit-operation").value;
  const username = $("audit-username").value.trim();
  const success = $("audit-success").value;
  if (operation) params.set("operation", operation);
  if (username) params.set("username", username);
  if (success) params.set("success", success);
  for (const [k, v] of Object.entries(extra || {})) params.set(k, v);
  return params;
}
async function loadAudit() {
  try {
    const data = await api("GET", "/api/ops/audit-logs?" + auditQuery({ page: audit.page, page_size: PAGE_SIZE }));
    audit.entries = data.entries || [];
    audit.total = data.total || 0;
    renderAudit();
  } catch (err) {
    showError(err);
  }
  $("audit-csv").href = "/api/ops/audit-logs?" + auditQuery({ format: "csv" });
}
function renderAudit() {
  const key = audit.sort;
  // Sorting is within the current page; the server orders pages newest first.
  const rows = [...audit.entries].sort((a, b) => {
    const x = a[key], y = b[key];
    const cmp = typeof x === "number" || typeof x === "boolean" ? Number(x) - Number(y) : String(x).localeCompare(String(y));
    return audit.desc ? -cmp : cmp;
  });
  const body = clear($("audit-table").tBodies[0]);
  for (const e of rows) {
    const result = visible((e.success ? "success" : "failed") + (e.result ? ": " + e.result : ""));
    body.appendChild(el("tr", { className: e.success ? "" : "failed" },
      el("td", {}, dateTime(e.timestamp)),
      el("td", {}, visible(e.username)),
      el("td", {}, e.operation),
      el("td", { title: visible(e.target) }, visible(e.target)),
      el("td", { title: result, className: e.success ? "ok-mark" : "fail-mark" }, result.length > 60 ? result.slice(0, 60) + "…" : result),
      el("td", {}, e.duration_ms + " ms")));
  }
  if (!rows.length) body.appendChild(el("tr", {}, el("td", { colspan: "6", className: "muted" }, "No entries")));
  const pages = Math.max(1, Math.ceil(audit.total / PAGE_SIZE));
  $("audit-page").textContent = `Page ${audit.page} / ${pages} (${audit.total} total)`;
  $("audit-prev").disabled = audit.page <= 1;
  $("audit-next").disabled = audit.page >= pages;
  document.querySelectorAll("#audit-table th").forEach((th) => {
    th.classList.toggle("sorted", th.dataset.sort === key);
    if (th.dataset.sort === key) th.setAttribute("aria-sort", audit.desc ? "descending" : "ascending");
    else th.removeAttribute("aria-sort");
  });
}

// --- defragment ---
function renderDefrag() {
  const list = clear($("defrag-list"));
  for (const m of followersFirst(members)) {
    const role = Health.role(m);
    list.appendChild(el("li", { dataset: { member: m.id, health: m.health || "unknown" }, className: isDown(m) ? "member-down" : "" },
      el("input", { type: "checkbox", id: "defrag-" + m.id, value: m.id, disabled: isDown(m) }),
      el("label", { for: "defrag-" + m.id }, memberLabel(m)),
      el("span", { className: "role " + role }, role),
      el("span", { className: "defrag-result" }, isDown(m) ? "down: " + (m.error || "unreachable") : "")));
  }
  $("defrag-run").textContent = "Defragment selected";
  $("defrag-run").disabled = false;
}
async function runDefrag() {
  const chosen = followersFirst(members).filter((m) => $("defrag-" + m.id).checked && !isDown(m));
  if (!chosen.length) return toast("Select at least one member.", "error");
  const leader = chosen.some((m) => m.is_leader);
  const ok = await confirmAction("Defragment",
    `Defragment ${chosen.length} member(s) one at a time: followers first, the leader last. ` +
    "A member blocks reads and writes while it defragments." +
    (leader ? " The leader is among them: the whole cluster stalls while it defragments." : ""),
    "Defragment", leader ? clusterName() : undefined);
  if (!ok) return;
  const button = $("defrag-run");
  button.disabled = true;
  for (const m of chosen) { // sequential on purpose: never two members at once
    const cell = document.querySelector(`#defrag-list li[data-member="${m.id}"] .defrag-result`);
    cell.className = "defrag-result muted";
    cell.textContent = "running…";
    try {
      const result = await api("POST", Cluster.scoped("/api/ops/defragment"), { member_id: m.id });
      cell.className = "defrag-result ok-mark";
      cell.textContent = "✓";
      cell.title = result.duration_ms + " ms";
    } catch (err) {
      cell.className = "defrag-result fail-mark";
      cell.textContent = "✗ " + err.message;
      cell.title = err.message;
    }
  }
  button.textContent = "Completed";
}

// --- snapshot ---
async function renderSnapshot() {
  const select = clear($("snapshot-member"));
  for (const m of members) {
    select.appendChild(el("option", { value: m.id, disabled: isDown(m), dataset: { health: m.health || "unknown" } },
      downLabel(m) + (m.is_leader ? " ★ leader" : "")));
  }
  // Pre-select the leader, else any member that is up; never a down one.
  const pick = members.find((m) => m.is_leader && !isDown(m)) || members.find((m) => !isDown(m));
  select.value = pick ? pick.id : "";
  $("snapshot-download").classList.toggle("disabled", !pick);
  updateSnapshot();
}
async function updateSnapshot() {
  const id = $("snapshot-member").value;
  // A plain link: the browser streams the file to disk, nothing is buffered in page memory.
  $("snapshot-download").href = Cluster.scoped("/api/ops/snapshot?member_id=" + encodeURIComponent(id));
  $("snapshot-size").textContent = "";
  try {
    const current = await api("GET", Cluster.scoped("/api/current?member_id=" + encodeURIComponent(id)));
    const size = current.metrics && current.metrics.etcd_mvcc_db_total_size_in_bytes;
    $("snapshot-size").textContent = size ? "Database size of this member: " + format("bytes", size) +
      " (the snapshot is about this size)." : "";
  } catch (err) {
    /* the size is a hint only */
  }
}

// --- alarms ---
async function loadAlarms() {
  try {
    const data = await api("GET", Cluster.scoped("/api/ops/alarms"));
    const alarms = data.alarms || [];
    const body = clear($("alarms-table").tBodies[0]);
    for (const a of alarms) {
      body.appendChild(el("tr", {},
        el("td", {}, a.alarm_type),
        el("td", {}, `${a.member_name} (${a.member_id})`),
        el("td", {}, Perm.mayChange("admin", Cluster.currentId())
          ? el("button", { type: "button", className: "alarm-disarm", onclick: () => disarm(a) }, "Disarm") : "")));
    }
    $("alarms-table").hidden = !alarms.length;
    $("alarms-empty").hidden = !!alarms.length;
  } catch (err) {
    showError(err);
  }
}
async function disarm(alarm) {
  const question = `Disarm ${alarm.alarm_type} on ${alarm.member_name}?`;
  if (!(await confirmAction("Disarm alarm", question, "Disarm", clusterName()))) return;
  try {
    await api("POST", Cluster.scoped("/api/ops/alarms/disarm"), { member_id: alarm.member_id, alarm_type: alarm.alarm_type });
    toast("Alarm disarmed", "success");
  } catch (err) {
    showError(err);
  }
  loadAlarms();
}

// --- move leader ---
function renderLeader() {
  const leader = members.find((m) => m.is_leader);
  $("leader-current").textContent = leader ? memberLabel(leader) : "none (no member answering claims leadership)";
  const followers = members.filter((m) => !m.is_leader);
  $("leader-form").hidden = members.length < 2;
  $("leader-na").hidden = members.length >= 2;
  const select = clear($("leader-target"));
  for (const m of followers) {
    select.appendChild(el("option", { value: m.id, disabled: isDown(m), dataset: { health: m.health || "unknown" } }, downLabel(m)));
  }
  const pick = followers.find((m) => !isDown(m));
  select.value = pick ? pick.id : "";
  $("leader-run").disabled = !pick;
}
async function moveLeader() {
  const target = members.find((m) => m.id === $("leader-target").value);
  if (!target || isDown(target)) return;
  if (!(await confirmAction("Move leader", `Transfer leadership to ${target.name}?`, "Move leader"))) return;
  try {
    const result = await api("POST", Cluster.scoped("/api/ops/move-leader"), { target_member_id: target.id });
    $("leader-result").textContent = `Leader moved to ${result.target_name} in ${result.duration_ms} ms.`;
    await loadMembers();
    Monitor.refresh();
    renderLeader();
  } catch (err) {
    $("leader-result").textContent = "";
    showError(err);
  }
}

// --- HashKV ---
async function runHashKV() {
  const button = $("hashkv-run");
  button.disabled = true;
  try {
    const data = await api("POST", Cluster.scoped("/api/ops/hashkv"));
    const banner = $("hashkv-banner");
    banner.hidden = false;
    const unreachable = data.unreachable || [];
    // Only members that answered and disagree are an inconsistency; a member that did not
    // answer leaves the check unverified, never "inconsistent".
    if (data.mismatch) {
      banner.className = "result-banner bad";
      banner.textContent = "Data inconsistent: the members that answered have different hashes" +
        (unreachable.length ? ` (and ${unreachable.length} member(s) unreachable)` : "");
    } else if (data.incomplete) {
      banner.className = "result-banner warn";
      banner.textContent = `Could not verify: ${unreachable.length} member(s) unreachable (` +
        unreachable.map((u) => u.member_name || u.member_id).join(", ") + "); the members that answered agree.";
    } else {
      banner.className = "result-banner ok";
      banner.textContent = `Data is consistent across all members (revision ${data.revision}, ${data.duration_ms} ms)`;
    }
    const firstOk = (data.results || []).find((r) => !r.error);
    const body = clear($("hashkv-table").tBodies[0]);
    for (const r of data.results || []) {
      const status = r.error ? `Unreachable (${r.error})` : firstOk && r.hash === firstOk.hash ? "✓" : "✗ differs";
      const hash = r.error ? "–" : String(r.hash);
      body.appendChild(el("tr", {},
        el("td", {}, `${r.member_name} (${r.member_id})`),
        el("td", {}, r.error ? "–" : String(r.revision)),
        el("td", {}, r.error || r.compact_revision === undefined ? "–" : String(r.compact_revision)),
        el("td", {}, hash),
        el("td", { className: status === "✓" ? "ok-mark" : "fail-mark" }, status)));
    }
    $("hashkv-table").hidden = false;
  } catch (err) {
    showError(err);
  }
  button.disabled = false;
}

// --- compact ---
async function loadRevision() {
  try {
    $("compact-current").textContent = String((await api("GET", Cluster.scoped("/api/ops/compact/revision"))).revision);
  } catch (err) {
    showError(err);
  }
}
async function runCompact() {
  const retain = parseInt($("compact-retain").value, 10);
  if (!(retain >= 1)) return toast("Retain at least 1 revision.", "error");
  const physical = $("compact-physical").checked;
  const ok = await confirmAction("Compact",
    `Compact history, keeping the latest ${retain} revision(s)${physical ? " (physical)" : ""}? Older revisions are gone for good.`,
    "Compact", clusterName());
  if (!ok) return;
  try {
    const r = await api("POST", Cluster.scoped("/api/ops/compact"), { retain_count: retain, physical });
    const body = clear($("compact-result").tBodies[0]);
    const rows = [["Revision at execution", r.current_revision], ["Compacted to", r.target_revision],
      ["Retained", r.retain_count], ["Physical", r.physical ? "yes" : "no"], ["Duration", r.duration_ms + " ms"]];
    for (const [k, v] of rows) body.appendChild(el("tr", {}, el("th", {}, k), el("td", {}, String(v))));
    $("compact-result").hidden = false;
    loadRevision();
  } catch (err) {
    showError(err);
  }
}

async function showPane(name) {
  pane = name;
  document.querySelectorAll("#ops-menu button").forEach((b) => b.classList.toggle("active", b.dataset.ops === name));
  document.querySelectorAll(".ops-pane").forEach((p) => { p.hidden = p.id !== "ops-" + name; });
  try {
    if (["defrag", "snapshot", "leader"].includes(name)) await loadMembers();
  } catch (err) {
    showError(err);
  }
  if (name === "audit") loadAudit();
  else if (name === "defrag") renderDefrag();
  else if (name === "snapshot") renderSnapshot();
  else if (name === "alarms") loadAlarms();
  else if (name === "leader") renderLeader();
  else if (name === "compact") loadRevision();
}

function init() {
  const allowed = allowedPanes();
  document.querySelectorAll("#ops-menu button").forEach((b) => { b.hidden = !allowed.includes(b.dataset.ops); });
  if (!allowed.includes(pane)) pane = allowed[0];
  const select = $("audit-operation");
  for (const op of OPERATIONS) select.appendChild(el("option", { value: op }, op));
  document.querySelectorAll("#ops-menu button").forEach((b) => b.addEventListener("click", () => showPane(b.dataset.ops)));
  $("audit-filters").addEventListener("submit", (e) => {
    e.preventDefault();
    audit.page = 1;
    loadAudit();
  });
  $("audit-prev").addEventListener("click", () => { audit.page = Math.max(1, audit.page - 1); loadAudit(); });
  $("audit-next").addEventListener("click", () => { audit.page += 1; loadAudit(); });
  document.querySelectorAll("#audit-table th[data-sort]").forEach((th) => {
    // A button inside the header makes sorting reachable by keyboard; its click bubbles to the th.
    th.replaceChildren(el("button", { type: "button", className: "sort" }, th.textContent));
  });
  document.querySelectorAll("#audit-table th[data-sort]").forEach((th) => th.addEventListener("click", () => {
    audit.desc = audit.sort === th.dataset.sort ? !audit.desc : false;
    audit.sort = th.dataset.sort;
    renderAudit();
  }));
  $("defrag-all").addEventListener("change", (e) => {
    document.querySelectorAll("#defrag-list input[type=checkbox]").forEach((b) => { b.checked = e.target.checked && !b.disabled; });
  });
  $("defrag-run").addEventListener("click", runDefrag);
  $("snapshot-member").addEventListener("change", updateSnapshot);
  $("leader-run").addEventListener("click", moveLeader);
  $("hashkv-run").addEventListener("click", runHashKV);
  $("compact-refresh").addEventListener("click", loadRevision);
  $("compact-run").addEventListener("click", runCompact);
}

export function activate() {
  if (!started) {
    started = true;
    init();
    // Another cluster: the open pane re-reads it (its members, alarms, revision).
    Cluster.subscribe(() => {
      members = [];
      if (!$("ops-view").hidden) activate();
    });
  }
  const asked = Cluster.currentId();
  api("GET", Cluster.scoped("/api/status")).then((s) => {
    if (asked !== Cluster.currentId()) return;
    const entry = Cluster.get(asked);
    clear($("ops-info")).append("Cluster: ", el("b", {}, entry ? entry.name : asked), " ", Cluster.envBadge(entry),
      " · etcd " + (s.etcd_version || "–") + " · " + s.member_count + " member(s)");
  }).catch(() => {});
  showPane(pane);
}

let shownHealth = "";
export function membersChanged(list) {
  members = list;
  // Keep the open pane's marks current as members go down and come back (only on a change:
  // re-rendering would drop the user's ticks).
  const health = list.map((m) => `${m.id}:${m.health}:${m.is_leader}`).join(",");
  if (health === shownHealth) return;
  shownHealth = health;
  if (!started || $("ops-view").hidden) return;
  if (pane === "defrag" && !$("defrag-run").disabled && $("defrag-run").textContent !== "Completed") renderDefrag();
  else if (pane === "leader") renderLeader();
}
