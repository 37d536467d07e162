// Module resolution hooks for cell imports (registered by kernel/main.ts, run in Node's loader thread).
// - "tslab", "know-the-unknown" and "know-the-unknown/kernel" resolve to the kernel's own modules, so a
//   tslab notebook gets our display API even though the real tslab package is installed.
// - A bare package the notebook's folder cannot find is looked up from the kernel's repository, so
//   notebooks anywhere can import what the project depends on (arquero, @tensorflow/tfjs-core, ...).
let aliases = {};
let fallbackParent = "";

export function initialize(data) {
  aliases = data.aliases;
  fallbackParent = data.fallbackParent;
}

const isBare = (specifier) => !/^(\.{1,2}\/|\/|[a-zA-Z][a-zA-Z0-9+.-]*:)/.test(specifier);

export async function resolve(specifier, context, next) {
  const alias = aliases[specifier];
  // Resolved by the next hooks as a file URL, so tsx still compiles the TypeScript it points to.
  if (alias) return next(alias, context);
  try {
    return await next(specifier, context);
  } catch (error) {
    if (error?.code === "ERR_MODULE_NOT_FOUND" && isBare(specifier) && context.parentURL !== fallbackParent) {
      return next(specifier, { ...context, parentURL: fallbackParent });
    }
    throw error;
  }
}
