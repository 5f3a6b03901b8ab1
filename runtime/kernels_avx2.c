/* Placeholder until the SIMD kernels land: the scalar reference under the
 * level's name. */
#include "kernels.h"

const ls_kernels ls_kernels_avx2 = {0};
