# Airlock's make targets. The two a newcomer needs:
#   make demo   packs the example release, pushes it to the embedded registry it starts, pulls a part back
#   make test   runs every test (installing the registry and client tools they use)

GO      ?= go
BIN     := bin/airlock
TOOLS   := .ci/install-tools.sh
GOFLAGS_TEST ?= -race

.PHONY: all build tools test interop lint fuzz bench bench-smoke demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/airlock

# Installs docker-registry and skopeo (Debian) and pinned crane and regctl
# into .tools/bin. Idempotent and quiet.
tools:
	@bash $(TOOLS)

# Every test, with the race detector. Tests that need docker-registry, crane,
# regctl or skopeo fail (not skip) when they are missing.
test: tools
	AIRLOCK_REQUIRE_INTEROP=1 $(GO) test $(GOFLAGS_TEST) ./...
	$(GO) test $(GOFLAGS_TEST) ./registry/server/ -args -store=mem

# The interoperability tests alone: airlock pushes, crane/regctl/skopeo read
# back, against Debian's docker-registry.
interop: tools
	AIRLOCK_REQUIRE_INTEROP=1 $(GO) test -count=1 -run 'Interop' -v ./registry/client/

# gofmt, go vet, and golangci-lint (.golangci.yml: errorlint, depguard, …),
# pinned and installed into .tools/bin on first use.
lint:
	@bash $(TOOLS) lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	.tools/bin/golangci-lint run ./...

# Short fuzzing of the release-file parser (CI runs the seed corpus via make test).
fuzz:
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime 60s ./registry/pack/

# Push/pull throughput against regctl and sha256, 2 GiB, 3 runs (several minutes).
bench: tools
	$(GO) run ./bench/transfer -size 2GiB -runs 3

# The benchmark harness on a small file, to keep it working (CI).
bench-smoke: tools
	$(GO) run ./bench/transfer -size 64MiB -runs 1 -out bench/results/transfer-smoke.md

demo: build
	$(GO) run ./examples/demo -airlock $(BIN) -example examples/support-bot

clean:
	rm -rf bin .tools bench/results
