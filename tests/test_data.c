/* Data: IDX (plain and gzip) and .npy readers on files the tests write byte by
 * byte, their error cases, and facts about Debian's Fashion-MNIST checked
 * independently (Python's gzip + struct on the same files, see the numbers
 * below: counts, first labels, pixel sums of the first image). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/data.h"

static char dir[64];

static void setup(void)
{
    snprintf(dir, sizeof dir, "/tmp/bp_data_XXXXXX");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

static const char *path_of(const char *name)
{
    static char p[4][256];
    static int k;
    k = (k + 1) % 4;
    snprintf(p[k], sizeof p[k], "%s/%s", dir, name);
    return p[k];
}

static void put_be32(unsigned char *p, uint32_t v)
{
    p[0] = v >> 24;
    p[1] = v >> 16;
    p[2] = v >> 8;
    p[3] = v;
}

/* Writes bytes plainly or gzip-compressed. */
static void write_bytes(const char *path, const unsigned char *b, size_t n, int gz)
{
    if (gz) {
        gzFile f = gzopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(gzwrite(f, b, (unsigned)n), (int)n);
        cr_assert_eq(gzclose(f), Z_OK);
    } else {
        FILE *f = fopen(path, "wb");
        cr_assert_not_null(f);
        cr_assert_eq(fwrite(b, 1, n, f), n);
        fclose(f);
    }
}

/* An IDX image file: magic 0x803, (n, h, w), then the pixels. */
static void write_idx_images(const char *path, uint32_t magic, int n, int h, int w,
                             const unsigned char *px, size_t npx, int gz)
{
    size_t len = 16 + npx;
    unsigned char *b = malloc(len);
    put_be32(b, magic);
    put_be32(b + 4, n);
    put_be32(b + 8, h);
    put_be32(b + 12, w);
    memcpy(b + 16, px, npx);
    write_bytes(path, b, len, gz);
    free(b);
}

static void write_idx_labels(const char *path, int n, const unsigned char *l, size_t nl, int gz)
{
    unsigned char b[256];
    put_be32(b, 0x00000801);
    put_be32(b + 4, n);
    memcpy(b + 8, l, nl);
    write_bytes(path, b, 8 + nl, gz);
}

/* A .npy file: version 1 or 2 preamble, the dict padded to 64 bytes, data. */
static void write_npy(const char *path, int version, const char *dict, const void *data, size_t n)
{
    size_t pre = version == 1 ? 10 : 12;
    size_t hl = strlen(dict) + 1;
    while ((pre + hl) % 64)
        hl++;
    unsigned char *b = calloc(1, pre + hl + n);
    memcpy(b, "\x93NUMPY", 6);
    b[6] = (unsigned char)version;
    b[7] = 0;
    if (version == 1) {
        b[8] = hl & 0xff;
        b[9] = hl >> 8;
    } else {
        b[8] = hl & 0xff;
        b[9] = (hl >> 8) & 0xff;
        b[10] = (hl >> 16) & 0xff;
        b[11] = hl >> 24;
    }
    memset(b + pre, ' ', hl);
    memcpy(b + pre, dict, strlen(dict));
    b[pre + hl - 1] = '\n';
    memcpy(b + pre + hl, data, n);
    write_bytes(path, b, pre + hl + n, 0);
    free(b);
}

static double norm(int p)
{
    return ((double)p / 255.0 - BP_FMNIST_MEAN) / BP_FMNIST_STD;
}

static const unsigned char px6[3 * 6] = {0, 1, 2, 3, 4, 5, 255, 128, 64, 32, 16, 8, 9, 99, 199, 250, 7, 77};
static const unsigned char lab3[3] = {1, 0, 7};

