// Moorage UI: calls the JSON API (with the session cookie and its CSRF token), loads what the agent
// answers into tabs, and follows /api/v1/events for live state. Text from the server is always set
// with textContent, never parsed as HTML (the map fragment is rendered and escaped by the server).
"use strict";

// The CSRF token is asked of the API once, when the first change is made: pages carry no secret,
// so they can be compressed without a reflected search term revealing it (BREACH).
let csrfToken = null;
async function csrf() {
  if (csrfToken === null) {
    const response = await fetch("/api/v1/session", { credentials: "same-origin", headers: { Accept: "application/json" } });
    csrfToken = response.ok ? (await response.json()).csrf_token || "" : "";
  }
  return csrfToken;
}
const canWrite = () => document.body.dataset.canWrite === "true";

async function api(method, url, body) {
  const headers = { Accept: "application/json" };
  // signing in and out needs no token (there is no session yet, or it ends)
  if (method !== "GET" && url !== "/api/v1/session") headers["X-CSRF-Token"] = await csrf();
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(url, {
    method, headers, credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let data = null;
  try { data = await response.json(); } catch (_) { data = null; }
  if (response.status === 401 && !url.startsWith("/api/v1/session")) {
    location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search);
  }
  if (!response.ok) {
    const detail = data && data.detail ? (typeof data.detail === "string" ? data.detail : JSON.stringify(data.detail)) : response.statusText;
    const error = new Error(detail);
    error.status = response.status;
    throw error;
  }
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k === "text") node.textContent = v;
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v === true ? "" : v);
  }
  for (const child of children) if (child !== null && child !== undefined) node.append(child);
  return node;
}

function stateBadge(value) {
  return el("span", { class: "state s-" + String(value || "unknown").toLowerCase(), text: value || "—" });
}

function toast(message, bad) {
  const box = document.getElementById("toast");
  if (!box) return;
  const line = el("p", { class: bad ? "bad" : "", text: message });
  box.append(line);
  setTimeout(() => line.remove(), 6000);
}

function ago(iso) {
  if (!iso) return "never";
  const seconds = Math.max(0, Math.round((Date.now() - Date.parse(iso)) / 1000));
  for (const [size, unit] of [[86400, "d"], [3600, "h"], [60, "min"]]) {
    if (seconds >= size) return Math.floor(seconds / size) + " " + unit + " ago";
  }
  return seconds + " s ago";
}

function timeEl(iso) {
  return iso ? el("time", { datetime: iso, title: iso, text: ago(iso) }) : document.createTextNode("never");
}

function refreshTimes() {
  for (const t of document.querySelectorAll("time[datetime]")) t.textContent = ago(t.getAttribute("datetime"));
}

function table(headers, rows) {
  const head = el("tr", {}, ...headers.map((h) => el("th", { scope: "col", text: h })));
  const body = el("tbody", {}, ...rows.map((cells) => el("tr", {}, ...cells.map((c) => el("td", {}, c)))));
  return el("div", { class: "scroll" }, el("table", { class: "grid" }, el("thead", {}, head), body));
}

function yaml(value, indent) {
  // a readable YAML-like rendering of JSON (for display only)
  indent = indent || "";
  if (value === null || typeof value !== "object") return JSON.stringify(value);
  const entries = Array.isArray(value) ? value.map((v) => ["-", v]) : Object.entries(value);
  if (!entries.length) return Array.isArray(value) ? "[]" : "{}";
  return entries.map(([k, v]) => {
    const key = Array.isArray(value) ? "- " : k + ": ";
    if (v !== null && typeof v === "object" && Object.keys(v).length) return "\n" + indent + key + yaml(v, indent + "  ");
    return "\n" + indent + key + yaml(v, indent + "  ");
  }).join("");
}

// ------------------------------------------------------------------ sign in / out

function setupSignIn() {
  const form = document.getElementById("signin");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const error = document.getElementById("signin-error");
    error.hidden = true;
    const button = form.querySelector("button");
    button.disabled = true;
    try {
      await api("POST", "/api/v1/session", { username: form.username.value, password: form.password.value });
      location.href = form.dataset.next || "/clusters";
    } catch (e) {
      error.textContent = e.status === 429 ? e.message : (e.status === 401 ? "Wrong username or password." : e.message);
      error.hidden = false;
      form.password.value = "";
      form.password.focus();
    } finally {
      button.disabled = false;
    }
  });
}

