/* `bitplan ilp SENSITIVITY.json [budgets] -o PLAN.json`: choose per-layer
 * bit-widths with the GLPK integer program (ilp/ilp.h), print a per-layer
 * table and totals, write the plan file; with --sweep, a Pareto frontier. */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "ilp/ilp.h"
#include "latency/profile.h"

#define MAX_LIST 64

static void usage(FILE *fp)
{
    fprintf(fp,
        "usage: bitplan ilp SENSITIVITY.json [budgets] [options] -o PLAN.json\n"
        "  Chooses weight (and activation) bits per layer minimizing the sum of Omega\n"
        "  under any combination of budgets; GLPK proves optimality (zero gap).\n"
        "budgets (absolute, or a fraction r: lowest + r*(highest - lowest) reachable):\n"
        "  --size S            bytes: 48KiB, 1.5MB, 2000000 (k/M/G decimal, Ki/Mi/Gi binary)\n"
        "  --bops B            bit operations per sample: 1.2G, 800M, 3e9\n"
        "  --latency T         3.1ms, 850us, 0.002s (needs --profile)\n"
        "  --size-frac R  --bops-frac R  --latency-frac R      R in [0, 1]\n"
        "options:\n"
        "  --profile P         latency profile (per-layer, per-candidate latency)\n"
        "  --bits LIST         weight bits allowed everywhere, e.g. 4,8\n"
        "  --pairs LIST        search (w, a) pairs instead of a = max(w, 4): w4a8,w8a8,4:4\n"
        "  --pin NAME=B        pin a layer at B bits (B or W:A); repeatable\n"
        "  --pin-first-last    pin the first and last layer at w8a8\n"
        "  --tie A,B[,C]       layers that must share bits; repeatable\n"
        "  --no-auto-ties      ignore the residual ties recorded in the sensitivity file\n"
        "  --size-model M      packed (ceil(params*b/8), default) or container (1/2/4/8/16-bit cells)\n"
        "  --time-limit S      stop after S seconds with the best plan found (\"feasible\")\n"
        "  --sweep KIND:N      Pareto sweep of N budgets of KIND (size, bops, latency)\n"
        "                      between the lowest and highest reachable, other budgets held\n"
        "  --frontier PREFIX   sweep output PREFIX.csv and PREFIX.json\n"
        "                      (default: PLAN without .json, plus -frontier)\n"
        "  -o PLAN.json        plan file (required unless --sweep with --frontier)\n"
        "  --json              print the plan JSON instead of the table\n"
        "  --quiet             print nothing but errors\n"
        "exit: 0 ok, 1 failure, 2 usage, 3 infeasible (message states the smallest reachable values)\n");
}

static int usage_err(const char *fmt, const char *arg)
{
    fprintf(stderr, "bitplan ilp: ");
    fprintf(stderr, fmt, arg);
    fprintf(stderr, "\n");
    usage(stderr);
    return BP_EXIT_USAGE;
}

