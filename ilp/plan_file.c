/* plan_file.c — plan file: JSON reader/writer and validation.
 * Field list: docs/FORMATS.md "Plan file". */
#include "ilp/plan.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "ilp/jfield.h"

#define MAX_BITS 16

int bp_default_abits(int wbits) { return wbits < 4 ? 4 : wbits; }

const char *bp_con_name(bp_con_kind k)
{
    static const char *n[] = {"size", "bops", "latency"};
    _Static_assert(sizeof n / sizeof *n == BP_CON_COUNT, "one name per constraint");
    return (unsigned)k < BP_CON_COUNT ? n[k] : "?";
}

const char *bp_con_unit(bp_con_kind k)
{
    static const char *n[] = {"bytes", "BOPs", "ms"};
    _Static_assert(sizeof n / sizeof *n == BP_CON_COUNT, "one unit per constraint");
    return (unsigned)k < BP_CON_COUNT ? n[k] : "?";
}

const char *bp_plan_status_name(bp_plan_status s)
{
    switch (s) {
    case BP_PLAN_OPTIMAL: return "optimal";
    case BP_PLAN_FEASIBLE: return "feasible";
    case BP_PLAN_UNKNOWN: break;
    }
    return "unknown";
}

static void plan_blank(bp_plan *p)
{
    p->size_bytes = p->bops = p->latency_ms = NAN;
    p->objective = p->solve_seconds = NAN;
    for (int k = 0; k < BP_CON_COUNT; k++)
        p->con[k] = (bp_plan_con){0, NAN, NAN, NAN};
}

bp_status bp_plan_init(bp_plan *p, int nlayers)
{
    memset(p, 0, sizeof *p);
    plan_blank(p);
    if (nlayers < 0)
        return bp_error(BP_ERR_ARG, "bp_plan_init: negative layer count %d", nlayers);
    p->layers = calloc(nlayers ? (size_t)nlayers : 1, sizeof *p->layers);
    if (!p->layers)
        return bp_error(BP_ERR_NOMEM, "bp_plan_init: out of memory for %d layers", nlayers);
    p->nlayers = nlayers;
    for (int i = 0; i < nlayers; i++) {
        bp_plan_layer *l = &p->layers[i];
        l->size_bytes = l->bops = l->latency_ms = l->omega = l->omega_w = l->omega_a = NAN;
    }
    return BP_OK;
}

void bp_plan_free(bp_plan *p)
{
    if (!p)
        return;
    free(p->layers);
    memset(p, 0, sizeof *p);
}

bp_status bp_plan_copy(bp_plan *dst, const bp_plan *src)
{
    bp_status st = bp_plan_init(dst, src->nlayers);
    if (st)
        return st;
    bp_plan_layer *keep = dst->layers;
    *dst = *src;
    dst->layers = keep;
    memcpy(dst->layers, src->layers, (size_t)src->nlayers * sizeof *src->layers);
    return BP_OK;
}

int bp_plan_find(const bp_plan *p, const char *name)
{
    for (int i = 0; i < p->nlayers; i++)
        if (!strcmp(p->layers[i].name, name))
            return i;
    return -1;
}

/* ---- validation --------------------------------------------------------- */

static int bad_opt(double x) { return !isnan(x) && !isfinite(x); }

