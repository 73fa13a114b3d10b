// Sign-in page: POST /api/auth/login. The session cookie is HttpOnly; nothing is stored here.
"use strict";
(function () {
  const form = EM.$("login-form");
  const error = EM.$("login-error");
  const password = EM.$("password");
  EM.$("toggle-password").addEventListener("click", (event) => {
    const show = password.type === "password";
    password.type = show ? "text" : "password";
    event.currentTarget.textContent = show ? "Hide" : "Show";
  });
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const username = EM.$("username").value.trim();
    if (!username || !password.value) {
      error.textContent = "Enter your username and password.";
      error.hidden = false;
      return;
    }
    EM.$("login-submit").disabled = true;
    try {
      const result = await EM.api("POST", "/api/auth/login", { username, password: password.value }, { noRedirect: true });
      if (result.must_change_password) {
        const query = new URLSearchParams({ username: result.username || username, forced: "1" });
        window.location.assign("/change-password?" + query.toString());
        return;
      }
      window.location.assign("/");
    } catch (err) {
      error.textContent = err.message;
      error.hidden = false;
      EM.$("login-submit").disabled = false;
    }
  });
})();
