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
MODULE := github.com/turbulence-sre/turbulence
# The version of packages and of the binaries in them: from the newest
# v* tag (v1.2.3-4-gabcdef1 becomes 1.2.3+4.gabcdef1), else BASE_VERSION
# with the commit (0.1.0+git.abcdef1). No "-": an RPM version may not
# have one, and Debian would read it as the package revision.
BASE_VERSION := 0.1.0
VERSION ?= $(shell v=$$(git describe --tags --match 'v[0-9]*' --dirty 2>/dev/null) && echo "$$v" | sed 's/^v//; s/-/+/; s/-/./g' || \
	echo "$(BASE_VERSION)+git.$$(git rev-parse --short HEAD 2>/dev/null || echo unknown)$$(git diff --quiet HEAD 2>/dev/null || echo .dirty)")
DIST    ?= dist
PKG_BIN ?= build/package/bin
# make install: binaries under $(DESTDIR)$(PREFIX)/bin, units where an
# administrator's own units go, configuration under /etc.
PREFIX     ?= /usr/local
UNITDIR    ?= /etc/systemd/system
SYSCONFDIR ?= /etc

.PHONY: help
help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

.PHONY: build
build: ## build turbulence-agent, turbulence-controller and turbctl into bin/ (static)
	@# Static (no cgo): the agent runs on every host whatever its libc, and
	@# each worker it re-executes starts without the dynamic loader.
	CGO_ENABLED=0 $(GO) build -trimpath -o $(BIN)/ ./agent/cmd/turbulence-agent ./controller/cmd/turbulence-controller ./controller/cmd/turbctl

