/* evalplan.c — accuracy, size, BOPs and accumulator report of a plan. */
#include "quant/evalplan.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/data.h"
#include "core/exec.h"
#include "quant/accum.h"

bp_evalq_opts bp_evalq_opts_default(void)
{
    bp_evalq_opts o = {"fashion-mnist:test", 0, "fashion-mnist:train", 256, bp_qopts_default(), 0, 32, 100};
    return o;
}

void bp_evalq_free(bp_evalq_report *r)
{
    if (!r)
        return;
    free(r->layers);
    r->layers = NULL;
}

static int argmax_r(const bp_real *v, int k)
{
    int b = 0;
    for (int i = 1; i < k; i++)
        b = v[i] > v[b] ? i : b;
    return b;
}
static int argmax_i(const int32_t *v, int k)
{
    int b = 0;
    for (int i = 1; i < k; i++)
        b = v[i] > v[b] ? i : b;
    return b;
}

typedef struct {
    bp_qmodel *m;
    bp_qrun *run;
    bp_fq *fq;
    void *xq;
    int32_t *li;
    bp_real *lf;
    long hit_int, hit_fq, hit_ideal, within, total;
} qpath;

static void qpath_free(qpath *p)
{
    bp_qrun_free(p->run);
    bp_fq_free(p->fq);
    bp_qmodel_free(p->m);
    free(p->xq), free(p->li), free(p->lf);
    memset(p, 0, sizeof *p);
}

static bp_status qpath_new(qpath *p, const bp_graph *g, const int *wb, const int *ab,
                           const bp_dataset *cal, const bp_qopts *q, int batch)
{
    memset(p, 0, sizeof *p);
    bp_status st = bp_qmodel_build(g, wb, ab, cal->x, cal->n, q, &p->m);
    if (!st)
        st = bp_qrun_new(p->m, batch, &p->run);
    if (!st)
        st = bp_fq_new(p->m, batch, &p->fq);
    if (st)
        return st;
    size_t in1 = p->m->t[p->m->input_t].numel1, k = p->m->t[p->m->output_t].numel1;
    p->xq = malloc(in1 * batch);
    p->li = malloc(sizeof(int32_t) * k * batch);
    p->lf = malloc(sizeof(bp_real) * k * batch);
    if (!p->xq || !p->li || !p->lf)
        return bp_error(BP_ERR_NOMEM, "eval: out of memory");
    return BP_OK;
}

static bp_status qpath_batch(qpath *p, const bp_real *x, const int *y, int n, int classes)
{
    const bp_qmodel *m = p->m;
    const double so = m->t[m->output_t].scale;
    bp_qmodel_quantize_input(m, x, n, p->xq);
    bp_status st = bp_qrun_forward(p->run, p->xq, n, p->li);
    if (st)
        return st;
    bp_fq_set_ideal(p->fq, 0);
    if ((st = bp_fq_forward(p->fq, x, n, p->lf)))
        return st;
    for (int s = 0; s < n; s++) {
        p->hit_int += argmax_i(p->li + (size_t)s * classes, classes) == y[s];
        p->hit_fq += argmax_r(p->lf + (size_t)s * classes, classes) == y[s];
        for (int c = 0; c < classes; c++)
            p->within += fabs(p->li[(size_t)s * classes + c] - p->lf[(size_t)s * classes + c] / so) <= 1.0 + 1e-3;
    }
    p->total += (long)n * classes;
    bp_fq_set_ideal(p->fq, 1);
    if ((st = bp_fq_forward(p->fq, x, n, p->lf)))
        return st;
    for (int s = 0; s < n; s++)
        p->hit_ideal += argmax_r(p->lf + (size_t)s * classes, classes) == y[s];
    return BP_OK;
}

