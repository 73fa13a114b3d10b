// Create and delete KV nodes: the tree's context menu, the create dialog and the delete
// confirmation (a directory's key count asked of the server first; over BIG_DELETE keys the
// cluster's name typed). Only offered to a user who may write keys on the view's cluster.
import { $, api, confirmAction, toast, visible } from "./common.js";
import { clearDetail, clusterName, currentView, kvUrl, mayWrite, showError } from "./kv-shared.js";
import { buildTree, childBase, focusItem, reloadLevel } from "./kv-tree.js";

let menuTarget = null;
const BIG_DELETE = 100; // a directory delete of more keys asks for the cluster's name

export function openMenu(node, x, y) {
  if (!mayWrite(node.view)) return; // create and remove are the menu's only items
  menuTarget = node;
  const menu = $("kv-menu");
  $("kv-menu-delete").disabled = !!node.isRoot && node.view.proto === "v2";
  menu.style.left = x + "px";
  menu.style.top = y + "px";
  menu.hidden = false;
  // Keep the whole menu on screen (a phone is narrower than a long key's row).
  const box = menu.getBoundingClientRect();
  menu.style.left = Math.max(4, Math.min(x, window.innerWidth - box.width - 4)) + "px";
  menu.style.top = Math.max(4, Math.min(y, window.innerHeight - box.height - 4)) + "px";
}
function closeMenu() {
  $("kv-menu").hidden = true;
}

function createParent(node) {
  if (!node) return currentView() && currentView().root;
  return node.dir ? node : node.parent || node.view.root;
}
function openCreate(node) {
  const parent = createParent(node);
  if (!parent) return;
  const dialog = $("kv-create-dialog");
  dialog.classList.toggle("proto-v2", parent.view.proto === "v2");
  dialog.dataset.parentKey = parent.key;
  dialog._parent = parent;
  $("kv-create-prefix").value = childBase(parent);
  $("kv-create-name").value = "";
  $("kv-create-ttl").value = "0";
  $("kv-create-value").value = "";
  $("kv-create-dir").checked = false;
  $("kv-create-error").hidden = true;
  syncDirField();
  dialog.showModal();
  $("kv-create-name").focus();
}
function createProto() {
  const parent = $("kv-create-dialog")._parent;
  return parent ? parent.view.proto : "v3";
}
function syncDirField() {
  const isDir = createProto() === "v2" && $("kv-create-dir").checked;
  $("kv-create-value").hidden = isDir;
  $("kv-create-value-label").hidden = isDir;
}
async function submitCreate(event) {
  event.preventDefault();
  const dialog = $("kv-create-dialog");
  const parent = dialog._parent;
  if (!parent) return;
  const name = $("kv-create-name").value;
  const error = $("kv-create-error");
  if (!name) {
    error.textContent = "Enter a name.";
    error.hidden = false;
    return;
  }
  const ttl = parseInt($("kv-create-ttl").value, 10) || 0;
  const isDir = parent.view.proto === "v2" && $("kv-create-dir").checked;
  const body = { key: $("kv-create-prefix").value + name, value: isDir ? "" : $("kv-create-value").value };
  if (ttl > 0) body.ttl = ttl;
  if (isDir) body.dir = true;
  try {
    await api("PUT", kvUrl(parent.view, "put"), body);
    dialog.close();
    toast("Created " + visible(body.key), "success");
    await reloadLevel(parent);
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
  }
}

// The confirmation of a directory delete says how many keys go: counted by the server right
// before asking (count-only, whatever the directory's size), never guessed from the tree.
// Uncounted (the count failed) counts as big: the user types the name then too.
async function deleteQuestion(node) {
  const name = visible(node.key);
  if (!node.dir) return { text: `Delete the key "${name}"?`, big: false };
  let count;
  try {
    count = (await api("GET", kvUrl(node.view, "count", { key: node.key }))).count;
  } catch (err) {
    if (err.status === 401) return null;
    return { text: `Delete the directory "${name}" and ALL keys under it? The keys could not be counted ` +
      `(${err.message}). This cannot be undone.`, big: true };
  }
  return { text: `Delete the directory "${name}" and ALL keys under it: ${count} key${count === 1 ? "" : "s"} ` +
    "will be removed. This cannot be undone.", big: count > BIG_DELETE };
}

export async function removeNode(node) {
  if (!mayWrite(node.view)) return;
  const question = await deleteQuestion(node);
  if (question === null) return;
  const typed = question.big ? clusterName(node.view) : undefined;
  if (!(await confirmAction("Remove Node", question.text, "Delete", typed))) return;
  const view = node.view;
  try {
    await api("POST", kvUrl(view, "delete"), { key: node.key, dir: node.dir });
    toast("Deleted " + visible(node.key), "success");
    if (view.selected && view.selected.node === node) {
      view.selected = null;
      if (currentView() === view) clearDetail();
    }
    if (node.parent) {
      await reloadLevel(node.parent);
      if (currentView() === view && node.parent.row) focusItem(node.parent.row); // the deleted item had focus
    } else {
      await buildTree(view);
    }
  } catch (err) {
    showError(err, view);
  }
}

// The "+ New key" button creates under the selected node (its directory) or the root.
export function wireActions() {
  $("kv-new").addEventListener("click", () => {
    const view = currentView();
    if (view) openCreate(view.selected ? view.selected.node : view.root);
  });
  $("kv-menu-create").addEventListener("click", () => { closeMenu(); openCreate(menuTarget); });
  $("kv-menu-delete").addEventListener("click", () => { closeMenu(); removeNode(menuTarget); });
  document.addEventListener("click", (e) => { if (!$("kv-menu").contains(e.target)) closeMenu(); });
  document.addEventListener("keydown", (e) => {
    if (e.key !== "Escape" || $("kv-menu").hidden) return;
    closeMenu();
    if (menuTarget && menuTarget.row && menuTarget.row.isConnected) menuTarget.row.focus(); // back where it opened
  });
  $("kv-menu").addEventListener("keydown", (e) => {
    if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
    e.preventDefault();
    const items = [...$("kv-menu").querySelectorAll("button:not(:disabled)")];
    const at = items.indexOf(document.activeElement);
    const next = items[(at + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length];
    if (next) next.focus();
  });
  $("kv-create-form").addEventListener("submit", submitCreate);
  $("kv-create-cancel").addEventListener("click", () => $("kv-create-dialog").close());
  $("kv-create-dir").addEventListener("change", syncDirField);
}
