/* `bitplan latency measure|show|import-csv|roofline`: host measurement,
 * inspection and conversion of latency profiles (latency/profile.h). */
#include "cli/cli.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/onnx.h"
#include "ilp/ilp.h"
#include "latency/measure.h"
#include "latency/profile.h"

#define MAX_CAND 64
#define DEFAULT_BITS "w2a4,w3a4,4,5,6,7,8"

static void usage(FILE *fp)
{
    fprintf(fp,
        "usage: bitplan latency measure MODEL.onnx -o PROFILE.json [--bits LIST] [--batch B]\n"
        "                               [--threads T] [--reps R] [--warmup W] [--min-rep-ms X]\n"
        "                               [--clock wall|thread-cpu] [--device NAME] [--citation TEXT]\n"
        "       bitplan latency show PROFILE.json [MODEL.onnx] [--bits LIST]\n"
        "       bitplan latency import-csv CSV -o PROFILE.json [--device NAME] [--citation TEXT]\n"
        "                               [--units LIST] [--peak B=OPS,...] [--mem-bw BYTES_PER_S]\n"
        "       bitplan latency roofline -o PROFILE.json --device NAME --batch B\n"
        "                               --peak B=OPS,... --mem-bw BYTES_PER_S [--units LIST]\n"
        "                               [--citation TEXT]\n"
        "\n"
        "  measure     times every Conv/Gemm/MatMul layer at every candidate with bitplan's\n"
        "              integer kernels: W warm-up runs, R repetitions (median and IQR kept),\n"
        "              T OpenMP threads (the batch is split across them). Defaults: --bits\n"
        "              " DEFAULT_BITS " (what bitplan ilp asks for), --batch 1,\n"
        "              --threads 1, --reps 30, --warmup 3,\n"
        "              --min-rep-ms 0.5 (kernel runs per repetition chosen to last that long).\n"
        "              --clock thread-cpu times CPU time of the measuring thread (immune to\n"
        "              other processes on a shared machine; needs --threads 1).\n"
        "              Progress on stderr unless --quiet.\n"
        "  show        without MODEL: the profile's entries; with MODEL: latency (ms) of each\n"
        "              layer per candidate, fallbacks marked: ~ interpolated, ^ roofline,\n"
        "              + promoted to a hardware unit; the last row sums a uniform plan.\n"
        "  import-csv  HAWQ-V3's per-layer table (layer,op,cin,cout,kernel,stride,in_hw,...,\n"
        "              latency_ms_w4a4,latency_ms_w8a8) -> profile; rows with one signature\n"
        "              are merged (median, min/max spread).\n"
        "  roofline    a profile with no entries, only a device spec.\n"
        "\n"
        "  LIST of candidates: comma-separated; N means WNAN, W:A or wWaA a mixed pair\n"
        "  (e.g. 4,8,w4a8). --units: bit-widths the hardware has, e.g. 4,8.\n");
}


/* "4,8" -> ascending ints. */
static int parse_units(const char *s, int *u, int max)
{
    int n = 0;
    char *end;
    const char *p = s;
    while (*p) {
        long v = strtol(p, &end, 10);
        if (end == p || v < 1 || v > 32 || n == max || (n && v <= u[n - 1]))
            return -1;
        u[n++] = (int)v;
        p = end;
        if (*p == ',')
            p++;
        else if (*p)
            return -1;
    }
    return n;
}

/* "4=2.6e14,8=1.3e14" -> the profile's roofline peaks (sorted by bits). */
static int parse_peaks(const char *s, bp_profile *p)
{
    int n = 0;
    const char *q = s;
    while (*q) {
        int b, used = 0;
        double ops;
        if (sscanf(q, "%d=%lf%n", &b, &ops, &used) != 2 || b < 1 || b > 32 || !(ops > 0) ||
            n == BP_PROFILE_MAX_BITS)
            return -1;
        int k = n++;
        while (k > 0 && p->peak_bits[k - 1] > b) {
            p->peak_bits[k] = p->peak_bits[k - 1];
            p->peak_ops[k] = p->peak_ops[k - 1];
            k--;
        }
        p->peak_bits[k] = b;
        p->peak_ops[k] = ops;
        q += used;
        if (*q == ',')
            q++;
        else if (*q)
            return -1;
    }
    p->npeak = n;
    return n;
}