document.addEventListener("click", async (event) => {
  const target = event.target.closest("[data-action]");
  if (!target) return;
  const action = target.dataset.action;
  if (action === "sign-out") {
    try { await api("DELETE", "/api/v1/session"); } catch (_) { /* signed out anyway */ }
    location.href = "/login";
  } else if (action === "post") {
    await postAction(target);
  } else if (action === "register-open") {
    const form = document.getElementById("register");
    form.hidden = !form.hidden;
    if (!form.hidden) form.querySelector("input").focus();
  } else if (action === "rotate") {
    if (!confirm("Rotate the agent token? The running agent stays disconnected until it gets the new one.")) return;
    try {
      const out = await api("POST", target.dataset.url);
      showInstall(target.dataset.server, out.agent_token);
    } catch (e) { toast(e.message, true); }
  } else if (action === "migration") {
    await showMigration(target);
  } else if (action === "migrate-confirm") {
    if (!confirm("Migrate the eligible add-ons from Argo CD to Helm releases? Objects and Pods are kept.")) return;
    await postAction(target);
  } else if (action === "decommission") {
    if (!confirm("Decommission Argo CD on this cluster? This cannot be undone.")) return;
    await postAction(target);
  } else if (action === "rollback") {
    if (!confirm("Roll back to revision " + target.dataset.revision + "? Syncs hold it there until you resume.")) return;
    await postAction(target, { revision: Number(target.dataset.revision) });
  }
});

async function postAction(button, body) {
  const label = button.textContent;
  button.disabled = true;
  button.textContent = button.dataset.busy || "Working…";
  try {
    const out = await api("POST", button.dataset.url, body);
    const state = out && (out.operation_state || out.state);
    toast(state ? label + ": " + state : label + ": requested", state === "failed");
    setTimeout(() => location.reload(), 800);
  } catch (e) {
    toast(label + " failed: " + e.message, true);
  } finally {
    button.disabled = false;
    button.textContent = label;
  }
}

async function showMigration(button) {
  button.disabled = true;
  try {
    const out = await api("GET", button.dataset.url);
    const rows = document.getElementById("migration-rows");
    rows.replaceChildren(...out.applications.map((a) => {
      const tr = document.createElement("tr");
      for (const text of [a.application, a.addon || "—", a.eligible ? "yes" : "no", a.sync || "—", a.health || "—",
                          a.reasons.join("; ") || "—", (a.no_health_rule || []).join(", ") || "—"]) {
        const td = document.createElement("td");
        td.textContent = text;
        tr.appendChild(td);
      }
      return tr;
    }));
    document.getElementById("migration-summary").textContent =
      out.eligible + " of " + out.moorage_applications + " Moorage Application(s) can migrate. " + out.how + ".";
    document.getElementById("migration").hidden = false;
    const confirmButton = document.getElementById("migration-confirm");
    if (confirmButton) confirmButton.hidden = !(out.eligible > 0);
  } catch (e) {
    toast("Migration check failed: " + e.message, true);
  } finally {
    button.disabled = false;
  }
}

function showInstall(server, token) {
  const box = document.getElementById("install");
  const pre = document.getElementById("install-command");
  pre.textContent = "helm upgrade --install moorage-agent charts/moorage-agent --namespace moorage --create-namespace \\\n" +
    "  --set config.server_url=" + server + " --set config.token=" + token + "\n" +
    "# or as a process next to the cluster:\n" +
    "moorage agent --server " + server + " --token " + token + " --kubeconfig KUBECONFIG";
  box.hidden = false;
  pre.focus();
}

function setupRegister() {
  const form = document.getElementById("register");
  if (!form) return;
  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    try {
      const out = await api("POST", "/api/v1/clusters", { name: form.name.value });
      showInstall(location.origin, out.agent_token);
      toast("cluster " + out.name + " registered");
    } catch (e) { toast(e.message, true); }
  });
}

for (const select of document.querySelectorAll("[data-autosubmit]")) {
  select.addEventListener("change", () => select.form.submit());
}

// ------------------------------------------------------------------ live add-on state

function followEvents(cluster, onAddon, onGitOps) {
  const source = new EventSource("/api/v1/events?cluster=" + encodeURIComponent(cluster));
  if (onAddon) source.addEventListener("addon", (e) => onAddon(JSON.parse(e.data)));
  if (onGitOps) source.addEventListener("gitops", (e) => onGitOps(JSON.parse(e.data)));
  source.addEventListener("overflow", () => { source.close(); location.reload(); });
  window.addEventListener("pagehide", () => source.close());
  return source;
}

