package refresher

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	eventsv1 "k8s.io/api/events/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tracebloc/image-refresh/internal/config"
)

// A patch the API server rejects changed nothing: every image of the target is failed (ERROR),
// the decision it would have carried out is kept as intended, and no log record claims it.
func TestRunRejectedPatchIsFailedWithTheIntendedDecision(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		attempts int
	}{
		{
			"403",
			apierrors.NewForbidden(
				schema.GroupResource{Group: "apps", Resource: "deployments"},
				deploymentName,
				fmt.Errorf("RBAC"),
			),
			1,
		},
		{
			"conflicts exhausted",
			apierrors.NewConflict(
				schema.GroupResource{Group: "apps", Resource: "deployments"},
				deploymentName,
				fmt.Errorf("stale"),
			),
			5,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, deployment(map[string]string{jobsManagerKey: stale}))
			f.kube.PrependReactor(
				"patch",
				"deployments",
				func(k8stesting.Action) (bool, runtime.Object, error) { return true, nil, tc.err },
			)
			report := f.run(t, f.options())
			if got := decisions(report); got != "jobs-manager=failed pods-monitor=failed ingestor=failed" {
				t.Errorf("decisions: %s", got)
			}
			records := f.logRecords(t)
			for image, intended := range map[string]string{
				"jobs-manager": "restart",
				"pods-monitor": "record",
				"ingestor":     "fill",
			} {
				rec := records[image]
				if rec["level"] != "ERROR" || rec["decision"] != "failed" || rec["intended"] != intended ||
					!strings.Contains(fmt.Sprint(rec["error"]), "patching Deployment tracebloc/stg-jobs-manager") {
					t.Errorf("%s logged %v; want ERROR, decision failed, intended %s", image, rec, intended)
				}
			}
			if strings.Contains(f.logs.String(), `"decision":"restart"`) {
				t.Error("a log record claims the restart that never happened")
			}
			if got := len(f.patches(t)); got != tc.attempts {
				t.Errorf("%d patch attempts, want %d", got, tc.attempts)
			}
			if !report.Failed() {
				t.Error("the run did not fail")
			}
		})
	}
}

// A placeholder in the audit annotation is no digest: the first run records, never restarts.
func TestRunPlaceholderAnnotationRecords(t *testing.T) {
	f := newFixture(t, deployment(map[string]string{jobsManagerKey: "pending", podsMonitorKey: "<none>"}))
	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=record pods-monitor=record ingestor=fill" {
		t.Errorf("decisions: %s", got)
	}
	if p := f.patches(t); len(p) != 1 || strings.Contains(p[0], config.RestartedAtAnnotation) {
		t.Errorf("patches %q: want one, without a restart", p)
	}
}

// adopt records the env's digest L: the log's new_digest is L, the registry's R is beside it.
func TestRunAdoptLogsTheDigestItRecords(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, _ := f.current()
		delete(annotations, ingestorKey)
		return deployment(annotations, env(stale))
	})
	f.run(t, f.options())
	rec := f.logRecords(t)["ingestor"]
	for k, v := range map[string]any{
		"decision":        "adopt",
		"old_digest":      "",
		"new_digest":      stale,
		"registry_digest": f.digest["ingestor"],
		"env_digest":      stale,
	} {
		if rec[k] != v {
			t.Errorf("ingestor: %s = %v, want %v", k, rec[k], v)
		}
	}
	if got := f.deployment(t).Annotations[ingestorKey]; got != stale {
		t.Errorf("recorded %s, want the env's %s", got, stale)
	}
}

