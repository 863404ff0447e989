package refresher

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/refresher/kube/clientset"
	"github.com/tracebloc/image-refresh/refresher/registry"
	"github.com/tracebloc/image-refresh/refresher/registry/registrytest"
)

const (
	namespace      = "tracebloc"
	deploymentName = "stg-jobs-manager"

	jobsManagerKey = "tracebloc.io/last-refreshed-jobs-manager-digest"
	podsMonitorKey = "tracebloc.io/last-refreshed-pods-monitor-digest"
	ingestorKey    = "tracebloc.io/last-refreshed-ingestor-digest"
	ingestorEnv    = "INGESTOR_IMAGE_DIGEST"
)

var (
	deploymentsGVR = schema.GroupVersionResource{Group: "apps", Version: "v1", Resource: "deployments"}
	clock          = time.Date(2026, 7, 1, 12, 0, 0, 0, time.UTC)
	// readNow reads status annotations in tests: later than every tick, so no time is clamped.
	readNow = clock.Add(365 * 24 * time.Hour)
	stale   = digestOf('0')
)

// fixture is the example config (testdata/config/refresh.yaml), a registry serving its three
// images, and a fake cluster holding the target Deployment.
type fixture struct {
	cfg  *config.RefreshConfig
	srv  *registrytest.Server
	kube *fake.Clientset
	// digest is the registry digest per image name.
	digest map[string]string
	logs   bytes.Buffer
}

func newFixture(t *testing.T, dep *appsv1.Deployment) *fixture {
	t.Helper()
	cfg, err := config.Load(filepath.Join("..", "testdata", "config", "refresh.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{cfg: cfg, srv: registrytest.New(t), digest: map[string]string{}}
	for _, img := range cfg.Spec.Images {
		push := f.srv.PushImage
		if img.Name == "ingestor" {
			push = f.srv.PushIndex
		}
		if f.digest[img.Name], err = push(img.Reference()); err != nil {
			t.Fatal(err)
		}
	}
	f.kube = fake.NewClientset(dep)
	return f
}

func (f *fixture) options() Options {
	return Options{
		Kube:     generations{clientset.New(f.kube), f.kube},
		Registry: registry.Options{Transport: f.srv.Transport(), Keychain: authn.NewMultiKeychain()},
		Logger:   slog.New(slog.NewJSONHandler(&f.logs, nil)),
		Now:      func() time.Time { return clock },
	}
}

// generations makes a patch of the fake's Deployment its next generation when it changes the
// spec or the annotations, as the API server does (the fake tracker never moves generation).
// A Deployment controller that had caught up observes the new generation at once; the
// replica counts stay as the test set them (setRollout, stuck).
type generations struct {
	clientset.Client
	fake *fake.Clientset
}

func (g generations) PatchDeployment(
	ctx context.Context,
	namespace, name string,
	patch []byte,
	fieldManager string,
) (*appsv1.Deployment, error) {
	before, err := g.tracked(namespace, name) // not through the clientset: no action recorded
	if err != nil {
		return nil, err
	}
	after, err := g.Client.PatchDeployment(ctx, namespace, name, patch, fieldManager)
	if err != nil {
		return nil, err
	}
	if apiequality.Semantic.DeepEqual(before.Spec, after.Spec) &&
		apiequality.Semantic.DeepEqual(before.Annotations, after.Annotations) {
		return after, nil
	}
	after.Generation = before.Generation + 1
	if before.Status.ObservedGeneration == before.Generation {
		after.Status.ObservedGeneration = after.Generation
	}
	if err := g.fake.Tracker().Update(deploymentsGVR, after, namespace); err != nil {
		return nil, err
	}
	return g.tracked(namespace, name)
}

func (g generations) tracked(namespace, name string) (*appsv1.Deployment, error) {
	obj, err := g.fake.Tracker().Get(deploymentsGVR, namespace, name)
	if err != nil {
		return nil, err
	}
	return obj.(*appsv1.Deployment).DeepCopy(), nil
}

func (f *fixture) run(t *testing.T, opts Options) Report {
	t.Helper()
	report, err := Run(context.Background(), f.cfg, opts)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return report
}

// patches returns the patches the fake received, after checking how they were sent.
func (f *fixture) patches(t *testing.T) []string {
	t.Helper()
	var out []string
	for _, a := range f.kube.Actions() {
		p, ok := a.(k8stesting.PatchAction)
		if !ok || a.GetResource().Resource == "events" { // an Event's series is not a write of the target
			continue
		}
		if p.GetPatchType() != types.StrategicMergePatchType || p.GetName() != deploymentName ||
			p.GetNamespace() != namespace {
			t.Errorf(
				"patch %s of %s/%s, want a strategic-merge patch of %s/%s",
				p.GetPatchType(),
				p.GetNamespace(),
				p.GetName(),
				namespace,
				deploymentName,
			)
		}
		if fm := a.(k8stesting.PatchActionImpl).PatchOptions.FieldManager; fm != config.FieldManager {
			t.Errorf("patch field manager %q, want %q", fm, config.FieldManager)
		}
		out = append(out, string(p.GetPatch()))
	}
	return out
}

func (f *fixture) deployment(t *testing.T) *appsv1.Deployment {
	t.Helper()
	dep, err := f.kube.AppsV1().Deployments(namespace).Get(context.Background(), deploymentName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dep
}

// deployment builds the target with the given audit annotations and api env vars, its last
// rollout complete (generation 1 observed, one replica updated and ready).
func deployment(annotations map[string]string, apiEnv ...corev1.EnvVar) *appsv1.Deployment {
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{
			Name:            deploymentName,
			Namespace:       namespace,
			ResourceVersion: "1",
			Generation:      1,
			Annotations:     annotations,
		},
		Status: appsv1.DeploymentStatus{
			ObservedGeneration: 1,
			Replicas:           1,
			UpdatedReplicas:    1,
			ReadyReplicas:      1,
			AvailableReplicas:  1,
		},
		Spec: appsv1.DeploymentSpec{Replicas: ptr(int32(1)), Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "jobs-manager"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{
				{
					Name:            "api",
					Image:           "docker.io/tracebloc/jobs-manager:prod",
					ImagePullPolicy: corev1.PullAlways,
					Env:             append([]corev1.EnvVar{{Name: "LOG_LEVEL", Value: "info"}}, apiEnv...),
				},
				{Name: "pods-monitor", Image: "docker.io/tracebloc/pods-monitor:prod", ImagePullPolicy: corev1.PullAlways},
			}},
		}},
	}
}

