# pgolf build. `make` builds ./pgolf; `make test` builds and runs every test; `make bench` the benchmarks.
# It says what it found: OpenBLAS (OpenMP build), OpenMP, and nvcc for `make cuda`.

CC ?= gcc
PYTHON_REF ?= /usr/bin/python3
BUILD := build

OPENBLAS_INC ?= $(firstword $(wildcard /usr/include/x86_64-linux-gnu/openblas-openmp /usr/include/aarch64-linux-gnu/openblas-openmp /usr/include/openblas))
ifeq ($(OPENBLAS_INC),)
$(error OpenBLAS headers not found: run `sudo scripts/setup.sh` (installs libopenblas-openmp-dev))
endif
$(info pgolf: OpenBLAS headers in $(OPENBLAS_INC); OpenMP via -fopenmp)

CFLAGS ?= -O3 -march=native
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -fopenmp -I$(OPENBLAS_INC) -Isrc
LDLIBS := -lopenblas -lzstd -lbrotlienc -lbrotlidec -llzma -lz -lm -fopenmp

# Everything under src/ except the entry point forms the library; tests and benches link it.
SRC := $(shell find src -name '*.c' ! -path 'src/cli/main.c' | sort)
OBJ := $(SRC:%.c=$(BUILD)/%.o)
# The gradient-check binary recompiles the ops and the model in double precision.
F64_SRC := $(shell find src/ops src/model -name '*.c' | sort) src/util.c src/config.c src/presets.c src/tensor.c
F64_OBJ := $(F64_SRC:%.c=$(BUILD)/f64/%.o)
TEST_SRC := $(filter-out tests/grad/% tests/cuda/%, $(shell find tests -name '*.c' 2>/dev/null | sort))
GRAD_SRC := $(shell find tests/grad -name '*.c' 2>/dev/null | sort) tests/test_main.c
BENCH_SRC := $(filter-out bench/cuda/%, $(shell find bench -name '*.c' 2>/dev/null | sort))

# Code bytes counted against the 16,000,000-byte limit: the size of the binary's source bundle, the files
# that build it as an xz'd tar behind a 3-line sh header that unpacks and builds them (scripts/bundle.sh;
# the analog of the records' lzma'd train_gpt.py). pgolf's files: src/**/*.c and src/**/*.h outside
# src/ops/cuda, this Makefile and scripts/bundle.sh (pgolf-cuda's set is below, with the CUDA sources).
# `make bundle` writes pgolf's; each code_bytes.o compiles in PGOLF_CODE_BYTES (its bundle's bytes) and
# PGOLF_SOURCE_BYTES (the files' own).
CODE_FILES := $(shell find src \( -name '*.c' -o -name '*.h' \) ! -path 'src/ops/cuda/*' | sort) Makefile scripts/bundle.sh
# A bundle of its prerequisites whose header runs `make $(1)`.
WRITE_BUNDLE = @bash scripts/bundle.sh $@ $(1) $^ && echo "$@: $$(wc -c < $@) bytes"
# code_bytes.o's prerequisites: code_bytes.c, its bundle, then the bundle's files (each once).
COMPILE_CODE_BYTES = @mkdir -p $(dir $@); bytes=$$(wc -c < $(word 2,$^)); raw=$$(cat $(filter-out $(word 2,$^),$^) | wc -c); \
    echo "$@: PGOLF_CODE_BYTES=$$bytes ($(word 2,$^)) PGOLF_SOURCE_BYTES=$$raw"; \
    $(CC) $(CFLAGS) -DPGOLF_CODE_BYTES=$$bytes -DPGOLF_SOURCE_BYTES=$$raw -c -o $@ $<

all: pgolf

pgolf: $(OBJ) $(BUILD)/src/cli/main.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/pgolf_bundle.sh: $(CODE_FILES)
	$(call WRITE_BUNDLE,pgolf)
$(BUILD)/src/cli/code_bytes.o: src/cli/code_bytes.c $(BUILD)/pgolf_bundle.sh $(CODE_FILES)
	$(COMPILE_CODE_BYTES)
bundle: $(BUILD)/src/cli/code_bytes.o
	@echo "$(BUILD)/pgolf_bundle.sh: $$(wc -c < $(BUILD)/pgolf_bundle.sh) bytes, pgolf's code bytes (sh it to unpack and build)"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(BUILD)/f64/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DPGOLF_F64 -MMD -MP -c -o $@ $<

