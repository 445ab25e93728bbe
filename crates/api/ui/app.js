// Tether's web console: a single page over the REST API, with the same token auth.
// Views (by URL hash): #/queues, #/queue/<name> (settings, pause, throughput, dead jobs),
// #/jobs?status=&type=&queue=&priority=&group=&marker= (select many, act on them), #/dead,
// #/job/<id>, #/search?q=, #/schedules.
"use strict";

const FINAL = new Set(["success", "failure", "cancelled"]);
let stopView = () => {};

// ---- API access ----------------------------------------------------------------

function token() {
  return localStorage.getItem("tether-token") || "";
}

function headers(extra = {}) {
  const h = { Accept: "application/json", ...extra };
  if (token()) h.Authorization = "Bearer " + token();
  return h;
}

class ApiError extends Error {
  constructor(status, body) {
    super(body && body.message ? body.message : "HTTP " + status);
    this.status = status;
    this.code = body && body.code;
  }
}

// Each route() starts a new view; a read that a previous view started and that answers
// after that is dropped (Stale), so an old view never draws over the new one.
let generation = 0;

class Stale extends Error {
  constructor() { super("a previous view's read"); this.stale = true; }
}

async function api(method, path, body) {
  const mine = generation;
  const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
  if (body) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  const text = await response.text();
  if (method === "GET" && mine !== generation) throw new Stale();
  const json = text ? JSON.parse(text) : null;
  if (!response.ok) throw new ApiError(response.status, json);
  return json;
}

// Server-Sent Events over fetch (EventSource cannot send an Authorization header).
// Calls onEvent(name, data) per event; resolves when the stream ends or `signal` aborts.
async function events(path, onEvent, signal) {
  const response = await fetch(path, { headers: headers({ Accept: "text/event-stream" }), signal });
  if (!response.ok) throw new ApiError(response.status, await response.json().catch(() => null));
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += decoder.decode(value, { stream: true });
    let cut;
    while ((cut = buffer.indexOf("\n\n")) >= 0) {
      const block = buffer.slice(0, cut);
      buffer = buffer.slice(cut + 2);
      let name = "message";
      const data = [];
      for (const line of block.split("\n")) {
        if (line.startsWith("event:")) name = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
      }
      if (data.length) onEvent(name, JSON.parse(data.join("\n")));
    }
  }
}

// ---- DOM helpers (text only: nothing from the API is parsed as HTML) -------------

function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children.flat()) {
    if (child === null || child === undefined) continue;
    node.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return node;
}

function statusBadge(status, id) {
  return el("span", { class: "status status-" + status, id }, status);
}

function bar(progress, small, id) {
  const fill = el("span");
  fill.style.width = progress + "%"; // a style property, not an inline style attribute (CSP)
  return el("div", { class: small ? "bar small" : "bar", id, role: "progressbar",
    "aria-valuenow": progress, "aria-valuemin": 0, "aria-valuemax": 100 }, fill);
}

function when(iso) {
  return iso ? new Date(iso).toLocaleString() : "—";
}

function notice(text) {
  const n = document.getElementById("notice");
  n.textContent = text;
  n.classList.add("shown");
  clearTimeout(notice.timer);
  notice.timer = setTimeout(() => n.classList.remove("shown"), 4000);
}

function show(...nodes) {
  document.getElementById("view").replaceChildren(...nodes);
}

function showError(e) {
  if (e.stale) return;
  if (e.status === 401) {
    show(el("h1", {}, "Sign in"), el("p", { class: "empty", id: "need-token" },
      "This API needs a token: paste it in the field at the top right."));
  } else {
    show(el("p", { class: "empty", id: "error" }, "Error: " + e.message));
  }
}

// Re-runs `load` every `ms` until the view changes.
function every(ms, load) {
  let stopped = false;
  const tick = async () => {
    if (stopped) return;
    try { await load(); } catch (e) { showError(e); }
    if (!stopped) setTimeout(tick, ms);
  };
  tick();
  return () => { stopped = true; };
}


// ---- Acting on many jobs ---------------------------------------------------------

const VERB = { cancel: "Cancel", retry: "Retry", delete: "Delete" };
const DONE = { cancel: "Cancelled", retry: "Re-queued", delete: "Deleted" };

function count(n) {
  return n.toLocaleString("en-US");
}