static void fill_layers(const bp_graph *g, const bp_qmodel *m, const int *wb, const int *ab,
                        const double *lat, const bp_evalq_opts *o, bp_evalq_report *r)
{
    r->size_bytes = r->size_float_bytes = r->bops = 0;
    r->latency_ms = 0;
    int lat_known = lat != NULL;
    for (int l = 0; l < m->nlayers; l++) {
        const bp_layer *L = &m->layers[l];
        bp_evalq_layer *E = &r->layers[l];
        snprintf(E->name, sizeof E->name, "%s", L->name);
        E->op = bp_op_name(L->op);
        E->wbits = wb[l];
        E->abits = ab[l];
        E->params = L->params;
        E->macs = L->macs;
        E->fan_in = L->fan_in;
        E->bops = (double)L->macs * wb[l] * ab[l];
        E->size_bytes = ceil((double)L->params * wb[l] / 8.0) + 12.0 * (double)L->cout;
        E->acc_worst = bp_acc_bits_worst(wb[l], ab[l], L->fan_in);
        /* per-channel bound from the codes the model actually uses */
        bp_wq_shape s;
        int64_t K = L->fan_in;
        int32_t *rows = malloc(sizeof(int32_t) * L->params);
        E->acc_need = E->acc_worst;
        if (rows && !bp_wq_shape_of_layer(m->g, L, &s)) {
            K = (int64_t)L->params / s.nchan;
            for (int64_t oo = 0; oo < s.outer; oo++)
                for (int64_t c = 0; c < s.nchan; c++)
                    for (int64_t i = 0; i < s.inner; i++)
                        rows[c * K + (s.inner == 1 ? oo : i)] = m->wcodes[l][(oo * s.nchan + c) * s.inner + i];
            E->acc_need = bp_acc_bits_channel(rows, s.nchan, K, ab[l], NULL);
        }
        free(rows);
        E->overflow = E->acc_need > o->acc_bits;
        r->noverflow += E->overflow;
        E->latency_ms = lat ? lat[l] : NAN;
        if (!isfinite(E->latency_ms))
            lat_known = 0;
        else
            r->latency_ms += E->latency_ms;
        r->size_bytes += E->size_bytes;
        r->size_float_bytes += 4.0 * (double)L->params + 4.0 * (double)L->cout;
        r->bops += E->bops;
    }
    if (!lat_known)
        r->latency_ms = NAN;
    (void)g;
}

bp_status bp_evalq_run(const bp_graph *g, const int *wbits, const int *abits,
                       const double *latency_ms, const bp_evalq_opts *o, bp_evalq_report *r)
{
    memset(r, 0, sizeof *r);
    r->acc_pow2_fq = r->acc_pow2_int = NAN;
    bp_dataset cal = {0};
    bp_stream *s = NULL;
    bp_exec *ex = NULL;
    qpath qp = {0}, q2 = {0};
    bp_real *x = NULL;
    int *y = NULL;
    bp_data_opts dopt = bp_data_opts_default();
    dopt.limit = o->calib;
    bp_status st = bp_dataset_load(o->calib_data, &dopt, &cal);
    if (st)
        return bp_error_wrap(st, "calibration data");
    const int B = o->batch > 0 ? o->batch : 100;
    if ((st = qpath_new(&qp, g, wbits, abits, &cal, &o->q, B)))
        goto done;
    if (o->pow2) {
        bp_qopts q = o->q;
        q.pow2 = 1;
        if ((st = qpath_new(&q2, g, wbits, abits, &cal, &q, B)))
            goto done;
    }
    r->nlayers = qp.m->nlayers;
    r->layers = calloc(r->nlayers ? r->nlayers : 1, sizeof *r->layers);
    if (!r->layers) {
        st = bp_error(BP_ERR_NOMEM, "eval: out of memory");
        goto done;
    }
    r->acc_bits = o->acc_bits;
    fill_layers(g, qp.m, wbits, abits, latency_ms, o, r);
    r->kernels = bp_qkern_name(bp_qkern_active());
    r->calib_method = bp_calib_name(o->q.calib);
    r->calib_n = cal.n;

    bp_data_opts eo = bp_data_opts_default();
    eo.limit = o->limit;
    if ((st = bp_stream_open(o->data, &eo, &s)))
        goto done;
    int c, h, w, n, classes;
    bp_stream_info(s, &c, &h, &w, &n, &classes);
    const int k = (int)qp.m->t[qp.m->output_t].numel1;
    if ((size_t)c * h * w != qp.m->t[qp.m->input_t].numel1) {
        st = bp_error(BP_ERR_SHAPE, "eval: data samples are %dx%dx%d, the model takes %zu values", c, h, w,
                      qp.m->t[qp.m->input_t].numel1);
        goto done;
    }
    if (!(ex = bp_exec_new(g, B, 0))) {
        st = BP_ERR_NOMEM;
        goto done;
    }
    x = malloc(sizeof(bp_real) * (size_t)B * c * h * w);
    y = malloc(sizeof(int) * B);
    if (!x || !y) {
        st = bp_error(BP_ERR_NOMEM, "eval: out of memory");
        goto done;
    }
    long hit_float = 0;
    for (;;) {
        int got = 0;
        if ((st = bp_stream_next(s, B, x, y, &got)))
            goto done;
        if (!got)
            break;
        for (int i = 0; i < got; i++)
            if (y[i] < 0 || y[i] >= k) {
                st = bp_error(BP_ERR_ARG, "%s: label %d outside the model's %d classes", o->data, y[i], k);
                goto done;
            }
        if ((st = bp_forward(ex, g->params, x, got, BP_MODE_INFER)))
            goto done;
        const bp_real *lo = bp_exec_act(ex, g->output);
        for (int i = 0; i < got; i++)
            hit_float += argmax_r(lo + (size_t)i * k, k) == y[i];
        if ((st = qpath_batch(&qp, x, y, got, k)))
            goto done;
        if (o->pow2 && (st = qpath_batch(&q2, x, y, got, k)))
            goto done;
        r->n += got;
    }
    if (r->n == 0) {
        st = bp_error(BP_ERR_ARG, "%s: no samples to evaluate", o->data);
        goto done;
    }
    r->acc_float = (double)hit_float / r->n;
    r->acc_int = (double)qp.hit_int / r->n;
    r->acc_fq = (double)qp.hit_fq / r->n;
    r->acc_fq_ideal = (double)qp.hit_ideal / r->n;
    r->agree = (double)qp.within / (double)qp.total;
    if (o->pow2) {
        r->acc_pow2_int = (double)q2.hit_int / r->n;
        r->acc_pow2_fq = (double)q2.hit_ideal / r->n;
    }
done:
    bp_exec_free(ex);
    bp_stream_close(s);
    qpath_free(&qp);
    qpath_free(&q2);
    bp_dataset_free(&cal);
    free(x), free(y);
    if (st)
        bp_evalq_free(r);
    return st;
}

