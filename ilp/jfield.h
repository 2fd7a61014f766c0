/* jfield.h — typed, validated field access for bitplan's JSON readers
 * (sensitivity file, plan file), and the few helpers their writers share.
 *
 * Every getter names the file, the place (e.g. "layer 3 (conv1)") and the
 * field in its error, so that a user editing a file by hand learns exactly
 * what to fix. Missing optional fields leave *out untouched and return BP_OK.
 */
#ifndef BP_JFIELD_H
#define BP_JFIELD_H

#include <jansson.h>

#include "core/bp_common.h"

typedef struct {
    const char *file;   /* file name for messages */
    char where[256];    /* "top level", "layer 3 (conv1)", ... */
} bp_jctx;

enum { BP_JF_OPTIONAL = 0, BP_JF_REQUIRED = 1 };

/* A finite number (integer or real). *present (may be NULL) says whether the
 * field was there; with null_ok, JSON null counts as absent. */
bp_status bp_jf_num(const bp_jctx *c, const json_t *obj, const char *key, int required,
                    int null_ok, double *out, int *present);
/* A finite number >= lo; null counts as absent ("unknown"). */
bp_status bp_jf_num_min(const bp_jctx *c, const json_t *obj, const char *key, int required,
                        double lo, double *out);
/* An integer in [lo, hi] (a real with an integral value is accepted). */
bp_status bp_jf_int(const bp_jctx *c, const json_t *obj, const char *key, int required,
                    long long lo, long long hi, long long *out);
bp_status bp_jf_bool(const bp_jctx *c, const json_t *obj, const char *key, int required,
                     int *out);
/* A string shorter than cap bytes. */
bp_status bp_jf_str(const bp_jctx *c, const json_t *obj, const char *key, int required,
                    char *buf, size_t cap);
/* An array (*out borrowed, NULL when absent and optional). */
bp_status bp_jf_array(const bp_jctx *c, const json_t *obj, const char *key, int required,
                      json_t **out);
/* An object (*out borrowed, NULL when absent and optional). */
bp_status bp_jf_object(const bp_jctx *c, const json_t *obj, const char *key, int required,
                       json_t **out);
/* Number in an array element: finite, >= lo. `what` names the array. */
bp_status bp_jf_elem_num(const bp_jctx *c, const json_t *arr, size_t i, const char *what,
                         double lo, double *out);

/* Parses text as JSON with an object at the top and checks "format" and
 * "version" (version must be 1..max_version). *root is owned by the caller. */
bp_status bp_jf_load(const char *text, size_t len, const char *file, const char *format,
                     int max_version, json_t **root);

/* json_real that refuses non-finite values (returns NULL); NaN means "absent"
 * in bitplan's structs, so writers check before calling. */
json_t *bp_jf_real(double v);

/* bp_jf_real, but NaN ("unknown") becomes JSON null, for writers that keep
 * every key present so readers see a fixed shape. */
json_t *bp_jf_real_or_null(double v);

/* json_object_set_new(o, k, v) that takes a NULL v (a constructor that
 * failed or a refused value) as failure: returns -1, so a writer can chain
 * calls and check once. */
int bp_jf_set(json_t *o, const char *k, json_t *v);

/* Serializes root and writes it to path atomically (pretty-printed, 17
 * significant digits so doubles round-trip). */
bp_status bp_jf_write(const char *path, json_t *root);

#endif
