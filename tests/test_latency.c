/* Latency profiles: parsing and validation errors, save/load round trip,
 * exact lookup, the fallbacks (promotion, log-log interpolation, roofline)
 * against values worked by hand, the HAWQ-V3 T4 import against the CSV's own
 * numbers, the shipped profiles, and the host measurement driver (its
 * bookkeeping, not its speed: timings are machine-dependent; the int4/int8
 * ordering is a benchmark, bench/latency_fc.c). */
#include <criterion/criterion.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "latency/measure.h"
#include "latency/profile.h"

#define HEAD                                                                              \
    "{\"format\": \"bitplan-profile\", \"version\": 1, \"device\": \"test\",\n"            \
    " \"conditions\": {\"batch\": 1, \"threads\": 2, \"repetitions\": 5, \"warmup\": 1},\n" \
    " \"entries\": [\n"
#define E_CONV(bw, ms)                                                                     \
    "{\"op\": \"Conv\", \"cin\": 8, \"cout\": 16, \"kh\": 3, \"kw\": 3, \"stride\": 1, "   \
    "\"group\": 1, \"in_h\": 10, \"in_w\": 10, \"batch\": 1, \"b_w\": " #bw ", \"b_a\": "  \
    #bw ", \"macs\": 115200, \"latency_ms\": " ms ", \"source\": \"measured\"}"
#define TAIL "]}\n"

static bp_profile *parse_ok(const char *text)
{
    bp_profile *p = NULL;
    bp_status st = bp_profile_parse(text, strlen(text), "t.json", &p);
    cr_assert_eq(st, BP_OK, "parse failed: %s", bp_last_error());
    return p;
}

static void parse_fails(const char *text, bp_status want, const char *const *needles)
{
    bp_profile *p = (bp_profile *)1;
    bp_status st = bp_profile_parse(text, strlen(text), "t.json", &p);
    cr_assert_eq(st, want, "status %d (%s), want %d, for:\n%s", st, bp_last_error(), want, text);
    cr_assert_null(p);
    for (int i = 0; needles[i]; i++)
        cr_assert(strstr(bp_last_error(), needles[i]) != NULL,
                  "message '%s' lacks '%s'", bp_last_error(), needles[i]);
}

Test(profile_parse, valid_minimal)
{
    bp_profile *p = parse_ok(HEAD E_CONV(8, "0.5") "," E_CONV(4, "0.25") TAIL);
    cr_assert_str_eq(p->device, "test");
    cr_assert_eq(p->batch, 1);
    cr_assert_eq(p->threads, 2);
    cr_assert_eq(p->repetitions, 5);
    cr_assert_eq(p->warmup, 1);
    cr_assert_null(p->date);
    cr_assert_eq(p->npeak, 0);
    cr_assert_eq(p->n, 2);
    cr_assert_eq(p->e[1].b_w, 4);
    cr_assert_eq(p->e[1].sig.op, BP_OP_CONV);
    cr_assert_eq(p->e[1].sig.cout, 16);
    cr_assert_float_eq(p->e[1].latency_ms, 0.25, 1e-15);
    cr_assert_eq(p->e[1].spread, BP_SPREAD_NONE);
    bp_profile_free(p);
}

/* Each case: a document with one defect, the status, and what the message
 * must name (file, entry index, field). */
