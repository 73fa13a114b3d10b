// The KV value editor: the detail pane of the selected node, an ACE editor with format
// detection and pretty-print, and save. Values are only ever text.
//
// Saving is safe: a v3 save carries the mod_revision it loaded (`expected_mod_revision`), and
// when someone changed or deleted the key meanwhile the server answers 409 with the current
// value, shown as a diff against the user's text with the choice to overwrite or reload. In
// json/yaml mode an invalid document is refused unless the user saves it as text.
import { $, api, theme, toast, visible } from "./common.js";
import { renderDiff } from "./kv-diff.js";
import { clearDetail, currentView, kvUrl, mayWrite, showError } from "./kv-shared.js";
import { ensureTabStop, focusItem } from "./kv-tree.js";
import { ace, jsyaml } from "./vendor.js";

const EXT_MODES = { json: "json", yaml: "yaml", yml: "yaml", xml: "xml", toml: "toml", ini: "ini", conf: "ini",
  cfg: "ini", js: "javascript", lua: "lua" };
let editor = null;

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
  const options = { useWorker: false, tabSize: 2, useSoftTabs: true, wrap: true, showPrintMargin: false, fontSize: "13px" };
  editor = ace.edit("kv-editor", options);
  // ace.edit() hands back an editor already built on the element unchanged: set them anyway
  // (no syntax worker is vendored, so a started one fails to load).
  editor.setOptions(options);
  themeChanged();
  return editor;
}
function setMode(name) {
  $("kv-mode").value = name;
  ensureEditor().session.setMode("ace/mode/" + name);
}

export async function select(node) {
  const view = node.view;
  if (view !== currentView()) return;
  $("kv-tree").querySelectorAll(".kv-node.selected").forEach((n) => n.classList.remove("selected"));
  $("kv-tree").querySelectorAll("[role=treeitem][aria-selected='true']").forEach((n) => n.setAttribute("aria-selected", "false"));
  if (node.row) node.row.classList.add("selected");
  if (node.row) {
    node.row.setAttribute("aria-selected", "true");
    focusItem(node.row, true);
  }
  view.selected = { node, data: null };
  // History needs the loaded revision: until it is here, a click on it would do nothing.
  $("kv-history").disabled = true;
  $("kv-path").textContent = visible(node.key);
  if (node.dir) {
    $("kv-meta").textContent = metaText(node, null);
    $("kv-editor-bar").hidden = true;
    $("kv-editor").hidden = true;
    return;
  }
  $("kv-meta").textContent = "Loading…";
  let data;
  const current = () => currentView() === view && view.selected && view.selected.node === node;
  try {
    data = (await api("GET", kvUrl(view, "get", { key: node.key }))).node;
  } catch (err) {
    if (err.status === 404) {
      toast("Key expired or deleted: " + visible(node.key), "error");
      if (node.li) node.li.remove();
      ensureTabStop();
      if (view.selected && view.selected.node === node) {
        view.selected = null;
        if (currentView() === view) clearDetail();
      }
      return;
    }
    return showError(err, view);
  }
  if (!current()) return;
  view.selected.data = data;
  $("kv-history").disabled = false;
  $("kv-meta").textContent = metaText(node, data);
  const value = data.value || "";
  $("kv-encoding").hidden = data.encoding !== "base64";
  $("kv-history").hidden = view.proto !== "v3"; // v2 keys have no revisions to look back on
  $("kv-editor-bar").hidden = false;
  $("kv-editor").hidden = false;
  const ed = ensureEditor();
  setMode(detectMode(node.key, value, data.encoding));
  ed.setReadOnly(!mayWrite(view)); // a viewer reads values; saving is an operator's
  $("kv-save").hidden = !mayWrite(view);
  ed.session.setValue(value); // empty values are editable too
  ed.resize();
}

