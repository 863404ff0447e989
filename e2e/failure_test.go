package e2e

import (
	"encoding/json"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"log/slog"
	"maps"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher"
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
		checkDecisions(
			t,
			r.refresh(),
			decisions{
				ingestor:    refresher.DecisionFailed,
				jobsManager: refresher.DecisionUnchanged,
				podsMonitor: refresher.DecisionUnchanged,
			},
		)
		checkUnchanged(t, "a run whose only lookup failed", s0, r.state(), ingestor)
		checkStatus(t, r.state(), ingestor, "failed")

		// Another image moving meanwhile is still refreshed; the failed one stays as it was.
		newJobsManager := r.push(jobsManager)
		checkDecisions(
			t,
			r.refresh(),
			decisions{
				ingestor:    refresher.DecisionFailed,
				jobsManager: refresher.DecisionRestart,
				podsMonitor: refresher.DecisionUnchanged,
			},
		)
		s := r.state()
		if got := s.Annotation(jobsManager); got != newJobsManager || s.RestartedAt() == "" {
			t.Errorf(
				"jobs-manager not refreshed beside the failure: %s = %q (want %s), restartedAt %q",
				jobsManager.Annotation(),
				got,
				newJobsManager,
				s.RestartedAt(),
			)
		}
		gotEnv, _ := s.Env(digestEnv)
		wantEnv, _ := s0.Env(digestEnv)
		if s.Annotation(ingestor) != s0.Annotation(ingestor) || gotEnv != wantEnv {
			t.Errorf(
				"the failed ingestor changed: annotation %q → %q, env %q → %q",
				s0.Annotation(ingestor),
				s.Annotation(ingestor),
				wantEnv,
				gotEnv,
			)
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
		checkDecisions(
			t,
			r.refresh(),
			decisions{
				ingestor:    refresher.DecisionFailed,
				jobsManager: refresher.DecisionFailed,
				podsMonitor: refresher.DecisionFailed,
			},
		)
		checkUnchanged(t, "a run while the registry was down", s0, r.state(), allImages...)
		for _, img := range allImages {
			checkStatus(t, r.state(), img, "failed")
		}
		// A sustained outage: nine more failing ticks write nothing — no annotation, no new
		// generation — the first one wrote the statuses, once.
		failed := r.state()
		for tick := 2; tick <= 10; tick++ {
			checkDecisions(
				t,
				r.refresh(),
				decisions{
					ingestor:    refresher.DecisionFailed,
					jobsManager: refresher.DecisionFailed,
					podsMonitor: refresher.DecisionFailed,
				},
			)
		}
		after := r.state()
		if a, b := after.Deployment, failed.Deployment; a.Generation != b.Generation ||
			!maps.Equal(a.Annotations, b.Annotations) {
			t.Errorf(
				"ticks 2–10 of the outage wrote the Deployment: generation %d → %d, annotations\n%v\n→ %v",
				b.Generation,
				a.Generation,
				b.Annotations,
				a.Annotations,
			)
		}
		t.Logf(
			"10 failing ticks: generation %d → %d (the first tick wrote the statuses)",
			s0.Deployment.Generation,
			after.Deployment.Generation,
		)
		// The repetition is carried by one Failed Event per image, its series counting the ticks.
		list, err := r.Cluster.Client.EventsV1().Events(r.Namespace).List(t.Context(), metav1.ListOptions{})
		if err != nil {
			t.Fatal(err)
		}
		failedEvents := map[string][]int32{}
		for _, e := range list.Items {
			if e.Reason == refresher.ReasonFailed && e.ReportingController == refresher.EventController {
				count := int32(1)
				if e.Series != nil {
					count = e.Series.Count
				}
				failedEvents[e.Note[:strings.Index(e.Note, " (")]] = append(
					failedEvents[e.Note[:strings.Index(e.Note, " (")]],
					count,
				)
			}
		}
		for _, img := range allImages {
			if got := failedEvents["image "+img.Name]; len(got) != 1 || got[0] != 10 {
				t.Errorf("Failed Events of %s over 10 failing ticks: series counts %v, want one Event counting 10", img.Name, got)
			}
		}
	})
}

// checkStatus requires the image's status annotation to be in state, with an error unless ok.
func checkStatus(t *testing.T, s *harness.State, img harness.Image, state string) {
	t.Helper()
	raw := s.Deployment.Annotations[config.StatusAnnotationPrefix+img.Name]
	var st struct {
		State string `json:"state"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		t.Errorf("status annotation of %s %q: %v", img.Name, raw, err)
		return
	}
	if st.State != state || (state != "ok" && st.Error == "") {
		t.Errorf("status of %s = %s; want state %s and an error", img.Name, raw, state)
	}
}

// checkStatusOnTransition requires the image's status annotation, now in state, to have been
// written only if it was in another state before: a steady failure or wait writes nothing.
func checkStatusOnTransition(t *testing.T, before, after *harness.State, img harness.Image, state string) {
	t.Helper()
	checkStatus(t, after, img, state)
	key := config.StatusAnnotationPrefix + img.Name
	var prev struct {
		State string `json:"state"`
	}
	_ = json.Unmarshal([]byte(before.Deployment.Annotations[key]), &prev)
	if b, a := before.Deployment.Annotations[key], after.Deployment.Annotations[key]; prev.State == state && a != b {
		t.Errorf("status of %s rewritten while it stayed %s:\n%s\n→ %s", img.Name, state, b, a)
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
		if rec.Decision != string(want[img]) || (rec.Level == slog.LevelError.String()) != failed ||
			(rec.Error != "") != failed {
			t.Errorf(
				"image %s: logged decision %q at level %s (error %q); want decision %q, level ERROR with an error only if failed",
				img.Name,
				rec.Decision,
				rec.Level,
				rec.Error,
				want[img],
			)
		}
	}
}
