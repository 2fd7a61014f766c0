/* act_trace.c — Hessians of the loss with respect to layer inputs: the
 * operator (exact products by the R-operator on the graph with private layer
 * inputs), the streamed Hutchinson estimator, and the driver that fills the
 * sensitivity set's activation fields. Contract in sensitivity/act.h, method
 * and scale in docs/SENSITIVITY.md ("Activation sensitivity"). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/exec.h"
#include "sensitivity/act.h"
#include "sensitivity/calib_batches.h"
#include "sensitivity/running.h"

struct bp_act_op {
    bp_graph *ag;            /* the model with private layer inputs (owned) */
    int *av;                 /* (nlayers) value id of layer i's private input in ag */
    bp_layer *layers;        /* (nlayers) of the caller's graph */
    int nlayers;
    size_t *numel;           /* (nlayers) n_a */
    bp_exec *ex;
    bp_cbatch cal;           /* the calibration set, batch by batch */
    bp_real *v;              /* (batch · max n_a) one direction */
    long rpasses;
    double loss;
};

void bp_act_op_free(bp_act_op *m)
{
    if (!m)
        return;
    bp_exec_free(m->ex);
    bp_graph_free(m->ag);
    free(m->av);
    free(m->layers);
    free(m->numel);
    bp_cbatch_free(&m->cal);
    free(m->v);
    free(m);
}

static bp_status op_new(const bp_graph *g, bp_stream *s, const bp_real *x, const int *y, int n,
                        int batch, bp_act_op **out)
{
    *out = NULL;
    if (n < 1 || batch < 1)
        return bp_error(BP_ERR_ARG, "activation hessian: need samples >= 1 and batch >= 1 "
                                    "(got %d, %d)", n, batch);
    bp_act_op *m = calloc(1, sizeof *m);
    if (!m)
        return bp_error(BP_ERR_NOMEM, "activation hessian: out of memory");
    int nl2 = 0;
    if (bp_cbatch_init(&m->cal, "activation hessian", s, x, y, n, batch,
                       g->values[g->input].numel))
        goto nomem;
    bp_status st = bp_act_graph(g, &m->ag, &m->av, &m->nlayers);
    if (!st)
        st = bp_graph_layers(g, &m->layers, &nl2);
    if (st)
        goto fail;
    if (m->nlayers == 0) {
        st = bp_error(BP_ERR_UNSUPPORTED, "%s: no Conv, Gemm or MatMul layer with weights",
                      g->source && g->source[0] ? g->source : "model");
        goto fail;
    }
    m->numel = malloc(sizeof *m->numel * m->nlayers);
    if (!m->numel)
        goto nomem;
    size_t most = 1;
    for (int l = 0; l < m->nlayers; l++) {
        m->numel[l] = m->ag->values[m->av[l]].numel;
        if (m->numel[l] > most)
            most = m->numel[l];
    }
    m->v = malloc(sizeof *m->v * most * (size_t)m->cal.batch);
    if (!m->v)
        goto nomem;
    m->ex = bp_exec_new(m->ag, m->cal.batch, BP_EXEC_GRAD | BP_EXEC_ROP);
    if (!m->ex) {
        st = bp_error_wrap(BP_ERR_NOMEM, "activation hessian");
        goto fail;
    }
    *out = m;
    return BP_OK;
nomem:
    st = bp_error(BP_ERR_NOMEM, "activation hessian: out of memory");
fail:
    bp_act_op_free(m);
    return st;
}

bp_status bp_act_op_new_stream(const bp_graph *g, bp_stream *s, int samples, int batch,
                               bp_act_op **out)
{
    if (g->input < 0 || g->output < 0)
        return bp_error(BP_ERR_ARG, "%s: the graph has no input or output",
                        g->source && g->source[0] ? g->source : "model");
    bp_status st = bp_cbatch_check_stream(g, s, &samples);
    if (st)
        return st;
    return op_new(g, s, NULL, NULL, samples, batch, out);
}

bp_status bp_act_op_new_memory(const bp_graph *g, const bp_real *x, const int *y, int n,
                               int batch, bp_act_op **out)
{
    if (g->input < 0 || g->output < 0)
        return bp_error(BP_ERR_ARG, "%s: the graph has no input or output",
                        g->source && g->source[0] ? g->source : "model");
    return op_new(g, NULL, x, y, n, batch, out);
}

int bp_act_op_layers(const bp_act_op *m, const bp_layer **layers)
{
    if (layers)
        *layers = m->layers;
    return m->nlayers;
}

int bp_act_op_samples(const bp_act_op *m) { return m->cal.n; }
size_t bp_act_op_numel(const bp_act_op *m, int layer) { return m->numel[layer]; }
long bp_act_op_rpasses(const bp_act_op *m) { return m->rpasses; }
double bp_act_op_loss(const bp_act_op *m) { return m->loss; }

