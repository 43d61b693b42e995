# A thin front door over CMake. Packagers: use CMake directly.
BUILD ?= build
ASAN_BUILD ?= build-asan
BENCH_BUILD ?= build-release
FUZZ_BUILD ?= build-fuzz
# Runs per fuzz target, and a bound in seconds on each (a safety net; the runs are the measure).
FUZZ_RUNS ?= 20000
FUZZ_TIME ?= 60
FUZZ_TARGETS = app config webhook
CMAKE_FLAGS ?=
# `make install PREFIX=/usr DESTDIR=/tmp/stage`: cmake --install of $(BUILD)
PREFIX ?= /usr/local
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# Keep the sub-makes that CMake runs from printing every folder they enter.
MAKEFLAGS += --no-print-directory

.PHONY: all deps build install test asan fuzz format demo demo-ecs demo-kubernetes bench clean

all: build

deps:
	@bash tests/deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

install: build
	DESTDIR="$(DESTDIR)" cmake --install $(BUILD) --prefix "$(PREFIX)"

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKANARIA_SANITIZE="address;undefined" $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

# libFuzzer targets (tests/fuzz/, clang with ASan and UBSan): each runs FUZZ_RUNS inputs with a
# fixed seed, from its committed corpus (tests/fuzz/corpus/TARGET/) and a scratch corpus emptied
# first. A crash, leak or undefined behaviour fails, its input left in $(FUZZ_BUILD)/.
fuzz: deps
	cmake -S . -B $(FUZZ_BUILD) -DCMAKE_C_COMPILER=clang -DKANARIA_FUZZ=ON $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS) --target $(foreach t,$(FUZZ_TARGETS),kanaria_fuzz_$(t))
	@set -e; for t in $(FUZZ_TARGETS); do \
		echo "fuzz: $$t, $(FUZZ_RUNS) runs"; \
		rm -rf $(FUZZ_BUILD)/corpus/$$t && mkdir -p $(FUZZ_BUILD)/corpus/$$t; \
		UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		$(FUZZ_BUILD)/tests/fuzz/kanaria_fuzz_$$t -seed=1 -runs=$(FUZZ_RUNS) \
			-max_total_time=$(FUZZ_TIME) -timeout=10 -print_final_stats=1 \
			-artifact_prefix=$(FUZZ_BUILD)/$$t- $(FUZZ_BUILD)/corpus/$$t tests/fuzz/corpus/$$t \
			2>$(FUZZ_BUILD)/fuzz-$$t.log || { tail -n 60 $(FUZZ_BUILD)/fuzz-$$t.log; exit 1; }; \
		grep -E '^(Done|stat::number_of_executed_units)' $(FUZZ_BUILD)/fuzz-$$t.log; \
	done

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The quickstart: a real canary that succeeds and a bad one rolled back (examples/quickstart/).
# KEEP=1 leaves it running and prints how to reach it and how to stop it.
demo: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target kanaria kanaria_hello kanaria_load
	@bash examples/quickstart/demo.sh --binary-dir $(BUILD) $(if $(filter 1 yes true,$(KEEP)),--keep)

# The ECS demo on moto, the AWS emulator (examples/ecs/): a canary of an ECS service with
# listener-rule weights and CloudWatch analysis. Without moto it says so and does nothing.
demo-ecs: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target kanaria
	@bash examples/ecs/demo.sh --binary-dir $(BUILD) || [ $$? -eq 77 ]

# The Kubernetes demo on kanaria's fake API server (examples/kubernetes/demo.sh): a canary of a
# Deployment with HTTPRoute weights and Prometheus analysis. Without python3 it says so.
demo-kubernetes: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target kanaria
	@bash examples/kubernetes/demo.sh --binary-dir $(BUILD) || [ $$? -eq 77 ]

# Release build, then tests/bench/run.py: one table on stdout, JSON in $(BUILD)/bench.json.
# BENCH_QUICK=1 is the smoke size (100 apps, one run each), as ctest's bench_smoke runs it.
bench: deps
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target kanaria kanaria_test_server \
		kanaria_bench_yaml kanaria_bench_fetch kanaria_bench_plan kanaria_bench_engine
	python3 tests/bench/run.py --build $(BENCH_BUILD) --json $(BUILD)/bench.json \
		$(if $(BENCH_QUICK),--quick)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
