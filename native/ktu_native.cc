// Node-API face of the compute kernels: argument checking (every array must hold what the sizes say, so
// a wrong call throws instead of writing past an array) and run-time choice of the kernel table.
// Built for the baseline ISA; only the chosen table's code uses AVX2/AVX-512.
#include <node_api.h>
#include <omp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ops.h"

// Defaults: a parallel region (futex wake + barrier) pays off above ~50 us of work.
extern "C" {
double ktu_par_flops = 8.0e6;
long ktu_par_elems = 262144;
}

namespace {

const KtuOps* ops = &ktu_ops_generic;
int threads = 1;

const KtuOps* pickOps(const char* force) {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  // __builtin_cpu_supports also checks that the OS saves the wider registers (XCR0).
  bool has512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq");
  bool has2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
  if (force && strcmp(force, "generic") == 0) return &ktu_ops_generic;
  if (force && strcmp(force, "avx2") == 0) return has2 ? &ktu_ops_avx2 : &ktu_ops_generic;
  if (has512) return &ktu_ops_avx512;
  if (has2) return &ktu_ops_avx2;
#endif
  (void)force;
  return &ktu_ops_generic;
}

struct Args {
  napi_env env;
  napi_value v[24];
  size_t n;
  bool failed = false;
  const char* fn;

  Args(napi_env e, napi_callback_info info, const char* name, size_t want) : env(e), n(24), fn(name) {
    napi_get_cb_info(env, info, &n, v, nullptr, nullptr);
    if (n < want) fail("TypeError", "expected %zu arguments, got %zu", want, n);
  }

  void fail(const char* kind, const char* fmt, ...) __attribute__((format(printf, 3, 4))) {
    if (failed) return;
    failed = true;
    char msg[400];
    int at = snprintf(msg, sizeof msg, "native.%s: ", fn);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg + at, sizeof msg - size_t(at), fmt, ap);
    va_end(ap);
    if (strcmp(kind, "RangeError") == 0)
      napi_throw_range_error(env, nullptr, msg);
    else
      napi_throw_type_error(env, nullptr, msg);
  }

  double num(size_t i, const char* name) {
    double d = 0;
    if (failed) return 0;
    if (napi_get_value_double(env, v[i], &d) != napi_ok) fail("TypeError", "%s must be a number", name);
    return d;
  }
  // A size: an integer >= 0.
  long size(size_t i, const char* name) {
    double d = num(i, name);
    if (failed) return 0;
    if (!(d >= 0) || d != double(long(d)) || d > 9.0e15) fail("RangeError", "%s must be an integer >= 0 (got %g)", name, d);
    return long(d);
  }
  bool flag(size_t i, const char* name) {
    bool b = false;
    if (failed) return false;
    if (napi_get_value_bool(env, v[i], &b) != napi_ok) fail("TypeError", "%s must be a boolean", name);
    return b;
  }
  void* typed(size_t i, const char* name, napi_typedarray_type want, size_t need) {
    if (failed) return nullptr;
    bool is = false;
    napi_is_typedarray(env, v[i], &is);
    napi_typedarray_type type;
    size_t length = 0;
    void* data = nullptr;
    if (!is || napi_get_typedarray_info(env, v[i], &type, &length, &data, nullptr, nullptr) != napi_ok || type != want) {
      fail("TypeError", "%s must be a %s", name, want == napi_float32_array ? "Float32Array" : "Int32Array");
      return nullptr;
    }
    if (length < need) {
      fail("RangeError", "%s has %zu elements, the sizes need %zu", name, length, need);
      return nullptr;
    }
    // data already points at the view's first element (Node-API adds the byte offset).
    return data;
  }
  float* f32(size_t i, const char* name, size_t need) { return static_cast<float*>(typed(i, name, napi_float32_array, need)); }
  int32_t* i32(size_t i, const char* name, size_t need) { return static_cast<int32_t*>(typed(i, name, napi_int32_array, need)); }
};

napi_value undefinedValue(napi_env env) {
  napi_value u;
  napi_get_undefined(env, &u);
  return u;
}
napi_value numberValue(napi_env env, double d) {
  napi_value r;
  napi_create_double(env, d, &r);
  return r;
}

// Elements a row-major matrix of `rows` rows with leading dimension ld needs (0 when empty).
size_t matNeed(long rows, long cols, long ld) { return rows == 0 || cols == 0 ? 0 : size_t((rows - 1) * ld + cols); }

