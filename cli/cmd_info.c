/* `bitplan info MODEL.onnx [--json]`: the model's layer table (the units that
 * get a bit-width) with shapes, parameters and MACs per sample, and totals. */
#include "cli/cli.h"

#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "core/fileio.h"
#include "core/onnx.h"

static void usage(FILE *fp)
{
    fprintf(fp, "usage: bitplan info MODEL.onnx [--json] [--nodes]\n"
                "  Prints each Conv/Gemm/MatMul layer: name, op, input and output shape\n"
                "  (per sample), weight parameters and multiply-accumulates per sample,\n"
                "  then totals over the layers and the whole graph.\n"
                "  --json   the same as one JSON object on stdout\n"
                "  --nodes  also list every node as loaded (after constant folding)\n");
}

/* "C×H×W" of a value without the batch. */
static void shape_str(const bp_value *v, char *buf, size_t len)
{
    size_t o = 0;
    buf[0] = 0;
    for (int k = 1; k < v->ndim && o < len; k++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", k > 1 ? "x" : "", (long long)v->dims[k]);
    if (v->ndim <= 1)
        snprintf(buf, len, "-");
}

static json_t *dims_json(const bp_value *v)
{
    json_t *a = json_array();
    for (int k = 1; k < v->ndim; k++)
        json_array_append_new(a, json_integer(v->dims[k]));
    return a;
}

int cmd_info(int argc, char **argv)
{
    const char *path = NULL;
    int as_json = 0, nodes = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--json")) {
            as_json = 1;
        } else if (!strcmp(argv[i], "--nodes")) {
            nodes = 1;
        } else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            usage(stdout);
            return BP_EXIT_OK;
        } else if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q")) {
            continue;
        } else if (argv[i][0] == '-' || path) {
            fprintf(stderr, "bitplan info: unexpected argument '%s'\n", argv[i]);
            usage(stderr);
            return BP_EXIT_USAGE;
        } else {
            path = argv[i];
        }
    }
    if (!path) {
        usage(stderr);
        return BP_EXIT_USAGE;
    }
    bp_graph *g;
    bp_status st = bp_onnx_load(path, &g);
    if (st)
        return bp_cli_fail(st);
    bp_layer *ls;
    int nl;
    if ((st = bp_graph_layers(g, &ls, &nl))) {
        bp_graph_free(g);
        return bp_cli_fail(st);
    }
    size_t tparams = 0, tbias = 0;
    long long tmacs = 0;
    for (int i = 0; i < nl; i++) {
        tparams += ls[i].params;
        tmacs += ls[i].macs;
        if (ls[i].bias >= 0)
            tbias += g->values[ls[i].bias].numel;
    }
    char hex[65], in_s[64], out_s[64];
    bp_sha256_hex(g->sha256, hex);
    const bp_value *gin = &g->values[g->input], *gout = &g->values[g->output];
    int rc = BP_EXIT_OK;
    if (as_json) {
        json_t *root = json_object(), *arr = json_array();
        json_object_set_new(root, "model", json_string(path));
        json_object_set_new(root, "sha256", json_string(hex));
        json_object_set_new(root, "input", json_string(gin->name));
        json_object_set_new(root, "input_shape", dims_json(gin));
        json_object_set_new(root, "output_shape", dims_json(gout));
        json_object_set_new(root, "nodes", json_integer(g->nnodes));
        for (int i = 0; i < nl; i++) {
            const bp_layer *L = &ls[i];
            json_t *o = json_object();
            json_object_set_new(o, "name", json_string(L->name));
            json_object_set_new(o, "op", json_string(bp_op_name(L->op)));
            json_object_set_new(o, "node", json_string(g->nodes[L->node].name));
            json_object_set_new(o, "input_shape", dims_json(&g->values[L->input]));
            json_object_set_new(o, "output_shape", dims_json(&g->values[L->output]));
            json_object_set_new(o, "weight_shape", json_array());
            const bp_value *w = &g->values[L->weight];
            for (int k = 0; k < w->ndim; k++)
                json_array_append_new(json_object_get(o, "weight_shape"), json_integer(w->dims[k]));
            json_object_set_new(o, "kernel", json_pack("[ii]", L->kh, L->kw));
            json_object_set_new(o, "stride", json_integer(L->stride));
            json_object_set_new(o, "group", json_integer(L->group));
            json_object_set_new(o, "params", json_integer((json_int_t)L->params));
            json_object_set_new(o, "bias", json_integer(L->bias >= 0 ? (json_int_t)g->values[L->bias].numel : 0));
            json_object_set_new(o, "macs", json_integer(L->macs));
            json_array_append_new(arr, o);
        }
        json_object_set_new(root, "layers", arr);
        if (nodes) {
            json_t *na = json_array();
            for (int i = 0; i < g->nnodes; i++) {
                const bp_node *n = &g->nodes[i];
                json_t *ins = json_array();
                for (int k = 0; k < n->nin; k++)
                    json_array_append_new(ins, json_string(g->values[n->in[k]].name));
                json_array_append_new(na, json_pack("{s:s, s:s, s:o, s:s, s:o}", "name", n->name, "op",
                                                    bp_op_name(n->op), "inputs", ins, "output",
                                                    g->values[n->out].name, "output_shape",
                                                    dims_json(&g->values[n->out])));
            }
            json_object_set_new(root, "node_list", na);
        }
        json_object_set_new(root, "total_layer_params", json_integer((json_int_t)tparams));
        json_object_set_new(root, "total_bias_params", json_integer((json_int_t)tbias));
        json_object_set_new(root, "total_params", json_integer((json_int_t)g->nparams));
        json_object_set_new(root, "total_macs", json_integer(tmacs));
        char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s) {
            puts(s);
            free(s);
        } else {
            fprintf(stderr, "bitplan: out of memory formatting JSON\n");
            rc = BP_EXIT_FAIL;
        }
        json_decref(root);
    } else {
        shape_str(gin, in_s, sizeof in_s);
        shape_str(gout, out_s, sizeof out_s);
        printf("model   %s\nsha256  %s\ninput   %s (N x %s)   output %s (N x %s)   %d nodes\n\n", path,
               hex, gin->name, in_s, gout->name, out_s, g->nnodes);
        int w = 5; /* the layer column fits the longest name */
        for (int i = 0; i < nl; i++)
            if ((int)strlen(ls[i].name) > w)
                w = (int)strlen(ls[i].name);
        printf("%-3s %-*s %-7s %-14s %-14s %9s %12s\n", "#", w, "layer", "op", "input", "output",
               "params", "MACs");
        for (int i = 0; i < nl; i++) {
            const bp_layer *L = &ls[i];
            shape_str(&g->values[L->input], in_s, sizeof in_s);
            shape_str(&g->values[L->output], out_s, sizeof out_s);
            printf("%-3d %-*s %-7s %-14s %-14s %9zu %12lld\n", i, w, L->name, bp_op_name(L->op), in_s,
                   out_s, L->params, (long long)L->macs);
        }
        printf("\n%d layers: %zu weights (+%zu bias), %lld MACs per sample; %zu parameters in the graph\n",
               nl, tparams, tbias, tmacs, g->nparams);
        if (nodes) {
            printf("\n%-3s %-18s %-30s %s\n", "#", "op", "node", "output (per sample)  <- inputs");
            for (int i = 0; i < g->nnodes; i++) {
                const bp_node *n = &g->nodes[i];
                shape_str(&g->values[n->out], out_s, sizeof out_s);
                printf("%-3d %-18s %-30s %-14s <-", i, bp_op_name(n->op), n->name, out_s);
                for (int k = 0; k < n->nin; k++)
                    printf(" %s", g->values[n->in[k]].name);
                printf("\n");
            }
        }
    }
    free(ls);
    bp_graph_free(g);
    return rc;
}
