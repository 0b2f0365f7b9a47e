# Keyraft's build, test, bench and image targets.
#
#   make build    static release binary (CGO_ENABLED=0) with the version and
#                 commit stamped in: $(BIN), default bin/keyraft
#   make test     the README's test command: go test -race ./..., plus the
#                 deploy/kubernetes module's tests
#   make bench    the TLS benchmarks of ./systemtest (p50/p99, req/s)
#   make image    the FROM-scratch image keyraft:$(VERSION) from the binary
#   make check    gofmt, go vet and staticcheck, as .ci/run runs them
#   make compose-check  the Docker Compose cluster end to end
#   make docs-check     the commands of docs/operations.md and docs/enclaves.md
#
# VERSION defaults to `git describe --tags --always --dirty` and COMMIT to
# the full commit hash; set them for a release: make build VERSION=v1.2.0.

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT  ?= $(shell git rev-parse HEAD 2>/dev/null || echo unknown)
BIN     ?= bin/keyraft
IMAGE   ?= keyraft
GO      ?= go

LDFLAGS := -s -w -X main.releaseVersion=$(VERSION) -X main.releaseCommit=$(COMMIT)

.PHONY: build test bench image check compose-check docs-check clean

build:
	CGO_ENABLED=0 $(GO) build -trimpath -buildvcs=false -ldflags "$(LDFLAGS)" -o $(BIN) ./cmd/keyraft
	@$(BIN) --version

test:
	$(GO) test -race -count=1 ./...
	cd deploy/kubernetes && $(GO) test -count=1 ./...

bench:
	$(GO) test -run XXX -bench . ./systemtest

# The image takes the static binary from deploy/bin (its build context).
image:
	$(MAKE) build BIN=deploy/bin/keyraft
	docker build -f deploy/Dockerfile.keyraft -t $(IMAGE):$(VERSION) deploy

check:
	test -z "$$(gofmt -l $$(git ls-files '*.go'))"
	$(GO) vet ./...
	staticcheck ./...
	cd deploy/kubernetes && $(GO) vet ./... && staticcheck ./...

compose-check:
	bash scripts/compose-check.sh

docs-check:
	bash scripts/e2e-docs.sh

clean:
	rm -rf bin deploy/bin