// When a rollout-restart image cannot be resolved (429), a rollout started by another image of
// the same Deployment would pull its tag's new digest with its annotation left old, and the
// next tick would restart again. So the rollout waits; an annotation-only decision does not.
// Once the registry answers, both go out in one patch and the record is true.
func TestRunUnresolvedRestartImageHoldsTheRollout(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		return deployment(map[string]string{jobsManagerKey: stale, podsMonitorKey: stale, ingestorKey: stale}, env(stale))
	})
	f.srv.SetManifestStatus("docker.io/tracebloc/jobs-manager", http.StatusTooManyRequests)
	opts := f.options()
	opts.Registry.Concurrency = 1 // in config order: the 429 first, pods-monitor then skips the host
	report := f.run(t, opts)
	if got := decisions(report); got != "jobs-manager=failed pods-monitor=failed ingestor=waiting" {
		t.Fatalf("decisions: %s", got)
	}
	ing := report.Images[2]
	if ing.Intended != DecisionUpdateEnv ||
		!strings.Contains(ing.Reason, "unresolved tag of jobs-manager, pods-monitor") || report.Images[2].Err != nil {
		t.Errorf("ingestor: intended %s, reason %q, err %v", ing.Intended, ing.Reason, ing.Err)
	}
	p := f.patches(t)
	if len(p) != 1 || strings.Contains(p[0], `"spec"`) || strings.Contains(p[0], "tracebloc.io/") {
		t.Fatalf("patches %q: want one carrying only statuses", p)
	}

	f.srv.SetManifestStatus("docker.io/tracebloc/jobs-manager", 0)
	f.kube.ClearActions()
	report = f.run(t, opts)
	if got := decisions(report); got != "jobs-manager=restart pods-monitor=restart ingestor=update-env" {
		t.Fatalf("recovered decisions: %s", got)
	}
	dep := f.deployment(t)
	for key, image := range map[string]string{
		jobsManagerKey: "jobs-manager",
		podsMonitorKey: "pods-monitor",
		ingestorKey:    "ingestor",
	} {
		if dep.Annotations[key] != f.digest[image] {
			t.Errorf("%s = %s, want %s", key, dep.Annotations[key], f.digest[image])
		}
	}
}

// setRollout makes the fake Deployment's rollout state what the controller and kubelet would:
// generation observed, updated and ready replicas of one desired, and total replicas.
func setRollout(t *testing.T, f *fixture, generation int64, updated, ready, total int32) {
	t.Helper()
	dep := f.deployment(t)
	dep.Generation = generation
	dep.Status = appsv1.DeploymentStatus{
		ObservedGeneration: generation,
		UpdatedReplicas:    updated,
		ReadyReplicas:      ready,
		AvailableReplicas:  ready,
		Replicas:           total,
	}
	if err := f.kube.Tracker().Update(deploymentsGVR, dep, namespace); err != nil {
		t.Fatal(err)
	}
}

