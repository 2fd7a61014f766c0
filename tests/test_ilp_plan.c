/* test_ilp_plan.c — plan file: round trip, hand-written plans (documented
 * example, bit_config only), and bad files naming file, layer and field. */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/fileio.h"
#include "ilp/plan.h"

static char tmpdir[64];
static void mk_tmp(void)
{
    strcpy(tmpdir, "/tmp/bp_plan_XXXXXX");
    cr_assert(mkdtemp(tmpdir));
}
static void rm_tmp(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    cr_assert_eq(system(cmd), 0);
}
TestSuite(plan, .init = mk_tmp, .fini = rm_tmp);

Test(plan, default_activation_bits)
{
    /* a = max(w, 4) */
    const int w[] = {1, 2, 3, 4, 5, 6, 8, 16}, a[] = {4, 4, 4, 4, 5, 6, 8, 16};
    for (size_t k = 0; k < sizeof w / sizeof *w; k++)
        cr_assert_eq(bp_default_abits(w[k]), a[k], "w%d", w[k]);
    cr_assert_str_eq(bp_con_name(BP_CON_BOPS), "bops");
    cr_assert_str_eq(bp_con_unit(BP_CON_LATENCY), "ms");
    cr_assert_str_eq(bp_plan_status_name(BP_PLAN_FEASIBLE), "feasible");
}

