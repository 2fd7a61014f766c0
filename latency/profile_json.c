/* profile_json.c — the profile file format (JSON, "bitplan-profile" v1):
 * parsing with field-by-field errors, and atomic writing with one entry per
 * line so that shipped profiles diff well. The format is documented in
 * profiles/README.md. */
#include "latency/profile.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

#define PROFILE_FORMAT "bitplan-profile"
#define PROFILE_VERSION 1

/* ---- field readers: each names the file, the place (ctx) and the field ---- */

static bp_status get_int(json_t *obj, const char *key, int required, int64_t lo, int64_t *out,
                         const char *name, const char *ctx)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return bp_error(BP_ERR_FORMAT, "%s: %s: missing field '%s'", name, ctx, key);
        return BP_OK;
    }
    if (!json_is_integer(v))
        return bp_error(BP_ERR_FORMAT, "%s: %s: field '%s': must be an integer", name, ctx, key);
    json_int_t x = json_integer_value(v);
    if (x < lo)
        return bp_error(BP_ERR_FORMAT, "%s: %s: field '%s': must be >= %lld (got %lld)", name,
                        ctx, key, (long long)lo, (long long)x);
    *out = x;
    return BP_OK;
}

static bp_status get_int32(json_t *obj, const char *key, int required, int lo, int *out,
                           const char *name, const char *ctx)
{
    int64_t x = *out;
    bp_status st = get_int(obj, key, required, lo, &x, name, ctx);
    if (st)
        return st;
    if (x > INT32_MAX)
        return bp_error(BP_ERR_FORMAT, "%s: %s: field '%s': too large", name, ctx, key);
    *out = (int)x;
    return BP_OK;
}

static bp_status get_real(json_t *obj, const char *key, int required, double *out,
                          const char *name, const char *ctx)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return bp_error(BP_ERR_FORMAT, "%s: %s: missing field '%s'", name, ctx, key);
        return BP_OK;
    }
    if (!json_is_number(v))
        return bp_error(BP_ERR_FORMAT, "%s: %s: field '%s': must be a number", name, ctx, key);
    *out = json_number_value(v);
    return BP_OK;
}

/* *out is a malloc'd copy (or left alone when absent and optional). */
static bp_status get_str(json_t *obj, const char *key, int required, char **out,
                         const char *name, const char *ctx)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required)
            return bp_error(BP_ERR_FORMAT, "%s: %s: missing field '%s'", name, ctx, key);
        return BP_OK;
    }
    if (!json_is_string(v))
        return bp_error(BP_ERR_FORMAT, "%s: %s: field '%s': must be a string", name, ctx, key);
    char *s = strdup(json_string_value(v));
    if (!s)
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", name);
    free(*out);
    *out = s;
    return BP_OK;
}

static int op_from_name(const char *s, bp_op *op)
{
    for (int k = 0; k < BP_OP_COUNT; k++)
        if (!strcmp(s, bp_op_name((bp_op)k))) {
            *op = (bp_op)k;
            return k == BP_OP_CONV || k == BP_OP_GEMM || k == BP_OP_MATMUL;
        }
    return 0;
}

