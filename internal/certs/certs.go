// Package certs loads the certificate authorities a flag names
// (replay's --ca-cert, the proxy's --upstream-ca).
package certs

import (
	"crypto/x509"
	"fmt"
	"os"
)

// Pool reads the PEM bundle at path into a pool holding the system roots
// plus the bundle's certificates (the bundle alone where the system has no
// roots). Errors name flag, the flag that gave path.
func Pool(flag, path string) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", flag, err)
	}
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s %s: no PEM certificate found", flag, path)
	}
	return pool, nil
}
