/* The --act options of `bitplan sensitivity` (act_cli.h): activation Hessian
 * traces and Ω_a per candidate activation bit-width. */
#include "cli/act_cli.h"

#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli/cli.h"

void bp_cli_act_init(bp_cli_act *a)
{
    memset(a, 0, sizeof *a);
    a->o = bp_act_opts_default();
}

void bp_cli_act_usage(FILE *fp)
{
    fprintf(fp,
            "  --act               activation terms too: Tr(H_a) of every layer's input and\n"
            "                      Ω_a(b) = Tr(H_a)/n_a · ‖Q_b(a) − a‖² (off by default: one\n"
            "                      R-pass per layer per probe; see docs/SENSITIVITY.md)\n"
            "  --act-bits LIST     candidate activation bits (default 2,3,4,5,6,8; 2..16)\n"
            "  --act-calib N       activation ranges from the first N samples (default 256,\n"
            "                      as bitplan eval --calib)\n"
            "  --act-calib-method minmax|percentile|mse  (default mse, as bitplan eval)\n"
            "  --act-percentile P  for percentile ranges (default 99.99)\n"
            "  --act-samples N     samples of the activation traces (default: --samples)\n"
            "  --act-min-probes K  --act-max-probes K  (default: --min-probes, --max-probes)\n");
}

static int bad(const char *opt, const char *v, const char *want)
{
    fprintf(stderr, "bitplan sensitivity: %s %s, not '%s'\n", opt, want, v ? v : "(nothing)");
    return -1;
}

static int int_val(const char *v, int lo, int *out)
{
    char *end;
    errno = 0;
    long x = v ? strtol(v, &end, 10) : 0;
    if (!v || end == v || *end || errno || x < lo || x > 1000000000)
        return -1;
    *out = (int)x;
    return 0;
}

