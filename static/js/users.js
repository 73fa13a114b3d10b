// Users view (admins only): list, create, edit roles and key prefix scopes, deactivate, reset a password, unlock,
// delete. The server decides who may do this (403 otherwise); user data is inserted as text.
import { $, api, clear, confirmAction, el, jsonData, toast, visible } from "./common.js";

const ROLES = ["viewer", "operator", "admin"];
const boot = jsonData("boot-data") || {};
let users = [];
let editing = null; // the user being edited, null while creating
let started = false;

function showError(err) {
  if (err && err.status === 401) return;
  toast(err.message || String(err), "error");
}

function roleSelect(id, value, label) {
  return el("select", { id, "aria-label": label },
    ROLES.map((role) => el("option", { value: role, selected: role === value }, role)));
}

function rolesText(roles) {
  return Object.entries(roles).sort(([a], [b]) => (a === "*" ? 1 : b === "*" ? -1 : a.localeCompare(b)))
    .map(([cluster, role]) => (cluster === "*" ? "every other cluster" : visible(cluster)) + ": " + role);
}

function scopesText(scopes) {
  return Object.entries(scopes || {}).sort(([a], [b]) => a.localeCompare(b))
    .map(([cluster, scope]) => (cluster === "*" ? "every other cluster" : visible(cluster)) + " keys: read "
      + ((scope.read || []).map(visible).join(", ") || "none") + "; write "
      + ((scope.write || []).map(visible).join(", ") || "none"));
}

function status(user) {
  const parts = [user.is_active ? "active" : "inactive"];
  if (user.locked) parts.push("locked");
  if (user.must_change_password) parts.push("must change password");
  return parts.join(", ");
}

async function load() {
  try {
    users = (await api("GET", "/api/users")).users || [];
    render();
  } catch (err) {
    showError(err);
  }
}

async function patch(user, body, done) {
  try {
    await api("PATCH", "/api/users/" + user.id, body);
    toast(done, "success");
    await load();
  } catch (err) {
    showError(err);
  }
}

function actions(user) {
  const name = visible(user.username);
  const self = user.username === boot.username;
  const buttons = [
    el("button", { type: "button", "aria-label": "Edit " + name, onclick: () => openDialog(user) }, "Edit"),
  ];
  if (user.locked) {
    buttons.push(el("button", { type: "button", "aria-label": "Unlock " + name,
      onclick: () => patch(user, { unlock: true }, name + " unlocked") }, "Unlock"));
  }
  if (!self) {
    buttons.push(el("button", { type: "button", "aria-label": (user.is_active ? "Deactivate " : "Activate ") + name,
      onclick: async () => {
        if (user.is_active && !(await confirmAction("Deactivate user", `Deactivate ${name}? Their sessions end now.`, "Deactivate"))) return;
        patch(user, { is_active: !user.is_active }, name + (user.is_active ? " deactivated" : " activated"));
      } }, user.is_active ? "Deactivate" : "Activate"));
    buttons.push(el("button", { type: "button", className: "danger", "aria-label": "Delete " + name,
      onclick: async () => {
        if (!(await confirmAction("Delete user", `Delete ${name}? This cannot be undone.`, "Delete"))) return;
        try {
          await api("DELETE", "/api/users/" + user.id);
          toast(name + " deleted", "success");
          await load();
        } catch (err) {
          showError(err);
        }
      } }, "Delete"));
  }
  return el("div", { className: "user-actions" }, buttons);
}

function render() {
  const body = clear($("users-table").tBodies[0]);
  for (const user of users) {
    body.appendChild(el("tr", { dataset: { username: user.username } },
      el("td", {}, visible(user.username)),
      el("td", {}, status(user)),
      el("td", {}, [...rolesText(user.roles), ...scopesText(user.kv_scopes)]
        .map((text) => el("span", { className: "role-chip" }, text))),
      el("td", {}, actions(user))));
  }
}

let rowCount = 0;
function roleRow(cluster, role) {
  rowCount += 1;
  const input = el("input", { id: "user-role-cluster-" + rowCount, value: cluster || "", maxlength: "64",
    placeholder: "cluster id", "aria-label": "Cluster id", autocomplete: "off", spellcheck: "false" });
  const item = el("li", {}, input, roleSelect("user-role-value-" + rowCount, role || "viewer", "Role on this cluster"),
    el("button", { type: "button", className: "ghost", "aria-label": "Remove this cluster role", onclick: () => {
      item.remove();
      $("user-role-add").focus();
    } }, "Remove"));
  $("user-role-rows").appendChild(item);
  return input;
}

let scopeCount = 0;
function prefixLines(prefixes) {
  return (prefixes || []).join("\n");
}

