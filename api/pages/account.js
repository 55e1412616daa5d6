// The pages an emailed link opens when no client app is configured (APP_URL unset): they read
// the link's token (or the id of the record the mail is about), call the API, and say what
// happened. Text is only ever set as text.
"use strict";

(function () {
  const form = document.querySelector("form[data-page]");
  const result = document.getElementById("result");
  const params = new URLSearchParams(window.location.search);
  const token = params.get("token") || "";
  const id = params.get("id") || "";
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
    const init = body === undefined
      ? { headers }
      : { method: "POST", headers, body: JSON.stringify(body) };
    const response = await fetch(path, init);
    if (response.ok && body === undefined && !(response.headers.get("content-type") || "").includes("json")) {
      return response.blob();
    }
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

  function signIn() {
    return call("/api/v1/auth/login", {
      email: document.getElementById("email").value,
      password: document.getElementById("password").value,
    });
  }

  function show(elementId, text) {
    document.getElementById(elementId).textContent = text;
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
      const session = await signIn();
      const accepted = await call("/api/v1/invitations/accept", { token }, session.access_token);
      const who = accepted.practitioner_name || "your practitioner";
      return "Linked: " + who + " can now share your session summaries with you.";
    },
    "mission-draft": async () => {
      const session = await signIn();
      const draft = await call("/api/v1/missions/drafts/" + encodeURIComponent(id), undefined, session.access_token);
      const q = draft.questionnaire;
      show("draft-event", q.event_name + ", " + q.event_date);
      show("draft-status", "Status: " + draft.status + (draft.error ? ". " + draft.error : ""));
      const weeks = document.getElementById("draft-weeks");
      weeks.replaceChildren();
      for (const week of (draft.draft && draft.draft.weeks) || []) {
        const minutes = week.sessions.reduce((sum, s) => sum + s.duration_minutes, 0);
        const item = document.createElement("li");
        item.textContent = "Week of " + week.week_start + ": " + week.focus + " (" +
          week.sessions.length + " sessions, " + minutes + " minutes)";
        weeks.append(item);
      }
      show("draft-notes", (draft.draft && draft.draft.notes) || "");
      document.getElementById("draft").hidden = false;
      return draft.status === "ready"
        ? "The plan is ready: confirm it (or edit it) in your app."
        : "No plan to show yet.";
    },
    "data-export": async () => {
      const session = await signIn();
      const zip = await call("/api/v1/users/me/data-exports/" + encodeURIComponent(id) + "/download", undefined, session.access_token);
      const link = document.getElementById("download");
      link.href = URL.createObjectURL(zip);
      link.textContent = "Save tend-data-export.zip (" + Math.max(1, Math.round(zip.size / 1024)) + " KB)";
      link.hidden = false;
      link.click();
      return "Your download has started.";
    },
  };

  const needs = form.dataset.needs || "token";
  if (!(needs === "id" ? id : token)) {
    say("This page needs the link from your email: its " + needs + " is missing.", false);
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