static int bits_val(const char *s, bp_act_opts *o)
{
    int n = 0, b[BP_SENS_MAX_CAND];
    const char *p = s;
    while (p && *p) {
        char *end;
        errno = 0;
        long x = strtol(p, &end, 10);
        if (end == p || errno || n >= BP_SENS_MAX_CAND || x < BP_ACT_MIN_BITS || x > BP_ACT_MAX_BITS)
            return -1;
        b[n++] = (int)x;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    if (!n)
        return -1;
    for (int i = 1; i < n; i++) /* sorted; repeats are refused by the library */
        for (int j = i; j > 0 && b[j] < b[j - 1]; j--) {
            int t = b[j];
            b[j] = b[j - 1];
            b[j - 1] = t;
        }
    o->nbits = n;
    memcpy(o->bits, b, sizeof(int) * n);
    return 0;
}

int bp_cli_act_option(int argc, char **argv, int *i, bp_cli_act *a)
{
    const char *opt = argv[*i], *v = *i + 1 < argc ? argv[*i + 1] : NULL;
    if (strncmp(opt, "--act", 5))
        return 0;
    if (!strcmp(opt, "--act")) {
        a->on = 1;
        return 1;
    }
    int k;
    if (!strcmp(opt, "--act-bits")) {
        if (bits_val(v, &a->o))
            return bad(opt, v, "takes a list of bits 2..16 like 4,6,8");
    } else if (!strcmp(opt, "--act-calib")) {
        if (int_val(v, 1, &a->o.calib_samples))
            return bad(opt, v, "needs a positive integer");
    } else if (!strcmp(opt, "--act-calib-method")) {
        if (!v || (k = bp_calib_parse(v)) < 0)
            return bad(opt, v, "is minmax, percentile or mse");
        a->o.calib = (bp_calib_method)k;
    } else if (!strcmp(opt, "--act-percentile")) {
        char *end;
        double p = v ? strtod(v, &end) : 0;
        if (!v || end == v || *end || !(p > 0 && p <= 100))
            return bad(opt, v, "needs a number in (0, 100]");
        a->o.percentile = p;
    } else if (!strcmp(opt, "--act-samples")) {
        if (int_val(v, 1, &a->o.samples))
            return bad(opt, v, "needs a positive integer");
        a->set_samples = 1;
    } else if (!strcmp(opt, "--act-min-probes")) {
        if (int_val(v, 1, &a->o.trace.min_probes))
            return bad(opt, v, "needs a positive integer");
        a->set_min = 1;
    } else if (!strcmp(opt, "--act-max-probes")) {
        if (int_val(v, 2, &a->o.trace.max_probes))
            return bad(opt, v, "needs an integer >= 2");
        a->set_max = 1;
    } else {
        return 0;
    }
    (*i)++;
    return 1;
}

typedef struct {
    const bp_layer *layers;
    int nlayers;
    double last;
} act_progress;

static void on_progress(void *ctx, const bp_progress *p)
{
    act_progress *c = ctx;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double t = ts.tv_sec + 1e-9 * ts.tv_nsec;
    if (t - c->last < 0.5 && p->block != c->nlayers - 1)
        return;
    c->last = t;
    fprintf(stderr, "  act     %-24s probes %4d  estimate %-12.6g  change %.2e\n",
            p->block >= 0 && p->block < c->nlayers ? c->layers[p->block].name : "?", p->step,
            p->estimate, p->change);
}

int bp_cli_act_run(const bp_graph *g, bp_stream *s, const bp_sens_opts *so, bp_cli_act *a,
                   bp_sens *sens)
{
    if (!a->on)
        return BP_EXIT_OK;
    bp_act_opts o = a->o;
    if (!a->set_samples || o.samples > so->samples)
        o.samples = so->samples; /* the stream holds --samples samples */
    o.batch = so->batch;
    o.neg = so->neg;
    o.trace.seed = so->trace.seed;
    o.trace.tol = so->trace.tol;
    if (!a->set_min)
        o.trace.min_probes = so->trace.min_probes;
    if (!a->set_max)
        o.trace.max_probes = so->trace.max_probes;
    bp_layer *layers = NULL;
    int nl = 0;
    bp_status st = bp_graph_layers(g, &layers, &nl);
    if (st)
        return bp_cli_fail(st);
    if (!bp_cli_quiet)
        fprintf(stderr, "bitplan sensitivity: activation traces of %d layer inputs, %d samples, "
                        "ranges (%s) from %d, %d..%d probes\n",
                nl, o.samples, bp_calib_name(o.calib),
                o.calib_samples < so->samples ? o.calib_samples : so->samples, o.trace.min_probes,
                o.trace.max_probes);
    act_progress pc = {layers, nl, 0};
    bp_act_report rep;
    st = bp_act_sens_run(g, s, &o, sens, &rep, bp_cli_quiet ? NULL : on_progress, &pc);
    if (st) {
        free(layers);
        return bp_cli_fail(st);
    }
    if (!bp_cli_quiet) {
        printf("%-24s %9s %8s %14s %10s %6s %12s %12s\n", "layer input", "n_a", "sign", "act trace",
               "stderr", "probes", "omega_a@lo", "omega_a@hi");
        for (int i = 0; i < sens->nlayers; i++) {
            const bp_sens_layer *sl = &sens->layers[i];
            printf("%-24s %9lld %8s %14.6g %10.3g %6d %12.4g %12.4g\n", sl->sig.name,
                   (long long)sl->act_numel, sl->act_signed ? "signed" : "unsigned", sl->act_trace,
                   sl->act_stderr, sl->act_probes, sl->act[0].omega, sl->act[sl->nact - 1].omega);
        }
        printf("%ld activation R-passes (per batch) over %d samples, ranges from %d, in %.2f s\n",
               rep.rpasses, rep.samples, rep.calib_samples, rep.seconds);
    }
    for (int i = 0; i < sens->nlayers; i++) {
        const bp_sens_layer *sl = &sens->layers[i];
        if (!sl->act_converged)
            fprintf(stderr, "bitplan sensitivity: warning: layer '%s': activation trace did not "
                            "converge in %d probes (relative change %.2e, tolerance %g); standard "
                            "error %.3g\n",
                    sl->sig.name, sl->act_probes, rep.tol_reached[i], o.trace.tol, sl->act_stderr);
        if (sl->act_trace < 0)
            fprintf(stderr, "bitplan sensitivity: note: layer '%s' has a negative activation trace "
                            "%.4g (± %.2g); Ω_a uses %s\n",
                    sl->sig.name, sl->act_trace, sl->act_stderr,
                    o.neg == BP_NEG_ABS ? "|Tr|" : o.neg == BP_NEG_CLAMP ? "0" : "the negative value");
    }
    free(rep.tol_reached);
    free(layers);
    return BP_EXIT_OK;
}
