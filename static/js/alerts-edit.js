// The Alerts view's admin editors (issue 20): the channel form (add, edit) and a rule's
// thresholds with its override on the current cluster. alerts.js shows them to admins only;
// the API refuses everyone else anyway. Values go in as text (el() makes text nodes).
import { $, api, clear, el, toast, visible } from "./common.js";

// notifications.channels.MASK: the API shows a URL's userinfo, path and query, and an email
// password, as this. Sent back unchanged it keeps the stored secret; typed into a new URL it
// would be stored literally, so the form refuses that.
const MASK = "***";
const URL_KINDS = ["webhook", "slack", "alertmanager"];

function field(id, label, input, { wide = false, group = "", hint = "" } = {}) {
  input.id = id;
  const hintNode = hint ? el("span", { className: "muted small", id: id + "-hint" }, hint) : null;
  if (hintNode) input.setAttribute("aria-describedby", hintNode.id);
  return el("div", { className: "field" + (wide ? " wide" : ""), dataset: group ? { group } : {} },
    el("label", { for: id }, label), input, hintNode);
}

function showFormError(node, err) {
  if (err && err.status === 401) return;
  node.textContent = err.message || String(err);
  node.hidden = false;
}

// A whole number from an input, "" as undefined; NaN for anything else.
function wholeNumber(input) {
  const text = input.value.trim();
  if (text === "") return undefined;
  const n = Number(text);
  return Number.isInteger(n) ? n : NaN;
}

// --- channels -------------------------------------------------------------------------------------

