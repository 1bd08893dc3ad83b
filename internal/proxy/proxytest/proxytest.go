// Package proxytest holds the upstreams that tests put behind the
// capturing proxy (internal/proxy) and the proxy program
// (internal/proxycli), where a simulator (see sim/simtest) would be too
// much: a WebSocket peer and an address nothing listens on.
package proxytest

import (
	"net"
	"net/http"
	"testing"

	"github.com/coder/websocket"
)

// EchoWebSocket accepts a WebSocket upgrade and answers every message with
// "echo: " and the message, in the message's own type, until the
// connection ends; a request that is not an upgrade gets Accept's error
// response.
func EchoWebSocket(w http.ResponseWriter, r *http.Request) {
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	for {
		typ, msg, err := c.Read(r.Context())
		if err != nil {
			return
		}
		if err := c.Write(r.Context(), typ, append([]byte("echo: "), msg...)); err != nil {
			return
		}
	}
}

// ClosedAddr returns a loopback host:port nothing listens on, so a
// connection to it is refused at once: an upstream that is down. (The port
// was free a moment ago; another process could take it in between, a race
// too rare to matter to a test.)
func ClosedAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("proxytest: %v", err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}
