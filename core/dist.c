/* The process group (dist.h): serial by default, Open MPI with -DBP_MPI. */
#include "core/dist.h"

#include <limits.h>

#ifdef BP_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
#ifdef BP_MPI
static int g_inited_here = 0;      /* this module called MPI_Init */
#endif
static int g_failed_together = 0;
static int g_failed_elsewhere = 0;

int bp_dist_has_mpi(void)
{
#ifdef BP_MPI
    return 1;
#else
    return 0;
#endif
}

bp_status bp_dist_init(void)
{
#ifdef BP_MPI
    int on = 0, done = 0;
    MPI_Initialized(&on);
    MPI_Finalized(&done);
    if (done)
        return bp_error(BP_ERR_ARG, "dist: MPI was already finalized");
    if (!on) {
        int provided = 0;
        /* MPI calls come from the main thread only; OpenMP threads compute. */
        if (MPI_Init_thread(NULL, NULL, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS)
            return bp_error(BP_ERR_IO, "dist: MPI_Init_thread failed");
        g_inited_here = 1;
    }
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* Errors come back as codes (checked below), not as an abort inside MPI. */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
#endif
    return BP_OK;
}

void bp_dist_finalize(void)
{
#ifdef BP_MPI
    int on = 0, done = 0;
    MPI_Initialized(&on);
    MPI_Finalized(&done);
    if (on && !done && g_inited_here)
        MPI_Finalize();
    g_inited_here = 0;
#endif
    g_rank = 0;
    g_size = 1;
}

int bp_dist_rank(void) { return g_rank; }
int bp_dist_size(void) { return g_size; }
int bp_dist_failed_together(void) { return g_failed_together; }
int bp_dist_failed_elsewhere(void) { return g_failed_elsewhere; }

#ifdef BP_MPI
static bp_status mpi_fail(int rc, const char *what)
{
    char msg[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, msg, &len);
    return bp_error(BP_ERR_IO, "dist: %s on rank %d of %d failed: %s", what, g_rank, g_size, msg);
}
#endif

bp_status bp_dist_sum(double *buf, size_t n)
{
#ifdef BP_MPI
    if (g_size > 1)
        for (size_t off = 0; off < n;) {
            int cnt = n - off > (size_t)(INT_MAX / 2) ? INT_MAX / 2 : (int)(n - off);
            int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
            if (rc != MPI_SUCCESS)
                return mpi_fail(rc, "MPI_Allreduce");
            off += (size_t)cnt;
        }
#else
    (void)buf;
    (void)n;
#endif
    return BP_OK;
}

bp_status bp_dist_sum_long(long *buf, size_t n)
{
#ifdef BP_MPI
    if (g_size > 1)
        for (size_t off = 0; off < n;) {
            int cnt = n - off > (size_t)(INT_MAX / 2) ? INT_MAX / 2 : (int)(n - off);
            int rc = MPI_Allreduce(MPI_IN_PLACE, buf + off, cnt, MPI_LONG, MPI_SUM, MPI_COMM_WORLD);
            if (rc != MPI_SUCCESS)
                return mpi_fail(rc, "MPI_Allreduce");
            off += (size_t)cnt;
        }
#else
    (void)buf;
    (void)n;
#endif
    return BP_OK;
}

bp_status bp_dist_agree(bp_status st)
{
    if (g_size <= 1) {
        if (st) {
            g_failed_together = 1;
            g_failed_elsewhere = 0;
        }
        return st;
    }
#ifdef BP_MPI
    /* The lowest failing rank and its status in one integer: rank·K + status. */
    int mine = st ? g_rank * (int)BP_ERR_COUNT + (int)st : INT_MAX, first = INT_MAX;
    int rc = MPI_Allreduce(&mine, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (rc != MPI_SUCCESS) {
        g_failed_together = 0; /* nobody can know what the others saw */
        return mpi_fail(rc, "agreement (MPI_Allreduce)");
    }
    if (first == INT_MAX)
        return BP_OK;
    int who = first / (int)BP_ERR_COUNT;
    bp_status what = (bp_status)(first % (int)BP_ERR_COUNT);
    g_failed_together = 1;
    if (who == g_rank) {
        g_failed_elsewhere = 0;
        return bp_error_wrap(st, "rank %d of %d", g_rank, g_size);
    }
    g_failed_elsewhere = 1;
    return bp_error(what, "rank %d of %d failed (%s; its message comes from that rank); every rank "
                          "stopped", who, g_size, bp_strerror(what));
#else
    return st;
#endif
}

bp_status bp_dist_same(const long *v, size_t n, const char *what)
{
    if (g_size <= 1)
        return BP_OK;
    /* Σ_r v_r = P·v_own on every rank iff all are equal; otherwise the rank
     * holding the largest of the differing values sees the sum fall short. */
    long buf[64];
    bp_status st = BP_OK;
    for (size_t off = 0; off < n; off += 64) {
        size_t cnt = n - off < 64 ? n - off : 64;
        for (size_t j = 0; j < cnt; j++)
            buf[j] = v[off + j];
        bp_status s2 = bp_dist_sum_long(buf, cnt);
        if (s2)
            return s2;
        for (size_t j = 0; j < cnt && !st; j++)
            if (buf[j] != (long)g_size * v[off + j])
                st = bp_error(BP_ERR_MISMATCH, "%s differ from the other ranks'", what);
    }
    return st;
}

void bp_dist_abort(int code)
{
#ifdef BP_MPI
    int on = 0, done = 0;
    MPI_Initialized(&on);
    MPI_Finalized(&done);
    if (on && !done)
        MPI_Abort(MPI_COMM_WORLD, code ? code : 1);
#else
    (void)code;
#endif
}

void bp_dist_shard(int n, int batch, int rank, int size, int *offset, int *count)
{
    if (n < 0)
        n = 0;
    if (batch < 1)
        batch = 1;
    if (size < 1)
        size = 1;
    long nb = ((long)n + batch - 1) / batch;
    long b0 = nb * rank / size, b1 = nb * (rank + 1) / size;
    long s0 = b0 * batch, s1 = b1 * batch;
    if (s0 > n)
        s0 = n;
    if (s1 > n)
        s1 = n;
    *offset = (int)s0;
    *count = (int)(s1 - s0);
}
