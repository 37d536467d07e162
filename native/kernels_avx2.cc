// The kernels built for one ISA level; build.mjs gives this file its -m flags.
#define KTU_LEVEL 256
#define KTU_NS ktu_avx2
#define KTU_NAME "avx2"
#define KTU_TABLE ktu_ops_avx2
#include "kernels.inc"
