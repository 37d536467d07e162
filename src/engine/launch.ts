import { spawn, type ChildProcess } from "node:child_process";
import { createWriteStream, existsSync, readdirSync, readFileSync, rmSync, statSync, type WriteStream } from "node:fs";
import { mkdir } from "node:fs/promises";
import { basename, dirname, join, resolve } from "node:path";
import { toYaml } from "../data/llamafactory.ts";
import { writeFileAtomic } from "../util/fs.ts";
import { UsageError } from "../util/errors.ts";
import { writeDeepspeedConfig, type ZeroStage } from "./deepspeed.ts";
import type { LfCommand } from "./keys.ts";
import { tailTrainerLog, LF_TRAINER_LOG, type TrainerLogRecord } from "./trainer-log.ts";
import { readLfConfigFile, validateLfConfig, type LfConfigRecord } from "./validate.ts";

/** How many GPUs, processes and nodes a run uses; becomes the environment LLaMA-Factory's launcher reads. */
export interface LfTopology {
  /** CUDA_VISIBLE_DEVICES: "0,1", 3 or [0, 1]. */
  gpus?: string | number | readonly number[];
  /** Processes per node (NPROC_PER_NODE); default: the number of GPUs given. */
  nprocPerNode?: number;
  nnodes?: number;
  nodeRank?: number;
  masterAddr?: string;
  masterPort?: number;
  /** FORCE_TORCHRUN=1 even on one process (DeepSpeed needs it). */
  forceTorchrun?: boolean;
}

export interface LfLaunchOptions extends LfTopology {
  /** The llamafactory-cli to run: a path or command words; default $KTU_LLAMAFACTORY_CLI or "llamafactory-cli". */
  cli?: string | readonly string[];
  /** Working directory of the engine; LLaMA-Factory resolves relative paths against it. Default process.cwd(). */
  cwd?: string;
  /** Name shown in job tables; default output_dir's last folder. */
  name?: string;
  /** ZeRO stage: writes the DeepSpeed config into output_dir and sets the `deepspeed:` key. */
  deepspeed?: ZeroStage;
  deepspeedOffload?: boolean;
  /** true: continue from the latest output_dir/checkpoint-N (error if none); "auto": if one exists; a path: that checkpoint. */
  resume?: boolean | "auto" | string;
  /** Extra `key=value` overrides after the YAML path (LLaMA-Factory merges them with OmegaConf). */
  overrides?: Record<string, string | number | boolean>;
  env?: Record<string, string>;
  /** Validate against LLaMA-Factory's keys, dataset_info.json, the model's modules and output_dir first. Default true. */
  validate?: boolean;
  datasetDir?: string;
  /** Where an object config is written; default output_dir/ktu-<command>.yaml. */
  configPath?: string;
  /** Lines of engine output kept in memory (all of it goes to the log file). Default 200. */
  keepLines?: number;
  pollMs?: number;
}

export type LfJobStatus = "running" | "succeeded" | "failed" | "interrupted";

export interface LfJobResult {
  readonly status: Exclude<LfJobStatus, "running">;
  readonly exitCode: number | null;
  readonly signal: NodeJS.Signals | null;
}

/** A failed engine run; the message ends with the last lines of its output. */
export class LfRunError extends Error {
  override name = "LfRunError";
  constructor(
    message: string,
    readonly job: LfJob,
    readonly lastLines: readonly string[],
  ) {
    super(message);
  }
}

const DEFAULT_CLI = "llamafactory-cli";
export const LF_ENGINE_LOG = "ktu-engine.log";

export function resolveLfCli(cli?: string | readonly string[]): string[] {
  if (Array.isArray(cli)) return [...cli];
  const text = (cli as string | undefined) ?? process.env.KTU_LLAMAFACTORY_CLI ?? DEFAULT_CLI;
  return text.trim().split(/\s+/);
}

const gpuList = (gpus: LfTopology["gpus"]): string | undefined =>
  gpus === undefined ? undefined : typeof gpus === "number" ? Array.from({ length: gpus }, (_, i) => i).join(",") : typeof gpus === "string" ? gpus : gpus.join(",");

