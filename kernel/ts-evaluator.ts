import { createRequire } from "node:module";
import { join } from "node:path";
import { inspect } from "node:util";
import vm from "node:vm";
import type ts from "typescript";
import { repoRoot } from "../src/util/paths.ts";
import type { CellTransformResult } from "./cell-transform.ts";
import { Display, display, mimeBundleOf, PLOTLY_MIME, Progress } from "./display.ts";
import type { ErrorInfo, ExecuteOutcome, Interpreter, LanguageInfo } from "./interpreter.ts";
import { checkInterrupt, interruptibleIterable, KernelInterrupt, RUNTIME, startCellClock, stopCellClock, yieldIfStarved, type ExecutionState, type MimeBundle } from "./io.ts";
import { decodeMappings, originalPosition, type LineMappings } from "./source-map.ts";
import type { CellDiagnostic, CellTypeChecker } from "./ts-service.ts";

const requireHere = createRequire(import.meta.url);
const TS_VERSION = (requireHere("typescript/package.json") as { version: string }).version;
const PACKAGE_VERSION = (requireHere("../package.json") as { version: string }).version;

/** Names every cell sees without importing them (the same as `know-the-unknown/kernel`'s exports). */
const GLOBAL_NAMES = ["display", "newDisplay", "clearOutput", "progress", "input", "password", "interruptSignal", "comms"] as const;

// On the first line, so that only line 1's columns shift: the source map offset stays trivial.
const KERNEL_DIR = join(repoRoot, "kernel") + "/";
const PREFIX = '(async function () { "use strict"; ';

interface Compiled {
  js: string;
  result: CellTransformResult;
  mappings: LineMappings | undefined;
}

/** TypeScript cells, type-checked across cells and run in the kernel's own realm. */
export class TypeScriptInterpreter implements Interpreter {
  readonly implementation = "know-the-unknown";
  readonly implementationVersion = PACKAGE_VERSION;
  readonly languageInfo: LanguageInfo = {
    name: "typescript",
    version: TS_VERSION,
    mimetype: "text/typescript",
    file_extension: ".ts",
    pygments_lexer: "typescript",
    // `mode` selects TypeScript in JupyterLab; `name` + `typescript` in classic Notebook (as tslab does).
    codemirror_mode: { mode: "typescript", name: "javascript", typescript: true },
    nbconvert_exporter: "script",
  };
  readonly banner = `know-the-unknown TypeScript kernel ${PACKAGE_VERSION} (TypeScript ${TS_VERSION}, Node ${process.version})`;

  private tsModule: typeof ts | undefined;
  private checkerInstance: CellTypeChecker | undefined;
  private readonly declared = new Set<string>();
  private readonly maps = new Map<number, LineMappings>();
  private readonly cwd = process.cwd();
  private readonly compiled = new Map<string, Compiled>();
  /** The namespaces of the running cell's imports, loaded before it runs. */
  private readonly modules = new Map<string, unknown>();
  private transform: typeof import("./cell-transform.ts") | undefined;

  constructor() {
    const modules = this.modules;
    const runtime = { ck: checkInterrupt, aw: yieldIfStarved, iter: interruptibleIterable, module: (specifier: string): unknown => modules.get(specifier) };
    Object.defineProperty(globalThis, RUNTIME, { value: runtime, enumerable: false, configurable: true });
    Object.defineProperty(globalThis, "require", { value: createRequire(join(this.cwd, "__ktu_cell.js")), enumerable: false, configurable: true, writable: true });
  }

  /** The display API as globals; loaded lazily, since it pulls in the plotly module. */
  private async installGlobals(): Promise<void> {
    const api = (await import("./api.ts")) as unknown as Record<string, unknown>;
    for (const name of GLOBAL_NAMES) Object.defineProperty(globalThis, name, { value: api[name], enumerable: false, configurable: true, writable: true });
  }

  private async load(): Promise<{ ts: typeof ts; checker: CellTypeChecker }> {
    if (!this.tsModule || !this.checkerInstance) {
      const [tsModule, { CellTypeChecker }, transform] = await Promise.all([import("typescript"), import("./ts-service.ts"), import("./cell-transform.ts"), this.installGlobals()]);
      this.transform = transform;
      this.tsModule = (tsModule as unknown as { default: typeof ts }).default ?? (tsModule as unknown as typeof ts);
      const apiPath = join(repoRoot, "kernel", "api.ts");
      const globals = `declare global {\n${GLOBAL_NAMES.map((n) => `  const ${n}: typeof import(${JSON.stringify(apiPath)}).${n};`).join("\n")}\n}\nexport {};\n`;
      this.checkerInstance = new CellTypeChecker(this.cwd, repoRoot, globals);
    }
    return { ts: this.tsModule, checker: this.checkerInstance };
  }

  async warmUp(): Promise<void> {
    const { checker } = await this.load();
    checker.check(0, "const __ktu_warm: number = Math.max(1, 2);");
  }

  private cellFile = (cell: number): string => join(this.cwd, `__ktu_cell_${cell}.ts`);