.PHONY: package
package: ## .deb and .rpm of the agent and of the controller (with turbctl) into dist/ (nfpm, pinned in go.mod)
	@# Static, like make build, and stamped with the package's version.
	rm -rf $(PKG_BIN) && mkdir -p $(PKG_BIN) $(DIST)
	CGO_ENABLED=0 GOOS=linux GOARCH=amd64 $(GO) build -trimpath -ldflags '-X $(MODULE)/internal/version.stamp=$(VERSION)' \
	  -o $(PKG_BIN)/ ./agent/cmd/turbulence-agent ./controller/cmd/turbulence-controller ./controller/cmd/turbctl
	$(GO) build -o $(TOOLS)/ github.com/goreleaser/nfpm/v2/cmd/nfpm
	for p in agent controller; do \
	  VERSION='$(VERSION)' PKG_BIN='$(PKG_BIN)' $(TOOLS)/nfpm package -f packaging/nfpm/$$p.yaml -p deb -t '$(DIST)/turbulence-'$$p'_$(VERSION)_amd64.deb' && \
	  VERSION='$(VERSION)' PKG_BIN='$(PKG_BIN)' $(TOOLS)/nfpm package -f packaging/nfpm/$$p.yaml -p rpm -t '$(DIST)/turbulence-'$$p'-$(VERSION)-1.x86_64.rpm' || exit 1; \
	done
	@ls -1 $(DIST)/*'$(VERSION)'*

.PHONY: install
install: build ## install binaries, units and example configuration (PREFIX=/usr/local, DESTDIR) for hosts without packages
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(UNITDIR) $(DESTDIR)$(SYSCONFDIR)/default $(DESTDIR)$(SYSCONFDIR)/modules-load.d
	install -d -m 0755 $(DESTDIR)$(SYSCONFDIR)/turbulence/tls
	install -m 0755 $(BIN)/turbulence-agent $(BIN)/turbulence-controller $(BIN)/turbctl $(DESTDIR)$(PREFIX)/bin/
	@# The units name /usr/bin, where packages put the binaries.
	for u in turbulence-agent turbulence-controller; do \
	  sed 's|/usr/bin/|$(PREFIX)/bin/|g' packaging/systemd/$$u.service > $(DESTDIR)$(UNITDIR)/$$u.service && chmod 0644 $(DESTDIR)$(UNITDIR)/$$u.service || exit 1; \
	done
	@# Configuration is installed once: an administrator's edits are kept.
	test -e $(DESTDIR)$(SYSCONFDIR)/turbulence/agent.yaml || install -m 0644 packaging/agent.yaml $(DESTDIR)$(SYSCONFDIR)/turbulence/agent.yaml
	for f in turbulence-agent turbulence-controller; do \
	  test -e $(DESTDIR)$(SYSCONFDIR)/default/$$f || install -m 0644 packaging/default/$$f $(DESTDIR)$(SYSCONFDIR)/default/$$f || exit 1; \
	done
	test -e $(DESTDIR)$(SYSCONFDIR)/modules-load.d/turbulence.conf || install -m 0644 packaging/modules-load.d/turbulence.conf $(DESTDIR)$(SYSCONFDIR)/modules-load.d/
	@echo "installed; then: systemctl daemon-reload, certificates in $(SYSCONFDIR)/turbulence/tls, systemctl enable --now turbulence-agent (packaging/README.md)"

.PHONY: packaging-tools
packaging-tools: # systemd-analyze, dpkg-deb and rpm for the checks in test/packaging; chromium for the experiment report's render test
	@command -v systemd-analyze >/dev/null && command -v rpm >/dev/null && command -v chromium >/dev/null || { apt-get update -qq && apt-get install -y -qq systemd rpm chromium; }

.PHONY: demo
demo: build ## one-node controller + local agent in a temp dir: apply, measure and revert a 50 % CPU fault
	$(GO) run ./test/demo -bin $(BIN)

.PHONY: test
test: packaging-tools prometheus ## go test -race ./... (privileged tests too when root), the 1,000-agent scale test, then a short run of every fuzz target
	$(TEST_ENV) $(GO) test -race -count=1 -timeout 20m ./...
	@# A thousand simulated agents hold more goroutines than the race
	@# detector allows (8,128): the scale test runs in a plain build.
	$(TEST_ENV) $(GO) test -count=1 -timeout 10m -run '^TestScale' ./test/fleetsim/
	@$(MAKE) --no-print-directory fuzz FUZZTIME=2s

# The chaos campaign on Turbulence itself (test/chaos, docs/reliability.md):
# `make chaos` runs a long one; CHAOS_SEED replays a failed one's draws.
CHAOS_DURATION ?= 10m
CHAOS_SEED ?=

.PHONY: chaos
chaos: ## a long seeded chaos campaign on Turbulence itself (root; CHAOS_DURATION=10m, CHAOS_SEED=… replays)
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SEED=$(CHAOS_SEED) TURBULENCE_REQUIRE_PRIVILEGED=1 \
	  $(GO) test -race -count=1 -timeout 0 -v -run '^TestPrivilegedChaosCampaign$$' ./test/chaos

# make bench: every benchmark, then build/bench/results.md, results.json
# and SVG plots (test/benchreport; docs/benchmarks.md). The fleet runs on
# three controller processes at BENCH_AGENTS agents; the fleet step alone
# takes 3 to 15 minutes, make bench as a whole about 20 to 30 (summed from
# its parts), on the shared
# 2-core machine (docs/benchmarks.md).
# The 3-node fleet runs with a 5 s raft election timeout: at the default
# 500 ms a loaded machine makes the cluster change leaders over and over
# while 10,000 agents attach (docs/benchmarks.md). A benchmark that fails
# is noted and the report still written from the others; make bench then
# fails.
BENCH_OUT    ?= build/bench
BENCH_AGENTS ?= 100,1000,5000,10000
BENCH_LINES  := grep -E '^(Benchmark|ok|FAIL|---|\s+\S+_test.go)'

.PHONY: bench
bench: stress-ng ## every benchmark; results table, JSON and SVG plots in build/bench (docs/benchmarks.md)
	rm -rf $(BENCH_OUT) && mkdir -p $(BENCH_OUT)
	@# One run per case: these benchmarks measure loads and latencies, not ns/op.
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 $$($(GO) list ./... | grep -v -e /test/e2e -e '/controller$$' -e /test/fleetsim) \
	  | tee $(BENCH_OUT)/packages.txt | $(BENCH_LINES) || echo packages >> $(BENCH_OUT)/failed
	@# The fleet on a 3-node cluster of controller processes, and the real agent idle.
	set -o pipefail; FLEETSIM_NODES=3 FLEETSIM_AGENTS=$(BENCH_AGENTS) FLEETSIM_RAFT_ELECTION_TIMEOUT=5s $(GO) test -run '^$$' -bench . -benchtime 1x -count 1 -timeout 90m ./test/fleetsim \
	  | tee $(BENCH_OUT)/fleet.txt | $(BENCH_LINES) || echo fleet >> $(BENCH_OUT)/failed
	@# The cluster: 20 leader kills with 100 agents; raft writes from 1 and 64 clients.
	set -o pipefail; $(GO) test -run '^$$' -bench Failover -benchtime 20x -count 1 ./controller | tee $(BENCH_OUT)/failover.txt | $(BENCH_LINES) || echo failover >> $(BENCH_OUT)/failed
	set -o pipefail; $(GO) test -run '^$$' -bench RaftWrite -benchtime 2000x -count 1 ./controller | tee $(BENCH_OUT)/raftwrite.txt | $(BENCH_LINES) || echo raftwrite >> $(BENCH_OUT)/failed
	@# 50 whole fault lifetimes, so the p99 has samples behind it.
	set -o pipefail; $(GO) test -run '^$$' -bench . -benchtime 50x -count 1 ./test/e2e | tee $(BENCH_OUT)/e2e.txt | $(BENCH_LINES) || echo e2e >> $(BENCH_OUT)/failed
	$(GO) run ./test/benchreport -out $(BENCH_OUT) -command 'make bench' $(BENCH_OUT)/*.txt
	@echo "results: $(BENCH_OUT)/results.md"
	@if [ -e $(BENCH_OUT)/failed ]; then echo "failed: $$(tr '\n' ' ' < $(BENCH_OUT)/failed)"; exit 1; fi

.PHONY: bench-docs
bench-docs: ## copy the last make bench's plots and results into docs/bench (docs/benchmarks.md cites them)
	mkdir -p docs/bench && cp $(BENCH_OUT)/*.svg $(BENCH_OUT)/results.md $(BENCH_OUT)/results.json docs/bench/

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

.PHONY: prometheus
prometheus: # the probe tests (controller/experiment/probe) start a real Prometheus from Debian
	@# The tests start their own Prometheus on loopback. On a host with systemd the
	@# package enables and starts a system one on :9090: the install that made it
	@# stops and disables it again (nothing else is touched).
	@test -x /usr/bin/prometheus || { apt-get update -qq && apt-get install -y -qq --no-install-recommends prometheus && \
	  { ! test -d /run/systemd/system || systemctl disable --now prometheus.service; }; }

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