static void sample_plan(bp_plan *p)
{
    cr_assert_eq(bp_plan_init(p, 3), BP_OK);
    strcpy(p->model_sha256, "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    strcpy(p->sensitivity_path, "out/sens.json");
    strcpy(p->profile, "profiles/t4-resnet18.json");
    const char *names[3] = {"conv1", "layer1.0.conv1", "fc"};
    for (int i = 0; i < 3; i++) {
        bp_plan_layer *l = &p->layers[i];
        strcpy(l->name, names[i]);
        l->wbits = i == 1 ? 4 : 8;
        l->abits = i == 1 ? 4 : 8;
        l->size_bytes = 100.0 * (i + 1);
        l->bops = 1e9 / 3 * (i + 1);
        l->latency_ms = 0.1 / 3 * (i + 1);
        l->omega = 1e-5 / 7 * (i + 1);
        l->lat_fallback = i == 2;
    }
    p->size_bytes = 600;
    p->bops = 2e9;
    p->latency_ms = 0.2;
    p->objective = 6e-5 / 7;
    p->status = BP_PLAN_FEASIBLE;
    p->solve_seconds = 0.0042;
    p->con[BP_CON_SIZE] = (bp_plan_con){1, 650, 600, 50};
    p->con[BP_CON_LATENCY] = (bp_plan_con){1, 0.25, 0.2, 0.25 - 0.2};
}

Test(plan, round_trip)
{
    bp_plan a, b;
    sample_plan(&a);
    char path[128];
    snprintf(path, sizeof path, "%s/plan.json", tmpdir);
    cr_assert_eq(bp_plan_write(path, &a), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_plan_read(path, &b), BP_OK, "%s", bp_last_error());
    cr_assert_str_eq(b.model_sha256, a.model_sha256);
    cr_assert_str_eq(b.sensitivity_path, a.sensitivity_path);
    cr_assert_str_eq(b.profile, a.profile);
    cr_assert_eq(b.nlayers, 3);
    for (int i = 0; i < 3; i++) {
        cr_assert_str_eq(b.layers[i].name, a.layers[i].name);
        cr_assert_eq(b.layers[i].wbits, a.layers[i].wbits);
        cr_assert_eq(b.layers[i].abits, a.layers[i].abits);
        cr_assert_eq(b.layers[i].size_bytes, a.layers[i].size_bytes);
        cr_assert_eq(b.layers[i].bops, a.layers[i].bops);
        cr_assert_eq(b.layers[i].latency_ms, a.layers[i].latency_ms);
        cr_assert_eq(b.layers[i].omega, a.layers[i].omega);
        cr_assert_eq(b.layers[i].lat_fallback, a.layers[i].lat_fallback);
    }
    cr_assert_eq(b.size_bytes, 600);
    cr_assert_eq(b.bops, 2e9);
    cr_assert_eq(b.latency_ms, 0.2);
    cr_assert_eq(b.objective, a.objective);
    cr_assert_eq(b.status, BP_PLAN_FEASIBLE);
    cr_assert_eq(b.solve_seconds, 0.0042);
    cr_assert(b.con[BP_CON_SIZE].active && !b.con[BP_CON_BOPS].active && b.con[BP_CON_LATENCY].active);
    cr_assert_eq(b.con[BP_CON_LATENCY].slack, a.con[BP_CON_LATENCY].slack);
    cr_assert_eq(b.con[BP_CON_SIZE].budget, 650);
    /* the file carries the HAWQ-style view and the fallback list */
    char *text;
    size_t len;
    cr_assert_eq(bp_read_file(path, &text, &len), BP_OK);
    cr_assert(strstr(text, "\"bit_config\": {\n  \"conv1\": 8,\n  \"layer1.0.conv1\": 4,\n  \"fc\": 8\n }"),
              "%s", text);
    cr_assert(strstr(text, "\"latency_fallback_layers\": [\n  \"fc\"\n ]"), "%s", text);
    free(text);
    bp_plan_free(&a);
    bp_plan_free(&b);
}

Test(plan, unknown_numbers_round_trip_as_null)
{
    bp_plan a, b;
    cr_assert_eq(bp_plan_init(&a, 1), BP_OK);
    strcpy(a.layers[0].name, "only");
    a.layers[0].wbits = 2;
    a.layers[0].abits = 4;
    char path[128];
    snprintf(path, sizeof path, "%s/p.json", tmpdir);
    cr_assert_eq(bp_plan_write(path, &a), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_plan_read(path, &b), BP_OK, "%s", bp_last_error());
    cr_assert(isnan(b.layers[0].size_bytes) && isnan(b.latency_ms) && isnan(b.objective));
    cr_assert_eq(b.status, BP_PLAN_UNKNOWN);
    bp_plan_free(&a);
    bp_plan_free(&b);
}

Test(plan, hand_written_plans)
{
    char *text;
    size_t len;
    cr_assert_eq(bp_read_file("docs/FORMATS.md", &text, &len), BP_OK);
    char *m = strstr(text, "<!-- example: plan-minimal -->");
    cr_assert(m);
    char *b = strstr(m, "```json\n") + 8, *e = strstr(b, "```");
    bp_plan p;
    cr_assert_eq(bp_plan_parse(b, e - b, "FORMATS.md plan example", &p), BP_OK, "%s",
                 bp_last_error());
    cr_assert_eq(p.nlayers, 2);
    cr_assert_eq(p.layers[0].abits, 8);
    cr_assert_eq(p.layers[1].wbits, 4);
    cr_assert_eq(p.layers[1].abits, 4);  /* the default rule */
    cr_assert_eq(p.status, BP_PLAN_UNKNOWN);
    bp_plan_free(&p);
    free(text);

    const char *bc = "{\"format\": \"bitplan-plan\", \"version\": 1, "
                     "\"bit_config\": {\"a\": 2, \"b\": 8, \"c\": 6}}";
    cr_assert_eq(bp_plan_parse(bc, strlen(bc), "bc.json", &p), BP_OK, "%s", bp_last_error());
    cr_assert_eq(p.nlayers, 3);
    cr_assert_str_eq(p.layers[2].name, "c");
    cr_assert_eq(p.layers[0].abits, 4);
    cr_assert_eq(p.layers[2].abits, 6);
    cr_assert_eq(bp_plan_find(&p, "b"), 1);
    cr_assert_eq(bp_plan_find(&p, "zz"), -1);
    bp_plan_free(&p);
}

#define PH "{\"format\": \"bitplan-plan\", \"version\": 1, "
static const struct {
    const char *json;
    bp_status st;
    const char *needle[3];
} bad[] = {
    {"{\"format\": \"bitplan-plan\"}", BP_ERR_FORMAT, {"missing field \"version\""}},
    {PH "\"solver\": {}}", BP_ERR_FORMAT, {"missing field \"layers\""}},
    {PH "\"layers\": [{\"name\": \"a\"}]}", BP_ERR_FORMAT, {"layer 0 (a)", "missing field \"wbits\""}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}, {\"name\": \"b\", \"wbits\": 0}]}", BP_ERR_FORMAT,
     {"layer 1 (b)", "\"wbits\"", "0"}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4, \"abits\": \"8\"}]}", BP_ERR_FORMAT,
     {"layer 0 (a)", "\"abits\"", "a string"}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}, {\"name\": \"a\", \"wbits\": 8}]}", BP_ERR_FORMAT,
     {"layer 1 (a)", "\"name\""}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4, \"size_bytes\": -3}]}", BP_ERR_FORMAT,
     {"layer 0 (a)", "\"size_bytes\""}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}], \"bit_config\": {\"a\": 8}}", BP_ERR_FORMAT,
     {"bit_config", "\"a\"", "wbits 4"}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}], \"bit_config\": {\"b\": 4}}", BP_ERR_FORMAT,
     {"bit_config", "missing field \"a\""}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}], \"solver\": {\"status\": \"great\"}}",
     BP_ERR_FORMAT, {"solver", "\"status\"", "great"}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}], \"constraints\": {\"area\": {\"budget\": 1, \"value\": 1}}}",
     BP_ERR_FORMAT, {"constraints", "area"}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}], \"constraints\": {\"size\": {\"value\": 1}}}",
     BP_ERR_FORMAT, {"constraints: size", "missing field \"budget\""}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}], \"constraints\": {\"size\": {\"budget\": 10, \"value\": 4, \"slack\": 5}}}",
     BP_ERR_FORMAT, {"size", "slack"}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}], \"model\": {\"sha256\": \"xyz\"}}", BP_ERR_FORMAT,
     {"\"sha256\""}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}], \"totals\": {\"bops\": true}}", BP_ERR_FORMAT,
     {"totals", "\"bops\""}},
    {PH "\"layers\": []}", BP_ERR_FORMAT, {"\"layers\"", "0 entries"}},
    {PH "\"layers\": [{\"name\": \"a\", \"wbits\": 4}]", BP_ERR_FORMAT, {"not valid JSON"}},
};

