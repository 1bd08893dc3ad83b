package proxy

import (
	"bytes"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptrace"
	"sync/atomic"
	"time"

	"github.com/reprise-llm/reprise/internal/certs"
	"github.com/reprise-llm/reprise/internal/keepalive"
)

// UpstreamTLS configures how the proxy verifies an https:// upstream. The
// zero value verifies against the system roots with the URL's host name.
type UpstreamTLS struct {
	// CAFile is a PEM file of CA certificates trusted for the upstream, in
	// addition to the system roots (--upstream-ca), e.g. a cluster's
	// internal CA.
	CAFile string
	// ServerName overrides the name sent in SNI and checked against the
	// upstream's certificate (--upstream-server-name), for an upstream
	// reached by IP or through a name its certificate does not carry.
	ServerName string
	// InsecureSkipVerify accepts any upstream certificate
	// (--upstream-insecure-skip-verify). Traffic is then readable by anyone
	// on the path who can intercept it; the proxy warns at start.
	InsecureSkipVerify bool
}

// set reports whether any TLS option was given.
func (t UpstreamTLS) set() bool {
	return t.CAFile != "" || t.ServerName != "" || t.InsecureSkipVerify
}

// validate checks t for an upstream URL of the given scheme. A TLS option
// with an http:// upstream is a mistake worth stopping for: the operator
// believes the hop is verified when it is not encrypted at all.
func (t UpstreamTLS) validate(scheme string) error {
	var errs []error
	if t.set() && scheme != "https" {
		errs = append(errs, errors.New("--upstream-ca, --upstream-server-name and --upstream-insecure-skip-verify apply only to an https:// --upstream"))
	}
	if t.CAFile != "" {
		if _, err := certs.Pool("--upstream-ca", t.CAFile); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// tlsConfig builds the client TLS configuration, nil for the defaults.
func (t UpstreamTLS) tlsConfig() (*tls.Config, error) {
	if !t.set() {
		return nil, nil
	}
	cfg := &tls.Config{ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify, MinVersion: tls.VersionTLS12}
	if t.CAFile != "" {
		pool, err := certs.Pool("--upstream-ca", t.CAFile)
		if err != nil {
			return nil, err
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}

// upstreamTransport is the proxy's own connection pool to the upstream, not
// http.DefaultTransport: sized for a gateway's concurrency (the default keeps
// two idle connections per host, so every burst would redial), never behind
// an environment proxy, and never decompressing (bodies pass through as
// received; the proxy decodes its own copy for parsing, encoding.go).
// HTTP/2 is negotiated with https:// upstreams that offer it
// (ForceAttemptHTTP2: a custom dialer or TLS config otherwise turns it off);
// WebSocket upgrades still go over HTTP/1.1, as net/http arranges.
func upstreamTransport(tc *tls.Config) *http.Transport {
	return &http.Transport{
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       tc,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          0,
		MaxIdleConnsPerHost:   1024,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   10 * time.Second,
		ExpectContinueTimeout: time.Second,
		DisableCompression:    true,
	}
}

// ServerProtocols is what the client-facing listener speaks: HTTP/1.1
// always, and cleartext HTTP/2 with prior knowledge (h2c) when h2c is set.
// h2c costs HTTP/1.1 clients nothing: a connection is HTTP/2 only if it
// opens with the HTTP/2 preface, which no HTTP/1.1 client sends. (The
// HTTP/1.1 "Upgrade: h2c" dance is not supported; gRPC-style and
// envoy-style h2c clients use prior knowledge.)
func ServerProtocols(h2c bool) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetUnencryptedHTTP2(h2c)
	return p
}

// freshTransport is upstreamTransport without kept-alive connections:
// raceRetry's second attempt goes out on a connection of its own.
func freshTransport(tc *tls.Config) *http.Transport {
	t := upstreamTransport(tc)
	t.DisableKeepAlives = true
	return t
}

// raceRetry sends a request to the upstream again when its first attempt
// met the keep-alive race (internal/keepalive): the upstream closed an
// idle kept-alive connection as the request went out on it, so the request
// provably never reached it. Without this the client would get a 502 for a
// request the upstream never saw — an error it would not have had going
// direct on a fresh connection, and one llama.cpp's server causes routinely
// right after a stream. The request's body is sent again from the proxy's
// copy (teeBody), so only a body the proxy holds whole (read to its end,
// under the capture cap) can be re-sent; the new attempt goes out on a
// fresh connection, never re-sent itself. Every other failure reaches the
// client as before.
type raceRetry struct {
	inner, fresh http.RoundTripper
	retried      *atomic.Int64
}

func (rt *raceRetry) RoundTrip(req *http.Request) (*http.Response, error) {
	var a keepalive.Attempt
	resp, err := rt.inner.RoundTrip(req.WithContext(httptrace.WithClientTrace(req.Context(), a.Trace())))
	if !a.NeverReached(req.Context(), err) {
		return resp, err
	}
	again := req.Clone(req.Context())
	if req.Body != nil && req.Body != http.NoBody {
		// The body the transport read is the proxy's tee (ReverseProxy
		// wraps it): the exchange holds it.
		ex := exchangeFrom(req.Context())
		if ex == nil || ex.body == nil {
			return resp, err
		}
		body, whole := ex.body.whole()
		if !whole {
			return resp, err
		}
		again.Body, again.ContentLength = io.NopCloser(bytes.NewReader(body)), int64(len(body))
	}
	rt.retried.Add(1)
	return rt.fresh.RoundTrip(again)
}