Test(profile_parse, errors_name_file_entry_and_field)
{
    static const struct {
        const char *text;
        bp_status st;
        const char *needles[5];
    } cases[] = {
        {HEAD E_CONV(8, "0.5") ",{\"op\": \"Conv\", \"cin\": 8, \"cout\": 16, \"kh\": 3, "
              "\"kw\": 3, \"stride\": 1, \"group\": 1, \"in_h\": 10, \"in_w\": 10, "
              "\"batch\": 1, \"b_w\": 4, \"b_a\": 4, \"macs\": 115200, "
              "\"source\": \"measured\"}" TAIL,
         BP_ERR_FORMAT, {"t.json", "entry 1", "missing field 'latency_ms'"}},
        {HEAD E_CONV(8, "-0.5") TAIL, BP_ERR_FORMAT, {"t.json", "entry 0", "latency_ms", "negative"}},
        {HEAD E_CONV(8, "0.5") "," E_CONV(4, "NaN") TAIL, BP_ERR_FORMAT,
         {"t.json:", "non-finite", NULL}},
        {HEAD E_CONV(4, "Infinity") TAIL, BP_ERR_FORMAT, {"t.json:", "non-finite", NULL}},
        {HEAD E_CONV(4, "-Infinity") TAIL, BP_ERR_FORMAT, {"t.json:", "non-finite", NULL}},
        {HEAD E_CONV(8, "0.5") "," E_CONV(4, "0.3") "," E_CONV(8, "0.7") TAIL, BP_ERR_FORMAT,
         {"t.json", "entry 2", "duplicate key", "entry 0"}},
        {HEAD "{\"op\": \"Relu\", \"cin\": 8}" TAIL, BP_ERR_FORMAT,
         {"t.json", "entry 0", "field 'op'", "unknown op 'Relu'"}},
        {HEAD E_CONV(8, "\"fast\"") TAIL, BP_ERR_FORMAT,
         {"entry 0", "latency_ms", "must be a number", NULL}},
        {"{\"format\": \"bitplan-profile\", \"version\": 1, \"device\": \"x\", "
         "\"conditions\": {\"threads\": 1}, \"entries\": []}",
         BP_ERR_FORMAT, {"t.json", "conditions", "missing field 'batch'", NULL}},
        {"{\"format\": \"bitplan-profile\", \"version\": 1, \"conditions\": {\"batch\": 1}, "
         "\"entries\": []}",
         BP_ERR_FORMAT, {"t.json", "missing field 'device'", NULL}},
        {"{\"format\": \"other\", \"version\": 1}", BP_ERR_FORMAT, {"t.json", "'format'", NULL}},
        {"{\"format\": \"bitplan-profile\", \"version\": 2, \"device\": \"x\", "
         "\"conditions\": {\"batch\": 1}, \"entries\": []}",
         BP_ERR_UNSUPPORTED, {"t.json", "version", NULL}},
        {"{\"format\": \"bitplan-profile\", \"version\": 1, \"device\": \"x\", "
         "\"conditions\": {\"batch\": 1}}",
         BP_ERR_FORMAT, {"t.json", "missing field 'entries'", NULL}},
        {HEAD "{\"op\": \"Conv\", \"cin\": 8, \"cout\": 16, \"kh\": 3, \"kw\": 3, "
              "\"stride\": 1, \"group\": 1, \"in_h\": 10, \"in_w\": 10, \"batch\": 1, "
              "\"b_w\": 4, \"b_a\": 4, \"macs\": 115200, \"latency_ms\": 1, "
              "\"spread\": {\"kind\": \"iqr\", \"lo\": 2, \"hi\": 1}, "
              "\"source\": \"measured\"}" TAIL,
         BP_ERR_FORMAT, {"t.json", "entry 0", "spread", NULL}},
        {HEAD "{\"op\": \"Conv\", \"cin\": 8, \"cout\": 16, \"kh\": 3, \"kw\": 3, "
              "\"stride\": 1, \"group\": 1, \"in_h\": 10, \"in_w\": 10, \"batch\": 1, "
              "\"b_w\": 4, \"b_a\": 4, \"macs\": 115200, \"latency_ms\": 1, "
              "\"source\": \"guessed\"}" TAIL,
         BP_ERR_FORMAT, {"t.json", "entry 0", "'source'", NULL}},
        {HEAD "{\"op\": \"Conv\", \"cin\": 8, \"cout\": 16, \"kh\": 3, \"kw\": 3, "
              "\"stride\": 0, \"group\": 1, \"in_h\": 10, \"in_w\": 10, \"batch\": 1, "
              "\"b_w\": 4, \"b_a\": 4, \"macs\": 115200, \"latency_ms\": 1, "
              "\"source\": \"measured\"}" TAIL,
         BP_ERR_FORMAT, {"t.json", "entry 0", "'stride'", NULL}},
        {"{\"format\": \"bitplan-profile\", \"version\": 1, \"device\": \"x\", "
         "\"conditions\": {\"batch\": 1}, \"roofline\": {\"peak_ops\": {\"8\": 1e12}}, "
         "\"entries\": []}",
         BP_ERR_FORMAT, {"t.json", "mem_bw", NULL}},
        {"{\"format\": \"bitplan-profile\", \"version\": 1, \"device\": \"x\", "
         "\"conditions\": {\"batch\": 1}, \"roofline\": {\"peak_ops\": {\"8\": -1}, "
         "\"mem_bw\": 1e9}, \"entries\": []}",
         BP_ERR_FORMAT, {"t.json", "peak_ops.8", NULL}},
        {"{\"format\": \"bitplan-profile\", \"version\": 1, \"device\": \"x\", "
         "\"conditions\": {\"batch\": 1, \"clock\": \"sundial\"}, \"entries\": []}",
         BP_ERR_FORMAT, {"t.json", "conditions.clock", "sundial", NULL}},
        {"{\"format\": \"bitplan-profile\", \"version\": 1, \"device\": \"x\", "
         "\"conditions\": {\"batch\": 1}, \"units\": [8, 4], \"entries\": []}",
         BP_ERR_FORMAT, {"t.json", "units", NULL}},
        {"{\"format\": \"bitplan-profile\", \"version\": 1, \"device\": \"x\",\n"
         "\"conditions\": {\"batch\": 1}, \"entries\": [}",
         BP_ERR_FORMAT, {"t.json:2:", "not valid JSON", NULL}},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        parse_fails(cases[i].text, cases[i].st, cases[i].needles);
}

static bp_profile_entry conv_entry(int64_t cin, int64_t cout, int k, int64_t hw, int batch,
                                   int bw, int ba, int64_t macs, double ms)
{
    bp_profile_entry e = {0};
    e.sig.op = BP_OP_CONV;
    e.sig.cin = cin;
    e.sig.cout = cout;
    e.sig.kh = e.sig.kw = k;
    e.sig.stride = e.sig.group = 1;
    e.sig.in_h = e.sig.in_w = hw;
    e.sig.batch = batch;
    e.b_w = bw;
    e.b_a = ba;
    e.macs = macs;
    e.latency_ms = ms;
    e.lo_ms = e.hi_ms = ms;
    e.source = BP_LAT_MEASURED;
    return e;
}

static bp_layer conv_layer(const char *name, int64_t cin, int64_t cout, int k, int stride,
                           int64_t hw, int64_t macs)
{
    bp_layer L;
    memset(&L, 0, sizeof L);
    snprintf(L.name, sizeof L.name, "%s", name);
    L.op = BP_OP_CONV;
    L.cin = cin;
    L.cout = cout;
    L.kh = L.kw = k;
    L.stride = stride;
    L.group = 1;
    L.in_h = L.in_w = hw;
    L.out_h = L.out_w = hw / stride;
    L.params = (size_t)(cin * cout * k * k);
    L.macs = macs;
    L.fan_in = cin * k * k;
    return L;
}

Test(profile_validate, in_memory_nan_and_duplicates)
{
    bp_profile *p = bp_profile_new("mem", 1);
    bp_profile_entry e = conv_entry(8, 16, 3, 10, 1, 8, 8, 115200, 0.5);
    cr_assert_eq(bp_profile_add(p, &e), BP_OK);
    cr_assert_eq(bp_profile_add(p, &e), BP_ERR_ARG, "a second identical key must be refused");
    cr_assert(strstr(bp_last_error(), "duplicate") != NULL);
    bp_profile_entry f = conv_entry(8, 16, 3, 10, 1, 4, 4, 115200, NAN);
    cr_assert_eq(bp_profile_add(p, &f), BP_OK);
    cr_assert_eq(bp_profile_validate(p, "mem.json"), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), "mem.json: entry 1: field 'latency_ms': NaN") != NULL,
              "%s", bp_last_error());
    p->e[1].latency_ms = INFINITY;
    cr_assert_eq(bp_profile_validate(p, "mem.json"), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), "entry 1") != NULL);
    p->e[1].latency_ms = 0.25;
    cr_assert_eq(bp_profile_validate(p, "mem.json"), BP_OK);
    /* a duplicate slipped in behind the API's back is still caught */
    p->e[1].b_w = p->e[1].b_a = 8;
    cr_assert_eq(bp_profile_validate(p, "mem.json"), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), "entry 1: duplicate key") != NULL, "%s", bp_last_error());
    bp_profile_free(p);
}

