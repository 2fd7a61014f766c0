/* Load-time folding of the constant shape computations exporters write
 * before Reshape: Constant, Shape, Gather, Unsqueeze, Squeeze, Concat, Slice,
 * Cast. Everything is evaluated on small int64 (or float) constants; the
 * per-element batch flag follows the values through, so Reshape can tell a
 * batch size computed from Shape(x)[0] from a literal. See onnx_priv.h. */
#include "core/onnx_priv.h"

#include <stdlib.h>
#include <string.h>

const Onnx__AttributeProto *bp_onnx_attr(const Onnx__NodeProto *node, const char *name)
{
    for (size_t k = 0; k < node->n_attribute; k++)
        if (node->attribute[k]->name && strcmp(node->attribute[k]->name, name) == 0)
            return node->attribute[k];
    return NULL;
}

static int64_t attr_int(const Onnx__NodeProto *n, const char *name, int64_t dflt)
{
    const Onnx__AttributeProto *a = bp_onnx_attr(n, name);
    return a && a->has_i ? a->i : dflt;
}

/* An int list from an attribute, or from a constant input (opset 13 moved
 * several of them, e.g. Unsqueeze axes, into inputs). Returns the count, or -1
 * when neither is given. */
static int int_list(const Onnx__NodeProto *n, const char *attr, const bp_const *in,
                    int64_t *out, int cap)
{
    if (in) {
        if (in->kind != BP_CONST_INT || in->numel > (size_t)cap)
            return -2;
        for (size_t k = 0; k < in->numel; k++)
            out[k] = in->i[k];
        return (int)in->numel;
    }
    const Onnx__AttributeProto *a = bp_onnx_attr(n, attr);
    if (!a)
        return -1;
    if (a->n_ints > (size_t)cap)
        return -2;
    for (size_t k = 0; k < a->n_ints; k++)
        out[k] = a->ints[k];
    return (int)a->n_ints;
}

static size_t numel_of(const int64_t *d, int nd)
{
    size_t n = 1;
    for (int k = 0; k < nd; k++)
        n *= (size_t)d[k];
    return n;
}

/* Copies element src_k of a into element dst_k of out (same kind). */
static void copy_elem(bp_const *out, size_t dk, const bp_const *a, size_t sk)
{
    if (out->kind == BP_CONST_INT) {
        out->i[dk] = a->i[sk];
        out->batch[dk] = a->batch[sk];
    } else {
        out->f[dk] = a->f[sk];
    }
}

static bp_status fold_constant(const Onnx__NodeProto *n, bp_const *out)
{
    const Onnx__AttributeProto *a;
    if ((a = bp_onnx_attr(n, "value")) && a->t)
        return bp_const_from_tensor(a->t, out, n->output[0]);
    int64_t d1;
    if ((a = bp_onnx_attr(n, "value_float")) && a->has_f) {
        bp_status st = bp_const_alloc(out, BP_CONST_FLOAT, 0, NULL);
        if (!st)
            out->f[0] = a->f;
        return st;
    }
    if ((a = bp_onnx_attr(n, "value_floats"))) {
        d1 = (int64_t)a->n_floats;
        bp_status st = bp_const_alloc(out, BP_CONST_FLOAT, 1, &d1);
        if (!st)
            memcpy(out->f, a->floats, a->n_floats * sizeof(float));
        return st;
    }
    if ((a = bp_onnx_attr(n, "value_int")) && a->has_i) {
        bp_status st = bp_const_alloc(out, BP_CONST_INT, 0, NULL);
        if (!st)
            out->i[0] = a->i;
        return st;
    }
    if ((a = bp_onnx_attr(n, "value_ints"))) {
        d1 = (int64_t)a->n_ints;
        bp_status st = bp_const_alloc(out, BP_CONST_INT, 1, &d1);
        if (!st)
            memcpy(out->i, a->ints, a->n_ints * sizeof(int64_t));
        return st;
    }
    return bp_error(BP_ERR_UNSUPPORTED, "Constant without a tensor, float(s) or int(s) value");
}

