// A Node module-loader hook: import JSON files as JSON.
//
// @actions/workflow-parser's dist/ does `import Schema from "../workflow-v1.0.min.json"`
// without the `with { type: "json" }` attribute that Node requires, so Node refuses to
// load it. This hook adds the attribute to every import of a .json file; nothing else
// changes. register.mjs installs it (`node --import ./register.mjs ...`).

export async function resolve(specifier, context, nextResolve) {
  const resolved = await nextResolve(specifier, context);
  if (!new URL(resolved.url).pathname.endsWith(".json")) {
    return resolved;
  }
  return { ...resolved, importAttributes: { ...resolved.importAttributes, type: "json" } };
}

export async function load(url, context, nextLoad) {
  if (!new URL(url).pathname.endsWith(".json")) {
    return nextLoad(url, context);
  }
  return nextLoad(url, {
    ...context,
    format: "json",
    importAttributes: { ...context.importAttributes, type: "json" },
  });
}
