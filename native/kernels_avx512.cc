// The kernels built for one ISA level; build.mjs gives this file its -m flags.
#define KTU_LEVEL 512
#define KTU_NS ktu_avx512
#define KTU_NAME "avx512"
#define KTU_TABLE ktu_ops_avx512
#include "kernels.inc"
