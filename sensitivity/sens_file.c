/* sens_file.c — sensitivity file: JSON reader/writer, validation, CSV view.
 * Field list and required/optional rules: docs/FORMATS.md "Sensitivity file". */
#include "sensitivity/sens_file.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/csv.h"
#include "core/fileio.h"
#include "ilp/jfield.h"

/* ---- in-memory ---------------------------------------------------------- */

static void layer_blank(bp_sens_layer *sl)
{
    memset(sl, 0, sizeof *sl);
    sl->sig.node = sl->sig.weight = sl->sig.bias = sl->sig.input = sl->sig.output = -1;
    sl->sig.kh = sl->sig.kw = sl->sig.stride = sl->sig.group = 1;
    sl->sig.in_h = sl->sig.in_w = sl->sig.out_h = sl->sig.out_w = 1;
    sl->trace = sl->trace_stderr = NAN;
    sl->act_trace = sl->act_stderr = NAN;
    sl->act_signed = -1;
}

bp_status bp_sens_init(bp_sens *s, int nlayers)
{
    memset(s, 0, sizeof *s);
    if (nlayers < 0)
        return bp_error(BP_ERR_ARG, "bp_sens_init: negative layer count %d", nlayers);
    s->layers = calloc(nlayers ? (size_t)nlayers : 1, sizeof *s->layers);
    if (!s->layers)
        return bp_error(BP_ERR_NOMEM, "bp_sens_init: out of memory for %d layers", nlayers);
    s->nlayers = nlayers;
    for (int i = 0; i < nlayers; i++)
        layer_blank(&s->layers[i]);
    return BP_OK;
}

void bp_sens_free(bp_sens *s)
{
    if (!s)
        return;
    free(s->layers);
    free(s->top_eigenvalues);
    free(s->density_grid);
    free(s->density_values);
    memset(s, 0, sizeof *s);
}

void bp_sens_layer_set_sig(bp_sens_layer *sl, const bp_layer *l, const bp_graph *g)
{
    sl->sig = *l;
    sl->has_bias = l->bias >= 0;
    if (!g)
        return;
    if (l->input >= 0 && l->input < g->nvalues) {
        const bp_value *v = &g->values[l->input];
        sl->in_ndim = v->ndim;
        memcpy(sl->in_shape, v->dims, sizeof sl->in_shape);
    }
    if (l->output >= 0 && l->output < g->nvalues) {
        const bp_value *v = &g->values[l->output];
        sl->out_ndim = v->ndim;
        memcpy(sl->out_shape, v->dims, sizeof sl->out_shape);
    }
}

const bp_sens_cand *bp_sens_find_cand(const bp_sens_layer *sl, int bits)
{
    for (int c = 0; c < sl->ncand; c++)
        if (sl->cand[c].bits == bits)
            return &sl->cand[c];
    return NULL;
}

const bp_sens_act_cand *bp_sens_find_act(const bp_sens_layer *sl, int bits)
{
    for (int c = 0; c < sl->nact; c++)
        if (sl->act[c].bits == bits)
            return &sl->act[c];
    return NULL;
}

int bp_sens_op_from_name(const char *name)
{
    static const bp_op ops[] = {BP_OP_CONV, BP_OP_GEMM, BP_OP_MATMUL};
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        if (!strcmp(name, bp_op_name(ops[k])))
            return (int)ops[k];
    return -1;
}

/* ---- validation --------------------------------------------------------- */

static int sha_ok(const char *h)
{
    if (!h[0])
        return 1;
    if (strlen(h) != 64)
        return 0;
    for (int k = 0; k < 64; k++)
        if (!isxdigit((unsigned char)h[k]))
            return 0;
    return 1;
}

/* Not NaN is "present"; present values must be finite. */
static int bad_opt(double x) { return !isnan(x) && !isfinite(x); }