$(BUILD)/run_tests: $(OBJ) $(TEST_SRC:%.c=$(BUILD)/%.o)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/run_tests_f64: $(F64_OBJ) $(GRAD_SRC:%.c=$(BUILD)/f64/%.o)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/%: $(OBJ) $(BUILD)/bench/%.o
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# Fixtures from the PyTorch/sentencepiece references (tests/ref_*.py), then both test binaries; one closing line.
test: pgolf $(BUILD)/run_tests $(BUILD)/run_tests_f64
	@mkdir -p $(BUILD)/fixtures
	@for s in tests/ref_*.py; do echo "$(PYTHON_REF) $$s --out $(BUILD)/fixtures"; $(PYTHON_REF) $$s --out $(BUILD)/fixtures || exit 1; done
	@set -o pipefail; rc=0; \
	$(BUILD)/run_tests_f64 | tee $(BUILD)/tests_f64.log || rc=1; \
	$(BUILD)/run_tests | tee $(BUILD)/tests.log || rc=1; \
	awk '/^[0-9]+ passed, [0-9]+ failed$$/ { p += $$1; f += $$3 } END { printf "%d passed, %d failed\n", p, f }' \
	    $(BUILD)/tests_f64.log $(BUILD)/tests.log; \
	exit $$rc

bench: $(BENCH_SRC:%.c=$(BUILD)/%)
	@for b in $^; do echo "== $$b"; $$b || exit 1; done

