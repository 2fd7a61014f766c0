/* test_ilp.c — the GLPK search against brute-force enumeration.
 *
 * Random instances (16 layers x 2 candidates, 8 x 4, 6 x 6: every plan can be
 * enumerated in milliseconds) with each constraint alone and all three
 * together, with and without ties and pins. The brute force keeps its own
 * copy of the allowed candidates, the pins and the tied pairs, so it does not
 * rely on the problem's group bookkeeping (which is under test). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ilp/ilp.h"

/* ---- deterministic random numbers (splitmix64) ---------------------------- */

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static double unif(void) { return (double)(rnd() >> 11) / 9007199254740992.0; }
static int rint_(int n) { return (int)(rnd() % (uint64_t)n); }

/* ---- instances -------------------------------------------------------------- */

#define MAXL 16
#define MAXC 6

typedef struct {
    bp_ilp_problem p;
    unsigned char allowed0[MAXL * MAXC]; /* before pins and ties */
    int npin, pin_layer[4], pin_w[4], pin_a[4];
    int ntie, tie_a[4], tie_b[4];
} instance;

/* (w, a) candidates shared by all layers so that ties can be satisfied. */
static const int pool_w[MAXC] = {2, 3, 4, 4, 6, 8};
static const int pool_a[MAXC] = {4, 4, 4, 8, 6, 8};

static void make_instance(instance *in, int n, int K, int with_ties_pins)
{
    for (;;) {
        memset(in, 0, sizeof *in);
        int ncand[MAXL];
        for (int i = 0; i < n; i++)
            ncand[i] = K;
        cr_assert_eq(bp_ilp_alloc(&in->p, n, ncand, 1), BP_OK);
        bp_ilp_problem *p = &in->p;
        /* K candidates: spread over the pool so that K = 2 is {2, 8}-like. */
        int pick[MAXC];
        for (int c = 0; c < K; c++)
            pick[c] = K == MAXC ? c : (c * (MAXC - 1)) / (K - 1);
        for (int i = 0; i < n; i++) {
            snprintf(p->name[i], sizeof p->name[i], "layer%d", i);
            double params = 1000 + rint_(200000), cout = 8 + rint_(256);
            double macs = params * (1 + rint_(400));
            double sens = exp(6 * unif() - 3), latbase = 0.05 + unif();
            for (int c = 0; c < K; c++) {
                int j = p->off[i] + c, w = pool_w[pick[c]], a = pool_a[pick[c]];
                p->wbits[j] = w;
                p->abits[j] = a;
                /* Ω falls with bits, with noise so that optima are unique. */
                p->omega[j] = sens * pow(2.0, -2.0 * w) * (0.5 + unif()) + 1e-6 * unif();
                p->cost[BP_CON_SIZE][j] = ceil(params * w / 8) + 8 * cout;
                p->cost[BP_CON_BOPS][j] = macs * w * a;
                /* latency need not be monotone in bits (real profiles are not) */
                p->cost[BP_CON_LATENCY][j] = latbase * (0.3 + 0.1 * (w + a) * (0.7 + 0.6 * unif()));
                p->allowed[j] = unif() > 0.15;
            }
            int any = 0;
            for (int c = 0; c < K; c++)
                any |= p->allowed[p->off[i] + c];
            if (!any)
                p->allowed[p->off[i] + rint_(K)] = 1;
        }
        memcpy(in->allowed0, p->allowed, p->off[n]);
        if (!with_ties_pins)
            return;
        int ok = 1;
        in->ntie = 1 + rint_(3);
        for (int t = 0; t < in->ntie && ok; t++) {
            int a = rint_(n), b = rint_(n);
            while (b == a)
                b = rint_(n);
            in->tie_a[t] = a;
            in->tie_b[t] = b;
            bp_status st = bp_ilp_tie(p, a, b);
            ok = st == BP_OK;
            cr_assert(st == BP_OK || st == BP_ERR_INFEASIBLE, "%s", bp_last_error());
        }
        in->npin = ok ? 1 + rint_(2) : 0;
        for (int t = 0; t < in->npin && ok; t++) {
            int i = rint_(n), c;
            do
                c = p->off[i] + rint_(K);
            while (!p->allowed[c]);
            in->pin_layer[t] = i;
            in->pin_w[t] = p->wbits[c];
            in->pin_a[t] = t ? 0 : p->abits[c];   /* one pin on (w, a), one on w alone */
            bp_status st = bp_ilp_pin(p, i, in->pin_w[t], in->pin_a[t]);
            ok = st == BP_OK;
            cr_assert(st == BP_OK || st == BP_ERR_INFEASIBLE || st == BP_ERR_ARG, "%s",
                      bp_last_error());
        }
        if (ok)
            return;
        bp_ilp_free(p);   /* ties/pins left nothing: draw again */
    }
}

