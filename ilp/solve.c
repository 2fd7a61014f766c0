/* solve.c — the bit-width integer program through GLPK's C API.
 *
 * Order of work: validate (GLPK aborts the process on bad input), reject a
 * budget below its reachable minimum with a precise message, build the MIP
 * (staircase binaries per layer, see below), solve its LP relaxation, build
 * an incumbent plan from it and fix the binaries whose reduced costs rule
 * them out, glp_intopt with presolve and zero gap, read the two-level status,
 * then check the plan in exact double arithmetic: GLPK accepts rows violated
 * within its feasibility tolerance (~1e-7 relative), so a plan that
 * overshoots a budget by such a hair is cut off with a no-good row and the MIP
 * solved again. docs/ILP.md explains each step. */
#include <glpk.h>
#include <math.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ilp/ilp.h"

/* Relative slack allowed when checking a plan against a budget: only the
 * rounding of a sum of doubles, far below GLPK's tolerances. */
#define BP_ILP_FEAS_RTOL 1e-12

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

void bp_ilp_result_free(bp_ilp_result *r)
{
    if (!r)
        return;
    free(r->choice);
    memset(r, 0, sizeof *r);
}

void bp_ilp_evaluate(const bp_ilp_problem *p, const int *choice, double *objective,
                     double total[BP_CON_COUNT])
{
    double obj = 0, t[BP_CON_COUNT] = {0};
    for (int i = 0; i < p->n; i++) {
        int c = choice[i];
        obj += p->omega[c];
        for (int k = 0; k < BP_CON_COUNT; k++)
            if (p->cost[k])
                t[k] += p->cost[k][c];
    }
    if (objective)
        *objective = obj;
    if (total)
        for (int k = 0; k < BP_CON_COUNT; k++)
            total[k] = p->cost[k] ? t[k] : NAN;
}

static int within(double value, double limit)
{
    return value <= limit + BP_ILP_FEAS_RTOL * fmax(fabs(limit), 1e-300);
}

/* ---- GLPK error hook ----------------------------------------------------- */

/* GLPK calls the hook on an internal error and aborts unless it longjmps; we
 * validated every input, so this is a last line of defence. */
static _Thread_local jmp_buf *glpk_jmp;

static void glpk_hook(void *info)
{
    (void)info;
    if (glpk_jmp)
        longjmp(*glpk_jmp, 1);
}

/* ---- infeasibility message ------------------------------------------------ */

static bp_status infeasible(const bp_ilp_problem *p, const bp_limits *lim)
{
    char msg[1024];
    size_t m = 0;
    int alone_bad = 0;
    m += snprintf(msg + m, sizeof msg - m, "no plan meets the budgets:");
    for (int k = 0; k < BP_CON_COUNT; k++) {
        if (!lim->active[k])
            continue;
        double lo, hi;
        if (bp_ilp_range(p, k, &lo, &hi))
            return BP_ERR_INFEASIBLE;
        int bad = !within(lo, lim->limit[k]);
        alone_bad |= bad;
        if (m < sizeof msg)
            m += snprintf(msg + m, sizeof msg - m, " %s budget %.10g %s, smallest reachable %.10g %s%s;",
                          bp_con_name(k), lim->limit[k], bp_con_unit(k), lo, bp_con_unit(k),
                          bad ? " (below it)" : " (reachable alone)");
    }
    if (m < sizeof msg)
        snprintf(msg + m, sizeof msg - m, "%s",
                 alone_bad ? " raise the budgets marked \"below it\""
                           : " each budget is reachable alone but not all together");
    return bp_error(BP_ERR_INFEASIBLE, "%s", msg);
}

/* ---- the MIP ---------------------------------------------------------------
 *
 * Formulation. The textbook model has one binary x_{i,c} per candidate with
 * Σ_c x_{i,c} = 1. Branching on such an x is lopsided (x = 1 fixes the layer,
 * x = 0 removes one option), and GLPK needed ~40 ms on a 52 x 6 instance. We
 * use the equivalent incremental ("staircase") model instead: the allowed
 * candidates of layer i sorted by (w, a) as c_0 < c_1 < ... < c_{m-1}, and
 * binaries y_{i,t} (t = 1..m-1) meaning "layer i takes c_t or later", with
 * y_{i,1} >= y_{i,2} >= ... . Then x_{i,c_t} = y_{i,t} − y_{i,t+1} (y_{i,0} = 1,
 * y_{i,m} = 0), every cost and Ω becomes a sum of increments, the LP
 * relaxation is the same (the map is unimodular), and a branch on y_{i,t}
 * splits the layer's candidates into "below c_t" and "c_t or above", like SOS
 * branching. Tied layers have the same sorted (w, a) lists, so a tie is
 * y_{i,t} = y_{j,t}. */

