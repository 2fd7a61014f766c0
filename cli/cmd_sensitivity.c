/* `bitplan sensitivity MODEL.onnx ... -o sensitivity.json`: per-layer Hessian
 * traces (Hutchinson), optional eigenvalues and density, and Ω per candidate
 * bit-width, written as the sensitivity file (docs/FORMATS.md) and its CSV
 * view. Progress on stderr unless --quiet; warnings (probes that did not
 * converge, all-zero layers, negative traces) are printed even with --quiet. */
#include "cli/cli.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dist.h"
#include "core/fileio.h"
#include "core/onnx.h"
#include "cli/act_cli.h"
#include "cli/mpi_cli.h"
#include "sensitivity/dist_op.h"
#include "sensitivity/sensitivity.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: bitplan sensitivity MODEL.onnx -o sensitivity.json [options]\n"
            "  Hessian sensitivity of every Conv/Gemm/MatMul layer on a calibration set:\n"
            "  Tr(H_i) by Hutchinson, ‖Q_b(W_i) − W_i‖² and Ω_i(b) = Tr(H_i)/n_i · ‖ΔW‖².\n"
            "  --data SPEC         calibration data (default fashion-mnist:train; see docs/)\n"
            "  --samples N         calibration samples (default 512)\n"
            "  --batch B           batch size of the streamed products (default 64)\n"
            "  --seed S            probe seed (default 1)\n"
            "  --scheme joint|per-layer  one probe over all layers per product (default),\n"
            "                      or one product per layer per probe\n"
            "  --tol T             relative change of the running mean to stop at (1e-3)\n"
            "  --min-probes K      (default 10)    --max-probes K   (default 200)\n"
            "  --bits LIST         candidate weight bits, e.g. 2,4,8 (default 2,3,4,5,6,8)\n"
            "  --clip maxabs|mse   weight clipping for ‖ΔW‖² (default maxabs)\n"
            "  --negative abs|clamp|keep  what Ω uses for a negative trace (default abs)\n"
            "  --eig               per-layer top eigenvalue (power iteration)\n"
            "  --eig-tol T         (default 1e-3)  --eig-iters N (default 100)\n"
            "  --topk K            whole-model top-K eigenvalues (deflation)\n"
            "  --density           eigenvalue density (stochastic Lanczos quadrature)\n"
            "  --lanczos-steps M   (default 80)    --lanczos-runs R (default 4)\n"
            "  -o FILE             sensitivity JSON (required)\n"
            "  --csv FILE          CSV view as well\n"
            "  --quiet             no progress on stderr\n");
    bp_cli_act_usage(fp);
}

/* Progress: one line per layer step in per-layer mode, one line every few
 * probes in joint mode, at most every 0.5 s either way. */
typedef struct {
    const bp_layer *layers;
    int nlayers;
    double last;
    int last_block;
    const char *last_stage;
} progress_ctx;

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static void on_progress(void *ctx, const bp_progress *p)
{
    progress_ctx *c = ctx;
    double t = wall();
    int changed = p->block != c->last_block || c->last_stage != p->stage;
    if (!changed && t - c->last < 0.5)
        return;
    c->last = t;
    c->last_block = p->block;
    c->last_stage = p->stage;
    const char *name = p->block >= 0 && p->block < c->nlayers && strcmp(p->stage, "topk") &&
                               strcmp(p->stage, "density")
                           ? c->layers[p->block].name
                           : "(model)";
    if (!strcmp(p->stage, "trace"))
        fprintf(stderr, "  trace   %-24s probes %4d  estimate %-12.6g  change %.2e\n",
                p->block < 0 ? "(all converged)" : name, p->step, p->estimate, p->change);
    else if (!strcmp(p->stage, "density"))
        fprintf(stderr, "  density run %d  step %4d  alpha %.6g\n", p->block + 1, p->step, p->estimate);
    else if (!strcmp(p->stage, "topk"))
        fprintf(stderr, "  top-k   eigenvalue %d  iteration %4d  estimate %.6g  change %.2e\n", p->block + 1,
                p->step, p->estimate, p->change);
    else
        fprintf(stderr, "  %-7s %-24s iteration %4d  estimate %.6g  change %.2e\n", p->stage, name, p->step,
                p->estimate, p->change);
}

