/* Graph IR: building, shape inference and the layer table. See graph.h. */
#include "core/graph.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *const op_names[] = {
    [BP_OP_CONV] = "Conv",       [BP_OP_GEMM] = "Gemm",
    [BP_OP_MATMUL] = "MatMul",   [BP_OP_ADD] = "Add",
    [BP_OP_BN] = "BatchNormalization", [BP_OP_RELU] = "Relu",
    [BP_OP_CLIP] = "Clip",       [BP_OP_MAXPOOL] = "MaxPool",
    [BP_OP_AVGPOOL] = "AveragePool", [BP_OP_GAP] = "GlobalAveragePool",
    [BP_OP_FLATTEN] = "Flatten", [BP_OP_RESHAPE] = "Reshape",
    [BP_OP_IDENTITY] = "Identity",
};
_Static_assert(sizeof op_names / sizeof *op_names == BP_OP_COUNT, "every op needs a name");

const char *bp_op_name(bp_op op)
{
    return (unsigned)op < BP_OP_COUNT ? op_names[op] : "?";
}

bp_attrs bp_attrs_default(void)
{
    bp_attrs a;
    memset(&a, 0, sizeof a);
    a.stride[0] = a.stride[1] = 1;
    a.dilation[0] = a.dilation[1] = 1;
    a.group = 1;
    a.alpha = a.beta = 1.0f;
    a.eps = 1e-5f;
    a.momentum = 0.9f;
    a.clip_min = -INFINITY;
    a.clip_max = INFINITY;
    a.axis = 1;
    return a;
}

bp_graph *bp_graph_new(void)
{
    bp_graph *g = calloc(1, sizeof *g);
    if (!g)
        return NULL;
    g->input = g->output = -1;
    g->source = strdup("");
    if (!g->source) {
        free(g);
        return NULL;
    }
    return g;
}

void bp_graph_free(bp_graph *g)
{
    if (!g)
        return;
    for (int i = 0; i < g->nvalues; i++)
        free(g->values[i].name);
    for (int i = 0; i < g->nnodes; i++)
        free(g->nodes[i].name);
    free(g->values);
    free(g->nodes);
    free(g->params);
    free(g->source);
    free(g);
}

int bp_graph_find(const bp_graph *g, const char *name)
{
    for (int i = 0; i < g->nvalues; i++)
        if (strcmp(g->values[i].name, name) == 0)
            return i;
    return -1;
}

static int grow(void **p, int *cap, int need, size_t elem)
{
    if (need <= *cap)
        return 0;
    int ncap = *cap ? *cap * 2 : 16;
    while (ncap < need)
        ncap *= 2;
    void *np = realloc(*p, (size_t)ncap * elem);
    if (!np)
        return -1;
    *p = np;
    *cap = ncap;
    return 0;
}

static int add_value(bp_graph *g, const char *name, bp_val_kind kind, int ndim,
                     const int64_t *dims)
{
    if (ndim < 0 || ndim > BP_MAX_DIMS) {
        bp_error(BP_ERR_UNSUPPORTED, "value '%s' has %d dimensions (at most %d supported)",
                 name, ndim, BP_MAX_DIMS);
        return -1;
    }
    if (bp_graph_find(g, name) >= 0) {
        bp_error(BP_ERR_FORMAT, "value name '%s' is defined twice", name);
        return -1;
    }
    if (grow((void **)&g->values, &g->cap_values, g->nvalues + 1, sizeof *g->values)) {
        bp_error(BP_ERR_NOMEM, "out of memory adding value '%s'", name);
        return -1;
    }
    bp_value *v = &g->values[g->nvalues];
    memset(v, 0, sizeof *v);
    v->name = strdup(name);
    if (!v->name) {
        bp_error(BP_ERR_NOMEM, "out of memory adding value '%s'", name);
        return -1;
    }
    v->kind = kind;
    v->ndim = ndim;
    v->producer = -1;
    size_t numel = 1;
    for (int i = 0; i < ndim; i++) {
        v->dims[i] = dims[i];
        if (kind == BP_VAL_PARAM || i > 0)
            numel *= (size_t)(dims[i] < 0 ? 0 : dims[i]);
    }
    v->numel = numel;
    return g->nvalues++;
}

