/* fuzz_plan — libFuzzer target for the plan file reader (bp_plan_parse:
 * JSON decoding, "layers" / "bit_config" reconciliation, every field check)
 * and for the consumers of a plan that need no model: lookups, the deep copy
 * and the writer, whose output must read back. Nothing may crash, leak, hang
 * or read out of bounds, whatever the bytes.
 *
 * Built and run by `make fuzz`; seeds in fuzz/corpus/fuzz_plan/. */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ilp/plan.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_plan p;
    if (bp_plan_parse((const char *)data, size, "fuzz.json", &p) != BP_OK)
        return 0;
    for (int i = 0; i < p.nlayers; i++)
        if (bp_plan_find(&p, p.layers[i].name) != i)
            abort(); /* names are unique after validation */
    bp_plan q;
    memset(&q, 0, sizeof q);
    if (bp_plan_copy(&q, &p) == BP_OK) {
        char path[64];
        snprintf(path, sizeof path, "/tmp/fuzz_plan_%d.json", (int)getpid());
        if (bp_plan_write(path, &q) == BP_OK) {
            bp_plan r;
            if (bp_plan_read(path, &r) != BP_OK)
                abort(); /* what the writer accepts, the reader must read back */
            if (r.nlayers != p.nlayers)
                abort();
            for (int i = 0; i < r.nlayers; i++)
                if (r.layers[i].wbits != p.layers[i].wbits || r.layers[i].abits != p.layers[i].abits)
                    abort();
            bp_plan_free(&r);
            unlink(path);
        }
        bp_plan_free(&q);
    }
    bp_plan_free(&p);
    return 0;
}