napi_value Info(napi_env env, napi_callback_info) {
  napi_value o, s;
  napi_create_object(env, &o);
  napi_create_string_utf8(env, ops->name, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, o, "simd", s);
  napi_set_named_property(env, o, "threads", numberValue(env, threads));
  napi_set_named_property(env, o, "procs", numberValue(env, omp_get_num_procs()));
  char comp[128];
  snprintf(comp, sizeof comp, "g++ %d.%d.%d", __GNUC__, __GNUC_MINOR__, __GNUC_PATCHLEVEL__);
  napi_create_string_utf8(env, comp, NAPI_AUTO_LENGTH, &s);
  napi_set_named_property(env, o, "compiler", s);
  return o;
}

// Switches the kernel table (tests run every ISA level on one machine); a level the CPU lacks falls back
// to the best lower one. Returns the level now in use.
napi_value SetSimd(napi_env env, napi_callback_info info) {
  Args a(env, info, "setSimd", 1);
  if (a.failed) return nullptr;
  char want[32] = {0};
  size_t len = 0;
  if (napi_get_value_string_utf8(env, a.v[0], want, sizeof want, &len) != napi_ok) {
    a.fail("TypeError", "level must be a string");
    return nullptr;
  }
  if (strcmp(want, "avx512") && strcmp(want, "avx2") && strcmp(want, "generic")) {
    a.fail("RangeError", "level must be avx512, avx2 or generic (got %s)", want);
    return nullptr;
  }
  ops = pickOps(strcmp(want, "avx512") == 0 ? nullptr : want);
  napi_value s;
  napi_create_string_utf8(env, ops->name, NAPI_AUTO_LENGTH, &s);
  return s;
}

napi_value SetParallelMin(napi_env env, napi_callback_info info) {
  Args a(env, info, "setParallelMin", 2);
  double flops = a.num(0, "flops");
  long elems = a.size(1, "elements");
  if (a.failed) return nullptr;
  ktu_par_flops = flops;
  ktu_par_elems = elems;
  return undefinedValue(env);
}

napi_value SetThreads(napi_env env, napi_callback_info info) {
  Args a(env, info, "setThreads", 1);
  long n = a.size(0, "n");
  if (!a.failed && n < 1) a.fail("RangeError", "n must be >= 1");
  if (!a.failed) threads = int(n > 1024 ? 1024 : n);
  return undefinedValue(env);
}

napi_value Sgemm(napi_env env, napi_callback_info info) {
  Args a(env, info, "sgemm", 13);
  bool ta = a.flag(0, "transA"), tb = a.flag(1, "transB");
  long M = a.size(2, "M"), N = a.size(3, "N"), K = a.size(4, "K");
  float alpha = float(a.num(5, "alpha"));
  long lda = a.size(7, "lda"), ldb = a.size(9, "ldb");
  float beta = float(a.num(10, "beta"));
  long ldc = a.size(12, "ldc");
  if (a.failed) return nullptr;
  long aRows = ta ? K : M, aCols = ta ? M : K, bRows = tb ? N : K, bCols = tb ? K : N;
  if (aRows && aCols && lda < aCols) a.fail("RangeError", "lda %ld < %ld", lda, aCols);
  if (bRows && bCols && ldb < bCols) a.fail("RangeError", "ldb %ld < %ld", ldb, bCols);
  if (M && N && ldc < N) a.fail("RangeError", "ldc %ld < N %ld", ldc, N);
  const float* A = a.f32(6, "A", matNeed(aRows, aCols, lda));
  const float* B = a.f32(8, "B", matNeed(bRows, bCols, ldb));
  float* C = a.f32(11, "C", matNeed(M, N, ldc));
  if (a.failed) return nullptr;
  ops->sgemm(ta, tb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc, threads);
  return undefinedValue(env);
}

struct AttnShape {
  long B, T, H, KVH, hd;
  int style;
};

bool attnShape(Args& a, size_t at, AttnShape& s) {
  s.B = a.size(at, "B");
  s.T = a.size(at + 1, "T");
  s.H = a.size(at + 2, "H");
  s.KVH = a.size(at + 3, "KVH");
  s.hd = a.size(at + 4, "hd");
  long style = a.size(at + 7, "ropeStyle");
  if (a.failed) return false;
  if (style > 1) a.fail("RangeError", "ropeStyle must be 0 (interleaved) or 1 (rotate-half)");
  if (s.KVH == 0 || s.H % s.KVH) a.fail("RangeError", "H %ld is not a multiple of KVH %ld", s.H, s.KVH);
  if (s.hd % 2) a.fail("RangeError", "hd %ld must be even", s.hd);
  s.style = int(style);
  return !a.failed;
}