int bp_graph_add_input(bp_graph *g, const char *name, int ndim, const int64_t *dims)
{
    int id = add_value(g, name, BP_VAL_INPUT, ndim, dims);
    if (id >= 0 && g->input < 0)
        g->input = id;
    return id;
}

int bp_graph_add_param(bp_graph *g, const char *name, int ndim, const int64_t *dims,
                       const float *init)
{
    for (int i = 0; i < ndim; i++)
        if (dims[i] < 0) {
            bp_error(BP_ERR_SHAPE, "parameter '%s' has a negative dimension", name);
            return -1;
        }
    int id = add_value(g, name, BP_VAL_PARAM, ndim, dims);
    if (id < 0)
        return -1;
    bp_value *v = &g->values[id];
    size_t need = g->nparams + v->numel;
    if (need > g->cap_params) {
        size_t ncap = g->cap_params ? g->cap_params : 1024;
        while (ncap < need)
            ncap *= 2;
        bp_real *np = realloc(g->params, ncap * sizeof *np);
        if (!np) {
            bp_error(BP_ERR_NOMEM, "out of memory for parameter '%s'", name);
            return -1;
        }
        g->params = np;
        g->cap_params = ncap;
    }
    v->offset = g->nparams;
    v->trainable = 1;
    for (size_t i = 0; i < v->numel; i++)
        g->params[v->offset + i] = init ? (bp_real)init[i] : 0;
    g->nparams = need;
    return id;
}

int bp_graph_copy_param(const bp_graph *from, bp_graph *g, int v, int *map)
{
    if (map[v] >= 0)
        return map[v];
    const bp_value *val = &from->values[v];
    int id = bp_graph_add_param(g, val->name, val->ndim, val->dims, NULL);
    if (id < 0)
        return -1;
    memcpy(g->params + g->values[id].offset, from->params + val->offset,
           val->numel * sizeof *g->params);
    g->values[id].trainable = val->trainable;
    map[v] = id;
    return id;
}

/* ---- shape inference ----------------------------------------------------- */

/* Spatial output size of a window of k (dilated) over n with pads and stride.
 * ceil_mode follows PyTorch/ONNX: a last window that would start inside the
 * end padding is dropped. */
static int64_t window_out(int64_t n, int k, int s, int pb, int pe, int d, int ceil_mode)
{
    int64_t span = n + pb + pe - ((int64_t)(k - 1) * d + 1);
    if (span < 0)
        return 0;
    int64_t o = ceil_mode ? (span + s - 1) / s + 1 : span / s + 1;
    if (ceil_mode && (o - 1) * s >= n + pb)
        o--;
    return o;
}

/* Broadcasts two shapes numpy-style; -1 (the symbolic batch) meets 1 or -1 as -1. */
static bp_status broadcast(const int64_t *a, int na, const int64_t *b, int nb, int64_t *out,
                           int *nout)
{
    int n = na > nb ? na : nb;
    for (int i = 0; i < n; i++) {
        int64_t da = i < n - na ? 1 : a[i - (n - na)];
        int64_t db = i < n - nb ? 1 : b[i - (n - nb)];
        if (da == db || db == 1)
            out[i] = da;
        else if (da == 1)
            out[i] = db;
        else if (da == -1 || db == -1)
            out[i] = da == -1 ? db : da;
        else
            return bp_error(BP_ERR_SHAPE, "cannot broadcast dimension %d: %lld vs %lld", i,
                            (long long)da, (long long)db);
    }
    *nout = n;
    return BP_OK;
}

static int64_t prod(const int64_t *d, int from, int to)
{
    int64_t p = 1;
    for (int i = from; i < to; i++) {
        if (d[i] < 0)
            return -1;
        p *= d[i];
    }
    return p;
}

