import { readFileSync } from "node:fs";
import { InputError } from "../util/errors.ts";
import { writeFileAtomic } from "../util/fs.ts";

/**
 * The safetensors format (Hugging Face): an 8-byte little-endian header length, a JSON header
 * `{name: {dtype, shape, data_offsets: [begin, end]}, __metadata__?: {str: str}}`, then the raw
 * little-endian tensor bytes. Floats decode to Float32Array whatever their stored width, since the
 * rest of the project computes in fp32.
 */
export type SafetensorsDtype = "F64" | "F32" | "F16" | "BF16" | "I64" | "I32" | "I16" | "I8" | "U8" | "BOOL";

const dtypeBytes: Record<SafetensorsDtype, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, I32: 4, I16: 2, I8: 1, U8: 1, BOOL: 1 };

export interface SafetensorsEntry {
  readonly dtype: SafetensorsDtype;
  readonly shape: readonly number[];
  /** The stored bytes (a view into the file buffer). */
  readonly bytes: Uint8Array;
}

export interface SafetensorsFile {
  readonly path: string;
  readonly metadata: Readonly<Record<string, string>>;
  readonly tensors: ReadonlyMap<string, SafetensorsEntry>;
}

/** A tensor to write: Float32Array is stored as F32 unless `dtype` asks for F16/BF16; Float64Array as F64. */
export interface SafetensorsInput {
  readonly data: Float32Array | Float64Array | Int32Array;
  readonly shape: readonly number[];
  readonly dtype?: "F32" | "F16" | "BF16" | "F64" | "I32";
}

const product = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

export function parseSafetensors(buffer: Uint8Array, path: string): SafetensorsFile {
  if (buffer.byteLength < 8) throw new InputError(path, undefined, "header length", `file is ${buffer.byteLength} bytes, shorter than the 8-byte header length`);
  const view = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const headerLength = Number(view.getBigUint64(0, true));
  if (headerLength > buffer.byteLength - 8) {
    throw new InputError(path, undefined, "header length", `header claims ${headerLength} bytes but the file has ${buffer.byteLength - 8} after the length; truncated or not a safetensors file`);
  }
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(buffer.subarray(8, 8 + headerLength))) as Record<string, unknown>;
  } catch (error) {
    throw new InputError(path, undefined, "header", `the JSON header does not parse: ${(error as Error).message}`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw new InputError(path, undefined, "header", `expected a JSON object of tensors, got ${JSON.stringify(header)?.slice(0, 40)}`);
  const dataStart = 8 + headerLength;
  const dataLength = buffer.byteLength - dataStart;
  const tensors = new Map<string, SafetensorsEntry>();
  let metadata: Record<string, string> = {};
  for (const [name, raw] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (raw !== null && raw !== undefined && (typeof raw !== "object" || Array.isArray(raw))) throw new InputError(path, name, "__metadata__", `expected an object of strings, got ${JSON.stringify(raw)?.slice(0, 40)}`);
      metadata = (raw ?? {}) as Record<string, string>;
      continue;
    }
    if (raw === null || typeof raw !== "object" || Array.isArray(raw)) throw new InputError(path, name, "entry", `expected {dtype, shape, data_offsets}, got ${JSON.stringify(raw)?.slice(0, 40)}`);
    const entry = raw as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = entry.dtype as SafetensorsDtype;
    if (typeof dtype !== "string" || !(dtype in dtypeBytes)) throw new InputError(path, name, "dtype", `unsupported dtype ${JSON.stringify(entry.dtype)} (supported: ${Object.keys(dtypeBytes).join(", ")})`);
    const shape = entry.shape;
    if (!Array.isArray(shape) || shape.length > 8 || !shape.every((d) => Number.isSafeInteger(d) && d >= 0) || !Number.isSafeInteger(product(shape as number[]) * 8)) throw new InputError(path, name, "shape", `not a list of sizes: ${JSON.stringify(shape)?.slice(0, 80)}`);
    const offsets = entry.data_offsets;
    if (!Array.isArray(offsets) || offsets.length !== 2 || !offsets.every((o) => Number.isInteger(o))) throw new InputError(path, name, "data_offsets", `not [begin, end]: ${JSON.stringify(offsets)}`);
    const [begin, end] = offsets as [number, number];
    const expected = product(shape as number[]) * dtypeBytes[dtype];
    if (end - begin !== expected) throw new InputError(path, name, "data_offsets", `${end - begin} bytes stored but shape ${JSON.stringify(shape)} of ${dtype} needs ${expected}`);
    if (begin < 0 || end > dataLength) throw new InputError(path, name, "data_offsets", `bytes ${begin}..${end} lie outside the ${dataLength} data bytes; the file is truncated`);
    tensors.set(name, { dtype, shape: shape as number[], bytes: buffer.subarray(dataStart + begin, dataStart + end) });
  }
  return { path, metadata, tensors };
}

export const readSafetensors = (path: string): SafetensorsFile => parseSafetensors(readFileSync(path), path);

export function f16ToF32(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exponent = (h >> 10) & 0x1f;
  const fraction = h & 0x3ff;
  if (exponent === 0) return sign * 2 ** -14 * (fraction / 1024);
  if (exponent === 0x1f) return fraction ? NaN : sign * Infinity;
  return sign * 2 ** (exponent - 15) * (1 + fraction / 1024);
}