func ptr[T any](v T) *T { return &v }

// statusKey is the status annotation of an image of the example config.
func statusKey(image string) string { return config.StatusAnnotationPrefix + image }

// okStatus is the status a change that rolls the fixture (generation 1) out records.
// okStatus is the status of a change applied at clock; previous, if given, is the digest it
// replaced (the rollback target).
func okStatus(digest string, previous ...string) string {
	s := Status{
		State:      StateOK,
		Since:      "2026-07-01T12:00:00Z",
		Digest:     digest,
		Generation: 2,
		Applied:    "2026-07-01T12:00:00Z",
	}
	if len(previous) > 0 {
		s.Previous = previous[0]
	}
	return s.encode()
}

func env(value string) corev1.EnvVar { return corev1.EnvVar{Name: ingestorEnv, Value: value} }

// current annotates every image with its registry digest and sets the env accordingly.
func (f *fixture) current() (map[string]string, corev1.EnvVar) {
	return map[string]string{
		jobsManagerKey: f.digest["jobs-manager"],
		podsMonitorKey: f.digest["pods-monitor"],
		ingestorKey:    f.digest["ingestor"],
	}, env(f.digest["ingestor"])
}

func decisions(r Report) string {
	var parts []string
	for _, img := range r.Images {
		parts = append(parts, img.Name+"="+string(img.Decision))
	}
	return strings.Join(parts, " ")
}

func apiEnv(dep *appsv1.Deployment) map[string]string {
	out := map[string]string{}
	for _, e := range containerNamed(dep, "api").Env {
		out[e.Name] = e.Value
	}
	return out
}

// newFixtureWith builds the fixture, then the Deployment from its digests.
func newFixtureWith(t *testing.T, build func(f *fixture) *appsv1.Deployment) *fixture {
	t.Helper()
	f := newFixture(t, deployment(nil))
	f.kube = fake.NewClientset(build(f))
	return f
}

