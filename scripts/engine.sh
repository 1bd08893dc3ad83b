#!/usr/bin/env bash
# A real inference engine for the end-to-end tests and `make demo-engine`:
# llama.cpp's C++ server built from the llama.cpp sources shipped inside
# PyPI's llama-cpp-python sdist (the registries here carry no prebuilt
# llama-server), and random-weight GGUF models written by PyPI's `gguf`
# (llama.cpp's own writer; no model weights can be downloaded here).
#
# Idempotent and cached under $CACHE/engine (default ~/.cache/reprise/engine):
#   bin/llama-server          static build, Release, CPU only
#   models/*.gguf             seeded, so every machine gets the same bytes
#   vocab/                    llama.cpp's tokenizer test vocabularies
#   venv-gguf/                the Python writer
# A cold run takes about 5 minutes of 2 cores (the C++ build); a warm one
# returns at once. Prints where everything is.
#
# Pinned: llama-cpp-python (and so llama.cpp) and gguf. Changing a pin or the
# model generator rebuilds what depends on it.
set -euo pipefail

LLAMA_CPP_PYTHON_VERSION=0.3.36
GGUF_VERSION=0.19.0
NUMPY_VERSION=2.2.6
JOBS=${JOBS:-2}

CACHE=${CACHE:-$HOME/.cache/reprise}
ENGINE=${ENGINE:-$CACHE/engine}
HERE=$(cd "$(dirname "$0")" && pwd)
SERVER=$ENGINE/bin/llama-server
STAMP=$ENGINE/bin/llama-server.version
VENV=$ENGINE/venv-gguf
MODELS=$ENGINE/models
VOCAB=$ENGINE/vocab

log() { echo "engine: $*" >&2; }

# Debian's cmake and build-essential are all the build needs; installed only
# when missing (as root here, with sudo elsewhere).
need_tools() {
  local missing=()
  command -v cmake >/dev/null 2>&1 || missing+=(cmake)
  { command -v c++ >/dev/null 2>&1 && command -v make >/dev/null 2>&1; } || missing+=(build-essential)
  [ ${#missing[@]} -eq 0 ] && return 0
  local sudo=; [ "$(id -u)" = 0 ] || sudo=sudo
  log "installing ${missing[*]} from Debian's packages"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}"
}

# sources unpacks vendor/llama.cpp of the pinned sdist into $WORK once per
# run, for whichever of the build and the vocabularies needs it.
WORK=
sources() {
  [ -n "$WORK" ] && return 0
  WORK=$ENGINE/work-$LLAMA_CPP_PYTHON_VERSION
  rm -rf "$WORK"
  mkdir -p "$WORK"
  trap 'rm -rf "$WORK"' EXIT
  log "downloading the llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION sdist from PyPI"
  python3 -m pip download --quiet --disable-pip-version-check --no-binary :all: --no-deps \
    -d "$WORK" "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION"
  local sdist=$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION.tar.gz
  [ -r "$sdist" ] || { log "sdist not found at $sdist"; exit 1; }
  tar -xzf "$sdist" -C "$WORK" "llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp"
  SRC=$WORK/llama_cpp_python-$LLAMA_CPP_PYTHON_VERSION/vendor/llama.cpp
}

build_server() {
  if [ -x "$SERVER" ] && [ "$(cat "$STAMP" 2>/dev/null)" = "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" ]; then
    return 0
  fi
  need_tools
  sources
  local started=$SECONDS
  # Static libraries make bin/llama-server a single file that can be copied
  # out of the build tree. The web UI is neither built (npm) nor fetched
  # (its prebuilt assets come from a hub this machine cannot reach); the
  # server answers its API without it. GGML_NATIVE (the default) tunes for
  # this CPU: the binary is built on the machine that runs it.
  log "configuring llama.cpp (CMake, Release, server only)"
  cmake -S "$SRC" -B "$WORK/build" -DCMAKE_BUILD_TYPE=Release \
    -DBUILD_SHARED_LIBS=OFF -DLLAMA_BUILD_SERVER=ON -DLLAMA_BUILD_TESTS=OFF \
    -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_CURL=OFF -DLLAMA_OPENSSL=OFF \
    -DLLAMA_BUILD_UI=OFF -DLLAMA_USE_PREBUILT_UI=OFF >"$WORK/configure.log" 2>&1 ||
    { tail -40 "$WORK/configure.log" >&2; exit 1; }
  log "building llama-server with -j$JOBS (about 5 minutes on 2 cores)"
  cmake --build "$WORK/build" --config Release --target llama-server -j "$JOBS" >"$WORK/build.log" 2>&1 ||
    { tail -60 "$WORK/build.log" >&2; exit 1; }
  mkdir -p "$ENGINE/bin"
  install -m 0755 "$WORK/build/bin/llama-server" "$SERVER"
  echo "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION" >"$STAMP"
  log "llama-server built in $((SECONDS - started)) s"
}

# Vocabulary-only GGUF files that llama.cpp ships for its tokenizer tests,
# each with a corpus (.inp) and the ids Hugging Face's tokenizers give for
# it (.out): the models' tokenizers, and the golden data of Reprise's GGUF
# tokenizer tests (internal/tokenizer).
VOCABS="llama-spm llama-bpe qwen2 gpt-2 phi-3"
copy_vocabs() {
  if [ "$(cat "$VOCAB/.stamp" 2>/dev/null)" = "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION $VOCABS" ]; then
    return 0
  fi
  sources
  rm -rf "$VOCAB"
  mkdir -p "$VOCAB"
  for v in $VOCABS; do
    cp "$SRC/models/ggml-vocab-$v.gguf" "$SRC/models/ggml-vocab-$v.gguf.inp" "$SRC/models/ggml-vocab-$v.gguf.out" "$VOCAB/"
  done
  echo "llama-cpp-python==$LLAMA_CPP_PYTHON_VERSION $VOCABS" >"$VOCAB/.stamp"
}

# The models are a function of the generator and the writer's version: the
# stamp holds both, so editing either regenerates them.
make_models() {
  local gen=$HERE/engine-models.py
  local want
  want="gguf==$GGUF_VERSION numpy==$NUMPY_VERSION $(cat "$VOCAB/.stamp") $(sha256sum "$gen" | cut -d' ' -f1)"
  if [ "$(cat "$MODELS/.stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  if [ "$(cat "$VENV/.stamp" 2>/dev/null)" != "gguf==$GGUF_VERSION numpy==$NUMPY_VERSION" ]; then
    log "installing gguf==$GGUF_VERSION into $VENV"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install --quiet --disable-pip-version-check "gguf==$GGUF_VERSION" "numpy==$NUMPY_VERSION"
    echo "gguf==$GGUF_VERSION numpy==$NUMPY_VERSION" >"$VENV/.stamp"
  fi
  rm -rf "$MODELS.tmp"
  mkdir -p "$MODELS.tmp"
  log "writing the random-weight models (seeded)"
  "$VENV/bin/python" "$gen" "$VOCAB" "$MODELS.tmp"
  echo "$want" >"$MODELS.tmp/.stamp"
  rm -rf "$MODELS"
  mv "$MODELS.tmp" "$MODELS"
}

build_server
copy_vocabs
make_models
"$SERVER" --version 2>&1 | grep -m1 version | sed 's/^/engine: llama-server /' >&2 || true
echo "llama-server: $SERVER"
for m in "$MODELS"/*.gguf; do
  echo "model: $m ($(du -h "$m" | cut -f1))"
done
echo "REPRISE_ENGINE=$ENGINE"
