// KV search: server side, v3 only; the matching keys replace the tree until cleared.
import { $, api, clear, el, toast } from "./common.js";
import { currentView, kvUrl, showError } from "./kv-shared.js";
import { buildTree, ensureTabStop, renderNode } from "./kv-tree.js";

async function search(cursor) {
  const view = currentView();
  if (!view) return;
  const q = $("kv-search").value;
  if (!q) return clearSearch();
  if (view.proto !== "v3") {
    toast("Server search is available for v3 keys only.", "error");
    return;
  }
  const params = { q, limit: "100" };
  if (cursor) params.cursor = cursor;
  try {
    const data = await api("GET", kvUrl(view, "search", params));
    if (currentView() !== view) return;
    view.searching = true;
    const box = $("kv-tree");
    let list = box.querySelector("ul.search-results");
    if (!cursor) {
      clear(box);
      box.appendChild(el("div", { className: "muted small", id: "kv-search-summary" }));
      list = el("ul", { className: "search-results", role: "tree", "aria-label": "Matching keys" });
      box.appendChild(list);
    }
    const more = box.querySelector("button.kv-more");
    if (more) more.remove();
    for (const item of data.nodes || []) {
      const node = { key: item.key, dir: false, label: item.key, parent: null, view };
      list.appendChild(renderNode(node));
    }
    ensureTabStop();
    const shown = list.children.length;
    $("kv-search-summary").textContent = shown ? `${shown} matching key(s)` + (data.truncated ? " (more available)" : "")
      : "No matching keys found";
    if (data.next_cursor) {
      box.appendChild(el("button", { type: "button", className: "kv-more", onclick: () => search(data.next_cursor) }, "Load more…"));
    }
    $("kv-search-clear").hidden = false;
  } catch (err) {
    showError(err, view);
  }
}
function clearSearch() {
  $("kv-search").value = "";
  $("kv-search-clear").hidden = true;
  if (currentView()) buildTree(currentView()).catch((err) => showError(err, currentView()));
}

export function wireSearch() {
  $("kv-search-form").addEventListener("submit", (e) => {
    e.preventDefault();
    search();
  });
  $("kv-search-clear").addEventListener("click", clearSearch);
}