static bp_status parse_entry(json_t *o, bp_profile_entry *e, const char *name, int idx)
{
    char ctx[32];
    snprintf(ctx, sizeof ctx, "entry %d", idx);
    if (!json_is_object(o))
        return bp_error(BP_ERR_FORMAT, "%s: %s: must be an object", name, ctx);
    bp_status st;
    char *op = NULL;
    if ((st = get_str(o, "op", 1, &op, name, ctx)))
        return st;
    int ok = op_from_name(op, &e->sig.op);
    if (!ok) {
        st = bp_error(BP_ERR_FORMAT, "%s: %s: field 'op': unknown op '%s' (expected Conv, Gemm "
                      "or MatMul)", name, ctx, op);
        free(op);
        return st;
    }
    free(op);
    bp_lat_sig *s = &e->sig;
    if ((st = get_int(o, "cin", 1, 1, &s->cin, name, ctx)) ||
        (st = get_int(o, "cout", 1, 1, &s->cout, name, ctx)) ||
        (st = get_int32(o, "kh", 1, 1, &s->kh, name, ctx)) ||
        (st = get_int32(o, "kw", 1, 1, &s->kw, name, ctx)) ||
        (st = get_int32(o, "stride", 1, 1, &s->stride, name, ctx)) ||
        (st = get_int32(o, "group", 1, 1, &s->group, name, ctx)) ||
        (st = get_int(o, "in_h", 1, 1, &s->in_h, name, ctx)) ||
        (st = get_int(o, "in_w", 1, 1, &s->in_w, name, ctx)) ||
        (st = get_int32(o, "batch", 1, 1, &s->batch, name, ctx)) ||
        (st = get_int32(o, "b_w", 1, 1, &e->b_w, name, ctx)) ||
        (st = get_int32(o, "b_a", 1, 1, &e->b_a, name, ctx)) ||
        (st = get_int(o, "macs", 1, 1, &e->macs, name, ctx)) ||
        (st = get_real(o, "latency_ms", 1, &e->latency_ms, name, ctx)))
        return st;
    if (e->latency_ms < 0)
        return bp_error(BP_ERR_FORMAT, "%s: %s: field 'latency_ms': negative (%g)", name, ctx,
                        e->latency_ms);
    e->spread = BP_SPREAD_NONE;
    e->lo_ms = e->hi_ms = e->latency_ms;
    json_t *sp = json_object_get(o, "spread");
    if (sp && !json_is_null(sp)) {
        if (!json_is_object(sp))
            return bp_error(BP_ERR_FORMAT, "%s: %s: field 'spread': must be an object "
                            "{\"kind\", \"lo\", \"hi\"}", name, ctx);
        char sctx[48];
        snprintf(sctx, sizeof sctx, "%s: spread", ctx);
        char *kind = NULL;
        if ((st = get_str(sp, "kind", 1, &kind, name, sctx)))
            return st;
        if (!strcmp(kind, "iqr"))
            e->spread = BP_SPREAD_IQR;
        else if (!strcmp(kind, "minmax"))
            e->spread = BP_SPREAD_MINMAX;
        free(kind);
        if (e->spread == BP_SPREAD_NONE)
            return bp_error(BP_ERR_FORMAT, "%s: %s: field 'kind': must be \"iqr\" or "
                            "\"minmax\"", name, sctx);
        if ((st = get_real(sp, "lo", 1, &e->lo_ms, name, sctx)) ||
            (st = get_real(sp, "hi", 1, &e->hi_ms, name, sctx)))
            return st;
    }
    char *src = NULL;
    if ((st = get_str(o, "source", 1, &src, name, ctx)))
        return st;
    if (!strcmp(src, "measured"))
        e->source = BP_LAT_MEASURED;
    else if (!strcmp(src, "modeled"))
        e->source = BP_LAT_MODELED;
    else {
        st = bp_error(BP_ERR_FORMAT, "%s: %s: field 'source': \"%s\" is neither \"measured\" "
                      "nor \"modeled\"", name, ctx, src);
        free(src);
        return st;
    }
    free(src);
    return get_str(o, "note", 0, &e->note, name, ctx);
}

static bp_status parse_bits_list(json_t *root, bp_profile *p, const char *name)
{
    json_t *u = json_object_get(root, "units");
    if (!u || json_is_null(u))
        return BP_OK;
    if (!json_is_array(u) || json_array_size(u) == 0 ||
        json_array_size(u) > BP_PROFILE_MAX_BITS)
        return bp_error(BP_ERR_FORMAT, "%s: field 'units': must be a list of 1 to %d bit-widths",
                        name, BP_PROFILE_MAX_BITS);
    for (size_t k = 0; k < json_array_size(u); k++) {
        json_t *v = json_array_get(u, k);
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 32)
            return bp_error(BP_ERR_FORMAT, "%s: field 'units[%zu]': must be an integer in "
                            "1..32", name, k);
        p->units[k] = (int)json_integer_value(v);
    }
    p->nunits = (int)json_array_size(u);
    return BP_OK;
}

