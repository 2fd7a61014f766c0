/* solve.c — the bit-width integer program through GLPK's C API.
 *
 * Order of work: validate (GLPK aborts the process on bad input), reject a
 * budget below its reachable minimum with a precise message, build the MIP
 * (one binary per allowed candidate), glp_intopt with presolve and zero gap,
 * read the two-level status, then check the plan in exact double arithmetic:
 * GLPK accepts rows violated within its feasibility tolerance (~1e-7
 * relative), so a plan that overshoots a budget by such a hair is cut off with
 * a no-good row and the MIP solved again. */
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

/* ---- the MIP --------------------------------------------------------------- */

typedef struct {
    glp_prob *lp;
    int *col_of;   /* (off[n]) GLPK column of candidate c (1-based), 0 when not allowed */
    int *cand_of;  /* (ncols + 1) candidate of a column */
    int ncols;
} mip;

static void mip_free(mip *m)
{
    if (m->lp)
        glp_delete_prob(m->lp);
    free(m->col_of);
    free(m->cand_of);
    memset(m, 0, sizeof *m);
}

/* Adds one row sum coef[k]·x_col[k] (nz entries) with the given bound type. */
static void add_row(glp_prob *lp, int nz, int *ind, double *val, int type, double lb, double ub)
{
    int r = glp_add_rows(lp, 1);
    glp_set_row_bnds(lp, r, type, lb, ub);
    glp_set_mat_row(lp, r, nz, ind, val);
}

static bp_status mip_build(const bp_ilp_problem *p, const bp_limits *lim, mip *m)
{
    int total = p->off[p->n];
    memset(m, 0, sizeof *m);
    m->col_of = calloc(total, sizeof *m->col_of);
    m->cand_of = calloc(total + 1, sizeof *m->cand_of);
    /* ind/val hold one row: at most every column (1-based, as GLPK wants). */
    int *ind = malloc((total + 1) * sizeof *ind);
    double *val = malloc((total + 1) * sizeof *val);
    if (!m->col_of || !m->cand_of || !ind || !val) {
        free(ind);
        free(val);
        mip_free(m);
        return bp_error(BP_ERR_NOMEM, "ilp: out of memory");
    }
    double omax = 0;
    for (int c = 0; c < total; c++)
        if (p->allowed[c]) {
            m->col_of[c] = ++m->ncols;
            m->cand_of[m->ncols] = c;
            omax = fmax(omax, fabs(p->omega[c]));
        }
    /* Ω spans many decades between layers; scaling the objective to at most 1
     * keeps GLPK's relative tolerances meaningful. */
    double oscale = omax > 0 ? 1.0 / omax : 1.0;
    glp_prob *lp = m->lp = glp_create_prob();
    glp_set_obj_dir(lp, GLP_MIN);
    glp_add_cols(lp, m->ncols);
    for (int j = 1; j <= m->ncols; j++) {
        glp_set_col_kind(lp, j, GLP_BV);
        glp_set_obj_coef(lp, j, p->omega[m->cand_of[j]] * oscale);
    }
    /* One candidate per layer. */
    for (int i = 0; i < p->n; i++) {
        int nz = 0;
        for (int c = p->off[i]; c < p->off[i + 1]; c++)
            if (m->col_of[c]) {
                ind[++nz] = m->col_of[c];
                val[nz] = 1;
            }
        add_row(lp, nz, ind, val, GLP_FX, 1, 1);
    }
    /* Ties: every member takes the first member's (w, a). */
    for (int i = 0; i < p->n; i++) {
        if (p->group[i] < 0)
            continue;
        int f = 0;
        while (p->group[f] != p->group[i])
            f++;
        if (f == i)
            continue;
        for (int c = p->off[f]; c < p->off[f + 1]; c++) {
            if (!m->col_of[c])
                continue;
            for (int d = p->off[i]; d < p->off[i + 1]; d++)
                if (m->col_of[d] && p->wbits[d] == p->wbits[c] && p->abits[d] == p->abits[c]) {
                    ind[1] = m->col_of[c];
                    val[1] = 1;
                    ind[2] = m->col_of[d];
                    val[2] = -1;
                    add_row(lp, 2, ind, val, GLP_FX, 0, 0);
                }
        }
    }
    /* Budgets, each row divided by its budget (or largest coefficient) so that
     * bytes (1e7) and BOPs (1e12) look alike to GLPK. */
    for (int k = 0; k < BP_CON_COUNT; k++) {
        if (!lim->active[k])
            continue;
        double s = lim->limit[k];
        for (int c = 0; c < total; c++)
            if (m->col_of[c])
                s = fmax(s, p->cost[k][c]);
        if (!(s > 0))
            s = 1;
        int nz = 0;
        for (int c = 0; c < total; c++)
            if (m->col_of[c] && p->cost[k][c] != 0) {
                ind[++nz] = m->col_of[c];
                val[nz] = p->cost[k][c] / s;
            }
        add_row(lp, nz, ind, val, GLP_UP, 0, lim->limit[k] / s);
    }
    free(ind);
    free(val);
    return BP_OK;
}

