/* profile.c — the in-memory profile: building, finding entries, validation. */
#include "latency/profile.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

bp_profile *bp_profile_new(const char *device, int batch)
{
    bp_profile *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->device = strdup(device ? device : "");
    if (!p->device) {
        free(p);
        return NULL;
    }
    p->batch = batch;
    p->threads = p->repetitions = p->warmup = -1;
    return p;
}

void bp_profile_free(bp_profile *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->n; i++)
        free(p->e[i].note);
    free(p->e);
    free(p->device);
    free(p->citation);
    free(p->date);
    free(p->host);
    free(p->clock);
    free(p);
}

int bp_lat_sig_equal(const bp_lat_sig *a, const bp_lat_sig *b)
{
    return a->op == b->op && a->cin == b->cin && a->cout == b->cout && a->kh == b->kh &&
           a->kw == b->kw && a->stride == b->stride && a->group == b->group &&
           a->in_h == b->in_h && a->in_w == b->in_w && a->batch == b->batch;
}

int bp_profile_find(const bp_profile *p, const bp_lat_sig *s, int b_w, int b_a)
{
    /* Profiles hold at most a few thousand entries; a linear scan keeps the
     * table in file order and costs nothing next to an ILP solve. */
    for (int i = 0; i < p->n; i++)
        if (p->e[i].b_w == b_w && p->e[i].b_a == b_a &&
            bp_lat_sig_equal(&p->e[i].sig, s))
            return i;
    return -1;
}

bp_status bp_profile_add(bp_profile *p, const bp_profile_entry *e)
{
    if (bp_profile_find(p, &e->sig, e->b_w, e->b_a) >= 0)
        return bp_error(BP_ERR_ARG, "profile %s: duplicate entry %s %lldx%lld k%dx%d s%d g%d "
                        "in %lldx%lld batch %d at W%dA%d",
                        p->device, bp_op_name(e->sig.op), (long long)e->sig.cin,
                        (long long)e->sig.cout, e->sig.kh, e->sig.kw, e->sig.stride,
                        e->sig.group, (long long)e->sig.in_h, (long long)e->sig.in_w,
                        e->sig.batch, e->b_w, e->b_a);
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 64;
        bp_profile_entry *ne = realloc(p->e, (size_t)cap * sizeof *ne);
        if (!ne)
            return bp_error(BP_ERR_NOMEM, "profile %s: out of memory", p->device);
        p->e = ne;
        p->cap = cap;
    }
    bp_profile_entry *d = &p->e[p->n];
    *d = *e;
    d->note = dup_or_null(e->note);
    if (e->note && !d->note)
        return bp_error(BP_ERR_NOMEM, "profile %s: out of memory", p->device);
    p->n++;
    return BP_OK;
}

bp_lat_sig bp_lat_sig_of_layer(const bp_layer *L, int batch)
{
    bp_lat_sig s = {0};
    s.op = L->op;
    s.cin = L->cin;
    s.cout = L->cout;
    s.batch = batch;
    if (L->op == BP_OP_CONV) {
        s.kh = L->kh;
        s.kw = L->kw;
        s.stride = L->stride;
        s.group = L->group;
        s.in_h = L->in_h;
        s.in_w = L->in_w;
    } else {
        /* Fully connected: the spatial fields are fixed so that a Gemm from one
         * exporter matches a Gemm from another whatever they put there. */
        s.kh = s.kw = s.stride = s.group = 1;
        s.in_h = s.in_w = 1;
    }
    return s;
}

static int known_op(bp_op op)
{
    return op == BP_OP_CONV || op == BP_OP_GEMM || op == BP_OP_MATMUL;
}

static int ascending_positive(const int *v, int n)
{
    for (int i = 0; i < n; i++)
        if (v[i] <= 0 || (i > 0 && v[i] <= v[i - 1]))
            return 0;
    return 1;
}

