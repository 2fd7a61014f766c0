/* .npy files (NumPy's array format): header parsing.
 *
 * Layout: "\x93NUMPY", major and minor version bytes, the header length
 * (uint16 little-endian in 1.0, uint32 in 2.0 and 3.0), then an ASCII Python
 * dict literal such as
 *     {'descr': '<f4', 'fortran_order': False, 'shape': (60000, 28, 28), }
 * padded with spaces and a newline, then the data. Only the three keys
 * matter; the parser reads them wherever they sit in the dict. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/data_src.h"

/* Finds 'key' (in either quote style) and returns a pointer past its colon,
 * or NULL. */
static const char *find_key(const char *h, const char *key)
{
    size_t kl = strlen(key);
    for (const char *p = h; (p = strpbrk(p, "'\"")) != NULL; p++) {
        char q = *p;
        if (strncmp(p + 1, key, kl) == 0 && p[1 + kl] == q) {
            const char *c = p + 2 + kl;
            while (isspace((unsigned char)*c))
                c++;
            return *c == ':' ? c + 1 : NULL;
        }
    }
    return NULL;
}

static const char *skip_ws(const char *p)
{
    while (isspace((unsigned char)*p))
        p++;
    return p;
}

/* Parses the descr string value into buf. */
static int parse_str(const char *p, char *buf, size_t len)
{
    p = skip_ws(p);
    char q = *p;
    if (q != '\'' && q != '"')
        return -1;
    const char *e = strchr(p + 1, q);
    if (!e || (size_t)(e - p - 1) >= len)
        return -1;
    memcpy(buf, p + 1, (size_t)(e - p - 1));
    buf[e - p - 1] = 0;
    return 0;
}

/* Parses "(a, b, c)" into dims; returns the number of dims or -1. */
static int parse_shape(const char *p, int64_t *dims, int max)
{
    p = skip_ws(p);
    if (*p != '(')
        return -1;
    p++;
    int n = 0;
    for (;;) {
        p = skip_ws(p);
        if (*p == ')')
            return n;
        if (!isdigit((unsigned char)*p) || n == max)
            return -1;
        char *e;
        errno = 0;
        long long v = strtoll(p, &e, 10);
        if (errno || v < 0 || v > INT32_MAX)
            return -1;
        dims[n++] = v;
        p = skip_ws(e);
        /* Python writes a 1-tuple as "(5,)"; an 'L' suffix came from Python 2. */
        if (*p == 'L')
            p = skip_ws(p + 1);
        if (*p == ',')
            p++;
        else if (*p != ')')
            return -1;
    }
}

