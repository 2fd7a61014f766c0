/* `bitplan export MODEL.onnx --plan PLAN.json --c-header OUT.h [...]`:
 * deployment configs — the quantized integer model as a C header plus a
 * standalone libc-only inference file (quant/export_c.h), and the plan's
 * HAWQ-style bit_config view. */
#include "cli/cli.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/data.h"
#include "core/fileio.h"
#include "core/onnx.h"
#include "quant/export_c.h"
#include "quant/plan_bits.h"

static void usage(FILE *fp)
{
    fprintf(fp,
            "usage: bitplan export MODEL.onnx --plan PLAN.json [--c-header OUT.h] [--c-source OUT_infer.c]\n"
            "                      [--bit-config OUT.json] [--calib N] [--calib-data SPEC] [--pow2]\n"
            "  --c-header OUT.h      the quantized integer model: tensor and op tables, packed weights,\n"
            "                        int32 biases, per-channel multipliers and shifts\n"
            "  --c-source FILE.c     standalone integer-only inference (libc only) including OUT.h;\n"
            "                        its logits equal bitplan's integer engine bit for bit.\n"
            "                        Build: cc -O2 -o infer FILE.c;  run: ./infer INPUT.f32 (or -q INPUT.u8)\n"
            "  --bit-config OUT.json HAWQ-style {\"bit_config\": {layer: wbits}, \"act_bit_config\": ...}\n"
            "  --calib N             calibration samples for activation ranges (default 256, the same\n"
            "                        samples `bitplan plan` and `bitplan eval --plan` use)\n"
            "  --calib-data SPEC     (default fashion-mnist:train)\n"
            "  --pow2                power-of-two scales (requantization by shifts only)\n"
            "exit: 0 ok, 1 failure, 2 usage\n");
}

static bp_status write_bit_config(const char *path, const bp_plan *p)
{
    json_t *root = json_object(), *w = json_object(), *a = json_object();
    for (int i = 0; i < p->nlayers; i++) {
        json_object_set_new(w, p->layers[i].name, json_integer(p->layers[i].wbits));
        json_object_set_new(a, p->layers[i].name, json_integer(p->layers[i].abits));
    }
    json_object_set_new(root, "bit_config", w);
    json_object_set_new(root, "act_bit_config", a);
    char *text = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (!text)
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    bp_status st = bp_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

int cmd_export(int argc, char **argv)
{
    const char *model = NULL, *plan_path = NULL, *hdr = NULL, *src = NULL, *bitcfg = NULL;
    const char *calib_data = "fashion-mnist:train";
    int calib = 256, pow2 = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return BP_EXIT_OK;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            bp_cli_quiet = 1;
        } else if (!strcmp(a, "--pow2")) {
            pow2 = 1;
        } else if (!strcmp(a, "--plan") && v) {
            plan_path = argv[++i];
        } else if (!strcmp(a, "--c-header") && v) {
            hdr = argv[++i];
        } else if (!strcmp(a, "--c-source") && v) {
            src = argv[++i];
        } else if (!strcmp(a, "--bit-config") && v) {
            bitcfg = argv[++i];
        } else if (!strcmp(a, "--calib-data") && v) {
            calib_data = argv[++i];
        } else if (!strcmp(a, "--calib") && v) {
            char *e;
            errno = 0;
            long n = strtol(argv[++i], &e, 10);
            if (errno || *e || n < 1 || n > 1000000) {
                fprintf(stderr, "bitplan export: --calib needs an integer >= 1, got '%s'\n", argv[i]);
                return BP_EXIT_USAGE;
            }
            calib = (int)n;
        } else if (a[0] == '-' || model) {
            fprintf(stderr, "bitplan export: unexpected argument '%s'%s\n", a, a[0] == '-' && !v ? " (missing value?)" : "");
            usage(stderr);
            return BP_EXIT_USAGE;
        } else {
            model = a;
        }
    }
    if (!model || !plan_path || (!hdr && !bitcfg)) {
        fprintf(stderr, "bitplan export: %s\n", !model ? "a model is needed" : !plan_path ? "--plan PLAN.json is needed"
                                                                              : "nothing to write: --c-header and/or --bit-config");
        usage(stderr);
        return BP_EXIT_USAGE;
    }
    if (src && !hdr) {
        fprintf(stderr, "bitplan export: --c-source needs --c-header (the source includes it)\n");
        return BP_EXIT_USAGE;
    }
    bp_graph *g = NULL;
    bp_plan plan = {0};
    bp_dataset cal = {0};
    bp_qmodel *m = NULL;
    int *wb = NULL, *ab = NULL;
    bp_layer *L = NULL;
    int nl = 0, rc = BP_EXIT_OK;
    bp_status st;
    /* every output is checked writable before the work and before any is written */
    if ((st = bp_out_probe(bitcfg)) || (st = bp_out_probe(hdr)) || (st = bp_out_probe(src)))
        goto fail;
    if ((st = bp_onnx_load(model, &g)) || (st = bp_plan_read(plan_path, &plan)) ||
        (st = bp_graph_layers(g, &L, &nl)))
        goto fail;
    wb = malloc(sizeof *wb * (nl ? nl : 1));
    ab = malloc(sizeof *ab * (nl ? nl : 1));
    if (!wb || !ab) {
        st = bp_error(BP_ERR_NOMEM, "export: out of memory");
        goto fail;
    }
    if ((st = bp_plan_to_bits(&plan, plan_path, g, wb, ab)))
        goto fail;
    if (bitcfg && (st = write_bit_config(bitcfg, &plan)))
        goto fail;
    if (hdr) {
        bp_data_opts dopt = bp_data_opts_default();
        dopt.limit = calib;
        if ((st = bp_dataset_load(calib_data, &dopt, &cal)))
            goto fail;
        bp_qopts qo = bp_qopts_default();
        qo.pow2 = pow2;
        if ((st = bp_qmodel_build(g, wb, ab, cal.x, cal.n, &qo, &m)))
            goto fail;
        char what[2048];
        char hex[65];
        bp_sha256_hex(g->sha256, hex);
        snprintf(what, sizeof what, "model %s (sha256 %.16s...), plan %s, calibration %d samples of %s%s", model,
                 hex, plan_path, cal.n, calib_data, pow2 ? ", power-of-two scales" : "");
        if ((st = bp_export_c(m, hdr, src, what)))
            goto fail;
    }
    if (!bp_cli_quiet) {
        if (hdr)
            printf("wrote %s%s%s (%d layers, %d ops, %d tensors)\n", hdr, src ? " and " : "", src ? src : "", nl,
                   m->nops, m->nt);
        if (bitcfg)
            printf("wrote %s (HAWQ-style bit_config)\n", bitcfg);
    }
    goto done;
fail:
    rc = bp_cli_fail(st);
done:
    bp_qmodel_free(m);
    bp_dataset_free(&cal);
    free(wb);
    free(ab);
    free(L);
    bp_plan_free(&plan);
    bp_graph_free(g);
    return rc;
}
