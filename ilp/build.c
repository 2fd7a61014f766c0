/* build.c — the search problem: allocation, validation, ties, pins, and the
 * build from a sensitivity file (candidates, Ω, size/BOPs/latency costs). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ilp/ilp.h"

double bp_weight_bytes(size_t params, int bits, bp_size_model m)
{
    int b = bits;
    if (m == BP_SIZE_CONTAINER) {
        b = 1;
        while (b < bits)
            b *= 2;
    }
    /* Exact integer ceil(params·b/8) while it fits in 64 bits. */
    if (params < ((size_t)1 << 58))
        return (double)(((uint64_t)params * (uint64_t)b + 7) / 8);
    return ceil((double)params * b / 8.0);
}

bp_status bp_ilp_alloc(bp_ilp_problem *p, int n, const int *ncand, int with_latency)
{
    memset(p, 0, sizeof *p);
    if (n < 1)
        return bp_error(BP_ERR_ARG, "ilp: a problem needs at least one layer (got %d)", n);
    int total = 0;
    for (int i = 0; i < n; i++) {
        if (ncand[i] < 1 || ncand[i] > 4096)
            return bp_error(BP_ERR_ARG, "ilp: layer %d has %d candidates (1..4096)", i, ncand[i]);
        total += ncand[i];
    }
    p->n = n;
    p->name = calloc(n, sizeof *p->name);
    p->off = malloc((n + 1) * sizeof *p->off);
    p->group = malloc(n * sizeof *p->group);
    p->wbits = calloc(total, sizeof *p->wbits);
    p->abits = calloc(total, sizeof *p->abits);
    p->omega = calloc(total, sizeof *p->omega);
    p->omega_a = calloc(total, sizeof *p->omega_a);
    p->allowed = malloc(total);
    p->cost[BP_CON_SIZE] = calloc(total, sizeof(double));
    p->cost[BP_CON_BOPS] = calloc(total, sizeof(double));
    if (with_latency) {
        p->cost[BP_CON_LATENCY] = calloc(total, sizeof(double));
        p->lat_fallback = calloc(total, 1);
    }
    if (!p->name || !p->off || !p->group || !p->wbits || !p->abits || !p->omega || !p->omega_a ||
        !p->allowed ||
        !p->cost[BP_CON_SIZE] || !p->cost[BP_CON_BOPS] ||
        (with_latency && (!p->cost[BP_CON_LATENCY] || !p->lat_fallback))) {
        bp_ilp_free(p);
        return bp_error(BP_ERR_NOMEM, "ilp: out of memory for %d layers", n);
    }
    p->off[0] = 0;
    for (int i = 0; i < n; i++) {
        p->off[i + 1] = p->off[i] + ncand[i];
        p->group[i] = -1;
    }
    memset(p->allowed, 1, total);
    return BP_OK;
}

void bp_ilp_free(bp_ilp_problem *p)
{
    if (!p)
        return;
    free(p->name);
    free(p->off);
    free(p->group);
    free(p->wbits);
    free(p->abits);
    free(p->omega);
    free(p->omega_a);
    free(p->allowed);
    for (int k = 0; k < BP_CON_COUNT; k++)
        free(p->cost[k]);
    free(p->lat_fallback);
    memset(p, 0, sizeof *p);
}

int bp_ilp_find(const bp_ilp_problem *p, const char *name)
{
    for (int i = 0; i < p->n; i++)
        if (!strcmp(p->name[i], name))
            return i;
    return -1;
}

/* Candidate of layer i with bits (w, a) that is allowed, or -1. */
static int find_wa(const bp_ilp_problem *p, int i, int w, int a)
{
    for (int c = p->off[i]; c < p->off[i + 1]; c++)
        if (p->allowed[c] && p->wbits[c] == w && p->abits[c] == a)
            return c;
    return -1;
}