bp_status bp_sens_validate(const bp_sens *s, const char *name)
{
    if (!sha_ok(s->model_sha256))
        return bp_error(BP_ERR_FORMAT, "%s: model: field \"sha256\" must be 64 hex digits",
                        name);
    const bp_sens_settings *st = &s->settings;
    if (st->has_settings) {
        if (st->quantizer[0] && strcmp(st->quantizer, "maxabs") && strcmp(st->quantizer, "mse"))
            return bp_error(BP_ERR_FORMAT,
                            "%s: settings: field \"quantizer\" is \"%s\", must be \"maxabs\" or \"mse\"",
                            name, st->quantizer);
        if (!(st->tolerance >= 0) || !isfinite(st->tolerance))
            return bp_error(BP_ERR_FORMAT, "%s: settings: field \"tolerance\" must be finite and >= 0",
                            name);
        if (st->nbits < 0 || st->nbits > BP_SENS_MAX_CAND)
            return bp_error(BP_ERR_FORMAT, "%s: settings: field \"bits\" has %d entries (at most %d)",
                            name, st->nbits, BP_SENS_MAX_CAND);
        for (int k = 0; k < st->nbits; k++)
            if (st->bits[k] < 1 || st->bits[k] > BP_SENS_MAX_BITS)
                return bp_error(BP_ERR_FORMAT, "%s: settings: \"bits\"[%d] is %d, must be in 1..%d",
                                name, k, st->bits[k], BP_SENS_MAX_BITS);
        if (st->min_probes < 0 || st->max_probes < 0 || st->samples < 0 || st->batch < 0)
            return bp_error(BP_ERR_FORMAT, "%s: settings: probe/sample counts must be >= 0", name);
        if (st->has_act) {
            if (st->act_calib[0] && strcmp(st->act_calib, "minmax") &&
                strcmp(st->act_calib, "percentile") && strcmp(st->act_calib, "mse"))
                return bp_error(BP_ERR_FORMAT,
                                "%s: settings: act: field \"calib\" is \"%s\", must be \"minmax\", "
                                "\"percentile\" or \"mse\"", name, st->act_calib);
            if (st->act_samples < 0 || st->act_calib_samples < 0 || st->act_min_probes < 0 ||
                st->act_max_probes < 0)
                return bp_error(BP_ERR_FORMAT, "%s: settings: act: probe/sample counts must be >= 0",
                                name);
            if (!(st->act_tolerance >= 0) || !isfinite(st->act_tolerance))
                return bp_error(BP_ERR_FORMAT,
                                "%s: settings: act: field \"tolerance\" must be finite and >= 0", name);
            if (bad_opt(st->act_percentile))
                return bp_error(BP_ERR_FORMAT, "%s: settings: act: field \"percentile\" is not finite",
                                name);
            if (st->act_nbits < 0 || st->act_nbits > BP_SENS_MAX_CAND)
                return bp_error(BP_ERR_FORMAT,
                                "%s: settings: act: field \"bits\" has %d entries (at most %d)", name,
                                st->act_nbits, BP_SENS_MAX_CAND);
            for (int k = 0; k < st->act_nbits; k++)
                if (st->act_bits[k] < 1 || st->act_bits[k] > BP_SENS_MAX_BITS)
                    return bp_error(BP_ERR_FORMAT,
                                    "%s: settings: act: \"bits\"[%d] is %d, must be in 1..%d", name, k,
                                    st->act_bits[k], BP_SENS_MAX_BITS);
        }
    }
    if (s->nlayers < 1)
        return bp_error(BP_ERR_FORMAT, "%s: field \"layers\" is empty", name);
    for (int i = 0; i < s->nlayers; i++) {
        const bp_sens_layer *sl = &s->layers[i];
        const bp_layer *l = &sl->sig;
        char where[220];
        snprintf(where, sizeof where, "%s: layer %d (%s)", name, i, l->name);
        if (!l->name[0])
            return bp_error(BP_ERR_FORMAT, "%s: layer %d: field \"name\" is empty", name, i);
        for (int j = 0; j < i; j++)
            if (!strcmp(s->layers[j].sig.name, l->name))
                return bp_error(BP_ERR_FORMAT, "%s: field \"name\" repeats layer %d's name", where,
                                j);
        if (l->op != BP_OP_CONV && l->op != BP_OP_GEMM && l->op != BP_OP_MATMUL)
            return bp_error(BP_ERR_FORMAT, "%s: field \"op\": not a layer op (Conv, Gemm, MatMul)",
                            where);
        if (l->params < 1)
            return bp_error(BP_ERR_FORMAT, "%s: field \"params\" must be >= 1", where);
        if (l->macs < 0)
            return bp_error(BP_ERR_FORMAT, "%s: field \"macs\" is negative", where);
        if (l->cout < 1)
            return bp_error(BP_ERR_FORMAT, "%s: field \"cout\" must be >= 1", where);
        if (l->cin < 0 || l->fan_in < 0)
            return bp_error(BP_ERR_FORMAT, "%s: fields \"cin\"/\"fan_in\" must be >= 0", where);
        if (l->kh < 1 || l->kw < 1 || l->stride < 1 || l->group < 1)
            return bp_error(BP_ERR_FORMAT, "%s: fields \"kh\", \"kw\", \"stride\", \"group\" must be >= 1",
                            where);
        if (l->in_h < 1 || l->in_w < 1 || l->out_h < 1 || l->out_w < 1)
            return bp_error(BP_ERR_FORMAT, "%s: fields \"in_h\", \"in_w\", \"out_h\", \"out_w\" must be >= 1",
                            where);
        if (sl->in_ndim < 0 || sl->in_ndim > BP_MAX_DIMS || sl->out_ndim < 0 ||
            sl->out_ndim > BP_MAX_DIMS)
            return bp_error(BP_ERR_FORMAT, "%s: shapes have more than %d dims", where, BP_MAX_DIMS);
        if (bad_opt(sl->trace))
            return bp_error(BP_ERR_NUMERIC, "%s: field \"trace\" is not finite", where);
        if (bad_opt(sl->trace_stderr) || sl->trace_stderr < 0)
            return bp_error(BP_ERR_NUMERIC, "%s: field \"trace_stderr\" must be finite and >= 0",
                            where);
        if (sl->probes < 0)
            return bp_error(BP_ERR_FORMAT, "%s: field \"probes\" is negative", where);
        if (sl->has_eigenvalue && !isfinite(sl->eigenvalue))
            return bp_error(BP_ERR_NUMERIC, "%s: field \"eigenvalue\" is not finite", where);
        if (sl->ncand < 1 || sl->ncand > BP_SENS_MAX_CAND)
            return bp_error(BP_ERR_FORMAT, "%s: field \"candidates\" has %d entries (1..%d)", where,
                            sl->ncand, BP_SENS_MAX_CAND);
        for (int c = 0; c < sl->ncand; c++) {
            const bp_sens_cand *k = &sl->cand[c];
            if (k->bits < 1 || k->bits > BP_SENS_MAX_BITS)
                return bp_error(BP_ERR_FORMAT, "%s: candidates[%d]: field \"bits\" is %d (1..%d)",
                                where, c, k->bits, BP_SENS_MAX_BITS);
            if (c > 0 && k->bits <= sl->cand[c - 1].bits)
                return bp_error(BP_ERR_FORMAT,
                                "%s: candidates[%d]: field \"bits\" must increase (%d after %d)",
                                where, c, k->bits, sl->cand[c - 1].bits);
            if (!isfinite(k->omega))
                return bp_error(BP_ERR_NUMERIC, "%s: candidates[%d]: field \"omega\" is not finite",
                                where, c);
            if (bad_opt(k->dw2) || k->dw2 < 0)
                return bp_error(BP_ERR_NUMERIC,
                                "%s: candidates[%d]: field \"dw2\" must be finite and >= 0", where, c);
        }
        if (sl->nact < 0 || sl->nact > BP_SENS_MAX_CAND)
            return bp_error(BP_ERR_FORMAT, "%s: field \"act_candidates\" has %d entries", where,
                            sl->nact);
        if (bad_opt(sl->act_trace) || bad_opt(sl->act_stderr) || sl->act_stderr < 0)
            return bp_error(BP_ERR_NUMERIC, "%s: fields \"act_trace\"/\"act_stderr\" must be finite",
                            where);
        if (sl->act_probes < 0 || sl->act_numel < 0)
            return bp_error(BP_ERR_FORMAT, "%s: fields \"act_probes\"/\"act_numel\" must be >= 0",
                            where);
        for (int c = 0; c < sl->nact; c++) {
            const bp_sens_act_cand *k = &sl->act[c];
            if (k->bits < 1 || k->bits > BP_SENS_MAX_BITS)
                return bp_error(BP_ERR_FORMAT, "%s: act_candidates[%d]: field \"bits\" is %d (1..%d)",
                                where, c, k->bits, BP_SENS_MAX_BITS);
            if (c > 0 && k->bits <= sl->act[c - 1].bits)
                return bp_error(BP_ERR_FORMAT,
                                "%s: act_candidates[%d]: field \"bits\" must increase", where, c);
            if (!isfinite(k->omega))
                return bp_error(BP_ERR_NUMERIC,
                                "%s: act_candidates[%d]: field \"omega\" is not finite", where, c);
            if (bad_opt(k->dx2) || k->dx2 < 0)
                return bp_error(BP_ERR_NUMERIC,
                                "%s: act_candidates[%d]: field \"dx2\" must be finite and >= 0",
                                where, c);
            if (bad_opt(k->clip) || k->clip < 0)
                return bp_error(BP_ERR_NUMERIC,
                                "%s: act_candidates[%d]: field \"clip\" must be finite and >= 0",
                                where, c);
        }
    }
    if (s->ntop < 0 || (s->ntop > 0 && !s->top_eigenvalues))
        return bp_error(BP_ERR_FORMAT, "%s: top_eigenvalues: bad count", name);
    for (int k = 0; k < s->ntop; k++)
        if (!isfinite(s->top_eigenvalues[k]))
            return bp_error(BP_ERR_NUMERIC, "%s: \"top_eigenvalues\"[%d] is not finite", name, k);
    if (s->ndensity < 0 || (s->ndensity > 0 && (!s->density_grid || !s->density_values)))
        return bp_error(BP_ERR_FORMAT, "%s: density: bad count", name);
    for (int k = 0; k < s->ndensity; k++)
        if (!isfinite(s->density_grid[k]) || !isfinite(s->density_values[k]))
            return bp_error(BP_ERR_NUMERIC, "%s: density: entry %d is not finite", name, k);
    return BP_OK;
}