/* ---- one pass over the data ------------------------------------------------ */

/* What a pass does with each batch after its forward: `fn` is called with the
 * batch's samples [done, done + got). */
typedef bp_status (*batch_fn)(bp_act_op *m, void *ctx, int done, int got, const int *y);

typedef struct {
    bp_act_op *m;
    batch_fn fn;
    void *ctx;
} pass_ctx;

static bp_status pass_batch(void *ctx, int done, int got, const int *y)
{
    pass_ctx *p = ctx;
    return p->fn(p->m, p->ctx, done, got, y);
}

static bp_status pass(bp_act_op *m, batch_fn fn, void *ctx)
{
    pass_ctx p = {m, fn, ctx};
    return bp_cbatch_pass(&m->cal, m->ex, m->ag->params, pass_batch, &p, &m->loss);
}

/* After a forward: rg = R{dL_batch/da} for direction m->v on layer l's input;
 * returns the R-gradient buffer (batch-mean loss: (1/got)·H_s v_s per sample). */
static bp_status rpass(bp_act_op *m, int l, const int *y, const bp_real **rg)
{
    bp_real *params = m->ag->params;
    bp_status st = bp_rop_forward(m->ex, params, NULL, m->av[l], m->v);
    if (!st)
        st = bp_loss_softmax_ce_rop(m->ex, y);
    if (!st)
        st = bp_rop_backward(m->ex, params, NULL, NULL);
    if (st)
        return bp_error_wrap(st, "layer '%s'", m->layers[l].name);
    m->rpasses++;
    *rg = bp_exec_rgrad(m->ex, m->av[l]);
    return BP_OK;
}

typedef struct {
    int layer;
    const double *v;
    double *hv;
} apply_ctx;

static bp_status apply_batch(bp_act_op *m, void *ctx, int done, int got, const int *y)
{
    apply_ctx *c = ctx;
    size_t na = m->numel[c->layer], cnt = (size_t)got * na;
    const double *src = c->v + (size_t)done * na;
    for (size_t j = 0; j < cnt; j++)
        m->v[j] = (bp_real)src[j];
    const bp_real *rg;
    bp_status st = rpass(m, c->layer, y, &rg);
    if (st)
        return st;
    /* the batch loss is a mean over got samples; the set's over N */
    double w = (double)got / m->cal.n;
    double *dst = c->hv + (size_t)done * na;
    for (size_t j = 0; j < cnt; j++)
        dst[j] = w * (double)rg[j];
    return BP_OK;
}

bp_status bp_act_op_apply(bp_act_op *m, int layer, const double *v, double *hv)
{
    if (layer < 0 || layer >= m->nlayers)
        return bp_error(BP_ERR_ARG, "activation hessian: layer %d of %d", layer, m->nlayers);
    apply_ctx c = {layer, v, hv};
    return pass(m, apply_batch, &c);
}

/* ---- Hutchinson ------------------------------------------------------------ */

/* Counter-based Rademacher signs: probe k of layer l for sample s is a
 * function of (seed, l, k, s) alone, so results do not depend on batching. */
