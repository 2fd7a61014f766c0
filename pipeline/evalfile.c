/* evalfile.c — evaluation.json: every configuration the pipeline evaluated
 * (format "bitplan-evaluation", version 1; docs/FORMATS.md "Evaluation file"). */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "pipeline/pipeline.h"

void bp_pipe_result_free(bp_pipe_result *r)
{
    if (!r)
        return;
    free(r->rows);
    memset(r, 0, sizeof *r);
}

static json_t *jnull_or(double x) { return isfinite(x) ? json_real(x) : json_null(); }

bp_status bp_pipe_write_eval(const char *path, const bp_pipe_result *r, const char *model,
                             const char *eval_data, int calib, const char *profile,
                             const char *sweep_kind)
{
    json_t *root = json_object(), *rows = json_array();
    if (!root || !rows) {
        json_decref(root);
        json_decref(rows);
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    }
    json_object_set_new(root, "format", json_string("bitplan-evaluation"));
    json_object_set_new(root, "version", json_integer(1));
    json_object_set_new(root, "model", json_pack("{s:s, s:s}", "path", model ? model : "", "sha256",
                                                 r->model_sha256));
    json_object_set_new(root, "data", json_string(eval_data ? eval_data : ""));
    json_object_set_new(root, "samples", json_integer(r->eval_samples));
    json_object_set_new(root, "calibration_samples", json_integer(calib));
    json_object_set_new(root, "profile", profile && profile[0] ? json_string(profile) : json_null());
    json_object_set_new(root, "sweep", json_string(sweep_kind ? sweep_kind : ""));
    for (int i = 0; i < r->nrows; i++) {
        const bp_pipe_row *w = &r->rows[i];
        json_t *o = json_object();
        json_object_set_new(o, "name", json_string(w->name));
        json_object_set_new(o, "kind", json_string(w->kind));
        json_object_set_new(o, "index", w->index >= 0 ? json_integer(w->index) : json_null());
        json_object_set_new(o, "accuracy", jnull_or(w->accuracy));
        json_object_set_new(o, "size_bytes", jnull_or(w->size_bytes));
        json_object_set_new(o, "bops", jnull_or(w->bops));
        json_object_set_new(o, "latency_ms", jnull_or(w->latency_ms));
        json_object_set_new(o, "objective", jnull_or(w->objective));
        json_object_set_new(o, "budget", jnull_or(w->budget));
        json_array_append_new(rows, o);
    }
    json_object_set_new(root, "rows", rows);
    char *text = json_dumps(root, JSON_INDENT(2) | JSON_REAL_PRECISION(10));
    json_decref(root);
    if (!text)
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    size_t len = strlen(text);
    text[len] = '\n';
    bp_status st = bp_write_file_atomic(path, text, len + 1);
    free(text);
    return st;
}

static double jnum(json_t *o, const char *k, int *bad)
{
    json_t *v = json_object_get(o, k);
    if (json_is_null(v) || !v)
        return NAN;
    if (!json_is_number(v))
        *bad = 1;
    return json_number_value(v);
}

bp_status bp_pipe_read_eval(const char *path, bp_pipe_result *r)
{
    memset(r, 0, sizeof *r);
    json_error_t e;
    json_t *root = json_load_file(path, 0, &e);
    if (!root)
        return bp_error(BP_ERR_FORMAT, "%s: line %d: %s", path, e.line, e.text);
    bp_status st = BP_OK;
    const char *fmt = json_string_value(json_object_get(root, "format"));
    json_t *rows = json_object_get(root, "rows");
    if (!fmt || strcmp(fmt, "bitplan-evaluation")) {
        st = bp_error(BP_ERR_FORMAT, "%s: field 'format': not \"bitplan-evaluation\"", path);
        goto done;
    }
    if (json_integer_value(json_object_get(root, "version")) != 1) {
        st = bp_error(BP_ERR_FORMAT, "%s: field 'version': only version 1 is known", path);
        goto done;
    }
    if (!json_is_array(rows)) {
        st = bp_error(BP_ERR_FORMAT, "%s: field 'rows': missing or not an array", path);
        goto done;
    }
    size_t n = json_array_size(rows);
    r->rows = calloc(n ? n : 1, sizeof *r->rows);
    if (!r->rows) {
        st = bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
        goto done;
    }
    r->nrows = (int)n;
    r->eval_samples = (int)json_integer_value(json_object_get(root, "samples"));
    const char *sha = json_string_value(json_object_get(json_object_get(root, "model"), "sha256"));
    snprintf(r->model_sha256, sizeof r->model_sha256, "%s", sha ? sha : "");
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(rows, i);
        bp_pipe_row *w = &r->rows[i];
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *kind = json_string_value(json_object_get(o, "kind"));
        int bad = !name || !kind;
        snprintf(w->name, sizeof w->name, "%s", name ? name : "");
        snprintf(w->kind, sizeof w->kind, "%s", kind ? kind : "");
        json_t *idx = json_object_get(o, "index");
        w->index = json_is_integer(idx) ? (int)json_integer_value(idx) : -1;
        w->accuracy = jnum(o, "accuracy", &bad);
        w->size_bytes = jnum(o, "size_bytes", &bad);
        w->bops = jnum(o, "bops", &bad);
        w->latency_ms = jnum(o, "latency_ms", &bad);
        w->objective = jnum(o, "objective", &bad);
        w->budget = jnum(o, "budget", &bad);
        if (!isnan(w->latency_ms))
            r->has_latency = 1;
        if (bad) {
            st = bp_error(BP_ERR_FORMAT, "%s: row %zu: 'name'/'kind' must be strings and numbers numbers or null",
                          path, i);
            goto done;
        }
    }
done:
    json_decref(root);
    if (st)
        bp_pipe_result_free(r);
    return st;
}