/* Whether a full choice respects the instance's own allowed/pins/ties. */
static int admissible(const instance *in, const int *ch)
{
    const bp_ilp_problem *p = &in->p;
    for (int i = 0; i < p->n; i++)
        if (!in->allowed0[ch[i]])
            return 0;
    for (int t = 0; t < in->npin; t++) {
        int c = ch[in->pin_layer[t]];
        if (p->wbits[c] != in->pin_w[t] || (in->pin_a[t] && p->abits[c] != in->pin_a[t]))
            return 0;
    }
    /* ties are transitive: check the listed pairs only (equality chains). */
    for (int t = 0; t < in->ntie; t++) {
        int c = ch[in->tie_a[t]], d = ch[in->tie_b[t]];
        if (p->wbits[c] != p->wbits[d] || p->abits[c] != p->abits[d])
            return 0;
    }
    return 1;
}

typedef struct {
    int found;
    double best;
    int best_choice[MAXL];
    double min[BP_CON_COUNT], max[BP_CON_COUNT];
} brute_out;

static void brute(const instance *in, const bp_limits *lim, brute_out *o)
{
    const bp_ilp_problem *p = &in->p;
    int n = p->n, ch[MAXL], idx[MAXL] = {0};
    o->found = 0;
    o->best = INFINITY;
    for (int k = 0; k < BP_CON_COUNT; k++)
        o->min[k] = INFINITY, o->max[k] = -INFINITY;
    for (;;) {
        for (int i = 0; i < n; i++)
            ch[i] = p->off[i] + idx[i];
        if (admissible(in, ch)) {
            double obj = 0, t[BP_CON_COUNT] = {0};
            for (int i = 0; i < n; i++) {
                obj += p->omega[ch[i]];
                for (int k = 0; k < BP_CON_COUNT; k++)
                    t[k] += p->cost[k][ch[i]];
            }
            int feas = 1;
            for (int k = 0; k < BP_CON_COUNT; k++) {
                o->min[k] = fmin(o->min[k], t[k]);
                o->max[k] = fmax(o->max[k], t[k]);
                if (lim->active[k] && t[k] > lim->limit[k])
                    feas = 0;
            }
            if (feas && obj < o->best) {
                o->found = 1;
                o->best = obj;
                memcpy(o->best_choice, ch, n * sizeof *ch);
            }
        }
        int i = 0;
        while (i < n && ++idx[i] == p->off[i + 1] - p->off[i])
            idx[i++] = 0;
        if (i == n)
            break;
    }
}

static int close_rel(double a, double b, double tol)
{
    return fabs(a - b) <= tol * fmax(fabs(a), fabs(b)) + 1e-300;
}

