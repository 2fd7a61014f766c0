/* fileio.h — whole-file reads and atomic writes.
 *
 * Every output file bitplan writes goes through bp_out_*: data goes to a
 * temporary file beside the target and is renamed over it only when complete,
 * so a failure never leaves a half-written output behind. */
#ifndef BP_FILEIO_H
#define BP_FILEIO_H

#include <stdio.h>

#include "core/bp_common.h"

/* Reads a whole file into a malloc'd buffer (NUL-terminated for convenience;
 * *len excludes the NUL). Caller frees *data. */
bp_status bp_read_file(const char *path, char **data, size_t *len);

/* Writes len bytes to path atomically. */
bp_status bp_write_file_atomic(const char *path, const void *data, size_t len);

/* Streaming form: open, write through out->fp, then commit or abort. */
typedef struct {
    FILE *fp;
    char *path;    /* target */
    char *tmp;     /* temporary beside it */
} bp_out;

bp_status bp_out_open(bp_out *out, const char *path);
/* Flushes, fsyncs and renames; on any failure removes the temporary. */
bp_status bp_out_commit(bp_out *out);
/* Removes the temporary. Safe after a failed open or a commit; accepts zeroed. */
void bp_out_abort(bp_out *out);
/* Checks that path can be written (creates the temporary beside it and
 * removes it again) without touching path itself. Commands with several
 * outputs probe them all before writing any, so an unwritable one fails the
 * command before the others exist. NULL is OK (nothing to check). */
bp_status bp_out_probe(const char *path);

/* SHA-256 of a buffer / a file; hex is 65 bytes (64 digits + NUL). */
void bp_sha256(const void *data, size_t len, unsigned char digest[32]);
bp_status bp_sha256_file(const char *path, unsigned char digest[32]);
void bp_sha256_hex(const unsigned char digest[32], char hex[65]);

/* Creates a directory and its parents (like mkdir -p). */
bp_status bp_mkdir_p(const char *path);

#endif
