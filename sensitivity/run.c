/* The sensitivity driver: model + calibration stream + options -> a filled
 * sensitivity set (sens_file.h). See sensitivity.h and docs/SENSITIVITY.md. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/fileio.h"
#include "ilp/ilp.h"
#include "sensitivity/dist_op.h"
#include "sensitivity/sensitivity.h"

const char *bp_neg_name(bp_neg_policy p)
{
    return p == BP_NEG_CLAMP ? "clamp" : p == BP_NEG_KEEP ? "keep" : "abs";
}

int bp_neg_parse(const char *name)
{
    if (!name)
        return -1;
    if (!strcmp(name, "abs"))
        return BP_NEG_ABS;
    if (!strcmp(name, "clamp") || !strcmp(name, "zero"))
        return BP_NEG_CLAMP;
    if (!strcmp(name, "keep"))
        return BP_NEG_KEEP;
    return -1;
}

bp_sens_opts bp_sens_opts_default(void)
{
    bp_sens_opts o;
    memset(&o, 0, sizeof o);
    o.samples = 512;
    o.batch = 64;
    o.trace = bp_trace_opts_default();
    static const int bits[] = {2, 3, 4, 5, 6, 8};
    o.nbits = (int)(sizeof bits / sizeof *bits);
    memcpy(o.bits, bits, sizeof bits);
    o.clip = BP_CLIP_MAXABS;
    o.neg = BP_NEG_ABS;
    o.eig_opts = bp_eig_opts_default();
    o.slq = bp_slq_opts_default();
    return o;
}

double bp_sens_omega(double trace, size_t n, double dw2, bp_neg_policy neg)
{
    double t = trace;
    if (t < 0)
        t = neg == BP_NEG_ABS ? -t : neg == BP_NEG_CLAMP ? 0 : t;
    return n ? t / (double)n * dw2 : 0;
}

/* Passes progress on with the layer index filled in (power iteration on a
 * block does not know which layer it is). */
typedef struct {
    bp_progress_fn fn;
    void *ctx;
    int block, nblocks;
} relay;