func TestRunFirstObservation(t *testing.T) {
	f := newFixture(t, deployment(nil))
	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=record pods-monitor=record ingestor=fill" {
		t.Errorf("decisions: %s", got)
	}
	want := fmt.Sprintf(`{"metadata":{"resourceVersion":"1","annotations":{%q:%q,%q:%q,%q:%q,%q:%q}},`+
		`"spec":{"template":{"spec":{"containers":[{"name":"api","env":[{"name":%q,"value":%q}]}]}}}}`,
		statusKey("ingestor"), okStatus(f.digest["ingestor"]),
		ingestorKey, f.digest["ingestor"], jobsManagerKey, f.digest["jobs-manager"], podsMonitorKey, f.digest["pods-monitor"],
		ingestorEnv, f.digest["ingestor"])
	if got := f.patches(t); len(got) != 1 || got[0] != want {
		t.Fatalf("patches:\n%q\nwant one:\n%s", got, want)
	}
	dep := f.deployment(t)
	if env := apiEnv(dep); env["LOG_LEVEL"] != "info" || env[ingestorEnv] != f.digest["ingestor"] || len(env) != 2 {
		t.Errorf("api env after the patch: %v", env)
	}
	if _, ok := dep.Spec.Template.Annotations[config.RestartedAtAnnotation]; ok {
		t.Error("first observation restarted the rollout")
	}
	for key, name := range map[string]string{
		jobsManagerKey: "jobs-manager",
		podsMonitorKey: "pods-monitor",
		ingestorKey:    "ingestor",
	} {
		if dep.Annotations[key] != f.digest[name] {
			t.Errorf("annotation %s = %q, want %s", key, dep.Annotations[key], f.digest[name])
		}
	}
	managers := map[string]bool{}
	for _, mf := range dep.ManagedFields {
		managers[mf.Manager] = true
	}
	if !managers[config.FieldManager] {
		t.Errorf("managed fields name %v, want %q among them", managers, config.FieldManager)
	}
	if report.Failed() {
		t.Errorf("report failed: %v", report.Err())
	}
}

func TestRunSecondRunPatchesNothing(t *testing.T) {
	f := newFixture(t, deployment(nil))
	f.run(t, f.options())
	f.kube.ClearActions()
	f.srv.ResetRequests()

	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=unchanged pods-monitor=unchanged ingestor=unchanged" {
		t.Errorf("decisions: %s", got)
	}
	if got := f.patches(t); len(got) != 0 {
		t.Errorf("unchanged run sent patches: %q", got)
	}
	if len(report.Patches) != 0 {
		t.Errorf("report lists patches: %+v", report.Patches)
	}
}

func TestRunIngestorChangeSetsEnvAndNeverRestarts(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, _ := f.current()
		annotations[ingestorKey] = stale
		return deployment(annotations, env(stale))
	})
	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=unchanged pods-monitor=unchanged ingestor=update-env" {
		t.Errorf("decisions: %s", got)
	}
	want := fmt.Sprintf(
		`{"metadata":{"resourceVersion":"1","annotations":{%q:%q,%q:%q}},`+
			`"spec":{"template":{"spec":{"containers":[{"name":"api","env":[{"name":%q,"value":%q}]}]}}}}`,
		statusKey("ingestor"),
		okStatus(f.digest["ingestor"], stale),
		ingestorKey,
		f.digest["ingestor"],
		ingestorEnv,
		f.digest["ingestor"],
	)
	got := f.patches(t)
	if len(got) != 1 || got[0] != want {
		t.Fatalf("patches:\n%q\nwant:\n%s", got, want)
	}
	if strings.Contains(got[0], config.RestartedAtAnnotation) {
		t.Error("the ingestor change carries a restart annotation")
	}
	dep := f.deployment(t)
	if _, ok := dep.Spec.Template.Annotations[config.RestartedAtAnnotation]; ok {
		t.Error("the pod template was stamped restartedAt")
	}
	if env := apiEnv(dep); env[ingestorEnv] != f.digest["ingestor"] || env["LOG_LEVEL"] != "info" {
		t.Errorf("api env: %v", env)
	}
}

func TestRunJobsManagerChangeRestartsAndNeverSetsEnv(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		annotations[jobsManagerKey] = stale
		return deployment(annotations, ingestor)
	})
	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=restart pods-monitor=unchanged ingestor=unchanged" {
		t.Errorf("decisions: %s", got)
	}
	want := fmt.Sprintf(
		`{"metadata":{"resourceVersion":"1","annotations":{%q:%q,%q:%q}},`+
			`"spec":{"template":{"metadata":{"annotations":{%q:"2026-07-01T12:00:00Z"}}}}}`,
		statusKey("jobs-manager"),
		okStatus(f.digest["jobs-manager"], stale),
		jobsManagerKey,
		f.digest["jobs-manager"],
		config.RestartedAtAnnotation,
	)
	got := f.patches(t)
	if len(got) != 1 || got[0] != want {
		t.Fatalf("patches:\n%q\nwant:\n%s", got, want)
	}
	if strings.Contains(got[0], `"env"`) {
		t.Error("the jobs-manager change touches env")
	}
	dep := f.deployment(t)
	if dep.Spec.Template.Annotations[config.RestartedAtAnnotation] != "2026-07-01T12:00:00Z" ||
		dep.Annotations[jobsManagerKey] != f.digest["jobs-manager"] {
		t.Errorf("after the patch: template annotations %v, annotations %v", dep.Spec.Template.Annotations, dep.Annotations)
	}
	if dep.Spec.Template.Labels["app"] != "jobs-manager" {
		t.Errorf("template labels lost: %v", dep.Spec.Template.Labels)
	}
}

