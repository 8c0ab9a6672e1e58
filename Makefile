# Thin wrapper over CMake. `make` builds Release into build/, `make test` runs
# the CTest suite in that build and again under ASan+UBSan in build-asan/.
BUILD       ?= build
ASAN_BUILD  ?= build-asan
FUZZ_BUILD  ?= build-fuzz
JOBS        ?= $(shell nproc 2>/dev/null || echo 2)
CMAKE_FLAGS ?=
FUZZ_SECONDS ?= 30
PREFIX      ?= /usr/local

.PHONY: all build asan test test-release test-asan run bench fuzz install clean

all: build

build:
	cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=Release $(CMAKE_FLAGS)
	cmake --build $(BUILD) -j $(JOBS)

asan:
	cmake -S . -B $(ASAN_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPARQ_SANITIZE=ON $(CMAKE_FLAGS)
	cmake --build $(ASAN_BUILD) -j $(JOBS)

test-release: build
	cd $(BUILD) && ctest --output-on-failure -j $(JOBS)

test-asan: asan
	cd $(ASAN_BUILD) && ASAN_OPTIONS=detect_leaks=1:abort_on_error=1 \
	  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1 ctest --output-on-failure -j $(JOBS)

test: test-release test-asan

run: build
	./$(BUILD)/sparq demo

bench: build
	./$(BUILD)/sparq bench peak
	./$(BUILD)/sparq bench gemm
	./$(BUILD)/sparq bench vnm
	./$(BUILD)/sparq bench attn
	./$(BUILD)/sparq bench train
	./$(BUILD)/sparq bench svg

# libFuzzer targets need clang; each runs FUZZ_SECONDS seconds seeded with the
# committed fixtures, and the script prints the execution counts.
fuzz:
	CC=clang cmake -S . -B $(FUZZ_BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSPARQ_FUZZ=ON -DSPARQ_TESTS=OFF $(CMAKE_FLAGS)
	cmake --build $(FUZZ_BUILD) -j $(JOBS)
	bash tools/run_fuzzers.sh $(FUZZ_BUILD) $(FUZZ_SECONDS)

install: build
	cmake --install $(BUILD) --prefix $(PREFIX)

clean:
	rm -rf $(BUILD) $(ASAN_BUILD) $(FUZZ_BUILD)