// A modal question; resolves true when confirmed. The text states what will happen.
function confirmDialog(text, yesLabel, danger) {
  return new Promise((resolve) => {
    const close = (answer) => { modal.remove(); resolve(answer); };
    const yes = el("button", { id: "confirm-yes", class: danger ? "danger" : "", onclick: () => close(true) }, yesLabel);
    const no = el("button", { id: "confirm-no", class: "secondary", onclick: () => close(false) }, "Back");
    const modal = el("div", { class: "modal", id: "confirm", role: "dialog", "aria-modal": "true" },
      el("div", { class: "box" }, el("p", { id: "confirm-text" }, text), el("div", { class: "actions" }, no, yes)));
    document.body.append(modal);
    yes.focus();
  });
}

// Runs a bulk request (or each of a list of them) to its end: each answer's `next` is
// the cursor of the following request (the API bounds one request's work). With
// dryRun, counts only (at most `maxRequests` requests: a count past that is "more than").
async function bulkLoop(path, body, dryRun, maxRequests = 50) {
  const total = { matched: 0, acted: 0, skipped: 0, ignored: 0, not_found: 0, more: false };
  let n = 0;
  for (const one of Array.isArray(body) ? body : [body]) {
    let cursor = null;
    for (; ; n++) {
      if (n >= maxRequests) { total.more = true; return total; }
      const answer = await api("POST", path, { ...one, dry_run: dryRun, ...(cursor ? { cursor } : {}) });
      for (const k of ["matched", "acted", "skipped", "ignored", "not_found"]) total[k] += answer[k];
      cursor = answer.next;
      if (!cursor) { n++; break; }
    }
  }
  return total;
}

// The ticked jobs as bulk requests, one per queue (naming the queue spares the API a
// search of every queue for each id).
function idBodies(action, ids) {
  const byQueue = new Map();
  for (const [id, queue] of ids) {
    if (!byQueue.has(queue)) byQueue.set(queue, []);
    byQueue.get(queue).push(id);
  }
  return [...byQueue].map(([queue, list]) => ({ action, ids: list, queue }));
}

// Counts, asks "<Verb> N jobs?", and acts. `kind` qualifies the jobs ("dead "), `where`
// says where they are (" in queue x").
async function confirmAndRun(path, body, action, kind = "", where = "") {
  let counted;
  try { counted = await bulkLoop(path, body, true); } catch (e) { notice(e.message); return false; }
  if (counted.matched === 0) {
    notice("No " + kind + "jobs to " + action + where);
    return false;
  }
  const n = (counted.more ? "more than " : "") + count(counted.matched);
  const question = VERB[action] + " " + n + " " + kind + (counted.matched === 1 ? "job" : "jobs") + where + "?";
  if (!await confirmDialog(question, VERB[action] + " " + n, action !== "retry")) return false;
  try {
    const done = await bulkLoop(path, body, false, 10000);
    notice(DONE[action] + " " + count(done.acted) + (done.skipped ? " (" + count(done.skipped) + " skipped: changed meanwhile or not cancelable)" : ""));
  } catch (e) { notice(e.message); }
  return true;
}

// A sparkline of jobs created (grey) and finished (blue) per minute, the last hour.
function sparkline(chart) {
  const ns = "http://www.w3.org/2000/svg";
  const w = 120, h = 26;
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 " + w + " " + h);
  svg.setAttribute("width", w);
  svg.setAttribute("height", h);
  svg.setAttribute("class", "spark");
  svg.setAttribute("preserveAspectRatio", "none");
  const max = Math.max(1, ...chart.created, ...chart.finished);
  const line = (values, cls) => {
    const step = w / Math.max(1, values.length - 1);
    const points = values.map((v, i) => (i * step).toFixed(1) + "," + (h - 1 - (v / max) * (h - 2)).toFixed(1));
    const pl = document.createElementNS(ns, "polyline");
    pl.setAttribute("points", points.join(" "));
    pl.setAttribute("class", cls);
    svg.append(pl);
  };
  line(chart.created, "created");
  line(chart.finished, "finished");
  const sum = (a) => a.reduce((x, y) => x + y, 0);
  const title = document.createElementNS(ns, "title");
  title.textContent = "last hour: " + count(sum(chart.created)) + " created, " + count(sum(chart.finished)) + " finished";
  svg.append(title);
  svg.dataset.created = sum(chart.created);
  svg.dataset.finished = sum(chart.finished);
  return svg;
}