bp_status bp_plan_validate(const bp_plan *p, const char *name)
{
    if (p->nlayers < 1)
        return bp_error(BP_ERR_FORMAT, "%s: the plan has no layers", name);
    size_t hl = strlen(p->model_sha256);
    if (hl && hl != 64)
        return bp_error(BP_ERR_FORMAT, "%s: model: field \"sha256\" must be 64 hex digits", name);
    for (size_t k = 0; k < hl; k++)
        if (!isxdigit((unsigned char)p->model_sha256[k]))
            return bp_error(BP_ERR_FORMAT, "%s: model: field \"sha256\" must be 64 hex digits",
                            name);
    for (int i = 0; i < p->nlayers; i++) {
        const bp_plan_layer *l = &p->layers[i];
        if (!l->name[0])
            return bp_error(BP_ERR_FORMAT, "%s: layer %d: field \"name\" is empty", name, i);
        for (int j = 0; j < i; j++)
            if (!strcmp(p->layers[j].name, l->name))
                return bp_error(BP_ERR_FORMAT, "%s: layer %d (%s): field \"name\" repeats layer %d",
                                name, i, l->name, j);
        if (l->wbits < 1 || l->wbits > MAX_BITS)
            return bp_error(BP_ERR_FORMAT, "%s: layer %d (%s): field \"wbits\" is %d (1..%d)", name,
                            i, l->name, l->wbits, MAX_BITS);
        if (l->abits < 1 || l->abits > MAX_BITS)
            return bp_error(BP_ERR_FORMAT, "%s: layer %d (%s): field \"abits\" is %d (1..%d)", name,
                            i, l->name, l->abits, MAX_BITS);
        if (bad_opt(l->size_bytes) || bad_opt(l->bops) || bad_opt(l->latency_ms) ||
            bad_opt(l->omega) || bad_opt(l->omega_w) || bad_opt(l->omega_a) || l->size_bytes < 0 ||
            l->bops < 0 || l->latency_ms < 0)
            return bp_error(BP_ERR_NUMERIC,
                            "%s: layer %d (%s): size_bytes/bops/latency_ms must be finite and >= 0, omega finite",
                            name, i, l->name);
    }
    if (bad_opt(p->size_bytes) || bad_opt(p->bops) || bad_opt(p->latency_ms) ||
        bad_opt(p->objective) || bad_opt(p->solve_seconds) || p->size_bytes < 0 || p->bops < 0 ||
        p->latency_ms < 0 || p->solve_seconds < 0)
        return bp_error(BP_ERR_NUMERIC, "%s: totals/objective/solve_seconds must be finite and >= 0",
                        name);
    for (int k = 0; k < BP_CON_COUNT; k++) {
        const bp_plan_con *c = &p->con[k];
        if (!c->active)
            continue;
        if (!isfinite(c->budget) || !isfinite(c->value) || !isfinite(c->slack) || c->budget < 0)
            return bp_error(BP_ERR_NUMERIC,
                            "%s: constraints: \"%s\": budget, value and slack must be finite", name,
                            bp_con_name(k));
        double tol = 1e-9 * fmax(1.0, fmax(fabs(c->budget), fabs(c->value)));
        if (fabs(c->budget - c->value - c->slack) > tol)
            return bp_error(BP_ERR_FORMAT,
                            "%s: constraints: \"%s\": slack %.17g is not budget - value (%.17g)",
                            name, bp_con_name(k), c->slack, c->budget - c->value);
    }
    return BP_OK;
}

/* ---- reading ------------------------------------------------------------ */

static bp_status read_layers(bp_jctx *c, json_t *arr, bp_plan *p)
{
    bp_status st;
    size_t n = json_array_size(arr);
    if (n < 1 || n > 1000000)
        return bp_error(BP_ERR_FORMAT, "%s: field \"layers\" has %zu entries (1..1000000)",
                        c->file, n);
    if ((st = bp_plan_init(p, (int)n)))
        return st;
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_array_get(arr, i);
        bp_plan_layer *l = &p->layers[i];
        snprintf(c->where, sizeof c->where, "layer %zu", i);
        if (!json_is_object(o))
            return bp_error(BP_ERR_FORMAT, "%s: %s: must be an object", c->file, c->where);
        if ((st = bp_jf_str(c, o, "name", BP_JF_REQUIRED, l->name, sizeof l->name)))
            return st;
        snprintf(c->where, sizeof c->where, "layer %zu (%.160s)", i, l->name);
        long long w = 0, a = 0;
        if ((st = bp_jf_int(c, o, "wbits", BP_JF_REQUIRED, 1, MAX_BITS, &w)))
            return st;
        a = bp_default_abits((int)w);
        if ((st = bp_jf_int(c, o, "abits", BP_JF_OPTIONAL, 1, MAX_BITS, &a)) ||
            (st = bp_jf_num_min(c, o, "size_bytes", BP_JF_OPTIONAL, 0, &l->size_bytes)) ||
            (st = bp_jf_num_min(c, o, "bops", BP_JF_OPTIONAL, 0, &l->bops)) ||
            (st = bp_jf_num(c, o, "latency_ms", BP_JF_OPTIONAL, 1, &l->latency_ms, NULL)) ||
            (st = bp_jf_num(c, o, "omega", BP_JF_OPTIONAL, 1, &l->omega, NULL)) ||
            (st = bp_jf_num(c, o, "omega_w", BP_JF_OPTIONAL, 1, &l->omega_w, NULL)) ||
            (st = bp_jf_num(c, o, "omega_a", BP_JF_OPTIONAL, 1, &l->omega_a, NULL)) ||
            (st = bp_jf_bool(c, o, "latency_fallback", BP_JF_OPTIONAL, &l->lat_fallback)))
            return st;
        l->wbits = (int)w;
        l->abits = (int)a;
    }
    return BP_OK;
}