  /** import() from a script named like the cell, so specifiers resolve from the notebook's folder. */
  private async loadModules(specifiers: string[], cell: number): Promise<void> {
    this.modules.clear();
    if (specifiers.length === 0) return;
    const load = new vm.Script("(specifiers) => Promise.all(specifiers.map((s) => import(s)))", {
      filename: this.cellFile(cell),
      importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER as never,
    }).runInThisContext() as (specifiers: string[]) => Promise<unknown[]>;
    const namespaces = await load(specifiers);
    specifiers.forEach((specifier, i) => this.modules.set(specifier, namespaces[i]));
  }

  /** TypeScript to the rewritten script; the same code always compiles the same, so it is cached. */
  private compile(tsModule: typeof ts, code: string, cell: number): Compiled {
    const cached = this.compiled.get(code);
    if (cached) return cached;
    const result: CellTransformResult = { declared: [], hasValue: false, imports: [] };
    const output = tsModule.transpileModule(code, {
      fileName: `cell-${cell}.ts`,
      compilerOptions: { target: tsModule.ScriptTarget.ES2022, module: tsModule.ModuleKind.ESNext, verbatimModuleSyntax: true, sourceMap: true, esModuleInterop: true },
      transformers: { after: [this.transform!.cellTransformer(result)] },
    });
    const compiled: Compiled = {
      js: output.outputText.replace(/\/\/# sourceMappingURL=.*\s*$/, ""),
      result,
      mappings: output.sourceMapText ? decodeMappings((JSON.parse(output.sourceMapText) as { mappings: string }).mappings) : undefined,
    };
    if (this.compiled.size > 500) this.compiled.clear();
    this.compiled.set(code, compiled);
    return compiled;
  }

  async execute(code: string, cell: number, state: ExecutionState): Promise<ExecuteOutcome> {
    const { ts, checker } = await this.load();
    const diagnostics = checker.check(cell, code);
    if (diagnostics.length > 0) return this.typeError(cell, code, diagnostics);

    const { js, result, mappings } = this.compile(ts, code, cell);
    if (mappings) this.maps.set(cell, mappings);

    try {
      const fresh = result.declared.filter((name) => !this.declared.has(name));
      if (fresh.length > 0) {
        vm.runInThisContext(`let ${fresh.join(", ")};`, { filename: "kernel-declarations" });
        for (const name of fresh) this.declared.add(name);
      }
      // Called inside the script, so the synchronous part of the cell runs under breakOnSigint.
      const script = new vm.Script(`${PREFIX}${js}\n}).call(undefined)`, {
        filename: this.cellFile(cell),
        importModuleDynamically: vm.constants.USE_MAIN_CONTEXT_DEFAULT_LOADER as never,
      });
      await this.loadModules(result.imports, cell);
      // A SIGINT that came while the cell was checked and compiled waits in libuv's signal pipe, which
      // only a poll phase reads: two immediates let one pass, as late as possible before the cell runs
      // (a signal in the few microseconds after that is lost to a synchronous loop).
      for (let i = 0; i < 2; i++) await new Promise((resolve) => setImmediate(resolve));
      if (state.interrupted) throw new KernelInterrupt();
      startCellClock();
      let returned: [unknown] | undefined;
      try {
        const run = script.runInThisContext({ breakOnSigint: true }) as Promise<[unknown] | undefined>;
        const interrupted = new Promise<never>((_, reject) => state.onInterrupt.add(() => reject(new KernelInterrupt())));
        returned = await Promise.race([run, interrupted]);
      } finally {
        stopCellClock();
      }
      // Display calls return handles; like Python's display(), they are not the cell's value.
      if (!result.hasValue || !returned || returned[0] === undefined || returned[0] instanceof Display || returned[0] instanceof Progress) return { status: "ok" };
      const value = await mimeBundleOf(returned[0]);
      // A figure is shown at once as a display whose PNG follows (a display_data, which can be updated).
      if (value[PLOTLY_MIME] !== undefined && value["image/png"] === undefined) {
        display.raw(value);
        return { status: "ok" };
      }
      return { status: "ok", value };
    } catch (error) {
      return { status: "error", ...this.runtimeError(error) };
    }
  }

  async evaluateExpression(expression: string): Promise<{ status: "ok"; data: MimeBundle; metadata: Record<string, unknown> } | ({ status: "error" } & ErrorInfo)> {
    const { ts } = await this.load();
    try {
      const js = ts.transpileModule(`(${expression})`, { compilerOptions: { target: ts.ScriptTarget.ES2022 } }).outputText;
      const value: unknown = vm.runInThisContext(js, { filename: "user_expression" });
      return { status: "ok", data: await mimeBundleOf(value), metadata: {} };
    } catch (error) {
      return { status: "error", ...this.runtimeError(error) };
    }
  }

  private typeError(cell: number, code: string, diagnostics: CellDiagnostic[]): ExecuteOutcome {
    const lines = code.split("\n");
    const traceback: string[] = [];
    for (const d of diagnostics) {
      traceback.push(`cell ${cell}, line ${d.line}, col ${d.column}: error TS${d.code}: ${d.message}`);
      const source = lines[d.line - 1];
      if (source !== undefined) traceback.push(`    ${source}`, `    ${" ".repeat(Math.max(0, d.column - 1))}^`);
    }
    const first = diagnostics[0]!;
    const more = diagnostics.length > 1 ? ` (and ${diagnostics.length - 1} more)` : "";
    return { status: "error", ename: "TSError", evalue: `line ${first.line}: ${first.message}${more}`, traceback };
  }

  /** ename/evalue/traceback for anything a cell throws, with cell frames mapped to cell lines. */
  private runtimeError(error: unknown): ErrorInfo {
    if (error instanceof Error && /Script execution was interrupted by `SIGINT`/.test(error.message)) error = new KernelInterrupt();
    if (!(error instanceof Error)) {
      const text = inspect(error, { depth: 3 });
      return { ename: "Uncaught", evalue: text, traceback: [`Uncaught ${text} (a thrown value that is not an Error)`] };
    }
    const ename = error.name || error.constructor?.name || "Error";
    const evalue = error.message;
    const frames: string[] = [];
    for (const line of (error.stack ?? "").split("\n")) {
      if (!/^\s+at /.test(line)) continue;
      // The kernel's own frames (and Node's) end the part of the stack that the user wrote.
      if (!/__ktu_cell_\d+\.ts/.test(line) && (line.includes(KERNEL_DIR) || /node:internal|kernel-declarations/.test(line))) break;
      frames.push(this.mapFrame(line));
    }
    if (error instanceof KernelInterrupt) frames.length = 0;
    return { ename, evalue, traceback: [`${ename}: ${evalue}`, ...frames] };
  }

  private mapFrame(frame: string): string {
    return frame.replace(/([^\s(]*__ktu_cell_(\d+)\.ts):(\d+):(\d+)/, (_all, _file: string, cell: string, line: string, column: string) => {
      const generatedLine = Number(line) - 1;
      const generatedColumn = Number(column) - 1 - (generatedLine === 0 ? PREFIX.length : 0);
      const mappings = this.maps.get(Number(cell));
      const position = mappings && originalPosition(mappings, generatedLine, Math.max(0, generatedColumn));
      return position ? `cell ${cell}, line ${position.line + 1}, col ${position.column + 1}` : `cell ${cell}`;
    });
  }

  /** A request that comes before the type checker has loaded waits for it rather than answering nothing. */
  async complete(code: string, offset: number): Promise<{ matches: string[]; start: number; end: number }> {
    const { checker } = await this.load();
    return checker.complete(code, offset);
  }

  async inspect(code: string, offset: number): Promise<MimeBundle | undefined> {
    const { checker } = await this.load();
    const text = checker.inspect(code, offset);
    return text === undefined ? undefined : { "text/plain": text };
  }

  isComplete(code: string): { status: "complete" | "incomplete" | "invalid" | "unknown"; indent?: string } {
    if (!this.tsModule) return { status: "unknown" };
    return isCompleteCode(this.tsModule, code);
  }

  async shutdown(): Promise<void> {
    const { closePlotlyRenderer } = await import("../src/viz/plotly.ts");
    await closePlotlyRenderer();
  }
}

/**
 * Complete when it parses; incomplete when every problem sits at the very end (an open bracket,
 * template or comment: more lines would finish it); invalid otherwise (an unterminated string
 * cannot be finished on a later line).
 */
export function isCompleteCode(tsModule: typeof ts, code: string): { status: "complete" | "incomplete" | "invalid"; indent?: string } {
  if (code.trim() === "") return { status: "complete" };
  const sourceFile = tsModule.createSourceFile("cell.ts", code, tsModule.ScriptTarget.ES2022, false, tsModule.ScriptKind.TS);
  const diagnostics = (sourceFile as unknown as { parseDiagnostics?: ts.Diagnostic[] }).parseDiagnostics ?? [];
  if (diagnostics.length === 0) return { status: "complete" };
  const end = code.trimEnd().length;
  const UNTERMINATED_STRING = 1002;
  if (diagnostics.some((d) => d.code === UNTERMINATED_STRING) || !diagnostics.every((d) => (d.start ?? 0) >= end)) return { status: "invalid" };
  let depth = 0;
  const scanner = tsModule.createScanner(tsModule.ScriptTarget.ES2022, false, tsModule.LanguageVariant.Standard, code);
  for (let token = scanner.scan(); token !== tsModule.SyntaxKind.EndOfFileToken; token = scanner.scan()) {
    if (token === tsModule.SyntaxKind.OpenBraceToken || token === tsModule.SyntaxKind.OpenParenToken || token === tsModule.SyntaxKind.OpenBracketToken) depth++;
    if (token === tsModule.SyntaxKind.CloseBraceToken || token === tsModule.SyntaxKind.CloseParenToken || token === tsModule.SyntaxKind.CloseBracketToken) depth--;
  }
  const lastLine = code.slice(code.lastIndexOf("\n") + 1);
  return { status: "incomplete", indent: lastLine.match(/^\s*/)![0] + (depth > 0 ? "  " : "") };
}
