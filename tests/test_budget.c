/* test_budget.c — budget parsing with units and bad inputs; relative budgets. */
#include <criterion/criterion.h>
#include <math.h>
#include <string.h>

#include "ilp/ilp.h"

static const struct {
    bp_con_kind k;
    const char *text;
    double want;   /* worked by hand */
} good[] = {
    {BP_CON_SIZE, "48KiB", 48 * 1024.0},
    {BP_CON_SIZE, "48 KiB", 48 * 1024.0},
    {BP_CON_SIZE, "1.5MB", 1500000.0},
    {BP_CON_SIZE, "1.5M", 1500000.0},
    {BP_CON_SIZE, "3MiB", 3 * 1048576.0},
    {BP_CON_SIZE, "2GiB", 2 * 1073741824.0},
    {BP_CON_SIZE, "100kB", 100000.0},
    {BP_CON_SIZE, "100KB", 100000.0},
    {BP_CON_SIZE, "12B", 12.0},
    {BP_CON_SIZE, "2000000", 2000000.0},
    {BP_CON_SIZE, ".5KiB", 512.0},
    {BP_CON_SIZE, "1e3", 1000.0},
    {BP_CON_BOPS, "1.2G", 1.2e9},
    {BP_CON_BOPS, "1.2GBOPs", 1.2e9},
    {BP_CON_BOPS, "1.2 G bops", 1.2e9},
    {BP_CON_BOPS, "800M", 8e8},
    {BP_CON_BOPS, "5T", 5e12},
    {BP_CON_BOPS, "3e9", 3e9},
    {BP_CON_BOPS, "0", 0.0},
    {BP_CON_LATENCY, "3.1ms", 3.1},
    {BP_CON_LATENCY, "850us", 0.85},
    {BP_CON_LATENCY, "850\xc2\xb5s", 0.85},
    {BP_CON_LATENCY, "0.002s", 2.0},
    {BP_CON_LATENCY, "2500ns", 0.0025},
    {BP_CON_LATENCY, " 4 ms ", 4.0},
};

Test(budget, units)
{
    for (size_t k = 0; k < sizeof good / sizeof *good; k++) {
        double x = -1;
        bp_status st = bp_parse_budget(good[k].k, good[k].text, &x);
        cr_assert_eq(st, BP_OK, "\"%s\": %s", good[k].text, bp_last_error());
        cr_assert(fabs(x - good[k].want) <= 1e-12 * fabs(good[k].want),
                  "\"%s\" -> %.17g, want %.17g", good[k].text, x, good[k].want);
    }
}

static const struct {
    bp_con_kind k;
    const char *text;
} badin[] = {
    {BP_CON_SIZE, ""},         {BP_CON_SIZE, "KiB"},       {BP_CON_SIZE, "-5KiB"},
    {BP_CON_SIZE, "48Kb"},     {BP_CON_SIZE, "48 furlongs"}, {BP_CON_SIZE, "nan"},
    {BP_CON_SIZE, "inf"},      {BP_CON_SIZE, "1e999"},     {BP_CON_SIZE, "48KiB extra"},
    {BP_CON_SIZE, "0x10"},     {BP_CON_SIZE, "4ms"},       {BP_CON_BOPS, "1.2X"},
    {BP_CON_BOPS, "-1G"},      {BP_CON_BOPS, "G"},         {BP_CON_BOPS, "1.2GiB"},
    {BP_CON_LATENCY, "3.1"},   {BP_CON_LATENCY, "3.1 m"},  {BP_CON_LATENCY, "ms"},
    {BP_CON_LATENCY, "-2ms"},  {BP_CON_LATENCY, "3.1MB"},
};

Test(budget, bad_inputs_are_rejected)
{
    for (size_t k = 0; k < sizeof badin / sizeof *badin; k++) {
        double x = 42;
        bp_status st = bp_parse_budget(badin[k].k, badin[k].text, &x);
        cr_assert_eq(st, BP_ERR_ARG, "\"%s\" accepted as %g", badin[k].text, x);
        cr_assert_eq(x, 42, "output written on failure");
        cr_assert(strstr(bp_last_error(), bp_con_name(badin[k].k)), "%s", bp_last_error());
    }
}

