package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/internal/testutil/golden"
	"github.com/tracebloc/image-refresh/refresher"
	"github.com/tracebloc/image-refresh/refresher/kube/clientset"
	"github.com/tracebloc/image-refresh/refresher/registry"
	"github.com/tracebloc/image-refresh/refresher/registry/registrytest"
)

const statusConfig = `apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: stg-image-refresh, namespace: tracebloc}
spec:
  images:
  - {name: jobs-manager, repository: docker.io/tracebloc/jobs-manager, tag: prod, action: rollout-restart, target: {name: stg-jobs-manager, container: api}, annotation: tracebloc.io/jm}
  - {name: pods-monitor, repository: docker.io/tracebloc/pods-monitor, tag: prod, action: rollout-restart, target: {name: stg-jobs-manager, container: pods-monitor}, annotation: tracebloc.io/pm}
  - {name: ingestor, repository: ghcr.io/tracebloc/ingestor, tag: prod, soak: 1h, action: set-env, env: INGESTOR_IMAGE_DIGEST, target: {name: stg-jobs-manager, container: api}, annotation: tracebloc.io/ing}
  - {name: consumer, repository: ghcr.io/tracebloc/consumer, tag: prod, action: set-env, env: CONSUMER_DIGEST, target: {name: stg-workers, container: worker}, annotation: tracebloc.io/consumer}
  - {name: cache, repository: docker.io/tracebloc/cache, tag: prod, action: rollout-restart, target: {name: stg-workers, container: cache}, annotation: tracebloc.io/cache}
  - {name: gone, repository: docker.io/tracebloc/gone, tag: prod, action: rollout-restart, target: {name: stg-gone, container: c}, annotation: tracebloc.io/gone}
  - {name: pinned, repository: docker.io/tracebloc/pinned, digest: "sha256:abababababababababababababababababababababababababababababababab", action: rollout-restart, target: {name: stg-workers, container: cache}, annotation: tracebloc.io/pinned}
`

// statusCluster is a registry and a cluster in which every state of the view shows, and a
// masker that names each digest.
type statusCluster struct {
	srv    *registrytest.Server
	kube   *fake.Clientset
	digest map[string]string // name → registry digest; "old-*" → a digest the registry moved from
}