/* Checks one solve against brute force; returns whether it was feasible. */
static int check(const instance *in, const bp_limits *lim, const char *what)
{
    const bp_ilp_problem *p = &in->p;
    brute_out bo;
    brute(in, lim, &bo);
    /* The reachable range the solver states equals the enumerated one. */
    for (int k = 0; k < BP_CON_COUNT; k++) {
        double lo, hi;
        cr_assert_eq(bp_ilp_range(p, k, &lo, &hi), BP_OK, "%s", bp_last_error());
        cr_assert(close_rel(lo, bo.min[k], 1e-12), "%s: %s min %.17g, brute %.17g", what,
                  bp_con_name(k), lo, bo.min[k]);
        cr_assert(close_rel(hi, bo.max[k], 1e-12), "%s: %s max %.17g, brute %.17g", what,
                  bp_con_name(k), hi, bo.max[k]);
    }
    /* Paths: the default (LP-based fixing and cutoff), plain GLPK, and the
     * default with the brute-force optimum as a hint (the incumbent then is
     * optimal and fixing is at its most aggressive), and with a hint that is
     * not a plan (ignored). */
    int junk[MAXL];
    for (int i = 0; i < p->n; i++)
        junk[i] = -1;
    for (unsigned path = 0; path < 4; path++) {
    unsigned flags = path == 1 ? BP_ILP_PLAIN : 0;
    const int *hint = path == 2 && bo.found ? bo.best_choice : path == 3 ? junk : NULL;
    bp_ilp_result r;
    bp_status st = bp_ilp_solve_hint(p, lim, 0, flags, hint, &r);
    if (!bo.found) {
        cr_assert_eq(st, BP_ERR_INFEASIBLE, "%s: brute force finds no plan, solver says %d (%s)",
                     what, st, bp_last_error());
        const char *msg = bp_last_error();
        for (int k = 0; k < BP_CON_COUNT; k++) {
            if (!lim->active[k])
                continue;
            char need[96];
            snprintf(need, sizeof need, "%s budget %.10g %s, smallest reachable %.10g %s",
                     bp_con_name(k), lim->limit[k], bp_con_unit(k), bo.min[k], bp_con_unit(k));
            cr_assert(strstr(msg, need), "%s: message lacks \"%s\": %s", what, need, msg);
        }
        continue;
    }
    cr_assert_eq(st, BP_OK, "%s: brute force has a plan (Ω %g), solver: %s", what, bo.best,
                 bp_last_error());
    cr_assert_eq(r.status, BP_PLAN_OPTIMAL, "%s", what);
    for (int i = 0; i < p->n; i++)
        cr_assert(r.choice[i] >= p->off[i] && r.choice[i] < p->off[i + 1], "%s: layer %d", what, i);
    cr_assert(admissible(in, r.choice), "%s: plan breaks allowed/pins/ties", what);
    double obj = 0, t[BP_CON_COUNT] = {0};
    for (int i = 0; i < p->n; i++) {
        obj += p->omega[r.choice[i]];
        for (int k = 0; k < BP_CON_COUNT; k++)
            t[k] += p->cost[k][r.choice[i]];
    }
    for (int k = 0; k < BP_CON_COUNT; k++) {
        if (lim->active[k])
            cr_assert(t[k] <= lim->limit[k] * (1 + 1e-12), "%s: %s %.17g over budget %.17g", what,
                      bp_con_name(k), t[k], lim->limit[k]);
        cr_assert(close_rel(r.total[k], t[k], 1e-12), "%s: reported %s total", what,
                  bp_con_name(k));
    }
    cr_assert(close_rel(r.objective, obj, 1e-12), "%s: reported objective", what);
    /* GLPK's relative objective tolerance is 1e-7: demand the brute-force
     * optimum to 1e-6. */
    cr_assert(close_rel(obj, bo.best, 1e-6), "%s (path %u): objective %.17g, brute-force optimum %.17g",
              what, path, obj, bo.best);
    bp_ilp_result_free(&r);
    }
    return bo.found;
}

