/* fuzz_sens — libFuzzer target for the sensitivity file reader
 * (bp_sens_parse: JSON decoding, every field check) and for what a successful
 * read feeds: the ILP problem build, the reachable cost ranges, a small solve,
 * and the JSON / CSV writers, whose output must read back. Nothing may crash,
 * leak, hang or read out of bounds, whatever the bytes.
 *
 * Built and run by `make fuzz` (FUZZ=fuzz_sens FUZZ_SECONDS=600 for one long
 * run); seeds in fuzz/corpus/fuzz_sens/. */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ilp/ilp.h"
#include "sensitivity/sens_file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void solve_small(const bp_sens *s)
{
    bp_ilp_options o;
    memset(&o, 0, sizeof o);
    bp_ilp_problem p;
    memset(&p, 0, sizeof p);
    if (bp_ilp_from_sens(s, &o, &p) != BP_OK)
        return;
    double lo = 0, hi = 0;
    if (bp_ilp_range(&p, BP_CON_SIZE, &lo, &hi) == BP_OK && s->nlayers <= 8) {
        bp_limits lim;
        memset(&lim, 0, sizeof lim);
        lim.active[BP_CON_SIZE] = 1;
        lim.limit[BP_CON_SIZE] = lo + 0.5 * (hi - lo);
        bp_ilp_result r;
        memset(&r, 0, sizeof r);
        if (bp_ilp_solve(&p, &lim, 1.0, &r) == BP_OK) {
            bp_plan plan;
            memset(&plan, 0, sizeof plan);
            if (bp_ilp_to_plan(&p, &r, &lim, s, &plan) == BP_OK)
                bp_plan_free(&plan);
        }
        bp_ilp_result_free(&r);
    }
    bp_ilp_range(&p, BP_CON_BOPS, &lo, &hi);
    bp_ilp_free(&p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_sens s;
    if (bp_sens_parse((const char *)data, size, "fuzz.json", &s) != BP_OK)
        return 0;
    solve_small(&s);
    char path[64];
    snprintf(path, sizeof path, "/tmp/fuzz_sens_%d.json", (int)getpid());
    if (bp_sens_write(path, &s) == BP_OK) {
        /* what the writer accepts, the reader must read back */
        bp_sens t;
        if (bp_sens_read(path, &t) != BP_OK)
            abort();
        if (t.nlayers != s.nlayers)
            abort();
        bp_sens_free(&t);
        unlink(path);
    }
    snprintf(path, sizeof path, "/tmp/fuzz_sens_%d.csv", (int)getpid());
    if (bp_sens_write_csv(path, &s) == BP_OK)
        unlink(path);
    bp_sens_free(&s);
    return 0;
}