static int bad_usage(const char *what, const char *arg)
{
    fprintf(stderr, "bitplan latency: %s%s%s\n", what, arg ? " " : "", arg ? arg : "");
    usage(stderr);
    return BP_EXIT_USAGE;
}

static int int_arg(const char *s, int lo, int *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > 1 << 24)
        return -1;
    *out = (int)v;
    return 0;
}

/* ---- measure ------------------------------------------------------------- */

static void progress(const bp_measure_event *ev, void *ctx)
{
    (void)ctx;
    if (bp_cli_quiet)
        return;
    fprintf(stderr, "latency: [%d/%d] %-24s W%dA%d  %10.4f ms%s\n", ev->layer + 1, ev->nlayers,
            ev->name, ev->b_w, ev->b_a, ev->median_ms, ev->reused ? "  (same shape as before)" : "");
}

static int do_measure(int argc, char **argv)
{
    const char *model = NULL, *outp = NULL, *device = NULL, *citation = NULL;
    int wb[MAX_CAND], ab[MAX_CAND];
    /* the ILP's default candidates: weight bits 2..8 with a = max(w, 4) */
    int nc = bp_parse_candidates(DEFAULT_BITS, wb, ab, MAX_CAND, 32, 0);
    bp_measure_opts o;
    bp_measure_opts_default(&o);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
            continue;
        if (a[0] != '-') {
            if (model)
                return bad_usage("unexpected argument", a);
            model = a;
            continue;
        }
        if (!v)
            return bad_usage("missing value after", a);
        i++;
        if (!strcmp(a, "-o"))
            outp = v;
        else if (!strcmp(a, "--device"))
            device = v;
        else if (!strcmp(a, "--citation"))
            citation = v;
        else if (!strcmp(a, "--bits")) {
            if ((nc = bp_parse_candidates(v, wb, ab, MAX_CAND, 32, 0)) < 1)
                return bad_usage("bad --bits list", v);
        } else if (!strcmp(a, "--batch")) {
            if (int_arg(v, 1, &o.batch))
                return bad_usage("bad --batch", v);
        } else if (!strcmp(a, "--threads")) {
            if (int_arg(v, 1, &o.threads) || o.threads > 64)
                return bad_usage("bad --threads (1..64)", v);
        } else if (!strcmp(a, "--reps")) {
            if (int_arg(v, 1, &o.reps))
                return bad_usage("bad --reps", v);
        } else if (!strcmp(a, "--warmup")) {
            if (int_arg(v, 0, &o.warmup))
                return bad_usage("bad --warmup", v);
        } else if (!strcmp(a, "--clock")) {
            if (!strcmp(v, "wall"))
                o.thread_cpu = 0;
            else if (!strcmp(v, "thread-cpu"))
                o.thread_cpu = 1;
            else
                return bad_usage("bad --clock (wall or thread-cpu)", v);
        } else if (!strcmp(a, "--min-rep-ms")) {
            char *end;
            o.min_rep_ms = strtod(v, &end);
            if (*end || !(o.min_rep_ms >= 0) || o.min_rep_ms > 1e4)
                return bad_usage("bad --min-rep-ms", v);
        } else
            return bad_usage("unknown option", a);
    }
    if (!model || !outp)
        return bad_usage("measure needs MODEL.onnx and -o PROFILE.json", NULL);
    o.ncand = nc;
    o.wbits = wb;
    o.abits = ab;
    o.progress = progress;
    bp_graph *g;
    bp_status st = bp_onnx_load(model, &g);
    if (st)
        return bp_cli_fail(st);
    bp_profile *p = NULL;
    st = bp_latency_measure_graph(g, &o, &p);
    bp_graph_free(g);
    if (!st && device) {
        char *d = strdup(device);
        if (d) {
            free(p->device);
            p->device = d;
        }
    }
    if (!st && citation) {
        char *c = strdup(citation);
        if (c) {
            free(p->citation);
            p->citation = c;
        }
    }
    if (!st)
        st = bp_profile_save(p, outp);
    if (!st && !bp_cli_quiet)
        fprintf(stderr, "latency: wrote %s (%d entries)\n", outp, p->n);
    bp_profile_free(p);
    return st ? bp_cli_fail(st) : BP_EXIT_OK;
}

