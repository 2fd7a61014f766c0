/* run.c — the main job (pipeline.h): checks, sensitivity (or its cached
 * file), search and sweep, integer-only evaluation, outputs, and the move
 * from the staging directory into OUTDIR. */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/onnx.h"
#include "pipeline/pipe_priv.h"
#include "plots/plots.h"
#include "quant/qmodel.h"
#include "train/train.h"

bp_pipe_opts bp_pipe_opts_default(void)
{
    bp_pipe_opts o;
    memset(&o, 0, sizeof o);
    o.calib_data = "fashion-mnist:train";
    o.eval_data = "fashion-mnist:test";
    o.sens = bp_sens_opts_default();
    /* Sized for the 5-minute budget on 2 cores (docs/PIPELINE.md has the
     * measurements): 128 calibration samples, 8..24 joint probes, a 24-step
     * single-run Lanczos density. */
    o.sens.samples = 128;
    o.sens.batch = 64;
    o.sens.trace.min_probes = 8;
    o.sens.trace.max_probes = 24;
    o.sens.density = 1;
    o.sens.slq.steps = 24;
    o.sens.slq.runs = 1;
    o.sens.slq.grid = 400;
    o.calib = 256;
    o.eval_limit = 1000;
    o.eval_batch = 100;
    o.sweep_kind = -1;
    o.sweep_points = 24;
    o.eval_points = 10;
    o.plots = 1;
    return o;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void say(const bp_pipe_opts *o, const char *fmt, ...)
{
    if (!o->note)
        return;
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    o->note(o->ctx, buf);
}

/* ---- staging ---------------------------------------------------------------- */

/* Removes a directory tree of regular files and directories (the staging dir). */
static void rm_tree(const char *path)
{
    DIR *d = opendir(path);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d))) {
            if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
                continue;
            char p[4096];
            snprintf(p, sizeof p, "%s/%s", path, e->d_name);
            struct stat st;
            if (!lstat(p, &st) && S_ISDIR(st.st_mode))
                rm_tree(p);
            else
                unlink(p);
        }
        closedir(d);
    }
    rmdir(path);
}

/* Moves every file of src into dst (sub-directories recursively), replacing
 * what is there. Each rename is atomic; the set as a whole is not. */
static bp_status move_tree(const char *src, const char *dst)
{
    DIR *d = opendir(src);
    if (!d)
        return bp_error(BP_ERR_IO, "%s: cannot read: %s", src, strerror(errno));
    bp_status st = bp_mkdir_p(dst);
    struct dirent *e;
    while (!st && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char a[4096], b[4096];
        snprintf(a, sizeof a, "%s/%s", src, e->d_name);
        snprintf(b, sizeof b, "%s/%s", dst, e->d_name);
        struct stat sa;
        if (!lstat(a, &sa) && S_ISDIR(sa.st_mode))
            st = move_tree(a, b);
        else if (rename(a, b))
            st = bp_error(BP_ERR_IO, "%s: cannot move into place: %s", b, strerror(errno));
    }
    closedir(d);
    return st;
}

/* Staging directories of runs that were killed (their process is gone). */
static void rm_stale_staging(const char *outdir)
{
    DIR *d = opendir(outdir);
    if (!d)
        return;
    struct dirent *e;
    while ((e = readdir(d))) {
        long pid;
        char tail;
        if (sscanf(e->d_name, ".staging-%ld%c", &pid, &tail) != 1 || pid <= 0)
            continue;
        if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
            continue;
        char p[4096];
        snprintf(p, sizeof p, "%s/%s", outdir, e->d_name);
        rm_tree(p);
    }
    closedir(d);
}

/* ---- keys ------------------------------------------------------------------- */

