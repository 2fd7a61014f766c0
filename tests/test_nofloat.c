/* test_nofloat.c — proof that the integer-only path has no floating point.
 *
 * The integer path is the code between the quantized input and the logits:
 * quant/int_engine.c (the engine), quant/qkernels.c (dispatch, panels),
 * quant/kern_ref.c, quant/kern_avx2.c, quant/kern_dw.c, quant/kern_amx.c
 * (kernels) and quant/requant.c (the requantization helpers). This suite
 * disassembles those objects from this build (objdump -d) and fails on
 *   - any x87 instruction (mnemonics starting with 'f'),
 *   - any SSE/AVX floating-point arithmetic, comparison, conversion, FMA,
 *     square root, min/max, rounding or reciprocal (…ss/sd/ps/pd forms, cvt…),
 * (register moves and bitwise logic on xmm/ymm registers are not arithmetic
 * and are allowed: compilers use them to copy and zero memory), and checks
 * with nm that every symbol those objects import is either defined by one of
 * them or is on a short allow-list (memcpy/memset/allocation, bp_error
 * for failure messages, CPU feature detection, syscall for the AMX permission
 * request) — so no call can leave the checked set into libm or other
 * floating-point code. A positive control runs the same checker on
 * quant/requant_prep.o and quant/qmodel.o, which must be
 * flagged (they compute scales with doubles and call frexp/round). */
#include <criterion/criterion.h>
#include <libgen.h>
#include <limits.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char *int_objs[] = {"int_engine", "qkernels", "kern_ref", "kern_avx2", "kern_dw", "kern_amx",
                                 "requant"};
#define NINT (int)(sizeof int_objs / sizeof *int_objs)

static char objdir[PATH_MAX];

static void find_objdir(void)
{
    char exe[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    cr_assert(n > 0, "cannot read /proc/self/exe");
    exe[n] = 0;
    /* BUILD/tests/test_nofloat -> BUILD/f32/quant */
    char *d = dirname(dirname(exe));
    snprintf(objdir, sizeof objdir, "%s/f32/quant", d);
}

static void objpath(const char *name, char *out, size_t len)
{
    int w = snprintf(out, len, "%.3000s/%.60s.o", objdir, name);
    cr_assert(w > 0 && (size_t)w < len, "path too long");
    cr_assert(access(out, R_OK) == 0, "object %s not found", out);
}

/* Counts floating-point instructions in an object; prints up to 5. */
static int count_float_insns(const char *obj, char *first, size_t flen)
{
    char cmd[PATH_MAX + 64];
    snprintf(cmd, sizeof cmd, "objdump -d --no-show-raw-insn '%s'", obj);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "objdump failed to start");
    regex_t sse;
    cr_assert_eq(regcomp(&sse,
                         "^v?(add|sub|mul|div|sqrt|min|max|rcp|rsqrt|round|cmp[a-z]*|u?comi|hadd|hsub|"
                         "addsub|dp|getexp|getmant|scalef|range|reduce|fixupimm)(ss|sd|ps|pd|sh|ph)$"
                         "|^v?cvt|^v?f",
                         REG_EXTENDED | REG_NOSUB),
                 0);
    char line[1024];
    int count = 0, insns = 0;
    first[0] = 0;
    while (fgets(line, sizeof line, p)) {
        /* instruction lines: "  addr:\tmnemonic operands" */
        char *tab = strchr(line, '\t');
        if (!tab || !strchr(line, ':'))
            continue;
        char mn[64];
        if (sscanf(tab + 1, "%63s", mn) != 1)
            continue;
        insns++;
        if (!strcmp(mn, "nop") || !strncmp(mn, "nop", 3))
            continue;
        if (regexec(&sse, mn, 0, NULL, 0) == 0) {
            if (count++ == 0)
                snprintf(first, flen, "%s", line);
        }
    }
    regfree(&sse);
    int rc = pclose(p);
    cr_assert_eq(rc, 0, "objdump on %s failed", obj);
    cr_assert_gt(insns, 20, "objdump printed almost nothing for %s", obj);
    return count;
}

