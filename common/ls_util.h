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
