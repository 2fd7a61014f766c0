/* Data streams and in-memory data sets over IDX and .npy files (data.h), and
 * the record reader the two formats share (data_src.h). */
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/data.h"
#include "core/data_src.h"

#define FMNIST_DIR "/usr/share/datasets/fashion-mnist"

/* ---- record reader -------------------------------------------------------- */

size_t bp_dtype_size(bp_dtype t)
{
    switch (t) {
    case BP_DT_U8:
        return 1;
    case BP_DT_F32:
    case BP_DT_I32:
        return 4;
    case BP_DT_I64:
        return 8;
    }
    return 1;
}

bp_status bp_arr_check_length(bp_arr *a)
{
    /* Only a plain file's size says how much data it holds; gzip's trailer
     * gives the size modulo 2^32 and is itself missing when cut short. */
    if (!gzdirect(a->gz))
        return BP_OK;
    struct stat sb;
    if (stat(a->path, &sb) != 0)
        return bp_error(BP_ERR_IO, "%s: cannot stat: %s", a->path, strerror(errno));
    int64_t need = a->data_start + a->dims[0] * (int64_t)a->rec_bytes;
    if ((int64_t)sb.st_size < need) {
        int64_t have = ((int64_t)sb.st_size - a->data_start) / (int64_t)a->rec_bytes;
        return bp_error(BP_ERR_FORMAT,
                        "%s: truncated: the header announces %lld records (%lld bytes) but the file "
                        "has %lld bytes, %lld complete record%s",
                        a->path, (long long)a->dims[0], (long long)need, (long long)sb.st_size,
                        (long long)(have < 0 ? 0 : have), have == 1 ? "" : "s");
    }
    return BP_OK;
}

bp_status bp_arr_seek(bp_arr *a, int64_t rec)
{
    if (rec == a->pos)
        return BP_OK;
    z_off_t off = (z_off_t)(a->data_start + rec * (int64_t)a->rec_bytes);
    if (gzseek(a->gz, off, SEEK_SET) != off)
        return bp_error(BP_ERR_FORMAT, "%s: cannot seek to record %lld (file ends early or is corrupt)",
                        a->path, (long long)rec);
    a->pos = rec;
    return BP_OK;
}

bp_status bp_arr_read(bp_arr *a, int64_t n, void *buf)
{
    size_t want = (size_t)n * a->rec_bytes, done = 0;
    while (done < want) {
        size_t chunk = want - done > (1u << 30) ? (1u << 30) : want - done;
        int got = gzread(a->gz, (char *)buf + done, (unsigned)chunk);
        if (got <= 0) {
            int zerr = Z_OK;
            const char *zmsg = got < 0 ? gzerror(a->gz, &zerr) : NULL;
            int64_t bad = a->pos + (int64_t)(done / a->rec_bytes);
            /* the stream position is now unknown: make the next seek real */
            a->pos = -1;
            return bp_error(BP_ERR_FORMAT, "%s: truncated or corrupt at record %lld of %lld%s%s", a->path,
                            (long long)bad, (long long)a->dims[0], zmsg ? ": " : " (file ends early)",
                            zmsg ? zmsg : "");
        }
        done += (size_t)got;
    }
    a->pos += n;
    return BP_OK;
}

void bp_arr_close(bp_arr *a)
{
    if (a->gz)
        gzclose(a->gz);
    free(a->path);
    memset(a, 0, sizeof *a);
}

/* ---- streams -------------------------------------------------------------- */

struct bp_stream {
    bp_arr x, y;
    int c, h, w;
    int n;          /* samples visible after offset and limit */
    int offset;     /* first record read */
    int pos;        /* next visible sample */
    float mean, std;
    void *buf;      /* raw records of one read */
    size_t bufcap;
    void *lbuf;
    size_t lbufcap;
};

bp_data_opts bp_data_opts_default(void)
{
    bp_data_opts o = {BP_FMNIST_MEAN, BP_FMNIST_STD, 0, 0};
    return o;
}

/* Debian ships the .gz files; a user's own copy may be unpacked. */
static bp_status fmnist_path(const char *dir, const char *file, char *out, size_t len)
{
    struct stat sb;
    snprintf(out, len, "%s/%s.gz", dir, file);
    if (stat(out, &sb) == 0)
        return BP_OK;
    snprintf(out, len, "%s/%s", dir, file);
    if (stat(out, &sb) == 0)
        return BP_OK;
    return bp_error(BP_ERR_IO, "%s/%s.gz: not found (install dataset-fashion-mnist, or set "
                    "BP_FASHION_MNIST_DIR)", dir, file);
}

/* Splits "A,B" into two malloc'd strings. */
static bp_status split_pair(const char *spec, const char *rest, char **a, char **b)
{
    const char *comma = strchr(rest, ',');
    if (!comma || comma == rest || !comma[1])
        return bp_error(BP_ERR_ARG, "data spec '%s': expected two files separated by a comma", spec);
    *a = strndup(rest, (size_t)(comma - rest));
    *b = strdup(comma + 1);
    if (!*a || !*b) {
        free(*a);
        free(*b);
        return bp_error(BP_ERR_NOMEM, "out of memory");
    }
    return BP_OK;
}

