/* budget.c — budgets: parsing with units, the reachable range of each cost,
 * and relative budgets (HAWQ-V3's r between the lowest and highest plan). */
#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ilp/ilp.h"

typedef struct {
    const char *suffix;
    double mult;
} unit;

/* Longest suffixes first is not needed: matching is exact on the whole rest. */
static const unit size_units[] = {
    {"", 1},        {"B", 1},
    {"k", 1e3},     {"kB", 1e3},   {"K", 1e3},    {"KB", 1e3},
    {"M", 1e6},     {"MB", 1e6},   {"G", 1e9},    {"GB", 1e9},
    {"Ki", 1024.0}, {"KiB", 1024.0}, {"Mi", 1048576.0}, {"MiB", 1048576.0},
    {"Gi", 1073741824.0}, {"GiB", 1073741824.0},
};
static const unit bops_units[] = {
    {"", 1},    {"k", 1e3}, {"K", 1e3}, {"M", 1e6}, {"G", 1e9}, {"T", 1e12}, {"P", 1e15},
};
/* Latency budgets are kept in milliseconds. */
static const unit lat_units[] = {
    {"ms", 1}, {"us", 1e-3}, {"\xc2\xb5s", 1e-3}, {"ns", 1e-6}, {"s", 1e3},
};

static int match_unit(const char *rest, const unit *u, size_t nu, double *mult)
{
    for (size_t k = 0; k < nu; k++)
        if (!strcmp(rest, u[k].suffix)) {
            *mult = u[k].mult;
            return 1;
        }
    return 0;
}

/* strtod also reads hex floats ("0x10"); budgets are plain decimals only. */
static int plain_decimal(const char *from, const char *to)
{
    for (const char *q = from; q < to; q++)
        if (!strchr("0123456789.eE+-", *q))
            return 0;
    return 1;
}

bp_status bp_parse_budget(bp_con_kind k, const char *text, double *out)
{
    const char *what = (unsigned)k < BP_CON_COUNT ? bp_con_name(k) : "?";
    if (!text || !*text)
        return bp_error(BP_ERR_ARG, "%s budget: empty", what);
    const char *p = text;
    while (isspace((unsigned char)*p))
        p++;
    /* Only plain decimal numbers: strtod would also take "inf", "nan", hex. */
    if (!(isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))))
        return bp_error(BP_ERR_ARG, "%s budget \"%s\": expected a non-negative number", what, text);
    char *end;
    errno = 0;
    double x = strtod(p, &end);
    if (!plain_decimal(p, end))
        return bp_error(BP_ERR_ARG, "%s budget \"%s\": expected a decimal number", what, text);
    if (errno == ERANGE || !isfinite(x))
        return bp_error(BP_ERR_ARG, "%s budget \"%s\": number out of range", what, text);
    while (isspace((unsigned char)*end))
        end++;
    char rest[16];
    size_t rl = strlen(end);
    while (rl && isspace((unsigned char)end[rl - 1]))
        rl--;
    if (rl >= sizeof rest)
        return bp_error(BP_ERR_ARG, "%s budget \"%s\": unknown unit", what, text);
    memcpy(rest, end, rl);
    rest[rl] = 0;
    double mult = 0;
    int ok = 0;
    switch (k) {
    case BP_CON_SIZE:
        ok = match_unit(rest, size_units, sizeof size_units / sizeof *size_units, &mult);
        if (!ok)
            return bp_error(BP_ERR_ARG,
                            "%s budget \"%s\": unknown unit \"%s\" (bytes: B, kB, MB, GB, KiB, MiB, GiB)",
                            what, text, rest);
        break;
    case BP_CON_BOPS: {
        /* "1.2G", "1.2GBOPs", "1.2 G bops" */
        size_t n = strlen(rest);
        const char *tails[] = {"BOPs", "BOPS", "bops", "BOP", "bop"};
        for (size_t t = 0; t < sizeof tails / sizeof *tails; t++) {
            size_t m = strlen(tails[t]);
            if (n >= m && !strcmp(rest + n - m, tails[t])) {
                rest[n - m] = 0;
                break;
            }
        }
        for (size_t q = strlen(rest); q && isspace((unsigned char)rest[q - 1]); q--)
            rest[q - 1] = 0;
        ok = match_unit(rest, bops_units, sizeof bops_units / sizeof *bops_units, &mult);
        if (!ok)
            return bp_error(BP_ERR_ARG, "%s budget \"%s\": unknown unit (k, M, G, T, P)", what, text);
        break;
    }
    case BP_CON_LATENCY:
        ok = match_unit(rest, lat_units, sizeof lat_units / sizeof *lat_units, &mult);
        if (!ok)
            return bp_error(BP_ERR_ARG, "%s budget \"%s\": needs a unit: ms, us or s", what, text);
        break;
    default:
        return bp_error(BP_ERR_ARG, "budget: unknown constraint kind %d", (int)k);
    }
    x *= mult;
    if (!isfinite(x))
        return bp_error(BP_ERR_ARG, "%s budget \"%s\": out of range", what, text);
    *out = x;
    return BP_OK;
}

bp_status bp_parse_frac(const char *text, double *r)
{
    if (!text || !*text)
        return bp_error(BP_ERR_ARG, "fraction: empty");
    const char *p = text;
    if (!(isdigit((unsigned char)*p) || (*p == '.' && isdigit((unsigned char)p[1]))))
        return bp_error(BP_ERR_ARG, "fraction \"%s\": expected a number in [0, 1]", text);
    char *end;
    double x = strtod(p, &end);
    if (*end || !plain_decimal(p, end) || !isfinite(x) || x < 0 || x > 1)
        return bp_error(BP_ERR_ARG, "fraction \"%s\": expected a number in [0, 1]", text);
    *r = x;
    return BP_OK;
}

