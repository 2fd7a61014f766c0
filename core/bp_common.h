/* bp_common.h — the types every bitplan module shares: the real type, status
 * codes and the error string.
 *
 * Library code never prints and never exits: a function that can fail returns
 * a bp_status and, when it is not BP_OK, leaves a message naming the file, the
 * place and the reason in a thread-local buffer read with bp_last_error(). */
#ifndef BP_COMMON_H
#define BP_COMMON_H

#include <stddef.h>
#include <stdint.h>

/* The float engine computes in bp_real. The library is built twice: as float
 * (libbitplan.a, what the CLI uses) and as double (libbitplan64.a, -DBP_F64),
 * which the finite-difference tests use so that they can demand 1e-6. */
#ifdef BP_F64
typedef double bp_real;
#define BP_REAL_NAME "f64"
#else
typedef float bp_real;
#define BP_REAL_NAME "f32"
#endif

typedef enum {
    BP_OK = 0,
    BP_ERR_NOMEM,       /* an allocation failed */
    BP_ERR_IO,          /* a file could not be opened, read or written */
    BP_ERR_FORMAT,      /* a file's content is malformed (bad magic, truncated, wrong type) */
    BP_ERR_UNSUPPORTED, /* valid input that bitplan does not handle (an op, an attribute) */
    BP_ERR_SHAPE,       /* shapes that do not fit together */
    BP_ERR_ARG,         /* a bad argument or option value */
    BP_ERR_NUMERIC,     /* NaN or Inf where a finite number is needed */
    BP_ERR_INFEASIBLE,  /* no plan meets the budgets */
    BP_ERR_SOLVER,      /* GLPK failed or stopped without a plan */
    BP_ERR_MISMATCH,    /* files that do not belong together (a plan for another model) */
    BP_ERR_COUNT
} bp_status;

/* Name of a status, e.g. "format error". Never NULL. */
const char *bp_strerror(bp_status st);

/* Sets the thread's error message (printf-style) and returns st, so that a
 * failing path reads `return bp_error(BP_ERR_FORMAT, "%s: ...", path);`. */
bp_status bp_error(bp_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes the current message with more context ("loading x.onnx: ..."),
 * returns st. */
bp_status bp_error_wrap(bp_status st, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* The last message set on this thread; "" when none. */
const char *bp_last_error(void);
void bp_clear_error(void);

#endif