static void idx_roundtrip(int gz)
{
    const char *ip = path_of(gz ? "i.gz" : "i.idx"), *lp = path_of(gz ? "l.gz" : "l.idx");
    write_idx_images(ip, 0x803, 3, 2, 3, px6, sizeof px6, gz);
    write_idx_labels(lp, 3, lab3, 3, gz);
    char spec[600];
    snprintf(spec, sizeof spec, "idx:%s,%s", ip, lp);
    bp_stream *s;
    cr_assert_eq(bp_stream_open(spec, NULL, &s), BP_OK, "%s", bp_last_error());
    int c, h, w, n, k;
    bp_stream_info(s, &c, &h, &w, &n, &k);
    cr_assert(c == 1 && h == 2 && w == 3 && n == 3 && k == 10);
    bp_real x[12];
    int y[2], got;
    for (int pass = 0; pass < 2; pass++) {
        cr_assert_eq(bp_stream_next(s, 2, x, y, &got), BP_OK);
        cr_assert_eq(got, 2);
        for (int i = 0; i < 12; i++)
            cr_assert_float_eq(x[i], norm(px6[i]), 1e-5, "pixel %d", i);
        cr_assert(y[0] == 1 && y[1] == 0);
        cr_assert_eq(bp_stream_next(s, 2, x, y, &got), BP_OK);
        cr_assert_eq(got, 1);
        for (int i = 0; i < 6; i++)
            cr_assert_float_eq(x[i], norm(px6[12 + i]), 1e-5);
        cr_assert_eq(y[0], 7);
        cr_assert_eq(bp_stream_next(s, 2, x, y, &got), BP_OK);
        cr_assert_eq(got, 0, "end of the stream");
        cr_assert_eq(bp_stream_rewind(s), BP_OK);
    }
    bp_stream_close(s);

    /* offset and limit, and other normalization */
    bp_data_opts o = bp_data_opts_default();
    o.offset = 1;
    o.limit = 1;
    o.mean = 0;
    o.std = 1;
    bp_dataset ds;
    cr_assert_eq(bp_dataset_load(spec, &o, &ds), BP_OK, "%s", bp_last_error());
    cr_assert_eq(ds.n, 1);
    cr_assert_eq(ds.y[0], 0);
    cr_assert_eq(ds.nclasses, 1);
    for (int i = 0; i < 6; i++)
        cr_assert_float_eq(ds.x[i], px6[6 + i] / 255.0, 1e-6);
    bp_dataset_free(&ds);
}

TestSuite(data, .init = setup, .fini = teardown);

Test(data, idx_plain_values) { idx_roundtrip(0); }
Test(data, idx_gzip_values) { idx_roundtrip(1); }

static bp_status open_pair(const char *kind, const char *a, const char *b)
{
    char spec[600];
    snprintf(spec, sizeof spec, "%s:%s,%s", kind, a, b);
    bp_stream *s = NULL;
    bp_status st = bp_stream_open(spec, NULL, &s);
    bp_stream_close(s);
    return st;
}

Test(data, idx_bad_magic_names_file)
{
    const char *ip = path_of("i.idx"), *lp = path_of("l.idx");
    write_idx_images(ip, 0x801, 3, 2, 3, px6, sizeof px6, 0);
    write_idx_labels(lp, 3, lab3, 3, 0);
    cr_assert_eq(open_pair("idx", ip, lp), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), ip), "%s", bp_last_error());
    cr_assert(strstr(bp_last_error(), "magic 0x00000801"), "%s", bp_last_error());
    /* images and labels swapped */
    write_idx_images(ip, 0x803, 3, 2, 3, px6, sizeof px6, 1);
    cr_assert_eq(open_pair("idx", lp, ip), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), lp) && strstr(bp_last_error(), "label file"), "%s",
              bp_last_error());
}

Test(data, idx_count_mismatch)
{
    const char *ip = path_of("i.idx"), *lp = path_of("l.idx");
    write_idx_images(ip, 0x803, 3, 2, 3, px6, sizeof px6, 0);
    write_idx_labels(lp, 2, lab3, 2, 0);
    cr_assert_eq(open_pair("idx", ip, lp), BP_ERR_SHAPE);
    cr_assert(strstr(bp_last_error(), ip) && strstr(bp_last_error(), lp) &&
              strstr(bp_last_error(), "3 samples") && strstr(bp_last_error(), "2 labels"),
              "%s", bp_last_error());
}