/* ---- reading ------------------------------------------------------------ */

static bp_status read_shape(const bp_jctx *c, const json_t *o, const char *key, int *ndim,
                            int64_t *dims)
{
    json_t *a;
    bp_status st = bp_jf_array(c, o, key, BP_JF_OPTIONAL, &a);
    if (st || !a)
        return st;
    size_t n = json_array_size(a);
    if (n < 1 || n > BP_MAX_DIMS)
        return bp_error(BP_ERR_FORMAT, "%s: %s: field \"%s\" has %zu dims (1..%d)", c->file,
                        c->where, key, n, BP_MAX_DIMS);
    for (size_t k = 0; k < n; k++) {
        double x;
        /* -1 is a symbolic batch dimension, as ONNX models often have. */
        if ((st = bp_jf_elem_num(c, a, k, key, -1, &x)))
            return st;
        if (x != floor(x))
            return bp_error(BP_ERR_FORMAT, "%s: %s: \"%s\"[%zu] must be an integer", c->file,
                            c->where, key, k);
        dims[k] = (int64_t)x;
    }
    *ndim = (int)n;
    return BP_OK;
}

/* Reads "candidates" (weights, act = 0) or "act_candidates" (act = 1). */
static bp_status read_cands(bp_jctx *c, const json_t *o, int act, bp_sens_layer *sl)
{
    const char *key = act ? "act_candidates" : "candidates";
    json_t *a;
    bp_status st = bp_jf_array(c, o, key, act ? BP_JF_OPTIONAL : BP_JF_REQUIRED, &a);
    if (st || !a)
        return st;
    size_t n = json_array_size(a);
    if (n > BP_SENS_MAX_CAND || (!act && n < 1))
        return bp_error(BP_ERR_FORMAT, "%s: %s: field \"%s\" has %zu entries (%d..%d)", c->file,
                        c->where, key, n, act ? 0 : 1, BP_SENS_MAX_CAND);
    char base[sizeof c->where];
    memcpy(base, c->where, sizeof base);
    for (size_t k = 0; k < n; k++) {
        json_t *e = json_array_get(a, k);
        snprintf(c->where, sizeof c->where, "%.200s: %s[%zu]", base, key, k);
        if (!json_is_object(e)) {
            st = bp_error(BP_ERR_FORMAT, "%s: %s: must be an object like {\"bits\": 4, \"omega\": 0.1}",
                          c->file, c->where);
            goto out;
        }
        long long bits = 0;
        double omega = 0, d2 = NAN, clip = NAN;
        if ((st = bp_jf_int(c, e, "bits", BP_JF_REQUIRED, 1, BP_SENS_MAX_BITS, &bits)) ||
            (st = bp_jf_num(c, e, "omega", BP_JF_REQUIRED, 0, &omega, NULL)) ||
            (st = bp_jf_num_min(c, e, act ? "dx2" : "dw2", BP_JF_OPTIONAL, 0, &d2)) ||
            (act && (st = bp_jf_num_min(c, e, "clip", BP_JF_OPTIONAL, 0, &clip))))
            goto out;
        int prev = k == 0 ? 0 : act ? sl->act[k - 1].bits : sl->cand[k - 1].bits;
        if ((int)bits <= prev) {
            st = bp_error(BP_ERR_FORMAT, "%s: %s: field \"bits\" must increase (%lld after %d)",
                          c->file, c->where, bits, prev);
            goto out;
        }
        if (act)
            sl->act[k] = (bp_sens_act_cand){.bits = (int)bits, .dx2 = d2, .omega = omega, .clip = clip};
        else
            sl->cand[k] = (bp_sens_cand){.bits = (int)bits, .dw2 = d2, .omega = omega};
    }
    if (act) {
        sl->nact = (int)n;
        sl->has_act = 1;
    } else {
        sl->ncand = (int)n;
    }
out:
    memcpy(c->where, base, sizeof base);
    return st;
}