// Optional row strides of q (and dq) and of k, v (and dk, dv): views of one fused [N, (H+2KVH)*hd] qkv
// matrix need no split copy. Default: dense rows.
bool strides(Args& a, size_t at, const AttnShape& s, long& ldq, long& ldkv) {
  ldq = s.H * s.hd;
  ldkv = s.KVH * s.hd;
  napi_valuetype t;
  if (a.n > at && napi_typeof(a.env, a.v[at], &t) == napi_ok && t != napi_undefined) ldq = a.size(at, "ldq");
  if (a.n > at + 1 && napi_typeof(a.env, a.v[at + 1], &t) == napi_ok && t != napi_undefined) ldkv = a.size(at + 1, "ldkv");
  if (a.failed) return false;
  if (ldq < s.H * s.hd) a.fail("RangeError", "ldq %ld < H*hd %ld", ldq, s.H * s.hd);
  if (ldkv < s.KVH * s.hd) a.fail("RangeError", "ldkv %ld < KVH*hd %ld", ldkv, s.KVH * s.hd);
  return !a.failed;
}

napi_value AttentionForward(napi_env env, napi_callback_info info) {
  // (q, k, v, B, T, H, KVH, hd, cos, sin, ropeStyle, out, lse, ldq?, ldkv?)
  Args a(env, info, "attentionForward", 13);
  AttnShape s{};
  if (!attnShape(a, 3, s)) return nullptr;
  size_t rows = size_t(s.B * s.T), qn = rows * size_t(s.H * s.hd);
  long ldq = 0, ldkv = 0;
  if (!strides(a, 13, s, ldq, ldkv)) return nullptr;
  const float* q = a.f32(0, "q", matNeed(long(rows), s.H * s.hd, ldq));
  const float* k = a.f32(1, "k", matNeed(long(rows), s.KVH * s.hd, ldkv));
  const float* v = a.f32(2, "v", matNeed(long(rows), s.KVH * s.hd, ldkv));
  const float* cs = a.f32(8, "cos", size_t(s.T * s.hd));
  const float* sn = a.f32(9, "sin", size_t(s.T * s.hd));
  float* out = a.f32(11, "out", qn);
  float* lse = a.f32(12, "lse", size_t(s.B * s.H * s.T));
  if (a.failed || rows == 0) return undefinedValue(env);
  ops->attentionForward(q, k, v, s.B, s.T, s.H, s.KVH, s.hd, cs, sn, s.style, out, lse, ldq, ldkv, threads);
  return undefinedValue(env);
}

napi_value AttentionBackward(napi_env env, napi_callback_info info) {
  // (dout, q, k, v, out, lse, B, T, H, KVH, hd, cos, sin, ropeStyle, dq, dk, dv, ldq?, ldkv?)
  Args a(env, info, "attentionBackward", 17);
  AttnShape s{};
  if (!attnShape(a, 6, s)) return nullptr;
  size_t rows = size_t(s.B * s.T), qn = rows * size_t(s.H * s.hd);
  long ldq = 0, ldkv = 0;
  if (!strides(a, 17, s, ldq, ldkv)) return nullptr;
  size_t qs = matNeed(long(rows), s.H * s.hd, ldq), ks = matNeed(long(rows), s.KVH * s.hd, ldkv);
  const float* dout = a.f32(0, "dout", qn);
  const float* q = a.f32(1, "q", qs);
  const float* k = a.f32(2, "k", ks);
  const float* v = a.f32(3, "v", ks);
  const float* out = a.f32(4, "out", qn);
  const float* lse = a.f32(5, "lse", size_t(s.B * s.H * s.T));
  const float* cs = a.f32(11, "cos", size_t(s.T * s.hd));
  const float* sn = a.f32(12, "sin", size_t(s.T * s.hd));
  float* dq = a.f32(14, "dq", qs);
  float* dk = a.f32(15, "dk", ks);
  float* dv = a.f32(16, "dv", ks);
  if (a.failed || rows == 0) return undefinedValue(env);
  ops->attentionBackward(dout, q, k, v, out, lse, s.B, s.T, s.H, s.KVH, s.hd, cs, sn, s.style, dq, dk, dv, ldq, ldkv,
                         threads);
  return undefinedValue(env);
}