const charts = new Map(); // queue -> { at, svg }: a chart is read at most every 30 s

async function chartOf(queue) {
  const cached = charts.get(queue);
  if (cached && performance.now() - cached.at < 30000) return cached.svg;
  const chart = await api("GET", "/v2/queues/" + encodeURIComponent(queue) + "/throughput");
  const svg = sparkline(chart);
  charts.set(queue, { at: performance.now(), svg });
  return svg;
}

// Retry all / purge all of a queue's dead jobs (the caller's; every owner's for admins).
function deadButtons(queue, after) {
  const path = (what) => "/v2/queues/" + encodeURIComponent(queue) + "/dead/" + what;
  const button = (what, action, label, cls) => el("button", { class: "small " + cls, "data-queue": queue,
    id: "dead-" + what + "-" + queue, onclick: async (ev) => {
      ev.target.disabled = true;
      if (await confirmAndRun(path(what), {}, action, "dead ", " in " + queue)) after();
      ev.target.disabled = false;
    } }, label);
  return [button("retry", "retry", "Retry all dead", ""), " ", button("purge", "delete", "Purge all dead", "danger")];
}

// ---- Views ---------------------------------------------------------------------

function queuesView() {
  const previous = new Map();
  return every(2000, async () => {
    let answer;
    try {
      answer = await api("GET", "/v2/queues");
    } catch (e) {
      if (e.status === 403) {
        show(el("h1", {}, "Queues"), el("p", { class: "empty" }, "Queue counts need an admin token."));
        return;
      }
      throw e;
    }
    const now = performance.now();
    const rows = answer.queues.map((q) => {
      const finished = q.success + q.failure + q.cancelled;
      const before = previous.get(q.queue);
      previous.set(q.queue, { finished, at: now });
      // Outcomes per second since the previous refresh (expiry can make the delta negative).
      const rate = before ? Math.max(0, (finished - before.finished) / ((now - before.at) / 1000)) : null;
      const cell = (v, status) => el("td", { class: "num" },
        el("a", { href: "#/jobs?queue=" + encodeURIComponent(q.queue) + (status ? "&status=" + status : "") }, v));
      // Limits in force, as `tether queue show` names them.
      const limits = ["concurrency", "rate", "group_concurrency", "group_rate"]
        .filter((k) => q[k] !== null && q[k] !== undefined).map((k) => k + " " + q[k]);
      if (q.paused_types && q.paused_types.length) limits.push("paused types: " + q.paused_types.join(", "));
      const toggle = el("button", { class: q.paused ? "resume" : "pause", "data-queue": q.queue, onclick: async (ev) => {
        ev.target.disabled = true;
        const action = q.paused ? "resume" : "pause";
        try { await api("POST", "/v2/queues/" + encodeURIComponent(q.queue) + "/" + action); notice(action + "d " + q.queue); }
        catch (e) { notice(e.message); ev.target.disabled = false; }
      } }, q.paused ? "Resume" : "Pause");
      return el("tr", { "data-queue": q.queue, "data-paused": q.paused ? "1" : "0" },
        el("td", {}, el("a", { href: "#/jobs?queue=" + encodeURIComponent(q.queue) }, q.queue),
          q.paused ? el("span", { class: "status status-paused" }, " paused") : null),
        cell(q.pending, "pending"), el("td", { class: "num" }, q.scheduled), cell(q.processing, "processing"),
        cell(q.success, "success"), cell(q.failure, "failure"), cell(q.cancelled, "cancelled"),
        el("td", { class: "num" }, el("a", { href: "#/dead" }, q.dead)),
        el("td", { class: "num", "data-rate": "" }, rate === null ? "…" : rate.toFixed(1)),
        el("td", { class: "chart", "data-chart": q.queue }, charts.has(q.queue) ? charts.get(q.queue).svg : "…"),
        el("td", { class: "limits" }, limits.join("; ") || "—"),
        el("td", {}, toggle, " ", el("a", { class: "settings", href: "#/queue/" + encodeURIComponent(q.queue) }, "Settings")));
    });
    const head = ["queue", "pending", "scheduled", "processing", "success", "failure", "cancelled", "dead", "jobs/s", "last hour", "limits", ""];
    show(el("h1", {}, "Queues"),
      rows.length === 0 ? el("p", { class: "empty" }, "No queues yet: enqueue a job.") :
        el("table", { id: "queues-table" },
          el("thead", {}, el("tr", {}, head.map((h, i) => el("th", { class: i ? "num" : "" }, h)))),
          el("tbody", {}, rows)));
    // Each queue's last hour (read at most every 30 s), filled in as it arrives.
    for (const q of answer.queues) {
      chartOf(q.queue).then((svg) => {
        const cell = document.querySelector("td[data-chart='" + CSS.escape(q.queue) + "']");
        if (cell && cell.firstChild !== svg) cell.replaceChildren(svg);
      }).catch(() => {});
    }
  });
}

