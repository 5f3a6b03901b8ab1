/* Helpers shared by the fuzz targets (docs/fuzzing.md). Each target is one
 * LLVMFuzzerTestOneInput; it is linked either with libFuzzer (LS_FUZZ=ON,
 * clang) or with replay_main.c, which feeds it the seed corpus and the
 * regression inputs in every normal build. */
#ifndef LS_FUZZ_COMMON_H
#define LS_FUZZ_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "ls_error.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* $LS_DATA_DIR/rel, or the source tree's data/ (compiled in). Static ring of buffers. */
const char *fz_data(const char *rel);
/* $LS_SOURCE_DIR/rel, or the source tree (compiled in): test fixtures. */
const char *fz_source(const char *rel);
/* This process's temporary directory (created on first use, removed at exit). */
const char *fz_tmpdir(void);
/* Writes bytes to fz_tmpdir()/name (replacing it) and returns the path (static ring). */
const char *fz_write(const char *name, const void *data, size_t size);
/* A malloc'd NUL-terminated copy of data[0..size); aborts if out of memory. */
char *fz_cstr(const void *data, size_t size);
/* Bytes read into this cannot be optimised away: a target touches memory a
 * parser hands back so that ASan checks it is inside the input. */
extern volatile unsigned fz_sink;
/* /dev/null, for printing functions whose output nobody reads. */
FILE *fz_null(void);

/* Consumes input from the front: the fuzzer's bytes become structured choices. */
typedef struct fz_in {
  const uint8_t *p;
  size_t n;
} fz_in;
uint8_t fz_u8(fz_in *in);   /* 0 once the input is exhausted */
uint16_t fz_u16(fz_in *in);
uint32_t fz_u32(fz_in *in);
uint64_t fz_u64(fz_in *in);
/* Up to max bytes of a length-prefixed (u16) chunk; *len gets its length. */
const uint8_t *fz_chunk(fz_in *in, size_t max, size_t *len);
/* The rest of the input up to (not including) the next NUL byte, which is consumed. */
const uint8_t *fz_until_nul(fz_in *in, size_t *len);

/* The invariants every failing call must keep (COMMON: "one clear line naming the
 * file"): a non-zero code, a non-empty message without a newline that contains
 * `name` (NULL: no name required). Aborts with the message otherwise, so that the
 * fuzzer reports it as a finding. With LS_FUZZ_VERBOSE set, prints the message
 * (to see what a corpus exercises). */
void fz_check_err(int rc, const ls_err *err, const char *name);
/* Aborts with a message when cond is false (a property of a successful parse). */
#define FZ_ASSERT(cond, ...) ((cond) ? (void)0 : fz_fail(__FILE__, __LINE__, #cond, __VA_ARGS__))
void fz_fail(const char *file, int line, const char *cond, const char *fmt, ...)
    __attribute__((noreturn, format(printf, 4, 5)));

#endif
