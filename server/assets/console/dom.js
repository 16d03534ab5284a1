// Building the page: elements from a tag, attributes and children.

/// `el("button", { class: "x", onclick: f }, "text", child)`. Attributes
/// that are null or false are left out; `on…` ones become listeners.
export function el(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (value === null || value === undefined || value === false) continue;
    if (name.startsWith("on")) element.addEventListener(name.slice(2), value);
    else if (name === "dataset") Object.assign(element.dataset, value);
    else element.setAttribute(name, value === true ? "" : value);
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    if (Array.isArray(child)) append(element, child);
    else element.append(child instanceof Node ? child : String(child));
  }
}

/// A labelled form field; `problem` is shown under it when there is one.
export function field(labelText, input, name) {
  return el(
    "div",
    { class: "field", dataset: name ? { field: name } : {} },
    el("label", { for: input.id }, labelText),
    input,
    el("p", { class: "field-problem", role: "alert", hidden: true }),
  );
}

/// A `<select>` of `options` ([value, text] pairs).
export function select(id, options, selected, extra = {}) {
  return el(
    "select",
    { id, name: id, ...extra },
    options.map(([value, text]) => el("option", { value, selected: value === selected }, text)),
  );
}

/// A table with a header row and one row per item.
export function table(headers, rows, extra = {}) {
  return el(
    "div",
    { class: "table-scroll" },
    el(
      "table",
      extra,
      el("thead", {}, el("tr", {}, headers.map((header) => el("th", { scope: "col" }, header)))),
      el("tbody", {}, rows),
    ),
  );
}
