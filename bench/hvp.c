/* bench/hvp — cost of an exact Hessian-vector product against a gradient on
 * the same model and data, and (optionally) a Hutchinson trace run and a
 * full `bitplan sensitivity` run at default settings.
 *
 *   build/bench/hvp [--model M.onnx] [--samples 512] [--batch 64] [--reps 3]
 *                   [--threads T] [--probes P --json traces.json] [--full-run]
 *                   [--save-model M.onnx] [--no-fold]
 *
 * Without --model it runs every .onnx file in models/ (the reference models), else
 * the built-in ResNet-8 graph (bp_arch_build, seed 1, untrained). Both passes run over the
 * same first N samples of fashion-mnist:train in batches: a gradient is
 * forward + loss + backward per batch; an HVP is the model operator
 * (sensitivity/hvp_op.c, forward + R-forward + R-backward per batch). Figures
 * are medians over --reps. Target: an HVP costs at most 2.5 gradients.
 *
 * --probes P runs P joint Rademacher probes (no early stop) and writes the
 * per-layer traces with standard errors to --json, for bench/hvp_torch.py to
 * compare against PyTorch (bench/hvp_compare.sh runs both). */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <glob.h>
#include <unistd.h>

#include "core/data.h"
#include "core/exec.h"
#include "core/fileio.h"
#include "core/onnx.h"
#include "sensitivity/sensitivity.h"
#include "train/arch.h"