typedef struct {
    glp_prob *lp;
    int *order;   /* layer i's allowed candidates, sorted: order[start[i] .. start[i+1]-1] */
    int *start;   /* (n+1) */
    int *col;     /* (off[n]) GLPK column of y_{i,t} at col[start[i] + t], t >= 1 */
    int ncols;
    double oscale; /* objective coefficients are Ω increments times this */
} mip;

static void mip_free(mip *m)
{
    if (m->lp)
        glp_delete_prob(m->lp);
    free(m->order);
    free(m->start);
    free(m->col);
    memset(m, 0, sizeof *m);
}

/* Adds one row Σ val[k]·x_{ind[k]} (k = 1..nz) with the given bounds. */
static void add_row(glp_prob *lp, int nz, int *ind, double *val, int type, double lb, double ub)
{
    int r = glp_add_rows(lp, 1);
    glp_set_row_bnds(lp, r, type, lb, ub);
    glp_set_mat_row(lp, r, nz, ind, val);
}

static int wa_less(const bp_ilp_problem *p, int c, int d)
{
    return p->wbits[c] != p->wbits[d] ? p->wbits[c] < p->wbits[d] : p->abits[c] < p->abits[d];
}

static bp_status mip_build(const bp_ilp_problem *p, const bp_limits *lim, mip *m)
{
    int total = p->off[p->n];
    memset(m, 0, sizeof *m);
    m->order = malloc(total * sizeof *m->order);
    m->start = malloc((p->n + 1) * sizeof *m->start);
    m->col = calloc(total, sizeof *m->col);
    /* ind/val hold one row: at most every column (1-based, as GLPK wants). */
    int *ind = malloc((total + 1) * sizeof *ind);
    double *val = malloc((total + 1) * sizeof *val);
    if (!m->order || !m->start || !m->col || !ind || !val) {
        free(ind);
        free(val);
        mip_free(m);
        return bp_error(BP_ERR_NOMEM, "ilp: out of memory");
    }
    int q = 0;
    double omax = 0;
    for (int i = 0; i < p->n; i++) {
        m->start[i] = q;
        for (int c = p->off[i]; c < p->off[i + 1]; c++) {
            if (!p->allowed[c])
                continue;
            int k = q++;   /* insertion sort by (w, a) */
            while (k > m->start[i] && wa_less(p, c, m->order[k - 1])) {
                m->order[k] = m->order[k - 1];
                k--;
            }
            m->order[k] = c;
            omax = fmax(omax, fabs(p->omega[c]));
        }
        for (int t = m->start[i] + 1; t < q; t++)
            m->col[t] = ++m->ncols;
    }
    m->start[p->n] = q;
    /* Ω spans many decades between layers; scaling the objective to at most 1
     * keeps GLPK's relative tolerances meaningful. */
    double oscale = m->oscale = omax > 0 ? 1.0 / omax : 1.0;
    glp_prob *lp = m->lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    if (m->ncols)
        glp_add_cols(lp, m->ncols);
    for (int i = 0; i < p->n; i++)
        for (int t = m->start[i] + 1; t < m->start[i + 1]; t++) {
            int j = m->col[t];
            glp_set_col_kind(lp, j, GLP_BV);
            glp_set_obj_coef(lp, j, (p->omega[m->order[t]] - p->omega[m->order[t - 1]]) * oscale);
            /* staircase: y_{i,t} >= y_{i,t+1} */
            if (t + 1 < m->start[i + 1]) {
                ind[1] = j, val[1] = 1;
                ind[2] = m->col[t + 1], val[2] = -1;
                add_row(lp, 2, ind, val, GLP_LO, 0, 0);
            }
        }
    /* Ties: every member follows the group's first member. */
    for (int i = 0; i < p->n; i++) {
        if (p->group[i] < 0)
            continue;
        int f = 0;
        while (p->group[f] != p->group[i])
            f++;
        if (f == i)
            continue;
        for (int t = 1; t < m->start[f + 1] - m->start[f]; t++) {
            ind[1] = m->col[m->start[f] + t], val[1] = 1;
            ind[2] = m->col[m->start[i] + t], val[2] = -1;
            add_row(lp, 2, ind, val, GLP_FX, 0, 0);
        }
    }
    /* Budgets: Σ_i cost(c_0) + Σ increments·y <= limit, each row divided by
     * its budget (or largest cost) so that bytes (1e7) and BOPs (1e12) look
     * alike to GLPK. */
    for (int k = 0; k < BP_CON_COUNT; k++) {
        if (!lim->active[k])
            continue;
        const double *cost = p->cost[k];
        double s = lim->limit[k], base = 0;
        for (int t = 0; t < q; t++)
            s = fmax(s, cost[m->order[t]]);
        if (!(s > 0))
            s = 1;
        int nz = 0;
        for (int i = 0; i < p->n; i++) {
            base += cost[m->order[m->start[i]]];
            for (int t = m->start[i] + 1; t < m->start[i + 1]; t++) {
                double d = cost[m->order[t]] - cost[m->order[t - 1]];
                if (d != 0) {
                    ind[++nz] = m->col[t];
                    val[nz] = d / s;
                }
            }
        }
        add_row(lp, nz, ind, val, GLP_UP, 0, (lim->limit[k] - base) / s);
    }
    free(ind);
    free(val);
    return BP_OK;
}

