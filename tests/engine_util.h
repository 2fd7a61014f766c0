/* Shared helpers of the engine test suites (f64_grad.c, f64_hvp.c,
 * test_exec.c): terse graph building, seeded random fills, loss evaluation. */
#ifndef BP_TEST_ENGINE_UTIL_H
#define BP_TEST_ENGINE_UTIL_H

#include <criterion/criterion.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/exec.h"

/* Not every suite uses every helper. */
#pragma GCC diagnostic ignored "-Wunused-function"

static uint64_t rng_s = 88172645463325252ull;
static void rng_seed(uint64_t s) { rng_s = s * 2654435761ull + 1; }
/* xorshift64*, uniform in [-1, 1) */
static double urand(void)
{
    rng_s ^= rng_s >> 12;
    rng_s ^= rng_s << 25;
    rng_s ^= rng_s >> 27;
    return (double)((rng_s * 2685821657736338717ull) >> 11) / 9007199254740992.0 * 2 - 1;
}

static int in_(bp_graph *g, int nd, ...)
{
    int64_t d[BP_MAX_DIMS];
    va_list ap;
    va_start(ap, nd);
    for (int i = 0; i < nd; i++)
        d[i] = va_arg(ap, int64_t);
    va_end(ap);
    int id = bp_graph_add_input(g, "x", nd, d);
    cr_assert_geq(id, 0, "%s", bp_last_error());
    return id;
}

static int par_(bp_graph *g, int nd, ...)
{
    int64_t d[BP_MAX_DIMS];
    va_list ap;
    va_start(ap, nd);
    for (int i = 0; i < nd; i++)
        d[i] = va_arg(ap, int64_t);
    va_end(ap);
    char name[32];
    snprintf(name, sizeof name, "p%d", g->nvalues);
    int id = bp_graph_add_param(g, name, nd, d, NULL);
    cr_assert_geq(id, 0, "%s", bp_last_error());
    return id;
}
#define IN(g, ...) in_(g, __VA_ARGS__)
#define PAR(g, ...) par_(g, __VA_ARGS__)
#define D(x) ((int64_t)(x))

static int node_(bp_graph *g, bp_op op, const bp_attrs *a, int nin, ...)
{
    int in[BP_MAX_IN];
    va_list ap;
    va_start(ap, nin);
    for (int i = 0; i < nin; i++)
        in[i] = va_arg(ap, int);
    va_end(ap);
    char name[32];
    snprintf(name, sizeof name, "a%d", g->nvalues);
    int id = bp_graph_add_node(g, op, name, in, nin, name, a);
    cr_assert_geq(id, 0, "%s", bp_last_error());
    return id;
}
#define NODE(g, op, a, ...) node_(g, op, a, (int)(sizeof((int[]){__VA_ARGS__}) / sizeof(int)), __VA_ARGS__)

/* BN over channels C of x, with its four parameters. */
static int bn_(bp_graph *g, int x, int64_t C, const bp_attrs *a)
{
    int s = PAR(g, 1, C), b = PAR(g, 1, C), m = PAR(g, 1, C), v = PAR(g, 1, C);
    return NODE(g, BP_OP_BN, a, x, s, b, m, v);
}

/* Fills every parameter with seeded values scaled by 1/sqrt(fan-in); BN
 * scale and var get positive values, running stats are marked non-trainable. */
static void init_params(bp_graph *g, uint64_t seed)
{
    rng_seed(seed);
    for (int v = 0; v < g->nvalues; v++) {
        bp_value *val = &g->values[v];
        if (val->kind != BP_VAL_PARAM)
            continue;
        double sc = val->ndim >= 2 && val->dims[0] ? 1.0 / sqrt((double)val->numel / val->dims[0]) : 0.5;
        for (size_t i = 0; i < val->numel; i++)
            g->params[val->offset + i] = (bp_real)(urand() * sc * 1.7);
    }
    for (int i = 0; i < g->nnodes; i++) {
        bp_node *n = &g->nodes[i];
        if (n->op != BP_OP_BN)
            continue;
        bp_value *s = &g->values[n->in[1]], *var = &g->values[n->in[4]];
        for (size_t j = 0; j < s->numel; j++) {
            g->params[s->offset + j] = (bp_real)(1.0 + 0.5 * urand());
            g->params[var->offset + j] = (bp_real)(0.6 + 0.4 * urand());
        }
        g->values[n->in[3]].trainable = 0;
        g->values[n->in[4]].trainable = 0;
    }
}

/* BN running statistics never get gradients: is value v one? */
static int is_bn_stat(const bp_graph *g, int v)
{
    for (int i = 0; i < g->nnodes; i++)
        if (g->nodes[i].op == BP_OP_BN && (g->nodes[i].in[3] == v || g->nodes[i].in[4] == v))
            return 1;
    return 0;
}

static size_t input_numel(const bp_graph *g, int n)
{
    return (size_t)n * g->values[g->input].numel;
}

static double loss_of(bp_exec *ex, bp_graph *g, const bp_real *x, int n, const int *lab, bp_mode mode)
{
    bp_status st = bp_forward(ex, g->params, x, n, mode);
    cr_assert_eq(st, BP_OK, "forward: %s", bp_last_error());
    double l = 0;
    st = bp_loss_softmax_ce(ex, lab, &l, NULL);
    cr_assert_eq(st, BP_OK, "loss: %s", bp_last_error());
    return l;
}

/* Labels for the output rows after a forward. */
static void make_labels(bp_exec *ex, const bp_graph *g, int *lab, int max)
{
    int nd;
    const int64_t *d = bp_exec_dims(ex, g->output, &nd);
    int rows = (int)d[0];
    size_t cls = 1;
    for (int i = 1; i < nd; i++)
        cls *= (size_t)d[i];
    cr_assert_leq(rows, max);
    for (int r = 0; r < rows; r++)
        lab[r] = (int)((r * 7 + 3) % cls);
}

static double norm2(const double *a, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += a[i] * a[i];
    return sqrt(s);
}

/* ||a - b|| / ||b||; absolute when the reference is at the finite-difference
 * noise floor (a gradient that is zero by structure, e.g. a conv bias feeding
 * training-form BN, whose FD quotient is rounding noise ~1e-11). */
static double rel_err(const double *a, const double *b, size_t n)
{
    double d = 0;
    for (size_t i = 0; i < n; i++)
        d += (a[i] - b[i]) * (a[i] - b[i]);
    double nb = norm2(b, n);
    return nb > 1e-7 ? sqrt(d) / nb : sqrt(d);
}

#endif
