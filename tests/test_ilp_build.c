/* test_ilp_build.c — building the search problem from a sensitivity set
 * (candidates, costs worked by hand, pins, ties, latency from a profile),
 * residual ties from a graph, and the Pareto sweep against brute force. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "ilp/ilp.h"

/* Three layers a (Conv), b (Conv), c (Gemm) with weight candidates 2/4/8 and
 * Ω_w = scale_i / 4^b. Layer c has activation terms for a = 4 and 8. */
static void three_layers(bp_sens *s)
{
    cr_assert_eq(bp_sens_init(s, 3), BP_OK);
    const int bits[3] = {2, 4, 8};
    const char *names[3] = {"a", "b", "c"};
    for (int i = 0; i < 3; i++) {
        bp_sens_layer *l = &s->layers[i];
        strcpy(l->sig.name, names[i]);
        l->sig.op = i == 2 ? BP_OP_GEMM : BP_OP_CONV;
        l->sig.params = 100 * (i + 1);     /* 100, 200, 300 */
        l->sig.cout = 4 * (i + 1);         /* 4, 8, 12 */
        l->sig.cin = 4;
        l->sig.kh = l->sig.kw = i == 2 ? 1 : 3;
        l->sig.in_h = l->sig.in_w = l->sig.out_h = l->sig.out_w = i == 2 ? 1 : 8;
        l->sig.macs = 1000 * (i + 1);
        l->ncand = 3;
        for (int c = 0; c < 3; c++)
            l->cand[c] = (bp_sens_cand){.bits = bits[c], .dw2 = NAN,
                                        .omega = (i + 1) / pow(4.0, bits[c])};
    }
    bp_sens_layer *c = &s->layers[2];
    c->has_act = 1;
    c->nact = 2;
    c->act[0] = (bp_sens_act_cand){.bits = 4, .dx2 = NAN, .omega = 0.5};
    c->act[1] = (bp_sens_act_cand){.bits = 8, .dx2 = NAN, .omega = 0.25};
}

Test(ilp_build, default_candidates_and_costs)
{
    bp_sens s;
    three_layers(&s);
    bp_ilp_problem p;
    cr_assert_eq(bp_ilp_from_sens(&s, NULL, &p), BP_OK, "%s", bp_last_error());
    cr_assert_eq(p.n, 3);
    cr_assert_str_eq(p.name[1], "b");
    cr_assert_eq(p.off[3], 9);
    cr_assert_null(p.cost[BP_CON_LATENCY]);
    /* layer b (params 200, cout 8, macs 2000), candidate w2 -> a4 */
    int j = p.off[1];
    cr_assert_eq(p.wbits[j], 2);
    cr_assert_eq(p.abits[j], 4);
    cr_assert_eq(p.cost[BP_CON_SIZE][j], 50 + 64);      /* ceil(200·2/8) + 8·8 */
    cr_assert_eq(p.cost[BP_CON_BOPS][j], 2000.0 * 2 * 4);
    cr_assert_eq(p.omega[j], 2 / 16.0);
    cr_assert_eq(p.abits[j + 2], 8);
    cr_assert_eq(p.cost[BP_CON_BOPS][j + 2], 2000.0 * 64);
    /* layer c: Ω adds the activation term of its a */
    j = p.off[2];
    cr_assert_eq(p.omega[j], 3 / 16.0 + 0.5);         /* w2 a4 */
    cr_assert_eq(p.omega[j + 2], 3 / 65536.0 + 0.25); /* w8 a8 */
    cr_assert_eq(p.cost[BP_CON_SIZE][j + 1], 150 + 96);
    for (int i = 0; i < 3; i++)
        cr_assert_eq(p.group[i], -1);
    bp_ilp_free(&p);
    bp_sens_free(&s);
}

