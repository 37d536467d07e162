import { join } from "node:path";
import ts from "typescript";
import { topLevelNames, type NameKind } from "./cell-transform.ts";

/**
 * Type-checking across cells with one LanguageService. Each checked cell is a module (top-level await
 * needs one) ending in `export { <its names> }`. Once it passes, its declaration output replaces it
 * (`__ktu_cell_N.d.ts`), and a global scope file re-exports every name from the latest cell that
 * declared it:
 *
 *   import * as __c3 from "./__ktu_cell_3";
 *   declare global { export import x = __c3.x; }
 *
 * so later cells see values, types and namespaces alike, and a cell that declares `x` again simply
 * shadows the global alias (a re-run cell never collides with itself).
 */
export interface CellDiagnostic {
  line: number; // 1-based, in the cell
  column: number; // 1-based
  code: number;
  message: string;
}

// An untyped JavaScript package is allowed (as `any`), as in a REPL.
const IGNORED_CODES = new Set([7016]);

function cachedIfInstalled<T>(cache: Map<string, T>, name: string, read: (name: string) => T): T {
  if (!name.includes("/node_modules/")) return read(name);
  if (!cache.has(name)) cache.set(name, read(name));
  return cache.get(name) as T;
}

export class CellTypeChecker {
  private readonly files = new Map<string, { text: string; version: number }>();
  private readonly scope = new Map<string, { cell: number; kind: NameKind }>(); // from the cell that declared it last
  private readonly service: ts.LanguageService;
  private readonly options: ts.CompilerOptions;
  private readonly scopeFile: string;
  private readonly globalsFile: string;
  private readonly editFile: string;
  private readonly checkFile: string;
  private scopeVersion = 0;
  private readonly passed = new Set<string>();
  // Installed packages do not change while the kernel runs; the notebook's own files may.
  private readonly reads = new Map<string, string | undefined>();
  private readonly exists = new Map<string, boolean>();
  private readonly dirs = new Map<string, boolean>();
  private readonly snapshots = new Map<string, { version: string; snapshot: ts.IScriptSnapshot }>();
  private readonly resolutionCache: ts.ModuleResolutionCache;
  private readonly anchor: string;

  constructor(
    private readonly cwd: string,
    repoRoot: string,
    globalsDeclarations: string,
  ) {
    this.scopeFile = join(cwd, "__ktu_scope.d.ts");
    this.globalsFile = join(cwd, "__ktu_globals.d.ts");
    this.editFile = join(cwd, "__ktu_edit.ts");
    this.checkFile = join(cwd, "__ktu_check.ts");
    this.anchor = join(repoRoot, "kernel", "__anchor.ts");
    this.options = {
      target: ts.ScriptTarget.ES2022,
      lib: ["lib.es2023.d.ts"],
      module: ts.ModuleKind.ESNext,
      moduleResolution: ts.ModuleResolutionKind.Bundler,
      strict: true,
      skipLibCheck: true,
      esModuleInterop: true,
      allowImportingTsExtensions: true,
      resolveJsonModule: true,
      declaration: true,
      emitDeclarationOnly: true,
      types: ["node"],
      typeRoots: [join(repoRoot, "node_modules", "@types")],
      paths: {
        tslab: [join(repoRoot, "kernel", "tslab.ts")],
        "know-the-unknown": [join(repoRoot, "src", "index.ts")],
        "know-the-unknown/kernel": [join(repoRoot, "kernel", "api.ts")],
      },
    };
    this.setFile(this.globalsFile, globalsDeclarations);
    this.setFile(this.scopeFile, "export {};\n");
    // getModuleResolutionCache is read by the language service although its host type does not list it.
    const host: ts.LanguageServiceHost & { getModuleResolutionCache(): ts.ModuleResolutionCache } = {
      getCompilationSettings: () => this.options,
      // Earlier cells' declarations come in through the scope file's imports, not as roots.
      getScriptFileNames: () => [...this.files.keys()].filter((name) => !/__ktu_cell_\d+\.d\.ts$/.test(name)),
      getScriptVersion: (name) => {
        const file = this.files.get(name);
        if (file) return String(file.version);
        // The notebook's own modules may be edited while the kernel runs; installed packages are not.
        return name.includes("/node_modules/") ? "0" : String(ts.sys.getModifiedTime?.(name)?.getTime() ?? 0);
      },
      getScriptSnapshot: (name) => {
        const file = this.files.get(name);
        if (file) return ts.ScriptSnapshot.fromString(file.text);
        const version = host.getScriptVersion(name);
        const cached = this.snapshots.get(name);
        if (cached?.version === version) return cached.snapshot;
        const text = ts.sys.readFile(name);
        if (text === undefined) return undefined;
        const snapshot = ts.ScriptSnapshot.fromString(text);
        this.snapshots.set(name, { version, snapshot });
        return snapshot;
      },
      getCurrentDirectory: () => this.cwd,
      getDefaultLibFileName: (options) => ts.getDefaultLibFilePath(options),
      fileExists: (name) => this.files.has(name) || cachedIfInstalled(this.exists, name, ts.sys.fileExists),
      readFile: (name) => this.files.get(name)?.text ?? cachedIfInstalled(this.reads, name, ts.sys.readFile),
      directoryExists: (name) => cachedIfInstalled(this.dirs, name, ts.sys.directoryExists),
      getDirectories: (name) => ts.sys.getDirectories(name),
      realpath: ts.sys.realpath,
      // Shared with resolution, so package.json lookups (which every program repeats) are answered once.
      getModuleResolutionCache: () => this.resolutionCache,
      resolveModuleNameLiterals: (literals, containingFile, _redirected, options) =>
        literals.map((literal) => {
          const resolved = ts.resolveModuleName(literal.text, containingFile, options, host, this.resolutionCache);
          // Packages the notebook's folder lacks come from the kernel's own node_modules.
          if (resolved.resolvedModule || literal.text.startsWith(".")) return resolved;
          return ts.resolveModuleName(literal.text, this.anchor, options, host, this.resolutionCache);
        }),
    };
    this.resolutionCache = ts.createModuleResolutionCache(cwd, (name) => name, this.options);
    this.service = ts.createLanguageService(host, ts.createDocumentRegistry());
  }