bp_status bp_infer_shape(const bp_graph *g, const bp_node *n, const int64_t *const *in,
                         const int *nd, int64_t *out, int *nout)
{
    (void)g;
    const bp_attrs *a = &n->a;
    const int64_t *x = in[0];
    switch (n->op) {
    case BP_OP_CONV: {
        const int64_t *w = in[1];
        if (nd[0] != 4 || nd[1] != 4)
            return bp_error(BP_ERR_UNSUPPORTED, "Conv needs 4-D input and weight (2-D convolution), got %d-D and %d-D",
                            nd[0], nd[1]);
        if (a->group < 1 || w[0] % a->group || x[1] != w[1] * a->group)
            return bp_error(BP_ERR_SHAPE, "Conv: input has %lld channels, weight expects %lld x group %d",
                            (long long)x[1], (long long)w[1], a->group);
        if (n->nin > 2 && (nd[2] != 1 || in[2][0] != w[0]))
            return bp_error(BP_ERR_SHAPE, "Conv: bias must have %lld elements", (long long)w[0]);
        int kh = (int)w[2], kw = (int)w[3];
        if ((a->kernel[0] && a->kernel[0] != kh) || (a->kernel[1] && a->kernel[1] != kw))
            return bp_error(BP_ERR_SHAPE, "Conv: kernel_shape %dx%d does not match weight %dx%d",
                            a->kernel[0], a->kernel[1], kh, kw);
        out[0] = x[0];
        out[1] = w[0];
        out[2] = window_out(x[2], kh, a->stride[0], a->pads[0], a->pads[2], a->dilation[0], 0);
        out[3] = window_out(x[3], kw, a->stride[1], a->pads[1], a->pads[3], a->dilation[1], 0);
        *nout = 4;
        if (out[2] < 1 || out[3] < 1)
            return bp_error(BP_ERR_SHAPE, "Conv: output would be empty");
        return BP_OK;
    }
    case BP_OP_GEMM: {
        if (nd[0] != 2 || nd[1] != 2)
            return bp_error(BP_ERR_SHAPE, "Gemm needs 2-D A and B, got %d-D and %d-D", nd[0], nd[1]);
        int64_t m = a->trans_a ? x[1] : x[0], k = a->trans_a ? x[0] : x[1];
        int64_t kb = a->trans_b ? in[1][1] : in[1][0], nn = a->trans_b ? in[1][0] : in[1][1];
        if (k != kb && k >= 0)
            return bp_error(BP_ERR_SHAPE, "Gemm: A has %lld columns, B has %lld rows", (long long)k,
                            (long long)kb);
        out[0] = m;
        out[1] = nn;
        *nout = 2;
        if (n->nin > 2) {
            int64_t tmp[BP_MAX_DIMS];
            int nt;
            if (broadcast(out, 2, in[2], nd[2], tmp, &nt) || nt != 2 ||
                (tmp[1] != nn) || (tmp[0] != m))
                return bp_error(BP_ERR_SHAPE, "Gemm: C does not broadcast to (%lld, %lld)",
                                (long long)m, (long long)nn);
        }
        return BP_OK;
    }
    case BP_OP_MATMUL: {
        if (nd[0] < 2 || nd[1] < 2)
            return bp_error(BP_ERR_UNSUPPORTED, "MatMul with a 1-D operand");
        const int64_t *b = in[1];
        if (x[nd[0] - 1] != b[nd[1] - 2])
            return bp_error(BP_ERR_SHAPE, "MatMul: inner dimensions %lld and %lld differ",
                            (long long)x[nd[0] - 1], (long long)b[nd[1] - 2]);
        int nb;
        bp_status st = broadcast(x, nd[0] - 2, b, nd[1] - 2, out, &nb);
        if (st)
            return bp_error_wrap(st, "MatMul batch dimensions");
        out[nb] = x[nd[0] - 2];
        out[nb + 1] = b[nd[1] - 1];
        *nout = nb + 2;
        return BP_OK;
    }
    case BP_OP_ADD:
        return broadcast(x, nd[0], in[1], nd[1], out, nout);
    case BP_OP_BN:
        if (nd[0] < 2)
            return bp_error(BP_ERR_SHAPE, "BatchNormalization needs (N, C, ...) input");
        for (int i = 1; i < 5 && i < n->nin; i++)
            if (nd[i] != 1 || in[i][0] != x[1])
                return bp_error(BP_ERR_SHAPE, "BatchNormalization: operand %d must have %lld elements",
                                i, (long long)x[1]);
        /* fall through */
    case BP_OP_RELU:
    case BP_OP_CLIP:
    case BP_OP_IDENTITY:
        memcpy(out, x, sizeof(int64_t) * nd[0]);
        *nout = nd[0];
        return BP_OK;
    case BP_OP_MAXPOOL:
    case BP_OP_AVGPOOL:
        if (nd[0] != 4)
            return bp_error(BP_ERR_UNSUPPORTED, "%s needs 4-D input (2-D pooling), got %d-D",
                            bp_op_name(n->op), nd[0]);
        if (a->kernel[0] < 1 || a->kernel[1] < 1)
            return bp_error(BP_ERR_FORMAT, "%s without kernel_shape", bp_op_name(n->op));
        out[0] = x[0];
        out[1] = x[1];
        out[2] = window_out(x[2], a->kernel[0], a->stride[0], a->pads[0], a->pads[2],
                            a->dilation[0], a->ceil_mode);
        out[3] = window_out(x[3], a->kernel[1], a->stride[1], a->pads[1], a->pads[3],
                            a->dilation[1], a->ceil_mode);
        *nout = 4;
        if (out[2] < 1 || out[3] < 1)
            return bp_error(BP_ERR_SHAPE, "%s: output would be empty", bp_op_name(n->op));
        return BP_OK;
    case BP_OP_GAP:
        if (nd[0] < 3)
            return bp_error(BP_ERR_SHAPE, "GlobalAveragePool needs (N, C, spatial...) input");
        out[0] = x[0];
        out[1] = x[1];
        for (int i = 2; i < nd[0]; i++)
            out[i] = 1;
        *nout = nd[0];
        return BP_OK;
    case BP_OP_FLATTEN: {
        int ax = a->axis < 0 ? a->axis + nd[0] : a->axis;
        if (ax < 0 || ax > nd[0])
            return bp_error(BP_ERR_SHAPE, "Flatten: axis %d out of range for %d-D input", a->axis, nd[0]);
        out[0] = prod(x, 0, ax);
        out[1] = prod(x, ax, nd[0]);
        *nout = 2;
        return BP_OK;
    }
    case BP_OP_RESHAPE: {
        int ns = a->nshape, infer = -1;
        int64_t known = 1, total = prod(x, 0, nd[0]);
        if (ns < 1 || ns > BP_MAX_DIMS)
            return bp_error(BP_ERR_UNSUPPORTED, "Reshape to %d dimensions", ns);
        for (int i = 0; i < ns; i++) {
            int64_t s = a->shape[i];
            if (s == 0) {
                if (i >= nd[0])
                    return bp_error(BP_ERR_SHAPE, "Reshape: 0 at position %d copies no input dimension", i);
                s = x[i];
            }
            if (s == -1 && a->shape[i] == -1) {
                if (infer >= 0)
                    return bp_error(BP_ERR_SHAPE, "Reshape: more than one -1");
                infer = i;
            } else if (s < 0 && i == 0 && a->shape[i] == 0) {
                /* symbolic batch copied through: sizes below are per sample */
                total = prod(x, 1, nd[0]);
                known = 1;
            } else if (s < 0) {
                return bp_error(BP_ERR_SHAPE, "Reshape: bad target dimension %lld", (long long)s);
            } else {
                known *= s;
            }
            out[i] = s;
        }
        if (infer >= 0) {
            if (total < 0)
                return bp_error(BP_ERR_SHAPE, "Reshape: -1 with an unknown input size");
            if (known == 0 || total % known)
                return bp_error(BP_ERR_SHAPE, "Reshape: %lld elements do not fit the target shape",
                                (long long)total);
            out[infer] = total / known;
        } else if (total >= 0 && known != total) {
            return bp_error(BP_ERR_SHAPE, "Reshape: %lld elements into a shape of %lld",
                            (long long)total, (long long)known);
        }
        *nout = ns;
        return BP_OK;
    }
    case BP_OP_COUNT:
        break;
    }
    return bp_error(BP_ERR_UNSUPPORTED, "unknown op %d", (int)n->op);
}

