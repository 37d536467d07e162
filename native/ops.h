// The table of compute kernels one ISA build provides. kernels.inc is compiled once per ISA (generic,
// AVX2+FMA, AVX-512) into its own namespace; ktu_native.cc picks one table at load time from what the
// CPU supports, so the shared object never executes an instruction the CPU lacks.
#pragma once
#include <stdint.h>

struct KtuOps {
  const char* name;
  void (*sgemm)(int transA, int transB, long M, long N, long K, float alpha, const float* A, long lda,
                const float* B, long ldb, float beta, float* C, long ldc, int threads);
  void (*attentionForward)(const float* q, const float* k, const float* v, long B, long T, long H, long KVH,
                           long hd, const float* cos, const float* sin, int ropeStyle, float* out, float* lse,
                           long ldq, long ldkv, int threads);
  void (*attentionBackward)(const float* dout, const float* q, const float* k, const float* v, const float* out,
                            const float* lse, long B, long T, long H, long KVH, long hd, const float* cos,
                            const float* sin, int ropeStyle, float* dq, float* dk, float* dv, long ldq, long ldkv, int threads);
  void (*attentionCached)(const float* q, const float* k, const float* v, long R, long pos, long H, long KVH, long hd,
                          const float* cos, const float* sin, int ropeStyle, float* kCache, float* vCache, float* out,
                          int threads);
  void (*rmsnormForward)(const float* x, const float* w, long N, long D, float eps, float* y, float* rstd, int threads);
  void (*rmsnormBackward)(const float* dy, const float* x, const float* w, const float* rstd, long N, long D,
                          float* dx, float* dw, int threads);
  void (*swigluForward)(const float* gu, long N, long F, float* h, int threads);
  void (*swigluBackward)(const float* dh, const float* gu, long N, long F, float* dgu, int threads);
  void (*embeddingForward)(const float* table, const int32_t* ids, long N, long D, float* out, int threads);
  void (*embeddingBackward)(const float* dout, const int32_t* ids, long N, long D, float* dtable, int threads);
  double (*crossEntropy)(const float* logits, const int32_t* targets, long R, long V, float scale, float* dlogits,
                         int threads);
  void (*adamw)(float* p, const float* g, float* m, float* v, long n, double lr, double b1, double b2, double eps,
                double decay, double clip, double bc1, double sqrtBc2, int threads);
  double (*sumSquares)(const float* x, long n, int threads);
};

// Work below which an op runs on the calling thread only: GEMM flops, elementwise elements.
extern "C" double ktu_par_flops;
extern "C" long ktu_par_elems;

extern "C" const KtuOps ktu_ops_generic;
extern "C" const KtuOps ktu_ops_avx2;
extern "C" const KtuOps ktu_ops_avx512;
