//go:build unix

package workload

import (
	"syscall"
	"time"
)

// maxRSS is the process's peak resident set size in bytes (Linux reports
// ru_maxrss in KiB).
func maxRSS() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return int64(ru.Maxrss) << 10
}

// cpuTime is the CPU time (user + system) the process has used: on a
// loaded machine, records per CPU second is the speed one core gives.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
