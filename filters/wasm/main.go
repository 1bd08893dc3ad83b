// Command wasm is the proxy-wasm capture filter, built with standard Go:
//
//	GOOS=wasip1 GOARCH=wasm go build -buildmode=c-shared -o bin/reprise-capture.wasm ./filters/wasm
//
// (make wasm). Everything is in package capturefilter; this only registers
// it with the SDK, whose exports (proxy_on_*) are what Envoy loads.
package main

import (
	"github.com/proxy-wasm/proxy-wasm-go-sdk/proxywasm"

	"github.com/reprise-llm/reprise/filters/wasm/capturefilter"
)

func init() { proxywasm.SetVMContext(capturefilter.NewVM()) }

// main is not called in a c-shared (WASI reactor) build; Go needs it.
func main() {}