Test(profile_file, save_load_round_trip)
{
    bp_profile *p = bp_profile_new("round trip", 4);
    p->threads = 2;
    p->repetitions = 30;
    p->warmup = 3;
    p->date = strdup("2026-11-22T00:00:00Z");
    p->host = strdup("a cpu");
    p->clock = strdup("thread-cpu");
    p->citation = strdup("made up for a test");
    p->nunits = 2;
    p->units[0] = 4;
    p->units[1] = 8;
    p->npeak = 2;
    p->peak_bits[0] = 4;
    p->peak_ops[0] = 2.6e14;
    p->peak_bits[1] = 8;
    p->peak_ops[1] = 1.3e14;
    p->mem_bw = 3.2e11;
    bp_profile_entry e = conv_entry(64, 64, 3, 56, 4, 4, 4, 115605504, 0.21094404);
    e.spread = BP_SPREAD_IQR;
    e.lo_ms = 0.2;
    e.hi_ms = 0.22;
    e.note = "a \"quoted\" note";
    cr_assert_eq(bp_profile_add(p, &e), BP_OK);
    bp_profile_entry g = {0};
    g.sig.op = BP_OP_GEMM;
    g.sig.cin = 512;
    g.sig.cout = 10;
    g.sig.kh = g.sig.kw = g.sig.stride = g.sig.group = 1;
    g.sig.in_h = g.sig.in_w = 1;
    g.sig.batch = 4;
    g.b_w = 8;
    g.b_a = 4;
    g.macs = 5120;
    g.latency_ms = 0.001;
    g.source = BP_LAT_MODELED;
    cr_assert_eq(bp_profile_add(p, &g), BP_OK);

    char path[] = "/tmp/bp_lat_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    close(fd);
    cr_assert_eq(bp_profile_save(p, path), BP_OK, "%s", bp_last_error());
    bp_profile *q = NULL;
    cr_assert_eq(bp_profile_load(path, &q), BP_OK, "%s", bp_last_error());
    unlink(path);
    cr_assert_str_eq(q->device, "round trip");
    cr_assert_str_eq(q->citation, "made up for a test");
    cr_assert_str_eq(q->date, "2026-11-22T00:00:00Z");
    cr_assert_str_eq(q->host, "a cpu");
    cr_assert_str_eq(q->clock, "thread-cpu");
    cr_assert_eq(q->batch, 4);
    cr_assert_eq(q->threads, 2);
    cr_assert_eq(q->repetitions, 30);
    cr_assert_eq(q->warmup, 3);
    cr_assert_eq(q->nunits, 2);
    cr_assert_eq(q->units[1], 8);
    cr_assert_eq(q->npeak, 2);
    cr_assert_eq(q->peak_bits[0], 4);
    cr_assert_float_eq(q->peak_ops[1], 1.3e14, 1.0);
    cr_assert_float_eq(q->mem_bw, 3.2e11, 1.0);
    cr_assert_eq(q->n, 2);
    cr_assert_float_eq(q->e[0].latency_ms, 0.21094404, 1e-13);
    cr_assert_eq(q->e[0].spread, BP_SPREAD_IQR);
    cr_assert_float_eq(q->e[0].lo_ms, 0.2, 1e-13);
    cr_assert_float_eq(q->e[0].hi_ms, 0.22, 1e-13);
    cr_assert_str_eq(q->e[0].note, "a \"quoted\" note");
    cr_assert_eq(q->e[1].sig.op, BP_OP_GEMM);
    cr_assert_eq(q->e[1].b_w, 8);
    cr_assert_eq(q->e[1].b_a, 4);
    cr_assert_eq(q->e[1].source, BP_LAT_MODELED);
    cr_assert_null(q->e[1].note);
    e.note = NULL;
    bp_profile_free(p);
    bp_profile_free(q);
}

/* ---- lookup ---------------------------------------------------------------- */

Test(lookup, exact_entry_wins)
{
    bp_profile *p = bp_profile_new("x", 1);
    bp_profile_entry e = conv_entry(8, 16, 3, 10, 1, 8, 8, 115200, 0.5);
    bp_profile_add(p, &e);
    e = conv_entry(8, 16, 3, 10, 1, 4, 8, 115200, 0.375);
    bp_profile_add(p, &e);
    bp_layer L = conv_layer("conv", 8, 16, 3, 1, 10, 115200);
    double ms;
    int how = -1;
    cr_assert_eq(bp_profile_latency(p, &L, 8, 8, &ms, &how), BP_OK);
    cr_assert_eq(ms, 0.5);
    cr_assert_eq(how, BP_LAT_EXACT);
    cr_assert_eq(bp_profile_latency(p, &L, 4, 8, &ms, &how), BP_OK);
    cr_assert_eq(ms, 0.375);
    cr_assert_eq(how, BP_LAT_EXACT);
    cr_assert_str_eq(bp_lat_how_name(how), "exact");
    /* the batch is part of the key: the same layer at another profile batch misses */
    p->batch = 2;
    cr_assert_neq(bp_profile_latency(p, &L, 4, 8, &ms, &how), BP_OK,
                  "one measured entry cannot be interpolated and there is no roofline");
    cr_assert(strstr(bp_last_error(), "'conv'") && strstr(bp_last_error(), "W4A8"),
              "%s", bp_last_error());
    bp_profile_free(p);
}

/* Three measured convs at W8A8 with (MACs, ms) = (1e6, 1), (2e6, 2), (4e6, 8).
 * In units of ln 2: u = 0, 1, 2 and v = 0, 1, 3; least squares gives slope
 * 3/2 and intercept 4/3 - 3/2 = -1/6. A layer of 8e6 MACs (u = 3) is then
 * 2^(-1/6 + 9/2) = 2^(13/3) ms. */
