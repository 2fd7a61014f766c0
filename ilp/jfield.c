/* jfield.c — typed JSON field access with messages naming file, place, field. */
#include "ilp/jfield.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

static const char *type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT: return "an object";
    case JSON_ARRAY: return "an array";
    case JSON_STRING: return "a string";
    case JSON_INTEGER: return "an integer";
    case JSON_REAL: return "a number";
    case JSON_TRUE: case JSON_FALSE: return "a boolean";
    case JSON_NULL: return "null";
    }
    return "?";
}

static bp_status missing(const bp_jctx *c, const char *key)
{
    return bp_error(BP_ERR_FORMAT, "%s: %s: missing field \"%s\"", c->file, c->where, key);
}

static bp_status wrong(const bp_jctx *c, const char *key, const char *want, const json_t *v)
{
    return bp_error(BP_ERR_FORMAT, "%s: %s: field \"%s\" must be %s, not %s", c->file,
                    c->where, key, want, type_name(v));
}

bp_status bp_jf_num(const bp_jctx *c, const json_t *obj, const char *key, int required,
                    int null_ok, double *out, int *present)
{
    json_t *v = json_object_get(obj, key);
    if (present)
        *present = 0;
    if (!v || (null_ok && json_is_null(v)))
        return required && !v ? missing(c, key) : BP_OK;
    if (!json_is_number(v))
        return wrong(c, key, null_ok ? "a number or null" : "a number", v);
    double x = json_number_value(v);
    if (!isfinite(x))
        return bp_error(BP_ERR_NUMERIC, "%s: %s: field \"%s\" is not finite", c->file, c->where,
                        key);
    *out = x;
    if (present)
        *present = 1;
    return BP_OK;
}

bp_status bp_jf_num_min(const bp_jctx *c, const json_t *obj, const char *key, int required,
                        double lo, double *out)
{
    double x = *out;
    int present;
    /* null means "unknown" in bitplan files: treated as absent. */
    bp_status st = bp_jf_num(c, obj, key, required, 1, &x, &present);
    if (st)
        return st;
    if (present && x < lo)
        return bp_error(BP_ERR_FORMAT, "%s: %s: field \"%s\" is %g, must be >= %g", c->file,
                        c->where, key, x, lo);
    *out = x;
    return BP_OK;
}

bp_status bp_jf_int(const bp_jctx *c, const json_t *obj, const char *key, int required,
                    long long lo, long long hi, long long *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return required ? missing(c, key) : BP_OK;
    long long x;
    if (json_is_integer(v)) {
        x = json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        /* 9.2e18 bounds what long long holds; integral reals ("1e6") are fine. */
        if (!isfinite(d) || d != floor(d) || fabs(d) > 9.0e18)
            return bp_error(BP_ERR_FORMAT, "%s: %s: field \"%s\" must be an integer, not %g",
                            c->file, c->where, key, d);
        x = (long long)d;
    } else {
        return wrong(c, key, "an integer", v);
    }
    if (x < lo || x > hi)
        return bp_error(BP_ERR_FORMAT, "%s: %s: field \"%s\" is %lld, must be in %lld..%lld",
                        c->file, c->where, key, x, lo, hi);
    *out = x;
    return BP_OK;
}

bp_status bp_jf_bool(const bp_jctx *c, const json_t *obj, const char *key, int required,
                     int *out)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return required ? missing(c, key) : BP_OK;
    if (!json_is_boolean(v))
        return wrong(c, key, "true or false", v);
    *out = json_is_true(v);
    return BP_OK;
}

bp_status bp_jf_str(const bp_jctx *c, const json_t *obj, const char *key, int required,
                    char *buf, size_t cap)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        return required ? missing(c, key) : BP_OK;
    if (!json_is_string(v))
        return wrong(c, key, "a string", v);
    size_t n = json_string_length(v);
    if (n >= cap)
        return bp_error(BP_ERR_FORMAT, "%s: %s: field \"%s\" is %zu bytes long (at most %zu)",
                        c->file, c->where, key, n, cap - 1);
    if (strlen(json_string_value(v)) != n)
        return bp_error(BP_ERR_FORMAT, "%s: %s: field \"%s\" contains a NUL character", c->file,
                        c->where, key);
    memcpy(buf, json_string_value(v), n + 1);
    return BP_OK;
}