static bp_status read_layer(bp_jctx *c, const json_t *o, int i, bp_sens_layer *sl)
{
    bp_layer *l = &sl->sig;
    bp_status st;
    snprintf(c->where, sizeof c->where, "layer %d", i);
    if (!json_is_object(o))
        return bp_error(BP_ERR_FORMAT, "%s: %s: must be an object", c->file, c->where);
    if ((st = bp_jf_str(c, o, "name", BP_JF_REQUIRED, l->name, sizeof l->name)))
        return st;
    if (!l->name[0])
        return bp_error(BP_ERR_FORMAT, "%s: %s: field \"name\" is empty", c->file, c->where);
    snprintf(c->where, sizeof c->where, "layer %d (%.160s)", i, l->name);

    char op[32];
    if ((st = bp_jf_str(c, o, "op", BP_JF_REQUIRED, op, sizeof op)))
        return st;
    int opk = bp_sens_op_from_name(op);
    if (opk < 0)
        return bp_error(BP_ERR_FORMAT,
                        "%s: %s: field \"op\" is \"%s\", not a layer op (Conv, Gemm or MatMul)",
                        c->file, c->where, op);
    l->op = (bp_op)opk;

    long long v;
    const long long BIG = (long long)1 << 62, DIM = INT32_MAX;
#define INTF(key, req, lo, hi, dst)                                            \
    do {                                                                     \
        v = (dst);                                                           \
        if ((st = bp_jf_int(c, o, key, req, lo, hi, &v)))                    \
            return st;                                                       \
        (dst) = v;                                                           \
    } while (0)
    INTF("params", BP_JF_REQUIRED, 1, BIG, l->params);
    INTF("macs", BP_JF_REQUIRED, 0, BIG, l->macs);
    INTF("cout", BP_JF_REQUIRED, 1, DIM, l->cout);
    INTF("cin", BP_JF_OPTIONAL, 0, DIM, l->cin);
    INTF("kh", BP_JF_OPTIONAL, 1, DIM, l->kh);
    INTF("kw", BP_JF_OPTIONAL, 1, DIM, l->kw);
    INTF("stride", BP_JF_OPTIONAL, 1, DIM, l->stride);
    INTF("group", BP_JF_OPTIONAL, 1, DIM, l->group);
    INTF("in_h", BP_JF_OPTIONAL, 1, DIM, l->in_h);
    INTF("in_w", BP_JF_OPTIONAL, 1, DIM, l->in_w);
    INTF("out_h", BP_JF_OPTIONAL, 1, DIM, l->out_h);
    INTF("out_w", BP_JF_OPTIONAL, 1, DIM, l->out_w);
    /* fan_in defaults to MACs per output element when absent. */
    l->fan_in = (int64_t)((double)l->macs / ((double)l->cout * (double)l->out_h * (double)l->out_w));
    INTF("fan_in", BP_JF_OPTIONAL, 0, BIG, l->fan_in);
    INTF("probes", BP_JF_OPTIONAL, 0, INT32_MAX, sl->probes);
    INTF("act_probes", BP_JF_OPTIONAL, 0, INT32_MAX, sl->act_probes);
    INTF("act_numel", BP_JF_OPTIONAL, 0, BIG, sl->act_numel);
#undef INTF
    if ((st = bp_jf_bool(c, o, "bias", BP_JF_OPTIONAL, &sl->has_bias)) ||
        (st = bp_jf_bool(c, o, "converged", BP_JF_OPTIONAL, &sl->converged)) ||
        (st = read_shape(c, o, "input_shape", &sl->in_ndim, sl->in_shape)) ||
        (st = read_shape(c, o, "output_shape", &sl->out_ndim, sl->out_shape)) ||
        (st = bp_jf_num(c, o, "trace", BP_JF_OPTIONAL, 0, &sl->trace, NULL)) ||
        (st = bp_jf_num_min(c, o, "trace_stderr", BP_JF_OPTIONAL, 0, &sl->trace_stderr)) ||
        (st = bp_jf_num(c, o, "eigenvalue", BP_JF_OPTIONAL, 1, &sl->eigenvalue,
                        &sl->has_eigenvalue)) ||
        (st = bp_jf_str(c, o, "tie", BP_JF_OPTIONAL, sl->tie, sizeof sl->tie)) ||
        (st = bp_jf_num(c, o, "act_trace", BP_JF_OPTIONAL, 0, &sl->act_trace, NULL)) ||
        (st = bp_jf_num_min(c, o, "act_stderr", BP_JF_OPTIONAL, 0, &sl->act_stderr)) ||
        (st = bp_jf_bool(c, o, "act_converged", BP_JF_OPTIONAL, &sl->act_converged)) ||
        (st = read_cands(c, o, 0, sl)) || (st = read_cands(c, o, 1, sl)))
        return st;
    if (json_object_get(o, "act_signed")) {
        int sg = 0;
        if ((st = bp_jf_bool(c, o, "act_signed", BP_JF_OPTIONAL, &sg)))
            return st;
        sl->act_signed = sg;
    }
    if (!isnan(sl->act_trace) || !isnan(sl->act_stderr))
        sl->has_act = 1;
    return BP_OK;
}

