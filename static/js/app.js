// Dashboard shell: view switch (Monitor / Fleet / Alerts / KV Tree / Ops / Users), the cluster picker,
// theme toggle, logout.
import * as Alerts from "./alerts.js";
import * as Cluster from "./cluster.js";
import { $, api, format, jsonData, setTheme, theme } from "./common.js";
import * as Fleet from "./fleet.js";
import * as Health from "./health.js";
import * as KV from "./kv.js";
import * as Monitor from "./monitor.js";
import * as Ops from "./ops.js";
import * as Users from "./users.js";

const boot = jsonData("boot-data");
// The Ops view only when the user's role leaves them a pane in it.
const views = { monitor: Monitor, fleet: Fleet, alerts: Alerts, kv: KV,
  ops: boot.ops_enabled && Ops.allowedPanes().length ? Ops : null,
  users: boot.can_manage_users ? Users : null };
if (!views.ops && $("view-ops")) $("view-ops").hidden = true;
const paths = { monitor: "/", fleet: "/fleet", alerts: "/alerts", kv: "/kv", ops: "/ops", users: "/users" };

function show(view) {
  if (!views[view]) view = "monitor";
  for (const name of Object.keys(paths)) {
    const section = $(name + "-view");
    if (section) section.hidden = name !== view;
    const button = $("view-" + name);
    if (button) button.classList.toggle("active", name === view);
  }
  // Range, refresh and panel settings only mean something on the monitor view.
  document.querySelectorAll(".monitor-only").forEach((n) => { n.hidden = view !== "monitor"; });
  if (window.location.pathname !== paths[view]) history.replaceState(null, "", Cluster.pathFor(paths[view]));
  views[view].activate();
}

function themeButton() {
  $("theme-toggle").textContent = theme() === "dark" ? "☾" : "☀";
}

$("user-label").textContent = boot.username;
document.querySelectorAll(".view-switch button").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));
$("theme-toggle").addEventListener("click", () => {
  setTheme(theme() === "dark" ? "light" : "dark");
  themeButton();
  Monitor.themeChanged();
  KV.themeChanged();
});
$("logout-btn").addEventListener("click", async () => {
  try {
    await api("POST", "/api/auth/logout", undefined, { noRedirect: true });
  } catch (err) {
    /* an already expired session is logged out anyway */
  }
  window.location.assign("/login");
});
// The cluster line's alert count links to the Alerts view: switched in place, no reload.
$("cluster-line").addEventListener("click", (e) => {
  const link = e.target.closest("a[data-view]");
  if (!link || e.ctrlKey || e.metaKey || e.shiftKey) return;
  e.preventDefault();
  show(link.dataset.view);
});
themeButton();
Fleet.init(show);
Cluster.init();
show(boot.view);
Monitor.init({
  onMembers: (members) => {
    if (views.ops) views.ops.membersChanged(members);
  },
});
Health.start();
// The browser tests call the page's own formatters and chart helpers (tests/browser/test_charts.py);
// nothing in the page reads this.
window.etcdmonitorTest = { format, ...Monitor.chartHelpers };
// Every control is wired from here on (browser tests wait for this before clicking).
document.documentElement.dataset.ready = "true";
