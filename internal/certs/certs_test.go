package certs

import (
	"crypto/x509"
	"encoding/pem"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A real test server's certificate loads; a file without one, or no file,
// is an error naming the flag and the file.
func TestPool(t *testing.T) {
	srv := httptest.NewTLSServer(nil)
	defer srv.Close()
	dir := t.TempDir()
	good := filepath.Join(dir, "ca.pem")
	if err := os.WriteFile(good, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o600); err != nil {
		t.Fatal(err)
	}
	pool, err := Pool("--ca-cert", good)
	if err != nil || pool == nil {
		t.Fatalf("Pool: %v", err)
	}
	if _, err := srv.Certificate().Verify(x509VerifyOptions(pool)); err != nil {
		t.Errorf("the server's certificate does not verify against the pool: %v", err)
	}
	bad := filepath.Join(dir, "bad.pem")
	if err := os.WriteFile(bad, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Pool("--upstream-ca", bad); err == nil || !strings.Contains(err.Error(), "--upstream-ca "+bad+": no PEM certificate") {
		t.Errorf("bad file: %v", err)
	}
	if _, err := Pool("--ca-cert", filepath.Join(dir, "missing.pem")); err == nil || !strings.HasPrefix(err.Error(), "--ca-cert: ") {
		t.Errorf("missing file: %v", err)
	}
}

func x509VerifyOptions(pool *x509.CertPool) x509.VerifyOptions {
	return x509.VerifyOptions{Roots: pool, DNSName: "example.com"}
}
