/* pipeline.h — the main job behind `bitplan plan`: sensitivity, the bit-width
 * search (the plan for the budgets and a Pareto sweep), integer-only
 * evaluation of the plan, the uniform W8A8/W4A4 baselines and frontier
 * points, then the output directory (docs/PIPELINE.md):
 *
 *   OUTDIR/sensitivity.json  sensitivity.csv   (sens_file.h)
 *   OUTDIR/plan.json                            (ilp/plan.h, with bit_config)
 *   OUTDIR/frontier.csv  frontier.json          (ilp.h sweep files)
 *   OUTDIR/evaluation.json                      accuracy of every evaluated point
 *   OUTDIR/report.md                            the table and notes
 *   OUTDIR/plots/ NAME.png NAME.svg (+ .gp, .dat) plots/plots.h
 *   OUTDIR/.cache.json                          keys of reusable stage outputs
 *
 * Atomicity: everything is built in OUTDIR/.staging-<pid>/ and moved into
 * OUTDIR only when every stage succeeded; bad inputs (missing model, bad data
 * spec, bad profile, infeasible budget) are found before anything is written,
 * and on any failure the staging directory (and OUTDIR, when this run made it
 * and it is empty) is removed.
 *
 * Reuse: the sensitivity stage is skipped when OUTDIR/sensitivity.json was
 * made from the same model bytes (sha256), data spec and sensitivity
 * settings, and is unchanged since (its sha256 is in the cache); integer
 * evaluations are cached per (model sha256, bits, data, calibration) key.
 */
#ifndef BP_PIPELINE_H
#define BP_PIPELINE_H

#include "ilp/ilp.h"
#include "sensitivity/sensitivity.h"

/* Messages about what the pipeline is doing (the library never prints). */
typedef void (*bp_pipe_note_fn)(void *ctx, const char *msg);

typedef struct {
    const char *model;        /* ONNX path (required) */
    const char *outdir;       /* required */
    const char *calib_data;   /* sensitivity and quantizer calibration (fashion-mnist:train) */
    const char *eval_data;    /* accuracy (fashion-mnist:test) */
    const char *profile;      /* latency profile path or NULL */
    bp_sens_opts sens;        /* sensitivity settings (see bp_pipe_opts_default) */
    int calib;                /* quantizer calibration samples (256) */
    int eval_limit;           /* test samples per accuracy (1000; 0 = all) */
    int eval_batch;           /* (100) */
    bp_budget_spec budget[BP_CON_COUNT]; /* the plan's budgets; none set: size-frac 0.5 */
    int sweep_kind;           /* bp_con_kind of the sweep (-1: the first budget's kind) */
    int sweep_points;         /* budgets in the sweep (24) */
    int eval_points;          /* frontier points to evaluate (10; at least 8 when the
                                 sweep has that many distinct plans) */
    bp_ilp_options ilp;       /* candidates, pins, ties (profile is set from `profile`) */
    int plots;                /* make plots (1) */
    bp_pipe_note_fn note;
    bp_progress_fn progress;  /* sensitivity progress (may be NULL) */
    void *ctx;
} bp_pipe_opts;

/* Defaults documented in docs/PIPELINE.md, chosen so that the embedded
 * default (resnet8 on Fashion-MNIST) finishes in under 5 minutes on 2 cores. */
bp_pipe_opts bp_pipe_opts_default(void);

/* One evaluated configuration (a row of report.md / evaluation.json). */
typedef struct {
    char name[48];            /* "float", "W8A8", "W4A4", "plan", "frontier 3" */
    char kind[16];            /* "float", "uniform", "plan", "frontier" */
    int index;                /* frontier point index, else -1 */
    double accuracy;          /* top-1 on the evaluation samples (integer-only for quantized) */
    double size_bytes, bops, latency_ms, objective; /* NaN when unknown */
    double budget;            /* frontier: the sweep budget; NaN otherwise */
    int cached;               /* accuracy came from the cache */
} bp_pipe_row;

typedef struct {
    int nrows;
    bp_pipe_row *rows;        /* float, W8A8, W4A4, plan, frontier points... */
    int sens_reused;          /* the sensitivity stage was skipped */
    int eval_samples;
    int npoints;              /* distinct frontier plans */
    double seconds[5];        /* wall time: sensitivity, search, evaluation, outputs (incl. plots), total */
    double cpu[5];            /* process CPU time (all threads) of the same stages */
    char model_sha256[65];
    int has_latency;
} bp_pipe_result;

/* Runs the whole job. On failure nothing new is left in outdir. */
bp_status bp_pipeline_run(const bp_pipe_opts *o, bp_pipe_result *r);
void bp_pipe_result_free(bp_pipe_result *r); /* accepts zeroed */

/* ---- helpers the CLI shares ----------------------------------------------- */

/* The embedded default model: $BP_MODELS_DIR, else <exe dir>/../models, else
 * ./models; first of resnet8.onnx, lenet5.onnx that exists. exe may be NULL
 * (then /proc/self/exe). Writes the path into buf. BP_ERR_IO naming the
 * places searched when none exists. */
bp_status bp_default_model(const char *exe, char *buf, size_t n);
/* The default latency profile for a model: profiles/host-<stem>.json in
 * $BP_PROFILES_DIR, <exe dir>/../profiles or ./profiles. Returns 0 and sets
 * buf when one exists, -1 otherwise. */
int bp_default_profile(const char *exe, const char *model, char *buf, size_t n);

/* evaluation.json: rows with the model and data they belong to. */
bp_status bp_pipe_write_eval(const char *path, const bp_pipe_result *r, const char *model,
                             const char *eval_data, int calib, const char *profile,
                             const char *sweep_kind);
bp_status bp_pipe_read_eval(const char *path, bp_pipe_result *r);

#endif