bp_status bp_graph_resolve_shapes(const bp_graph *g, int n, int64_t (*dims)[BP_MAX_DIMS],
                                  int *ndim, const char *who)
{
    for (int v = 0; v < g->nvalues; v++) {
        const bp_value *val = &g->values[v];
        ndim[v] = val->ndim;
        memcpy(dims[v], val->dims, sizeof val->dims);
        if (val->kind == BP_VAL_INPUT && val->ndim > 0)
            dims[v][0] = n;
    }
    for (int i = 0; i < g->nnodes; i++) {
        const bp_node *nd = &g->nodes[i];
        const int64_t *d[BP_MAX_IN];
        int k[BP_MAX_IN];
        for (int j = 0; j < nd->nin; j++) {
            d[j] = dims[nd->in[j]];
            k[j] = ndim[nd->in[j]];
        }
        bp_status st = bp_infer_shape(g, nd, d, k, dims[nd->out], &ndim[nd->out]);
        if (st)
            return bp_error_wrap(st, "%s: node '%s' (%s) at batch %d", who, nd->name,
                                 bp_op_name(nd->op), n);
        for (int j = 0; j < ndim[nd->out]; j++)
            if (dims[nd->out][j] < 0)
                return bp_error(BP_ERR_SHAPE, "%s: node '%s' (%s): unresolved output dimension",
                                who, nd->name, bp_op_name(nd->op));
    }
    return BP_OK;
}