// Opens a dialog and resolves with the answer of the button clicked (null on Escape).
function ask(dialogId, answers) {
  const dialog = $(dialogId);
  return new Promise((resolve) => {
    const wired = [];
    const done = (answer) => {
      for (const [button, handler] of wired) button.removeEventListener("click", handler);
      dialog.removeEventListener("cancel", dismissed);
      if (dialog.open) dialog.close();
      resolve(answer);
    };
    const dismissed = () => done(null);
    for (const [id, answer] of Object.entries(answers)) {
      const handler = () => done(answer);
      $(id).addEventListener("click", handler);
      wired.push([$(id), handler]);
    }
    dialog.addEventListener("cancel", dismissed);
    dialog.showModal();
  });
}

// The parse error of a json/yaml document, null when it parses (or the mode checks nothing).
function invalidDocument(mode, text) {
  try {
    if (mode === "json") JSON.parse(text);
    else if (mode === "yaml") jsyaml.load(text);
    return null;
  } catch (err) {
    return err.message.split("\n")[0];
  }
}

async function save() {
  const view = currentView();
  const selected = view && view.selected;
  if (!selected || !selected.data) return;
  const text = ensureEditor().getValue();
  const mode = $("kv-mode").value;
  const problem = invalidDocument(mode, text);
  if (problem) {
    $("kv-invalid-title").textContent = `Not valid ${mode.toUpperCase()}`;
    $("kv-invalid-text").textContent =
      `The value does not parse as ${mode.toUpperCase()}: ${problem}. It was not saved.`;
    if ((await ask("kv-invalid-dialog", { "kv-invalid-fix": "fix", "kv-invalid-as-text": "text" })) !== "text") {
      ensureEditor().focus();
      return;
    }
    setMode("text");
  }
  // v2 keys have no mod_revision to compare; the v3 save is a compare-and-swap on the loaded one.
  const expected = view.proto === "v3" ? selected.data.modifiedIndex : undefined;
  await write(view, selected, text, expected);
}

async function write(view, selected, text, expected) {
  const key = selected.node.key;
  const body = { key, value: text };
  // A binary value round-trips as base64, so saving it unchanged writes the same bytes.
  if (selected.data.encoding === "base64") body.encoding = "base64";
  if (expected !== undefined) body.expected_mod_revision = expected;
  try {
    await api("PUT", kvUrl(view, "put"), body); // no ttl: the key keeps its lease
  } catch (err) {
    if (err.status === 409 && err.body.code === "revision_conflict") return conflict(view, selected, text, err.body.current);
    return showError(err, view);
  }
  toast("Saved " + key, "success");
  if (view.selected === selected) await select(selected.node);
}

// Someone changed or deleted the key since it was loaded: show what differs, let the user choose.
async function conflict(view, selected, text, current) {
  const now = current ? current.value || "" : "";
  $("kv-conflict-text").textContent = current
    ? `Someone saved this key after you opened it (revision ${selected.data.modifiedIndex} → ${current.mod_revision}). ` +
      "Lines marked − are only in the current value, + only in yours."
    : "Someone deleted this key after you opened it. Overwriting creates it again with your text.";
  const differs = renderDiff($("kv-conflict-diff"), now, text);
  if (!differs && current) $("kv-conflict-diff").textContent = "(the current value is the same as yours)";
  $("kv-conflict-overwrite").textContent = current ? "Overwrite with mine" : "Create it again";
  const answer = await ask("kv-conflict-dialog", {
    "kv-conflict-overwrite": "overwrite", "kv-conflict-reload": "reload", "kv-conflict-cancel": null,
  });
  if (answer === "overwrite") {
    // Still a compare-and-swap, now on what the user has just seen (0: only if still absent).
    await write(view, selected, text, current ? current.mod_revision : 0);
  } else if (answer === "reload") {
    if (view.selected === selected) await select(selected.node);
  } else {
    ensureEditor().focus();
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
    toast("Cannot pretty-print: " + err.message, "error");
  }
}

export function themeChanged() {
  if (editor) editor.setTheme(theme() === "dark" ? "ace/theme/monokai" : "ace/theme/chrome");
}

export function resizeEditor() {
  if (editor) editor.resize();
}

export function wireEditor() {
  $("kv-save").addEventListener("click", save);
  $("kv-pretty").addEventListener("click", prettyPrint);
  $("kv-mode").addEventListener("change", (e) => setMode(e.target.value));
}
