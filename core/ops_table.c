/* Op dispatch: one row per op, checked at compile time to cover every op, so
 * adding an op without its kernels fails to build. */
#include <string.h>

#include "core/ops.h"

typedef bp_status (*opfn)(bp_opctx *);

static const struct {
    opfn fwd, bwd, rfwd, rbwd;
} table[] = {
    [BP_OP_CONV] = {bp_conv_forward, bp_conv_backward, bp_conv_rop_forward, bp_conv_rop_backward},
    [BP_OP_GEMM] = {bp_gemm_forward, bp_gemm_backward, bp_gemm_rop_forward, bp_gemm_rop_backward},
    [BP_OP_MATMUL] = {bp_matmul_forward, bp_matmul_backward, bp_matmul_rop_forward,
                      bp_matmul_rop_backward},
    [BP_OP_ADD] = {bp_add_forward, bp_add_backward, bp_add_rop_forward, bp_add_rop_backward},
    [BP_OP_BN] = {bp_bn_forward, bp_bn_backward, bp_bn_rop_forward, bp_bn_rop_backward},
    [BP_OP_RELU] = {bp_act_forward, bp_act_backward, bp_act_rop_forward, bp_act_rop_backward},
    [BP_OP_CLIP] = {bp_act_forward, bp_act_backward, bp_act_rop_forward, bp_act_rop_backward},
    [BP_OP_MAXPOOL] = {bp_pool_forward, bp_pool_backward, bp_pool_rop_forward,
                       bp_pool_rop_backward},
    [BP_OP_AVGPOOL] = {bp_pool_forward, bp_pool_backward, bp_pool_rop_forward,
                       bp_pool_rop_backward},
    [BP_OP_GAP] = {bp_pool_forward, bp_pool_backward, bp_pool_rop_forward, bp_pool_rop_backward},
    [BP_OP_FLATTEN] = {bp_copy_forward, bp_copy_backward, bp_copy_rop_forward,
                       bp_copy_rop_backward},
    [BP_OP_RESHAPE] = {bp_copy_forward, bp_copy_backward, bp_copy_rop_forward,
                       bp_copy_rop_backward},
    [BP_OP_IDENTITY] = {bp_copy_forward, bp_copy_backward, bp_copy_rop_forward,
                        bp_copy_rop_backward},
};
_Static_assert(sizeof table / sizeof *table == BP_OP_COUNT, "every op needs kernels");

static bp_status bad_op(const bp_opctx *c)
{
    return bp_error(BP_ERR_UNSUPPORTED, "node '%s': op %d has no kernel", c->node->name,
                    (int)c->node->op);
}

#define DISPATCH(field)                                                                   \
    do {                                                                                  \
        unsigned op = (unsigned)c->node->op;                                              \
        if (op >= BP_OP_COUNT || !table[op].field)                                        \
            return bad_op(c);                                                             \
        return table[op].field(c);                                                        \
    } while (0)

bp_status bp_op_forward(bp_opctx *c) { DISPATCH(fwd); }
/* Ops whose backward honours dx_set (writes instead of adding). */
static int writes_dx(bp_op op)
{
    return op == BP_OP_RELU || op == BP_OP_CLIP || op == BP_OP_BN || op == BP_OP_ADD ||
           op == BP_OP_FLATTEN || op == BP_OP_RESHAPE || op == BP_OP_IDENTITY ||
           op == BP_OP_CONV;
}

bp_status bp_op_backward(bp_opctx *c)
{
    if (!writes_dx(c->node->op))
        for (int j = 0; j < c->nin; j++)
            if (c->dx_set[j]) {
                if (c->dx[j])
                    memset(c->dx[j], 0, bp_numel(c->xd[j], c->xnd[j]) * sizeof(bp_real));
                c->dx_set[j] = 0;
            }
    DISPATCH(bwd);
}
bp_status bp_op_rop_forward(bp_opctx *c) { DISPATCH(rfwd); }
bp_status bp_op_rop_backward(bp_opctx *c) { DISPATCH(rbwd); }

/* Ops whose R-backward honours rdx_set. */
static int writes_rdx(bp_op op)
{
    return writes_dx(op);
}

static void clear_set(bp_opctx *c, unsigned char *set, bp_real *const *buf)
{
    for (int j = 0; j < c->nin; j++)
        if (set[j]) {
            if (buf[j])
                memset(buf[j], 0, bp_numel(c->xd[j], c->xnd[j]) * sizeof(bp_real));
            set[j] = 0;
        }
}

bp_status bp_op_bwd_rop(bp_opctx *c)
{
    if (c->node->op == BP_OP_CONV) /* honours dx_set and rdx_set */
        return bp_conv_bwd_rop(c);
    bp_status st = bp_op_backward(c);
    if (st)
        return st;
    if (!writes_rdx(c->node->op))
        clear_set(c, c->rdx_set, c->rdx);
    return bp_op_rop_backward(c);
}

size_t bp_op_state_bytes(const bp_opctx *c)
{
    switch (c->node->op) {
    case BP_OP_MAXPOOL:
        return bp_pool_state(c);
    case BP_OP_BN:
        return bp_bn_state(c);
    default:
        return 0;
    }
}

size_t bp_op_scratch_reals(const bp_opctx *c)
{
    return c->node->op == BP_OP_CONV ? bp_conv_scratch(c) : 0;
}
