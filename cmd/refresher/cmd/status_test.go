package cmd

import (
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
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
  - {name: jobs-manager, repository: docker.io/tracebloc/jobs-manager, tag: prod, action: rollout-restart, target: ` +
	`{name: stg-jobs-manager, container: api}, annotation: tracebloc.io/jm}
  - {name: pods-monitor, repository: docker.io/tracebloc/pods-monitor, tag: prod, action: rollout-restart, target: ` +
	`{name: stg-jobs-manager, container: pods-monitor}, annotation: tracebloc.io/pm}
  - {name: ingestor, repository: ghcr.io/tracebloc/ingestor, tag: prod, soak: 1h, action: set-env, env: ` +
	`INGESTOR_IMAGE_DIGEST, target: {name: stg-jobs-manager, container: api}, annotation: tracebloc.io/ing}
  - {name: consumer, repository: ghcr.io/tracebloc/consumer, tag: prod, action: set-env, env: CONSUMER_DIGEST, ` +
	`target: {name: stg-workers, container: worker}, annotation: tracebloc.io/consumer}
  - {name: cache, repository: docker.io/tracebloc/cache, tag: prod, action: rollout-restart, target: {name: ` +
	`stg-workers, container: cache}, annotation: tracebloc.io/cache}
  - {name: gone, repository: docker.io/tracebloc/gone, tag: prod, action: rollout-restart, target: {name: stg-gone, ` +
	`container: c}, annotation: tracebloc.io/gone}
  - {name: pinned, repository: docker.io/tracebloc/pinned, digest: ` +
	`"sha256:abababababababababababababababababababababababababababababababab", action: rollout-restart, target: {name: ` +
	`stg-workers, container: cache}, annotation: tracebloc.io/pinned}
`

// statusNow is the status view's clock in these tests: the refresher's CronJob last succeeded
// at 11:53 (statusCronJob), a run of its default schedule ago.
var statusNow = time.Date(2026, time.July, 1, 12, 0, 0, 0, time.UTC)

// statusCronJob is the refresher's CronJob as the post-renderer injects it for statusConfig,
// created on 1 June, whose last run (11:52) succeeded at 11:53.
func statusCronJob() *batchv1.CronJob {
	at := func(s string) *metav1.Time {
		t, _ := time.Parse(time.RFC3339, s)
		return &metav1.Time{Time: t}
	}
	startIn, runFor := int64(300), int64(600)
	return &batchv1.CronJob{
		ObjectMeta: metav1.ObjectMeta{Name: "stg-image-refresh", Namespace: "tracebloc",
			CreationTimestamp: *at("2026-06-01T00:00:00Z")},
		Spec: batchv1.CronJobSpec{Schedule: "7,22,37,52 * * * *", StartingDeadlineSeconds: &startIn,
			JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{ActiveDeadlineSeconds: &runFor}}},
		Status: batchv1.CronJobStatus{LastScheduleTime: at("2026-07-01T11:52:00Z"),
			LastSuccessfulTime: at("2026-07-01T11:53:00Z")},
	}
}

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
	for _, ref := range []string{"docker.io/tracebloc/jobs-manager", "docker.io/tracebloc/pods-monitor",
		"ghcr.io/tracebloc/ingestor", "ghcr.io/tracebloc/consumer", "docker.io/tracebloc/cache", "docker.io/tracebloc/gone"} {
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
			"tracebloc.io/jm": d["jobs-manager"], "tracebloc.io/pm": d["old-pods-monitor"],
			"tracebloc.io/ing": d["old-ingestor"],
			"image-refresh.io/status-ingestor": status(refresher.Status{State: refresher.StateSoaking,
				Since: "2026-07-01T11:40:00Z", Pending: d["ingestor"], PendingSince: "2026-07-01T11:40:00Z"}),
			"image-refresh.io/status-jobs-manager": status(refresher.Status{State: refresher.StateOK,
				Since: "2026-07-01T09:00:00Z", Digest: d["jobs-manager"]}),
		}},
		Spec: appsv1.DeploymentSpec{Selector: selector("jobs-manager"),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "api", Env: []corev1.EnvVar{{Name: "INGESTOR_IMAGE_DIGEST", Value: d["old-ingestor"]}}},
				{Name: "pods-monitor"},
			}}}},
	}
	workers := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "stg-workers", Namespace: "tracebloc", Annotations: map[string]string{
			"tracebloc.io/consumer": d["old-consumer"], "tracebloc.io/cache": d["cache"],
			"image-refresh.io/status-consumer": status(refresher.Status{State: refresher.StateQuarantined,
				Since: "2026-07-01T10:15:00Z", Digest: d["old-consumer"], Quarantined: d["consumer"]}),
			"image-refresh.io/status-cache": status(refresher.Status{State: refresher.StateWaiting,
				Since: "2026-07-01T11:52:00Z", Digest: d["cache"], Generation: 4, WaitingSince: "2026-07-01T11:52:00Z",
				Error: "Deployment tracebloc/stg-workers: its rollout is not complete"}),
		}},
		Spec: appsv1.DeploymentSpec{Selector: selector("workers"),
			Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "worker", Env: []corev1.EnvVar{{Name: "CONSUMER_DIGEST", Value: d["old-consumer"]}}},
				{Name: "cache"},
			}}}},
	}
	pod := func(name, app string, containers []corev1.Container, statuses ...corev1.ContainerStatus) *corev1.Pod {
		return &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "tracebloc",
			Labels: map[string]string{"app": app}},
			Spec: corev1.PodSpec{Containers: containers}, Status: corev1.PodStatus{Phase: corev1.PodRunning,
				ContainerStatuses: statuses}}
	}
	imageID := func(container, repo, digest string) corev1.ContainerStatus {
		return corev1.ContainerStatus{Name: container, ImageID: repo + "@" + digest}
	}
	c.kube = fake.NewClientset(jobsManager, workers, statusCronJob(),
		pod("jm-1", "jobs-manager", jobsManager.Spec.Template.Spec.Containers,
			imageID("api", "docker.io/tracebloc/jobs-manager", d["jobs-manager"]), imageID("pods-monitor",
				"docker.io/tracebloc/pods-monitor", d["old-pods-monitor"])),
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
		now:      func() time.Time { return statusNow },
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
	cfg := writeConfig(t, strings.Join(strings.Split(statusConfig, "\n")[:8],
		"\n")+"\n") // jobs-manager, pods-monitor, ingestor
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
	if r := rows[2]; r.RunningFrom != "env" || len(r.Running) != 1 || r.Running[0] != c.digest["old-ingestor"] ||
		r.State != refresher.ViewSoaking {
		t.Errorf("ingestor %+v: want the Deployment's env, soaking", r)
	}
}

// A refresher that stopped turns every floating row stale (exit 3), since its last successful
// tick, the state it would show otherwise in detail and why in refresher (the table's last
// line); a failed row stays failed (exit 1) and a pinned one pinned.
func TestStatusStale(t *testing.T) {
	lines := strings.Split(statusConfig, "\n")
	// jobs-manager (current), pods-monitor (behind), ingestor (soaking), cache (waiting), pinned.
	healthy := strings.Join(append(lines[:8:8], lines[9], lines[11]), "\n") + "\n"
	withGone := strings.Join(append(lines[:6:6], lines[10]), "\n") + "\n" // jobs-manager, gone
	suspend := func(cj *batchv1.CronJob) { yes := true; cj.Spec.Suspend = &yes }
	monthOld := func(cj *batchv1.CronJob) {
		cj.Status.LastSuccessfulTime.Time = cj.Status.LastSuccessfulTime.AddDate(0, 0, -30)
		cj.Status.LastScheduleTime.Time = cj.Status.LastScheduleTime.AddDate(0, 0, -30)
	}
	failing := func(cj *batchv1.CronJob) { cj.Status.LastSuccessfulTime.Time = statusNow.Add(-time.Hour) }
	for _, tc := range []struct {
		name     string
		cfg      string
		edit     func(*batchv1.CronJob) // nil: the CronJob is deleted
		want     int
		golden   string
		lastTick string
		note     string
	}{
		{name: "suspended", cfg: healthy, edit: suspend, want: exitBehind, golden: "status-stale.txt",
			lastTick: "2026-07-01T11:53:00Z",
			note: "CronJob tracebloc/stg-image-refresh is suspended (spec.suspend): the refresher does not run; last " +
				"successful tick 2026-07-01T11:53:00Z"},
		{name: "missing", cfg: healthy, want: exitBehind,
			note: "CronJob tracebloc/stg-image-refresh not found: nothing runs the refresher"},
		{name: "a soak that ended 30 days ago", cfg: healthy, edit: monthOld, want: exitBehind,
			lastTick: "2026-06-01T11:53:00Z",
			note: `CronJob tracebloc/stg-image-refresh: no successful tick since 2026-06-01T11:53:00Z, 3 or more ` +
				`scheduled runs ("7,22,37,52 * * * *") ago; last scheduled 2026-06-01T11:52:00Z`},
		{name: "scheduled but failing for an hour", cfg: healthy, edit: failing, want: exitBehind,
			lastTick: "2026-07-01T11:00:00Z",
			note:     "no successful tick since 2026-07-01T11:00:00Z, 3 or more scheduled runs"},
		{name: "a failed row stays failed", cfg: withGone, edit: suspend, want: cli.ExitFailed,
			lastTick: "2026-07-01T11:53:00Z", note: "is suspended"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newStatusCluster(t)
			if tc.edit == nil {
				if err := c.kube.BatchV1().CronJobs("tracebloc").Delete(t.Context(), "stg-image-refresh",
					metav1.DeleteOptions{}); err != nil {
					t.Fatal(err)
				}
			} else {
				cj := statusCronJob()
				tc.edit(cj)
				if _, err := c.kube.BatchV1().CronJobs("tracebloc").Update(t.Context(), cj, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
			}
			cfg := writeConfig(t, tc.cfg)
			var stdout, stderr strings.Builder
			if code := c.run(t, &stdout, &stderr, "status", "--config", cfg); code != tc.want {
				t.Fatalf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tc.want, c.mask(stdout.String()), stderr.String())
			}
			table := strings.Split(strings.TrimSuffix(stdout.String(), "\n"), "\n")
			if last := table[len(table)-1]; !strings.HasPrefix(last, "refresher: ") || !strings.Contains(last, tc.note) {
				t.Errorf("the table's last line %q, want the note %q", last, tc.note)
			}
			if tc.golden != "" {
				golden.Assert(t, filepath.Join("testdata", tc.golden), []byte(c.mask(stdout.String())))
			}
			stdout.Reset()
			c.run(t, &stdout, &stderr, "status", "--config", cfg, "-o", "json")
			var rows []refresher.StatusRow
			if err := json.Unmarshal([]byte(stdout.String()), &rows); err != nil {
				t.Fatal(err)
			}
			for _, r := range rows {
				want, since, detail := refresher.ViewStale, tc.lastTick, "otherwise "
				switch r.Image {
				case "pinned":
					if r.State != refresher.ViewPinned || r.Refresher != "" {
						t.Errorf("pinned: %s, refresher %q; want pinned, no note", r.State, r.Refresher)
					}
					continue
				case "gone":
					want, since, detail = refresher.ViewFailed, "", "reading Deployment"
				}
				if r.State != want || r.Since != since || !strings.HasPrefix(r.Detail, detail) || !strings.Contains(r.Refresher,
					tc.note) {
					t.Errorf("%s: %s since %q, detail %q, refresher %q; want %s since %q, detail %q…, refresher …%q…",
						r.Image, r.State, r.Since, r.Detail, r.Refresher, want, since, detail, tc.note)
				}
			}
		})
	}
}

// The state the row would show otherwise stays in its detail, with the status error.
func TestStatusStaleDetail(t *testing.T) {
	c := newStatusCluster(t)
	cj := statusCronJob()
	yes := true
	cj.Spec.Suspend = &yes
	if _, err := c.kube.BatchV1().CronJobs("tracebloc").Update(t.Context(), cj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr strings.Builder
	c.run(t, &stdout, &stderr, "status", "--config", writeConfig(t, statusConfig), "-o", "json")
	var rows []refresher.StatusRow
	if err := json.Unmarshal([]byte(stdout.String()), &rows); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"jobs-manager": "otherwise current since 2026-07-01T09:00:00Z",
		"pods-monitor": "otherwise behind",
		"ingestor":     "otherwise soaking since 2026-07-01T11:40:00Z",
		"consumer":     "otherwise quarantined since 2026-07-01T10:15:00Z",
		"cache": "otherwise waiting since 2026-07-01T11:52:00Z; Deployment tracebloc/stg-workers: its rollout is " +
			"not complete",
	}
	for _, r := range rows {
		if w, ok := want[r.Image]; ok && r.Detail != w {
			t.Errorf("%s: detail %q, want %q", r.Image, r.Detail, w)
		}
	}
}

// Without get on CronJobs the view is what it was, and says the last tick is unknown: only
// positive evidence makes a row stale.
func TestStatusWithoutCronJobGet(t *testing.T) {
	c := newStatusCluster(t)
	cj := statusCronJob()
	yes := true
	cj.Spec.Suspend = &yes // would be stale, could the view see it
	if _, err := c.kube.BatchV1().CronJobs("tracebloc").Update(t.Context(), cj, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	c.kube.PrependReactor("get", "cronjobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewForbidden(batchv1.Resource("cronjobs"), "stg-image-refresh", errors.New("no get"))
	})
	lines := strings.Split(statusConfig, "\n")
	cfg := writeConfig(t, strings.Join(append(lines[:6:6], lines[7]), "\n")+"\n") // jobs-manager, ingestor
	var stdout, stderr strings.Builder
	if code := c.run(t, &stdout, &stderr, "status", "--config", cfg); code != cli.ExitOK {
		t.Fatalf("exit %d, want 0 (current and soaking)\nstdout:\n%s\nstderr:\n%s", code, c.mask(stdout.String()),
			stderr.String())
	}
	golden.Assert(t, filepath.Join("testdata", "status-cronjob-forbidden.txt"), []byte(c.mask(stdout.String())))
	stdout.Reset()
	c.run(t, &stdout, &stderr, "status", "--config", cfg, "-o", "json")
	var rows []refresher.StatusRow
	if err := json.Unmarshal([]byte(stdout.String()), &rows); err != nil || len(rows) != 2 {
		t.Fatalf("rows %v: %v", rows, err)
	}
	for i, want := range []refresher.ViewState{refresher.ViewCurrent, refresher.ViewSoaking} {
		if r := rows[i]; r.State != want || !strings.HasPrefix(r.Refresher,
			"last tick unknown (grant get on cronjobs.batch to see it)") {
			t.Errorf("%s: %s, refresher %q; want %s, last tick unknown", r.Image, r.State, r.Refresher, want)
		}
	}
}
