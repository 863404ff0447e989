package e2e

import (
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/e2e/tools"
)

// Scenario 7: the registry fails during a run — the tag is gone, or the registry is down —
// nothing changes on the Deployment for the failed image and the refresher exits 1.
func TestRegistryFailures(t *testing.T) {
	w := setup(t)

	t.Run("tag-missing", func(t *testing.T) {
		r := newRelease(t, w, tools.Helm3, w.registry)
		s0 := installAndFirstRun(t, r)
		if err := r.Registry.DeleteManifest(t.Context(), r.Repo(ingestor), r.Digest[ingestor]); err != nil {
			t.Fatal(err)
		}
		res := r.refresh()
		checkFailedRun(t, res, ingestor)
		checkUnchanged(t, "a run whose only lookup failed", s0, r.state())

		// Another image moving meanwhile is still refreshed; the failed one stays as it was.
		newJobsManager := r.push(jobsManager)
		checkFailedRun(t, r.refresh(), ingestor)
		s := r.state()
		if got := s.Annotation(jobsManager); got != newJobsManager || s.RestartedAt() == "" {
			t.Errorf("jobs-manager not refreshed beside the failure: %s = %q (want %s), restartedAt %q", jobsManager.Annotation(), got, newJobsManager, s.RestartedAt())
		}
		gotEnv, _ := s.Env(digestEnv)
		wantEnv, _ := s0.Env(digestEnv)
		if s.Annotation(ingestor) != s0.Annotation(ingestor) || gotEnv != wantEnv {
			t.Errorf("the failed ingestor changed: annotation %q → %q, env %q → %q", s0.Annotation(ingestor), s.Annotation(ingestor), wantEnv, gotEnv)
		}
	})

	t.Run("registry-down", func(t *testing.T) {
		reg, err := harness.StartRegistry(t.Context(), t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(reg.Close)
		r := newRelease(t, w, tools.Helm3, reg)
		s0 := installAndFirstRun(t, r)
		reg.Stop()
		checkFailedRun(t, r.refresh(), allImages...)
		checkUnchanged(t, "a run while the registry was down", s0, r.state())
	})
}

// checkFailedRun requires exit code 1 and a log naming each failed image.
func checkFailedRun(t *testing.T, res *harness.Result, failed ...harness.Image) {
	t.Helper()
	if res.ExitCode != 1 {
		t.Errorf("exit code %d, want 1\n%s", res.ExitCode, res)
	}
	for _, img := range failed {
		if !strings.Contains(res.Stderr, img.Name) {
			t.Errorf("the refresher's log does not name the failed image %s:\n%s", img.Name, res.Stderr)
		}
	}
}