/* bit_config without "layers": a HAWQ-style plan. Order follows the object. */
static bp_status read_bit_config_only(bp_jctx *c, json_t *bc, bp_plan *p)
{
    bp_status st;
    size_t n = json_object_size(bc);
    if (n < 1)
        return bp_error(BP_ERR_FORMAT, "%s: field \"bit_config\" is empty", c->file);
    if ((st = bp_plan_init(p, (int)n)))
        return st;
    const char *key;
    json_t *v;
    int i = 0;
    snprintf(c->where, sizeof c->where, "bit_config");
    json_object_foreach(bc, key, v) {
        bp_plan_layer *l = &p->layers[i++];
        if (strlen(key) >= sizeof l->name)
            return bp_error(BP_ERR_FORMAT, "%s: bit_config: layer name too long", c->file);
        strcpy(l->name, key);
        long long w = 0;
        if ((st = bp_jf_int(c, bc, key, BP_JF_REQUIRED, 1, MAX_BITS, &w)))
            return st;
        l->wbits = (int)w;
        l->abits = bp_default_abits(l->wbits);
    }
    return BP_OK;
}

static bp_status check_bit_config(bp_jctx *c, json_t *bc, const bp_plan *p)
{
    if (json_object_size(bc) != (size_t)p->nlayers)
        return bp_error(BP_ERR_FORMAT, "%s: bit_config has %zu entries but \"layers\" has %d",
                        c->file, json_object_size(bc), p->nlayers);
    snprintf(c->where, sizeof c->where, "bit_config");
    for (int i = 0; i < p->nlayers; i++) {
        long long w = 0;
        bp_status st = bp_jf_int(c, bc, p->layers[i].name, BP_JF_REQUIRED, 1, MAX_BITS, &w);
        if (st)
            return st;
        if (w != p->layers[i].wbits)
            return bp_error(BP_ERR_FORMAT,
                            "%s: bit_config: field \"%s\" is %lld but layer %d has wbits %d",
                            c->file, p->layers[i].name, w, i, p->layers[i].wbits);
    }
    return BP_OK;
}