void openblas_set_num_threads(int);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static double cpu(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

static void die(bp_status st)
{
    fprintf(stderr, "bench/hvp: %s\n", bp_last_error()[0] ? bp_last_error() : bp_strerror(st));
    exit(1);
}

typedef struct {
    const char *json, *data, *save;
    int samples, batch, reps, probes, full, nofold;
} bench_opts;

/* One model (NULL: the built-in ResNet-8). */
static void run_one(const char *model, const bench_opts *bo)
{
    const char *json = bo->json, *data = bo->data, *save = bo->save;
    int samples = bo->samples, batch = bo->batch, reps = bo->reps, probes = bo->probes, full = bo->full;
    bp_status st;
    bp_graph *g;
    if (model) {
        if ((st = bp_onnx_load(model, &g)))
            die(st);
    } else if ((st = bp_arch_build("resnet8", 1, 28, 28, 10, 1, &g))) {
        die(st);
    }
    /* The model actually used, for bench/hvp_torch.py when no file was given. */
    if (save && (st = bp_onnx_save(g, save)))
        die(st);
    bp_data_opts dopt = bp_data_opts_default();
    dopt.limit = samples;
    bp_dataset ds;
    if ((st = bp_dataset_load(data, &dopt, &ds)))
        die(st);
    samples = ds.n;
    printf("bench/hvp: model %s, %zu parameters, %d samples of %s in batches of %d, %d threads, %d reps\n",
           model ? model : "built-in resnet8 (untrained)", g->nparams, samples, data, batch,
           omp_get_max_threads(), reps);

    /* Gradient: forward + loss + backward over every batch, through the
     * model operator (bp_model_op_gradient: the same graph, BN folded, as its
     * products). HVP: the model
     * operator (the path `bitplan sensitivity` uses), one direction per pass
     * and four per pass (one forward per batch shared by four R-passes, what
     * Hutchinson does by default). The three are interleaved per rep so that
     * a change in the machine's load hits them alike; wall and process CPU
     * time are both kept (CPU time is the steadier figure on a shared
     * machine with one thread). */
    bp_model_op *m;
    if ((st = bp_model_op_new_memory_flags(g, ds.x, ds.y, samples, batch,
                                           bo->nofold ? BP_MODEL_OP_NO_BN_FOLD : 0, &m)))
        die(st);
    printf("bench/hvp: %d BatchNormalization nodes folded into convs%s\n", bp_model_op_folded(m),
           bo->nofold ? " (--no-fold)" : "");
    bp_linop op = bp_model_op_linop(m);
    double *grad = malloc(op.n * sizeof *grad);
    double *v = malloc(op.n * sizeof *v), *hv = malloc(op.n * sizeof *hv);
    for (size_t i = 0; i < op.n; i++)
        v[i] = (i * 2654435761u) >> 31 & 1 ? 1 : -1;
    double *v4 = malloc(4 * op.n * sizeof *v4), *hv4 = malloc(4 * op.n * sizeof *hv4);
    for (size_t i = 0; i < 4 * op.n; i++)
        v4[i] = v[i % op.n];
    double *t[6];
    for (int k = 0; k < 6; k++)
        t[k] = malloc(reps * sizeof *t[k]);
    for (int r = 0; r < reps + 1; r++) { /* the first pass warms up */
        double w0 = now(), c0 = cpu();
        if ((st = bp_model_op_gradient(m, grad)))
            die(st);
        double w1 = now(), c1 = cpu();
        if ((st = op.apply(op.ctx, v, hv)))
            die(st);
        double w2 = now(), c2 = cpu();
        if ((st = bp_linop_apply_many(&op, 4, v4, hv4)))
            die(st);
        double w3 = now(), c3 = cpu();
        if (r) {
            t[0][r - 1] = w1 - w0, t[1][r - 1] = w2 - w1, t[2][r - 1] = (w3 - w2) / 4;
            t[3][r - 1] = c1 - c0, t[4][r - 1] = c2 - c1, t[5][r - 1] = (c3 - c2) / 4;
        }
    }
    double sg = median(t[0], reps), sh = median(t[1], reps), s4 = median(t[2], reps);
    double cg = median(t[3], reps), ch = median(t[4], reps), c4 = median(t[5], reps);
    printf("                          wall s    cpu s   (medians of %d)\n", reps);
    printf("gradient                %8.4f %8.4f\n", sg, cg);
    printf("HVP                     %8.4f %8.4f\n", sh, ch);
    printf("HVP, 4 per data pass    %8.4f %8.4f   (per HVP; Hutchinson's default grouping)\n", s4, c4);
    printf("HVP / gradient          %8.2f %8.2f   (target <= 2.5: %s)\n", sh / sg, ch / cg,
           ch / cg <= 2.5 ? "met" : "NOT met");
    printf("HVP(4/pass) / gradient  %8.2f %8.2f\n", s4 / sg, c4 / cg);
    for (int k = 0; k < 6; k++)
        free(t[k]);
    free(v4);
    free(hv4);

    if (probes > 0) {
        const bp_layer *L;
        const bp_block *B;
        int nl = bp_model_op_layers(m, &L, &B);
        bp_trace_opts to = bp_trace_opts_default();
        to.tol = 1e-300; /* fixed probe count: no early stop */
        to.min_probes = to.max_probes = probes;
        bp_trace_est *e = calloc(nl, sizeof *e);
        double t0 = now();
        if ((st = bp_hutchinson(&op, B, nl, &to, e, NULL, NULL)))
            die(st);
        double th_all = now() - t0;
        printf("hutchinson: %d joint probes in %.2f s\n", probes, th_all);
        for (int l = 0; l < nl; l++)
            printf("  %-24s trace %12.6g  se %10.4g\n", L[l].name, e[l].mean, e[l].se);
        if (json) {
            bp_out out;
            if ((st = bp_out_open(&out, json)))
                die(st);
            fprintf(out.fp, "{\"model\": \"%s\", \"samples\": %d, \"batch\": %d, \"threads\": %d, \"probes\": %d,\n"
                            " \"sec_per_grad\": %.6f, \"sec_per_hvp\": %.6f, \"cpu_per_grad\": %.6f, \"cpu_per_hvp\": %.6f,"
                            " \"cpu_per_hvp4\": %.6f, \"sec_per_hvp4\": %.6f, \"loss\": %.9g,\n \"layers\": [\n",
                    model ? model : "", samples, batch, omp_get_max_threads(), probes, sg, sh, cg, ch, c4, s4,
                    bp_model_op_loss(m));
            for (int l = 0; l < nl; l++)
            {
                /* vᵀ(Hv) per layer for the fixed ±1 pattern v of the timing
                 * run: deterministic, so the torch side must match it to
                 * float rounding (a check that both run the same model). */
                double vhv = 0;
                for (size_t j = 0; j < B[l].len; j++)
                    vhv += v[B[l].off + j] * hv[B[l].off + j];
                fprintf(out.fp, "  {\"name\": \"%s\", \"params\": %zu, \"trace\": %.9g, \"se\": %.9g, \"vhv\": %.9g}%s\n",
                        L[l].name, L[l].params, e[l].mean, e[l].se, vhv, l + 1 < nl ? "," : "");
            }
            fprintf(out.fp, " ]}\n");
            if ((st = bp_out_commit(&out)))
                die(st);
        }
        free(e);
    } else if (json) {
        bp_out out;
        if ((st = bp_out_open(&out, json)))
            die(st);
        fprintf(out.fp, "{\"samples\": %d, \"batch\": %d, \"threads\": %d, \"sec_per_grad\": %.6f, \"sec_per_hvp\": %.6f, "
                        "\"cpu_per_grad\": %.6f, \"cpu_per_hvp\": %.6f, \"cpu_per_hvp4\": %.6f, \"sec_per_hvp4\": %.6f}\n",
                samples, batch, omp_get_max_threads(), sg, sh, cg, ch, c4, s4);
        if ((st = bp_out_commit(&out)))
            die(st);
    }
    bp_model_op_free(m);

    if (full) {
        /* A full sensitivity run at default settings, as `bitplan
         * sensitivity MODEL -o x.json` does it (streamed data). */
        bp_stream *s;
        bp_data_opts so = bp_data_opts_default();
        bp_sens_opts o = bp_sens_opts_default();
        so.limit = o.samples;
        if ((st = bp_stream_open("fashion-mnist:train", &so, &s)))
            die(st);
        bp_sens sens;
        bp_sens_report rep;
        if ((st = bp_sens_run(g, s, model, &o, &sens, &rep, NULL, NULL)))
            die(st);
        int conv = 0;
        for (int l = 0; l < sens.nlayers; l++)
            conv += sens.layers[l].converged;
        printf("full sensitivity run (defaults: %d samples, joint, tol %g, %d..%d probes): %.1f s, %ld HVPs, "
               "%d of %d layers converged\n", o.samples, o.trace.tol, o.trace.min_probes, o.trace.max_probes,
               rep.seconds, rep.products, conv, sens.nlayers);
        free(rep.notes);
        bp_sens_free(&sens);
        bp_stream_close(s);
    }
    free(v);
    free(hv);
    free(grad);
    bp_dataset_free(&ds);
    bp_graph_free(g);
}

int main(int argc, char **argv)
{
    const char *model = NULL, *json = NULL, *data = "fashion-mnist:train", *save = NULL;
    int samples = 512, batch = 64, reps = 3, threads = 0, probes = 0, full = 0, nofold = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--model") && v) model = argv[++i];
        else if (!strcmp(a, "--samples") && v) samples = atoi(argv[++i]);
        else if (!strcmp(a, "--batch") && v) batch = atoi(argv[++i]);
        else if (!strcmp(a, "--reps") && v) reps = atoi(argv[++i]);
        else if (!strcmp(a, "--threads") && v) threads = atoi(argv[++i]);
        else if (!strcmp(a, "--probes") && v) probes = atoi(argv[++i]);
        else if (!strcmp(a, "--json") && v) json = argv[++i];
        else if (!strcmp(a, "--data") && v) data = argv[++i];
        else if (!strcmp(a, "--full-run")) full = 1;
        else if (!strcmp(a, "--no-fold")) nofold = 1;
        else if (!strcmp(a, "--save-model") && v) save = argv[++i];
        else {
            fprintf(stderr, "usage: %s [--model M.onnx] [--samples N] [--batch B] [--reps R] [--threads T] "
                            "[--probes P --json FILE] [--full-run] [--no-fold] [--data SPEC] [--save-model M.onnx]\n", argv[0]);
            return 2;
        }
    }
    if (threads > 0) {
        omp_set_num_threads(threads);
        openblas_set_num_threads(threads);
    }
    if (reps < 1)
        reps = 1;
    bench_opts bo = {json, data, save, samples, batch, reps, probes, full, nofold};
    if (model) {
        run_one(model, &bo);
        return 0;
    }
    /* Every reference model in models/, else the built-in ResNet-8. */
    glob_t gl;
    if (glob("models/*.onnx", 0, NULL, &gl) == 0 && gl.gl_pathc > 0) {
        for (size_t k = 0; k < gl.gl_pathc; k++) {
            run_one(gl.gl_pathv[k], &bo);
            printf("\n");
        }
        globfree(&gl);
    } else {
        run_one(NULL, &bo);
    }
    return 0;
}