static void sens_key(char *k, size_t n, const char *sha, const bp_pipe_opts *o)
{
    const bp_sens_opts *s = &o->sens;
    int len = snprintf(k, n,
                       "v1|model=%s|data=%s|samples=%d|batch=%d|scheme=%s|tol=%.17g|probes=%d-%d|seed=%llu|"
                       "clip=%s|neg=%s|eig=%d:%.17g:%d|topk=%d|density=%d:%d:%d:%d:%.17g|bits=",
                       sha, o->calib_data, s->samples, s->batch, bp_probe_name(s->trace.scheme), s->trace.tol,
                       s->trace.min_probes, s->trace.max_probes, (unsigned long long)s->trace.seed,
                       bp_clip_name(s->clip), bp_neg_name(s->neg), s->eig, s->eig_opts.tol, s->eig_opts.max_iter,
                       s->topk, s->density, s->slq.steps, s->slq.runs, s->slq.grid, s->slq.sigma);
    for (int i = 0; i < s->nbits && len > 0 && (size_t)len < n; i++)
        len += snprintf(k + len, n - len, "%d,", s->bits[i]);
}

/* The evaluation key: everything an accuracy depends on, hashed (sha256) so
 * that the key has a fixed length whatever the number of layers. */
static bp_status eval_key(char *k, size_t n, const char *sha, const bp_pipe_opts *o, int n_eval, int n_cal,
                          const int *wb, const int *ab, int nl)
{
    /* The quantizer's defaults are part of the key: if they change, cached
     * accuracies no longer describe what this build would measure. */
    bp_qopts q = bp_qopts_default();
    size_t cap = 512 + strlen(o->eval_data) + strlen(o->calib_data) + 24 * (size_t)nl;
    char *b = malloc(cap);
    if (!b)
        return bp_error(BP_ERR_NOMEM, "pipeline: out of memory");
    size_t len = (size_t)snprintf(b, cap, "v1|model=%s|data=%s:%d|calib=%s:%d|q=%s:%.17g:%d:%s:%d|w=", sha,
                                  o->eval_data, n_eval, o->calib_data, n_cal, bp_calib_name(q.calib),
                                  q.percentile, q.pow2, bp_clip_name(q.wclip), q.logit_bits);
    for (int i = 0; i < nl; i++)
        len += (size_t)snprintf(b + len, cap - len, "%d,", wb[i]);
    len += (size_t)snprintf(b + len, cap - len, "|a=");
    for (int i = 0; i < nl; i++)
        len += (size_t)snprintf(b + len, cap - len, "%d,", ab[i]);
    unsigned char d[32];
    char hex[65];
    bp_sha256(b, len, d);
    bp_sha256_hex(d, hex);
    free(b);
    snprintf(k, n, "eval:%s", hex);
    return BP_OK;
}

/* ---- the skeleton check ------------------------------------------------------ */

/* A sensitivity set with the model's layers and candidate bits but Ω = 0:
 * enough for the search to decide feasibility (costs do not depend on Ω), so
 * an impossible budget fails before any expensive stage or any file. */
static bp_status skeleton(const bp_graph *g, const bp_layer *L, int nl, const bp_sens_opts *so, bp_sens *s)
{
    bp_status st = bp_sens_init(s, nl);
    if (st)
        return st;
    for (int i = 0; i < nl; i++) {
        bp_sens_layer *sl = &s->layers[i];
        bp_sens_layer_set_sig(sl, &L[i], g);
        sl->ncand = so->nbits;
        for (int c = 0; c < so->nbits; c++)
            sl->cand[c] = (bp_sens_cand){so->bits[c], 0, 0};
    }
    return bp_sens_set_residual_ties(s, g);
}

/* Candidate index of layer i with bits (w, a), or -1. */
static int cand_of(const bp_ilp_problem *p, int i, int w, int a)
{
    for (int c = p->off[i]; c < p->off[i + 1]; c++)
        if (p->wbits[c] == w && p->abits[c] == a)
            return c;
    return -1;
}