export function channelEditor({ onSaved }) {
  let editing = null; // the channel as the API listed it, or null when adding
  const title = el("h4", { id: "channel-form-title", className: "editor-title" }, "Add a channel");
  const name = el("input", { maxlength: "200", autocomplete: "off", required: true });
  const kind = el("select", {},
    ["webhook", "slack", "alertmanager", "email"].map((k) => el("option", { value: k }, k)));
  const enabled = el("input", { type: "checkbox", id: "channel-enabled", checked: true });
  const url = el("input", { type: "text", inputmode: "url", autocomplete: "off", spellcheck: "false",
    maxlength: "2048", placeholder: "https://hooks.example.com/…" });
  const repeat = el("input", { type: "number", min: "10", max: "604800", step: "1", className: "num-input" });
  const host = el("input", { autocomplete: "off", maxlength: "255" });
  const port = el("input", { type: "number", min: "1", max: "65535", step: "1", className: "num-input" });
  const security = el("select", {}, ["starttls", "ssl", "none"].map((s) => el("option", { value: s }, s)));
  const username = el("input", { autocomplete: "off", maxlength: "255" });
  const password = el("input", { type: "password", autocomplete: "new-password", maxlength: "1024" });
  const passwordClear = el("input", { type: "checkbox", id: "channel-password-clear" });
  const from = el("input", { autocomplete: "off", maxlength: "255", placeholder: "etcdmonitor@example.com" });
  const to = el("input", { autocomplete: "off", placeholder: "ops@example.com, oncall@example.com" });
  const error = el("p", { className: "error small", id: "channel-error", role: "alert", hidden: true });
  const submit = el("button", { type: "submit", className: "primary", id: "channel-submit" }, "Add channel");
  const cancel = el("button", { type: "button", className: "ghost", id: "channel-cancel", hidden: true,
    onclick: () => reset() }, "Cancel");
  const urlHint = el("span", { className: "muted small", id: "channel-url-hint", hidden: true },
    `Parts shown as ${MASK} are hidden. Leave the URL as it is to keep it, or type the whole new URL.`);
  const passwordHintText = "A password is stored. Leave blank to keep it; changing the host or " +
    "username drops it unless you type it again.";
  const passwordClearLabel = el("label", { className: "check", dataset: { group: "email" } },
    passwordClear, " Remove the stored password");

  const form = el("form", { id: "channel-form", className: "silence-form channel-form", novalidate: true,
    "aria-labelledby": "channel-form-title" },
    title,
    field("channel-name", "Name", name),
    field("channel-kind", "Kind", kind),
    field("channel-url", "URL", url, { wide: true, group: "url" }),
    field("channel-host", "SMTP host", host, { group: "email" }),
    field("channel-port", "Port", port, { group: "email", hint: "blank: by security" }),
    field("channel-security", "Security", security, { group: "email" }),
    field("channel-username", "SMTP user", username, { group: "email" }),
    field("channel-password", "SMTP password", password, { group: "email" }),
    passwordClearLabel,
    field("channel-from", "From", from, { group: "email" }),
    field("channel-to", "To (comma-separated)", to, { wide: true, group: "email" }),
    field("channel-repeat", "Repeat every (s)", repeat, { hint: "blank: default" }),
    el("label", { className: "check" }, enabled, " Enabled"),
    submit, cancel, urlHint, error);
  url.setAttribute("aria-describedby", urlHint.id);
  const passwordHint = el("span", { className: "muted small", id: "channel-password-hint", hidden: true },
    passwordHintText);
  password.after(passwordHint);
  password.setAttribute("aria-describedby", passwordHint.id);

  function showKind() {
    const email = kind.value === "email";
    for (const node of form.querySelectorAll("[data-group]")) {
      node.hidden = node.dataset.group !== (email ? "email" : "url");
    }
    if (!(editing && editing.config.password)) passwordClearLabel.hidden = true;
  }
  kind.addEventListener("change", showKind);

  function reset() {
    editing = null;
    form.reset();
    kind.disabled = false;
    enabled.checked = true;
    title.textContent = "Add a channel";
    submit.textContent = "Add channel";
    cancel.hidden = true;
    urlHint.hidden = true;
    passwordHint.hidden = true;
    error.hidden = true;
    showKind();
  }

  function edit(channel) {
    reset();
    editing = channel;
    const config = channel.config || {};
    title.textContent = "Edit channel " + visible(channel.name);
    submit.textContent = "Save channel";
    cancel.hidden = false;
    name.value = channel.name;
    kind.value = channel.kind;
    kind.disabled = true; // the API refuses a change of kind
    enabled.checked = channel.enabled;
    repeat.value = config.repeat_interval ?? "";
    if (URL_KINDS.includes(channel.kind)) {
      url.value = config.url || "";
      urlHint.hidden = !url.value.includes(MASK);
    } else {
      host.value = config.host || "";
      port.value = config.port ?? "";
      security.value = config.security || "starttls";
      username.value = config.username || "";
      from.value = config.from || "";
      to.value = [].concat(config.to || []).join(", ");
      passwordHint.hidden = !config.password;
    }
    showKind();
    passwordClearLabel.hidden = channel.kind !== "email" || !config.password;
    form.scrollIntoView({ block: "nearest" });
    name.focus();
  }

  // The config to send: everything when adding; when editing, only what the user changed, so
  // a masked URL or password left alone is never sent and the stored secret stays.
  function configFrom(before) {
    const config = {};
    const seconds = wholeNumber(repeat);
    if (Number.isNaN(seconds)) throw new Error("Repeat every (s) must be a whole number of seconds");
    if (seconds !== undefined && seconds !== before.repeat_interval) config.repeat_interval = seconds;
    if (kind.value !== "email") {
      const value = url.value.trim();
      if (value !== (before.url || "")) {
        if (value.includes(MASK)) {
          throw new Error(`Type the whole URL: the parts shown as ${MASK} are hidden and cannot be kept in a changed URL`);
        }
        config.url = value;
      }
      return config;
    }
    const portNumber = wholeNumber(port);
    if (Number.isNaN(portNumber)) throw new Error("Port must be a whole number");
    const text = { host, security, username, from };
    for (const [key, input] of Object.entries(text)) {
      if (input.value.trim() !== (before[key] ?? "")) config[key] = input.value.trim();
    }
    if (portNumber !== undefined && portNumber !== before.port) config.port = portNumber;
    const recipients = to.value.split(",").map((s) => s.trim()).filter(Boolean);
    if (recipients.join(", ") !== [].concat(before.to || []).join(", ")) config.to = recipients;
    if (passwordClear.checked) config.password = "";
    else if (password.value) config.password = password.value;
    return config;
  }

  async function save(event) {
    event.preventDefault();
    error.hidden = true;
    let config;
    try {
      if (!name.value.trim()) throw new Error("Name: is required");
      config = configFrom(editing ? editing.config || {} : {});
    } catch (err) {
      showFormError(error, err);
      return;
    }
    try {
      if (!editing) {
        await api("POST", "/api/alerts/channels", { name: name.value.trim(), kind: kind.value, config,
          enabled: enabled.checked });
        toast(`Channel ${visible(name.value.trim())} added`, "success");
      } else {
        const body = {};
        if (name.value.trim() !== editing.name) body.name = name.value.trim();
        if (enabled.checked !== editing.enabled) body.enabled = enabled.checked;
        if (Object.keys(config).length) body.config = config;
        if (!Object.keys(body).length) {
          toast("Nothing changed", "");
          return;
        }
        await api("PATCH", "/api/alerts/channels/" + encodeURIComponent(editing.id), body);
        toast(`Channel ${visible(name.value.trim())} saved`, "success");
      }
      reset();
      await onSaved();
    } catch (err) {
      showFormError(error, err);
    }
  }
  form.addEventListener("submit", save);
  reset();
  return { node: form, edit, reset, editingId: () => (editing ? editing.id : null) };
}