static bp_status fold_shape(const Onnx__NodeProto *n, const bp_const *x, const int64_t *act_dims,
                            int act_ndim, bp_const *out)
{
    int nd = x ? x->ndim : act_ndim;
    const int64_t *dims = x ? x->dims : act_dims;
    /* opset 15: start/end slice the shape */
    int64_t s = attr_int(n, "start", 0), e = attr_int(n, "end", nd);
    if (s < 0)
        s += nd;
    if (e < 0)
        e += nd;
    s = s < 0 ? 0 : s > nd ? nd : s;
    e = e < s ? s : e > nd ? nd : e;
    int64_t len = e - s;
    bp_status st = bp_const_alloc(out, BP_CONST_INT, 1, &len);
    if (st)
        return st;
    for (int64_t k = s; k < e; k++) {
        if (dims[k] < 0 && !(k == 0 && !x))
            return bp_error(BP_ERR_UNSUPPORTED, "Shape of a tensor whose dimension %lld is not static",
                            (long long)k);
        out->i[k - s] = dims[k];
        /* dims[0] of an activation stands for the batch */
        out->batch[k - s] = !x && k == 0;
    }
    return BP_OK;
}

static bp_status fold_gather(const Onnx__NodeProto *n, const bp_const *d, const bp_const *idx,
                             bp_const *out)
{
    if (idx->kind != BP_CONST_INT)
        return bp_error(BP_ERR_FORMAT, "Gather indices must be integers");
    int64_t axis = attr_int(n, "axis", 0);
    if (axis < 0)
        axis += d->ndim;
    if (axis < 0 || axis >= d->ndim)
        return bp_error(BP_ERR_FORMAT, "Gather axis out of range");
    int ond = d->ndim - 1 + idx->ndim;
    if (ond > BP_MAX_DIMS)
        return bp_error(BP_ERR_UNSUPPORTED, "Gather result with %d dimensions", ond);
    int64_t od[BP_MAX_DIMS];
    int k = 0;
    for (int j = 0; j < axis; j++)
        od[k++] = d->dims[j];
    for (int j = 0; j < idx->ndim; j++)
        od[k++] = idx->dims[j];
    for (int j = (int)axis + 1; j < d->ndim; j++)
        od[k++] = d->dims[j];
    bp_status st = bp_const_alloc(out, d->kind, ond, od);
    if (st)
        return st;
    size_t outer = numel_of(d->dims, (int)axis), inner = numel_of(d->dims + axis + 1,
                                                                     d->ndim - (int)axis - 1);
    int64_t na = d->dims[axis];
    size_t o = 0;
    for (size_t a = 0; a < outer; a++)
        for (size_t q = 0; q < idx->numel; q++) {
            int64_t ix = idx->i[q] < 0 ? idx->i[q] + na : idx->i[q];
            if (ix < 0 || ix >= na)
                return bp_error(BP_ERR_FORMAT, "Gather index %lld out of range", (long long)idx->i[q]);
            for (size_t r = 0; r < inner; r++)
                copy_elem(out, o++, d, (a * (size_t)na + (size_t)ix) * inner + r);
        }
    return BP_OK;
}

static bp_status reshape_copy(const bp_const *x, int nd, const int64_t *dims, bp_const *out)
{
    bp_status st = bp_const_alloc(out, x->kind, nd, dims);
    if (st)
        return st;
    for (size_t k = 0; k < x->numel; k++)
        copy_elem(out, k, x, k);
    return BP_OK;
}

static bp_status fold_unsqueeze(const Onnx__NodeProto *n, const bp_const *x, const bp_const *axes_in,
                                bp_const *out)
{
    int64_t axes[BP_MAX_DIMS];
    int na = int_list(n, "axes", axes_in, axes, BP_MAX_DIMS);
    if (na < 0)
        return bp_error(BP_ERR_FORMAT, "Unsqueeze without usable axes");
    int ond = x->ndim + na;
    if (ond > BP_MAX_DIMS)
        return bp_error(BP_ERR_UNSUPPORTED, "Unsqueeze to %d dimensions", ond);
    char is_new[BP_MAX_DIMS] = {0};
    for (int k = 0; k < na; k++) {
        int64_t a = axes[k] < 0 ? axes[k] + ond : axes[k];
        if (a < 0 || a >= ond || is_new[a])
            return bp_error(BP_ERR_FORMAT, "Unsqueeze axis %lld out of range or repeated",
                            (long long)axes[k]);
        is_new[a] = 1;
    }
    int64_t od[BP_MAX_DIMS];
    for (int k = 0, j = 0; k < ond; k++)
        od[k] = is_new[k] ? 1 : x->dims[j++];
    return reshape_copy(x, ond, od, out);
}

