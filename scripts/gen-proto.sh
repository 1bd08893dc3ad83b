#!/usr/bin/env bash
# Generates the Go code of the protobuf APIs under api/ (messages, gRPC
# stubs, grpc-gateway handlers) next to each .proto file.
#
#   scripts/gen-proto.sh           regenerate in place (make proto)
#   scripts/gen-proto.sh --check   regenerate into a temporary directory and
#                                  fail if the committed code differs (make proto-check)
#
# Needs only python3 and go: protoc comes from PyPI's grpcio-tools in a cached
# virtualenv, the plugins are built by `go install` at pinned versions. Both
# are cached under $CACHE (default ~/.cache/reprise), keyed by version.
set -euo pipefail

GRPCIO_TOOLS_VERSION=1.85.1   # bundles protoc (libprotoc 35.1)
PROTOC_GEN_GO_VERSION=v1.36.12
PROTOC_GEN_GO_GRPC_VERSION=v1.6.2
GRPC_GATEWAY_VERSION=v2.33.0

ROOT=$(cd "$(dirname "$0")/.." && pwd)
CACHE=${CACHE:-$HOME/.cache/reprise}
GO=${GO:-go}

check=false
case "${1:-}" in
  --check) check=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

venv=$CACHE/venv-protoc-$GRPCIO_TOOLS_VERSION
if ! "$venv/bin/python" -c 'import grpc_tools.protoc' 2>/dev/null; then
  mkdir -p "$CACHE"
  python3 -m venv "$venv"
  "$venv/bin/pip" install --quiet --disable-pip-version-check "grpcio-tools==$GRPCIO_TOOLS_VERSION"
fi

# plugin NAME PACKAGE VERSION: the path of the plugin binary, built once.
plugin() {
  local dir=$CACHE/protoc-plugins/$1-$3
  if [ ! -x "$dir/$1" ]; then
    mkdir -p "$dir"
    GOBIN=$dir GOFLAGS=-buildvcs=false "$GO" install "$2@$3" >&2
  fi
  echo "$dir/$1"
}
gen_go=$(plugin protoc-gen-go google.golang.org/protobuf/cmd/protoc-gen-go "$PROTOC_GEN_GO_VERSION")
gen_grpc=$(plugin protoc-gen-go-grpc google.golang.org/grpc/cmd/protoc-gen-go-grpc "$PROTOC_GEN_GO_GRPC_VERSION")
gen_gw=$(plugin protoc-gen-grpc-gateway github.com/grpc-ecosystem/grpc-gateway/v2/protoc-gen-grpc-gateway "$GRPC_GATEWAY_VERSION")

out=$ROOT/api
if $check; then
  out=$(mktemp -d)
  trap 'rm -rf "$out"' EXIT
fi

cd "$ROOT/api"
# One protoc run per proto package (directory); the HTTP rules live beside
# the proto as NAME.http.yaml, so the protos need no google.api imports.
for dir in $(find . -name '*.proto' -printf '%h\n' | sort -u); do
  protos=$(find "$dir" -maxdepth 1 -name '*.proto' | sort)
  gw_opts=""
  for y in $(find "$dir" -maxdepth 1 -name '*.http.yaml' | sort); do
    gw_opts="$gw_opts,grpc_api_configuration=$y"
  done
  mkdir -p "$out/$dir"
  # python -m grpc_tools.protoc adds the well-known types (google/protobuf/*.proto) to the include path.
  # shellcheck disable=SC2086
  "$venv/bin/python" -m grpc_tools.protoc -I . \
    --plugin=protoc-gen-go="$gen_go" --go_out="$out" --go_opt=paths=source_relative \
    --plugin=protoc-gen-go-grpc="$gen_grpc" --go-grpc_out="$out" --go-grpc_opt=paths=source_relative \
    --plugin=protoc-gen-grpc-gateway="$gen_gw" --grpc-gateway_out="$out" \
    --grpc-gateway_opt=paths=source_relative${gw_opts} \
    $protos
done

if $check; then
  generated() { (cd "$1" && find . \( -name '*.pb.go' -o -name '*.pb.gw.go' \) | sed 's|^\./||' | sort); }
  if ! diff <(generated "$ROOT/api") <(generated "$out") >/dev/null; then
    echo "proto-check: the generated files under api/ do not match the protos (missing or extra files):" >&2
    diff <(generated "$ROOT/api") <(generated "$out") >&2 || true
    echo "run 'make proto' and commit the result" >&2
    exit 1
  fi
  stale=0
  for f in $(generated "$out"); do
    if ! cmp -s "$out/$f" "$ROOT/api/$f"; then
      echo "proto-check: api/$f is stale:" >&2
      diff -u "$ROOT/api/$f" "$out/$f" | head -40 >&2 || true
      stale=1
    fi
  done
  if [ $stale = 1 ]; then
    echo "run 'make proto' and commit the result" >&2
    exit 1
  fi
  echo "proto-check: generated code under api/ is up to date"
fi
