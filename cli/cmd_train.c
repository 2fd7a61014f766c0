/* `bitplan train --arch ARCH ...`: trains a built-in architecture on
 * Fashion-MNIST (or other IDX/.npy data) and writes it as ONNX. */
#include "cli/cli.h"

#include <cblas.h>
#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/data.h"
#include "core/onnx.h"
#include "train/arch.h"
#include "train/train.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: bitplan train --arch ARCH [options] [-o MODEL.onnx]\n"
            "  Trains ARCH with SGD (momentum, weight decay, warm-up + cosine learning rate,\n"
            "  BN in training mode), prints per-epoch progress on stderr (loss, train and\n"
            "  test accuracy, seconds) and the final test accuracy on stdout, and writes\n"
            "  the model as ONNX (after every epoch, so an interrupted run keeps the last one).\n"
            "  --arch ARCH        ");
    for (int i = 0; bp_arch_name(i); i++)
        fprintf(fp, "%s%s", i ? ", " : "", bp_arch_name(i));
    fprintf(fp, "\n"
            "  -o, --output FILE  where to write the model (default ARCH.onnx)\n"
            "  --epochs E         default 8\n"
            "  --batch B          default 128\n"
            "  --lr L             peak learning rate, default 0.1\n"
            "  --momentum M       default 0.9\n"
            "  --wd W             weight decay on conv/fc weights, default 5e-4\n"
            "  --warmup E         warm-up epochs (linear), default 0.5\n"
            "  --augment          random crop (2-px padding) and horizontal flip\n"
            "  --seed S           initialization, shuffling and augmentation, default 1\n"
            "  --threads T        OpenMP and OpenBLAS threads (default: all cores)\n"
            "  --limit N          train on the first N samples only\n"
            "  --test-limit N     evaluate on the first N test samples only\n"
            "  --data SPEC        training data, default fashion-mnist:train\n"
            "  --test SPEC        test data, default fashion-mnist:test\n"
            "  --quiet            no progress lines\n");
}

/* Writes the model after every epoch, so an interrupted run still leaves the
 * last finished epoch's model (each write is atomic). */
typedef struct {
    bp_graph *g;
    const char *path;
    bp_status st;
} checkpoint;

static int progress(void *ctx, const bp_epoch_report *r)
{
    checkpoint *cp = ctx;
    if ((cp->st = bp_onnx_save(cp->g, cp->path)))
        return 1;
    if (!bp_cli_quiet) {
        fprintf(stderr, "epoch %2d/%d  loss %.4f  train acc %.4f", r->epoch, r->epochs, r->loss,
                r->train_acc);
        if (r->test_acc >= 0)
            fprintf(stderr, "  test acc %.4f (loss %.4f)", r->test_acc, r->test_loss);
        fprintf(stderr, "  lr %.4f  %.1f s (cpu %.1f s)\n", r->lr, r->seconds, r->cpu_seconds);
    }
    return 0;
}

/* Parses a number option; 0 on success. */
static int num(const char *opt, const char *s, double lo, double *out)
{
    char *e;
    errno = 0;
    double v = s ? strtod(s, &e) : 0;
    if (!s || errno || *e || !(v >= lo)) {
        fprintf(stderr, "bitplan train: %s needs a number >= %g, got '%s'\n", opt, lo, s ? s : "");
        return -1;
    }
    *out = v;
    return 0;
}

