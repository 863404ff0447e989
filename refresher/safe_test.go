package refresher

import (
	"strings"
	"testing"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

// safeTick runs one tick at now and returns the report and the patches it sent.
func (f *fixture) safeTick(t *testing.T, now time.Time) (Report, []string) {
	t.Helper()
	f.kube.ClearActions()
	opts := f.options()
	opts.Now = func() time.Time { return now }
	report := f.run(t, opts)
	return report, f.patches(t)
}

func (f *fixture) status(t *testing.T, image string) Status {
	t.Helper()
	return parseStatus(f.deployment(t).Annotations[statusKey(image)], readNow)
}

func (f *fixture) image(name string) *config.Image {
	for i := range f.cfg.Spec.Images {
		if f.cfg.Spec.Images[i].Name == name {
			return &f.cfg.Spec.Images[i]
		}
	}
	return nil
}

func TestSoakOutcome(t *testing.T) {
	img := config.Image{Name: "ingestor", Soak: config.Duration(time.Hour)}
	r1, r2 := digestOf('1'), digestOf('2')
	at := func(min int) time.Time { return clock.Add(time.Duration(min) * time.Minute) }
	stamp := func(min int) string { return at(min).Format(time.RFC3339) }
	for _, tc := range []struct {
		name        string
		soak        time.Duration
		change      Decision
		prev        Status
		now         time.Time
		soaking     bool
		wantPending string
		wantSince   string
	}{
		{name: "no soak", soak: 0, change: DecisionUpdateEnv, now: at(0)},
		{name: "unchanged never soaks", soak: time.Hour, change: DecisionUnchanged, now: at(0)},
		{name: "record never soaks", soak: time.Hour, change: DecisionRecord, now: at(0)},
		{name: "drift never soaks", soak: time.Hour, change: DecisionDrift, now: at(0)},
		{
			name:        "first sighting",
			soak:        time.Hour,
			change:      DecisionUpdateEnv,
			prev:        Status{State: StateOK},
			now:         at(0),
			soaking:     true,
			wantPending: r1,
			wantSince:   stamp(0),
		},
		{
			name:        "first sighting of a restart",
			soak:        time.Hour,
			change:      DecisionRestart,
			now:         at(0),
			soaking:     true,
			wantPending: r1,
			wantSince:   stamp(0),
		},
		{
			name:        "first sighting of a fill",
			soak:        time.Hour,
			change:      DecisionFill,
			now:         at(0),
			soaking:     true,
			wantPending: r1,
			wantSince:   stamp(0),
		},
		{
			name:        "still soaking",
			soak:        time.Hour,
			change:      DecisionUpdateEnv,
			prev:        Status{State: StateSoaking, Pending: r1, PendingSince: stamp(0)},
			now:         at(59),
			soaking:     true,
			wantPending: r1,
			wantSince:   stamp(0),
		},
		{
			name:   "soaked",
			soak:   time.Hour,
			change: DecisionUpdateEnv,
			prev:   Status{State: StateSoaking, Pending: r1, PendingSince: stamp(0)},
			now:    at(60),
		},
		{
			name:        "the tag moved: the soak restarts",
			soak:        time.Hour,
			change:      DecisionUpdateEnv,
			prev:        Status{State: StateSoaking, Pending: r2, PendingSince: stamp(0)},
			now:         at(90),
			soaking:     true,
			wantPending: r1,
			wantSince:   stamp(90),
		},
		{
			name:        "unreadable first sighting restarts",
			soak:        time.Hour,
			change:      DecisionUpdateEnv,
			prev:        Status{State: StateSoaking, Pending: r1, PendingSince: "yesterday"},
			now:         at(90),
			soaking:     true,
			wantPending: r1,
			wantSince:   stamp(90),
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			img.Soak = config.Duration(tc.soak)
			o, soaking := soakOutcome(img, r1, Change{Decision: tc.change}, tc.prev, tc.now)
			if soaking != tc.soaking {
				t.Fatalf("soaking = %v, want %v", soaking, tc.soaking)
			}
			if !soaking {
				return
			}
			if o.Decision != DecisionSoaking || o.intended != tc.change || o.status == nil || o.Env != "" ||
				o.Annotation != "" || o.Restart {
				t.Fatalf("outcome %+v", o)
			}
			if o.status.State != StateSoaking || o.status.Pending != tc.wantPending || o.status.PendingSince != tc.wantSince {
				t.Errorf("status %+v, want pending %s since %s", *o.status, tc.wantPending, tc.wantSince)
			}
			if !strings.Contains(o.note, "soaking 1h0m0s") {
				t.Errorf("note %q", o.note)
			}
		})
	}
}

