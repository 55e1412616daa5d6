// The admin dashboard: a client of /api/v1/admin. The access token lives in this tab's
// sessionStorage and travels in the Authorization header only (never in a URL, never in a
// cookie a foreign page could ride on). Everything shown is set as text, never as HTML.
"use strict";

(function () {
  const REFRESH_MS = 3000;
  const $ = (id) => document.getElementById(id);
  const view = $("view");
  let current = null;
  let timer = null;
  let jobFilters = { queue: "", kind: "", state: "" };

  // --- DOM helpers: elements with text, never markup ---
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (key === "onclick") node.addEventListener("click", value);
      else if (key === "class") node.className = value;
      else node.setAttribute(key, value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function table(headers, rows) {
    return el("table", {}, el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows));
  }
  function stateBadge(state) {
    return el("span", { class: "state state-" + state, "data-state": state }, state);
  }
  function when(iso) {
    return iso ? new Date(iso).toLocaleString() : "";
  }
  function say(text, error) {
    $("message").textContent = text || "";
    $("message").className = error ? "error" : "";
  }

  // --- the API ---
  function token() {
    return sessionStorage.getItem("tend-admin-token");
  }
  async function api(method, path, body) {
    const headers = { authorization: "Bearer " + token() };
    if (body !== undefined) headers["content-type"] = "application/json";
    const response = await fetch("/api/v1" + path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) {
      signOut("Your sign-in has ended; sign in again.");
      throw new Error("signed out");
    }
    const text = await response.text();
    const answer = text ? JSON.parse(text) : null;
    if (!response.ok) {
      throw new Error((answer && answer.detail) || "The request failed (" + response.status + ").");
    }
    return answer;
  }
  async function act(method, path, done) {
    try {
      await api(method, path);
      say("Done.");
      if (done) await done();
    } catch (error) {
      say(error.message, true);
    }
  }

  // A queue's dead jobs come back through a job of their own: follow it.
  async function retryDead(queue) {
    try {
      const started = await api("POST", "/admin/queues/" + queue + "/retry-dead");
      say("Retrying the dead jobs of " + queue + ".");
      await showJob(started.job_id);
    } catch (error) {
      say(error.message, true);
    }
  }

  // --- views ---
  const views = {
    async queues() {
      const queues = await api("GET", "/admin/queues");
      const rows = queues.map((q) =>
        el("tr", { "data-queue": q.name },
          el("td", {}, q.name), el("td", {}, q.paused ? "paused" : "running"),
          el("td", {}, q.due), el("td", {}, q.scheduled), el("td", {}, q.running),
          el("td", {}, q.dead), el("td", {}, q.held), el("td", {}, q.done_last_hour),
          el("td", {}, [q.throughput_per_minute.last_1m, q.throughput_per_minute.last_5m,
            q.throughput_per_minute.last_15m].map((n) => n.toFixed(1)).join(" / ")),
          el("td", {}, q.oldest_due_age_seconds === null || q.oldest_due_age_seconds === undefined
            ? "" : q.oldest_due_age_seconds.toFixed(1) + " s"),
          el("td", {}, q.run_times ? q.run_times.p50_ms + " / " + q.run_times.p95_ms + " ms" : ""),
          el("td", {}, chart(q.done_per_minute)),
          el("td", {},
            el("button", { class: "quiet", onclick: () => act("POST",
              "/admin/queues/" + q.name + (q.paused ? "/resume" : "/pause"), show) },
              q.paused ? "Resume" : "Pause"),
            " ",
            el("button", { class: "quiet", onclick: () => retryDead(q.name) }, "Retry dead"))));
      return [el("h1", {}, "Queues"),
        table(["Queue", "State", "Due", "Scheduled", "Running", "Dead", "Held", "Done (1 h)",
          "Per minute (1/5/15 min)", "Oldest due", "Run time p50 / p95",
          "Done per minute, last hour", ""], rows)];
    },

    async jobs() {
      const params = new URLSearchParams({ limit: "50" });
      for (const [key, value] of Object.entries(jobFilters)) if (value) params.set(key, value);
      // The queue filter offers the queues the API has, not a list of its own.
      const [page, queues] = await Promise.all([
        api("GET", "/admin/jobs?" + params), api("GET", "/admin/queues")]);
      const select = (name, options) => {
        const node = el("select", { id: "filter-" + name },
          options.map((o) => el("option", { value: o }, o || "any " + name)));
        node.value = jobFilters[name];
        node.addEventListener("change", () => { jobFilters[name] = node.value; show(); });
        return node;
      };
      const kind = el("input", { id: "filter-kind", placeholder: "kind, e.g. send_email" });
      kind.value = jobFilters.kind;
      kind.addEventListener("change", () => { jobFilters.kind = kind.value.trim(); show(); });
      const rows = page.items.map((j) =>
        el("tr", { class: "clickable", "data-job": j.id, onclick: () => showJob(j.id) },
          el("td", {}, stateBadge(j.state)), el("td", {}, j.kind), el("td", {}, j.queue),
          el("td", {}, j.attempts + " / " + j.max_attempts), el("td", {}, when(j.created_at)),
          el("td", { class: "error-text" }, j.last_error || "")));
      return [el("h1", {}, "Jobs"),
        el("div", { class: "filters" },
          select("queue", [""].concat(queues.map((q) => q.name))),
          select("state", ["", "pending", "running", "failed", "held", "dead", "cancelled", "done"]),
          kind),
        table(["State", "Kind", "Queue", "Attempts", "Created", "Last error"], rows),
        page.next_cursor ? el("p", {}, "Newest 50 shown; narrow the filters to see others.") : null];
    },

    async workers() {
      const workers = await api("GET", "/admin/workers");
      const rows = workers.map((w) => el("tr", {},
        el("td", {}, w.name), el("td", {}, w.status), el("td", {}, w.host), el("td", {}, w.pid),
        el("td", {}, w.version),
        el("td", {}, w.queues.map((q) => q.queue + "=" + q.concurrency).join(", ")),
        el("td", {}, w.running_jobs), el("td", {}, when(w.started_at)),
        el("td", {}, when(w.last_heartbeat_at))));
      return [el("h1", {}, "Workers"), table(["Name", "Status", "Host", "PID", "Version",
        "Queues", "Running", "Started", "Last heartbeat"], rows)];
    },

    async users() {
      const search = el("input", { id: "user-search", placeholder: "email contains" });
      search.value = views.userSearch || "";
      search.addEventListener("change", () => { views.userSearch = search.value.trim(); show(); });
      const params = new URLSearchParams({ limit: "50" });
      if (views.userSearch) params.set("email", views.userSearch);
      const page = await api("GET", "/admin/users?" + params);
      const rows = page.items.map((u) => el("tr", {},
        el("td", {}, u.email), el("td", {}, u.display_name || ""), el("td", {}, u.role),
        el("td", {}, u.email_verified ? "yes" : "no"), el("td", {}, u.disabled ? "disabled" : "active"),
        el("td", {}, el("button", { class: u.disabled ? "quiet" : "danger", onclick: async () => {
          try {
            await api("PATCH", "/admin/users/" + u.id, { disabled: !u.disabled });
            say("Done."); await show();
          } catch (error) { say(error.message, true); }
        } }, u.disabled ? "Enable" : "Disable"),
        u.role === "practitioner" ? " " : null,
        u.role === "practitioner" ? el("button", { class: "quiet", "data-budget": u.id,
          onclick: () => showPractice(u.id, u.email) }, "Budget") : null)));
      return [el("h1", {}, "Users"), el("div", { class: "filters" }, search),
        table(["Email", "Name", "Role", "Verified", "State", ""], rows)];
    },

    async audit() {
      const page = await api("GET", "/admin/audit-logs?limit=100");
      const rows = page.items.map((e) => el("tr", {},
        el("td", {}, when(e.at)), el("td", {}, e.action), el("td", {}, e.user_id || ""),
        el("td", {}, e.ip || ""), el("td", {}, e.detail ? JSON.stringify(e.detail) : "")));
      return [el("h1", {}, "Audit log"), table(["When", "Action", "User", "IP", "Detail"], rows)];
    },
  };

  // A small SVG line of jobs finished per minute (60 points), drawn from numbers only.
  function chart(points) {
    const ns = "http://www.w3.org/2000/svg";
    const svg = document.createElementNS(ns, "svg");
    svg.setAttribute("class", "chart");
    svg.setAttribute("width", "180");
    svg.setAttribute("height", "36");
    const max = Math.max(1, ...points);
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("fill", "none");
    line.setAttribute("stroke", "#2d5bd3");
    line.setAttribute("stroke-width", "1.5");
    line.setAttribute("points", points.map((n, i) =>
      (i * 3).toFixed(0) + "," + (34 - (n / max) * 32).toFixed(1)).join(" "));
    svg.append(line);
    return svg;
  }

  // A practice: its month's budget, spending and held work; set the budget, cancel its jobs.
  async function showPractice(id, email) {
    stopRefresh();
    current = "practice";
    const path = "/admin/practices/" + encodeURIComponent(id);
    const again = () => showPractice(id, email);
    try {
      const b = await api("GET", path + "/budget");
      const usd = (n) => n === null || n === undefined ? "no limit" : "$" + n.toFixed(2);
      const amount = el("input", { id: "budget-amount", type: "number", min: "0", step: "0.01",
        placeholder: "US dollars a month" });
      if (b.monthly_budget_usd !== null && b.monthly_budget_usd !== undefined) {
        amount.value = b.monthly_budget_usd;
      }
      const set = async () => {
        const value = amount.value.trim();
        try {
          await api("PUT", path + "/budget",
            { monthly_budget_usd: value === "" ? null : Number(value) });
          say("Budget set."); await again();
        } catch (error) { say(error.message, true); }
      };
      view.replaceChildren(
        el("h1", {}, "Practice " + email),
        table(["Month", "Budget", "Spent", "Remaining", "Paid calls", "Held jobs"], [
          el("tr", { id: "budget" },
            el("td", {}, b.month_start.slice(0, 7)),
            el("td", { id: "budget-limit" }, usd(b.monthly_budget_usd) + " (" + b.source + ")"),
            el("td", { id: "budget-spent" }, usd(b.spent_usd)),
            el("td", {}, usd(b.remaining_usd)), el("td", {}, b.paid_calls),
            el("td", { id: "budget-held" }, b.held_jobs))]),
        b.exceeded ? el("p", { class: "error-text" },
          "The budget is spent: paid work waits until it is raised or the month ends.") : null,
        el("div", { class: "filters" }, amount,
          el("button", { id: "budget-set", onclick: set }, "Set budget"), " ",
          el("button", { class: "quiet", onclick: () => act("DELETE", path + "/budget", again) },
            "Use the default"), " ",
          el("button", { class: "danger", onclick: () => act("POST", path + "/cancel-jobs", again) },
            "Cancel all its jobs"), " ",
          el("button", { class: "quiet", onclick: () => select("users") }, "Back to users")));
    } catch (error) {
      say(error.message, true);
    }
  }

  async function showJob(id) {
    stopRefresh();
    current = "job";
    try {
      const detail = await api("GET", "/admin/jobs/" + encodeURIComponent(id));
      const j = detail.job;
      const attempts = detail.attempts.map((a) => el("tr", {},
        el("td", {}, a.attempt), el("td", {}, a.outcome), el("td", {}, a.worker || ""),
        el("td", {}, when(a.started_at)), el("td", {}, when(a.finished_at)),
        el("td", { class: "error-text" }, a.error || "")));
      const again = () => showJob(id);
      view.replaceChildren(...[
        el("h1", {}, "Job " + j.kind),
        el("p", {}, stateBadge(j.state), " ", j.id, " on ", j.queue,
          ", attempts ", j.attempts, " / ", j.max_attempts, j.killed ? " (being stopped)" : "",
          j.held_reason ? " (held: " + j.held_reason + ")" : "",
          j.cancelled_by ? " (cancelled by " + j.cancelled_by + ")" : ""),
        el("p", {}, "Request ", j.request_id || "none", "; started by ", j.created_by || "the system",
          "; cost $", detail.cost_usd.toFixed(4),
          detail.subject ? "; for " + detail.subject.kind + " " + detail.subject.id : ""),
        el("p", { class: "error-text", id: "job-error" }, j.last_error || ""),
        el("div", {},
          el("button", { id: "retry", onclick: () => act("POST", "/admin/jobs/" + id + "/retry", again) }, "Retry"),
          " ",
          el("button", { id: "kill", class: "danger", onclick: () => act("POST", "/admin/jobs/" + id + "/kill", again) }, "Kill"),
          " ",
          el("button", { id: "cancel", class: "danger", onclick: () => act("POST", "/admin/jobs/" + id + "/cancel", again) }, "Cancel"),
          " ",
          el("button", { class: "quiet", onclick: () => act("DELETE", "/admin/jobs/" + id, () => select("jobs")) }, "Delete"),
          " ",
          el("button", { class: "quiet", onclick: () => select("jobs") }, "Back to jobs")),
        detail.report ? el("h2", {}, "Report") : null,
        detail.report ? table(["What", "Items", "Bytes"], detail.report.categories.map((c) =>
          el("tr", {}, el("td", {}, c.category), el("td", {}, c.items),
            el("td", {}, c.bytes == null ? "" : c.bytes)))) : null,
        el("h2", {}, "Attempts"),
        table(["#", "Outcome", "Worker", "Started", "Finished", "Error"], attempts),
        el("h2", {}, "Payload (ids only)"),
        el("pre", {}, JSON.stringify(detail.payload, null, 2))].filter(Boolean));
      timer = setTimeout(() => { if (current === "job") showJob(id); }, REFRESH_MS);
    } catch (error) {
      say(error.message, true);
    }
  }

  async function show() {
    stopRefresh();
    const name = current;
    try {
      const content = await views[name]();
      if (current !== name) return;
      view.replaceChildren(...content.filter(Boolean));
    } catch (error) {
      say(error.message, true);
    }
    // Lists refresh themselves; forms (users) wait for the admin.
    if (current === name && name !== "users") timer = setTimeout(show, REFRESH_MS);
  }

  function stopRefresh() {
    if (timer) clearTimeout(timer);
    timer = null;
  }

  function select(name) {
    current = name;
    for (const button of document.querySelectorAll("nav button[data-view]")) {
      button.classList.toggle("active", button.dataset.view === name);
    }
    say("");
    show();
  }

  function signOut(text) {
    stopRefresh();
    sessionStorage.removeItem("tend-admin-token");
    current = null;
    view.replaceChildren();
    $("nav").hidden = true;
    $("sign-in").hidden = false;
    say(text || "");
  }

  function signedIn() {
    $("sign-in").hidden = true;
    $("nav").hidden = false;
    select("queues");
  }

  $("sign-in").addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const response = await fetch("/api/v1/auth/login", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ email: $("email").value, password: $("password").value }),
      });
      const answer = await response.json();
      if (!response.ok) throw new Error(answer.detail || "Sign-in failed.");
      if (answer.user.role !== "admin") throw new Error("This account is not an admin.");
      sessionStorage.setItem("tend-admin-token", answer.access_token);
      $("password").value = "";
      signedIn();
    } catch (error) {
      say(error.message, true);
    }
  });
  for (const button of document.querySelectorAll("nav button[data-view]")) {
    button.addEventListener("click", () => select(button.dataset.view));
  }
  $("sign-out").addEventListener("click", () => signOut("Signed out."));
  if (token()) signedIn();
})();