// --- rules ----------------------------------------------------------------------------------------

// The rule as it applies on `clusterId`: the override's values over the rule's (as the engine's
// alerts.selectors.effective_rule does).
export function effectiveRule(rule, clusterId) {
  const override = (rule.cluster_overrides || {})[clusterId] || null;
  const o = override || {};
  return {
    override,
    enabled: o.enabled ?? rule.enabled,
    for_seconds: o.for_seconds ?? rule.for_seconds,
    thresholds: { ...rule.thresholds, ...(o.thresholds || {}) },
  };
}

function numberInput(id, value, placeholder, label) {
  return el("input", { type: "number", min: "0", step: "any", id, className: "num-input",
    value: value === undefined ? "" : String(value), placeholder: placeholder ?? "", "aria-label": label });
}

// A threshold's number from an input: undefined when blank, NaN when not a number >= 0.
function thresholdValue(input) {
  const text = input.value.trim();
  if (text === "") return undefined;
  const n = Number(text);
  return Number.isFinite(n) && n >= 0 ? n : NaN;
}

export function ruleEditor({ onSaved }) {
  const box = el("div", { id: "rule-editor-box", hidden: true });

  // Focus goes back to the rule's "Thresholds…" button (a new one if the table was redrawn),
  // so a keyboard user is not dropped at the top of the page.
  function close() {
    const id = box.hidden ? null : box.dataset.rule;
    const hadFocus = box.contains(document.activeElement) || document.activeElement === document.body;
    clear(box).hidden = true;
    if (!id || !hadFocus) return;
    const button = document.querySelector(`#alerts-rules-table tr[data-rule="${CSS.escape(id)}"] .rule-edit`);
    if (button) button.focus();
  }

  async function patch(rule, body, done) {
    await api("PATCH", "/api/alerts/rules/" + encodeURIComponent(rule.id), body);
    toast(done, "success");
    await onSaved();
  }

  function open(rule, clusterId, clusterName) {
    clear(box).hidden = false;
    const names = Object.keys(rule.thresholds || {}).sort();
    const override = (rule.cluster_overrides || {})[clusterId] || {};
    const error = el("p", { className: "error small", id: "rule-editor-error", role: "alert", hidden: true });
    const fail = (err) => showFormError(error, err);
    const where = visible(clusterName || clusterId);

    // The rule's own thresholds (every cluster without an override of them).
    const globals = {};
    const globalFields = names.map((n) => {
      globals[n] = numberInput(`rule-threshold-${n}`, rule.thresholds[n], "", `${n} (all clusters)`);
      return el("div", { className: "field" }, el("label", { for: globals[n].id }, n), globals[n]);
    });
    const saveThresholds = el("button", { type: "submit", className: "primary", id: "rule-thresholds-save" },
      "Save thresholds");
    const thresholdsForm = el("form", { className: "silence-form", id: "rule-thresholds-form", novalidate: true,
      "aria-labelledby": "rule-thresholds-title" },
      el("h5", { id: "rule-thresholds-title", className: "editor-title" }, "Thresholds on every cluster"),
      names.length ? globalFields : el("p", { className: "muted small" }, "This rule has no thresholds."),
      names.length ? saveThresholds : null);
    thresholdsForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const changed = {};
      for (const n of names) {
        const value = thresholdValue(globals[n]);
        if (value === undefined || Number.isNaN(value)) {
          fail(new Error(`${n} must be a number >= 0`));
          return;
        }
        if (value !== rule.thresholds[n]) changed[n] = value;
      }
      if (!Object.keys(changed).length) {
        toast("Nothing changed", "");
        return;
      }
      try {
        await patch(rule, { thresholds: changed }, `Rule ${rule.id} thresholds saved`);
        close();
      } catch (err) {
        fail(err);
      }
    });

    // The override on the current cluster: blank inherits the rule's value.
    const oEnabled = el("select", { id: "rule-override-enabled" },
      el("option", { value: "" }, `inherit (${rule.enabled ? "enabled" : "disabled"})`),
      el("option", { value: "true" }, "enabled"), el("option", { value: "false" }, "disabled"));
    oEnabled.value = override.enabled === undefined ? "" : String(override.enabled);
    const oFor = el("input", { type: "number", min: "0", max: "604800", step: "1", id: "rule-override-for",
      className: "num-input", value: override.for_seconds === undefined ? "" : String(override.for_seconds),
      placeholder: String(rule.for_seconds) });
    const oThresholds = {};
    const oFields = names.map((n) => {
      const given = (override.thresholds || {})[n];
      oThresholds[n] = numberInput(`rule-override-${n}`, given, String(rule.thresholds[n]), `${n} on ${where}`);
      return el("div", { className: "field" }, el("label", { for: oThresholds[n].id }, n), oThresholds[n]);
    });
    const hasOverride = Object.keys(override).length > 0;
    const clearButton = el("button", { type: "button", className: "ghost", id: "rule-override-clear",
      disabled: !hasOverride, onclick: async () => {
        error.hidden = true;
        try {
          await patch(rule, { cluster_overrides: { [clusterId]: null } }, `Override of ${rule.id} on ${where} cleared`);
          close();
        } catch (err) {
          fail(err);
        }
      } }, "Clear override");
    const overrideForm = el("form", { className: "silence-form", id: "rule-override-form", novalidate: true,
      "aria-labelledby": "rule-override-title" },
      el("h5", { id: "rule-override-title", className: "editor-title" },
        `Override on cluster ${where}`, el("span", { className: "muted small" }, " (blank: as on every cluster)")),
      el("div", { className: "field" }, el("label", { for: oEnabled.id }, "Enabled"), oEnabled),
      el("div", { className: "field" }, el("label", { for: oFor.id }, "For (s)"), oFor),
      oFields,
      el("button", { type: "submit", className: "primary", id: "rule-override-save" }, "Save override"),
      clearButton);
    overrideForm.addEventListener("submit", async (event) => {
      event.preventDefault();
      error.hidden = true;
      const value = {};
      if (oEnabled.value) value.enabled = oEnabled.value === "true";
      const seconds = wholeNumber(oFor);
      if (Number.isNaN(seconds) || seconds < 0) {
        fail(new Error("For (s) must be a whole number of seconds"));
        return;
      }
      if (seconds !== undefined) value.for_seconds = seconds;
      const thresholds = {};
      for (const n of names) {
        const v = thresholdValue(oThresholds[n]);
        if (Number.isNaN(v)) {
          fail(new Error(`${n} must be a number >= 0`));
          return;
        }
        if (v !== undefined) thresholds[n] = v;
      }
      if (Object.keys(thresholds).length) value.thresholds = thresholds;
      // The API replaces the cluster's whole override; an empty one is no override at all.
      const body = { cluster_overrides: { [clusterId]: Object.keys(value).length ? value : null } };
      try {
        await patch(rule, body, `Override of ${rule.id} on ${where} saved`);
        close();
      } catch (err) {
        fail(err);
      }
    });

    box.append(
      el("div", { className: "editor-head" },
        el("h4", { id: "rule-editor-title", className: "editor-title" }, `Rule ${rule.id}`,
          el("span", { className: "muted small" }, " " + rule.title)),
        el("button", { type: "button", className: "ghost", id: "rule-editor-close", onclick: () => close() }, "Close")),
      thresholdsForm, overrideForm, error);
    box.dataset.rule = rule.id;
    box.scrollIntoView({ block: "nearest" });
    (names.length ? globals[names[0]] : oEnabled).focus();
  }

  return { node: box, open, close, openRule: () => (box.hidden ? null : box.dataset.rule) };
}

export function mountIn(id, node) {
  clear($(id)).appendChild(node);
}
