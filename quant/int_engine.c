/* int_engine.c — integer-only inference of a bp_qmodel: from the quantized
 * input to int32 logits with integer operations only. tests/test_nofloat.c
 * disassembles this object (and the kernels it calls) and fails on any
 * floating-point instruction or call into libm; keep floats out of this file
 * (scales live in the model but are never read here). */
#include <stdlib.h>
#include <string.h>

#include "quant/qmodel.h"

struct bp_qrun {
    const bp_qmodel *m;
    int max_batch;
    void **buf;    /* (nt) n · numel1 elements of the tensor's type */
    void *scratch; /* kernel scratch, 64-byte aligned */
    bp_qconv_prep **prep; /* (nops) each conv op prepared once, else NULL */
};

void bp_qrun_free(bp_qrun *r)
{
    if (!r)
        return;
    for (int t = 0; r->buf && t < r->m->nt; t++)
        free(r->buf[t]);
    free(r->buf);
    for (int k = 0; r->prep && k < r->m->nops; k++)
        bp_qconv_prep_free(r->prep[k]);
    free(r->prep);
    free(r->scratch);
    free(r);
}

bp_status bp_qrun_new(const bp_qmodel *m, int max_batch, bp_qrun **out)
{
    *out = NULL;
    if (max_batch < 1)
        return bp_error(BP_ERR_ARG, "int engine: batch %d", max_batch);
    bp_qrun *r = calloc(1, sizeof *r);
    if (!r)
        return bp_error(BP_ERR_NOMEM, "int engine: out of memory");
    r->m = m;
    r->max_batch = max_batch;
    r->buf = calloc(m->nt, sizeof *r->buf);
    size_t sb = (m->scratch_bytes + 127) / 64 * 64;
    r->scratch = aligned_alloc(64, sb ? sb : 64);
    if (!r->buf || !r->scratch)
        goto nomem;
    for (int t = 0; t < m->nt; t++) {
        size_t bytes = (size_t)max_batch * m->t[t].numel1 * bp_qtype_size(m->t[t].type);
        if (!(r->buf[t] = malloc(bytes ? bytes : 1)))
            goto nomem;
    }
    /* convs are prepared once, with the kernel implementation active now
     * (AMX: the weights repacked into tile layout) */
    if (!(r->prep = calloc(m->nops > 0 ? m->nops : 1, sizeof *r->prep)))
        goto nomem;
    for (int k = 0; k < m->nops; k++)
        if (m->ops[k].kind == BP_QOP_CONV) {
            bp_status st = bp_qconv_prepare(&m->ops[k].cp, m->ops[k].wpanel, &r->prep[k]);
            if (st) {
                bp_qrun_free(r);
                return bp_error_wrap(st, "int engine: op %d", k);
            }
        }
    *out = r;
    return BP_OK;
nomem:
    bp_qrun_free(r);
    return bp_error(BP_ERR_NOMEM, "int engine: out of memory for batch %d", max_batch);
}

const void *bp_qrun_tensor(const bp_qrun *r, int t)
{
    return t >= 0 && t < r->m->nt ? r->buf[t] : NULL;
}

static inline int32_t ld(const void *p, size_t i, bp_qtype t)
{
    return t == BP_QT_U8 ? ((const uint8_t *)p)[i]
           : t == BP_QT_S8 ? ((const int8_t *)p)[i]
                           : ((const int32_t *)p)[i];
}

static inline void st(void *p, size_t i, bp_qtype t, int32_t v, int32_t lo, int32_t hi)
{
    v = v < lo ? lo : v > hi ? hi : v;
    if (t == BP_QT_U8)
        ((uint8_t *)p)[i] = (uint8_t)v;
    else if (t == BP_QT_S8)
        ((int8_t *)p)[i] = (int8_t)v;
    else
        ((int32_t *)p)[i] = v;
}