Test(lookup, loglog_interpolation_by_hand)
{
    bp_profile *p = bp_profile_new("x", 1);
    bp_profile_entry e = conv_entry(10, 10, 1, 100, 1, 8, 8, 1000000, 1.0);
    cr_assert_eq(bp_profile_add(p, &e), BP_OK);
    e = conv_entry(20, 10, 1, 100, 1, 8, 8, 2000000, 2.0);
    cr_assert_eq(bp_profile_add(p, &e), BP_OK);
    e = conv_entry(40, 10, 1, 100, 1, 8, 8, 4000000, 8.0);
    cr_assert_eq(bp_profile_add(p, &e), BP_OK);
    /* A Gemm measured at W8A8 must not enter the fit of a Conv layer... */
    bp_profile_entry g = {0};
    g.sig.op = BP_OP_GEMM;
    g.sig.cin = 1000;
    g.sig.cout = 1000;
    g.sig.kh = g.sig.kw = g.sig.stride = g.sig.group = 1;
    g.sig.in_h = g.sig.in_w = 1;
    g.sig.batch = 1;
    g.b_w = g.b_a = 8;
    g.macs = 1000000;
    g.latency_ms = 100.0;
    g.source = BP_LAT_MEASURED;
    cr_assert_eq(bp_profile_add(p, &g), BP_OK);
    /* ...and modeled entries never enter a fit. */
    e = conv_entry(80, 10, 1, 100, 1, 8, 8, 8000000, 1000.0);
    e.source = BP_LAT_MODELED;
    cr_assert_eq(bp_profile_add(p, &e), BP_OK);

    bp_layer L = conv_layer("big", 16, 50, 1, 1, 100, 8000000);
    double ms;
    int how;
    cr_assert_eq(bp_profile_latency(p, &L, 8, 8, &ms, &how), BP_OK, "%s", bp_last_error());
    cr_assert_eq(how, BP_LAT_INTERP);
    cr_assert_float_eq(ms, 20.158736798317967, 1e-9, "got %.15g", ms);

    /* A Gemm layer: one Gemm entry is too few, so the fit is over every op:
     * u = 0, 0, 1, 2 with v = 0, ln(100)/ln 2, 1, 3. Worked in closed form:
     * mean u = 3/4, mean v = (4 + a)/4 with a = log2(100);
     * Suu = 11/16·4 ... computed below from the normal equations by hand. */
    bp_layer G;
    memset(&G, 0, sizeof G);
    snprintf(G.name, sizeof G.name, "fc");
    G.op = BP_OP_GEMM;
    G.cin = 2000;
    G.cout = 1000;
    G.kh = G.kw = G.stride = G.group = 1;
    G.in_h = G.in_w = G.out_h = G.out_w = 1;
    G.macs = 2000000;
    cr_assert_eq(bp_profile_latency(p, &G, 8, 8, &ms, &how), BP_OK, "%s", bp_last_error());
    cr_assert_eq(how, BP_LAT_INTERP);
    /* points (u, v): (0,0) (0,a) (1,1) (2,3); ubar = 3/4, vbar = (4+a)/4.
     * Suu = sum u^2 - 4 ubar^2 = 5 - 9/4 = 11/4.
     * Suv = sum u v - 4 ubar vbar = 7 - 3(4+a)/4 = (16 - 3a)/4.
     * slope = (16 - 3a)/11; at u = 1: v = vbar + slope (1 - 3/4). */
    double a = log2(100.0);
    double slope = (16 - 3 * a) / 11;
    double v = (4 + a) / 4 + slope * 0.25;
    cr_assert_float_eq(ms, pow(2.0, v), 1e-9, "got %.15g want %.15g", ms, pow(2.0, v));
    bp_profile_free(p);
}

/* The T4 figures: 130 TOPS int8, 260 TOPS int4, 320 GB/s. */
static void set_t4_roofline(bp_profile *p)
{
    p->npeak = 2;
    p->peak_bits[0] = 4;
    p->peak_ops[0] = 2.6e14;
    p->peak_bits[1] = 8;
    p->peak_ops[1] = 1.3e14;
    p->mem_bw = 3.2e11;
}

Test(lookup, roofline_by_hand)
{
    bp_profile *p = bp_profile_new("t4", 8);
    set_t4_roofline(p);
    /* ResNet-18 layer1 conv at batch 8: 115605504 MACs per image.
     * W8A8: ops = 2 * 115605504 * 8 = 1849688064 -> / 1.3e14 = 1.42283697e-5 s;
     * bytes = 36864 weights + 8 * (64*56*56 in + 64*56*56 out) = 3248128 ->
     * / 3.2e11 = 1.01504e-5 s; compute bound: 0.0142283697 ms. */
    bp_layer L = conv_layer("layer1.0.conv1", 64, 64, 3, 1, 56, 115605504);
    double ms;
    int how;
    cr_assert_eq(bp_profile_latency(p, &L, 8, 8, &ms, &how), BP_OK, "%s", bp_last_error());
    cr_assert_eq(how, BP_LAT_ROOFLINE);
    cr_assert_float_eq(ms, 0.0142283697230769, 1e-12, "got %.15g", ms);
    /* W6A6 has no peak of its own: it runs at the 8-bit peak; its bytes are
     * 36864*6/8 + 8*401408*6/8 = 27648 + 2408448, less time than compute. */
    cr_assert_eq(bp_profile_latency(p, &L, 6, 6, &ms, &how), BP_OK);
    cr_assert_float_eq(ms, 0.0142283697230769, 1e-12);
    /* A batch-1 4096x4096 FC at W4A4 is memory bound:
     * bytes = 16777216 * 4/8 + (4096 + 4096) * 4/8 = 8392704 -> 2.6227200e-5 s,
     * compute 2 * 16777216 / 2.6e14 = 1.29e-7 s. */
    p->batch = 1;
    bp_layer G;
    memset(&G, 0, sizeof G);
    snprintf(G.name, sizeof G.name, "fc");
    G.op = BP_OP_GEMM;
    G.cin = G.cout = 4096;
    G.kh = G.kw = G.stride = G.group = 1;
    G.in_h = G.in_w = G.out_h = G.out_w = 1;
    G.params = 4096 * 4096;
    G.macs = 4096 * 4096;
    cr_assert_eq(bp_profile_roofline(p, &G, 4, 4, &ms), BP_OK);
    cr_assert_float_eq(ms, 0.0262272, 1e-12, "got %.15g", ms);
    double ms8;
    cr_assert_eq(bp_profile_roofline(p, &G, 8, 8, &ms8), BP_OK);
    cr_assert_float_eq(ms8, 2 * 0.0262272, 1e-12);
    /* wider than every peak: no roofline, and nothing else to fall back on */
    cr_assert_eq(bp_profile_latency(p, &G, 16, 16, &ms, &how), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "'fc'") && strstr(bp_last_error(), "W16A16"),
              "%s", bp_last_error());
    bp_profile_free(p);
}