// One queue: its throughput, its settings (limits, pause and resume of the queue or of
// one job type) and its dead jobs at once.
function queueView(queue) {
  const path = "/v2/queues/" + encodeURIComponent(queue);
  let shown = "";
  // Kept across re-renders: what is typed in it stays.
  const typeField = el("input", { id: "pause-type-name", placeholder: "job type" });
  const field = (name, label, value) => el("label", {}, label,
    el("input", { name, id: "limit-" + name, inputmode: "numeric", placeholder: "none", value: value === null || value === undefined ? "" : String(value) }));
  const load = async () => {
    const [q, chart] = await Promise.all([api("GET", path), api("GET", path + "/throughput")]);
    const text = JSON.stringify([q.paused, q.paused_types, q.concurrency, q.rate, q.group_concurrency, q.group_rate, chart]);
    if (text === shown && document.getElementById("queue-settings")) return;
    shown = text;
    const form = el("form", { id: "queue-settings", class: "settings-form", onsubmit: async (ev) => {
      ev.preventDefault();
      const body = {};
      for (const k of ["concurrency", "rate", "group_concurrency", "group_rate"]) {
        const v = ev.target.elements[k].value.trim();
        body[k] = v === "" ? null : v;
      }
      try { await api("PATCH", path, body); notice("Settings of " + queue + " saved"); shown = ""; await load(); }
      catch (e) { notice(e.message); }
    } },
      field("concurrency", "Concurrency (jobs at once)", q.concurrency),
      field("rate", "Rate (starts per second)", q.rate),
      field("group_concurrency", "Per group: jobs at once", q.group_concurrency),
      field("group_rate", "Per group: starts per second", q.group_rate),
      el("button", { type: "submit", id: "save-settings" }, "Save"));
    const act = (what, body, label) => el("button", { class: what === "pause" ? "danger" : "", id: what + (body.type ? "-type" : "-queue"),
      onclick: async () => {
        try { await api("POST", path + "/" + what, body); notice(label); shown = ""; await load(); }
        catch (e) { notice(e.message); }
      } }, label);
    const typeAct = (what) => el("button", { class: "small", id: what + "-type", onclick: async () => {
      const t = typeField.value.trim();
      if (!t) return;
      try { await api("POST", path + "/" + what, { type: t }); notice(what + "d type " + t); shown = ""; await load(); }
      catch (e) { notice(e.message); }
    } }, what === "pause" ? "Pause type" : "Resume type");
    show(el("h1", {}, "Queue ", queue, " ", q.paused ? el("span", { class: "status status-paused", id: "queue-paused" }, "paused") : null),
      el("h2", {}, "Last hour"), el("div", { id: "queue-chart", class: "big-chart" }, sparkline(chart)),
      el("p", { class: "legend" }, el("span", { class: "created" }, "created"), " and ", el("span", { class: "finished" }, "finished"), " per minute"),
      el("h2", {}, "Flow control"),
      el("div", { class: "actions" }, q.paused ? act("resume", {}, "Resume queue") : act("pause", {}, "Pause queue"),
        typeField, typeAct("pause"), typeAct("resume"),
        el("span", { id: "paused-types" }, q.paused_types.length ? "paused types: " + q.paused_types.join(", ") : "")),
      form,
      el("h2", {}, "Dead jobs"), el("div", { class: "actions" }, deadButtons(queue, () => { shown = ""; })));
  };
  return every(5000, async () => {
    try { await load(); } catch (e) {
      if (e.status === 403) { show(el("h1", {}, "Queue " + queue), el("p", { class: "empty" }, "Queue settings need an admin token.")); return; }
      throw e;
    }
  });
}

