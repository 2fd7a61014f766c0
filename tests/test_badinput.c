/* Bad input across every command: each case runs bin/bitplan (or $BITPLAN,
 * which `make sanitize` points at its sanitized build) as a subprocess on a
 * corrupt, truncated, mistyped, incomplete or inconsistent input, or a bad
 * option value, and asserts
 *   - the exit status (1 bad input, 2 usage, 3 infeasible; never 0, never a
 *     signal),
 *   - a message on stderr naming the file and the field / option at fault,
 *   - no output file left behind: the output folder is still empty and no
 *     temporary (*.tmp*) file remains anywhere in the case's folder.
 * Two controls run the same harness on good input and must find the output,
 * so the "nothing written" checks are known to see files when there are some.
 *
 * Inputs are written by the suite itself into a fresh folder per test
 * (mkdtemp under $TMPDIR or /tmp), from the ONNX fixtures in tests/fixtures/
 * and small hand-written JSON / IDX / .npy files. */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIX "tests/fixtures/onnx/"
#define MODEL FIX "gap_bn_op13.onnx" /* input 3x10x10, layers conv, dw, fc1, fc2 */

static char dir[512];    /* the case's folder: in/ for inputs, out/ for outputs */
static char in[600], out[600];
static char err_text[16384];

/* ---- files ------------------------------------------------------------------- */

static void put(const char *name, const void *data, size_t len)
{
    char p[700];
    snprintf(p, sizeof p, "%s/%s", in, name);
    FILE *fp = fopen(p, "wb");
    cr_assert_not_null(fp, "cannot create %s", p);
    cr_assert_eq(fwrite(data, 1, len, fp), len);
    cr_assert_eq(fclose(fp), 0);
}

static void puts_in(const char *name, const char *text) { put(name, text, strlen(text)); }

