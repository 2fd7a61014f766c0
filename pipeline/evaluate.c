/* evaluate.c — integer-only top-1 accuracy of a model at per-layer bits, on
 * data already in memory (the pipeline evaluates a dozen configurations on
 * the same samples, so it loads them once instead of per configuration). */
#include <stdlib.h>
#include <string.h>

#include "pipeline/pipe_priv.h"
#include "quant/qmodel.h"

bp_status bp_pipe_int_accuracy(const bp_graph *g, const int *wbits, const int *abits,
                               const bp_dataset *cal, const bp_dataset *ev, int batch, double *acc)
{
    bp_qmodel *m = NULL;
    bp_qrun *run = NULL;
    void *xq = NULL;
    int32_t *logits = NULL;
    bp_status st = bp_qmodel_build(g, wbits, abits, cal->x, cal->n, NULL, &m);
    if (st)
        return st;
    if (batch > ev->n)
        batch = ev->n;
    if (batch < 1)
        batch = 1;
    const bp_qtensor *ti = &m->t[m->input_t], *to = &m->t[m->output_t];
    const size_t in1 = (size_t)ev->c * ev->h * ev->w;
    const int classes = (int)to->numel1;
    if ((st = bp_qrun_new(m, batch, &run)))
        goto done;
    xq = malloc((size_t)batch * ti->numel1 * bp_qtype_size(ti->type));
    logits = malloc(sizeof *logits * (size_t)batch * classes);
    if (!xq || !logits) {
        st = bp_error(BP_ERR_NOMEM, "evaluation: out of memory");
        goto done;
    }
    long hits = 0;
    for (int s = 0; s < ev->n; s += batch) {
        int nb = ev->n - s < batch ? ev->n - s : batch;
        bp_qmodel_quantize_input(m, ev->x + (size_t)s * in1, nb, xq);
        if ((st = bp_qrun_forward(run, xq, nb, logits)))
            goto done;
        for (int i = 0; i < nb; i++) {
            const int32_t *l = logits + (size_t)i * classes;
            int best = 0;
            for (int k = 1; k < classes; k++)
                best = l[k] > l[best] ? k : best;
            hits += best == ev->y[s + i];
        }
    }
    *acc = ev->n ? (double)hits / ev->n : 0;
done:
    free(xq);
    free(logits);
    bp_qrun_free(run);
    bp_qmodel_free(m);
    return st;
}