// `selection` (optional): { ids: Map of selected ids to their queues, changed() } adds a checkbox per row.
function jobRows(tasks, withRetry, reload, selection) {
  return tasks.map((t) => el("tr", { "data-id": t.id, "data-status": t.status },
    selection ? el("td", {}, el("input", { type: "checkbox", class: "select", "aria-label": "select " + t.id,
      checked: selection.ids.has(t.id), onchange: (ev) => {
        if (ev.target.checked) selection.ids.set(t.id, t.queue); else selection.ids.delete(t.id);
        selection.changed();
      } })) : null,
    el("td", {}, el("a", { href: "#/job/" + t.id }, t.id)),
    el("td", {}, t.name || ""), el("td", {}, t.type), el("td", {}, t.queue), el("td", {}, statusBadge(t.status)),
    el("td", {}, bar(t.progress, true)), el("td", { class: "num" }, t.attempts + "/" + t.max_attempts),
    el("td", {}, when(t.updated_at)),
    withRetry ? el("td", {}, el("button", { class: "retry", onclick: async (ev) => {
      ev.target.disabled = true;
      try { await api("POST", "/v2/tasks/" + t.id + "/retry"); notice("Re-queued " + t.id); reload(); }
      catch (e) { notice(e.message); ev.target.disabled = false; }
    } }, "Retry")) : null));
}

function jobTable(tasks, withRetry, reload, selection) {
  const head = ["id", "name", "type", "queue", "status", "progress", "attempts", "updated"].map((h) => el("th", {}, h));
  if (selection) {
    const all = el("input", { type: "checkbox", id: "select-page", "aria-label": "select this page",
      checked: tasks.length > 0 && tasks.every((t) => selection.ids.has(t.id)), onchange: (ev) => {
        for (const t of tasks) { if (ev.target.checked) selection.ids.set(t.id, t.queue); else selection.ids.delete(t.id); }
        selection.changed(true);
      } });
    head.unshift(el("th", {}, all));
  }
  if (withRetry) head.push(el("th", {}));
  return tasks.length === 0 ? el("p", { class: "empty", id: "no-jobs" }, "No jobs match.") :
    el("table", { id: "jobs-table" }, el("thead", {}, el("tr", {}, head)),
      el("tbody", {}, jobRows(tasks, withRetry, reload, selection)));
}

const FILTERS = ["status", "type", "queue", "priority", "group"];