/* Cuts off one plan: Σ_i x_{i, choice_i} <= n − 1. */
static void add_nogood(const bp_ilp_problem *p, mip *m, const int *choice)
{
    int *ind = malloc((p->n + 1) * sizeof *ind);
    double *val = malloc((p->n + 1) * sizeof *val);
    if (!ind || !val) {
        free(ind);
        free(val);
        return;
    }
    for (int i = 0; i < p->n; i++) {
        ind[i + 1] = m->col_of[choice[i]];
        val[i + 1] = 1;
    }
    add_row(m->lp, p->n, ind, val, GLP_UP, 0, p->n - 1);
    free(ind);
    free(val);
}

bp_status bp_ilp_solve(const bp_ilp_problem *p, const bp_limits *lim, double time_limit_s,
                       bp_ilp_result *r)
{
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
    r->choice = malloc(p->n * sizeof *r->choice);
    if (!r->choice)
        return bp_error(BP_ERR_NOMEM, "ilp: out of memory");

    mip m;
    if ((st = mip_build(p, lim, &m))) {
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
        bp_ilp_result_free(r);
        return bp_error(BP_ERR_SOLVER, "ilp: GLPK reported an internal error");
    }
    glp_iocp parm;
    glp_init_iocp(&parm);
    parm.msg_lev = GLP_MSG_OFF;
    parm.presolve = GLP_ON;
    parm.mip_gap = 0.0;
    st = BP_ERR_COUNT; /* "no verdict yet" */
    for (int round = 0; round < 64; round++) {
        if (time_limit_s > 0) {
            double left = time_limit_s - (now_s() - t0);
            parm.tm_lim = left > 1e-3 ? (int)fmin(left * 1000.0, 2e9) : 1;
        }
        int ret = glp_intopt(m.lp, &parm);
        int ms = glp_mip_status(m.lp);
        if (ret == GLP_ENOPFS || ms == GLP_NOFEAS) {
            st = infeasible(p, lim);
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
        for (int i = 0; i < p->n; i++) {
            r->choice[i] = -1;
            for (int c = p->off[i]; c < p->off[i + 1]; c++)
                if (m.col_of[c] && glp_mip_col_val(m.lp, m.col_of[c]) > 0.5)
                    r->choice[i] = c;
        }
        int ok = 1;
        for (int i = 0; i < p->n; i++)
            ok &= r->choice[i] >= 0;
        if (!ok) {
            st = bp_error(BP_ERR_SOLVER, "ilp: GLPK returned a solution without a candidate for some layer");
            break;
        }
        bp_ilp_evaluate(p, r->choice, &r->objective, r->total);
        int feasible = 1;
        for (int k = 0; k < BP_CON_COUNT; k++)
            if (lim->active[k] && !within(r->total[k], lim->limit[k]))
                feasible = 0;
        if (!feasible) {
            add_nogood(p, &m, r->choice);
            continue;
        }
        r->status = ms == GLP_OPT ? BP_PLAN_OPTIMAL : BP_PLAN_FEASIBLE;
        st = BP_OK;
        break;
    }
    glp_error_hook(NULL, NULL);
    glpk_jmp = NULL;
    mip_free(&m);
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
