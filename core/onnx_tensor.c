/* TensorProto → constant conversion (see onnx_priv.h) and the standalone
 * tensor file reader (onnx_tensor.h). */
#include "core/onnx_priv.h"
#include "core/onnx_tensor.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

/* ONNX raw_data is little-endian; reader and writer copy it as host bytes. */
_Static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "bitplan's ONNX code assumes a little-endian host");

const char *bp_onnx_dtype_name(int dtype)
{
    static const char *const names[] = {
        "undefined", "float", "uint8", "int8", "uint16", "int16", "int32", "int64",
        "string", "bool", "float16", "double", "uint32", "uint64", "complex64",
        "complex128", "bfloat16",
    };
    return dtype >= 0 && dtype < (int)(sizeof names / sizeof *names) ? names[dtype] : "unknown";
}

void bp_const_clear(bp_const *c)
{
    if (!c)
        return;
    free(c->i);
    free(c->f);
    free(c->batch);
    c->i = NULL;
    c->f = NULL;
    c->batch = NULL;
}

bp_status bp_const_alloc(bp_const *c, bp_const_kind kind, int ndim, const int64_t *dims)
{
    memset(c, 0, sizeof *c);
    c->param = -1;
    c->kind = kind;
    c->dtype = kind == BP_CONST_FLOAT ? ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT
                                      : ONNX__TENSOR_PROTO__DATA_TYPE__INT64;
    if (ndim < 0 || ndim > BP_MAX_DIMS)
        return bp_error(BP_ERR_UNSUPPORTED, "tensor with %d dimensions (at most %d supported)",
                        ndim, BP_MAX_DIMS);
    c->ndim = ndim;
    size_t n = 1;
    for (int k = 0; k < ndim; k++) {
        if (dims[k] < 0)
            return bp_error(BP_ERR_FORMAT, "tensor with a negative dimension");
        c->dims[k] = dims[k];
        n *= (size_t)dims[k];
    }
    c->numel = n;
    size_t cnt = n ? n : 1;
    if (kind == BP_CONST_FLOAT) {
        c->f = calloc(cnt, sizeof *c->f);
        if (!c->f)
            return bp_error(BP_ERR_NOMEM, "out of memory for a %zu-element tensor", n);
    } else if (kind == BP_CONST_INT) {
        c->i = calloc(cnt, sizeof *c->i);
        c->batch = calloc(cnt, 1);
        if (!c->i || !c->batch) {
            bp_const_clear(c);
            return bp_error(BP_ERR_NOMEM, "out of memory for a %zu-element tensor", n);
        }
    }
    return BP_OK;
}

/* IEEE half → float, subnormals and infinities included. */
static float half_to_float(uint16_t h)
{
    int sign = h >> 15, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    float v;
    if (exp == 0)
        v = ldexpf((float)man, -24);
    else if (exp == 31)
        v = man ? NAN : INFINITY;
    else
        v = ldexpf((float)(man | 0x400), exp - 25);
    return sign ? -v : v;
}

static float bf16_to_float(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Bytes per element of the fixed-size types we read from raw_data. */
static size_t dtype_size(int dt)
{
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
        return 4;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: case ONNX__TENSOR_PROTO__DATA_TYPE__INT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
        return 8;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
        return 2;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        return 1;
    default:
        return 0;
    }
}

/* Element k of a raw little-endian buffer as double (float types) and as
 * int64 (integer types; the other output is a by-product). */
