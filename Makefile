# bitplan — one Makefile for the library, the CLI, tests and benchmarks.
#
#   make            build bin/bitplan and the libraries
#   make deps       install the Debian packages bitplan needs (no-op when present)
#   make check      deps, build, run every Criterion suite in tests/
#   make demo       deps, build, run the main job on the embedded default
#   make bench      build and run the benchmarks in bench/
#
# Everything is built under $(BUILD) (default build/), so several builds can run
# side by side with `make BUILD=build-mine`.

CC      ?= cc
CFLAGS  ?= -O2 -g
BUILD   ?= build
V       ?= 0

# Module folders whose .c files make up the library (libbitplan.a).
MODULES := core sensitivity ilp latency quant plots train pipeline

WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
BPFLAGS := -std=gnu11 -fopenmp -fPIC $(WARN) -I. -I$(BUILD)/gen -MMD -MP
LDLIBS  := -lglpk -lgsl -llapacke -lopenblas -lprotobuf-c -ljansson -lz -lm -fopenmp

# MPI=1: the Open MPI build (mpicc, -DBP_MPI; core/dist.c, docs/MPI.md). Use its
# own BUILD dir, e.g. `make MPI=1 BUILD=build-mpi`; the plain build stays MPI-free.
ifeq ($(MPI),1)
CC      := mpicc
BPFLAGS += -DBP_MPI
endif

ifeq ($(V),0)
Q := @
else
Q :=
endif

PROTO   := /usr/include/onnx/onnx.proto
GEN_C   := $(BUILD)/gen/onnx/onnx.pb-c.c
GEN_H   := $(BUILD)/gen/onnx/onnx.pb-c.h

