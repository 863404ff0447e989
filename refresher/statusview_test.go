package refresher

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/refresher/kube/clientset"
)

func TestViewState(t *testing.T) {
	r, old := digestOf('1'), digestOf('2')
	for _, tc := range []struct {
		name      string
		running   []string
		recorded  string
		st        Status
		want      ViewState
		wantSince string
	}{
		{
			name:      "current",
			running:   []string{r},
			recorded:  r,
			st:        Status{State: StateOK, Since: "s"},
			want:      ViewCurrent,
			wantSince: "s",
		},
		{name: "behind: pods run the old digest", running: []string{old}, recorded: r, want: ViewBehind},
		{name: "behind: a rollout half done", running: []string{r, old}, recorded: r, want: ViewBehind},
		{name: "nothing tells what runs: the record does", recorded: old, want: ViewBehind},
		{name: "nothing tells, record current", recorded: r, want: ViewCurrent},
		{
			name:      "soaking the registry digest",
			running:   []string{old},
			st:        Status{State: StateSoaking, Pending: r, PendingSince: "p", Since: "s"},
			want:      ViewSoaking,
			wantSince: "p",
		},
		{
			name:    "soaking another digest: the registry moved on",
			running: []string{old},
			st:      Status{State: StateSoaking, Pending: old, PendingSince: "p"},
			want:    ViewBehind,
		},
		{
			name:      "waiting",
			running:   []string{old},
			st:        Status{State: StateWaiting, Since: "w"},
			want:      ViewWaiting,
			wantSince: "w",
		},
		{
			name:      "quarantined registry digest",
			running:   []string{old},
			st:        Status{State: StateQuarantined, Quarantined: r, Since: "q"},
			want:      ViewQuarantined,
			wantSince: "q",
		},
		{
			name:    "quarantine of an older digest",
			running: []string{r},
			st:      Status{State: StateOK, Quarantined: old},
			want:    ViewCurrent,
		},
		{
			name:      "failed last tick",
			running:   []string{r},
			st:        Status{State: StateFailed, Since: "f"},
			want:      ViewFailed,
			wantSince: "f",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := &StatusRow{Registry: r, Running: tc.running, Recorded: tc.recorded}
			got, since := viewState(row, tc.st)
			if got != tc.want || since != tc.wantSince {
				t.Errorf("viewState = %s since %q, want %s since %q", got, since, tc.want, tc.wantSince)
			}
		})
	}
}

func TestRunning(t *testing.T) {
	a, b := digestOf('a'), digestOf('b')
	restart := config.Image{Action: config.ActionRolloutRestart, Target: config.Target{Container: "api"}}
	setEnv := config.Image{Action: config.ActionSetEnv, Env: "D", Target: config.Target{Container: "api"}}
	dep := func(env string) *appsv1.Deployment {
		return &appsv1.Deployment{
			Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{Containers: []corev1.Container{
				{Name: "api", Env: []corev1.EnvVar{{Name: "D", Value: env}}},
			}}}},
		}
	}
	setImage := config.Image{
		Action:     config.ActionSetImage,
		Repository: "docker.io/x/api",
		Target:     config.Target{Container: "api"},
	}
	pinnedDep := func(d string) *appsv1.Deployment {
		dp := dep("")
		dp.Spec.Template.Spec.Containers[0].Image = "docker.io/x/api@" + d
		return dp
	}
	pod := func(imageID, env string) corev1.Pod {
		return corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"},
			Spec: corev1.PodSpec{
				Containers: []corev1.Container{{Name: "api", Env: []corev1.EnvVar{{Name: "D", Value: env}}}, {Name: "other"}},
			},
			Status: corev1.PodStatus{
				ContainerStatuses: []corev1.ContainerStatus{{Name: "api", ImageID: imageID}, {Name: "other", ImageID: "x@" + b}},
			}}
	}
	for _, tc := range []struct {
		name     string
		img      config.Image
		dep      *appsv1.Deployment
		pods     []corev1.Pod
		want     []string
		wantFrom string
	}{
		{"restart: imageID repo digest", restart, dep(""), []corev1.Pod{pod("docker.io/x/api@"+a, "")}, []string{a}, "pods"},
		{
			"restart: docker-pullable prefix",
			restart,
			dep(""),
			[]corev1.Pod{pod("docker-pullable://x/api@"+a, "")},
			[]string{a},
			"pods",
		},
		{
			"restart: two pods, two digests, pod order",
			restart,
			dep(""),
			[]corev1.Pod{pod("x@"+b, ""), pod("x@"+a, ""), pod("x@"+b, "")},
			[]string{b, a},
			"pods",
		},
		{
			"restart: an image ID without repo digest tells nothing",
			restart,
			dep(""),
			[]corev1.Pod{pod("sha256:"+a[7:], "")},
			nil,
			"",
		},
		{"restart: no pods", restart, dep(""), nil, nil, ""},
		{"set-env: the pods' env", setEnv, dep(b), []corev1.Pod{pod("x@"+b, a)}, []string{a}, "pods"},
		{"set-env: no pods, the Deployment's env", setEnv, dep(b), nil, []string{b}, "env"},
		{"set-env: no digest anywhere", setEnv, dep("latest"), nil, nil, ""},
		{
			"set-image: the pods' imageID",
			setImage,
			pinnedDep(b),
			[]corev1.Pod{pod("docker.io/x/api@"+a, "")},
			[]string{a},
			"pods",
		},
		{"set-image: no pods, the template's digest", setImage, pinnedDep(b), nil, []string{b}, "image"},
		{"set-image: no pods, the template runs the tag", setImage, dep(""), nil, nil, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, from := running(tc.dep, tc.pods, tc.img)
			if !slices.Equal(got, tc.want) || from != tc.wantFrom {
				t.Errorf("running = %v from %q, want %v from %q", got, from, tc.want, tc.wantFrom)
			}
		})
	}
}

