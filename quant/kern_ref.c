/* kern_ref.c — portable C reference kernels: direct loops, int32 accumulators,
 * the same requantization as every other path. Integer-only. */
#include "quant/kern_internal.h"

void bp_qconv_ref(const bp_qconv_params *p, const void *in, const uint8_t *wpanel,
                  const int32_t *bias, const bp_qmul *qm, void *out)
{
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    const int cig = p->cin / p->group, cog = p->cout / p->group;
    const int k = cig * p->kh * p->kw;
    const size_t gbytes = bp_qk_group_bytes(cog, k, p->wbits);
    for (int n = 0; n < p->n; n++)
        for (int co = 0; co < p->cout; co++) {
            const int g = co / cog, r = co % cog;
            const uint8_t *gp = wpanel + (size_t)g * gbytes;
            for (int oy = 0; oy < oh; oy++)
                for (int ox = 0; ox < ow; ox++) {
                    int32_t acc = bias ? bias[co] : 0;
                    for (int ci = 0; ci < cig; ci++)
                        for (int ky = 0; ky < p->kh; ky++) {
                            int iy = oy * p->stride_h - p->pad_t + ky * p->dil_h;
                            if (iy < 0 || iy >= p->h)
                                continue;
                            for (int kx = 0; kx < p->kw; kx++) {
                                int ix = ox * p->stride_w - p->pad_l + kx * p->dil_w;
                                if (ix < 0 || ix >= p->w)
                                    continue;
                                size_t ii = (((size_t)n * p->cin + g * cig + ci) * p->h + iy) * p->w + ix;
                                int col = (ci * p->kh + ky) * p->kw + kx;
                                acc += bp_qk_load(in, ii, p->in_type) *
                                       bp_qk_get(gp, k, p->wbits, r, col);
                            }
                        }
                    size_t oi = (((size_t)n * p->cout + co) * oh + oy) * ow + ox;
                    bp_qk_store(out, oi, p->out_type, bp_requant(acc, qm[co]), p->out_min,
                                p->out_max);
                }
        }
}

void bp_qgemm_ref(const bp_qgemm_params *p, const void *in, const uint8_t *wpanel,
                  const int32_t *bias, const bp_qmul *qm, void *out)
{
    for (int n = 0; n < p->n; n++)
        for (int r = 0; r < p->m; r++) {
            int32_t acc = bias ? bias[r] : 0;
            for (int c = 0; c < p->k; c++)
                acc += bp_qk_load(in, (size_t)n * p->k + c, p->in_type) *
                       bp_qk_get(wpanel, p->k, p->wbits, r, c);
            bp_qk_store(out, (size_t)n * p->m + r, p->out_type, bp_requant(acc, qm[r]),
                        p->out_min, p->out_max);
        }
}
