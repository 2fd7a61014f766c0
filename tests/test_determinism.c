/* Same inputs, same seed, same thread count: byte-identical sensitivity and
 * plan files (docs/RELIABILITY.md, "Determinism"). Runs bin/bitplan (or
 * $BITPLAN) twice per case with OMP_NUM_THREADS=3 on models/lenet5.onnx and
 * the Fashion-MNIST training set (64 samples in batches of 32, enough work
 * for the threaded conv weight-gradient path), then compares the files byte
 * for byte. Three threads, because with two the sum of two partials does not
 * depend on their order: an engine that adds the threads' partial sums in
 * the order threads finish (omp critical) passes with two threads and fails
 * here (checked by building such a variant of core/ops_conv.c). */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char dir[512];

static void setup(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bp_determinism_XXXXXX", t && t[0] ? t : "/tmp");
    cr_assert_not_null(mkdtemp(dir));
}

static void teardown(void)
{
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", dir);
}

TestSuite(determinism, .init = setup, .fini = teardown);

static const char *bitplan(void)
{
    const char *b = getenv("BITPLAN");
    return b && b[0] ? b : "bin/bitplan";
}

/* Runs bitplan with args ("%" stands for the test folder) at T threads. */
static void run_ok(int threads, const char *args)
{
    char ex[2048], cmd[4096];
    size_t k = 0;
    for (const char *p = args; *p && k + 600 < sizeof ex; p++) {
        if (*p == '%')
            k += (size_t)snprintf(ex + k, sizeof ex - k, "%s", dir);
        else
            ex[k++] = *p;
    }
    ex[k] = 0;
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=%d OPENBLAS_NUM_THREADS=1 %s %s --quiet 2>%s/err.txt", threads,
             bitplan(), ex, dir);
    int rc = system(cmd);
    cr_assert_eq(rc, 0, "failed (%d): %s (see %s/err.txt)", rc, cmd, dir);
}

static unsigned char *slurp(const char *name, size_t *len)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *fp = fopen(p, "rb");
    cr_assert_not_null(fp, "missing %s", p);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return b;
}

static void same_bytes(const char *a, const char *b)
{
    size_t na, nb;
    unsigned char *x = slurp(a, &na), *y = slurp(b, &nb);
    size_t i = 0;
    while (i < na && i < nb && x[i] == y[i])
        i++;
    cr_expect(na == nb && i == na, "%s and %s differ (sizes %zu, %zu; first difference at byte %zu: ...%.40s)",
              a, b, na, nb, i, (const char *)x + (i > 20 ? i - 20 : 0));
    free(x);
    free(y);
}

#define SENS "sensitivity models/lenet5.onnx --data fashion-mnist:train --samples 64 --batch 32 " \
             "--min-probes 3 --max-probes 4 --seed 7 "

Test(determinism, sensitivity_twice_at_three_threads)
{
    run_ok(3, SENS "-o %/a.json --csv %/a.csv");
    run_ok(3, SENS "-o %/b.json --csv %/b.csv");
    same_bytes("a.json", "b.json");
    same_bytes("a.csv", "b.csv");
}

Test(determinism, plan_and_frontier_twice)
{
    run_ok(1, SENS "-o %/s.json");
    run_ok(2, "ilp %/s.json --size-frac 0.4 --sweep size:5 --frontier %/fa -o %/a.json");
    run_ok(2, "ilp %/s.json --size-frac 0.4 --sweep size:5 --frontier %/fb -o %/b.json");
    same_bytes("a.json", "b.json");
    same_bytes("fa.csv", "fb.csv");
    same_bytes("fa.json", "fb.json");
}