/* Position t of layer i's chosen candidate from the y values. */
static int mip_choice(const mip *m, int i)
{
    int t = 0;
    for (int u = m->start[i] + 1; u < m->start[i + 1]; u++)
        if (glp_mip_col_val(m->lp, m->col[u]) > 0.5)
            t = u - m->start[i];
    return m->order[m->start[i] + t];
}

/* Cuts off one plan: Σ_i x_{i, choice_i} <= n − 1 with
 * x_{i,c_t} = y_{i,t} − y_{i,t+1} (y_{i,0} = 1 moves to the right side). */
static void add_nogood(const bp_ilp_problem *p, mip *m, const int *choice)
{
    int *ind = malloc((2 * p->n + 1) * sizeof *ind);
    double *val = malloc((2 * p->n + 1) * sizeof *val);
    if (!ind || !val) {
        free(ind);
        free(val);
        return;
    }
    int nz = 0;
    double rhs = p->n - 1;
    for (int i = 0; i < p->n; i++) {
        int t = 0, mi = m->start[i + 1] - m->start[i];
        while (m->order[m->start[i] + t] != choice[i])
            t++;
        if (t == 0)
            rhs -= 1;
        else
            ind[++nz] = m->col[m->start[i] + t], val[nz] = 1;
        if (t + 1 < mi)
            ind[++nz] = m->col[m->start[i] + t + 1], val[nz] = -1;
    }
    if (nz)
        add_row(m->lp, nz, ind, val, GLP_UP, 0, rhs);
    free(ind);
    free(val);
}

/* ---- incumbent and reduced-cost fixing ------------------------------------
 *
 * GLPK's branch and bound spends most of its time in per-node work (its
 * Driebeck-Tomlin branching evaluates tableau rows), so we hand it a smaller
 * problem. Solve the LP relaxation, build a good plan from it (round the
 * staircase down, then improve by single-unit moves while every budget holds),
 * and fix every binary whose reduced cost alone would push the LP bound past
 * that plan's objective: no plan with that variable flipped can beat the
 * incumbent, so the optimum is untouched (classic reduced-cost fixing). */

typedef struct {
    int nunits;
    int *ustart;   /* (nunits + 1) into mem */
    int *mem;      /* layers of each unit (a tied group or a single layer) */
} units;

static void units_free(units *u)
{
    free(u->ustart);
    free(u->mem);
}

