/* qkernels.c — weight panels, parameter checks, scratch sizes and the run-time
 * choice between the reference and AVX2 kernels. Integer-only. */
#include <cpuid.h>
#include <stdlib.h>
#include <string.h>

#include "quant/kern_dw.h"
#include "quant/kern_internal.h"

size_t bp_qtype_size(bp_qtype t) { return t == BP_QT_S32 ? 4 : 1; }

size_t bp_qweights_size(int groups, int m, int k, int wbits)
{
    return (size_t)groups * bp_qk_group_bytes(m, k, wbits);
}

bp_status bp_qweights_pack(const int8_t *w, int groups, int m, int k, int wbits, uint8_t *dst)
{
    if (wbits < 2 || wbits > 8)
        return bp_error(BP_ERR_ARG, "qweights_pack: %d weight bits (2..8 supported)", wbits);
    if (groups < 1 || m < 1 || k < 1)
        return bp_error(BP_ERR_ARG, "qweights_pack: bad shape %d x %d x %d", groups, m, k);
    const int lo = -(1 << (wbits - 1)), hi = (1 << (wbits - 1)) - 1;
    const int kp = bp_qk_kpairs(k), cell = bp_qk_cell(wbits);
    const size_t gbytes = bp_qk_group_bytes(m, k, wbits);
    memset(dst, 0, (size_t)groups * gbytes);
    for (int g = 0; g < groups; g++)
        for (int r = 0; r < m; r++)
            for (int c = 0; c < k; c++) {
                int v = w[((size_t)g * m + r) * k + c];
                if (v < lo || v > hi)
                    return bp_error(BP_ERR_ARG,
                                    "qweights_pack: weight %d at (group %d, row %d, col %d) is "
                                    "outside the %d-bit range",
                                    v, g, r, c, wbits);
                uint8_t *cellp = dst + (size_t)g * gbytes +
                                 ((size_t)(r / BP_QK_MR) * kp + c / 2) * cell;
                int idx = 2 * (r % BP_QK_MR) + c % 2;
                if (wbits > 4)
                    cellp[idx] = (uint8_t)(int8_t)v;
                else if (idx < 16)
                    cellp[idx] = (uint8_t)((cellp[idx] & 0xF0) | (v & 0xF));
                else
                    cellp[idx - 16] = (uint8_t)((cellp[idx - 16] & 0x0F) | ((v & 0xF) << 4));
            }
    return BP_OK;
}

int bp_qweights_get(const uint8_t *panel, int groups, int m, int k, int wbits, int group,
                    int row, int col)
{
    (void)groups;
    return bp_qk_get(panel + (size_t)group * bp_qk_group_bytes(m, k, wbits), k, wbits, row, col);
}

void bp_qconv_out_hw(const bp_qconv_params *p, int *oh, int *ow)
{
    int ekh = (p->kh - 1) * p->dil_h + 1, ekw = (p->kw - 1) * p->dil_w + 1;
    *oh = (p->h + p->pad_t + p->pad_b - ekh) / p->stride_h + 1;
    *ow = (p->w + p->pad_l + p->pad_r - ekw) / p->stride_w + 1;
}

static bp_status check_types(const char *who, bp_qtype in, bp_qtype out, int32_t lo, int32_t hi,
                             int wbits)
{
    if (wbits < 2 || wbits > 8)
        return bp_error(BP_ERR_ARG, "%s: wbits %d (2..8 supported)", who, wbits);
    if (in != BP_QT_S8 && in != BP_QT_U8)
        return bp_error(BP_ERR_ARG, "%s: input type must be int8 or uint8", who);
    int32_t tlo = out == BP_QT_S8 ? -128 : out == BP_QT_U8 ? 0 : INT32_MIN;
    int32_t thi = out == BP_QT_S8 ? 127 : out == BP_QT_U8 ? 255 : INT32_MAX;
    if (out != BP_QT_S8 && out != BP_QT_U8 && out != BP_QT_S32)
        return bp_error(BP_ERR_ARG, "%s: bad output type", who);
    if (lo > hi || lo < tlo || hi > thi)
        return bp_error(BP_ERR_ARG, "%s: clamp [%d, %d] is empty or outside the output type",
                        who, (int)lo, (int)hi);
    return BP_OK;
}