function setupLiveAddons() {
  const grid = document.getElementById("addons");
  if (grid) {
    let reloading = null;
    followEvents(grid.dataset.cluster, (change) => {
      const row = grid.querySelector('tr[data-addon="' + CSS.escape(change.addon) + '"]');
      if (!row) {  // a new add-on: fetch the page again (debounced)
        clearTimeout(reloading);
        reloading = setTimeout(() => location.reload(), 1500);
        return;
      }
      row.querySelector('[data-field="state"]').replaceChildren(stateBadge(change.state));
      row.querySelector('[data-field="reason"]').textContent = change.reason;
      row.querySelector('[data-field="since"]').replaceChildren(timeEl(change.at));
      row.classList.remove("flash");
      void row.offsetWidth;
      row.classList.add("flash");
    });
  }
  const one = document.getElementById("addon");
  if (one) {
    followEvents(one.dataset.cluster, (change) => {
      if (change.addon !== one.dataset.addon) return;
      one.querySelector('[data-field="state"]').replaceChildren(stateBadge(change.state));
      document.querySelector('.reason-line[data-field="reason"]').textContent = change.reason;
      if (new URLSearchParams(location.search).get("tab") === "drift") location.reload();
    });
  }
}

// ------------------------------------------------------------------ tabs loaded from the agent

const renderers = {
  values(data) {
    const note = data.masked_all ? "# the agent does not hold this add-on's definition: every value is masked\n" : "";
    return document.createTextNode(note + "# revision " + data.revision + yaml(data.values).replace(/^\n/, "\n"));
  },
  events(data) {
    if (!data.events.length) return el("p", { class: "empty", text: "No events for the add-on's resources." });
    return table(["Last seen", "Type", "Object", "Reason", "Message"], data.events.map((e) => [
      timeEl(e.last_seen), document.createTextNode(e.type || ""), el("code", { text: e.object }),
      document.createTextNode(e.reason || ""), document.createTextNode(e.message || ""),
    ]));
  },
  history(data, node) {
    const rows = data.revisions.map((r, i) => {
      const cells = [
        document.createTextNode(String(r.revision)), timeEl(r.updated), stateBadge(r.status),
        document.createTextNode(r.chart + "-" + r.chart_version), document.createTextNode(r.description || ""),
      ];
      if (canWrite()) {
        cells.push(i === 0 ? document.createTextNode("current") : el("button", {
          type: "button", "data-action": "rollback", "data-url": node.dataset.rollback + "?wait=120",
          "data-revision": String(r.revision), "data-busy": "Rolling back…", text: "Roll back to " + r.revision,
        }));
      }
      return cells;
    });
    const headers = ["Revision", "Updated", "Status", "Chart", "Description"];
    if (canWrite()) headers.push("Action");
    return table(headers, rows);
  },
};

async function loadInto(node) {
  try {
    if (node.dataset.render) {
      const data = await api("GET", node.dataset.src);
      node.replaceChildren(renderers[node.dataset.render](data, node));
    } else {
      const response = await fetch(node.dataset.src, { credentials: "same-origin" });
      if (!response.ok) throw new Error((await response.text()).slice(0, 300) || response.statusText);
      const doc = new DOMParser().parseFromString(await response.text(), "text/html");
      node.replaceChildren(...doc.body.childNodes);
    }
  } catch (e) {
    node.replaceChildren(el("p", { class: "error", role: "alert", text: "The agent could not answer: " + e.message }));
  }
}

// ------------------------------------------------------------------ objects: YAML, events, pod logs

let logSource = null;

