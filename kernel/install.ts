import { existsSync, rmSync } from "node:fs";
import { homedir } from "node:os";
import { join } from "node:path";
import { deflateSync } from "node:zlib";
import { repoRoot } from "../src/util/paths.ts";
import { writeFileAtomic, writeJsonAtomic } from "../src/util/fs.ts";

export const DEFAULT_KERNEL_NAME = "know-the-unknown";
export const DISPLAY_NAME = "TypeScript (know-the-unknown)";

/** Where `jupyter kernelspec list` looks: the user's data dir, a --prefix, or the system prefix. */
export function kernelsDir(options: { user?: boolean; prefix?: string }): string {
  if (options.prefix) return join(options.prefix, "share", "jupyter", "kernels");
  if (options.user) {
    const dataHome = process.env.JUPYTER_DATA_DIR ?? join(process.env.XDG_DATA_HOME ?? join(homedir(), ".local", "share"), "jupyter");
    return join(dataHome, "kernels");
  }
  return "/usr/local/share/jupyter/kernels";
}

/** The kernel.json: this Node, tsx's loader and kernel/main.ts, all by absolute path. */
export function kernelSpec(displayName = DISPLAY_NAME): Record<string, unknown> {
  return {
    argv: [
      process.execPath,
      "--import",
      join(repoRoot, "node_modules", "tsx", "dist", "loader.mjs"),
      // Cells import through vm's main-context loader, which Node 20 flags as experimental.
      "--disable-warning=ExperimentalWarning",
      join(repoRoot, "kernel", "main.ts"),
      "-f",
      "{connection_file}",
    ],
    display_name: displayName,
    language: "typescript",
    // SIGINT is the only way into a synchronous loop; message-mode interrupts are also answered.
    interrupt_mode: "signal",
    env: {},
    metadata: { debugger: false },
  };
}

export async function installKernel(options: { user?: boolean; prefix?: string; name?: string; displayName?: string }): Promise<string> {
  const dir = join(kernelsDir(options), options.name ?? DEFAULT_KERNEL_NAME);
  await writeJsonAtomic(join(dir, "kernel.json"), kernelSpec(options.displayName));
  await writeFileAtomic(join(dir, "logo-64x64.png"), logoPng(64));
  await writeFileAtomic(join(dir, "logo-32x32.png"), logoPng(32));
  return dir;
}

export function uninstallKernel(options: { user?: boolean; prefix?: string; name?: string }): string | undefined {
  const dir = join(kernelsDir(options), options.name ?? DEFAULT_KERNEL_NAME);
  if (!existsSync(join(dir, "kernel.json"))) return undefined;
  rmSync(dir, { recursive: true, force: true });
  return dir;
}

// --- logo: a TypeScript-blue square with a white "?" (the unknown), drawn as a PNG by hand ----------

const GLYPH = ["01110", "10001", "00001", "00010", "00100", "00100", "00000", "00100"];

const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});
function crc32(bytes: Buffer): number {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff]! ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const body = Buffer.concat([Buffer.from(type, "ascii"), data]);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(body));
  return Buffer.concat([length, body, crc]);
}

export function logoPng(size: number): Buffer {
  const scale = Math.floor(size / 12);
  const left = Math.floor((size - 5 * scale) / 2);
  const top = Math.floor((size - 8 * scale) / 2);
  const radius = size / 8;
  const rows: Buffer[] = [];
  for (let y = 0; y < size; y++) {
    const row = Buffer.alloc(1 + size * 4); // filter byte 0, then RGBA
    for (let x = 0; x < size; x++) {
      const dx = Math.max(radius - x, x - (size - 1 - radius), 0);
      const dy = Math.max(radius - y, y - (size - 1 - radius), 0);
      const inside = dx * dx + dy * dy <= radius * radius;
      const gx = Math.floor((x - left) / scale);
      const gy = Math.floor((y - top) / scale);
      const ink = x >= left && y >= top && GLYPH[gy]?.[gx] === "1";
      const [r, g, b, a] = !inside ? [0, 0, 0, 0] : ink ? [255, 255, 255, 255] : [0x31, 0x78, 0xc6, 255];
      row.set([r, g, b, a], 1 + x * 4);
    }
    rows.push(row);
  }
  const header = Buffer.alloc(13);
  header.writeUInt32BE(size, 0);
  header.writeUInt32BE(size, 4);
  header.set([8, 6, 0, 0, 0], 8); // 8-bit RGBA, no interlace
  return Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), chunk("IHDR", header), chunk("IDAT", deflateSync(Buffer.concat(rows))), chunk("IEND", Buffer.alloc(0))]);
}
