// What every part of the KV view (tree, editor, search, create/delete) shares: the view on
// screen, the KV API's URLs, error toasts and the empty detail pane.
//
// A view is one cluster tab's tree for one protocol: {tabId, proto, root, selected, stash,
// scroll, searching, searchText, leftAt}. Every tree node knows its view, so a late answer
// lands in the tree (and tab) that asked for it.
import { $, jsonData, toast } from "./common.js";
import * as KVTabs from "./kv-tabs.js";
import * as Perm from "./permissions.js";

export const SEP = jsonData("boot-data").kv_separator || "/";

let onScreen = null; // the view on screen, null while none is

export function currentView() {
  return onScreen;
}
export function setCurrentView(view) {
  onScreen = view;
}

// Whether the user may write keys on the view's cluster (operator there, and not READ_ONLY):
// otherwise the create, save and delete controls are not offered.
export function mayWrite(view) {
  return !!view && Perm.mayChange("operator", view.tabId);
}

// The name a typed confirmation asks for: the tab's, the configured cluster's for "default".
export function clusterName(view) {
  if (view.tabId === "default") return Perm.defaultClusterName;
  const tab = KVTabs.get(view.tabId);
  return tab ? tab.name : view.tabId;
}

// Every KV request of a non-default tab names the tab, so it goes to that tab's cluster.
export function kvUrl(view, action, params) {
  const query = new URLSearchParams(params || {});
  if (view.tabId !== "default") query.set("tab_id", view.tabId);
  const text = query.toString();
  return `/api/kv/${view.proto}/${action}` + (text ? "?" + text : "");
}

// A failure on a remote tab may have changed its status: the strip re-reads it.
export function showError(err, view) {
  if (err && err.status === 401) return;
  toast(err.message || String(err), "error");
  if (view && view.tabId !== "default") KVTabs.refreshSoon();
}

// Empties the detail pane; the view's selection is the caller's business.
export function clearDetail() {
  $("kv-path").textContent = "Select a key";
  $("kv-meta").textContent = "";
  $("kv-editor-bar").hidden = true;
  $("kv-editor").hidden = true;
}
