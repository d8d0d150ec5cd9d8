# tcplens build and checks. `make test` is what CI runs (see .ci/run).
GO      ?= go
CLANG   ?= clang-19
BIN     := bin/tcplens

.PHONY: all build generate check-generate test unit integration vet fuzz clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/tcplens

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

unit:
	$(GO) test -count=1 ./internal/... ./cmd/...

clean:
	rm -rf bin