async function showObject(panel, cluster, kind, name, namespace, apiVersion) {
  if (logSource) { logSource.close(); logSource = null; }
  panel.hidden = false;
  const title = el("h2", { text: kind + " " + (namespace ? namespace + "/" : "") + name });
  const body = el("pre", { tabindex: "0", text: "Asking the agent…" });
  const events = el("div", {}, el("p", { class: "loading", text: "Loading events…" }));
  panel.replaceChildren(title, el("h3", { text: "YAML" }), body, el("h3", { text: "Events" }), events);
  const q = new URLSearchParams({ api_version: apiVersion || "v1" });
  if (namespace) q.set("namespace", namespace);
  const base = "/api/v1/clusters/" + encodeURIComponent(cluster) + "/resources/" + encodeURIComponent(kind) + "/" + encodeURIComponent(name);
  api("GET", base + "?" + q).then((d) => { body.textContent = yaml(d.object).replace(/^\n/, ""); })
    .catch((e) => { body.textContent = "The agent could not answer: " + e.message; });
  const eq = new URLSearchParams(namespace ? { namespace } : {});
  api("GET", base + "/events?" + eq).then((d) => {
    events.replaceChildren(renderers.events({ events: d.events.map((e) => ({ ...e, object: kind + "/" + name })) }));
  }).catch((e) => events.replaceChildren(el("p", { class: "error", text: e.message })));
  if (kind === "Pod") {
    const log = el("pre", { class: "log", tabindex: "0", "aria-label": "log of pod " + name, "data-testid": "pod-log" });
    panel.append(el("h3", { text: "Log (live)" }), log);
    const url = "/api/v1/clusters/" + encodeURIComponent(cluster) + "/logs/" + encodeURIComponent(namespace) + "/" + encodeURIComponent(name) + "?follow=true&tail=100";
    logSource = new EventSource(url);
    logSource.onmessage = (e) => { log.textContent += e.data + "\n"; };
    logSource.addEventListener("error", (e) => { if (e.data) log.textContent += "error: " + e.data + "\n"; });
  }
}

function setupMapClicks() {
  const map = document.getElementById("map");
  if (!map) return;
  const panel = document.getElementById("node-panel");
  const open = (node) => showObject(panel, node.dataset.cluster, node.dataset.kind, node.dataset.name, node.dataset.namespace, node.dataset.apiVersion);
  map.addEventListener("click", (e) => { const n = e.target.closest(".node"); if (n) open(n); });
  map.addEventListener("keydown", (e) => {
    const n = e.target.closest(".node");
    if (n && (e.key === "Enter" || e.key === " ")) { e.preventDefault(); open(n); }
  });
}

// ------------------------------------------------------------------ resources page

function setupBrowse() {
  const form = document.getElementById("browse");
  if (!form) return;
  const cluster = form.dataset.cluster;
  const kinds = document.getElementById("kind");
  const out = document.getElementById("objects");
  const panel = document.getElementById("object-panel");
  let timer = null;
  api("GET", kinds.dataset.src).then((d) => {
    const current = kinds.value;
    kinds.replaceChildren(...d.kinds.map((k) => el("option", {
      value: k.api_version + "|" + k.kind, text: k.kind + " (" + k.api_version + ")", selected: k.api_version + "|" + k.kind === current,
    })));
  }).catch((e) => toast("kinds: " + e.message, true));
  async function list() {
    const [apiVersion, kind] = kinds.value.split("|");
    const q = new URLSearchParams({ kind, api_version: apiVersion, limit: "200" });
    if (form.namespace.value) q.set("namespace", form.namespace.value);
    if (form.label_selector.value) q.set("label_selector", form.label_selector.value);
    try {
      const d = await api("GET", "/api/v1/clusters/" + encodeURIComponent(cluster) + "/resources?" + q);
      const rows = d.items.map((o) => {
        const meta = o.metadata || {};
        const link = el("button", { type: "button", class: "linkish", text: meta.name });
        link.addEventListener("click", () => showObject(panel, cluster, kind, meta.name, meta.namespace || "", apiVersion));
        return [link, document.createTextNode(meta.namespace || ""), timeEl(meta.creationTimestamp)];
      });
      out.replaceChildren(el("p", { class: "muted", text: d.total + " " + kind + "(s)" }), table(["Name", "Namespace", "Created"], rows));
    } catch (e) {
      out.replaceChildren(el("p", { class: "error", role: "alert", text: e.message }));
    }
  }
  form.addEventListener("submit", (e) => { e.preventDefault(); list(); });
  clearInterval(timer);
  timer = setInterval(() => { if (document.getElementById("live").checked && !document.hidden) list(); }, 5000);
  list();
}

// ------------------------------------------------------------------ GitOps page