// A tag pushed twice within the soak is refreshed once, to the last digest, once that digest
// has been seen unchanged for the whole soak; ticks in between write nothing but the status
// when the pending digest changes.
func TestRunSoakRefreshesTheLastDigestOnce(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, _ := f.current()
		annotations[ingestorKey] = stale
		return deployment(annotations, env(stale))
	})
	f.image("ingestor").Soak = config.Duration(time.Hour)
	first := f.digest["ingestor"]
	envWrites := 0
	tick := func(minute int, wantDecision Decision, wantPatch bool) Report {
		t.Helper()
		report, patches := f.safeTick(t, clock.Add(time.Duration(minute)*time.Minute))
		if got := report.Images[2].Decision; got != wantDecision {
			t.Fatalf("minute %d: ingestor %s (%v), want %s", minute, got, report.Images[2].Err, wantDecision)
		}
		if (len(patches) > 0) != wantPatch {
			t.Fatalf("minute %d: patches %q, want a patch: %v", minute, patches, wantPatch)
		}
		for _, p := range patches {
			if strings.Contains(p, ingestorEnv) {
				envWrites++
			}
		}
		return report
	}
	tick(0, DecisionSoaking, true) // first sighting: the status records it
	if s := f.status(t, "ingestor"); s.State != StateSoaking || s.Pending != first ||
		s.PendingSince != "2026-07-01T12:00:00Z" {
		t.Fatalf("status %+v", s)
	}
	if n := len(f.events(t)[ReasonSoaking]); n != 1 {
		t.Errorf("%d Soaking events, want 1", n)
	}
	tick(15, DecisionSoaking, false) // steady: nothing written
	// The tag moves during the soak: the soak restarts with the new digest.
	second, err := f.srv.PushIndex("ghcr.io/tracebloc/ingestor:prod")
	if err != nil {
		t.Fatal(err)
	}
	tick(30, DecisionSoaking, true)
	if s := f.status(t, "ingestor"); s.Pending != second || s.PendingSince != "2026-07-01T12:30:00Z" {
		t.Fatalf("status after the move %+v", s)
	}
	if n := len(f.events(t)[ReasonSoaking]); n != 2 {
		t.Errorf("%d Soaking events, want 2", n)
	}
	tick(75, DecisionSoaking, false) // the first digest would have soaked by now; the second has not
	report := tick(90, DecisionUpdateEnv, true)
	if envWrites != 1 || apiEnv(f.deployment(t))[ingestorEnv] != second || report.Images[2].Digest != second {
		t.Errorf("%d env writes, env %s; want one, of %s", envWrites, apiEnv(f.deployment(t))[ingestorEnv], second)
	}
	if s := f.status(t, "ingestor"); s.State != StateOK || s.Pending != "" || s.Previous != stale || s.Digest != second {
		t.Errorf("status after the refresh %+v", s)
	}
}

// A tag that moves back to the recorded digest during the soak ends it: unchanged, the
// pending digest dropped.
func TestRunSoakEndsWhenTheTagMovesBack(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		annotations[statusKey("jobs-manager")] = Status{
			State:        StateSoaking,
			Since:        "2026-07-01T11:00:00Z",
			Pending:      stale,
			PendingSince: "2026-07-01T11:00:00Z",
		}.encode()
		return deployment(annotations, ingestor)
	})
	f.image("jobs-manager").Soak = config.Duration(time.Hour)
	report, patches := f.safeTick(t, clock)
	if got := decisions(report); got != "jobs-manager=unchanged pods-monitor=unchanged ingestor=unchanged" {
		t.Errorf("decisions %s", got)
	}
	if s := f.status(t, "jobs-manager"); len(patches) != 1 || s.State != StateOK || s.Pending != "" ||
		s.PendingSince != "" {
		t.Errorf("patches %q, status %+v", patches, s)
	}
}

