/* fuzz_profile — libFuzzer target for the latency profile parser and the
 * lookups that follow a successful parse (nothing may crash, leak or read out
 * of bounds, whatever the file holds).
 *
 * Built and run by `make fuzz` (FUZZ=fuzz_profile FUZZ_SECONDS=600 for one
 * long run); seeds in fuzz/corpus/fuzz_profile/ (the shipped profiles).
 * docs/RELIABILITY.md has the run counts.
 */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "latency/profile.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bp_profile *p = NULL;
    if (bp_profile_parse((const char *)data, size, "fuzz.json", &p) != BP_OK)
        return 0;
    /* a conv and a fully connected layer at a few candidates */
    bp_layer L[2];
    memset(L, 0, sizeof L);
    L[0].op = BP_OP_CONV;
    L[0].cin = L[0].cout = 64;
    L[0].kh = L[0].kw = 3;
    L[0].stride = L[0].group = 1;
    L[0].in_h = L[0].in_w = L[0].out_h = L[0].out_w = 56;
    L[0].params = 36864;
    L[0].macs = 115605504;
    L[1].op = BP_OP_GEMM;
    L[1].cin = 512;
    L[1].cout = 1000;
    L[1].kh = L[1].kw = L[1].stride = L[1].group = 1;
    L[1].in_h = L[1].in_w = L[1].out_h = L[1].out_w = 1;
    L[1].params = 512000;
    L[1].macs = 512000;
    int wb[4] = {2, 4, 8, 16}, ab[4] = {4, 4, 8, 16};
    double lat[8];
    int how[8];
    for (int c = 0; c < 4; c++)
        for (int i = 0; i < 2; i++)
            bp_profile_latency(p, &L[i], wb[c], ab[c], &lat[i * 4 + c], &how[i * 4 + c]);
    bp_profile_free(p);
    return 0;
}
