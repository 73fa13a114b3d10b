// KV view: per cluster tab (kv-tabs.js) and protocol, a view of the keys (kv-tree.js) with
// server search (kv-search.js), a value editor (kv-editor.js), create/delete (kv-actions.js)
// and a live watch of a prefix (kv-watch.js). This module switches between tabs and protocols
// and keeps each one's view.
import * as Cluster from "./cluster.js";
import { $, api, clear, el } from "./common.js";
import { openMenu, removeNode, wireActions } from "./kv-actions.js";
import { resizeEditor, select, wireEditor } from "./kv-editor.js";
import { historyAvailable, wireHistory } from "./kv-history.js";
import { wireSearch } from "./kv-search.js";
import { clearDetail, currentView, kvUrl, mayWrite, setCurrentView } from "./kv-shared.js";
import * as KVTabs from "./kv-tabs.js";
import { buildTree, wireTree } from "./kv-tree.js";
import { stopWatch, wireWatch } from "./kv-watch.js";

const EVICT_AFTER_MS = 5 * 60 * 1000;

// Each tab keeps its protocol and layout and, per protocol, a view (kv-shared.js): its tree
// (held as detached DOM while another view is on screen), selection, search and scroll position.
const tabStates = new Map();
let activeTab = null;
let started = false;

function tabState(id) {
  if (!tabStates.has(id)) tabStates.set(id, { id, proto: "v3", mode: "tree", views: {} });
  return tabStates.get(id);
}
function viewOf(state, proto) {
  if (!state.views[proto]) {
    state.views[proto] = { tabId: state.id, proto, root: null, selected: null, stash: null, scroll: 0,
      searching: false, searchText: "", leftAt: 0 };
  }
  return state.views[proto];
}

// --- info bar ---
function tabName(view) {
  const tab = KVTabs.get(view.tabId);
  return tab ? tab.name : view.tabId;
}
// "Cluster: <name> <ENV>": the environment in words and colour, as in the top bar.
function clusterLabel(view) {
  return el("span", {}, "Cluster: ", el("b", {}, tabName(view)), " ", Cluster.envBadge(Cluster.get(view.tabId)));
}
async function loadInfo(view) {
  const label = view.proto.toUpperCase();
  if (currentView() === view) clear($("kv-info")).append(clusterLabel(view), el("span", {}, "Connecting…"));
  try {
    const info = await api("POST", kvUrl(view, "connect"));
    KVTabs.connected(view.tabId);
    if (currentView() !== view) return;
    clear($("kv-info")).append(
      clusterLabel(view),
      el("span", {}, "Protocol: ", el("b", {}, label)),
      el("span", {}, "Version: ", el("b", {}, info.version || "–")),
      el("span", {}, "Leader: ", el("b", {}, info.name || "–")),
      el("span", {}, "DB Size: ", el("b", {}, info.size_str || "–")));
  } catch (err) {
    if (view.tabId !== "default") KVTabs.refreshSoon();
    if (currentView() === view) {
      const bar = clear($("kv-info"));
      bar.append(clusterLabel(view),
        el("span", { className: "error" }, `${label} unavailable: ${err.message}`));
      if (!KVTabs.isFixed(view.tabId)) {
        bar.append(el("button", { type: "button", className: "ghost small", id: "kv-info-reenter",
          onclick: () => KVTabs.reenter(view.tabId) }, "Re-enter credentials"));
      }
    }
    throw err;
  }
}

// --- tabs and protocols: leave a view (keep its DOM), enter one (restore or build it) ---
function leave() {
  const view = currentView();
  if (!view) return;
  const tree = $("kv-tree");
  view.scroll = tree.scrollTop;
  view.searchText = $("kv-search").value;
  view.leftAt = Date.now();
  if (view.root) {
    const stash = document.createDocumentFragment();
    while (tree.firstChild) stash.appendChild(tree.firstChild);
    view.stash = stash;
  }
  setCurrentView(null);
}

function syncToolbar(view) {
  $("kv-new").hidden = !mayWrite(view);
  $("kv-v3").classList.toggle("active", view.proto === "v3");
  $("kv-v2").classList.toggle("active", view.proto === "v2");
  $("kv-search").disabled = view.proto !== "v3";
  $("kv-search").placeholder = view.proto === "v3" ? "Search keys (server side)…" : "Search is available for v3";
  $("kv-search").value = view.searchText || "";
  $("kv-search-clear").hidden = !view.searching;
  historyAvailable(view);
  applyLayout(tabState(view.tabId).mode);
}

