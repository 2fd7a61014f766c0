/* The running mean and stop rule shared by the weight and activation traces
 * (running.h). */
#include <math.h>

#include "sensitivity/running.h"

void bp_running_add(bp_running *r, double x, const bp_trace_opts *o)
{
    double old = r->mean;
    r->k++;
    double d = x - old;
    r->mean += d / r->k;
    r->m2 += d * (x - r->mean);
    /* Relative change of the running mean; a mean that stays exactly 0 (a
     * block that does not touch the loss) has changed by 0. */
    double diff = fabs(r->mean - old);
    if (r->k < 2)
        r->change = INFINITY;
    else if (diff == 0)
        r->change = 0;
    else
        r->change = r->mean != 0 ? diff / fabs(r->mean) : INFINITY;
    if (r->k >= o->min_probes && r->k >= 2 && r->change <= o->tol)
        r->converged = 1;
}

void bp_running_out(const bp_running *r, bp_trace_est *e)
{
    e->mean = r->mean;
    e->se = r->k > 1 ? sqrt(r->m2 / (r->k - 1) / r->k) : INFINITY;
    e->probes = r->k;
    e->converged = r->converged;
    e->tol_reached = r->change;
}
