// Cluster health at a glance: polls /api/status (stored probe results, no etcd call) every
// few seconds, draws the cluster line above every view and tells the views the members' health.
"use strict";

const Health = (function () {
  const { el, clear, $, api, format } = EM;
  const POLL_SECONDS = 5;
  const WORDS = { healthy: "Healthy", degraded: "Degraded", critical: "Critical", unreachable: "Unreachable", unknown: "Unknown" };
  const listeners = [];
  let last = null; // the latest /api/status answer
  let timer = null;

  function memberName(members, id) {
    const m = members.find((x) => x.id === id);
    return m ? m.name || m.id : id;
  }

  // "leader" / "follower" / "learner"; a down or unknown member has no role we can vouch for.
  function role(m) {
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
    const line = clear($("cluster-line"));
    const c = status.cluster;
    const members = status.members || [];
    line.dataset.health = c.health;
    line.appendChild(el("span", { className: "cl-status " + c.health, id: "cluster-health" }, WORDS[c.health] || c.health));
    line.appendChild(item("Leader", c.leader_id ? memberName(members, c.leader_id) : "none", c.leader_id ? "" : "bad"));
    const up = c.members_up === null || c.members_up === undefined ? "–" : String(c.members_up);
    const margin = c.quorum_margin === null || c.quorum_margin === undefined ? "" :
      ` · quorum margin ${c.quorum_margin}`;
    line.appendChild(item("Members", `${up}/${c.members_total} up${margin}`,
      c.members_up !== null && c.members_up < c.members_total ? "bad" : ""));
    const alarms = (c.alarms || []).map((a) => `${a.alarm} on ${memberName(members, a.member_id)}`);
    line.appendChild(item("Alarms", alarms.length ? alarms.join(", ") : "none", alarms.length ? "bad" : ""));
    const db = c.db_quota_ratio === null || c.db_quota_ratio === undefined ? format("bytes", c.db_size_bytes) :
      `${(c.db_quota_ratio * 100).toFixed(1)} % of ${format("bytes", c.db_quota_bytes)} quota`;
    line.appendChild(item("DB", db, c.db_quota_ratio >= 0.8 ? "bad" : ""));
    const seen = versions(members);
    if (seen.length > 1) {
      line.appendChild(el("span", { className: "cl-item warn", id: "mixed-versions" },
        "Mixed etcd versions: " + seen.join(", ")));
    }
    if (c.as_of) line.appendChild(el("span", { className: "cl-item muted small" }, "as of " + EM.clock(c.as_of)));
  }

  async function poll() {
    try {
      const status = await api("GET", "/api/status");
      last = status;
      render(status);
      for (const fn of listeners) fn(status);
    } catch (err) {
      if (err.status === 401) return;
      const line = clear($("cluster-line"));
      line.dataset.health = "unknown";
      line.appendChild(el("span", { className: "cl-status unknown", id: "cluster-health" }, "Unknown"));
      line.appendChild(el("span", { className: "cl-item muted" }, "cluster status unavailable: " + err.message));
    }
  }

  function start() {
    if (timer) return;
    poll();
    timer = setInterval(poll, POLL_SECONDS * 1000);
  }

  // fn(status) after every poll; called at once when a status is already known.
  function subscribe(fn) {
    listeners.push(fn);
    if (last) fn(last);
  }

  return { start, subscribe, role, versions, poll, latest: () => last };
})();