// The restart storm: a new jobs-manager digest crash-loops. One restart; while its rollout
// does not complete, the image waits (exit 0, WARN) for spec.waitTimeout, then fails (exit 1) —
// never a second restart, even when the tag moves again, until the rollout settles; then the
// moved tag is applied. Ticks 15 minutes apart, the default timeout (1h): the status is written
// when the wait begins and when it turns into a failure, never on the ticks between.
func TestRunStormOneRestartThenWaitsThenFails(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		annotations[jobsManagerKey] = stale
		return deployment(annotations, ingestor)
	})
	// A rollout that never settles would be quarantined after spec.rolloutTimeout; this is
	// about the waits, so the rollout has longer than the test's ticks.
	f.cfg.Spec.RolloutTimeout = config.Duration(24 * time.Hour)
	restarts, ticks, writes := 0, 0, 0
	tick := func(want string, wantFailed bool) Report {
		t.Helper()
		f.kube.ClearActions()
		f.logs.Reset()
		opts := f.options()
		now := clock.Add(time.Duration(ticks) * 15 * time.Minute)
		opts.Now = func() time.Time { return now }
		ticks++
		report := f.run(t, opts)
		if got := decisions(report); got != want {
			t.Fatalf("decisions %s; want %s", got, want)
		}
		if report.Failed() != wantFailed {
			t.Fatalf("failed = %v (%v); want %v", report.Failed(), report.Err(), wantFailed)
		}
		for _, p := range f.patches(t) {
			writes++
			if strings.Contains(p, config.RestartedAtAnnotation) {
				restarts++
			}
		}
		return report
	}

	tick("jobs-manager=restart pods-monitor=unchanged ingestor=unchanged", false)
	if restarts != 1 {
		t.Fatalf("%d restarts", restarts)
	}
	// The controller rolls generation 2 out; the new pod never becomes ready, the old stays.
	setRollout(t, f, 2, 1, 1, 2)
	writes = 0
	waitBegan := clock.Add(15 * time.Minute).Format(time.RFC3339)
	for n := 1; n <= 5; n++ { // 15m … 75m: waits until 1h after the first wait (75m), then fails
		report := tick("jobs-manager=waiting pods-monitor=unchanged ingestor=unchanged", false)
		jm := report.Images[0]
		if jm.Status.State != StateWaiting || jm.Status.WaitingSince != waitBegan ||
			!strings.Contains(jm.Reason, "the rollout to "+f.digest["jobs-manager"]+" has not completed") {
			t.Errorf("wait %d: status %+v, reason %q", n, jm.Status, jm.Reason)
		}
		if rec := f.logRecords(t)["jobs-manager"]; rec["level"] != "WARN" || rec["waiting_since"] != waitBegan {
			t.Errorf("wait %d logged %v", n, rec)
		}
	}
	if writes != 1 {
		t.Errorf("5 waiting ticks wrote the Deployment %d times, want once (the wait began)", writes)
	}
	report := tick("jobs-manager=failed pods-monitor=unchanged ingestor=unchanged", true)
	if s := report.Images[0].Status; s.State != StateFailed || s.WaitingSince != waitBegan ||
		!strings.Contains(s.Error, "longer than spec.waitTimeout 1h0m0s") {
		t.Errorf("after the timeout: status %+v", s)
	}
	// The tag moves again while the rollout is stuck: still no second restart, nothing written.
	var err error
	if f.digest["jobs-manager"], err = f.srv.PushImage("docker.io/tracebloc/jobs-manager:prod"); err != nil {
		t.Fatal(err)
	}
	report = tick("jobs-manager=failed pods-monitor=unchanged ingestor=unchanged", true)
	if report.Images[0].Intended != DecisionRestart || report.Images[0].Status.State != StateFailed {
		t.Errorf("moved tag while stuck: intended %s, status %+v", report.Images[0].Intended, report.Images[0].Status)
	}
	if writes != 2 {
		t.Errorf("the wait and the failure wrote the Deployment %d times, want twice (two transitions)", writes)
	}
	if restarts != 1 {
		t.Fatalf("%d restarts before the rollout settled, want 1", restarts)
	}
	// kubectl rollout undo (a write: the next generation) lets it settle: the moved tag goes
	// out, once.
	setRollout(t, f, f.deployment(t).Generation+1, 1, 1, 1)
	tick("jobs-manager=restart pods-monitor=unchanged ingestor=unchanged", false)
	if restarts != 2 {
		t.Fatalf("%d restarts, want the second once settled", restarts)
	}
	setRollout(t, f, f.deployment(t).Generation, 1, 1, 1)
	tick("jobs-manager=unchanged pods-monitor=unchanged ingestor=unchanged", false)
	if p := f.patches(t); len(p) != 0 {
		t.Errorf("settled steady state wrote %q", p)
	}
}

// A change waits while the last rollout (anyone's) is not complete; record does not.
func TestRunChangeWaitsForAnUnsettledRollout(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status appsv1.DeploymentStatus
		reason string
	}{
		{
			"generation not observed",
			appsv1.DeploymentStatus{ObservedGeneration: 0, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 1},
			"has not observed generation 1",
		},
		{
			"not ready",
			appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 1, UpdatedReplicas: 1, ReadyReplicas: 0},
			"0 ready",
		},
		{
			"old replicas left",
			appsv1.DeploymentStatus{ObservedGeneration: 1, Replicas: 2, UpdatedReplicas: 1, ReadyReplicas: 1},
			"2 in total",
		},
		{
			"progress deadline exceeded",
			appsv1.DeploymentStatus{
				ObservedGeneration: 1,
				Replicas:           1,
				UpdatedReplicas:    1,
				ReadyReplicas:      1,
				Conditions: []appsv1.DeploymentCondition{
					{
						Type:    appsv1.DeploymentProgressing,
						Status:  "False",
						Reason:  "ProgressDeadlineExceeded",
						Message: `ReplicaSet "x" has timed out progressing.`,
					},
				},
			},
			"exceeded its progress deadline",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
				dep := deployment(map[string]string{jobsManagerKey: stale})
				dep.Status = tc.status
				return dep
			})
			report := f.run(t, f.options())
			if got := decisions(report); got != "jobs-manager=waiting pods-monitor=record ingestor=waiting" {
				t.Fatalf("decisions: %s", got)
			}
			if r := report.Images[0].Reason; !strings.Contains(r, tc.reason) || !strings.Contains(r, "restart waits for it") {
				t.Errorf("reason %q lacks %q", r, tc.reason)
			}
			if report.Failed() {
				t.Errorf("waiting failed the run: %v", report.Err())
			}
			p := f.patches(t)
			if len(p) != 1 || strings.Contains(p[0], `"spec"`) || strings.Contains(p[0], jobsManagerKey) ||
				!strings.Contains(p[0], podsMonitorKey) {
				t.Errorf("patches %q: want the record and statuses only", p)
			}
		})
	}
}

