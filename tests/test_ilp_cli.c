/* test_ilp_cli.c — `bitplan ilp` end to end: runs bin/bitplan (or $BITPLAN)
 * on a generated sensitivity file and checks the plan file against the
 * library's own solve, the pins/ties it was told, the frontier files, --json
 * output, and the infeasible exit code and message. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "core/fileio.h"
#include "ilp/ilp.h"

static char dir[64];
static char out_text[1 << 16];

static const char *bitplan(void)
{
    const char *b = getenv("BITPLAN");
    return b && b[0] ? b : "bin/bitplan";
}

/* Runs bitplan with args (stdout+stderr kept in out_text); returns the exit
 * status, or 128 + signal. */
static int run(const char *args)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "%s %s 2>&1", bitplan(), args);
    FILE *fp = popen(cmd, "r");
    cr_assert_not_null(fp);
    size_t n = fread(out_text, 1, sizeof out_text - 1, fp);
    out_text[n] = 0;
    int st = pclose(fp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Six layers; a tie between "b" and "d" recorded in the file. */
static void write_sens(const char *path)
{
    bp_sens s;
    cr_assert_eq(bp_sens_init(&s, 6), BP_OK);
    const int bits[4] = {2, 4, 6, 8};
    for (int i = 0; i < 6; i++) {
        bp_sens_layer *l = &s.layers[i];
        snprintf(l->sig.name, sizeof l->sig.name, "%c", 'a' + i);
        l->sig.op = i == 5 ? BP_OP_GEMM : BP_OP_CONV;
        l->sig.params = 500 * (i + 1) + 37 * i * i;
        l->sig.cout = 8 + 4 * i;
        l->sig.macs = (int64_t)l->sig.params * (60 - 9 * i);
        l->ncand = 4;
        for (int c = 0; c < 4; c++)
            l->cand[c] = (bp_sens_cand){.bits = bits[c], .dw2 = NAN,
                                        .omega = (1.0 + ((i * 7) % 5)) * pow(4.0, -bits[c])};
    }
    strcpy(s.layers[1].tie, "add1");
    strcpy(s.layers[3].tie, "add1");
    cr_assert_eq(bp_sens_write(path, &s), BP_OK, "%s", bp_last_error());
    bp_sens_free(&s);
}

static void setup(void)
{
    strcpy(dir, "/tmp/bp_ilpcli_XXXXXX");
    cr_assert(mkdtemp(dir));
    char p[128];
    snprintf(p, sizeof p, "%s/sens.json", dir);
    write_sens(p);
}

static void teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(ilp_cli, .init = setup, .fini = teardown);

Test(ilp_cli, plan_matches_the_library_and_honours_pins_and_ties)
{
    char args[512], sens[128], planp[128];
    snprintf(sens, sizeof sens, "%s/sens.json", dir);
    snprintf(planp, sizeof planp, "%s/plan.json", dir);
    snprintf(args, sizeof args, "ilp %s --size-frac 0.4 --bops 20M --pin-first-last -o %s", sens,
             planp);
    int rc = run(args);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out_text);
    cr_assert(strstr(out_text, "optimal (proven by GLPK"), "%s", out_text);
    cr_assert(strstr(out_text, "constraint size"), "%s", out_text);
    bp_plan plan;
    cr_assert_eq(bp_plan_read(planp, &plan), BP_OK, "%s", bp_last_error());
    cr_assert_eq(plan.nlayers, 6);
    cr_assert_eq(plan.status, BP_PLAN_OPTIMAL);
    cr_assert_str_eq(plan.sensitivity_path, sens);
    cr_assert_eq(plan.layers[0].wbits, 8);
    cr_assert_eq(plan.layers[5].wbits, 8);
    cr_assert_eq(plan.layers[1].wbits, plan.layers[3].wbits, "tie from the file ignored");
    for (int i = 0; i < 6; i++)
        cr_assert_eq(plan.layers[i].abits, bp_default_abits(plan.layers[i].wbits));
    cr_assert(plan.con[BP_CON_SIZE].active && plan.con[BP_CON_BOPS].active);
    cr_assert_eq(plan.con[BP_CON_BOPS].budget, 2e7);
    cr_assert_leq(plan.bops, 2e7);

    /* The same search through the library gives the same objective. */
    bp_sens s;
    cr_assert_eq(bp_sens_read(sens, &s), BP_OK);
    bp_ilp_options o = {0};
    o.pin_first_last = 1;
    bp_ilp_problem p;
    cr_assert_eq(bp_ilp_from_sens(&s, &o, &p), BP_OK, "%s", bp_last_error());
    bp_budget_spec spec[BP_CON_COUNT] = {{2, 0.4}, {1, 2e7}, {0, 0}};
    bp_limits lim;
    cr_assert_eq(bp_budgets_resolve(&p, spec, &lim), BP_OK);
    bp_ilp_result r;
    cr_assert_eq(bp_ilp_solve(&p, &lim, 0, &r), BP_OK, "%s", bp_last_error());
    cr_assert(fabs(r.objective - plan.objective) <= 1e-12 * r.objective, "%.17g vs %.17g",
              r.objective, plan.objective);
    cr_assert_eq(lim.limit[BP_CON_SIZE], plan.con[BP_CON_SIZE].budget);
    bp_ilp_result_free(&r);
    bp_ilp_free(&p);
    bp_sens_free(&s);
    bp_plan_free(&plan);
}