/* Max or average pooling over (n·C) planes. */
static void pool(const bp_qop *op, int avg, const bp_qtensor *ti, const bp_qtensor *to, int n,
                 const void *in, void *out)
{
    const int C = (int)ti->dims[1], H = (int)ti->dims[2], W = (int)ti->dims[3];
    const int OH = (int)to->dims[2], OW = (int)to->dims[3];
    for (int pc = 0; pc < n * C; pc++) {
        size_t ib = (size_t)pc * H * W, ob = (size_t)pc * OH * OW;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int y0 = oy * op->sh - op->pt, x0 = ox * op->sw - op->pl;
                int64_t sum = 0;
                int32_t mx = INT32_MIN;
                int cnt = 0;
                for (int ky = 0; ky < op->kh; ky++)
                    for (int kx = 0; kx < op->kw; kx++) {
                        int y = y0 + ky, x = x0 + kx;
                        if (y < 0 || y >= H || x < 0 || x >= W)
                            continue;
                        int32_t v = ld(in, ib + (size_t)y * W + x, ti->type);
                        sum += v;
                        mx = v > mx ? v : mx;
                        cnt++;
                    }
                int32_t r;
                if (avg) {
                    int den = cnt;
                    if (op->count_include_pad) {
                        /* PyTorch's divisor: the window clipped to the padded extent */
                        int ye = y0 + op->kh, xe = x0 + op->kw;
                        int yl = H + op->pb, xl = W + op->pr;
                        den = ((ye < yl ? ye : yl) - y0) * ((xe < xl ? xe : xl) - x0);
                    }
                    r = den > 0 ? bp_round_div(sum, den) : 0;
                } else {
                    r = cnt ? mx : to->qmin;
                }
                st(out, ob + (size_t)oy * OW + ox, to->type, r, op->lo, op->hi);
            }
    }
}

bp_status bp_qrun_forward(bp_qrun *r, const void *xq, int n, int32_t *logits)
{
    const bp_qmodel *m = r->m;
    if (n < 1 || n > r->max_batch)
        return bp_error(BP_ERR_ARG, "int engine: batch of %d samples (workspace takes 1..%d)", n,
                        r->max_batch);
    const bp_qtensor *T = m->t;
    memcpy(r->buf[m->input_t], xq, (size_t)n * T[m->input_t].numel1 * bp_qtype_size(T[m->input_t].type));
    for (int k = 0; k < m->nops; k++) {
        const bp_qop *op = &m->ops[k];
        const bp_qtensor *ti = &T[op->in[0]], *to = &T[op->out];
        const void *in = r->buf[op->in[0]];
        void *out = r->buf[op->out];
        const size_t cnt = (size_t)n * to->numel1;
        bp_status s = BP_OK;
        switch (op->kind) {
        case BP_QOP_CONV: {
            s = bp_qconv_run(r->prep[k], n, in, op->bias, op->qm, out, r->scratch);
            break;
        }
        case BP_QOP_GEMM: {
            bp_qgemm_params p = op->gp;
            p.n = n * op->gp.n;
            s = bp_qgemm(&p, in, op->wpanel, op->bias, op->qm, out, r->scratch);
            break;
        }
        case BP_QOP_ADD: {
            const bp_qtensor *tb = &T[op->in[1]];
            const void *inb = r->buf[op->in[1]];
            for (size_t i = 0; i < cnt; i++) {
                int32_t a = ld(in, i, ti->type) * (1 << op->left_shift);
                int32_t b = ld(inb, i, tb->type) * (1 << op->left_shift);
                int32_t sum = bp_requant(a, op->qa) + bp_requant(b, op->qb);
                st(out, i, to->type, bp_requant(sum, op->qo), op->lo, op->hi);
            }
            break;
        }
        case BP_QOP_REQUANT:
            for (size_t i = 0; i < cnt; i++)
                st(out, i, to->type, bp_requant(ld(in, i, ti->type), op->qa), op->lo, op->hi);
            break;
        case BP_QOP_CLAMP:
        case BP_QOP_COPY:
            for (size_t i = 0; i < cnt; i++)
                st(out, i, to->type, ld(in, i, ti->type), op->lo, op->hi);
            break;
        case BP_QOP_MAXPOOL:
        case BP_QOP_AVGPOOL:
            pool(op, op->kind == BP_QOP_AVGPOOL, ti, to, n, in, out);
            break;
        case BP_QOP_GAP: {
            const int C = (int)ti->dims[1];
            const size_t hw = ti->numel1 / (size_t)C;
            for (int pc = 0; pc < n * C; pc++) {
                int64_t sum = 0;
                for (size_t j = 0; j < hw; j++)
                    sum += ld(in, (size_t)pc * hw + j, ti->type);
                st(out, (size_t)pc, to->type, bp_round_div(sum, (int64_t)hw), op->lo, op->hi);
            }
            break;
        }
        }
        if (s)
            return bp_error_wrap(s, "int engine: op %d", k);
    }
    const bp_qtensor *lo = &T[m->output_t];
    const void *src = r->buf[m->output_t];
    for (size_t i = 0; i < (size_t)n * lo->numel1; i++)
        logits[i] = ld(src, i, lo->type);
    return BP_OK;
}
