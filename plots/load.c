/* load.c — the plots of a `bitplan plan` output directory, from its files
 * (plots.h: bp_plots_from_dir). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "plots/plots.h"

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

/* The frontier points of frontier.json (docs/FORMATS.md). */
static bp_status read_frontier(const char *path, bp_plot_front **out, int *n)
{
    *out = NULL;
    *n = 0;
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e);
    if (!root)
        return bp_error(BP_ERR_FORMAT, "%s: line %d: %s", path, e.line, e.text);
    json_t *pts = json_object_get(root, "points");
    const char *fmt = json_string_value(json_object_get(root, "format"));
    if (!fmt || strcmp(fmt, "bitplan-frontier") || !json_is_array(pts)) {
        json_decref(root);
        return bp_error(BP_ERR_FORMAT, "%s: not a bitplan-frontier file with \"points\"", path);
    }
    size_t np = json_array_size(pts);
    bp_plot_front *f = calloc(np ? np : 1, sizeof *f);
    if (!f) {
        json_decref(root);
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    }
    for (size_t i = 0; i < np; i++) {
        json_t *p = json_array_get(pts, i);
        f[i] = (bp_plot_front){jnum(p, "budget"), jnum(p, "objective"), jnum(p, "size_bytes"),
                               jnum(p, "bops"), jnum(p, "latency_ms")};
    }
    json_decref(root);
    *out = f;
    *n = (int)np;
    return BP_OK;
}

static int exists(const char *dir, const char *name, char *path, size_t n)
{
    snprintf(path, n, "%s/%s", dir, name);
    return access(path, R_OK) == 0;
}

bp_status bp_plots_from_dir(const char *dir, const char *outdir, int *made, char *notes, size_t n)
{
    char path[4096];
    bp_sens sens = {0};
    bp_plan plan = {0};
    bp_pipe_result ev = {0};
    bp_plot_front *front = NULL;
    bp_profile *prof = NULL;
    int have_sens = 0, have_plan = 0, have_ev = 0, nfront = 0, any = 0;
    bp_status st = BP_OK;
    if (exists(dir, "sensitivity.json", path, sizeof path)) {
        if ((st = bp_sens_read(path, &sens)))
            goto done;
        have_sens = any = 1;
    }
    if (exists(dir, "plan.json", path, sizeof path)) {
        if ((st = bp_plan_read(path, &plan)))
            goto done;
        have_plan = any = 1;
    }
    if (exists(dir, "evaluation.json", path, sizeof path)) {
        if ((st = bp_pipe_read_eval(path, &ev)))
            goto done;
        have_ev = any = 1;
    }
    if (exists(dir, "frontier.json", path, sizeof path)) {
        if ((st = read_frontier(path, &front, &nfront)))
            goto done;
        any = 1;
    }
    if (!any) {
        st = bp_error(BP_ERR_IO, "%s: none of sensitivity.json, plan.json, evaluation.json, frontier.json", dir);
        goto done;
    }
    /* The profile the plan was made with, when it is still there. */
    if (have_plan && plan.profile[0] && bp_profile_load(plan.profile, &prof)) {
        prof = NULL;
        bp_clear_error();
    }
    bp_plot_inputs in = {have_sens ? &sens : NULL, have_plan ? &plan : NULL, have_ev ? ev.rows : NULL,
                         have_ev ? ev.nrows : 0, front, nfront, prof};
    st = bp_plots_make(&in, outdir, made, notes, n);
    if (!st && have_plan && plan.profile[0] && !prof && notes) {
        size_t len = strlen(notes);
        snprintf(notes + len, n > len ? n - len : 0, "%sprofile %s could not be read", len ? "; " : "",
                 plan.profile);
    }
done:
    bp_profile_free(prof);
    free(front);
    bp_pipe_result_free(&ev);
    bp_plan_free(&plan);
    bp_sens_free(&sens);
    return st;
}