static bp_status parse_roofline(json_t *root, bp_profile *p, const char *name)
{
    json_t *r = json_object_get(root, "roofline");
    if (!r || json_is_null(r))
        return BP_OK;
    if (!json_is_object(r))
        return bp_error(BP_ERR_FORMAT, "%s: field 'roofline': must be an object", name);
    json_t *pk = json_object_get(r, "peak_ops");
    if (!pk || !json_is_object(pk) || json_object_size(pk) == 0)
        return bp_error(BP_ERR_FORMAT, "%s: roofline: missing field 'peak_ops' (an object "
                        "{\"bits\": ops/s})", name);
    if (json_object_size(pk) > BP_PROFILE_MAX_BITS)
        return bp_error(BP_ERR_FORMAT, "%s: roofline: field 'peak_ops': more than %d bit-widths",
                        name, BP_PROFILE_MAX_BITS);
    const char *key;
    json_t *v;
    int n = 0;
    json_object_foreach(pk, key, v) {
        char *end;
        long b = strtol(key, &end, 10);
        if (*end || b < 1 || b > 32)
            return bp_error(BP_ERR_FORMAT, "%s: roofline: field 'peak_ops': key '%s' is not a "
                            "bit-width in 1..32", name, key);
        if (!json_is_number(v))
            return bp_error(BP_ERR_FORMAT, "%s: roofline: field 'peak_ops.%s': must be a number",
                            name, key);
        /* insertion sort: the keys come in any order */
        int k = n++;
        while (k > 0 && p->peak_bits[k - 1] > b) {
            p->peak_bits[k] = p->peak_bits[k - 1];
            p->peak_ops[k] = p->peak_ops[k - 1];
            k--;
        }
        p->peak_bits[k] = (int)b;
        p->peak_ops[k] = json_number_value(v);
    }
    p->npeak = n;
    return get_real(r, "mem_bw", 1, &p->mem_bw, name, "roofline");
}

/* jansson rejects NaN/Infinity tokens (they are not JSON); say so plainly,
 * since tools such as Python's json module write them. */
static bp_status parse_error(const json_error_t *je, const char *text, size_t len,
                             const char *name)
{
    /* look a few bytes around where jansson stopped */
    size_t pos = je->position > 0 ? (size_t)je->position : 0;
    size_t lo = pos > 10 ? pos - 10 : 0, hi = pos + 10 < len ? pos + 10 : len;
    char win[24] = "";
    if (lo < hi && hi - lo < sizeof win) {
        memcpy(win, text + lo, hi - lo);
        win[hi - lo] = 0;
    }
    if (strstr(je->text, "'NaN") || strstr(je->text, "'Inf") || strstr(win, "NaN") ||
        strstr(win, "Infinity"))
        return bp_error(BP_ERR_FORMAT, "%s:%d:%d: non-finite number (NaN or Infinity) where a "
                        "finite number is required", name, je->line, je->column);
    return bp_error(BP_ERR_FORMAT, "%s:%d:%d: not valid JSON: %s", name, je->line, je->column,
                    je->text);
}

