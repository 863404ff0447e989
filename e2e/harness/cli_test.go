package harness

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/util/wait"
)

// TestRunTimeoutStopsGrandchildren times out a command whose child holds its output pipes,
// as helm's post-renderer does: run returns the deadline error and the child is gone
// rather than keeping Wait blocked on the pipes.
func TestRunTimeoutStopsGrandchildren(t *testing.T) {
	pidFile := filepath.Join(t.TempDir(), "grandchild.pid")
	ctx, cancel := context.WithTimeout(t.Context(), 500*time.Millisecond)
	defer cancel()
	returned := make(chan error, 1)
	go func() {
		_, err := run(ctx, os.Environ(), "", "/bin/sh", "-c", `sleep 600 & echo $! > "$1"; wait`, "sh", pidFile)
		returned <- err
	}()
	// A guard against hanging until the test binary's own timeout, not a measurement.
	select {
	case err := <-returned:
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("run returned %v, want the deadline error", err)
		}
	case <-time.After(time.Minute):
		t.Fatal("run still waiting a minute after its deadline: a grandchild holds the pipes")
	}
	data, err := os.ReadFile(pidFile)
	if err != nil {
		t.Fatal(err)
	}
	// The killed child closes its pipes before it finishes exiting, so run may return while
	// the child is still on its way out; give it a moment.
	pid := strings.TrimSpace(string(data))
	err = wait.PollUntilContextTimeout(
		t.Context(),
		10*time.Millisecond,
		10*time.Second,
		true,
		func(context.Context) (bool, error) {
			state := processState(t, pid)
			return state == "" || state == "Z", nil
		},
	)
	if err != nil {
		t.Errorf("the command's child (pid %s) is still running (state %s) 10s after the timeout", pid, processState(t, pid))
	}
}

// processState is the state letter of /proc/PID/stat ("" once the process is gone; "Z"
// while it waits to be reaped by its new parent).
func processState(t *testing.T, pid string) string {
	t.Helper()
	if _, err := strconv.Atoi(pid); err != nil {
		t.Fatalf("bad pid %q", pid)
	}
	stat, err := os.ReadFile(filepath.Join("/proc", pid, "stat"))
	if errors.Is(err, os.ErrNotExist) {
		return ""
	}
	if err != nil {
		t.Fatal(err)
	}
	// The command name in parentheses may contain spaces; the state follows it.
	_, rest, _ := strings.Cut(string(stat), ") ")
	state, _, _ := strings.Cut(rest, " ")
	return state
}