// The platform gate refuses an index lacking a required platform (failed, platform-missing,
// nothing written but the status), applies a full one, and sends its GET only when a digest
// would be applied.
func TestRunPlatformGate(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		return deployment(annotations, ingestor)
	})
	f.cfg.Spec.Platforms = []string{"linux/amd64", "linux/arm64"}
	amd64 := v1.Platform{OS: "linux", Architecture: "amd64"}
	arm64 := v1.Platform{OS: "linux", Architecture: "arm64"}
	gets := func() int {
		n := 0
		for _, r := range f.srv.Requests() {
			if r.Method == "GET" && !r.IsToken() && !r.IsPing() {
				n++
			}
		}
		return n
	}

	// Steady: every digest current, no GET.
	f.srv.ResetRequests()
	if _, patches := f.safeTick(t, clock); len(patches) != 0 || gets() != 0 {
		t.Fatalf("steady tick: patches %q, %d GETs", patches, gets())
	}

	half, err := f.srv.PushPlatformIndex("ghcr.io/tracebloc/ingestor:prod", amd64)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ResetRequests()
	report, patches := f.safeTick(t, clock)
	ing := report.Images[2]
	if ing.Decision != DecisionFailed || ing.Reason != "platform-missing" || ing.Intended != DecisionUpdateEnv ||
		!strings.Contains(ing.Err.Error(), "lacks platform linux/arm64") {
		t.Fatalf("half-pushed index: %s (%s, intended %s): %v", ing.Decision, ing.Reason, ing.Intended, ing.Err)
	}
	if gets() != 1 {
		t.Errorf("%d GETs, want the index's one", gets())
	}
	if len(patches) != 1 || strings.Contains(patches[0], ingestorEnv) ||
		strings.Contains(patches[0], half) && !strings.Contains(patches[0], "platform-missing") {
		t.Errorf("patches %q: want the failed status only", patches)
	}
	if dep := f.deployment(t); apiEnv(dep)[ingestorEnv] == half || dep.Annotations[ingestorKey] == half {
		t.Error("the refused digest was applied")
	}
	if n := len(f.events(t)[ReasonFailed]); n != 1 {
		t.Errorf("%d Failed events", n)
	}

	full, err := f.srv.PushPlatformIndex("ghcr.io/tracebloc/ingestor:prod", amd64, arm64)
	if err != nil {
		t.Fatal(err)
	}
	f.srv.ResetRequests()
	report, _ = f.safeTick(t, clock)
	if got := report.Images[2].Decision; got != DecisionUpdateEnv || apiEnv(f.deployment(t))[ingestorEnv] != full ||
		gets() != 1 {
		t.Errorf(
			"full index: %s (%v), env %s, %d GETs",
			got,
			report.Images[2].Err,
			apiEnv(f.deployment(t))[ingestorEnv],
			gets(),
		)
	}

	// A single-platform restart image: manifest and config, two GETs; refused for the
	// two platforms required.
	if _, err := f.srv.PushPlatformImage("docker.io/tracebloc/jobs-manager:prod", amd64); err != nil {
		t.Fatal(err)
	}
	f.srv.ResetRequests()
	report, patches = f.safeTick(t, clock)
	jm := report.Images[0]
	if jm.Decision != DecisionFailed || jm.Reason != "platform-missing" || gets() != 2 {
		t.Errorf(
			"single-platform image: %s (%s), %d GETs, want failed platform-missing after 2 GETs",
			jm.Decision,
			jm.Reason,
			gets(),
		)
	}
	for _, p := range patches {
		if strings.Contains(p, config.RestartedAtAnnotation) {
			t.Errorf("a refused restart digest restarted the rollout: %s", p)
		}
	}
}

