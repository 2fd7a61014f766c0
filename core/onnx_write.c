/* bitplan graph IR → ONNX (see onnx.h): an opset-13 ModelProto with the
 * PARAM values as float32 initializers, the input's batch dimension symbolic
 * ("N"), and each node with its ONNX attributes. Clip bounds and Reshape
 * targets, which the IR keeps as attributes, become small initializers
 * (opset 13 takes them as inputs).
 *
 * Every protobuf-c struct is allocated from one arena freed at the end, so the
 * many small allocations need no individual cleanup paths. */
#include "core/onnx.h"
#include "core/onnx_priv.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

typedef struct {
    void **ptrs;
    size_t n, cap;
    int failed;
} arena;

static void *az(arena *a, size_t size)
{
    if (a->failed)
        return NULL;
    if (a->n == a->cap) {
        size_t ncap = a->cap ? 2 * a->cap : 256;
        void **np = realloc(a->ptrs, ncap * sizeof *np);
        if (!np) {
            a->failed = 1;
            return NULL;
        }
        a->ptrs = np;
        a->cap = ncap;
    }
    void *p = calloc(1, size ? size : 1);
    if (!p) {
        a->failed = 1;
        return NULL;
    }
    a->ptrs[a->n++] = p;
    return p;
}

static char *astr(arena *a, const char *s)
{
    char *p = az(a, strlen(s) + 1);
    if (p)
        strcpy(p, s);
    return p;
}

static void arena_free(arena *a)
{
    for (size_t k = 0; k < a->n; k++)
        free(a->ptrs[k]);
    free(a->ptrs);
}

/* A growing array of message pointers. */
typedef struct {
    void **v;
    size_t n, cap;
} plist;

static void push(arena *a, plist *l, void *p)
{
    if (!p) {
        a->failed = 1;
        return;
    }
    if (l->n == l->cap) {
        size_t ncap = l->cap ? 2 * l->cap : 16;
        void **nv = az(a, ncap * sizeof *nv);
        if (!nv)
            return;
        if (l->n)
            memcpy(nv, l->v, l->n * sizeof *nv);
        l->v = nv;
        l->cap = ncap;
    }
    l->v[l->n++] = p;
}

/* ---- attributes and tensors --------------------------------------------- */

static Onnx__AttributeProto *attr_new(arena *a, const char *name, Onnx__AttributeProto__AttributeType t)
{
    Onnx__AttributeProto *at = az(a, sizeof *at);
    if (!at)
        return NULL;
    onnx__attribute_proto__init(at);
    at->name = astr(a, name);
    at->has_type = 1;
    at->type = t;
    return at;
}