Test(ilp_build, pairs_bits_and_container_sizes)
{
    bp_sens s;
    three_layers(&s);
    bp_ilp_options o = {0};
    o.npairs = 3;
    o.pair_w[0] = 4, o.pair_a[0] = 8;
    o.pair_w[1] = 8, o.pair_a[1] = 8;
    o.pair_w[2] = 3, o.pair_a[2] = 8;  /* no layer has Ω for 3 bits: dropped */
    o.size_model = BP_SIZE_CONTAINER;
    bp_ilp_problem p;
    /* layer c's activation terms cover a = 8 */
    cr_assert_eq(bp_ilp_from_sens(&s, &o, &p), BP_OK, "%s", bp_last_error());
    cr_assert_eq(p.off[1] - p.off[0], 2);
    cr_assert_eq(p.wbits[0], 4);
    cr_assert_eq(p.abits[0], 8);
    cr_assert_eq(p.cost[BP_CON_BOPS][0], 1000.0 * 32);
    bp_ilp_free(&p);
    /* a pair whose activation bits a layer with activation terms lacks */
    o.pair_a[0] = 6;
    cr_assert_eq(bp_ilp_from_sens(&s, &o, &p), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "layer 2 (c)"), "%s", bp_last_error());
    /* restricting bits */
    bp_ilp_options r = {0};
    r.nbits = 2;
    r.bits[0] = 4, r.bits[1] = 8;
    r.size_model = BP_SIZE_CONTAINER;
    cr_assert_eq(bp_ilp_from_sens(&s, &r, &p), BP_OK, "%s", bp_last_error());
    cr_assert_eq(p.allowed[0], 0);
    cr_assert_eq(p.allowed[1], 1);
    cr_assert_eq(p.cost[BP_CON_SIZE][0], 25 + 32);   /* 2-bit container: ceil(100·2/8) */
    bp_ilp_free(&p);
    r.bits[0] = 3, r.nbits = 1;
    cr_assert_eq(bp_ilp_from_sens(&s, &r, &p), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "layer 0 (a)"), "%s", bp_last_error());
    bp_sens_free(&s);
}

Test(ilp_build, pins_and_ties)
{
    bp_sens s;
    three_layers(&s);
    strcpy(s.layers[0].tie, "add1");
    strcpy(s.layers[1].tie, "add1");
    bp_ilp_pin_spec pins[1] = {{"b", 4, 0}};
    bp_ilp_options o = {0};
    o.npins = 1;
    o.pins = pins;
    bp_ilp_problem p;
    cr_assert_eq(bp_ilp_from_sens(&s, &o, &p), BP_OK, "%s", bp_last_error());
    /* a is tied to b, b pinned at 4: both only 4 */
    cr_assert_eq(p.group[0], p.group[1]);
    cr_assert_geq(p.group[0], 0);
    cr_assert_eq(p.group[2], -1);
    for (int i = 0; i < 2; i++)
        for (int c = p.off[i]; c < p.off[i + 1]; c++)
            cr_assert_eq(p.allowed[c], p.wbits[c] == 4, "layer %d w%d", i, p.wbits[c]);
    bp_limits none = {.active = {0}};
    bp_ilp_result r;
    cr_assert_eq(bp_ilp_solve(&p, &none, 0, &r), BP_OK, "%s", bp_last_error());
    /* unconstrained: c takes 8 bits, a and b the pinned 4 */
    cr_assert_eq(p.wbits[r.choice[0]], 4);
    cr_assert_eq(p.wbits[r.choice[2]], 8);
    bp_ilp_result_free(&r);
    bp_ilp_free(&p);

    /* the file's ties can be ignored */
    o.no_file_ties = 1;
    cr_assert_eq(bp_ilp_from_sens(&s, &o, &p), BP_OK, "%s", bp_last_error());
    cr_assert_eq(p.group[0], -1);
    bp_ilp_free(&p);

    /* explicit ties; pin-first-last */
    const char *ties[1] = {"a,c"};
    bp_ilp_options t = {0};
    t.nties = 1;
    t.ties = ties;
    t.no_file_ties = 1;
    t.pin_first_last = 1;
    cr_assert_eq(bp_ilp_from_sens(&s, &t, &p), BP_OK, "%s", bp_last_error());
    cr_assert_eq(p.group[0], p.group[2]);
    for (int c = 0; c < p.off[3]; c++) {
        int i = c < 3 ? 0 : c < 6 ? 1 : 2;
        cr_assert_eq(p.allowed[c], i == 1 || p.wbits[c] == 8);
    }
    bp_ilp_free(&p);

    /* errors name what is wrong */
    const char *bad1[1] = {"a"};
    t.ties = bad1;
    cr_assert_eq(bp_ilp_from_sens(&s, &t, &p), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "at least two"), "%s", bp_last_error());
    const char *bad2[1] = {"a,zz"};
    t.ties = bad2;
    cr_assert_eq(bp_ilp_from_sens(&s, &t, &p), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "zz"), "%s", bp_last_error());
    bp_ilp_pin_spec badpin[1] = {{"nope", 4, 0}};
    bp_ilp_options q = {0};
    q.npins = 1;
    q.pins = badpin;
    cr_assert_eq(bp_ilp_from_sens(&s, &q, &p), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "nope"), "%s", bp_last_error());
    bp_ilp_pin_spec badbits[1] = {{"a", 5, 0}};
    q.pins = badbits;
    cr_assert_eq(bp_ilp_from_sens(&s, &q, &p), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "5 bits"), "%s", bp_last_error());
    /* tied layers pinned to different bits have nothing in common */
    bp_ilp_pin_spec two[2] = {{"a", 4, 0}, {"b", 8, 0}};
    q.npins = 2;
    q.pins = two;
    bp_status st = bp_ilp_from_sens(&s, &q, &p);
    cr_assert(st == BP_ERR_INFEASIBLE || st == BP_ERR_ARG, "%d %s", st, bp_last_error());
    bp_sens_free(&s);
}