static void sweep_combos(int n, int K, int ties, int reps, uint64_t seed)
{
    rng_state = seed;
    int feasible = 0, infeasible = 0;
    for (int rep = 0; rep < reps; rep++) {
        instance in;
        make_instance(&in, n, K, ties);
        brute_out range;
        bp_limits none = {.active = {0}};
        brute(&in, &none, &range);
        /* each constraint alone, then all three together */
        for (int combo = 0; combo < 4; combo++) {
            bp_limits lim = {.active = {0}};
            for (int k = 0; k < BP_CON_COUNT; k++) {
                if (combo < 3 && k != combo)
                    continue;
                lim.active[k] = 1;
                /* mostly inside the range; sometimes just below the minimum */
                double u = rep % 5 == 4 && combo == rep % 4 ? -0.01 : 0.05 + 0.9 * unif();
                lim.limit[k] = range.min[k] + u * (range.max[k] - range.min[k]);
            }
            char what[128];
            snprintf(what, sizeof what, "%dx%d%s rep %d combo %d", n, K, ties ? " ties/pins" : "",
                     rep, combo);
            if (check(&in, &lim, what))
                feasible++;
            else
                infeasible++;
        }
        bp_ilp_free(&in.p);
    }
    /* The draws must exercise both outcomes. */
    cr_assert_gt(feasible, 0);
    cr_assert_gt(infeasible, 0, "no infeasible case drawn for %dx%d", n, K);
}

Test(ilp, brute_force_16x2) { sweep_combos(16, 2, 0, 10, 1); }
Test(ilp, brute_force_8x4) { sweep_combos(8, 4, 0, 10, 2); }
Test(ilp, brute_force_6x6) { sweep_combos(6, 6, 0, 10, 3); }
Test(ilp, brute_force_16x2_ties_pins) { sweep_combos(16, 2, 1, 10, 4); }
Test(ilp, brute_force_8x4_ties_pins) { sweep_combos(8, 4, 1, 10, 5); }
Test(ilp, brute_force_6x6_ties_pins) { sweep_combos(6, 6, 1, 10, 6); }

/* Budgets each reachable alone but not together: the message says so and
 * states every minimum. */
Test(ilp, jointly_infeasible_budgets)
{
    rng_state = 77;
    for (int attempt = 0; attempt < 500; attempt++) {
        instance in;
        make_instance(&in, 8, 4, attempt & 1);
        brute_out range;
        bp_limits none = {.active = {0}};
        brute(&in, &none, &range);
        bp_limits lim = {.active = {1, 1, 1}};
        for (int k = 0; k < BP_CON_COUNT; k++)
            lim.limit[k] = range.min[k] + 0.03 * (range.max[k] - range.min[k]);
        brute_out bo;
        brute(&in, &lim, &bo);
        if (bo.found) {
            bp_ilp_free(&in.p);
            continue;
        }
        check(&in, &lim, "jointly infeasible");
        cr_assert(strstr(bp_last_error(), "reachable alone but not all together"), "%s",
                  bp_last_error());
        bp_ilp_free(&in.p);
        return;
    }
    cr_assert_fail("no jointly infeasible instance in 500 draws");
}

/* A budget exactly equal to a plan's total admits that plan. */
Test(ilp, budget_at_a_plan_total_is_feasible)
{
    rng_state = 99;
    for (int rep = 0; rep < 10; rep++) {
        instance in;
        make_instance(&in, 8, 4, 0);
        /* the all-lowest-size plan's size as the budget */
        brute_out range;
        bp_limits none = {.active = {0}};
        brute(&in, &none, &range);
        bp_limits lim = {{1, 0, 0}, {range.min[BP_CON_SIZE], 0, 0}};
        cr_assert(check(&in, &lim, "budget at minimum"), "minimum budget must be feasible");
        bp_ilp_free(&in.p);
    }
}

/* The time limit returns either a plan (optimal, or feasible and not proven)
 * that meets the budgets, or a solver error naming the time limit. */
