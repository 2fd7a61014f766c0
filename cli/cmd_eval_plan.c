/* `bitplan eval MODEL.onnx --plan PLAN.json ...`: quantized evaluation of a
 * plan (float, fake-quant and integer-only accuracy, size, BOPs, per-layer
 * bits, accumulator analysis) as a table or JSON. cmd_eval hands over here
 * when --plan is given; argv[0] is "eval". */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "core/onnx.h"
#include "ilp/plan.h"
#include "quant/evalplan.h"
#include "quant/plan_bits.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: bitplan eval MODEL.onnx --plan PLAN.json [--data SPEC] [--limit N]\n"
            "         [--calib N] [--calib-data SPEC] [--calib-method minmax|percentile|mse]\n"
            "         [--wclip maxabs|mse] [--pow2] [--acc-bits B] [--batch B] [--json] [-o FILE]\n"
            "  Quantizes MODEL per PLAN (BN folded, weights per output channel, activations per\n"
            "  tensor) and reports float, fake-quant and integer-only accuracy, size, BOPs,\n"
            "  per-layer bits and accumulator widths.\n"
            "  --plan PLAN       a plan file (bitplan ilp), or uniform:W[,A] for every layer at\n"
            "                    W-bit weights and A-bit activations (A defaults to W)\n"
            "  --data SPEC       evaluation data (default fashion-mnist:test)\n"
            "  --limit N         evaluate the first N samples only\n"
            "  --calib N         calibration samples (default 256) from --calib-data\n"
            "                    (default fashion-mnist:train)\n"
            "  --calib-method M  activation ranges: mse (default), minmax, percentile (99.99%%)\n"
            "  --wclip M         weight clipping: maxabs (default) or mse\n"
            "  --pow2            also evaluate with power-of-two scales (shift-only requantization)\n"
            "  --acc-bits B      flag layers whose accumulator can exceed B bits (default 32)\n"
            "  --json            print the report as JSON;  -o FILE  also write it to FILE\n");
}

static int intarg(const char *opt, const char *v, int lo, int hi, int *out)
{
    char *end;
    long x = strtol(v, &end, 10);
    if (*end || x < lo || x > hi) {
        fprintf(stderr, "bitplan eval: %s wants an integer in %d..%d, got '%s'\n", opt, lo, hi, v);
        return 1;
    }
    *out = (int)x;
    return 0;
}

static void print_table(const char *model, const char *plan, const bp_evalq_report *r)
{
    printf("model %s  plan %s  (%d samples, calibration %s on %d, %s kernels)\n\n", model, plan, r->n,
           r->calib_method, r->calib_n, r->kernels);
    printf("%-28s %-6s %3s %3s %9s %11s %13s %10s %5s %5s %s\n", "layer", "op", "W", "A", "params", "MACs",
           "BOPs", "bytes", "acc", "need", "");
    for (int l = 0; l < r->nlayers; l++) {
        const bp_evalq_layer *E = &r->layers[l];
        printf("%-28s %-6s %3d %3d %9zu %11lld %13.0f %10.0f %5d %5d %s\n", E->name, E->op, E->wbits,
               E->abits, E->params, (long long)E->macs, E->bops, E->size_bytes, E->acc_worst, E->acc_need,
               E->overflow ? "OVERFLOW" : "");
    }
    printf("\n");
    printf("accuracy  float %.4f   fake-quant %.4f (ideal rounding %.4f)   integer-only %.4f\n",
           r->acc_float, r->acc_fq, r->acc_fq_ideal, r->acc_int);
    if (isfinite(r->acc_pow2_int))
        printf("pow2      fake-quant %.4f   integer-only %.4f\n", r->acc_pow2_fq, r->acc_pow2_int);
    printf("logits    %.4f%% of integer logits within one step of the simulation\n", 100 * r->agree);
    printf("size      %.0f bytes (float %.0f, %.2fx smaller)   BOPs %.4g per sample",
           r->size_bytes, r->size_float_bytes, r->size_float_bytes / r->size_bytes, r->bops);
    if (isfinite(r->latency_ms))
        printf("   latency %.4g ms (profile)", r->latency_ms);
    printf("\naccum     %d layer(s) can overflow a %d-bit accumulator (need = per-channel bound)\n",
           r->noverflow, r->acc_bits);
}

