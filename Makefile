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
MODULES := core sensitivity ilp latency quant plots train

WARN    := -Wall -Wextra -Wno-unused-parameter -Wshadow -Wstrict-prototypes
BPFLAGS := -std=gnu11 -fopenmp -fPIC $(WARN) -I. -I$(BUILD)/gen -MMD -MP
LDLIBS  := -lglpk -lgsl -llapacke -lopenblas -lprotobuf-c -ljansson -lz -lm -fopenmp

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
	@mkdir -p bin
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

test: check

demo: deps
	$(Q)$(MAKE) --no-print-directory $(BIN)
	./$(BIN) plan -o out/demo

bench: $(BENCH_BIN) $(BIN)
	$(Q)for b in $(BENCH_BIN); do echo "== $$b"; $$b || exit 1; done

deps:
	$(Q)tools/deps

clean:
	rm -rf $(BUILD) bin

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