func newStatusCluster(t *testing.T) *statusCluster {
	t.Helper()
	c := &statusCluster{srv: registrytest.New(t), digest: map[string]string{}}
	for _, ref := range []string{"docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/pods-monitor", "ghcr.io/tracebloc/ingestor", "ghcr.io/tracebloc/consumer", "docker.io/tracebloc/cache", "docker.io/tracebloc/gone"} {
		name := ref[strings.LastIndex(ref, "/")+1:]
		old, err := c.srv.PushImage(ref + ":prod")
		if err != nil {
			t.Fatal(err)
		}
		now, err := c.srv.PushImage(ref + ":prod")
		if err != nil {
			t.Fatal(err)
		}
		c.digest["old-"+name], c.digest[name] = old, now
	}
	d := c.digest
	status := func(s refresher.Status) string { data, _ := json.Marshal(s); return string(data) }
	selector := func(app string) *metav1.LabelSelector {
		return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
	}
	jobsManager := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "stg-jobs-manager", Namespace: "tracebloc", Annotations: map[string]string{
			"tracebloc.io/jm": d["jobs-manager"], "tracebloc.io/pm": d["old-pods-monitor"], "tracebloc.io/ing": d["old-ingestor"],
			"image-refresh.io/status-ingestor":     status(refresher.Status{State: refresher.StateSoaking, Since: "2026-07-01T11:40:00Z", Pending: d["ingestor"], PendingSince: "2026-07-01T11:40:00Z"}),
			"image-refresh.io/status-jobs-manager": status(refresher.Status{State: refresher.StateOK, Since: "2026-07-01T09:00:00Z", Digest: d["jobs-manager"]}),
		}},
		Spec: appsv1.DeploymentSpec{Selector: selector("jobs-manager"), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "api", Env: []corev1.EnvVar{{Name: "INGESTOR_IMAGE_DIGEST", Value: d["old-ingestor"]}}},
			{Name: "pods-monitor"},
		}}}},
	}
	workers := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "stg-workers", Namespace: "tracebloc", Annotations: map[string]string{
			"tracebloc.io/consumer": d["old-consumer"], "tracebloc.io/cache": d["cache"],
			"image-refresh.io/status-consumer": status(refresher.Status{State: refresher.StateQuarantined, Since: "2026-07-01T10:15:00Z", Digest: d["old-consumer"], Quarantined: d["consumer"]}),
			"image-refresh.io/status-cache":    status(refresher.Status{State: refresher.StateWaiting, Since: "2026-07-01T11:52:00Z", Digest: d["cache"], Generation: 4, WaitingSince: "2026-07-01T11:52:00Z", Error: "Deployment tracebloc/stg-workers: its rollout is not complete"}),
		}},
		Spec: appsv1.DeploymentSpec{Selector: selector("workers"), Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
			{Name: "worker", Env: []corev1.EnvVar{{Name: "CONSUMER_DIGEST", Value: d["old-consumer"]}}},
			{Name: "cache"},
		}}}},
	}
	pod := func(name, app string, containers []corev1.Container, statuses ...corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "tracebloc", Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{Containers: containers}, Status: corev1.PodStatus{Phase: corev1.PodRunning, ContainerStatuses: statuses}}
	}
	imageID := func(container, repo, digest string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: container, ImageID: repo + "@" + digest}
	}
	c.kube = fake.NewClientset(jobsManager, workers,
		pod("jm-1", "jobs-manager", jobsManager.Spec.Template.Spec.Containers,
			imageID("api", "docker.io/tracebloc/jobs-manager", d["jobs-manager"]), imageID("pods-monitor", "docker.io/tracebloc/pods-monitor", d["old-pods-monitor"])),
		pod("w-1", "workers", workers.Spec.Template.Spec.Containers,
			imageID("cache", "docker.io/tracebloc/cache", d["old-cache"])),
		pod("w-2", "workers", workers.Spec.Template.Spec.Containers,
			imageID("cache", "docker.io/tracebloc/cache", d["cache"])),
		// Another app's pod: not listed for either target.
		pod("other", "other", nil, imageID("api", "docker.io/tracebloc/jobs-manager", d["old-jobs-manager"])),
	)
	return c
}

func (c *statusCluster) run(t *testing.T, stdout, stderr *strings.Builder, args ...string) int {
	t.Helper()
	return run(args, environment{
		kube:     func(string) (refresher.Kube, string, error) { return clientset.New(c.kube), "tracebloc", nil },
		registry: registry.Options{Transport: c.srv.Transport(), Keychain: authn.NewMultiKeychain()},
	}, stdout, stderr)
}

// mask names every digest, full or short, so the golden files do not depend on random images.
func (c *statusCluster) mask(s string) string {
	for name, d := range c.digest {
		s = strings.ReplaceAll(s, d, "<"+name+">")
		short := refresher.ShortDigest(d) // same width, so the table stays aligned
		s = strings.ReplaceAll(s, short, fmt.Sprintf("%-*s", len(short), "<"+name+">"))
	}
	return s
}

func TestStatusGolden(t *testing.T) {
	c := newStatusCluster(t)
	cfg := writeConfig(t, statusConfig)
	for _, tc := range []struct{ name, output, golden string }{
		{"table", "table", "status.txt"},
		{"json", "json", "status.json"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.kube.ClearActions()
			c.srv.ResetRequests()
			var stdout, stderr strings.Builder
			// gone's target does not exist: exit 1.
			if code := c.run(t, &stdout, &stderr, "status", "--config", cfg, "-o", tc.output); code != cli.ExitFailed {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, cli.ExitFailed, stderr.String())
			}
			golden.Assert(t, filepath.Join("testdata", tc.golden), []byte(c.mask(stdout.String())))
			// Read-only: gets and lists only; one HEAD per floating tag, nothing else.
			for _, a := range c.kube.Actions() {
				if v := a.GetVerb(); v != "get" && v != "list" {
					t.Errorf("status sent %s %s", v, a.GetResource().Resource)
				}
			}
			for _, r := range c.srv.Requests() {
				if !r.IsToken() && !r.IsPing() && !r.IsManifest("HEAD") {
					t.Errorf("registry request %s %s%s, want HEADs only", r.Method, r.Host, r.Path)
				}
			}
			if n := c.srv.Count(func(r registrytest.Request) bool { return r.IsManifest("HEAD") }); n != 6 {
				t.Errorf("%d HEADs, want 6 (one per floating tag)", n)
			}
		})
	}
}

