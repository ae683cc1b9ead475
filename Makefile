# dsbuild — see README.md. `make demo` and `make test` are the two commands a
# newcomer needs; both install what is missing first.

GO       ?= go
BIN      := bin/dsbuild
# What dsbuild needs to build (sandbox, Debian images, git for repositories),
# and what its tests add: a registry, skopeo and podman for the images,
# Jinja for chat templates, Chromium for the build report; gcc builds the
# tree-sitter grammars (cgo), node and rustc check the lang package's
# JavaScript and Rust candidates.
APT_DEPS  := bubblewrap mmdebstrap python3 python3-pytest git ca-certificates gcc
TEST_DEPS := $(APT_DEPS) python3-jinja2 docker-registry skopeo podman runc chromium nodejs rustc
VERSITYGW := github.com/versity/versitygw/cmd/versitygw@v1.8.0
SUDO     := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTHON   := /usr/bin/python3

.PHONY: all build deps test-deps install-packages test test-go test-py bench lint demo demo-languages clean

all: build

build:
	$(GO) build -ldflags "-X main.versionStamp=$$(git describe --always --dirty 2>/dev/null)" -o $(BIN) ./cmd/dsbuild

# Install the system packages missing from APT_DEPS (deps) or TEST_DEPS
# (test-deps), on Debian or Ubuntu.
deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(APT_DEPS)"

test-deps:
	@$(MAKE) --no-print-directory install-packages PACKAGES="$(TEST_DEPS)"
	@# The S3 server the shared-store tests start (internal/testenv/s3.go
	@# finds it on PATH or in $$(go env GOPATH)/bin).
	@command -v versitygw >/dev/null || [ -x "$$($(GO) env GOPATH)/bin/versitygw" ] || \
		{ echo "installing: versitygw"; $(GO) install $(VERSITYGW); }
	@# The one-machine Slurm cluster the Slurm executor's tests and
	@# benchmark run against (does nothing if it runs already).
	@$(SUDO) scripts/slurm-local.sh

install-packages:
	@missing=""; for p in $(PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
		echo "installing:$$missing"; \
		$(SUDO) apt-get update -qq && DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq $$missing; \
	fi

test: test-deps test-go test-py

test-go:
	$(GO) test -count=1 -timeout 30m ./...

test-py:
	$(PYTHON) -m pytest -q -p no:cacheprovider lang/py

bench: test-deps
	$(GO) test -run '^$$' -bench . -benchtime 3x -timeout 60m ./...

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go')); if [ -n "$$out" ]; then echo "gofmt needed:"; echo "$$out"; exit 1; fi
	$(GO) vet ./...

# Builds the quickstart recipe: no model, real sandboxes and images. (Not
# --offline: the first run fetches Debian packages for the environment.)
demo: deps build
	./$(BIN) recipes/quickstart.yaml

# The quickstart in Go, JavaScript and Rust (recipes/languages.yaml): three
# toolchain environments and compiled test suites make it several minutes,
# too long for `make demo`.
demo-languages: deps build
	./$(BIN) recipes/languages.yaml

clean:
	rm -rf bin out
