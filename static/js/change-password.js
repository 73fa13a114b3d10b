// Change-password page: the forced first-login step and voluntary changes.
"use strict";
(function () {
  const form = EM.$("change-form");
  const error = EM.$("change-error");
  const ok = EM.$("change-ok");
  const forced = form.dataset.forced === "1";
  const minLength = parseInt(form.dataset.minLength, 10) || 8;
  function fail(message) {
    error.textContent = message;
    error.hidden = false;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    error.hidden = true;
    const username = EM.$("cp-username").value.trim();
    const oldPassword = EM.$("cp-old").value;
    const newPassword = EM.$("cp-new").value;
    if (!username || !oldPassword) return fail("Enter the username and the current password.");
    if ([...newPassword].length < minLength) return fail("The new password must have at least " + minLength + " characters.");
    if (newPassword !== EM.$("cp-confirm").value) return fail("The new passwords do not match.");
    if (newPassword === oldPassword) return fail("The new password must differ from the current one.");
    EM.$("change-submit").disabled = true;
    try {
      await EM.api("POST", "/api/auth/change-password",
        { username, old_password: oldPassword, new_password: newPassword }, { noRedirect: true });
      ok.textContent = "Password changed. Sign in with the new password.";
      ok.hidden = false;
      setTimeout(() => window.location.assign("/login"), 1000);
    } catch (err) {
      fail(err.message);
      EM.$("change-submit").disabled = false;
    }
  });
  if (forced) EM.$("cp-old").focus();
})();