Test(budget, fractions)
{
    double r;
    cr_assert_eq(bp_parse_frac("0.5", &r), BP_OK);
    cr_assert_eq(r, 0.5);
    cr_assert_eq(bp_parse_frac("1", &r), BP_OK);
    cr_assert_eq(r, 1.0);
    cr_assert_eq(bp_parse_frac("0", &r), BP_OK);
    cr_assert_eq(r, 0.0);
    const char *no[] = {"", "1.5", "-0.1", "half", "0.5x", "nan", "inf"};
    for (size_t k = 0; k < sizeof no / sizeof *no; k++)
        cr_assert_eq(bp_parse_frac(no[k], &r), BP_ERR_ARG, "\"%s\"", no[k]);
}

/* Two layers, candidates 2/4/8 bits, sizes worked by hand:
 *   layer a: params 100, cout 4 -> packed bytes 25/50/100 + 32
 *   layer b: params 30,  cout 2 -> 8/15/30 + 16
 * lowest plan 57 + 24 = 81, highest 132 + 46 = 178. */
static void two_layers(bp_ilp_problem *p)
{
    bp_sens s;
    cr_assert_eq(bp_sens_init(&s, 2), BP_OK);
    const int bits[3] = {2, 4, 8};
    for (int i = 0; i < 2; i++) {
        bp_sens_layer *l = &s.layers[i];
        strcpy(l->sig.name, i ? "b" : "a");
        l->sig.op = BP_OP_CONV;
        l->sig.params = i ? 30 : 100;
        l->sig.cout = i ? 2 : 4;
        l->sig.macs = i ? 300 : 1000;
        l->ncand = 3;
        for (int c = 0; c < 3; c++)
            l->cand[c] = (bp_sens_cand){.bits = bits[c], .dw2 = NAN, .omega = 1.0 / bits[c]};
    }
    cr_assert_eq(bp_ilp_from_sens(&s, NULL, p), BP_OK, "%s", bp_last_error());
    bp_sens_free(&s);
}

Test(budget, relative_budgets_between_lowest_and_highest)
{
    bp_ilp_problem p;
    two_layers(&p);
    double lo, hi;
    cr_assert_eq(bp_ilp_range(&p, BP_CON_SIZE, &lo, &hi), BP_OK);
    cr_assert_eq(lo, 81.0);
    cr_assert_eq(hi, 178.0);
    /* BOPs: a = max(w, 4): 1000·{2·4, 4·4, 8·8} and 300·{8, 16, 64}. */
    cr_assert_eq(bp_ilp_range(&p, BP_CON_BOPS, &lo, &hi), BP_OK);
    cr_assert_eq(lo, 8000.0 + 2400.0);
    cr_assert_eq(hi, 64000.0 + 19200.0);
    bp_budget_spec spec[BP_CON_COUNT] = {{2, 0.5}, {1, 12345}, {0, 0}};
    bp_limits lim;
    cr_assert_eq(bp_budgets_resolve(&p, spec, &lim), BP_OK, "%s", bp_last_error());
    cr_assert(lim.active[BP_CON_SIZE] && lim.active[BP_CON_BOPS] && !lim.active[BP_CON_LATENCY]);
    cr_assert_eq(lim.limit[BP_CON_SIZE], 81.0 + 0.5 * 97.0);
    cr_assert_eq(lim.limit[BP_CON_BOPS], 12345.0);
    /* A latency budget without a profile is a usage error. */
    bp_budget_spec lat[BP_CON_COUNT] = {{0, 0}, {0, 0}, {1, 3.0}};
    cr_assert_eq(bp_budgets_resolve(&p, lat, &lim), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "profile"), "%s", bp_last_error());
    bp_ilp_free(&p);
}

