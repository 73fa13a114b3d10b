// A key's past in the KV view (v3 only): its history with who changed it and a diff between
// any two revisions, revert (a compare-and-swap on the revision the editor loaded), and the
// recently deleted keys under a prefix with restore (create-only: refused if the key is back).
import { $, api, clear, confirmAction, dateTime, el, toast, visible } from "./common.js";
import { renderDiff } from "./kv-diff.js";
import { currentView, kvUrl, showError } from "./kv-shared.js";

let shown = null; // {view, node, loadedRevision, revisions} of the open history dialog
let onChanged = () => {}; // the KV view re-reads the selected key / the tree after a write

function who(changedBy) {
  return changedBy.via === "etcdmonitor" ? changedBy.username : "outside etcdmonitor";
}

function when(timestamp) {
  // etcd keeps no time: revisions read from etcd (older than the journal) have none.
  return timestamp === null ? "before the journal" : dateTime(timestamp);
}

// The text a revision's value is compared as: deletes and values not kept are empty.
function comparable(entry) {
  if (entry.type === "delete" || entry.value === null) return "";
  return entry.value;
}

function describe(entry) {
  if (entry.type === "delete") return "deleted";
  if (entry.value === null) return `${entry.value_size} B (not kept)`;
  return `${entry.value_size} B` + (entry.encoding === "base64" ? " binary" : "");
}

function option(entry) {
  return el("option", { value: String(entry.revision) }, `revision ${entry.revision} (${entry.type})`);
}

function renderCompare() {
  const byRevision = new Map(shown.revisions.map((entry) => [String(entry.revision), entry]));
  const from = byRevision.get($("kv-diff-from").value);
  const to = byRevision.get($("kv-diff-to").value);
  const target = $("kv-history-diff");
  if (!from || !to) {
    target.textContent = "(pick two revisions)";
    return;
  }
  const differs = renderDiff(target, comparable(from), comparable(to));
  if (!differs) target.textContent = "(the two revisions hold the same value)";
}

function historyRow(entry) {
  const current = entry.revision === shown.loadedRevision;
  let action = el("span", { className: "muted" }, current ? "current" : "");
  if (entry.type === "put" && !current) {
    action = el("button", {
      type: "button",
      className: "kv-revert",
      "aria-label": `Revert to revision ${entry.revision}`,
      dataset: { revision: String(entry.revision) },
      onclick: () => revert(entry),
    }, "Revert");
  }
  // data-label: the column's name, shown before each cell where a phone stacks the cells.
  return el("tr", { dataset: { revision: String(entry.revision) } },
    el("td", { "data-label": "Revision" }, String(entry.revision)),
    el("td", { "data-label": "Change" }, entry.type),
    el("td", { "data-label": "When" }, when(entry.timestamp)),
    el("td", { "data-label": "By", className: entry.changed_by.via === "outside" ? "muted" : "" }, who(entry.changed_by)),
    el("td", { "data-label": "Value" }, describe(entry)),
    el("td", {}, action));
}

async function loadHistory() {
  const { view, node } = shown;
  const body = await api("GET", kvUrl(view, "history", { key: node.key }));
  if (!shown || shown.node !== node) return;
  shown.revisions = body.revisions;
  const tbody = clear($("kv-history-table").querySelector("tbody"));
  body.revisions.forEach((entry) => tbody.appendChild(historyRow(entry)));
  const notes = [];
  if (!body.revisions.length) notes.push("No change of this key is known.");
  if (body.gaps.length) {
    const ranges = body.gaps.map(([from, to]) => `${from}–${to}`).join(", ");
    notes.push(`The journal missed revisions ${ranges} (etcd compacted them while it was stopped).`);
  }
  if (body.revisions.some((entry) => entry.source === "etcd")) {
    notes.push("Revisions without a time were read from etcd, which keeps no timestamps.");
  }
  $("kv-history-note").textContent = notes.join(" ");
  const from = clear($("kv-diff-from"));
  const to = clear($("kv-diff-to"));
  body.revisions.forEach((entry) => {
    from.appendChild(option(entry));
    to.appendChild(option(entry));
  });
  if (body.revisions.length) {
    to.value = String(body.revisions[0].revision);
    from.value = String(body.revisions[Math.min(1, body.revisions.length - 1)].revision);
  }
  renderCompare();
}

async function openHistory() {
  const view = currentView();
  const selected = view && view.selected;
  if (!selected || !selected.data || view.proto !== "v3") return;
  shown = { view, node: selected.node, loadedRevision: selected.data.modifiedIndex, revisions: [] };
  $("kv-history-title").textContent = "History of " + visible(selected.node.key);
  clear($("kv-history-table").querySelector("tbody"));
  $("kv-history-note").textContent = "Loading…";
  $("kv-history-diff").textContent = "";
  const dialog = $("kv-history-dialog");
  if (!dialog.open) dialog.showModal();
  try {
    await loadHistory();
  } catch (err) {
    $("kv-history-note").textContent = "Cannot read the history: " + err.message;
  }
}

