// A tiny DOM builder: elements from a tag, attributes and children, text always as text nodes (never
// parsed as HTML), so nothing the API or a user types can inject markup.

export type Child = Node | string | number | null | undefined | false;
export type Attrs = Record<string, string | number | boolean | null | undefined | EventListener>;

/** Build an element: `on*` attributes with a function become listeners, `false`/`null` are left out. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) {
    if (value === null || value === undefined || value === false) continue;
    if (typeof value === "function") element.addEventListener(name.slice(2).toLowerCase(), value);
    else if (value === true) element.setAttribute(name, "");
    else element.setAttribute(name, String(value));
  }
  append(element, children);
  return element;
}

/** Append children (strings and numbers as text) to `parent`. */
export function append(parent: Node, children: Child[]): void {
  for (const child of children) {
    if (child === null || child === undefined || child === false) continue;
    parent.appendChild(typeof child === "object" ? child : document.createTextNode(String(child)));
  }
}

/** Replace everything inside `parent` with `children`. */
export function replace(parent: Element, ...children: Child[]): void {
  parent.replaceChildren();
  append(parent, children);
}

/** A message paragraph for an error, in words, with a stable test id. */
export function errorBox(message: string, testid = "error"): HTMLElement {
  return h("p", { class: "error", role: "alert", "data-testid": testid }, message);
}

/** A table from a header row and body rows; `rowAttrs` gives each body row its attributes. */
export function table(headers: string[], rows: Child[][], attrs: Attrs = {}, rowAttrs?: (i: number) => Attrs): HTMLElement {
  return h("div", { class: "table-wrap" },
    h("table", attrs,
      h("thead", {}, h("tr", {}, ...headers.map((text) => h("th", { scope: "col" }, text)))),
      h("tbody", {}, ...rows.map((cells, i) => h("tr", rowAttrs ? rowAttrs(i) : {},
        ...cells.map((c, j) => h("td", { "data-label": headers[j] }, c)))))));
}
