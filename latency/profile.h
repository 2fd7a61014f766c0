/* profile.h — hardware latency profiles: read, write, validate, look up.
 *
 * A profile is a table of measured (or modeled) latencies for layer shapes at
 * (weight bits, activation bits), plus the conditions it was measured under and,
 * optionally, a roofline spec of the device. The file format (JSON,
 * "format": "bitplan-profile", "version": 1) is documented in
 * profiles/README.md.
 *
 * Lookup for a model layer at candidate (b_w, b_a) — the order is part of the
 * contract (the ILP records which layers used a fallback):
 *
 *   1. exact: an entry with the layer's signature (op, cin, cout, kh, kw,
 *      stride, group, in_h, in_w, with batch = the profile's batch) and bits.
 *   1b. promotion: failing that, when the profile lists "units" (the
 *      bit-widths the hardware has, e.g. [4, 8] for a T4's tensor cores), both
 *      operands run on the narrowest unit that holds max(b_w, b_a): W6A6 and
 *      W4A8 run as W8A8, W2A2 as W4A4; candidates wider than the widest unit
 *      are an error. The promoted bits are used from here on (exact entry,
 *      then steps 2 and 3) and BP_LAT_PROMOTED is set. Without "units",
 *      candidates are looked up as they are.
 *   2. interpolated: a straight line in log(MACs x batch) -> log(latency),
 *      least squares (gsl_fit_linear) over the "measured" entries with the same
 *      bits and the same op when there are >= 2 distinct MAC counts, else over
 *      measured entries of any op with those bits (>= 2 distinct MAC counts).
 *   3. roofline: max(2 x MACs x batch / peak_ops(bits), bytes / mem_bw), with
 *      peak_ops taken at the narrowest spec'd bit-width >= max(b_w, b_a) and
 *      bytes = weights at b_w bits + input and output activations at b_a bits.
 *   4. otherwise an error naming the layer and the candidate.
 */
#ifndef BP_LATENCY_PROFILE_H
#define BP_LATENCY_PROFILE_H

#include "core/bp_common.h"
#include "core/graph.h"

/* Layer signature: what a latency entry is keyed by (with the bits). Gemm and
 * MatMul layers have kh = kw = stride = group = in_h = in_w = 1. */
typedef struct {
    bp_op op;              /* BP_OP_CONV, BP_OP_GEMM or BP_OP_MATMUL */
    int64_t cin, cout;
    int kh, kw, stride, group;
    int64_t in_h, in_w;
    int batch;
} bp_lat_sig;

typedef enum { BP_LAT_MEASURED = 0, BP_LAT_MODELED = 1 } bp_lat_source;
typedef enum { BP_SPREAD_NONE = 0, BP_SPREAD_IQR, BP_SPREAD_MINMAX } bp_spread_kind;

typedef struct {
    bp_lat_sig sig;
    int b_w, b_a;
    int64_t macs;          /* multiply-accumulates per sample (for interpolation) */
    double latency_ms;     /* for the whole batch sig.batch */
    bp_spread_kind spread; /* how lo/hi were taken; NONE: lo = hi = latency_ms */
    double lo_ms, hi_ms;
    bp_lat_source source;
    char *note;            /* owned; may be NULL */
} bp_profile_entry;

#define BP_PROFILE_MAX_BITS 8  /* distinct bit-widths in "units" / the roofline */

typedef struct {
    char *device;          /* e.g. "NVIDIA T4" (owned) */
    char *citation;        /* where the numbers come from; may be NULL (owned) */
    /* conditions; -1 / NULL where unknown */
    int batch;             /* required: the batch every lookup uses */
    int threads, repetitions, warmup;
    char *date, *host;
    char *clock;           /* "wall" or "thread-cpu" (see measure.h); NULL: unknown */
    /* optional hardware bit-widths (promotion rule, see above) */
    int nunits;
    int units[BP_PROFILE_MAX_BITS];  /* ascending */
    /* optional roofline spec */
    int npeak;                       /* 0: no roofline */
    int peak_bits[BP_PROFILE_MAX_BITS];   /* ascending */
    double peak_ops[BP_PROFILE_MAX_BITS]; /* ops/s (1 MAC = 2 ops) */
    double mem_bw;                   /* bytes/s */
    int n, cap;
    bp_profile_entry *e;
} bp_profile;