async function revert(entry) {
  const { view, node, loadedRevision } = shown;
  const ok = await confirmAction(
    "Revert this key?",
    `Write the value of revision ${entry.revision} back to ${visible(node.key)}? ` +
      "It is refused if someone changed the key since you opened it.",
    "Revert",
  );
  if (!ok || !shown) return;
  try {
    const body = { key: node.key, revision: entry.revision, expected_mod_revision: loadedRevision };
    const answer = await api("POST", kvUrl(view, "revert"), body);
    shown.loadedRevision = answer.node.modifiedIndex;
    toast(`Reverted ${visible(node.key)} to revision ${entry.revision}`, "success");
  } catch (err) {
    if (err.status === 409 && err.body.code === "revision_conflict") {
      const now = err.body.current ? `revision ${err.body.current.mod_revision}` : "deleted";
      toast(`Not reverted: the key changed since you opened it (now ${now}). The history is reloaded.`, "error");
      shown.loadedRevision = err.body.current ? err.body.current.mod_revision : 0;
    } else {
      showError(err, view);
    }
  }
  onChanged();
  if (shown) await loadHistory().catch((err) => showError(err, view));
}

// --- recently deleted -------------------------------------------------------------------------

let deleted = null; // {view, prefix, cursor}

function preview(entry) {
  if (entry.value === null) return `not kept (${entry.value_size} B)`;
  const text = entry.encoding === "base64" ? `binary, ${entry.value_size} B` : entry.value;
  return text.length > 80 ? text.slice(0, 80) + "…" : text;
}

function deletedRow(entry) {
  const restore = el("button", {
    type: "button",
    className: "kv-restore",
    "aria-label": `Restore ${visible(entry.key)} as deleted at revision ${entry.revision}`,
    disabled: entry.value === null,
    onclick: (event) => restoreKey(entry, event.currentTarget),
  }, "Restore");
  return el("tr", { dataset: { key: entry.key, revision: String(entry.revision) } },
    el("td", { className: "mono" }, visible(entry.key)),
    el("td", { "data-label": "Deleted" }, `${dateTime(entry.deleted_at)} (revision ${entry.revision})`),
    el("td", { "data-label": "By", className: entry.changed_by.via === "outside" ? "muted" : "" }, who(entry.changed_by)),
    el("td", { "data-label": "Value", className: "mono" }, visible(preview(entry))),
    el("td", {}, restore));
}

async function loadDeleted(more) {
  const { view, prefix } = deleted;
  const params = { prefix };
  if (more && deleted.cursor) params.cursor = deleted.cursor;
  const body = await api("GET", kvUrl(view, "deleted", params));
  if (!deleted || deleted.view !== view) return;
  const tbody = $("kv-deleted-table").querySelector("tbody");
  if (!more) clear(tbody);
  body.entries.forEach((entry) => tbody.appendChild(deletedRow(entry)));
  deleted.cursor = body.next_cursor;
  $("kv-deleted-more").hidden = !body.next_cursor;
  $("kv-deleted-empty").hidden = tbody.children.length > 0;
}

async function openDeleted() {
  const view = currentView();
  if (!view || view.proto !== "v3") return;
  deleted = { view, prefix: $("kv-deleted-prefix").value, cursor: null };
  const dialog = $("kv-deleted-dialog");
  if (!dialog.open) dialog.showModal();
  await loadDeleted(false).catch((err) => showError(err, view));
}

async function restoreKey(entry, button) {
  const view = deleted.view;
  const ok = await confirmAction(
    "Restore this key?",
    `Create ${visible(entry.key)} again with the value it had when revision ${entry.revision} deleted it? ` +
      "It is refused if the key exists again.",
    "Restore",
  );
  if (!ok) return;
  try {
    await api("POST", kvUrl(view, "restore"), { key: entry.key, revision: entry.revision });
    toast("Restored " + visible(entry.key), "success");
    button.disabled = true;
    button.textContent = "Restored";
    button.setAttribute("aria-label", "Restored " + visible(entry.key));
    onChanged({ tree: true });
  } catch (err) {
    if (err.status === 409 && err.body.code === "revision_conflict") {
      toast(`Not restored: ${visible(entry.key)} exists again.`, "error");
    } else {
      showError(err, view);
    }
  }
}

export function historyAvailable(view) {
  $("kv-deleted-open").hidden = view.proto !== "v3";
}

export function wireHistory(changed) {
  onChanged = changed;
  $("kv-history").addEventListener("click", openHistory);
  $("kv-diff-from").addEventListener("change", renderCompare);
  $("kv-diff-to").addEventListener("change", renderCompare);
  $("kv-history-close").addEventListener("click", () => $("kv-history-dialog").close());
  $("kv-history-dialog").addEventListener("close", () => { shown = null; });
  $("kv-deleted-open").addEventListener("click", openDeleted);
  $("kv-deleted-form").addEventListener("submit", (event) => {
    event.preventDefault();
    openDeleted();
  });
  $("kv-deleted-more").addEventListener("click", () => loadDeleted(true).catch((err) => showError(err, deleted.view)));
  $("kv-deleted-close").addEventListener("click", () => $("kv-deleted-dialog").close());
  $("kv-deleted-dialog").addEventListener("close", () => { deleted = null; });
}