Test(ilp_cli, sweep_writes_the_frontier)
{
    char args[512];
    snprintf(args, sizeof args, "ilp %s/sens.json --sweep size:7 --frontier %s/fr --quiet", dir, dir);
    int rc = run(args);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out_text);
    cr_assert_eq(out_text[0], 0, "--quiet printed: %s", out_text);
    char path[128];
    snprintf(path, sizeof path, "%s/fr.json", dir);
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    cr_assert_not_null(root, "%s", je.text);
    json_t *pts = json_object_get(root, "points");
    size_t n = json_array_size(pts);
    cr_assert(n >= 2 && n <= 7, "%zu points", n);
    double prev = INFINITY;
    for (size_t k = 0; k < n; k++) {
        double obj = json_real_value(json_object_get(json_array_get(pts, k), "objective"));
        cr_assert_leq(obj, prev * (1 + 1e-12), "objective must not rise with the budget");
        prev = obj;
    }
    json_decref(root);
    snprintf(path, sizeof path, "%s/fr.csv", dir);
    char *text;
    size_t len;
    cr_assert_eq(bp_read_file(path, &text, &len), BP_OK);
    cr_assert(strstr(text, ",w_a,w_b,w_c,w_d,w_e,w_f,a_a,"), "%.200s", text);
    free(text);
}

Test(ilp_cli, json_output_is_the_plan_file)
{
    char args[512];
    snprintf(args, sizeof args, "ilp %s/sens.json --bops-frac 0.3 --json --tie a,c", dir);
    int rc = run(args);
    cr_assert_eq(rc, 0, "exit %d: %s", rc, out_text);
    bp_plan plan;
    cr_assert_eq(bp_plan_parse(out_text, strlen(out_text), "stdout", &plan), BP_OK, "%s\n%s",
                 bp_last_error(), out_text);
    cr_assert_eq(plan.layers[0].wbits, plan.layers[2].wbits);
    cr_assert(plan.con[BP_CON_BOPS].active);
    bp_plan_free(&plan);
}

Test(ilp_cli, infeasible_budget_exits_3_and_states_minimum)
{
    char args[512];
    snprintf(args, sizeof args, "ilp %s/sens.json --size 100B -o %s/p.json", dir, dir);
    int rc = run(args);
    cr_assert_eq(rc, 3, "exit %d: %s", rc, out_text);
    /* smallest size: every layer at 2 bits, worked out from write_sens */
    double lo = 0;
    for (int i = 0; i < 6; i++)
        lo += ceil((500.0 * (i + 1) + 37 * i * i) * 2 / 8) + 8 * (8 + 4 * i);
    char need[128];
    snprintf(need, sizeof need, "smallest reachable %.10g bytes", lo);
    cr_assert(strstr(out_text, need), "\"%s\" not in: %s", need, out_text);
}