  private setFile(name: string, text: string): void {
    const old = this.files.get(name);
    if (old?.text === text) return;
    this.files.set(name, { text, version: (old?.version ?? 0) + 1 });
  }

  /**
   * Type errors of cell `n` (empty when it passes, in which case its names enter the scope). Cells are
   * checked under one file name, so the program keeps its shape from cell to cell; a cell that the
   * same scope already passed is not checked again (re-running an unchanged cell is the common case).
   */
  check(n: number, code: string): CellDiagnostic[] {
    const key = `${this.scopeVersion}\u0000${code}`;
    if (this.passed.has(key)) return [];
    const sourceFile = ts.createSourceFile("cell.ts", code, ts.ScriptTarget.ES2022, false, ts.ScriptKind.TS);
    const names = topLevelNames(sourceFile);
    this.setFile(this.checkFile, `${code}\n;export { ${[...names.keys()].join(", ")} };\n`);
    const diagnostics = [...this.service.getSyntacticDiagnostics(this.checkFile), ...this.service.getSemanticDiagnostics(this.checkFile)].filter(
      (d) => d.category === ts.DiagnosticCategory.Error && !IGNORED_CODES.has(d.code),
    );
    if (diagnostics.length > 0) return diagnostics.map((d) => this.toCellDiagnostic(d, code));
    if (names.size === 0) {
      if (this.passed.size > 1000) this.passed.clear();
      this.passed.add(key);
      return [];
    }
    const output = this.service.getEmitOutput(this.checkFile, true).outputFiles.find((o) => o.name.endsWith(".d.ts"));
    if (output) {
      this.setFile(join(this.cwd, `__ktu_cell_${n}.d.ts`), output.text);
      for (const [name, kind] of names) this.scope.set(name, { cell: n, kind });
      this.rebuildScope();
    }
    return [];
  }

  private rebuildScope(): void {
    const cells = [...new Set([...this.scope.values()].map((entry) => entry.cell))].sort((a, b) => a - b);
    for (const name of [...this.files.keys()]) {
      const match = /__ktu_cell_(\d+)\.d\.ts$/.exec(name);
      if (match && !cells.includes(Number(match[1]))) this.files.delete(name);
    }
    const imports = cells.map((n) => `import * as __c${n} from "./__ktu_cell_${n}";`).join("\n");
    // Variables are re-declared by type (an import alias could not be assigned to); the rest is aliased.
    const aliases = [...this.scope]
      .map(([name, { cell, kind }]) => (kind === "alias" ? `  export import ${name} = __c${cell}.${name};` : `  ${kind === "let" ? "var" : "const"} ${name}: typeof __c${cell}.${name};`))
      .join("\n");
    this.setFile(this.scopeFile, `${imports}\ndeclare global {\n${aliases}\n}\nexport {};\n`);
    this.scopeVersion++;
  }

  private toCellDiagnostic(d: ts.Diagnostic, code: string): CellDiagnostic {
    const message = ts.flattenDiagnosticMessageText(d.messageText, "\n");
    if (d.start === undefined) return { line: 1, column: 1, code: d.code, message };
    const start = Math.min(d.start, code.length);
    const before = code.slice(0, start);
    const line = before.split("\n").length;
    const column = start - (before.lastIndexOf("\n") + 1) + 1;
    return { line, column, code: d.code, message };
  }

  private edit(code: string): string {
    this.setFile(this.editFile, `${code}\n;export {};\n`);
    return this.editFile;
  }

  /** Completions at a UTF-16 offset: names starting with the identifier typed so far. */
  complete(code: string, offset: number): { matches: string[]; start: number; end: number } {
    let start = offset;
    while (start > 0 && /[\w$]/.test(code[start - 1]!)) start--;
    let end = offset;
    while (end < code.length && /[\w$]/.test(code[end]!)) end++;
    const prefix = code.slice(start, offset);
    const file = this.edit(code);
    const completions = this.service.getCompletionsAtPosition(file, offset, { includeCompletionsForModuleExports: false });
    const entries = (completions?.entries ?? [])
      .filter((e) => e.name.startsWith(prefix) && !e.name.startsWith("__ktu") && !e.name.startsWith("__c"))
      .sort((a, b) => (a.sortText === b.sortText ? a.name.localeCompare(b.name) : a.sortText < b.sortText ? -1 : 1));
    return { matches: [...new Set(entries.map((e) => e.name))], start, end };
  }

  /** Quick info (signature and docs) of the name at or just before a UTF-16 offset. */
  inspect(code: string, offset: number): string | undefined {
    const file = this.edit(code);
    for (const at of [offset, offset - 1]) {
      if (at < 0) continue;
      const info = this.service.getQuickInfoAtPosition(file, at);
      if (!info) continue;
      const signature = ts.displayPartsToString(info.displayParts);
      const docs = ts.displayPartsToString(info.documentation);
      const tags = (info.tags ?? []).map((tag) => `@${tag.name} ${ts.displayPartsToString(tag.text)}`).join("\n");
      return [signature, docs, tags].filter((part) => part !== "").join("\n\n");
    }
    return undefined;
  }
}
