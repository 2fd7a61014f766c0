/* locate.c — where the embedded default model and host profiles live
 * (pipeline.h: bp_default_model, bp_default_profile). */
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pipeline/pipeline.h"

/* Candidate directories for `sub` ("models", "profiles"), most specific first:
 * $env, <exe dir>/../sub, ./sub. Returns how many were filled. */
static int dirs(const char *exe, const char *env, const char *sub, char d[3][4096])
{
    int n = 0;
    const char *e = getenv(env);
    if (e && e[0])
        snprintf(d[n++], 4096, "%s", e);
    char self[4096];
    if (!exe) {
        ssize_t len = readlink("/proc/self/exe", self, sizeof self - 1);
        if (len > 0) {
            self[len] = 0;
            exe = self;
        }
    }
    if (exe && strchr(exe, '/')) {
        char copy[4096];
        snprintf(copy, sizeof copy, "%s", exe);
        snprintf(d[n++], 4096, "%s/../%s", dirname(copy), sub);
    }
    snprintf(d[n++], 4096, "%s", sub);
    return n;
}

bp_status bp_default_model(const char *exe, char *buf, size_t n)
{
    static const char *names[] = {"resnet8.onnx", "lenet5.onnx"};
    char d[3][4096];
    int nd = dirs(exe, "BP_MODELS_DIR", "models", d);
    /* The first directory that has either model wins: $BP_MODELS_DIR overrides. */
    for (int i = 0; i < nd; i++)
        for (size_t k = 0; k < sizeof names / sizeof *names; k++) {
            if (snprintf(buf, n, "%s/%s", d[i], names[k]) >= (int)n)
                continue;
            if (access(buf, R_OK) == 0)
                return BP_OK;
        }
    buf[0] = 0;
    return bp_error(BP_ERR_IO, "no default model: none of resnet8.onnx, lenet5.onnx in %s%s%s%s%s "
                               "(train one with `bitplan train`, see models/README.md, or give MODEL.onnx)",
                    d[0], nd > 1 ? ", " : "", nd > 1 ? d[1] : "", nd > 2 ? ", " : "", nd > 2 ? d[2] : "");
}

int bp_default_profile(const char *exe, const char *model, char *buf, size_t n)
{
    char copy[4096], stem[1024];
    snprintf(copy, sizeof copy, "%s", model);
    snprintf(stem, sizeof stem, "%s", basename(copy));
    size_t len = strlen(stem);
    if (len > 5 && !strcmp(stem + len - 5, ".onnx"))
        stem[len - 5] = 0;
    char d[3][4096];
    int nd = dirs(exe, "BP_PROFILES_DIR", "profiles", d);
    for (int i = 0; i < nd; i++) {
        if (snprintf(buf, n, "%s/host-%s.json", d[i], stem) >= (int)n)
            continue;
        if (access(buf, R_OK) == 0)
            return 0;
    }
    buf[0] = 0;
    return -1;
}
