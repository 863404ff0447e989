package procstat

import (
	"os/exec"
	"testing"
)

// A child that touches 64 MiB must report at least that, and a trivial child far less: the
// parent's own memory (this test binary) is not charged to it.
func TestRunMeasuresTheChild(t *testing.T) {
	big, err := Run(exec.Command("dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=2"))
	if err != nil {
		t.Fatal(err)
	}
	small, err := Run(exec.Command("sleep", "0.1")) // lives long enough to be read: an exited process has no VmHWM
	if err != nil {
		t.Fatal(err)
	}
	if big.PeakMiB < 64 {
		t.Errorf("dd with a 64 MiB block peaked at %.1f MiB; want ≥ 64", big.PeakMiB)
	}
	if small.PeakMiB > 16 {
		t.Errorf("sleep peaked at %.1f MiB; want a few MiB", small.PeakMiB)
	}
	if _, err := Run(exec.Command("false")); err == nil {
		t.Error("a failing child reported no error")
	}
}
