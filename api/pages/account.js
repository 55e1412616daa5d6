// The pages an emailed link opens when no client app is configured (APP_URL unset): they read
// the link's token, call the API, and say what happened. Text is only ever set as text.
"use strict";

(function () {
  const form = document.querySelector("form[data-page]");
  const result = document.getElementById("result");
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token") || "";
  // The token stays out of the address bar (and out of history) once read.
  if (token) {
    window.history.replaceState(null, "", window.location.pathname);
  }

  function say(text, ok) {
    result.textContent = text;
    result.className = ok ? "ok" : "error";
  }

  async function call(path, body, accessToken) {
    const headers = { "content-type": "application/json" };
    if (accessToken) {
      headers.authorization = "Bearer " + accessToken;
    }
    const response = await fetch(path, { method: "POST", headers, body: JSON.stringify(body) });
    let answer = {};
    try {
      answer = await response.json();
    } catch (_) {
      answer = {};
    }
    if (!response.ok) {
      const fields = (answer.errors || []).map((e) => e.field + " " + e.message).join("; ");
      throw new Error(fields || answer.detail || "The request failed (" + response.status + ").");
    }
    return answer;
  }

  const pages = {
    "verify-email": async () => {
      await call("/api/v1/auth/verify-email", { token });
      return "Your email address is confirmed. You can close this page and sign in.";
    },
    "reset-password": async () => {
      const password = document.getElementById("new-password").value;
      if (password !== document.getElementById("repeat-password").value) {
        throw new Error("The two passwords differ.");
      }
      await call("/api/v1/auth/reset-password", { token, new_password: password });
      return "Your password is changed, and every device was signed out. Sign in with the new one.";
    },
    "accept-invitation": async () => {
      const signIn = await call("/api/v1/auth/login", {
        email: document.getElementById("email").value,
        password: document.getElementById("password").value,
      });
      const accepted = await call("/api/v1/invitations/accept", { token }, signIn.access_token);
      const who = accepted.practitioner_name || "your practitioner";
      return "Linked: " + who + " can now share your session summaries with you.";
    },
  };

  if (!token) {
    say("This page needs the link from your email: its token is missing.", false);
    form.querySelector("button").disabled = true;
    return;
  }
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      say(await pages[form.dataset.page](), true);
      form.hidden = true;
    } catch (error) {
      say(error.message, false);
      button.disabled = false;
    }
  });
})();
