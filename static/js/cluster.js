// The cluster every view acts on: the picker in the top bar, the cluster's name in its
// environment colour beside it (so nobody edits prod thinking it is staging), `?cluster=` in
// the address, and `scoped(url)` that names the cluster on every monitoring and ops request.
// The KV tabs follow the picker and the picker follows them (kv.js).
import { $, api, clear, el } from "./common.js";

export const DEFAULT_ID = "default";
export const ENVIRONMENTS = { prod: "PROD", staging: "STAGING", dev: "DEV", other: "OTHER" };

let clusters = []; // GET /api/fleet's entries, as far as the picker needs them
let current = new URLSearchParams(window.location.search).get("cluster") || DEFAULT_ID;
const listeners = [];

export function currentId() {
  return current;
}

export function environment(entry) {
  const env = ((entry && entry.labels) || {}).environment;
  return ENVIRONMENTS[env] ? env : "other";
}

export function get(id) {
  return clusters.find((c) => c.id === id) || null;
}

// `url` with `cluster_id` added for any cluster but the default (whose requests stay as they were).
export function scoped(url) {
  if (current === DEFAULT_ID) return url;
  return url + (url.includes("?") ? "&" : "?") + "cluster_id=" + encodeURIComponent(current);
}

// The environment badge: a word, never colour alone.
export function envBadge(entry) {
  const env = environment(entry);
  return el("span", { className: "env-badge env-" + env, title: "environment: " + env }, ENVIRONMENTS[env]);
}

function renderHeader() {
  const entry = get(current);
  const name = entry ? entry.name : current;
  const box = clear($("cluster-current"));
  box.dataset.environment = environment(entry);
  box.append(el("span", { className: "cluster-current-name", id: "cluster-current-name" }, name), envBadge(entry));
  box.title = `Cluster: ${name} (${environment(entry)})`;
  const select = clear($("cluster-select"));
  const known = clusters.length ? clusters : [{ id: current, name, labels: {} }];
  if (!known.some((c) => c.id === current)) known.push({ id: current, name, labels: {} });
  for (const c of known) {
    select.appendChild(el("option", { value: c.id }, `${c.name} (${environment(c)})`));
  }
  select.value = current;
}

function rememberInAddress() {
  const params = new URLSearchParams(window.location.search);
  if (current === DEFAULT_ID) params.delete("cluster");
  else params.set("cluster", current);
  const text = params.toString();
  history.replaceState(null, "", window.location.pathname + (text ? "?" + text : ""));
}

// Switch every view to cluster `id` (from the picker, a KV tab or the fleet table).
export function select(id) {
  if (!id || id === current) return;
  current = id;
  rememberInAddress();
  renderHeader();
  for (const fn of listeners) fn(current);
}

// fn(id) whenever the cluster changes.
export function subscribe(fn) {
  listeners.push(fn);
}

// The fleet's latest answer (fleet.js polls it; the picker needs names and labels).
export function update(entries) {
  const next = entries.map((c) => ({ id: c.id, name: c.name, labels: c.labels || {}, owner: c.owner }));
  // Only a change is drawn: rebuilding the picker every poll would close it under the user.
  if (JSON.stringify(next) === JSON.stringify(clusters) && clusters.length) return;
  clusters = next;
  renderHeader();
}

export async function load() {
  try {
    const data = await api("GET", "/api/fleet");
    update(data.clusters || []);
  } catch (err) {
    renderHeader();
  }
}

export function init() {
  $("cluster-select").addEventListener("change", (e) => select(e.target.value));
  renderHeader();
  return load();
}

// Keeps `?cluster=` when a view switch rewrites the address.
export function pathFor(path) {
  return current === DEFAULT_ID ? path : path + "?cluster=" + encodeURIComponent(current);
}