bp_status bp_ilp_validate(const bp_ilp_problem *p)
{
    if (p->n < 1 || !p->off || !p->wbits || !p->abits || !p->omega || !p->allowed || !p->group ||
        !p->cost[BP_CON_SIZE] || !p->cost[BP_CON_BOPS])
        return bp_error(BP_ERR_ARG, "ilp: incomplete problem");
    for (int i = 0; i < p->n; i++) {
        if (p->off[i + 1] <= p->off[i])
            return bp_error(BP_ERR_ARG, "ilp: layer %d (%s) has no candidates", i, p->name[i]);
        int any = 0;
        for (int c = p->off[i]; c < p->off[i + 1]; c++) {
            if (p->wbits[c] < 1 || p->wbits[c] > BP_SENS_MAX_BITS || p->abits[c] < 1 ||
                p->abits[c] > BP_SENS_MAX_BITS)
                return bp_error(BP_ERR_ARG, "ilp: layer %d (%s): candidate w%d a%d out of 1..%d", i,
                                p->name[i], p->wbits[c], p->abits[c], BP_SENS_MAX_BITS);
            for (int d = p->off[i]; d < c; d++)
                if (p->wbits[d] == p->wbits[c] && p->abits[d] == p->abits[c])
                    return bp_error(BP_ERR_ARG, "ilp: layer %d (%s): candidate w%d a%d repeats", i,
                                    p->name[i], p->wbits[c], p->abits[c]);
            if (!isfinite(p->omega[c]))
                return bp_error(BP_ERR_NUMERIC, "ilp: layer %d (%s): omega of w%d a%d is not finite",
                                i, p->name[i], p->wbits[c], p->abits[c]);
            for (int k = 0; k < BP_CON_COUNT; k++)
                if (p->cost[k] && !(isfinite(p->cost[k][c]) && p->cost[k][c] >= 0))
                    return bp_error(BP_ERR_NUMERIC,
                                    "ilp: layer %d (%s): %s cost of w%d a%d must be finite and >= 0",
                                    i, p->name[i], bp_con_name(k), p->wbits[c], p->abits[c]);
            any |= p->allowed[c];
        }
        if (!any)
            return bp_error(BP_ERR_INFEASIBLE, "ilp: layer %d (%s) has no allowed candidate", i,
                            p->name[i]);
        if (p->group[i] < -1 || p->group[i] >= p->ngroups)
            return bp_error(BP_ERR_ARG, "ilp: layer %d (%s): group %d out of range", i, p->name[i],
                            p->group[i]);
    }
    /* Tied layers must offer the same allowed (w, a) pairs; the equality rows
     * x_{i,k} = x_{j,k} are only sound then. */
    for (int i = 0; i < p->n; i++) {
        if (p->group[i] < 0)
            continue;
        int j = 0;
        while (p->group[j] != p->group[i])
            j++;
        for (int pass = 0; pass < 2; pass++) {
            int a = pass ? j : i, b = pass ? i : j;
            for (int c = p->off[a]; c < p->off[a + 1]; c++)
                if (p->allowed[c] && find_wa(p, b, p->wbits[c], p->abits[c]) < 0)
                    return bp_error(BP_ERR_ARG,
                                    "ilp: tied layers %s and %s do not offer the same candidates (w%d a%d)",
                                    p->name[a], p->name[b], p->wbits[c], p->abits[c]);
        }
    }
    return BP_OK;
}

/* Restricts every member of group g to the (w, a) pairs all members allow. */
static bp_status restrict_group(bp_ilp_problem *p, int g)
{
    for (int changed = 1; changed;) {
        changed = 0;
        for (int i = 0; i < p->n; i++) {
            if (p->group[i] != g)
                continue;
            for (int c = p->off[i]; c < p->off[i + 1]; c++) {
                if (!p->allowed[c])
                    continue;
                for (int j = 0; j < p->n; j++)
                    if (p->group[j] == g && find_wa(p, j, p->wbits[c], p->abits[c]) < 0) {
                        p->allowed[c] = 0;
                        changed = 1;
                        break;
                    }
            }
        }
    }
    for (int i = 0; i < p->n; i++) {
        if (p->group[i] != g)
            continue;
        int any = 0;
        for (int c = p->off[i]; c < p->off[i + 1]; c++)
            any |= p->allowed[c];
        if (!any) {
            char names[512] = "";
            for (int j = 0; j < p->n; j++)
                if (p->group[j] == g && strlen(names) + strlen(p->name[j]) + 3 < sizeof names)
                    strcat(strcat(names, names[0] ? ", " : ""), p->name[j]);
            return bp_error(BP_ERR_INFEASIBLE,
                            "ilp: tied layers {%s} have no allowed candidate in common", names);
        }
    }
    return BP_OK;
}

