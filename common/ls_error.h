/* Errors are values (PETSc style): a library function never prints and never
 * exits; it fills an ls_err with a one-line message that names the file or
 * flag and the problem, and returns the error code. Callers add context with
 * ls_err_prefix() and the program's main() prints err.msg and exits non-zero.
 *
 * Each error also carries where it came from, PETSc's traceback: ls_err_set
 * records its own file:line and function, and every LS_TRY the error passes
 * through on its way up appends its own, so that `litestage-run CMD -v` (and
 * litestage-search) can print the path under the one-line message. */
#ifndef LS_ERROR_H
#define LS_ERROR_H

#include <stddef.h>

typedef enum ls_status {
  LS_OK = 0,
  LS_EIO,        /* open/read/write/mmap failed */
  LS_EFORMAT,    /* a file is malformed (bad magic, truncated, out of range) */
  LS_EINVAL,     /* a bad argument, flag or option value */
  LS_ENOMEM,     /* allocation failed */
  LS_EMISMATCH,  /* things that must agree do not (fingerprint, stages, shapes) */
  LS_EUNSUPPORTED, /* valid but not supported (tensor type, architecture) */
  LS_EMPI,       /* an MPI or HDF5 call failed, or a rank died */
  LS_EINTERRUPTED, /* stopped by a signal after a clean checkpoint */
  LS_ESTATE,     /* the program reached a state it does not allow */
} ls_status;

#define LS_ERR_MSG_MAX 1024
#define LS_ERR_TRACE_MAX 1024 /* frames beyond it are counted, not kept */

typedef struct ls_err {
  int code;                     /* ls_status */
  char msg[LS_ERR_MSG_MAX];     /* one line, no trailing newline */
  int n_frames;                 /* frames recorded, kept or not */
  char trace[LS_ERR_TRACE_MAX]; /* "folder/file.c:line function" frames, innermost first, '\n'-separated */
} ls_err;

/* Sets code and message (printf format) and starts the trace at the caller;
 * returns code so that callers can write
 * `return ls_err_set(err, LS_EFORMAT, "%s: bad magic", path);`.
 * err may be NULL (the message is then dropped). */
int ls_err_set_at(ls_err *err, int code, const char *file, int line, const char *func, const char *fmt, ...)
    __attribute__((format(printf, 6, 7)));
#define ls_err_set(err, code, ...) ls_err_set_at((err), (code), __FILE__, __LINE__, __func__, __VA_ARGS__)

/* Appends a frame "file:line func" to err's trace (err may be NULL). */
void ls_err_trace(ls_err *err, const char *file, int line, const char *func);

/* Prepends "context: " to the message, keeping the code; returns the code. */
int ls_err_prefix(ls_err *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));


/* Propagate an error code, adding this place to the trace of the `err` in
 * scope: `LS_TRY(ls_read_x(..., err));` */
#define LS_TRY(expr)                                                           \
  do {                                                                         \
    int ls_try_rc_ = (expr);                                                   \
    if (ls_try_rc_ != LS_OK) {                                                 \
      ls_err_trace(err, __FILE__, __LINE__, __func__);                         \
      return ls_try_rc_;                                                       \
    }                                                                          \
  } while (0)

/* Checked allocation that reports where it failed (llm.c style, minus exit). */
void *ls_malloc_at(size_t size, ls_err *err, const char *file, int line);
void *ls_calloc_at(size_t n, size_t size, ls_err *err, const char *file, int line);
#define ls_malloc(size, err) ls_malloc_at((size), (err), __FILE__, __LINE__)
#define ls_calloc(n, size, err) ls_calloc_at((n), (size), (err), __FILE__, __LINE__)

#endif
