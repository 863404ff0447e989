package refresher

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/tracebloc/image-refresh/internal/config"
)

// The kubelet uses the last of duplicate env entries; a strategic-merge patch by name would
// change the first. The refresher fails the image, naming the variable, and writes nothing
// for it — never a patch of the first entry while pods read the last.
func TestRunDuplicateEnvEntriesFailTheImage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry func(f *fixture) []corev1.EnvVar
	}{
		{
			"[X=R, X=stale]",
			func(f *fixture) []corev1.EnvVar { return []corev1.EnvVar{env(f.digest["ingestor"]), env(stale)} },
		},
		{"[X=stale, X=old]", func(f *fixture) []corev1.EnvVar { return []corev1.EnvVar{env(stale), env(digestOf('1'))} }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, deployment(nil))
			annotations := map[string]string{ingestorKey: f.digest["ingestor"]}
			f.kube = fake.NewClientset(deployment(annotations, tc.entry(f)...))
			report := f.run(t, f.options())
			if got := decisions(report); got != "jobs-manager=record pods-monitor=record ingestor=failed" {
				t.Errorf("decisions: %s", got)
			}
			if err := report.Images[2].Err; err == nil ||
				!strings.Contains(
					err.Error(),
					`container "api" of Deployment tracebloc/stg-jobs-manager lists env INGESTOR_IMAGE_DIGEST 2 times`,
				) {
				t.Errorf("ingestor error: %v", err)
			}
			patches := f.patches(t)
			if len(patches) != 1 || strings.Contains(patches[0], `"spec"`) || strings.Contains(patches[0], ingestorKey) ||
				!strings.Contains(patches[0], statusKey("ingestor")) {
				t.Errorf("patches %q: want one, without the ingestor's env or annotation, with its failed status", patches)
			}
		})
	}
}

// Two set-env images that the config keeps apart by namespace as written land on one
// Deployment once the namespace is defaulted: the second fails, the variable is patched once,
// and a second run is unchanged (no flapping).
func TestRunSharedEnvOnResolvedTargets(t *testing.T) {
	f := newFixture(t, deployment(nil))
	f.cfg.Metadata.Namespace = ""
	for i := range f.cfg.Spec.Images {
		f.cfg.Spec.Images[i].Target.Namespace = ""
	}
	second := f.cfg.Spec.Images[2]
	second.Name, second.Annotation, second.Target.Namespace = "ingestor-b", "tracebloc.io/other-digest", namespace
	f.cfg.Spec.Images = append(f.cfg.Spec.Images, second)
	if err := f.cfg.Validate(); err != nil {
		t.Fatalf("the config is valid as written: %v", err)
	}
	opts := f.options()
	opts.Namespace = namespace
	for run := 1; run <= 2; run++ {
		report := f.run(t, opts)
		want := "jobs-manager=record pods-monitor=record ingestor=fill ingestor-b=failed"
		if run == 2 {
			want = "jobs-manager=unchanged pods-monitor=unchanged ingestor=unchanged ingestor-b=failed"
		}
		if got := decisions(report); got != want {
			t.Errorf("run %d decisions: %s; want %s", run, got, want)
		}
		if err := report.Images[3].Err; err == nil ||
			!strings.Contains(
				err.Error(),
				`spec.images[3] (ingestor-b).env "INGESTOR_IMAGE_DIGEST": spec.images[2] (ingestor) `+
					`already sets it on container "api" of Deployment tracebloc/stg-jobs-manager`,
			) {
			t.Errorf("run %d ingestor-b error: %v", run, err)
		}
	}
	// The fill starts a rollout: the ingestor's status records it (the generation it awaits).
	status := `{\"state\":\"ok\",\"since\":\"2026-07-01T12:00:00Z\",\"digest\":\"` + f.digest["ingestor"] +
		`\",\"generation\":2,\"applied\":\"2026-07-01T12:00:00Z\"}`
	want := `{"metadata":{"resourceVersion":"1","annotations":{"image-refresh.io/status-ingestor":"` + status +
		`","` + ingestorKey + `":"` + f.digest["ingestor"] +
		`","` + jobsManagerKey + `":"` + f.digest["jobs-manager"] +
		`","` + podsMonitorKey + `":"` + f.digest["pods-monitor"] + `"}},` +
		`"spec":{"template":{"spec":{"containers":[{"name":"api","env":[{"name":"` + ingestorEnv +
		`","value":"` + f.digest["ingestor"] + `"}]}]}}}}`
	if patches := f.patches(t); len(patches) != 1 || patches[0] != want {
		t.Errorf("patches %q\nwant one: %s", patches, want)
	}
}

