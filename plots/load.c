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

bp_status bp_plots_from_files(const bp_plot_files *f, const char *outdir, int *made, char *notes, size_t n)
{
    bp_sens sens = {0};
    bp_plan plan = {0};
    bp_pipe_result ev = {0};
    bp_plot_front *front = NULL;
    bp_profile *prof = NULL;
    int nfront = 0;
    bp_status st = BP_OK;
    if (!f->sens && !f->plan && !f->eval && !f->frontier) {
        st = bp_error(BP_ERR_ARG, "plots: no input file");
        goto done;
    }
    if (f->sens && (st = bp_sens_read(f->sens, &sens)))
        goto done;
    if (f->plan && (st = bp_plan_read(f->plan, &plan)))
        goto done;
    if (f->eval && (st = bp_pipe_read_eval(f->eval, &ev)))
        goto done;
    if (f->frontier && (st = read_frontier(f->frontier, &front, &nfront)))
        goto done;
    /* The profile given, else the one the plan was made with when it is still there. */
    const char *pp = f->profile ? f->profile : f->plan && plan.profile[0] ? plan.profile : NULL;
    if (pp && (st = bp_profile_load(pp, &prof))) {
        prof = NULL;
        if (f->profile)
            goto done; /* asked for by name: its error stands */
        st = BP_OK;
        bp_clear_error();
    }
    bp_plot_inputs in = {f->sens ? &sens : NULL, f->plan ? &plan : NULL, f->eval ? ev.rows : NULL,
                         f->eval ? ev.nrows : 0, front, nfront, prof};
    st = bp_plots_make(&in, outdir, made, notes, n);
    if (!st && pp && !prof && notes) {
        size_t len = strlen(notes);
        snprintf(notes + len, n > len ? n - len : 0, "%sprofile %s could not be read", len ? "; " : "", pp);
    }
done:
    bp_profile_free(prof);
    free(front);
    bp_pipe_result_free(&ev);
    bp_plan_free(&plan);
    bp_sens_free(&sens);
    return st;
}

bp_status bp_plots_from_dir(const char *dir, const char *outdir, int *made, char *notes, size_t n)
{
    char p[4][4096];
    static const char *names[] = {"sensitivity.json", "plan.json", "evaluation.json", "frontier.json"};
    const char *have[4] = {NULL, NULL, NULL, NULL};
    for (int k = 0; k < 4; k++)
        if (exists(dir, names[k], p[k], sizeof p[k]))
            have[k] = p[k];
    if (!have[0] && !have[1] && !have[2] && !have[3])
        return bp_error(BP_ERR_IO, "%s: none of sensitivity.json, plan.json, evaluation.json, frontier.json", dir);
    bp_plot_files f = {have[0], have[1], have[2], have[3], NULL};
    return bp_plots_from_files(&f, outdir, made, notes, n);
}