/**
 * The environment variables LLaMA-Factory's launcher (src/llamafactory/launcher.py) reads to
 * re-execute itself under torchrun: FORCE_TORCHRUN, NNODES, NODE_RANK, NPROC_PER_NODE, MASTER_ADDR, MASTER_PORT.
 */
export function lfLaunchEnv(topology: LfTopology): Record<string, string> {
  const env: Record<string, string> = {};
  const gpus = gpuList(topology.gpus);
  if (gpus !== undefined) env.CUDA_VISIBLE_DEVICES = gpus;
  const nproc = topology.nprocPerNode ?? (gpus === undefined || gpus === "" ? undefined : gpus.split(",").length);
  const nnodes = topology.nnodes ?? 1;
  for (const [name, value] of [["nprocPerNode", nproc], ["nnodes", nnodes], ["nodeRank", topology.nodeRank], ["masterPort", topology.masterPort]] as const) {
    if (value !== undefined && (!Number.isInteger(value) || value < 0)) throw new UsageError(`${name} must be a non-negative integer, got ${value}`);
  }
  if (nnodes > 1 && !topology.masterAddr) throw new UsageError(`a run on ${nnodes} nodes needs masterAddr (MASTER_ADDR), the address of node 0`);
  if (topology.nodeRank !== undefined && topology.nodeRank >= nnodes) throw new UsageError(`nodeRank ${topology.nodeRank} is not below nnodes ${nnodes}`);
  if (topology.forceTorchrun || (nproc ?? 1) > 1 || nnodes > 1) {
    env.FORCE_TORCHRUN = "1";
    if (nproc !== undefined) env.NPROC_PER_NODE = String(nproc);
    env.NNODES = String(nnodes);
    env.NODE_RANK = String(topology.nodeRank ?? 0);
    if (topology.masterAddr) env.MASTER_ADDR = topology.masterAddr;
    if (topology.masterPort !== undefined) env.MASTER_PORT = String(topology.masterPort);
  }
  return env;
}

/** The highest output_dir/checkpoint-N folder, as transformers' get_last_checkpoint picks it. */
export function latestLfCheckpoint(outputDir: string): string | undefined {
  if (!existsSync(outputDir)) return undefined;
  let best: [number, string] | undefined;
  for (const name of readdirSync(outputDir)) {
    const match = /^checkpoint-(\d+)$/.exec(name);
    if (match && statSync(join(outputDir, name)).isDirectory() && (!best || Number(match[1]) > best[0])) best = [Number(match[1]), join(outputDir, name)];
  }
  return best?.[1];
}

const jobs: LfJob[] = [];
/** Every job launched in this process, newest last (what a notebook's job table shows). */
export const lfJobs = (): readonly LfJob[] => jobs;

/** A running or finished `llamafactory-cli train|export` process. */
export class LfJob {
  status: LfJobStatus = "running";
  readonly startedAt = Date.now();
  endedAt: number | undefined;
  /** Every trainer_log.jsonl record this run wrote, in file order. */
  readonly records: TrainerLogRecord[] = [];
  /**
   * A resumed run: the records of the earlier run(s) up to the checkpoint it resumes from (the file
   * was cut there before launch, so no step appears twice). logs() does not replay them.
   */
  readonly history: TrainerLogRecord[] = [];
  readonly done: Promise<LfJobResult>;
  private readonly lines: string[] = [];
  private readonly listeners = new Set<() => void>();
  private interruptRequested = false;
  private exited = false;
  private settled = false;
  private spawnError: Error | undefined;

