// Sign-in page: POST /api/auth/login. The session cookie is HttpOnly; nothing is stored here.
import { $, api } from "./common.js";

const form = $("login-form");
const error = $("login-error");
const password = $("password");
$("toggle-password").addEventListener("click", (event) => {
  const show = password.type === "password";
  password.type = show ? "text" : "password";
  event.currentTarget.textContent = show ? "Hide" : "Show";
});
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const username = $("username").value.trim();
  if (!username || !password.value) {
    error.textContent = "Enter your username and password.";
    error.hidden = false;
    return;
  }
  $("login-submit").disabled = true;
  try {
    const result = await api("POST", "/api/auth/login", { username, password: password.value }, { noRedirect: true });
    if (result.must_change_password) {
      const query = new URLSearchParams({ username: result.username || username, forced: "1" });
      window.location.assign("/change-password?" + query.toString());
      return;
    }
    window.location.assign("/");
  } catch (err) {
    error.textContent = err.message;
    error.hidden = false;
    $("login-submit").disabled = false;
  }
});
// The handler is attached: the button (disabled in the page until now) may submit.
$("login-submit").disabled = false;
document.documentElement.dataset.ready = "true";