/* ---- show ------------------------------------------------------------------ */

static void show_entries(const bp_profile *p)
{
    printf("%4s %-6s %6s %6s %5s %3s %4s %9s %5s %6s %12s %25s  %s\n", "#", "op", "cin", "cout",
           "k", "s", "g", "in", "batch", "bits", "latency_ms", "spread", "source");
    for (int i = 0; i < p->n; i++) {
        const bp_profile_entry *e = &p->e[i];
        char k[16], in[24], bits[16], sp[40];
        snprintf(k, sizeof k, "%dx%d", e->sig.kh, e->sig.kw);
        snprintf(in, sizeof in, "%lldx%lld", (long long)e->sig.in_h, (long long)e->sig.in_w);
        snprintf(bits, sizeof bits, "W%dA%d", e->b_w, e->b_a);
        if (e->spread == BP_SPREAD_NONE)
            snprintf(sp, sizeof sp, "-");
        else
            snprintf(sp, sizeof sp, "%s %.5g..%.5g", e->spread == BP_SPREAD_IQR ? "iqr" : "min/max",
                     e->lo_ms, e->hi_ms);
        printf("%4d %-6s %6lld %6lld %5s %3d %4d %9s %5d %6s %12.6g %25s  %s\n", i,
               bp_op_name(e->sig.op), (long long)e->sig.cin, (long long)e->sig.cout, k,
               e->sig.stride, e->sig.group, in, e->sig.batch, bits, e->latency_ms, sp,
               e->source == BP_LAT_MEASURED ? "measured" : "modeled");
    }
}

static int show_model(const bp_profile *p, const char *model, int *wb, int *ab, int nc)
{
    bp_graph *g;
    bp_status st = bp_onnx_load(model, &g);
    if (st)
        return bp_cli_fail(st);
    bp_layer *ls;
    int nl;
    if ((st = bp_graph_layers(g, &ls, &nl))) {
        bp_graph_free(g);
        return bp_cli_fail(st);
    }
    double *tot = calloc((size_t)nc, sizeof *tot);
    int *missing = calloc((size_t)nc, sizeof *missing);
    char first_err[1024] = "";
    int nfall = 0;
    printf("%-28s %-6s", "layer", "op");
    for (int c = 0; c < nc; c++) {
        char h[16];
        snprintf(h, sizeof h, "W%dA%d", wb[c], ab[c]);
        printf(" %11s", h);
    }
    printf("\n");
    for (int i = 0; i < nl; i++) {
        printf("%-28.28s %-6s", ls[i].name, bp_op_name(ls[i].op));
        for (int c = 0; c < nc; c++) {
            double ms;
            int how;
            if (bp_profile_latency(p, &ls[i], wb[c], ab[c], &ms, &how)) {
                if (!first_err[0])
                    snprintf(first_err, sizeof first_err, "%s", bp_last_error());
                missing[c] = 1;
                printf(" %11s", "n/a");
                continue;
            }
            int m = how & BP_LAT_METHOD_MASK;
            nfall += m != BP_LAT_EXACT;
            tot[c] += ms;
            printf(" %9.4f%c%c", ms,
                   m == BP_LAT_INTERP ? '~' : m == BP_LAT_ROOFLINE ? '^' : ' ',
                   how & BP_LAT_PROMOTED ? '+' : ' ');
        }
        printf("\n");
    }
    printf("%-28s %-6s", "total (uniform plan)", "");
    for (int c = 0; c < nc; c++) {
        if (missing[c])
            printf(" %11s", "n/a");
        else
            printf(" %9.4f  ", tot[c]);
    }
    printf("\n\nms for batch %d on %s. ~ interpolated over MACs, ^ roofline, + promoted to a "
           "hardware unit; %d of %d cells are fallbacks.\n",
           p->batch, p->device, nfall, nl * nc);
    if (first_err[0])
        fprintf(stderr, "bitplan latency: some cells have no latency; the first: %s\n",
                first_err);
    free(tot);
    free(missing);
    free(ls);
    bp_graph_free(g);
    return first_err[0] ? BP_EXIT_FAIL : BP_EXIT_OK;
}

