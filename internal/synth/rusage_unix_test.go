//go:build unix

package synth

import (
	"syscall"
	"time"
)

// cpuTime is the CPU time (user + system) the process has used: on a
// loaded machine, prompts per CPU second is the speed one core gives.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