bp_status bp_ilp_tie(bp_ilp_problem *p, int a, int b)
{
    if (a < 0 || a >= p->n || b < 0 || b >= p->n)
        return bp_error(BP_ERR_ARG, "ilp: tie of layers %d and %d: out of range", a, b);
    int ga = p->group[a], gb = p->group[b];
    if (ga < 0 && gb < 0)
        ga = gb = p->group[a] = p->group[b] = p->ngroups++;
    else if (ga < 0)
        ga = p->group[a] = gb;
    else if (gb < 0)
        p->group[b] = ga;
    else if (ga != gb) {
        /* Merge gb into ga and keep ids dense by moving the last id into gb. */
        for (int i = 0; i < p->n; i++)
            if (p->group[i] == gb)
                p->group[i] = ga;
        int last = p->ngroups - 1;
        for (int i = 0; i < p->n; i++)
            if (p->group[i] == last)
                p->group[i] = gb;
        if (ga == last)
            ga = gb;
        p->ngroups--;
    }
    return restrict_group(p, ga);
}

bp_status bp_ilp_pin(bp_ilp_problem *p, int i, int wbits, int abits)
{
    if (i < 0 || i >= p->n)
        return bp_error(BP_ERR_ARG, "ilp: pin of layer %d: out of range", i);
    int any = 0;
    for (int c = p->off[i]; c < p->off[i + 1]; c++)
        any |= p->allowed[c] && p->wbits[c] == wbits && (!abits || p->abits[c] == abits);
    if (!any) {
        if (abits)
            return bp_error(BP_ERR_ARG, "ilp: cannot pin layer %s at w%d a%d: not an allowed candidate",
                            p->name[i], wbits, abits);
        return bp_error(BP_ERR_ARG, "ilp: cannot pin layer %s at %d bits: not an allowed candidate",
                        p->name[i], wbits);
    }
    for (int c = p->off[i]; c < p->off[i + 1]; c++)
        if (p->wbits[c] != wbits || (abits && p->abits[c] != abits))
            p->allowed[c] = 0;
    return p->group[i] >= 0 ? restrict_group(p, p->group[i]) : BP_OK;
}

/* ---- from a sensitivity file --------------------------------------------- */

static int in_list(int x, const int *v, int n)
{
    for (int k = 0; k < n; k++)
        if (v[k] == x)
            return 1;
    return 0;
}

/* Applies one "--tie A,B,C" specification. */
static bp_status tie_spec(bp_ilp_problem *p, const char *spec)
{
    char buf[2048];
    if (strlen(spec) >= sizeof buf)
        return bp_error(BP_ERR_ARG, "tie \"%.40s...\": too long", spec);
    strcpy(buf, spec);
    int first = -1, count = 0;
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int i = bp_ilp_find(p, t);
        if (i < 0)
            return bp_error(BP_ERR_ARG, "tie \"%s\": no layer named \"%s\"", spec, t);
        count++;
        if (first < 0) {
            first = i;
            continue;
        }
        bp_status st = bp_ilp_tie(p, first, i);
        if (st)
            return st;
    }
    if (count < 2)
        return bp_error(BP_ERR_ARG, "tie \"%s\": name at least two layers, separated by commas",
                        spec);
    return BP_OK;
}