/** Round-to-nearest-even fp32 -> fp16 bits. */
export function f32ToF16(value: number): number {
  const f32 = new Float32Array([value]);
  const bits = new Uint32Array(f32.buffer)[0]!;
  const sign = (bits >>> 16) & 0x8000;
  const exponent = (bits >>> 23) & 0xff;
  let mantissa = bits & 0x7fffff;
  if (exponent === 0xff) return sign | 0x7c00 | (mantissa ? 0x200 : 0);
  let e = exponent - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mantissa |= 0x800000;
    const shift = 14 - e;
    let half = mantissa >> shift;
    const rest = mantissa & ((1 << shift) - 1);
    const halfway = 1 << (shift - 1);
    if (rest > halfway || (rest === halfway && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mantissa >> 13);
  const rest = mantissa & 0x1fff;
  if (rest > 0x1000 || (rest === 0x1000 && half & 1)) half++;
  return sign | half;
}

/** Decodes a floating-point tensor to fp32 (copying, so the result is aligned and owned). */
export function tensorToFloat32(entry: SafetensorsEntry, path = "<safetensors>", name = "<tensor>"): Float32Array {
  const n = product(entry.shape);
  const { bytes } = entry;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const out = new Float32Array(n);
  switch (entry.dtype) {
    case "F32":
      for (let i = 0; i < n; i++) out[i] = view.getFloat32(4 * i, true);
      return out;
    case "F64":
      for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
      return out;
    case "F16":
      for (let i = 0; i < n; i++) out[i] = f16ToF32(view.getUint16(2 * i, true));
      return out;
    case "BF16": {
      const bits = new Uint32Array(out.buffer);
      for (let i = 0; i < n; i++) bits[i] = view.getUint16(2 * i, true) << 16;
      return out;
    }
    default:
      throw new InputError(path, name, "dtype", `expected a floating-point tensor (F32, F16, BF16, F64), got ${entry.dtype}`);
  }
}

export function tensorToFloat64(entry: SafetensorsEntry, path = "<safetensors>", name = "<tensor>"): Float64Array {
  if (entry.dtype !== "F64") return Float64Array.from(tensorToFloat32(entry, path, name));
  const n = product(entry.shape);
  const view = new DataView(entry.bytes.buffer, entry.bytes.byteOffset, entry.bytes.byteLength);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) out[i] = view.getFloat64(8 * i, true);
  return out;
}

function encodeTensor(input: SafetensorsInput): { dtype: SafetensorsDtype; bytes: Uint8Array } {
  const { data } = input;
  const dtype = input.dtype ?? (data instanceof Float64Array ? "F64" : data instanceof Int32Array ? "I32" : "F32");
  const n = data.length;
  const bytes = new Uint8Array(n * dtypeBytes[dtype]);
  const view = new DataView(bytes.buffer);
  for (let i = 0; i < n; i++) {
    const v = data[i]!;
    switch (dtype) {
      case "F32": view.setFloat32(4 * i, v, true); break;
      case "F64": view.setFloat64(8 * i, v, true); break;
      case "I32": view.setInt32(4 * i, v, true); break;
      case "F16": view.setUint16(2 * i, f32ToF16(v), true); break;
      case "BF16": {
        // Round to nearest even on the dropped 16 bits.
        const bits = new Uint32Array(new Float32Array([v]).buffer)[0]!;
        const rounded = Number.isNaN(v) ? 0x7fc0 : ((bits + 0x7fff + ((bits >>> 16) & 1)) >>> 16) & 0xffff;
        view.setUint16(2 * i, rounded, true);
        break;
      }
    }
  }
  return { dtype, bytes };
}

/** Serialises tensors in the given order; the header is padded with spaces to a multiple of 8 as the reference writer does. */
export function serializeSafetensors(tensors: Readonly<Record<string, SafetensorsInput>>, metadata?: Readonly<Record<string, string>>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata) header.__metadata__ = metadata;
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const [name, input] of Object.entries(tensors)) {
    if (product(input.shape) !== input.data.length) throw new Error(`safetensors: tensor ${name} has ${input.data.length} values but shape ${JSON.stringify(input.shape)}`);
    const { dtype, bytes } = encodeTensor(input);
    header[name] = { dtype, shape: [...input.shape], data_offsets: [offset, offset + bytes.byteLength] };
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  let json = JSON.stringify(header);
  while ((8 + Buffer.byteLength(json)) % 8 !== 0) json += " ";
  const headerBytes = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + headerBytes.byteLength + offset);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerBytes.byteLength), true);
  out.set(headerBytes, 8);
  let at = 8 + headerBytes.byteLength;
  for (const chunk of chunks) {
    out.set(chunk, at);
    at += chunk.byteLength;
  }
  return out;
}

export const writeSafetensors = (path: string, tensors: Readonly<Record<string, SafetensorsInput>>, metadata?: Readonly<Record<string, string>>): Promise<void> =>
  writeFileAtomic(path, serializeSafetensors(tensors, metadata));

/** Reads one named float tensor and checks its shape, naming file and tensor on any mismatch. */
export function requireFloatTensor(file: SafetensorsFile, name: string, shape: readonly number[]): Float32Array {
  const entry = file.tensors.get(name);
  if (!entry) throw new InputError(file.path, name, "tensor", `missing (the file has ${file.tensors.size} tensors${file.tensors.size ? `, e.g. ${[...file.tensors.keys()].slice(0, 3).join(", ")}` : ""})`);
  if (entry.shape.length !== shape.length || entry.shape.some((d, i) => d !== shape[i])) {
    throw new InputError(file.path, name, "shape", `expected ${JSON.stringify(shape)}, got ${JSON.stringify(entry.shape)}`);
  }
  return tensorToFloat32(entry, file.path, name);
}
