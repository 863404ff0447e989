// Package procstat measures a child process for benchmarks: its wall time and the high-water
// mark of its resident set.
package procstat

import (
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Usage is what one run of a child process cost.
type Usage struct {
	Wall    time.Duration
	PeakMiB float64
}

// Run runs cmd to completion and measures it. The peak is polled from /proc/PID/status (VmHWM
// only ever grows, and exec.Cmd.Start returns after the exec, so every reading is the child's own
// address space). The child's ru_maxrss would not do: os/exec starts it with vfork, so the kernel
// charges it this process's high-water mark too.
func Run(cmd *exec.Cmd) (Usage, error) {
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return Usage{}, fmt.Errorf("starting %s: %w", cmd.Path, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	status := fmt.Sprintf("/proc/%d/status", cmd.Process.Pid)
	peakKiB := vmHWM(status)
	tick := time.NewTicker(time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case err := <-done:
			if err != nil {
				return Usage{}, fmt.Errorf("running %s: %w", cmd.Path, err)
			}
			if peakKiB == 0 {
				return Usage{}, fmt.Errorf("no VmHWM in %s", status)
			}
			return Usage{Wall: time.Since(start), PeakMiB: float64(peakKiB) / 1024}, nil
		case <-tick.C:
			peakKiB = max(peakKiB, vmHWM(status))
		}
	}
}

// vmHWM reads the VmHWM line ("VmHWM:   34248 kB") of a /proc status file; 0 if unreadable.
func vmHWM(path string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		return 0
	}
	for line := range strings.Lines(string(data)) {
		if rest, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kib, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(rest), " kB"))
			return kib
		}
	}
	return 0
}