// stuck makes the Deployment's latest rollout (generation) never become ready; exceeded adds
// the controller's ProgressDeadlineExceeded.
func stuck(t *testing.T, f *fixture, generation int64, exceeded bool) {
	t.Helper()
	setRollout(t, f, generation, 1, 0, 2)
	if !exceeded {
		return
	}
	dep := f.deployment(t)
	dep.Status.Conditions = []appsv1.DeploymentCondition{
		{
			Type:    appsv1.DeploymentProgressing,
			Status:  corev1.ConditionFalse,
			Reason:  "ProgressDeadlineExceeded",
			Message: `ReplicaSet "x" has timed out progressing.`,
		},
	}
	if err := f.kube.Tracker().Update(deploymentsGVR, dep, namespace); err != nil {
		t.Fatal(err)
	}
}

// A set-env digest whose rollout fails is rolled back — env and audit annotation to the
// previous digest in one patch — quarantined and never applied again; a new push is.
func TestRunQuarantineRollsSetEnvBack(t *testing.T) {
	for _, tc := range []struct {
		name     string
		exceeded bool
		// minute of the tick that detects the failure
		detect int
	}{
		{name: "not settled within rolloutTimeout", detect: 16},
		{name: "progress deadline exceeded", exceeded: true, detect: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// The digest before the bad one, served by the registry: a rollback target must be.
			var previous string
			f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
				var err error
				if previous, err = f.srv.PushImage("ghcr.io/tracebloc/ingestor:previous"); err != nil {
					t.Fatal(err)
				}
				annotations, _ := f.current()
				annotations[ingestorKey] = previous
				return deployment(annotations, env(previous))
			})
			bad := f.digest["ingestor"]
			at := func(m int) time.Time { return clock.Add(time.Duration(m) * time.Minute) }
			report, _ := f.safeTick(t, at(0))
			if got := report.Images[2].Decision; got != DecisionUpdateEnv {
				t.Fatalf("first tick: %s", got)
			}
			stuck(t, f, 2, tc.exceeded)
			if !tc.exceeded {
				report, _ = f.safeTick(t, at(5))
				if got := report.Images[2].Decision; got != DecisionWaiting {
					t.Fatalf("rollout in flight: %s", got)
				}
			}
			report, patches := f.safeTick(t, at(tc.detect))
			ing := report.Images[2]
			if ing.Decision != DecisionRolledBack || report.Failed() {
				t.Fatalf("detecting tick: %s (%v)", ing.Decision, report.Err())
			}
			if len(patches) != 1 || !strings.Contains(patches[0], ingestorEnv) {
				t.Fatalf("rollback patches %q, want one carrying the env", patches)
			}
			dep := f.deployment(t)
			if apiEnv(dep)[ingestorEnv] != previous || dep.Annotations[ingestorKey] != previous {
				t.Errorf(
					"after the rollback env %s, annotation %s; want both %s",
					apiEnv(dep)[ingestorEnv],
					dep.Annotations[ingestorKey],
					previous,
				)
			}
			if s := f.status(t, "ingestor"); s.State != StateQuarantined || s.Quarantined != bad || s.Digest != previous {
				t.Errorf("status %+v", s)
			}
			if n := len(f.events(t)[ReasonRolledBack]); n != 1 {
				t.Errorf("%d RolledBack events", n)
			}
			// The rollback settles; the tag still points at the bad digest: held, nothing
			// written, no Event.
			setRollout(t, f, f.deployment(t).Generation, 1, 1, 1)
			for _, m := range []int{30, 45} {
				report, patches = f.safeTick(t, at(m))
				if got := report.Images[2].Decision; got != DecisionQuarantined || len(patches) != 0 {
					t.Fatalf("minute %d: %s, patches %q", m, got, patches)
				}
			}
			if n := len(f.events(t)[ReasonQuarantined]); n != 0 {
				t.Errorf("%d Quarantined events while held, want none", n)
			}
			// This refresher's own write of another image (a new jobs-manager digest) moves the
			// generation; the quarantine follows it and still holds.
			if _, err := f.srv.PushImage(f.image("jobs-manager").Reference()); err != nil {
				t.Fatal(err)
			}
			report, _ = f.safeTick(t, at(50))
			if jm, ing := report.Images[0].Decision,
				report.Images[2].Decision; jm != DecisionRestart || ing != DecisionQuarantined {
				t.Fatalf("a restart beside the quarantine: jobs-manager %s, ingestor %s", jm, ing)
			}
			if s := f.status(t, "ingestor"); s.Generation != f.deployment(t).Generation {
				t.Errorf("the quarantine is at generation %d, the Deployment at %d", s.Generation, f.deployment(t).Generation)
			}
			setRollout(t, f, f.deployment(t).Generation, 1, 1, 1)
			if report, patches = f.safeTick(t, at(55)); report.Images[2].Decision != DecisionQuarantined || len(patches) != 0 {
				t.Fatalf("after this refresher's own write: %s, patches %q", report.Images[2].Decision, patches)
			}
			// A new push is applied.
			good, err := f.srv.PushIndex("ghcr.io/tracebloc/ingestor:prod")
			if err != nil {
				t.Fatal(err)
			}
			report, _ = f.safeTick(t, at(60))
			if got := report.Images[2].Decision; got != DecisionUpdateEnv || apiEnv(f.deployment(t))[ingestorEnv] != good {
				t.Errorf("after a new push: %s, env %s", got, apiEnv(f.deployment(t))[ingestorEnv])
			}
			if s := f.status(t, "ingestor"); s.State != StateOK || s.Quarantined != "" || s.Previous != previous {
				t.Errorf("status after the new push %+v", s)
			}
		})
	}
}

