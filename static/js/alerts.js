// Alerts view (issue 20): the current cluster's active alerts (ack for operators) and the last
// 24 h of resolved ones, silences (create and expire for operators), the rules (enabled and
// for_seconds editable by admins, thresholds and per-cluster overrides in alerts-edit.js) and
// the notification channels (add, edit, enable, delete and a test message for admins).
// Polled while shown. Every value from the API is inserted as text (el() makes text nodes).
import { channelEditor, effectiveRule, mountIn, ruleEditor } from "./alerts-edit.js";
import * as Cluster from "./cluster.js";
import { $, api, clear, confirmAction, dateTime, el, toast, visible } from "./common.js";
import * as Health from "./health.js";
import * as Permissions from "./permissions.js";

const POLL_SECONDS = 10;
const SEVERITY_RANK = { critical: 0, warning: 1, info: 2 };
const MATCHERS = ["rule", "cluster_id", "member_id", "severity"];

let started = false;
let timer = null;
let rules = [];
let members = []; // the current cluster's members (health.js's latest status)
let fetchedAt = 0;
let channelForm = null; // the admin editors (alerts-edit.js), made on the first activation
let ruleForm = null;

function showError(err) {
  if (err && err.status === 401) return;
  toast(err.message || String(err), "error");
}

function memberName(id) {
  if (!id) return "–";
  const m = members.find((x) => x.id === id);
  return visible(m && m.name ? m.name : id);
}

function ruleTitle(id) {
  const rule = rules.find((r) => r.id === id);
  return rule ? rule.title : "";
}

// A date and time, not "3 min ago": a table redrawn only on change would let that go stale.
function since(ts) {
  return ts ? dateTime(ts) : "–";
}

function severityCell(severity) {
  return el("td", { dataset: { label: "Severity" } }, el("span", { className: "sev sev-" + severity }, severity));
}

function cell(label, ...content) {
  return el("td", { dataset: { label } }, ...content);
}

// Redrawn only when what it shows changed: a poll must not take the focus from an Ack button
// or an admin's half-typed rule setting.
const drawn = {};
function fill(tableId, emptyId, rows, key) {
  if (key !== undefined && drawn[tableId] === key) return;
  drawn[tableId] = key;
  const body = $(tableId).querySelector("tbody");
  // A change anywhere in the table (another alert's values, a new probe error) redraws it:
  // the control that had the focus gets it back in its new row, found by its label.
  const active = document.activeElement;
  const label = active && body.contains(active) ? active.getAttribute("aria-label") : null;
  clear(body);
  for (const row of rows) body.appendChild(row);
  $(tableId).hidden = rows.length === 0;
  if (emptyId) $(emptyId).hidden = rows.length !== 0;
  if (label) {
    const again = Array.from(body.querySelectorAll("[aria-label]")).find(
      (node) => node.getAttribute("aria-label") === label);
    if (again) again.focus();
  }
}

function marks(alert) {
  const parts = [el("span", { className: "alert-state state-" + alert.state }, alert.state)];
  if (alert.silenced) parts.push(" ", el("span", { className: "mark silenced" }, "silenced"));
  if (alert.acknowledged) parts.push(" ", el("span", { className: "mark acknowledged" }, "acknowledged"));
  return parts;
}

async function ack(alert) {
  try {
    await api("POST", `/api/alerts/${alert.id}/ack`);
    toast(`Acknowledged ${alert.rule}`, "success");
    Health.refresh();
    await loadAlerts();
  } catch (err) {
    showError(err);
  }
}

// The silence form, filled in for this alert: its rule and member on this cluster.
function silenceLike(alert) {
  $("silence-rule").value = alert.rule;
  $("silence-member").value = alert.member_id || "";
  $("silence-severity").value = "";
  $("silence-this-cluster").checked = true;
  $("silence-comment").focus();
}

function activeRow(alert) {
  const label = `${alert.rule}${alert.member_id ? " on " + memberName(alert.member_id) : ""}`;
  const actions = [];
  if (Permissions.allows("operator", alert.cluster_id) && !alert.acknowledged) {
    actions.push(el("button", { type: "button", className: "alert-ack", "aria-label": "Ack " + label,
      onclick: () => ack(alert) }, "Ack"));
  }
  if (Permissions.globalAllows("operator")) {
    actions.push(el("button", { type: "button", className: "ghost alert-silence", "aria-label": "Silence " + label,
      onclick: () => silenceLike(alert) }, "Silence…"));
  }
  return el("tr", { dataset: { alert: String(alert.id), rule: alert.rule } },
    severityCell(alert.severity),
    cell("Rule", el("span", { title: ruleTitle(alert.rule) }, alert.rule)),
    cell("Member", memberName(alert.member_id)),
    cell("Summary", alert.summary),
    cell("Since", since(alert.starts_at)),
    cell("State", marks(alert)),
    cell("Actions", el("span", { className: "row-actions" }, actions)));
}