Test(data, idx_truncated_plain_fails_at_open)
{
    const char *ip = path_of("i.idx"), *lp = path_of("l.idx");
    /* header says 3 images of 6 pixels; only 14 pixel bytes follow */
    write_idx_images(ip, 0x803, 3, 2, 3, px6, 14, 0);
    write_idx_labels(lp, 3, lab3, 3, 0);
    cr_assert_eq(open_pair("idx", ip, lp), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), ip) && strstr(bp_last_error(), "truncated") &&
              strstr(bp_last_error(), "2 complete records"), "%s", bp_last_error());
    /* sizes that would overflow a buffer computation */
    write_idx_images(ip, 0x803, 3, 0x7fffffff, 0x7fffffff, px6, sizeof px6, 0);
    cr_assert_eq(open_pair("idx", ip, lp), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), "implausibly large"), "%s", bp_last_error());
    /* a header cut short */
    write_bytes(ip, (const unsigned char *)"\0\0\x08\x03\0\0", 6, 0);
    cr_assert_eq(open_pair("idx", ip, lp), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), "header"), "%s", bp_last_error());
}

Test(data, idx_truncated_gzip_fails_at_the_record)
{
    /* 50 incompressible 28x28 images; cutting the .gz in half leaves a
     * readable header and loses the later records */
    enum { N = 50, P = 784 };
    unsigned char *px = malloc(N * P);
    uint32_t r = 12345;
    for (int i = 0; i < N * P; i++) {
        r = r * 1103515245u + 12345u;
        px[i] = (unsigned char)(r >> 24);
    }
    const char *ip = path_of("i.gz"), *lp = path_of("l.gz");
    write_idx_images(ip, 0x803, N, 28, 28, px, N * P, 1);
    unsigned char l[N] = {0};
    write_idx_labels(lp, N, l, N, 1);
    FILE *f = fopen(ip, "rb");
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fclose(f);
    cr_assert_eq(truncate(ip, len / 2), 0);
    char spec[600];
    snprintf(spec, sizeof spec, "idx:%s,%s", ip, lp);
    bp_dataset ds;
    cr_assert_eq(bp_dataset_load(spec, NULL, &ds), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), ip) && strstr(bp_last_error(), "at record"), "%s", bp_last_error());
    cr_assert_null(ds.x);
    free(px);
}

Test(data, missing_file_and_bad_spec)
{
    const char *lp = path_of("l.idx");
    write_idx_labels(lp, 3, lab3, 3, 0);
    const char *none = path_of("nothere.idx");
    cr_assert_eq(open_pair("idx", none, lp), BP_ERR_IO);
    cr_assert(strstr(bp_last_error(), none), "%s", bp_last_error());
    bp_stream *s;
    cr_assert_eq(bp_stream_open("mnist:train", NULL, &s), BP_ERR_ARG);
    cr_assert_eq(bp_stream_open("fashion-mnist:valid", NULL, &s), BP_ERR_ARG);
    cr_assert_eq(bp_stream_open("idx:onlyone", NULL, &s), BP_ERR_ARG);
    cr_assert_null(s);
    cr_assert_eq(setenv("BP_FASHION_MNIST_DIR", dir, 1), 0);
    cr_assert_eq(bp_stream_open("fashion-mnist:test", NULL, &s), BP_ERR_IO);
    cr_assert(strstr(bp_last_error(), "t10k-images-idx3-ubyte.gz") &&
              strstr(bp_last_error(), "dataset-fashion-mnist"), "%s", bp_last_error());
    /* an unpacked copy in BP_FASHION_MNIST_DIR is found */
    write_idx_images(path_of("t10k-images-idx3-ubyte"), 0x803, 3, 2, 3, px6, sizeof px6, 0);
    write_idx_labels(path_of("t10k-labels-idx1-ubyte"), 3, lab3, 3, 0);
    cr_assert_eq(bp_stream_open("fashion-mnist:test", NULL, &s), BP_OK, "%s", bp_last_error());
    int n;
    bp_stream_info(s, NULL, NULL, NULL, &n, NULL);
    cr_assert_eq(n, 3);
    bp_stream_close(s);
}

Test(data, npy_v1_float_and_int64_labels)
{
    const float xv[2 * 2 * 2] = {0.5f, -1.25f, 3.0f, 1e-3f, -7.0f, 0.0f, 2.5f, 100.0f};
    const int64_t yv[2] = {3, 9};
    const char *xp = path_of("x.npy"), *yp = path_of("y.npy");
    write_npy(xp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2, 2), }", xv, sizeof xv);
    write_npy(yp, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", yv, sizeof yv);
    char spec[600];
    snprintf(spec, sizeof spec, "npy:%s,%s", xp, yp);
    bp_dataset ds;
    cr_assert_eq(bp_dataset_load(spec, NULL, &ds), BP_OK, "%s", bp_last_error());
    cr_assert(ds.n == 2 && ds.c == 1 && ds.h == 2 && ds.w == 2);
    for (int i = 0; i < 8; i++)
        cr_assert_eq(ds.x[i], (bp_real)xv[i], "float32 samples are used as they are");
    cr_assert(ds.y[0] == 3 && ds.y[1] == 9);
    cr_assert_eq(ds.nclasses, 10);
    bp_dataset_free(&ds);
}