bp_status bp_profile_parse(const char *text, size_t len, const char *name, bp_profile **out)
{
    *out = NULL;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    if (!root)
        return parse_error(&je, text, len, name);
    bp_status st = BP_OK;
    bp_profile *p = NULL;
    bp_profile_entry e = {0};
    if (!json_is_object(root)) {
        st = bp_error(BP_ERR_FORMAT, "%s: top level must be an object", name);
        goto cleanup;
    }
    json_t *fmt = json_object_get(root, "format");
    if (!json_is_string(fmt) || strcmp(json_string_value(fmt), PROFILE_FORMAT)) {
        st = bp_error(BP_ERR_FORMAT, "%s: field 'format': must be \"%s\"", name, PROFILE_FORMAT);
        goto cleanup;
    }
    json_t *ver = json_object_get(root, "version");
    if (!json_is_integer(ver)) {
        st = bp_error(BP_ERR_FORMAT, "%s: missing field 'version'", name);
        goto cleanup;
    }
    if (json_integer_value(ver) != PROFILE_VERSION) {
        st = bp_error(BP_ERR_UNSUPPORTED, "%s: field 'version': %lld is not supported (this "
                      "bitplan reads version %d)", name, (long long)json_integer_value(ver),
                      PROFILE_VERSION);
        goto cleanup;
    }
    json_t *cond = json_object_get(root, "conditions");
    if (!json_is_object(cond)) {
        st = bp_error(BP_ERR_FORMAT, "%s: missing field 'conditions' (an object)", name);
        goto cleanup;
    }
    p = bp_profile_new("", 0);
    if (!p) {
        st = bp_error(BP_ERR_NOMEM, "%s: out of memory", name);
        goto cleanup;
    }
    if ((st = get_str(root, "device", 1, &p->device, name, "top level")) ||
        (st = get_str(root, "citation", 0, &p->citation, name, "top level")) ||
        (st = get_int32(cond, "batch", 1, 1, &p->batch, name, "conditions")) ||
        (st = get_int32(cond, "threads", 0, 1, &p->threads, name, "conditions")) ||
        (st = get_int32(cond, "repetitions", 0, 1, &p->repetitions, name, "conditions")) ||
        (st = get_int32(cond, "warmup", 0, 0, &p->warmup, name, "conditions")) ||
        (st = get_str(cond, "date", 0, &p->date, name, "conditions")) ||
        (st = get_str(cond, "host", 0, &p->host, name, "conditions")) ||
        (st = get_str(cond, "clock", 0, &p->clock, name, "conditions")) ||
        (st = parse_bits_list(root, p, name)) || (st = parse_roofline(root, p, name)))
        goto cleanup;
    json_t *ents = json_object_get(root, "entries");
    if (!json_is_array(ents)) {
        st = bp_error(BP_ERR_FORMAT, "%s: missing field 'entries' (a list)", name);
        goto cleanup;
    }
    for (size_t i = 0; i < json_array_size(ents); i++) {
        memset(&e, 0, sizeof e);
        if ((st = parse_entry(json_array_get(ents, i), &e, name, (int)i)))
            goto cleanup;
        int dup = bp_profile_find(p, &e.sig, e.b_w, e.b_a);
        if (dup >= 0) {
            st = bp_error(BP_ERR_FORMAT, "%s: entry %zu: duplicate key: same signature and "
                          "(b_w, b_a) = (%d, %d) as entry %d", name, i, e.b_w, e.b_a, dup);
            goto cleanup;
        }
        if ((st = bp_profile_add(p, &e)))
            goto cleanup;
        free(e.note);
        e.note = NULL;
    }
    if ((st = bp_profile_validate(p, name)))
        goto cleanup;
    *out = p;
    p = NULL;
cleanup:
    free(e.note);
    bp_profile_free(p);
    json_decref(root);
    return st;
}

bp_status bp_profile_load(const char *path, bp_profile **out)
{
    char *text;
    size_t len;
    *out = NULL;
    bp_status st = bp_read_file(path, &text, &len);
    if (st)
        return st;
    st = bp_profile_parse(text, len, path, out);
    free(text);
    return st;
}

/* ---- writing ---------------------------------------------------------------- */

#define REAL_FLAGS (JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(12))

static json_t *entry_json(const bp_profile_entry *e)
{
    const bp_lat_sig *s = &e->sig;
    json_t *o = json_object();
    json_object_set_new(o, "op", json_string(bp_op_name(s->op)));
    json_object_set_new(o, "cin", json_integer(s->cin));
    json_object_set_new(o, "cout", json_integer(s->cout));
    json_object_set_new(o, "kh", json_integer(s->kh));
    json_object_set_new(o, "kw", json_integer(s->kw));
    json_object_set_new(o, "stride", json_integer(s->stride));
    json_object_set_new(o, "group", json_integer(s->group));
    json_object_set_new(o, "in_h", json_integer(s->in_h));
    json_object_set_new(o, "in_w", json_integer(s->in_w));
    json_object_set_new(o, "batch", json_integer(s->batch));
    json_object_set_new(o, "b_w", json_integer(e->b_w));
    json_object_set_new(o, "b_a", json_integer(e->b_a));
    json_object_set_new(o, "macs", json_integer(e->macs));
    json_object_set_new(o, "latency_ms", json_real(e->latency_ms));
    if (e->spread != BP_SPREAD_NONE) {
        json_t *sp = json_object();
        json_object_set_new(sp, "kind", json_string(e->spread == BP_SPREAD_IQR ? "iqr"
                                                                               : "minmax"));
        json_object_set_new(sp, "lo", json_real(e->lo_ms));
        json_object_set_new(sp, "hi", json_real(e->hi_ms));
        json_object_set_new(o, "spread", sp);
    }
    json_object_set_new(o, "source",
                        json_string(e->source == BP_LAT_MEASURED ? "measured" : "modeled"));
    if (e->note)
        json_object_set_new(o, "note", json_string(e->note));
    return o;
}

