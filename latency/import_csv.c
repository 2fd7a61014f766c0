/* import_csv.c — converts HAWQ-V3's per-layer latency table (CSV) into a
 * profile.
 *
 * Columns are found by name in the header: layer, op, cin, cout, kernel,
 * stride, in_hw, macs_per_image, batch, an optional group, and one or more
 * latency columns named latency_ms_w<B>a<B> (e.g. latency_ms_w4a4). Rows with
 * the same signature (the identical convs of a ResNet stage) are merged into
 * one entry per bit-width: a profile is keyed by signature, and shapes that
 * run the same kernel differ only by measurement noise. The entry keeps the
 * median, the min/max as spread and every row's value in its note. */
#include "latency/profile.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/fileio.h"

#define MAX_COLS 32
#define MAX_LAT 8

typedef struct {
    char layer[96];
    bp_lat_sig sig;
    int64_t macs;
    double lat[MAX_LAT];
    int group_id;   /* index of the first row with the same signature */
} csv_row;

static int split(char *line, char **f, int max)
{
    int n = 0;
    char *s = line;
    for (;;) {
        if (n == max)
            return -1;
        f[n++] = s;
        char *c = strchr(s, ',');
        if (!c)
            break;
        *c = 0;
        s = c + 1;
    }
    /* strip the line end and surrounding blanks */
    for (int i = 0; i < n; i++) {
        while (*f[i] == ' ' || *f[i] == '\t')
            f[i]++;
        size_t l = strlen(f[i]);
        while (l > 0 && (f[i][l - 1] == '\r' || f[i][l - 1] == '\n' || f[i][l - 1] == ' '))
            f[i][--l] = 0;
    }
    return n;
}

static int col_of(char **hdr, int n, const char *name)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(hdr[i], name))
            return i;
    return -1;
}

