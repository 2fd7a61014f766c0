/* CSV cells (csv.h). */
#include <math.h>
#include <string.h>

#include "core/csv.h"

void bp_csv_str(FILE *fp, const char *s)
{
    if (!strpbrk(s, ",\"\n\r")) {
        fputs(s, fp);
        return;
    }
    fputc('"', fp);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', fp);
        fputc(*s, fp);
    }
    fputc('"', fp);
}

void bp_csv_num(FILE *fp, double x)
{
    if (!isnan(x))
        fprintf(fp, "%.17g", x);
}