func TestApplyRun(t *testing.T) {
	tick := time.Date(2026, time.July, 1, 11, 53, 0, 0, time.UTC)
	stale := runVerdict{Stale: true, LastTick: tick, Note: "suspended"}
	for _, tc := range []struct {
		name string
		row  StatusRow
		v    runVerdict
		want StatusRow
	}{
		{
			"fresh: unchanged",
			StatusRow{State: ViewSoaking, Since: "s"},
			runVerdict{LastTick: tick},
			StatusRow{State: ViewSoaking, Since: "s"},
		},
		{"unknown: a note, the state kept", StatusRow{State: ViewBehind, Detail: "d"}, runVerdict{Note: "last tick unknown"},
			StatusRow{State: ViewBehind, Detail: "d", Refresher: "last tick unknown"}},
		{
			"stale: since the last tick, the state otherwise in detail",
			StatusRow{State: ViewSoaking, Since: "s"},
			stale,
			StatusRow{
				State:     ViewStale,
				Since:     "2026-07-01T11:53:00Z",
				Detail:    "otherwise soaking since s",
				Refresher: "suspended",
			},
		},
		{"stale: the detail kept after", StatusRow{State: ViewWaiting, Since: "w", Detail: "rollout"}, stale,
			StatusRow{
				State:     ViewStale,
				Since:     "2026-07-01T11:53:00Z",
				Detail:    "otherwise waiting since w; rollout",
				Refresher: "suspended",
			}},
		{"stale without a tick: no since", StatusRow{State: ViewBehind}, runVerdict{Stale: true, Note: "not found"},
			StatusRow{State: ViewStale, Detail: "otherwise behind", Refresher: "not found"}},
		{"a failed row stays failed", StatusRow{State: ViewFailed, Since: "f", Detail: "403"}, stale,
			StatusRow{State: ViewFailed, Since: "f", Detail: "403", Refresher: "suspended"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			row := tc.row
			applyRun(&row, tc.v)
			if !reflect.DeepEqual(row, tc.want) {
				t.Errorf("applyRun = %+v, want %+v", row, tc.want)
			}
		})
	}
}

func TestViewExit(t *testing.T) {
	rows := func(states ...ViewState) []StatusRow {
		out := make([]StatusRow, len(states))
		for i, s := range states {
			out[i].State = s
		}
		return out
	}
	for _, tc := range []struct {
		rows                  []StatusRow
		failed, behind, stale bool
	}{
		{rows(ViewCurrent, ViewSoaking, ViewWaiting, ViewPinned), false, false, false},
		{rows(ViewCurrent, ViewBehind), false, true, false},
		{rows(ViewQuarantined), false, true, false},
		{rows(ViewStale, ViewPinned), false, false, true},
		{rows(ViewStale, ViewFailed), true, false, true},
	} {
		failed, behind, stale := ViewExit(tc.rows)
		if failed != tc.failed || behind != tc.behind || stale != tc.stale {
			t.Errorf("ViewExit(%v) = %v %v %v, want %v %v %v", tc.rows, failed, behind, stale, tc.failed, tc.behind, tc.stale)
		}
	}
}

// The status view shows outside text — an annotation anyone who may edit the Deployment writes,
// a registry's error body, an API server's message — escaped: one line per row in the table,
// and JSON that decodes to the rows with no control character on any line.
func TestPrintViewIsOneLinePerRow(t *testing.T) {
	f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
		annotations, ingestor := f.current()
		annotations[jobsManagerKey] = hostile // not a digest: shown as it is
		raw, err := json.Marshal(hostile)
		if err != nil {
			t.Fatal(err)
		}
		annotations[statusKey("ingestor")] = `{"state":"waiting","since":"2026-07-01T11:00:00Z","error":` + string(raw) + `}`
		return deployment(annotations, ingestor)
	})
	opts := f.options()
	f.failManifests(&opts, "docker.io/tracebloc/pods-monitor")
	f.kube.PrependReactor("get", "cronjobs", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, apierrors.NewInternalError(fmt.Errorf("%s", hostile))
	})
	rows, err := View(
		context.Background(),
		f.cfg,
		ViewOptions{Kube: clientset.New(f.kube), Registry: opts.Registry, Now: opts.Now},
	)
	if err != nil {
		t.Fatal(err)
	}
	if rows[0].Recorded != hostile || !strings.Contains(rows[1].Detail, "boom\npatch") || rows[2].Detail != hostile ||
		!strings.Contains(rows[0].Refresher, hostile) {
		t.Fatalf("rows do not hold the outside text: %+v", rows)
	}

	var table strings.Builder
	if err := PrintView(&table, rows, false); err != nil {
		t.Fatal(err)
	}
	oneLinePerRecord(t, table.String(), "IMAGE ", "jobs-manager ", "pods-monitor ", "ingestor ", "refresher: ")

	var out strings.Builder
	if err := PrintView(&out, rows, true); err != nil {
		t.Fatal(err)
	}
	for i, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
		if strings.ContainsFunc(line, escaped) || strings.HasPrefix(strings.TrimSpace(line), "patch") {
			t.Errorf("JSON line %d %q", i+1, line)
		}
	}
	var back []StatusRow
	if err := json.Unmarshal([]byte(out.String()), &back); err != nil || !reflect.DeepEqual(back, rows) {
		t.Errorf("the JSON decodes to %+v (%v), want the rows %+v", back, err, rows)
	}
}
