# image-refresh — build, test, benchmark, demo.
SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/bin
VERSION ?= v0.1.0-dev
LDFLAGS := -s -w -X github.com/tracebloc/image-refresh/cmd/internal/version.Version=$(VERSION)
# Real components (helm 3/4, kube-apiserver, ...) are cached here by version; see e2e/tools.
export IMAGE_REFRESH_TOOLS ?= $(HOME)/.cache/image-refresh-tools

.PHONY: all build plugin tools test test-unit bench demo clean

all: build

build:
	$(GO) build -trimpath -ldflags '$(LDFLAGS)' -o $(BIN)/ ./cmd/refresher ./cmd/postrender ./cmd/chartcheck

# The Helm 4 post-renderer plugin: plugin.yaml + the postrender binary, installable with
# `helm plugin install bin/plugin/image-refresh`.
plugin: build
	rm -rf $(BIN)/plugin/image-refresh && mkdir -p $(BIN)/plugin/image-refresh
	cp postrender/plugin/plugin.yaml $(BIN)/plugin/image-refresh/
	cp $(BIN)/postrender $(BIN)/plugin/image-refresh/

tools:
	e2e/tools/build.sh

# Every test: unit, golden, chartcheck suite, real Helm and the end-to-end suite on a real
# API server and registry.
test: tools plugin
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m -parallel 4 ./...

# Unit tests only (no real components).
test-unit:
	$(GO) test -short ./...

bench: build
	$(GO) run ./cmd/internal/benchtable

demo: tools plugin
	$(GO) run ./e2e/demo

clean:
	rm -rf $(BIN)
