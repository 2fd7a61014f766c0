/* `bitplan eval MODEL.onnx [--data SPEC] [--limit N] [--batch B] [--json]`:
 * float accuracy. With --plan the quantized evaluation (cmd_eval_plan, in the
 * quant part of the CLI) takes over. */
#include "cli/cli.h"

#include <errno.h>
#include <cblas.h>
#include <jansson.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/data.h"
#include "core/fileio.h"
#include "core/onnx.h"
#include "train/train.h"

/* Built without the quant part, `eval --plan` says so instead of failing to link. */
#pragma weak cmd_eval_plan

static void usage(FILE *fp)
{
    fprintf(fp, "usage: bitplan eval MODEL.onnx [--data SPEC] [--limit N] [--offset N] [--batch B] [--threads T] [--json]\n"
                "       bitplan eval MODEL.onnx --plan PLAN.json ...   (quantized; see --plan --help)\n"
                "  Float accuracy and mean cross-entropy of the model (BN in inference mode).\n"
                "  --data SPEC   fashion-mnist:test (default), fashion-mnist:train,\n"
                "                idx:IMAGES,LABELS or npy:X.npy,Y.npy\n"
                "  --limit N     the first N samples only;  --offset N  skip N first\n"
                "  --batch B     samples per forward pass (default 250)\n"
                "  --threads T   OpenMP and OpenBLAS threads (default: all cores)\n"
                "  --json        one JSON object on stdout\n");
}

static int count(const char *opt, const char *s, int lo, int *out)
{
    char *e;
    errno = 0;
    long v = s ? strtol(s, &e, 10) : 0;
    if (!s || errno || *e || v < lo || v > 1 << 30) {
        fprintf(stderr, "bitplan eval: %s needs an integer >= %d, got '%s'\n", opt, lo, s ? s : "");
        return -1;
    }
    *out = (int)v;
    return 0;
}

int cmd_eval(int argc, char **argv)
{
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "--plan")) {
            if (!cmd_eval_plan) {
                fprintf(stderr, "bitplan eval: --plan is not built into this binary\n");
                return BP_EXIT_FAIL;
            }
            return cmd_eval_plan(argc, argv);
        }
    const char *path = NULL, *spec = "fashion-mnist:test";
    int as_json = 0, batch = 250;
    bp_data_opts dopt = bp_data_opts_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return BP_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            continue;
        } else if (!strcmp(a, "--data") && next) {
            spec = argv[++i];
        } else if (!strcmp(a, "--limit") && next) {
            if (count(a, argv[++i], 1, &dopt.limit))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--offset") && next) {
            if (count(a, argv[++i], 0, &dopt.offset))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--threads") && next) {
            int t;
            if (count(a, argv[++i], 1, &t))
                return BP_EXIT_USAGE;
            omp_set_num_threads(t);
            openblas_set_num_threads(t);
        } else if (!strcmp(a, "--batch") && next) {
            if (count(a, argv[++i], 1, &batch))
                return BP_EXIT_USAGE;
        } else if (a[0] == '-' || path) {
            fprintf(stderr, "bitplan eval: unexpected argument '%s'\n", a);
            usage(stderr);
            return BP_EXIT_USAGE;
        } else {
            path = a;
        }
    }
    if (!path) {
        usage(stderr);
        return BP_EXIT_USAGE;
    }
    bp_graph *g = NULL;
    bp_stream *s = NULL;
    bp_status st = bp_onnx_load(path, &g);
    if (!st)
        st = bp_stream_open(spec, &dopt, &s);
    double acc = 0, loss = 0;
    int n = 0;
    if (!st)
        st = bp_evaluate_stream(g, s, batch, &acc, &loss, &n);
    if (st) {
        bp_stream_close(s);
        bp_graph_free(g);
        return bp_cli_fail(st);
    }
    char hex[65];
    bp_sha256_hex(g->sha256, hex);
    if (as_json) {
        json_t *o = json_pack("{s:s, s:s, s:s, s:i, s:i, s:f, s:f}", "model", path, "sha256", hex, "data",
                              spec, "samples", n, "correct", (int)(acc * n + 0.5), "accuracy", acc,
                              "loss", loss);
        char *txt = o ? json_dumps(o, JSON_INDENT(2) | JSON_REAL_PRECISION(6)) : NULL;
        if (txt)
            printf("%s\n", txt);
        free(txt);
        json_decref(o);
    } else {
        printf("%s: float accuracy %.4f (%d/%d) mean cross-entropy %.4f on %s\n", path, acc,
               (int)(acc * n + 0.5), n, loss, spec);
    }
    bp_stream_close(s);
    bp_graph_free(g);
    return BP_EXIT_OK;
}
