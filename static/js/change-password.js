// Change-password page: the forced first-login step and voluntary changes.
import { $, api } from "./common.js";

const form = $("change-form");
const error = $("change-error");
const ok = $("change-ok");
const forced = form.dataset.forced === "1";
const minLength = parseInt(form.dataset.minLength, 10) || 8;
function fail(message) {
  error.textContent = message;
  error.hidden = false;
}
form.addEventListener("submit", async (event) => {
  event.preventDefault();
  error.hidden = true;
  const username = $("cp-username").value.trim();
  const oldPassword = $("cp-old").value;
  const newPassword = $("cp-new").value;
  if (!username || !oldPassword) return fail("Enter the username and the current password.");
  if ([...newPassword].length < minLength) return fail("The new password must have at least " + minLength + " characters.");
  if (newPassword !== $("cp-confirm").value) return fail("The new passwords do not match.");
  if (newPassword === oldPassword) return fail("The new password must differ from the current one.");
  $("change-submit").disabled = true;
  try {
    await api("POST", "/api/auth/change-password",
      { username, old_password: oldPassword, new_password: newPassword }, { noRedirect: true });
    ok.textContent = "Password changed. Sign in with the new password.";
    ok.hidden = false;
    setTimeout(() => window.location.assign("/login"), 1000);
  } catch (err) {
    fail(err.message);
    $("change-submit").disabled = false;
  }
});
if (forced) $("cp-old").focus();
// The handler is attached: the button (disabled in the page until now) may submit.
$("change-submit").disabled = false;
document.documentElement.dataset.ready = "true";
