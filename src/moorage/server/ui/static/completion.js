// Completion in the Stack Builder's values editor, from the completion tree the chart catalog answers
// for a chart version (server/stacks/completion.py: its values.schema.json and default values).
//
// Pure, and tested on their own: yamlPathAt(text, offset) says where the cursor is in the YAML (the
// path of keys, "[]" for a list item, whether a key or a value is being typed, and what is typed);
// nodeAt(tree, path) and proposals(tree, at) say what fits there. attach() is the widget: a listbox
// under the textarea that the textarea points into with aria-activedescendant; ↑/↓ move, Enter or
// Tab insert, Escape closes, Ctrl+Space opens it, a click inserts. Uses el() of app.js.
"use strict";

const MoorageCompletion = (function () {
  const KEY_AT = /^( *)(- +)?([A-Za-z0-9_./-]*)$/;
  const VALUE_AT = /^( *)(- +)?([A-Za-z0-9_./-]+|"[^"]*"|'[^']*'): +([^\s#]*)$/;
  const LINE = /^( *)(- +|-$)?(.*)$/;
  const KEY = /^([^\s:#"'][^:#]*?|"[^"]*"|'[^']*'):(?: +(.*))?$/;
  const PLAIN = /^[A-Za-z_][A-Za-z0-9_./-]*$/;
  const RESERVED = /^(true|false|yes|no|on|off|null|y|n)$/i;

  function unquote(key) {
    return /^(".*"|'.*')$/.test(key) ? key.slice(1, -1) : key;
  }

  // a key line opens a block (children may follow) when nothing but a comment or an anchor follows it
  function opensBlock(rest) {
    const value = (rest || "").trim();
    return value === "" || value.startsWith("#") || /^&\S+( +#.*)?$/.test(value);
  }

  // Where the cursor at `offset` of `text` is: {path, mode: "key"|"value", key, prefix, from, to,
  // indent} (indent: the column of the key being typed), or null where nothing can be proposed.
  function yamlPathAt(text, offset) {
    const start = text.lastIndexOf("\n", offset - 1) + 1;
    const before = text.slice(start, offset);
    let mode = "key", lead, dash, prefix, key = null;
    let m = KEY_AT.exec(before);
    if (m) {
      [, lead, dash, prefix] = m;
    } else if ((m = VALUE_AT.exec(before))) {
      mode = "value";
      [, lead, dash, key, prefix] = m;
      key = unquote(key);
    } else {
      return null;
    }
    const path = [];
    const indent = lead.length + (dash ? dash.length : 0);
    const siblings = siblingsBelow(text, offset, indent);
    let col = lead.length;
    let inItem = false; // col is then the dash column of the list item the cursor is in
    let mine = !dash; // lines at the cursor's key column are still keys of its mapping
    if (dash) { path.unshift("[]"); inItem = true; }
    const lines = text.slice(0, start).split("\n");
    lines.pop();
    for (let i = lines.length - 1; i >= 0; i--) {
      const line = lines[i];
      const trimmed = line.trim();
      if (!trimmed || trimmed.startsWith("#")) continue;
      if (line.startsWith("---") || line.startsWith("...")) break; // another document
      const [, spaces, itemDash, content] = LINE.exec(line);
      const ind = spaces.length;
      const keyCol = itemDash ? ind + itemDash.length : ind;
      const found = KEY.exec(content);
      if (mine && keyCol === indent && found) siblings.push(unquote(found[1]));
      let parent;
      if (inItem) {
        if (itemDash && ind === col) continue; // a sibling item
        parent = itemDash ? keyCol <= col : ind <= col;
      } else {
        if (itemDash && keyCol === col) { path.unshift("[]"); col = ind; inItem = true; mine = false; continue; }
        parent = keyCol < col;
      }
      if (!parent) continue;
      mine = false;
      if (!found || !opensBlock(found[2])) return null; // under a scalar or a block of text
      path.unshift(unquote(found[1]));
      col = ind;
      inItem = false;
      if (itemDash) { path.unshift("[]"); inItem = true; }
    }
    if (mode === "value") path.push(key);
    return { path, mode, key, prefix, from: offset - prefix.length, to: offset, indent, siblings };
  }

  // the keys written after the cursor's line in the same mapping (key column `indent`)
  function siblingsBelow(text, offset, indent) {
    const found = [];
    const end = text.indexOf("\n", offset);
    if (end < 0) return found;
    for (const line of text.slice(end + 1).split("\n")) {
      const trimmed = line.trim();
      if (!trimmed || trimmed.startsWith("#")) continue;
      if (line.startsWith("---") || line.startsWith("...")) break;
      const [, spaces, itemDash, content] = LINE.exec(line);
      if (spaces.length < indent) break; // the mapping (or its list item) ended
      const key = spaces.length === indent && !itemDash ? KEY.exec(content) : null; // (a dash here: a value's list)
      if (key) found.push(unquote(key[1]));
    }
    return found;
  }

  function nodeAt(tree, path) {
    let node = tree;
    for (const part of path) {
      if (!node) return null;
      if (part === "[]") node = node.items || null;
      else if (node.keys && Object.prototype.hasOwnProperty.call(node.keys, part)) node = node.keys[part];
      else node = node.any_key || null;
    }
    return node || null;
  }

  function scalar(value) {
    if (value === null) return "null";
    if (typeof value !== "string") return String(value);
    return PLAIN.test(value) && !RESERVED.test(value) ? value : JSON.stringify(value);
  }

  function kinds(node) {
    return (node && node.type ? node.type : "").split("|");
  }

  // What fits at `at` (a yamlPathAt answer): [{label, detail, description, insert}], best first.
  // With `auto` (proposals while typing) a value position is proposed only an enum.
  function proposals(tree, at, auto) {
    if (!tree || !at) return [];
    const node = nodeAt(tree, at.path);
    if (!node) return [];
    const typed = at.prefix.toLowerCase();
    const rank = (label) => (label.toLowerCase().startsWith(typed) ? 0 : label.toLowerCase().includes(typed) ? 1 : 2);
    if (at.mode === "key") {
      if (!node.keys) return [];
      const child = " ".repeat(at.indent + 2);
      const written = new Set(at.siblings || []);
      return Object.entries(node.keys)
        .filter(([name]) => !written.has(name)) // a key only once per mapping
        .map(([name, sub]) => {
          const type = kinds(sub);
          const label = name;
          const written = PLAIN.test(name) ? name : JSON.stringify(name);
          const insert = type.includes("object") ? `${written}:\n${child}`
            : type.includes("array") ? `${written}:\n${child}- ` : `${written}: `;
          return { label, detail: sub.type || "", description: sub.description || "", insert, rank: rank(label), reopen: type.includes("object") || type.includes("array") || (sub.enum || []).length > 0 };
        })
        .filter((p) => p.rank < 2)
        .sort((a, b) => a.rank - b.rank);
    }
    const values = node.enum && node.enum.length ? node.enum : auto || !("default" in node) ? [] : [node.default];
    return values
      .map((value) => {
        const label = scalar(value);
        const detail = node.enum ? (value === node.default ? "default" : "") : "default";
        return { label, detail, description: node.description || "", insert: label, rank: rank(label), reopen: false };
      })
      .filter((p) => p.rank < 2 && !(auto && p.label === at.prefix)) // typed out: Enter is a new line
      .sort((a, b) => a.rank - b.rank);
  }

  // The widget on `area` (a textarea), listing into `list` (an empty <ul role="listbox">), counting
  // into `status` (a polite live region); `treeOf()` answers the current completion tree or null.
  function attach(area, list, status, treeOf) {
    let items = [];
    let active = -1;
    let at = null;

    function close() {
      items = [];
      active = -1;
      list.hidden = true;
      list.replaceChildren();
      area.removeAttribute("aria-activedescendant");
    }

    function render() {
      list.replaceChildren(...items.map((p, i) => el("li", {
        id: `${list.id}-${i}`, role: "option", "data-index": String(i), "aria-selected": i === active ? "true" : "false",
      }, el("span", { class: "label", text: p.label }), el("span", { class: "type", text: p.detail }),
      p.description ? el("span", { class: "desc", text: p.description }) : null)));
      list.hidden = false;
      area.setAttribute("aria-activedescendant", `${list.id}-${active}`);
      const option = document.getElementById(`${list.id}-${active}`);
      if (option && option.scrollIntoView) option.scrollIntoView({ block: "nearest" });
    }

    function open(force) {
      const tree = treeOf();
      at = tree && area.selectionStart === area.selectionEnd ? yamlPathAt(area.value, area.selectionStart) : null;
      const typing = at && (at.mode === "value" || at.prefix);
      items = at && (force || typing) ? proposals(tree, at, !force) : [];
      if (!items.length) { close(); return; }
      active = 0;
      render();
      status.textContent = `${items.length} ${items.length === 1 ? "proposal" : "proposals"}: ${items[0].label}`;
    }

    function insert(index) {
      const chosen = items[index];
      if (!chosen || !at) return;
      area.value = area.value.slice(0, at.from) + chosen.insert + area.value.slice(at.to);
      const caret = at.from + chosen.insert.length;
      area.setSelectionRange(caret, caret);
      close();
      status.textContent = `inserted ${chosen.label}`;
      area.dispatchEvent(new Event("input", { bubbles: true })); // the values are checked again
      if (chosen.reopen) open(true); else close();
    }

    area.addEventListener("keydown", (e) => {
      if (e.key === " " && e.ctrlKey) { e.preventDefault(); open(true); return; }
      if (list.hidden) return;
      if (e.key === "ArrowDown" || e.key === "ArrowUp") {
        e.preventDefault();
        active = (active + (e.key === "ArrowDown" ? 1 : items.length - 1)) % items.length;
        render();
        status.textContent = items[active].label;
      } else if (e.key === "Enter" || e.key === "Tab") {
        e.preventDefault();
        insert(active);
      } else if (e.key === "Escape") {
        e.preventDefault();
        e.stopPropagation();
        close();
      } else if (["ArrowLeft", "ArrowRight", "Home", "End", "PageUp", "PageDown"].includes(e.key)) {
        close();
      }
    });
    area.addEventListener("input", (e) => { if (e.isTrusted) open(false); });
    area.addEventListener("blur", close);
    area.addEventListener("click", close);
    list.addEventListener("mousedown", (e) => {
      const option = e.target.closest("[role=option]");
      if (!option) return;
      e.preventDefault(); // the textarea keeps the focus
      insert(Number(option.dataset.index));
    });
    return { open, close };
  }

  return { yamlPathAt, nodeAt, proposals, attach };
})();