// A rollout-restart digest whose rollout fails cannot be rolled back (the pods pull the tag):
// it is quarantined with an Event that asks for a human, never restarted again, and a new
// push restarts at once even though the failed rollout never settled.
func TestRunQuarantineHoldsRolloutRestart(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		annotations[jobsManagerKey] = stale
		return deployment(annotations, ingestor)
	})
	bad := f.digest["jobs-manager"]
	at := func(m int) time.Time { return clock.Add(time.Duration(m) * time.Minute) }
	restarts := 0
	tick := func(m int, want Decision) []string {
		t.Helper()
		report, patches := f.safeTick(t, at(m))
		if got := report.Images[0].Decision; got != want {
			t.Fatalf("minute %d: jobs-manager %s (%v), want %s", m, got, report.Images[0].Err, want)
		}
		for _, p := range patches {
			if strings.Contains(p, config.RestartedAtAnnotation) {
				restarts++
			}
		}
		return patches
	}
	tick(0, DecisionRestart)
	stuck(t, f, 2, false)
	tick(10, DecisionWaiting)
	patches := tick(15, DecisionQuarantined) // spec.rolloutTimeout (default 15m) after the restart
	if len(patches) != 1 || strings.Contains(patches[0], "tracebloc.io/") {
		t.Errorf("quarantine patches %q: want the status only", patches)
	}
	q := f.events(t)[ReasonQuarantined]
	if len(q) != 1 || q[0].Type != corev1.EventTypeWarning || !strings.Contains(q[0].Note, "needs a human") ||
		!strings.Contains(q[0].Note, bad) {
		t.Fatalf("Quarantined events %+v", q)
	}
	if s := f.status(t, "jobs-manager"); s.State != StateQuarantined || s.Quarantined != bad {
		t.Errorf("status %+v", s)
	}
	for _, m := range []int{45, 60, 120} {
		if p := tick(m, DecisionQuarantined); len(p) != 0 {
			t.Errorf("minute %d patched %q", m, p)
		}
	}
	if restarts != 1 || len(f.events(t)[ReasonQuarantined]) != 1 {
		t.Fatalf("%d restarts, %d Quarantined events; want 1 and 1", restarts, len(f.events(t)[ReasonQuarantined]))
	}
	next, err := f.srv.PushImage("docker.io/tracebloc/jobs-manager:prod")
	if err != nil {
		t.Fatal(err)
	}
	tick(135, DecisionRestart)
	if dep := f.deployment(t); restarts != 2 || dep.Annotations[jobsManagerKey] != next {
		t.Errorf("after a new push: %d restarts, annotation %s", restarts, dep.Annotations[jobsManagerKey])
	}
}