static int units_build(const bp_ilp_problem *p, units *u)
{
    u->nunits = 0;
    u->ustart = malloc((p->n + 1) * sizeof *u->ustart);
    u->mem = malloc(p->n * sizeof *u->mem);
    if (!u->ustart || !u->mem)
        return 0;
    int q = 0;
    for (int i = 0; i < p->n; i++) {
        int first = i;
        if (p->group[i] >= 0) {
            first = 0;
            while (p->group[first] != p->group[i])
                first++;
        }
        if (first != i)
            continue;
        u->ustart[u->nunits++] = q;
        for (int j = i; j < p->n; j++)
            if (j == i || (p->group[i] >= 0 && p->group[j] == p->group[i]))
                u->mem[q++] = j;
    }
    u->ustart[u->nunits] = q;
    return 1;
}

static int fits(const bp_limits *lim, const double *tot)
{
    for (int k = 0; k < BP_CON_COUNT; k++)
        if (lim->active[k] && !within(tot[k], lim->limit[k]))
            return 0;
    return 1;
}

static void set_unit(const mip *m, const units *u, int k, int s, int *pos, int *choice)
{
    for (int q = u->ustart[k]; q < u->ustart[k + 1]; q++) {
        int j = u->mem[q];
        pos[j] = s;
        choice[j] = m->order[m->start[j] + s];
    }
}

/* Change of Ω and of the totals when unit k moves to position s. */
static double unit_delta(const bp_ilp_problem *p, const mip *m, const units *u, int k, int s,
                         const int *pos, double *dt)
{
    double dob = 0;
    for (int c = 0; c < BP_CON_COUNT; c++)
        dt[c] = 0;
    for (int q = u->ustart[k]; q < u->ustart[k + 1]; q++) {
        int j = u->mem[q];
        int a = m->order[m->start[j] + pos[j]], b = m->order[m->start[j] + s];
        dob += p->omega[b] - p->omega[a];
        for (int c = 0; c < BP_CON_COUNT; c++)
            if (p->cost[c])
                dt[c] += p->cost[c][b] - p->cost[c][a];
    }
    return dob;
}

static int unit_npos(const mip *m, const units *u, int k)
{
    int r0 = u->mem[u->ustart[k]];
    return m->start[r0 + 1] - m->start[r0];
}

/* Greedy repair: while a budget is exceeded, make the move that removes the
 * most (budget-normalized) excess per unit of Ω added. */
static int repair(const bp_ilp_problem *p, const bp_limits *lim, const mip *m, const units *u,
                  int *pos, int *choice, double *tot, double *obj)
{
    for (int iter = 0; iter < 8 * p->n + 8; iter++) {
        if (fits(lim, tot))
            return 1;
        double best = INFINITY, dt[BP_CON_COUNT], bt[BP_CON_COUNT] = {0}, bd = 0;
        int bu = -1, bs = 0;
        for (int k = 0; k < u->nunits; k++) {
            int r0 = u->mem[u->ustart[k]];
            for (int s = 0; s < unit_npos(m, u, k); s++) {
                if (s == pos[r0])
                    continue;
                double dob = unit_delta(p, m, u, k, s, pos, dt), gain = 0;
                for (int c = 0; c < BP_CON_COUNT; c++)
                    if (lim->active[c] && tot[c] > lim->limit[c])
                        gain -= dt[c] / fmax(lim->limit[c], 1e-300);
                if (gain <= 0)
                    continue;
                double score = fmax(dob, 0) / gain;
                if (score < best)
                    best = score, bu = k, bs = s, bd = dob, memcpy(bt, dt, sizeof bt);
            }
        }
        if (bu < 0)
            return 0;
        set_unit(m, u, bu, bs, pos, choice);
        for (int c = 0; c < BP_CON_COUNT; c++)
            tot[c] += bt[c];
        *obj += bd;
    }
    return fits(lim, tot);
}

