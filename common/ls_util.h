/* Small shared utilities: monotonic time, files, fingerprints, version. */
#ifndef LS_UTIL_H
#define LS_UTIL_H

#include <stddef.h>
#include <stdint.h>

#include "ls_error.h"

/* Monotonic wall clock in milliseconds. */
double ls_now_ms(void);

/* 1-minute load average (/proc/loadavg), -1 where unavailable: benchmarks
 * print it next to their rows, since the machines they run on are shared. */
double ls_load_avg(void);

/* Reads a whole file into a NUL-terminated malloc'd buffer. */
int ls_read_file(const char *path, char **out, size_t *len, ls_err *err);

/* Writes data to path atomically when path is a regular file or does not exist: path.tmp.PID,
 * fsync, rename (no half files). A symlink to a regular file replaces the file it names and
 * keeps the link. Anything else (a device, pipe or socket, e.g. /dev/stdout, or a link to
 * one) is written through in place, never renamed over; a directory is refused. */
int ls_write_file_atomic(const char *path, const void *data, size_t len, ls_err *err);

/* The same, written as it goes: open (which fails at once if the file cannot be created, so a
 * long run learns before it starts), write pieces, then commit (fsync + rename) or discard
 * (the temporary file is removed; a written-through target keeps what was written). */
typedef struct ls_outfile {
  int fd;
  char path[4096]; /* where the output ends up */
  char tmp[4096];  /* the temporary file being written, or "" when written through */
} ls_outfile;
int ls_outfile_open(ls_outfile *o, const char *path, ls_err *err);
int ls_outfile_write(ls_outfile *o, const void *data, size_t len, ls_err *err);
int ls_outfile_commit(ls_outfile *o, ls_err *err);
void ls_outfile_discard(ls_outfile *o);

/* Normalises a path in place, lexically: no empty or "." components, "dir/.." removed
 * ("jobs/../data/x" -> "data/x", "a//b/./c" -> "a/b/c", "../x" stays, "" -> "."). */
void ls_path_normalize(char *path);

/* SHA-256 of a file (or a buffer) as 64 lowercase hex digits + NUL (OpenSSL libcrypto). */
int ls_sha256_file(const char *path, char hex[65], ls_err *err);
void ls_sha256_buf(const void *data, size_t len, char hex[65]);

/* Project version and the git commit it was built from. */
const char *ls_version(void);
const char *ls_git_commit(void);

/* ISO-8601 UTC time, e.g. 2026-11-25T10:31:11Z. */
void ls_utc_now(char out[32]);

#endif
