// Package deploy holds Reprise's deploy manifests (Istio, Envoy Gateway,
// standalone Envoy, plain Kubernetes). It has no code: its tests decode every
// manifest strictly, check the capture policy (fail open, allowlisted
// headers, no inline secret) and plant a typo in every field of every file,
// which must be rejected. See README.md.
package deploy