Test(data, npy_v2_uint8_nchw_and_int32_labels)
{
    /* (3, 1, 2, 3) uint8 with '|u1', keys in another order, double quotes */
    const int32_t yv[3] = {4, 0, 2};
    const char *xp = path_of("x.npy"), *yp = path_of("y.npy");
    write_npy(xp, 2, "{\"shape\": (3, 1, 2, 3), \"fortran_order\": False, \"descr\": \"|u1\"}", px6,
              sizeof px6);
    write_npy(yp, 2, "{'descr': '<i4', 'fortran_order': False, 'shape': (3, 1), }", yv, sizeof yv);
    char spec[600];
    snprintf(spec, sizeof spec, "npy:%s,%s", xp, yp);
    bp_dataset ds;
    cr_assert_eq(bp_dataset_load(spec, NULL, &ds), BP_OK, "%s", bp_last_error());
    cr_assert(ds.n == 3 && ds.c == 1 && ds.h == 2 && ds.w == 3);
    for (int i = 0; i < 18; i++)
        cr_assert_float_eq(ds.x[i], norm(px6[i]), 1e-5, "uint8 samples are normalized like IDX");
    cr_assert(ds.y[0] == 4 && ds.y[1] == 0 && ds.y[2] == 2);
    bp_dataset_free(&ds);
    /* uint8 labels, (N, D) samples */
    write_npy(xp, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3, 6), }", px6, sizeof px6);
    write_npy(yp, 1, "{'descr': '|u1', 'fortran_order': False, 'shape': (3,), }", lab3, 3);
    cr_assert_eq(bp_dataset_load(spec, NULL, &ds), BP_OK, "%s", bp_last_error());
    cr_assert(ds.c == 1 && ds.h == 1 && ds.w == 6 && ds.y[2] == 7);
    bp_dataset_free(&ds);
}

Test(data, npy_errors)
{
    const float xv[4] = {1, 2, 3, 4};
    const int64_t yv[2] = {0, 1};
    const char *xp = path_of("x.npy"), *yp = path_of("y.npy");
    write_npy(yp, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", yv, sizeof yv);
    static const struct {
        const char *dict;
        bp_status st;
        const char *says;
    } cases[] = {
        {"{'descr': '<f4', 'fortran_order': True, 'shape': (2, 2), }", BP_ERR_UNSUPPORTED, "Fortran"},
        {"{'descr': '>f4', 'fortran_order': False, 'shape': (2, 2), }", BP_ERR_UNSUPPORTED, "'>f4'"},
        {"{'descr': '<f8', 'fortran_order': False, 'shape': (1, 2), }", BP_ERR_UNSUPPORTED, "'<f8'"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (4,), }", BP_ERR_SHAPE, "(N, D)"},
        {"{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }", BP_ERR_FORMAT, "truncated"},
        {"{'descr': '<f4', 'fortran_order': False, }", BP_ERR_FORMAT, "'shape'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        write_npy(xp, 1, cases[i].dict, xv, sizeof xv);
        cr_assert_eq(open_pair("npy", xp, yp), cases[i].st, "case %zu: %s", i, bp_last_error());
        cr_assert(strstr(bp_last_error(), xp) && strstr(bp_last_error(), cases[i].says), "case %zu: %s",
                  i, bp_last_error());
    }
    /* labels: float dtype, wrong shape, negative value */
    write_npy(xp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", xv, sizeof xv);
    write_npy(yp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2,), }", xv, 8);
    cr_assert_eq(open_pair("npy", xp, yp), BP_ERR_UNSUPPORTED);
    cr_assert(strstr(bp_last_error(), "labels"), "%s", bp_last_error());
    write_npy(yp, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (1, 2), }", yv, sizeof yv);
    cr_assert_eq(open_pair("npy", xp, yp), BP_ERR_SHAPE);
    const int64_t neg[2] = {1, -2};
    write_npy(yp, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", neg, sizeof neg);
    char spec[600];
    snprintf(spec, sizeof spec, "npy:%s,%s", xp, yp);
    bp_dataset ds;
    cr_assert_eq(bp_dataset_load(spec, NULL, &ds), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), "label -2 of record 1"), "%s", bp_last_error());
    /* not a .npy at all */
    write_bytes(xp, (const unsigned char *)"hello world, not numpy", 22, 0);
    cr_assert_eq(open_pair("npy", xp, yp), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), "NUMPY"), "%s", bp_last_error());
    /* a float sample that is not finite */
    const float bad[4] = {1, NAN, 3, 4};
    write_npy(xp, 1, "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 2), }", bad, sizeof bad);
    write_npy(yp, 1, "{'descr': '<i8', 'fortran_order': False, 'shape': (2,), }", yv, sizeof yv);
    cr_assert_eq(bp_dataset_load(spec, NULL, &ds), BP_ERR_NUMERIC);
    cr_assert(strstr(bp_last_error(), "sample 0"), "%s", bp_last_error());
}