static bp_status to_int(const char *s, int64_t *v, const char *path, int line, const char *col)
{
    char *end;
    long long x = strtoll(s, &end, 10);
    if (!*s || *end || x <= 0)
        return bp_error(BP_ERR_FORMAT, "%s:%d: column '%s': '%s' is not a positive integer",
                        path, line, col, s);
    *v = x;
    return BP_OK;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

bp_status bp_profile_import_hawq_csv(const char *path, bp_profile **out)
{
    *out = NULL;
    char *text = NULL;
    size_t len;
    bp_status st = bp_read_file(path, &text, &len);
    if (st)
        return st;
    csv_row *rows = NULL;
    int nrows = 0, caprows = 0;
    bp_profile *p = NULL;
    char *note = NULL;
    char *hdr[MAX_COLS], *f[MAX_COLS];
    int lat_col[MAX_LAT], lat_bw[MAX_LAT], lat_ba[MAX_LAT], nlat = 0;

    char *save = NULL;
    char *line = strtok_r(text, "\n", &save);
    if (!line) {
        st = bp_error(BP_ERR_FORMAT, "%s: empty file", path);
        goto cleanup;
    }
    int nh = split(line, hdr, MAX_COLS);
    if (nh < 0) {
        st = bp_error(BP_ERR_FORMAT, "%s:1: more than %d columns", path, MAX_COLS);
        goto cleanup;
    }
    static const char *need[] = {"layer", "op", "cin", "cout", "kernel", "stride", "in_hw",
                                 "macs_per_image", "batch"};
    enum { C_LAYER, C_OP, C_CIN, C_COUT, C_K, C_STRIDE, C_INHW, C_MACS, C_BATCH, C_N };
    int col[C_N];
    for (int k = 0; k < C_N; k++)
        if ((col[k] = col_of(hdr, nh, need[k])) < 0) {
            st = bp_error(BP_ERR_FORMAT, "%s:1: missing column '%s'", path, need[k]);
            goto cleanup;
        }
    int col_group = col_of(hdr, nh, "group");
    for (int i = 0; i < nh; i++) {
        int bw, ba, used = 0;
        if (sscanf(hdr[i], "latency_ms_w%da%d%n", &bw, &ba, &used) == 2 && !hdr[i][used]) {
            if (nlat == MAX_LAT || bw < 1 || bw > 32 || ba < 1 || ba > 32) {
                st = bp_error(BP_ERR_FORMAT, "%s:1: column '%s': bad or too many latency "
                              "columns", path, hdr[i]);
                goto cleanup;
            }
            lat_col[nlat] = i;
            lat_bw[nlat] = bw;
            lat_ba[nlat] = ba;
            nlat++;
        }
    }
    if (nlat == 0) {
        st = bp_error(BP_ERR_FORMAT, "%s:1: no latency column (latency_ms_w<B>a<B>)", path);
        goto cleanup;
    }

    int lineno = 1;
    while ((line = strtok_r(NULL, "\n", &save))) {
        lineno++; /* strtok_r skips empty lines; line numbers count non-empty lines */
        if (strspn(line, " \t\r") == strlen(line))
            continue;
        int nf = split(line, f, MAX_COLS);
        if (nf != nh) {
            st = bp_error(BP_ERR_FORMAT, "%s:%d: %d fields, the header has %d", path, lineno,
                          nf, nh);
            goto cleanup;
        }
        if (nrows == caprows) {
            int cap = caprows ? 2 * caprows : 32;
            csv_row *nr = realloc(rows, (size_t)cap * sizeof *nr);
            if (!nr) {
                st = bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
                goto cleanup;
            }
            rows = nr;
            caprows = cap;
        }
        csv_row *r = &rows[nrows];
        memset(r, 0, sizeof *r);
        snprintf(r->layer, sizeof r->layer, "%s", f[col[C_LAYER]]);
        const char *op = f[col[C_OP]];
        if (!strcmp(op, "Conv"))
            r->sig.op = BP_OP_CONV;
        else if (!strcmp(op, "Gemm"))
            r->sig.op = BP_OP_GEMM;
        else if (!strcmp(op, "MatMul"))
            r->sig.op = BP_OP_MATMUL;
        else {
            st = bp_error(BP_ERR_FORMAT, "%s:%d: column 'op': unknown op '%s'", path, lineno, op);
            goto cleanup;
        }
        int64_t cin, cout, k, stride, inhw, batch, group = 1;
        if ((st = to_int(f[col[C_CIN]], &cin, path, lineno, "cin")) ||
            (st = to_int(f[col[C_COUT]], &cout, path, lineno, "cout")) ||
            (st = to_int(f[col[C_K]], &k, path, lineno, "kernel")) ||
            (st = to_int(f[col[C_STRIDE]], &stride, path, lineno, "stride")) ||
            (st = to_int(f[col[C_INHW]], &inhw, path, lineno, "in_hw")) ||
            (st = to_int(f[col[C_MACS]], &r->macs, path, lineno, "macs_per_image")) ||
            (st = to_int(f[col[C_BATCH]], &batch, path, lineno, "batch")) ||
            (col_group >= 0 && (st = to_int(f[col_group], &group, path, lineno, "group"))))
            goto cleanup;
        if (k > 64 || stride > 64 || batch > 1 << 20 || group > 1 << 20) {
            st = bp_error(BP_ERR_FORMAT, "%s:%d: kernel, stride, batch or group too large",
                          path, lineno);
            goto cleanup;
        }
        bp_lat_sig *s = &r->sig;
        s->cin = cin;
        s->cout = cout;
        s->kh = s->kw = (int)k;
        s->stride = (int)stride;
        s->group = (int)group;
        s->in_h = s->in_w = inhw;
        s->batch = (int)batch;
        if (s->op != BP_OP_CONV) {
            s->kh = s->kw = s->stride = s->group = 1;
            s->in_h = s->in_w = 1;
        }
        for (int j = 0; j < nlat; j++) {
            char *end;
            const char *v = f[lat_col[j]];
            r->lat[j] = strtod(v, &end);
            if (!*v || *end || !(r->lat[j] >= 0) || r->lat[j] > 1e12) {
                st = bp_error(BP_ERR_FORMAT, "%s:%d: column '%s': '%s' is not a finite latency "
                              ">= 0", path, lineno, hdr[lat_col[j]], v);
                goto cleanup;
            }
        }
        r->group_id = nrows;
        for (int q = 0; q < nrows; q++)
            if (bp_lat_sig_equal(&rows[q].sig, s)) {
                if (rows[q].macs != r->macs) {
                    st = bp_error(BP_ERR_FORMAT, "%s:%d: layer %s has the signature of %s but "
                                  "different MACs", path, lineno, r->layer, rows[q].layer);
                    goto cleanup;
                }
                r->group_id = rows[q].group_id;
                break;
            }
        nrows++;
    }
    if (nrows == 0) {
        st = bp_error(BP_ERR_FORMAT, "%s: no data rows", path);
        goto cleanup;
    }

    p = bp_profile_new("imported", rows[0].sig.batch);
    size_t note_cap = 64 + (size_t)nrows * 128;
    note = malloc(note_cap);
    double *vals = malloc((size_t)nrows * sizeof *vals);
    if (!p || !note || !vals) {
        free(vals);
        st = bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
        goto cleanup;
    }
    /* One entry per (signature group, latency column), groups in file order,
     * all bit-widths of a group together. */
    for (int g = 0; g < nrows && !st; g++) {
        if (rows[g].group_id != g)
            continue;
        for (int j = 0; j < nlat && !st; j++) {
            int m = 0;
            size_t used = (size_t)snprintf(note, note_cap, "%s", "");
            for (int q = g; q < nrows; q++) {
                if (rows[q].group_id != g)
                    continue;
                vals[m++] = rows[q].lat[j];
                used += (size_t)snprintf(note + used, note_cap - used, "%s%s=%.8g",
                                         used ? ", " : "", rows[q].layer, rows[q].lat[j]);
            }
            qsort(vals, (size_t)m, sizeof *vals, cmp_double);
            bp_profile_entry e = {0};
            e.sig = rows[g].sig;
            e.b_w = lat_bw[j];
            e.b_a = lat_ba[j];
            e.macs = rows[g].macs;
            e.latency_ms = m % 2 ? vals[m / 2] : 0.5 * (vals[m / 2 - 1] + vals[m / 2]);
            if (m > 1) {
                e.spread = BP_SPREAD_MINMAX;
                e.lo_ms = vals[0];
                e.hi_ms = vals[m - 1];
                char *full = malloc(used + 64);
                if (!full) {
                    st = bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
                    break;
                }
                snprintf(full, used + 64, "median of %d layers: %s", m, note);
                e.note = full;
            } else {
                e.lo_ms = e.hi_ms = e.latency_ms;
                e.note = note;
            }
            e.source = BP_LAT_MEASURED;
            st = bp_profile_add(p, &e);
            if (e.note != note)
                free(e.note);
        }
    }
    free(vals);
    if (!st)
        st = bp_profile_validate(p, path);
    if (!st) {
        *out = p;
        p = NULL;
    }
cleanup:
    free(note);
    free(rows);
    free(text);
    bp_profile_free(p);
    return st;
}