function scopeRow(cluster, scope) {
  scopeCount += 1;
  const n = scopeCount;
  const input = el("input", { id: "user-scope-cluster-" + n, value: cluster || "", maxlength: "64",
    placeholder: "cluster id or *", "aria-label": "Cluster id of this key scope", autocomplete: "off",
    spellcheck: "false", className: "scope-cluster" });
  const read = el("textarea", { id: "user-scope-read-" + n, rows: "2", spellcheck: "false",
    placeholder: "/app/", "aria-label": "Read prefixes, one per line", className: "scope-read" });
  read.value = prefixLines(scope && scope.read);
  const write = el("textarea", { id: "user-scope-write-" + n, rows: "2", spellcheck: "false",
    placeholder: "/app/config/", "aria-label": "Write prefixes, one per line", className: "scope-write" });
  write.value = prefixLines(scope && scope.write);
  const item = el("li", {}, input, read, write,
    el("button", { type: "button", className: "ghost", "aria-label": "Remove this key scope", onclick: () => {
      item.remove();
      $("user-scope-add").focus();
    } }, "Remove"));
  $("user-scope-rows").appendChild(item);
  return input;
}

function lines(text) {
  return text.split("\n").map((line) => line.trim()).filter(Boolean);
}

function formScopes() {
  const scopes = {};
  for (const item of $("user-scope-rows").children) {
    const cluster = item.querySelector(".scope-cluster").value.trim();
    if (cluster) {
      scopes[cluster] = { read: lines(item.querySelector(".scope-read").value),
        write: lines(item.querySelector(".scope-write").value) };
    }
  }
  return scopes;
}

function openDialog(user) {
  editing = user || null;
  $("user-dialog-title").textContent = user ? "Edit " + visible(user.username) : "New user";
  $("user-username-row").hidden = Boolean(user);
  $("user-username").value = "";
  $("user-password").value = "";
  $("user-password-label").textContent = user ? "New password (reset; leave empty to keep)" : "Password";
  $("user-active-row").hidden = !user || user.username === boot.username;
  $("user-active").checked = user ? user.is_active : true;
  const roles = { ...(user ? user.roles : {}) };
  const any = $("user-role-any");
  clear(any);
  ROLES.forEach((role) => any.appendChild(el("option", { value: role, selected: role === (roles["*"] || "viewer") }, role)));
  delete roles["*"];
  clear($("user-role-rows"));
  for (const [cluster, role] of Object.entries(roles)) roleRow(cluster, role);
  clear($("user-scope-rows"));
  for (const [cluster, scope] of Object.entries((user && user.kv_scopes) || {})) scopeRow(cluster, scope);
  $("user-error").hidden = true;
  $("user-save").disabled = false;
  $("user-dialog").showModal();
  (user ? $("user-password") : $("user-username")).focus();
}

function formRoles() {
  const roles = { "*": $("user-role-any").value };
  for (const item of $("user-role-rows").children) {
    const cluster = item.querySelector("input").value.trim();
    if (cluster) roles[cluster] = item.querySelector("select").value;
  }
  return roles;
}

async function save(event) {
  event.preventDefault();
  const error = $("user-error");
  error.hidden = true;
  const password = $("user-password").value;
  const min = boot.min_password_length || 8;
  const fail = (message) => { error.textContent = message; error.hidden = false; };
  let body;
  if (editing) {
    body = { roles: formRoles(), kv_scopes: formScopes() };
    if (password) body.password = password;
    if (editing.username !== boot.username) body.is_active = $("user-active").checked;
  } else {
    const username = $("user-username").value.trim();
    if (!username) return fail("Enter a username.");
    body = { username, password, roles: formRoles(), kv_scopes: formScopes() };
  }
  if ((!editing || password) && [...password].length < min) return fail(`The password must have at least ${min} characters.`);
  $("user-save").disabled = true;
  try {
    if (editing) await api("PATCH", "/api/users/" + editing.id, body);
    else await api("POST", "/api/users", body);
    $("user-dialog").close();
    toast(editing ? "User saved" : "User created", "success");
    await load();
  } catch (err) {
    if (err.status === 401) return;
    fail(err.message);
    $("user-save").disabled = false;
  }
}

function wire() {
  $("user-new").addEventListener("click", () => openDialog(null));
  $("user-role-add").addEventListener("click", () => roleRow("", "viewer").focus());
  $("user-scope-add").addEventListener("click", () => scopeRow("", null).focus());
  $("user-cancel").addEventListener("click", () => $("user-dialog").close());
  $("user-form").addEventListener("submit", save);
}

export function activate() {
  if (!started) {
    started = true;
    wire();
  }
  load();
}