static bp_status fold_squeeze(const Onnx__NodeProto *n, const bp_const *x, const bp_const *axes_in,
                              bp_const *out)
{
    int64_t axes[BP_MAX_DIMS];
    int na = int_list(n, "axes", axes_in, axes, BP_MAX_DIMS);
    if (na == -2)
        return bp_error(BP_ERR_FORMAT, "Squeeze with unusable axes");
    char drop[BP_MAX_DIMS] = {0};
    if (na < 0) {
        for (int k = 0; k < x->ndim; k++)
            drop[k] = x->dims[k] == 1;
    } else {
        for (int k = 0; k < na; k++) {
            int64_t a = axes[k] < 0 ? axes[k] + x->ndim : axes[k];
            if (a < 0 || a >= x->ndim || x->dims[a] != 1)
                return bp_error(BP_ERR_FORMAT, "Squeeze axis %lld is not a dimension of size 1",
                                (long long)axes[k]);
            drop[a] = 1;
        }
    }
    int64_t od[BP_MAX_DIMS];
    int ond = 0;
    for (int k = 0; k < x->ndim; k++)
        if (!drop[k])
            od[ond++] = x->dims[k];
    return reshape_copy(x, ond, od, out);
}

static bp_status fold_concat(const Onnx__NodeProto *n, const bp_const *const *in, int nin,
                             bp_const *out)
{
    const bp_const *x = in[0];
    int64_t axis = attr_int(n, "axis", 0);
    if (axis < 0)
        axis += x->ndim;
    if (axis < 0 || axis >= x->ndim)
        return bp_error(BP_ERR_FORMAT, "Concat axis out of range");
    int64_t od[BP_MAX_DIMS];
    memcpy(od, x->dims, sizeof od);
    od[axis] = 0;
    for (int k = 0; k < nin; k++) {
        if (!in[k] || in[k]->kind != x->kind || in[k]->ndim != x->ndim)
            return bp_error(BP_ERR_FORMAT, "Concat of tensors of different types or ranks");
        for (int j = 0; j < x->ndim; j++)
            if (j != axis && in[k]->dims[j] != x->dims[j])
                return bp_error(BP_ERR_FORMAT, "Concat of tensors whose shapes differ off the axis");
        od[axis] += in[k]->dims[axis];
    }
    bp_status st = bp_const_alloc(out, x->kind, x->ndim, od);
    if (st)
        return st;
    size_t outer = numel_of(x->dims, (int)axis), inner = numel_of(x->dims + axis + 1,
                                                                     x->ndim - (int)axis - 1);
    size_t o = 0;
    for (size_t a = 0; a < outer; a++)
        for (int k = 0; k < nin; k++) {
            size_t blk = (size_t)in[k]->dims[axis] * inner;
            for (size_t r = 0; r < blk; r++)
                copy_elem(out, o++, in[k], a * blk + r);
        }
    return BP_OK;
}

