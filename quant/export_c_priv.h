/* export_c_priv.h — what export_c.c and export_c_src.c share. Not public. */
#ifndef BP_EXPORT_C_PRIV_H
#define BP_EXPORT_C_PRIV_H

/* The inference file's body (after the #include of the header). */
extern const char bp_export_infer_src[];

#endif
