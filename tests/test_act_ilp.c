/* test_act_ilp.c — activation terms in the search: with (w, a) pairs, the
 * chosen activation bits follow the activation traces.
 *
 *  - a hand-made sensitivity set (Ω worked by hand): raising one layer's
 *    activation trace moves the scarce 8-bit activation budget to it, for
 *    each layer in turn; the plan's omega_w/omega_a are the file's terms;
 *  - end to end on a tiny network: bp_sens_run + bp_act_sens_run, then for
 *    each layer in turn its activation trace scaled up (Ω_a recomputed as
 *    Tr/n_a·dx2) and a BOPs budget that pays for one layer's 8-bit
 *    activations: that layer gets them;
 *  - `bitplan ilp --pairs` on a file with activation terms: the table has
 *    omega_w/omega_a columns and the plan file their values. */
#include <criterion/criterion.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/fileio.h"
#include "ilp/ilp.h"
#include "sensitivity/act.h"

/* ---- hand-made set ---------------------------------------------------------- */

enum { HL = 4 };

/* Four layers with equal MACs; the pairs searched have 8-bit weights (so
 * only activation bits vary); activation terms at a4/a8 with dx2 = 1 and
 * 1/256, Ω_a = T/n_a·dx2 with n_a = 100 and T the given trace. */
static void hand_set(bp_sens *s, const double *trace)
{
    cr_assert_eq(bp_sens_init(s, HL), BP_OK);
    for (int i = 0; i < HL; i++) {
        bp_sens_layer *l = &s->layers[i];
        snprintf(l->sig.name, sizeof l->sig.name, "L%d", i);
        l->sig.op = BP_OP_CONV;
        l->sig.params = 1000;
        l->sig.cout = 10;
        l->sig.macs = 10000;
        l->ncand = 2;
        l->cand[0] = (bp_sens_cand){.bits = 4, .dw2 = NAN, .omega = 0.5};
        l->cand[1] = (bp_sens_cand){.bits = 8, .dw2 = NAN, .omega = 0.001 * (i + 1)};
        l->has_act = 1;
        l->act_trace = trace[i];
        l->act_stderr = 0.01;
        l->act_numel = 100;
        l->nact = 2;
        l->act[0] = (bp_sens_act_cand){.bits = 4, .dx2 = 1.0, .omega = trace[i] / 100 * 1.0, .clip = 1};
        l->act[1] = (bp_sens_act_cand){.bits = 8, .dx2 = 1.0 / 256, .omega = trace[i] / 100 / 256, .clip = 1};
    }
}

static void solve_pairs(const bp_sens *s, double bops, bp_ilp_problem *p, bp_ilp_result *r)
{
    bp_ilp_options o = {0};
    o.npairs = 2;
    o.pair_w[0] = 8, o.pair_a[0] = 4;
    o.pair_w[1] = 8, o.pair_a[1] = 8;
    cr_assert_eq(bp_ilp_from_sens(s, &o, p), BP_OK, "%s", bp_last_error());
    bp_limits lim = {0};
    lim.active[BP_CON_BOPS] = 1;
    lim.limit[BP_CON_BOPS] = bops;
    cr_assert_eq(bp_ilp_solve(p, &lim, 0, r), BP_OK, "%s", bp_last_error());
}