static bp_status open_files(bp_stream *s, const char *spec)
{
    bp_status st;
    if (strncmp(spec, "fashion-mnist:", 14) == 0) {
        const char *part = spec + 14;
        const char *stem = !strcmp(part, "train") ? "train"
                           : !strcmp(part, "test") || !strcmp(part, "t10k") ? "t10k"
                                                                            : NULL;
        if (!stem)
            return bp_error(BP_ERR_ARG, "data spec '%s': expected fashion-mnist:train or fashion-mnist:test",
                            spec);
        const char *dir = getenv("BP_FASHION_MNIST_DIR");
        if (!dir || !dir[0])
            dir = FMNIST_DIR;
        char ip[4096], lp[4096], f[64];
        snprintf(f, sizeof f, "%s-images-idx3-ubyte", stem);
        if ((st = fmnist_path(dir, f, ip, sizeof ip)))
            return st;
        snprintf(f, sizeof f, "%s-labels-idx1-ubyte", stem);
        if ((st = fmnist_path(dir, f, lp, sizeof lp)))
            return st;
        if ((st = bp_idx_open(ip, 0x00000803, &s->x)))
            return st;
        return bp_idx_open(lp, 0x00000801, &s->y);
    }
    int idx = strncmp(spec, "idx:", 4) == 0, npy = strncmp(spec, "npy:", 4) == 0;
    if (!idx && !npy)
        return bp_error(BP_ERR_ARG, "data spec '%s': expected fashion-mnist:train|test, "
                        "idx:IMAGES,LABELS or npy:X.npy,Y.npy", spec);
    char *a = NULL, *b = NULL;
    if ((st = split_pair(spec, spec + 4, &a, &b)))
        return st;
    if (idx) {
        st = bp_idx_open(a, 0x00000803, &s->x);
        if (!st)
            st = bp_idx_open(b, 0x00000801, &s->y);
    } else {
        st = bp_npy_open(a, 0, &s->x);
        if (!st)
            st = bp_npy_open(b, 1, &s->y);
    }
    free(a);
    free(b);
    return st;
}

bp_status bp_stream_open(const char *spec, const bp_data_opts *opts, bp_stream **out)
{
    *out = NULL;
    bp_data_opts o = opts ? *opts : bp_data_opts_default();
    if (!spec)
        return bp_error(BP_ERR_ARG, "no data spec");
    if (o.limit < 0 || o.offset < 0)
        return bp_error(BP_ERR_ARG, "data '%s': negative limit or offset", spec);
    if (!(o.std > 0) || !isfinite(o.mean))
        return bp_error(BP_ERR_ARG, "data '%s': normalization needs a finite mean and a positive std", spec);
    bp_stream *s = calloc(1, sizeof *s);
    if (!s)
        return bp_error(BP_ERR_NOMEM, "out of memory opening '%s'", spec);
    bp_status st = open_files(s, spec);
    if (st)
        goto fail;
    if (s->x.dims[0] != s->y.dims[0]) {
        st = bp_error(BP_ERR_SHAPE, "%s has %lld samples but %s has %lld labels", s->x.path,
                      (long long)s->x.dims[0], s->y.path, (long long)s->y.dims[0]);
        goto fail;
    }
    /* (N, D) -> (1, 1, D); (N, H, W) -> (1, H, W); (N, C, H, W) as is */
    int nd = s->x.ndim;
    s->c = nd == 4 ? (int)s->x.dims[1] : 1;
    s->h = nd == 4 ? (int)s->x.dims[2] : nd == 3 ? (int)s->x.dims[1] : 1;
    s->w = (int)s->x.dims[nd - 1];
    int64_t total = s->x.dims[0];
    if (o.offset > total) {
        st = bp_error(BP_ERR_ARG, "%s: offset %d is past its %lld samples", s->x.path, o.offset,
                      (long long)total);
        goto fail;
    }
    int64_t n = total - o.offset;
    if (o.limit > 0 && o.limit < n)
        n = o.limit;
    s->n = (int)n;
    s->offset = o.offset;
    s->mean = o.mean;
    s->std = o.std;
    if ((st = bp_stream_rewind(s)))
        goto fail;
    *out = s;
    return BP_OK;
fail:
    bp_stream_close(s);
    return st;
}

void bp_stream_info(const bp_stream *s, int *c, int *h, int *w, int *n, int *nclasses)
{
    if (c)
        *c = s->c;
    if (h)
        *h = s->h;
    if (w)
        *w = s->w;
    if (n)
        *n = s->n;
    if (nclasses)
        *nclasses = 10; /* neither IDX nor .npy headers say; Fashion-MNIST has 10 */
}