bp_status bp_qconv_check(const bp_qconv_params *p)
{
    if (p->n < 1 || p->cin < 1 || p->h < 1 || p->w < 1 || p->cout < 1 || p->kh < 1 || p->kw < 1)
        return bp_error(BP_ERR_ARG, "qconv: sizes must be positive");
    if (p->stride_h < 1 || p->stride_w < 1 || p->dil_h < 1 || p->dil_w < 1)
        return bp_error(BP_ERR_ARG, "qconv: stride and dilation must be >= 1");
    if (p->pad_t < 0 || p->pad_l < 0 || p->pad_b < 0 || p->pad_r < 0)
        return bp_error(BP_ERR_ARG, "qconv: negative padding");
    if (p->group < 1 || p->cin % p->group || p->cout % p->group)
        return bp_error(BP_ERR_ARG, "qconv: group %d does not divide cin %d and cout %d",
                        p->group, p->cin, p->cout);
    int oh, ow;
    bp_qconv_out_hw(p, &oh, &ow);
    if (oh < 1 || ow < 1)
        return bp_error(BP_ERR_ARG, "qconv: empty output (%d x %d)", oh, ow);
    return check_types("qconv", p->in_type, p->out_type, p->out_min, p->out_max, p->wbits);
}

bp_status bp_qgemm_check(const bp_qgemm_params *p)
{
    if (p->n < 1 || p->k < 1 || p->m < 1)
        return bp_error(BP_ERR_ARG, "qgemm: sizes must be positive");
    return check_types("qgemm", p->in_type, p->out_type, p->out_min, p->out_max, p->wbits);
}

int bp_qk_pixel_block(int k)
{
    /* Keep one im2col block (pixels x k pairs x 4 bytes) near 48 KiB so it
     * stays in L2 while every row block of the weights passes over it. */
    int kp = bp_qk_kpairs(k);
    int pb = 49152 / (kp * 4);
    pb -= pb % BP_QK_NR;
    if (pb < BP_QK_NR)
        pb = BP_QK_NR;
    if (pb > 32 * BP_QK_NR)
        pb = 32 * BP_QK_NR;
    return pb;
}

/* The pair panel, two int16 rows (see row_len in kern_avx2.c) and alignment slack. */
static size_t panel_bytes(int k)
{
    size_t pb = (size_t)bp_qk_pixel_block(k);
    return pb * bp_qk_kpairs(k) * 4 + 2 * ((pb + 15) / 16 * 16 + 16) * 2 + 64;
}

size_t bp_qconv_buffer_size(const bp_qconv_params *p)
{
    if (p->group < 1 || p->cin < p->group)
        return 64;
    size_t gemm = panel_bytes(p->cin / p->group * p->kh * p->kw);
    size_t quads = bp_qk_vnni_scratch(p), amx = bp_qk_amx_scratch(p);
    gemm = gemm > quads ? gemm : quads;
    gemm = gemm > amx ? gemm : amx;
    /* depthwise: the zero-padded plane, bp_qk_dw_rows·stride_w int32 rows
     * (dw_row_len in kern_avx2.c) */
    size_t dw = (size_t)bp_qk_dw_rows(p) * (p->stride_w > 0 ? p->stride_w : 1) *
                    (p->w + p->pad_l + p->pad_r + 16 + (p->kw - 1) * p->dil_w) * 4 + 64;
    gemm = gemm > dw ? gemm : dw;
    size_t dwz = bp_qk_dwz_scratch(p); /* the AVX-512 depthwise kernel (kern_dw.c) */
    return gemm > dwz ? gemm : dwz;
}

size_t bp_qgemm_buffer_size(const bp_qgemm_params *p) { return panel_bytes(p->k); }

/* ---- dispatch ------------------------------------------------------------ */

static bp_qkern_impl chosen = BP_QKERN_AUTO;

void bp_qkern_set_impl(bp_qkern_impl impl) { chosen = impl; }

/* Feature bits are looked up once: CPUID traps to the hypervisor in a VM
 * (tens of microseconds), far too slow for every kernel call. -1 = unknown. */
static int avx2_flag = -1, avxvnni_flag = -1, avx512vnni_flag = -1;