function historyRow(alert) {
  return el("tr", { dataset: { alert: String(alert.id), rule: alert.rule } },
    severityCell(alert.severity),
    cell("Rule", alert.rule),
    cell("Member", memberName(alert.member_id)),
    cell("Summary", alert.summary),
    cell("Started", since(alert.starts_at)),
    cell("Resolved", since(alert.ends_at)));
}

function bySeverity(a, b) {
  return (SEVERITY_RANK[a.severity] ?? 9) - (SEVERITY_RANK[b.severity] ?? 9) || b.starts_at - a.starts_at;
}

async function loadAlerts() {
  const asked = Cluster.currentId();
  const data = await api("GET", "/api/alerts?cluster_id=" + encodeURIComponent(asked));
  if (asked !== Cluster.currentId()) return;
  const alerts = data.alerts || [];
  const active = alerts.filter((a) => a.state !== "resolved").sort(bySeverity);
  const resolved = alerts.filter((a) => a.state === "resolved").sort((a, b) => (b.ends_at || 0) - (a.ends_at || 0));
  const names = JSON.stringify(members);
  fill("alerts-active-table", "alerts-active-empty", active.map(activeRow), JSON.stringify(active) + names);
  fill("alerts-history-table", "alerts-history-empty", resolved.map(historyRow), JSON.stringify(resolved) + names);
  const entry = Cluster.get(asked);
  const firing = active.filter((a) => a.state === "firing").length;
  $("alerts-scope").textContent = `Cluster ${visible(entry ? entry.name : asked)}: ${firing} firing, ` +
    `${active.length - firing} pending, ${resolved.length} resolved in 24 h`;
}

function matchersText(matchers) {
  return MATCHERS.filter((k) => matchers[k] !== undefined).map((k) => {
    const value = k === "member_id" ? memberName(matchers[k]) : visible(matchers[k]);
    return `${k === "member_id" ? "member" : k === "cluster_id" ? "cluster" : k}=${value}`;
  }).join(", ");
}

async function expire(silence) {
  const ok = await confirmAction("Expire silence", `Expire the silence ${matchersText(silence.matchers)}? ` +
    "Its alerts notify again.", "Expire");
  if (!ok) return;
  try {
    await api("DELETE", `/api/alerts/silences/${silence.id}`);
    toast("Silence expired", "success");
    Health.refresh();
    await Promise.all([loadSilences(), loadAlerts()]);
  } catch (err) {
    showError(err);
  }
}

function silenceRow(silence) {
  const actions = [];
  if (Permissions.globalAllows("operator") && silence.state !== "expired") {
    actions.push(el("button", { type: "button", className: "silence-expire",
      "aria-label": "Expire silence " + matchersText(silence.matchers), onclick: () => expire(silence) }, "Expire"));
  }
  return el("tr", { dataset: { silence: String(silence.id), state: silence.state } },
    cell("Matchers", matchersText(silence.matchers)),
    cell("State", silence.state),
    cell("Ends", dateTime(silence.ends_at)),
    cell("Comment", visible(silence.comment || "")),
    cell("By", visible(silence.created_by || "")),
    cell("Actions", el("span", { className: "row-actions" }, actions)));
}

async function loadSilences() {
  const data = await api("GET", "/api/alerts/silences");
  const order = { active: 0, pending: 1, expired: 2 };
  const silences = (data.silences || []).sort((a, b) => (order[a.state] ?? 9) - (order[b.state] ?? 9) ||
    b.ends_at - a.ends_at);
  fill("alerts-silences-table", "alerts-silences-empty", silences.map(silenceRow),
    JSON.stringify(silences) + JSON.stringify(members));
}

async function saveRule(rule, enabled, forSeconds) {
  const body = {};
  if (enabled !== rule.enabled) body.enabled = enabled;
  if (forSeconds !== rule.for_seconds) body.for_seconds = forSeconds;
  if (!Object.keys(body).length) {
    toast("Nothing changed", "");
    return;
  }
  try {
    await api("PATCH", "/api/alerts/rules/" + encodeURIComponent(rule.id), body);
    toast(`Rule ${rule.id} saved`, "success");
    await loadRules();
  } catch (err) {
    showError(err);
  }
}

