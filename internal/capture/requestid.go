package capture

// MaxRequestID bounds a client-supplied X-Request-Id, in bytes.
const MaxRequestID = 128

// UsableRequestID reports whether a client-supplied X-Request-Id may be
// recorded and logged: 1..MaxRequestID printable ASCII characters without
// spaces, so that a record or a log line cannot be forged or flooded
// through it. Every front end (the proxy, the ext_proc collector, the wasm
// filter) applies this one rule.
func UsableRequestID(v string) bool {
	if v == "" || len(v) > MaxRequestID {
		return false
	}
	for i := 0; i < len(v); i++ {
		if v[i] <= ' ' || v[i] > '~' {
			return false
		}
	}
	return true
}