// events lists the Events the fake holds, by reason.
func (f *fixture) events(t *testing.T) map[string][]eventsv1.Event {
	t.Helper()
	list, err := f.kube.EventsV1().Events(namespace).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string][]eventsv1.Event{}
	for _, e := range list.Items {
		out[e.Reason] = append(out[e.Reason], e)
	}
	return out
}

func TestRunEventsTellTheStory(t *testing.T) {
	f := newFixture(t, deployment(map[string]string{jobsManagerKey: stale}))
	f.srv.SetManifestStatus("ghcr.io/tracebloc/ingestor", http.StatusServiceUnavailable)
	opts := f.options()
	opts.Instance = "stg-image-refresh-29000000-abcde"
	f.run(t, opts)
	events := f.events(t)
	if len(events[ReasonRestarted]) != 1 || len(events[ReasonRecorded]) != 1 || len(events[ReasonFailed]) != 1 ||
		len(events) != 3 {
		t.Fatalf("events %v; want Restarted, Recorded, Failed", events)
	}
	restarted := events[ReasonRestarted][0]
	want := fmt.Sprintf(
		"image jobs-manager (docker.io/tracebloc/jobs-manager:prod): %s → %s, rollout restarted",
		stale,
		f.digest["jobs-manager"],
	)
	if restarted.Note != want || restarted.Type != "Normal" || restarted.Action != "Refresh" ||
		restarted.ReportingController != EventController ||
		restarted.ReportingInstance != opts.Instance || restarted.EventTime.IsZero() ||
		restarted.Regarding.Kind != "Deployment" || restarted.Regarding.APIVersion != "apps/v1" ||
		restarted.Regarding.Name != deploymentName || restarted.Regarding.Namespace != namespace {
		t.Errorf("Restarted event %+v\nwant note %q", restarted, want)
	}
	failed := events[ReasonFailed][0]
	if failed.Type != "Warning" || !strings.Contains(failed.Note, "image ingestor (ghcr.io/tracebloc/ingestor:prod)") ||
		!strings.Contains(failed.Note, "503") {
		t.Errorf("Failed event %+v", failed)
	}

	// Recovery: the ingestor resolves again: EnvUpdated (fill) — its status goes back to ok.
	f.srv.SetManifestStatus("ghcr.io/tracebloc/ingestor", 0)
	f.run(t, opts)
	if got := f.events(t)[ReasonEnvUpdated]; len(got) != 1 {
		t.Errorf("EnvUpdated events %v", got)
	}
	if s := parseStatus(f.deployment(t).Annotations[statusKey("ingestor")], readNow); s.State != StateOK || s.Error != "" {
		t.Errorf("ingestor status after recovery %+v", s)
	}
	// Steady state: no Event, no patch.
	f.kube.ClearActions()
	f.run(t, opts)
	for _, a := range f.kube.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("steady state: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

// A failing image records since when it fails, once: ten failing ticks write the Deployment
// once (a registry outage must not bump the generation on every tick); an unchanged tick after
// it heals (status ok, a Healed Event) and the tick after writes nothing.
func TestRunStatusRecordsTransitionsOnly(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		return deployment(annotations, ingestor)
	})
	f.srv.SetManifestStatus("ghcr.io/tracebloc/ingestor", http.StatusInternalServerError)
	writes := 0
	for n := range 10 {
		f.kube.ClearActions()
		opts := f.options()
		now := clock.Add(time.Duration(n) * 15 * time.Minute)
		opts.Now = func() time.Time { return now }
		if report := f.run(t, opts); !report.Failed() {
			t.Fatalf("failure %d: the tick did not fail", n)
		}
		writes += len(f.patches(t))
		s := parseStatus(f.deployment(t).Annotations[statusKey("ingestor")], now)
		if s.State != StateFailed || !strings.Contains(s.Error, "500") || s.Since != "2026-07-01T12:00:00Z" {
			t.Errorf("failure %d: status %+v", n, s)
		}
	}
	if writes != 1 {
		t.Errorf("10 failing ticks wrote the Deployment %d times, want once", writes)
	}
	// The repetition is one Event's series, not ten Events.
	if failed := f.events(t)[ReasonFailed]; len(failed) != 1 || failed[0].Series == nil || failed[0].Series.Count != 10 ||
		!failed[0].Series.LastObservedTime.Time.Equal(clock.Add(9*15*time.Minute)) {
		t.Errorf(
			"Failed events of 10 failing ticks: %+v, want one with series count 10, last observed at the 10th tick",
			failed,
		)
	}
	f.srv.SetManifestStatus("ghcr.io/tracebloc/ingestor", 0)
	f.kube.ClearActions()
	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=unchanged pods-monitor=unchanged ingestor=unchanged" {
		t.Errorf("decisions: %s", got)
	}
	if p := f.patches(t); len(p) != 1 || !strings.Contains(p[0], statusKey("ingestor")) ||
		strings.Contains(p[0], "tracebloc.io/") {
		t.Errorf("healing patches %q: want the ingestor's status only", p)
	}
	if healed := f.events(t)[ReasonHealed]; len(healed) != 1 ||
		!strings.Contains(healed[0].Note, "failed since 2026-07-01T12:00:00Z") {
		t.Errorf("Healed events %v", healed)
	}
	f.kube.ClearActions()
	f.run(t, f.options())
	if p := f.patches(t); len(p) != 0 {
		t.Errorf("steady state patched %q", p)
	}
}