func TestFailedRollout(t *testing.T) {
	bad := digestOf('b')
	at := func(m int) time.Time { return clock.Add(time.Duration(m) * time.Minute) }
	inFlight := Status{
		State:      StateOK,
		Since:      clock.Format(time.RFC3339),
		Applied:    clock.Format(time.RFC3339),
		Digest:     bad,
		Generation: 2,
	}
	with := func(mod func(*Status)) Status { s := inFlight; mod(&s); return s }
	dep := func(generation int64, exceeded bool) *appsv1.Deployment {
		d := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: generation}}
		if exceeded {
			d.Status.Conditions = []appsv1.DeploymentCondition{
				{Type: appsv1.DeploymentProgressing, Reason: "ProgressDeadlineExceeded"},
			}
		}
		return d
	}
	const pending = "its rollout is not complete"
	for _, tc := range []struct {
		name       string
		dep        *appsv1.Deployment
		annotation string
		prev       Status
		pending    string
		now        time.Time
		want       string // fragment; "" for no failure
	}{
		{"within the timeout", dep(2, false), bad, inFlight, pending, at(14), ""},
		{"timeout reached", dep(2, false), bad, inFlight, pending, at(15), "has not settled 15m0s after the change"},
		{"progress deadline exceeded before the timeout", dep(2, true), bad, inFlight, pending, at(1), "the rollout of " +
			bad + " (generation 2)"},
		{"settled", dep(2, false), bad, inFlight, "", at(60), ""},
		{"someone changed the Deployment since", dep(3, true), bad, inFlight, pending, at(60), ""},
		{"the annotation records another digest", dep(2, true), stale, inFlight, pending, at(60), ""},
		{"no change in flight", dep(2, true), bad, with(func(s *Status) { s.Generation = 0 }), pending, at(60), ""},
		{"already quarantined", dep(2, true), bad, with(func(s *Status) {
			s.State, s.Quarantined = StateQuarantined,
				bad
		}), pending, at(60), ""},
		{
			"waiting counts",
			dep(2, false),
			bad,
			with(func(s *Status) { s.State = StateWaiting }),
			pending,
			at(20),
			"has not settled",
		},
		{"no applied time: since", dep(2, false), bad, with(func(s *Status) {
			s.Applied, s.Since = "",
				at(10).Format(time.RFC3339)
		}), pending, at(20), ""},
		{"unreadable applied time", dep(2, false), bad, with(func(s *Status) {
			s.Applied, s.Since = "x",
				"x"
		}), pending, at(60), ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := failedRollout(tc.dep, tc.annotation, tc.prev, tc.pending, tc.now, config.DefaultRolloutTimeout)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Errorf("failedRollout = %q, want %q", got, tc.want)
			}
		})
	}
}

// A plan without spec.rolloutTimeout (zero) uses the default, never "at once".
func TestQuarantineOutcomeDefaultTimeout(t *testing.T) {
	bad := digestOf('b')
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Generation: 2}}
	prev := Status{State: StateOK, Applied: clock.Format(time.RFC3339), Digest: bad, Generation: 2}
	img := config.Image{Action: config.ActionRolloutRestart}
	for _, tc := range []struct {
		minutes int
		want    bool
	}{{1, false}, {14, false}, {15, true}} {
		rep := &ImageReport{Previous: bad, Digest: bad}
		_, got := quarantineOutcome(
			dep,
			img,
			rep.Digest,
			Live{Annotation: bad},
			Change{Decision: DecisionUnchanged},
			prev,
			"its rollout is not complete",
			"",
			tickSettings{now: clock.Add(time.Duration(tc.minutes) * time.Minute)},
		)
		if got != tc.want {
			t.Errorf("after %d minutes: quarantined %v, want %v", tc.minutes, got, tc.want)
		}
	}
}