/* Best-improvement single-unit moves that keep every budget. */
static void improve(const bp_ilp_problem *p, const bp_limits *lim, const mip *m, const units *u,
                    int *pos, int *choice, double *tot, double *obj)
{
    for (int iter = 0; iter < 8 * p->n; iter++) {
        double best = -1e-12 * fmax(fabs(*obj), 1e-300), dt[BP_CON_COUNT], nt[BP_CON_COUNT];
        double bt[BP_CON_COUNT] = {0};
        int bu = -1, bs = 0;
        for (int k = 0; k < u->nunits; k++) {
            int r0 = u->mem[u->ustart[k]];
            for (int s = 0; s < unit_npos(m, u, k); s++) {
                if (s == pos[r0])
                    continue;
                double dob = unit_delta(p, m, u, k, s, pos, dt);
                if (dob >= best)
                    continue;
                for (int c = 0; c < BP_CON_COUNT; c++)
                    nt[c] = tot[c] + dt[c];
                if (fits(lim, nt))
                    best = dob, bu = k, bs = s, memcpy(bt, nt, sizeof bt);
            }
        }
        if (bu < 0)
            return;
        set_unit(m, u, bu, bs, pos, choice);
        memcpy(tot, bt, sizeof bt);
        *obj += best;
    }
}

/* Best-improvement pair moves (one unit up, another down: trading budget
 * between layers), each followed by single moves, until neither improves. */
static void improve_pairs(const bp_ilp_problem *p, const bp_limits *lim, const mip *m,
                          const units *u, int *pos, int *choice, double *tot, double *obj)
{
    int nm = 0;
    for (int k = 0; k < u->nunits; k++)
        nm += unit_npos(m, u, k);
    int *mu = malloc(nm * sizeof *mu), *ms = malloc(nm * sizeof *ms);
    double *mo = malloc(nm * sizeof *mo), *md = malloc(nm * BP_CON_COUNT * sizeof *md);
    if (!mu || !ms || !mo || !md)
        goto done;
    for (int iter = 0; iter < 4 * p->n; iter++) {
        int n = 0;
        for (int k = 0; k < u->nunits; k++) {
            int r0 = u->mem[u->ustart[k]];
            for (int s = 0; s < unit_npos(m, u, k); s++)
                if (s != pos[r0]) {
                    mu[n] = k, ms[n] = s;
                    mo[n] = unit_delta(p, m, u, k, s, pos, md + n * BP_CON_COUNT);
                    n++;
                }
        }
        double best = -1e-12 * fmax(fabs(*obj), 1e-300);
        int ba = -1, bb = -1;
        for (int a = 0; a < n; a++) {
            if (mo[a] >= 0)
                continue;   /* the first move of a pair improves Ω ... */
            for (int b = 0; b < n; b++) {
                if (mu[b] == mu[a] || mo[a] + mo[b] >= best)
                    continue;   /* ... the second pays for it in budget */
                int ok = 1;
                for (int c = 0; c < BP_CON_COUNT && ok; c++)
                    if (lim->active[c])
                        ok = within(tot[c] + md[a * BP_CON_COUNT + c] + md[b * BP_CON_COUNT + c],
                                    lim->limit[c]);
                if (ok)
                    best = mo[a] + mo[b], ba = a, bb = b;
            }
        }
        if (ba < 0)
            break;
        for (int c = 0; c < BP_CON_COUNT; c++)
            tot[c] += md[ba * BP_CON_COUNT + c] + md[bb * BP_CON_COUNT + c];
        set_unit(m, u, mu[ba], ms[ba], pos, choice);
        set_unit(m, u, mu[bb], ms[bb], pos, choice);
        *obj += best;
        improve(p, lim, m, u, pos, choice, tot, obj);
    }
done:
    free(mu);
    free(ms);
    free(mo);
    free(md);
}

/* A good plan from the LP relaxation: its fractional layers rounded down
 * (always within budget for monotone costs) and, separately, rounded up and
 * repaired; each then improved. Returns 1 with the better one in choice. */
static int incumbent(const bp_ilp_problem *p, const bp_limits *lim, const mip *m, const units *u,
                     int *pos, int *choice)
{
    int *cand = malloc(p->n * sizeof *cand);
    if (!cand)
        return 0;
    double best = INFINITY;
    for (int up = 0; up < 2; up++) {
        for (int i = 0; i < p->n; i++) {
            pos[i] = 0;
            for (int t = m->start[i] + 1; t < m->start[i + 1]; t++)
                if (glp_get_col_prim(m->lp, m->col[t]) > (up ? 1e-7 : 1 - 1e-7))
                    pos[i] = t - m->start[i];
            cand[i] = m->order[m->start[i] + pos[i]];
        }
        double tot[BP_CON_COUNT], obj;
        bp_ilp_evaluate(p, cand, &obj, tot);
        if (!repair(p, lim, m, u, pos, cand, tot, &obj))
            continue;
        improve(p, lim, m, u, pos, cand, tot, &obj);
        improve_pairs(p, lim, m, u, pos, cand, tot, &obj);
        if (obj < best) {
            best = obj;
            memcpy(choice, cand, p->n * sizeof *cand);
        }
    }
    free(cand);
    return isfinite(best);
}