static int have_avx2(void)
{
    if (avx2_flag < 0) {
        __builtin_cpu_init();
        avx2_flag = __builtin_cpu_supports("avx2") ? 1 : 0;
    }
    return avx2_flag;
}

static int have_avxvnni(void)
{
    if (avxvnni_flag < 0) {
        unsigned a, b, c, d;
        avxvnni_flag = have_avx2() && __get_cpuid_count(7, 1, &a, &b, &c, &d) ? (int)((a >> 4) & 1) : 0;
    }
    return avxvnni_flag;
}

static int have_avx512vnni(void)
{
    if (avx512vnni_flag < 0)
    {
        /* avx512f/bw/vl by the builtin (it checks that the OS saves zmm state);
         * AVX512_VNNI is CPUID leaf 7 subleaf 0 ECX bit 11 (the builtin's own
         * lookup of it would import __cpu_features2). */
        unsigned a, b, c, d;
        avx512vnni_flag = have_avx2() && __builtin_cpu_supports("avx512f") &&
                          __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl") &&
                          __get_cpuid_count(7, 0, &a, &b, &c, &d) && ((c >> 11) & 1);
    }
    return avx512vnni_flag;
}

int bp_qkern_available(bp_qkern_impl impl)
{
    switch (impl) {
    case BP_QKERN_REF: return 1;
    case BP_QKERN_AVX2: return have_avx2();
    case BP_QKERN_AVXVNNI: return have_avxvnni();
    case BP_QKERN_AVX512VNNI: return have_avx512vnni();
    case BP_QKERN_AMX: return have_avx512vnni() && bp_qk_amx_usable();
    default: return 1;
    }
}

bp_qkern_impl bp_qkern_active(void)
{
    if (chosen == BP_QKERN_AUTO)
        return bp_qkern_available(BP_QKERN_AMX) ? BP_QKERN_AMX
               : have_avx512vnni() ? BP_QKERN_AVX512VNNI : have_avxvnni() ? BP_QKERN_AVXVNNI : have_avx2() ? BP_QKERN_AVX2 : BP_QKERN_REF;
    return chosen;
}

const char *bp_qkern_name(bp_qkern_impl impl)
{
    return impl == BP_QKERN_AMX ? "amx" : impl == BP_QKERN_AVX512VNNI ? "avx512vnni" : impl == BP_QKERN_AVXVNNI ? "avxvnni" : impl == BP_QKERN_AVX2 ? "avx2"
           : impl == BP_QKERN_REF   ? "ref"
                                    : "auto";
}

struct bp_qconv_prep {
    bp_qconv_params p;    /* as prepared; bp_qconv_run sets n */
    const uint8_t *wpanel; /* the caller's panel, referenced */
    bp_qkern_impl impl;   /* bp_qkern_active() at prepare time */
    bp_qk_amx_prep *amx;  /* impl AMX and a conv it takes, else NULL */
};

/* Runs p with impl (AMX only with amx set: what AMX declines runs as
 * AVX-512 VNNI). impl is available (checked at prepare). */
static void conv_dispatch(bp_qkern_impl impl, const bp_qk_amx_prep *amx, const bp_qconv_params *p,
                          const void *in, const uint8_t *wpanel, const int32_t *bias, const bp_qmul *qm,
                          void *out, void *scratch)
{
    if (impl == BP_QKERN_AMX) {
        if (amx) {
            bp_qconv_amx(p, in, amx, bias, qm, out, scratch);
            return;
        }
        impl = BP_QKERN_AVX512VNNI; /* what AMX declines (depthwise, ...) */
    }
    if (impl == BP_QKERN_AVX512VNNI && bp_qconv_dwz(p, in, wpanel, bias, qm, out, scratch))
        return;
    if (impl == BP_QKERN_AVXVNNI || impl == BP_QKERN_AVX512VNNI)
        bp_qconv_vnni(p, in, wpanel, bias, qm, out, scratch, impl == BP_QKERN_AVX512VNNI);
    else if (impl == BP_QKERN_AVX2)
        bp_qconv_avx2(p, in, wpanel, bias, qm, out, scratch, 0);
    else
        bp_qconv_ref(p, in, wpanel, bias, qm, out);
}

/* The active implementation, or BP_ERR_UNSUPPORTED when a forced one is
 * missing on this CPU. */
