// Finds elements for Cartwright's engine. Called with a spec:
//   { alternatives: [selector…], want: "visible" | "clickable" | "any",
//     read: null | "text" | "value" | "attribute:<name>" | "html", all: bool, mark: bool, index: n }
// Selectors: {kind:"css", css, within}, {kind:"xpath", xpath}, {kind:"text", text, role,
// contains, within}, {kind:"aria", label, contains, within}; `within` is a list of selectors.
// Returns { count, ref, values } for the first alternative that matches: `ref` is a token put
// on the element as data-cw-ref so the engine can address it for real mouse and key input.
(spec) => {
  const norm = (s) => (s || "").replace(/\s+/g, " ").trim().toLowerCase();
  const visible = (el) => {
    if (!(el instanceof Element) || el.closest("[hidden]")) return false;
    const r = el.getBoundingClientRect();
    const st = getComputedStyle(el);
    return r.width > 0 && r.height > 0 && st.visibility !== "hidden" && st.display !== "none" && Number(st.opacity) > 0;
  };
  const enabled = (el) => !el.disabled && el.getAttribute("aria-disabled") !== "true";
  const roleSelector = {
    button: "button, [role=button], input[type=button], input[type=submit], a[role=button]",
    link: "a[href], [role=link]",
    field: "input, select, textarea",
  };
  const labelOf = (el) => {
    const parts = [el.getAttribute("aria-label"), el.getAttribute("placeholder"), el.name];
    if (el.id) {
      for (const l of document.querySelectorAll(`label[for="${CSS.escape(el.id)}"]`)) parts.push(l.innerText);
    }
    const wrapping = el.closest("label");
    if (wrapping) parts.push(wrapping.innerText);
    return parts.filter(Boolean).map(norm);
  };
  const textOf = (el) => norm(el.innerText !== undefined ? el.innerText : el.textContent || el.value);
  const matches = (value, want, contains) => (contains ? value.includes(want) : value === want);
  const innermost = (list) => list.filter((el) => !list.some((other) => other !== el && el.contains(other)));

  const scopes = (within) => {
    if (!within || within.length === 0) return [document];
    for (const alt of within) {
      const found = find(alt, [document]).filter(visible);
      if (found.length) return found;
    }
    return [];
  };

  const find = (sel, roots) => {
    const inScopes = (css) => roots.flatMap((r) => [...r.querySelectorAll(css)]);
    switch (sel.kind) {
      case "css":
        return inScopes(sel.css);
      case "xpath": {
        const out = [];
        const r = document.evaluate(sel.xpath, document, null, XPathResult.ORDERED_NODE_SNAPSHOT_TYPE, null);
        for (let i = 0; i < r.snapshotLength; i++) out.push(r.snapshotItem(i));
        return out.filter((n) => n instanceof Element);
      }
      case "text": {
        const want = norm(sel.text);
        if (sel.role === "field") {
          return inScopes(roleSelector.field).filter((el) => labelOf(el).some((l) => matches(l, want, sel.contains)));
        }
        const pool = sel.role ? inScopes(roleSelector[sel.role]) : inScopes("body *");
        const hits = pool.filter((el) => matches(textOf(el), want, sel.contains) || (el.value && matches(norm(el.value), want, sel.contains)));
        return sel.role ? hits : innermost(hits);
      }
      case "aria": {
        const want = norm(sel.label);
        return inScopes("[aria-label], input, select, textarea").filter((el) => labelOf(el).some((l) => matches(l, want, sel.contains)));
      }
      default:
        return [];
    }
  };

  const read = (el) => {
    if (!spec.read || spec.read === "text") return (el.innerText || el.textContent || el.value || "").trim();
    if (spec.read === "value") return el.value === undefined ? "" : String(el.value);
    if (spec.read.startsWith("attribute:")) return el.getAttribute(spec.read.slice(10)) || "";
    if (spec.read === "html") return el.outerHTML.replace(/\s+/g, " ").slice(0, 300);
    return "";
  };

  for (const alt of spec.alternatives) {
    let found = find(alt, scopes(alt.within));
    if (spec.want !== "any") found = found.filter(visible);
    if (spec.want === "clickable") found = found.filter(enabled);
    if (found.length === 0) continue;
    const result = { count: found.length, ref: null, values: [] };
    if (spec.read !== null && spec.read !== undefined) {
      result.values = (spec.all ? found : [found[0]]).map(read);
    }
    if (spec.mark) {
      const token = "cw" + Math.random().toString(36).slice(2);
      const el = found[Math.min(spec.index || 0, found.length - 1)];
      for (const old of document.querySelectorAll("[data-cw-ref]")) old.removeAttribute("data-cw-ref");
      el.setAttribute("data-cw-ref", token);
      result.ref = token;
    }
    return result;
  }
  return { count: 0, ref: null, values: [] };
}