int bp_graph_add_node(bp_graph *g, bp_op op, const char *name, const int *in, int nin,
                      const char *out_name, const bp_attrs *a)
{
    if (nin < 1 || nin > BP_MAX_IN) {
        bp_error(BP_ERR_FORMAT, "node '%s' (%s) has %d inputs", name, bp_op_name(op), nin);
        return -1;
    }
    for (int i = 0; i < nin; i++)
        if (in[i] < 0 || in[i] >= g->nvalues) {
            bp_error(BP_ERR_FORMAT, "node '%s' (%s): input %d is not defined", name,
                     bp_op_name(op), i);
            return -1;
        }
    if (grow((void **)&g->nodes, &g->cap_nodes, g->nnodes + 1, sizeof *g->nodes)) {
        bp_error(BP_ERR_NOMEM, "out of memory adding node '%s'", name);
        return -1;
    }
    bp_node *n = &g->nodes[g->nnodes];
    memset(n, 0, sizeof *n);
    n->op = op;
    n->nin = nin;
    memcpy(n->in, in, sizeof(int) * nin);
    n->a = a ? *a : bp_attrs_default();

    const int64_t *dims[BP_MAX_IN];
    int nd[BP_MAX_IN];
    for (int i = 0; i < nin; i++) {
        dims[i] = g->values[in[i]].dims;
        nd[i] = g->values[in[i]].ndim;
    }
    int64_t od[BP_MAX_DIMS];
    int ond = 0;
    bp_status st = bp_infer_shape(g, n, dims, nd, od, &ond);
    if (st) {
        bp_error_wrap(st, "node '%s' (%s)", name, bp_op_name(op));
        return -1;
    }
    int out = add_value(g, out_name, BP_VAL_ACT, ond, od);
    if (out < 0)
        return -1;
    n = &g->nodes[g->nnodes]; /* add_value may not move nodes, but keep it obvious */
    n->name = strdup(name ? name : "");
    if (!n->name) {
        bp_error(BP_ERR_NOMEM, "out of memory adding node '%s'", name);
        return -1;
    }
    n->out = out;
    g->values[out].producer = g->nnodes;
    g->nnodes++;
    g->output = out;
    return out;
}