int cmd_eval_plan(int argc, char **argv)
{
    const char *model = NULL, *planp = NULL, *outp = NULL;
    int as_json = 0;
    bp_evalq_opts o = bp_evalq_opts_default();
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *next = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return BP_EXIT_OK;
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
        } else if (!strcmp(a, "--pow2")) {
            o.pow2 = 1;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            continue;
        } else if (!strcmp(a, "--plan") && next) {
            planp = argv[++i];
        } else if (!strcmp(a, "-o") && next) {
            outp = argv[++i];
        } else if (!strcmp(a, "--data") && next) {
            o.data = argv[++i];
        } else if (!strcmp(a, "--calib-data") && next) {
            o.calib_data = argv[++i];
        } else if (!strcmp(a, "--limit") && next) {
            if (intarg(a, argv[++i], 1, 1 << 30, &o.limit))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--calib") && next) {
            if (intarg(a, argv[++i], 1, 1 << 20, &o.calib))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--batch") && next) {
            if (intarg(a, argv[++i], 1, 4096, &o.batch))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--acc-bits") && next) {
            if (intarg(a, argv[++i], 2, 64, &o.acc_bits))
                return BP_EXIT_USAGE;
        } else if (!strcmp(a, "--calib-method") && next) {
            int m = bp_calib_parse(argv[++i]);
            if (m < 0) {
                fprintf(stderr, "bitplan eval: --calib-method is minmax, percentile or mse, not '%s'\n", argv[i]);
                return BP_EXIT_USAGE;
            }
            o.q.calib = (bp_calib_method)m;
        } else if (!strcmp(a, "--wclip") && next) {
            int m = bp_clip_parse(argv[++i]);
            if (m < 0) {
                fprintf(stderr, "bitplan eval: --wclip is maxabs or mse, not '%s'\n", argv[i]);
                return BP_EXIT_USAGE;
            }
            o.q.wclip = (bp_clip_mode)m;
        } else if (a[0] == '-' || model) {
            fprintf(stderr, "bitplan eval: unexpected argument '%s'\n", a);
            usage(stderr);
            return BP_EXIT_USAGE;
        } else {
            model = a;
        }
    }
    if (!model || !planp) {
        usage(stderr);
        return BP_EXIT_USAGE;
    }
    bp_graph *g = NULL;
    bp_layer *L = NULL;
    int nl = 0, *wb = NULL, *ab = NULL;
    double *lat = NULL;
    bp_plan plan;
    memset(&plan, 0, sizeof plan);
    bp_evalq_report r;
    memset(&r, 0, sizeof r);
    int rc = BP_EXIT_OK;
    bp_status st = bp_onnx_load(model, &g);
    if (!st)
        st = bp_graph_layers(g, &L, &nl);
    if (st)
        goto fail;
    wb = malloc(sizeof(int) * (nl ? nl : 1));
    ab = malloc(sizeof(int) * (nl ? nl : 1));
    if (!wb || !ab) {
        st = bp_error(BP_ERR_NOMEM, "out of memory");
        goto fail;
    }
    if (!strncmp(planp, "uniform:", 8)) {
        int w = 0, a = 0;
        int k = sscanf(planp + 8, "%d,%d", &w, &a);
        if (k < 1 || w < 2 || w > 8 || (k == 2 && (a < 2 || a > 8))) {
            fprintf(stderr, "bitplan eval: --plan uniform:W[,A] wants bits in 2..8, got '%s'\n", planp);
            rc = BP_EXIT_USAGE;
            goto out;
        }
        for (int l = 0; l < nl; l++) {
            wb[l] = w;
            ab[l] = k == 2 ? a : w;
        }
    } else {
        if ((st = bp_plan_read(planp, &plan)) || (st = bp_plan_to_bits(&plan, planp, g, wb, ab)))
            goto fail;
        lat = malloc(sizeof(double) * (nl ? nl : 1));
        if (!lat) {
            st = bp_error(BP_ERR_NOMEM, "out of memory");
            goto fail;
        }
        for (int l = 0; l < nl; l++)
            lat[l] = plan.layers[bp_plan_find(&plan, L[l].name)].latency_ms;
    }
    if (!bp_cli_quiet)
        fprintf(stderr, "bitplan eval: calibrating on %d samples, evaluating %s...\n", o.calib, o.data);
    if ((st = bp_evalq_run(g, wb, ab, lat, &o, &r)))
        goto fail;
    json_t *j = NULL;
    if (as_json || outp) {
        j = bp_evalq_json(&r);
        char hex[65];
        bp_sha256_hex(g->sha256, hex);
        json_object_set_new(j, "model", json_string(model));
        json_object_set_new(j, "model_sha256", json_string(hex));
        json_object_set_new(j, "plan", json_string(planp));
        json_object_set_new(j, "data", json_string(o.data));
    }
    if (as_json) {
        char *txt = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
        if (txt)
            printf("%s\n", txt);
        free(txt);
    } else {
        print_table(model, planp, &r);
    }
    if (outp) {
        char *txt = json_dumps(j, JSON_INDENT(2) | JSON_REAL_PRECISION(8));
        st = txt ? bp_write_file_atomic(outp, txt, strlen(txt)) : bp_error(BP_ERR_NOMEM, "out of memory");
        free(txt);
        if (st) {
            json_decref(j);
            goto fail;
        }
    }
    json_decref(j);
    goto out;
fail:
    rc = bp_cli_fail(st);
out:
    bp_evalq_free(&r);
    bp_plan_free(&plan);
    free(wb), free(ab), free(lat), free(L);
    bp_graph_free(g);
    return rc;
}