static bp_status fold_slice(const Onnx__NodeProto *n, const bp_const *const *in, int nin,
                            bp_const *out)
{
    const bp_const *x = in[0];
    int64_t starts[BP_MAX_DIMS], ends[BP_MAX_DIMS], axes[BP_MAX_DIMS], steps[BP_MAX_DIMS];
    int ns = int_list(n, "starts", nin > 1 ? in[1] : NULL, starts, BP_MAX_DIMS);
    int ne = int_list(n, "ends", nin > 2 ? in[2] : NULL, ends, BP_MAX_DIMS);
    int na = int_list(n, "axes", nin > 3 ? in[3] : NULL, axes, BP_MAX_DIMS);
    int nst = nin > 4 && in[4] ? int_list(n, "", in[4], steps, BP_MAX_DIMS) : -1;
    if (ns < 0 || ne != ns || (na >= 0 && na != ns) || (nst >= 0 && nst != ns))
        return bp_error(BP_ERR_FORMAT, "Slice with missing or inconsistent starts/ends/axes/steps");
    /* per-dimension start, step and count */
    int64_t st0[BP_MAX_DIMS], stp[BP_MAX_DIMS], cnt[BP_MAX_DIMS];
    for (int j = 0; j < x->ndim; j++) {
        st0[j] = 0;
        stp[j] = 1;
        cnt[j] = x->dims[j];
    }
    for (int k = 0; k < ns; k++) {
        int64_t ax = na >= 0 ? axes[k] : k;
        if (ax < 0)
            ax += x->ndim;
        if (ax < 0 || ax >= x->ndim)
            return bp_error(BP_ERR_FORMAT, "Slice axis out of range");
        int64_t dim = x->dims[ax], step = nst >= 0 ? steps[k] : 1;
        if (step == 0 || step == INT64_MIN)
            return bp_error(BP_ERR_FORMAT, "Slice step %lld", (long long)step);
        int64_t s = starts[k], e = ends[k];
        if (s < 0)
            s += dim;
        if (e < 0)
            e += dim;
        if (step > 0) {
            s = s < 0 ? 0 : s > dim ? dim : s;
            e = e < 0 ? 0 : e > dim ? dim : e;
            cnt[ax] = e > s ? (e - s - 1) / step + 1 : 0;
        } else {
            s = s < 0 ? -1 : s > dim - 1 ? dim - 1 : s;
            e = e < -1 ? -1 : e > dim - 1 ? dim - 1 : e;
            cnt[ax] = s > e ? (s - e - 1) / -step + 1 : 0;
        }
        st0[ax] = s;
        stp[ax] = step;
    }
    bp_status st = bp_const_alloc(out, x->kind, x->ndim, cnt);
    if (st)
        return st;
    int64_t idx[BP_MAX_DIMS] = {0};
    for (size_t o = 0; o < out->numel; o++) {
        size_t src = 0;
        for (int j = 0; j < x->ndim; j++)
            src = src * (size_t)x->dims[j] + (size_t)(st0[j] + idx[j] * stp[j]);
        copy_elem(out, o, x, src);
        for (int j = x->ndim - 1; j >= 0; j--) {
            if (++idx[j] < cnt[j])
                break;
            idx[j] = 0;
        }
    }
    return BP_OK;
}

/* float -> int64 as Cast does it (truncation), without the undefined
 * behaviour of converting NaN or out-of-range values. */
static int64_t float_to_i64(float f)
{
    if (!(f == f))
        return 0;
    if (f >= 9.2e18f)
        return INT64_MAX;
    if (f <= -9.2e18f)
        return INT64_MIN;
    return (int64_t)f;
}

static bp_status fold_cast(const Onnx__NodeProto *n, const bp_const *x, bp_const *out)
{
    int64_t to = attr_int(n, "to", 0);
    bp_const_kind kind;
    switch (to) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
        kind = BP_CONST_INT;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
        kind = BP_CONST_FLOAT;
        break;
    default:
        return bp_error(BP_ERR_UNSUPPORTED, "Cast to %s", bp_onnx_dtype_name((int)to));
    }
    bp_status st = bp_const_alloc(out, kind, x->ndim, x->dims);
    if (st)
        return st;
    for (size_t k = 0; k < x->numel; k++) {
        if (kind == BP_CONST_INT) {
            out->i[k] = x->kind == BP_CONST_INT ? x->i[k] : float_to_i64(x->f[k]);
            out->batch[k] = x->kind == BP_CONST_INT ? x->batch[k] : 0;
        } else {
            out->f[k] = x->kind == BP_CONST_INT ? (float)x->i[k] : x->f[k];
        }
    }
    return BP_OK;
}