Test(act_ilp, activation_bits_follow_activation_traces)
{
    /* all a4: 4 · 10000·8·4 BOPs; one layer at a8 adds 10000·8·4 */
    const double bops = 4 * 320000.0 + 320000.0;
    for (int hot = 0; hot < HL; hot++) {
        double tr[HL] = {1, 1, 1, 1};
        tr[hot] = 100;
        bp_sens s;
        hand_set(&s, tr);
        bp_ilp_problem p;
        bp_ilp_result r;
        solve_pairs(&s, bops, &p, &r);
        for (int i = 0; i < HL; i++)
            cr_assert_eq(p.abits[r.choice[i]], i == hot ? 8 : 4, "hot layer %d: layer %d got a%d", hot,
                         i, p.abits[r.choice[i]]);
        /* the plan carries both parts, the file's numbers */
        bp_plan plan;
        cr_assert_eq(bp_ilp_to_plan(&p, &r, NULL, &s, &plan), BP_OK);
        for (int i = 0; i < HL; i++) {
            const bp_plan_layer *l = &plan.layers[i];
            double oa = i == hot ? tr[i] / 100 / 256 : tr[i] / 100;
            cr_assert_eq(l->omega_a, oa);
            cr_assert(fabs(l->omega_w - 0.001 * (i + 1)) <= 1e-15);
            cr_assert_eq(l->omega, 0.001 * (i + 1) + oa);
        }
        bp_plan_free(&plan);
        bp_ilp_result_free(&r);
        bp_ilp_free(&p);
        bp_sens_free(&s);
    }
    /* without activation terms every pair with w8 costs the same Ω: the
     * budget's slack goes unused or not, but the objective cannot tell them
     * apart — the point of the activation terms */
    double tr[HL] = {1, 1, 1, 1};
    bp_sens s;
    hand_set(&s, tr);
    for (int i = 0; i < HL; i++)
        s.layers[i].nact = 0, s.layers[i].has_act = 0;
    bp_ilp_problem p;
    bp_ilp_result r;
    solve_pairs(&s, bops, &p, &r);
    for (int i = 0; i < HL; i++)
        cr_assert_eq(p.omega[p.off[i]], p.omega[p.off[i] + 1]);
    bp_ilp_result_free(&r);
    bp_ilp_free(&p);
    bp_sens_free(&s);
}

/* ---- end to end on a tiny network ------------------------------------------------ */

enum { HW = 6, NS = 16, NCLS = 3 };

static int par(bp_graph *g, const char *name, int nd, const int64_t *d, const float *init)
{
    int id = bp_graph_add_param(g, name, nd, d, init);
    cr_assert(id >= 0, "%s", bp_last_error());
    return id;
}

static int node(bp_graph *g, bp_op op, const char *name, const int *in, int nin, const bp_attrs *a)
{
    int id = bp_graph_add_node(g, op, name, in, nin, name, a);
    cr_assert(id >= 0, "%s: %s", name, bp_last_error());
    return id;
}

static double lcg(uint64_t *s)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return (double)(*s >> 11) / 9007199254740992.0 * 2 - 1;
}

/* x (1×6×6) -> conv1 (1->4) -> ReLU -> conv2 (4->4) -> ReLU -> Flatten -> fc (144->3) */
static bp_graph *tiny(void)
{
    uint64_t sd = 7;
    float w1[4 * 9], b1[4], w2[16 * 9], b2[4], w3[NCLS * 144], b3[NCLS];
    for (int i = 0; i < 36; i++)
        w1[i] = (float)(0.6 * lcg(&sd));
    for (int i = 0; i < 144; i++)
        w2[i] = (float)(0.4 * lcg(&sd));
    for (int i = 0; i < NCLS * 144; i++)
        w3[i] = (float)(0.15 * lcg(&sd));
    for (int i = 0; i < 4; i++)
        b1[i] = (float)(0.1 * lcg(&sd)), b2[i] = (float)(0.1 * lcg(&sd));
    for (int i = 0; i < NCLS; i++)
        b3[i] = (float)(0.1 * lcg(&sd));
    bp_graph *g = bp_graph_new();
    int64_t xd[4] = {1, 1, HW, HW}, d1[4] = {4, 1, 3, 3}, d2[4] = {4, 4, 3, 3}, d3[2] = {NCLS, 144},
            d4[1] = {4}, dk[1] = {NCLS};
    g->input = bp_graph_add_input(g, "input", 4, xd);
    int pw1 = par(g, "conv1.weight", 4, d1, w1), pb1 = par(g, "conv1.bias", 1, d4, b1);
    int pw2 = par(g, "conv2.weight", 4, d2, w2), pb2 = par(g, "conv2.bias", 1, d4, b2);
    int pw3 = par(g, "fc.weight", 2, d3, w3), pb3 = par(g, "fc.bias", 1, dk, b3);
    bp_attrs a = bp_attrs_default(), pad = bp_attrs_default(), gm = bp_attrs_default();
    pad.pads[0] = pad.pads[1] = pad.pads[2] = pad.pads[3] = 1;
    gm.trans_b = 1;
    int y = node(g, BP_OP_CONV, "conv1", (int[]){g->input, pw1, pb1}, 3, &pad);
    y = node(g, BP_OP_RELU, "relu1", (int[]){y}, 1, &a);
    y = node(g, BP_OP_CONV, "conv2", (int[]){y, pw2, pb2}, 3, &pad);
    y = node(g, BP_OP_RELU, "relu2", (int[]){y}, 1, &a);
    y = node(g, BP_OP_FLATTEN, "flat", (int[]){y}, 1, &a);
    g->output = node(g, BP_OP_GEMM, "fc", (int[]){y, pw3, pb3}, 3, &gm);
    return g;
}