napi_value AttentionCached(napi_env env, napi_callback_info info) {
  // (q, k, v, R, pos, H, KVH, hd, cos, sin, ropeStyle, kCache, vCache, out)
  Args a(env, info, "attentionCached", 14);
  long R = a.size(3, "R"), pos = a.size(4, "pos"), H = a.size(5, "H"), KVH = a.size(6, "KVH"), hd = a.size(7, "hd");
  long style = a.size(10, "ropeStyle");
  if (a.failed) return nullptr;
  if (style > 1) a.fail("RangeError", "ropeStyle must be 0 (interleaved) or 1 (rotate-half)");
  if (KVH == 0 || H % KVH) a.fail("RangeError", "H %ld is not a multiple of KVH %ld", H, KVH);
  if (hd % 2) a.fail("RangeError", "hd %ld must be even", hd);
  size_t end = size_t(pos + R);
  const float* q = a.f32(0, "q", size_t(R * H * hd));
  const float* k = a.f32(1, "k", size_t(R * KVH * hd));
  const float* v = a.f32(2, "v", size_t(R * KVH * hd));
  const float* cs = a.f32(8, "cos", end * size_t(hd));
  const float* sn = a.f32(9, "sin", end * size_t(hd));
  float* kc = a.f32(11, "kCache", end * size_t(KVH * hd));
  float* vc = a.f32(12, "vCache", end * size_t(KVH * hd));
  float* out = a.f32(13, "out", size_t(R * H * hd));
  if (a.failed || R == 0) return a.failed ? nullptr : undefinedValue(env);
  ops->attentionCached(q, k, v, R, pos, H, KVH, hd, cs, sn, int(style), kc, vc, out, threads);
  return undefinedValue(env);
}

napi_value RmsnormForward(napi_env env, napi_callback_info info) {
  // (x, w, N, D, eps, y, rstd)
  Args a(env, info, "rmsnormForward", 7);
  long N = a.size(2, "N"), D = a.size(3, "D");
  float eps = float(a.num(4, "eps"));
  const float* x = a.f32(0, "x", size_t(N * D));
  const float* w = a.f32(1, "w", size_t(D));
  float* y = a.f32(5, "y", size_t(N * D));
  float* rstd = a.f32(6, "rstd", size_t(N));
  if (a.failed) return nullptr;
  ops->rmsnormForward(x, w, N, D, eps, y, rstd, threads);
  return undefinedValue(env);
}

napi_value RmsnormBackward(napi_env env, napi_callback_info info) {
  // (dy, x, w, rstd, N, D, dx, dw)
  Args a(env, info, "rmsnormBackward", 8);
  long N = a.size(4, "N"), D = a.size(5, "D");
  const float* dy = a.f32(0, "dy", size_t(N * D));
  const float* x = a.f32(1, "x", size_t(N * D));
  const float* w = a.f32(2, "w", size_t(D));
  const float* rstd = a.f32(3, "rstd", size_t(N));
  float* dx = a.f32(6, "dx", size_t(N * D));
  float* dw = a.f32(7, "dw", size_t(D));
  if (a.failed) return nullptr;
  ops->rmsnormBackward(dy, x, w, rstd, N, D, dx, dw, threads);
  return undefinedValue(env);
}

napi_value SwigluForward(napi_env env, napi_callback_info info) {
  // (gu, N, F, h)
  Args a(env, info, "swigluForward", 4);
  long N = a.size(1, "N"), F = a.size(2, "F");
  const float* gu = a.f32(0, "gu", size_t(N * 2 * F));
  float* h = a.f32(3, "h", size_t(N * F));
  if (a.failed) return nullptr;
  ops->swigluForward(gu, N, F, h, threads);
  return undefinedValue(env);
}

napi_value SwigluBackward(napi_env env, napi_callback_info info) {
  // (dh, gu, N, F, dgu)
  Args a(env, info, "swigluBackward", 5);
  long N = a.size(2, "N"), F = a.size(3, "F");
  const float* dh = a.f32(0, "dh", size_t(N * F));
  const float* gu = a.f32(1, "gu", size_t(N * 2 * F));
  float* dgu = a.f32(4, "dgu", size_t(N * 2 * F));
  if (a.failed) return nullptr;
  ops->swigluBackward(dh, gu, N, F, dgu, threads);
  return undefinedValue(env);
}

bool checkIds(Args& a, const int32_t* ids, long N, long V, const char* name) {
  if (a.failed) return false;
  for (long n = 0; n < N; n++)
    if (ids[n] < 0 || ids[n] >= V) {
      a.fail("RangeError", "%s[%ld] = %d is outside [0, %ld)", name, n, ids[n], V);
      return false;
    }
  return true;
}

napi_value EmbeddingForward(napi_env env, napi_callback_info info) {
  // (table, ids, N, D, V, out)
  Args a(env, info, "embeddingForward", 6);
  long N = a.size(2, "N"), D = a.size(3, "D"), V = a.size(4, "V");
  const float* table = a.f32(0, "table", size_t(V * D));
  const int32_t* ids = a.i32(1, "ids", size_t(N));
  float* out = a.f32(5, "out", size_t(N * D));
  if (!checkIds(a, ids, N, V, "ids")) return nullptr;
  ops->embeddingForward(table, ids, N, D, out, threads);
  return undefinedValue(env);
}