async function enter(view) {
  setCurrentView(view);
  syncToolbar(view);
  const tree = clear($("kv-tree"));
  clearDetail();
  if (view.stash && view.root) {
    tree.appendChild(view.stash);
    view.stash = null;
    tree.scrollTop = view.scroll;
    if (view.selected) select(view.selected.node); // fresh value and TTL
    loadInfo(view).catch(() => { /* shown in the info bar */ });
    return;
  }
  await refreshView(view);
}

async function refreshView(view) {
  try {
    await loadInfo(view);
    await buildTree(view);
  } catch (err) {
    view.root = null;
    if (currentView() === view) clear($("kv-tree")).appendChild(el("p", { className: "muted" }, "Cannot list keys: " + err.message));
  }
}

function showTab(id) {
  Cluster.select(id); // the picker follows the tabs
  if (currentView() && currentView().tabId === id) return;
  stopWatch({ text: "" });
  leave();
  activeTab = id;
  const state = tabState(id);
  enter(viewOf(state, state.proto));
}

function switchProto(next) {
  const state = tabState(activeTab);
  if (currentView() && state.proto === next) return;
  leave();
  state.proto = next;
  enter(viewOf(state, next));
}

function reload() {
  const view = currentView();
  if (!view) return;
  view.searching = false;
  $("kv-search").value = "";
  $("kv-search-clear").hidden = true;
  refreshView(view);
}

// A revert changed the selected key, a restore the tree: show what etcd holds now.
function afterHistoryWrite(what) {
  const view = currentView();
  if (!view) return;
  if (what && what.tree) reload();
  else if (view.selected) select(view.selected.node);
}

function tabClosed(id) {
  tabStates.delete(id);
}

// New credentials: the tab's trees were built with the old ones (or failed); start afresh.
function tabReconnected(id) {
  const state = tabStates.get(id);
  if (!state) return;
  for (const view of Object.values(state.views)) {
    if (view === currentView()) continue;
    Object.assign(view, { root: null, stash: null, selected: null, searching: false });
  }
  if (currentView() && currentView().tabId === id) reload();
}

// Trees of views not looked at for a while are dropped; entering them again rebuilds them.
function evict() {
  const now = Date.now();
  for (const state of tabStates.values()) {
    for (const view of Object.values(state.views)) {
      if (view !== currentView() && view.stash && now - view.leftAt > EVICT_AFTER_MS) {
        Object.assign(view, { root: null, stash: null, selected: null, searching: false });
      }
    }
  }
}

function applyLayout(mode) {
  $("kv-tree").classList.toggle("list", mode === "list");
  $("kv-mode-tree").classList.toggle("active", mode === "tree");
  $("kv-mode-list").classList.toggle("active", mode === "list");
}
function setLayout(next) {
  if (activeTab) tabState(activeTab).mode = next;
  applyLayout(next);
}

function init() {
  $("kv-v3").addEventListener("click", () => switchProto("v3"));
  $("kv-v2").addEventListener("click", () => switchProto("v2"));
  $("kv-mode-tree").addEventListener("click", () => setLayout("tree"));
  $("kv-mode-list").addEventListener("click", () => setLayout("list"));
  wireSearch();
  $("kv-reload").addEventListener("click", reload);
  wireEditor();
  wireHistory(afterHistoryWrite);
  wireActions();
  wireWatch();
  wireTree({ select, openMenu, remove: removeNode });
}

export function activate() {
  if (!started) {
    started = true;
    init();
    KVTabs.init({ onSelect: showTab, onClosed: tabClosed, onReconnected: tabReconnected });
    // The tabs follow the picker: the picked cluster's tab, or a fixed one for a shared cluster.
    const follow = (id) => KVTabs.show(id, (Cluster.get(id) || {}).name || id);
    Cluster.subscribe(follow);
    if (Cluster.currentId() === "default") showTab("default");
    else follow(Cluster.currentId());
    setInterval(evict, 60 * 1000);
  }
  resizeEditor();
}

export { themeChanged } from "./kv-editor.js";
