package e2e

import (
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/e2e/tools"
	"github.com/tracebloc/image-refresh/refresher"
	"github.com/tracebloc/image-refresh/refresher/config"
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
		checkDecisions(t, r.refresh(), decisions{ingestor: refresher.DecisionFailed, jobsManager: refresher.DecisionUnchanged, podsMonitor: refresher.DecisionUnchanged})
		checkUnchanged(t, "a run whose only lookup failed", s0, r.state(), ingestor)
		checkStatus(t, r.state(), ingestor, "failed", 1)

		// Another image moving meanwhile is still refreshed; the failed one stays as it was.
		newJobsManager := r.push(jobsManager)
		checkDecisions(t, r.refresh(), decisions{ingestor: refresher.DecisionFailed, jobsManager: refresher.DecisionRestart, podsMonitor: refresher.DecisionUnchanged})
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
		checkDecisions(t, r.refresh(), decisions{ingestor: refresher.DecisionFailed, jobsManager: refresher.DecisionFailed, podsMonitor: refresher.DecisionFailed})
		checkUnchanged(t, "a run while the registry was down", s0, r.state(), allImages...)
		for _, img := range allImages {
			checkStatus(t, r.state(), img, "failed", 1)
		}
	})
}

// checkStatus requires the image's status annotation to be in state with that many
// consecutive failures (or waits, for waiting).
func checkStatus(t *testing.T, s *harness.State, img harness.Image, state string, count int) {
	t.Helper()
	raw := s.Deployment.Annotations[config.StatusAnnotationPrefix+img.Name]
	var st struct {
		State    string `json:"state"`
		Waits    int    `json:"waits"`
		Failures int    `json:"failures"`
		Error    string `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Errorf("status annotation of %s %q: %v", img.Name, raw, err)
		return
	}
	got := st.Failures
	if state == "waiting" {
		got = st.Waits
	}
	if st.State != state || got != count || (state != "ok" && st.Error == "") {
		t.Errorf("status of %s = %s; want state %s, count %d and an error", img.Name, raw, state, count)
	}
}

// decisions are the refresher's expected decision for every image of a run.
type decisions map[harness.Image]refresher.Decision

// logRecord is the part of one refresher JSON log line the checks read.
type logRecord struct {
	Msg      string `json:"msg"`
	Level    string `json:"level"`
	Image    string `json:"image"`
	Decision string `json:"decision"`
	Error    string `json:"error"`
}

// checkDecisions reads the refresher's JSON log and requires exactly one record per image
// carrying the expected decision, at level ERROR with an error message exactly for the
// failed ones; and exit code 1 when any image failed, 0 otherwise.
func checkDecisions(t *testing.T, res *harness.Result, want decisions) {
	t.Helper()
	wantExit := 0
	for _, d := range want {
		if d == refresher.DecisionFailed {
			wantExit = 1
		}
	}
	if res.ExitCode != wantExit {
		t.Errorf("exit code %d, want %d\n%s", res.ExitCode, wantExit, res)
	}
	records := map[string][]logRecord{}
	for line := range strings.Lines(res.Stderr) {
		var rec logRecord
		if err := json.Unmarshal([]byte(line), &rec); err != nil {
			t.Errorf("the refresher's log has a line that is not JSON (%v): %q", err, line)
			continue
		}
		if rec.Image != "" && rec.Msg != "event not created" {
			records[rec.Image] = append(records[rec.Image], rec)
		}
	}
	for _, img := range allImages {
		recs := records[img.Name]
		if len(recs) != 1 {
			t.Errorf("the refresher logged %d records for image %s, want 1:\n%s", len(recs), img.Name, res.Stderr)
			continue
		}
		rec, failed := recs[0], want[img] == refresher.DecisionFailed
		if rec.Decision != string(want[img]) || (rec.Level == slog.LevelError.String()) != failed || (rec.Error != "") != failed {
			t.Errorf("image %s: logged decision %q at level %s (error %q); want decision %q, level ERROR with an error only if failed",
				img.Name, rec.Decision, rec.Level, rec.Error, want[img])
		}
	}
}
