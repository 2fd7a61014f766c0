/* Core utilities: SHA-256 against FIPS 180-4 example vectors, atomic writes,
 * and graph shape inference on exact small cases worked by hand. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/fileio.h"
#include "core/graph.h"

static void hex_of(const char *s, size_t n, char hex[65])
{
    unsigned char d[32];
    bp_sha256(s, n, d);
    bp_sha256_hex(d, hex);
}

Test(sha256, fips_vectors)
{
    char hex[65];
    hex_of("abc", 3, hex);
    cr_assert_str_eq(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    hex_of("", 0, hex);
    cr_assert_str_eq(hex, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    const char *two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
    hex_of(two, strlen(two), hex);
    cr_assert_str_eq(hex, "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

Test(fileio, atomic_write_leaves_no_temporary)
{
    char dir[] = "/tmp/bp_fileio_XXXXXX";
    cr_assert_not_null(mkdtemp(dir));
    char path[256];
    snprintf(path, sizeof path, "%s/out.txt", dir);
    cr_assert_eq(bp_write_file_atomic(path, "hello", 5), BP_OK);
    char *data;
    size_t len;
    cr_assert_eq(bp_read_file(path, &data, &len), BP_OK);
    cr_assert_eq(len, 5);
    cr_assert_str_eq(data, "hello");
    free(data);
    bp_out o;
    cr_assert_eq(bp_out_open(&o, path), BP_OK);
    fputs("partial", o.fp);
    bp_out_abort(&o);
    cr_assert_eq(bp_read_file(path, &data, &len), BP_OK);
    cr_assert_str_eq(data, "hello", "an aborted write must not touch the target");
    free(data);
    unlink(path);
    cr_assert_eq(rmdir(dir), 0, "the directory must be empty: no temporary left");
    snprintf(path, sizeof path, "/nonexistent-dir/x.json");
    cr_assert_eq(bp_write_file_atomic(path, "x", 1), BP_ERR_IO);
    cr_assert(strstr(bp_last_error(), "/nonexistent-dir/x.json") != NULL);
}

Test(graph, shapes_and_layer_table)
{
    bp_graph *g = bp_graph_new();
    int64_t xd[4] = {-1, 3, 28, 28}, wd[4] = {8, 3, 3, 3}, bd[1] = {8};
    int x = bp_graph_add_input(g, "x", 4, xd);
    int w = bp_graph_add_param(g, "conv1.weight", 4, wd, NULL);
    int b = bp_graph_add_param(g, "conv1.bias", 1, bd, NULL);
    bp_attrs a = bp_attrs_default();
    a.stride[0] = a.stride[1] = 2;
    a.pads[0] = a.pads[1] = a.pads[2] = a.pads[3] = 1;
    int in[3] = {x, w, b};
    int y = bp_graph_add_node(g, BP_OP_CONV, "c1", in, 3, "y", &a);
    cr_assert_geq(y, 0, "%s", bp_last_error());
    /* (28 + 2 - 3) / 2 + 1 = 14 */
    cr_assert_eq(g->values[y].dims[2], 14);
    cr_assert_eq(g->values[y].dims[0], -1);
    bp_attrs f = bp_attrs_default();
    int fin[1] = {y};
    int fl = bp_graph_add_node(g, BP_OP_FLATTEN, "f", fin, 1, "flat", &f);
    cr_assert_eq(g->values[fl].dims[1], 8 * 14 * 14);
    int64_t gw[2] = {10, 8 * 14 * 14};
    int fcw = bp_graph_add_param(g, "fc.weight", 2, gw, NULL);
    bp_attrs ga = bp_attrs_default();
    ga.trans_b = 1;
    int gin[2] = {fl, fcw};
    int z = bp_graph_add_node(g, BP_OP_GEMM, "fc", gin, 2, "logits", &ga);
    cr_assert_eq(g->values[z].dims[1], 10);
    bp_layer *ls;
    int n;
    cr_assert_eq(bp_graph_layers(g, &ls, &n), BP_OK);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(ls[0].name, "conv1");
    cr_assert_eq(ls[0].macs, 8LL * 14 * 14 * 27);
    cr_assert_eq(ls[1].macs, 10LL * 8 * 14 * 14);
    cr_assert_eq(ls[0].bias, b);
    free(ls);
    /* a mismatched weight is a shape error naming the node */
    int64_t bad[4] = {8, 4, 3, 3};
    int wb = bp_graph_add_param(g, "bad.weight", 4, bad, NULL);
    int in2[2] = {x, wb};
    cr_assert_eq(bp_graph_add_node(g, BP_OP_CONV, "c2", in2, 2, "y2", &a), -1);
    cr_assert(strstr(bp_last_error(), "c2") != NULL);
    bp_graph_free(g);
}