func TestRunSeveralChangesOnOneDeploymentGoInOnePatch(t *testing.T) {
	f := newFixture(
		t,
		deployment(map[string]string{jobsManagerKey: stale, podsMonitorKey: stale, ingestorKey: stale}, env(stale)),
	)
	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=restart pods-monitor=restart ingestor=update-env" {
		t.Errorf("decisions: %s", got)
	}
	want := fmt.Sprintf(
		`{"metadata":{"resourceVersion":"1","annotations":{%q:%q,%q:%q,%q:%q,%q:%q,%q:%q,%q:%q}},`+
			`"spec":{"template":{"metadata":{"annotations":{%q:"2026-07-01T12:00:00Z"}},`+
			`"spec":{"containers":[{"name":"api","env":[{"name":%q,"value":%q}]}]}}}}`,
		statusKey("ingestor"),
		okStatus(f.digest["ingestor"], stale),
		statusKey("jobs-manager"),
		okStatus(f.digest["jobs-manager"], stale),
		statusKey("pods-monitor"),
		okStatus(f.digest["pods-monitor"], stale),
		ingestorKey,
		f.digest["ingestor"],
		jobsManagerKey,
		f.digest["jobs-manager"],
		podsMonitorKey,
		f.digest["pods-monitor"],
		config.RestartedAtAnnotation,
		ingestorEnv,
		f.digest["ingestor"],
	)
	if got := f.patches(t); len(got) != 1 || got[0] != want {
		t.Fatalf("patches:\n%q\nwant one:\n%s", got, want)
	}
}

func TestRunDriftRestoresEnvOnly(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, _ := f.current()
		return deployment(annotations, env(stale)) // e.g. a helm upgrade rendered an old digest
	})
	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=unchanged pods-monitor=unchanged ingestor=drift" {
		t.Errorf("decisions: %s", got)
	}
	want := fmt.Sprintf(
		`{"metadata":{"resourceVersion":"1","annotations":{%q:%q}},"spec":{"template":{"spec":{"containers":[{"name":"api",`+
			`"env":[{"name":%q,"value":%q}]}]}}}}`,
		statusKey("ingestor"),
		okStatus(f.digest["ingestor"]),
		ingestorEnv,
		f.digest["ingestor"],
	)
	if got := f.patches(t); len(got) != 1 || got[0] != want {
		t.Fatalf("patches:\n%q\nwant:\n%s", got, want)
	}
}

func TestRunAdoptsTheEnvDigest(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, _ := f.current()
		delete(annotations, ingestorKey)
		return deployment(annotations, env(stale)) // installed before image-refresh, env set by values
	})
	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=unchanged pods-monitor=unchanged ingestor=adopt" {
		t.Errorf("decisions: %s", got)
	}
	want := fmt.Sprintf(`{"metadata":{"resourceVersion":"1","annotations":{%q:%q}}}`, ingestorKey, stale)
	if got := f.patches(t); len(got) != 1 || got[0] != want {
		t.Fatalf("patches:\n%q\nwant:\n%s", got, want)
	}
	// The next run sees the recorded digest differ from the registry and sets the env.
	f.kube.ClearActions()
	if got := decisions(f.run(t, f.options())); got !=
		"jobs-manager=unchanged pods-monitor=unchanged ingestor=update-env" {
		t.Errorf("second run decisions: %s", got)
	}
}

func TestRunRegistryFailureChangesNothingForThatImage(t *testing.T) {
	f := newFixture(
		t,
		deployment(map[string]string{jobsManagerKey: stale, podsMonitorKey: stale, ingestorKey: stale}, env(stale)),
	)
	f.srv.SetManifestStatus("ghcr.io/tracebloc/ingestor", http.StatusTooManyRequests)

	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=restart pods-monitor=restart ingestor=failed" {
		t.Errorf("decisions: %s", got)
	}
	if !report.Failed() ||
		!strings.Contains(report.Err().Error(), "image ingestor: resolving ghcr.io/tracebloc/ingestor:prod") {
		t.Errorf("report error: %v", report.Err())
	}
	got := f.patches(t)
	if len(got) != 1 || strings.Contains(got[0], ingestorKey) || strings.Contains(got[0], ingestorEnv) {
		t.Fatalf("patches %q: want one, without the ingestor's annotation or env", got)
	}
	dep := f.deployment(t)
	if dep.Annotations[ingestorKey] != stale || apiEnv(dep)[ingestorEnv] != stale {
		t.Errorf("ingestor state changed: annotation %q env %q", dep.Annotations[ingestorKey], apiEnv(dep)[ingestorEnv])
	}
	if dep.Annotations[jobsManagerKey] != f.digest["jobs-manager"] {
		t.Errorf("the healthy image was not applied: %v", dep.Annotations)
	}
}

