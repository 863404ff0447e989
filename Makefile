# image-refresh — build, test, benchmark, demo.
SHELL := /usr/bin/env bash
GO ?= go
BIN := $(CURDIR)/bin
# The one version source (internal/version/VERSION): binaries embed it, the image and the dist
# archives are tagged with it. Bump it there, nowhere else.
VERSION := $(shell cat internal/version/VERSION)
PLUGIN_VERSION := $(VERSION:v%=%)
# Reproducible builds: no build ID, no VCS stamp, paths trimmed; archive times from the commit.
GOBUILD := CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags '-s -w -buildid='
SOURCE_DATE_EPOCH ?= $(shell git log -1 --format=%ct 2>/dev/null || echo 0)
# make dist: one set of binaries and one Helm 4 plugin archive per platform.
DIST_PLATFORMS ?= linux/amd64 linux/arm64 darwin/amd64 darwin/arm64 windows/amd64
# Real components (helm 3/4, kube-apiserver, ...) are cached here by version; see e2e/tools.
export IMAGE_REFRESH_TOOLS ?= $(HOME)/.cache/image-refresh-tools

.PHONY: all build plugin image dist tools lint test test-unit fuzz update bench demo clean

all: build

build:
	$(GOBUILD) -o $(BIN)/ ./cmd/refresher ./cmd/postrender ./cmd/chartcheck

# The Helm 4 post-renderer plugin: plugin.yaml + the postrender binary, installable with
# `helm plugin install bin/plugin/image-refresh`.
plugin: build
	rm -rf $(BIN)/plugin/image-refresh && mkdir -p $(BIN)/plugin/image-refresh
	cp postrender/plugin/plugin.yaml $(BIN)/plugin/image-refresh/
	cp $(BIN)/postrender $(BIN)/plugin/image-refresh/

# Release archives in bin/dist: <binary>-$(VERSION)-<os>-<arch>[.exe] for the three binaries,
# image-refresh-$(PLUGIN_VERSION)-<os>-<arch>.tgz (the Helm 4 plugin: `helm plugin install FILE`;
# Helm finds the plugin directory by cutting the name at "-<digit>.", hence no v),
# and SHA256SUMS (`sha256sum -c SHA256SUMS`). Archives are byte-reproducible from a commit.
dist:
	rm -rf $(BIN)/dist && mkdir -p $(BIN)/dist
	set -euo pipefail; for platform in $(DIST_PLATFORMS); do \
	  os=$${platform%/*}; arch=$${platform#*/}; exe=; [ "$$os" != windows ] || exe=.exe; \
	  work=$(BIN)/dist/.work/$$os-$$arch; plugin=$$work/plugin/image-refresh; mkdir -p $$plugin; \
	  GOOS=$$os GOARCH=$$arch $(GOBUILD) -o $$work/ ./cmd/refresher ./cmd/postrender ./cmd/chartcheck; \
	  for b in refresher postrender chartcheck; do cp $$work/$$b$$exe $(BIN)/dist/$$b-$(VERSION)-$$os-$$arch$$exe; done; \
	  cp postrender/plugin/plugin.yaml $$work/postrender$$exe $$plugin/; \
	  tar --sort=name --mtime=@$(SOURCE_DATE_EPOCH) --owner=0 --group=0 --numeric-owner --mode=go-w \
	    -C $$work/plugin -cf - image-refresh | gzip -9n >$(BIN)/dist/image-refresh-$(PLUGIN_VERSION)-$$os-$$arch.tgz; \
	done
	rm -rf $(BIN)/dist/.work
	cd $(BIN)/dist && sha256sum -- * >SHA256SUMS

# The refresher image: a reproducible linux/amd64 + linux/arm64 OCI image built without Docker,
# written as an OCI image layout to bin/image; PUSH=<registry>/<repo>:<tag> also pushes it with
# the Docker config's credentials. The version is internal/version's; created is SOURCE_DATE_EPOCH
# (default: the commit time).
REVISION ?= $(shell git rev-parse HEAD)
PUSH ?=
IMAGE_FLAGS ?=
image:
	$(GO) run ./cmd/internal/imagebuild --out $(BIN)/image \
		--revision '$(REVISION)' --created '$(SOURCE_DATE_EPOCH)' $(if $(PUSH),--push '$(PUSH)') $(IMAGE_FLAGS)

tools:
	e2e/tools/build.sh

# golangci-lint, pinned and built from the module proxy into the tools cache (.golangci.yml
# holds the linter set).
GOLANGCI_LINT_VERSION := v2.15.0
GOLANGCI_LINT := $(IMAGE_REFRESH_TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
$(GOLANGCI_LINT):
	GOBIN=$(dir $@) GOFLAGS=-buildvcs=false $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

lint: $(GOLANGCI_LINT)
	$(GOLANGCI_LINT) run ./...

# Every test: unit, golden, chartcheck suite, real Helm and the end-to-end suite on a real
# API server, registry and node; then each fuzz target for FUZZTIME. `image` first: it warms the
# linux/arm64 build cache once, which the image tests and the e2e worlds would otherwise each
# fill at the same time.
test: tools plugin image
	$(GO) vet ./...
	$(GO) test -count=1 -timeout 30m -parallel 4 ./...
	$(MAKE) fuzz

# Every fuzz target of the module, FUZZTIME each (go test -fuzz takes one package and one target
# at a time), found in the sources so a new one cannot be left out: <package dir>:<FuzzX>.
# Their committed corpora (<package>/testdata/fuzz/<target>/) also run in every go test.
FUZZTIME ?= 30s
FUZZ_TARGETS := $(shell grep -r --include='*_test.go' -o '^func Fuzz[A-Za-z0-9_]*' . | sed -E 's|^(.*)/[^/]*:func |\1:|' | sort)
fuzz:
	set -euo pipefail; for target in $(FUZZ_TARGETS); do \
	  $(GO) test -run '^$$' -fuzz "^$${target#*:}$$" -fuzztime $(FUZZTIME) "$${target%%:*}"; \
	done

# Regenerate the golden files under testdata/ and the CLI reference under docs/cli: `go test
# -update` in every package whose tests compare with golden files (internal/testutil/golden
# defines -update; no other package needs to accept it). Review the diff.
GOLDEN_PACKAGES = $(shell $(GO) list -f '{{.ImportPath}}{{range .TestImports}} {{.}}{{end}}{{range .XTestImports}} {{.}}{{end}}' ./... | awk '/internal\/testutil\/(golden|clidoc)( |$$)/ && $$1 !~ /internal\/testutil/ {print $$1}')
update:
	$(GO) test -count=1 $(GOLDEN_PACKAGES) -update

# Unit tests only (no real components).
test-unit:
	$(GO) test -short ./...

bench: build
	$(GO) run ./cmd/internal/benchtable docs/performance.md

demo: tools plugin
	$(GO) run ./e2e/demo

clean:
	rm -rf $(BIN)