Test(ilp_build, latency_from_a_profile)
{
    bp_sens s;
    three_layers(&s);
    bp_profile *prof = bp_profile_new("test device", 1);
    cr_assert_not_null(prof);
    /* Exact entries for a and b at every default candidate. c (a Gemm) has
     * none, so the lookup falls back to interpolating over a and b. */
    const int W[3] = {2, 4, 8};
    for (int i = 0; i < 2; i++)
        for (int c = 0; c < 3; c++) {
            bp_profile_entry e = {0};
            e.sig = bp_lat_sig_of_layer(&s.layers[i].sig, 1);
            e.b_w = W[c];
            e.b_a = bp_default_abits(W[c]);
            e.macs = s.layers[i].sig.macs;
            e.latency_ms = 0.1 * (i + 1) * (c + 1);
            e.lo_ms = e.hi_ms = e.latency_ms;
            e.source = BP_LAT_MEASURED;
            cr_assert_eq(bp_profile_add(prof, &e), BP_OK, "%s", bp_last_error());
        }
    bp_ilp_options o = {0};
    o.profile = prof;
    bp_ilp_problem p;
    cr_assert_eq(bp_ilp_from_sens(&s, &o, &p), BP_OK, "%s", bp_last_error());
    cr_assert_not_null(p.cost[BP_CON_LATENCY]);
    for (int i = 0; i < 3; i++)
        for (int c = 0; c < 3; c++) {
            int j = p.off[i] + c;
            double ms;
            int how;
            cr_assert_eq(bp_profile_latency(prof, &s.layers[i].sig, p.wbits[j], p.abits[j], &ms,
                                            &how), BP_OK);
            cr_assert_eq(p.cost[BP_CON_LATENCY][j], ms);
            if (i < 2)
                cr_assert(fabs(ms - 0.1 * (i + 1) * (c + 1)) < 1e-12);
            cr_assert_eq(p.lat_fallback[j], i == 2, "layer %d cand %d", i, c);
        }
    /* the plan records which layers used a fallback */
    bp_limits lim = {.active = {0, 0, 1}, .limit = {0, 0, 10}};
    bp_ilp_result r;
    cr_assert_eq(bp_ilp_solve(&p, &lim, 0, &r), BP_OK, "%s", bp_last_error());
    bp_plan plan;
    cr_assert_eq(bp_ilp_to_plan(&p, &r, &lim, &s, &plan), BP_OK);
    cr_assert_eq(plan.layers[2].lat_fallback, 1);
    cr_assert_eq(plan.layers[0].lat_fallback, 0);
    cr_assert(plan.con[BP_CON_LATENCY].active);
    cr_assert(fabs(plan.latency_ms - r.total[BP_CON_LATENCY]) < 1e-12);
    bp_plan_free(&plan);
    bp_ilp_result_free(&r);
    bp_ilp_free(&p);
    bp_profile_free(prof);
    bp_sens_free(&s);
}

/* ---- residual ties from a graph ------------------------------------------- */