func TestRunMissingContainerFailsOnlyThatImage(t *testing.T) {
	f := newFixture(t, deployment(nil))
	dep := deployment(nil)
	dep.Spec.Template.Spec.Containers = dep.Spec.Template.Spec.Containers[:1] // no pods-monitor
	f.kube = fake.NewClientset(dep)

	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=record pods-monitor=failed ingestor=fill" {
		t.Errorf("decisions: %s", got)
	}
	if err := report.Images[1].Err; err == nil ||
		!strings.Contains(
			err.Error(),
			`container "pods-monitor" not found (it has "api") in Deployment tracebloc/stg-jobs-manager`,
		) {
		t.Errorf("pods-monitor error: %v", err)
	}
	if got := f.patches(t); len(got) != 1 || strings.Contains(got[0], podsMonitorKey) {
		t.Errorf("patches %q: want one without the pods-monitor annotation", got)
	}
}

func TestRunRestartThatWouldNotPullTheTagFailsOnlyThatImage(t *testing.T) {
	pinned := "docker.io/tracebloc/jobs-manager@" + stale
	f := newFixture(
		t,
		deploymentWithImage(
			deployment(map[string]string{jobsManagerKey: stale, podsMonitorKey: stale, ingestorKey: stale}, env(stale)),
			"api",
			pinned,
			corev1.PullIfNotPresent,
		),
	)

	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=failed pods-monitor=restart ingestor=update-env" {
		t.Errorf("decisions: %s", got)
	}
	if err := report.Err(); err == nil ||
		!strings.Contains(
			err.Error(),
			`image jobs-manager: container "api" of Deployment tracebloc/stg-jobs-manager runs the digest-pinned image `+pinned,
		) {
		t.Errorf("report error: %v", err)
	}
	if got := f.patches(t); len(got) != 1 || strings.Contains(got[0], jobsManagerKey) {
		t.Errorf("patches %q: want one, without the jobs-manager annotation", got)
	}
	if dep := f.deployment(t); dep.Annotations[jobsManagerKey] != stale {
		t.Errorf("jobs-manager annotation %q, want it left at %s", dep.Annotations[jobsManagerKey], stale)
	}
}

func TestRunRefusesEnvFromValueFrom(t *testing.T) {
	f := newFixture(t, deployment(nil, corev1.EnvVar{Name: ingestorEnv, ValueFrom: &corev1.EnvVarSource{
		ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: "digests"},
			Key:                  "ingestor",
		},
	}}))
	report := f.run(t, f.options())
	if err := report.Images[2].Err; report.Images[2].Decision != DecisionFailed || err == nil ||
		!strings.Contains(err.Error(), "valueFrom") {
		t.Errorf("ingestor: %s %v", report.Images[2].Decision, err)
	}
}

func TestRunMissingDeploymentFailsItsImages(t *testing.T) {
	f := newFixture(t, deployment(nil))
	f.kube = fake.NewClientset()
	report := f.run(t, f.options())
	for _, img := range report.Images {
		if img.Decision != DecisionFailed || img.Err == nil ||
			!strings.Contains(img.Err.Error(), "reading Deployment tracebloc/stg-jobs-manager") ||
			!apierrors.IsNotFound(img.Err) {
			t.Errorf("%s: %s %v", img.Name, img.Decision, img.Err)
		}
	}
}

func TestRunPatchFailureIsNotRetried(t *testing.T) {
	f := newFixture(t, deployment(nil))
	f.kube.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(
			schema.GroupResource{Group: "apps", Resource: "deployments"},
			deploymentName,
			fmt.Errorf("RBAC"),
		)
	})
	report := f.run(t, f.options())
	for _, img := range report.Images {
		if img.Err == nil || !apierrors.IsForbidden(img.Err) {
			t.Errorf("%s: %v, want forbidden", img.Name, img.Err)
		}
	}
	if got := f.patches(t); len(got) != 1 {
		t.Errorf("%d patch attempts, want 1", len(got))
	}
}

