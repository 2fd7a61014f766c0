/* ONNX → bitplan graph IR (see onnx.h).
 *
 * One pass over the nodes in file order (ONNX requires topological order).
 * Every name maps to either a graph value (the input, an activation, a PARAM)
 * or a load-time constant (an initializer, a Constant node, a folded shape
 * computation). Float constants become PARAM values the first time a graph op
 * reads them; integer constants only ever feed folding and attributes. */
#include "core/onnx.h"
#include "core/onnx_priv.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

typedef struct {
    const char *name; /* points into the unpacked model */
    int value;        /* graph value id, or -1 */
    int cst;          /* index into ctx.consts, or -1 */
} sym;

typedef struct {
    const char *file;
    bp_graph *g;
    sym *syms;
    int nsyms, capsyms;
    bp_const *consts;
    int nconsts, capconsts;
    /* the node being loaded, for messages */
    const char *node_name;
    const char *op;
} ctx;

/* "file: node 'name' (op Op): reason" with the status passed through. */
static bp_status node_err(ctx *c, bp_status st, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static bp_status node_err(ctx *c, bp_status st, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return bp_error(st, "%s: node '%s' (op %s): %s", c->file, c->node_name, c->op, msg);
}

/* Wraps the current bp_last_error() message with file/node context. */
static bp_status node_wrap(ctx *c, bp_status st)
{
    char old[1024];
    snprintf(old, sizeof old, "%s", bp_last_error());
    return node_err(c, st, "%s", old);
}

static sym *find_sym(ctx *c, const char *name)
{
    for (int k = c->nsyms - 1; k >= 0; k--)
        if (strcmp(c->syms[k].name, name) == 0)
            return &c->syms[k];
    return NULL;
}

static bp_status add_sym(ctx *c, const char *name, int value, int cst)
{
    if (c->nsyms == c->capsyms) {
        int ncap = c->capsyms ? 2 * c->capsyms : 64;
        sym *ns = realloc(c->syms, (size_t)ncap * sizeof *ns);
        if (!ns)
            return bp_error(BP_ERR_NOMEM, "%s: out of memory", c->file);
        c->syms = ns;
        c->capsyms = ncap;
    }
    c->syms[c->nsyms++] = (sym){name, value, cst};
    return BP_OK;
}

/* Takes ownership of *k's arrays; returns its index or -1. */
static int add_const(ctx *c, bp_const *k)
{
    if (c->nconsts == c->capconsts) {
        int ncap = c->capconsts ? 2 * c->capconsts : 64;
        bp_const *nc = realloc(c->consts, (size_t)ncap * sizeof *nc);
        if (!nc) {
            bp_const_clear(k);
            bp_error(BP_ERR_NOMEM, "%s: out of memory", c->file);
            return -1;
        }
        c->consts = nc;
        c->capconsts = ncap;
    }
    c->consts[c->nconsts] = *k;
    return c->nconsts++;
}

static void ctx_free(ctx *c)
{
    for (int k = 0; k < c->nconsts; k++)
        bp_const_clear(&c->consts[k]);
    free(c->consts);
    free(c->syms);
}

/* ---- attributes ------------------------------------------------------------ */

static int64_t attr_i(const Onnx__NodeProto *n, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = bp_onnx_attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

static float attr_f(const Onnx__NodeProto *n, const char *name, float dflt)
{
    const Onnx__AttributeProto *a = bp_onnx_attr(n, name);
    return a && a->has_f ? a->f : dflt;
}

/* Copies an ints attribute of exactly `want` elements into out (as int);
 * returns 0 when absent, 1 when copied, -1 when the count is wrong. */
static int attr_ints(const Onnx__NodeProto *n, const char *name, int *out, size_t want)
{
    const Onnx__AttributeProto *a = bp_onnx_attr(n, name);
    if (!a)
        return 0;
    if (a->n_ints != want)
        return -1;
    for (size_t k = 0; k < want; k++) {
        if (a->ints[k] < -(1 << 30) || a->ints[k] > (1 << 30))
            return -1;
        out[k] = (int)a->ints[k];
    }
    return 1;
}

/* auto_pad string, "NOTSET" when absent. */
static const char *attr_autopad(const Onnx__NodeProto *n, char *buf, size_t len)
{
    const Onnx__AttributeProto *a = bp_onnx_attr(n, "auto_pad");
    if (!a || !a->has_s || a->s.len == 0) {
        snprintf(buf, len, "NOTSET");
    } else {
        size_t l = a->s.len < len - 1 ? a->s.len : len - 1;
        memcpy(buf, a->s.data, l);
        buf[l] = 0;
    }
    return buf;
}

/* Window attributes shared by Conv and the pools: strides, dilations, pads,
 * auto_pad resolved against the static spatial size of x. kernel[] must be
 * set already. */
static bp_status window_attrs(ctx *c, const Onnx__NodeProto *n, const bp_value *x, bp_attrs *a)
{
    if (attr_ints(n, "strides", a->stride, 2) < 0 || attr_ints(n, "dilations", a->dilation, 2) < 0 ||
        attr_ints(n, "pads", a->pads, 4) < 0)
        return node_err(c, BP_ERR_UNSUPPORTED,
                        "strides/dilations/pads must have 2/2/4 entries (2-D windows only)");
    for (int k = 0; k < 2; k++)
        if (a->stride[k] < 1 || a->dilation[k] < 1)
            return node_err(c, BP_ERR_FORMAT, "strides and dilations must be positive");
    for (int k = 0; k < 4; k++)
        if (a->pads[k] < 0)
            return node_err(c, BP_ERR_FORMAT, "negative pads");
    char ap[32];
    attr_autopad(n, ap, sizeof ap);
    if (strcmp(ap, "NOTSET") == 0)
        return BP_OK;
    if (strcmp(ap, "VALID") == 0) {
        memset(a->pads, 0, sizeof a->pads);
        return BP_OK;
    }
    int upper = strcmp(ap, "SAME_UPPER") == 0;
    if (!upper && strcmp(ap, "SAME_LOWER") != 0)
        return node_err(c, BP_ERR_FORMAT, "unknown auto_pad '%s'", ap);
    /* SAME: output = ceil(in / stride); the total padding that needs, with the
     * odd pixel at the end (UPPER) or at the beginning (LOWER). */
    for (int k = 0; k < 2; k++) {
        int64_t in = x->dims[2 + k];
        int64_t out = (in + a->stride[k] - 1) / a->stride[k];
        int64_t span = (int64_t)(a->kernel[k] - 1) * a->dilation[k] + 1;
        int64_t total = (out - 1) * a->stride[k] + span - in;
        if (total < 0)
            total = 0;
        int small = (int)(total / 2), big = (int)(total - total / 2);
        a->pads[k] = upper ? small : big;
        a->pads[k + 2] = upper ? big : small;
    }
    return BP_OK;
}

/* ---- operands ---------------------------------------------------------------- */

/* The symbol of input k of n; NULL for an absent optional input. Missing
 * names are an error. */
static bp_status input_sym(ctx *c, const Onnx__NodeProto *n, size_t k, sym **out)
{
    *out = NULL;
    if (k >= n->n_input || !n->input[k] || !n->input[k][0])
        return BP_OK;
    *out = find_sym(c, n->input[k]);
    if (!*out)
        return node_err(c, BP_ERR_FORMAT,
                        "input '%s' is not defined (no initializer, graph input or earlier node)",
                        n->input[k]);
    return BP_OK;
}

/* The name a PARAM gets. Exporters name the weights they compute themselves
 * (BN folded into Conv) "onnx::Conv_37"; torch >= 1.13 names nodes by module
 * scope ("/layer1/conv/Conv"), so such a weight becomes "layer1.conv.weight",
 * the name its unfused twin has and the one users know. `role` is "weight" or
 * "bias"; NULL keeps the file's name. */
static const char *param_name(ctx *c, const char *orig, const char *role, char *buf, size_t len)
{
    const char *nn = c->node_name, *last = strrchr(nn, '/');
    if (!role || strncmp(orig, "onnx::", 6) != 0 || nn[0] != '/' || last == nn)
        return orig;
    size_t sl = (size_t)(last - nn - 1);
    if (sl + strlen(role) + 2 > len)
        return orig;
    for (size_t k = 0; k < sl; k++)
        buf[k] = nn[1 + k] == '/' ? '.' : nn[1 + k];
    snprintf(buf + sl, len - sl, ".%s", role);
    return bp_graph_find(c->g, buf) >= 0 || find_sym(c, buf) ? orig : buf;
}

/* Graph value id for input k: activations as they are, float constants
 * materialised as PARAM values (once; later uses share the value). */
static bp_status operand_named(ctx *c, const Onnx__NodeProto *n, size_t k, int trainable,
                               const char *role, int *id);
static bp_status operand(ctx *c, const Onnx__NodeProto *n, size_t k, int trainable, int *id)
{
    return operand_named(c, n, k, trainable, NULL, id);
}

static bp_status operand_named(ctx *c, const Onnx__NodeProto *n, size_t k, int trainable,
                               const char *role, int *id)
{
    sym *s;
    bp_status st = input_sym(c, n, k, &s);
    if (st)
        return st;
    if (!s)
        return node_err(c, BP_ERR_FORMAT, "required input %zu is missing", k);
    if (s->value >= 0) {
        *id = s->value;
        return BP_OK;
    }
    bp_const *k0 = &c->consts[s->cst];
    if (k0->param >= 0) {
        *id = k0->param;
        return BP_OK;
    }
    if (k0->kind != BP_CONST_FLOAT)
        return node_err(c, BP_ERR_FORMAT, "input '%s' is a tensor of type %s where float is needed",
                        s->name, bp_onnx_dtype_name(k0->dtype));
    char buf[256];
    int v = bp_graph_add_param(c->g, param_name(c, s->name, role, buf, sizeof buf), k0->ndim,
                               k0->dims, k0->f);
    if (v < 0)
        return node_wrap(c, BP_ERR_FORMAT);
    c->g->values[v].trainable = trainable;
    k0->param = v;
    *id = v;
    return BP_OK;
}

/* A scalar float bound given as a constant input (Clip). */
static bp_status scalar_input(ctx *c, const Onnx__NodeProto *n, size_t k, float *v)
{
    sym *s;
    bp_status st = input_sym(c, n, k, &s);
    if (st || !s)
        return st;
    if (s->cst < 0)
        return node_err(c, BP_ERR_UNSUPPORTED, "input '%s' must be a constant (an initializer or a Constant node)",
                        s->name);
    const bp_const *k0 = &c->consts[s->cst];
    if (k0->kind == BP_CONST_BAD || k0->numel != 1)
        return node_err(c, BP_ERR_FORMAT, "input '%s' must be a numeric scalar", s->name);
    *v = k0->kind == BP_CONST_FLOAT ? k0->f[0] : (float)k0->i[0];
    return BP_OK;
}

/* ---- ops ------------------------------------------------------------------- */

static int is_fold_op(const char *op)
{
    static const char *const ops[] = {"Constant", "Shape", "Gather", "Unsqueeze", "Squeeze",
                                      "Concat", "Slice", "Cast", "Transpose"};
    for (size_t k = 0; k < sizeof ops / sizeof *ops; k++)
        if (strcmp(op, ops[k]) == 0)
            return 1;
    return 0;
}

/* Constant-only ops: fold into a new constant named by the node's output. */
static bp_status load_fold(ctx *c, const Onnx__NodeProto *n)
{
    const bp_const *in[8] = {0};
    size_t nin = n->n_input;
    if (nin > 8)
        return node_err(c, BP_ERR_UNSUPPORTED, "%zu inputs", nin);
    const int64_t *act_dims = NULL;
    int act_ndim = 0;
    for (size_t k = 0; k < nin; k++) {
        sym *s;
        bp_status st = input_sym(c, n, k, &s);
        if (st)
            return st;
        if (!s)
            continue;
        if (s->value >= 0) {
            if (strcmp(c->op, "Shape") == 0 && k == 0) {
                const bp_value *v = &c->g->values[s->value];
                act_dims = v->dims;
                act_ndim = v->ndim;
                continue;
            }
            return node_err(c, BP_ERR_UNSUPPORTED,
                            "input '%s' is computed at run time; bitplan folds %s only on constants",
                            s->name, c->op);
        }
        in[k] = &c->consts[s->cst];
    }
    bp_const out;
    bp_status st = bp_onnx_fold(n, in, (int)nin, act_dims, act_ndim, &out);
    if (st) {
        bp_const_clear(&out);
        return node_wrap(c, st);
    }
    int id = add_const(c, &out);
    if (id < 0)
        return BP_ERR_NOMEM;
    return add_sym(c, n->output[0], -1, id);
}

/* Reshape's target from a constant, with the batch rule: the model runs at
 * any batch, so a target whose first entry is the batch (from Shape(x)[0],
 * the static batch with one sample's worth of dims behind it, or -1 with
 * exactly one sample behind it) becomes 0, ONNX's "copy dim 0". A target
 * that moves the batch anywhere else is unsupported. */
static bp_status reshape_target(ctx *c, const bp_const *s, const bp_value *x, int allowzero,
                                bp_attrs *a)
{
    if (s->kind != BP_CONST_INT || s->ndim != 1)
        return node_err(c, BP_ERR_FORMAT, "shape must be a 1-D integer tensor");
    if (s->numel < 1 || s->numel > BP_MAX_DIMS)
        return node_err(c, BP_ERR_UNSUPPORTED, "reshape to %zu dimensions", s->numel);
    a->nshape = (int)s->numel;
    for (int k = 0; k < a->nshape; k++) {
        a->shape[k] = s->i[k];
        if (s->batch[k] && k > 0)
            return node_err(c, BP_ERR_UNSUPPORTED,
                            "the batch size ends up at position %d of the target shape; bitplan keeps the batch in dimension 0",
                            k);
        if (a->shape[k] < -1 || a->shape[k] > ((int64_t)1 << 31))
            return node_err(c, BP_ERR_FORMAT, "bad target dimension %lld", (long long)a->shape[k]);
        if (a->shape[k] == 0 && allowzero)
            return node_err(c, BP_ERR_UNSUPPORTED, "allowzero=1 with a zero in the target shape");
    }
    if (s->batch[0] || a->shape[0] == 0) {
        a->shape[0] = 0;
        return BP_OK;
    }
    int64_t per_sample = 1;
    for (int k = 1; k < x->ndim; k++)
        per_sample *= x->dims[k];
    int64_t rest = 1;
    int infer = 0;
    for (int k = 1; k < a->nshape; k++) {
        int64_t d = a->shape[k];
        if (d == 0)
            d = k < x->ndim ? x->dims[k] : -2;
        if (d == -1)
            infer = 1;
        else if (d < 0)
            return node_err(c, BP_ERR_SHAPE, "0 at position %d copies no input dimension", k);
        else
            rest *= d;
    }
    int one_sample = infer ? rest > 0 && per_sample % rest == 0 : rest == per_sample;
    if ((a->shape[0] == -1 && !infer && rest == per_sample) ||
        (x->dims[0] > 0 && a->shape[0] == x->dims[0] && one_sample)) {
        a->shape[0] = 0;
        return BP_OK;
    }
    return node_err(c, BP_ERR_UNSUPPORTED,
                    "target shape starts with %lld, which changes the batch dimension of a (%lld, ...) input; bitplan keeps the batch in dimension 0",
                    (long long)a->shape[0], (long long)x->dims[0]);
}

/* Adds the IR node for n with inputs in[0..nin) and records its output. */
static bp_status emit(ctx *c, const Onnx__NodeProto *n, bp_op op, const int *in, int nin,
                      const bp_attrs *a)
{
    int out = bp_graph_add_node(c->g, op, c->node_name, in, nin, n->output[0], a);
    if (out < 0)
        return node_wrap(c, BP_ERR_SHAPE);
    return add_sym(c, n->output[0], out, -1);
}

/* Only the first output is supported (BN training statistics, MaxPool
 * indices and Dropout masks are not). */
static bp_status one_output(ctx *c, const Onnx__NodeProto *n)
{
    for (size_t k = 1; k < n->n_output; k++)
        if (n->output[k] && n->output[k][0])
            return node_err(c, BP_ERR_UNSUPPORTED, "output %zu ('%s') is not supported (only the first output)",
                            k, n->output[k]);
    return BP_OK;
}

static bp_status need_4d(ctx *c, int x, const char *what)
{
    const bp_value *v = &c->g->values[x];
    if (v->ndim != 4)
        return node_err(c, BP_ERR_UNSUPPORTED, "%s on a %d-D input (only 2-D, i.e. NCHW, is supported)",
                        what, v->ndim);
    for (int k = 2; k < 4; k++)
        if (v->dims[k] < 1)
            return node_err(c, BP_ERR_UNSUPPORTED, "%s needs static spatial dimensions", what);
    return BP_OK;
}

static bp_status load_conv(ctx *c, const Onnx__NodeProto *n)
{
    int in[3], nin = n->n_input > 2 && n->input[2][0] ? 3 : 2;
    static const char *const roles[3] = {NULL, "weight", "bias"};
    bp_status st;
    for (int k = 0; k < nin; k++)
        if ((st = operand_named(c, n, (size_t)k, 1, roles[k], &in[k])))
            return st;
    if ((st = need_4d(c, in[0], "Conv")))
        return st;
    const bp_value *w = &c->g->values[in[1]];
    if (w->ndim != 4)
        return node_err(c, BP_ERR_UNSUPPORTED, "weight is %d-D (only 2-D convolution is supported)", w->ndim);
    if (w->kind != BP_VAL_PARAM)
        return node_err(c, BP_ERR_UNSUPPORTED, "weight '%s' must be an initializer", w->name);
    bp_attrs a = bp_attrs_default();
    if (attr_ints(n, "kernel_shape", a.kernel, 2) < 0)
        return node_err(c, BP_ERR_UNSUPPORTED, "kernel_shape must have 2 entries");
    if (!a.kernel[0]) {
        a.kernel[0] = (int)w->dims[2];
        a.kernel[1] = (int)w->dims[3];
    }
    a.group = (int)attr_i(n, "group", 1);
    if ((st = window_attrs(c, n, &c->g->values[in[0]], &a)))
        return st;
    return emit(c, n, BP_OP_CONV, in, nin, &a);
}

static bp_status load_pool(ctx *c, const Onnx__NodeProto *n, bp_op op)
{
    int x;
    bp_status st = operand(c, n, 0, 1, &x);
    if (st || (st = one_output(c, n)) || (st = need_4d(c, x, c->op)))
        return st;
    bp_attrs a = bp_attrs_default();
    int r = attr_ints(n, "kernel_shape", a.kernel, 2);
    if (r <= 0)
        return node_err(c, r ? BP_ERR_UNSUPPORTED : BP_ERR_FORMAT,
                        r ? "kernel_shape must have 2 entries (2-D pooling only)" : "kernel_shape is missing");
    a.ceil_mode = (int)attr_i(n, "ceil_mode", 0);
    a.count_include_pad = (int)attr_i(n, "count_include_pad", 0);
    if (op == BP_OP_MAXPOOL && attr_i(n, "storage_order", 0) != 0)
        return node_err(c, BP_ERR_UNSUPPORTED, "storage_order=1");
    if ((st = window_attrs(c, n, &c->g->values[x], &a)))
        return st;
    return emit(c, n, op, &x, 1, &a);
}

static bp_status load_gemm(ctx *c, const Onnx__NodeProto *n)
{
    int in[3], nin = n->n_input > 2 && n->input[2][0] ? 3 : 2;
    static const char *const roles[3] = {NULL, "weight", "bias"};
    bp_status st;
    for (int k = 0; k < nin; k++)
        if ((st = operand_named(c, n, (size_t)k, 1, roles[k], &in[k])))
            return st;
    bp_attrs a = bp_attrs_default();
    a.trans_a = (int)attr_i(n, "transA", 0);
    a.trans_b = (int)attr_i(n, "transB", 0);
    a.alpha = attr_f(n, "alpha", 1.0f);
    a.beta = attr_f(n, "beta", 1.0f);
    return emit(c, n, BP_OP_GEMM, in, nin, &a);
}

static bp_status load_add(ctx *c, const Onnx__NodeProto *n)
{
    int in[2];
    bp_status st;
    for (int k = 0; k < 2; k++)
        if ((st = operand(c, n, (size_t)k, 1, &in[k])))
            return st;
    int p0 = c->g->values[in[0]].kind == BP_VAL_PARAM, p1 = c->g->values[in[1]].kind == BP_VAL_PARAM;
    if (p0 && p1)
        return node_err(c, BP_ERR_UNSUPPORTED, "both operands are constants");
    if (p0) { /* keep the batch-carrying activation first; addition commutes */
        int t = in[0];
        in[0] = in[1];
        in[1] = t;
    }
    return emit(c, n, BP_OP_ADD, in, 2, NULL);
}

static bp_status load_bn(ctx *c, const Onnx__NodeProto *n)
{
    if (attr_i(n, "training_mode", 0) != 0)
        return node_err(c, BP_ERR_UNSUPPORTED, "training_mode=1 (export the model in eval mode)");
    if (attr_i(n, "spatial", 1) != 1)
        return node_err(c, BP_ERR_UNSUPPORTED, "spatial=0");
    for (size_t k = 1; k < n->n_output; k++)
        if (n->output[k] && n->output[k][0])
            return node_err(c, BP_ERR_UNSUPPORTED,
                            "training-mode outputs (running mean/var); export the model in eval mode");
    bp_status st;
    if (n->n_input != 5)
        return node_err(c, BP_ERR_FORMAT, "needs 5 inputs (x, scale, B, mean, var), has %zu", n->n_input);
    int in[5];
    for (int k = 0; k < 5; k++)
        if ((st = operand(c, n, (size_t)k, k < 3, &in[k])))
            return st;
    for (int k = 1; k < 5; k++)
        if (c->g->values[in[k]].kind != BP_VAL_PARAM)
            return node_err(c, BP_ERR_UNSUPPORTED, "input '%s' must be an initializer",
                            c->g->values[in[k]].name);
    bp_attrs a = bp_attrs_default();
    a.eps = attr_f(n, "epsilon", 1e-5f);
    a.momentum = attr_f(n, "momentum", 0.9f);
    return emit(c, n, BP_OP_BN, in, 5, &a);
}

static bp_status load_clip(ctx *c, const Onnx__NodeProto *n)
{
    int x;
    bp_status st = operand(c, n, 0, 1, &x);
    if (st)
        return st;
    bp_attrs a = bp_attrs_default();
    a.clip_min = attr_f(n, "min", -INFINITY); /* opset < 11 */
    a.clip_max = attr_f(n, "max", INFINITY);
    if ((st = scalar_input(c, n, 1, &a.clip_min)) || (st = scalar_input(c, n, 2, &a.clip_max)))
        return st;
    return emit(c, n, BP_OP_CLIP, &x, 1, &a);
}

static bp_status load_flatten(ctx *c, const Onnx__NodeProto *n)
{
    int x;
    bp_status st = operand(c, n, 0, 1, &x);
    if (st)
        return st;
    bp_attrs a = bp_attrs_default();
    int64_t axis = attr_i(n, "axis", 1), nd = c->g->values[x].ndim;
    if (axis < 0)
        axis += nd;
    if (axis == 0)
        return node_err(c, BP_ERR_UNSUPPORTED,
                        "axis 0 folds the batch into the features; bitplan keeps the batch in dimension 0");
    a.axis = (int)axis;
    return emit(c, n, BP_OP_FLATTEN, &x, 1, &a);
}

static bp_status load_reshape(ctx *c, const Onnx__NodeProto *n)
{
    int x;
    bp_status st = operand(c, n, 0, 1, &x);
    if (st)
        return st;
    bp_attrs a = bp_attrs_default();
    const bp_const *target = NULL;
    bp_const from_attr;
    memset(&from_attr, 0, sizeof from_attr);
    sym *s;
    if ((st = input_sym(c, n, 1, &s)))
        return st;
    if (s) {
        if (s->cst < 0)
            return node_err(c, BP_ERR_UNSUPPORTED,
                            "target shape '%s' is computed at run time and could not be folded", s->name);
        target = &c->consts[s->cst];
    } else {
        const Onnx__AttributeProto *sa = bp_onnx_attr(n, "shape"); /* opset < 5 */
        if (!sa)
            return node_err(c, BP_ERR_FORMAT, "no target shape");
        int64_t len = (int64_t)sa->n_ints;
        if ((st = bp_const_alloc(&from_attr, BP_CONST_INT, 1, &len)))
            return node_wrap(c, st);
        memcpy(from_attr.i, sa->ints, sa->n_ints * sizeof(int64_t));
        target = &from_attr;
    }
    st = reshape_target(c, target, &c->g->values[x], (int)attr_i(n, "allowzero", 0), &a);
    bp_const_clear(&from_attr);
    if (st)
        return st;
    return emit(c, n, BP_OP_RESHAPE, &x, 1, &a);
}

/* Unary ops with no attributes we need. */
static bp_status load_unary(ctx *c, const Onnx__NodeProto *n, bp_op op)
{
    int x;
    bp_status st = operand(c, n, 0, 1, &x);
    if (st || (st = one_output(c, n)))
        return st;
    return emit(c, n, op, &x, 1, NULL);
}

static bp_status load_node(ctx *c, const Onnx__NodeProto *n)
{
    const char *op = c->op;
    if (n->domain && n->domain[0] && strcmp(n->domain, "ai.onnx") != 0)
        return node_err(c, BP_ERR_UNSUPPORTED, "op domain '%s' is not supported", n->domain);
    static const char *const graph_ops[] = {
        "Identity", "Dropout", "Conv", "Gemm", "MatMul", "Add", "BatchNormalization", "Relu", "Clip",
        "MaxPool", "AveragePool", "GlobalAveragePool", "Flatten", "Reshape"};
    int known = is_fold_op(op);
    for (size_t k = 0; !known && k < sizeof graph_ops / sizeof *graph_ops; k++)
        known = strcmp(op, graph_ops[k]) == 0;
    if (!known)
        return node_err(c, BP_ERR_UNSUPPORTED, "unsupported op");
    if (n->n_output < 1 || !n->output[0][0])
        return node_err(c, BP_ERR_FORMAT, "node has no output");
    if (is_fold_op(op))
        return load_fold(c, n);
    /* Identity of a constant (exporters write these for shared weights)
     * aliases the constant. */
    if (strcmp(op, "Identity") == 0 || strcmp(op, "Dropout") == 0) {
        sym *s;
        bp_status st = input_sym(c, n, 0, &s);
        if (st)
            return st;
        if (s && s->cst >= 0)
            return add_sym(c, n->output[0], -1, s->cst);
        if (strcmp(op, "Dropout") == 0) {
            sym *mode;
            if ((st = input_sym(c, n, 2, &mode)))
                return st;
            if (mode && (mode->cst < 0 || c->consts[mode->cst].kind != BP_CONST_INT ||
                         c->consts[mode->cst].numel != 1 || c->consts[mode->cst].i[0] != 0))
                return node_err(c, BP_ERR_UNSUPPORTED, "Dropout in training mode");
        }
        return load_unary(c, n, BP_OP_IDENTITY);
    }
    if (strcmp(op, "Conv") == 0)
        return load_conv(c, n);
    if (strcmp(op, "Gemm") == 0)
        return load_gemm(c, n);
    if (strcmp(op, "MatMul") == 0) {
        int in[2];
        bp_status st;
        for (int k = 0; k < 2; k++)
            if ((st = operand(c, n, (size_t)k, 1, &in[k])))
                return st;
        return emit(c, n, BP_OP_MATMUL, in, 2, NULL);
    }
    if (strcmp(op, "Add") == 0)
        return load_add(c, n);
    if (strcmp(op, "BatchNormalization") == 0)
        return load_bn(c, n);
    if (strcmp(op, "Relu") == 0)
        return load_unary(c, n, BP_OP_RELU);
    if (strcmp(op, "Clip") == 0)
        return load_clip(c, n);
    if (strcmp(op, "MaxPool") == 0)
        return load_pool(c, n, BP_OP_MAXPOOL);
    if (strcmp(op, "AveragePool") == 0)
        return load_pool(c, n, BP_OP_AVGPOOL);
    if (strcmp(op, "GlobalAveragePool") == 0) {
        int x;
        bp_status st = operand(c, n, 0, 1, &x);
        if (st || (st = need_4d(c, x, "GlobalAveragePool")))
            return st;
        return load_unary(c, n, BP_OP_GAP);
    }
    if (strcmp(op, "Flatten") == 0)
        return load_flatten(c, n);
    if (strcmp(op, "Reshape") == 0)
        return load_reshape(c, n);
    return node_err(c, BP_ERR_UNSUPPORTED, "unsupported op");
}

/* ---- graph input ---------------------------------------------------------- */

static bp_status load_input(ctx *c, const Onnx__ValueInfoProto *vi)
{
    const char *name = vi->name ? vi->name : "";
    const Onnx__TypeProto *tp = vi->type;
    if (!tp || tp->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !tp->tensor_type)
        return bp_error(BP_ERR_UNSUPPORTED, "%s: graph input '%s' is not a tensor", c->file, name);
    const Onnx__TypeProto__Tensor *tt = tp->tensor_type;
    if (tt->elem_type != ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT)
        return bp_error(BP_ERR_UNSUPPORTED, "%s: graph input '%s' has type %s (only float is supported)",
                        c->file, name, bp_onnx_dtype_name(tt->elem_type));
    if (!tt->shape)
        return bp_error(BP_ERR_UNSUPPORTED, "%s: graph input '%s' has no shape", c->file, name);
    if (tt->shape->n_dim < 1 || tt->shape->n_dim > BP_MAX_DIMS)
        return bp_error(BP_ERR_UNSUPPORTED, "%s: graph input '%s' has %zu dimensions (1 to %d supported)",
                        c->file, name, tt->shape->n_dim, BP_MAX_DIMS);
    int64_t dims[BP_MAX_DIMS];
    for (size_t k = 0; k < tt->shape->n_dim; k++) {
        const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[k];
        int known = d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE && d->dim_value > 0;
        if (!known && k > 0)
            return bp_error(BP_ERR_UNSUPPORTED,
                            "%s: graph input '%s': dimension %zu is not static (only the batch, dimension 0, may be symbolic)",
                            c->file, name, k);
        dims[k] = known ? d->dim_value : -1;
        if (dims[k] > ((int64_t)1 << 31))
            return bp_error(BP_ERR_FORMAT, "%s: graph input '%s': dimension %zu is %lld", c->file, name, k,
                            (long long)dims[k]);
    }
    int id = bp_graph_add_input(c->g, name, (int)tt->shape->n_dim, dims);
    if (id < 0)
        return bp_error_wrap(BP_ERR_FORMAT, "%s", c->file);
    return add_sym(c, name, id, -1);
}

/* ---- model ------------------------------------------------------------------ */

static bp_status load_model(ctx *c, const Onnx__ModelProto *m)
{
    const Onnx__GraphProto *gp = m->graph;
    if (!gp)
        return bp_error(BP_ERR_FORMAT, "%s: no graph in the file (empty, or not an ONNX model)", c->file);
    int has_opset = 0;
    for (size_t k = 0; k < m->n_opset_import; k++)
        if (!m->opset_import[k]->domain || !m->opset_import[k]->domain[0] ||
            strcmp(m->opset_import[k]->domain, "ai.onnx") == 0)
            has_opset = 1;
    if (!has_opset)
        return bp_error(BP_ERR_FORMAT, "%s: no opset_import for the default ONNX domain", c->file);

    bp_status st;
    for (size_t k = 0; k < gp->n_initializer; k++) {
        const Onnx__TensorProto *t = gp->initializer[k];
        const char *name = t->name ? t->name : "";
        if (!name[0])
            return bp_error(BP_ERR_FORMAT, "%s: initializer %zu has no name", c->file, k);
        bp_const k0;
        if ((st = bp_const_from_tensor(t, &k0, name)))
            return bp_error_wrap(st, "%s: initializer", c->file);
        int id = add_const(c, &k0);
        if (id < 0)
            return BP_ERR_NOMEM;
        if ((st = add_sym(c, name, -1, id)))
            return st;
    }
    int ninputs = 0;
    for (size_t k = 0; k < gp->n_input; k++) {
        const char *name = gp->input[k]->name ? gp->input[k]->name : "";
        if (find_sym(c, name)) /* an initializer listed as input: a parameter */
            continue;
        if (++ninputs > 1)
            return bp_error(BP_ERR_UNSUPPORTED,
                            "%s: graph input '%s': more than one input that is not an initializer (bitplan models take one input)",
                            c->file, name);
        if ((st = load_input(c, gp->input[k])))
            return st;
    }
    if (ninputs == 0)
        return bp_error(BP_ERR_FORMAT, "%s: the graph has no input that is not an initializer", c->file);

    char gen[64];
    for (size_t k = 0; k < gp->n_node; k++) {
        const Onnx__NodeProto *n = gp->node[k];
        c->op = n->op_type ? n->op_type : "?";
        if (n->name && n->name[0]) {
            c->node_name = n->name;
        } else {
            snprintf(gen, sizeof gen, "%s_%zu", c->op, k);
            c->node_name = gen;
        }
        if ((st = load_node(c, n)))
            return st;
    }
    if (gp->n_output != 1)
        return bp_error(BP_ERR_UNSUPPORTED, "%s: the graph has %zu outputs (bitplan models have one)",
                        c->file, gp->n_output);
    const char *oname = gp->output[0]->name ? gp->output[0]->name : "";
    sym *s = find_sym(c, oname);
    if (!s)
        return bp_error(BP_ERR_FORMAT, "%s: graph output '%s' is not produced by any node", c->file, oname);
    if (s->value < 0 || c->g->values[s->value].kind != BP_VAL_ACT)
        return bp_error(BP_ERR_UNSUPPORTED, "%s: graph output '%s' is not computed from the input",
                        c->file, oname);
    c->g->output = s->value;
    return BP_OK;
}

bp_status bp_onnx_load_buffer(const void *data, size_t len, const char *name, bp_graph **out)
{
    *out = NULL;
    if (!name)
        name = "<memory>";
    Onnx__ModelProto *m = onnx__model_proto__unpack(NULL, len, data);
    if (!m)
        return bp_error(BP_ERR_FORMAT, "%s: not a valid ONNX model (protobuf parse failed: truncated or corrupt file)",
                        name);
    bp_graph *g = bp_graph_new();
    char *src = strdup(name);
    if (!g || !src) {
        free(src);
        bp_graph_free(g);
        onnx__model_proto__free_unpacked(m, NULL);
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", name);
    }
    free(g->source);
    g->source = src;
    bp_sha256(data, len, g->sha256);
    ctx c = {.file = name, .g = g, .node_name = "", .op = ""};
    bp_status st = load_model(&c, m);
    ctx_free(&c);
    onnx__model_proto__free_unpacked(m, NULL);
    if (st) {
        bp_graph_free(g);
        return st;
    }
    *out = g;
    return BP_OK;
}

bp_status bp_onnx_load(const char *path, bp_graph **out)
{
    *out = NULL;
    char *data;
    size_t len;
    bp_status st = bp_read_file(path, &data, &len);
    if (st)
        return st;
    st = bp_onnx_load_buffer(data, len, path, out);
    free(data);
    return st;
}