static int add_param(bp_graph *g, const char *name, int nd, int64_t d0, int64_t d1, int64_t d2,
                     int64_t d3)
{
    int64_t d[4] = {d0, d1, d2, d3};
    int v = bp_graph_add_param(g, name, nd, d, NULL);
    cr_assert_geq(v, 0, "%s", bp_last_error());
    return v;
}

static int conv(bp_graph *g, const char *name, int x, int cin, int cout, int k)
{
    char wn[64];
    snprintf(wn, sizeof wn, "%s.weight", name);
    int w = add_param(g, wn, 4, cout, cin, k, k);
    bp_attrs a = bp_attrs_default();
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = k / 2;
    int in[2] = {x, w};
    char out[64];
    snprintf(out, sizeof out, "%s_out", name);
    int y = bp_graph_add_node(g, BP_OP_CONV, name, in, 2, out, &a);
    cr_assert_geq(y, 0, "%s", bp_last_error());
    return y;
}

static int bn(bp_graph *g, const char *name, int x, int c)
{
    int in[5] = {x};
    const char *parts[4] = {"scale", "shift", "mean", "var"};
    for (int k = 0; k < 4; k++) {
        char pn[64];
        snprintf(pn, sizeof pn, "%s.%s", name, parts[k]);
        in[k + 1] = add_param(g, pn, 1, c, 0, 0, 0);
    }
    bp_attrs a = bp_attrs_default();
    char out[64];
    snprintf(out, sizeof out, "%s_out", name);
    int y = bp_graph_add_node(g, BP_OP_BN, name, in, 5, out, &a);
    cr_assert_geq(y, 0, "%s", bp_last_error());
    return y;
}

static int unary(bp_graph *g, bp_op op, const char *name, int x)
{
    bp_attrs a = bp_attrs_default();
    int in[1] = {x};
    char out[64];
    snprintf(out, sizeof out, "%s_out", name);
    int y = bp_graph_add_node(g, op, name, in, 1, out, &a);
    cr_assert_geq(y, 0, "%s", bp_last_error());
    return y;
}

static int add2(bp_graph *g, const char *name, int x, int y)
{
    bp_attrs a = bp_attrs_default();
    int in[2] = {x, y};
    char out[64];
    snprintf(out, sizeof out, "%s_out", name);
    int z = bp_graph_add_node(g, BP_OP_ADD, name, in, 2, out, &a);
    cr_assert_geq(z, 0, "%s", bp_last_error());
    return z;
}

Test(ilp_build, residual_ties_from_graph)
{
    /* x -> c1 -> bn1 -> relu -> c2 -> bn2 --\
     * x -> cd (1x1 downsample) -> bnd ------ add1 -> relu -> c3 -> add2 (+ relu output)
     *                                                   \-----------/
     * c2 and cd meet at add1: one group. c3 meets add2 alone (the other
     * operand is the relu, not a layer), and c1 feeds no Add: no group. A
     * bias-style Add with a PARAM operand after c4 does not tie. */
    bp_graph *g = bp_graph_new();
    int64_t xd[4] = {-1, 4, 8, 8};
    int x = bp_graph_add_input(g, "x", 4, xd);
    int y = conv(g, "c1", x, 4, 4, 3);
    y = bn(g, "bn1", y, 4);
    y = unary(g, BP_OP_RELU, "r1", y);
    y = conv(g, "c2", y, 4, 8, 3);
    y = bn(g, "bn2", y, 8);
    int d = conv(g, "cd", x, 4, 8, 1);
    d = bn(g, "bnd", d, 8);
    int s1 = add2(g, "add1", y, d);
    int r = unary(g, BP_OP_RELU, "r2", s1);
    int c3 = conv(g, "c3", r, 8, 8, 3);
    int id = unary(g, BP_OP_IDENTITY, "id3", c3);
    int s2 = add2(g, "add2", id, r);
    int c4 = conv(g, "c4", s2, 8, 8, 1);
    int bias = add_param(g, "bias4", 4, 1, 8, 1, 1);
    add2(g, "biasadd", c4, bias);
    bp_layer *ls;
    int n;
    cr_assert_eq(bp_graph_layers(g, &ls, &n), BP_OK, "%s", bp_last_error());
    cr_assert_eq(n, 5);
    int grp[5];
    cr_assert_eq(bp_graph_residual_ties(g, ls, n, grp), BP_OK, "%s", bp_last_error());
    const char *want_names[5] = {"c1", "c2", "cd", "c3", "c4"};
    for (int i = 0; i < 5; i++)
        cr_assert_str_eq(ls[i].name, want_names[i]);
    cr_assert_eq(grp[0], -1);
    cr_assert_eq(grp[1], 0);
    cr_assert_eq(grp[2], 0);
    cr_assert_eq(grp[3], -1);
    cr_assert_eq(grp[4], -1);

    bp_sens s;
    cr_assert_eq(bp_sens_init(&s, n), BP_OK);
    for (int i = 0; i < n; i++)
        bp_sens_layer_set_sig(&s.layers[i], &ls[i], g);
    cr_assert_eq(s.layers[1].in_ndim, 4);
    cr_assert_eq(s.layers[1].out_shape[1], 8);
    cr_assert_eq(bp_sens_set_residual_ties(&s, g), BP_OK, "%s", bp_last_error());
    cr_assert_str_eq(s.layers[1].tie, "add1");
    cr_assert_str_eq(s.layers[2].tie, "add1");
    cr_assert_str_eq(s.layers[0].tie, "");
    cr_assert_str_eq(s.layers[3].tie, "");
    bp_sens_free(&s);
    free(ls);
    bp_graph_free(g);
}