Test(ilp, time_limit)
{
    rng_state = 1234;
    int n = 300, K = 6;
    int ncand[300];
    for (int i = 0; i < n; i++)
        ncand[i] = K;
    bp_ilp_problem p;
    cr_assert_eq(bp_ilp_alloc(&p, n, ncand, 1), BP_OK);
    for (int i = 0; i < n; i++) {
        snprintf(p.name[i], sizeof p.name[i], "l%d", i);
        for (int c = 0; c < K; c++) {
            int j = p.off[i] + c;
            p.wbits[j] = pool_w[c];
            p.abits[j] = pool_a[c];
            p.omega[j] = unif() * pow(2.0, -pool_w[c]);
            p.cost[BP_CON_SIZE][j] = 100 * pool_w[c] * (1 + unif());
            p.cost[BP_CON_BOPS][j] = 1000 * pool_w[c] * pool_a[c] * (1 + unif());
            p.cost[BP_CON_LATENCY][j] = unif();
        }
    }
    bp_limits lim = {.active = {1, 1, 1}};
    for (int k = 0; k < BP_CON_COUNT; k++) {
        double lo, hi;
        cr_assert_eq(bp_ilp_range(&p, k, &lo, &hi), BP_OK);
        lim.limit[k] = lo + 0.4 * (hi - lo);
    }
    bp_ilp_result r;
    bp_status st = bp_ilp_solve(&p, &lim, 0.001, &r);
    if (st == BP_OK) {
        cr_assert(r.status == BP_PLAN_OPTIMAL || r.status == BP_PLAN_FEASIBLE);
        for (int k = 0; k < BP_CON_COUNT; k++)
            cr_assert_leq(r.total[k], lim.limit[k] * (1 + 1e-12));
        bp_ilp_result_free(&r);
    } else {
        cr_assert_eq(st, BP_ERR_SOLVER, "%s", bp_last_error());
        cr_assert(strstr(bp_last_error(), "time limit"), "%s", bp_last_error());
    }
    bp_ilp_free(&p);
}

/* Invalid problems are refused before GLPK sees them. */
Test(ilp, invalid_problems_are_refused)
{
    int ncand[2] = {2, 2};
    bp_ilp_problem p;
    cr_assert_eq(bp_ilp_alloc(&p, 2, ncand, 0), BP_OK);
    for (int j = 0; j < 4; j++) {
        p.wbits[j] = j % 2 ? 8 : 4;
        p.abits[j] = p.wbits[j];
        p.omega[j] = 1;
        p.cost[BP_CON_SIZE][j] = p.cost[BP_CON_BOPS][j] = 10;
    }
    strcpy(p.name[0], "a");
    strcpy(p.name[1], "b");
    bp_limits lim = {{1, 0, 0}, {100, 0, 0}};
    bp_ilp_result r;
    p.omega[1] = NAN;
    cr_assert_eq(bp_ilp_solve(&p, &lim, 0, &r), BP_ERR_NUMERIC);
    cr_assert(strstr(bp_last_error(), "a"), "%s", bp_last_error());
    p.omega[1] = 1;
    p.cost[BP_CON_SIZE][2] = -1;
    cr_assert_eq(bp_ilp_solve(&p, &lim, 0, &r), BP_ERR_NUMERIC);
    cr_assert(strstr(bp_last_error(), "size"), "%s", bp_last_error());
    p.cost[BP_CON_SIZE][2] = 10;
    p.allowed[2] = p.allowed[3] = 0;
    cr_assert_eq(bp_ilp_solve(&p, &lim, 0, &r), BP_ERR_INFEASIBLE);
    cr_assert(strstr(bp_last_error(), "b"), "%s", bp_last_error());
    p.allowed[2] = p.allowed[3] = 1;
    bp_limits lat = {{0, 0, 1}, {0, 0, 5}};
    cr_assert_eq(bp_ilp_solve(&p, &lat, 0, &r), BP_ERR_ARG);
    bp_limits neg = {{1, 0, 0}, {-1, 0, 0}};
    cr_assert_eq(bp_ilp_solve(&p, &neg, 0, &r), BP_ERR_ARG);
    cr_assert_eq(bp_ilp_solve(&p, &lim, 0, &r), BP_OK, "%s", bp_last_error());
    bp_ilp_result_free(&r);
    bp_ilp_free(&p);
}