static double raw_get(const uint8_t *p, int dt, size_t k, int64_t *iv)
{
    int64_t i = 0;
    double d = 0;
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: { float f; memcpy(&f, p + 4 * k, 4); d = f; break; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: { double f; memcpy(&f, p + 8 * k, 8); d = f; break; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: { uint16_t h; memcpy(&h, p + 2 * k, 2); d = half_to_float(h); break; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: { uint16_t h; memcpy(&h, p + 2 * k, 2); d = bf16_to_float(h); break; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: memcpy(&i, p + 8 * k, 8); d = (double)i; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: { uint64_t u; memcpy(&u, p + 8 * k, 8); i = (int64_t)u; d = (double)u; break; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT32: { int32_t v; memcpy(&v, p + 4 * k, 4); i = v; d = v; break; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: { uint32_t v; memcpy(&v, p + 4 * k, 4); i = v; d = v; break; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: { int16_t v; memcpy(&v, p + 2 * k, 2); i = v; d = v; break; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16: { uint16_t v; memcpy(&v, p + 2 * k, 2); i = v; d = v; break; }
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT8: i = (int8_t)p[k]; d = (double)i; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL: i = p[k]; d = (double)i; break;
    }
    *iv = i;
    return d;
}

/* Element k from the typed repeated fields, where ONNX puts each type:
 * float_data (float), double_data, int64_data, uint64_data, and int32_data
 * for every narrower integer type, bool and the 16-bit floats (as bits). */
static bp_status typed_get(const Onnx__TensorProto *t, int dt, size_t numel, size_t k,
                           double *dv, int64_t *iv)
{
    size_t have;
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: have = t->n_float_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: have = t->n_double_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: have = t->n_int64_data; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: have = t->n_uint64_data; break;
    default: have = t->n_int32_data; break;
    }
    if (have != numel)
        return BP_ERR_FORMAT;
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: *dv = t->float_data[k]; *iv = 0; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: *dv = t->double_data[k]; *iv = 0; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: *iv = t->int64_data[k]; *dv = (double)*iv; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32:
        *iv = (int64_t)t->uint64_data[k]; *dv = (double)t->uint64_data[k]; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: *dv = half_to_float((uint16_t)t->int32_data[k]); *iv = 0; break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16: *dv = bf16_to_float((uint16_t)t->int32_data[k]); *iv = 0; break;
    default: *iv = t->int32_data[k]; *dv = (double)*iv; break;
    }
    return BP_OK;
}

bp_status bp_const_from_tensor(const Onnx__TensorProto *t, bp_const *c, const char *what)
{
    int dt = t->has_data_type ? t->data_type : 0;
    bp_const_kind kind;
    switch (dt) {
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE:
    case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT16: case ONNX__TENSOR_PROTO__DATA_TYPE__BFLOAT16:
        kind = BP_CONST_FLOAT;
        break;
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: case ONNX__TENSOR_PROTO__DATA_TYPE__INT32:
    case ONNX__TENSOR_PROTO__DATA_TYPE__INT16: case ONNX__TENSOR_PROTO__DATA_TYPE__INT8:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT8: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT16:
    case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64:
    case ONNX__TENSOR_PROTO__DATA_TYPE__BOOL:
        kind = BP_CONST_INT;
        break;
    default:
        memset(c, 0, sizeof *c);
        c->param = -1;
        c->kind = BP_CONST_BAD;
        c->dtype = dt;
        return BP_OK;
    }
    if (t->n_dims > BP_MAX_DIMS)
        return bp_error(BP_ERR_UNSUPPORTED, "tensor '%s' has %zu dimensions (at most %d supported)",
                        what, t->n_dims, BP_MAX_DIMS);
    if (t->has_data_location && t->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL)
        return bp_error(BP_ERR_UNSUPPORTED, "tensor '%s' keeps its data in an external file", what);
    for (size_t k = 0; k < t->n_dims; k++)
        if (t->dims[k] < 0 || t->dims[k] > ((int64_t)1 << 31))
            return bp_error(BP_ERR_FORMAT, "tensor '%s' has a bad dimension %lld", what,
                            (long long)t->dims[k]);
    /* The element count the shape claims must be what the file holds before
     * anything is allocated: a corrupt shape must not ask for terabytes. */
    size_t numel = 1;
    for (size_t k = 0; k < t->n_dims; k++) {
        if (t->dims[k] && numel > SIZE_MAX / 16 / (size_t)t->dims[k])
            return bp_error(BP_ERR_FORMAT, "tensor '%s': shape too large", what);
        numel *= (size_t)t->dims[k];
    }
    size_t held;
    if (t->has_raw_data && t->raw_data.len > 0) {
        held = dtype_size(dt) ? t->raw_data.len / dtype_size(dt) : 0;
    } else {
        switch (dt) {
        case ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT: held = t->n_float_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__DOUBLE: held = t->n_double_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__INT64: held = t->n_int64_data; break;
        case ONNX__TENSOR_PROTO__DATA_TYPE__UINT64: case ONNX__TENSOR_PROTO__DATA_TYPE__UINT32: held = t->n_uint64_data; break;
        default: held = t->n_int32_data; break;
        }
    }
    if (held != numel)
        return bp_error(BP_ERR_FORMAT, "tensor '%s': its shape needs %zu %s elements, the file holds %zu",
                        what, numel, bp_onnx_dtype_name(dt), held);
    bp_status st = bp_const_alloc(c, kind, (int)t->n_dims, t->dims);
    if (st)
        return bp_error_wrap(st, "tensor '%s'", what);
    c->dtype = dt;
    int raw = t->has_raw_data && t->raw_data.len > 0;
    if (raw && t->raw_data.len != c->numel * dtype_size(dt)) {
        bp_const_clear(c);
        return bp_error(BP_ERR_FORMAT, "tensor '%s': raw_data has %zu bytes, %zu %s elements need %zu",
                        what, t->raw_data.len, c->numel, bp_onnx_dtype_name(dt),
                        c->numel * dtype_size(dt));
    }
    if (raw && dt == ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT) {
        /* the common case (weights): little-endian float32, as the host */
        memcpy(c->f, t->raw_data.data, c->numel * sizeof(float));
        return BP_OK;
    }
    for (size_t k = 0; k < c->numel; k++) {
        double d;
        int64_t iv;
        if (raw) {
            d = raw_get(t->raw_data.data, dt, k, &iv);
        } else if (typed_get(t, dt, c->numel, k, &d, &iv)) {
            bp_const_clear(c);
            return bp_error(BP_ERR_FORMAT, "tensor '%s': %s data does not hold the %zu elements its shape needs",
                            what, bp_onnx_dtype_name(dt), c->numel);
        }
        if (kind == BP_CONST_FLOAT)
            c->f[k] = (float)d;
        else
            c->i[k] = iv;
    }
    return BP_OK;
}

bp_status bp_onnx_tensor_read(const char *path, float **data, int64_t *dims, int *ndim,
                              char **name)
{
    *data = NULL;
    if (name)
        *name = NULL;
    char *buf;
    size_t len;
    bp_status st = bp_read_file(path, &buf, &len);
    if (st)
        return st;
    Onnx__TensorProto *t = onnx__tensor_proto__unpack(NULL, len, (const uint8_t *)buf);
    free(buf);
    if (!t)
        return bp_error(BP_ERR_FORMAT, "%s: not a valid ONNX TensorProto (truncated or corrupt)", path);
    bp_const c;
    st = bp_const_from_tensor(t, &c, t->name && t->name[0] ? t->name : "tensor");
    if (st) {
        onnx__tensor_proto__free_unpacked(t, NULL);
        return bp_error_wrap(st, "%s", path);
    }
    if (c.kind == BP_CONST_BAD) {
        onnx__tensor_proto__free_unpacked(t, NULL);
        return bp_error(BP_ERR_UNSUPPORTED, "%s: tensor of type %s", path,
                        bp_onnx_dtype_name(c.dtype));
    }
    float *f = malloc((c.numel ? c.numel : 1) * sizeof *f);
    if (!f || (name && !(*name = strdup(t->name ? t->name : "")))) {
        free(f);
        bp_const_clear(&c);
        onnx__tensor_proto__free_unpacked(t, NULL);
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t k = 0; k < c.numel; k++)
        f[k] = c.kind == BP_CONST_FLOAT ? c.f[k] : (float)c.i[k];
    *ndim = c.ndim;
    memcpy(dims, c.dims, sizeof(int64_t) * c.ndim);
    *data = f;
    bp_const_clear(&c);
    onnx__tensor_proto__free_unpacked(t, NULL);
    return BP_OK;
}