bp_status bp_npy_open(const char *path, int labels, bp_arr *a)
{
    memset(a, 0, sizeof *a);
    char *hdr = NULL;
    bp_status st = BP_OK;
    a->path = strdup(path);
    if (!a->path)
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    errno = 0;
    a->gz = gzopen(path, "rb");
    if (!a->gz) {
        st = bp_error(BP_ERR_IO, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        goto fail;
    }
    gzbuffer(a->gz, 1 << 16);
    unsigned char pre[12];
    int got = gzread(a->gz, pre, 10);
    if (got < 10 || memcmp(pre, "\x93NUMPY", 6) != 0) {
        st = bp_error(BP_ERR_FORMAT, "%s: not a .npy file (no \\x93NUMPY magic)", path);
        goto fail;
    }
    int major = pre[6];
    size_t hlen, off;
    if (major == 1) {
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        off = 10;
    } else if (major == 2 || major == 3) {
        if (gzread(a->gz, pre + 10, 2) != 2) {
            st = bp_error(BP_ERR_FORMAT, "%s: truncated .npy header", path);
            goto fail;
        }
        hlen = (size_t)pre[8] | (size_t)pre[9] << 8 | (size_t)pre[10] << 16 | (size_t)pre[11] << 24;
        off = 12;
    } else {
        st = bp_error(BP_ERR_UNSUPPORTED, "%s: .npy format version %d.%d (1.0 to 3.0 are read)", path,
                      major, pre[7]);
        goto fail;
    }
    if (hlen == 0 || hlen > (1u << 20)) {
        st = bp_error(BP_ERR_FORMAT, "%s: implausible .npy header length %zu", path, hlen);
        goto fail;
    }
    hdr = malloc(hlen + 1);
    if (!hdr) {
        st = bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
        goto fail;
    }
    got = gzread(a->gz, hdr, (unsigned)hlen);
    if (got < 0 || (size_t)got < hlen) {
        st = bp_error(BP_ERR_FORMAT, "%s: truncated .npy header (%zu bytes announced)", path, hlen);
        goto fail;
    }
    hdr[hlen] = 0;

    char descr[16];
    const char *p = find_key(hdr, "descr");
    if (!p || parse_str(p, descr, sizeof descr)) {
        st = bp_error(BP_ERR_FORMAT, "%s: .npy header has no readable 'descr'", path);
        goto fail;
    }
    p = find_key(hdr, "fortran_order");
    if (!p) {
        st = bp_error(BP_ERR_FORMAT, "%s: .npy header has no 'fortran_order'", path);
        goto fail;
    }
    p = skip_ws(p);
    if (strncmp(p, "True", 4) == 0) {
        st = bp_error(BP_ERR_UNSUPPORTED, "%s: Fortran-order array; save it in C order "
                      "(numpy.ascontiguousarray)", path);
        goto fail;
    }
    if (strncmp(p, "False", 5) != 0) {
        st = bp_error(BP_ERR_FORMAT, "%s: .npy 'fortran_order' is neither True nor False", path);
        goto fail;
    }
    p = find_key(hdr, "shape");
    int nd = p ? parse_shape(p, a->dims, 4) : -1;
    if (nd < 0) {
        st = bp_error(BP_ERR_FORMAT, "%s: .npy 'shape' missing, malformed or over 4 dimensions", path);
        goto fail;
    }
    a->ndim = nd;

    /* dtypes: '|u1' and 'u1' are the same; '<' is little-endian. This host
     * reads little-endian data directly. */
    const char *d = descr[0] == '|' || descr[0] == '<' || descr[0] == '=' ? descr + 1 : descr;
    int little = descr[0] != '>';
    if (!strcmp(d, "u1"))
        a->dtype = BP_DT_U8;
    else if (little && !strcmp(d, "f4") && !labels)
        a->dtype = BP_DT_F32;
    else if (little && !strcmp(d, "i4") && labels)
        a->dtype = BP_DT_I32;
    else if (little && !strcmp(d, "i8") && labels)
        a->dtype = BP_DT_I64;
    else {
        st = bp_error(BP_ERR_UNSUPPORTED, "%s: dtype '%s' is not read for %s (use %s)", path, descr,
                      labels ? "labels" : "images", labels ? "'<i8', '<i4' or '|u1'" : "'<f4' or '|u1'");
        goto fail;
    }
    if (labels) {
        if (nd < 1 || nd > 2 || (nd == 2 && a->dims[1] != 1)) {
            st = bp_error(BP_ERR_SHAPE, "%s: labels must have shape (N,) or (N, 1), got %d dimensions",
                          path, nd);
            goto fail;
        }
    } else if (nd < 2) {
        st = bp_error(BP_ERR_SHAPE, "%s: samples must have shape (N, D), (N, H, W) or (N, C, H, W), "
                      "got %d dimension%s", path, nd, nd == 1 ? "" : "s");
        goto fail;
    }
    a->rec_elems = 1;
    for (int i = 1; i < nd; i++) {
        if (a->dims[i] == 0) {
            st = bp_error(BP_ERR_SHAPE, "%s: dimension %d is 0", path, i);
            goto fail;
        }
        a->rec_elems *= (size_t)a->dims[i];
        if (a->rec_elems > (1u << 28)) {
            st = bp_error(BP_ERR_FORMAT, "%s: implausibly large samples (over 2^28 elements each)", path);
            goto fail;
        }
    }
    a->rec_bytes = a->rec_elems * bp_dtype_size(a->dtype);
    a->data_start = (int64_t)(off + hlen);
    a->pos = 0;
    free(hdr);
    hdr = NULL;
    st = bp_arr_check_length(a);
    if (st)
        goto fail;
    return BP_OK;
fail:
    free(hdr);
    bp_arr_close(a);
    return st;
}