func TestStatusExitCodes(t *testing.T) {
	only := func(images ...string) string {
		lines := strings.Split(statusConfig, "\n")
		out := lines[:5] // through "  images:"
		for _, l := range lines[5:] {
			for _, img := range images {
				if strings.Contains(l, "{name: "+img+",") {
					out = append(out, l)
				}
			}
		}
		return strings.Join(out, "\n") + "\n"
	}
	for _, tc := range []struct {
		name string
		args []string
		cfg  string
		want int
	}{
		{"current and soaking", nil, only("jobs-manager", "ingestor"), cli.ExitOK},
		{"a pinned image only", nil, only("pinned"), cli.ExitOK},
		{"behind", nil, only("jobs-manager", "pods-monitor"), exitBehind},
		{"quarantined", nil, only("consumer"), exitBehind},
		{"waiting is on its way", nil, only("cache"), cli.ExitOK},
		{"failed", nil, only("jobs-manager", "gone"), cli.ExitFailed},
		{"bad output", []string{"-o", "yaml"}, only("jobs-manager"), cli.ExitUsage},
		{"unexpected argument", []string{"now"}, only("jobs-manager"), cli.ExitUsage},
		{"namespace contradiction", []string{"--namespace", "other"}, only("jobs-manager"), cli.ExitUsage},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newStatusCluster(t)
			var stdout, stderr strings.Builder
			args := append([]string{"status", "--config", writeConfig(t, tc.cfg)}, tc.args...)
			if code := c.run(t, &stdout, &stderr, args...); code != tc.want {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.want, c.mask(stdout.String()), stderr.String())
			}
		})
	}
}

// Without list on Pods the view still works: running digests come from the Deployment (env),
// or nothing tells and the record stands in; the detail says why.
func TestStatusWithoutPodList(t *testing.T) {
	c := newStatusCluster(t)
	c.kube.PrependReactor("list", "pods", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(corev1.Resource("pods"), "", errors.New("no list"))
	})
	var stdout, stderr strings.Builder
	cfg := writeConfig(t, strings.Join(strings.Split(statusConfig, "\n")[:8], "\n")+"\n") // jobs-manager, pods-monitor, ingestor
	if code := c.run(t, &stdout, &stderr, "status", "--config", cfg, "-o", "json"); code != exitBehind {
		t.Fatalf("exit %d, want %d (pods-monitor is behind by its record); stderr:\n%s", code, exitBehind, stderr.String())
	}
	var rows []refresher.StatusRow
	if err := json.Unmarshal([]byte(stdout.String()), &rows); err != nil || len(rows) != 3 {
		t.Fatalf("rows %v: %v", rows, err)
	}
	for _, r := range rows {
		if !strings.Contains(r.Detail, "pods not listed") {
			t.Errorf("%s: detail %q", r.Image, r.Detail)
		}
	}
	if r := rows[0]; r.RunningFrom != "" || r.State != refresher.ViewCurrent {
		t.Errorf("jobs-manager %+v: want nothing running known, current by its record", r)
	}
	if r := rows[1]; r.State != refresher.ViewBehind {
		t.Errorf("pods-monitor %+v: want behind by its record", r)
	}
	if r := rows[2]; r.RunningFrom != "env" || len(r.Running) != 1 || r.Running[0] != c.digest["old-ingestor"] || r.State != refresher.ViewSoaking {
		t.Errorf("ingestor %+v: want the Deployment's env, soaking", r)
	}
}