static void write_npy(const char *path, const char *descr, const char *shape, const void *data,
                      size_t bytes)
{
    char hdr[128];
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }", descr, shape);
    int total = 10 + n + 1, pad = (64 - total % 64) % 64;
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f);
    unsigned short hl = (unsigned short)(n + pad + 1);
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(&hl, 2, 1, f);
    fwrite(hdr, 1, n, f);
    for (int i = 0; i < pad; i++)
        fputc(' ', f);
    fputc('\n', f);
    fwrite(data, 1, bytes, f);
    fclose(f);
}

Test(act_ilp, end_to_end_sensitive_layer_gets_more_activation_bits)
{
    omp_set_num_threads(1);
    char dir[64] = "/tmp/bp_actilp_XXXXXX", xp[128], yp[128], spec[300], shape[64];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(xp, sizeof xp, "%s/x.npy", dir);
    snprintf(yp, sizeof yp, "%s/y.npy", dir);
    float x[NS * HW * HW];
    int32_t y[NS];
    uint64_t sd = 3;
    for (int i = 0; i < NS * HW * HW; i++)
        x[i] = (float)lcg(&sd);
    for (int i = 0; i < NS; i++)
        y[i] = i % NCLS;
    snprintf(shape, sizeof shape, "(%d, 1, %d, %d)", NS, HW, HW);
    write_npy(xp, "<f4", shape, x, sizeof x);
    snprintf(shape, sizeof shape, "(%d,)", NS);
    write_npy(yp, "<i4", shape, y, sizeof y);
    snprintf(spec, sizeof spec, "npy:%s,%s", xp, yp);

    bp_graph *g = tiny();
    bp_data_opts dopt = bp_data_opts_default();
    bp_stream *s;
    cr_assert_eq(bp_stream_open(spec, &dopt, &s), BP_OK, "%s", bp_last_error());
    bp_sens_opts so = bp_sens_opts_default();
    so.samples = NS;
    so.batch = 8;
    so.trace.max_probes = 20;
    bp_sens sens;
    cr_assert_eq(bp_sens_run(g, s, NULL, &so, &sens, NULL, NULL, NULL), BP_OK, "%s", bp_last_error());
    bp_act_opts ao = bp_act_opts_default();
    ao.samples = NS;
    ao.batch = 8;
    ao.trace.max_probes = 20;
    cr_assert_eq(bp_act_sens_run(g, s, &ao, &sens, NULL, NULL, NULL), BP_OK, "%s", bp_last_error());
    const int nl = sens.nlayers;
    cr_assert_eq(nl, 3);
    for (int i = 0; i < nl; i++) {
        cr_assert(sens.layers[i].act_trace > 0, "layer %d: activation trace %g", i,
                  sens.layers[i].act_trace);
        cr_assert(bp_sens_find_act(&sens.layers[i], 4) && bp_sens_find_act(&sens.layers[i], 8));
    }
    for (int hot = 0; hot < nl; hot++) {
        bp_sens t;
        cr_assert_eq(bp_sens_init(&t, nl), BP_OK);
        bp_sens_layer *keep = t.layers;
        t = sens;
        t.layers = keep;
        t.top_eigenvalues = t.density_grid = t.density_values = NULL;
        t.ntop = t.ndensity = 0;
        memcpy(t.layers, sens.layers, sizeof *t.layers * nl);
        /* make `hot` sensitive: its activation trace ×1e4, Ω_a recomputed */
        bp_sens_layer *h = &t.layers[hot];
        h->act_trace *= 1e4;
        for (int k = 0; k < h->nact; k++)
            h->act[k].omega = bp_sens_omega(h->act_trace, (size_t)h->act_numel, h->act[k].dx2, BP_NEG_ABS);
        /* others insensitive to activations */
        for (int i = 0; i < nl; i++)
            if (i != hot) {
                bp_sens_layer *o = &t.layers[i];
                o->act_trace *= 1e-4;
                for (int k = 0; k < o->nact; k++)
                    o->act[k].omega =
                        bp_sens_omega(o->act_trace, (size_t)o->act_numel, o->act[k].dx2, BP_NEG_ABS);
            }
        /* a budget that pays for this one layer's 8-bit activations */
        double lo = 0;
        for (int i = 0; i < nl; i++)
            lo += (double)t.layers[i].sig.macs * 8 * 4;
        double bops = lo + (double)t.layers[hot].sig.macs * 8 * 4;
        bp_ilp_problem p;
        bp_ilp_result r;
        solve_pairs(&t, bops, &p, &r);
        cr_assert_eq(p.abits[r.choice[hot]], 8, "hot layer %d got a%d", hot, p.abits[r.choice[hot]]);
        bp_ilp_result_free(&r);
        bp_ilp_free(&p);
        free(t.layers);
    }
    bp_sens_free(&sens);
    bp_stream_close(s);
    bp_graph_free(g);
    unlink(xp);
    unlink(yp);
    rmdir(dir);
}

