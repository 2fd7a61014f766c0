/* cache.c — OUTDIR/.cache.json: what lets a rerun skip stages whose inputs
 * did not change. {"format": "bitplan-cache", "version": 1,
 *  "sensitivity": {"key": K, "sha256": hash of sensitivity.json},
 *  "evals": {key: accuracy, ...}}
 * Keys are plain strings of everything the stage output depends on (model
 * sha256, data spec, settings, bits); see run.c. A missing or unreadable
 * cache is simply empty: the cache can only save time, never change results. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"
#include "pipeline/pipe_priv.h"

json_t *bp_cache_load(const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.cache.json", dir);
    json_t *c = json_load_file(path, 0, NULL);
    const char *fmt = c ? json_string_value(json_object_get(c, "format")) : NULL;
    if (!c || !fmt || strcmp(fmt, "bitplan-cache") ||
        json_integer_value(json_object_get(c, "version")) != 1) {
        json_decref(c);
        c = json_pack("{s:s, s:i, s:{}}", "format", "bitplan-cache", "version", 1, "evals");
    }
    if (!json_is_object(json_object_get(c, "evals")))
        json_object_set_new(c, "evals", json_object());
    return c;
}

bp_status bp_cache_save(json_t *c, const char *dir)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/.cache.json", dir);
    char *text = json_dumps(c, JSON_INDENT(1) | JSON_REAL_PRECISION(17));
    if (!text)
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    bp_status st = bp_write_file_atomic(path, text, strlen(text));
    free(text);
    return st;
}

int bp_cache_sens_valid(json_t *c, const char *key, const char *sens_path)
{
    json_t *s = json_object_get(c, "sensitivity");
    const char *k = json_string_value(json_object_get(s, "key"));
    const char *h = json_string_value(json_object_get(s, "sha256"));
    if (!k || !h || strcmp(k, key))
        return 0;
    unsigned char d[32];
    char hex[65];
    if (bp_sha256_file(sens_path, d)) {
        bp_clear_error();
        return 0;
    }
    bp_sha256_hex(d, hex);
    return !strcmp(hex, h);
}

bp_status bp_cache_set_sens(json_t *c, const char *key, const char *sens_path)
{
    unsigned char d[32];
    char hex[65];
    bp_status st = bp_sha256_file(sens_path, d);
    if (st)
        return st;
    bp_sha256_hex(d, hex);
    json_object_set_new(c, "sensitivity", json_pack("{s:s, s:s}", "key", key, "sha256", hex));
    return BP_OK;
}

int bp_cache_get_eval(json_t *c, const char *key, double *acc)
{
    json_t *v = json_object_get(json_object_get(c, "evals"), key);
    if (!json_is_number(v))
        return 0;
    *acc = json_number_value(v);
    return 1;
}

void bp_cache_set_eval(json_t *c, const char *key, double acc)
{
    json_object_set_new(json_object_get(c, "evals"), key, json_real(acc));
}