Test(lookup, promotion_to_hardware_units)
{
    bp_profile *p = bp_profile_new("t4-like", 8);
    p->nunits = 2;
    p->units[0] = 4;
    p->units[1] = 8;
    bp_profile_entry e = conv_entry(64, 64, 3, 56, 8, 4, 4, 115605504, 0.2);
    bp_profile_add(p, &e);
    e = conv_entry(64, 64, 3, 56, 8, 8, 8, 115605504, 0.35);
    bp_profile_add(p, &e);
    bp_layer L = conv_layer("l", 64, 64, 3, 1, 56, 115605504);
    static const struct {
        int bw, ba;
        double want;
        int how;
    } cases[] = {
        {4, 4, 0.2, BP_LAT_EXACT},
        {8, 8, 0.35, BP_LAT_EXACT},
        {2, 2, 0.2, BP_LAT_EXACT | BP_LAT_PROMOTED},
        {3, 4, 0.2, BP_LAT_EXACT | BP_LAT_PROMOTED},
        {6, 6, 0.35, BP_LAT_EXACT | BP_LAT_PROMOTED},
        {4, 8, 0.35, BP_LAT_EXACT | BP_LAT_PROMOTED},
        {5, 2, 0.35, BP_LAT_EXACT | BP_LAT_PROMOTED},
    };
    int wb[7], ab[7];
    for (int i = 0; i < 7; i++) {
        double ms;
        int how;
        cr_assert_eq(bp_profile_latency(p, &L, cases[i].bw, cases[i].ba, &ms, &how), BP_OK);
        cr_assert_eq(ms, cases[i].want, "W%dA%d", cases[i].bw, cases[i].ba);
        cr_assert_eq(how, cases[i].how, "W%dA%d: how %d", cases[i].bw, cases[i].ba, how);
        wb[i] = cases[i].bw;
        ab[i] = cases[i].ba;
    }
    cr_assert_str_eq(bp_lat_how_name(BP_LAT_INTERP | BP_LAT_PROMOTED), "interpolated+promoted");
    /* the table form fills lat[i*ncand + c] */
    bp_layer two[2] = {L, L};
    double lat[14];
    int how[14];
    cr_assert_eq(bp_profile_latency_table(p, two, 2, wb, ab, 7, lat, how), BP_OK);
    for (int i = 0; i < 7; i++) {
        cr_assert_eq(lat[7 + i], cases[i].want);
        cr_assert_eq(how[7 + i], cases[i].how);
    }
    double ms;
    cr_assert_eq(bp_profile_latency(p, &L, 16, 16, &ms, NULL), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "widest unit") != NULL, "%s", bp_last_error());
    bp_profile_free(p);
}

/* ---- the HAWQ-V3 T4 table -------------------------------------------------- */

/* Values read off profiles/src/t4_resnet18_latency.csv by hand. */
static void check_t4_numbers(const bp_profile *p)
{
    cr_assert_eq(p->batch, 8);
    cr_assert_eq(p->n, 20, "10 distinct signatures (layer1: 1, layers 2-4: 3 each) x 2 bit-widths, got %d", p->n);
    bp_layer l20 = conv_layer("layer2.0.conv1", 64, 128, 3, 2, 56, 57802752);
    bp_lat_sig s = bp_lat_sig_of_layer(&l20, 8);
    int i = bp_profile_find(p, &s, 4, 4);
    cr_assert(i >= 0);
    cr_assert_float_eq(p->e[i].latency_ms, 0.13642465, 1e-12);
    cr_assert_eq(p->e[i].source, BP_LAT_MEASURED);
    cr_assert_eq(p->e[i].macs, 57802752);
    i = bp_profile_find(p, &s, 8, 8);
    cr_assert(i >= 0);
    cr_assert_float_eq(p->e[i].latency_ms, 0.19184896, 1e-12);
    /* layer1's four identical convs, W8A8: 0.36189111 0.36211718 0.31141909
     * 0.30454471 -> median (0.31141909 + 0.36189111) / 2 = 0.3366551. */
    bp_layer l1 = conv_layer("layer1.0.conv1", 64, 64, 3, 1, 56, 115605504);
    s = bp_lat_sig_of_layer(&l1, 8);
    i = bp_profile_find(p, &s, 8, 8);
    cr_assert(i >= 0);
    cr_assert_float_eq(p->e[i].latency_ms, 0.3366551, 1e-12);
    cr_assert_eq(p->e[i].spread, BP_SPREAD_MINMAX);
    cr_assert_float_eq(p->e[i].lo_ms, 0.30454471, 1e-12);
    cr_assert_float_eq(p->e[i].hi_ms, 0.36211718, 1e-12);
    cr_assert(strstr(p->e[i].note, "layer1.1.conv2=0.30454471") != NULL, "%s", p->e[i].note);
    /* W4A4: 0.21094404 0.21092674 0.21104113 0.21086851 -> (0.21092674 + 0.21094404)/2 */
    i = bp_profile_find(p, &s, 4, 4);
    cr_assert_float_eq(p->e[i].latency_ms, 0.21093539, 1e-12);
    /* layer4.0.downsample: 1x1 stride 2, 256 -> 512 at 14x14 */
    bp_layer ds = conv_layer("layer4.0.downsample", 256, 512, 1, 2, 14, 6422528);
    s = bp_lat_sig_of_layer(&ds, 8);
    i = bp_profile_find(p, &s, 8, 8);
    cr_assert(i >= 0);
    cr_assert_float_eq(p->e[i].latency_ms, 0.02896843, 1e-12);
}

Test(t4, import_matches_csv)
{
    bp_profile *p = NULL;
    cr_assert_eq(bp_profile_import_hawq_csv("profiles/src/t4_resnet18_latency.csv", &p), BP_OK,
                 "%s", bp_last_error());
    check_t4_numbers(p);
    bp_profile_free(p);
}

Test(t4, import_rejects_bad_rows)
{
    char path[] = "/tmp/bp_csv_XXXXXX";
    int fd = mkstemp(path);
    cr_assert(fd >= 0);
    const char *csv = "layer,op,cin,cout,kernel,stride,in_hw,out_hw,params,macs_per_image,batch,"
                      "latency_ms_w4a4\n"
                      "a,Conv,64,64,3,1,56,56,36864,115605504,8,0.2\n"
                      "b,Conv,64,64,3,1,56,56,36864,115605504,8,-0.2\n";
    cr_assert_eq(write(fd, csv, strlen(csv)), (ssize_t)strlen(csv));
    close(fd);
    bp_profile *p = NULL;
    cr_assert_eq(bp_profile_import_hawq_csv(path, &p), BP_ERR_FORMAT);
    cr_assert(strstr(bp_last_error(), ":3:") && strstr(bp_last_error(), "latency_ms_w4a4"),
              "%s", bp_last_error());
    unlink(path);
}