bp_status bp_plan_parse(const char *text, size_t len, const char *name, bp_plan *p)
{
    memset(p, 0, sizeof *p);
    json_t *root;
    bp_status st = bp_jf_load(text, len, name, BP_PLAN_FORMAT, BP_PLAN_VERSION, &root);
    if (st)
        return st;
    bp_jctx c = {.file = name};
    snprintf(c.where, sizeof c.where, "top level");
    json_t *layers, *bc, *model, *solver, *totals, *cons;
    if ((st = bp_jf_array(&c, root, "layers", BP_JF_OPTIONAL, &layers)) ||
        (st = bp_jf_object(&c, root, "bit_config", BP_JF_OPTIONAL, &bc)))
        goto fail;
    if (!layers && !bc) {
        st = bp_error(BP_ERR_FORMAT, "%s: missing field \"layers\" (or \"bit_config\")", name);
        goto fail;
    }
    if ((st = layers ? read_layers(&c, layers, p) : read_bit_config_only(&c, bc, p)))
        goto fail;
    if (layers && bc && (st = check_bit_config(&c, bc, p)))
        goto fail;
    snprintf(c.where, sizeof c.where, "top level");
    if ((st = bp_jf_str(&c, root, "sensitivity", BP_JF_OPTIONAL, p->sensitivity_path,
                        sizeof p->sensitivity_path)) ||
        (st = bp_jf_object(&c, root, "model", BP_JF_OPTIONAL, &model)) ||
        (st = bp_jf_object(&c, root, "solver", BP_JF_OPTIONAL, &solver)) ||
        (st = bp_jf_object(&c, root, "totals", BP_JF_OPTIONAL, &totals)) ||
        (st = bp_jf_object(&c, root, "constraints", BP_JF_OPTIONAL, &cons)))
        goto fail;
    json_t *prof = json_object_get(root, "profile");
    if (prof && !json_is_null(prof) &&
        (st = bp_jf_str(&c, root, "profile", BP_JF_OPTIONAL, p->profile, sizeof p->profile)))
        goto fail;
    if (model) {
        snprintf(c.where, sizeof c.where, "model");
        if ((st = bp_jf_str(&c, model, "sha256", BP_JF_OPTIONAL, p->model_sha256,
                            sizeof p->model_sha256)))
            goto fail;
        for (char *q = p->model_sha256; *q; q++)
            *q = (char)tolower((unsigned char)*q);
    }
    if (solver) {
        char s[32] = "unknown";
        snprintf(c.where, sizeof c.where, "solver");
        if ((st = bp_jf_str(&c, solver, "status", BP_JF_OPTIONAL, s, sizeof s)) ||
            (st = bp_jf_num(&c, solver, "objective", BP_JF_OPTIONAL, 1, &p->objective, NULL)) ||
            (st = bp_jf_num_min(&c, solver, "solve_seconds", BP_JF_OPTIONAL, 0,
                                &p->solve_seconds)))
            goto fail;
        if (!strcmp(s, "optimal"))
            p->status = BP_PLAN_OPTIMAL;
        else if (!strcmp(s, "feasible"))
            p->status = BP_PLAN_FEASIBLE;
        else if (!strcmp(s, "unknown"))
            p->status = BP_PLAN_UNKNOWN;
        else {
            st = bp_error(BP_ERR_FORMAT,
                          "%s: solver: field \"status\" is \"%s\" (optimal, feasible or unknown)",
                          name, s);
            goto fail;
        }
    }
    if (totals) {
        snprintf(c.where, sizeof c.where, "totals");
        if ((st = bp_jf_num_min(&c, totals, "size_bytes", BP_JF_OPTIONAL, 0, &p->size_bytes)) ||
            (st = bp_jf_num_min(&c, totals, "bops", BP_JF_OPTIONAL, 0, &p->bops)) ||
            (st = bp_jf_num(&c, totals, "latency_ms", BP_JF_OPTIONAL, 1, &p->latency_ms, NULL)))
            goto fail;
    }
    if (cons) {
        const char *key;
        json_t *v;
        json_object_foreach(cons, key, v) {
            int k = 0;
            while (k < BP_CON_COUNT && strcmp(key, bp_con_name(k)))
                k++;
            if (k == BP_CON_COUNT) {
                st = bp_error(BP_ERR_FORMAT,
                              "%s: constraints: unknown constraint \"%s\" (size, bops, latency)",
                              name, key);
                goto fail;
            }
            snprintf(c.where, sizeof c.where, "constraints: %s", key);
            if (!json_is_object(v)) {
                st = bp_error(BP_ERR_FORMAT, "%s: %s: must be an object", name, c.where);
                goto fail;
            }
            bp_plan_con *pc = &p->con[k];
            pc->active = 1;
            if ((st = bp_jf_num_min(&c, v, "budget", BP_JF_REQUIRED, 0, &pc->budget)) ||
                (st = bp_jf_num_min(&c, v, "value", BP_JF_REQUIRED, 0, &pc->value)))
                goto fail;
            pc->slack = pc->budget - pc->value;
            if ((st = bp_jf_num(&c, v, "slack", BP_JF_OPTIONAL, 0, &pc->slack, NULL)))
                goto fail;
        }
    }
    if ((st = bp_plan_validate(p, name)))
        goto fail;
    json_decref(root);
    return BP_OK;
fail:
    json_decref(root);
    bp_plan_free(p);
    return st;
}

bp_status bp_plan_read(const char *path, bp_plan *p)
{
    char *text;
    size_t len;
    memset(p, 0, sizeof *p);
    bp_status st = bp_read_file(path, &text, &len);
    if (st)
        return st;
    st = bp_plan_parse(text, len, path, p);
    free(text);
    return st;
}