/* ---- building ----------------------------------------------------------- */

/* An empty profile for `device` at batch `batch` (other conditions unknown).
 * NULL on allocation failure. */
bp_profile *bp_profile_new(const char *device, int batch);
void bp_profile_free(bp_profile *p); /* accepts NULL */

/* Appends a copy of *e (the note is copied). A second entry with the same
 * signature and bits is BP_ERR_ARG. */
bp_status bp_profile_add(bp_profile *p, const bp_profile_entry *e);

/* Index of the entry with this signature and bits, or -1. */
int bp_profile_find(const bp_profile *p, const bp_lat_sig *s, int b_w, int b_a);

/* Whether two signatures are the same key (field by field; never memcmp a
 * struct with padding). */
int bp_lat_sig_equal(const bp_lat_sig *a, const bp_lat_sig *b);

/* Signature of a model layer at the given batch. */
bp_lat_sig bp_lat_sig_of_layer(const bp_layer *L, int batch);

/* Checks everything the file format demands (finite non-negative latencies,
 * lo <= hi, positive shapes and bits, known ops, no duplicate keys, a sane
 * roofline). Messages name `name` (a file), the entry index and the field. */
bp_status bp_profile_validate(const bp_profile *p, const char *name);

/* ---- files --------------------------------------------------------------- */

/* Parses and validates a profile file / buffer (`name` is used in messages). */
bp_status bp_profile_load(const char *path, bp_profile **out);
bp_status bp_profile_parse(const char *text, size_t len, const char *name, bp_profile **out);
/* Validates, then writes atomically (entries in the order they were added). */
bp_status bp_profile_save(const bp_profile *p, const char *path);

/* ---- lookup --------------------------------------------------------------- */

/* How a latency was obtained. The low bits are the method; BP_LAT_PROMOTED is
 * or'ed in when the candidate was promoted to a hardware unit first. Anything
 * other than BP_LAT_EXACT (as a method) is a fallback. */
enum {
    BP_LAT_EXACT = 0,
    BP_LAT_INTERP = 1,
    BP_LAT_ROOFLINE = 2,
    BP_LAT_METHOD_MASK = 3,
    BP_LAT_PROMOTED = 4
};
/* "exact", "interpolated", "roofline", with "+promoted" when set. Never NULL. */
const char *bp_lat_how_name(int how);

/* Latency (ms, whole batch p->batch) of one layer at (b_w, b_a), following
 * the order at the top of this file. *how may be NULL. */
bp_status bp_profile_latency(const bp_profile *p, const bp_layer *L, int b_w, int b_a,
                             double *ms, int *how);

/* For n layers and ncand candidates (wbits[c], abits[c]) fills
 * lat[i*ncand + c] (ms) and how[i*ncand + c] (may be NULL). Fails on the first
 * layer/candidate with no exact entry and no fallback, naming both. */
bp_status bp_profile_latency_table(const bp_profile *p, const bp_layer *layers, int n,
                                   const int *wbits, const int *abits, int ncand,
                                   double *lat, int *how);

/* The roofline estimate alone (BP_ERR_ARG when the profile has no spec). */
bp_status bp_profile_roofline(const bp_profile *p, const bp_layer *L, int b_w, int b_a,
                              double *ms);

/* ---- import ---------------------------------------------------------------- */

/* Builds a profile from the HAWQ-V3 per-layer CSV (columns layer, op, cin,
 * cout, kernel, stride, in_hw, out_hw, params, macs_per_image, batch,
 * latency_ms_w4a4, latency_ms_w8a8). Rows with the same signature (e.g. the
 * identical convs of one ResNet stage) become one entry per bit-width whose
 * latency is the median of the rows, spread min/max, and whose note lists the
 * layers and their values. The caller sets device/citation/roofline after. */
bp_status bp_profile_import_hawq_csv(const char *path, bp_profile **out);

#endif