static void attr_int(arena *a, plist *l, const char *name, int64_t v)
{
    Onnx__AttributeProto *at = attr_new(a, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
    if (at) {
        at->has_i = 1;
        at->i = v;
    }
    push(a, l, at);
}

static void attr_float(arena *a, plist *l, const char *name, float v)
{
    Onnx__AttributeProto *at = attr_new(a, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
    if (at) {
        at->has_f = 1;
        at->f = v;
    }
    push(a, l, at);
}

static void attr_ints(arena *a, plist *l, const char *name, const int *v, int n)
{
    Onnx__AttributeProto *at = attr_new(a, name, ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
    int64_t *iv = az(a, (size_t)n * sizeof *iv);
    if (at && iv) {
        for (int k = 0; k < n; k++)
            iv[k] = v[k];
        at->n_ints = (size_t)n;
        at->ints = iv;
    }
    push(a, l, at);
}

/* A float32 or int64 initializer; data is copied little-endian into raw_data. */
static Onnx__TensorProto *tensor_new(arena *a, const char *name, int dtype, int ndim,
                                     const int64_t *dims, const void *data, size_t bytes)
{
    Onnx__TensorProto *t = az(a, sizeof *t);
    int64_t *d = az(a, (size_t)(ndim ? ndim : 1) * sizeof *d);
    uint8_t *raw = az(a, bytes);
    if (!t || !d || !raw)
        return NULL;
    onnx__tensor_proto__init(t);
    t->name = astr(a, name);
    t->has_data_type = 1;
    t->data_type = dtype;
    if (ndim > 0)
        memcpy(d, dims, (size_t)ndim * sizeof *d);
    t->n_dims = (size_t)ndim;
    t->dims = d;
    memcpy(raw, data, bytes);
    t->has_raw_data = 1;
    t->raw_data.len = bytes;
    t->raw_data.data = raw;
    return t;
}

/* value_info with float element type; dim 0 symbolic "N" for activations. */
static Onnx__ValueInfoProto *value_info(arena *a, const bp_value *v)
{
    Onnx__ValueInfoProto *vi = az(a, sizeof *vi);
    Onnx__TypeProto *tp = az(a, sizeof *tp);
    Onnx__TypeProto__Tensor *tt = az(a, sizeof *tt);
    Onnx__TensorShapeProto *sh = az(a, sizeof *sh);
    Onnx__TensorShapeProto__Dimension **dims = az(a, (size_t)(v->ndim ? v->ndim : 1) * sizeof *dims);
    if (!vi || !tp || !tt || !sh || !dims)
        return NULL;
    onnx__value_info_proto__init(vi);
    onnx__type_proto__init(tp);
    onnx__type_proto__tensor__init(tt);
    onnx__tensor_shape_proto__init(sh);
    for (int k = 0; k < v->ndim; k++) {
        Onnx__TensorShapeProto__Dimension *d = az(a, sizeof *d);
        if (!d)
            return NULL;
        onnx__tensor_shape_proto__dimension__init(d);
        if (k == 0) {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
            d->dim_param = astr(a, "N");
        } else {
            d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
            d->dim_value = v->dims[k];
        }
        dims[k] = d;
    }
    sh->n_dim = (size_t)v->ndim;
    sh->dim = dims;
    tt->has_elem_type = 1;
    tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
    tt->shape = sh;
    tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
    tp->tensor_type = tt;
    vi->name = astr(a, v->name);
    vi->type = tp;
    return vi;
}

/* A name for an extra initializer that clashes with no graph value. */
static char *fresh_name(arena *a, const bp_graph *g, const char *base, const char *suffix)
{
    char buf[512];
    snprintf(buf, sizeof buf, "%s.%s", base, suffix);
    for (int k = 2; bp_graph_find(g, buf) >= 0; k++)
        snprintf(buf, sizeof buf, "%s.%s%d", base, suffix, k);
    return astr(a, buf);
}

/* ---- nodes ----------------------------------------------------------------- */

static bp_status node_attrs(arena *a, const bp_graph *g, const bp_node *n, plist *at,
                            const char *path)
{
    const bp_attrs *x = &n->a;
    switch (n->op) {
    case BP_OP_CONV: {
        const bp_value *w = &g->values[n->in[1]];
        int ks[2] = {(int)w->dims[2], (int)w->dims[3]};
        attr_ints(a, at, "kernel_shape", ks, 2);
        attr_ints(a, at, "strides", x->stride, 2);
        attr_ints(a, at, "pads", x->pads, 4);
        attr_ints(a, at, "dilations", x->dilation, 2);
        attr_int(a, at, "group", x->group);
        break;
    }
    case BP_OP_MAXPOOL:
    case BP_OP_AVGPOOL:
        attr_ints(a, at, "kernel_shape", x->kernel, 2);
        attr_ints(a, at, "strides", x->stride, 2);
        attr_ints(a, at, "pads", x->pads, 4);
        attr_int(a, at, "ceil_mode", x->ceil_mode);
        if (n->op == BP_OP_MAXPOOL) {
            attr_ints(a, at, "dilations", x->dilation, 2);
        } else {
            if (x->dilation[0] != 1 || x->dilation[1] != 1)
                return bp_error(BP_ERR_UNSUPPORTED, "%s: node '%s': AveragePool with dilations cannot be written at opset 13",
                                path, n->name);
            attr_int(a, at, "count_include_pad", x->count_include_pad);
        }
        break;
    case BP_OP_GEMM:
        attr_float(a, at, "alpha", x->alpha);
        attr_float(a, at, "beta", x->beta);
        attr_int(a, at, "transA", x->trans_a);
        attr_int(a, at, "transB", x->trans_b);
        break;
    case BP_OP_BN:
        attr_float(a, at, "epsilon", x->eps);
        attr_float(a, at, "momentum", x->momentum);
        break;
    case BP_OP_FLATTEN:
        attr_int(a, at, "axis", x->axis);
        break;
    default:
        break;
    }
    return BP_OK;
}

static bp_status build_node(arena *a, const bp_graph *g, int idx, plist *nodes, plist *inits,
                            const char *path)
{
    const bp_node *n = &g->nodes[idx];
    Onnx__NodeProto *np = az(a, sizeof *np);
    char **ins = az(a, (BP_MAX_IN + 2) * sizeof *ins);
    char **outs = az(a, sizeof *outs);
    if (!np || !ins || !outs)
        return BP_ERR_NOMEM;
    onnx__node_proto__init(np);
    char gen[64];
    snprintf(gen, sizeof gen, "%s_%d", bp_op_name(n->op), idx);
    const char *name = n->name && n->name[0] ? n->name : gen;
    np->name = astr(a, name);
    np->op_type = astr(a, bp_op_name(n->op));
    size_t nin = 0;
    for (int k = 0; k < n->nin; k++)
        ins[nin++] = astr(a, g->values[n->in[k]].name);
    if (n->op == BP_OP_CLIP) {
        /* opset 13: bounds are optional inputs; "" marks an absent one */
        float b[2] = {n->a.clip_min, n->a.clip_max};
        const char *sfx[2] = {"min", "max"};
        int last = isinf(b[1]) ? (isinf(b[0]) ? -1 : 0) : 1;
        for (int k = 0; k <= last; k++) {
            if (isinf(b[k]) && ((k == 0 && b[k] < 0) || (k == 1 && b[k] > 0))) {
                ins[nin++] = astr(a, "");
                continue;
            }
            char *tn = fresh_name(a, g, name, sfx[k]);
            push(a, inits, tensor_new(a, tn, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, 0, NULL, &b[k],
                                      sizeof(float)));
            ins[nin++] = tn;
        }
    } else if (n->op == BP_OP_RESHAPE) {
        int64_t len = n->a.nshape;
        char *tn = fresh_name(a, g, name, "shape");
        push(a, inits, tensor_new(a, tn, ONNX__TENSOR_PROTO__DATA_TYPE__INT64, 1, &len, n->a.shape,
                                  (size_t)len * sizeof(int64_t)));
        ins[nin++] = tn;
    }
    np->n_input = nin;
    np->input = ins;
    outs[0] = astr(a, g->values[n->out].name);
    np->n_output = 1;
    np->output = outs;
    plist at = {0};
    bp_status st = node_attrs(a, g, n, &at, path);
    if (st)
        return st;
    np->n_attribute = at.n;
    np->attribute = (Onnx__AttributeProto **)at.v;
    push(a, nodes, np);
    return BP_OK;
}

static bp_status build_model(arena *a, const bp_graph *g, const char *path, Onnx__ModelProto *m)
{
    if (g->input < 0 || g->output < 0)
        return bp_error(BP_ERR_ARG, "%s: the graph has no input or no output", path);
    plist nodes = {0}, inits = {0};
    for (int i = 0; i < g->nvalues; i++) {
        const bp_value *v = &g->values[i];
        if (v->kind != BP_VAL_PARAM)
            continue;
        float *f = az(a, v->numel * sizeof *f);
        if (!f)
            return BP_ERR_NOMEM;
        for (size_t k = 0; k < v->numel; k++)
            f[k] = (float)g->params[v->offset + k];
        push(a, &inits, tensor_new(a, v->name, ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT, v->ndim, v->dims,
                                   f, v->numel * sizeof *f));
    }
    for (int i = 0; i < g->nnodes; i++) {
        bp_status st = build_node(a, g, i, &nodes, &inits, path);
        if (st)
            return st;
    }
    Onnx__GraphProto *gp = az(a, sizeof *gp);
    Onnx__ValueInfoProto **in = az(a, sizeof *in), **out = az(a, sizeof *out);
    Onnx__OperatorSetIdProto *ops = az(a, sizeof *ops);
    Onnx__OperatorSetIdProto **opsv = az(a, sizeof *opsv);
    if (!gp || !in || !out || !ops || !opsv)
        return BP_ERR_NOMEM;
    onnx__graph_proto__init(gp);
    gp->name = astr(a, "bitplan");
    gp->n_node = nodes.n;
    gp->node = (Onnx__NodeProto **)nodes.v;
    gp->n_initializer = inits.n;
    gp->initializer = (Onnx__TensorProto **)inits.v;
    in[0] = value_info(a, &g->values[g->input]);
    out[0] = value_info(a, &g->values[g->output]);
    gp->n_input = 1;
    gp->input = in;
    gp->n_output = 1;
    gp->output = out;
    onnx__operator_set_id_proto__init(ops);
    ops->domain = astr(a, "");
    ops->has_version = 1;
    ops->version = 13;
    opsv[0] = ops;
    onnx__model_proto__init(m);
    m->has_ir_version = 1;
    m->ir_version = 7;
    m->producer_name = astr(a, "bitplan");
    m->producer_version = astr(a, "0.1");
    m->n_opset_import = 1;
    m->opset_import = opsv;
    m->graph = gp;
    return a->failed ? BP_ERR_NOMEM : BP_OK;
}

bp_status bp_onnx_save(const bp_graph *g, const char *path)
{
    arena a = {0};
    Onnx__ModelProto m;
    bp_status st = build_model(&a, g, path, &m);
    if (st == BP_OK && a.failed)
        st = BP_ERR_NOMEM;
    if (st) {
        arena_free(&a);
        return st == BP_ERR_NOMEM ? bp_error(st, "%s: out of memory building the ONNX model", path) : st;
    }
    size_t len = onnx__model_proto__get_packed_size(&m);
    uint8_t *buf = malloc(len ? len : 1);
    if (!buf) {
        arena_free(&a);
        return bp_error(BP_ERR_NOMEM, "%s: out of memory (%zu bytes)", path, len);
    }
    onnx__model_proto__pack(&m, buf);
    arena_free(&a);
    st = bp_write_file_atomic(path, buf, len);
    free(buf);
    return st;
}