function jobsView(params) {
  const query = new URLSearchParams();
  for (const k of [...FILTERS, "marker"]) if (params.get(k)) query.set(k, params.get(k));
  query.set("limit", "25");
  // The list's filter as a bulk request's filter.
  const filter = {};
  for (const k of FILTERS) if (params.get(k)) filter[k] = k === "priority" ? Number(params.get(k)) : params.get(k);
  const filters = el("form", { class: "filters", id: "filters", onsubmit: (ev) => {
    ev.preventDefault();
    const f = new URLSearchParams();
    for (const k of FILTERS) { const v = ev.target.elements[k].value.trim(); if (v) f.set(k, v); }
    location.hash = "#/jobs?" + f.toString();
  } },
    el("select", { name: "status", "aria-label": "status" },
      ["", "pending", "processing", "success", "failure", "cancelled"].map((s) =>
        el("option", { value: s, selected: s === (params.get("status") || "") }, s || "any status"))),
    el("input", { name: "type", placeholder: "type", value: params.get("type") || "" }),
    el("input", { name: "queue", placeholder: "queue", value: params.get("queue") || "" }),
    el("select", { name: "priority", "aria-label": "priority" },
      ["", "0", "1", "2", "3", "4", "5", "6", "7", "8", "9"].map((p) =>
        el("option", { value: p, selected: p === (params.get("priority") || "") }, p ? "priority " + p : "any priority"))),
    el("input", { name: "group", placeholder: "group", value: params.get("group") || "" }),
    el("button", { type: "submit" }, "Filter"));
  // Selected ids of this page, or every job matching the filter ("all").
  const selection = { ids: new Map(), all: false, changed: (rerender) => { selection.all = false; renderBar(); if (rerender) { shown = ""; tick(); } } };
  const bulkBar = el("div", { class: "bulk", id: "bulk-bar" });
  let page = { tasks: [] };
  const renderBar = () => {
    const n = selection.ids.size;
    const act = (action) => el("button", { class: action === "retry" ? "" : "danger", id: "bulk-" + action, onclick: async () => {
      const body = selection.all ? { action, filter } : idBodies(action, selection.ids);
      if (await confirmAndRun("/v2/tasks/bulk", body, action)) { selection.ids.clear(); selection.all = false; renderBar(); shown = ""; tick(); }
    } }, VERB[action]);
    const what = selection.all ? el("strong", { id: "selected-count" }, "All jobs matching this filter")
      : el("span", { id: "selected-count" }, n + " selected");
    const all = !selection.all && page.tasks.length > 0 && page.tasks.every((t) => selection.ids.has(t.id))
      ? el("a", { href: "#", id: "select-all-matching", onclick: (ev) => { ev.preventDefault(); selection.all = true; renderBar(); } },
          "Select all jobs matching this filter") : null;
    const clear = el("a", { href: "#", id: "clear-selection", onclick: (ev) => { ev.preventDefault(); selection.ids.clear(); selection.all = false; renderBar(); shown = ""; tick(); } }, "Clear");
    bulkBar.replaceChildren(...(n === 0 && !selection.all ? [el("span", { class: "hint" }, "Select jobs to cancel, retry or delete them.")]
      : [what, all, act("cancel"), act("retry"), act("delete"), clear].filter(Boolean)));
  };
  let shown = "";
  let tick = async () => {};
  const jobsDiv = el("div", { id: "jobs" });
  let pagerDiv = el("div", { class: "pager" });
  const stop = every(3000, tick = async () => {
    page = await api("GET", "/v2/tasks?" + query.toString());
    const pager = el("div", { class: "pager" });
    if (params.get("marker")) {
      const first = new URLSearchParams(query); first.delete("marker"); first.delete("limit");
      pager.append(el("a", { href: "#/jobs?" + first.toString() }, "« First page"));
    }
    if (page.next) {
      const next = new URLSearchParams(query);
      next.set("marker", new URL(page.next, location.href).searchParams.get("marker"));
      next.delete("limit");
      pager.append(el("a", { href: "#/jobs?" + next.toString(), id: "next-page" }, "Next page »"));
    }
    const text = JSON.stringify(page);
    if (text === shown && filters.isConnected) return;
    shown = text;
    if (!filters.isConnected) show(el("h1", {}, "Jobs"), filters, bulkBar, jobsDiv, pagerDiv);
    jobsDiv.replaceChildren(jobTable(page.tasks, false, null, selection));
    pagerDiv.replaceWith(pager);
    pagerDiv = pager;
    renderBar();
  });
  return stop;
}

function deadView() {
  let reload = () => {};
  let shown = "";
  const stop = every(3000, async () => {
    const page = await api("GET", "/v2/tasks?dead=true&limit=100");
    const text = JSON.stringify(page.tasks);
    if (text === shown && document.getElementById("dead")) return;
    shown = text;
    // Each queue with dead jobs shown, with retry all / purge all.
    const queues = [...new Set(page.tasks.map((t) => t.queue))].sort();
    show(el("h1", {}, "Dead jobs"),
      el("p", {}, "Failed for good (a fatal error, or no attempts left). Retry runs one again from the start."),
      queues.length ? el("table", { id: "dead-queues" }, el("tbody", {}, queues.map((q) =>
        el("tr", { "data-queue": q }, el("td", {}, q), el("td", {}, deadButtons(q, () => reload())))))) : null,
      el("div", { id: "dead" }, jobTable(page.tasks, true, () => reload())));
  });
  reload = () => { stop(); stopView = deadView(); };
  return stop;
}

// Jobs found by id, id prefix or name (the newest of each queue are looked at).
function searchView(params) {
  const q = params.get("q") || "";
  document.getElementById("search").value = q;
  return every(5000, async () => {
    const answer = await api("GET", "/v2/search?q=" + encodeURIComponent(q) + "&limit=100");
    show(el("h1", { id: "search-title" }, "Jobs matching “", q, "”"),
      answer.complete ? null : el("p", { class: "hint" }, "Only the newest jobs of each queue were searched."),
      el("div", { id: "search-results" }, jobTable(answer.tasks, false)));
  });
}

