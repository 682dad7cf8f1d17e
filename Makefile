# Turbulence — the only entry point for building, checking and testing.
# `make help` lists the targets.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
TOOLS := build/tools
GOLANGCI_VERSION := v2.15.0
PROTO_FILES := $(wildcard proto/turbulence/v1/*.proto proto/turbulence/raft/v1/*.proto)
# How long `make fuzz` runs each target; `make test` runs each for 2s. New
# inputs are not minimised (-fuzzminimizetime 0): a short run that ends
# while minimising reports "context deadline exceeded" as a failure.
FUZZTIME ?= 10s
# Privileged tests run when root; in CI (CI=true) a privileged test that
# would skip fails instead.
TEST_ENV := $(if $(CI),TURBULENCE_REQUIRE_PRIVILEGED=1,)

.PHONY: help
help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build turbulence-agent, turbulence-controller and turbctl into bin/ (static)
	@# Static (no cgo): the agent runs on every host whatever its libc, and
	@# each worker it re-executes starts without the dynamic loader.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./agent/cmd/turbulence-agent ./controller/cmd/turbulence-controller ./controller/cmd/turbctl

.PHONY: demo
demo: build ## one-node controller + local agent in a temp dir: apply, measure and revert a 50 % CPU fault
	$(GO) run ./test/demo -bin $(BIN)

.PHONY: test
test: ## go test -race ./... (privileged tests too when root), then a short run of every fuzz target
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 20m ./...
	@$(MAKE) --no-print-directory fuzz FUZZTIME=2s

# The chaos campaign on Turbulence itself (test/chaos, docs/reliability.md):
# `make chaos` runs a long one; CHAOS_SEED replays a failed one's draws.
CHAOS_DURATION ?= 10m
CHAOS_SEED ?=

.PHONY: chaos
chaos: ## a long seeded chaos campaign on Turbulence itself (root; CHAOS_DURATION=10m, CHAOS_SEED=… replays)
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SEED=$(CHAOS_SEED) TURBULENCE_REQUIRE_PRIVILEGED=1 \
	  $(GO) test -race -count=1 -timeout 0 -v -run '^TestPrivilegedChaosCampaign$$' ./test/chaos

.PHONY: bench
bench: stress-ng ## benchmarks with real numbers: apply latency, deadline lateness, CPU accuracy vs stress-ng, memory
	@# One run per case: these benchmarks measure loads and latencies, not ns/op.
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 $$($(GO) list ./... | grep -v -e /test/e2e -e '/controller$$') | grep -E '^(Benchmark|ok|FAIL|---|\s+\S+_test.go)'
	@# The cluster: 20 leader kills with 100 agents; raft writes from 1 and 64 clients.
	set -o pipefail; $(GO) test -run '^$$' -bench Failover -benchtime 20x -count 1 ./controller | grep -E '^(Benchmark|ok|FAIL)'
	set -o pipefail; $(GO) test -run '^$$' -bench RaftWrite -benchtime 2000x -count 1 ./controller | grep -E '^(Benchmark|ok|FAIL)'
	@# 50 whole fault lifetimes, so the p99 has samples behind it.
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 50x -count 1 ./test/e2e | grep -E '^(Benchmark|ok|FAIL|---)'

.PHONY: fuzz
fuzz: ## a short run of every fuzz target
	@for pkg in $$($(GO) list ./...); do \
	  for f in $$($(GO) test -list '^Fuzz' $$pkg 2>/dev/null | grep '^Fuzz'); do \
	    echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime 0 $$pkg || exit 1; \
	  done; \
	done

.PHONY: tools
tools: ## build the code generators pinned in go.mod into build/tools
	$(GO) build -o $(TOOLS)/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

.PHONY: stress-ng
stress-ng: # the CPU accuracy bench compares against stress-ng from Debian
	@command -v stress-ng >/dev/null || { apt-get update -qq && apt-get install -y -qq stress-ng; }

.PHONY: protoc
protoc:
	@command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }

.PHONY: proto
proto: tools protoc ## regenerate Go code from proto/ (protoc from Debian, plugins pinned in go.mod)
	PATH="$(CURDIR)/$(TOOLS):$$PATH" protoc -I proto \
	  --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	  $(PROTO_FILES)

.PHONY: check
check: tools protoc ## gofmt, vet (linux and darwin), golangci-lint, proto in sync, go.mod tidy, dependency rules
	@out=$$(gofmt -s -l $$(git ls-files '*.go' | grep -v '\.pb\.go$$')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...
	GOOS=darwin $(GO) vet ./...
	$(GO) run github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_VERSION) run ./...
	@rm -rf build/proto-check && mkdir -p build/proto-check && \
	  PATH="$(CURDIR)/$(TOOLS):$$PATH" protoc -I proto \
	    --go_out=build/proto-check --go_opt=paths=source_relative \
	    --go-grpc_out=build/proto-check --go-grpc_opt=paths=source_relative $(PROTO_FILES) && \
	  for f in $$(cd build/proto-check && find . -name '*.go'); do \
	    cmp -s build/proto-check/$$f proto/$$f || { echo "proto/$$f is out of date: run make proto"; exit 1; }; \
	  done
	@cp go.mod build/go.mod.bak && cp go.sum build/go.sum.bak && $(GO) mod tidy && \
	  if ! cmp -s go.mod build/go.mod.bak || ! cmp -s go.sum build/go.sum.bak; then \
	    cp build/go.mod.bak go.mod; cp build/go.sum.bak go.sum; echo "go.mod/go.sum are not tidy: run go mod tidy"; exit 1; fi
	@if grep -rnE 'time\.Now|math/rand' --include='*.go' controller/fsm controller/state | grep -v '_test\.go'; then \
	  echo "controller/fsm and controller/state must be deterministic"; exit 1; fi
	$(GO) test -count=1 ./test/

.PHONY: clean
clean: ## remove build output
	rm -rf $(BIN) build
