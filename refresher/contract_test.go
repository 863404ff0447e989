package refresher

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

// The kubelet uses the last of duplicate env entries; a strategic-merge patch by name would
// change the first. The refresher fails the image, naming the variable, and writes nothing
// for it — never a patch of the first entry while pods read the last.
func TestRunDuplicateEnvEntriesFailTheImage(t *testing.T) {
	for _, tc := range []struct {
		name  string
		entry func(f *fixture) []corev1.EnvVar
	}{
		{"[X=R, X=stale]", func(f *fixture) []corev1.EnvVar { return []corev1.EnvVar{env(f.digest["ingestor"]), env(stale)} }},
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
			if err := report.Images[2].Err; err == nil || !strings.Contains(err.Error(), `container "api" of Deployment tracebloc/stg-jobs-manager lists env INGESTOR_IMAGE_DIGEST 2 times`) {
				t.Errorf("ingestor error: %v", err)
			}
			patches := f.patches(t)
			if len(patches) != 1 || strings.Contains(patches[0], ingestorEnv) || strings.Contains(patches[0], ingestorKey) {
				t.Errorf("patches %q: want one, without the ingestor's env or annotation", patches)
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
		if err := report.Images[3].Err; err == nil || !strings.Contains(err.Error(), `spec.images[3] (ingestor-b).env "INGESTOR_IMAGE_DIGEST": spec.images[2] (ingestor) already sets it on container "api" of Deployment tracebloc/stg-jobs-manager`) {
			t.Errorf("run %d ingestor-b error: %v", run, err)
		}
	}
	want := `{"metadata":{"resourceVersion":"1","annotations":{"` + ingestorKey + `":"` + f.digest["ingestor"] + `","` + jobsManagerKey + `":"` + f.digest["jobs-manager"] + `","` + podsMonitorKey + `":"` + f.digest["pods-monitor"] + `"}},` +
		`"spec":{"template":{"spec":{"containers":[{"name":"api","env":[{"name":"` + ingestorEnv + `","value":"` + f.digest["ingestor"] + `"}]}]}}}}`
	if patches := f.patches(t); len(patches) != 1 || patches[0] != want {
		t.Errorf("patches %q\nwant one: %s", patches, want)
	}
}

// A paused Deployment or one being deleted would record digests no pod runs.
func TestRunPausedOrDeletingTargetFailsItsImages(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(*fixture)
		want string
	}{
		{"paused", func(f *fixture) {
			dep := deployment(nil)
			dep.Spec.Paused = true
			f.kube = fake.NewClientset(dep)
		}, "spec.paused: true"},
		{"deleting", func(f *fixture) {
			dep := deployment(nil)
			now := metav1.Now()
			dep.DeletionTimestamp, dep.Finalizers = &now, []string{"example.com/hold"}
			f.kube = fake.NewClientset(dep)
		}, "being deleted"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t, deployment(nil))
			tc.edit(f)
			report := f.run(t, f.options())
			for _, img := range report.Images {
				if img.Decision != DecisionFailed || img.Err == nil || !strings.Contains(img.Err.Error(), "Deployment tracebloc/stg-jobs-manager: ") || !strings.Contains(img.Err.Error(), tc.want) {
					t.Errorf("%s: %s %v", img.Name, img.Decision, img.Err)
				}
			}
			if got := f.patches(t); len(got) != 0 {
				t.Errorf("patches %q, want none", got)
			}
		})
	}
}
