# Turbulence — the only entry point for building, checking and testing.
SHELL := /bin/bash
GO    ?= go
BIN   := bin
PKG   := github.com/turbulence-sre/turbulence
PROTO_FILES := $(wildcard proto/turbulence/v1/*.proto proto/turbulence/raft/v1/*.proto)

.PHONY: help
help: ## show this help
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

.PHONY: build
build: ## build turbulence-agent, turbulence-controller and turbctl into bin/
	$(GO) build -o $(BIN)/ ./agent/cmd/turbulence-agent ./controller/cmd/turbulence-controller ./controller/cmd/turbctl

TOOLS := build/tools

.PHONY: tools
tools: ## build the code generators pinned in go.mod into build/tools
	$(GO) build -o $(TOOLS)/ google.golang.org/protobuf/cmd/protoc-gen-go google.golang.org/grpc/cmd/protoc-gen-go-grpc

.PHONY: proto
proto: tools ## regenerate Go code from proto/ (protoc from Debian, plugins pinned in go.mod)
	@command -v protoc >/dev/null || { apt-get update -qq && apt-get install -y -qq protobuf-compiler; }
	PATH="$(CURDIR)/$(TOOLS):$$PATH" protoc -I proto \
	  --go_out=proto --go_opt=paths=source_relative \
	  --go-grpc_out=proto --go-grpc_opt=paths=source_relative \
	  $(PROTO_FILES)