/* An optional "bits" array of integers 1..BP_SENS_MAX_BITS. */
static bp_status read_bits(bp_jctx *c, const json_t *o, const char *where, int *n, int *bits)
{
    json_t *a;
    bp_status s;
    if ((s = bp_jf_array(c, o, "bits", BP_JF_OPTIONAL, &a)) || !a)
        return s;
    if (json_array_size(a) > BP_SENS_MAX_CAND)
        return bp_error(BP_ERR_FORMAT, "%s: %s: field \"bits\" has more than %d entries",
                        c->file, where, BP_SENS_MAX_CAND);
    *n = (int)json_array_size(a);
    for (int k = 0; k < *n; k++) {
        double x;
        if ((s = bp_jf_elem_num(c, a, k, "bits", 1, &x)))
            return s;
        if (x != floor(x) || x > BP_SENS_MAX_BITS)
            return bp_error(BP_ERR_FORMAT, "%s: %s: \"bits\"[%d] is %g (an integer 1..%d)",
                            c->file, where, k, x, BP_SENS_MAX_BITS);
        bits[k] = (int)x;
    }
    return BP_OK;
}

static bp_status read_settings(bp_jctx *c, const json_t *root, bp_sens_settings *st)
{
    json_t *o;
    bp_status s = bp_jf_object(c, root, "settings", BP_JF_OPTIONAL, &o);
    if (s || !o)
        return s;
    st->has_settings = 1;
    snprintf(c->where, sizeof c->where, "settings");
    long long v = 0;
    if ((s = bp_jf_int(c, o, "seed", BP_JF_OPTIONAL, 0, INT64_MAX, &v)))
        return s;
    st->seed = (uint64_t)v;
#define SINT(key, dst)                                                        \
    do {                                                                      \
        v = (dst);                                                            \
        if ((s = bp_jf_int(c, o, key, BP_JF_OPTIONAL, 0, INT32_MAX, &v)))     \
            return s;                                                         \
        (dst) = (int)v;                                                       \
    } while (0)
    SINT("min_probes", st->min_probes);
    SINT("max_probes", st->max_probes);
    SINT("samples", st->samples);
    SINT("batch", st->batch);
#undef SINT
    if ((s = bp_jf_str(c, o, "probe", BP_JF_OPTIONAL, st->probe, sizeof st->probe)) ||
        (s = bp_jf_num_min(c, o, "tolerance", BP_JF_OPTIONAL, 0, &st->tolerance)) ||
        (s = bp_jf_str(c, o, "quantizer", BP_JF_OPTIONAL, st->quantizer, sizeof st->quantizer)))
        return s;
    if (st->quantizer[0] && strcmp(st->quantizer, "maxabs") && strcmp(st->quantizer, "mse"))
        return bp_error(BP_ERR_FORMAT,
                        "%s: settings: field \"quantizer\" is \"%s\", must be \"maxabs\" or \"mse\"",
                        c->file, st->quantizer);
    if ((s = read_bits(c, o, "settings", &st->nbits, st->bits)))
        return s;
    json_t *act;
    if ((s = bp_jf_object(c, o, "act", BP_JF_OPTIONAL, &act)) || !act)
        return s;
    st->has_act = 1;
    st->act_percentile = NAN;
    snprintf(c->where, sizeof c->where, "settings: act");
#define AINT(key, dst)                                                        \
    do {                                                                      \
        v = (dst);                                                            \
        if ((s = bp_jf_int(c, act, key, BP_JF_OPTIONAL, 0, INT32_MAX, &v)))   \
            return s;                                                         \
        (dst) = (int)v;                                                       \
    } while (0)
    AINT("samples", st->act_samples);
    AINT("calib_samples", st->act_calib_samples);
    AINT("min_probes", st->act_min_probes);
    AINT("max_probes", st->act_max_probes);
#undef AINT
    if ((s = bp_jf_str(c, act, "calib", BP_JF_OPTIONAL, st->act_calib, sizeof st->act_calib)) ||
        (s = bp_jf_num(c, act, "percentile", BP_JF_OPTIONAL, 0, &st->act_percentile, NULL)) ||
        (s = bp_jf_num_min(c, act, "tolerance", BP_JF_OPTIONAL, 0, &st->act_tolerance)))
        return s;
    if (st->act_calib[0] && strcmp(st->act_calib, "minmax") && strcmp(st->act_calib, "percentile") &&
        strcmp(st->act_calib, "mse"))
        return bp_error(BP_ERR_FORMAT,
                        "%s: settings: act: field \"calib\" is \"%s\", must be \"minmax\", "
                        "\"percentile\" or \"mse\"", c->file, st->act_calib);
    return read_bits(c, act, "settings: act", &st->act_nbits, st->act_bits);
}

static bp_status read_doubles(bp_jctx *c, const json_t *a, const char *what, int *n, double **out)
{
    size_t m = json_array_size(a);
    *out = malloc((m ? m : 1) * sizeof **out);
    if (!*out)
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", c->file);
    *n = (int)m;
    for (size_t k = 0; k < m; k++) {
        bp_status st = bp_jf_elem_num(c, a, k, what, -INFINITY, &(*out)[k]);
        if (st)
            return st;
    }
    return BP_OK;
}