napi_value EmbeddingBackward(napi_env env, napi_callback_info info) {
  // (dout, ids, N, D, V, dtable)
  Args a(env, info, "embeddingBackward", 6);
  long N = a.size(2, "N"), D = a.size(3, "D"), V = a.size(4, "V");
  const float* dout = a.f32(0, "dout", size_t(N * D));
  const int32_t* ids = a.i32(1, "ids", size_t(N));
  float* dtable = a.f32(5, "dtable", size_t(V * D));
  if (!checkIds(a, ids, N, V, "ids")) return nullptr;
  ops->embeddingBackward(dout, ids, N, D, dtable, threads);
  return undefinedValue(env);
}

napi_value CrossEntropy(napi_env env, napi_callback_info info) {
  // (logits, targets, R, V, scale, dlogits) -> loss
  Args a(env, info, "crossEntropy", 6);
  long R = a.size(2, "R"), V = a.size(3, "V");
  float scale = float(a.num(4, "scale"));
  const float* logits = a.f32(0, "logits", size_t(R * V));
  const int32_t* targets = a.i32(1, "targets", size_t(R));
  float* dlogits = a.f32(5, "dlogits", size_t(R * V));
  if (a.failed) return nullptr;
  for (long r = 0; r < R; r++)
    if (targets[r] >= V) {
      a.fail("RangeError", "targets[%ld] = %d is not below V %ld", r, targets[r], V);
      return nullptr;
    }
  if (R > 0 && V == 0) {
    a.fail("RangeError", "V must be > 0");
    return nullptr;
  }
  return numberValue(env, ops->crossEntropy(logits, targets, R, V, scale, dlogits, threads));
}

napi_value Adamw(napi_env env, napi_callback_info info) {
  // (param, grad, m, v, lr, beta1, beta2, eps, decay, clip, bc1, sqrtBc2)
  Args a(env, info, "adamw", 12);
  if (a.failed) return nullptr;
  size_t len = 0;
  napi_get_typedarray_info(env, a.v[0], nullptr, &len, nullptr, nullptr, nullptr);
  float* p = a.f32(0, "param", 0);
  const float* g = a.f32(1, "grad", len);
  float* m = a.f32(2, "m", len);
  float* v = a.f32(3, "v", len);
  double lr = a.num(4, "lr"), b1 = a.num(5, "beta1"), b2 = a.num(6, "beta2"), eps = a.num(7, "eps"),
         decay = a.num(8, "decay"), clip = a.num(9, "clip"), bc1 = a.num(10, "bc1"), sb2 = a.num(11, "sqrtBc2");
  if (a.failed) return nullptr;
  ops->adamw(p, g, m, v, long(len), lr, b1, b2, eps, decay, clip, bc1, sb2, threads);
  return undefinedValue(env);
}

napi_value SumSquares(napi_env env, napi_callback_info info) {
  Args a(env, info, "sumSquares", 1);
  if (a.failed) return nullptr;
  size_t len = 0;
  napi_get_typedarray_info(env, a.v[0], nullptr, &len, nullptr, nullptr, nullptr);
  const float* x = a.f32(0, "x", 0);
  if (a.failed) return nullptr;
  return numberValue(env, ops->sumSquares(x, long(len), threads));
}

napi_value Init(napi_env env, napi_value exports) {
  ops = pickOps(getenv("KTU_NATIVE_SIMD"));
  const char* t = getenv("KTU_NATIVE_THREADS");
  threads = t && atoi(t) > 0 ? atoi(t) : omp_get_max_threads();
  if (threads < 1) threads = 1;
  napi_property_descriptor props[] = {
      {"info", nullptr, Info, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setSimd", nullptr, SetSimd, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setParallelMin", nullptr, SetParallelMin, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"setThreads", nullptr, SetThreads, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sgemm", nullptr, Sgemm, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionForward", nullptr, AttentionForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionBackward", nullptr, AttentionBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"attentionCached", nullptr, AttentionCached, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rmsnormForward", nullptr, RmsnormForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"rmsnormBackward", nullptr, RmsnormBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"swigluForward", nullptr, SwigluForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"swigluBackward", nullptr, SwigluBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"embeddingForward", nullptr, EmbeddingForward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"embeddingBackward", nullptr, EmbeddingBackward, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"crossEntropy", nullptr, CrossEntropy, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"adamw", nullptr, Adamw, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sumSquares", nullptr, SumSquares, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