bp_status bp_profile_validate(const bp_profile *p, const char *name)
{
    if (!name)
        name = p->device;
    if (!p->device || !p->device[0])
        return bp_error(BP_ERR_FORMAT, "%s: field 'device': empty", name);
    if (p->batch <= 0)
        return bp_error(BP_ERR_FORMAT, "%s: field 'conditions.batch': must be a positive "
                        "integer (got %d)", name, p->batch);
    if (p->clock && strcmp(p->clock, "wall") && strcmp(p->clock, "thread-cpu"))
        return bp_error(BP_ERR_FORMAT, "%s: field 'conditions.clock': must be \"wall\" or "
                        "\"thread-cpu\" (got \"%s\")", name, p->clock);
    if (p->nunits < 0 || p->nunits > BP_PROFILE_MAX_BITS ||
        !ascending_positive(p->units, p->nunits))
        return bp_error(BP_ERR_FORMAT, "%s: field 'units': must be ascending positive "
                        "bit-widths (at most %d)", name, BP_PROFILE_MAX_BITS);
    if (p->npeak < 0 || p->npeak > BP_PROFILE_MAX_BITS ||
        !ascending_positive(p->peak_bits, p->npeak))
        return bp_error(BP_ERR_FORMAT, "%s: field 'roofline.peak_ops': keys must be distinct "
                        "positive bit-widths (at most %d)", name, BP_PROFILE_MAX_BITS);
    for (int k = 0; k < p->npeak; k++)
        if (!isfinite(p->peak_ops[k]) || p->peak_ops[k] <= 0)
            return bp_error(BP_ERR_FORMAT, "%s: field 'roofline.peak_ops.%d': must be a "
                            "positive finite number of ops/s", name, p->peak_bits[k]);
    if (p->npeak > 0 && (!isfinite(p->mem_bw) || p->mem_bw <= 0))
        return bp_error(BP_ERR_FORMAT, "%s: field 'roofline.mem_bw': must be a positive "
                        "finite number of bytes/s", name);
    for (int i = 0; i < p->n; i++) {
        const bp_profile_entry *e = &p->e[i];
        const bp_lat_sig *s = &e->sig;
        const char *bad = NULL;
        if (!known_op(s->op))
            return bp_error(BP_ERR_FORMAT, "%s: entry %d: field 'op': unknown op (expected "
                            "Conv, Gemm or MatMul)", name, i);
        if (s->cin <= 0)
            bad = "cin";
        else if (s->cout <= 0)
            bad = "cout";
        else if (s->kh <= 0)
            bad = "kh";
        else if (s->kw <= 0)
            bad = "kw";
        else if (s->stride <= 0)
            bad = "stride";
        else if (s->group <= 0)
            bad = "group";
        else if (s->in_h <= 0)
            bad = "in_h";
        else if (s->in_w <= 0)
            bad = "in_w";
        else if (s->batch <= 0)
            bad = "batch";
        else if (e->b_w <= 0 || e->b_w > 32)
            bad = "b_w";
        else if (e->b_a <= 0 || e->b_a > 32)
            bad = "b_a";
        else if (e->macs <= 0)
            bad = "macs";
        if (bad)
            return bp_error(BP_ERR_FORMAT, "%s: entry %d: field '%s': must be a positive "
                            "integer%s", name, i, bad,
                            (bad[0] == 'b' && bad[1] == '_') ? " of at most 32" : "");
        if (s->group > 1 && (s->cin % s->group || s->cout % s->group))
            return bp_error(BP_ERR_FORMAT, "%s: entry %d: field 'group': %d does not divide "
                            "cin %lld and cout %lld", name, i, s->group, (long long)s->cin,
                            (long long)s->cout);
        if (isnan(e->latency_ms))
            return bp_error(BP_ERR_FORMAT, "%s: entry %d: field 'latency_ms': NaN", name, i);
        if (!isfinite(e->latency_ms) || e->latency_ms < 0)
            return bp_error(BP_ERR_FORMAT, "%s: entry %d: field 'latency_ms': must be finite "
                            "and >= 0 (got %g)", name, i, e->latency_ms);
        if (e->spread != BP_SPREAD_NONE) {
            if (!isfinite(e->lo_ms) || !isfinite(e->hi_ms) || e->lo_ms < 0 ||
                e->hi_ms < e->lo_ms)
                return bp_error(BP_ERR_FORMAT, "%s: entry %d: field 'spread': need finite "
                                "0 <= lo <= hi (got %g, %g)", name, i, e->lo_ms, e->hi_ms);
        }
        if (e->source != BP_LAT_MEASURED && e->source != BP_LAT_MODELED)
            return bp_error(BP_ERR_FORMAT, "%s: entry %d: field 'source': must be \"measured\" "
                            "or \"modeled\"", name, i);
        for (int j = 0; j < i; j++)
            if (p->e[j].b_w == e->b_w && p->e[j].b_a == e->b_a &&
                bp_lat_sig_equal(&p->e[j].sig, s))
                return bp_error(BP_ERR_FORMAT, "%s: entry %d: duplicate key: same signature "
                                "and (b_w, b_a) = (%d, %d) as entry %d", name, i, e->b_w,
                                e->b_a, j);
    }
    return BP_OK;
}

const char *bp_lat_how_name(int how)
{
    static const char *names[2][4] = {
        {"exact", "interpolated", "roofline", "?"},
        {"exact+promoted", "interpolated+promoted", "roofline+promoted", "?"},
    };
    if (how < 0 || how > (BP_LAT_METHOD_MASK | BP_LAT_PROMOTED))
        return "?";
    return names[(how & BP_LAT_PROMOTED) ? 1 : 0][how & BP_LAT_METHOD_MASK];
}
