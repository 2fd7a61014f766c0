/* train.h — SGD training of a graph on an in-memory data set, and accuracy
 * evaluation.
 *
 * The optimizer is PyTorch's torch.optim.SGD (dampening 0, not Nesterov):
 *     g = grad + wd * w          (wd only on Conv/Gemm/MatMul weights)
 *     buf = momentum * buf + g   (buf starts at 0, so the first step is buf = g)
 *     w = w - lr * buf
 * BN scale/shift and biases get no weight decay; BN running statistics are
 * not trainable and never touched by the optimizer (BN updates them itself in
 * training mode).
 *
 * Learning rate per step t of T (warm-up of W steps, then cosine to zero):
 *     t <  W:  lr * (t + 1) / W
 *     t >= W:  lr * 0.5 * (1 + cos(pi * (t - W) / (T - W)))
 */
#ifndef BP_TRAIN_H
#define BP_TRAIN_H

#include "core/data.h"
#include "core/graph.h"

/* ---- optimizer ------------------------------------------------------------ */

typedef struct bp_sgd bp_sgd;

/* An optimizer for g's parameters; it keeps one momentum buffer laid out like
 * g->params and the list of what gets weight decay. */
bp_status bp_sgd_new(const bp_graph *g, double momentum, double weight_decay, bp_sgd **out);
void bp_sgd_free(bp_sgd *s); /* accepts NULL */
/* One step on params (laid out like g->params) with gradient grad. */
void bp_sgd_step(bp_sgd *s, bp_real *params, const bp_real *grad, double lr);
/* Whether element i of the flat buffer gets weight decay / is updated at all. */
int bp_sgd_decays(const bp_sgd *s, size_t i);
int bp_sgd_updates(const bp_sgd *s, size_t i);

/* The schedule above. */
double bp_lr_at(double lr, long step, long total, long warmup);

/* ---- training loop ------------------------------------------------------------ */

typedef struct {
    int epoch, epochs;       /* 1-based */
    double loss;             /* mean training loss over the epoch */
    double train_acc;        /* training accuracy during the epoch (BN in training mode) */
    double test_acc, test_loss; /* after the epoch; -1 when no test set */
    double seconds;          /* wall time of the epoch (with its test pass) */
    double cpu_seconds;      /* process CPU time of the epoch, all threads */
    double lr;               /* learning rate at the epoch's last step */
} bp_epoch_report;

typedef struct {
    int epochs;           /* default 8 */
    int batch;            /* default 128 */
    double lr;            /* peak learning rate, default 0.1 */
    double momentum;      /* default 0.9 */
    double weight_decay;  /* default 5e-4 */
    double warmup;        /* warm-up length in epochs, default 0.5 */
    unsigned long seed;   /* shuffling and augmentation, default 1 */
    int augment;          /* random 2-px-padded crop and horizontal flip, default 0 */
    int eval_batch;       /* default 500 */
    /* Called after each epoch (may be NULL); a non-zero return stops training
     * early with BP_OK. The library never prints: the CLI prints from here. */
    int (*progress)(void *ctx, const bp_epoch_report *r);
    void *ctx;
} bp_train_opts;

bp_train_opts bp_train_opts_default(void);

/* Trains g in place on `train` (all of it, shuffled each epoch; the last
 * partial batch of an epoch is dropped unless it is the only one) and, when
 * `test` is not NULL, evaluates after every epoch. *last (may be NULL) gets
 * the last epoch's report. */
bp_status bp_train(bp_graph *g, const bp_dataset *train, const bp_dataset *test,
                   const bp_train_opts *o, bp_epoch_report *last);

/* The augmentation of --augment for one sample src (c, h, w):
 *   dst(y, x) = src(y + dy, x + dx)            without flip,
 *   dst(y, x) = src(y + dy, w - 1 - (x + dx))  with flip;
 * positions outside the image take the channel's minimum. */
void bp_augment(bp_real *dst, const bp_real *src, int c, int h, int w, int dy, int dx, int flip);

/* ---- evaluation ------------------------------------------------------------------ */

/* Accuracy and mean cross-entropy of g (BN in inference mode) on a data set
 * or on the rest of a stream. acc/loss/n may be NULL. */
bp_status bp_evaluate(bp_graph *g, const bp_dataset *ds, int batch, double *acc, double *loss);
bp_status bp_evaluate_stream(bp_graph *g, bp_stream *s, int batch, double *acc, double *loss, int *n);

#endif