/* Solves the LP relaxation, finds an incumbent and fixes columns. Returns 1
 * with the incumbent in inc when one was found. */
static int presolve_fix(const bp_ilp_problem *p, const bp_limits *lim, mip *m, const int *hint,
                        double time_left_s, int *inc)
{
    glp_smcp sp;
    glp_init_smcp(&sp);
    sp.msg_lev = GLP_MSG_OFF;
    if (time_left_s > 0)
        sp.tm_lim = (int)fmax(1, fmin(time_left_s * 1000.0, 2e9));
    if (m->ncols == 0 || glp_simplex(m->lp, &sp) || glp_get_status(m->lp) != GLP_OPT)
        return 0;
    units u;
    int *pos = malloc(p->n * sizeof *pos);
    int found = 0;
    if (pos && units_build(p, &u)) {
        found = incumbent(p, lim, m, &u, pos, inc);
        units_free(&u);
    }
    free(pos);
    if (hint) {
        /* A plan known to be good (the previous sweep point) competes. */
        double ho, ht[BP_CON_COUNT], io = INFINITY;
        bp_ilp_evaluate(p, hint, &ho, ht);
        if (found)
            bp_ilp_evaluate(p, inc, &io, NULL);
        if (fits(lim, ht) && ho < io) {
            memcpy(inc, hint, p->n * sizeof *inc);
            found = 1;
        }
    }
    if (!found)
        return 0;
    double zinc = 0;
    for (int i = 0; i < p->n; i++)
        zinc += (p->omega[inc[i]] - p->omega[m->order[m->start[i]]]) * m->oscale;
    /* 1e-7: well above the error of GLPK's reduced costs on this scale. */
    double gap = zinc - glp_get_obj_val(m->lp) + 1e-7 * (1 + fabs(zinc));
    for (int j = 1; j <= m->ncols; j++) {
        int stat = glp_get_col_stat(m->lp, j);
        double d = glp_get_col_dual(m->lp, j);
        if (stat == GLP_NL && d > gap)
            glp_set_col_bnds(m->lp, j, GLP_FX, 0, 0);
        else if (stat == GLP_NU && -d > gap)
            glp_set_col_bnds(m->lp, j, GLP_FX, 1, 1);
    }
    /* Objective cutoff at the incumbent: a node whose LP bound exceeds it
     * becomes infeasible, which prunes as if GLPK knew the incumbent (with
     * presolve on, its heuristic-solution callback cannot be used). */
    {
        int *ind = malloc((m->ncols + 1) * sizeof *ind);
        double *val = malloc((m->ncols + 1) * sizeof *val);
        if (!ind || !val) {
            free(ind);
            free(val);
            return 1;
        }
        int nz = 0;
        for (int j = 1; j <= m->ncols; j++) {
            double c = glp_get_obj_coef(m->lp, j);
            if (c != 0)
                ind[++nz] = j, val[nz] = c;
        }
        add_row(m->lp, nz, ind, val, GLP_UP, 0, zinc + 1e-7 * (1 + fabs(zinc)));
        free(ind);
        free(val);
    }
    return 1;
}

static int hint_ok(const bp_ilp_problem *p, const int *hint)
{
    if (!hint)
        return 0;
    for (int i = 0; i < p->n; i++)
        if (hint[i] < p->off[i] || hint[i] >= p->off[i + 1] || !p->allowed[hint[i]])
            return 0;
    return 1;
}

bp_status bp_ilp_solve(const bp_ilp_problem *p, const bp_limits *lim, double time_limit_s,
                       bp_ilp_result *r)
{
    return bp_ilp_solve_ex(p, lim, time_limit_s, 0, r);
}