static void relay_progress(void *ctx, const bp_progress *p)
{
    relay *r = ctx;
    bp_progress q = *p;
    q.block = r->block;
    q.nblocks = r->nblocks;
    r->fn(r->ctx, &q);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static bp_status check_opts(const bp_sens_opts *o)
{
    if (o->nbits < 1 || o->nbits > BP_SENS_MAX_CAND)
        return bp_error(BP_ERR_ARG, "sensitivity: between 1 and %d candidate bit-widths needed (got %d)",
                        BP_SENS_MAX_CAND, o->nbits);
    for (int j = 0; j < o->nbits; j++) {
        if (o->bits[j] < BP_WQ_MIN_BITS || o->bits[j] > BP_WQ_MAX_BITS)
            return bp_error(BP_ERR_ARG, "sensitivity: candidate %d bits is outside %d..%d",
                            o->bits[j], BP_WQ_MIN_BITS, BP_WQ_MAX_BITS);
        if (j && o->bits[j] <= o->bits[j - 1])
            return bp_error(BP_ERR_ARG, "sensitivity: candidate bits must be strictly increasing "
                                        "(%d after %d)", o->bits[j], o->bits[j - 1]);
    }
    if (o->topk < 0)
        return bp_error(BP_ERR_ARG, "sensitivity: top-k must be >= 0 (got %d)", o->topk);
    return BP_OK;
}

bp_status bp_sens_run(const bp_graph *g, bp_stream *s, const char *model_path,
                      const bp_sens_opts *o, bp_sens *out, bp_sens_report *report,
                      bp_progress_fn progress, void *pctx)
{
    double t0 = now();
    memset(out, 0, sizeof *out);
    if (report)
        memset(report, 0, sizeof *report);
    bp_status st = check_opts(o);
    if (st)
        return st;
    /* Names the first non-finite parameter (weights, BN statistics, biases). */
    if ((st = bp_graph_check_finite(g)))
        return st;

    bp_model_op *m = NULL;
    bp_trace_est *est = NULL;
    bp_sens_note *notes = NULL;
    bp_slq_result slq = {0};
    st = bp_model_op_new_stream(g, s, o->samples, o->batch, &m);
    /* Over several processes (sensitivity/dist_op.h, docs/MPI.md) every rank
     * holds a shard of the data and products are summed over ranks; with one
     * process the wrapper changes nothing. */
    bp_dist_op *dop = NULL;
    if ((st = bp_dist_op_new(st, m, &dop))) {
        bp_model_op_free(m);
        return st;
    }
    bp_linop op = bp_dist_op_linop(dop);
    const bp_layer *layers;
    const bp_block *blocks;
    int nl = bp_model_op_layers(m, &layers, &blocks);
    est = calloc(nl, sizeof *est);
    notes = calloc(nl, sizeof *notes);
    if (!est || !notes) {
        st = bp_error(BP_ERR_NOMEM, "sensitivity: out of memory");
        goto fail;
    }
    if ((st = bp_sens_init(out, nl)))
        goto fail;

    /* Model identity and settings. */
    if (model_path)
        snprintf(out->model_path, sizeof out->model_path, "%s", model_path);
    int hashed = 0;
    for (int i = 0; i < 32; i++)
        hashed |= g->sha256[i];
    if (hashed)
        bp_sha256_hex(g->sha256, out->model_sha256);
    bp_sens_settings *ss = &out->settings;
    ss->has_settings = 1;
    ss->seed = o->trace.seed;
    snprintf(ss->probe, sizeof ss->probe, "%s", bp_probe_name(o->trace.scheme));
    ss->tolerance = o->trace.tol;
    ss->min_probes = o->trace.min_probes;
    ss->max_probes = o->trace.max_probes;
    ss->samples = bp_dist_op_samples(dop);
    ss->batch = o->batch < ss->samples ? o->batch : ss->samples;
    snprintf(ss->quantizer, sizeof ss->quantizer, "%s", bp_clip_name(o->clip));
    ss->nbits = o->nbits;
    memcpy(ss->bits, o->bits, o->nbits * sizeof *o->bits);

    /* Quantization perturbation: cheap, and it finds all-zero layers. */
    for (int i = 0; i < nl; i++) {
        bp_sens_layer *sl = &out->layers[i];
        bp_sens_layer_set_sig(sl, &layers[i], g);
        const bp_real *w = g->params + g->values[layers[i].weight].offset;
        notes[i].zero_weights = 1;
        for (size_t j = 0; j < layers[i].params && notes[i].zero_weights; j++)
            notes[i].zero_weights = w[j] == 0;
        double dw2[BP_SENS_MAX_CAND];
        if ((st = bp_wquant_layer_err2(g, &layers[i], o->bits, o->nbits, o->clip, dw2)))
            goto fail;
        sl->ncand = o->nbits;
        for (int j = 0; j < o->nbits; j++) {
            sl->cand[j].bits = o->bits[j];
            sl->cand[j].dw2 = dw2[j];
        }
    }

    /* Layers meeting at one residual Add must share bits in the search. */
    if ((st = bp_sens_set_residual_ties(out, g)))
        goto fail;

    /* Traces. */
    if ((st = bp_hutchinson(&op, blocks, nl, &o->trace, est, progress, pctx)))
        goto fail;
    for (int i = 0; i < nl; i++) {
        bp_sens_layer *sl = &out->layers[i];
        sl->trace = est[i].mean;
        sl->trace_stderr = est[i].se;
        sl->probes = est[i].probes;
        sl->converged = est[i].converged;
        notes[i].tol_reached = est[i].tol_reached;
        for (int j = 0; j < sl->ncand; j++)
            sl->cand[j].omega = bp_sens_omega(sl->trace, layers[i].params, sl->cand[j].dw2, o->neg);
    }

    /* Per-layer top eigenvalue. */
    if (o->eig) {
        for (int i = 0; i < nl; i++) {
            relay r = {progress, pctx, i, nl};
            bp_eig_est e;
            bp_eig_opts eo = o->eig_opts;
            eo.seed = o->eig_opts.seed + (uint64_t)i; /* independent starts per layer */
            st = bp_power_iteration(&op, &blocks[i], &eo, &e, NULL, progress ? relay_progress : NULL, &r);
            if (st) {
                st = bp_error_wrap(st, "layer '%s'", layers[i].name);
                goto fail;
            }
            out->layers[i].has_eigenvalue = 1;
            out->layers[i].eigenvalue = e.value;
            notes[i].eig_converged = e.converged;
            notes[i].eig_tol_reached = e.tol_reached;
        }
    }

    /* Whole-model spectrum. */
    if (o->topk > 0) {
        int k = (size_t)o->topk < op.n ? o->topk : (int)op.n;
        bp_eig_est *e = calloc(k, sizeof *e);
        out->top_eigenvalues = malloc(k * sizeof *out->top_eigenvalues);
        if (!e || !out->top_eigenvalues) {
            free(e);
            st = bp_error(BP_ERR_NOMEM, "sensitivity: out of memory for top-%d eigenvalues", k);
            goto fail;
        }
        st = bp_top_eigenvalues(&op, k, &o->eig_opts, e, NULL, progress, pctx);
        for (int j = 0; !st && j < k; j++)
            out->top_eigenvalues[j] = e[j].value;
        free(e);
        if (st)
            goto fail;
        out->ntop = k;
    }
    if (o->density) {
        if ((st = bp_slq_density(&op, &o->slq, &slq, progress, pctx)))
            goto fail;
        out->density_grid = slq.x;
        out->density_values = slq.density;
        out->ndensity = slq.grid;
        slq.x = slq.density = NULL; /* now owned by out */
    }

    if (report) {
        report->products = bp_model_op_products(m);
        report->loss = bp_dist_op_loss(dop);
        report->samples = bp_dist_op_samples(dop);
        report->seconds = now() - t0;
        report->notes = notes;
        notes = NULL;
    }
    bp_slq_free(&slq);
    free(notes);
    free(est);
    bp_dist_op_free(dop);
    bp_model_op_free(m);
    return BP_OK;

fail:
    bp_slq_free(&slq);
    free(notes);
    free(est);
    bp_dist_op_free(dop);
    bp_model_op_free(m);
    bp_sens_free(out);
    return st;
}