// enforceResourceVersion answers a patch naming a stale resourceVersion with 409 Conflict, as
// the API server does; the fake does not check preconditions itself. Before the first patch,
// concurrently runs (once) as another writer.
func enforceResourceVersion(t *testing.T, kube *fake.Clientset, concurrently func(*appsv1.Deployment)) {
	first := true
	kube.PrependReactor("patch", "deployments", func(action k8stesting.Action) (bool, runtime.Object, error) {
		p := action.(k8stesting.PatchAction)
		obj, err := kube.Tracker().Get(deploymentsGVR, p.GetNamespace(), p.GetName())
		if err != nil {
			return true, nil, err
		}
		dep := obj.(*appsv1.Deployment)
		if first {
			first = false
			concurrently(dep)
			if err := kube.Tracker().Update(deploymentsGVR, dep, dep.Namespace); err != nil {
				t.Fatal(err)
			}
		}
		var patch struct {
			Metadata struct {
				ResourceVersion string `json:"resourceVersion"`
			} `json:"metadata"`
		}
		if err := json.Unmarshal(p.GetPatch(), &patch); err != nil {
			return true, nil, apierrors.NewBadRequest(err.Error())
		}
		if patch.Metadata.ResourceVersion != dep.ResourceVersion {
			return true, nil, apierrors.NewConflict(
				deploymentsGVR.GroupResource(),
				p.GetName(),
				fmt.Errorf("resourceVersion %s is stale", patch.Metadata.ResourceVersion),
			)
		}
		return false, nil, nil
	})
}

func TestRunConflictReplansOnAFreshRead(t *testing.T) {
	f := newFixture(t, deployment(map[string]string{jobsManagerKey: stale}))
	// Between our read and our patch, someone else records the digest and restarts.
	enforceResourceVersion(t, f.kube, func(dep *appsv1.Deployment) {
		dep.ResourceVersion = "2"
		dep.Annotations[jobsManagerKey] = f.digest["jobs-manager"]
		dep.Spec.Template.Annotations = map[string]string{config.RestartedAtAnnotation: "2026-07-01T11:59:00Z"}
	})
	report := f.run(t, f.options())
	if report.Failed() {
		t.Fatal(report.Err())
	}
	// The first plan restarted jobs-manager; the re-plan sees it done and does not restart again.
	if got := decisions(report); got != "jobs-manager=unchanged pods-monitor=record ingestor=fill" {
		t.Errorf("decisions: %s", got)
	}
	got := f.patches(t)
	if len(got) != 2 || !strings.Contains(got[0], `"resourceVersion":"1"`) ||
		!strings.Contains(got[1], `"resourceVersion":"2"`) || strings.Contains(got[1], config.RestartedAtAnnotation) {
		t.Fatalf("patches:\n%s", strings.Join(got, "\n"))
	}
	gets := 0
	for _, a := range f.kube.Actions() {
		if a.GetVerb() == "get" {
			gets++
		}
	}
	if gets != 2 {
		t.Errorf("%d reads, want 2 (the conflict re-reads)", gets)
	}
	if at := f.deployment(t).Spec.Template.Annotations[config.RestartedAtAnnotation]; at != "2026-07-01T11:59:00Z" {
		t.Errorf("restartedAt = %q, want the other writer's", at)
	}
}

func TestRunDryRunWritesNothing(t *testing.T) {
	f := newFixture(t, deployment(map[string]string{jobsManagerKey: stale}))
	var out bytes.Buffer
	opts := f.options()
	opts.DryRun, opts.Out = true, &out

	report := f.run(t, opts)
	if got := decisions(report); got != "jobs-manager=restart pods-monitor=record ingestor=fill" {
		t.Errorf("decisions: %s", got)
	}
	if got := f.patches(t); len(got) != 0 {
		t.Errorf("dry run sent patches: %q", got)
	}
	if len(report.Patches) != 1 {
		t.Fatalf("planned patches: %+v", report.Patches)
	}
	plan := out.String()
	for _, want := range []string{
		"IMAGE", "DECISION",
		"jobs-manager", "docker.io/tracebloc/jobs-manager:prod", f.digest["jobs-manager"], "restart",
		"ingestor", f.digest["ingestor"], "fill",
		"patch Deployment tracebloc/stg-jobs-manager: " + string(report.Patches[0].Patch),
	} {
		if !strings.Contains(plan, want) {
			t.Errorf("plan lacks %q:\n%s", want, plan)
		}
	}
	if dep := f.deployment(t); dep.Annotations[jobsManagerKey] != stale {
		t.Errorf("dry run changed the Deployment: %v", dep.Annotations)
	}
}