bp_status bp_ilp_solve_ex(const bp_ilp_problem *p, const bp_limits *lim, double time_limit_s,
                          unsigned flags, bp_ilp_result *r)
{
    return bp_ilp_solve_hint(p, lim, time_limit_s, flags, NULL, r);
}

bp_status bp_ilp_solve_hint(const bp_ilp_problem *p, const bp_limits *lim, double time_limit_s,
                            unsigned flags, const int *hint_arg, bp_ilp_result *r)
{
    const int *hint = hint_arg;
    memset(r, 0, sizeof *r);
    double t0 = now_s();
    bp_status st = bp_ilp_validate(p);
    if (st)
        return st;
    for (int k = 0; k < BP_CON_COUNT; k++) {
        if (!lim->active[k])
            continue;
        if (!p->cost[k])
            return bp_error(BP_ERR_ARG, "a %s budget needs per-layer latencies (give a profile)",
                            bp_con_name(k));
        if (!isfinite(lim->limit[k]) || lim->limit[k] < 0)
            return bp_error(BP_ERR_ARG, "%s budget %g must be finite and >= 0", bp_con_name(k),
                            lim->limit[k]);
        double lo, hi;
        if ((st = bp_ilp_range(p, k, &lo, &hi)))
            return st;
        if (!within(lo, lim->limit[k]))
            return infeasible(p, lim);
    }
    if (!isfinite(time_limit_s))
        return bp_error(BP_ERR_ARG, "time limit must be finite");
    /* A hint that is not a plan of this problem is ignored. (volatile: it
     * lives across the setjmp below.) */
    const int *volatile use_hint = hint_ok(p, hint) ? hint : NULL;
    r->choice = malloc(p->n * sizeof *r->choice);
    int *inc = malloc(p->n * sizeof *inc);
    if (!r->choice || !inc) {
        free(inc);
        bp_ilp_result_free(r);
        return bp_error(BP_ERR_NOMEM, "ilp: out of memory");
    }

    mip m;
    if ((st = mip_build(p, lim, &m))) {
        free(inc);
        bp_ilp_result_free(r);
        return st;
    }
    jmp_buf env;
    glp_term_out(GLP_OFF);
    glpk_jmp = &env;
    glp_error_hook(glpk_hook, NULL);
    if (setjmp(env)) {
        /* GLPK's state is unusable after an error: free its whole environment. */
        glp_error_hook(NULL, NULL);
        glpk_jmp = NULL;
        m.lp = NULL;
        mip_free(&m);
        glp_free_env();
        free(inc);
        bp_ilp_result_free(r);
        return bp_error(BP_ERR_SOLVER, "ilp: GLPK reported an internal error");
    }
    glp_iocp parm;
    glp_init_iocp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    parm.presolve = GLP_ON;
    parm.mip_gap = 0.0;
    st = BP_ERR_COUNT; /* "no verdict yet" */
    double lp_left = time_limit_s > 0 ? fmax(1e-3, time_limit_s - (now_s() - t0)) : 0;
    int have_inc = flags & BP_ILP_PLAIN ? 0 : presolve_fix(p, lim, &m, use_hint, lp_left, inc);
    double inc_obj = NAN;
    if (have_inc)
        bp_ilp_evaluate(p, inc, &inc_obj, NULL);
    for (int round = 0; round < 64; round++) {
        if (time_limit_s > 0) {
            double left = time_limit_s - (now_s() - t0);
            parm.tm_lim = left > 1e-3 ? (int)fmin(left * 1000.0, 2e9) : 1;
        }
        int ret = glp_intopt(m.lp, &parm);
        int ms = glp_mip_status(m.lp);
        if ((ret == GLP_ENOPFS || ms == GLP_NOFEAS) && have_inc) {
            /* The incumbent meets every budget and the cutoff row, so this is
             * GLPK's tolerances talking: keep the plan we know, unproven. */
            memcpy(r->choice, inc, p->n * sizeof *inc);
            bp_ilp_evaluate(p, r->choice, &r->objective, r->total);
            r->status = BP_PLAN_FEASIBLE;
            st = BP_OK;
            break;
        }
        if (ret == GLP_ENOPFS || ms == GLP_NOFEAS) {
            st = infeasible(p, lim);
            break;
        }
        if (ms != GLP_OPT && ms != GLP_FEAS && ret == GLP_ETMLIM && have_inc) {
            /* Out of time before GLPK found a plan: the incumbent stands. */
            memcpy(r->choice, inc, p->n * sizeof *inc);
            bp_ilp_evaluate(p, r->choice, &r->objective, r->total);
            r->status = BP_PLAN_FEASIBLE;
            st = BP_OK;
            break;
        }
        if (ms != GLP_OPT && ms != GLP_FEAS) {
            st = ret == GLP_ETMLIM
                     ? bp_error(BP_ERR_SOLVER, "ilp: time limit of %g s reached before any plan was found",
                                time_limit_s)
                     : bp_error(BP_ERR_SOLVER, "ilp: GLPK stopped without a plan (glp_intopt code %d)",
                                ret);
            break;
        }
        for (int i = 0; i < p->n; i++)
            r->choice[i] = mip_choice(&m, i);
        bp_ilp_evaluate(p, r->choice, &r->objective, r->total);
        int feasible = 1;
        for (int k = 0; k < BP_CON_COUNT; k++)
            if (lim->active[k] && !within(r->total[k], lim->limit[k]))
                feasible = 0;
        if (!feasible) {
            add_nogood(p, &m, r->choice);
            continue;
        }
        /* GLPK's answer is optimal within its tolerances; the incumbent may
         * tie or (by a rounding hair) beat it. */
        if (have_inc && inc_obj < r->objective) {
            memcpy(r->choice, inc, p->n * sizeof *inc);
            bp_ilp_evaluate(p, r->choice, &r->objective, r->total);
        }
        r->status = ms == GLP_OPT ? BP_PLAN_OPTIMAL : BP_PLAN_FEASIBLE;
        st = BP_OK;
        break;
    }
    glp_error_hook(NULL, NULL);
    glpk_jmp = NULL;
    mip_free(&m);
    free(inc);
    if (st == BP_ERR_COUNT)
        st = bp_error(BP_ERR_SOLVER, "ilp: no exactly feasible plan after 64 rounds of cuts");
    if (st) {
        bp_ilp_result_free(r);
        return st;
    }
    r->seconds = now_s() - t0;
    return BP_OK;
}