/* ---- Pareto sweep vs brute force ------------------------------------------- */

static uint64_t rng_state = 42;
static double unif(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return (double)((z ^ (z >> 31)) >> 11) / 9007199254740992.0;
}

/* Best Σ Ω with Σ cost_k <= budget over all plans (no ties here). */
static double brute_best(const bp_ilp_problem *p, bp_con_kind k, double budget)
{
    int idx[16] = {0};
    double best = INFINITY;
    for (;;) {
        double o = 0, t = 0;
        for (int i = 0; i < p->n; i++) {
            o += p->omega[p->off[i] + idx[i]];
            t += p->cost[k][p->off[i] + idx[i]];
        }
        if (t <= budget && o < best)
            best = o;
        int i = 0;
        while (i < p->n && ++idx[i] == p->off[i + 1] - p->off[i])
            idx[i++] = 0;
        if (i == p->n)
            return best;
    }
}

Test(ilp_build, sweep_matches_brute_force_and_writes_frontier)
{
    bp_sens s;
    cr_assert_eq(bp_sens_init(&s, 8), BP_OK);
    const int bits[4] = {2, 3, 4, 8};
    for (int i = 0; i < 8; i++) {
        bp_sens_layer *l = &s.layers[i];
        snprintf(l->sig.name, sizeof l->sig.name, "layer,%d", i);  /* a comma: CSV quoting */
        l->sig.op = BP_OP_CONV;
        l->sig.params = 1000 + (size_t)(50000 * unif());
        l->sig.cout = 16;
        l->sig.macs = (int64_t)l->sig.params * 100;
        l->ncand = 4;
        double sens = exp(4 * unif());
        for (int c = 0; c < 4; c++)
            l->cand[c] = (bp_sens_cand){.bits = bits[c], .dw2 = NAN,
                                        .omega = sens * pow(2, -2.0 * bits[c]) * (0.5 + unif())};
    }
    strcpy(s.model_sha256, "ab00000000000000000000000000000000000000000000000000000000000000");
    bp_ilp_problem p;
    cr_assert_eq(bp_ilp_from_sens(&s, NULL, &p), BP_OK, "%s", bp_last_error());
    bp_limits base = {.active = {0}};
    bp_sweep_point *pts;
    int npts;
    cr_assert_eq(bp_ilp_sweep(&p, &base, BP_CON_SIZE, 25, 0, &pts, &npts), BP_OK, "%s",
                 bp_last_error());
    double lo, hi;
    cr_assert_eq(bp_ilp_range(&p, BP_CON_SIZE, &lo, &hi), BP_OK);
    cr_assert_gt(npts, 2);
    cr_assert_eq(pts[0].budget, lo);
    cr_assert_eq(pts[npts - 1].budget_max, hi);
    int covered = 0;
    for (int j = 0; j < npts; j++) {
        const bp_sweep_point *q = &pts[j];
        covered += (int)llround((q->budget_max - q->budget) / ((hi - lo) / 24)) + 1;
        cr_assert_leq(q->total[BP_CON_SIZE], q->budget * (1 + 1e-12));
        double best = brute_best(&p, BP_CON_SIZE, q->budget);
        cr_assert(fabs(q->objective - best) <= 1e-6 * best, "point %d: %.17g vs brute %.17g", j,
                  q->objective, best);
        /* the same plan also serves the last budget of its run */
        double best_max = brute_best(&p, BP_CON_SIZE, q->budget_max);
        cr_assert(fabs(q->objective - best_max) <= 1e-6 * best_max, "point %d at budget_max", j);
        if (j > 0) {
            cr_assert_gt(q->budget, pts[j - 1].budget_max);
            cr_assert_leq(q->objective, pts[j - 1].objective * (1 + 1e-9));
            cr_assert_neq(memcmp(q->choice, pts[j - 1].choice, p.n * sizeof(int)), 0,
                          "consecutive identical plans not collapsed");
        }
    }
    cr_assert_eq(covered, 25, "the points must account for all 25 budgets");
    /* the highest budget gives every layer its best (8-bit) candidate */
    for (int i = 0; i < p.n; i++)
        cr_assert_eq(p.wbits[pts[npts - 1].choice[i]], 8);

    char dir[] = "/tmp/bp_sweep_XXXXXX";
    cr_assert(mkdtemp(dir));
    char csv[96], js[96];
    snprintf(csv, sizeof csv, "%s/f.csv", dir);
    snprintf(js, sizeof js, "%s/f.json", dir);
    cr_assert_eq(bp_sweep_write_csv(csv, &p, BP_CON_SIZE, pts, npts), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_sweep_write_json(js, &p, BP_CON_SIZE, pts, npts, &s), BP_OK, "%s",
                 bp_last_error());
    char *text;
    size_t len;
    cr_assert_eq(bp_read_file(csv, &text, &len), BP_OK);
    int lines = 0;
    for (size_t k = 0; k < len; k++)
        lines += text[k] == '\n';
    cr_assert_eq(lines, npts + 1);
    cr_assert_eq(strncmp(text, "sweep,budget,budget_max,objective,size_bytes,bops,latency_ms,status,"
                               "\"w_layer,0\"", 77), 0, "%.120s", text);
    free(text);
    json_error_t je;
    json_t *root = json_load_file(js, 0, &je);
    cr_assert_not_null(root, "%s", je.text);
    cr_assert_str_eq(json_string_value(json_object_get(root, "format")), "bitplan-frontier");
    cr_assert_str_eq(json_string_value(json_object_get(root, "sweep")), "size");
    json_t *jp = json_object_get(root, "points");
    cr_assert_eq((int)json_array_size(jp), npts);
    json_t *w0 = json_object_get(json_array_get(jp, npts - 1), "wbits");
    cr_assert_eq(json_array_size(w0), 8);
    cr_assert_eq(json_integer_value(json_array_get(w0, 3)), 8);
    cr_assert(json_is_null(json_object_get(json_array_get(jp, 0), "latency_ms")));
    json_decref(root);
    unlink(csv);
    unlink(js);
    rmdir(dir);
    bp_sweep_free(pts, npts);

    /* A held BOPs budget makes the low end infeasible only when it binds;
     * with it at its minimum every point has minimal BOPs. */
    double blo, bhi;
    cr_assert_eq(bp_ilp_range(&p, BP_CON_BOPS, &blo, &bhi), BP_OK);
    bp_limits held = {.active = {0, 1, 0}, .limit = {0, blo, 0}};
    cr_assert_eq(bp_ilp_sweep(&p, &held, BP_CON_SIZE, 10, 0, &pts, &npts), BP_OK, "%s",
                 bp_last_error());
    cr_assert_geq(npts, 1);
    for (int j = 0; j < npts; j++)
        cr_assert_leq(pts[j].total[BP_CON_BOPS], blo * (1 + 1e-12));
    bp_sweep_free(pts, npts);
    cr_assert_eq(bp_ilp_sweep(&p, &base, BP_CON_LATENCY, 10, 0, &pts, &npts), BP_ERR_ARG);
    cr_assert_eq(bp_ilp_sweep(&p, &base, BP_CON_SIZE, 1, 0, &pts, &npts), BP_ERR_ARG);
    bp_ilp_free(&p);
    bp_sens_free(&s);
}