  constructor(
    readonly name: string,
    readonly command: LfCommand,
    readonly argv: readonly string[],
    readonly configPath: string,
    readonly outputDir: string,
    readonly logPath: string,
    readonly env: Readonly<Record<string, string>>,
    private readonly child: ChildProcess,
    private readonly log: WriteStream,
    private readonly keepLines: number,
    pollMs: number,
    historyCount = 0,
  ) {
    const exit = new Promise<LfJobResult>((resolveExit) => {
      child.on("error", (error) => {
        this.spawnError = error;
        this.addLine(`ktu: could not start ${argv[0]}: ${error.message}`);
        this.finish(null, null, resolveExit);
      });
      child.on("close", (code, signal) => this.finish(code, signal, resolveExit));
    });
    for (const stream of [child.stdout, child.stderr]) {
      let partial = "";
      stream?.setEncoding("utf8");
      stream?.on("data", (text: string) => {
        log.write(text);
        // tqdm redraws with \r: keep each redraw as its own line so the last one shows.
        const parts = (partial + text).split(/\r\n|\n|\r/);
        partial = parts.pop()!;
        for (const part of parts) this.addLine(part);
      });
      stream?.on("end", () => partial && this.addLine(partial));
    }
    const tail = command === "train" ? this.follow(pollMs, exit, historyCount) : Promise.resolve();
    // The job is done once the process exited AND the log's last lines were read.
    this.done = Promise.all([exit, tail]).then(([result]) => {
      this.settled = true;
      this.notify();
      return result;
    });
  }

  private notify(): void {
    for (const listener of [...this.listeners]) listener();
  }

  get pid(): number | undefined {
    return this.child.pid;
  }

  /** CUDA_VISIBLE_DEVICES as the engine saw it ("" when unset). */
  get gpus(): string {
    return this.env.CUDA_VISIBLE_DEVICES ?? "";
  }

  get elapsedMs(): number {
    return (this.endedAt ?? Date.now()) - this.startedAt;
  }

  get lastRecord(): TrainerLogRecord | undefined {
    return this.records.at(-1);
  }

  /** The last `n` lines the engine printed. */
  lastLines(n = 20): string[] {
    return this.lines.slice(-n);
  }

  private addLine(line: string): void {
    this.lines.push(line);
    if (this.lines.length > this.keepLines) this.lines.splice(0, this.lines.length - this.keepLines);
  }

  private async follow(pollMs: number, exit: Promise<unknown>, historyCount: number): Promise<void> {
    try {
      for await (const record of tailTrainerLog(join(this.outputDir, LF_TRAINER_LOG), { until: exit, pollMs })) {
        if (this.history.length < historyCount) {
          this.history.push(record);
          continue;
        }
        this.records.push(record);
        this.notify();
      }
    } catch (error) {
      this.addLine(`ktu: ${(error as Error).message}`);
    }
  }

  private finish(code: number | null, signal: NodeJS.Signals | null, resolveExit: (r: LfJobResult) => void): void {
    if (this.exited) return;
    this.exited = true;
    this.endedAt = Date.now();
    this.status = code === 0 && !this.interruptRequested ? "succeeded" : this.interruptRequested ? "interrupted" : "failed";
    const how = signal ? `signal ${signal}` : `exit code ${code}`;
    this.log.end(`\n[ktu ${new Date(this.endedAt).toISOString()}] ${this.status} (${how})\n`);
    resolveExit({ status: this.status, exitCode: code, signal });
  }

  /** Resolves when the run succeeded or was interrupted; rejects with the last 20 lines when it failed. */
  async wait(): Promise<LfJobResult> {
    const result = await this.done;
    if (result.status === "failed" && this.spawnError) {
      throw new LfRunError(`could not start ${this.argv[0]}: ${this.spawnError.message}; install LLaMA-Factory (it provides llamafactory-cli) or name the command with --cli or KTU_LLAMAFACTORY_CLI`, this, []);
    }
    if (result.status === "failed") {
      const last = this.lastLines(20);
      const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
      throw new LfRunError(`${this.argv.join(" ")} ${how}; last ${last.length} lines of ${this.logPath}:\n${last.join("\n")}`, this, last);
    }
    return result;
  }

  /**
   * The trainer_log.jsonl records as an async iterator: those already seen, then each new one
   * until the run ends (a `for await` loop in a notebook cell drives a live plot from it).
   */
  async *logs(): AsyncGenerator<TrainerLogRecord> {
    let index = 0;
    for (;;) {
      while (index < this.records.length) yield this.records[index++]!;
      if (this.settled) return;
      await new Promise<void>((wake) => {
        const listener = () => {
          this.listeners.delete(listener);
          wake();
        };
        this.listeners.add(listener);
      });
    }
  }