LIB_SRC := $(foreach m,$(MODULES),$(wildcard $(m)/*.c))
# Files that need per-file target flags (AVX2 kernels) carry them as function
# attributes, so one set of flags fits every file.
LIB_OBJ := $(LIB_SRC:%.c=$(BUILD)/f32/%.o) $(BUILD)/f32/gen/onnx.pb-c.o
LIB64_OBJ := $(LIB_SRC:%.c=$(BUILD)/f64/%.o) $(BUILD)/f64/gen/onnx.pb-c.o
CLI_SRC := $(wildcard cli/*.c)
CLI_OBJ := $(CLI_SRC:%.c=$(BUILD)/f32/%.o)

# Tests: tests/test_*.c link the float library; tests/f64_*.c link the double
# library (bp_real = double), used for finite-difference checks.
TEST_SRC   := $(wildcard tests/test_*.c)
TEST64_SRC := $(wildcard tests/f64_*.c)
TEST_BIN   := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%) $(TEST64_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC  := $(wildcard bench/*.c)
BENCH_BIN  := $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)

LIB   := $(BUILD)/libbitplan.a
LIB64 := $(BUILD)/libbitplan64.a
BIN   := bin/bitplan
ifeq ($(MPI),1)
BIN   := $(BUILD)/bin/bitplan
endif

.PHONY: all deps check test demo bench clean lib tests
.SECONDARY:
all: $(BIN) $(LIB)

lib: $(LIB) $(LIB64)

$(GEN_C) $(GEN_H): $(PROTO)
	@mkdir -p $(BUILD)/gen/onnx
	$(Q)cd $(dir $(PROTO)) && protoc-c --c_out=$(abspath $(BUILD)/gen/onnx) $(notdir $(PROTO))

$(BUILD)/f32/gen/onnx.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -fPIC -I$(BUILD)/gen/onnx -c $< -o $@
$(BUILD)/f64/gen/onnx.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -fPIC -I$(BUILD)/gen/onnx -c $< -o $@

$(BUILD)/f32/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	@$(if $(filter 0,$(V)),echo "  CC      $<")
	$(Q)$(CC) $(CFLAGS) $(BPFLAGS) -c $< -o $@
$(BUILD)/f64/%.o: %.c | $(GEN_H)
	@mkdir -p $(dir $@)
	@$(if $(filter 0,$(V)),echo "  CC64    $<")
	$(Q)$(CC) $(CFLAGS) $(BPFLAGS) -DBP_F64 -c $< -o $@

$(LIB): $(LIB_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^
$(LIB64): $(LIB64_OBJ)
	$(Q)rm -f $@ && ar rcs $@ $^

$(BIN): $(CLI_OBJ) $(LIB)
	@mkdir -p $(dir $@)
	@$(if $(filter 0,$(V)),echo "  LD      $@")
	$(Q)$(CC) $(CFLAGS) $(CLI_OBJ) $(LIB) $(LDLIBS) -o $@

$(BUILD)/tests/test_%: $(BUILD)/f32/tests/test_%.o $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) -lcriterion -o $@
$(BUILD)/tests/f64_%: $(BUILD)/f64/tests/f64_%.o $(LIB64)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $< $(LIB64) $(LDLIBS) -lcriterion -o $@
$(BUILD)/bench/%: $(BUILD)/f32/bench/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) $< $(LIB) $(LDLIBS) $(BENCH_LDLIBS_$*) -o $@

BENCH_LDLIBS_int_conv := -ldnnl

tests: $(TEST_BIN) $(BIN)

# Runs every suite even when one fails, then reports; exits non-zero on any failure.
# TESTS=name runs one suite (e.g. make check TESTS=test_ilp).
check: deps
	$(Q)$(MAKE) --no-print-directory tests
	$(Q)tools/run-tests $(BUILD)/tests $(TESTS)
	$(Q)[ -n "$(TESTS)" ] || MAKE="$(MAKE)" MPI_BUILD="$(BUILD)-mpi" tools/mpi-check

test: check

demo: deps
	$(Q)$(MAKE) --no-print-directory $(BIN)
	./$(BIN) plan -o out/demo

# The peers the benchmarks compare against: oneDNN (bench/int_conv) and
# PyTorch (bench/hvp_torch.py); only `make bench` installs them.
BENCH_DEPS := libdnnl-dev python3-torch python3-numpy

bench:
	$(Q)BP_DEPS_EXTRA="$(BENCH_DEPS) $(BP_DEPS_EXTRA)" tools/deps
	$(Q)$(MAKE) --no-print-directory $(BENCH_BIN) $(BIN)
	$(Q)for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

deps:
	$(Q)tools/deps

# ---- reliability: fuzzing and sanitizers ------------------------------------
#
#   make fuzz       builds every fuzz/fuzz_*.c with clang's libFuzzer (+ASan,
#                   UBSan) and runs each for FUZZ_SECONDS (default 60) on its
#                   seeds in fuzz/corpus/<target>/; FUZZ=fuzz_sens runs one.
#                   New inputs go to $(FUZZ_BUILD)/corpus/<target>, crashes to
#                   $(FUZZ_BUILD)/crash-<target>-*. Exits non-zero on a finding.
#   make sanitize   builds the library, bin and every test suite with
#                   ASan+UBSan in $(SAN_BUILD) and runs the whole suite,
#                   CLI tests included: bin/bitplan is the sanitized build
#                   while it runs and is removed afterwards (the next `make`
#                   relinks the plain one). SAN_CC=clang works too.
FUZZ_SECONDS ?= 60
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ         ?= $(patsubst fuzz/%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_FLAGS   := -g -O1 -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined
SAN_BUILD    ?= build-san
SAN_CC       ?= $(CC)
SAN_BIN      ?= bin/bitplan
SAN_FLAGS    := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined -fno-sanitize-recover=undefined

.PHONY: fuzz fuzz-bins sanitize
fuzz:
	$(Q)BP_DEPS_EXTRA="clang $(BP_DEPS_EXTRA)" tools/deps
	$(Q)$(MAKE) --no-print-directory BUILD=$(FUZZ_BUILD) CC=$(FUZZ_CC) \
	    CFLAGS="$(FUZZ_FLAGS) -Wno-pass-failed -fsanitize=fuzzer-no-link" FUZZ="$(FUZZ)" fuzz-bins
	$(Q)fail=0; for t in $(FUZZ); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
	    echo "== $$t ($(FUZZ_SECONDS) s)"; \
	    UBSAN_OPTIONS=print_stacktrace=1 $(FUZZ_BUILD)/fuzz/$$t -max_total_time=$(FUZZ_SECONDS) \
	        -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/crash-$$t- \
	        $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t 2>$(FUZZ_BUILD)/$$t.log \
	        || { fail=1; echo "$$t: FINDING, see $(FUZZ_BUILD)/$$t.log"; tail -n 40 $(FUZZ_BUILD)/$$t.log; }; \
	    grep -E '^stat::number_of_executed_units|^Done' $(FUZZ_BUILD)/$$t.log || true; \
	done; exit $$fail

fuzz-bins: $(FUZZ:%=$(BUILD)/fuzz/%)
$(BUILD)/fuzz/%: $(BUILD)/f32/fuzz/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(Q)$(CC) $(CFLAGS) -fsanitize=fuzzer $< $(LIB) $(LDLIBS) -o $@

# ASan/UBSan run of every suite. detect_leaks stays on; OpenMP and OpenBLAS
# thread pools are process-lifetime allocations LSan does not count as leaks.
sanitize: deps
	$(Q)$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) CC=$(SAN_CC) CFLAGS="$(SAN_FLAGS)" \
	    BIN=$(SAN_BIN) tests
	$(Q)BITPLAN=$(SAN_BIN) ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 \
	    UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
	    tools/run-tests $(SAN_BUILD)/tests $(TESTS); rc=$$?; \
	    [ "$(SAN_BIN)" != bin/bitplan ] || rm -f bin/bitplan; exit $$rc

clean:
	rm -rf $(BUILD) bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
