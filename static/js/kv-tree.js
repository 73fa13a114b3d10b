// The KV tree: a lazy WAI-ARIA tree on the paginated one-level `list` endpoint (v3 and v2),
// operated by mouse and keyboard. What a row does when chosen (show it, open its menu, delete
// it) is the KV view's to say (wireTree). Keys are only ever text.
import { $, api, clear, el, visible } from "./common.js";
import { SEP, clearDetail, currentView, kvUrl, showError } from "./kv-shared.js";

const PAGE = 100;
// What choosing a row does; set by wireTree.
const actions = { select() {}, openMenu() {}, remove() {} };

// --- tree model ---
function makeRoot(view) {
  return { key: SEP, label: SEP, dir: true, prefix: view.proto === "v3" ? "" : SEP, parent: null, isRoot: true, view };
}
export function childBase(node) {
  if (node.view.proto === "v3") return node.prefix;
  return node.key.endsWith(SEP) ? node.key : node.key + SEP;
}
function labelFor(parent, key) {
  const base = childBase(parent);
  let label = base && key.startsWith(base) ? key.slice(base.length) : key;
  if (parent.view.proto === "v2" && label.startsWith(SEP) && label !== SEP) label = label.slice(SEP.length);
  return label || key;
}
function nodeFrom(parent, item) {
  return {
    key: item.key, dir: !!item.dir, count: item.count,
    prefix: parent.view.proto === "v3" ? item.prefix : item.key,
    label: labelFor(parent, item.key), parent, view: parent.view,
  };
}

// The tree is a WAI-ARIA tree (ARIA 1.2: a tree or group owns treeitems and groups): each
// row is a treeitem (aria-level, aria-expanded, aria-selected) named by its own text only,
// followed by its children's group; the <li>s are presentational. One row is in the tab order
// (roving tabindex) and the arrow keys move between the visible rows (treeKeydown).
function depth(node) {
  let level = 1;
  for (let p = node.parent; p; p = p.parent) level += 1;
  return level;
}

function nodeRow(node) {
  const twisty = el("span", { className: "twisty", "aria-hidden": "true" }, node.dir ? (node.expanded ? "▾" : "▸") : "");
  const row = el("div", {
    className: "kv-node" + (node.dir ? " dir" : " leaf"), role: "treeitem", tabindex: "-1",
    "aria-selected": "false", "aria-level": String(depth(node)),
    dataset: { key: node.key, dir: node.dir ? "1" : "0" },
    title: visible(node.key),
  }, twisty, el("span", { className: "seg-label" }, visible(node.label)),
  el("span", { className: "full-label" }, visible(node.key)),
    node.dir && node.count !== undefined ? el("span", { className: "count" }, "(" + node.count + ")") : null);
  if (node.dir) row.setAttribute("aria-expanded", node.expanded ? "true" : "false");
  row.kvNode = node;
  row.addEventListener("click", () => {
    if (node.dir) toggle(node);
    actions.select(node);
    focusItem(row);
  });
  row.addEventListener("contextmenu", (e) => {
    e.preventDefault();
    actions.openMenu(node, e.clientX, e.clientY);
  });
  node.row = row;
  node.twisty = twisty;
  return row;
}

export function renderNode(node) {
  const li = el("li", { role: "none" }, nodeRow(node));
  node.li = li;
  if (node.dir) {
    node.childList = el("ul", { role: "group" });
    node.childList.hidden = !node.expanded;
    li.appendChild(node.childList);
  }
  return li;
}