static void budget_text(char *b, size_t n, const bp_limits *lim, const bp_budget_spec *spec)
{
    b[0] = 0;
    size_t len = 0;
    for (int k = 0; k < BP_CON_COUNT; k++) {
        if (!lim->active[k])
            continue;
        double v = lim->limit[k];
        char val[64];
        if (k == BP_CON_SIZE)
            snprintf(val, sizeof val, "%.1f KiB", v / 1024);
        else if (k == BP_CON_BOPS)
            snprintf(val, sizeof val, "%.4g GBOPs", v / 1e9);
        else
            snprintf(val, sizeof val, "%.4g ms", v);
        len += snprintf(b + len, len < n ? n - len : 0, "%s%s <= %s", len ? ", " : "", bp_con_name(k), val);
        if (spec[k].set == 2)
            len += snprintf(b + len, len < n ? n - len : 0, " (%s-frac %g)", bp_con_name(k), spec[k].value);
    }
    if (!len)
        snprintf(b, n, "none");
}

/* ---- the job ------------------------------------------------------------------ */

static bp_status add_row(bp_pipe_result *r, const char *name, const char *kind, int index)
{
    bp_pipe_row *nr = realloc(r->rows, sizeof *nr * (r->nrows + 1));
    if (!nr)
        return bp_error(BP_ERR_NOMEM, "pipeline: out of memory");
    r->rows = nr;
    bp_pipe_row *w = &r->rows[r->nrows++];
    memset(w, 0, sizeof *w);
    snprintf(w->name, sizeof w->name, "%s", name);
    snprintf(w->kind, sizeof w->kind, "%s", kind);
    w->index = index;
    w->accuracy = w->size_bytes = w->bops = w->latency_ms = w->objective = w->budget = NAN;
    return BP_OK;
}