bp_status bp_sens_parse(const char *text, size_t len, const char *name, bp_sens *s)
{
    memset(s, 0, sizeof *s);
    json_t *root;
    bp_status st = bp_jf_load(text, len, name, BP_SENS_FORMAT, BP_SENS_VERSION, &root);
    if (st)
        return st;
    bp_jctx c = {.file = name};
    json_t *model, *layers, *a, *dens;
    snprintf(c.where, sizeof c.where, "top level");
    if ((st = bp_jf_object(&c, root, "model", BP_JF_OPTIONAL, &model)) ||
        (st = bp_jf_array(&c, root, "layers", BP_JF_REQUIRED, &layers)))
        goto fail;
    if (json_array_size(layers) < 1 || json_array_size(layers) > 1000000) {
        st = bp_error(BP_ERR_FORMAT, "%s: field \"layers\" has %zu entries (1..1000000)", name,
                      json_array_size(layers));
        goto fail;
    }
    if ((st = bp_sens_init(s, (int)json_array_size(layers))))
        goto fail;
    if (model) {
        snprintf(c.where, sizeof c.where, "model");
        if ((st = bp_jf_str(&c, model, "path", BP_JF_OPTIONAL, s->model_path,
                            sizeof s->model_path)) ||
            (st = bp_jf_str(&c, model, "sha256", BP_JF_OPTIONAL, s->model_sha256,
                            sizeof s->model_sha256)))
            goto fail;
        if (!sha_ok(s->model_sha256)) {
            st = bp_error(BP_ERR_FORMAT, "%s: model: field \"sha256\" must be 64 hex digits", name);
            goto fail;
        }
        for (char *p = s->model_sha256; *p; p++)
            *p = (char)tolower((unsigned char)*p);
    }
    if ((st = read_settings(&c, root, &s->settings)))
        goto fail;
    for (int i = 0; i < s->nlayers; i++)
        if ((st = read_layer(&c, json_array_get(layers, i), i, &s->layers[i])))
            goto fail;
    snprintf(c.where, sizeof c.where, "top level");
    if ((st = bp_jf_array(&c, root, "top_eigenvalues", BP_JF_OPTIONAL, &a)))
        goto fail;
    if (a && (st = read_doubles(&c, a, "top_eigenvalues", &s->ntop, &s->top_eigenvalues)))
        goto fail;
    if ((st = bp_jf_object(&c, root, "density", BP_JF_OPTIONAL, &dens)))
        goto fail;
    if (dens) {
        json_t *g, *v;
        int ng, nv;
        snprintf(c.where, sizeof c.where, "density");
        if ((st = bp_jf_array(&c, dens, "grid", BP_JF_REQUIRED, &g)) ||
            (st = bp_jf_array(&c, dens, "values", BP_JF_REQUIRED, &v)) ||
            (st = read_doubles(&c, g, "grid", &ng, &s->density_grid)) ||
            (st = read_doubles(&c, v, "values", &nv, &s->density_values)))
            goto fail;
        if (ng != nv) {
            st = bp_error(BP_ERR_FORMAT, "%s: density: \"grid\" has %d entries, \"values\" %d",
                          name, ng, nv);
            goto fail;
        }
        s->ndensity = ng;
    }
    if ((st = bp_sens_validate(s, name)))
        goto fail;
    json_decref(root);
    return BP_OK;
fail:
    json_decref(root);
    bp_sens_free(s);
    return st;
}

bp_status bp_sens_read(const char *path, bp_sens *s)
{
    char *text;
    size_t len;
    memset(s, 0, sizeof *s);
    bp_status st = bp_read_file(path, &text, &len);
    if (st)
        return st;
    st = bp_sens_parse(text, len, path, s);
    free(text);
    return st;
}

/* ---- writing ------------------------------------------------------------ */

/* Optional number: written only when present (not NaN). */
static int set_opt(json_t *o, const char *k, double x)
{
    return isnan(x) ? 0 : bp_jf_set(o, k, bp_jf_real(x));
}

