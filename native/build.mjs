#!/usr/bin/env node
// Builds native/build/ktu_native.node with the machine's C++ compiler, no download and no node-gyp:
// one object per ISA level (each with its own -m flags, never -march=native, so the binary runs on any
// x86-64 and picks its kernels at load time), linked with OpenMP. Exit code 0 on success; on failure it
// prints why and exits 1, or with --optional (the package's install script: a machine without a
// compiler must still install) prints one line and exits 0. Also run lazily by src/model/native.ts.
import { execFile } from "node:child_process";
import { existsSync, mkdirSync, renameSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { promisify } from "node:util";

const run = promisify(execFile);
const here = dirname(fileURLToPath(import.meta.url));
const out = join(here, "build");
const target = join(out, "ktu_native.node");
const quiet = process.argv.includes("--quiet");
const optional = process.argv.includes("--optional");

function nodeInclude() {
  const candidates = [
    process.env.KTU_NODE_INCLUDE,
    join(dirname(process.execPath), "..", "include", "node"),
    "/usr/include/node",
    "/usr/local/include/node",
  ].filter(Boolean);
  return candidates.find((d) => existsSync(join(d, "node_api.h")));
}

async function main() {
  const include = nodeInclude();
  if (!include) throw new Error("Node's headers (node_api.h) not found; set KTU_NODE_INCLUDE");
  const cxx = process.env.CXX || "g++";
  const x86 = process.arch === "x64" || process.arch === "ia32";
  const units = [
    ["ktu_native.cc", []],
    ["kernels_generic.cc", []],
    ...(x86
      ? [
          ["kernels_avx2.cc", ["-mavx2", "-mfma"]],
          ["kernels_avx512.cc", ["-mavx512f", "-mavx512bw", "-mavx512vl", "-mavx512dq", "-mavx2", "-mfma", "-mprefer-vector-width=512"]],
        ]
      : []),
  ];
  const common = ["-O3", "-fPIC", "-pthread", "-fopenmp", "-std=c++17", "-fno-math-errno",
  // No silent a*b+c -> fma contraction: AdamW must round exactly as the JS loop, and each ISA build the
  // same way where it can (the GEMM uses explicit FMA intrinsics).
  "-ffp-contract=off", "-Wall", "-Wno-unknown-pragmas",
    `-I${include}`, "-DNODE_GYP_MODULE_NAME=ktu_native", "-DNAPI_VERSION=8"];
  if (!x86) common.push("-DKTU_NO_X86");
  // For tuning experiments only (e.g. KTU_EXTRA_FLAGS="-DKTU_KC=192").
  if (process.env.KTU_EXTRA_FLAGS) common.push(...process.env.KTU_EXTRA_FLAGS.split(/\s+/).filter(Boolean));
  mkdirSync(out, { recursive: true });
  const tmp = join(out, `tmp-${process.pid}`);
  mkdirSync(tmp, { recursive: true });
  try {
    const objects = await Promise.all(
      units.map(async ([src, flags]) => {
        const obj = join(tmp, src.replace(/\.cc$/, ".o"));
        await run(cxx, [...common, ...flags, "-c", join(here, src), "-o", obj], { maxBuffer: 1 << 24 });
        return obj;
      }),
    );
    const linked = join(tmp, "ktu_native.node");
    await run(cxx, ["-shared", "-fopenmp", "-pthread", "-o", linked, ...objects], { maxBuffer: 1 << 24 });
    // Renamed into place so a concurrent loader never sees a half-written binary.
    renameSync(linked, target);
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  if (!quiet) console.log(`native: built ${target} with ${cxx}`);
}

main().catch((error) => {
  const msg = error && error.stderr ? String(error.stderr).trim().split("\n").slice(0, 20).join("\n") : String(error?.message ?? error);
  if (optional) {
    console.log(`native: build skipped (${msg.split("\n")[0]}); the wasm engine will be used`);
    process.exit(0);
  }
  console.error(`native: build failed: ${msg}`);
  process.exit(1);
});