  /**
   * Stops the run as Ctrl-C would: SIGINT to the whole process group (torchrun and its workers),
   * SIGTERM after `graceMs`, SIGKILL after another `graceMs`. Resolves when it has exited.
   */
  async interrupt(graceMs = 10_000): Promise<LfJobResult> {
    if (!this.exited && this.child.pid !== undefined) {
      this.interruptRequested = true;
      const group = -this.child.pid;
      const send = (signal: NodeJS.Signals) => {
        if (this.exited) return;
        try {
          process.kill(group, signal);
        } catch {
          // the group is already gone
        }
      };
      send("SIGINT");
      const term = setTimeout(() => send("SIGTERM"), graceMs);
      const kill = setTimeout(() => send("SIGKILL"), 2 * graceMs);
      await this.done;
      clearTimeout(term);
      clearTimeout(kill);
    }
    return this.done;
  }
}

async function materialiseConfig(config: string | LfConfigRecord, command: LfCommand, options: LfLaunchOptions, cwd: string): Promise<{ path: string; record: LfConfigRecord }> {
  if (typeof config === "string") {
    const path = resolve(cwd, config);
    return { path, record: readLfConfigFile(path) };
  }
  const outKey = command === "train" ? "output_dir" : "export_dir";
  const out = config[outKey];
  if (typeof out !== "string" && !options.configPath) throw new UsageError(`the config has no ${outKey}, so give configPath for where to write it`);
  // An export folder becomes a model folder: keep ktu's files beside it, not in it.
  const fallback = command === "export" ? join(dirname(out as string), `${basename(out as string)}.ktu-export.yaml`) : join(out as string, `ktu-${command}.yaml`);
  const path = resolve(cwd, options.configPath ?? fallback);
  await writeFileAtomic(path, toYaml(config));
  return { path, record: config };
}