/* Writes `"key": value` with value dumped by jansson (which takes ownership). */
static int put(FILE *fp, const char *indent, const char *key, json_t *v, int comma)
{
    char *s = v ? json_dumps(v, REAL_FLAGS | JSON_ENCODE_ANY) : NULL;
    json_decref(v);
    if (!s)
        return -1;
    fprintf(fp, "%s\"%s\": %s%s\n", indent, key, s, comma ? "," : "");
    free(s);
    return 0;
}

static json_t *int_or_null(int x)
{
    return x >= 0 ? json_integer(x) : json_null();
}

static json_t *str_or_null(const char *s)
{
    return s ? json_string(s) : json_null();
}

bp_status bp_profile_save(const bp_profile *p, const char *path)
{
    bp_status st = bp_profile_validate(p, path);
    if (st)
        return st;
    bp_out out = {0};
    if ((st = bp_out_open(&out, path)))
        return st;
    FILE *fp = out.fp;
    int bad = 0;
    fprintf(fp, "{\n");
    bad |= put(fp, "  ", "format", json_string(PROFILE_FORMAT), 1);
    bad |= put(fp, "  ", "version", json_integer(PROFILE_VERSION), 1);
    bad |= put(fp, "  ", "device", json_string(p->device), 1);
    if (p->citation)
        bad |= put(fp, "  ", "citation", json_string(p->citation), 1);
    fprintf(fp, "  \"conditions\": {\n");
    bad |= put(fp, "    ", "batch", json_integer(p->batch), 1);
    bad |= put(fp, "    ", "threads", int_or_null(p->threads), 1);
    bad |= put(fp, "    ", "repetitions", int_or_null(p->repetitions), 1);
    bad |= put(fp, "    ", "warmup", int_or_null(p->warmup), 1);
    bad |= put(fp, "    ", "date", str_or_null(p->date), 1);
    bad |= put(fp, "    ", "host", str_or_null(p->host), 1);
    bad |= put(fp, "    ", "clock", str_or_null(p->clock), 0);
    fprintf(fp, "  },\n");
    if (p->nunits > 0) {
        json_t *u = json_array();
        for (int k = 0; k < p->nunits; k++)
            json_array_append_new(u, json_integer(p->units[k]));
        bad |= put(fp, "  ", "units", u, 1);
    }
    if (p->npeak > 0) {
        json_t *pk = json_object();
        for (int k = 0; k < p->npeak; k++) {
            char key[16];
            snprintf(key, sizeof key, "%d", p->peak_bits[k]);
            json_object_set_new(pk, key, json_real(p->peak_ops[k]));
        }
        fprintf(fp, "  \"roofline\": {\n");
        bad |= put(fp, "    ", "peak_ops", pk, 1);
        bad |= put(fp, "    ", "mem_bw", json_real(p->mem_bw), 0);
        fprintf(fp, "  },\n");
    }
    fprintf(fp, "  \"entries\": [%s", p->n ? "\n" : "");
    for (int i = 0; i < p->n && !bad; i++) {
        json_t *o = entry_json(&p->e[i]);
        char *s = o ? json_dumps(o, REAL_FLAGS) : NULL;
        json_decref(o);
        if (!s) {
            bad = 1;
            break;
        }
        fprintf(fp, "    %s%s\n", s, i + 1 < p->n ? "," : "");
        free(s);
    }
    fprintf(fp, "%s]\n}\n", p->n ? "  " : "");
    if (bad) {
        bp_out_abort(&out);
        return bp_error(BP_ERR_NOMEM, "%s: out of memory while encoding the profile", path);
    }
    return bp_out_commit(&out);
}