static json_t *num(double v) { return isfinite(v) ? json_real(v) : json_null(); }

json_t *bp_evalq_json(const bp_evalq_report *r)
{
    json_t *o = json_object(), *ls = json_array();
    json_object_set_new(o, "format", json_string("bitplan-eval"));
    json_object_set_new(o, "version", json_integer(1));
    json_object_set_new(o, "samples", json_integer(r->n));
    json_object_set_new(o, "calibration", json_pack("{s:s,s:i}", "method", r->calib_method, "samples", r->calib_n));
    json_object_set_new(o, "kernels", json_string(r->kernels));
    json_t *acc = json_object();
    json_object_set_new(acc, "float", num(r->acc_float));
    json_object_set_new(acc, "fake_quant", num(r->acc_fq));
    json_object_set_new(acc, "fake_quant_ideal_rounding", num(r->acc_fq_ideal));
    json_object_set_new(acc, "integer", num(r->acc_int));
    json_object_set_new(acc, "pow2_fake_quant", num(r->acc_pow2_fq));
    json_object_set_new(acc, "pow2_integer", num(r->acc_pow2_int));
    json_object_set_new(o, "accuracy", acc);
    json_object_set_new(o, "logits_within_one_step", num(r->agree));
    json_object_set_new(o, "size_bytes", num(r->size_bytes));
    json_object_set_new(o, "size_float_bytes", num(r->size_float_bytes));
    json_object_set_new(o, "bops", num(r->bops));
    json_object_set_new(o, "latency_ms", num(r->latency_ms));
    json_object_set_new(o, "acc_bits", json_integer(r->acc_bits));
    json_object_set_new(o, "overflow_layers", json_integer(r->noverflow));
    for (int l = 0; l < r->nlayers; l++) {
        const bp_evalq_layer *E = &r->layers[l];
        json_t *j = json_object();
        json_object_set_new(j, "name", json_string(E->name));
        json_object_set_new(j, "op", json_string(E->op));
        json_object_set_new(j, "wbits", json_integer(E->wbits));
        json_object_set_new(j, "abits", json_integer(E->abits));
        json_object_set_new(j, "params", json_integer((json_int_t)E->params));
        json_object_set_new(j, "macs", json_integer(E->macs));
        json_object_set_new(j, "fan_in", json_integer(E->fan_in));
        json_object_set_new(j, "bops", num(E->bops));
        json_object_set_new(j, "size_bytes", num(E->size_bytes));
        json_object_set_new(j, "acc_bits_worst", json_integer(E->acc_worst));
        json_object_set_new(j, "acc_bits_needed", json_integer(E->acc_need));
        json_object_set_new(j, "can_overflow", json_boolean(E->overflow));
        json_object_set_new(j, "latency_ms", num(E->latency_ms));
        json_array_append_new(ls, j);
    }
    json_object_set_new(o, "layers", ls);
    return o;
}