/* ---- layer table ----------------------------------------------------------- */

/* PyTorch names weights "<module>.weight": the module path is the name users
 * know. Otherwise the node name, else the weight's own name. */
static void layer_name(const bp_graph *g, const bp_node *n, int weight, char *buf, size_t len)
{
    const char *w = g->values[weight].name;
    size_t wl = strlen(w);
    if (wl > 7 && strcmp(w + wl - 7, ".weight") == 0 && wl - 7 < len) {
        memcpy(buf, w, wl - 7);
        buf[wl - 7] = 0;
    } else {
        snprintf(buf, len, "%s", n->name && n->name[0] ? n->name : w);
    }
}

bp_status bp_graph_layers(const bp_graph *g, bp_layer **out, int *nout)
{
    bp_layer *ls = calloc(g->nnodes ? g->nnodes : 1, sizeof *ls);
    if (!ls)
        return bp_error(BP_ERR_NOMEM, "out of memory for the layer table");
    int n = 0;
    for (int i = 0; i < g->nnodes; i++) {
        const bp_node *nd = &g->nodes[i];
        if (nd->op != BP_OP_CONV && nd->op != BP_OP_GEMM && nd->op != BP_OP_MATMUL)
            continue;
        if (nd->nin < 2 || g->values[nd->in[1]].kind != BP_VAL_PARAM)
            continue;
        const bp_value *x = &g->values[nd->in[0]], *w = &g->values[nd->in[1]],
                       *y = &g->values[nd->out];
        bp_layer *L = &ls[n];
        L->node = i;
        L->op = nd->op;
        L->weight = nd->in[1];
        L->bias = nd->nin > 2 && g->values[nd->in[2]].kind == BP_VAL_PARAM ? nd->in[2] : -1;
        L->input = nd->in[0];
        L->output = nd->out;
        L->params = w->numel;
        L->kh = L->kw = L->stride = L->group = 1;
        L->in_h = L->in_w = L->out_h = L->out_w = 1;
        if (nd->op == BP_OP_CONV) {
            L->cout = w->dims[0];
            L->cin = x->dims[1];
            L->kh = (int)w->dims[2];
            L->kw = (int)w->dims[3];
            L->stride = nd->a.stride[0];
            L->group = nd->a.group;
            L->in_h = x->dims[2];
            L->in_w = x->dims[3];
            L->out_h = y->dims[2];
            L->out_w = y->dims[3];
            L->fan_in = w->dims[1] * L->kh * L->kw;
            L->macs = L->cout * L->out_h * L->out_w * L->fan_in;
        } else {
            int tb = nd->op == BP_OP_GEMM && nd->a.trans_b;
            L->cin = tb ? w->dims[1] : w->dims[w->ndim - 2];
            L->cout = tb ? w->dims[0] : w->dims[w->ndim - 1];
            L->fan_in = L->cin;
            /* rows of the product that belong to one sample */
            int64_t rows = 1;
            for (int d = 1; d < x->ndim - 1; d++)
                rows *= x->dims[d];
            if (nd->op == BP_OP_GEMM && nd->a.trans_a)
                rows = 1;
            L->macs = rows * L->cin * L->cout;
        }
        layer_name(g, nd, L->weight, L->name, sizeof L->name);
        n++;
    }
    *out = ls;
    *nout = n;
    return BP_OK;
}

bp_status bp_graph_check_finite(const bp_graph *g)
{
    for (int i = 0; i < g->nvalues; i++) {
        const bp_value *v = &g->values[i];
        if (v->kind != BP_VAL_PARAM)
            continue;
        for (size_t j = 0; j < v->numel; j++)
            if (!isfinite((double)g->params[v->offset + j]))
                return bp_error(BP_ERR_NUMERIC, "%s: parameter '%s' has a non-finite value at element %zu",
                                g->source && g->source[0] ? g->source : "model", v->name, j);
    }
    return BP_OK;
}