static bp_status conv_impl(bp_qkern_impl *impl)
{
    *impl = bp_qkern_active();
    if (!bp_qkern_available(*impl))
        return bp_error(BP_ERR_UNSUPPORTED, "qconv: the %s kernel was forced on a CPU without it",
                        bp_qkern_name(*impl));
    return BP_OK;
}

bp_status bp_qconv_prepare(const bp_qconv_params *p, const uint8_t *wpanel, bp_qconv_prep **out)
{
    *out = NULL;
    bp_qkern_impl impl;
    bp_status st = bp_qconv_check(p);
    if (st || (st = conv_impl(&impl)))
        return st;
    bp_qconv_prep *pp = calloc(1, sizeof *pp);
    if (!pp)
        return bp_error(BP_ERR_NOMEM, "qconv_prepare: out of memory");
    pp->p = *p;
    pp->wpanel = wpanel;
    pp->impl = impl;
    if (impl == BP_QKERN_AMX && bp_qk_amx_prepare(p, wpanel, &pp->amx) < 0) {
        free(pp);
        return bp_error(BP_ERR_NOMEM, "qconv_prepare: out of memory for the amx weights");
    }
    *out = pp;
    return BP_OK;
}

void bp_qconv_prep_free(bp_qconv_prep *pp)
{
    if (!pp)
        return;
    bp_qk_amx_prep_free(pp->amx);
    free(pp);
}

bp_qkern_impl bp_qconv_prep_impl(const bp_qconv_prep *pp) { return pp->impl; }

bp_status bp_qconv_run(const bp_qconv_prep *pp, int n, const void *in, const int32_t *bias,
                       const bp_qmul *qm, void *out, void *scratch)
{
    if (!pp || n < 1)
        return bp_error(BP_ERR_ARG, pp ? "qconv_run: batch %d" : "qconv_run: no prep", n);
    bp_qconv_params p = pp->p;
    p.n = n;
    conv_dispatch(pp->impl, pp->amx, &p, in, pp->wpanel, bias, qm, out, scratch);
    return BP_OK;
}

bp_status bp_qconv(const bp_qconv_params *p, const void *in, const uint8_t *wpanel,
                   const int32_t *bias, const bp_qmul *qm, void *out, void *scratch)
{
    bp_qkern_impl impl;
    bp_status st = bp_qconv_check(p);
    if (st || (st = conv_impl(&impl)))
        return st;
    bp_qk_amx_prep *amx = NULL;
    /* a one-off AMX call prepares into a temporary; when that is declined or
     * cannot be allocated, the AVX-512 VNNI kernel runs instead */
    if (impl == BP_QKERN_AMX)
        (void)bp_qk_amx_prepare(p, wpanel, &amx);
    conv_dispatch(impl, amx, p, in, wpanel, bias, qm, out, scratch);
    bp_qk_amx_prep_free(amx);
    return BP_OK;
}

bp_status bp_qgemm(const bp_qgemm_params *p, const void *in, const uint8_t *wpanel,
                   const int32_t *bias, const bp_qmul *qm, void *out, void *scratch)
{
    bp_status st = bp_qgemm_check(p);
    if (st)
        return st;
    bp_qkern_impl impl = bp_qkern_active();
    if (impl == BP_QKERN_AMX) {
        if (!bp_qkern_available(impl))
            return bp_error(BP_ERR_UNSUPPORTED, "qgemm: the amx kernel was forced on a CPU without it");
        impl = BP_QKERN_AVX512VNNI; /* GEMMs: the AVX-512 VNNI choice */
    }
    if (impl == BP_QKERN_AVX2 || impl == BP_QKERN_AVXVNNI || impl == BP_QKERN_AVX512VNNI) {
        if (!bp_qkern_available(impl))
            return bp_error(BP_ERR_UNSUPPORTED, "qgemm: the %s kernel was forced on a CPU without it",
                            bp_qkern_name(impl));
        bp_qgemm_avx2(p, in, wpanel, bias, qm, out, scratch,
                      impl == BP_QKERN_AVXVNNI || (impl == BP_QKERN_AVX512VNNI && have_avxvnni()));
    } else {
        bp_qgemm_ref(p, in, wpanel, bias, qm, out);
    }
    return BP_OK;
}
