/* Used by the AVX-512 level (kernels_avx512.c): a tile
 * function inlined for each compile-time token count, picked at run time.
 * tile(T, arg, w, r, xa, xs, t0, y, ldy) computes y for row r and tokens
 * t0 .. t0+T-1; T is a constant in each case so the tile keeps its
 * accumulators in registers. */
#ifndef LS_KERNELS_TILE_H
#define LS_KERNELS_TILE_H

/* name(T, w, r, xa, xs, t0, y, ldy) for T = 1..4 (larger T: 4). */
#define LS_TILE_T4(name, tile, arg)                                                                              \
  static void name(int T, const ls_mat *w, int64_t r, const void *xa, size_t xs, int t0, float *y, int64_t ldy) { \
    switch (T) {                                                                                                 \
    case 1: tile(1, arg, w, r, xa, xs, t0, y, ldy); break;                                                       \
    case 2: tile(2, arg, w, r, xa, xs, t0, y, ldy); break;                                                       \
    case 3: tile(3, arg, w, r, xa, xs, t0, y, ldy); break;                                                       \
    default: tile(4, arg, w, r, xa, xs, t0, y, ldy); break;                                                      \
    }                                                                                                            \
  }

#endif