static int do_show(int argc, char **argv)
{
    const char *prof = NULL, *model = NULL, *bits = NULL;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--quiet") || !strcmp(argv[i], "-q"))
            continue;
        if (!strcmp(argv[i], "--bits")) {
            if (i + 1 >= argc)
                return bad_usage("missing value after", argv[i]);
            bits = argv[++i];
        } else if (argv[i][0] == '-') {
            return bad_usage("unknown option", argv[i]);
        } else if (!prof) {
            prof = argv[i];
        } else if (!model) {
            model = argv[i];
        } else {
            return bad_usage("unexpected argument", argv[i]);
        }
    }
    if (!prof)
        return bad_usage("show needs PROFILE.json", NULL);
    bp_profile *p;
    bp_status st = bp_profile_load(prof, &p);
    if (st)
        return bp_cli_fail(st);
    printf("profile %s: %s, batch %d", prof, p->device, p->batch);
    if (p->threads > 0)
        printf(", %d threads", p->threads);
    if (p->repetitions > 0)
        printf(", %d repetitions", p->repetitions);
    if (p->date)
        printf(", %s", p->date);
    if (p->clock)
        printf(", %s clock", p->clock);
    printf("\n");
    if (p->citation)
        printf("source: %s\n", p->citation);
    if (p->host)
        printf("host: %s\n", p->host);
    if (p->nunits) {
        printf("units:");
        for (int k = 0; k < p->nunits; k++)
            printf(" %d", p->units[k]);
        printf(" bits\n");
    }
    if (p->npeak) {
        printf("roofline:");
        for (int k = 0; k < p->npeak; k++)
            printf(" %d-bit %.3g ops/s;", p->peak_bits[k], p->peak_ops[k]);
        printf(" memory %.3g bytes/s\n", p->mem_bw);
    }
    printf("\n");
    int rc = BP_EXIT_OK;
    if (!model) {
        show_entries(p);
    } else {
        int wb[MAX_CAND], ab[MAX_CAND], nc = 0;
        if (bits) {
            if ((nc = bp_parse_candidates(bits, wb, ab, MAX_CAND, 32, 0)) < 1) {
                bp_profile_free(p);
                return bad_usage("bad --bits list", bits);
            }
        } else {
            /* the bit pairs the profile has, in order of appearance */
            for (int i = 0; i < p->n && nc < MAX_CAND; i++) {
                int seen = 0;
                for (int c = 0; c < nc; c++)
                    seen |= wb[c] == p->e[i].b_w && ab[c] == p->e[i].b_a;
                if (!seen) {
                    wb[nc] = p->e[i].b_w;
                    ab[nc++] = p->e[i].b_a;
                }
            }
            if (nc == 0)
                nc = bp_parse_candidates("4,8", wb, ab, MAX_CAND, 32, 0);
        }
        rc = show_model(p, model, wb, ab, nc);
    }
    bp_profile_free(p);
    return rc;
}

/* ---- import-csv and roofline --------------------------------------------- */

typedef struct {
    const char *out, *device, *citation, *units, *peak, *mem_bw, *batch;
} meta_opts;