bp_status bp_pipeline_run(const bp_pipe_opts *o, bp_pipe_result *r)
{
    memset(r, 0, sizeof *r);
    const double t0 = now(), c0 = cpu_now();
    if (!o->model || !o->model[0])
        return bp_error(BP_ERR_ARG, "pipeline: no model");
    if (!o->outdir || !o->outdir[0])
        return bp_error(BP_ERR_ARG, "pipeline: no output directory");
    if (o->sweep_points < 2 || o->eval_points < 0 || o->calib < 1 || o->eval_limit < 0 || o->eval_batch < 1)
        return bp_error(BP_ERR_ARG, "pipeline: bad settings (sweep %d, eval points %d, calib %d, limit %d)",
                        o->sweep_points, o->eval_points, o->calib, o->eval_limit);

    bp_graph *g = NULL;
    bp_layer *L = NULL;
    int nl = 0;
    bp_stream *stream = NULL;
    bp_dataset cal = {0}, ev = {0};
    bp_profile *prof = NULL;
    bp_sens skel = {0}, sens = {0};
    bp_ilp_problem p = {0}, ps = {0};
    bp_ilp_result res = {0}, rs = {0};
    bp_plan plan = {0};
    bp_sweep_point *pts = NULL;
    int npts = 0;
    json_t *cache = NULL;
    char stage[4096] = "", path[4096], key[8192];
    int made_outdir = 0;
    int *wb = NULL, *ab = NULL;
    bp_status st;

    /* 1. Inputs: everything that can be wrong with them is found here. */
    say(o, "loading %s", o->model);
    if ((st = bp_onnx_load(o->model, &g)))
        goto fail;
    if ((st = bp_graph_layers(g, &L, &nl)))
        goto fail;
    if (nl < 1) {
        st = bp_error(BP_ERR_UNSUPPORTED, "%s: no Conv/Gemm/MatMul layer to quantize", o->model);
        goto fail;
    }
    bp_sha256_hex(g->sha256, r->model_sha256);
    bp_data_opts dopt = bp_data_opts_default();
    dopt.limit = o->sens.samples;
    if ((st = bp_stream_open(o->calib_data, &dopt, &stream)))
        goto fail;
    dopt.limit = o->calib;
    if ((st = bp_dataset_load(o->calib_data, &dopt, &cal)))
        goto fail;
    dopt.limit = o->eval_limit;
    if ((st = bp_dataset_load(o->eval_data, &dopt, &ev)))
        goto fail;
    r->eval_samples = ev.n;
    if (o->profile && o->profile[0] && (st = bp_profile_load(o->profile, &prof)))
        goto fail;
    r->has_latency = prof != NULL;

    bp_budget_spec spec[BP_CON_COUNT];
    memcpy(spec, o->budget, sizeof spec);
    if (!spec[0].set && !spec[1].set && !spec[2].set)
        spec[BP_CON_SIZE] = (bp_budget_spec){2, 0.5};
    if (spec[BP_CON_LATENCY].set && !prof) {
        st = bp_error(BP_ERR_ARG, "a latency budget needs a latency profile (--profile P)");
        goto fail;
    }
    int sweep_kind = o->sweep_kind;
    if (sweep_kind < 0)
        sweep_kind = spec[BP_CON_SIZE].set ? BP_CON_SIZE : spec[BP_CON_BOPS].set ? BP_CON_BOPS : BP_CON_LATENCY;
    if (sweep_kind == BP_CON_LATENCY && !prof) {
        st = bp_error(BP_ERR_ARG, "a latency sweep needs a latency profile (--profile P)");
        goto fail;
    }
    bp_ilp_options io = o->ilp;
    io.profile = prof;
    bp_limits lim;
    if ((st = skeleton(g, L, nl, &o->sens, &skel)) || (st = bp_ilp_from_sens(&skel, &io, &p)) ||
        (st = bp_budgets_resolve(&p, spec, &lim)) || (st = bp_ilp_solve(&p, &lim, 0, &res)))
        goto fail;
    bp_ilp_result_free(&res);
    bp_ilp_free(&p);

    /* 2. The output and staging directories. */
    struct stat sb;
    made_outdir = stat(o->outdir, &sb) != 0;
    if (!made_outdir && !S_ISDIR(sb.st_mode)) {
        st = bp_error(BP_ERR_IO, "%s: exists and is not a directory", o->outdir);
        goto fail;
    }
    if ((st = bp_mkdir_p(o->outdir)))
        goto fail;
    rm_stale_staging(o->outdir);
    snprintf(stage, sizeof stage, "%s/.staging-%ld", o->outdir, (long)getpid());
    rm_tree(stage);
    if (mkdir(stage, 0755)) {
        st = bp_error(BP_ERR_IO, "%s: cannot create: %s", stage, strerror(errno));
        stage[0] = 0;
        goto fail;
    }
    if (!(cache = bp_cache_load(o->outdir))) {
        st = bp_error(BP_ERR_NOMEM, "pipeline: out of memory");
        goto fail;
    }

    /* 3. Sensitivity, or the file a previous run made from the same inputs. */
    double t1 = now(), c1 = cpu_now();
    sens_key(key, sizeof key, r->model_sha256, o);
    snprintf(path, sizeof path, "%s/sensitivity.json", o->outdir);
    if (bp_cache_sens_valid(cache, key, path) && !bp_sens_read(path, &sens)) {
        r->sens_reused = 1;
        say(o, "reusing sensitivity.json (same model sha256 %.12s…, data and settings)", r->model_sha256);
    } else {
        bp_clear_error();
        bp_sens_free(&sens);
        say(o, "sensitivity: %d samples of %s, %d..%d probes, %s", o->sens.samples, o->calib_data,
            o->sens.trace.min_probes, o->sens.trace.max_probes,
            o->sens.density ? "with the eigenvalue density" : "no density");
        bp_sens_report rep = {0};
        if ((st = bp_sens_run(g, stream, o->model, &o->sens, &sens, &rep, o->progress, o->ctx)))
            goto fail;
        say(o, "sensitivity: %ld Hessian-vector products in %.1f s", rep.products, rep.seconds);
        free(rep.notes);
        snprintf(path, sizeof path, "%s/sensitivity.json", stage);
        if ((st = bp_sens_write(path, &sens)))
            goto fail;
        if ((st = bp_cache_set_sens(cache, key, path)))
            goto fail;
        snprintf(path, sizeof path, "%s/sensitivity.csv", stage);
        if ((st = bp_sens_write_csv(path, &sens)))
            goto fail;
    }
    r->seconds[0] = now() - t1;
    r->cpu[0] = cpu_now() - c1;

    /* 4. The search: the plan for the budgets, then the Pareto sweep. */
    t1 = now(), c1 = cpu_now();
    if ((st = bp_ilp_from_sens(&sens, &io, &p)) || (st = bp_budgets_resolve(&p, spec, &lim)) ||
        (st = bp_ilp_solve(&p, &lim, 0, &res)) || (st = bp_ilp_to_plan(&p, &res, &lim, &sens, &plan)))
        goto fail;
    snprintf(plan.sensitivity_path, sizeof plan.sensitivity_path, "sensitivity.json");
    if (prof)
        snprintf(plan.profile, sizeof plan.profile, "%s", o->profile);
    snprintf(path, sizeof path, "%s/plan.json", stage);
    plan.solve_seconds = NAN; /* wall time: left out so reruns give byte-identical plans */
    if ((st = bp_plan_write(path, &plan)))
        goto fail;
    bp_limits base = lim;
    base.active[sweep_kind] = 0;
    if ((st = bp_ilp_sweep(&p, &base, sweep_kind, o->sweep_points, 0, &pts, &npts)))
        goto fail;
    r->npoints = npts;
    snprintf(path, sizeof path, "%s/frontier.csv", stage);
    if ((st = bp_sweep_write_csv(path, &p, sweep_kind, pts, npts)))
        goto fail;
    snprintf(path, sizeof path, "%s/frontier.json", stage);
    if ((st = bp_sweep_write_json(path, &p, sweep_kind, pts, npts, &sens)))
        goto fail;
    say(o, "search: plan %s (objective %.4g); sweep over %s: %d budgets, %d distinct plans",
        bp_plan_status_name(plan.status), plan.objective, bp_con_name(sweep_kind), o->sweep_points, npts);
    r->seconds[1] = now() - t1;
    r->cpu[1] = cpu_now() - c1;

    /* 5. Integer-only evaluation: float, W8A8, W4A4, the plan, frontier points. */
    t1 = now(), c1 = cpu_now();
    wb = malloc(sizeof *wb * nl);
    ab = malloc(sizeof *ab * nl);
    int *choice = malloc(sizeof *choice * nl);
    if (!wb || !ab || !choice) {
        free(choice);
        st = bp_error(BP_ERR_NOMEM, "pipeline: out of memory");
        goto fail;
    }
    if ((st = add_row(r, "float", "float", -1)))
        goto fail_choice;
    {
        bp_pipe_row *w = &r->rows[0];
        double size = 0, bops = 0;
        for (int i = 0; i < nl; i++) {
            size += 4.0 * (double)(L[i].params + L[i].cout); /* float32 weights and bias */
            bops += (double)L[i].macs * 32 * 32;
        }
        w->size_bytes = size, w->bops = bops, w->objective = 0;
        snprintf(key, sizeof key, "v1|float|model=%s|data=%s:%d", r->model_sha256, o->eval_data, ev.n);
        if (bp_cache_get_eval(cache, key, &w->accuracy)) {
            w->cached = 1;
        } else {
            if ((st = bp_evaluate(g, &ev, o->eval_batch, &w->accuracy, NULL)))
                goto fail_choice;
            bp_cache_set_eval(cache, key, w->accuracy);
        }
        say(o, "evaluate: float accuracy %.2f%% on %d samples%s", 100 * w->accuracy, ev.n,
            w->cached ? " (cached)" : "");
    }
    /* Frontier points to evaluate: all when few, else evenly spaced with both ends. */
    int neval = npts <= o->eval_points ? npts : o->eval_points;
    int total_q = 3 + neval, done_q = 0;
    int *cw = malloc(sizeof *cw * (size_t)total_q * nl), *ca = malloc(sizeof *ca * (size_t)total_q * nl);
    int *todo = malloc(sizeof *todo * total_q), *same = malloc(sizeof *same * total_q);
    bp_status *qst = calloc(total_q, sizeof *qst);
    char (*qkey)[2048] = calloc(total_q, sizeof *qkey);
    double *qacc = calloc(total_q, sizeof *qacc);
    int ntodo = 0, err_q = -1;
    if (!cw || !ca || !todo || !same || !qst || !qkey || !qacc) {
        st = bp_error(BP_ERR_NOMEM, "pipeline: out of memory");
        goto fail_eval;
    }
    /* First the rows, their bits and what the cache already knows ... */
    for (int q = 0; q < total_q; q++) {
        char name[48];
        const char *kind;
        int index = -1;
        double objective = NAN, total[BP_CON_COUNT] = {NAN, NAN, NAN}, budget = NAN;
        int *qw = cw + (size_t)q * nl, *qa = ca + (size_t)q * nl;
        if (q < 2) {
            int b = q == 0 ? 8 : 4;
            snprintf(name, sizeof name, "W%dA%d", b, b);
            kind = "uniform";
            int ok = 1;
            for (int i = 0; i < nl; i++) {
                qw[i] = qa[i] = b;
                choice[i] = cand_of(&p, i, b, b);
                ok &= choice[i] >= 0;
            }
            if (ok)
                bp_ilp_evaluate(&p, choice, &objective, total);
        } else if (q == 2) {
            snprintf(name, sizeof name, "plan");
            kind = "plan";
            for (int i = 0; i < nl; i++)
                qw[i] = p.wbits[res.choice[i]], qa[i] = p.abits[res.choice[i]];
            objective = res.objective;
            memcpy(total, res.total, sizeof total);
        } else {
            int j = neval == npts ? q - 3 : neval == 1 ? 0 : (int)lround((double)(q - 3) * (npts - 1) / (neval - 1));
            snprintf(name, sizeof name, "frontier %d", j);
            kind = "frontier";
            index = j;
            for (int i = 0; i < nl; i++)
                qw[i] = p.wbits[pts[j].choice[i]], qa[i] = p.abits[pts[j].choice[i]];
            objective = pts[j].objective;
            memcpy(total, pts[j].total, sizeof total);
            budget = pts[j].budget;
        }
        if ((st = add_row(r, name, kind, index)))
            goto fail_eval;
        bp_pipe_row *w = &r->rows[r->nrows - 1];
        w->objective = objective;
        w->size_bytes = total[BP_CON_SIZE];
        w->bops = total[BP_CON_BOPS];
        w->latency_ms = prof ? total[BP_CON_LATENCY] : NAN;
        w->budget = budget;
        if ((st = eval_key(qkey[q], sizeof qkey[q], r->model_sha256, o, ev.n, cal.n, qw, qa, nl)))
            goto fail_eval;
        same[q] = -1;
        for (int e = 0; e < q && same[q] < 0; e++)
            if (!strcmp(qkey[e], qkey[q]))
                same[q] = e;
        if (bp_cache_get_eval(cache, qkey[q], &w->accuracy)) {
            w->cached = 1;
            done_q++;
            say(o, "evaluate [%d/%d] %-12s integer-only accuracy %.2f%% (cached)", done_q, total_q, name,
                100 * w->accuracy);
        } else if (same[q] < 0) {
            todo[ntodo++] = q;
        }
    }
    /* ... then the rest, configurations in parallel (each is independent and
     * the integer engine is single-threaded). */
#pragma omp parallel for schedule(dynamic, 1)
    for (int t = 0; t < ntodo; t++) {
        int q = todo[t];
        qst[q] = bp_pipe_int_accuracy(g, cw + (size_t)q * nl, ca + (size_t)q * nl, &cal, &ev, o->eval_batch,
                                      &qacc[q]);
        if (qst[q])
            bp_error_wrap(qst[q], "evaluating %s", r->rows[1 + q].name);
        else {
#pragma omp critical(bp_pipe_note)
            {
                done_q++;
                say(o, "evaluate [%d/%d] %-12s integer-only accuracy %.2f%%", done_q, total_q, r->rows[1 + q].name,
                    100 * qacc[q]);
            }
        }
#pragma omp critical(bp_pipe_err)
        if (qst[q] && err_q < 0) {
            /* carry the worker thread's message (thread-local) to this thread */
            err_q = q;
            snprintf(qkey[q], sizeof qkey[q], "%s", bp_last_error());
        }
    }
    if (err_q >= 0) {
        st = bp_error(qst[err_q], "%s", qkey[err_q]);
        goto fail_eval;
    }
    for (int q = 0; q < total_q; q++) {
        bp_pipe_row *w = &r->rows[1 + q];
        if (w->cached)
            continue;
        if (same[q] >= 0) {
            w->accuracy = r->rows[1 + same[q]].accuracy;
            continue;
        }
        w->accuracy = qacc[q];
        bp_cache_set_eval(cache, qkey[q], qacc[q]);
    }
    free(cw), free(ca), free(todo), free(same), free(qst), free(qkey), free(qacc);
    free(choice);
    choice = NULL;
    r->seconds[2] = now() - t1;
    r->cpu[2] = cpu_now() - c1;

    /* 6. Outputs: evaluation.json, plots, report.md; then into place. */
    t1 = now(), c1 = cpu_now();
    snprintf(path, sizeof path, "%s/evaluation.json", stage);
    if ((st = bp_pipe_write_eval(path, r, o->model, o->eval_data, cal.n, prof ? o->profile : NULL,
                                 bp_con_name(sweep_kind))))
        goto fail;
    char notes[1024] = "";
    int nplots = 0;
    if (o->plots) {
        bp_plot_front *front = calloc(npts ? npts : 1, sizeof *front);
        if (!front) {
            st = bp_error(BP_ERR_NOMEM, "pipeline: out of memory");
            goto fail;
        }
        for (int j = 0; j < npts; j++)
            front[j] = (bp_plot_front){pts[j].budget, pts[j].objective, pts[j].total[BP_CON_SIZE],
                                       pts[j].total[BP_CON_BOPS], prof ? pts[j].total[BP_CON_LATENCY] : NAN};
        bp_plot_inputs pin = {&sens, &plan, r->rows, r->nrows, front, npts, prof};
        snprintf(path, sizeof path, "%s/plots", stage);
        say(o, "plots: gnuplot into %s/plots", o->outdir);
        st = bp_plots_make(&pin, path, &nplots, notes, sizeof notes);
        free(front);
        if (st)
            goto fail;
    }
    char btext[256];
    budget_text(btext, sizeof btext, &lim, spec);
    bp_report_in rin = {o, r, &sens, &plan, L, nl, btext, bp_con_name(sweep_kind), notes, nplots};
    r->seconds[3] = now() - t1;
    r->seconds[4] = now() - t0;
    r->cpu[3] = cpu_now() - c1;
    r->cpu[4] = cpu_now() - c0;
    snprintf(path, sizeof path, "%s/report.md", stage);
    if ((st = bp_pipe_write_report(path, &rin)))
        goto fail;
    if ((st = move_tree(stage, o->outdir)))
        goto fail;
    rm_tree(stage);
    stage[0] = 0;
    if ((st = bp_cache_save(cache, o->outdir)))
        goto fail;
    goto cleanup;

fail_eval:
    free(cw), free(ca), free(todo), free(same), free(qst), free(qkey), free(qacc);
fail_choice:
    free(choice);
fail:
    if (stage[0])
        rm_tree(stage);
    if (made_outdir)
        rmdir(o->outdir); /* only when empty */
    bp_pipe_result_free(r);
cleanup:
    free(wb);
    free(ab);
    json_decref(cache);
    bp_sweep_free(pts, npts);
    bp_plan_free(&plan);
    bp_ilp_result_free(&res);
    bp_ilp_result_free(&rs);
    bp_ilp_free(&p);
    bp_ilp_free(&ps);
    bp_sens_free(&sens);
    bp_sens_free(&skel);
    bp_profile_free(prof);
    bp_dataset_free(&cal);
    bp_dataset_free(&ev);
    bp_stream_close(stream);
    free(L);
    bp_graph_free(g);
    return st;
}