// An Event the API server refuses is a warning in the log; the tick's outcome stands.
func TestRunEventFailureNeverFailsTheTick(t *testing.T) {
	f := newFixture(t, deployment(nil))
	f.kube.PrependReactor("create", "events", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(
			schema.GroupResource{Group: "events.k8s.io", Resource: "events"},
			"",
			fmt.Errorf("RBAC"),
		)
	})
	report := f.run(t, f.options())
	if report.Failed() || decisions(report) != "jobs-manager=record pods-monitor=record ingestor=fill" {
		t.Fatalf("decisions %s, err %v", decisions(report), report.Err())
	}
	if n := strings.Count(f.logs.String(), `"level":"WARN","msg":"event not created"`); n != 3 {
		t.Errorf("%d event warnings, want 3:\n%s", n, f.logs.String())
	}
}

func TestStatusIsBounded(t *testing.T) {
	long := strings.Repeat("é", 1000)
	s := statusAfter(Status{}, StateFailed, long, clock)
	if len(s.Error) > maxStatusError || !strings.HasSuffix(s.Error, "…") || !strings.HasPrefix(s.Error, "é") {
		t.Errorf("error kept as %d bytes: %q", len(s.Error), s.Error)
	}
	// A state, a time and a cut error: the error is its only long field (TestStatusEncodeIsBounded bounds them all).
	if n := len(s.encode()); n > maxStatusError+128 {
		t.Errorf("status annotation of %d bytes", n)
	}
	for _, garbage := range []string{"", "{", `{"state":"bogus"}`, "ok"} {
		if got := parseStatus(garbage, readNow); got != (Status{}) {
			t.Errorf("parseStatus(%q) = %+v, want the zero status", garbage, got)
		}
	}
	if got := parseStatus(s.encode(), readNow); got != s {
		t.Errorf("round trip %+v → %+v", s, got)
	}
}

// A dry run says why an image waits, and writes nothing (no status either).
func TestRunDryRunShowsWhyAnImageWaits(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		dep := deployment(map[string]string{jobsManagerKey: stale})
		dep.Spec.Paused = true
		return dep
	})
	var out strings.Builder
	opts := f.options()
	opts.DryRun, opts.Out = true, &out
	f.run(t, opts)
	if !regexp.MustCompile(
		`(?m)^jobs-manager .* waiting +Deployment tracebloc/stg-jobs-manager: the Deployment is paused`,
	).MatchString(out.String()) {
		t.Errorf("plan:\n%s", out.String())
	}
	for _, a := range f.kube.Actions() {
		if a.GetVerb() != "get" {
			t.Errorf("dry run: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}
