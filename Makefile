# tcplens build and checks. `make test` is what CI runs (see .ci/run).
GO      ?= go
CLANG   ?= clang-19
BIN     := bin/tcplens

.PHONY: all build generate check-generate test unit integration vet fuzz clean bench bench-smoke bench-build soak

all: build

# CGO_ENABLED=0: without cgo (which net/http would pull in for the DNS
# resolver) the Go runtime can change capabilities on every thread, so
# tcplens can drop its privileges after start-up.
build:
	CGO_ENABLED=0 $(GO) build -o $(BIN) ./cmd/tcplens

# Regenerate the committed BPF objects and Go bindings (needs clang-19).
generate:
	$(GO) generate ./...

# Fail when the committed bpf2go output differs from a fresh build.
check-generate:
	./.ci/check-generate

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }

# The whole suite: unit tests (no root needed) and real-kernel tests (root).
test:
	TCPLENS_REQUIRE_ROOT=1 $(GO) test -count=1 -timeout 20m ./...

# The real-kernel tests again, on Debian's 6.1 kernel under qemu (see vm/run-tests.sh).
.PHONY: vm-test
vm-test:
	./vm/run-tests.sh

# The full soak (root; README "Soak test"): 1,000,000 connections of churn
# in 20 rounds next to 5000 idle connections and 2000 sockets in CLOSE_WAIT;
# kernel map entries must return to the live sockets and RSS stay flat.
# make test runs the same test scaled down to 50,000 connections.
SOAK_CONNS ?= 1000000
SOAK_ROUNDS ?= 20
soak:
	TCPLENS_REQUIRE_ROOT=1 TCPLENS_SOAK_CONNS=$(SOAK_CONNS) TCPLENS_SOAK_ROUNDS=$(SOAK_ROUNDS) \
	TCPLENS_SOAK_IDLE=5000 TCPLENS_SOAK_CLOSEWAIT=2000 \
	$(GO) test -count=1 -v -timeout 60m -run '^TestSoak$$' ./test

unit:
	$(GO) test -count=1 ./internal/... ./cmd/...

# Each fuzz target briefly (FUZZTIME each); seeds live in testdata/fuzz.
FUZZTIME ?= 10s
fuzz:
	$(GO) test -run '^$$' -fuzz '^FuzzDecode$$' -fuzztime $(FUZZTIME) ./internal/event
	$(GO) test -run '^$$' -fuzz '^FuzzJSONString$$' -fuzztime $(FUZZTIME) ./internal/output
	$(GO) test -run '^$$' -fuzz '^FuzzParseFlags$$' -fuzztime $(FUZZTIME) ./cmd/tcplens

# The overhead benchmark (root; README "Benchmark"): ABAB rounds of loopback
# connection churn without and with tcplens, per tracer mode. BENCH_ARGS
# adds runner flags, e.g. BENCH_ARGS='--family 6 --closer server'.
BENCH_ARGS ?=
BENCH_JSON ?= bench.json

bench-build: build
	$(GO) build -o bin/churn ./cmd/churn
	$(GO) build -o bin/tcplens-bench ./cmd/tcplens-bench

bench: bench-build
	./bin/tcplens-bench --tcplens $(BIN) --churn bin/churn --json $(BENCH_JSON) $(BENCH_ARGS)

# End to end in about 30 s: 2 rounds each of 2 s. Checks the runner works;
# its numbers are too short-lived to mean much.
bench-smoke: bench-build
	./bin/tcplens-bench --tcplens $(BIN) --churn bin/churn --rounds 2 --round 2s --json bin/bench-smoke.json $(BENCH_ARGS)

clean:
	rm -rf bin