int cmd_train(int argc, char **argv)
{
    const char *arch = NULL, *outp = NULL, *data = "fashion-mnist:train", *test = "fashion-mnist:test";
    bp_train_opts o = bp_train_opts_default();
    double v, threads = 0, limit = 0, tlimit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        int r = 0;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return BP_EXIT_OK;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            continue;
        } else if (!strcmp(a, "--augment")) {
            o.augment = 1;
            continue;
        } else if (!next) {
            fprintf(stderr, "bitplan train: '%s' needs a value or is unknown\n", a);
            usage(stderr);
            return BP_EXIT_USAGE;
        }
        i++;
        if (!strcmp(a, "--arch"))
            arch = next;
        else if (!strcmp(a, "-o") || !strcmp(a, "--output"))
            outp = next;
        else if (!strcmp(a, "--data"))
            data = next;
        else if (!strcmp(a, "--test"))
            test = next;
        else if (!strcmp(a, "--epochs"))
            r = num(a, next, 1, &v), o.epochs = (int)v;
        else if (!strcmp(a, "--batch"))
            r = num(a, next, 1, &v), o.batch = (int)v;
        else if (!strcmp(a, "--lr"))
            r = num(a, next, 1e-12, &o.lr);
        else if (!strcmp(a, "--momentum"))
            r = num(a, next, 0, &o.momentum);
        else if (!strcmp(a, "--wd"))
            r = num(a, next, 0, &o.weight_decay);
        else if (!strcmp(a, "--warmup"))
            r = num(a, next, 0, &o.warmup);
        else if (!strcmp(a, "--seed"))
            r = num(a, next, 0, &v), o.seed = (unsigned long)v;
        else if (!strcmp(a, "--threads"))
            r = num(a, next, 1, &threads);
        else if (!strcmp(a, "--limit"))
            r = num(a, next, 1, &limit);
        else if (!strcmp(a, "--test-limit"))
            r = num(a, next, 1, &tlimit);
        else {
            fprintf(stderr, "bitplan train: unknown option '%s'\n", a);
            usage(stderr);
            return BP_EXIT_USAGE;
        }
        if (r)
            return BP_EXIT_USAGE;
    }
    if (!arch) {
        fprintf(stderr, "bitplan train: --arch is required\n");
        usage(stderr);
        return BP_EXIT_USAGE;
    }
    int known = 0;
    for (int i = 0; bp_arch_name(i); i++)
        known |= !strcmp(arch, bp_arch_name(i));
    if (!known) { /* before loading 60,000 samples for nothing */
        fprintf(stderr, "bitplan train: unknown architecture '%s'\n", arch);
        usage(stderr);
        return BP_EXIT_USAGE;
    }
    char defout[256];
    if (!outp) {
        snprintf(defout, sizeof defout, "%s.onnx", arch);
        outp = defout;
    }
    if (threads > 0) {
        omp_set_num_threads((int)threads);
        openblas_set_num_threads((int)threads);
    }

    bp_dataset tr, te;
    bp_data_opts dopt = bp_data_opts_default();
    dopt.limit = (int)limit;
    bp_status st = bp_dataset_load(data, &dopt, &tr);
    if (st)
        return bp_cli_fail(st);
    dopt.limit = (int)tlimit;
    if ((st = bp_dataset_load(test, &dopt, &te))) {
        bp_dataset_free(&tr);
        return bp_cli_fail(st);
    }
    int classes = tr.nclasses > 10 ? tr.nclasses : 10;
    bp_graph *g = NULL;
    if ((st = bp_arch_build(arch, tr.c, tr.h, tr.w, classes, o.seed, &g)))
        goto fail;
    if (!bp_cli_quiet)
        fprintf(stderr, "training %s (%zu parameters) on %d samples of %s, %d epochs, batch %d, "
                "lr %g, seed %lu, %d threads\n", arch, g->nparams, tr.n, data, o.epochs, o.batch, o.lr,
                o.seed, omp_get_max_threads());
    checkpoint cp = {g, outp, BP_OK};
    o.progress = progress;
    o.ctx = &cp;
    bp_epoch_report last;
    double t0 = omp_get_wtime();
    if ((st = bp_train(g, &tr, &te, &o, &last)))
        goto fail;
    double secs = omp_get_wtime() - t0;
    if ((st = cp.st))
        goto fail;
    printf("%s: test accuracy %.4f (%d samples of %s) after %d epochs, %.1f s; wrote %s\n", arch,
           last.test_acc, te.n, test, last.epoch, secs, outp);
    bp_graph_free(g);
    bp_dataset_free(&tr);
    bp_dataset_free(&te);
    return BP_EXIT_OK;
fail:
    bp_graph_free(g);
    bp_dataset_free(&tr);
    bp_dataset_free(&te);
    return bp_cli_fail(st);
}
