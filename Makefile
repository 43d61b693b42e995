# A thin front door over CMake. Packagers: use CMake directly.
BUILD ?= build
ASAN_BUILD ?= build-asan
BENCH_BUILD ?= build-release
CMAKE_FLAGS ?=
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
# Keep the sub-makes that CMake runs from printing every folder they enter.
MAKEFLAGS += --no-print-directory

.PHONY: all deps build test asan format demo bench clean

all: build

deps:
	@bash tests/deps.sh

build: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

test: build
	ctest --test-dir $(BUILD) --output-on-failure -j $(JOBS)

asan: deps
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DKANARIA_SANITIZE="address;undefined" $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)
	ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 \
		ctest --test-dir $(ASAN_BUILD) --output-on-failure -j $(JOBS)

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

# The quickstart: a real canary that succeeds and a bad one rolled back (examples/quickstart/).
# KEEP=1 leaves it running and prints how to reach it and how to stop it.
demo: deps
	cmake -S . -B $(BUILD) $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS) --target kanaria kanaria_hello kanaria_load
	@bash examples/quickstart/demo.sh --binary-dir $(BUILD) $(if $(filter 1 yes true,$(KEEP)),--keep)

# Release build, then tests/bench/run.py: one table on stdout, JSON in $(BUILD)/bench.json.
# BENCH_QUICK=1 is the smoke size (100 apps, one run each), as ctest's bench_smoke runs it.
bench: deps
	cmake -S . -B $(BENCH_BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BENCH_BUILD) -j $(JOBS) --target kanaria kanaria_test_server \
		kanaria_bench_yaml kanaria_bench_fetch
	python3 tests/bench/run.py --build $(BENCH_BUILD) --json $(BUILD)/bench.json \
		$(if $(BENCH_QUICK),--quick)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD)