bp_status bp_ilp_from_sens(const bp_sens *s, const bp_ilp_options *o, bp_ilp_problem *p)
{
    static const bp_ilp_options defaults;
    if (!o)
        o = &defaults;
    memset(p, 0, sizeof *p);
    int n = s->nlayers;
    if (n < 1)
        return bp_error(BP_ERR_ARG, "ilp: the sensitivity set has no layers");
    if (o->npairs < 0 || o->npairs > 64)
        return bp_error(BP_ERR_ARG, "ilp: %d (w, a) pairs (at most 64)", o->npairs);
    int *ncand = malloc(n * sizeof *ncand);
    if (!ncand)
        return bp_error(BP_ERR_NOMEM, "ilp: out of memory");
    for (int i = 0; i < n; i++) {
        const bp_sens_layer *sl = &s->layers[i];
        if (!o->npairs) {
            ncand[i] = sl->ncand;
            continue;
        }
        ncand[i] = 0;
        for (int k = 0; k < o->npairs; k++)
            ncand[i] += bp_sens_find_cand(sl, o->pair_w[k]) != NULL;
        if (!ncand[i]) {
            free(ncand);
            return bp_error(BP_ERR_ARG,
                            "ilp: layer %d (%s) has Ω for none of the weight bits in the (w, a) pairs",
                            i, sl->sig.name);
        }
    }
    bp_status st = bp_ilp_alloc(p, n, ncand, o->profile != NULL);
    free(ncand);
    if (st)
        return st;
    for (int i = 0; i < n; i++) {
        const bp_sens_layer *sl = &s->layers[i];
        const bp_layer *l = &sl->sig;
        snprintf(p->name[i], sizeof p->name[i], "%s", l->name);
        int c = p->off[i];
        int np = o->npairs ? o->npairs : sl->ncand;
        for (int k = 0; k < np; k++) {
            int w = o->npairs ? o->pair_w[k] : sl->cand[k].bits;
            int a = o->npairs ? o->pair_a[k] : bp_default_abits(w);
            const bp_sens_cand *wc = bp_sens_find_cand(sl, w);
            if (!wc)
                continue;
            if (a < 1 || a > BP_SENS_MAX_BITS) {
                st = bp_error(BP_ERR_ARG, "ilp: activation bits %d out of 1..%d", a, BP_SENS_MAX_BITS);
                goto fail;
            }
            double oa = 0;
            if (sl->nact > 0) {
                const bp_sens_act_cand *ac = bp_sens_find_act(sl, a);
                if (!ac) {
                    st = bp_error(BP_ERR_ARG,
                                  "ilp: layer %d (%s) has activation terms but none for %d bits",
                                  i, l->name, a);
                    goto fail;
                }
                oa = ac->omega;
            }
            p->wbits[c] = w;
            p->abits[c] = a;
            p->omega[c] = wc->omega + oa;
            p->omega_a[c] = oa;
            p->cost[BP_CON_SIZE][c] =
                bp_weight_bytes(l->params, w, o->size_model) + 8.0 * (double)l->cout;
            p->cost[BP_CON_BOPS][c] = (double)l->macs * w * a;
            if (o->nbits > 0 && !in_list(w, o->bits, o->nbits))
                p->allowed[c] = 0;
            if (o->profile) {
                int how = 0;
                double ms = 0;
                st = bp_profile_latency(o->profile, l, w, a, &ms, &how);
                if (st) {
                    bp_error_wrap(st, "latency of layer %d (%s) at w%d a%d", i, l->name, w, a);
                    goto fail;
                }
                p->cost[BP_CON_LATENCY][c] = ms;
                p->lat_fallback[c] = (how & BP_LAT_METHOD_MASK) != BP_LAT_EXACT;
            }
            c++;
        }
        int any = 0;
        for (c = p->off[i]; c < p->off[i + 1]; c++)
            any |= p->allowed[c];
        if (!any) {
            st = bp_error(BP_ERR_ARG, "ilp: layer %d (%s) has no candidate among the allowed bits",
                          i, l->name);
            goto fail;
        }
    }
    if (o->pin_first_last) {
        if ((st = bp_ilp_pin(p, 0, 8, 8)) || (st = bp_ilp_pin(p, n - 1, 8, 8))) {
            bp_error_wrap(st, "--pin-first-last");
            goto fail;
        }
    }
    for (int k = 0; k < o->npins; k++) {
        int i = bp_ilp_find(p, o->pins[k].name);
        if (i < 0) {
            st = bp_error(BP_ERR_ARG, "pin: no layer named \"%s\"", o->pins[k].name);
            goto fail;
        }
        if ((st = bp_ilp_pin(p, i, o->pins[k].wbits, o->pins[k].abits)))
            goto fail;
    }
    if (!o->no_file_ties) {
        for (int i = 0; i < n; i++) {
            if (!s->layers[i].tie[0])
                continue;
            for (int j = i + 1; j < n; j++)
                if (!strcmp(s->layers[i].tie, s->layers[j].tie) &&
                    (st = bp_ilp_tie(p, i, j))) {
                    bp_error_wrap(st, "tie \"%s\" from the sensitivity file", s->layers[i].tie);
                    goto fail;
                }
        }
    }
    for (int k = 0; k < o->nties; k++)
        if ((st = tie_spec(p, o->ties[k])))
            goto fail;
    if ((st = bp_ilp_validate(p)))
        goto fail;
    return BP_OK;
fail:
    bp_ilp_free(p);
    return st;
}