/* text with the first occurrence of `from` replaced by `to`, into in/name */
static void put_subst(const char *name, const char *text, const char *from, const char *to)
{
    const char *at = strstr(text, from);
    cr_assert_not_null(at, "'%s' not in the template", from);
    size_t a = (size_t)(at - text), f = strlen(from), t = strlen(to), n = strlen(text);
    char *buf = malloc(n - f + t + 1);
    cr_assert_not_null(buf);
    memcpy(buf, text, a);
    memcpy(buf + a, to, t);
    memcpy(buf + a + t, at + f, n - a - f + 1);
    puts_in(name, buf);
    free(buf);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    cr_assert_not_null(fp, "cannot open %s", path);
    fseek(fp, 0, SEEK_END);
    long n = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    unsigned char *b = malloc((size_t)n + 1);
    cr_assert_not_null(b);
    cr_assert_eq(fread(b, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    b[n] = 0;
    *len = (size_t)n;
    return b;
}

static void be32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* IDX images (n, h, w) holding `have` bytes of pixels, under magic `magic` */
static void put_idx_images(const char *name, uint32_t magic, int n, int h, int w, size_t have)
{
    unsigned char *b = calloc(1, 16 + have);
    cr_assert_not_null(b);
    be32(b, magic);
    be32(b + 4, (uint32_t)n);
    be32(b + 8, (uint32_t)h);
    be32(b + 12, (uint32_t)w);
    for (size_t i = 0; i < have; i++)
        b[16 + i] = (unsigned char)(i * 37);
    put(name, b, 16 + have);
    free(b);
}

static void put_idx_labels(const char *name, int n)
{
    unsigned char *b = calloc(1, 8 + (size_t)n);
    cr_assert_not_null(b);
    be32(b, 0x801);
    be32(b + 4, (uint32_t)n);
    for (int i = 0; i < n; i++)
        b[8 + i] = (unsigned char)(i % 5);
    put(name, b, 8 + (size_t)n);
    free(b);
}

/* .npy version 1.0 with a header padded to 64 bytes */
static void put_npy(const char *name, const char *descr, const char *shape, const void *data,
                    size_t len)
{
    char hdr[256];
    int h = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': %s, }",
                     descr, shape);
    while ((10 + h + 1) % 64)
        hdr[h++] = ' ';
    hdr[h++] = '\n';
    unsigned char *b = malloc(10 + (size_t)h + len);
    cr_assert_not_null(b);
    memcpy(b, "\x93NUMPY\x01\x00", 8);
    b[8] = (unsigned char)(h & 255);
    b[9] = (unsigned char)(h >> 8);
    memcpy(b + 10, hdr, (size_t)h);
    memcpy(b + 10 + h, data, len);
    put(name, b, 10 + (size_t)h + len);
    free(b);
}

/* ---- templates ----------------------------------------------------------------- */

/* docs/FORMATS.md's minimal sensitivity file (smallest size: 1064 bytes) */
static const char SENS[] =
    "{\n \"format\": \"bitplan-sensitivity\",\n \"version\": 1,\n \"layers\": [\n"
    "  {\"name\": \"conv1\", \"op\": \"Conv\", \"params\": 432, \"macs\": 442368, \"cout\": 16,\n"
    "   \"candidates\": [{\"bits\": 4, \"omega\": 0.031}, {\"bits\": 8, \"omega\": 0.0002}]},\n"
    "  {\"name\": \"fc\", \"op\": \"Gemm\", \"params\": 1280, \"macs\": 1280, \"cout\": 10,\n"
    "   \"candidates\": [{\"bits\": 4, \"omega\": 0.004}, {\"bits\": 8, \"omega\": 0.00001}]}\n"
    " ]\n}\n";

/* a plan for MODEL */
static const char PLAN[] =
    "{\"format\": \"bitplan-plan\", \"version\": 1,\n"
    " \"layers\": [{\"name\": \"conv\", \"wbits\": 8}, {\"name\": \"dw\", \"wbits\": 4},\n"
    "            {\"name\": \"fc1\", \"wbits\": 8}, {\"name\": \"fc2\", \"wbits\": 8}]}\n";

static const char PROFILE[] =
    "{\"format\": \"bitplan-profile\", \"version\": 1, \"device\": \"test\",\n"
    " \"conditions\": {\"batch\": 1, \"threads\": 1, \"repetitions\": 5, \"warmup\": 1},\n"
    " \"entries\": [{\"op\": \"Gemm\", \"cin\": 128, \"cout\": 10, \"kh\": 1, \"kw\": 1, \"stride\": 1,\n"
    "  \"group\": 1, \"in_h\": 1, \"in_w\": 1, \"batch\": 1, \"b_w\": 8, \"b_a\": 8, \"macs\": 1280,\n"
    "  \"latency_ms\": 0.001, \"source\": \"measured\"}]}\n";

/* ---- per-test folder ------------------------------------------------------------ */

static void rm_rf(const char *path)
{
    char cmd[700];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    if (system(cmd) != 0)
        cr_log_warn("could not remove %s", path);
}

static void setup(void)
{
    const char *t = getenv("TMPDIR");
    snprintf(dir, sizeof dir, "%s/bp_badinput_XXXXXX", t && t[0] ? t : "/tmp");
    cr_assert_not_null(mkdtemp(dir), "mkdtemp: %s", strerror(errno));
    snprintf(in, sizeof in, "%s/in", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    cr_assert_eq(mkdir(in, 0755), 0);
    cr_assert_eq(mkdir(out, 0755), 0);

    /* calibration / evaluation data for MODEL: 16 samples of 3x10x10 */
    float x[16 * 300];
    uint32_t r = 12345;
    for (int i = 0; i < 16 * 300; i++) {
        r = r * 1664525u + 1013904223u;
        x[i] = (float)((int)(r >> 16) % 2001 - 1000) / 500.0f;
    }
    int64_t y[16];
    for (int i = 0; i < 16; i++)
        y[i] = i % 5;
    put_npy("x.npy", "<f4", "(16, 3, 10, 10)", x, sizeof x);
    put_npy("y.npy", "<i8", "(16,)", y, sizeof y);
    put_npy("y4.npy", "<i8", "(4,)", y, 4 * sizeof *y);

    /* corrupt ONNX: the first half of a good model; a text file */
    size_t n;
    unsigned char *m = slurp(MODEL, &n);
    put("trunc.onnx", m, n / 2);
    free(m);
    puts_in("text.onnx", "this is not a protobuf\n");

    puts_in("sens.json", SENS);
    puts_in("plan.json", PLAN);
    puts_in("profile.json", PROFILE);
    puts_in("afile", "a regular file where a folder is expected\n");
}

static void teardown(void)
{
    if (dir[0])
        rm_rf(dir);
}

TestSuite(badinput, .init = setup, .fini = teardown);

/* ---- running bitplan -------------------------------------------------------------- */

static const char *bitplan(void)
{
    const char *b = getenv("BITPLAN");
    return b && b[0] ? b : "bin/bitplan";
}

/* Expands "@" in args into the in/ folder and "%" into the out/ folder, runs
 * bitplan with them, keeps stderr in err_text, returns the exit status (or
 * 128 + signal). */
static int run(const char *args)
{
    char ex[4096], cmd[8192];
    size_t k = 0;
    for (const char *p = args; *p && k + 600 < sizeof ex; p++) {
        const char *s = *p == '@' ? in : *p == '%' ? out : NULL;
        if (s) {
            k += (size_t)snprintf(ex + k, sizeof ex - k, "%s", s);
        } else {
            ex[k++] = *p;
        }
    }
    ex[k] = 0;
    cr_assert(access(bitplan(), X_OK) == 0, "%s is not built (make tests builds it)", bitplan());
    snprintf(cmd, sizeof cmd, "OMP_NUM_THREADS=1 %s %s </dev/null >%s/stdout.txt 2>%s/stderr.txt",
             bitplan(), ex, dir, dir);
    int rc = system(cmd);
    char ep[700];
    snprintf(ep, sizeof ep, "%s/stderr.txt", dir);
    FILE *fp = fopen(ep, "r");
    cr_assert_not_null(fp);
    size_t got = fread(err_text, 1, sizeof err_text - 1, fp);
    err_text[got] = 0;
    fclose(fp);
    cr_assert(rc != -1, "system() failed");
    if (WIFSIGNALED(rc))
        return 128 + WTERMSIG(rc);
    return WEXITSTATUS(rc);
}

/* Files in a folder whose names contain `part` ("" for any); the first found
 * goes into `first`. */
static int count_files(const char *d, const char *part, char *first, size_t flen)
{
    DIR *dp = opendir(d);
    cr_assert_not_null(dp, "cannot list %s", d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(dp))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        if (strstr(e->d_name, part)) {
            if (!n && first)
                snprintf(first, flen, "%s", e->d_name);
            n++;
        }
    }
    closedir(dp);
    return n;
}

/* No output and no temporary left behind, in out/, in/ or the case folder. */
static void assert_nothing_written(void)
{
    char f[256] = "";
    cr_expect_eq(count_files(out, "", f, sizeof f), 0, "output folder not empty: '%s' left behind", f);
    cr_expect_eq(count_files(in, ".tmp", f, sizeof f), 0, "temporary '%s' left in in/", f);
    cr_expect_eq(count_files(dir, ".tmp", f, sizeof f), 0, "temporary '%s' left in the folder", f);
}

/* Runs args; wants exit status `want`, stderr containing every needle (NULL
 * ends the list), and nothing written. */
static void fails(int want, const char *args, ...)
{
    int rc = run(args);
    cr_expect_eq(rc, want, "bitplan %s: exit %d, want %d; stderr:\n%s", args, rc, want, err_text);
    cr_expect(strncmp(err_text, "bitplan", 7) == 0, "bitplan %s: stderr does not start with 'bitplan':\n%s",
              args, err_text);
    va_list ap;
    va_start(ap, args);
    const char *needle;
    while ((needle = va_arg(ap, const char *))) {
        char ex[700];
        const char *s = needle;
        if (needle[0] == '@') { /* a path in in/ */
            snprintf(ex, sizeof ex, "%s%s", in, needle + 1);
            s = ex;
        }
        cr_expect(strstr(err_text, s) != NULL, "bitplan %s: stderr lacks \"%s\":\n%s", args, s,
                  err_text);
    }
    va_end(ap);
    assert_nothing_written();
}

#define DATA "--data npy:@/x.npy,@/y.npy"
#define SENS_FAST DATA " --samples 16 --min-probes 2 --max-probes 3 --quiet"

/* ---- controls: the harness sees outputs when there are some ------------------------- */

Test(badinput, control_ilp_writes_the_plan)
{
    cr_assert_eq(run("ilp @/sens.json --size-frac 0.5 --quiet -o %/plan.json"), 0, "%s", err_text);
    char f[256] = "";
    cr_expect_eq(count_files(out, "", f, sizeof f), 1, "want only plan.json in out/");
    cr_expect_str_eq(f, "plan.json");
}

Test(badinput, control_sensitivity_writes_the_file)
{
    cr_assert_eq(run("sensitivity " MODEL " " SENS_FAST " -o %/s.json --csv %/s.csv"), 0, "%s", err_text);
    cr_expect_eq(count_files(out, "", NULL, 0), 2, "want s.json and s.csv in out/");
    cr_expect_eq(count_files(out, ".tmp", NULL, 0), 0);
}

/* ---- info --------------------------------------------------------------------------- */

Test(badinput, info_truncated_onnx)
{
    fails(1, "info @/trunc.onnx", "@/trunc.onnx", "not a valid ONNX model", NULL);
}

Test(badinput, info_text_file_as_onnx)
{
    fails(1, "info @/text.onnx", "@/text.onnx", "not a valid ONNX model", NULL);
}

Test(badinput, info_missing_file)
{
    fails(1, "info @/none.onnx", "@/none.onnx", "cannot open", NULL);
}

Test(badinput, info_wrong_tensor_type)
{
    fails(1, "info " FIX "err_wrong_type.onnx", "err_wrong_type.onnx", "'wi'", "int64", NULL);
}

Test(badinput, info_undefined_input)
{
    fails(1, "info " FIX "err_missing_init.onnx", "err_missing_init.onnx", "'nowhere'", "not defined",
          NULL);
}

Test(badinput, info_unknown_option)
{
    fails(2, "info " MODEL " --bogus", "'--bogus'", NULL);
}

Test(badinput, unknown_command)
{
    fails(2, "frobnicate", "unknown command 'frobnicate'", NULL);
}

/* ---- sensitivity ------------------------------------------------------------------- */

Test(badinput, sensitivity_corrupt_onnx)
{
    fails(1, "sensitivity @/trunc.onnx " SENS_FAST " -o %/s.json", "@/trunc.onnx", "not a valid ONNX",
          NULL);
}

Test(badinput, sensitivity_missing_data_file)
{
    fails(1, "sensitivity " MODEL " --data idx:@/nope-images,@/nope-labels --samples 4 -o %/s.json",
          "@/nope-images", "cannot open", NULL);
}

Test(badinput, sensitivity_bad_idx_magic)
{
    put_idx_images("bad.idx", 0x804, 4, 3, 3, 36);
    put_idx_labels("lab.idx", 4);
    fails(1, "sensitivity " MODEL " --data idx:@/bad.idx,@/lab.idx --samples 4 -o %/s.json",
          "@/bad.idx", "bad magic", "0x00000804", NULL);
}

Test(badinput, sensitivity_truncated_idx)
{
    put_idx_images("img.idx", 0x803, 4, 3, 3, 20);
    put_idx_labels("lab.idx", 4);
    fails(1, "sensitivity " MODEL " --data idx:@/img.idx,@/lab.idx --samples 4 -o %/s.json",
          "@/img.idx", "truncated", NULL);
}

Test(badinput, sensitivity_labels_given_as_images)
{
    fails(1, "sensitivity " MODEL " --data npy:@/y.npy,@/x.npy --samples 4 -o %/s.json", "@/y.npy",
          "dtype", NULL);
}

Test(badinput, sensitivity_sample_count_mismatch)
{
    fails(1, "sensitivity " MODEL " --data npy:@/x.npy,@/y4.npy --samples 4 -o %/s.json", "@/x.npy",
          "@/y4.npy", "16 samples", NULL);
}

Test(badinput, sensitivity_data_shape_not_the_models)
{
    put_idx_images("img.idx", 0x803, 4, 3, 3, 36);
    put_idx_labels("lab.idx", 4);
    fails(1, "sensitivity " MODEL " --data idx:@/img.idx,@/lab.idx --samples 4 -o %/s.json",
          MODEL, "'input'", "300", NULL);
}

Test(badinput, sensitivity_zero_samples)
{
    fails(2, "sensitivity " MODEL " " DATA " --samples 0 -o %/s.json", "--samples", NULL);
}

Test(badinput, sensitivity_negative_seed)
{
    fails(2, "sensitivity " MODEL " " DATA " --seed -1 -o %/s.json", "--seed", "'-1'", NULL);
}

Test(badinput, sensitivity_bits_out_of_range)
{
    fails(2, "sensitivity " MODEL " " DATA " --bits 4,40 -o %/s.json", "bits", "40", NULL);
}

Test(badinput, sensitivity_nan_tolerance)
{
    fails(2, "sensitivity " MODEL " " DATA " --tol nan -o %/s.json", "tol", "nan", NULL);
}

Test(badinput, sensitivity_unwritable_output_folder)
{
    fails(1, "sensitivity " MODEL " " SENS_FAST " -o @/afile/s.json", "@/afile/s.json", "cannot write",
          NULL);
}

/* ---- ilp ------------------------------------------------------------------------------ */

Test(badinput, ilp_nan_in_sensitivity_file)
{
    put_subst("s.json", SENS, "0.031", "NaN");
    fails(1, "ilp @/s.json --size-frac 0.5 -o %/p.json", "@/s.json", "NaN", NULL);
}

Test(badinput, ilp_inf_in_sensitivity_file)
{
    put_subst("s.json", SENS, "0.031", "-1e999");
    fails(1, "ilp @/s.json --size-frac 0.5 -o %/p.json", "@/s.json", "1e999", NULL);
}

Test(badinput, ilp_wrong_type_in_sensitivity_file)
{
    put_subst("s.json", SENS, "432", "\"432\"");
    fails(1, "ilp @/s.json --size-frac 0.5 -o %/p.json", "@/s.json", "conv1", "\"params\"", "string",
          NULL);
}

Test(badinput, ilp_missing_field_in_sensitivity_file)
{
    put_subst("s.json", SENS, "\"cout\": 10,", "");
    fails(1, "ilp @/s.json --size-frac 0.5 -o %/p.json", "@/s.json", "layer 1 (fc)", "\"cout\"", NULL);
}

Test(badinput, ilp_truncated_sensitivity_file)
{
    put("s.json", SENS, 200);
    fails(1, "ilp @/s.json --size-frac 0.5 -o %/p.json", "@/s.json", "not valid JSON", NULL);
}

Test(badinput, ilp_duplicate_layer_names)
{
    put_subst("s.json", SENS, "\"fc\"", "\"conv1\"");
    fails(1, "ilp @/s.json --size-frac 0.5 -o %/p.json", "@/s.json", "\"name\"", "conv1", NULL);
}

Test(badinput, ilp_plan_file_given_as_sensitivity_file)
{
    fails(1, "ilp @/plan.json --size-frac 0.5 -o %/p.json", "@/plan.json", "format", NULL);
}

Test(badinput, ilp_zero_budget)
{
    fails(3, "ilp @/sens.json --size 0 -o %/p.json", "size budget 0 bytes", "smallest reachable 1064",
          NULL);
}

Test(badinput, ilp_negative_budget)
{
    fails(2, "ilp @/sens.json --size -5 -o %/p.json", "size budget", "\"-5\"", NULL);
}

Test(badinput, ilp_infeasible_budget)
{
    fails(3, "ilp @/sens.json --size 1KB --bops 1G -o %/p.json", "size budget 1000 bytes",
          "smallest reachable 1064", NULL);
}

Test(badinput, ilp_fraction_out_of_range)
{
    fails(2, "ilp @/sens.json --size-frac 1.5 -o %/p.json", "\"1.5\"", "[0, 1]", NULL);
}

Test(badinput, ilp_nan_budget)
{
    fails(2, "ilp @/sens.json --bops nan -o %/p.json", "bops budget", "\"nan\"", NULL);
}

Test(badinput, ilp_unknown_layer_pinned)
{
    fails(2, "ilp @/sens.json --size-frac 0.5 --pin nosuch=4 -o %/p.json", "\"nosuch\"", NULL);
}

Test(badinput, ilp_latency_budget_without_profile)
{
    fails(2, "ilp @/sens.json --latency 1ms -o %/p.json", "latency", "profile", NULL);
}

Test(badinput, ilp_nan_in_profile)
{
    put_subst("p.json", PROFILE, "0.001", "NaN");
    fails(1, "ilp @/sens.json --profile @/p.json --latency-frac 0.5 -o %/p.json", "@/p.json", NULL);
}

Test(badinput, ilp_unwritable_output_folder)
{
    fails(1, "ilp @/sens.json --size-frac 0.5 -o @/afile/p.json", "@/afile/p.json", "cannot write", NULL);
}

Test(badinput, ilp_missing_output_folder)
{
    fails(1, "ilp @/sens.json --size-frac 0.5 -o %/no/such/folder/p.json", "p.json", NULL);
}

/* ---- eval --plan ---------------------------------------------------------------------- */

#define EVALQ "eval " MODEL " " DATA " --calib-data npy:@/x.npy,@/y.npy --calib 4 --limit 4 --plan "

Test(badinput, eval_plan_unknown_layer)
{
    put_subst("p.json", PLAN, "\"dw\"", "\"dwx\"");
    fails(1, EVALQ "@/p.json -o %/r.json", "@/p.json", "'dwx'", "another model", NULL);
}

Test(badinput, eval_plan_for_another_model)
{
    put_subst("p.json", PLAN, "\"version\": 1,",
              "\"version\": 1, \"model\": {\"sha256\": "
              "\"abababababababababababababababababababababababababababababababab\"},");
    fails(1, EVALQ "@/p.json -o %/r.json", "@/p.json", "sha256", "abababab", MODEL, NULL);
}

Test(badinput, eval_plan_zero_bits)
{
    put_subst("p.json", PLAN, "\"wbits\": 8", "\"wbits\": 0");
    fails(1, EVALQ "@/p.json -o %/r.json", "@/p.json", "layer 0 (conv)", "\"wbits\"", NULL);
}

Test(badinput, eval_plan_bits_of_wrong_type)
{
    put_subst("p.json", PLAN, "\"wbits\": 4", "\"wbits\": \"4\"");
    fails(1, EVALQ "@/p.json -o %/r.json", "@/p.json", "layer 1 (dw)", "\"wbits\"", "string", NULL);
}

Test(badinput, eval_plan_with_nan)
{
    put_subst("p.json", PLAN, "\"wbits\": 4}", "\"wbits\": 4, \"omega\": NaN}");
    fails(1, EVALQ "@/p.json -o %/r.json", "@/p.json", "NaN", NULL);
}

Test(badinput, eval_plan_missing_a_layer)
{
    put_subst("p.json", PLAN, "{\"name\": \"dw\", \"wbits\": 4},", "");
    fails(1, EVALQ "@/p.json -o %/r.json", "@/p.json", "'dw'", NULL);
}

Test(badinput, eval_plan_newer_version)
{
    put_subst("p.json", PLAN, "\"version\": 1", "\"version\": 2");
    fails(1, EVALQ "@/p.json -o %/r.json", "@/p.json", "\"version\"", NULL);
}

Test(badinput, eval_report_unwritable_output_folder)
{
    fails(1, EVALQ "@/plan.json -o @/afile/r.json", "@/afile/r.json", NULL);
}

Test(badinput, eval_negative_limit)
{
    fails(2, "eval " MODEL " " DATA " --limit -3", "--limit", "'-3'", NULL);
}

Test(badinput, eval_missing_data_file)
{
    fails(1, "eval " MODEL " --data npy:@/x.npy,@/nope.npy", "@/nope.npy", "cannot open", NULL);
}

/* ---- latency ---------------------------------------------------------------------------- */

Test(badinput, latency_show_nan_profile)
{
    put_subst("p.json", PROFILE, "0.001", "NaN");
    fails(1, "latency show @/p.json", "@/p.json", NULL);
}

Test(badinput, latency_show_truncated_profile)
{
    put("p.json", PROFILE, 150);
    fails(1, "latency show @/p.json", "@/p.json", "not valid JSON", NULL);
}

Test(badinput, latency_import_malformed_csv)
{
    puts_in("t.csv", "layer,op,cin,cout,kernel,stride,in_hw,out_hw,params,macs_per_image,batch,"
                     "latency_ms_w4a4,latency_ms_w8a8\nconv1,Conv,3,64,7,2,224,abc,1,2\n");
    fails(1, "latency import-csv @/t.csv -o %/p.json", "@/t.csv", ":2", NULL);
}

Test(badinput, latency_roofline_negative_bandwidth)
{
    fails(2, "latency roofline -o %/p.json --device x --batch 1 --peak 8=1e12 --mem-bw -1", "--mem-bw",
          NULL);
}

Test(badinput, latency_measure_unwritable_output_folder)
{
    fails(1, "latency measure " MODEL " --bits 8 --reps 1 --warmup 0 --min-rep-ms 0.01 --quiet "
             "-o @/afile/p.json",
          "@/afile/p.json", "cannot write", NULL);
}

/* ---- train -------------------------------------------------------------------------------- */

Test(badinput, train_unknown_architecture)
{
    fails(2, "train --arch nosuch -o %/m.onnx", "'nosuch'", NULL);
}

Test(badinput, train_bad_idx_magic)
{
    put_idx_images("bad.idx", 0x804, 4, 28, 28, 4 * 784);
    put_idx_labels("lab.idx", 4);
    fails(1, "train --arch lenet5 --epochs 1 --data idx:@/bad.idx,@/lab.idx --test idx:@/bad.idx,@/lab.idx "
             "--quiet -o %/m.onnx",
          "@/bad.idx", "bad magic", NULL);
}

Test(badinput, train_nan_learning_rate)
{
    fails(2, "train --arch lenet5 --lr nan -o %/m.onnx", "--lr", "'nan'", NULL);
}

/* ---- several outputs: one unwritable, none written ------------------------------------- */

Test(badinput, sensitivity_unwritable_csv_leaves_no_json)
{
    fails(1, "sensitivity " MODEL " " SENS_FAST " -o %/s.json --csv @/afile/s.csv", "@/afile/s.csv",
          "cannot write", NULL);
}

Test(badinput, ilp_sweep_with_unwritable_plan_leaves_no_frontier)
{
    fails(1, "ilp @/sens.json --size-frac 0.5 --sweep size:3 --frontier %/f -o @/afile/p.json",
          "@/afile/p.json", "cannot write", NULL);
}

Test(badinput, ilp_sweep_with_infeasible_plan_leaves_no_frontier)
{
    fails(3, "ilp @/sens.json --size 10B --sweep bops:3 -o %/p.json", "smallest reachable 1064", NULL);
}

#define EXPORTQ "export " MODEL " --calib-data npy:@/x.npy,@/y.npy --calib 4 --plan "

Test(badinput, export_unwritable_source_leaves_no_header)
{
    fails(1, EXPORTQ "@/plan.json --c-header %/m.h --c-source @/afile/m.c", "@/afile/m.c", "cannot write",
          NULL);
}

/* ---- export ------------------------------------------------------------------------------ */

Test(badinput, export_plan_unknown_layer)
{
    put_subst("p.json", PLAN, "\"fc1\"", "\"fc9\"");
    fails(1, EXPORTQ "@/p.json --c-header %/m.h --c-source %/m.c", "@/p.json", "'fc9'", NULL);
}

Test(badinput, export_plan_for_another_model)
{
    put_subst("p.json", PLAN, "\"version\": 1,",
              "\"version\": 1, \"model\": {\"sha256\": "
              "\"cdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcdcd\"},");
    fails(1, EXPORTQ "@/p.json --c-header %/m.h", "@/p.json", "sha256", MODEL, NULL);
}

/* ---- plan (the main job) ------------------------------------------------------------------- */

#define PLANQ "plan " MODEL " " DATA " --calib-data npy:@/x.npy,@/y.npy --samples 16 --probes 8 " \
              "--calib 4 --eval-limit 8 --sweep 3 --eval-points 2 --no-density --no-plots --quiet "

Test(badinput, plan_corrupt_onnx)
{
    fails(1, "plan @/trunc.onnx --quiet -o %/run", "@/trunc.onnx", "not a valid ONNX", NULL);
}

Test(badinput, plan_fraction_out_of_range)
{
    fails(2, PLANQ "--size-frac 2 -o %/run", "\"2\"", "[0, 1]", NULL);
}

Test(badinput, plan_zero_budget)
{
    fails(3, PLANQ "--size 0 -o %/run", "size budget 0 bytes", "smallest reachable", NULL);
}

Test(badinput, plan_unwritable_output_folder)
{
    fails(1, PLANQ "-o @/afile/run", "@/afile/run", NULL);
}

Test(badinput, plan_missing_calibration_data)
{
    fails(1, "plan " MODEL " --data npy:@/x.npy,@/y.npy --calib-data npy:@/gone.npy,@/y.npy --samples 16 "
             "--probes 8 --calib 4 --no-plots --quiet -o %/run",
          "@/gone.npy", "cannot open", NULL);
}

/* ---- plot ----------------------------------------------------------------------------------- */

Test(badinput, plot_truncated_sensitivity_file)
{
    put("s.json", SENS, 200);
    fails(1, "plot --sens @/s.json -o %/plots", "@/s.json", "not valid JSON", NULL);
}

Test(badinput, plot_plan_with_nan)
{
    put_subst("p.json", PLAN, "\"wbits\": 4}", "\"wbits\": 4, \"omega\": NaN}");
    fails(1, "plot --plan @/p.json -o %/plots", "@/p.json", "NaN", NULL);
}

Test(badinput, plot_folder_without_outputs)
{
    char empty[700];
    snprintf(empty, sizeof empty, "%s/empty", in);
    cr_assert_eq(mkdir(empty, 0755), 0);
    fails(1, "plot @/empty -o %/plots", "@/empty", "none of sensitivity.json", NULL);
}
