/* pipe_priv.h — what the pipeline's files share. Not a public header. */
#ifndef BP_PIPE_PRIV_H
#define BP_PIPE_PRIV_H

#include <jansson.h>

#include "core/data.h"
#include "ilp/plan.h"
#include "pipeline/pipeline.h"

/* cache.c */
json_t *bp_cache_load(const char *dir);      /* never NULL unless out of memory */
bp_status bp_cache_save(json_t *c, const char *dir);
int bp_cache_sens_valid(json_t *c, const char *key, const char *sens_path);
bp_status bp_cache_set_sens(json_t *c, const char *key, const char *sens_path);
int bp_cache_get_eval(json_t *c, const char *key, double *acc);
void bp_cache_set_eval(json_t *c, const char *key, double acc);

/* evaluate.c: integer-only top-1 accuracy of g at the given bits, calibrated
 * on cal, measured on ev. */
bp_status bp_pipe_int_accuracy(const bp_graph *g, const int *wbits, const int *abits,
                               const bp_dataset *cal, const bp_dataset *ev, int batch, double *acc);

/* report.c: report.md. */
typedef struct {
    const bp_pipe_opts *o;
    const bp_pipe_result *r;
    const bp_sens *sens;
    const bp_plan *plan;
    const bp_layer *layers;
    int nlayers;
    const char *budget_text;    /* "size <= 40.1 KiB (size-frac 0.5)" */
    const char *sweep_kind;
    const char *plot_notes;
    int nplots;
} bp_report_in;
bp_status bp_pipe_write_report(const char *path, const bp_report_in *in);

#endif