Test(plan, bad_files)
{
    for (size_t k = 0; k < sizeof bad / sizeof *bad; k++) {
        char path[128];
        snprintf(path, sizeof path, "%s/bad%zu.json", tmpdir, k);
        cr_assert_eq(bp_write_file_atomic(path, bad[k].json, strlen(bad[k].json)), BP_OK);
        bp_plan p;
        bp_status st = bp_plan_read(path, &p);
        cr_assert_eq(st, bad[k].st, "case %zu: status %d (%s)", k, st, bp_last_error());
        const char *msg = bp_last_error();
        cr_assert(strstr(msg, path), "case %zu: no file name: %s", k, msg);
        for (int j = 0; j < 3 && bad[k].needle[j]; j++)
            cr_assert(strstr(msg, bad[k].needle[j]), "case %zu: \"%s\" not in: %s", k,
                      bad[k].needle[j], msg);
        cr_assert_null(p.layers);
    }
}

Test(plan, write_validates_first)
{
    bp_plan a;
    sample_plan(&a);
    a.con[BP_CON_SIZE].slack = 49;   /* not budget - value */
    char path[128];
    snprintf(path, sizeof path, "%s/w.json", tmpdir);
    cr_assert_eq(bp_plan_write(path, &a), BP_ERR_FORMAT);
    cr_assert_neq(access(path, F_OK), 0);
    a.con[BP_CON_SIZE].slack = 50;
    a.layers[1].abits = 17;
    cr_assert_eq(bp_plan_write(path, &a), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), "layer 1 (layer1.0.conv1)"), "%s", bp_last_error());
    bp_plan_free(&a);
}
