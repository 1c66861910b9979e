# The two commands of the README: `make run` and `make test`.
# Both install what they need from Debian first (as root), so a fresh Debian 12
# machine with nothing but a compiler is enough.

RUN_PKGS  := build-essential cmake pkg-config libuv1-dev libexpat1-dev libssl-dev libgsasl-dev \
             libidn-dev libidn2-dev libfyaml-dev libsqlite3-dev openssl nodejs npm
# nodejs and npm install Converse.js for the web chat page (/chat/) at build time; the tests'
# JavaScript clients (tests/node) and the browser test (chromium) need them too.
TEST_PKGS := $(RUN_PKGS) libcmocka-dev python3 python3-pytest python3-slixmpp libstrophe-dev \
             sendxmpp clang-14 libfuzzer-14-dev libclang-rt-14-dev chromium fonts-dejavu-core
JOBS      ?= $(shell nproc)
CONFIG    ?= var/magpie.yml

.PHONY: run test build build-asan deps test-deps fuzz clean format tidy

run: deps build
	./build/magpied --config $(CONFIG)

build:
	cmake -S . -B build -DCMAKE_BUILD_TYPE=RelWithDebInfo -DMAGPIE_TESTS=OFF >/dev/null
	cmake --build build -j $(JOBS)

test: test-deps build-asan
	cd build-asan && ctest --output-on-failure -j $(JOBS)

build-asan:
	cmake -S . -B build-asan -DCMAKE_BUILD_TYPE=Debug -DMAGPIE_ASAN=ON -DMAGPIE_UBSAN=ON >/dev/null
	cmake --build build-asan -j $(JOBS)

fuzz: test-deps
	CC=clang-14 cmake -S . -B build-fuzz -DCMAKE_BUILD_TYPE=Debug -DMAGPIE_FUZZ=ON -DMAGPIE_TESTS=OFF >/dev/null
	cmake --build build-fuzz -j $(JOBS) --target fuzz_framer fuzz_jid fuzz_tree fuzz_sasl fuzz_link

deps:
	@./scripts/install-deps.sh $(RUN_PKGS)

test-deps:
	@./scripts/install-deps.sh $(TEST_PKGS)
	@./scripts/node-deps.sh tests/node

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

tidy: build
	clang-tidy -p build $$(git ls-files 'src/*.c')

clean:
	rm -rf build build-asan build-fuzz