# Fuzz the readers of files a user may be handed with libFuzzer (clang), each for FUZZ_SECONDS, seeded
# with the files the tests wrote and the tokenizers: artifacts, safetensors (checkpoints, weights),
# SentencePiece models and torch.save files (fuzz/). Rejections are fine; a crash, sanitizer report or timeout fails the target.
# The artifact reader frees a rejected load (artifact_abandon_load); the others leave what they had
# allocated to the process exit, as pgolf's die() does, so their fuzzers run in fork mode (-fork=1: a
# child that fills the RSS limit with such leftovers is replaced, -ignore_ooms) instead of failing on it.
FUZZ_SECONDS ?= 60
FUZZ_CC := clang -g -O1 -std=c11 -D_GNU_SOURCE -Wno-unknown-pragmas -fsanitize=fuzzer,address,undefined -I$(OPENBLAS_INC) -Isrc
FUZZ_SRC_artifact := $(filter-out src/export/calib.c, $(wildcard src/export/*.c)) src/io/bytes.c src/config.c src/presets.c src/tensor.c
FUZZ_SRC_safetensors := src/io/safetensors.c src/io/bytes.c src/tensor.c
FUZZ_SRC_spm := src/data/spm.c
FUZZ_SRC_torch := src/io/torch_file.c src/io/pickle.c src/io/zip_stored.c src/io/safetensors.c src/io/bytes.c src/tensor.c \
	src/export/compress.c
$(BUILD)/fuzz_%: fuzz/fuzz_%.c fuzz/fuzz_input.h src/util.c $(FUZZ_SRC_artifact) $(FUZZ_SRC_safetensors) $(FUZZ_SRC_spm) \
	$(FUZZ_SRC_torch)
	$(FUZZ_CC) -o $@ fuzz/fuzz_$*.c src/util.c $(FUZZ_SRC_$*) -lopenblas -lzstd -lbrotlienc -lbrotlidec -llzma -lz -lm

FUZZ_RUN = ASAN_OPTIONS=detect_leaks=0 $(BUILD)/fuzz_$(1) -max_total_time=$(FUZZ_SECONDS) -timeout=10 -rss_limit_mb=3072 \
	-malloc_limit_mb=2048 -max_len=$(2) $(3) $(BUILD)/fuzz_corpus/$(1)
fuzz: $(BUILD)/fuzz_artifact $(BUILD)/fuzz_safetensors $(BUILD)/fuzz_spm $(BUILD)/fuzz_torch
	@mkdir -p $(BUILD)/fuzz_corpus/artifact $(BUILD)/fuzz_corpus/safetensors $(BUILD)/fuzz_corpus/spm $(BUILD)/fuzz_corpus/torch
	@find $(BUILD)/tmp -name '*.ptz' ! -path '*/torch/*' -size -300k -exec cp {} $(BUILD)/fuzz_corpus/artifact/ \; 2>/dev/null || true
	@find $(BUILD)/fixtures $(BUILD)/tmp -path '*torch*' \( -name '*.pt' -o -name '*.ptz' -o -name '*.xz' \) -size -300k \
	    -exec cp --backup=numbered {} $(BUILD)/fuzz_corpus/torch/ \; 2>/dev/null || true
	@find $(BUILD)/tmp -name '*.safetensors' -size -600k -exec cp --backup=numbered {} $(BUILD)/fuzz_corpus/safetensors/ \; 2>/dev/null || true
	@cp $${PGOLF_SHARED_DATA:-../shared/data}/tokenizers/fineweb_1024_bpe.model data/tokenizers/*.model \
	    $(BUILD)/fuzz_corpus/spm/ 2>/dev/null || true
	$(call FUZZ_RUN,artifact,400000)
	$(call FUZZ_RUN,safetensors,600000,-fork=1 -ignore_ooms=1)
	$(call FUZZ_RUN,spm,400000,-fork=1 -ignore_ooms=1)
	$(call FUZZ_RUN,torch,400000,-fork=1 -ignore_ooms=1)

# The CUDA ops (src/ops/cuda/*.cu) and their tests against the CPU ops. The CPU build never needs
# CUDA; `make cuda` needs nvcc (PATH or /usr/local/cuda), `make cuda-test` a GPU (without one the tests
# report themselves skipped).
NVCC ?= $(firstword $(shell command -v nvcc) $(wildcard /usr/local/cuda/bin/nvcc))
CUDA_HOME ?= $(patsubst %/bin/nvcc,%,$(NVCC))
# cuDNN's fused attention (src/ops/cuda/attention_cudnn.cu) is optional: `make cuda CUDNN_HOME=D
# CUDNN_FRONTEND=F` links it, D holding include/cudnn.h and lib/ or lib64/libcudnn.so.9 (the CUDA
# toolkit's folder, or the pip wheel's nvidia/cudnn that PyTorch installs), F cudnn-frontend's include
# folder (header-only). `make cuda $$(bash scripts/cudnn.sh)` finds both. Without them the build uses
# pgolf's own attention kernels only.
CUDNN_SRC := src/ops/cuda/attention_cudnn.cu
CUDA_SRC := $(filter-out $(CUDNN_SRC),$(shell find src/ops/cuda -name '*.cu' 2>/dev/null | sort))
CUDA_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/cuda/%.o)
CUDNN_LIBS :=
ifneq ($(CUDNN_HOME)$(CUDNN_FRONTEND),)
CUDNN_LIBDIR := $(patsubst %/,%,$(dir $(firstword $(wildcard $(CUDNN_HOME)/lib/libcudnn.so.9 $(CUDNN_HOME)/lib64/libcudnn.so.9))))
ifeq ($(CUDNN_LIBDIR),)
$(error CUDNN_HOME=$(CUDNN_HOME) has no lib/libcudnn.so.9 or lib64/libcudnn.so.9)
endif
ifeq ($(wildcard $(CUDNN_FRONTEND)/cudnn_frontend.h),)
$(error CUDNN_FRONTEND=$(CUDNN_FRONTEND) has no cudnn_frontend.h (scripts/cudnn.sh fetches the headers))
endif
$(info pgolf: cuDNN attention: cuDNN in $(CUDNN_HOME), cudnn-frontend in $(CUDNN_FRONTEND))
CUDA_OBJ += $(CUDNN_SRC:%.cu=$(BUILD)/cuda/%.o)
# first, so that its folder comes before the toolkit's in the run path (both may hold a libcudnn);
# cudnn-frontend also compiles kernels of its own at run time (NVRTC, the driver API)
CUDNN_LIBS := -L$(CUDNN_LIBDIR) -Wl,-rpath,$(CUDNN_LIBDIR) -l:libcudnn.so.9 -L$(CUDA_HOME)/lib64 -lnvrtc \
    -L$(CUDA_HOME)/lib64/stubs -lcuda
$(CUDNN_SRC:%.cu=$(BUILD)/cuda/%.o): NVCC_EXTRA := -isystem $(CUDNN_HOME)/include -isystem $(CUDNN_FRONTEND) \
    -DCUDNN_FRONTEND_SKIP_JSON_LIB
# host code only: one device pass instead of one per architecture (the frontend's headers are slow to compile)
$(CUDNN_SRC:%.cu=$(BUILD)/cuda/%.o): CUDA_ARCHS := -gencode arch=compute_80,code=sm_80
endif
# the cuda_* functions without bridge.cu's ops.h names (tests and benches link them beside the CPU ops)
CUDA_OPS_OBJ := $(filter-out %/bridge.o,$(CUDA_OBJ))
CUDA_LINK = $(CC) $(LDFLAGS) -o $@ $^ $(CUDNN_LIBS) -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcublas -lcudart \
    -lstdc++ $(LDLIBS)
CUDA_ARCHS ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90

$(BUILD)/cuda/%.o: %.cu
	@if [ -z "$(NVCC)" ]; then echo "make cuda: nvcc not found (install the CUDA toolkit or set NVCC)"; exit 1; fi
	@mkdir -p $(dir $@)
	$(NVCC) -O3 -std=c++17 $(CUDA_ARCHS) -Isrc $(NVCC_EXTRA) -Xcompiler -Wall -MMD -MP -c -o $@ $<

# the tests compare the CUDA ops with the CPU ops, so they link both (bridge.cu, which defines the ops.h
# names, stays out)
$(BUILD)/run_cuda_tests: $(OBJ) $(CUDA_OPS_OBJ) $(BUILD)/tests/test_main.o $(BUILD)/tests/test_helpers.o \
                         $(BUILD)/tests/cuda/test_cuda_ops.o $(BUILD)/cuda/tests/cuda/test_warp_mma.o
	$(CUDA_LINK)

# pgolf-cuda: the same model, optimizers and CLI linked against src/ops/cuda (bridge.cu) instead of src/ops/cpu.
# Its code bytes: the bundle of src/**/*.c and src/**/*.h outside src/ops/cpu, the .cu files it compiles
# (cuDNN's attention only in a cuDNN build: its own bundle and object, so that switching builds recounts),
# this Makefile and scripts/bundle.sh.
CPU_OPS_OBJ := $(filter $(BUILD)/src/ops/cpu/%,$(OBJ))
CUDA_CODE_FILES := $(shell find src \( -name '*.c' -o -name '*.h' \) ! -path 'src/ops/cpu/*' | sort) Makefile \
    scripts/bundle.sh
CUDA_CODE_OBJ := $(BUILD)/cuda/code_bytes$(if $(CUDNN_LIBS),_cudnn).o
CUDA_BUNDLE := $(BUILD)/cuda/pgolf-cuda$(if $(CUDNN_LIBS),_cudnn)_bundle.sh
$(CUDA_BUNDLE): $(CUDA_CODE_FILES) $(CUDA_OBJ:$(BUILD)/cuda/%.o=%.cu)
	$(call WRITE_BUNDLE,pgolf-cuda)
$(CUDA_CODE_OBJ): src/cli/code_bytes.c $(CUDA_BUNDLE) $(CUDA_CODE_FILES) $(CUDA_OBJ:$(BUILD)/cuda/%.o=%.cu)
	$(COMPILE_CODE_BYTES)
PGOLF_CUDA_OBJ := $(filter-out $(CPU_OPS_OBJ) $(BUILD)/src/cli/code_bytes.o,$(OBJ)) $(BUILD)/src/cli/main.o
pgolf-cuda: $(PGOLF_CUDA_OBJ) $(CUDA_CODE_OBJ) $(CUDA_OBJ)
	$(CUDA_LINK)

# per-op figures on a GPU (bench/cuda/bench_cuda_ops.c)
$(BUILD)/bench_cuda_ops: $(OBJ) $(CUDA_OPS_OBJ) $(BUILD)/bench/cuda/bench_cuda_ops.o
	$(CUDA_LINK)

cuda: $(BUILD)/run_cuda_tests pgolf-cuda $(BUILD)/bench_cuda_ops

# The same CUDA sources on the CPU emulator (tests/cuda/emu), built with AddressSanitizer and the
# alignment check (a float4 or uint2 access off its alignment, which a GPU faults on and x86 does not):
# the CUDA ops' tests and pgolf-cuda's training test run on any machine, once in each thread order.
EMU_DIR := tests/cuda/emu
EMU_CXXFLAGS := -std=c++17 -g -Wall -Wno-unknown-pragmas -I$(EMU_DIR)/include -Isrc -I$(OPENBLAS_INC)
EMU_SANITIZE := -fsanitize=address,alignment -fno-sanitize-recover=alignment
EMU_CUDA_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/emu/%.o) $(BUILD)/emu/emu.o
EMU_CUDA_OPS_OBJ := $(filter-out %/bridge.o,$(EMU_CUDA_OBJ))
EMU_LINK = $(CXX) $(EMU_SANITIZE) -o $@ $^ $(LDLIBS)
$(BUILD)/emu/%.cpp: %.cu $(EMU_DIR)/cu2cpp.sed
	@mkdir -p $(dir $@)
	{ echo '#line 1 "$<"'; sed -E -f $(EMU_DIR)/cu2cpp.sed $<; } > $@
$(BUILD)/emu/%.o: $(BUILD)/emu/%.cpp
	$(CXX) $(EMU_CXXFLAGS) -O1 -fno-omit-frame-pointer $(EMU_SANITIZE) -iquote $(patsubst $(BUILD)/emu/%,%,$(dir $<)) \
	    -MMD -MP -c -o $@ $<
$(BUILD)/emu/emu.o: $(EMU_DIR)/emu.cpp
	@mkdir -p $(dir $@)
	$(CXX) $(EMU_CXXFLAGS) -O2 -MMD -MP -c -o $@ $<
$(BUILD)/emu/tests/cuda/test_cuda_ops.o: tests/cuda/test_cuda_ops.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DPGOLF_CUDA='"$(BUILD)/emu/pgolf-cuda"' -DPGOLF_CUDA_BUNDLES='"$(BUILD)/emu/pgolf-cuda_bundle.sh"' \
	    -MMD -MP -c -o $@ $<
$(BUILD)/emu/run_cuda_tests: $(OBJ) $(EMU_CUDA_OPS_OBJ) $(BUILD)/emu/$(EMU_DIR)/selftest.o \
                             $(BUILD)/tests/test_main.o $(BUILD)/tests/test_helpers.o $(BUILD)/emu/tests/cuda/test_cuda_ops.o \
                             $(BUILD)/emu/tests/cuda/test_warp_mma.o
	$(EMU_LINK)
$(BUILD)/emu/pgolf-cuda_bundle.sh: $(CUDA_CODE_FILES) $(CUDA_SRC) # (the plain CUDA build's files)
	$(call WRITE_BUNDLE,pgolf-cuda)
$(BUILD)/emu/code_bytes.o: src/cli/code_bytes.c $(BUILD)/emu/pgolf-cuda_bundle.sh $(CUDA_CODE_FILES) $(CUDA_SRC)
	$(COMPILE_CODE_BYTES)
$(BUILD)/emu/pgolf-cuda: $(PGOLF_CUDA_OBJ) $(BUILD)/emu/code_bytes.o $(EMU_CUDA_OBJ)
	$(EMU_LINK)

$(BUILD)/emu/bench_cuda_ops: $(OBJ) $(EMU_CUDA_OPS_OBJ) $(BUILD)/bench/cuda/bench_cuda_ops.o
	$(EMU_LINK)

cuda-emu-test: $(BUILD)/emu/run_cuda_tests $(BUILD)/emu/pgolf-cuda pgolf $(BUILD)/emu/bench_cuda_ops
	@set -o pipefail; export ASAN_OPTIONS=detect_leaks=0; rc=0; \
	$(BUILD)/emu/run_cuda_tests | tee $(BUILD)/emu/tests.log || rc=1; \
	echo "== again, each barrier interval's threads and each launch's blocks in reverse order"; \
	EMU_THREAD_ORDER=reverse $(BUILD)/emu/run_cuda_tests | tee $(BUILD)/emu/tests_reverse.log || rc=1; \
	echo "== the per-op benchmark, tiny (it keeps working; the emulator's times mean nothing)"; \
	BENCH_TOKENS=256 BENCH_SEQ=128 BENCH_MS=0 $(BUILD)/emu/bench_cuda_ops || rc=1; \
	exit $$rc

cuda-test: $(BUILD)/run_cuda_tests pgolf pgolf-cuda
	$(BUILD)/run_cuda_tests

clean:
	rm -rf $(BUILD) pgolf pgolf-cuda

.PHONY: all test bench bundle fuzz cuda cuda-test cuda-emu-test clean
SHELL := /bin/bash
-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
