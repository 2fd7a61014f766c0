/* IDX files (the MNIST / Fashion-MNIST format): header parsing.
 *
 * Layout: a big-endian magic 0x0000TTDD (TT = element type, 0x08 = unsigned
 * byte; DD = number of dimensions), DD big-endian uint32 sizes, then the
 * elements in C order. Records are the slices along the first dimension. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "core/data_src.h"

static uint32_t be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* What a magic number most likely is, for the message when it is wrong. */
static const char *magic_hint(uint32_t m)
{
    if (m == 0x00000803)
        return " (that is an IDX image file)";
    if (m == 0x00000801)
        return " (that is an IDX label file)";
    if ((m >> 16) == 0x9353) /* "\x93N" */
        return " (that looks like a .npy file: use npy:X.npy,Y.npy)";
    if ((m >> 8) == 0)
        return "";
    if ((m & 0xffff0000u) != 0)
        return " (not an IDX file)";
    return " (an IDX type bitplan does not read: only unsigned bytes)";
}

bp_status bp_idx_open(const char *path, uint32_t magic, bp_arr *a)
{
    memset(a, 0, sizeof *a);
    a->path = strdup(path);
    if (!a->path)
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    errno = 0;
    a->gz = gzopen(path, "rb");
    if (!a->gz) {
        bp_status st = bp_error(BP_ERR_IO, "%s: cannot open: %s", path,
                                errno ? strerror(errno) : "out of memory");
        bp_arr_close(a);
        return st;
    }
    gzbuffer(a->gz, 1 << 16);
    unsigned char hdr[4 + 4 * 3];
    int ndim = (int)(magic & 0xff);
    size_t need = 4 + 4 * (size_t)ndim;
    int got = gzread(a->gz, hdr, 4);
    bp_status st = BP_OK;
    if (got < 4) {
        st = bp_error(BP_ERR_FORMAT, "%s: too short for an IDX header (%d bytes)", path,
                      got < 0 ? 0 : got);
        goto fail;
    }
    uint32_t m = be32(hdr);
    if (m != magic) {
        st = bp_error(BP_ERR_FORMAT, "%s: bad magic 0x%08x, expected 0x%08x for IDX %s%s", path, m,
                      magic, magic == 0x00000803 ? "images" : "labels", magic_hint(m));
        goto fail;
    }
    got = gzread(a->gz, hdr + 4, (unsigned)(need - 4));
    if (got < 0 || (size_t)got < need - 4) {
        st = bp_error(BP_ERR_FORMAT, "%s: truncated IDX header (%zu bytes needed)", path, need);
        goto fail;
    }
    a->dtype = BP_DT_U8;
    a->ndim = ndim;
    a->rec_elems = 1;
    for (int i = 0; i < ndim; i++) {
        uint32_t d = be32(hdr + 4 + 4 * i);
        if (d > (uint32_t)INT32_MAX || (i > 0 && d == 0)) {
            st = bp_error(BP_ERR_FORMAT, "%s: IDX dimension %d has a bad size %u", path, i, d);
            goto fail;
        }
        a->dims[i] = d;
        if (i > 0)
            a->rec_elems *= d;
        if (a->rec_elems > (1u << 28)) {
            st = bp_error(BP_ERR_FORMAT, "%s: implausibly large samples (over 2^28 pixels each)", path);
            goto fail;
        }
    }
    a->rec_bytes = a->rec_elems;
    a->data_start = (int64_t)need;
    a->pos = 0;
    st = bp_arr_check_length(a);
    if (st)
        goto fail;
    return BP_OK;
fail:
    bp_arr_close(a);
    return st;
}
