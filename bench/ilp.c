/* bench/ilp.c — the bit-width search on a ResNet-50-sized instance.
 *
 * 52 layers (ResNet-50's 48 bottleneck convs and 4 downsample convs; the stem
 * and fc, usually pinned at 8 bits, left out), 6 candidates per layer (weight
 * bits 2, 3, 4, 5, 6, 8 with a = max(w, 4)), the 4 residual ties, and all
 * three constraints at once. Ω and latencies are deterministic synthetic
 * numbers with ResNet-like spread (no randomness between runs).
 *
 * Prints: median / max solve time over budget levels and repetitions (target
 * < 10 ms), a 100-point size sweep with BOPs and latency held (target < 1 s),
 * and, as a peer, a greedy bit-lowering heuristic (HAWQ-V2-style: lower the
 * layer with the smallest ΔΩ per unit of normalized cost saved until every
 * budget holds): its time and how much worse its objective is. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ilp/ilp.h"

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

/* CPU time of this process: on a machine shared by many jobs, wall time
 * measures the queue; both are printed. */
static double cpu(void)
{
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_d(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_d);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#define NL 52
#define NC 6

static const int BITS[NC] = {2, 3, 4, 5, 6, 8};

typedef struct {
    char name[64];
    int cin, cout, k, hw;
} conv_t;

static void add_conv(conv_t *L, int *n, const char *name, int cin, int cout, int k, int hw)
{
    L[*n] = (conv_t){.cin = cin, .cout = cout, .k = k, .hw = hw};
    snprintf(L[*n].name, sizeof L[*n].name, "%s", name);
    (*n)++;
}

/* ResNet-50 at 224x224: stages of 3, 4, 6, 3 bottlenecks. */
static int resnet50_convs(conv_t *L)
{
    const int blocks[4] = {3, 4, 6, 3}, width[4] = {64, 128, 256, 512}, hw[4] = {56, 28, 14, 7};
    int n = 0, cin = 64;
    char nm[64];
    for (int s = 0; s < 4; s++)
        for (int b = 0; b < blocks[s]; b++) {
            int w = width[s], out = 4 * w;
            snprintf(nm, sizeof nm, "layer%d.%d.conv1", s + 1, b);
            add_conv(L, &n, nm, cin, w, 1, hw[s]);
            snprintf(nm, sizeof nm, "layer%d.%d.conv2", s + 1, b);
            add_conv(L, &n, nm, w, w, 3, hw[s]);
            snprintf(nm, sizeof nm, "layer%d.%d.conv3", s + 1, b);
            add_conv(L, &n, nm, w, out, 1, hw[s]);
            if (b == 0) {
                snprintf(nm, sizeof nm, "layer%d.0.downsample", s + 1);
                add_conv(L, &n, nm, cin, out, 1, hw[s]);
            }
            cin = out;
        }
    return n;
}

static void build(bp_ilp_problem *p)
{
    conv_t L[NL];
    int n = resnet50_convs(L);
    if (n != NL) {
        fprintf(stderr, "bench: %d layers, expected %d\n", n, NL);
        exit(1);
    }
    int ncand[NL];
    for (int i = 0; i < NL; i++)
        ncand[i] = NC;
    if (bp_ilp_alloc(p, NL, ncand, 1)) {
        fprintf(stderr, "bench: %s\n", bp_last_error());
        exit(1);
    }
    for (int i = 0; i < NL; i++) {
        snprintf(p->name[i], sizeof p->name[i], "%.63s", L[i].name);
        size_t params = (size_t)L[i].cin * L[i].cout * L[i].k * L[i].k;
        double macs = (double)params * L[i].hw * L[i].hw;
        /* Tr(H)/n spread over ~3 decades, earlier layers more sensitive. */
        double tr_per = exp(3.0 * sin(1.7 * i) - 0.05 * i);
        for (int c = 0; c < NC; c++) {
            int j = p->off[i] + c, w = BITS[c], a = bp_default_abits(w);
            p->wbits[j] = w;
            p->abits[j] = a;
            /* ‖Q_b(W) − W‖² ≈ n·Δ²/12 with Δ ∝ 2^(1−b) (max-abs per channel). */
            double dw2 = (double)params * pow(2.0, 2.0 * (1 - w)) / 12.0 * 0.01 *
                         (1 + 0.1 * cos(i + c));
            p->omega[j] = tr_per * dw2;
            p->cost[BP_CON_SIZE][j] = bp_weight_bytes(params, w, BP_SIZE_PACKED) + 8.0 * L[i].cout;
            p->cost[BP_CON_BOPS][j] = macs * w * a;
            /* roofline-ish latency: int4 units for a <= 4, int8 otherwise,
             * plus a fixed launch cost and a little shape-dependent noise. */
            double peak = a <= 4 ? 260e12 : 130e12;
            p->cost[BP_CON_LATENCY][j] =
                1e3 * (2 * macs / peak + 2e-6) * (1 + 0.15 * sin(3.1 * i + c));
        }
    }
    /* the residual ties: downsample with its block's conv3 */
    for (int i = 0; i < NL; i++)
        if (strstr(p->name[i], "downsample") && bp_ilp_tie(p, i, i - 1)) {
            fprintf(stderr, "bench: %s\n", bp_last_error());
            exit(1);
        }
}

static void limits_at(const bp_ilp_problem *p, double fs, double fb, double fl, bp_limits *lim)
{
    double f[3] = {fs, fb, fl};
    memset(lim, 0, sizeof *lim);
    for (int k = 0; k < BP_CON_COUNT; k++) {
        double lo, hi;
        bp_ilp_range(p, k, &lo, &hi);
        lim->active[k] = 1;
        lim->limit[k] = lo + f[k] * (hi - lo);
    }
}

/* Greedy peer: all layers (tied groups together) at their highest candidate,
 * then repeatedly move one unit one candidate down, choosing the move with the
 * smallest ΔΩ per unit of budget excess removed, until every budget holds. */
static int greedy(const bp_ilp_problem *p, const bp_limits *lim, int *choice, double *obj)
{
    for (int i = 0; i < p->n; i++)
        choice[i] = p->off[i + 1] - 1;
    for (;;) {
        double tot[BP_CON_COUNT];
        bp_ilp_evaluate(p, choice, obj, tot);
        double excess[BP_CON_COUNT];
        int over = 0;
        for (int k = 0; k < BP_CON_COUNT; k++) {
            excess[k] = lim->active[k] ? fmax(0, tot[k] - lim->limit[k]) / lim->limit[k] : 0;
            over |= excess[k] > 0;
        }
        if (!over)
            return 1;
        int best_i = -1;
        double best_score = INFINITY;
        for (int i = 0; i < p->n; i++) {
            if (choice[i] == p->off[i])
                continue;
            if (p->group[i] >= 0) {
                int first = 0;
                while (p->group[first] != p->group[i])
                    first++;
                if (first != i)
                    continue;
            }
            double dobj = 0, gain = 0;
            for (int j = 0; j < p->n; j++) {
                if (j != i && (p->group[i] < 0 || p->group[j] != p->group[i]))
                    continue;
                int c = choice[j];
                dobj += p->omega[c - 1] - p->omega[c];
                for (int k = 0; k < BP_CON_COUNT; k++)
                    if (excess[k] > 0)
                        gain += (p->cost[k][c] - p->cost[k][c - 1]) / lim->limit[k];
            }
            if (gain <= 0)
                continue;
            double score = dobj / gain;
            if (score < best_score)
                best_score = score, best_i = i;
        }
        if (best_i < 0)
            return 0;
        for (int j = 0; j < p->n; j++)
            if (j == best_i || (p->group[best_i] >= 0 && p->group[j] == p->group[best_i]))
                choice[j]--;
    }
}

int main(void)
{
    bp_ilp_problem p;
    build(&p);
    printf("ILP bench: %d layers x %d candidates (w 2,3,4,5,6,8; a = max(w,4)), 4 residual ties,\n"
           "size + BOPs + latency budgets at once\n\n", p.n, NC);

    /* Budget levels: fractions of each range, a spread of easy and tight. */
    const double levels[][3] = {{0.2, 0.3, 0.4}, {0.3, 0.5, 0.5}, {0.4, 0.4, 0.6}, {0.5, 0.5, 0.5},
                                {0.6, 0.7, 0.5}, {0.35, 0.6, 0.3}, {0.7, 0.3, 0.7}, {0.25, 0.25, 0.25}};
    const int nlev = sizeof levels / sizeof *levels, reps = 7;
    double t[8 * 7], tc[8 * 7], worst = 0, gaps[8], gtime[8 * 7], tp[8 * 7], tpc[8 * 7];
    int nt = 0, ng = 0, greedy_fail = 0, optimal = 0;
    int choice[NL];
    for (int l = 0; l < nlev; l++) {
        bp_limits lim;
        limits_at(&p, levels[l][0], levels[l][1], levels[l][2], &lim);
        double obj_opt = NAN;
        for (int r = 0; r < reps; r++) {
            bp_ilp_result res;
            double t0 = now(), c0 = cpu();
            bp_status st = bp_ilp_solve(&p, &lim, 0, &res);
            double dt = now() - t0;
            tc[nt] = cpu() - c0;
            if (st) {
                fprintf(stderr, "bench: level %d: %s\n", l, bp_last_error());
                return 1;
            }
            optimal += res.status == BP_PLAN_OPTIMAL;
            obj_opt = res.objective;
            t[nt++] = dt;
            worst = fmax(worst, dt);
            bp_ilp_result_free(&res);
            /* peer: the same model handed to GLPK whole */
            t0 = now(), c0 = cpu();
            st = bp_ilp_solve_ex(&p, &lim, 0, BP_ILP_PLAIN, &res);
            tp[nt - 1] = now() - t0;
            tpc[nt - 1] = cpu() - c0;
            if (st || fabs(res.objective - obj_opt) > 1e-6 * obj_opt) {
                fprintf(stderr, "bench: plain GLPK disagrees at level %d: %s\n", l,
                        st ? bp_last_error() : "objective");
                return 1;
            }
            bp_ilp_result_free(&res);
            double obj_g;
            t0 = now();
            int ok = greedy(&p, &lim, choice, &obj_g);
            gtime[ng * reps + r] = now() - t0;
            if (r == 0 && !ok)
                greedy_fail++;
            if (r == 0)
                gaps[ng] = ok ? obj_g / obj_opt : NAN;
        }
        ng++;
    }
    double lev[8];
    for (int l = 0; l < nlev; l++)
        lev[l] = median(tc + l * reps, reps);   /* sorts within each level only */
    double med = median(t, nt), medc = median(tc, nt);
    double gmed = median(gtime, nlev * reps);
    printf("solve (GLPK, presolve, zero gap): median %.2f ms wall (%.2f ms CPU), max %.2f ms wall "
           "over %d solves (%d levels x %d reps), %d/%d proven optimal   [target < 10 ms]\n",
           med * 1e3, medc * 1e3, worst * 1e3, nt, nlev, reps, optimal, nt);
    printf("  CPU ms per level (median of %d):", reps);
    for (int l = 0; l < nlev; l++)
        printf(" %.2f", lev[l] * 1e3);
    printf("\n");
    printf("plain GLPK peer (whole model, no LP-based fixing): median %.2f ms wall (%.2f ms CPU): "
           "%.1fx the CPU time of the default\n", median(tp, nt) * 1e3, median(tpc, nt) * 1e3,
           median(tpc, nt) / medc);
    printf("greedy peer: median %.3f ms wall (%.1fx less than the ILP); objective / optimum per level:",
           gmed * 1e3, med / gmed);
    for (int l = 0; l < nlev; l++)
        printf(" %.3f", gaps[l]);
    printf("%s\n", greedy_fail ? " (NaN: greedy found no feasible plan)" : "");

    /* 100-point sweep of the size budget with BOPs and latency held at 60%. */
    bp_limits base;
    limits_at(&p, 0, 0.6, 0.6, &base);
    base.active[BP_CON_SIZE] = 0;
    double sw[5], swc[5];
    int npts = 0;
    for (int r = 0; r < 5; r++) {
        bp_sweep_point *pts;
        double t0 = now(), c0 = cpu();
        if (bp_ilp_sweep(&p, &base, BP_CON_SIZE, 100, 0, &pts, &npts)) {
            fprintf(stderr, "bench: sweep: %s\n", bp_last_error());
            return 1;
        }
        sw[r] = now() - t0;
        swc[r] = cpu() - c0;
        bp_sweep_free(pts, npts);
    }
    printf("sweep size:100 (BOPs and latency held at 60%%): median %.1f ms wall (%.1f ms CPU) over "
           "5 runs, %d distinct plans   [target < 1 s]\n", median(sw, 5) * 1e3, median(swc, 5) * 1e3,
           npts);
    /* and with nothing else held */
    bp_limits none;
    memset(&none, 0, sizeof none);
    for (int r = 0; r < 5; r++) {
        bp_sweep_point *pts;
        double t0 = now(), c0 = cpu();
        if (bp_ilp_sweep(&p, &none, BP_CON_BOPS, 100, 0, &pts, &npts)) {
            fprintf(stderr, "bench: sweep: %s\n", bp_last_error());
            return 1;
        }
        sw[r] = now() - t0;
        swc[r] = cpu() - c0;
        bp_sweep_free(pts, npts);
    }
    printf("sweep bops:100 (nothing else held): median %.1f ms wall (%.1f ms CPU) over 5 runs, "
           "%d distinct plans\n", median(sw, 5) * 1e3, median(swc, 5) * 1e3, npts);
    bp_ilp_free(&p);
    return 0;
}
