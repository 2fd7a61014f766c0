/* Thread-local error messages: see bp_common.h. */
#include "core/bp_common.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#define BP_ERRBUF 2048
static _Thread_local char errbuf[BP_ERRBUF];

static const char *const status_names[BP_ERR_COUNT] = {
    [BP_OK] = "ok",
    [BP_ERR_NOMEM] = "out of memory",
    [BP_ERR_IO] = "I/O error",
    [BP_ERR_FORMAT] = "format error",
    [BP_ERR_UNSUPPORTED] = "unsupported",
    [BP_ERR_SHAPE] = "shape error",
    [BP_ERR_ARG] = "bad argument",
    [BP_ERR_NUMERIC] = "numeric error",
    [BP_ERR_INFEASIBLE] = "infeasible",
    [BP_ERR_SOLVER] = "solver error",
    [BP_ERR_MISMATCH] = "mismatch",
};
_Static_assert(sizeof status_names / sizeof *status_names == BP_ERR_COUNT,
               "every status needs a name");

const char *bp_strerror(bp_status st)
{
    if ((int)st < 0 || st >= BP_ERR_COUNT || !status_names[st])
        return "unknown status";
    return status_names[st];
}

bp_status bp_error(bp_status st, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(errbuf, sizeof errbuf, fmt, ap);
    va_end(ap);
    return st;
}

bp_status bp_error_wrap(bp_status st, const char *fmt, ...)
{
    char prefix[512], old[BP_ERRBUF];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, errbuf, sizeof old);
    /* bounded so the context never crowds out the original reason */
    snprintf(errbuf, sizeof errbuf, "%.500s: %.1500s", prefix, old[0] ? old : bp_strerror(st));
    return st;
}

const char *bp_last_error(void) { return errbuf; }
void bp_clear_error(void) { errbuf[0] = 0; }
