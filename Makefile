# Airlock's make targets. The two a newcomer needs:
#   make demo   the whole story on the embedded registry: pack, push, sign, SBOM, bench, eval, gate (the good release gets prod, the regressed one is denied and refused prod), then promotion by canary analysis through the router against a real Prometheus (one candidate promoted, one rolled back with the kill-switch)
#   make test   runs every test (installing the registry and client tools they use)

GO      ?= go
BIN     := bin/airlock
TOOLS   := .ci/install-tools.sh
GOFLAGS_TEST ?= -race

.PHONY: all build tools test interop lint cross fuzz fuzz-registry bench bench-transfer bench-registry bench-sign bench-runner bench-evals bench-gate bench-admission bench-canary bench-router bench-smoke demo clean

all: build

build:
	$(GO) build -o $(BIN) ./cmd/airlock

# Installs docker-registry, skopeo and prometheus (Debian) and pinned crane and regctl
# into .tools/bin. Idempotent and quiet.
tools:
	@bash $(TOOLS)

# Every test, with the race detector, then the runner's timing-accuracy test
# on its own and without it (the detector's slowdown would swamp the 5% it
# checks). Tests that need docker-registry, crane, regctl, skopeo, cosign or
# node-llama-cpp fail (not skip) when they are missing.
test: tools
	AIRLOCK_REQUIRE_INTEROP=1 $(GO) test $(GOFLAGS_TEST) ./...
	$(GO) test $(GOFLAGS_TEST) ./registry/server/ -args -store=mem
	$(GO) test -count=1 -run TestMeasuresKnownTiming ./runner/

# The interoperability tests alone: airlock pushes, crane/regctl/skopeo read
# back, against Debian's docker-registry.
interop: tools
	AIRLOCK_REQUIRE_INTEROP=1 $(GO) test -count=1 -run 'Interop' -v ./registry/client/

# gofmt, go vet, golangci-lint (.golangci.yml: errorlint, depguard, …) and
# actionlint on the GitHub Action and the example workflow, pinned and
# installed into .tools/bin on first use.
lint:
	@bash $(TOOLS) lint
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed"; exit 1; }
	$(GO) vet ./...
	.tools/bin/golangci-lint run ./...
	bash .ci/actionlint.sh

# The CLI builds for the systems users pack and push from, not only Linux.
cross:
	GOOS=darwin GOARCH=arm64 $(GO) build -o /dev/null ./cmd/airlock
	GOOS=windows GOARCH=amd64 $(GO) build -o /dev/null ./cmd/airlock

FUZZTIME ?= 60s

# Short fuzzing of the release-file parser and of the registry (make test
# runs both seed corpora).
fuzz: fuzz-registry
	$(GO) test -run '^$$' -fuzz FuzzParse -fuzztime $(FUZZTIME) ./registry/pack/

# Fuzzes request sequences against the registry's upload and manifest
# handlers on the on-disk stores (the test runs store.Fsck after each), then
# checks the stores they left with airlock registry fsck --verify-content.
fuzz-registry: build
	@root=$$(mktemp -d) && trap 'rm -rf "$$root"' EXIT && \
	AIRLOCK_FUZZ_ROOT=$$root $(GO) test -run '^$$' -fuzz FuzzStoreConsistency -fuzztime $(FUZZTIME) -parallel 1 ./registry/server/ && \
	for d in $$root/*/; do \
		echo "airlock registry fsck --verify-content --root $$d"; \
		$(BIN) registry fsck --verify-content --root "$$d" | tr -d '\n'; echo; \
	done

# Every benchmark: client push/pull (bench/transfer), the registry
# (bench/registry), 2 GiB, 3 runs each, signing (bench/sign, a 10 GiB
# release), the runner (bench/runner), eval scoring (bench/evals), the gate,
# admission, the canary judge (bench/canary) and the router (bench/router);
# about thirty-five minutes.
bench: bench-transfer bench-registry bench-sign bench-runner bench-evals bench-gate bench-admission bench-canary bench-router

# Push/pull throughput against regctl and sha256.
bench-transfer: tools
	$(GO) run ./bench/transfer -size 2GiB -runs 3

# The embedded registry against distribution v3 and docker-registry.
bench-registry:
	@bash $(TOOLS) bench
	$(GO) run ./bench/registry -size 2GiB -runs 3

# airlock sign of a 10 GiB release against a 10 KiB one, and airlock verify.
bench-sign:
	$(GO) run ./bench/sign -large 10GiB -runs 20

# The runner's per-request overhead and throughput against a plain
# net/http loop, both driving a zero-latency stub server.
bench-runner:
	$(GO) run ./bench/runner -requests 20000 -runs 5

# Eval scoring and statistics on 100,000 items with five assertions each.
bench-evals:
	$(GO) run ./bench/evals -items 100000 -runs 5

# One policy decision on an input with 200 metrics (the target), then with
# a limit on each: the prepared engine with Go's default GC and a server's,
# against rego.New per decision and the opa eval CLI.
bench-gate:
	$(GO) run ./bench/gate -decisions 20000 -opa-runs 30 -limits 0 -out bench/results/gate-200-metrics.md
	$(GO) run ./bench/gate -decisions 20000 -opa-runs 30

# The admission webhook under a 500/s open-loop load with a warm cache,
# against a no-op webhook over the same TLS.
bench-admission:
	$(GO) run ./bench/admission -rate 500 -duration 20s

# 1,000 simulated canaries per scenario: Airlock's sequential judge against
# Kayenta's fixed-window Mann-Whitney judge and Argo's thresholds, at
# Kayenta's null (no regression), then with tolerances.
bench-canary:
	$(GO) run ./bench/canary
	$(GO) run ./bench/canary -latency-tolerance 0.10 -quality-tolerance 0.02 -out bench/results/canary-tolerance.md

# The router's added latency at 2,000 requests/s in front of a zero-latency
# upstream, against the upstream direct; and the kill-switch on the next
# request. First with the router on a CPU of its own (taskset), then with
# load generator, router and upstream sharing every CPU.
bench-router:
	$(GO) run ./bench/router -rate 2000 -duration 20s -pin
	$(GO) run ./bench/router -rate 2000 -duration 20s -flips 20 -out bench/results/router-shared.md

# The benchmark harnesses on small files, to keep them working (CI).
bench-smoke: tools
	$(GO) run ./bench/transfer -size 64MiB -runs 1 -out bench/results/transfer-smoke.md
	$(GO) run ./bench/registry -size 64MiB -runs 1 -registries airlock,docker-registry -out bench/results/registry-smoke.md
	$(GO) run ./bench/sign -large 64MiB -runs 3 -out bench/results/sign-smoke.md
	$(GO) run ./bench/runner -requests 2000 -runs 1 -concurrency 1,16 -rate 2000 -out bench/results/runner-smoke.md
	$(GO) run ./bench/evals -items 10000 -runs 1 -out bench/results/evals-smoke.md
	$(GO) run ./bench/gate -decisions 2000 -opa-runs 3 -unprepared-runs 20 -out bench/results/gate-smoke.md
	$(GO) run ./bench/admission -rate 200 -duration 2s -warmup 1s -out bench/results/admission-smoke.md
	$(GO) run ./bench/canary -runs 100 -out bench/results/canary-smoke.md
	$(GO) run ./bench/router -rate 500 -duration 2s -warmup 1s -rounds 1 -flips 20 -out bench/results/router-smoke.md

demo: build
	@bash $(TOOLS) demo
	$(GO) run ./examples/demo -airlock $(BIN) -example examples/support-bot

clean:
	rm -rf bin .tools bench/results