static json_t *shape_json(int ndim, const int64_t *d)
{
    json_t *a = json_array();
    for (int k = 0; a && k < ndim; k++)
        if (json_array_append_new(a, json_integer(d[k]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

static json_t *layer_json(const bp_sens_layer *sl)
{
    const bp_layer *l = &sl->sig;
    json_t *o = json_object();
    if (!o)
        return NULL;
    int e = 0;
    e |= bp_jf_set(o, "name", json_string(l->name));
    e |= bp_jf_set(o, "op", json_string(bp_op_name(l->op)));
    if (sl->in_ndim)
        e |= bp_jf_set(o, "input_shape", shape_json(sl->in_ndim, sl->in_shape));
    if (sl->out_ndim)
        e |= bp_jf_set(o, "output_shape", shape_json(sl->out_ndim, sl->out_shape));
    e |= bp_jf_set(o, "cin", json_integer(l->cin));
    e |= bp_jf_set(o, "cout", json_integer(l->cout));
    e |= bp_jf_set(o, "kh", json_integer(l->kh));
    e |= bp_jf_set(o, "kw", json_integer(l->kw));
    e |= bp_jf_set(o, "stride", json_integer(l->stride));
    e |= bp_jf_set(o, "group", json_integer(l->group));
    e |= bp_jf_set(o, "in_h", json_integer(l->in_h));
    e |= bp_jf_set(o, "in_w", json_integer(l->in_w));
    e |= bp_jf_set(o, "out_h", json_integer(l->out_h));
    e |= bp_jf_set(o, "out_w", json_integer(l->out_w));
    e |= bp_jf_set(o, "params", json_integer((json_int_t)l->params));
    e |= bp_jf_set(o, "macs", json_integer(l->macs));
    e |= bp_jf_set(o, "fan_in", json_integer(l->fan_in));
    e |= bp_jf_set(o, "bias", json_boolean(sl->has_bias));
    e |= set_opt(o, "trace", sl->trace);
    e |= set_opt(o, "trace_stderr", sl->trace_stderr);
    e |= bp_jf_set(o, "probes", json_integer(sl->probes));
    e |= bp_jf_set(o, "converged", json_boolean(sl->converged));
    e |= bp_jf_set(o, "eigenvalue", sl->has_eigenvalue ? bp_jf_real(sl->eigenvalue) : json_null());
    if (sl->tie[0])
        e |= bp_jf_set(o, "tie", json_string(sl->tie));
    json_t *cands = json_array();
    e |= bp_jf_set(o, "candidates", cands);
    for (int c = 0; cands && c < sl->ncand; c++) {
        json_t *k = json_object();
        e |= json_array_append_new(cands, k);
        if (!k)
            break;
        e |= bp_jf_set(k, "bits", json_integer(sl->cand[c].bits));
        e |= set_opt(k, "dw2", sl->cand[c].dw2);
        e |= bp_jf_set(k, "omega", bp_jf_real(sl->cand[c].omega));
    }
    if (sl->has_act) {
        e |= set_opt(o, "act_trace", sl->act_trace);
        e |= set_opt(o, "act_stderr", sl->act_stderr);
        e |= bp_jf_set(o, "act_probes", json_integer(sl->act_probes));
        e |= bp_jf_set(o, "act_converged", json_boolean(sl->act_converged));
        if (sl->act_numel > 0)
            e |= bp_jf_set(o, "act_numel", json_integer(sl->act_numel));
        if (sl->act_signed >= 0)
            e |= bp_jf_set(o, "act_signed", json_boolean(sl->act_signed));
        json_t *ac = json_array();
        e |= bp_jf_set(o, "act_candidates", ac);
        for (int c = 0; ac && c < sl->nact; c++) {
            json_t *k = json_object();
            e |= json_array_append_new(ac, k);
            if (!k)
                break;
            e |= bp_jf_set(k, "bits", json_integer(sl->act[c].bits));
            e |= set_opt(k, "dx2", sl->act[c].dx2);
            e |= set_opt(k, "clip", sl->act[c].clip);
            e |= bp_jf_set(k, "omega", bp_jf_real(sl->act[c].omega));
        }
    }
    if (e) {
        json_decref(o);
        return NULL;
    }
    return o;
}

static json_t *doubles_json(const double *x, int n)
{
    json_t *a = json_array();
    for (int k = 0; a && k < n; k++)
        if (json_array_append_new(a, bp_jf_real(x[k]))) {
            json_decref(a);
            return NULL;
        }
    return a;
}

/* Activation terms anywhere (layers or settings): the file is version 2. */
static int ss_any_act(const bp_sens *s)
{
    int any = s->settings.has_settings && s->settings.has_act;
    for (int i = 0; i < s->nlayers; i++)
        any |= s->layers[i].has_act;
    return any;
}

bp_status bp_sens_write(const char *path, const bp_sens *s)
{
    bp_status st = bp_sens_validate(s, path);
    if (st)
        return st;
    json_t *root = json_object(), *model = json_object(), *layers = json_array();
    int e = !root || !model || !layers;
    if (e) {
        json_decref(model);
        json_decref(layers);
        goto done;
    }
    e |= bp_jf_set(root, "format", json_string(BP_SENS_FORMAT));
    int any_act = ss_any_act(s);
    e |= bp_jf_set(root, "version", json_integer(any_act ? BP_SENS_VERSION : 1));
    e |= bp_jf_set(root, "model", model);
    e |= bp_jf_set(model, "path", json_string(s->model_path));
    e |= bp_jf_set(model, "sha256", json_string(s->model_sha256));
    const bp_sens_settings *ss = &s->settings;
    if (ss->has_settings) {
        json_t *o = json_object(), *bits = json_array();
        e |= bp_jf_set(root, "settings", o);
        if (!o || !bits) {
            json_decref(bits);
            e = 1;
            goto done;
        }
        e |= bp_jf_set(o, "seed", json_integer((json_int_t)ss->seed));
        e |= bp_jf_set(o, "probe", json_string(ss->probe));
        e |= bp_jf_set(o, "tolerance", bp_jf_real(ss->tolerance));
        e |= bp_jf_set(o, "min_probes", json_integer(ss->min_probes));
        e |= bp_jf_set(o, "max_probes", json_integer(ss->max_probes));
        e |= bp_jf_set(o, "samples", json_integer(ss->samples));
        e |= bp_jf_set(o, "batch", json_integer(ss->batch));
        e |= bp_jf_set(o, "quantizer", json_string(ss->quantizer));
        for (int k = 0; k < ss->nbits; k++)
            e |= json_array_append_new(bits, json_integer(ss->bits[k]));
        e |= bp_jf_set(o, "bits", bits);
        if (ss->has_act && o) {
            json_t *a = json_object(), *ab = json_array();
            e |= bp_jf_set(o, "act", a);
            if (!a || !ab) {
                json_decref(ab);
                e = 1;
                goto done;
            }
            e |= bp_jf_set(a, "samples", json_integer(ss->act_samples));
            e |= bp_jf_set(a, "calib_samples", json_integer(ss->act_calib_samples));
            e |= bp_jf_set(a, "calib", json_string(ss->act_calib));
            if (!strcmp(ss->act_calib, "percentile"))
                e |= set_opt(a, "percentile", ss->act_percentile);
            e |= bp_jf_set(a, "tolerance", bp_jf_real(ss->act_tolerance));
            e |= bp_jf_set(a, "min_probes", json_integer(ss->act_min_probes));
            e |= bp_jf_set(a, "max_probes", json_integer(ss->act_max_probes));
            for (int k = 0; k < ss->act_nbits; k++)
                e |= json_array_append_new(ab, json_integer(ss->act_bits[k]));
            e |= bp_jf_set(a, "bits", ab);
        }
    }
    e |= bp_jf_set(root, "layers", layers);
    for (int i = 0; i < s->nlayers && !e; i++)
        e |= json_array_append_new(layers, layer_json(&s->layers[i]));
    if (s->ntop > 0)
        e |= bp_jf_set(root, "top_eigenvalues", doubles_json(s->top_eigenvalues, s->ntop));
    if (s->ndensity > 0) {
        json_t *d = json_object();
        e |= bp_jf_set(root, "density", d);
        if (d) {
            e |= bp_jf_set(d, "grid", doubles_json(s->density_grid, s->ndensity));
            e |= bp_jf_set(d, "values", doubles_json(s->density_values, s->ndensity));
        }
    }
done:
    if (e) {
        json_decref(root);
        return bp_error(BP_ERR_NOMEM, "%s: could not build the JSON document (out of memory)",
                        path);
    }
    st = bp_jf_write(path, root);
    json_decref(root);
    return st;
}

/* ---- CSV view ----------------------------------------------------------- */

static void csv_shape(FILE *fp, int n, const int64_t *d)
{
    for (int k = 0; k < n; k++)
        fprintf(fp, "%s%lld", k ? "x" : "", (long long)d[k]);
}

bp_status bp_sens_write_csv(const char *path, const bp_sens *s)
{
    bp_status st = bp_sens_validate(s, path);
    if (st)
        return st;
    /* Column sets: union of candidate bits over layers. */
    int wb[BP_SENS_MAX_BITS + 1] = {0}, ab[BP_SENS_MAX_BITS + 1] = {0}, any_act = 0;
    for (int i = 0; i < s->nlayers; i++) {
        const bp_sens_layer *sl = &s->layers[i];
        for (int c = 0; c < sl->ncand; c++)
            wb[sl->cand[c].bits] = 1;
        for (int c = 0; c < sl->nact; c++)
            ab[sl->act[c].bits] = 1;
        any_act |= sl->has_act;
    }
    bp_out out = {0};
    if ((st = bp_out_open(&out, path)))
        return st;
    FILE *fp = out.fp;
    fputs("index,name,op,input_shape,output_shape,cin,cout,kh,kw,stride,group,in_h,in_w,out_h,"
          "out_w,params,macs,fan_in,bias,trace,trace_stderr,probes,converged,eigenvalue,tie",
          fp);
    for (int b = 1; b <= BP_SENS_MAX_BITS; b++)
        if (wb[b])
            fprintf(fp, ",dw2_b%d,omega_b%d", b, b);
    if (any_act) {
        fputs(",act_trace,act_stderr", fp);
        for (int b = 1; b <= BP_SENS_MAX_BITS; b++)
            if (ab[b])
                fprintf(fp, ",act_omega_a%d", b);
    }
    fputc('\n', fp);
    for (int i = 0; i < s->nlayers; i++) {
        const bp_sens_layer *sl = &s->layers[i];
        const bp_layer *l = &sl->sig;
        fprintf(fp, "%d,", i);
        bp_csv_str(fp, l->name);
        fprintf(fp, ",%s,", bp_op_name(l->op));
        csv_shape(fp, sl->in_ndim, sl->in_shape);
        fputc(',', fp);
        csv_shape(fp, sl->out_ndim, sl->out_shape);
        fprintf(fp, ",%lld,%lld,%d,%d,%d,%d,%lld,%lld,%lld,%lld,%zu,%lld,%lld,%d,", (long long)l->cin,
                (long long)l->cout, l->kh, l->kw, l->stride, l->group, (long long)l->in_h,
                (long long)l->in_w, (long long)l->out_h, (long long)l->out_w, l->params,
                (long long)l->macs, (long long)l->fan_in, sl->has_bias);
        bp_csv_num(fp, sl->trace);
        fputc(',', fp);
        bp_csv_num(fp, sl->trace_stderr);
        fprintf(fp, ",%d,%d,", sl->probes, sl->converged);
        bp_csv_num(fp, sl->has_eigenvalue ? sl->eigenvalue : NAN);
        fputc(',', fp);
        bp_csv_str(fp, sl->tie);
        for (int b = 1; b <= BP_SENS_MAX_BITS; b++) {
            if (!wb[b])
                continue;
            const bp_sens_cand *k = bp_sens_find_cand(sl, b);
            fputc(',', fp);
            bp_csv_num(fp, k ? k->dw2 : NAN);
            fputc(',', fp);
            bp_csv_num(fp, k ? k->omega : NAN);
        }
        if (any_act) {
            fputc(',', fp);
            bp_csv_num(fp, sl->act_trace);
            fputc(',', fp);
            bp_csv_num(fp, sl->act_stderr);
            for (int b = 1; b <= BP_SENS_MAX_BITS; b++) {
                if (!ab[b])
                    continue;
                const bp_sens_act_cand *k = bp_sens_find_act(sl, b);
                fputc(',', fp);
                bp_csv_num(fp, k ? k->omega : NAN);
            }
        }
        fputc('\n', fp);
    }
    if (ferror(fp)) {
        bp_out_abort(&out);
        return bp_error(BP_ERR_IO, "%s: write failed", path);
    }
    return bp_out_commit(&out);
}
