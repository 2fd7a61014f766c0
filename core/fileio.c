/* Whole-file reads and atomic writes: see fileio.h. */
#include "core/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

bp_status bp_read_file(const char *path, char **data, size_t *len)
{
    *data = NULL;
    *len = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp)
        return bp_error(BP_ERR_IO, "%s: cannot open: %s", path, strerror(errno));
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap + 1);
    if (!buf) {
        fclose(fp);
        return bp_error(BP_ERR_NOMEM, "%s: out of memory reading", path);
    }
    for (;;) {
        if (n == cap) {
            char *nb = realloc(buf, cap * 2 + 1);
            if (!nb) {
                free(buf);
                fclose(fp);
                return bp_error(BP_ERR_NOMEM, "%s: out of memory reading", path);
            }
            buf = nb;
            cap *= 2;
        }
        size_t got = fread(buf + n, 1, cap - n, fp);
        n += got;
        if (got == 0)
            break;
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        free(buf);
        return bp_error(BP_ERR_IO, "%s: read error", path);
    }
    buf[n] = 0;
    *data = buf;
    *len = n;
    return BP_OK;
}

bp_status bp_out_open(bp_out *out, const char *path)
{
    memset(out, 0, sizeof *out);
    size_t l = strlen(path);
    out->path = strdup(path);
    out->tmp = malloc(l + 32);
    if (!out->path || !out->tmp) {
        bp_out_abort(out);
        return bp_error(BP_ERR_NOMEM, "%s: out of memory", path);
    }
    snprintf(out->tmp, l + 32, "%s.tmp.%ld", path, (long)getpid());
    out->fp = fopen(out->tmp, "wb");
    if (!out->fp) {
        int e = errno;
        bp_out_abort(out);
        return bp_error(BP_ERR_IO, "%s: cannot write: %s", path, strerror(e));
    }
    return BP_OK;
}

bp_status bp_out_commit(bp_out *out)
{
    int bad = 0, e = 0;
    if (!out->fp)
        return bp_error(BP_ERR_IO, "%s: not open", out->path ? out->path : "?");
    if (fflush(out->fp) || ferror(out->fp) || fsync(fileno(out->fp)))
        bad = 1, e = errno;
    if (fclose(out->fp) && !bad)
        bad = 1, e = errno;
    out->fp = NULL;
    if (!bad && rename(out->tmp, out->path))
        bad = 1, e = errno;
    if (bad) {
        bp_status st = bp_error(BP_ERR_IO, "%s: write failed: %s", out->path, strerror(e));
        bp_out_abort(out);
        return st;
    }
    free(out->tmp);
    free(out->path);
    out->tmp = out->path = NULL;
    return BP_OK;
}

void bp_out_abort(bp_out *out)
{
    if (!out)
        return;
    if (out->fp)
        fclose(out->fp);
    if (out->tmp)
        unlink(out->tmp);
    free(out->tmp);
    free(out->path);
    memset(out, 0, sizeof *out);
}

bp_status bp_out_probe(const char *path)
{
    if (!path)
        return BP_OK;
    bp_out o;
    bp_status st = bp_out_open(&o, path);
    bp_out_abort(&o);
    return st;
}

bp_status bp_write_file_atomic(const char *path, const void *data, size_t len)
{
    bp_out o;
    bp_status st = bp_out_open(&o, path);
    if (st)
        return st;
    if (len && fwrite(data, 1, len, o.fp) != len) {
        int e = errno;
        bp_out_abort(&o);
        return bp_error(BP_ERR_IO, "%s: write failed: %s", path, strerror(e));
    }
    return bp_out_commit(&o);
}

bp_status bp_mkdir_p(const char *path)
{
    char buf[4096];
    size_t l = strlen(path);
    if (l == 0 || l >= sizeof buf)
        return bp_error(BP_ERR_ARG, "bad directory path '%s'", path);
    memcpy(buf, path, l + 1);
    for (size_t i = 1; i <= l; i++) {
        if (buf[i] != '/' && buf[i] != 0)
            continue;
        char c = buf[i];
        buf[i] = 0;
        if (mkdir(buf, 0777) && errno != EEXIST)
            return bp_error(BP_ERR_IO, "%s: cannot create directory: %s", buf, strerror(errno));
        buf[i] = c;
    }
    struct stat sb;
    if (stat(path, &sb) || !S_ISDIR(sb.st_mode))
        return bp_error(BP_ERR_IO, "%s: not a directory", path);
    return BP_OK;
}