/** The step of a checkpoint-N folder (its trainer_state.json's global_step, else N). */
function checkpointStep(checkpoint: string): number | undefined {
  try {
    const state = JSON.parse(readFileSync(join(checkpoint, "trainer_state.json"), "utf8")) as { global_step?: unknown };
    if (typeof state.global_step === "number") return state.global_step;
  } catch {
    // no trainer_state.json: fall back to the folder name
  }
  const match = /checkpoint-(\d+)\/*$/.exec(checkpoint);
  return match ? Number(match[1]) : undefined;
}

/**
 * Before a resume: cuts output_dir/trainer_log.jsonl back to the records up to the checkpoint's step
 * (the interrupted run logged past it, and the resumed run logs those steps again; LLaMA-Factory
 * appends, so the file would hold them twice). Returns how many records were kept.
 */
export async function trimTrainerLogForResume(outputDir: string, checkpoint: string): Promise<number> {
  const file = join(outputDir, LF_TRAINER_LOG);
  const step = checkpointStep(checkpoint);
  if (!existsSync(file) || step === undefined) return 0;
  const lines = readFileSync(file, "utf8").split("\n");
  const kept: string[] = [];
  for (const line of lines) {
    if (line.trim() === "") continue;
    let record: { current_steps?: unknown };
    try {
      record = JSON.parse(line) as { current_steps?: unknown };
    } catch {
      continue; // a line cut short when the run was killed
    }
    if (typeof record.current_steps === "number" && record.current_steps <= step) kept.push(line);
  }
  await writeFileAtomic(file, kept.map((l) => `${l}\n`).join(""));
  return kept.length;
}

/** Where the engine's output goes: output_dir/ktu-engine.log, or beside an export folder (never inside a model). */
export const lfEngineLogPath = (command: LfCommand, outputDir: string): string =>
  command === "export" ? join(dirname(outputDir), `${basename(outputDir)}.${LF_ENGINE_LOG}`) : join(outputDir, LF_ENGINE_LOG);

const overrideArg = ([key, value]: [string, string | number | boolean]): string => `${key}=${value}`;

/**
 * Starts `llamafactory-cli <command> cfg.yaml [key=value ...]` detached in its own process group,
 * its output appended to output_dir/ktu-engine.log, and (for train) trainer_log.jsonl followed.
 */
export async function launchLlamaFactory(config: string | LfConfigRecord, options: LfLaunchOptions = {}, command: LfCommand = "train"): Promise<LfJob> {
  const cwd = resolve(options.cwd ?? process.cwd());
  const { path: configPath, record } = await materialiseConfig(config, command, options, cwd);
  const outKey = command === "train" ? "output_dir" : "export_dir";
  if (typeof record[outKey] !== "string") throw new UsageError(`${configPath}: ${outKey} is required`);
  const outputDir = resolve(cwd, record[outKey] as string);
  await mkdir(outputDir, { recursive: true });

  const overrides: Record<string, string | number | boolean> = { ...options.overrides };
  if (options.deepspeed !== undefined) overrides.deepspeed = await writeDeepspeedConfig(outputDir, options.deepspeed, { offload: options.deepspeedOffload });
  if (options.resume) {
    const checkpoint = options.resume === true || options.resume === "auto" ? latestLfCheckpoint(outputDir) : resolve(cwd, options.resume);
    if (checkpoint) {
      overrides.resume_from_checkpoint = checkpoint;
      // Keep trainer_log.jsonl: LLaMA-Factory deletes it at start-up when overwrite_output_dir is set.
      overrides.overwrite_output_dir = false;
    } else if (options.resume === true) {
      throw new UsageError(`cannot resume: ${outputDir} has no checkpoint-N folder`);
    }
  }
  const effective = { ...record, ...overrides };
  if (options.validate ?? true) validateLfConfig(effective, { command, file: configPath, cwd, datasetDir: options.datasetDir, cli: options.cli });
  const historyCount = command === "train" && typeof overrides.resume_from_checkpoint === "string" ? await trimTrainerLogForResume(outputDir, overrides.resume_from_checkpoint) : 0;
  if (command === "train" && !overrides.resume_from_checkpoint && effective.overwrite_output_dir === true) {
    // A fresh run: drop the old log now, so the tail does not show the previous run's curve first.
    rmSync(join(outputDir, LF_TRAINER_LOG), { force: true });
  }

  const topology = { ...options, forceTorchrun: options.forceTorchrun || options.deepspeed !== undefined || effective.deepspeed !== undefined };
  const launchEnv = { ...lfLaunchEnv(topology), ...options.env };
  const env = { ...process.env, ...launchEnv };
  const [program, ...programArgs] = resolveLfCli(options.cli);
  const args = [...programArgs, command, configPath, ...Object.entries(overrides).map(overrideArg)];
  const logPath = lfEngineLogPath(command, outputDir);
  const log = createWriteStream(logPath, { flags: "a" });
  log.write(`\n[ktu ${new Date().toISOString()}] ${[program, ...args].join(" ")} (cwd ${cwd}; ${Object.entries(launchEnv).map(([k, v]) => `${k}=${v}`).join(" ") || "no launch env"})\n`);
  const child = spawn(program!, args, { cwd, env, detached: true, stdio: ["ignore", "pipe", "pipe"] });
  const job = new LfJob(
    options.name ?? basename(outputDir),
    command,
    [program!, ...args],
    configPath,
    outputDir,
    logPath,
    { ...launchEnv, CUDA_VISIBLE_DEVICES: env.CUDA_VISIBLE_DEVICES ?? "" },
    child,
    log,
    options.keepLines ?? 200,
    options.pollMs ?? 200,
    historyCount,
  );
  jobs.push(job);
  return job;
}

/** `llamafactory-cli export` (LoRA merge) with the same process handling as training. */
export const lfExport = (config: string | LfConfigRecord, options: LfLaunchOptions = {}): Promise<LfJob> => launchLlamaFactory(config, options, "export");
