// KV view: per cluster tab (kv-tabs.js) and protocol, a lazy tree on the paginated one-level
// `list` endpoint (v3 and v2), server search, a value editor (ACE) with format detection and
// pretty-print, and create/delete from a context menu. Keys and values are only ever text.
"use strict";

const KV = (function () {
  const { el, clear, $, api } = EM;
  const boot = EM.jsonData("boot-data");
  const SEP = boot.kv_separator || "/";
  const PAGE = 100;
  const EXT_MODES = { json: "json", yaml: "yaml", yml: "yaml", xml: "xml", toml: "toml", ini: "ini", conf: "ini",
    cfg: "ini", js: "javascript", lua: "lua" };

  const EVICT_AFTER_MS = 5 * 60 * 1000;

  // Each tab keeps its protocol and layout and, per protocol, a view: its tree (held as detached
  // DOM while another view is on screen), selection, search and scroll position. Every node
  // knows its view, so a late answer lands in the tree (and tab) that asked for it.
  const tabStates = new Map();
  let activeTab = null;
  let cur = null; // the view on screen
  let menuTarget = null;
  let editor = null;
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
  // Every KV request of a non-default tab names the tab, so it goes to that tab's cluster.
  function kvUrl(view, action, params) {
    const query = new URLSearchParams(params || {});
    if (view.tabId !== "default") query.set("tab_id", view.tabId);
    const text = query.toString();
    return `/api/kv/${view.proto}/${action}` + (text ? "?" + text : "");
  }

  // --- tree model ---
  function makeRoot(view) {
    return { key: SEP, label: SEP, dir: true, prefix: view.proto === "v3" ? "" : SEP, parent: null, isRoot: true, view };
  }
  function childBase(node) {
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
      title: EM.visible(node.key),
    }, twisty, el("span", { className: "seg-label" }, EM.visible(node.label)),
    el("span", { className: "full-label" }, EM.visible(node.key)),
      node.dir && node.count !== undefined ? el("span", { className: "count" }, "(" + node.count + ")") : null);
    if (node.dir) row.setAttribute("aria-expanded", node.expanded ? "true" : "false");
    row.kvNode = node;
    row.addEventListener("click", () => {
      if (node.dir) toggle(node);
      select(node);
      focusItem(row);
    });
    row.addEventListener("contextmenu", (e) => {
      e.preventDefault();
      openMenu(node, e.clientX, e.clientY);
    });
    node.row = row;
    node.twisty = twisty;
    return row;
  }

  function renderNode(node) {
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
  function focusItem(row, keepFocus) {
    if (!row) return;
    $("kv-tree").querySelectorAll("[role=treeitem][tabindex='0']").forEach((n) => { if (n !== row) n.tabIndex = -1; });
    row.tabIndex = 0;
    if (!keepFocus) row.focus();
  }
  // After a level is (re)built the tree must still have a tab stop.
  function ensureTabStop() {
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
        select(node);
        break;
      case "Delete":
        if (!(node.isRoot && node.view.proto === "v2")) removeNode(node);
        break;
      case "ContextMenu": {
        const box = node.row.getBoundingClientRect();
        openMenu(node, box.left + 16, box.bottom);
        $("kv-menu-create").focus();
        break;
      }
      default: handled = false;
    }
    if (handled) e.preventDefault();
  }

  async function loadLevel(node, cursor) {
    const params = { prefix: node.prefix, limit: String(PAGE) };
    if (cursor) params.cursor = cursor;
    const data = await api("GET", kvUrl(node.view, "list", params));
    if (!cursor) clear(node.childList);
    const old = node.childList.querySelector(":scope > li.more");
    if (old) old.remove();
    for (const item of data.nodes || []) node.childList.appendChild(renderNode(nodeFrom(node, item)));
    if (data.next_cursor) {
      const more = el("button", { type: "button", className: "kv-more",
        onclick: () => loadLevel(node, data.next_cursor).catch((err) => showError(err, node.view)) }, "Load more…");
      node.childList.appendChild(el("li", { className: "more", role: "none" }, more));
    }
    if (!(data.nodes || []).length && !cursor) node.childList.appendChild(el("li", { className: "muted small empty", role: "none" }, "(empty)"));
    node.loaded = true;
    if (cur === node.view) ensureTabStop();
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

  async function reloadLevel(node) {
    node.loaded = false;
    await toggle(node, true);
  }

  // A failure on a remote tab may have changed its status: the strip re-reads it.
  function showError(err, view) {
    if (err && err.status === 401) return;
    EM.toast(err.message || String(err), "error");
    if (view && view.tabId !== "default") KVTabs.refreshSoon();
  }

  async function buildTree(view) {
    view.root = makeRoot(view);
    view.selected = null;
    view.searching = false;
    if (cur === view) {
      clear($("kv-tree")).appendChild(el("ul", { role: "tree", "aria-label": "Keys" }, renderNode(view.root)));
      clearDetail();
      $("kv-search-clear").hidden = true;
      ensureTabStop();
    }
    await toggle(view.root, true);
  }

  // --- info bar ---
  function tabName(view) {
    const tab = KVTabs.get(view.tabId);
    return tab ? tab.name : view.tabId;
  }
  async function loadInfo(view) {
    const label = view.proto.toUpperCase();
    if (cur === view) clear($("kv-info")).append(el("span", {}, "Cluster: ", el("b", {}, tabName(view))), el("span", {}, "Connecting…"));
    try {
      const info = await api("POST", kvUrl(view, "connect"));
      KVTabs.connected(view.tabId);
      if (cur !== view) return;
      clear($("kv-info")).append(
        el("span", {}, "Cluster: ", el("b", {}, tabName(view))),
        el("span", {}, "Protocol: ", el("b", {}, label)),
        el("span", {}, "Version: ", el("b", {}, info.version || "–")),
        el("span", {}, "Leader: ", el("b", {}, info.name || "–")),
        el("span", {}, "DB Size: ", el("b", {}, info.size_str || "–")));
    } catch (err) {
      if (view.tabId !== "default") KVTabs.refreshSoon();
      if (cur === view) {
        const bar = clear($("kv-info"));
        bar.append(el("span", {}, "Cluster: ", el("b", {}, tabName(view))),
          el("span", { className: "error" }, `${label} unavailable: ${err.message}`));
        if (view.tabId !== "default") {
          bar.append(el("button", { type: "button", className: "ghost small", id: "kv-info-reenter",
            onclick: () => KVTabs.reenter(view.tabId) }, "Re-enter credentials"));
        }
      }
      throw err;
    }
  }

  // --- selection and editor ---
  // Empties the detail pane; the view's selection is the caller's business.
  function clearDetail() {
    $("kv-path").textContent = "Select a key";
    $("kv-meta").textContent = "";
    $("kv-editor-bar").hidden = true;
    $("kv-editor").hidden = true;
  }

  function metaText(node, data) {
    const parts = [];
    if (node.dir) {
      parts.push("Type: Directory");
      if (node.count !== undefined) parts.push("Keys: " + node.count);
    } else {
      parts.push("Type: Key");
    }
    if (data) {
      const v3 = node.view.proto === "v3";
      const created = v3 ? "CreateRev" : "CreatedIdx";
      const modified = v3 ? "ModRev" : "ModifiedIdx";
      if (data.createdIndex) parts.push(`${created}: ${data.createdIndex}`);
      if (data.modifiedIndex) parts.push(`${modified}: ${data.modifiedIndex}`);
      if (data.version) parts.push(`Version: ${data.version}`);
      parts.push(data.ttl ? `TTL: ${data.ttl}s` : "TTL: none");
      if (data.encoding === "base64") parts.push("Binary value (shown as base64)");
    }
    return parts.join(" | ");
  }

  function detectMode(key, value, encoding) {
    if (encoding === "base64") return "text";
    const ext = key.includes(".") ? key.split(".").pop().toLowerCase() : "";
    if (EXT_MODES[ext]) return EXT_MODES[ext];
    const text = value.trim();
    if (/^[[{]/.test(text)) {
      try {
        JSON.parse(text);
        return "json";
      } catch (err) {
        /* not JSON after all */
      }
    }
    if (text.startsWith("<")) return "xml";
    if (/^[\w"'.-][^\n]*:(\s|$)/m.test(text) && typeof jsyaml !== "undefined") {
      try {
        const parsed = jsyaml.load(text);
        if (parsed && typeof parsed === "object") return "yaml";
      } catch (err) {
        /* plain text */
      }
    }
    return "text";
  }

  function ensureEditor() {
    if (editor) return editor;
    ace.config.set("basePath", "/static/vendor/ace/");
    editor = ace.edit("kv-editor", {
      useWorker: false, tabSize: 2, useSoftTabs: true, wrap: true, showPrintMargin: false, fontSize: "13px",
    });
    themeChanged();
    return editor;
  }
  function setMode(name) {
    $("kv-mode").value = name;
    ensureEditor().session.setMode("ace/mode/" + name);
  }

  async function select(node) {
    const view = node.view;
    if (view !== cur) return;
    $("kv-tree").querySelectorAll(".kv-node.selected").forEach((n) => n.classList.remove("selected"));
    $("kv-tree").querySelectorAll("[role=treeitem][aria-selected='true']").forEach((n) => n.setAttribute("aria-selected", "false"));
    if (node.row) node.row.classList.add("selected");
    if (node.row) {
      node.row.setAttribute("aria-selected", "true");
      focusItem(node.row, true);
    }
    view.selected = { node, data: null };
    $("kv-path").textContent = EM.visible(node.key);
    if (node.dir) {
      $("kv-meta").textContent = metaText(node, null);
      $("kv-editor-bar").hidden = true;
      $("kv-editor").hidden = true;
      return;
    }
    $("kv-meta").textContent = "Loading…";
    let data;
    const current = () => cur === view && view.selected && view.selected.node === node;
    try {
      data = (await api("GET", kvUrl(view, "get", { key: node.key }))).node;
    } catch (err) {
      if (err.status === 404) {
        EM.toast("Key expired or deleted: " + EM.visible(node.key), "error");
        if (node.li) node.li.remove();
        ensureTabStop();
        if (view.selected && view.selected.node === node) {
          view.selected = null;
          if (cur === view) clearDetail();
        }
        return;
      }
      return showError(err, view);
    }
    if (!current()) return;
    view.selected.data = data;
    $("kv-meta").textContent = metaText(node, data);
    const value = data.value || "";
    $("kv-encoding").hidden = data.encoding !== "base64";
    $("kv-editor-bar").hidden = false;
    $("kv-editor").hidden = false;
    const ed = ensureEditor();
    setMode(detectMode(node.key, value, data.encoding));
    ed.session.setValue(value); // empty values are editable too
    ed.resize();
  }

  async function save() {
    const view = cur;
    const selected = view && view.selected;
    if (!selected || !selected.data) return;
    const key = selected.node.key;
    const body = { key, value: ensureEditor().getValue() };
    // A binary value round-trips as base64, so saving it unchanged writes the same bytes.
    if (selected.data.encoding === "base64") body.encoding = "base64";
    try {
      await api("PUT", kvUrl(view, "put"), body); // no ttl: the key keeps its lease
      EM.toast("Saved " + key, "success");
      if (view.selected === selected) await select(selected.node);
    } catch (err) {
      showError(err, view);
    }
  }

  function prettyPrint() {
    const ed = ensureEditor();
    const value = ed.getValue();
    const current = $("kv-mode").value;
    try {
      if (current === "yaml") ed.session.setValue(jsyaml.dump(jsyaml.load(value), { indent: 2, lineWidth: 120 }));
      else ed.session.setValue(JSON.stringify(JSON.parse(value), null, 2));
      if (current !== "yaml") setMode("json");
    } catch (err) {
      EM.toast("Cannot pretty-print: " + err.message, "error");
    }
  }

  // --- context menu, create, delete ---
  function openMenu(node, x, y) {
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
    if (!node) return cur && cur.root;
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
      EM.toast("Created " + EM.visible(body.key), "success");
      await reloadLevel(parent);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  }

  // The confirmation of a directory delete says how many keys go: counted by the server right
  // before asking (count-only, whatever the directory's size), never guessed from the tree.
  async function deleteQuestion(node) {
    const name = EM.visible(node.key);
    if (!node.dir) return `Delete the key "${name}"?`;
    let count;
    try {
      count = (await api("GET", kvUrl(node.view, "count", { key: node.key }))).count;
    } catch (err) {
      if (err.status === 401) return null;
      return `Delete the directory "${name}" and ALL keys under it? The keys could not be counted (${err.message}). ` +
        "This cannot be undone.";
    }
    return `Delete the directory "${name}" and ALL keys under it: ${count} key${count === 1 ? "" : "s"} will be removed. ` +
      "This cannot be undone.";
  }

  async function removeNode(node) {
    const text = await deleteQuestion(node);
    if (text === null || !(await EM.confirmAction("Remove Node", text, "Delete"))) return;
    const view = node.view;
    try {
      await api("POST", kvUrl(view, "delete"), { key: node.key, dir: node.dir });
      EM.toast("Deleted " + EM.visible(node.key), "success");
      if (view.selected && view.selected.node === node) {
        view.selected = null;
        if (cur === view) clearDetail();
      }
      if (node.parent) {
        await reloadLevel(node.parent);
        if (cur === view && node.parent.row) focusItem(node.parent.row); // the deleted item had focus
      } else {
        await buildTree(view);
      }
    } catch (err) {
      showError(err, view);
    }
  }

  // --- search (v3, server side) ---
  async function search(cursor) {
    const view = cur;
    if (!view) return;
    const q = $("kv-search").value;
    if (!q) return clearSearch();
    if (view.proto !== "v3") {
      EM.toast("Server search is available for v3 keys only.", "error");
      return;
    }
    const params = { q, limit: "100" };
    if (cursor) params.cursor = cursor;
    try {
      const data = await api("GET", kvUrl(view, "search", params));
      if (cur !== view) return;
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
    if (cur) buildTree(cur).catch((err) => showError(err, cur));
  }

  // --- tabs and protocols: leave a view (keep its DOM), enter one (restore or build it) ---
  function leave() {
    if (!cur) return;
    const tree = $("kv-tree");
    cur.scroll = tree.scrollTop;
    cur.searchText = $("kv-search").value;
    cur.leftAt = Date.now();
    if (cur.root) {
      const stash = document.createDocumentFragment();
      while (tree.firstChild) stash.appendChild(tree.firstChild);
      cur.stash = stash;
    }
    cur = null;
  }

  function syncToolbar(view) {
    $("kv-v3").classList.toggle("active", view.proto === "v3");
    $("kv-v2").classList.toggle("active", view.proto === "v2");
    $("kv-search").disabled = view.proto !== "v3";
    $("kv-search").placeholder = view.proto === "v3" ? "Search keys (server side)…" : "Search is available for v3";
    $("kv-search").value = view.searchText || "";
    $("kv-search-clear").hidden = !view.searching;
    applyLayout(tabState(view.tabId).mode);
  }

  async function enter(view) {
    cur = view;
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
      if (cur === view) clear($("kv-tree")).appendChild(el("p", { className: "muted" }, "Cannot list keys: " + err.message));
    }
  }

  function showTab(id) {
    if (cur && cur.tabId === id) return;
    leave();
    activeTab = id;
    const state = tabState(id);
    enter(viewOf(state, state.proto));
  }

  function switchProto(next) {
    const state = tabState(activeTab);
    if (cur && state.proto === next) return;
    leave();
    state.proto = next;
    enter(viewOf(state, next));
  }

  function reload() {
    if (!cur) return;
    cur.searching = false;
    $("kv-search").value = "";
    $("kv-search-clear").hidden = true;
    refreshView(cur);
  }

  function tabClosed(id) {
    tabStates.delete(id);
  }

  // New credentials: the tab's trees were built with the old ones (or failed); start afresh.
  function tabReconnected(id) {
    const state = tabStates.get(id);
    if (!state) return;
    for (const view of Object.values(state.views)) {
      if (view === cur) continue;
      Object.assign(view, { root: null, stash: null, selected: null, searching: false });
    }
    if (cur && cur.tabId === id) reload();
  }

  // Trees of views not looked at for a while are dropped; entering them again rebuilds them.
  function evict() {
    const now = Date.now();
    for (const state of tabStates.values()) {
      for (const view of Object.values(state.views)) {
        if (view !== cur && view.stash && now - view.leftAt > EVICT_AFTER_MS) {
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

  function themeChanged() {
    if (editor) editor.setTheme(EM.theme() === "dark" ? "ace/theme/monokai" : "ace/theme/chrome");
  }

  function init() {
    $("kv-v3").addEventListener("click", () => switchProto("v3"));
    $("kv-v2").addEventListener("click", () => switchProto("v2"));
    $("kv-mode-tree").addEventListener("click", () => setLayout("tree"));
    $("kv-mode-list").addEventListener("click", () => setLayout("list"));
    $("kv-search-form").addEventListener("submit", (e) => {
      e.preventDefault();
      search();
    });
    $("kv-search-clear").addEventListener("click", clearSearch);
    $("kv-reload").addEventListener("click", reload);
    $("kv-new").addEventListener("click", () => {
      if (cur) openCreate(cur.selected ? cur.selected.node : cur.root);
    });
    $("kv-save").addEventListener("click", save);
    $("kv-pretty").addEventListener("click", prettyPrint);
    $("kv-mode").addEventListener("change", (e) => setMode(e.target.value));
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
    $("kv-tree").addEventListener("keydown", treeKeydown);
    $("kv-create-form").addEventListener("submit", submitCreate);
    $("kv-create-cancel").addEventListener("click", () => $("kv-create-dialog").close());
    $("kv-create-dir").addEventListener("change", syncDirField);
  }

  function activate() {
    if (!started) {
      started = true;
      init();
      KVTabs.init({ onSelect: showTab, onClosed: tabClosed, onReconnected: tabReconnected });
      showTab("default");
      setInterval(evict, 60 * 1000);
    }
    if (editor) editor.resize();
  }

  return { activate, themeChanged };
})();