Test(t4, shipped_profiles)
{
    bp_profile *p = NULL;
    cr_assert_eq(bp_profile_load("profiles/t4-resnet18.json", &p), BP_OK, "%s", bp_last_error());
    check_t4_numbers(p);
    cr_assert(strstr(p->citation, "HAWQ-V3") && strstr(p->citation, "ILP.ipynb"));
    /* the first conv is not in the table: interpolated from the measured convs */
    bp_layer c1 = conv_layer("conv1", 3, 64, 7, 2, 224, 118013952);
    double ms;
    int how;
    cr_assert_eq(bp_profile_latency(p, &c1, 8, 8, &ms, &how), BP_OK, "%s", bp_last_error());
    cr_assert_eq(how, BP_LAT_INTERP);
    cr_assert(ms > 0.02 && ms < 1.0, "%g", ms);
    /* W6A6 runs on the int8 units */
    bp_layer l1 = conv_layer("layer1.0.conv1", 64, 64, 3, 1, 56, 115605504);
    cr_assert_eq(bp_profile_latency(p, &l1, 6, 6, &ms, &how), BP_OK);
    cr_assert_eq(how, BP_LAT_EXACT | BP_LAT_PROMOTED);
    cr_assert_float_eq(ms, 0.3366551, 1e-12);
    bp_profile_free(p);

    cr_assert_eq(bp_profile_load("profiles/t4-roofline.json", &p), BP_OK, "%s", bp_last_error());
    cr_assert_eq(p->n, 0);
    cr_assert_eq(p->npeak, 4);
    cr_assert_float_eq(p->peak_ops[0], 2.6e14, 1.0);  /* INT4 */
    cr_assert_float_eq(p->peak_ops[1], 1.3e14, 1.0);  /* INT8 */
    cr_assert_float_eq(p->peak_ops[2], 6.5e13, 1.0);  /* FP16 */
    cr_assert_float_eq(p->peak_ops[3], 8.1e12, 1.0);  /* FP32 */
    cr_assert_float_eq(p->mem_bw, 3.2e11, 1.0);
    cr_assert_eq(bp_profile_latency(p, &l1, 8, 8, &ms, &how), BP_OK);
    cr_assert_eq(how, BP_LAT_ROOFLINE);
    cr_assert_float_eq(ms, 0.0142283697230769, 1e-12);
    bp_profile_free(p);
}

/* ---- host measurement ------------------------------------------------------ */

Test(measure, one_layer_statistics)
{
    bp_measure_opts o;
    bp_measure_opts_default(&o);
    o.reps = 7;
    o.warmup = 1;
    o.min_rep_ms = 0.05;
    bp_layer L = conv_layer("c", 8, 16, 3, 1, 10, 8 * 16 * 9 * 100);
    bp_lat_timing t;
    cr_assert_eq(bp_latency_time_layer(&L, NULL, 4, 8, &o, &t), BP_OK, "%s", bp_last_error());
    cr_assert(t.min_ms > 0);
    cr_assert(t.min_ms <= t.q1_ms && t.q1_ms <= t.median_ms && t.median_ms <= t.q3_ms &&
              t.q3_ms <= t.max_ms, "%g %g %g %g %g", t.min_ms, t.q1_ms, t.median_ms, t.q3_ms,
              t.max_ms);
    cr_assert_geq(t.inner, 1);
    /* batch split over two threads runs too */
    o.batch = 3;
    o.threads = 2;
    cr_assert_eq(bp_latency_time_layer(&L, NULL, 8, 8, &o, &t), BP_OK, "%s", bp_last_error());
    cr_assert(t.median_ms > 0);
    /* the thread CPU clock counts one thread only */
    o.thread_cpu = 1;
    cr_assert_eq(bp_latency_time_layer(&L, NULL, 8, 8, &o, &t), BP_ERR_ARG);
    cr_assert(strstr(bp_last_error(), "threads = 1") != NULL, "%s", bp_last_error());
    o.threads = 1;
    cr_assert_eq(bp_latency_time_layer(&L, NULL, 8, 8, &o, &t), BP_OK, "%s", bp_last_error());
    cr_assert(t.min_ms > 0 && t.min_ms <= t.median_ms);
    /* what the host kernels cannot run is said, not guessed */
    cr_assert_eq(bp_latency_time_layer(&L, NULL, 16, 16, &o, &t), BP_ERR_UNSUPPORTED);
    cr_assert(strstr(bp_last_error(), "'c'") && strstr(bp_last_error(), "W16A16"));
    cr_assert_eq(bp_latency_time_layer(&L, NULL, 4, 12, &o, &t), BP_ERR_UNSUPPORTED);
}

/* The timings mean something: a conv with 64x the MACs of another takes
 * clearly longer (asked for only 4x, so a busy machine cannot make it flaky;
 * the thread CPU clock ignores time spent waiting for a core). */
Test(measure, more_work_takes_longer)
{
    bp_measure_opts o;
    bp_measure_opts_default(&o);
    o.reps = 7;
    o.warmup = 1;
    o.min_rep_ms = 0.2;
    o.thread_cpu = 1;
    bp_layer small = conv_layer("small", 16, 16, 3, 1, 16, 16 * 16 * 9 * 256);
    bp_layer big = conv_layer("big", 64, 64, 3, 1, 32, 64LL * 64 * 9 * 1024);
    bp_lat_timing ts, tb;
    cr_assert_eq(bp_latency_time_layer(&small, NULL, 8, 8, &o, &ts), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_latency_time_layer(&big, NULL, 8, 8, &o, &tb), BP_OK, "%s", bp_last_error());
    cr_assert(tb.median_ms > 4 * ts.median_ms, "big %g ms, small %g ms", tb.median_ms,
              ts.median_ms);
    cr_assert(ts.inner >= tb.inner, "the small layer needs at least as many runs per repetition");
}

typedef struct {
    int calls, reused;
    int order_ok;
    int last_layer, last_cand;
} progress_log;

static void on_progress(const bp_measure_event *ev, void *ctx)
{
    progress_log *lg = ctx;
    int idx = ev->layer * ev->ncand + ev->cand;
    if (idx != lg->last_layer * ev->ncand + lg->last_cand + 1)
        lg->order_ok = 0;
    lg->last_layer = ev->layer;
    lg->last_cand = ev->cand;
    lg->calls++;
    lg->reused += ev->reused;
}