function jobView(id) {
  const aborter = new AbortController();
  let stopped = false;
  // The buttons stay in place while progress events re-render the fields around
  // them: a button replaced between mouse-down and mouse-up would lose the click.
  const cancel = el("button", { class: "danger", id: "cancel-button", onclick: async () => {
    cancel.disabled = true;
    try { await api("POST", "/v2/tasks/" + id + "/cancel"); notice("Cancel requested"); refresh(); }
    catch (e) { notice(e.message); cancel.disabled = false; }
  } }, "Cancel");
  const retry = el("button", { id: "retry-button", onclick: async () => {
    retry.disabled = true;
    try { await api("POST", "/v2/tasks/" + id + "/retry"); notice("Re-queued"); follow(); }
    catch (e) { notice(e.message); }
    retry.disabled = false;
  } }, "Retry");
  const details = el("div");
  const payload = el("div");
  const children = el("div", { id: "job-children" });
  const link = (other) => el("a", { href: "#/job/" + other }, other);
  const render = (t) => {
    if (!details.isConnected) show(details, el("div", { class: "actions" }, cancel, retry), children, payload);
    const field = (name, value, fid) => [el("dt", {}, name), el("dd", { id: fid }, value)];
    details.replaceChildren(
      el("h1", {}, t.name || t.type, " ", statusBadge(t.status, "job-status")),
      el("dl", {},
        field("id", t.id), field("type", t.type), field("queue", t.queue),
        t.parent_id ? field("parent", link(t.parent_id), "job-parent") : [],
        t.root_id && t.root_id !== t.id ? field("root", link(t.root_id), "job-root") : [],
        t.subtask_count ? field("children", String(t.subtask_count), "job-subtask-count") : [],
        field("priority", String(t.priority), "job-priority"), field("group", t.group || "—", "job-group"),
        t.start_by ? field("start by", when(t.start_by), "job-start-by") : [],
        field("progress", el("div", {}, bar(t.progress, false, "job-bar"),
          el("span", { id: "job-progress" }, t.progress + "%"), " ", t.progress_message || "")),
        field("phase", t.phase || "—", "job-phase"), field("ETA", when(t.eta), "job-eta"),
        field("attempts", t.attempts + " of " + t.max_attempts, "job-attempts"),
        field("worker", t.worker || "—"), field("created", when(t.created_at)),
        field("started", when(t.started_at)), field("finished", when(t.finished_at)),
        t.cancel_requested && !FINAL.has(t.status) ? field("cancel", "requested") : [],
        t.message ? field("message", t.message, "job-message") : [],
        t.error_code ? field("error code", t.error_code, "job-error-code") : []));
    cancel.hidden = FINAL.has(t.status) || !t.cancelable || t.cancel_requested;
    retry.hidden = !(t.status === "failure" && t.dead);
    const text = JSON.stringify([t.input, t.result]);
    if (payload.dataset.shown !== text) {
      payload.dataset.shown = text;
      payload.replaceChildren(
        el("h2", {}, "Input"), el("pre", { id: "job-input" }, JSON.stringify(t.input, null, 2)),
        t.result !== null && t.result !== undefined ?
          [el("h2", {}, "Result"), el("pre", { id: "job-result" }, JSON.stringify(t.result, null, 2))] : []);
    }
  };
  const refresh = async () => { try { render(await api("GET", "/v2/tasks/" + id)); } catch (e) { showError(e); } };
  // Live: the event stream until the job is final; polling if the stream breaks.
  const follow = async () => {
    while (!stopped) {
      let last = null;
      try {
        await events("/v2/tasks/" + id + "/events", (name, task) => { last = task; render(task); }, aborter.signal);
      } catch (e) {
        if (stopped) return;
        if (e.status) { showError(e); return; }
      }
      if (stopped || (last && FINAL.has(last.status))) return;
      await new Promise((r) => setTimeout(r, 1000));
      await refresh();
    }
  };
  refresh().then(follow);
  // Its children with their live progress (the first 100, in spawn order).
  let kidsShown = "";
  const stopChildren = every(2000, async () => {
    const page = await api("GET", "/v2/tasks?parent=" + id + "&limit=100");
    const text = JSON.stringify(page.tasks);
    if (text === kidsShown) return;
    kidsShown = text;
    children.replaceChildren(...(page.tasks.length === 0 ? [] :
      [el("h2", {}, "Children"), jobTable(page.tasks, false)]));
  });
  return () => { stopped = true; aborter.abort(); stopChildren(); };
}