// --- keyboard ---
function visibleItems() {
  return [...$("kv-tree").querySelectorAll("[role=treeitem]")].filter((row) => row.offsetParent !== null);
}
// Moves the one tab stop of the tree to `row` (and focus, unless told not to).
export function focusItem(row, keepFocus) {
  if (!row) return;
  $("kv-tree").querySelectorAll("[role=treeitem][tabindex='0']").forEach((n) => { if (n !== row) n.tabIndex = -1; });
  row.tabIndex = 0;
  if (!keepFocus) row.focus();
}
// After a level is (re)built the tree must still have a tab stop.
export function ensureTabStop() {
  const tree = $("kv-tree");
  if (tree.querySelector("[role=treeitem][tabindex='0']")) return;
  const first = tree.querySelector("[role=treeitem]");
  if (first) first.tabIndex = 0;
}
function treeKeydown(e) {
  const row = e.target;
  if (!row.kvNode || row.getAttribute("role") !== "treeitem" || e.altKey || e.ctrlKey || e.metaKey) return;
  const node = row.kvNode;
  const items = visibleItems();
  const at = items.indexOf(row);
  const parentItem = node.parent ? node.parent.row : null;
  let handled = true;
  switch (e.key) {
    case "ArrowDown": focusItem(items[at + 1]); break;
    case "ArrowUp": focusItem(items[at - 1]); break;
    case "Home": focusItem(items[0]); break;
    case "End": focusItem(items[items.length - 1]); break;
    case "ArrowRight":
      if (node.dir && !node.expanded) toggle(node, true);
      else if (node.dir) focusItem(node.childList.querySelector("[role=treeitem]"));
      break;
    case "ArrowLeft":
      if (node.dir && node.expanded) toggle(node);
      else focusItem(parentItem);
      break;
    case "Enter":
      if (node.dir) toggle(node);
      actions.select(node);
      break;
    case "Delete":
      if (!(node.isRoot && node.view.proto === "v2")) actions.remove(node);
      break;
    case "ContextMenu": {
      const box = node.row.getBoundingClientRect();
      actions.openMenu(node, box.left + 16, box.bottom);
      $("kv-menu-create").focus();
      break;
    }
    default: handled = false;
  }
  if (handled) e.preventDefault();
}

// The rows of a level's children now on screen, by key (kept across a reload of the level).
function shownChildren(node) {
  const shown = new Map();
  for (const li of node.childList.children) {
    const child = li.firstChild && li.firstChild.kvNode;
    if (child) shown.set(child.key, child);
  }
  return shown;
}

// A child still listed keeps its row: what the user opened, selected or focused in it stays
// (a reload after a create must not fold up a directory opened meanwhile). An open directory
// is listed again, a closed one when it is next opened.
function keptChild(child, item) {
  child.count = item.count;
  const count = child.row.querySelector(":scope > .count");
  if (count && item.count !== undefined) count.textContent = "(" + item.count + ")";
  if (child.expanded) reloadLevel(child);
  else child.loaded = false;
  return child.li;
}

async function loadLevel(node, cursor) {
  const params = { prefix: node.prefix, limit: String(PAGE) };
  if (cursor) params.cursor = cursor;
  // Only the newest listing of a level is drawn: an older answer arriving late would put back
  // what a reload since replaced (a "Load more" page belongs to the listing it continues).
  const run = cursor ? node.loadRun : (node.loadRun = (node.loadRun || 0) + 1);
  const data = await api("GET", kvUrl(node.view, "list", params));
  if (run !== node.loadRun) return;
  const shown = cursor ? new Map() : shownChildren(node);
  if (!cursor) clear(node.childList);
  const old = node.childList.querySelector(":scope > li.more");
  if (old) old.remove();
  for (const item of data.nodes || []) {
    const child = shown.get(item.key);
    node.childList.appendChild(child && child.dir === !!item.dir ? keptChild(child, item)
      : renderNode(nodeFrom(node, item)));
  }
  if (data.next_cursor) {
    const more = el("button", { type: "button", className: "kv-more",
      onclick: () => loadLevel(node, data.next_cursor).catch((err) => showError(err, node.view)) }, "Load more…");
    node.childList.appendChild(el("li", { className: "more", role: "none" }, more));
  }
  if (!(data.nodes || []).length && !cursor) node.childList.appendChild(el("li", { className: "muted small empty", role: "none" }, "(empty)"));
  node.loaded = true;
  if (currentView() === node.view) ensureTabStop();
}

async function toggle(node, forceOpen) {
  node.expanded = forceOpen ? true : !node.expanded;
  node.twisty.textContent = node.expanded ? "▾" : "▸";
  node.row.setAttribute("aria-expanded", node.expanded ? "true" : "false");
  node.childList.hidden = !node.expanded;
  if (node.expanded && !node.loaded) {
    try {
      await loadLevel(node);
    } catch (err) {
      showError(err, node.view);
    }
  }
}

export async function reloadLevel(node) {
  node.loaded = false;
  await toggle(node, true);
}

// A fresh tree of the view: its root, opened; nothing selected, no search.
export async function buildTree(view) {
  view.root = makeRoot(view);
  view.selected = null;
  view.searching = false;
  if (currentView() === view) {
    clear($("kv-tree")).appendChild(el("ul", { role: "tree", "aria-label": "Keys" }, renderNode(view.root)));
    clearDetail();
    $("kv-search-clear").hidden = true;
    ensureTabStop();
  }
  await toggle(view.root, true);
}

// actions: {select(node), openMenu(node, x, y), remove(node)}.
export function wireTree(rowActions) {
  Object.assign(actions, rowActions);
  $("kv-tree").addEventListener("keydown", treeKeydown);
}
