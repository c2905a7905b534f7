# deploy/deploy.mk: container images and deployment checks, included by the
# top-level Makefile. Paths are relative to the repository root. The image
# targets need Docker with BuildKit (docker buildx); nothing else here does.

DOCKER      ?= docker
IMAGE       ?= ghcr.io/stoker-ml/stoker
IMAGE_TAG   ?= $(VERSION)
GO_VERSION  ?= $(shell sed -n 's/^go //p' go.mod)

.PHONY: image image-cuda deploy-check

# CPU image: -tags turbojpeg (libjpeg-turbo, as PIL) on Debian 12 slim, non-root.
image:
	$(DOCKER) build -f deploy/Dockerfile --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		--build-arg GO_VERSION=$(GO_VERSION) -t $(IMAGE):$(IMAGE_TAG) .

# CUDA image: -tags cuda,turbojpeg on nvidia/cuda, non-root.
image-cuda:
	$(DOCKER) build -f deploy/Dockerfile.cuda --build-arg VERSION=$(VERSION) --build-arg REVISION=$(REVISION) \
		--build-arg GO_VERSION=$(GO_VERSION) -t $(IMAGE):$(IMAGE_TAG)-cuda .

# Manifests, dashboard and alert rules parse and match what a running
# worker exports (no Docker or cluster needed).
deploy-check:
	$(GO) test ./deploy/... ./internal/metrics/...