bp_status bp_jf_array(const bp_jctx *c, const json_t *obj, const char *key, int required,
                      json_t **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return required ? missing(c, key) : BP_OK;
    if (!json_is_array(v))
        return wrong(c, key, "an array", v);
    *out = v;
    return BP_OK;
}

bp_status bp_jf_object(const bp_jctx *c, const json_t *obj, const char *key, int required,
                       json_t **out)
{
    json_t *v = json_object_get(obj, key);
    *out = NULL;
    if (!v)
        return required ? missing(c, key) : BP_OK;
    if (!json_is_object(v))
        return wrong(c, key, "an object", v);
    *out = v;
    return BP_OK;
}

bp_status bp_jf_elem_num(const bp_jctx *c, const json_t *arr, size_t i, const char *what,
                         double lo, double *out)
{
    json_t *v = json_array_get(arr, i);
    if (!v || !json_is_number(v))
        return bp_error(BP_ERR_FORMAT, "%s: %s: \"%s\"[%zu] must be a number, not %s", c->file,
                        c->where, what, i, v ? type_name(v) : "missing");
    double x = json_number_value(v);
    if (!isfinite(x))
        return bp_error(BP_ERR_NUMERIC, "%s: %s: \"%s\"[%zu] is not finite", c->file, c->where,
                        what, i);
    if (x < lo)
        return bp_error(BP_ERR_FORMAT, "%s: %s: \"%s\"[%zu] is %g, must be >= %g", c->file,
                        c->where, what, i, x, lo);
    *out = x;
    return BP_OK;
}

bp_status bp_jf_load(const char *text, size_t len, const char *file, const char *format,
                     int max_version, json_t **root)
{
    json_error_t je;
    *root = NULL;
    json_t *r = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!r)
        return bp_error(BP_ERR_FORMAT, "%s:%d:%d: not valid JSON: %s", file, je.line, je.column,
                        je.text);
    bp_jctx c = {.file = file};
    snprintf(c.where, sizeof c.where, "top level");
    char fmt[64];
    long long ver = 0;
    bp_status st;
    if (!json_is_object(r)) {
        st = bp_error(BP_ERR_FORMAT, "%s: top level must be an object, not %s", file,
                      type_name(r));
        goto fail;
    }
    if ((st = bp_jf_str(&c, r, "format", BP_JF_REQUIRED, fmt, sizeof fmt)))
        goto fail;
    if (strcmp(fmt, format)) {
        st = bp_error(BP_ERR_FORMAT, "%s: field \"format\" is \"%s\", expected \"%s\"", file, fmt,
                      format);
        goto fail;
    }
    if ((st = bp_jf_int(&c, r, "version", BP_JF_REQUIRED, 1, max_version, &ver)))
        goto fail;
    *root = r;
    return BP_OK;
fail:
    json_decref(r);
    return st;
}

json_t *bp_jf_real(double v)
{
    return isfinite(v) ? json_real(v) : NULL;
}

json_t *bp_jf_real_or_null(double v)
{
    return isnan(v) ? json_null() : bp_jf_real(v);
}

int bp_jf_set(json_t *o, const char *k, json_t *v)
{
    return v ? json_object_set_new(o, k, v) : -1;
}

bp_status bp_jf_write(const char *path, json_t *root)
{
    char *text = json_dumps(root, JSON_INDENT(1) | JSON_REAL_PRECISION(17) | JSON_PRESERVE_ORDER);
    if (!text)
        return bp_error(BP_ERR_NOMEM, "%s: could not serialize JSON", path);
    size_t n = strlen(text);
    /* A trailing newline keeps the file friendly to line tools. */
    char *buf = realloc(text, n + 2);
    if (!buf) {
        free(text);
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    }
    buf[n] = '\n';
    buf[n + 1] = 0;
    bp_status st = bp_write_file_atomic(path, buf, n + 1);
    free(buf);
    return st;
}
