// The Stack Builder page: the stacks at the branch tip, "Add add-on" from the chart catalog, the values
// editor beside the chart's defaults, the SOPS button, preview and save. Uses api(), csrf(), el(),
// toast() and canWrite() of app.js (loaded first). Text from the server is set with textContent only.
"use strict";

(function () {
  const root = document.getElementById("stacks");
  if (!root) return;
  const cluster = root.dataset.cluster;
  const base = "/api/v1/clusters/" + encodeURIComponent(cluster) + "/stacks";
  const $ = (id) => document.getElementById(id);
  let found = [];
  let completionTree = null; // of the chosen chart version (GET /api/v1/charts/…: completion)

  // POST the edits; answers {ok, status, data} so validation items (errors[]) can be shown. A preview
  // asks the agent to render the charts' objects only with renderObjects (the Preview button).
  async function send(edits, preview, branch, renderObjects) {
    const body = { edits, preview, render_objects: !!(preview && renderObjects) };
    if (branch) body.branch = branch;
    const response = await fetch(base + "/edits", {
      method: "POST",
      credentials: "same-origin",
      headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRF-Token": await csrf() },
      body: JSON.stringify(body),
    });
    let data = null;
    try { data = await response.json(); } catch (_) { data = { detail: response.statusText }; }
    return { ok: response.ok, status: response.status, data };
  }

  function header(labels) {
    return el("thead", {}, el("tr", {}, ...labels.map((h) =>
      el("th", { scope: "col" }, h ? h : el("span", { class: "sr", text: "Actions" })))));
  }

  function removeButton(stack, entry) {
    const button = el("button", { type: "button", "data-remove": entry.name, text: "Remove" });
    button.addEventListener("click", async () => {
      button.disabled = true;
      const op = entry.kind === "addon" ? "remove_addon" : "remove_manifest";
      const answer = await send([{ op, stack, name: entry.name }], false);
      button.disabled = false;
      if (answer.ok) { toast(`Removed ${entry.name}: commit ${answer.data.commit.slice(0, 12)}`); load(); }
      else toast(answer.data.detail || "the removal was refused", true);
    });
    return button;
  }

  // one change saved at once (a commit), then the stacks read again
  async function commitOne(button, edit, what) {
    button.disabled = true;
    const answer = await send([edit], false);
    button.disabled = false;
    if (answer.ok) { await load(); toast(`${what}: commit ${answer.data.commit.slice(0, 12)}`); }
    else toast(answer.data.detail || `${what} was refused`, true);
  }

  // "addon:web, manifest:ns" → [{addon: "web"}, {manifest: "ns"}]
  function parseParents(text) {
    return text.split(",").map((p) => p.trim()).filter(Boolean).map((p) => {
      const [kind, name] = p.includes(":") ? p.split(":", 2) : ["addon", p];
      return { [kind.trim()]: name.trim() };
    });
  }

  function parentsCell(stack, entry) {
    const shown = entry.parents.join(", ");
    if (!canWrite()) return el("td", { text: shown || "—" });
    const id = `parents-${stack.name}-${entry.kind}-${entry.name}`;
    const input = el("input", { id, value: shown, size: "18", placeholder: "addon:web, manifest:ns", "aria-label": `Parents of ${entry.name}` });
    const set = el("button", { type: "button", "data-set-parents": entry.name, text: "Set" });
    set.addEventListener("click", () => {
      const parents = parseParents(input.value);
      const op = entry.kind === "addon" ? "change_addon" : "change_manifest";
      commitOne(set, { op, stack: stack.name, name: entry.name, fields: { parents: parents.length ? parents : null } }, `Parents of ${entry.name}`);
    });
    return el("td", {}, input, " ", set);
  }

  function waveForm(stack) {
    if (!canWrite()) return null;
    const id = `wave-${stack.name}`;
    const input = el("input", { id, type: "number", min: "0", value: stack.deploy_wave ?? "", size: "4" });
    const set = el("button", { type: "button", "data-set-wave": stack.name, text: "Set" });
    set.addEventListener("click", () => {
      const value = input.value.trim();
      commitOne(set, { op: "change_stack", name: stack.name, fields: { deploy_wave: value === "" ? null : Number(value) } }, `Deploy wave of ${stack.name}`);
    });
    return el("p", { class: "row" }, el("label", { for: id, text: "Deploy wave " }), input, " ", set);
  }

  // Move up / down: next to the nearest entry of the same kind written in the same file list
  // (moves_in); an entry read from a folder (name order) has none. Focus returns to the moved
  // entry's button once the stacks are read again.
  function neighbour(list, index, step) {
    const self = list[index];
    if (!self.moves_in) return null;
    for (let i = index + step; i >= 0 && i < list.length; i += step) {
      if (list[i].moves_in === self.moves_in) return list[i];
    }
    return null;
  }

  function moveButtons(what, name, list, index, edit) {
    const cell = el("span", { class: "moves" });
    for (const [step, word, arrow] of [[-1, "up", "↑"], [1, "down", "↓"]]) {
      const other = neighbour(list, index, step);
      const attr = `data-move-${what === "stack" ? "stack-" : ""}${word}`;
      const button = el("button", {
        type: "button", [attr]: name, text: arrow, disabled: !other,
        "aria-label": `Move ${what} ${name} ${word}`,
        title: other ? `Move ${name} ${step < 0 ? "before" : "after"} ${other.name}`
          : list[index].moves_in ? `${name} is the ${step < 0 ? "first" : "last"} of its file's list`
            : `${name} is read from a folder in file name order: rename the files to reorder`,
      });
      button.addEventListener("click", async () => {
        await commitOne(button, edit({ [step < 0 ? "before" : "after"]: other.name }), `Moved ${name} ${word}`);
        const again = document.querySelector(`[${attr}="${CSS.escape(name)}"]:not([disabled])`)
          || document.querySelector(`[${attr.replace(word, word === "up" ? "down" : "up")}="${CSS.escape(name)}"]`);
        if (again) again.focus();
      });
      cell.append(button, " ");
    }
    return cell;
  }

  function entryMoves(stack, entry) {
    const list = entry.kind === "addon" ? stack.addons : stack.manifests;
    const op = entry.kind === "addon" ? "move_addon" : "move_manifest";
    return moveButtons(entry.kind === "addon" ? "add-on" : "manifest", entry.name, list, list.indexOf(entry),
      (where) => ({ op, stack: stack.name, name: entry.name, ...where }));
  }

  function renderStack(stack, index, stacks) {
    const entries = [...stack.manifests, ...stack.addons];
    const rows = entries.map((entry) => el("tr", { "data-entry": entry.name },
      el("td", { text: entry.kind === "addon" ? "add-on" : "manifest" }),
      el("th", { scope: "row", text: entry.name }),
      el("td", { text: entry.chart_name ? `${entry.chart_name} ${entry.chart_version || ""}` : "—" }),
      el("td", { text: entry.namespace || "" }),
      parentsCell(stack, entry),
      el("td", { class: "small muted", text: entry.file }),
      el("td", {}, canWrite() ? entryMoves(stack, entry) : null, canWrite() ? removeButton(stack.name, entry) : null)));
    const wave = stack.deploy_wave === null || stack.deploy_wave === undefined ? "" : ` (wave ${stack.deploy_wave})`;
    const table = el("table", { class: "grid" },
      el("caption", { class: "sr", text: `Entries of stack ${stack.name}` }),
      header(["Kind", "Name", "Chart", "Namespace", "Parents", "File", ""]),
      el("tbody", {}, ...rows));
    const moves = canWrite() && stacks.length > 1
      ? moveButtons("stack", stack.name, stacks, index, (where) => ({ op: "move_stack", name: stack.name, ...where }))
      : null;
    return el("section", { class: "stack", "data-stack": stack.name },
      el("h2", { text: `Stack ${stack.name}${wave}` }),
      el("p", { class: "small muted" }, `defined in ${stack.file} `, moves),
      waveForm(stack),
      rows.length ? el("div", { class: "scroll" }, table) : el("p", { class: "empty", text: "No entries yet." }));
  }

  async function load() {
    const source = $("stacks-source");
    try {
      const data = await api("GET", base);
      source.textContent = `${data.path} at commit ${data.commit.slice(0, 12)}`;
      source.className = "muted";
      root.replaceChildren(...data.stacks.map((stack, i) => renderStack(stack, i, data.stacks)));
      for (const select of [$("sb-stack"), $("sm-stack"), $("st-stack")]) {
        if (!select) continue;
        const keep = select.value;
        select.replaceChildren(...data.stacks.map((s) => el("option", { value: s.name, text: s.name })));
        if (keep) select.value = keep;
      }
    } catch (e) {
      source.textContent = "Cannot read the definition: " + e.message;
      source.className = "error";
    }
  }

  const form = $("add-addon");
  load();
  if (!form) return;

  async function search() {
    const chart = $("sb-chart");
    chart.replaceChildren(el("option", { value: "", text: "searching…" }));
    try {
      const data = await api("GET", "/api/v1/charts?q=" + encodeURIComponent($("sb-search").value.trim()));
      found = data.charts || [];
      chart.replaceChildren(...(found.length
        ? found.map((c, i) => el("option", { value: String(i), text: `${c.name} (${c.registry})` }))
        : [el("option", { value: "", text: "no chart found" })]));
      for (const e of data.errors || []) toast(`${e.registry}: ${e.message}`, true);
      pickChart();
    } catch (e) {
      chart.replaceChildren(el("option", { value: "", text: "search failed" }));
      toast(e.message, true);
    }
  }

  function chosen() {
    const index = $("sb-chart").value;
    return index === "" ? null : found[Number(index)];
  }

  function pickChart() {
    const chart = chosen();
    const version = $("sb-version");
    version.replaceChildren(...(chart ? chart.versions.map((v) => el("option", { value: v.version, text: v.version })) : []));
    if (chart && !$("sb-name").value) $("sb-name").value = chart.name;
    showDefaults();
  }

  async function showDefaults() {
    const chart = chosen();
    const box = $("sb-defaults");
    box.textContent = "";
    completionTree = null;
    if (!chart || !$("sb-version").value) return;
    try {
      const path = [chart.registry, chart.name, $("sb-version").value].map(encodeURIComponent).join("/");
      const data = await api("GET", "/api/v1/charts/" + path);
      box.textContent = data.values || "(the chart has no default values)";
      completionTree = data.completion || null;
      const properties = data.schema && data.schema.properties ? Object.keys(data.schema.properties) : [];
      $("sb-schema-note").textContent = properties.length
        ? `The chart's default values; its values.schema.json knows: ${properties.join(", ")}.`
        : "The chart's default values:";
    } catch (e) {
      box.textContent = "Cannot read the chart: " + e.message;
    }
  }

  function edits() {
    const chart = chosen();
    if (!chart) throw new Error("search the catalog and choose a chart first");
    const stack = $("sb-stack").value;
    const name = $("sb-name").value.trim();
    const addon = {
      name,
      chart_name: chart.name,
      chart_version: $("sb-version").value,
      registry_url: chart.url,
      namespace: $("sb-namespace").value.trim(),
    };
    const list = [{ op: "add_addon", stack, addon }];
    const sops = $("sb-sops").getAttribute("aria-pressed") === "true";
    const secret = sops ? $("sb-secret").value.split(",").map((s) => s.trim()).filter(Boolean) : [];
    if (sops && !secret.length) throw new Error("name the keys to encrypt with SOPS, or turn SOPS off");
    const values = $("sb-values").value;
    if (values.trim() || secret.length) list.push({ op: "set_values", stack, addon: name, values, secret });
    return list;
  }

  function showProblems(data) {
    const list = $("sb-problems");
    const items = (data.errors || []).map((e) => {
      const where = [e.file, e.line].filter((p) => p !== null && p !== undefined).join(":");
      return el("li", { text: `${where ? where + ": " : ""}${e.message}${e.path ? ` [${e.path}]` : ""}${e.hint ? ` (${e.hint})` : ""}` });
    });
    list.replaceChildren(...(items.length ? items : [el("li", { text: data.detail || "refused" })]));
  }

  function showDiff(text) {
    const pre = $("sb-diff");
    pre.replaceChildren(...text.split("\n").map((line) =>
      el("span", { class: line.startsWith("+") ? "add" : line.startsWith("-") ? "del" : "", text: line + "\n" })));
    pre.hidden = false;
  }

  // what the commit changes in the cluster: releases, each with the objects its chart renders (a
  // preview: grouped created / changed with field paths / removed, or why they were not rendered),
  // and manifest objects
  function releaseObjects(r) {
    if (r.rendered === false) return [el("p", { class: "muted", text: `Objects not rendered: ${r.reason}` })];
    if (!r.objects) return [];
    const where = (o) => `${o.kind} ${o.namespace ? o.namespace + "/" : ""}${o.name}`;
    const groups = ["created", "changed", "removed"].filter((c) => (r.objects[c] || []).length).map((change) =>
      el("li", { "data-change": change }, `${change} (${r.objects[change].length})`,
        el("ul", {}, ...r.objects[change].map((o) => el("li", { text: where(o) + ((o.paths || []).length
          ? ": " + o.paths.join(", ") + (o.paths_omitted ? ` and ${o.paths_omitted} more` : "") : "") })))));
    const counts = [`${r.objects.unchanged || 0} unchanged`, r.objects.omitted ? `${r.objects.omitted} more not listed` : ""];
    const out = [el("ul", { class: "objects", "aria-label": `Objects of release ${r.release}` }, ...groups),
      el("p", { class: "muted", text: (groups.length ? "" : "No object changes; ") + counts.filter(Boolean).join(", ") })];
    if (r.note) out.push(el("p", { class: "muted", text: r.note }));
    return out;
  }

  function showImpact(changes) {
    const items = [
      ...(changes.releases || []).map((r) => el("li", { "data-release": r.release },
        `release ${r.release} (${r.chart}) in ${r.namespace}: ${r.change}${r.what ? " — " + r.what.join(", ") : ""}`,
        ...releaseObjects(r))),
      ...(changes.objects || []).map((o) => el("li", { text: `${o.kind} ${o.namespace ? o.namespace + "/" : ""}${o.name}: ${o.change}` })),
    ];
    const render = changes.render || {};
    if (render.state === "not_rendered" || render.state === "partial") items.push(el("li", { class: "warn", text: render.message }));
    $("sb-impact").replaceChildren(...items);
  }

  async function run(preview) {
    $("sb-problems").replaceChildren();
    $("sb-impact").replaceChildren();
    $("sb-saved").textContent = "";
    let list;
    try { list = edits(); } catch (e) { showProblems({ detail: e.message }); return; }
    for (const b of [$("sb-preview"), $("sb-save")]) b.disabled = true;
    const branch = $("sb-branch").value.trim();
    if (preview) $("sb-saved").textContent = "Rendering the charts in the cluster…";
    const answer = await send(list, preview, branch, true);
    for (const b of [$("sb-preview"), $("sb-save")]) b.disabled = false;
    if (!answer.ok) { $("sb-diff").hidden = true; $("sb-saved").textContent = ""; showProblems(answer.data); return; }
    showDiff(answer.data.diff);
    showImpact(answer.data.cluster_changes || {});
    const d = answer.data;
    const newBranch = d.pull_request_url || (d.tracked_branch && d.branch !== d.tracked_branch);
    if (preview) {
      $("sb-saved").textContent = `Preview: ${d.files.join(", ")} would change; nothing was committed.` +
        (newBranch ? ` Saving commits to a new branch, with a pull request into ${d.tracked_branch}.` : "");
    } else if (newBranch) {
      // where the commit went, and its pull request: opened by Moorage, or the provider's form and why not
      const parts = [`Committed ${d.commit.slice(0, 12)} on the new branch ${d.branch}; nothing syncs until it is merged into ${d.tracked_branch || "the tracked branch"}. `];
      if (d.pull_request_opened) {
        parts.push(el("a", { href: d.pull_request_url, text: "Pull request opened" }), ".");
      } else {
        if (d.pull_request_url) parts.push(el("a", { href: d.pull_request_url, text: "open the pull request" }), ".");
        if (d.pull_request_reason) parts.push(` Moorage did not open it: ${d.pull_request_reason}.`);
      }
      $("sb-saved").replaceChildren(...parts);
    } else {
      $("sb-saved").textContent = `Committed ${answer.data.commit.slice(0, 12)} (${answer.data.message.split("\n")[0]}); the sync starts now.`;
      $("sb-values").value = "";
      load();
    }
  }

  // inline check of the values while they are typed: a preview whose problems show under the editor
  // (only the newest answer is shown; nothing is committed)
  let checkTimer = null;
  let checkGeneration = 0;
  async function checkValues() {
    const box = $("sb-values-check");
    let list;
    try { list = edits(); } catch (_) { box.replaceChildren(); return; }
    if (!$("sb-name").value.trim() || !$("sb-namespace").value.trim()) return;
    const generation = ++checkGeneration;
    box.replaceChildren(el("li", { class: "muted", text: "Checking the values…" }));
    const answer = await send(list, true);
    if (generation !== checkGeneration) return;
    if (answer.ok) {
      box.replaceChildren(el("li", { class: "ok", text: "No problem found in these values." }));
      return;
    }
    const items = (answer.data.errors || []).map((e) => el("li", { class: "error",
      text: `${e.line ? "line " + e.line + ": " : ""}${e.message}${e.path ? ` [${e.path}]` : ""}` }));
    box.replaceChildren(...(items.length ? items : [el("li", { class: "error", text: answer.data.detail || "refused" })]));
  }
  $("sb-values").addEventListener("input", () => {
    clearTimeout(checkTimer);
    checkTimer = setTimeout(checkValues, 1200);
  });

  MoorageCompletion.attach($("sb-values"), $("sb-complete"), $("sb-complete-status"), () => completionTree);

  $("sb-find").addEventListener("click", search);
  $("sb-search").addEventListener("keydown", (e) => { if (e.key === "Enter") { e.preventDefault(); search(); } });
  $("sb-chart").addEventListener("change", pickChart);
  $("sb-version").addEventListener("change", showDefaults);
  $("sb-sops").addEventListener("click", () => {
    const on = $("sb-sops").getAttribute("aria-pressed") !== "true";
    $("sb-sops").setAttribute("aria-pressed", on ? "true" : "false");
    $("sb-secret").disabled = !on;
    if (on) $("sb-secret").focus();
  });
  $("sb-preview").addEventListener("click", () => run(true));
  form.addEventListener("submit", (e) => { e.preventDefault(); run(false); });

  // Add manifest: the Kubernetes YAML goes inline in the entry
  async function addManifest(preview) {
    const result = $("sm-result");
    result.replaceChildren();
    const manifest = { name: $("sm-name").value.trim(), manifest: $("sm-yaml").value };
    const ns = $("sm-namespace").value.trim();
    if (ns) manifest.namespace = ns;
    const answer = await send([{ op: "add_manifest", stack: $("sm-stack").value, manifest }], preview);
    if (!answer.ok) {
      const items = (answer.data.errors || []).map((e) => `${[e.file, e.line].filter(Boolean).join(":")}: ${e.message}${e.path ? ` [${e.path}]` : ""}`);
      result.append(el("p", { class: "error", text: items.length ? items.join("; ") : answer.data.detail }));
      return;
    }
    result.append(el("pre", { text: answer.data.diff }));
    result.append(el("p", { text: preview ? "Preview only: nothing was committed." : `Committed ${answer.data.commit.slice(0, 12)}; the sync starts now.` }));
    if (!preview) load();
  }
  $("sm-preview").addEventListener("click", () => addManifest(true));

  // reusable stacks: keep one as a template file, or include a template here with its variables
  async function template(edit, what) {
    const answer = await send([edit], false);
    const out = $("st-result");
    if (!answer.ok) { out.className = "error"; out.textContent = answer.data.detail || `${what} was refused`; return; }
    const also = answer.data.also_affects.length ? ` This also changes: ${answer.data.also_affects.join(", ")}.` : "";
    out.className = "";
    out.textContent = `${what}: committed ${answer.data.commit.slice(0, 12)}.${also}`;
    load();
  }
  $("save-template").addEventListener("submit", (e) => {
    e.preventDefault();
    template({ op: "save_template", stack: $("st-stack").value, path: $("st-path").value.trim() }, "Kept as a template");
  });
  $("use-template").addEventListener("submit", (e) => {
    e.preventDefault();
    const variables = {};
    for (const line of $("ut-vars").value.split("\n")) {
      const at = line.indexOf("=");
      if (at > 0) variables[line.slice(0, at).trim()] = line.slice(at + 1).trim();
    }
    template({ op: "use_template", path: $("ut-path").value.trim(), variables }, "Template used");
  });
  $("add-manifest").addEventListener("submit", (e) => { e.preventDefault(); addManifest(false); });
})();