static uint64_t mix64(uint64_t z)
{
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void rademacher(uint64_t seed, int layer, int probe, int sample, bp_real *v, size_t n)
{
    uint64_t key = mix64(mix64(mix64(mix64(seed) + (uint64_t)layer) + (uint64_t)probe) + (uint64_t)sample);
    for (size_t i = 0; i < n; i += 64) {
        uint64_t w = mix64(key + i / 64);
        size_t end = n - i < 64 ? n - i : 64;
        for (size_t b = 0; b < end; b++)
            v[i + b] = (w >> b) & 1 ? 1 : -1;
    }
}

typedef struct {
    const bp_trace_opts *o;
    const bp_act_quant *quant;
    double *dx2;            /* accumulated sums during the first pass, or NULL */
    const unsigned char *open;
    int kbase, g;           /* probes kbase .. kbase + g − 1 in this pass */
    double *acc;            /* (nlayers, g) probe values */
} trace_ctx;

static bp_status trace_batch(bp_act_op *m, void *ctx, int done, int got, const int *y)
{
    trace_ctx *c = ctx;
    double w = (double)got / m->cal.n;
    for (int l = 0; l < m->nlayers; l++) {
        size_t na = m->numel[l];
        if (c->dx2) {
            const bp_real *a = bp_exec_act(m->ex, m->av[l]);
            for (int k = 0; k < c->quant[l].nbits; k++)
                c->dx2[(size_t)l * BP_SENS_MAX_CAND + k] +=
                    bp_act_quant_err2(&c->quant[l], k, a, (size_t)got * na);
        }
        if (!c->open[l])
            continue;
        for (int j = 0; j < c->g; j++) {
            for (int s = 0; s < got; s++)
                rademacher(c->o->seed, l, c->kbase + j, done + s, m->v + (size_t)s * na, na);
            const bp_real *rg;
            bp_status st = rpass(m, l, y, &rg);
            if (st)
                return st;
            double dot = 0;
            for (size_t i = 0; i < (size_t)got * na; i++)
                dot += (double)m->v[i] * (double)rg[i];
            c->acc[(size_t)l * c->g + j] += w * dot;
        }
    }
    return BP_OK;
}

bp_status bp_act_traces(bp_act_op *m, const bp_trace_opts *o, const bp_act_quant *quant,
                        bp_trace_est *est, double *dx2, bp_progress_fn progress, void *pctx)
{
    if (!(o->tol > 0) || o->min_probes < 1 || o->max_probes < o->min_probes || o->max_probes < 2)
        return bp_error(BP_ERR_ARG,
                        "activation traces: need tol > 0 and 1 <= min probes <= max probes, max >= 2 "
                        "(got tol %g, min %d, max %d)", o->tol, o->min_probes, o->max_probes);
    const int nl = m->nlayers;
    int G = o->group > 1 ? o->group : 1;
    if (G > o->max_probes)
        G = o->max_probes;
    bp_running *r = calloc(nl, sizeof *r);
    unsigned char *open = malloc(nl);
    double *acc = malloc(sizeof *acc * (size_t)nl * G);
    if (!r || !open || !acc) {
        free(r), free(open), free(acc);
        return bp_error(BP_ERR_NOMEM, "activation traces: out of memory");
    }
    memset(open, 1, nl);
    if (dx2 && quant)
        for (int l = 0; l < nl; l++)
            for (int k = 0; k < BP_SENS_MAX_CAND; k++)
                dx2[(size_t)l * BP_SENS_MAX_CAND + k] = 0;
    bp_status st = BP_OK;
    /* Every open layer has drawn the same number of probes: they advance
     * together, a pass (one forward per batch) per group of G. */
    for (int kbase = 0, first = 1, any = 1; any && kbase < o->max_probes; kbase += G, first = 0) {
        int g = o->max_probes - kbase < G ? o->max_probes - kbase : G;
        memset(acc, 0, sizeof *acc * (size_t)nl * G);
        trace_ctx c = {o, quant, first && dx2 && quant ? dx2 : NULL, open, kbase, g, acc};
        if ((st = pass(m, trace_batch, &c)))
            break;
        any = 0;
        for (int l = 0; l < nl; l++) {
            if (!open[l])
                continue;
            for (int j = 0; j < g && open[l]; j++) {
                double x = acc[(size_t)l * g + j];
                if (!isfinite(x)) {
                    st = bp_error(BP_ERR_NUMERIC, "activation traces: probe %d of layer '%s' is not "
                                                  "finite", kbase + j + 1, m->layers[l].name);
                    goto out;
                }
                bp_running_add(&r[l], x, o);
                if (r[l].converged || r[l].k >= o->max_probes)
                    open[l] = 0; /* probes past the stop are discarded */
            }
            if (progress) {
                bp_progress p = {"act-trace", l, nl, r[l].k, r[l].mean, r[l].change};
                progress(pctx, &p);
            }
            any |= open[l];
        }
    }
    if (!st && dx2 && quant)
        for (int l = 0; l < nl; l++)
            for (int k = 0; k < quant[l].nbits; k++)
                dx2[(size_t)l * BP_SENS_MAX_CAND + k] /= m->cal.n; /* mean over samples */
    for (int l = 0; !st && l < nl; l++) {
        bp_running_out(&r[l], &est[l]);
    }
out:
    free(r);
    free(open);
    free(acc);
    return st;
}

/* ---- the driver ------------------------------------------------------------- */

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

bp_status bp_act_sens_run(const bp_graph *g, bp_stream *s, const bp_act_opts *o, bp_sens *sens,
                          bp_act_report *report, bp_progress_fn progress, void *pctx)
{
    double t0 = now();
    if (report)
        memset(report, 0, sizeof *report);
    bp_layer *layers = NULL;
    int nl = 0;
    bp_status st = bp_graph_layers(g, &layers, &nl);
    if (st)
        return st;
    if (nl != sens->nlayers) {
        free(layers);
        return bp_error(BP_ERR_MISMATCH, "activation sensitivity: the sensitivity set has %d layers, "
                                         "the model %d", sens->nlayers, nl);
    }
    for (int l = 0; l < nl; l++)
        if (strcmp(layers[l].name, sens->layers[l].sig.name)) {
            st = bp_error(BP_ERR_MISMATCH, "activation sensitivity: layer %d is '%s' in the "
                                           "sensitivity set, '%s' in the model",
                          l, sens->layers[l].sig.name, layers[l].name);
            free(layers);
            return st;
        }
    free(layers);

    int c, h, w, n;
    bp_stream_info(s, &c, &h, &w, &n, NULL);
    size_t per = (size_t)c * h * w;
    if (g->input < 0 || per != g->values[g->input].numel)
        return bp_error(BP_ERR_SHAPE, "activation sensitivity: samples have %zu values, the model "
                                      "input takes %zu",
                        per, g->input >= 0 ? g->values[g->input].numel : (size_t)0);
    int ncal = o->calib_samples > 0 && o->calib_samples < n ? o->calib_samples : n;
    if (ncal < 1)
        return bp_error(BP_ERR_ARG, "activation sensitivity: the calibration data is empty");

    bp_real *cx = malloc(sizeof *cx * per * (size_t)ncal);
    int *cy = malloc(sizeof *cy * (size_t)ncal);
    bp_act_quant *q = calloc(nl, sizeof *q);
    bp_trace_est *est = calloc(nl, sizeof *est);
    double *dx2 = calloc((size_t)nl * BP_SENS_MAX_CAND, sizeof *dx2);
    double *tol = malloc(sizeof *tol * nl);
    bp_act_op *m = NULL;
    if (!cx || !cy || !q || !est || !dx2 || !tol) {
        st = bp_error(BP_ERR_NOMEM, "activation sensitivity: out of memory");
        goto done;
    }
    /* Ranges from the first ncal samples, as the validation stage takes them. */
    if ((st = bp_stream_rewind(s)))
        goto done;
    for (int got_all = 0; got_all < ncal;) {
        int got = 0;
        if ((st = bp_stream_next(s, ncal - got_all, cx + (size_t)got_all * per, cy + got_all, &got)))
            goto done;
        if (got <= 0) {
            st = bp_error(BP_ERR_FORMAT, "activation sensitivity: calibration data ended after %d "
                                         "of %d samples", got_all, ncal);
            goto done;
        }
        got_all += got;
    }
    if ((st = bp_act_quantizers(g, cx, ncal, o, q)))
        goto done;
    if ((st = bp_act_op_new_stream(g, s, o->samples, o->batch, &m)))
        goto done;
    if ((st = bp_act_traces(m, &o->trace, q, est, dx2, progress, pctx)))
        goto done;

    for (int l = 0; l < nl; l++) {
        bp_sens_layer *sl = &sens->layers[l];
        size_t na = bp_act_op_numel(m, l);
        sl->has_act = 1;
        sl->act_trace = est[l].mean;
        sl->act_stderr = est[l].se;
        sl->act_probes = est[l].probes;
        sl->act_converged = est[l].converged;
        sl->act_numel = (int64_t)na;
        sl->act_signed = q[l].is_signed;
        sl->nact = q[l].nbits;
        for (int k = 0; k < q[l].nbits; k++) {
            double d = dx2[(size_t)l * BP_SENS_MAX_CAND + k];
            sl->act[k] = (bp_sens_act_cand){.bits = q[l].bits[k], .dx2 = d,
                                            .omega = bp_sens_omega(est[l].mean, na, d, o->neg),
                                            .clip = q[l].clip[k]};
        }
        tol[l] = est[l].tol_reached;
    }
    bp_sens_settings *ss = &sens->settings;
    ss->has_settings = 1;
    ss->has_act = 1;
    ss->act_samples = bp_act_op_samples(m);
    ss->act_calib_samples = ncal;
    snprintf(ss->act_calib, sizeof ss->act_calib, "%s", bp_calib_name(o->calib));
    ss->act_percentile = o->calib == BP_CALIB_PERCENTILE ? o->percentile : NAN;
    ss->act_tolerance = o->trace.tol;
    ss->act_min_probes = o->trace.min_probes;
    ss->act_max_probes = o->trace.max_probes;
    ss->act_nbits = o->nbits;
    memcpy(ss->act_bits, o->bits, sizeof(int) * o->nbits);
    if (report) {
        report->rpasses = bp_act_op_rpasses(m);
        report->loss = bp_act_op_loss(m);
        report->samples = bp_act_op_samples(m);
        report->calib_samples = ncal;
        report->seconds = now() - t0;
        report->tol_reached = tol;
        tol = NULL;
    }
done:
    bp_act_op_free(m);
    free(cx);
    free(cy);
    free(q);
    free(est);
    free(dx2);
    free(tol);
    return st;
}