/* Cheapest and dearest total of cost k over the allowed candidates of layer
 * i's tied group (all members at one (w, a)), or of layer i alone. */
static void unit_range(const bp_ilp_problem *p, const double *cost, int i, double *lo, double *hi)
{
    *lo = INFINITY;
    *hi = -INFINITY;
    for (int c = p->off[i]; c < p->off[i + 1]; c++) {
        if (!p->allowed[c])
            continue;
        double t = cost[c];
        if (p->group[i] >= 0) {
            for (int j = 0; j < p->n; j++) {
                if (j == i || p->group[j] != p->group[i])
                    continue;
                for (int d = p->off[j]; d < p->off[j + 1]; d++)
                    if (p->allowed[d] && p->wbits[d] == p->wbits[c] && p->abits[d] == p->abits[c])
                        t += cost[d];
            }
        }
        *lo = fmin(*lo, t);
        *hi = fmax(*hi, t);
    }
}

bp_status bp_ilp_range(const bp_ilp_problem *p, bp_con_kind k, double *lo, double *hi)
{
    if ((unsigned)k >= BP_CON_COUNT)
        return bp_error(BP_ERR_ARG, "range: unknown constraint kind %d", (int)k);
    const double *cost = p->cost[k];
    if (!cost)
        return bp_error(BP_ERR_ARG, "a %s budget needs per-layer latencies (give a profile)",
                        bp_con_name(k));
    double L = 0, H = 0;
    for (int i = 0; i < p->n; i++) {
        /* A group counts once, at its first member. */
        if (p->group[i] >= 0) {
            int first = 0;
            while (p->group[first] != p->group[i])
                first++;
            if (first != i)
                continue;
        }
        double l, h;
        unit_range(p, cost, i, &l, &h);
        if (!isfinite(l))
            return bp_error(BP_ERR_INFEASIBLE, "layer %s has no allowed candidate", p->name[i]);
        L += l;
        H += h;
    }
    *lo = L;
    *hi = H;
    return BP_OK;
}

bp_status bp_budgets_resolve(const bp_ilp_problem *p, const bp_budget_spec spec[BP_CON_COUNT],
                             bp_limits *out)
{
    memset(out, 0, sizeof *out);
    for (int k = 0; k < BP_CON_COUNT; k++) {
        if (!spec[k].set)
            continue;
        if (!p->cost[k])
            return bp_error(BP_ERR_ARG, "a %s budget needs per-layer latencies (give a profile)",
                            bp_con_name(k));
        if (!isfinite(spec[k].value) || spec[k].value < 0)
            return bp_error(BP_ERR_ARG, "%s budget must be finite and >= 0", bp_con_name(k));
        out->active[k] = 1;
        if (spec[k].set == 1) {
            out->limit[k] = spec[k].value;
            continue;
        }
        if (spec[k].value > 1)
            return bp_error(BP_ERR_ARG, "%s fraction %g is outside [0, 1]", bp_con_name(k),
                            spec[k].value);
        double lo, hi;
        bp_status st = bp_ilp_range(p, k, &lo, &hi);
        if (st)
            return st;
        out->limit[k] = spec[k].value >= 1 ? hi : lo + spec[k].value * (hi - lo);
    }
    return BP_OK;
}

int bp_parse_candidates(const char *s, int *wb, int *ab, int max, int max_bits, int default_abits)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        int w, a, used = 0;
        if (n == max)
            return -1;
        if (sscanf(p, "w%da%d%n", &w, &a, &used) == 2 || sscanf(p, "W%dA%d%n", &w, &a, &used) == 2 ||
            sscanf(p, "%d:%d%n", &w, &a, &used) == 2) {
            /* an explicit pair */
        } else if (sscanf(p, "%d%n", &w, &used) == 1) {
            a = default_abits ? bp_default_abits(w) : w;
        } else {
            return -1;
        }
        if (w < 1 || w > max_bits || a < 1 || a > max_bits)
            return -1;
        wb[n] = w;
        ab[n] = a;
        n++;
        p += used;
        if (*p == ',' && p[1])
            p++;
        else if (*p)
            return -1; /* junk, or a trailing comma that hides a missing item */
    }
    return n;
}

int bp_budget_option(const char *opt, const char *val, bp_budget_spec spec[BP_CON_COUNT])
{
    static const char *const names[BP_CON_COUNT] = {
        [BP_CON_SIZE] = "--size", [BP_CON_BOPS] = "--bops", [BP_CON_LATENCY] = "--latency"};
    for (int k = 0; k < BP_CON_COUNT; k++) {
        size_t l = strlen(names[k]);
        if (strncmp(opt, names[k], l) || (opt[l] && strcmp(opt + l, "-frac")))
            continue;
        int frac = opt[l] != 0;
        double x;
        bp_status st = frac ? bp_parse_frac(val, &x) : bp_parse_budget((bp_con_kind)k, val, &x);
        if (st)
            return -1;
        if (spec[k].set) {
            bp_error(BP_ERR_ARG, "two budgets for %s", bp_con_name((bp_con_kind)k));
            return -1;
        }
        spec[k].set = frac ? 2 : 1;
        spec[k].value = x;
        return 1;
    }
    return 0;
}