/* ---- the CLI shows both parts ------------------------------------------------------ */

static const char *bitplan(void)
{
    const char *b = getenv("BITPLAN");
    return b && b[0] ? b : "bin/bitplan";
}

Test(act_ilp, cli_table_and_plan_show_both_parts)
{
    char dir[64] = "/tmp/bp_actcli_XXXXXX", sp[128], pp[128], cmd[1024];
    cr_assert_not_null(mkdtemp(dir));
    snprintf(sp, sizeof sp, "%s/sens.json", dir);
    snprintf(pp, sizeof pp, "%s/plan.json", dir);
    double tr[HL] = {1, 50, 1, 1};
    bp_sens s;
    hand_set(&s, tr);
    cr_assert_eq(bp_sens_write(sp, &s), BP_OK, "%s", bp_last_error());
    snprintf(cmd, sizeof cmd, "%s ilp %s --pairs w8a4,w8a8 --bops %.0f -o %s 2>&1", bitplan(), sp,
             4 * 320000.0 + 320000.0, pp);
    FILE *fp = popen(cmd, "r");
    cr_assert_not_null(fp);
    char out[1 << 14];
    size_t n = fread(out, 1, sizeof out - 1, fp);
    out[n] = 0;
    int st = pclose(fp);
    cr_assert(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s\n%s", cmd, out);
    cr_assert(strstr(out, "omega_w") && strstr(out, "omega_a"), "table without both parts:\n%s", out);
    cr_assert(strstr(out, "omega: weights"), "%s", out);
    bp_plan plan;
    cr_assert_eq(bp_plan_read(pp, &plan), BP_OK, "%s", bp_last_error());
    for (int i = 0; i < HL; i++) {
        const bp_plan_layer *l = &plan.layers[i];
        cr_assert_eq(l->abits, i == 1 ? 8 : 4, "layer %d a%d", i, l->abits);
        const bp_sens_act_cand *a = bp_sens_find_act(&s.layers[i], l->abits);
        cr_assert_eq(l->omega_a, a->omega);
        cr_assert(fabs(l->omega_w - s.layers[i].cand[1].omega) <= 1e-15);
    }
    bp_plan_free(&plan);
    bp_sens_free(&s);
    unlink(sp);
    unlink(pp);
    rmdir(dir);
}