function ruleRow(rule) {
  const admin = Permissions.globalAllows("admin");
  const tr = el("tr", { dataset: { rule: rule.id } });
  const name = [el("span", { className: "rule-id" }, rule.id), el("span", { className: "muted small rule-title" }, rule.title)];
  if (!rule.implemented) name.push(el("span", { className: "muted small" }, " (never fires here)"));
  tr.appendChild(cell("Rule", name));
  tr.appendChild(severityCell(rule.severity));
  if (!admin) {
    tr.append(cell("Enabled", rule.enabled ? "yes" : "no"), cell("For (s)", String(rule.for_seconds)),
      thresholdsCell(rule), cell("Actions"));
    return tr;
  }
  const enabled = el("input", { type: "checkbox", checked: rule.enabled, id: "rule-enabled-" + rule.id,
    "aria-label": `${rule.id} enabled` });
  const forSeconds = el("input", { type: "number", min: "0", max: "604800", step: "1", value: String(rule.for_seconds),
    id: "rule-for-" + rule.id, className: "rule-for", "aria-label": `${rule.id} for seconds` });
  const save = el("button", { type: "button", className: "rule-save", "aria-label": "Save rule " + rule.id,
    onclick: () => {
      const seconds = Number(forSeconds.value);
      if (!Number.isInteger(seconds) || seconds < 0) {
        toast("For (s) must be a whole number of seconds", "error");
        return;
      }
      saveRule(rule, enabled.checked, seconds);
    } }, "Save");
  const edit = el("button", { type: "button", className: "ghost rule-edit", "aria-label": "Edit thresholds of rule " + rule.id,
    onclick: () => {
      const id = Cluster.currentId();
      const entry = Cluster.get(id);
      ruleForm.open(rule, id, entry ? entry.name : id);
    } }, "Thresholds…");
  tr.append(cell("Enabled", enabled), cell("For (s)", forSeconds), thresholdsCell(rule),
    cell("Actions", el("span", { className: "row-actions" }, save, edit)));
  return tr;
}

// The values in force on the current cluster; an override of this cluster is marked and said.
function thresholdsCell(rule) {
  const cid = Cluster.currentId();
  const now = effectiveRule(rule, cid);
  const o = now.override || {};
  const oThresholds = o.thresholds || {};
  const parts = Object.keys(now.thresholds).sort().map((n) =>
    el("span", { className: "rule-threshold" + (n in oThresholds ? " overridden" : ""), dataset: { threshold: n } },
      `${n} ${now.thresholds[n]}`, n in oThresholds ? " *" : ""));
  const content = [el("span", { className: "rule-thresholds" }, parts.length ? parts : "–")];
  if (now.override) {
    const entry = Cluster.get(cid);
    content.push(el("span", { className: "rule-override small" },
      el("span", { className: "mark" }, "override"),
      ` on ${visible(entry ? entry.name : cid)}: ${now.enabled ? "enabled" : "disabled"}, for ${now.for_seconds} s` +
      (Object.keys(oThresholds).length ? ", * thresholds" : "")));
  }
  return cell("Thresholds", el("span", { className: "rule-settings" }, content));
}

function fillRuleChoices() {
  const select = $("silence-rule");
  const chosen = select.value;
  clear(select).appendChild(el("option", { value: "" }, "Any rule"));
  for (const rule of rules) select.appendChild(el("option", { value: rule.id }, rule.id));
  select.value = chosen;
}

async function loadRules() {
  const data = await api("GET", "/api/alerts/rules");
  rules = data.rules || [];
  fill("alerts-rules-table", null, rules.map(ruleRow), JSON.stringify(rules) + Cluster.currentId());
  fillRuleChoices();
}

async function testChannel(channel) {
  try {
    const answer = await api("POST", `/api/alerts/channels/${encodeURIComponent(channel.id)}/test`);
    if (answer.ok) toast(`Test sent to ${visible(channel.name)}: ${(answer.sent || []).join(" and ")}`, "success");
    else toast(`Test to ${visible(channel.name)} failed: ${answer.error}`, "error");
  } catch (err) {
    showError(err);
  }
}

function channelTarget(channel) {
  const config = channel.config || {};
  if (channel.kind === "email") return visible([].concat(config.to || []).join(", "));
  return visible(config.url || "");
}

async function setChannelEnabled(channel, enabled) {
  try {
    await api("PATCH", "/api/alerts/channels/" + encodeURIComponent(channel.id), { enabled });
    toast(`Channel ${visible(channel.name)} ${enabled ? "enabled" : "disabled"}`, "success");
    await loadChannels();
  } catch (err) {
    showError(err);
  }
}

async function deleteChannel(channel) {
  const ok = await confirmAction("Delete channel", `Delete the channel ${visible(channel.name)}? ` +
    "Its undelivered messages are dropped.", "Delete");
  if (!ok) return;
  try {
    await api("DELETE", "/api/alerts/channels/" + encodeURIComponent(channel.id));
    if (channelForm.editingId() === channel.id) channelForm.reset();
    toast(`Channel ${visible(channel.name)} deleted`, "success");
    await loadChannels();
  } catch (err) {
    showError(err);
  }
}