function schedulesView() {
  let shown = "";
  let load = async () => {};
  // The schedule's own link names its owner when that is not the caller (an admin's
  // view of a tenant's schedule): actions go to that link.
  const act = (s, what, label) => el("button", {
    class: "small", id: "schedule-" + what + "-" + s.name,
    onclick: async (ev) => {
      ev.target.disabled = true;
      try {
        const [path, query] = s.self.split("?");
        const answer = await api("POST", path + "/" + what + (query ? "?" + query : ""));
        notice(what === "trigger" ? "Fired: job " + answer.id : "Schedule " + s.name + " " + what + "d");
        shown = "";
        await load();
      } catch (e) { notice(e.message); ev.target.disabled = false; }
    } }, label);
  const trigger = (s) => s.trigger.cron
    ? "cron " + s.trigger.cron.cron + (s.trigger.cron.tz !== "UTC" ? " (" + s.trigger.cron.tz + ")" : "")
    : "every " + (s.trigger.every.every / 1000) + " s";
  load = async () => {
    const answer = await api("GET", "/v2/schedules");
    // The last job's status, one call per schedule that has fired.
    const rows = await Promise.all(answer.schedules.map(async (s) => {
      let status = null;
      if (s.last_job_id) {
        try { status = (await api("GET", "/v2/tasks/" + s.last_job_id)).status; } catch (e) { status = null; }
      }
      return [s, status];
    }));
    const text = JSON.stringify(rows);
    if (text === shown && document.getElementById("schedules")) return;
    shown = text;
    const table = el("table", { id: "schedules" },
      el("thead", {}, el("tr", {}, ["Name", "Queue", "Type", "When", "Next fire", "Last fire", "Last job", ""]
        .map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map(([s, status]) => el("tr", { id: "schedule-" + s.name },
        el("td", {}, s.name, s.paused ? el("span", { class: "status status-cancelled" }, "paused") : null),
        el("td", {}, s.job.queue), el("td", {}, s.job.job_type), el("td", {}, trigger(s)),
        el("td", { id: "schedule-next-" + s.name }, when(s.next_fire_time)),
        el("td", {}, when(s.last_fire_time)),
        el("td", {}, s.last_job_id
          ? [el("a", { href: "#/job/" + s.last_job_id }, s.last_job_id.slice(0, 8) + "…"), " ",
             status ? statusBadge(status, "schedule-last-status-" + s.name) : "expired"]
          : "—"),
        el("td", {}, s.paused ? act(s, "resume", "Resume") : act(s, "pause", "Pause"), " ",
          act(s, "trigger", "Fire now"))))));
    show(el("h1", {}, "Schedules"),
      el("p", {}, "Jobs fired on a cron pattern or an interval, once per fire time, by whichever worker gets there first."),
      answer.schedules.length ? table : el("p", { class: "empty", id: "schedules" }, "No schedules."));
  };
  return every(3000, load);
}

// ---- Routing -------------------------------------------------------------------

function route() {
  stopView();
  generation++;
  const hash = location.hash.replace(/^#\/?/, "") || "queues";
  const [path, search] = hash.split("?");
  const params = new URLSearchParams(search || "");
  const [view, arg] = path.split("/");
  for (const a of document.querySelectorAll("nav a")) a.classList.toggle("active", a.dataset.nav === view);
  if (view === "job" && arg) stopView = jobView(decodeURIComponent(arg));
  else if (view === "queue" && arg) stopView = queueView(decodeURIComponent(arg));
  else if (view === "search") stopView = searchView(params);
  else if (view === "jobs") stopView = jobsView(params);
  else if (view === "dead") stopView = deadView();
  else if (view === "schedules") stopView = schedulesView();
  else stopView = queuesView();
}

document.getElementById("token-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const value = document.getElementById("token").value.trim();
  if (value) localStorage.setItem("tether-token", value); else localStorage.removeItem("tether-token");
  document.getElementById("token").value = "";
  notice(value ? "Token saved in this browser" : "Token cleared");
  route();
});
document.getElementById("search-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = document.getElementById("search").value.trim();
  if (!q) return;
  // A whole id opens the job; anything else lists what matches.
  if (/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(q)) location.hash = "#/job/" + q.toLowerCase();
  else location.hash = "#/search?q=" + encodeURIComponent(q);
});
window.addEventListener("hashchange", route);
route();
