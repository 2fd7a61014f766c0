/* sweep.c — Pareto sweep over one budget and the frontier files. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/csv.h"
#include "core/fileio.h"
#include "ilp/ilp.h"
#include "ilp/jfield.h"

void bp_sweep_free(bp_sweep_point *pts, int n)
{
    if (!pts)
        return;
    for (int k = 0; k < n; k++)
        free(pts[k].choice);
    free(pts);
}

bp_status bp_ilp_sweep(const bp_ilp_problem *p, const bp_limits *base, bp_con_kind k,
                       int npoints, double time_limit_s, bp_sweep_point **pts, int *npts)
{
    *pts = NULL;
    *npts = 0;
    if ((unsigned)k >= BP_CON_COUNT)
        return bp_error(BP_ERR_ARG, "sweep: unknown constraint kind %d", (int)k);
    if (npoints < 2 || npoints > 100000)
        return bp_error(BP_ERR_ARG, "sweep: %d points (2..100000)", npoints);
    double lo, hi;
    bp_status st = bp_ilp_range(p, k, &lo, &hi);
    if (st)
        return st;
    bp_sweep_point *out = calloc(npoints, sizeof *out);
    if (!out)
        return bp_error(BP_ERR_NOMEM, "sweep: out of memory");
    int n = 0;
    bp_limits lim = *base;
    lim.active[k] = 1;
    for (int j = 0; j < npoints; j++) {
        /* The last point is hi itself, not lo + (hi − lo), which may round below. */
        double b = j == npoints - 1 ? hi : lo + (hi - lo) * j / (npoints - 1);
        lim.limit[k] = b;
        bp_ilp_result r;
        /* Budgets grow, so the previous plan still fits: a ready incumbent. */
        st = bp_ilp_solve_hint(p, &lim, time_limit_s, 0, n > 0 ? out[n - 1].choice : NULL, &r);
        if (st == BP_ERR_INFEASIBLE) {
            /* Another held budget rules this point out; the frontier skips it. */
            bp_clear_error();
            continue;
        }
        if (st) {
            bp_error_wrap(st, "sweep point %d (%s budget %.10g %s)", j, bp_con_name(k), b,
                          bp_con_unit(k));
            bp_sweep_free(out, n);
            return st;
        }
        if (n > 0 && !memcmp(out[n - 1].choice, r.choice, p->n * sizeof *r.choice)) {
            out[n - 1].budget_max = b;
            if (r.status == BP_PLAN_FEASIBLE)
                out[n - 1].status = BP_PLAN_FEASIBLE;
            bp_ilp_result_free(&r);
            continue;
        }
        bp_sweep_point *q = &out[n++];
        q->budget = q->budget_max = b;
        q->objective = r.objective;
        memcpy(q->total, r.total, sizeof q->total);
        q->status = r.status;
        q->choice = r.choice;   /* taken over */
        r.choice = NULL;
    }
    *pts = out;
    *npts = n;
    return BP_OK;
}

bp_status bp_sweep_write_csv(const char *path, const bp_ilp_problem *p, bp_con_kind k,
                             const bp_sweep_point *pts, int n)
{
    bp_out out = {0};
    bp_status st = bp_out_open(&out, path);
    if (st)
        return st;
    FILE *fp = out.fp;
    fprintf(fp, "sweep,budget,budget_max,objective,size_bytes,bops,latency_ms,status");
    for (int i = 0; i < p->n; i++) {
        char col[170];
        snprintf(col, sizeof col, "w_%s", p->name[i]);
        fputc(',', fp);
        bp_csv_str(fp, col);
    }
    for (int i = 0; i < p->n; i++) {
        char col[170];
        snprintf(col, sizeof col, "a_%s", p->name[i]);
        fputc(',', fp);
        bp_csv_str(fp, col);
    }
    fputc('\n', fp);
    for (int j = 0; j < n; j++) {
        const bp_sweep_point *q = &pts[j];
        fprintf(fp, "%s,", bp_con_name(k));
        bp_csv_num(fp, q->budget);
        fputc(',', fp);
        bp_csv_num(fp, q->budget_max);
        fputc(',', fp);
        bp_csv_num(fp, q->objective);
        for (int c = 0; c < BP_CON_COUNT; c++) {
            fputc(',', fp);
            bp_csv_num(fp, q->total[c]);
        }
        fprintf(fp, ",%s", bp_plan_status_name(q->status));
        for (int i = 0; i < p->n; i++)
            fprintf(fp, ",%d", p->wbits[q->choice[i]]);
        for (int i = 0; i < p->n; i++)
            fprintf(fp, ",%d", p->abits[q->choice[i]]);
        fputc('\n', fp);
    }
    if (ferror(fp)) {
        bp_out_abort(&out);
        return bp_error(BP_ERR_IO, "%s: write failed", path);
    }
    return bp_out_commit(&out);
}

bp_status bp_sweep_write_json(const char *path, const bp_ilp_problem *p, bp_con_kind k,
                              const bp_sweep_point *pts, int n, const bp_sens *s)
{
    json_t *root = json_object(), *names = json_array(), *arr = json_array();
    int e = !root || !names || !arr;
    if (e) {
        json_decref(names);
        json_decref(arr);
        goto done;
    }
    e |= bp_jf_set(root, "format", json_string("bitplan-frontier"));
    e |= bp_jf_set(root, "version", json_integer(1));
    e |= bp_jf_set(root, "model_sha256", json_string(s ? s->model_sha256 : ""));
    e |= bp_jf_set(root, "sweep", json_string(bp_con_name(k)));
    e |= bp_jf_set(root, "unit", json_string(bp_con_unit(k)));
    e |= bp_jf_set(root, "layers", names);
    for (int i = 0; i < p->n; i++)
        e |= json_array_append_new(names, json_string(p->name[i]));
    e |= bp_jf_set(root, "points", arr);
    for (int j = 0; j < n && !e; j++) {
        const bp_sweep_point *q = &pts[j];
        json_t *o = json_object(), *w = json_array(), *a = json_array();
        e |= json_array_append_new(arr, o);
        if (!o || !w || !a) {
            json_decref(w);
            json_decref(a);
            e = 1;
            break;
        }
        e |= bp_jf_set(o, "budget", bp_jf_real_or_null(q->budget));
        e |= bp_jf_set(o, "budget_max", bp_jf_real_or_null(q->budget_max));
        e |= bp_jf_set(o, "objective", bp_jf_real_or_null(q->objective));
        e |= bp_jf_set(o, "size_bytes", bp_jf_real_or_null(q->total[BP_CON_SIZE]));
        e |= bp_jf_set(o, "bops", bp_jf_real_or_null(q->total[BP_CON_BOPS]));
        e |= bp_jf_set(o, "latency_ms", bp_jf_real_or_null(q->total[BP_CON_LATENCY]));
        e |= bp_jf_set(o, "status", json_string(bp_plan_status_name(q->status)));
        for (int i = 0; i < p->n; i++) {
            e |= json_array_append_new(w, json_integer(p->wbits[q->choice[i]]));
            e |= json_array_append_new(a, json_integer(p->abits[q->choice[i]]));
        }
        e |= bp_jf_set(o, "wbits", w);
        e |= bp_jf_set(o, "abits", a);
    }
done:
    if (e) {
        json_decref(root);
        return bp_error(BP_ERR_NOMEM, "%s: could not build the JSON document", path);
    }
    bp_status st = bp_jf_write(path, root);
    json_decref(root);
    return st;
}