Test(budget, weight_bytes_models)
{
    /* packed: ceil(params·b/8) */
    cr_assert_eq(bp_weight_bytes(10, 3, BP_SIZE_PACKED), 4.0);
    cr_assert_eq(bp_weight_bytes(10, 4, BP_SIZE_PACKED), 5.0);
    cr_assert_eq(bp_weight_bytes(11, 4, BP_SIZE_PACKED), 6.0);
    cr_assert_eq(bp_weight_bytes(10, 6, BP_SIZE_PACKED), 8.0);
    /* containers: 3 bits in a nibble, 5..8 in a byte, 9..16 in two */
    cr_assert_eq(bp_weight_bytes(10, 3, BP_SIZE_CONTAINER), 5.0);
    cr_assert_eq(bp_weight_bytes(10, 6, BP_SIZE_CONTAINER), 10.0);
    cr_assert_eq(bp_weight_bytes(10, 2, BP_SIZE_CONTAINER), 3.0);
    cr_assert_eq(bp_weight_bytes(10, 12, BP_SIZE_CONTAINER), 20.0);
}

/* Candidate lists shared by `bitplan ilp --pairs` and `bitplan latency --bits`:
 * expected pairs worked by hand from the documented rules. */
Test(budget, candidate_lists)
{
    int w[8], a[8];
    cr_assert_eq(bp_parse_candidates("w4a8,8:8,W6A6,2", w, a, 8, 16, 1), 4);
    cr_assert(w[0] == 4 && a[0] == 8 && w[1] == 8 && a[1] == 8 && w[2] == 6 && a[2] == 6);
    cr_assert(w[3] == 2 && a[3] == 4, "a bare 2 gets a = max(2, 4) in the search's convention");
    cr_assert_eq(bp_parse_candidates("2,5", w, a, 8, 32, 0), 2);
    cr_assert(w[0] == 2 && a[0] == 2 && w[1] == 5 && a[1] == 5, "a bare W is WnAn for profiles");
    cr_assert_eq(bp_parse_candidates("32", w, a, 8, 32, 0), 1);
    static const char *bad[] = {"", ",", "4,", "w4", "4;8", "0", "17", "w4a0", "x"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++)
        cr_assert_eq(bp_parse_candidates(bad[i], w, a, 8, 16, 1), bad[i][0] ? -1 : 0,
                     "'%s' must be rejected", bad[i]);
    cr_assert_eq(bp_parse_candidates("4,4,4", w, a, 2, 16, 1), -1, "more than max");
}

/* The budget options both CLIs share: kinds, units, fractions, repeats. */
Test(budget, budget_options)
{
    bp_budget_spec spec[BP_CON_COUNT] = {{0, 0}, {0, 0}, {0, 0}};
    cr_assert_eq(bp_budget_option("-o", "x", spec), 0);
    cr_assert_eq(bp_budget_option("--sizes", "1", spec), 0, "a longer name is not --size");
    cr_assert_eq(bp_budget_option("--size", "48KiB", spec), 1);
    cr_assert(spec[BP_CON_SIZE].set == 1 && spec[BP_CON_SIZE].value == 48 * 1024);
    cr_assert_eq(bp_budget_option("--bops-frac", "0.25", spec), 1);
    cr_assert(spec[BP_CON_BOPS].set == 2 && spec[BP_CON_BOPS].value == 0.25);
    cr_assert_eq(bp_budget_option("--latency", "850us", spec), 1);
    cr_assert_float_eq(spec[BP_CON_LATENCY].value, 0.85, 1e-12);
    cr_assert_eq(bp_budget_option("--size-frac", "0.5", spec), -1, "a second size budget");
    cr_assert(strstr(bp_last_error(), "two budgets") != NULL);
    bp_budget_spec fresh[BP_CON_COUNT] = {{0, 0}, {0, 0}, {0, 0}};
    cr_assert_eq(bp_budget_option("--bops-frac", "1.5", fresh), -1, "fraction out of [0, 1]");
    cr_assert_eq(bp_budget_option("--latency", "3", fresh), -1, "latency needs a unit");
}