/* Transpose of a constant: exporters write Transpose(W) before MatMul for
 * Linear layers without bias. */
static bp_status fold_transpose(const Onnx__NodeProto *n, const bp_const *x, bp_const *out)
{
    int64_t perm[BP_MAX_DIMS];
    const Onnx__AttributeProto *a = bp_onnx_attr(n, "perm");
    if (a) {
        if (a->n_ints != (size_t)x->ndim)
            return bp_error(BP_ERR_FORMAT, "Transpose perm has %zu entries for a %d-D tensor",
                            a->n_ints, x->ndim);
        memcpy(perm, a->ints, a->n_ints * sizeof *perm);
    } else {
        for (int k = 0; k < x->ndim; k++)
            perm[k] = x->ndim - 1 - k;
    }
    int64_t od[BP_MAX_DIMS], xs[BP_MAX_DIMS];
    char seen[BP_MAX_DIMS] = {0};
    for (int k = 0; k < x->ndim; k++) {
        if (perm[k] < 0 || perm[k] >= x->ndim || seen[perm[k]])
            return bp_error(BP_ERR_FORMAT, "Transpose perm is not a permutation");
        seen[perm[k]] = 1;
        od[k] = x->dims[perm[k]];
    }
    /* strides of x */
    int64_t stride = 1;
    for (int k = x->ndim - 1; k >= 0; k--) {
        xs[k] = stride;
        stride *= x->dims[k];
    }
    bp_status st = bp_const_alloc(out, x->kind, x->ndim, od);
    if (st)
        return st;
    int64_t idx[BP_MAX_DIMS] = {0};
    for (size_t o = 0; o < out->numel; o++) {
        size_t src = 0;
        for (int k = 0; k < x->ndim; k++)
            src += (size_t)(idx[k] * xs[perm[k]]);
        copy_elem(out, o, x, src);
        for (int k = x->ndim - 1; k >= 0; k--) {
            if (++idx[k] < od[k])
                break;
            idx[k] = 0;
        }
    }
    return BP_OK;
}

bp_status bp_onnx_fold(const Onnx__NodeProto *n, const bp_const *const *in, int nin,
                       const int64_t *act_dims, int act_ndim, bp_const *out)
{
    const char *op = n->op_type;
    memset(out, 0, sizeof *out);
    out->param = -1;
    if (strcmp(op, "Constant") == 0)
        return fold_constant(n, out);
    if (strcmp(op, "Shape") == 0)
        return fold_shape(n, nin > 0 ? in[0] : NULL, act_dims, act_ndim, out);
    if (nin < 1 || !in[0])
        return bp_error(BP_ERR_FORMAT, "%s without its data input", op);
    for (int k = 0; k < nin; k++)
        if (in[k] && in[k]->kind == BP_CONST_BAD)
            return bp_error(BP_ERR_UNSUPPORTED, "%s on a tensor of type %s", op,
                            bp_onnx_dtype_name(in[k]->dtype));
    if (strcmp(op, "Gather") == 0) {
        if (nin < 2 || !in[1])
            return bp_error(BP_ERR_FORMAT, "Gather without indices");
        return fold_gather(n, in[0], in[1], out);
    }
    if (strcmp(op, "Unsqueeze") == 0)
        return fold_unsqueeze(n, in[0], nin > 1 ? in[1] : NULL, out);
    if (strcmp(op, "Squeeze") == 0)
        return fold_squeeze(n, in[0], nin > 1 ? in[1] : NULL, out);
    if (strcmp(op, "Concat") == 0)
        return fold_concat(n, in, nin, out);
    if (strcmp(op, "Slice") == 0)
        return fold_slice(n, in, nin, out);
    if (strcmp(op, "Cast") == 0)
        return fold_cast(n, in[0], out);
    if (strcmp(op, "Transpose") == 0)
        return fold_transpose(n, in[0], out);
    if (strcmp(op, "Identity") == 0)
        return reshape_copy(in[0], in[0]->ndim, in[0]->dims, out);
    return bp_error(BP_ERR_UNSUPPORTED, "unsupported op");
}
