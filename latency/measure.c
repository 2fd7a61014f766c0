/* measure.c — times model layers with the integer kernels (see measure.h for
 * the method) and builds a host profile from the timings. */
#include "latency/measure.h"

#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "quant/qkernels.h"
#include "quant/requant.h"

void bp_measure_opts_default(bp_measure_opts *o)
{
    memset(o, 0, sizeof *o);
    o->batch = 1;
    o->threads = 1;
    o->reps = 30;
    o->warmup = 3;
    o->min_rep_ms = 0.5;
}

static double now_ms(clockid_t clk)
{
    struct timespec ts;
    clock_gettime(clk, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec * 1e-6;
}

/* Deterministic fill, so that every run times the same data. */
static uint32_t lcg(uint32_t *s)
{
    *s = *s * 1664525u + 1013904223u;
    return *s >> 8;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Quantile of sorted v (n >= 1) with linear interpolation between order
 * statistics (the "type 7" rule of R and numpy's default). */
static double quantile(const double *v, int n, double q)
{
    double h = (n - 1) * q;
    int lo = (int)floor(h);
    int hi = lo + 1 < n ? lo + 1 : lo;
    return v[lo] + (h - lo) * (v[hi] - v[lo]);
}

/* Everything one timed kernel call needs, per thread slice. */
typedef struct {
    int is_conv;
    bp_qconv_params cp;
    bp_qgemm_params gp;
    size_t in_per_sample, out_per_sample;
    uint8_t *in, *out, *panel;
    int32_t *bias;
    bp_qmul *qm;
    int nslices;
    int slice_n[64];        /* samples per slice */
    void *scratch[64];      /* one per slice */
} bench_case;

static bp_status run_once(bench_case *bc)
{
    if (bc->nslices == 1) {
        if (bc->is_conv)
            return bp_qconv(&bc->cp, bc->in, bc->panel, bc->bias, bc->qm, bc->out,
                            bc->scratch[0]);
        return bp_qgemm(&bc->gp, bc->in, bc->panel, bc->bias, bc->qm, bc->out, bc->scratch[0]);
    }
    int bad = 0;
#pragma omp parallel num_threads(bc->nslices) reduction(| : bad)
    {
        int t = omp_get_thread_num();
        if (t < bc->nslices) {
            size_t first = 0;
            for (int k = 0; k < t; k++)
                first += (size_t)bc->slice_n[k];
            if (bc->is_conv) {
                bp_qconv_params p = bc->cp;
                p.n = bc->slice_n[t];
                bad |= 0 != bp_qconv(&p, bc->in + first * bc->in_per_sample, bc->panel, bc->bias,
                               bc->qm, bc->out + first * bc->out_per_sample, bc->scratch[t]);
            } else {
                bp_qgemm_params p = bc->gp;
                p.n = bc->slice_n[t];
                bad |= 0 != bp_qgemm(&p, bc->in + first * bc->in_per_sample, bc->panel, bc->bias,
                               bc->qm, bc->out + first * bc->out_per_sample, bc->scratch[t]);
            }
        }
    }
    return bad ? bp_error(BP_ERR_ARG, "latency: a kernel call failed: %s", bp_last_error())
              : BP_OK;
}

bp_status bp_latency_time_layer(const bp_layer *L, const bp_attrs *a, int b_w, int b_a,
                                const bp_measure_opts *o, bp_lat_timing *t)
{
    if (b_w < 2 || b_w > 8 || b_a < 1 || b_a > 8)
        return bp_error(BP_ERR_UNSUPPORTED, "latency: layer '%s' at W%dA%d: the host integer "
                        "kernels take 2..8-bit weights and 1..8-bit activations", L->name, b_w,
                        b_a);
    if (o->batch < 1 || o->threads < 1 || o->threads > 64 || o->reps < 1 || o->warmup < 0)
        return bp_error(BP_ERR_ARG, "latency: batch, threads (1..64), reps must be positive, "
                        "warmup >= 0");
    if (o->thread_cpu && o->threads != 1)
        return bp_error(BP_ERR_ARG, "latency: the thread CPU clock needs threads = 1 (the "
                        "other threads' time would not be counted)");
    const clockid_t clk = o->thread_cpu ? CLOCK_THREAD_CPUTIME_ID : CLOCK_MONOTONIC;
    if (L->op != BP_OP_CONV && L->op != BP_OP_GEMM && L->op != BP_OP_MATMUL)
        return bp_error(BP_ERR_UNSUPPORTED, "latency: layer '%s': op %s is not timed",
                        L->name, bp_op_name(L->op));
    if (L->cin > INT32_MAX / 2 || L->cout > INT32_MAX / 2 || L->in_h > 65536 || L->in_w > 65536)
        return bp_error(BP_ERR_ARG, "latency: layer '%s': shape too large", L->name);

    bench_case bc;
    memset(&bc, 0, sizeof bc);
    bp_status st = BP_OK;
    int8_t *w = NULL;
    double *rep = NULL;
    int groups, m, k;
    bc.is_conv = L->op == BP_OP_CONV;
    if (bc.is_conv) {
        bp_qconv_params *p = &bc.cp;
        p->cin = (int)L->cin;
        p->h = (int)L->in_h;
        p->w = (int)L->in_w;
        p->cout = (int)L->cout;
        p->kh = L->kh;
        p->kw = L->kw;
        p->group = L->group > 0 ? L->group : 1;
        p->stride_h = p->stride_w = L->stride > 0 ? L->stride : 1;
        p->dil_h = p->dil_w = 1;
        if (a) {
            p->stride_h = a->stride[0] > 0 ? a->stride[0] : p->stride_h;
            p->stride_w = a->stride[1] > 0 ? a->stride[1] : p->stride_w;
            p->dil_h = a->dilation[0] > 0 ? a->dilation[0] : 1;
            p->dil_w = a->dilation[1] > 0 ? a->dilation[1] : 1;
            p->pad_t = a->pads[0];
            p->pad_l = a->pads[1];
            p->pad_b = a->pads[2];
            p->pad_r = a->pads[3];
        } else {
            int th = (int)((L->out_h - 1) * p->stride_h + p->kh - L->in_h);
            int tw = (int)((L->out_w - 1) * p->stride_w + p->kw - L->in_w);
            th = th > 0 ? th : 0;
            tw = tw > 0 ? tw : 0;
            p->pad_t = th / 2;
            p->pad_b = th - th / 2;
            p->pad_l = tw / 2;
            p->pad_r = tw - tw / 2;
        }
        p->wbits = b_w;
        p->in_type = BP_QT_U8;
        p->out_type = BP_QT_U8;
        p->out_min = 0;
        p->out_max = 255;
        p->n = 1;
        if ((st = bp_qconv_check(p)))
            return bp_error_wrap(st, "latency: layer '%s': ", L->name);
        int oh, ow;
        bp_qconv_out_hw(p, &oh, &ow);
        bc.in_per_sample = (size_t)p->cin * p->h * p->w;
        bc.out_per_sample = (size_t)p->cout * oh * ow;
        groups = p->group;
        m = p->cout / p->group;
        k = p->cin / p->group * p->kh * p->kw;
    } else {
        bp_qgemm_params *p = &bc.gp;
        p->n = 1;
        p->k = (int)L->cin;
        p->m = (int)L->cout;
        p->wbits = b_w;
        p->in_type = BP_QT_U8;
        p->out_type = BP_QT_U8;
        p->out_min = 0;
        p->out_max = 255;
        if ((st = bp_qgemm_check(p)))
            return bp_error_wrap(st, "latency: layer '%s': ", L->name);
        bc.in_per_sample = (size_t)p->k;
        bc.out_per_sample = (size_t)p->m;
        groups = 1;
        m = p->m;
        k = p->k;
    }

    /* Slices of the batch, one per thread. */
    bc.nslices = o->threads < o->batch ? o->threads : o->batch;
    for (int s = 0; s < bc.nslices; s++)
        bc.slice_n[s] = o->batch / bc.nslices + (s < o->batch % bc.nslices);
    size_t scratch_bytes = bc.is_conv ? bp_qconv_buffer_size(&bc.cp)
                                      : bp_qgemm_buffer_size(&bc.gp);
    scratch_bytes = (scratch_bytes + 31) / 32 * 32;

    size_t nw = (size_t)groups * m * k;
    w = malloc(nw);
    bc.panel = aligned_alloc(64, (bp_qweights_size(groups, m, k, b_w) + 63) / 64 * 64);
    bc.in = aligned_alloc(64, (bc.in_per_sample * o->batch + 63) / 64 * 64);
    bc.out = aligned_alloc(64, (bc.out_per_sample * o->batch + 63) / 64 * 64);
    bc.bias = malloc((size_t)L->cout * sizeof *bc.bias);
    bc.qm = malloc((size_t)L->cout * sizeof *bc.qm);
    rep = malloc((size_t)o->reps * sizeof *rep);
    int ok = w && bc.panel && bc.in && bc.out && bc.bias && bc.qm && rep;
    for (int s = 0; s < bc.nslices && ok; s++)
        ok = (bc.scratch[s] = aligned_alloc(32, scratch_bytes)) != NULL;
    if (!ok) {
        st = bp_error(BP_ERR_NOMEM, "latency: layer '%s': out of memory", L->name);
        goto cleanup;
    }
    uint32_t seed = 12345;
    int wlo = -(1 << (b_w - 1)), wspan = 1 << b_w;
    for (size_t i = 0; i < nw; i++)
        w[i] = (int8_t)(wlo + (int)(lcg(&seed) % (uint32_t)wspan));
    if ((st = bp_qweights_pack(w, groups, m, k, b_w, bc.panel)))
        goto cleanup;
    uint32_t amax = (1u << b_a) - 1;
    for (size_t i = 0; i < bc.in_per_sample * o->batch; i++)
        bc.in[i] = (uint8_t)(lcg(&seed) % (amax + 1));
    bp_qmul q;
    /* Typical output scale: accumulations of fan-in K land in 0..255 roughly. */
    if ((st = bp_quantize_multiplier(1.0 / (4.0 * k + 1.0), &q)))
        goto cleanup;
    for (int64_t c = 0; c < L->cout; c++) {
        bc.bias[c] = (int32_t)(lcg(&seed) % 1024) - 512;
        bc.qm[c] = q;
    }

    /* Warm-up, timing the last run to choose `inner`. */
    double one = 0;
    for (int r = 0; r < (o->warmup > 0 ? o->warmup : 1); r++) {
        double t0 = now_ms(clk);
        if ((st = run_once(&bc)))
            goto cleanup;
        one = now_ms(clk) - t0;
    }
    int inner = 1;
    if (o->min_rep_ms > 0 && one < o->min_rep_ms)
        inner = one > 0 ? (int)ceil(o->min_rep_ms / one) : 1000;
    if (inner > 100000)
        inner = 100000;
    for (int r = 0; r < o->reps; r++) {
        double t0 = now_ms(clk);
        for (int i = 0; i < inner; i++)
            if ((st = run_once(&bc)))
                goto cleanup;
        rep[r] = (now_ms(clk) - t0) / inner;
    }
    qsort(rep, (size_t)o->reps, sizeof *rep, cmp_double);
    t->median_ms = quantile(rep, o->reps, 0.5);
    t->q1_ms = quantile(rep, o->reps, 0.25);
    t->q3_ms = quantile(rep, o->reps, 0.75);
    t->min_ms = rep[0];
    t->max_ms = rep[o->reps - 1];
    t->inner = inner;
cleanup:
    for (int s = 0; s < bc.nslices; s++)
        free(bc.scratch[s]);
    free(w);
    free(bc.panel);
    free(bc.in);
    free(bc.out);
    free(bc.bias);
    free(bc.qm);
    free(rep);
    return st;
}

void bp_host_cpu_name(char *buf, size_t len)
{
    snprintf(buf, len, "unknown cpu");
    FILE *fp = fopen("/proc/cpuinfo", "r");
    if (!fp)
        return;
    char line[512];
    while (fgets(line, sizeof line, fp)) {
        if (strncmp(line, "model name", 10))
            continue;
        char *c = strchr(line, ':');
        if (!c)
            break;
        c++;
        while (*c == ' ' || *c == '\t')
            c++;
        c[strcspn(c, "\n")] = 0;
        snprintf(buf, len, "%s", c);
        break;
    }
    fclose(fp);
}

/* Appends ", name" to a growing note (best effort: an allocation failure
 * leaves the note as it was). */
static void note_add(char **note, const char *name)
{
    size_t old = *note ? strlen(*note) : 0;
    char *n = realloc(*note, old + strlen(name) + 3);
    if (!n)
        return;
    snprintf(n + old, strlen(name) + 3, "%s%s", old ? ", " : "", name);
    *note = n;
}

bp_status bp_latency_measure_graph(const bp_graph *g, const bp_measure_opts *o,
                                   bp_profile **out)
{
    *out = NULL;
    if (o->ncand < 1 || !o->wbits || !o->abits)
        return bp_error(BP_ERR_ARG, "latency: no candidate bit-widths to measure");
    bp_layer *layers = NULL;
    int n = 0;
    bp_status st = bp_graph_layers(g, &layers, &n);
    if (st)
        return st;
    if (n == 0) {
        free(layers);
        return bp_error(BP_ERR_ARG, "latency: %s has no Conv/Gemm/MatMul layers",
                        g->source && g->source[0] ? g->source : "the model");
    }
    char cpu[256], dev[300], host[400], date[32];
    bp_host_cpu_name(cpu, sizeof cpu);
    snprintf(dev, sizeof dev, "host: %s", cpu);
    /* The load average says how much other work shared the machine: the
     * timings of a busy host are worth less, and the reader should know. */
    double load = -1;
    FILE *lf = fopen("/proc/loadavg", "r");
    if (lf) {
        if (fscanf(lf, "%lf", &load) != 1)
            load = -1;
        fclose(lf);
    }
    snprintf(host, sizeof host, "%s; %d cpus; integer kernels: %s; load average %.2f at start",
             cpu, omp_get_num_procs(), bp_qkern_name(bp_qkern_active()), load);
    time_t now = time(NULL);
    struct tm tmv;
    gmtime_r(&now, &tmv);
    strftime(date, sizeof date, "%Y-%m-%dT%H:%M:%SZ", &tmv);

    char **notes = calloc((size_t)n, sizeof *notes);  /* per first layer of a signature */
    int *first = malloc((size_t)n * sizeof *first);   /* first layer with my signature */
    bp_profile *p = bp_profile_new(dev, o->batch);
    if (!notes || !first || !p) {
        st = bp_error(BP_ERR_NOMEM, "latency: out of memory");
        goto cleanup;
    }
    p->threads = o->threads;
    p->repetitions = o->reps;
    p->warmup = o->warmup;
    p->date = strdup(date);
    p->host = strdup(host);
    p->clock = strdup(o->thread_cpu ? "thread-cpu" : "wall");
    if (g->source && g->source[0]) {
        size_t cl = strlen(g->source) + 64;
        p->citation = malloc(cl);
        if (p->citation)
            snprintf(p->citation, cl, "measured by bitplan latency measure on %s", g->source);
    }
    for (int i = 0; i < n; i++) {
        bp_lat_sig si = bp_lat_sig_of_layer(&layers[i], o->batch);
        first[i] = i;
        for (int j = 0; j < i; j++) {
            bp_lat_sig sj = bp_lat_sig_of_layer(&layers[j], o->batch);
            if (bp_lat_sig_equal(&si, &sj)) {
                first[i] = first[j];
                break;
            }
        }
        note_add(&notes[first[i]], layers[i].name);
    }
    /* The kernels stay single-threaded; omp_set_num_threads fixes the team
     * size any nested OpenMP code would use. */
    omp_set_num_threads(o->threads);
    for (int i = 0; i < n && !st; i++) {
        const bp_layer *L = &layers[i];
        const bp_attrs *a = L->op == BP_OP_CONV ? &g->nodes[L->node].a : NULL;
        for (int c = 0; c < o->ncand && !st; c++) {
            bp_measure_event ev = {i, n, c, o->ncand, L->name, o->wbits[c], o->abits[c], 0, 0};
            if (first[i] != i) {
                bp_lat_sig s = bp_lat_sig_of_layer(L, o->batch);
                int e = bp_profile_find(p, &s, o->wbits[c], o->abits[c]);
                ev.median_ms = e >= 0 ? p->e[e].latency_ms : NAN;
                ev.reused = 1;
            } else {
                bp_lat_timing t;
                if ((st = bp_latency_time_layer(L, a, o->wbits[c], o->abits[c], o, &t)))
                    break;
                bp_profile_entry e = {0};
                e.sig = bp_lat_sig_of_layer(L, o->batch);
                e.b_w = o->wbits[c];
                e.b_a = o->abits[c];
                e.macs = L->macs;
                e.latency_ms = t.median_ms;
                e.spread = BP_SPREAD_IQR;
                e.lo_ms = t.q1_ms;
                e.hi_ms = t.q3_ms;
                e.source = BP_LAT_MEASURED;
                size_t nl = strlen(notes[i] ? notes[i] : "") + 96;
                e.note = malloc(nl);
                if (!e.note) {
                    st = bp_error(BP_ERR_NOMEM, "latency: out of memory");
                    break;
                }
                snprintf(e.note, nl, "layers: %s; %d runs per repetition; min %.6g max %.6g ms",
                         notes[i] ? notes[i] : "", t.inner, t.min_ms, t.max_ms);
                st = bp_profile_add(p, &e);
                free(e.note);
                ev.median_ms = t.median_ms;
            }
            if (!st && o->progress)
                o->progress(&ev, o->ctx);
        }
    }
    if (!st)
        st = bp_profile_validate(p, "measured profile");
    if (!st) {
        *out = p;
        p = NULL;
    }
cleanup:
    if (notes)
        for (int i = 0; i < n; i++)
            free(notes[i]);
    free(notes);
    free(first);
    free(layers);
    bp_profile_free(p);
    return st;
}