function channelRow(channel) {
  const actions = [];
  if (Permissions.globalAllows("admin")) {
    const name = visible(channel.name);
    actions.push(el("button", { type: "button", className: "channel-test",
      "aria-label": "Send test to " + name, onclick: () => testChannel(channel) }, "Send test"));
    actions.push(el("button", { type: "button", className: "ghost channel-edit", "aria-label": "Edit channel " + name,
      onclick: () => channelForm.edit(channel) }, "Edit"));
    actions.push(el("button", { type: "button", className: "ghost channel-toggle",
      "aria-label": `${channel.enabled ? "Disable" : "Enable"} channel ${name}`,
      onclick: () => setChannelEnabled(channel, !channel.enabled) }, channel.enabled ? "Disable" : "Enable"));
    actions.push(el("button", { type: "button", className: "ghost channel-delete", "aria-label": "Delete channel " + name,
      onclick: () => deleteChannel(channel) }, "Delete"));
  }
  return el("tr", { dataset: { channel: String(channel.id) } },
    cell("Name", visible(channel.name)),
    cell("Kind", channel.kind),
    cell("Target", el("span", { className: "channel-target" }, channelTarget(channel))),
    cell("Enabled", channel.enabled ? "yes" : "no"),
    cell("Actions", el("span", { className: "row-actions" }, actions)));
}

async function loadChannels() {
  const data = await api("GET", "/api/alerts/channels");
  const channels = data.channels || [];
  fill("alerts-channels-table", "alerts-channels-empty", channels.map(channelRow), JSON.stringify(channels));
}

function fillMemberChoices() {
  const select = $("silence-member");
  const chosen = select.value;
  clear(select).appendChild(el("option", { value: "" }, "Any member"));
  for (const m of members) select.appendChild(el("option", { value: m.id }, visible(m.name || m.id)));
  if ([...select.options].some((o) => o.value === chosen)) select.value = chosen;
}

async function createSilence(event) {
  event.preventDefault();
  const matchers = {};
  if ($("silence-rule").value) matchers.rule = $("silence-rule").value;
  if ($("silence-member").value) matchers.member_id = $("silence-member").value;
  if ($("silence-severity").value) matchers.severity = $("silence-severity").value;
  if ($("silence-this-cluster").checked) matchers.cluster_id = Cluster.currentId();
  const error = $("silence-error");
  if (!Object.keys(matchers).length) {
    error.textContent = "Choose at least one matcher: a silence of everything is refused.";
    error.hidden = false;
    return;
  }
  const now = Math.floor(Date.now() / 1000);
  const body = { matchers, starts_at: now, ends_at: now + Number($("silence-duration").value),
    comment: $("silence-comment").value };
  try {
    await api("POST", "/api/alerts/silences", body);
    error.hidden = true;
    $("silence-comment").value = "";
    toast("Silence created", "success");
    Health.refresh();
    await Promise.all([loadSilences(), loadAlerts()]);
  } catch (err) {
    if (err.status === 401) return;
    error.textContent = err.message;
    error.hidden = false;
  }
}

async function load() {
  const results = await Promise.allSettled([loadRules(), loadAlerts(), loadSilences(), loadChannels()]);
  fetchedAt = Date.now();
  const failed = results.filter((r) => r.status === "rejected" && r.reason.status !== 401);
  $("alerts-error").hidden = failed.length === 0;
  if (failed.length) $("alerts-error").textContent = "Cannot load the alerts: " + failed[0].reason.message;
}

function schedule() {
  clearInterval(timer);
  timer = setInterval(() => {
    if (!document.hidden && !$("alerts-view").hidden) load();
  }, POLL_SECONDS * 1000);
}

export function activate() {
  if (!started) {
    started = true;
    $("silence-form").hidden = !Permissions.globalAllows("operator");
    $("silence-form").addEventListener("submit", createSilence);
    if (Permissions.globalAllows("admin")) {
      channelForm = channelEditor({ onSaved: loadChannels });
      mountIn("channel-editor", channelForm.node);
      ruleForm = ruleEditor({ onSaved: loadRules });
      mountIn("rule-editor", ruleForm.node);
    }
    Health.subscribe((status) => {
      const next = (status.members || []).map((m) => ({ id: m.id, name: m.name }));
      // Only a change is drawn: rebuilding the list every poll would close it under the user.
      if (JSON.stringify(next) === JSON.stringify(members)) return;
      members = next;
      fillMemberChoices();
    });
    Cluster.subscribe(() => {
      if (ruleForm) ruleForm.close(); // its override form names the cluster it was opened on
      members = [];
      fillMemberChoices();
      if (!$("alerts-view").hidden) load();
    });
    schedule();
  }
  if (Date.now() - fetchedAt > 1000) load();
}