/* ---- writing ------------------------------------------------------------ */

/* NaN (unknown) is written as null so every key is always there for readers
 * that want a fixed shape. */
static int set_num(json_t *o, const char *k, double x)
{
    return bp_jf_set(o, k, bp_jf_real_or_null(x));
}

bp_status bp_plan_write(const char *path, const bp_plan *p)
{
    bp_status st = bp_plan_validate(p, path);
    if (st)
        return st;
    int e = 0;
    json_t *root = json_object();
    if (!root)
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    e |= bp_jf_set(root, "format", json_string(BP_PLAN_FORMAT));
    e |= bp_jf_set(root, "version", json_integer(BP_PLAN_VERSION));
    json_t *model = json_object();
    e |= bp_jf_set(root, "model", model);
    if (model)
        e |= bp_jf_set(model, "sha256", json_string(p->model_sha256));
    e |= bp_jf_set(root, "sensitivity", json_string(p->sensitivity_path));
    e |= bp_jf_set(root, "profile", p->profile[0] ? json_string(p->profile) : json_null());

    json_t *solver = json_object();
    e |= bp_jf_set(root, "solver", solver);
    if (solver) {
        e |= bp_jf_set(solver, "status", json_string(bp_plan_status_name(p->status)));
        e |= set_num(solver, "objective", p->objective);
        e |= set_num(solver, "solve_seconds", p->solve_seconds);
    }
    json_t *totals = json_object();
    e |= bp_jf_set(root, "totals", totals);
    if (totals) {
        e |= set_num(totals, "size_bytes", p->size_bytes);
        e |= set_num(totals, "bops", p->bops);
        e |= set_num(totals, "latency_ms", p->latency_ms);
    }
    json_t *cons = json_object();
    e |= bp_jf_set(root, "constraints", cons);
    for (int k = 0; cons && k < BP_CON_COUNT; k++) {
        if (!p->con[k].active)
            continue;
        json_t *o = json_object();
        e |= bp_jf_set(cons, bp_con_name(k), o);
        if (!o)
            break;
        e |= bp_jf_set(o, "budget", bp_jf_real(p->con[k].budget));
        e |= bp_jf_set(o, "value", bp_jf_real(p->con[k].value));
        e |= bp_jf_set(o, "slack", bp_jf_real(p->con[k].slack));
        e |= bp_jf_set(o, "unit", json_string(bp_con_unit(k)));
    }
    json_t *layers = json_array(), *bc = json_object(), *fb = json_array();
    e |= bp_jf_set(root, "layers", layers);
    e |= bp_jf_set(root, "latency_fallback_layers", fb);
    e |= bp_jf_set(root, "bit_config", bc);
    for (int i = 0; !e && i < p->nlayers; i++) {
        const bp_plan_layer *l = &p->layers[i];
        json_t *o = json_object();
        e |= json_array_append_new(layers, o);
        if (!o)
            break;
        e |= bp_jf_set(o, "name", json_string(l->name));
        e |= bp_jf_set(o, "wbits", json_integer(l->wbits));
        e |= bp_jf_set(o, "abits", json_integer(l->abits));
        e |= set_num(o, "size_bytes", l->size_bytes);
        e |= set_num(o, "bops", l->bops);
        e |= set_num(o, "latency_ms", l->latency_ms);
        e |= bp_jf_set(o, "latency_fallback", json_boolean(l->lat_fallback));
        e |= set_num(o, "omega", l->omega);
        if (!isnan(l->omega_w) || !isnan(l->omega_a)) {
            e |= set_num(o, "omega_w", l->omega_w);
            e |= set_num(o, "omega_a", l->omega_a);
        }
        e |= bp_jf_set(bc, l->name, json_integer(l->wbits));
        if (l->lat_fallback)
            e |= json_array_append_new(fb, json_string(l->name));
    }
    if (e) {
        json_decref(root);
        return bp_error(BP_ERR_NOMEM, "%s: could not build the JSON document (out of memory)",
                        path);
    }
    st = bp_jf_write(path, root);
    json_decref(root);
    return st;
}