bp_status bp_ilp_to_plan(const bp_ilp_problem *p, const bp_ilp_result *r, const bp_limits *lim,
                         const bp_sens *s, bp_plan *plan)
{
    bp_status st = bp_plan_init(plan, p->n);
    if (st)
        return st;
    if (s)
        snprintf(plan->model_sha256, sizeof plan->model_sha256, "%s", s->model_sha256);
    for (int i = 0; i < p->n; i++) {
        int c = r->choice[i];
        bp_plan_layer *l = &plan->layers[i];
        snprintf(l->name, sizeof l->name, "%s", p->name[i]);
        l->wbits = p->wbits[c];
        l->abits = p->abits[c];
        l->omega = p->omega[c];
        l->omega_a = p->omega_a ? p->omega_a[c] : NAN;
        l->omega_w = p->omega_a ? p->omega[c] - p->omega_a[c] : NAN;
        l->size_bytes = p->cost[BP_CON_SIZE][c];
        l->bops = p->cost[BP_CON_BOPS][c];
        l->latency_ms = p->cost[BP_CON_LATENCY] ? p->cost[BP_CON_LATENCY][c] : NAN;
        l->lat_fallback = p->lat_fallback ? p->lat_fallback[c] : 0;
    }
    double obj, tot[BP_CON_COUNT];
    bp_ilp_evaluate(p, r->choice, &obj, tot);
    plan->size_bytes = tot[BP_CON_SIZE];
    plan->bops = tot[BP_CON_BOPS];
    plan->latency_ms = tot[BP_CON_LATENCY];
    plan->objective = obj;
    plan->status = r->status;
    plan->solve_seconds = r->seconds;
    for (int k = 0; lim && k < BP_CON_COUNT; k++) {
        if (!lim->active[k])
            continue;
        plan->con[k].active = 1;
        plan->con[k].budget = lim->limit[k];
        plan->con[k].value = tot[k];
        plan->con[k].slack = lim->limit[k] - tot[k];
    }
    return BP_OK;
}