static int parse_bits(const char *s, bp_sens_opts *o)
{
    o->nbits = 0;
    const char *p = s;
    while (*p) {
        char *end;
        errno = 0;
        long b = strtol(p, &end, 10);
        if (end == p || errno || o->nbits >= BP_SENS_MAX_CAND)
            return -1;
        o->bits[o->nbits++] = (int)b;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    /* Sort, so "8,4,2" works; duplicates stay and are rejected by the library. */
    for (int i = 1; i < o->nbits; i++)
        for (int j = i; j > 0 && o->bits[j] < o->bits[j - 1]; j--) {
            int t = o->bits[j];
            o->bits[j] = o->bits[j - 1];
            o->bits[j - 1] = t;
        }
    return o->nbits > 0 ? 0 : -1;
}

static int num_arg(const char *opt, const char *v, double *out)
{
    char *end;
    errno = 0;
    *out = v ? strtod(v, &end) : 0;
    if (!v || end == v || *end || errno) {
        fprintf(stderr, "bitplan sensitivity: %s needs a number\n", opt);
        return -1;
    }
    return 0;
}

static int int_arg(const char *opt, const char *v, int *out)
{
    double d;
    if (num_arg(opt, v, &d))
        return -1;
    if (d != floor(d) || d < 0 || d > 1e9) {
        fprintf(stderr, "bitplan sensitivity: %s needs a non-negative integer\n", opt);
        return -1;
    }
    *out = (int)d;
    return 0;
}

int cmd_sensitivity(int argc, char **argv)
{
    const char *model = NULL, *data = "fashion-mnist:train", *out = NULL, *csv = NULL;
    bp_sens_opts o = bp_sens_opts_default();
    bp_cli_act act;
    bp_cli_act_init(&act);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        double d;
        int k;
#define NEXT() (i++, v)
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return BP_EXIT_OK;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            bp_cli_quiet = 1;
        } else if (!strcmp(a, "--data") && v) {
            data = NEXT();
        } else if ((!strcmp(a, "-o") || !strcmp(a, "--out")) && v) {
            out = NEXT();
        } else if (!strcmp(a, "--csv") && v) {
            csv = NEXT();
        } else if (!strcmp(a, "--samples")) {
            if (int_arg(a, NEXT(), &o.samples))
                return BP_EXIT_USAGE;
            if (o.samples < 1) {
                fprintf(stderr, "bitplan sensitivity: --samples needs at least 1, not '%s'\n", v);
                return BP_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--batch")) {
            if (int_arg(a, NEXT(), &o.batch))
                return BP_EXIT_USAGE;
            if (o.batch < 1) {
                fprintf(stderr, "bitplan sensitivity: --batch needs at least 1, not '%s'\n", v);
                return BP_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--seed")) {
            if (num_arg(a, NEXT(), &d))
                return BP_EXIT_USAGE;
            if (d < 0 || d != floor(d) || d > 18446744073709549568.0) {
                fprintf(stderr, "bitplan sensitivity: --seed needs a non-negative integer, not '%s'\n", v);
                return BP_EXIT_USAGE;
            }
            o.trace.seed = o.eig_opts.seed = o.slq.seed = (uint64_t)d;
        } else if (!strcmp(a, "--scheme") && v) {
            if ((k = bp_probe_parse(NEXT())) < 0) {
                fprintf(stderr, "bitplan sensitivity: --scheme is joint or per-layer, not '%s'\n", v);
                return BP_EXIT_USAGE;
            }
            o.trace.scheme = (bp_probe_scheme)k;
        } else if (!strcmp(a, "--tol")) {
            if (num_arg(a, NEXT(), &o.trace.tol))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--min-probes")) {
            if (int_arg(a, NEXT(), &o.trace.min_probes))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--max-probes")) {
            if (int_arg(a, NEXT(), &o.trace.max_probes))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--bits") && v) {
            if (parse_bits(NEXT(), &o)) {
                fprintf(stderr, "bitplan sensitivity: --bits takes a list like 2,4,8, not '%s'\n", v);
                return BP_EXIT_USAGE;
            }
        } else if (!strcmp(a, "--clip") && v) {
            if ((k = bp_clip_parse(NEXT())) < 0) {
                fprintf(stderr, "bitplan sensitivity: --clip is maxabs or mse, not '%s'\n", v);
                return BP_EXIT_USAGE;
            }
            o.clip = (bp_clip_mode)k;
        } else if (!strcmp(a, "--negative") && v) {
            if ((k = bp_neg_parse(NEXT())) < 0) {
                fprintf(stderr, "bitplan sensitivity: --negative is abs, clamp or keep, not '%s'\n", v);
                return BP_EXIT_USAGE;
            }
            o.neg = (bp_neg_policy)k;
        } else if (!strcmp(a, "--eig")) {
            o.eig = 1;
        } else if (!strcmp(a, "--eig-tol")) {
            if (num_arg(a, NEXT(), &o.eig_opts.tol))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--eig-iters")) {
            if (int_arg(a, NEXT(), &o.eig_opts.max_iter))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--topk")) {
            if (int_arg(a, NEXT(), &o.topk))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--density")) {
            o.density = 1;
        } else if (!strcmp(a, "--lanczos-steps")) {
            if (int_arg(a, NEXT(), &o.slq.steps))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--lanczos-runs")) {
            if (int_arg(a, NEXT(), &o.slq.runs))
                return BP_EXIT_USAGE;
        } else if ((k = bp_cli_act_option(argc, argv, &i, &act)) != 0) {
            if (k < 0)
                return BP_EXIT_USAGE;
        } else if (a[0] == '-' || model) {
            fprintf(stderr, "bitplan sensitivity: unexpected argument '%s'%s\n", a,
                    a[0] == '-' && !v ? " (missing value?)" : "");
            usage(stderr);
            return BP_EXIT_USAGE;
        } else {
            model = a;
        }
#undef NEXT
    }
    if (!model || !out) {
        fprintf(stderr, "bitplan sensitivity: %s\n", !model ? "a model is needed" : "-o FILE is needed");
        usage(stderr);
        return BP_EXIT_USAGE;
    }

    bp_graph *g = NULL;
    bp_stream *s = NULL;
    bp_sens sens = {0};
    bp_sens_report rep = {0};
    bp_layer *layers = NULL;
    int nl = 0, rc = BP_EXIT_OK, nlocal = 0;
    /* both outputs are checked writable before the work and before either is
     * written; under MPI (docs/MPI.md) rank 0 alone writes */
    bp_status st = bp_dist_rank() == 0 ? bp_out_probe(out) : BP_OK;
    if (!st && bp_dist_rank() == 0)
        st = bp_out_probe(csv);
    if (!st)
        st = bp_onnx_load(model, &g);
    if (!st)
        st = bp_graph_layers(g, &layers, &nl);
    if (!st) {
        bp_data_opts dopt = bp_data_opts_default();
        int n = 0;
        /* this rank's shard (all of it with one process); n over every rank */
        st = bp_dist_stream_open(data, &dopt, o.samples, o.batch, &s, &n);
        if (!st) {
            bp_stream_info(s, NULL, NULL, NULL, &nlocal, NULL);
            if (n < o.samples) {
                if (!bp_cli_quiet)
                    fprintf(stderr, "bitplan sensitivity: %s has %d samples; using all of them\n", data, n);
                o.samples = n;
            }
        }
    }
    st = bp_dist_agree(st); /* every rank stops when one could not start */
    if (!st && bp_dist_size() > 1) { /* the same model and data on every machine */
        long id[33] = {0};
        for (int i = 0; i < 32; i++)
            id[i] = g->sha256[i];
        id[32] = o.samples;
        st = bp_dist_agree(bp_dist_same(id, 33, "the model file's hash or the samples of --data"));
    }
    if (st) {
        rc = bp_cli_fail(st);
        goto done;
    }
    if (!bp_cli_quiet && bp_dist_size() > 1)
        fprintf(stderr, "bitplan sensitivity: %d processes share the samples in whole batches of %d "
                        "(rank 0 has %d)\n", bp_dist_size(), o.batch, nlocal);
    if (!bp_cli_quiet)
        fprintf(stderr, "bitplan sensitivity: %s, %d layers, %d samples from %s, %s probes, tol %g, %d..%d probes\n",
                model, nl, o.samples, data, bp_probe_name(o.trace.scheme), o.trace.tol,
                o.trace.min_probes, o.trace.max_probes);
    progress_ctx pc = {layers, nl, 0, -2, NULL};
    bp_sens_opts local = o;
    local.samples = nlocal; /* this rank's shard; the run sums over ranks */
    st = bp_sens_run(g, s, model, &local, &sens, &rep, bp_cli_quiet ? NULL : on_progress, &pc);
    if (!st || !bp_dist_failed_together())
        st = bp_dist_agree(st); /* a rank that failed on its own tells the others */
    if (st) {
        rc = bp_cli_fail(st);
        goto done;
    }
    /* with several processes rank 0 alone runs --act, on the whole set */
    if ((rc = bp_dist_size() > 1 && act.on ? bp_cli_mpi_act(g, data, &o, &act, &sens)
                                           : bp_cli_act_run(g, s, &o, &act, &sens)))
        goto done;
    if (bp_dist_rank() == 0) {
        st = bp_sens_write(out, &sens);
        if (!st && csv)
            st = bp_sens_write_csv(csv, &sens);
    }
    if ((st = bp_dist_agree(st))) {
        rc = bp_cli_fail(st);
        goto done;
    }

    /* Summary on stdout; warnings on stderr regardless of --quiet. */
    if (!bp_cli_quiet) {
        printf("%-24s %9s %14s %10s %6s", "layer", "params", "trace", "stderr", "probes");
        if (o.eig)
            printf(" %12s", "eigenvalue");
        printf(" %12s %12s\n", "omega@lo", "omega@hi");
        for (int i = 0; i < sens.nlayers; i++) {
            const bp_sens_layer *sl = &sens.layers[i];
            printf("%-24s %9zu %14.6g %10.3g %6d", sl->sig.name, sl->sig.params, sl->trace, sl->trace_stderr,
                   sl->probes);
            if (o.eig)
                printf(" %12.6g", sl->eigenvalue);
            printf(" %12.4g %12.4g\n", sl->cand[0].omega, sl->cand[sl->ncand - 1].omega);
        }
        if (sens.ntop) {
            printf("top eigenvalues:");
            for (int j = 0; j < sens.ntop; j++)
                printf(" %.6g", sens.top_eigenvalues[j]);
            printf("\n");
        }
        printf("%ld Hessian-vector products over %d samples in %.2f s (loss %.6g)\n", rep.products, rep.samples,
               rep.seconds, rep.loss);
    }
    for (int i = 0; i < sens.nlayers && bp_dist_rank() == 0; i++) {
        const bp_sens_layer *sl = &sens.layers[i];
        if (!sl->converged)
            fprintf(stderr, "bitplan sensitivity: warning: layer '%s': trace did not converge in %d probes "
                            "(relative change %.2e, tolerance %g); standard error %.3g\n",
                    sl->sig.name, sl->probes, rep.notes[i].tol_reached, o.trace.tol, sl->trace_stderr);
        if (rep.notes[i].zero_weights)
            fprintf(stderr, "bitplan sensitivity: note: layer '%s' has all-zero weights: ‖ΔW‖² = 0 and Ω = 0 "
                            "at every bit-width\n", sl->sig.name);
        if (sl->trace < 0)
            fprintf(stderr, "bitplan sensitivity: note: layer '%s' has a negative trace %.4g (± %.2g); Ω uses "
                            "%s\n", sl->sig.name, sl->trace, sl->trace_stderr,
                    o.neg == BP_NEG_ABS ? "|Tr|" : o.neg == BP_NEG_CLAMP ? "0" : "the negative value");
        if (o.eig && !rep.notes[i].eig_converged)
            fprintf(stderr, "bitplan sensitivity: warning: layer '%s': power iteration did not converge "
                            "(relative change %.2e, tolerance %g)\n", sl->sig.name, rep.notes[i].eig_tol_reached,
                    o.eig_opts.tol);
    }

done:
    free(rep.notes);
    free(layers);
    bp_sens_free(&sens);
    bp_stream_close(s);
    bp_graph_free(g);
    return rc;
}