// A paused Deployment or one being deleted would record digests no pod runs: every change
// waits (decision waiting, a reason, exit 0), nothing but the statuses is written, and once the
// images have waited longer than spec.waitTimeout they fail. The status is written on the
// transitions only: a steady wait and a steady failure write nothing. An image with nothing to
// change is unchanged.
func TestRunPausedOrDeletingTargetWaits(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*appsv1.Deployment)
		want string
	}{
		{"paused", func(dep *appsv1.Deployment) { dep.Spec.Paused = true }, "spec.paused: true"},
		{"deleting", func(dep *appsv1.Deployment) {
			now := metav1.Now()
			dep.DeletionTimestamp, dep.Finalizers = &now, []string{"example.com/hold"}
		}, "being deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, deployment(nil))
			dep := deployment(map[string]string{podsMonitorKey: f.digest["pods-monitor"]})
			tc.edit(dep)
			f.kube = fake.NewClientset(dep)
			f.cfg.Spec.WaitTimeout = config.Duration(30 * time.Minute)
			// Ticks 15 minutes apart: waiting at 0, 15m and 30m; failed at 45m and 60m.
			for tick := range 5 {
				f.kube.ClearActions()
				opts := f.options()
				now := clock.Add(time.Duration(tick) * 15 * time.Minute)
				opts.Now = func() time.Time { return now }
				report := f.run(t, opts)
				failing := tick >= 3
				want, state := "jobs-manager=waiting pods-monitor=unchanged ingestor=waiting", StateWaiting
				if failing {
					want, state = "jobs-manager=failed pods-monitor=unchanged ingestor=failed", StateFailed
				}
				if got := decisions(report); got != want {
					t.Fatalf("tick %d: decisions %s; want %s", tick, got, want)
				}
				for _, i := range []int{0, 2} {
					img := report.Images[i]
					why := img.Reason
					if img.Err != nil {
						why = img.Err.Error()
					}
					if !strings.Contains(why, "Deployment tracebloc/stg-jobs-manager: ") || !strings.Contains(why, tc.want) ||
						img.Intended == "" ||
						img.Status.State != state || img.Status.WaitingSince != clock.Format(time.RFC3339) {
						t.Errorf("tick %d %s: intended %q, %q, status %+v", tick, img.Name, img.Intended, why, img.Status)
					}
				}
				if report.Failed() != failing {
					t.Errorf("tick %d: report failed = %v", tick, report.Failed())
				}
				patches := f.patches(t)
				switch tick {
				case 0, 3: // the transitions: to waiting, to failed
					if len(patches) != 1 || strings.Contains(patches[0], jobsManagerKey) ||
						strings.Contains(patches[0], ingestorKey) || strings.Contains(patches[0], `"spec"`) {
						t.Errorf("tick %d: patches %q, want one carrying only statuses", tick, patches)
					}
				default: // a steady wait or failure
					if len(patches) != 0 {
						t.Errorf("tick %d: patches %q, want none (the state did not change)", tick, patches)
					}
				}
			}
			if got := f.deployment(t).Annotations; got[jobsManagerKey] != "" || got[ingestorKey] != "" {
				t.Errorf("audit annotations written: %v", got)
			}
		})
	}
}