func TestRunLogsEveryDecision(t *testing.T) {
	f := newFixture(t, deployment(map[string]string{jobsManagerKey: stale, podsMonitorKey: "placeholder"}, env(stale)))
	// A set-env image failing does not hold the restart: its env stays as it is in the pods.
	f.srv.SetManifestStatus("ghcr.io/tracebloc/ingestor", http.StatusServiceUnavailable)
	f.run(t, f.options())

	records := f.logRecords(t)
	for image, want := range map[string]map[string]any{
		"jobs-manager": {
			"level":      "INFO",
			"decision":   "restart",
			"old_digest": stale,
			"new_digest": f.digest["jobs-manager"],
			"target":     "tracebloc/stg-jobs-manager",
		},
		"pods-monitor": {
			"level":      "INFO",
			"decision":   "record",
			"old_digest": "placeholder",
			"new_digest": f.digest["pods-monitor"],
		},
		"ingestor": {"level": "ERROR", "decision": "failed", "old_digest": "", "new_digest": "", "env_digest": ""},
	} {
		rec, ok := records[image]
		if !ok {
			t.Errorf("no log record for %s:\n%s", image, f.logs.String())
			continue
		}
		for k, v := range want {
			if rec[k] != v {
				t.Errorf("%s: %s = %v, want %v", image, k, rec[k], v)
			}
		}
	}
	if msg := fmt.Sprint(records["ingestor"]["error"]); !strings.Contains(msg, "503") {
		t.Errorf("ingestor error logged as %q", msg)
	}
}

// logRecords returns the fixture's JSON log records by image.
func (f *fixture) logRecords(t *testing.T) map[string]map[string]any {
	t.Helper()
	records := map[string]map[string]any{}
	sc := bufio.NewScanner(&f.logs)
	for sc.Scan() {
		var rec map[string]any
		if err := json.Unmarshal(sc.Bytes(), &rec); err != nil {
			t.Fatalf("log line is not JSON: %s", sc.Text())
		}
		records[fmt.Sprint(rec["image"])] = rec
	}
	return records
}

// A drift leaves the annotation alone (A = R); the log says what changed: the env's value.
func TestRunLogsTheDriftedEnvAsTheOldDigest(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, _ := f.current()
		return deployment(annotations, env(stale))
	})
	f.run(t, f.options())
	rec := f.logRecords(t)["ingestor"]
	for k, v := range map[string]any{
		"decision":   "drift",
		"old_digest": stale,
		"new_digest": f.digest["ingestor"],
		"env_digest": stale,
	} {
		if rec[k] != v {
			t.Errorf("ingestor: %s = %v, want %v", k, rec[k], v)
		}
	}
}

func TestRunPinnedImagesAreNeverPolled(t *testing.T) {
	f := newFixture(t, deployment(nil))
	pinned := digestOf('9')
	f.cfg.Spec.Images[0].Digest = pinned // jobs-manager
	f.cfg.Spec.Images[2].Digest = pinned // ingestor

	report := f.run(t, f.options())
	if got := decisions(report); got != "jobs-manager=pinned pods-monitor=record ingestor=pinned" {
		t.Errorf("decisions: %s", got)
	}
	for _, r := range f.srv.Requests() {
		if strings.Contains(r.Path, "jobs-manager") || strings.Contains(r.Path, "ingestor") || r.Host == "ghcr.io" {
			t.Errorf("request for a pinned image: %s %s%s", r.Method, r.Host, r.Path)
		}
	}
	if got := f.patches(t); len(got) != 1 || strings.Contains(got[0], jobsManagerKey) ||
		strings.Contains(got[0], ingestorKey) {
		t.Errorf("patches touch pinned images: %q", got)
	}

	// Every image pinned: no registry, no cluster.
	f.cfg.Spec.Images[1].Digest = pinned
	f.srv.ResetRequests()
	opts := f.options()
	opts.Kube = nil
	report = f.run(t, opts)
	if got := decisions(report); got != "jobs-manager=pinned pods-monitor=pinned ingestor=pinned" {
		t.Errorf("all pinned: %s", got)
	}
	if n := len(f.srv.Requests()); n != 0 {
		t.Errorf("all pinned: %d registry requests", n)
	}
}

func TestRunNamespace(t *testing.T) {
	f := newFixture(t, deployment(nil))
	f.cfg.Metadata.Namespace = ""
	for i := range f.cfg.Spec.Images {
		f.cfg.Spec.Images[i].Target.Namespace = ""
	}
	if _, err := Run(context.Background(), f.cfg, f.options()); err == nil ||
		!strings.Contains(err.Error(), "has no namespace") {
		t.Errorf("no namespace anywhere: %v", err)
	}
	if len(f.srv.Requests()) != 0 || len(f.kube.Actions()) != 0 {
		t.Error("a run without a namespace sent requests")
	}

	opts := f.options()
	opts.Namespace = namespace
	report := f.run(t, opts)
	if report.Failed() || report.Images[0].Target != "tracebloc/stg-jobs-manager" {
		t.Errorf("with Options.Namespace: %+v %v", report.Images[0], report.Err())
	}
}

