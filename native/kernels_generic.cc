// The kernels built for one ISA level; build.mjs gives this file its -m flags.
#define KTU_LEVEL 0
#define KTU_NS ktu_generic
#define KTU_NAME "generic"
#define KTU_TABLE ktu_ops_generic
#include "kernels.inc"
