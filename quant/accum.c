/* accum.c — accumulator-width bounds (see accum.h). */
#include "quant/accum.h"

#include <stdlib.h>

static int ceil_log2(uint64_t x)
{
    int b = 0;
    while (((uint64_t)1 << b) < x && b < 63)
        b++;
    return b;
}

int bp_acc_bits_worst(int wbits, int abits, int64_t fan_in)
{
    return wbits + abits + ceil_log2(fan_in > 0 ? (uint64_t)fan_in : 1);
}

int bp_acc_bits_channel(const int32_t *codes, int64_t m, int64_t k, int abits, int64_t *bound)
{
    int64_t best = 0;
    for (int64_t c = 0; c < m; c++) {
        int64_t s = 0;
        for (int64_t i = 0; i < k; i++)
            s += codes[c * k + i] < 0 ? -(int64_t)codes[c * k + i] : codes[c * k + i];
        if (s > best)
            best = s;
    }
    int64_t b = best * (((int64_t)1 << abits) - 1);
    if (bound)
        *bound = b;
    return ceil_log2((uint64_t)b + 1) + 1;
}

bp_status bp_acc_can_overflow(const bp_graph *g, const bp_layer *l, int wbits, int abits,
                              int acc_bits, bp_clip_mode clip, int *overflow, int *need_bits,
                              int *worst_bits)
{
    bp_wq_shape s;
    bp_status st = bp_wq_shape_of_layer(g, l, &s);
    if (st)
        return st;
    if (abits < 1 || abits > 16)
        return bp_error(BP_ERR_ARG, "accum: layer '%s': %d activation bits", l->name, abits);
    size_t n = g->values[l->weight].numel;
    int32_t *codes = malloc(sizeof(int32_t) * (n ? n : 1)), *rows = malloc(sizeof(int32_t) * (n ? n : 1));
    if (!codes || !rows) {
        free(codes), free(rows);
        return bp_error(BP_ERR_NOMEM, "accum: out of memory");
    }
    st = bp_wquant_tensor(g->params + g->values[l->weight].offset, s, 1, wbits, clip, NULL, NULL,
                          codes, NULL);
    if (st) {
        free(codes), free(rows);
        return bp_error_wrap(st, "accum: layer '%s'", l->name);
    }
    /* rows of output channels: element (o, c, i) -> row c */
    int64_t K = (int64_t)n / s.nchan;
    for (int64_t o = 0; o < s.outer; o++)
        for (int64_t c = 0; c < s.nchan; c++)
            for (int64_t i = 0; i < s.inner; i++)
                rows[c * K + (s.inner == 1 ? o : i)] = codes[(o * s.nchan + c) * s.inner + i];
    int need = bp_acc_bits_channel(rows, s.nchan, K, abits, NULL);
    free(codes), free(rows);
    *overflow = need > acc_bits;
    if (need_bits)
        *need_bits = need;
    if (worst_bits)
        *worst_bits = bp_acc_bits_worst(wbits, abits, l->fan_in);
    return BP_OK;
}

bp_status bp_acc_table(const bp_graph *g, const bp_layer *layers, int nl, const int *cw,
                       const int *ca, int nc, int acc_bits, bp_clip_mode clip, uint8_t *overflow)
{
    for (int i = 0; i < nl; i++)
        for (int j = 0; j < nc; j++) {
            int ov = 0;
            bp_status st = bp_acc_can_overflow(g, &layers[i], cw[j], ca[j], acc_bits, clip, &ov,
                                               NULL, NULL);
            if (st)
                return st;
            overflow[(size_t)i * nc + j] = (uint8_t)ov;
        }
    return BP_OK;
}