static int parse_meta(int argc, char **argv, meta_opts *m, const char **pos)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (!strcmp(a, "--quiet") || !strcmp(a, "-q"))
            continue;
        if (a[0] != '-') {
            if (!pos || *pos)
                return bad_usage("unexpected argument", a);
            *pos = a;
            continue;
        }
        if (i + 1 >= argc)
            return bad_usage("missing value after", a);
        const char *v = argv[++i];
        if (!strcmp(a, "-o"))
            m->out = v;
        else if (!strcmp(a, "--device"))
            m->device = v;
        else if (!strcmp(a, "--citation"))
            m->citation = v;
        else if (!strcmp(a, "--units"))
            m->units = v;
        else if (!strcmp(a, "--peak"))
            m->peak = v;
        else if (!strcmp(a, "--mem-bw"))
            m->mem_bw = v;
        else if (!strcmp(a, "--batch"))
            m->batch = v;
        else
            return bad_usage("unknown option", a);
    }
    return -1;
}

/* Applies device, citation, units and roofline options to p. */
static int apply_meta(bp_profile *p, const meta_opts *m)
{
    if (m->device) {
        free(p->device);
        p->device = strdup(m->device);
    }
    if (m->citation) {
        free(p->citation);
        p->citation = strdup(m->citation);
    }
    if (m->units && (p->nunits = parse_units(m->units, p->units, BP_PROFILE_MAX_BITS)) < 1)
        return bad_usage("bad --units list", m->units);
    if (!!m->peak != !!m->mem_bw)
        return bad_usage("--peak and --mem-bw go together", NULL);
    if (m->peak && parse_peaks(m->peak, p) < 1)
        return bad_usage("bad --peak list (B=OPS,...)", m->peak);
    if (m->mem_bw) {
        char *end;
        p->mem_bw = strtod(m->mem_bw, &end);
        if (*end || !(p->mem_bw > 0) || !isfinite(p->mem_bw))
            return bad_usage("bad --mem-bw", m->mem_bw);
    }
    return -1;
}

static int do_import(int argc, char **argv)
{
    meta_opts m = {0};
    const char *csv = NULL;
    int rc = parse_meta(argc, argv, &m, &csv);
    if (rc >= 0)
        return rc;
    if (!csv || !m.out)
        return bad_usage("import-csv needs CSV and -o PROFILE.json", NULL);
    bp_profile *p;
    bp_status st = bp_profile_import_hawq_csv(csv, &p);
    if (st)
        return bp_cli_fail(st);
    if ((rc = apply_meta(p, &m)) >= 0) {
        bp_profile_free(p);
        return rc;
    }
    st = bp_profile_save(p, m.out);
    if (!st && !bp_cli_quiet)
        fprintf(stderr, "latency: wrote %s (%d entries from %s)\n", m.out, p->n, csv);
    bp_profile_free(p);
    return st ? bp_cli_fail(st) : BP_EXIT_OK;
}

static int do_roofline(int argc, char **argv)
{
    meta_opts m = {0};
    int rc = parse_meta(argc, argv, &m, NULL);
    if (rc >= 0)
        return rc;
    int batch;
    if (!m.out || !m.device || !m.peak || !m.mem_bw || !m.batch)
        return bad_usage("roofline needs -o, --device, --batch, --peak and --mem-bw", NULL);
    if (int_arg(m.batch, 1, &batch))
        return bad_usage("bad --batch", m.batch);
    bp_profile *p = bp_profile_new(m.device, batch);
    if (!p)
        return bp_cli_fail(bp_error(BP_ERR_NOMEM, "out of memory"));
    if ((rc = apply_meta(p, &m)) >= 0) {
        bp_profile_free(p);
        return rc;
    }
    bp_status st = bp_profile_save(p, m.out);
    bp_profile_free(p);
    return st ? bp_cli_fail(st) : BP_EXIT_OK;
}

int cmd_latency(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? BP_EXIT_USAGE : BP_EXIT_OK;
    }
    if (!strcmp(argv[1], "measure"))
        return do_measure(argc - 1, argv + 1);
    if (!strcmp(argv[1], "show"))
        return do_show(argc - 1, argv + 1);
    if (!strcmp(argv[1], "import-csv"))
        return do_import(argc - 1, argv + 1);
    if (!strcmp(argv[1], "roofline"))
        return do_roofline(argc - 1, argv + 1);
    return bad_usage("unknown subcommand", argv[1]);
}
