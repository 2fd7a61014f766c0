/* csv.h — the cells of bitplan's CSV views (sensitivity --csv, the ILP
 * frontier), written the same way everywhere so one reader fits all. */
#ifndef BP_CSV_H
#define BP_CSV_H

#include <stdio.h>

/* A text cell: quoted when it holds a comma, quote or newline (RFC 4180). */
void bp_csv_str(FILE *fp, const char *s);
/* A number cell with 17 significant digits (doubles round-trip); NaN
 * ("unknown") is an empty cell. */
void bp_csv_num(FILE *fp, double x);

#endif
