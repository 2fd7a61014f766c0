/* fuzz_data — libFuzzer target for the data readers (IDX and .npy headers,
 * gzip or plain, record streaming, truncation checks, the whole-set loader).
 *
 * Input layout: byte 0 picks the format (bit 0: 0 IDX, 1 npy) and the stream
 * options (bits 1-2: limit, bit 3: offset 1); bytes 1-2 are the length L of
 * the images file (little-endian); the next L bytes are the images file and
 * the rest is the labels file. Both are written to temporary files, since the
 * readers open paths (zlib's gzopen). Nothing may crash, leak, hang or read
 * out of bounds, and memory must stay bounded by what the files hold.
 *
 * Built and run by `make fuzz`; seeds in fuzz/corpus/fuzz_data/ (made by
 * fuzz/make_seeds.sh). */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/data.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int put(const char *path, const uint8_t *p, size_t n)
{
    FILE *fp = fopen(path, "wb");
    if (!fp)
        return -1;
    size_t w = n ? fwrite(p, 1, n, fp) : 0;
    return fclose(fp) == 0 && w == n ? 0 : -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 3)
        return 0;
    int npy = data[0] & 1;
    int limits[4] = {0, 1, 3, 1000};
    bp_data_opts o = bp_data_opts_default();
    o.limit = limits[(data[0] >> 1) & 3];
    o.offset = (data[0] >> 3) & 1;
    size_t L = (size_t)data[1] | (size_t)data[2] << 8;
    data += 3;
    size -= 3;
    if (L > size)
        L = size;
    char xp[64], yp[64], spec[160];
    snprintf(xp, sizeof xp, "/tmp/fuzz_data_%d_x", (int)getpid());
    snprintf(yp, sizeof yp, "/tmp/fuzz_data_%d_y", (int)getpid());
    if (put(xp, data, L) || put(yp, data + L, size - L))
        abort();
    snprintf(spec, sizeof spec, "%s:%s,%s", npy ? "npy" : "idx", xp, yp);

    bp_stream *s = NULL;
    if (bp_stream_open(spec, &o, &s) == BP_OK) {
        int c, h, w, n, k;
        bp_stream_info(s, &c, &h, &w, &n, &k);
        size_t per = (size_t)c * h * w;
        /* the file holds at least n records of per values (plain files are
         * length-checked at open; gzip ones fail on read) */
        if (per > 0 && per <= ((size_t)1 << 22)) {
            bp_real *x = malloc(4 * per * sizeof *x);
            int y[4], got = 0;
            if (x) {
                for (int pass = 0; pass < 2; pass++) {
                    while (bp_stream_next(s, 4, x, y, &got) == BP_OK && got > 0)
                        ;
                    if (bp_stream_rewind(s) != BP_OK)
                        break;
                }
                free(x);
            }
        }
        bp_stream_close(s);
        bp_dataset ds;
        memset(&ds, 0, sizeof ds);
        if (bp_dataset_load(spec, &o, &ds) == BP_OK)
            bp_dataset_free(&ds);
    }
    unlink(xp);
    unlink(yp);
    return 0;
}