/* Undefined symbols of an object, space separated into buf. */
static void undefined_syms(const char *obj, char *buf, size_t len)
{
    char cmd[PATH_MAX + 32];
    snprintf(cmd, sizeof cmd, "nm -u '%s'", obj);
    FILE *p = popen(cmd, "r");
    cr_assert(p);
    buf[0] = 0;
    char line[512];
    while (fgets(line, sizeof line, p)) {
        char type[8], sym[400];
        if (sscanf(line, "%7s %399s", type, sym) == 2) {
            strncat(buf, " ", len - strlen(buf) - 1);
            strncat(buf, sym, len - strlen(buf) - 1);
        }
    }
    cr_assert_eq(pclose(p), 0);
}

static int defined_in_int_objs(const char *sym)
{
    for (int i = 0; i < NINT; i++) {
        char obj[PATH_MAX], cmd[PATH_MAX + 64];
        objpath(int_objs[i], obj, sizeof obj);
        snprintf(cmd, sizeof cmd, "nm --defined-only '%s'", obj);
        FILE *p = popen(cmd, "r");
        char line[512];
        int found = 0;
        while (fgets(line, sizeof line, p)) {
            char addr[40], type[8], s[400];
            if (sscanf(line, "%39s %7s %399s", addr, type, s) == 3 && !strcmp(s, sym) &&
                strchr("TtDdBbRr", type[0]))
                found = 1;
        }
        pclose(p);
        if (found)
            return 1;
    }
    return 0;
}

static const char *allowed[] = {"memcpy", "memset", "malloc", "calloc", "free", "aligned_alloc",
                                "syscall", "bp_error", "bp_error_wrap", "__stack_chk_fail",
                                "__cpu_indicator_init", "__cpu_model", "_GLOBAL_OFFSET_TABLE_"};

Test(nofloat, integer_path_has_no_float_instructions)
{
    find_objdir();
    for (int i = 0; i < NINT; i++) {
        char obj[PATH_MAX], first[1024];
        objpath(int_objs[i], obj, sizeof obj);
        int n = count_float_insns(obj, first, sizeof first);
        cr_expect_eq(n, 0, "%s.o has %d floating-point instructions, first: %s", int_objs[i], n, first);
    }
}

Test(nofloat, integer_path_calls_nothing_outside)
{
    find_objdir();
    for (int i = 0; i < NINT; i++) {
        char obj[PATH_MAX], syms[8192];
        objpath(int_objs[i], obj, sizeof obj);
        undefined_syms(obj, syms, sizeof syms);
        char *save = NULL;
        for (char *s = strtok_r(syms, " ", &save); s; s = strtok_r(NULL, " ", &save)) {
            int ok = 0;
            for (size_t k = 0; k < sizeof allowed / sizeof *allowed; k++)
                ok |= !strcmp(s, allowed[k]);
            /* `make sanitize` builds: ASan/UBSan instrumentation calls (integer
             * checks; a float-cast check would come with a float instruction,
             * which the other test rejects) */
            ok |= (!strncmp(s, "__asan_", 7) || !strncmp(s, "__ubsan_handle_", 15) ||
                   !strncmp(s, "__sanitizer_", 12)) && !strstr(s, "float");
            ok = ok || defined_in_int_objs(s);
            cr_expect(ok, "%s.o imports '%s', which is neither integer-path code nor allowed", int_objs[i], s);
        }
    }
}

Test(nofloat, checker_flags_float_code)
{
    /* Positive control: scale computation objects must be flagged. */
    find_objdir();
    const char *fl[] = {"requant_prep", "qmodel"};
    for (int i = 0; i < 2; i++) {
        char obj[PATH_MAX], first[1024], syms[8192];
        objpath(fl[i], obj, sizeof obj);
        cr_assert_gt(count_float_insns(obj, first, sizeof first), 0, "%s.o not flagged", fl[i]);
        undefined_syms(obj, syms, sizeof syms);
        cr_assert(strstr(syms, "frexp") || strstr(syms, "round") || strstr(syms, "ldexp"),
                  "%s.o imports no libm function: %s", fl[i], syms);
    }
}