/* conv1 3->8, conv2 8->8, conv3 8->8 (the signature of conv2), fc 512->10. */
static bp_graph *small_graph(void)
{
    bp_graph *g = bp_graph_new();
    int64_t xd[4] = {-1, 3, 8, 8}, w1[4] = {8, 3, 3, 3}, w2[4] = {8, 8, 3, 3};
    int x = bp_graph_add_input(g, "x", 4, xd);
    bp_attrs a = bp_attrs_default();
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    int in[2] = {x, bp_graph_add_param(g, "conv1.weight", 4, w1, NULL)};
    int y = bp_graph_add_node(g, BP_OP_CONV, "c1", in, 2, "y1", &a);
    int rin[1] = {y};
    bp_attrs r = bp_attrs_default();
    y = bp_graph_add_node(g, BP_OP_RELU, "r1", rin, 1, "z1", &r);
    in[0] = y;
    in[1] = bp_graph_add_param(g, "conv2.weight", 4, w2, NULL);
    y = bp_graph_add_node(g, BP_OP_CONV, "c2", in, 2, "y2", &a);
    in[0] = y;
    in[1] = bp_graph_add_param(g, "conv3.weight", 4, w2, NULL);
    y = bp_graph_add_node(g, BP_OP_CONV, "c3", in, 2, "y3", &a);
    bp_attrs f = bp_attrs_default();
    rin[0] = y;
    int fl = bp_graph_add_node(g, BP_OP_FLATTEN, "f", rin, 1, "flat", &f);
    int64_t gw[2] = {10, 512};
    bp_attrs ga = bp_attrs_default();
    ga.trans_b = 1;
    int gin[2] = {fl, bp_graph_add_param(g, "fc.weight", 2, gw, NULL)};
    cr_assert_geq(bp_graph_add_node(g, BP_OP_GEMM, "fc", gin, 2, "logits", &ga), 0, "%s",
                  bp_last_error());
    return g;
}

Test(measure, graph_profile_bookkeeping)
{
    bp_graph *g = small_graph();
    int wb[2] = {4, 8}, ab[2] = {4, 8};
    bp_measure_opts o;
    bp_measure_opts_default(&o);
    o.ncand = 2;
    o.wbits = wb;
    o.abits = ab;
    o.batch = 2;
    o.threads = 2;
    o.reps = 5;
    o.warmup = 1;
    o.min_rep_ms = 0.02;
    progress_log lg = {0, 0, 1, 0, -1};
    o.progress = on_progress;
    o.ctx = &lg;
    bp_profile *p = NULL;
    cr_assert_eq(bp_latency_measure_graph(g, &o, &p), BP_OK, "%s", bp_last_error());
    cr_assert_eq(lg.calls, 4 * 2, "one progress call per layer and candidate");
    cr_assert(lg.order_ok, "progress in layer-major order");
    cr_assert_eq(lg.reused, 2, "conv3 has conv2's signature: not timed again");
    cr_assert_eq(p->n, 3 * 2);
    cr_assert_eq(p->batch, 2);
    cr_assert_eq(p->threads, 2);
    cr_assert_eq(p->repetitions, 5);
    cr_assert_eq(p->warmup, 1);
    cr_assert_not_null(p->date);
    cr_assert_str_eq(p->clock, "wall");
    cr_assert(strncmp(p->device, "host: ", 6) == 0, "%s", p->device);
    for (int i = 0; i < p->n; i++) {
        cr_assert_eq(p->e[i].source, BP_LAT_MEASURED);
        cr_assert_eq(p->e[i].spread, BP_SPREAD_IQR);
        cr_assert(p->e[i].lo_ms <= p->e[i].latency_ms && p->e[i].latency_ms <= p->e[i].hi_ms);
        cr_assert(p->e[i].latency_ms > 0);
    }
    /* every layer of the model now has an exact entry at every candidate */
    bp_layer *ls;
    int n;
    cr_assert_eq(bp_graph_layers(g, &ls, &n), BP_OK);
    cr_assert_eq(n, 4);
    double lat[8];
    int how[8];
    cr_assert_eq(bp_profile_latency_table(p, ls, n, wb, ab, 2, lat, how), BP_OK, "%s",
                 bp_last_error());
    for (int i = 0; i < 8; i++)
        cr_assert_eq(how[i], BP_LAT_EXACT, "cell %d", i);
    cr_assert_eq(lat[2 * 1 + 0], lat[2 * 2 + 0], "conv2 and conv3 share an entry");
    /* the fc entry is a Gemm keyed with unit spatial fields, cin 512 */
    bp_lat_sig s = bp_lat_sig_of_layer(&ls[3], 2);
    int e = bp_profile_find(p, &s, 8, 8);
    cr_assert(e >= 0);
    cr_assert_eq(p->e[e].sig.op, BP_OP_GEMM);
    cr_assert_eq(p->e[e].sig.cin, 512);
    cr_assert_eq(p->e[e].macs, 5120);
    s = bp_lat_sig_of_layer(&ls[1], 2);
    e = bp_profile_find(p, &s, 4, 4);
    cr_assert(strstr(p->e[e].note, "conv2, conv3") != NULL, "%s", p->e[e].note);
    free(ls);
    bp_profile_free(p);
    bp_graph_free(g);
}

/* ---- the command line ------------------------------------------------------ */

/* `bitplan latency import-csv` reproduces the shipped T4 entries, and `show`
 * prints them. Runs bin/bitplan (built by `make tests` before the suites). */
