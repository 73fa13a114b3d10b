// KV view: a lazy tree on the paginated one-level `list` endpoint (v3 and v2), server search,
// a value editor (ACE) with format detection and pretty-print, and create/delete from a context
// menu. Keys and values are only ever inserted as text.
"use strict";

const KV = (function () {
  const { el, clear, $, api } = EM;
  const boot = EM.jsonData("boot-data");
  const SEP = boot.kv_separator || "/";
  const PAGE = 100;
  const EXT_MODES = { json: "json", yaml: "yaml", yml: "yaml", xml: "xml", toml: "toml", ini: "ini", conf: "ini",
    cfg: "ini", js: "javascript", lua: "lua" };

  let proto = "v3";
  let mode = "tree";
  let root = null;
  let selected = null; // {node, data}
  let menuTarget = null;
  let editor = null;
  let started = false;

  // --- tree model ---
  function makeRoot() {
    return { key: SEP, label: SEP, dir: true, prefix: proto === "v3" ? "" : SEP, parent: null, isRoot: true };
  }
  function childBase(node) {
    if (proto === "v3") return node.prefix;
    return node.key.endsWith(SEP) ? node.key : node.key + SEP;
  }
  function labelFor(parent, key) {
    const base = childBase(parent);
    let label = base && key.startsWith(base) ? key.slice(base.length) : key;
    if (proto === "v2" && label.startsWith(SEP) && label !== SEP) label = label.slice(SEP.length);
    return label || key;
  }
  function nodeFrom(parent, item) {
    return {
      key: item.key, dir: !!item.dir, count: item.count,
      prefix: proto === "v3" ? item.prefix : item.key,
      label: labelFor(parent, item.key), parent,
    };
  }

  function nodeRow(node) {
    const twisty = el("span", { className: "twisty" }, node.dir ? (node.expanded ? "▾" : "▸") : "");
    const row = el("div", {
      className: "kv-node" + (node.dir ? " dir" : " leaf"), role: "treeitem", tabindex: "-1",
      dataset: { key: node.key, dir: node.dir ? "1" : "0" },
      title: node.key,
    }, twisty, el("span", { className: "seg-label" }, node.label), el("span", { className: "full-label" }, node.key),
      node.dir && node.count !== undefined ? el("span", { className: "count" }, "(" + node.count + ")") : null);
    row.addEventListener("click", () => {
      if (node.dir) toggle(node);
      select(node);
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
    const li = el("li", {}, nodeRow(node));
    node.li = li;
    if (node.dir) {
      node.childList = el("ul", { role: "group" });
      node.childList.hidden = !node.expanded;
      li.appendChild(node.childList);
    }
    return li;
  }

  async function loadLevel(node, cursor) {
    const params = new URLSearchParams({ prefix: node.prefix, limit: String(PAGE) });
    if (cursor) params.set("cursor", cursor);
    const data = await api("GET", `/api/kv/${proto}/list?` + params.toString());
    if (!cursor) clear(node.childList);
    const old = node.childList.querySelector(":scope > li.more");
    if (old) old.remove();
    for (const item of data.nodes || []) node.childList.appendChild(renderNode(nodeFrom(node, item)));
    if (data.next_cursor) {
      const more = el("button", { type: "button", className: "kv-more",
        onclick: () => loadLevel(node, data.next_cursor).catch(showError) }, "Load more…");
      node.childList.appendChild(el("li", { className: "more" }, more));
    }
    if (!(data.nodes || []).length && !cursor) node.childList.appendChild(el("li", { className: "muted small empty" }, "(empty)"));
    node.loaded = true;
  }

  async function toggle(node, forceOpen) {
    node.expanded = forceOpen ? true : !node.expanded;
    node.twisty.textContent = node.expanded ? "▾" : "▸";
    node.childList.hidden = !node.expanded;
    if (node.expanded && !node.loaded) {
      try {
        await loadLevel(node);
      } catch (err) {
        showError(err);
      }
    }
  }

  async function reloadLevel(node) {
    node.loaded = false;
    await toggle(node, true);
  }

  function showError(err) {
    if (err && err.status === 401) return;
    EM.toast(err.message || String(err), "error");
  }

  async function buildTree() {
    root = makeRoot();
    const container = clear($("kv-tree"));
    const top = el("ul", { role: "tree" }, renderNode(root));
    container.appendChild(top);
    clearDetail();
    await toggle(root, true);
  }

  // --- info bar ---
  async function loadInfo() {
    const bar = clear($("kv-info"));
    try {
      const info = await api("POST", `/api/kv/${proto}/connect`);
      bar.append(
        el("span", {}, "Protocol: ", el("b", {}, proto.toUpperCase())),
        el("span", {}, "Version: ", el("b", {}, info.version || "–")),
        el("span", {}, "Leader: ", el("b", {}, info.name || "–")),
        el("span", {}, "DB Size: ", el("b", {}, info.size_str || "–")));
    } catch (err) {
      bar.append(el("span", { className: "error" }, `${proto.toUpperCase()} unavailable: ${err.message}`));
      throw err;
    }
  }

  // --- selection and editor ---
  function clearDetail() {
    selected = null;
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
      const created = proto === "v3" ? "CreateRev" : "CreatedIdx";
      const modified = proto === "v3" ? "ModRev" : "ModifiedIdx";
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
    document.querySelectorAll(".kv-node.selected").forEach((n) => n.classList.remove("selected"));
    if (node.row) node.row.classList.add("selected");
    selected = { node, data: null };
    $("kv-path").textContent = node.key;
    if (node.dir) {
      $("kv-meta").textContent = metaText(node, null);
      $("kv-editor-bar").hidden = true;
      $("kv-editor").hidden = true;
      return;
    }
    $("kv-meta").textContent = "Loading…";
    let data;
    try {
      data = (await api("GET", `/api/kv/${proto}/get?key=` + encodeURIComponent(node.key))).node;
    } catch (err) {
      if (err.status === 404) {
        EM.toast("Key expired or deleted: " + node.key, "error");
        if (node.li) node.li.remove();
        clearDetail();
        return;
      }
      return showError(err);
    }
    if (!selected || selected.node !== node) return;
    selected.data = data;
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
    if (!selected || !selected.data) return;
    const key = selected.node.key;
    const body = { key, value: ensureEditor().getValue() };
    // A binary value round-trips as base64, so saving it unchanged writes the same bytes.
    if (selected.data.encoding === "base64") body.encoding = "base64";
    try {
      await api("PUT", `/api/kv/${proto}/put`, body); // no ttl: the key keeps its lease
      EM.toast("Saved " + key, "success");
      await select(selected.node);
    } catch (err) {
      showError(err);
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
    $("kv-menu-delete").disabled = !!node.isRoot && proto === "v2";
    menu.style.left = x + "px";
    menu.style.top = y + "px";
    menu.hidden = false;
  }
  function closeMenu() {
    $("kv-menu").hidden = true;
  }

  function createParent(node) {
    if (!node) return root;
    return node.dir ? node : node.parent || root;
  }
  function openCreate(node) {
    const parent = createParent(node);
    const dialog = $("kv-create-dialog");
    dialog.classList.toggle("proto-v2", proto === "v2");
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
  function syncDirField() {
    const isDir = proto === "v2" && $("kv-create-dir").checked;
    $("kv-create-value").hidden = isDir;
    $("kv-create-value-label").hidden = isDir;
  }
  async function submitCreate(event) {
    event.preventDefault();
    const dialog = $("kv-create-dialog");
    const parent = dialog._parent || root;
    const name = $("kv-create-name").value;
    const error = $("kv-create-error");
    if (!name) {
      error.textContent = "Enter a name.";
      error.hidden = false;
      return;
    }
    const ttl = parseInt($("kv-create-ttl").value, 10) || 0;
    const isDir = proto === "v2" && $("kv-create-dir").checked;
    const body = { key: $("kv-create-prefix").value + name, value: isDir ? "" : $("kv-create-value").value };
    if (ttl > 0) body.ttl = ttl;
    if (isDir) body.dir = true;
    try {
      await api("PUT", `/api/kv/${proto}/put`, body);
      dialog.close();
      EM.toast("Created " + body.key, "success");
      await reloadLevel(parent);
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
    }
  }

  async function removeNode(node) {
    const text = node.dir
      ? `Delete the directory "${node.key}" and ALL keys under it? This cannot be undone.`
      : `Delete the key "${node.key}"?`;
    if (!(await EM.confirmAction("Remove Node", text, "Delete"))) return;
    try {
      await api("POST", `/api/kv/${proto}/delete`, { key: node.key, dir: node.dir });
      EM.toast("Deleted " + node.key, "success");
      if (selected && selected.node === node) clearDetail();
      if (node.parent) await reloadLevel(node.parent);
      else await buildTree();
    } catch (err) {
      showError(err);
    }
  }

  // --- search (v3, server side) ---
  async function search(cursor) {
    const q = $("kv-search").value;
    if (!q) return clearSearch();
    if (proto !== "v3") {
      EM.toast("Server search is available for v3 keys only.", "error");
      return;
    }
    const params = new URLSearchParams({ q, limit: "100" });
    if (cursor) params.set("cursor", cursor);
    try {
      const data = await api("GET", "/api/kv/v3/search?" + params.toString());
      const box = $("kv-tree");
      let list = box.querySelector("ul.search-results");
      if (!cursor) {
        clear(box);
        box.appendChild(el("div", { className: "muted small", id: "kv-search-summary" }));
        list = el("ul", { className: "search-results", role: "tree" });
        box.appendChild(list);
      }
      const more = box.querySelector("button.kv-more");
      if (more) more.remove();
      for (const item of data.nodes || []) {
        const node = { key: item.key, dir: false, label: item.key, parent: null };
        list.appendChild(el("li", {}, nodeRow(node)));
      }
      const shown = list.children.length;
      $("kv-search-summary").textContent = shown ? `${shown} matching key(s)` + (data.truncated ? " (more available)" : "")
        : "No matching keys found";
      if (data.next_cursor) {
        box.appendChild(el("button", { type: "button", className: "kv-more", onclick: () => search(data.next_cursor) }, "Load more…"));
      }
      $("kv-search-clear").hidden = false;
    } catch (err) {
      showError(err);
    }
  }
  function clearSearch() {
    $("kv-search").value = "";
    $("kv-search-clear").hidden = true;
    buildTree().catch(showError);
  }

  async function switchProto(next) {
    proto = next;
    $("kv-v3").classList.toggle("active", proto === "v3");
    $("kv-v2").classList.toggle("active", proto === "v2");
    $("kv-search").disabled = proto !== "v3";
    $("kv-search").placeholder = proto === "v3" ? "Search keys (server side)…" : "Search is available for v3";
    $("kv-search-clear").hidden = true;
    try {
      await loadInfo();
      await buildTree();
    } catch (err) {
      clear($("kv-tree")).appendChild(el("p", { className: "muted" }, "Cannot list keys: " + err.message));
    }
  }

  function setLayout(next) {
    mode = next;
    $("kv-tree").classList.toggle("list", mode === "list");
    $("kv-mode-tree").classList.toggle("active", mode === "tree");
    $("kv-mode-list").classList.toggle("active", mode === "list");
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
    $("kv-reload").addEventListener("click", () => switchProto(proto));
    $("kv-new").addEventListener("click", () => openCreate(selected ? selected.node : root));
    $("kv-save").addEventListener("click", save);
    $("kv-pretty").addEventListener("click", prettyPrint);
    $("kv-mode").addEventListener("change", (e) => setMode(e.target.value));
    $("kv-menu-create").addEventListener("click", () => { closeMenu(); openCreate(menuTarget); });
    $("kv-menu-delete").addEventListener("click", () => { closeMenu(); removeNode(menuTarget); });
    document.addEventListener("click", (e) => { if (!$("kv-menu").contains(e.target)) closeMenu(); });
    document.addEventListener("keydown", (e) => { if (e.key === "Escape") closeMenu(); });
    $("kv-create-form").addEventListener("submit", submitCreate);
    $("kv-create-cancel").addEventListener("click", () => $("kv-create-dialog").close());
    $("kv-create-dir").addEventListener("change", syncDirField);
  }

  function activate() {
    if (!started) {
      started = true;
      init();
      switchProto("v3");
    }
    if (editor) editor.resize();
  }

  return { activate, themeChanged };
})();