function setupGitOps() {
  const box = document.getElementById("gitops");
  if (!box) return;
  const cluster = box.dataset.cluster;
  let status = box.dataset.status;
  const labels = { synced: "Synced", syncing: "Syncing", error: "Error", not_configured: "Not Configured" };
  const order = ["fetching", "validating", "applying", "completed"];
  function show(s) {
    const banner = box.querySelector('[data-field="banner"]');
    if (banner) banner.textContent = labels[s.status] || s.status;
    box.querySelector(".banner").className = "banner b-" + s.status;
    const phases = box.querySelector('[data-field="phases"]');
    if (phases) {
      const at = order.indexOf(s.phase);
      [...phases.children].forEach((li, i) => {
        li.className = (i < at || (s.status === "synced" && i === 3)) ? "done" : (i === at ? "now" : "");
      });
    }
    const progress = box.querySelector('[data-field="progress"]');
    if (progress && s.message !== undefined) progress.textContent = s.message || "";
    if (s.status !== status) {
      status = s.status;
      if (status !== "syncing") setTimeout(() => location.reload(), 600);  // the new history row, the error
    }
  }
  // where Stack Builder saves go (the connection's edit mode)
  const mode = document.getElementById("edit-mode");
  if (mode) {
    mode.addEventListener("change", async () => {
      try {
        const out = await api("PATCH", mode.dataset.url, { edit_mode: mode.checked ? "pull_request" : "push" });
        const note = box.querySelector('[data-field="edit-mode-note"]');
        const branch = mode.dataset.branch;
        const text = out.git_repo.edit_mode === "pull_request"
          ? "each save goes to a new branch, with a pull request into " + branch + "; nothing syncs until it is merged"
          : "each save is committed and pushed to " + branch + " and synced";
        if (note) note.textContent = text;
        toast("Stack Builder saves: " + text);
      } catch (e) {
        mode.checked = !mode.checked;
        toast(e.message, true);
      }
    });
  }
  // each phase as it happens (server-sent events), and a slow poll in case the stream drops
  followEvents(cluster, null, show);
  setInterval(async () => {
    try {
      const s = await api("GET", "/api/v1/clusters/" + encodeURIComponent(cluster) + "/gitops/status");
      show({ status: s.sync_status, phase: s.sync_phase, message: s.sync_progress_message });
    } catch (_) { /* try again */ }
  }, 5000);
}

// ------------------------------------------------------------------ cluster settings: Upgrade Agent

function setupAgentSettings() {
  const form = document.getElementById("upgrade-agent");
  if (form) {
    form.addEventListener("submit", async (event) => {
      event.preventDefault();
      const button = form.querySelector("button");
      const label = button.textContent;
      const box = document.getElementById("upgrade-result");
      const state = document.getElementById("upgrade-state");
      const messages = document.getElementById("upgrade-messages");
      button.disabled = true;
      button.textContent = button.dataset.busy;
      box.hidden = false;
      state.textContent = "Upgrading to " + form.version.value + "…";
      messages.textContent = "";
      try {
        const out = await api("POST", form.dataset.url + "?wait=300", { version: form.version.value, chart: form.chart.value });
        state.replaceChildren(document.createTextNode("Upgrade Agent: "), stateBadge(out.operation_state));
        messages.textContent = out.messages.join("\n");
        if (out.operation_state === "success") await awaitReport(form.dataset.cluster, form.version.value.replace(/^v/, ""), state);
      } catch (e) {
        state.textContent = "Upgrade Agent failed: " + e.message;
      } finally {
        button.disabled = false;
        button.textContent = label;
      }
    });
  }
  const toggle = document.getElementById("roll-forward");
  if (toggle) {
    toggle.addEventListener("change", async () => {
      try {
        const out = await api("PATCH", toggle.dataset.url, { agent_roll_forward: toggle.checked });
        toast(out.agent_roll_forward ? "takes part in the fleet roll-forward" : "opted out of the fleet roll-forward");
      } catch (e) {
        toggle.checked = !toggle.checked;
        toast(e.message, true);
      }
    });
  }
}

async function awaitReport(cluster, version, state) {
  const field = document.querySelector('[data-field="chart-version"]');
  for (let i = 0; i < 90; i++) {
    const c = await api("GET", "/api/v1/clusters/" + encodeURIComponent(cluster));
    if (c.chart_version === version) {
      field.textContent = version;
      state.append(document.createTextNode(" — the new agent reports chart " + version));
      return;
    }
    await new Promise((r) => setTimeout(r, 2000));
  }
  state.append(document.createTextNode(" — no agent reported chart " + version + " yet: check the agent's pods"));
}

document.addEventListener("DOMContentLoaded", () => {
  setupSignIn();
  setupAgentSettings();
  setupRegister();
  setupLiveAddons();
  setupMapClicks();
  setupBrowse();
  setupGitOps();
  for (const node of document.querySelectorAll("[data-src]:not(select)")) loadInto(node);
  setInterval(refreshTimes, 30000);
});