Test(cli, import_csv_reproduces_shipped_profile)
{
    char dir[] = "/tmp/bp_latcli_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[1024], path[256];
    snprintf(path, sizeof path, "%s/t4.json", dir);
    snprintf(cmd, sizeof cmd, "bin/bitplan latency import-csv profiles/src/t4_resnet18_latency.csv "
             "-o %s --units 4,8 --device T4 --quiet", path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    bp_profile *a = NULL, *b = NULL;
    cr_assert_eq(bp_profile_load(path, &a), BP_OK, "%s", bp_last_error());
    cr_assert_eq(bp_profile_load("profiles/t4-resnet18.json", &b), BP_OK, "%s", bp_last_error());
    cr_assert_eq(a->n, b->n);
    cr_assert_eq(a->nunits, 2);
    for (int i = 0; i < a->n; i++) {
        cr_assert(bp_lat_sig_equal(&a->e[i].sig, &b->e[i].sig), "entry %d", i);
        cr_assert_eq(a->e[i].b_w, b->e[i].b_w);
        cr_assert_eq(a->e[i].latency_ms, b->e[i].latency_ms, "entry %d", i);
        cr_assert_eq(a->e[i].lo_ms, b->e[i].lo_ms);
        cr_assert_eq(a->e[i].hi_ms, b->e[i].hi_ms);
    }
    bp_profile_free(a);
    bp_profile_free(b);

    snprintf(cmd, sizeof cmd, "bin/bitplan latency show %s", path);
    FILE *fp = popen(cmd, "r");
    cr_assert_not_null(fp);
    char buf[65536];
    size_t got = fread(buf, 1, sizeof buf - 1, fp);
    buf[got] = 0;
    cr_assert_eq(pclose(fp), 0);
    cr_assert(strstr(buf, "0.336655") && strstr(buf, "min/max") && strstr(buf, "W8A8"), "%s", buf);

    /* a bad profile: exit status 1 and a message naming the file */
    snprintf(path, sizeof path, "%s/bad.json", dir);
    FILE *bad = fopen(path, "w");
    fputs(HEAD E_CONV(8, "-1") TAIL, bad);
    fclose(bad);
    snprintf(cmd, sizeof cmd, "bin/bitplan latency show %s 2>%s/err.txt", path, dir);
    int rc = system(cmd);
    cr_assert(WIFEXITED(rc) && WEXITSTATUS(rc) == 1, "rc %d", rc);
    snprintf(cmd, sizeof cmd, "%s/err.txt", dir);
    FILE *ef = fopen(cmd, "r");
    got = fread(buf, 1, sizeof buf - 1, ef);
    buf[got] = 0;
    fclose(ef);
    cr_assert(strstr(buf, "bad.json: entry 0: field 'latency_ms'"), "%s", buf);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}

/* The log-log fit on the shipped T4 profile against numpy (tools/t4_fit_ref.py,
 * which fits straight from the CSV): the first conv and the FC of ResNet-18,
 * which the table lacks, at W8A8, W4A4 and a promoted W6A6 / W2A4. */
Test(t4, interpolation_matches_numpy)
{
    bp_profile *p = NULL;
    cr_assert_eq(bp_profile_load("profiles/t4-resnet18.json", &p), BP_OK, "%s", bp_last_error());
    bp_layer c1 = conv_layer("conv1", 3, 64, 7, 2, 224, 118013952);
    bp_layer fc;
    memset(&fc, 0, sizeof fc);
    snprintf(fc.name, sizeof fc.name, "fc");
    fc.op = BP_OP_GEMM;
    fc.cin = 512;
    fc.cout = 1000;
    fc.kh = fc.kw = fc.stride = fc.group = 1;
    fc.in_h = fc.in_w = fc.out_h = fc.out_w = 1;
    fc.params = 512000;
    fc.macs = 512000;
    static const struct {
        int conv, bw, ba;
        double want;
        int how;
    } cases[] = {
        {1, 8, 8, 0.366127133844745, BP_LAT_INTERP},
        {1, 4, 4, 0.216120763447099, BP_LAT_INTERP},
        {0, 8, 8, 0.00341967371880619, BP_LAT_INTERP},
        {0, 4, 4, 0.00271453361366694, BP_LAT_INTERP},
        {1, 6, 6, 0.366127133844745, BP_LAT_INTERP | BP_LAT_PROMOTED},
        {0, 2, 4, 0.00271453361366694, BP_LAT_INTERP | BP_LAT_PROMOTED},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        double ms;
        int how;
        cr_assert_eq(bp_profile_latency(p, cases[i].conv ? &c1 : &fc, cases[i].bw, cases[i].ba,
                                        &ms, &how), BP_OK, "%s", bp_last_error());
        cr_assert_eq(how, cases[i].how, "case %zu: how %d", i, how);
        cr_assert_float_eq(ms, cases[i].want, 1e-9 * cases[i].want, "case %zu: %.15g", i, ms);
    }
    bp_profile_free(p);
}

/* `bitplan latency measure` on a small fixture model, then `show` with the
 * model: every cell exact on the host profile; on the T4 table (whose shapes
 * the fixture does not have) every cell interpolated and marked. */
Test(cli, measure_then_show_with_model)
{
    const char *model = "tests/fixtures/onnx/gap_bn_op13.onnx";
    char dir[] = "/tmp/bp_latcli_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char cmd[1024], path[256];
    snprintf(path, sizeof path, "%s/host.json", dir);
    snprintf(cmd, sizeof cmd, "bin/bitplan latency measure %s --bits 4,w4a8,8 --reps 3 --warmup 1 "
             "--min-rep-ms 0.01 --clock thread-cpu -o %s --quiet", model, path);
    cr_assert_eq(system(cmd), 0, "%s", cmd);
    bp_profile *p = NULL;
    cr_assert_eq(bp_profile_load(path, &p), BP_OK, "%s", bp_last_error());
    cr_assert_str_eq(p->clock, "thread-cpu");
    cr_assert_eq(p->repetitions, 3);
    cr_assert_eq(p->n % 3, 0);
    cr_assert(p->n >= 3);
    cr_assert_eq(p->e[1].b_w, 4);
    cr_assert_eq(p->e[1].b_a, 8);
    bp_profile_free(p);

    static const struct {
        const char *profile;
        const char *needle;
    } shows[] = {{"host", "0 of 12 cells are fallbacks"},
                 {"profiles/t4-resnet18.json", "12 of 12 cells are fallbacks"}};
    for (int k = 0; k < 2; k++) {
        char prof[256];
        snprintf(prof, sizeof prof, "%s", k == 0 ? path : shows[k].profile);
        snprintf(cmd, sizeof cmd, "bin/bitplan latency show %s %s --bits 4,w4a8,8", prof, model);
        FILE *fp = popen(cmd, "r");
        cr_assert_not_null(fp);
        char buf[65536];
        size_t got = fread(buf, 1, sizeof buf - 1, fp);
        buf[got] = 0;
        cr_assert_eq(pclose(fp), 0, "%s", cmd);
        cr_assert(strstr(buf, shows[k].needle) && strstr(buf, "W4A8") && strstr(buf, "fc2"),
                  "%s\n%s", cmd, buf);
        if (k == 1)
            cr_assert(strstr(buf, "~+") != NULL, "W4A8 on the T4 is promoted and interpolated:\n%s",
                      buf);
    }
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
}
