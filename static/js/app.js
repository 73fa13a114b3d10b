// Dashboard shell: view switch (Monitor / KV Tree / Ops), theme toggle, logout.
"use strict";
(function () {
  const { $, api } = EM;
  const boot = EM.jsonData("boot-data");
  const views = { monitor: Monitor, kv: typeof KV !== "undefined" ? KV : null, ops: typeof Ops !== "undefined" ? Ops : null };
  const paths = { monitor: "/", kv: "/kv", ops: "/ops" };
  let current = null;

  function show(view) {
    if (!views[view] || (view === "ops" && !boot.ops_enabled)) view = "monitor";
    current = view;
    for (const name of Object.keys(paths)) {
      const section = $(name + "-view");
      if (section) section.hidden = name !== view;
      const button = $("view-" + name);
      if (button) button.classList.toggle("active", name === view);
    }
    // Range, refresh and panel settings only mean something on the monitor view.
    document.querySelectorAll(".monitor-only").forEach((n) => { n.hidden = view !== "monitor"; });
    if (window.location.pathname !== paths[view]) history.replaceState(null, "", paths[view]);
    views[view].activate();
  }

  function themeButton() {
    $("theme-toggle").textContent = EM.theme() === "dark" ? "☾" : "☀";
  }

  $("user-label").textContent = boot.username;
  document.querySelectorAll(".view-switch button").forEach((b) => b.addEventListener("click", () => show(b.dataset.view)));
  $("theme-toggle").addEventListener("click", () => {
    EM.setTheme(EM.theme() === "dark" ? "light" : "dark");
    themeButton();
    Monitor.themeChanged();
    if (views.kv) views.kv.themeChanged();
  });
  $("logout-btn").addEventListener("click", async () => {
    try {
      await api("POST", "/api/auth/logout", undefined, { noRedirect: true });
    } catch (err) {
      /* an already expired session is logged out anyway */
    }
    window.location.assign("/login");
  });
  themeButton();
  show(boot.view);
  Monitor.init({
    onMembers: (members) => {
      if (views.ops) views.ops.membersChanged(members);
    },
  });
  Health.start();
  // Every control is wired from here on (browser tests wait for this before clicking).
  document.documentElement.dataset.ready = "true";
})();