// A rollout the controller saw complete is no longer in flight: pods that become unready days
// later (a node lost, a dependency down) at the same generation are not that change's failure —
// no rollback, no quarantine, nothing written.
func TestCompletedRolloutIsNotBlamedForLaterUnreadiness(t *testing.T) {
	f, at := ingestorUpdated(t)
	// The rollout completes; three days later its pod is unready, the condition stays.
	dep := f.deployment(t)
	dep.Status = appsv1.DeploymentStatus{
		ObservedGeneration: dep.Generation,
		Replicas:           1,
		UpdatedReplicas:    1,
		ReadyReplicas:      0,
		AvailableReplicas:  0,
		Conditions: []appsv1.DeploymentCondition{
			{Type: appsv1.DeploymentProgressing, Status: corev1.ConditionTrue, Reason: "NewReplicaSetAvailable"},
		},
	}
	if err := f.kube.Tracker().Update(deploymentsGVR, dep, namespace); err != nil {
		t.Fatal(err)
	}
	report, patches := f.safeTick(t, at(3*24*60))
	if got := report.Images[2].Decision; got != DecisionUnchanged || len(patches) != 0 {
		t.Fatalf(
			"later unreadiness: ingestor %s (%s), patches %q; want unchanged and nothing written",
			got,
			report.Images[2].Reason,
			patches,
		)
	}
	if env := apiEnv(f.deployment(t))[ingestorEnv]; env != f.digest["ingestor"] {
		t.Errorf("env %s, want the applied %s kept", env, f.digest["ingestor"])
	}
}

// A status follows its rollout across the refresher's own annotation-only writes, never onto a
// rollout another image's change starts in the same patch.
func TestStatusGenerationFollowsOnlyItsOwnRollout(t *testing.T) {
	jm, pm := restartImage(), podsMonitorImage()
	inFlight := func(digest string) string {
		return Status{
			State:      StateOK,
			Since:      "2026-07-01T12:00:00Z",
			Digest:     digest,
			Generation: 5,
			Applied:    "2026-07-01T12:00:00Z",
		}.encode()
	}
	for _, tc := range []struct {
		name string
		// jmDigest is the registry's jobs-manager digest: the recorded one (a wait, written as
		// status only) or a new one, applied over its quarantined rollout (a restart).
		jmDigest, jmStatus string
		wantGeneration     int64
	}{
		{name: "annotation-only patch", jmDigest: digestOf('a'), jmStatus: inFlight(digestOf('a')), wantGeneration: 6},
		{name: "patch starting another rollout", jmDigest: digestOf('c'),
			jmStatus: Status{
				State:       StateQuarantined,
				Since:       "2026-07-01T12:00:00Z",
				Digest:      digestOf('a'),
				Generation:  5,
				Quarantined: digestOf('a'),
			}.encode(), wantGeneration: 5},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dep := deployment(
				map[string]string{
					jobsManagerKey:            digestOf('a'),
					podsMonitorKey:            digestOf('b'),
					statusKey("jobs-manager"): tc.jmStatus,
					statusKey("pods-monitor"): inFlight(digestOf('b')),
				},
			)
			dep.Generation, dep.Status = 5,
				appsv1.DeploymentStatus{ObservedGeneration: 5, Replicas: 2, UpdatedReplicas: 1, ReadyReplicas: 1}
			jmRep, pmRep := &ImageReport{Digest: tc.jmDigest}, &ImageReport{Digest: digestOf('b')}
			patch, err := planTarget(
				dep,
				[]targetImage{{report: jmRep, image: jm}, {report: pmRep, image: pm}},
				tickSettings{now: clock.Add(time.Minute), waitTimeout: config.DefaultWaitTimeout, rolloutTimeout: time.Hour},
			)
			if err != nil || patch == nil {
				t.Fatalf("patch %s, error %v", patch, err)
			}
			if got := pmRep.Status.Generation; got != tc.wantGeneration || pmRep.Decision != DecisionWaiting {
				t.Errorf(
					"pods-monitor %s, status generation %d, want waiting at %d (jobs-manager %s); patch %s",
					pmRep.Decision,
					got,
					tc.wantGeneration,
					jmRep.Decision,
					patch,
				)
			}
		})
	}
}

