# stoker's build. `make demo` runs the main job on an embedded NATS server;
# `make test` runs every test. See README.md.

GO       ?= go
VERSION  ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
REVISION ?= $(shell git rev-parse HEAD 2>/dev/null)
LDFLAGS  := -X main.version=$(VERSION) -X main.revision=$(REVISION)
# Packages whose tests are heavy enough to run without -race in CI's budget.
FUZZTIME ?= 10m

.PHONY: all build demo test test-race vet lint ci image image-cuda clean

all: build

build:
	CGO_ENABLED=0 $(GO) build -ldflags '$(LDFLAGS)' -o bin/stoker ./cmd/stoker

# The main job: an embedded NATS JetStream server, a worker running the image
# and text pipelines, the bundled samples published, tensors consumed, and a
# summary table.
demo:
	$(GO) run ./cmd/stoker demo

# Every test, with the race detector; cgo is needed for the kernel emulation
# tests (gcc is on every supported machine).
test: vet
	$(GO) test -race -timeout 30m ./...

vet:
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo 'gofmt: files above need formatting'; exit 1; }

# The checks CI adds to `make test` (they need Debian packages .ci/run installs).
ci: test test-resilience ptx-check test-emulation-sanitized vet-cuda build-cuda test-cuda-fake test-turbojpeg

test-turbojpeg:
	CGO_ENABLED=1 $(GO) test -tags turbojpeg ./preprocess/image/...

clean:
	rm -rf bin stoker-data

include kernels/kernels.mk
include deploy/deploy.mk
include internal/resilience/resilience.mk
