/* data_src.h — private to the data module (data_idx.c, data_npy.c,
 * data_stream.c): one reader for "an array of N equal records in a file",
 * whether the file is IDX or .npy, gzip-compressed or plain.
 *
 * Both formats are a header followed by N fixed-size records in C order, so
 * once the header is parsed, streaming, seeking and truncation checks are the
 * same code. zlib's gz* functions read gzip and plain files alike (gzdirect()
 * tells which), which is why every reader goes through a gzFile. */
#ifndef BP_DATA_SRC_H
#define BP_DATA_SRC_H

#include <zlib.h>

#include "core/bp_common.h"

typedef enum { BP_DT_U8, BP_DT_F32, BP_DT_I32, BP_DT_I64 } bp_dtype;

typedef struct {
    gzFile gz;
    char *path;         /* for messages */
    bp_dtype dtype;
    int ndim;           /* including the record axis */
    int64_t dims[4];    /* dims[0] = number of records */
    size_t rec_elems;   /* elements per record */
    size_t rec_bytes;   /* bytes per record */
    int64_t data_start; /* byte offset of record 0 (uncompressed) */
    int64_t pos;        /* index of the next record to read */
} bp_arr;

/* Size in bytes of one element of a dtype. */
size_t bp_dtype_size(bp_dtype t);

/* Opens an IDX file and parses its header. `magic` is 0x00000803 (images,
 * 3-D) or 0x00000801 (labels, 1-D); any other magic in the file is an error
 * naming the file and both values. */
bp_status bp_idx_open(const char *path, uint32_t magic, bp_arr *a);

/* Opens a .npy file (format 1.0, 2.0 or 3.0) and parses its header. labels=0
 * accepts '<f4' and '|u1' with 2 to 4 dimensions; labels=1 accepts '<i8',
 * '<i4' and '|u1' with shape (N,) or (N, 1). Fortran order is an error. */
bp_status bp_npy_open(const char *path, int labels, bp_arr *a);

/* Common to both: after the header is parsed, checks a plain (uncompressed)
 * file is long enough for every record, so truncation shows at open. A gzip
 * file's truncation shows when the missing records are read. */
bp_status bp_arr_check_length(bp_arr *a);
/* Positions the reader before record `rec`. */
bp_status bp_arr_seek(bp_arr *a, int64_t rec);
/* Reads n records into buf; a short read is BP_ERR_FORMAT naming the file and
 * the first incomplete record. */
bp_status bp_arr_read(bp_arr *a, int64_t n, void *buf);
void bp_arr_close(bp_arr *a); /* accepts a zeroed or closed reader */

#endif