// A write by anyone else (helm upgrade, kubectl annotate, rollout undo) makes the Deployment's
// next generation and ends the tracking: the stuck rollout is no longer this refresher's to
// wait for or to quarantine, while a new change still waits for any pending rollout.
func TestForeignWriteEndsTheTracking(t *testing.T) {
	f, at := ingestorUpdated(t)
	stuck(t, f, f.deployment(t).Generation, false)
	if report, _ := f.safeTick(t, at(5)); report.Images[2].Decision != DecisionWaiting {
		t.Fatalf("rollout in flight: %s, want waiting", report.Images[2].Decision)
	}
	dep := f.deployment(t)
	dep.Annotations["team"] = "payments" // kubectl annotate
	dep.Generation++
	dep.Status.ObservedGeneration = dep.Generation
	if err := f.kube.Tracker().Update(deploymentsGVR, dep, namespace); err != nil {
		t.Fatal(err)
	}
	report, _ := f.safeTick(t, at(30)) // past rolloutTimeout: it would be quarantined if it were tracked
	if got := report.Images[2].Decision; got != DecisionUnchanged {
		t.Errorf("after a foreign write: ingestor %s (%s), want unchanged", got, report.Images[2].Reason)
	}
	if env := apiEnv(f.deployment(t))[ingestorEnv]; env != f.digest["ingestor"] {
		t.Errorf("env %s, want %s kept (no rollback)", env, f.digest["ingestor"])
	}
	next, err := f.srv.PushIndex("ghcr.io/tracebloc/ingestor:prod")
	if err != nil {
		t.Fatal(err)
	}
	if report, _ := f.safeTick(t, at(45)); report.Images[2].Decision != DecisionWaiting ||
		apiEnv(f.deployment(t))[ingestorEnv] == next {
		t.Errorf("a new digest while a rollout is pending: %s, want waiting", report.Images[2].Decision)
	}
}

// ingestorUpdated is a fixture whose first tick (at minute 0) set the ingestor's env from a
// stale digest to the registry's, and the tick clock in minutes after it.
func ingestorUpdated(t *testing.T) (*fixture, func(minute int) time.Time) {
	t.Helper()
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, _ := f.current()
		annotations[ingestorKey] = stale
		return deployment(annotations, env(stale))
	})
	at := func(m int) time.Time { return clock.Add(time.Duration(m) * time.Minute) }
	if report, _ := f.safeTick(t, at(0)); report.Images[2].Decision != DecisionUpdateEnv {
		t.Fatalf("first tick: %s", report.Images[2].Decision)
	}
	return f, at
}

// A rollback target comes from the status annotation, which anyone who may edit the Deployment
// can write: a previous digest the registry does not serve in the image's repository (a hand
// edit, another repository's image) is never rolled back to — the failed digest is quarantined
// and the env left alone for a human.
func TestRunRollbackTargetMustBeServed(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, _ := f.current()
		annotations[ingestorKey] = stale // no registry serves it
		return deployment(annotations, env(stale))
	})
	bad := f.digest["ingestor"]
	report, _ := f.safeTick(t, clock)
	if got := report.Images[2].Decision; got != DecisionUpdateEnv {
		t.Fatalf("first tick: %s", got)
	}
	stuck(t, f, 2, true)
	report, patches := f.safeTick(t, clock.Add(5*time.Minute))
	ing := report.Images[2]
	if ing.Decision != DecisionQuarantined ||
		!strings.Contains(ing.Reason, "not rolled back to "+stale+": the registry does not serve it") {
		t.Fatalf("detecting tick: %s, reason %q", ing.Decision, ing.Reason)
	}
	dep := f.deployment(t)
	if apiEnv(dep)[ingestorEnv] != bad || dep.Annotations[ingestorKey] != bad {
		t.Errorf(
			"env %s, annotation %s after refusing the rollback; want both left at %s",
			apiEnv(dep)[ingestorEnv],
			dep.Annotations[ingestorKey],
			bad,
		)
	}
	for _, p := range patches {
		if strings.Contains(p, ingestorEnv) {
			t.Errorf("a patch touched the env: %s", p)
		}
	}
	if s := f.status(t, "ingestor"); s.State != StateQuarantined || s.Quarantined != bad {
		t.Errorf("status %+v, want quarantined %s", s, bad)
	}
}