/* Facts about Debian's files, computed with Python (gzip + struct) from the
 * same files, not by this code:
 *   train: 60000 x 28 x 28, labels 9 0 0 3 0 2 7 2 5 5 0 9 ..., last label 5,
 *          image 0 pixel sum 76247, pixel (14,14) = 217; last image sum 16684
 *   t10k:  10000 x 28 x 28, labels 9 2 1 1 6 1 4 6 5 7 4 5 ..., 1000 per class,
 *          image 0 pixel sum 33456, pixel (14,14) = 110 */
static long pixel_sum(const bp_real *x, int *p1414)
{
    long sum = 0;
    for (int i = 0; i < 784; i++) {
        long p = lround((x[i] * BP_FMNIST_STD + BP_FMNIST_MEAN) * 255.0);
        sum += p;
        if (i == 14 * 28 + 14)
            *p1414 = (int)p;
    }
    return sum;
}

Test(fashion_mnist, train_facts)
{
    bp_stream *s;
    cr_assert_eq(bp_stream_open("fashion-mnist:train", NULL, &s), BP_OK, "%s", bp_last_error());
    int c, h, w, n;
    bp_stream_info(s, &c, &h, &w, &n, NULL);
    cr_assert(c == 1 && h == 28 && w == 28 && n == 60000);
    bp_real x[12 * 784];
    int y[12], got, p;
    cr_assert_eq(bp_stream_next(s, 12, x, y, &got), BP_OK);
    cr_assert_eq(got, 12);
    const int want[12] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5, 0, 9};
    for (int i = 0; i < 12; i++)
        cr_assert_eq(y[i], want[i], "label %d", i);
    cr_assert_eq(pixel_sum(x, &p), 76247);
    cr_assert_eq(p, 217);
    bp_stream_close(s);

    bp_data_opts o = bp_data_opts_default();
    o.offset = 59999;
    cr_assert_eq(bp_stream_open("fashion-mnist:train", &o, &s), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_stream_next(s, 12, x, y, &got), BP_OK);
    cr_assert_eq(got, 1);
    cr_assert_eq(y[0], 5);
    cr_assert_eq(pixel_sum(x, &p), 16684);
    bp_stream_close(s);
}

Test(fashion_mnist, test_facts)
{
    bp_dataset ds;
    cr_assert_eq(bp_dataset_load("fashion-mnist:test", NULL, &ds), BP_OK, "%s", bp_last_error());
    cr_assert(ds.n == 10000 && ds.c == 1 && ds.h == 28 && ds.w == 28 && ds.nclasses == 10);
    const int want[12] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7, 4, 5};
    for (int i = 0; i < 12; i++)
        cr_assert_eq(ds.y[i], want[i], "label %d", i);
    int count[10] = {0};
    for (int i = 0; i < ds.n; i++)
        count[ds.y[i]]++;
    for (int k = 0; k < 10; k++)
        cr_assert_eq(count[k], 1000, "class %d", k);
    int p;
    cr_assert_eq(pixel_sum(ds.x, &p), 33456);
    cr_assert_eq(p, 110);
    bp_dataset_free(&ds);
}