bp_status bp_stream_rewind(bp_stream *s)
{
    s->pos = 0;
    bp_status st = bp_arr_seek(&s->x, s->offset);
    return st ? st : bp_arr_seek(&s->y, s->offset);
}

static int grow_buf(void **p, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    void *np = realloc(*p, need);
    if (!np)
        return -1;
    *p = np;
    *cap = need;
    return 0;
}

bp_status bp_stream_next(bp_stream *s, int max, bp_real *x, int *y, int *got)
{
    *got = 0;
    int k = s->n - s->pos < max ? s->n - s->pos : max;
    if (k <= 0)
        return BP_OK;
    if (grow_buf(&s->buf, &s->bufcap, (size_t)k * s->x.rec_bytes) ||
        grow_buf(&s->lbuf, &s->lbufcap, (size_t)k * s->y.rec_bytes))
        return bp_error(BP_ERR_NOMEM, "out of memory reading %s", s->x.path);
    int64_t first = s->offset + s->pos;
    bp_status st = bp_arr_seek(&s->x, first);
    if (!st)
        st = bp_arr_read(&s->x, k, s->buf);
    if (!st)
        st = bp_arr_seek(&s->y, first);
    if (!st)
        st = bp_arr_read(&s->y, k, s->lbuf);
    if (st)
        return st;

    size_t m = (size_t)k * s->x.rec_elems;
    if (s->x.dtype == BP_DT_U8) {
        const unsigned char *p = s->buf;
        /* (p/255 - mean)/std as one multiply-add per pixel */
        float a = 1.0f / (255.0f * s->std), b = -s->mean / s->std;
        for (size_t i = 0; i < m; i++)
            x[i] = (bp_real)(p[i] * a + b);
    } else {
        const float *p = s->buf;
        for (size_t i = 0; i < m; i++) {
            if (!isfinite(p[i]))
                return bp_error(BP_ERR_NUMERIC, "%s: sample %lld has a non-finite value", s->x.path,
                                (long long)(first + (int64_t)(i / s->x.rec_elems)));
            x[i] = (bp_real)p[i];
        }
    }
    for (int i = 0; i < k; i++) {
        int64_t v;
        switch (s->y.dtype) {
        case BP_DT_U8:
            v = ((const unsigned char *)s->lbuf)[i];
            break;
        case BP_DT_I32: {
            int32_t t;
            memcpy(&t, (const char *)s->lbuf + 4 * (size_t)i, 4);
            v = t;
            break;
        }
        default: {
            int64_t t;
            memcpy(&t, (const char *)s->lbuf + 8 * (size_t)i, 8);
            v = t;
            break;
        }
        }
        if (v < 0 || v > INT_MAX)
            return bp_error(BP_ERR_FORMAT, "%s: label %lld of record %lld is not a class index", s->y.path,
                            (long long)v, (long long)(first + i));
        y[i] = (int)v;
    }
    s->pos += k;
    *got = k;
    return BP_OK;
}

void bp_stream_close(bp_stream *s)
{
    if (!s)
        return;
    bp_arr_close(&s->x);
    bp_arr_close(&s->y);
    free(s->buf);
    free(s->lbuf);
    free(s);
}

/* ---- in-memory data sets ------------------------------------------------------ */

bp_status bp_dataset_load(const char *spec, const bp_data_opts *opts, bp_dataset *ds)
{
    memset(ds, 0, sizeof *ds);
    bp_stream *s;
    bp_status st = bp_stream_open(spec, opts, &s);
    if (st)
        return st;
    int c, h, w, n;
    bp_stream_info(s, &c, &h, &w, &n, NULL);
    size_t per = (size_t)c * h * w;
    ds->x = malloc((n ? (size_t)n : 1) * per * sizeof *ds->x);
    ds->y = malloc((n ? (size_t)n : 1) * sizeof *ds->y);
    if (!ds->x || !ds->y) {
        st = bp_error(BP_ERR_NOMEM, "out of memory loading %d samples of '%s'", n, spec);
        goto fail;
    }
    int done = 0, got = 0;
    /* read in slices so the raw buffer stays small */
    while (done < n) {
        if ((st = bp_stream_next(s, 4096, ds->x + (size_t)done * per, ds->y + done, &got)))
            goto fail;
        if (got == 0)
            break;
        done += got;
    }
    int maxl = -1;
    for (int i = 0; i < n; i++)
        if (ds->y[i] > maxl)
            maxl = ds->y[i];
    ds->n = n;
    ds->c = c;
    ds->h = h;
    ds->w = w;
    ds->nclasses = maxl + 1;
    bp_stream_close(s);
    return BP_OK;
fail:
    bp_stream_close(s);
    bp_dataset_free(ds);
    return st;
}

void bp_dataset_free(bp_dataset *ds)
{
    if (!ds)
        return;
    free(ds->x);
    free(ds->y);
    ds->x = NULL;
    ds->y = NULL;
    ds->n = 0;
}