/* "4,8" -> ints in 1..16. Returns the count or -1. */
static int parse_ints(const char *s, int *v, int max)
{
    int n = 0;
    const char *p = s;
    while (*p) {
        char *end;
        long x = strtol(p, &end, 10);
        if (end == p || x < 1 || x > 16 || n == max)
            return -1;
        v[n++] = (int)x;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}


static int con_kind(const char *s, size_t len)
{
    for (int k = 0; k < BP_CON_COUNT; k++)
        if (strlen(bp_con_name(k)) == len && !strncmp(s, bp_con_name(k), len))
            return k;
    return -1;
}

/* Bytes / BOPs / ms in a short human form. */
static void fmt_size(char *b, size_t n, double x)
{
    if (isnan(x))
        snprintf(b, n, "-");
    else if (x >= 1048576)
        snprintf(b, n, "%.2f MiB", x / 1048576);
    else if (x >= 1024)
        snprintf(b, n, "%.1f KiB", x / 1024);
    else
        snprintf(b, n, "%.0f B", x);
}

static void fmt_bops(char *b, size_t n, double x)
{
    if (isnan(x))
        snprintf(b, n, "-");
    else if (x >= 1e9)
        snprintf(b, n, "%.3f G", x / 1e9);
    else if (x >= 1e6)
        snprintf(b, n, "%.3f M", x / 1e6);
    else
        snprintf(b, n, "%.0f", x);
}

static void fmt_value(char *b, size_t n, bp_con_kind k, double x)
{
    if (k == BP_CON_SIZE)
        fmt_size(b, n, x);
    else if (k == BP_CON_BOPS)
        fmt_bops(b, n, x);
    else
        snprintf(b, n, isnan(x) ? "-" : "%.4f ms", x);
}

static void print_plan(const bp_plan *plan, const bp_sens *s, int batch)
{
    /* With activation terms, the weight and activation parts of Ω as well. */
    int act = 0;
    for (int i = 0; i < s->nlayers; i++)
        act |= s->layers[i].nact > 0;
    printf("%-28s %-6s %10s %5s %5s %11s %12s %11s %11s", "layer", "op", "params", "wbits",
           "abits", "size", "BOPs", "latency ms", "omega");
    printf(act ? " %11s %11s\n" : "\n", "omega_w", "omega_a");
    for (int i = 0; i < plan->nlayers; i++) {
        const bp_plan_layer *l = &plan->layers[i];
        const bp_layer *sig = &s->layers[i].sig;
        char sz[32], bo[32], lat[32];
        fmt_size(sz, sizeof sz, l->size_bytes);
        fmt_bops(bo, sizeof bo, l->bops);
        if (isnan(l->latency_ms))
            snprintf(lat, sizeof lat, "-");
        else
            snprintf(lat, sizeof lat, "%.4f%s", l->latency_ms, l->lat_fallback ? "*" : "");
        printf("%-28.28s %-6s %10zu %5d %5d %11s %12s %11s %11.4g", l->name, bp_op_name(sig->op),
               sig->params, l->wbits, l->abits, sz, bo, lat, l->omega);
        if (act)
            printf(" %11.4g %11.4g", l->omega_w, l->omega_a);
        printf("\n");
    }
    if (act) {
        double ow = 0, oa = 0;
        for (int i = 0; i < plan->nlayers; i++) {
            ow += plan->layers[i].omega_w;
            oa += plan->layers[i].omega_a;
        }
        printf("omega: weights %.6g + activations %.6g (activation terms from the sensitivity file's "
               "act_candidates)\n", ow, oa);
    }
    char sz[32], bo[32];
    fmt_size(sz, sizeof sz, plan->size_bytes);
    fmt_bops(bo, sizeof bo, plan->bops);
    printf("totals: size %s (%.0f bytes), BOPs %s per sample", sz, plan->size_bytes, bo);
    if (!isnan(plan->latency_ms))
        printf(", latency %.4f ms (batch %d)", plan->latency_ms, batch);
    printf("\n");
    int fb = 0;
    for (int i = 0; i < plan->nlayers; i++)
        fb += plan->layers[i].lat_fallback;
    if (fb)
        printf("  * latency from a fallback (interpolation or roofline) for %d layer%s\n", fb,
               fb == 1 ? "" : "s");
    for (int k = 0; k < BP_CON_COUNT; k++) {
        const bp_plan_con *c = &plan->con[k];
        if (!c->active)
            continue;
        char b[32], v[32], sl[32];
        fmt_value(b, sizeof b, k, c->budget);
        fmt_value(v, sizeof v, k, c->value);
        fmt_value(sl, sizeof sl, k, c->slack);
        printf("constraint %-8s budget %-14s value %-14s slack %s\n", bp_con_name(k), b, v, sl);
    }
    printf("objective (sum of omega) %.6g, %s, solved in %.1f ms\n", plan->objective,
           plan->status == BP_PLAN_OPTIMAL ? "optimal (proven by GLPK, zero gap)"
                                           : "feasible (time limit: not proven optimal)",
           plan->solve_seconds * 1e3);
}

static void print_sweep(const bp_ilp_problem *p, bp_con_kind k, const bp_sweep_point *pts, int n)
{
    /* When activation bits are searched (some layer offers two a for one w),
     * each layer is shown as w:a. */
    int wa = 0;
    for (int i = 0; i < p->n && !wa; i++)
        for (int c = p->off[i]; c < p->off[i + 1] && !wa; c++)
            for (int d = p->off[i]; d < c && !wa; d++)
                wa = p->allowed[c] && p->allowed[d] && p->wbits[c] == p->wbits[d];
    printf("%-16s %-14s %-12s %-14s %-12s %s\n", "budget", "size", "BOPs", "latency", "objective",
           wa ? "w:a bits per layer" : "weight bits per layer");
    for (int j = 0; j < n; j++) {
        char b[32], sz[32], bo[32], lat[32];
        fmt_value(b, sizeof b, k, pts[j].budget);
        fmt_size(sz, sizeof sz, pts[j].total[BP_CON_SIZE]);
        fmt_bops(bo, sizeof bo, pts[j].total[BP_CON_BOPS]);
        fmt_value(lat, sizeof lat, BP_CON_LATENCY, pts[j].total[BP_CON_LATENCY]);
        printf("%-16s %-14s %-12s %-14s %-12.5g ", b, sz, bo, lat, pts[j].objective);
        for (int i = 0; i < p->n; i++) {
            int c = pts[j].choice[i];
            if (wa)
                printf("%d:%d%s", p->wbits[c], p->abits[c], i + 1 < p->n ? "," : "");
            else
                printf("%d%s", p->wbits[c], i + 1 < p->n ? "," : "");
        }
        printf("%s\n", pts[j].status == BP_PLAN_FEASIBLE ? " (not proven optimal)" : "");
    }
}

int cmd_ilp(int argc, char **argv)
{
    const char *sens_path = NULL, *out = NULL, *profile_path = NULL, *frontier = NULL;
    bp_budget_spec spec[BP_CON_COUNT] = {{0, 0}, {0, 0}, {0, 0}};
    bp_ilp_options o = {0};
    bp_ilp_pin_spec pins[MAX_LIST];
    const char *ties[MAX_LIST];
    int sweep_kind = -1, sweep_n = 0, as_json = 0;
    double time_limit = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return BP_EXIT_OK;
        } else if (!strcmp(a, "--quiet") || !strcmp(a, "-q")) {
            continue;
        } else if (!strcmp(a, "--json")) {
            as_json = 1;
            continue;
        } else if (!strcmp(a, "--pin-first-last")) {
            o.pin_first_last = 1;
            continue;
        } else if (!strcmp(a, "--no-auto-ties")) {
            o.no_file_ties = 1;
            continue;
        } else if (a[0] != '-') {
            if (sens_path)
                return usage_err("unexpected argument '%s'", a);
            sens_path = a;
            continue;
        }
        if (!v)
            return usage_err("option %s needs a value", a);
        i++;
        int is_budget = bp_budget_option(a, v, spec);
        if (is_budget < 0)
            return bp_cli_fail(BP_ERR_ARG);
        if (is_budget) {
            /* parsed into spec[] */
        } else if (!strcmp(a, "-o")) {
            out = v;
        } else if (!strcmp(a, "--profile")) {
            profile_path = v;
        } else if (!strcmp(a, "--frontier")) {
            frontier = v;
        } else if (!strcmp(a, "--bits")) {
            if ((o.nbits = parse_ints(v, o.bits, BP_SENS_MAX_CAND)) < 1)
                return usage_err("--bits '%s': expected bit-widths 1..16 separated by commas", v);
        } else if (!strcmp(a, "--pairs")) {
            if ((o.npairs = bp_parse_candidates(v, o.pair_w, o.pair_a, 64, 16, 1)) < 1)
                return usage_err("--pairs '%s': expected e.g. w4a8,w8a8 or 4:8,8:8", v);
        } else if (!strcmp(a, "--pin")) {
            const char *eq = strrchr(v, '=');
            if (!eq || eq == v || o.npins == MAX_LIST || (size_t)(eq - v) >= sizeof pins[0].name)
                return usage_err("--pin '%s': expected NAME=BITS or NAME=W:A", v);
            bp_ilp_pin_spec *ps = &pins[o.npins];
            memcpy(ps->name, v, eq - v);
            ps->name[eq - v] = 0;
            int w, ab = 0, used = 0;
            if (!((sscanf(eq + 1, "%d:%d%n", &w, &ab, &used) == 2 ||
                   (ab = 0, sscanf(eq + 1, "%d%n", &w, &used) == 1)) &&
                  !eq[1 + used] && w >= 1 && w <= 16 && ab >= 0 && ab <= 16))
                return usage_err("--pin '%s': expected NAME=BITS or NAME=W:A", v);
            ps->wbits = w;
            ps->abits = ab;
            o.npins++;
            o.pins = pins;
        } else if (!strcmp(a, "--tie")) {
            if (o.nties == MAX_LIST)
                return usage_err("too many --tie options (%s)", v);
            ties[o.nties++] = v;
            o.ties = ties;
        } else if (!strcmp(a, "--size-model")) {
            if (!strcmp(v, "packed"))
                o.size_model = BP_SIZE_PACKED;
            else if (!strcmp(v, "container"))
                o.size_model = BP_SIZE_CONTAINER;
            else
                return usage_err("--size-model '%s': packed or container", v);
        } else if (!strcmp(a, "--time-limit")) {
            char *end;
            time_limit = strtod(v, &end);
            if (*end || !(time_limit > 0) || !isfinite(time_limit))
                return usage_err("--time-limit '%s': expected seconds > 0", v);
        } else if (!strcmp(a, "--sweep")) {
            const char *colon = strchr(v, ':');
            char *end;
            if (!colon || (sweep_kind = con_kind(v, colon - v)) < 0)
                return usage_err("--sweep '%s': expected size:N, bops:N or latency:N", v);
            long n = strtol(colon + 1, &end, 10);
            if (*end || end == colon + 1 || n < 2 || n > 100000)
                return usage_err("--sweep '%s': N must be an integer in 2..100000", v);
            sweep_n = (int)n;
        } else {
            return usage_err("unknown option '%s'", a);
        }
    }
    if (!sens_path)
        return usage_err("%s", "missing SENSITIVITY.json");
    if (!out && sweep_kind < 0 && !as_json)
        return usage_err("%s", "missing -o PLAN.json");
    char frontier_buf[1100];
    if (sweep_kind >= 0 && !frontier) {
        if (!out)
            return usage_err("%s", "--sweep needs --frontier PREFIX (or -o PLAN.json)");
        size_t n = strlen(out);
        if (n > 5 && !strcmp(out + n - 5, ".json"))
            n -= 5;
        if (n + 10 > sizeof frontier_buf)
            return usage_err("-o '%s': path too long", out);
        snprintf(frontier_buf, sizeof frontier_buf, "%.*s-frontier", (int)n, out);
        frontier = frontier_buf;
    }

    int rc = BP_EXIT_OK;
    bp_sens s = {0};
    bp_profile *prof = NULL;
    bp_ilp_problem p = {0};
    bp_ilp_result r = {0};
    bp_plan plan = {0};
    bp_sweep_point *pts = NULL;
    int npts = 0;
    bp_status st;
    char tmp_plan[64] = "";
    /* Every output is checked writable before any is written, and frontier
     * files written before a failure are removed: nothing is left on failure. */
    int wrote_frontier = 0;
    char fpath[2][1200] = {"", ""};
    if (sweep_kind >= 0) {
        snprintf(fpath[0], sizeof fpath[0], "%s.csv", frontier);
        snprintf(fpath[1], sizeof fpath[1], "%s.json", frontier);
    }
    if ((st = bp_out_probe(out)) ||
        (sweep_kind >= 0 && ((st = bp_out_probe(fpath[0])) || (st = bp_out_probe(fpath[1])))))
        goto fail;
    if ((st = bp_sens_read(sens_path, &s)))
        goto fail;
    if (profile_path && (st = bp_profile_load(profile_path, &prof)))
        goto fail;
    o.profile = prof;
    if ((st = bp_ilp_from_sens(&s, &o, &p))) {
        bp_error_wrap(st, "%s", sens_path);
        goto fail;
    }
    bp_limits lim;
    if ((st = bp_budgets_resolve(&p, spec, &lim)))
        goto fail;

    if (sweep_kind >= 0) {
        if ((st = bp_ilp_sweep(&p, &lim, sweep_kind, sweep_n, time_limit, &pts, &npts)))
            goto fail;
        char path[1200];
        snprintf(path, sizeof path, "%s.csv", frontier);
        if ((st = bp_sweep_write_csv(path, &p, sweep_kind, pts, npts)))
            goto fail;
        wrote_frontier = 1;
        snprintf(path, sizeof path, "%s.json", frontier);
        if ((st = bp_sweep_write_json(path, &p, sweep_kind, pts, npts, &s)))
            goto fail;
        if (!bp_cli_quiet && !as_json) {
            printf("Pareto sweep over %s: %d budgets, %d distinct plans\n", bp_con_name(sweep_kind),
                   sweep_n, npts);
            print_sweep(&p, sweep_kind, pts, npts);
            printf("frontier: %s.csv, %s.json\n\n", frontier, frontier);
        }
        if (!out && !as_json)
            goto done;
    }

    if (!lim.active[0] && !lim.active[1] && !lim.active[2] && !bp_cli_quiet)
        fprintf(stderr, "bitplan ilp: no budget given: every layer gets its least sensitive candidate\n");
    if ((st = bp_ilp_solve(&p, &lim, time_limit, &r)))
        goto fail;
    if ((st = bp_ilp_to_plan(&p, &r, &lim, &s, &plan)))
        goto fail;
    snprintf(plan.sensitivity_path, sizeof plan.sensitivity_path, "%s", sens_path);
    if (profile_path)
        snprintf(plan.profile, sizeof plan.profile, "%s", profile_path);
    const char *plan_path = out;
    if (!plan_path) {
        /* --json without -o: write through a temporary file so that the
         * printed text is exactly the file format. */
        strcpy(tmp_plan, "/tmp/bitplan-plan-XXXXXX");
        int fd = mkstemp(tmp_plan);
        if (fd < 0) {
            st = bp_error(BP_ERR_IO, "%s: cannot create a temporary file", tmp_plan);
            tmp_plan[0] = 0;
            goto fail;
        }
        close(fd);
        plan_path = tmp_plan;
    }
    /* The file leaves the solve's wall time out (null), so that the same
     * inputs give a byte-identical plan; the table below still prints it. */
    double solve_s = plan.solve_seconds;
    plan.solve_seconds = NAN;
    st = bp_plan_write(plan_path, &plan);
    plan.solve_seconds = solve_s;
    if (st)
        goto fail;
    if (as_json) {
        char *text;
        size_t len;
        if ((st = bp_read_file(plan_path, &text, &len)))
            goto fail;
        fwrite(text, 1, len, stdout);
        free(text);
    } else if (!bp_cli_quiet) {
        print_plan(&plan, &s, prof ? prof->batch : 0);
        printf("plan: %s\n", out);
    }
    goto done;
fail:
    rc = bp_cli_fail(st);
    if (wrote_frontier) {
        unlink(fpath[0]);
        unlink(fpath[1]);
    }
done:
    if (tmp_plan[0])
        unlink(tmp_plan);
    bp_sweep_free(pts, npts);
    bp_plan_free(&plan);
    bp_ilp_result_free(&r);
    bp_ilp_free(&p);
    bp_profile_free(prof);
    bp_sens_free(&s);
    return rc;
}
