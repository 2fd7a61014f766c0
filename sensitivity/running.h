/* running.h — internal to sensitivity/: the running mean and variance of one
 * trace estimate and its stop rule. The weight traces (hutchinson.c) and the
 * activation traces (act_trace.c) share it so both stop by the same rule and
 * report the same numbers. Not part of the public API. */
#ifndef BP_SENS_RUNNING_H
#define BP_SENS_RUNNING_H

#include "sensitivity/sensitivity.h"

/* Running mean and variance (Welford) plus the stop rule of one block;
 * zero-initialise (calloc) before the first bp_running_add. */
typedef struct {
    double mean, m2;
    int k;
    double change;   /* relative change of the mean at the last sample */
    int converged;   /* change <= tol after at least min_probes (and 2) samples */
} bp_running;

/* Adds sample x; sets change and, by o->tol and o->min_probes, converged. */
void bp_running_add(bp_running *r, double x, const bp_trace_opts *o);
/* Mean, standard error, probes, converged and tol_reached into e. */
void bp_running_out(const bp_running *r, bp_trace_est *e);

#endif