func TestRunRejectsInvalidConfigAndOptions(t *testing.T) {
	f := newFixture(t, deployment(nil))
	opts := f.options()
	opts.Kube = nil
	if _, err := Run(context.Background(), f.cfg, opts); err == nil ||
		!strings.Contains(err.Error(), "Kubernetes client is required") {
		t.Errorf("no client: %v", err)
	}
	f.cfg.Spec.Images[0].Annotation = "not a key"
	if _, err := Run(context.Background(), f.cfg, f.options()); err == nil ||
		!strings.Contains(err.Error(), "spec.images[0] (jobs-manager).annotation") {
		t.Errorf("invalid config: %v", err)
	}
	if len(f.srv.Requests()) != 0 || len(f.kube.Actions()) != 0 {
		t.Error("a rejected run sent requests")
	}
}

// Two ticks at once (the scheduled Job and a kubectl create job --from): both plan the same
// restart; the other writes first. This tick's patch conflicts, and the re-read shows the
// restart it meant, in flight: that rollout is the other tick's doing this very moment, not one
// to wait for — unchanged, nothing written for the image, no Waiting Event. The target rolls
// out once.
func TestRunConcurrentTickDoesNotWaitForItsTwin(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		annotations[jobsManagerKey] = stale
		return deployment(annotations, ingestor)
	})
	enforceResourceVersion(t, f.kube, func(dep *appsv1.Deployment) {
		// What the twin tick wrote: the digest, the restart and its status, as this refresher writes them.
		dep.ResourceVersion = "2"
		dep.Generation++
		dep.Annotations[jobsManagerKey] = f.digest["jobs-manager"]
		dep.Annotations[statusKey("jobs-manager")] = Status{
			State:      StateOK,
			Since:      clock.Format(time.RFC3339),
			Digest:     f.digest["jobs-manager"],
			Generation: dep.Generation,
			Applied:    clock.Format(time.RFC3339),
			Previous:   stale,
		}.encode()
		dep.Spec.Template.Annotations = map[string]string{config.RestartedAtAnnotation: clock.Format(time.RFC3339)}
	})
	report := f.run(t, f.options())
	if report.Failed() {
		t.Fatal(report.Err())
	}
	if got := decisions(report); got != "jobs-manager=unchanged pods-monitor=unchanged ingestor=unchanged" {
		t.Errorf("decisions: %s", got)
	}
	if got := f.patches(t); len(got) != 1 {
		t.Fatalf("patches: the conflicting one only, then nothing:\n%s", strings.Join(got, "\n"))
	}
	if waiting := f.events(t)[ReasonWaiting]; len(waiting) != 0 {
		t.Errorf("Waiting Events %v, want none", waiting)
	}
}

// The other race of two ticks at once: the twin's patch lands before this tick even reads the
// target (no conflict). The change to the digest this tick would apply was written after it
// began: the twin's rollout, not one to wait for — unchanged, nothing written, no Waiting Event.
// A tick that began after the change waits for that rollout as usual.
func TestRunTwinTickThatReadsAfterTheTwinsWrite(t *testing.T) {
	at := clock.Add(30 * time.Second)
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		// What the twin wrote at 12:00:30 — the digest, the restart and its status — its rollout in flight.
		annotations[statusKey("jobs-manager")] = Status{
			State:      StateOK,
			Since:      at.Format(time.RFC3339),
			Digest:     f.digest["jobs-manager"],
			Generation: 2,
			Applied:    at.Format(time.RFC3339),
			Previous:   stale,
		}.encode()
		dep := deployment(annotations, ingestor)
		dep.Spec.Template.Annotations = map[string]string{config.RestartedAtAnnotation: at.Format(time.RFC3339)}
		return pending(dep)
	})
	tick := func(began time.Time) Report {
		t.Helper()
		f.kube.ClearActions()
		opts := f.options()
		opts.Now = func() time.Time { return began }
		return f.run(t, opts)
	}
	// This tick began at 12:00:30 too (the same second as the twin's write).
	if got := decisions(tick(at.Add(400 * time.Millisecond))); got !=
		"jobs-manager=unchanged pods-monitor=unchanged ingestor=unchanged" {
		t.Errorf("the twin: decisions %s", got)
	}
	if p := f.patches(t); len(p) != 0 {
		t.Errorf("the twin wrote %q", p)
	}
	if w := f.events(t)[ReasonWaiting]; len(w) != 0 {
		t.Errorf("the twin made Waiting Events %v", w)
	}
	// A tick a minute later waits for the rollout.
	if got := decisions(tick(at.Add(time.Minute))); got !=
		"jobs-manager=waiting pods-monitor=unchanged ingestor=unchanged" {
		t.Errorf("a later tick: decisions %s", got)
	}
}
