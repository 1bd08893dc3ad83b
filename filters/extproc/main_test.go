package extproc

import (
	"testing"

	"go.uber.org/goleak"
)

// Every stream's goroutines (the RPC's and its receive loop) end with it.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
