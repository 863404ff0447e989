package refresher

import (
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/refresher/kube/clientset"
	"github.com/tracebloc/image-refresh/refresher/registry"
	"github.com/tracebloc/image-refresh/refresher/registry/registrytest"
)

const (
	agentsNamespace = "node-agents"
	agentRepo       = "docker.io/tracebloc/resource-monitor"
	exporterRepo    = "ghcr.io/tracebloc/exporter"
)

// agentConfig refreshes two containers of the DaemonSet node-agents/agent from a config in namespace tracebloc:
// agent by a rollout restart, exporter by set-image.
func agentConfig(t *testing.T) *config.RefreshConfig {
	t.Helper()
	cfg, err := config.Parse([]byte(`apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: refresher, namespace: tracebloc}
spec:
  images:
  - {name: agent, repository: ` + agentRepo + `, tag: prod, action: rollout-restart, annotation: x.io/agent,
     target: {kind: DaemonSet, name: agent, namespace: ` + agentsNamespace + `, container: agent}}
  - {name: exporter, repository: ` + exporterRepo + `, tag: prod, action: set-image, annotation: x.io/exporter,
     target: {kind: DaemonSet, name: agent, namespace: ` + agentsNamespace + `, container: exporter}}
`))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}

func agentDaemonSet() *appsv1.DaemonSet {
	labels := map[string]string{"app": "agent"}
	return &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "agent", Namespace: agentsNamespace, Generation: 1},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "agent", Image: agentRepo + ":prod", ImagePullPolicy: corev1.PullAlways},
					{Name: "exporter", Image: exporterRepo + ":prod", ImagePullPolicy: corev1.PullIfNotPresent},
				}},
			},
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{Type: appsv1.RollingUpdateDaemonSetStrategyType},
		},
		Status: appsv1.DaemonSetStatus{ObservedGeneration: 1, DesiredNumberScheduled: 2, CurrentNumberScheduled: 2,
			UpdatedNumberScheduled: 2, NumberReady: 2, NumberAvailable: 2},
	}
}

// A DaemonSet in another namespace than the config's is refreshed like a Deployment: the first tick records, a
// push restarts it and pins the set-image container in one patch of the DaemonSet, Events are about the DaemonSet
// in its namespace, and a steady tick writes nothing.
func TestRunDaemonSetInAnotherNamespace(t *testing.T) {
	cfg, srv := agentConfig(t), registrytest.New(t)
	for _, repo := range []string{agentRepo, exporterRepo} {
		if _, err := srv.PushImage(repo + ":prod"); err != nil {
			t.Fatal(err)
		}
	}
	kube := fake.NewClientset(agentDaemonSet())
	tick := func(want ...Decision) []string {
		t.Helper()
		kube.ClearActions()
		report, err := Run(context.Background(), cfg, Options{
			Kube:     clientset.New(kube),
			Registry: registry.Options{Transport: srv.Transport(), Keychain: authn.NewMultiKeychain()},
			Logger:   slog.New(slog.DiscardHandler),
			Now:      func() time.Time { return clock },
		})
		if err != nil {
			t.Fatal(err)
		}
		for i, w := range want {
			if got := report.Images[i]; got.Decision != w || got.Target != "DaemonSet "+agentsNamespace+"/agent" {
				t.Fatalf("%s: %s on %q (%v), want %s", got.Name, got.Decision, got.Target, got.Err, w)
			}
		}
		var patches []string
		for _, a := range kube.Actions() {
			if p, ok := a.(k8stesting.PatchAction); ok && a.GetResource().Resource != "events" {
				if a.GetResource().Resource != "daemonsets" || p.GetNamespace() != agentsNamespace || p.GetName() != "agent" {
					t.Errorf("patched %s %s/%s", a.GetResource().Resource, p.GetNamespace(), p.GetName())
				}
				patches = append(patches, string(p.GetPatch()))
			}
		}
		return patches
	}
	daemonSet := func() *appsv1.DaemonSet {
		ds, err := kube.AppsV1().DaemonSets(agentsNamespace).Get(context.Background(), "agent", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}

	if patches := tick(DecisionRecord, DecisionRecord); len(patches) != 1 || strings.Contains(patches[0], `"template"`) {
		t.Fatalf("first observation patched %q; want one patch of annotations", patches)
	}
	agent, err := srv.PushImage(agentRepo + ":prod")
	if err != nil {
		t.Fatal(err)
	}
	exporter, err := srv.PushIndex(exporterRepo + ":prod")
	if err != nil {
		t.Fatal(err)
	}
	if patches := tick(DecisionRestart, DecisionUpdateImage); len(patches) != 1 {
		t.Fatalf("a push patched %q; want one patch", patches)
	}
	ds := daemonSet()
	if ds.Annotations["x.io/agent"] != agent || ds.Annotations["x.io/exporter"] != exporter ||
		ds.Spec.Template.Annotations[config.RestartedAtAnnotation] == "" ||
		ds.Spec.Template.Spec.Containers[1].Image != exporterRepo+"@"+exporter ||
		ds.Spec.Template.Spec.Containers[0].Image != agentRepo+":prod" {
		t.Errorf("after the push: annotations %v, template annotations %v, containers %+v",
			ds.Annotations, ds.Spec.Template.Annotations, ds.Spec.Template.Spec.Containers)
	}
	events, err := kube.EventsV1().Events(agentsNamespace).List(context.Background(), metav1.ListOptions{})
	if err != nil || len(events.Items) == 0 {
		t.Fatalf("no Events in %s (%v)", agentsNamespace, err)
	}
	for _, e := range events.Items {
		if r := e.Regarding; r.Kind != config.KindDaemonSet || r.Namespace != agentsNamespace || r.Name != "agent" {
			t.Errorf("Event %s regarding %+v", e.Reason, r)
		}
	}
	if patches := tick(DecisionUnchanged, DecisionUnchanged); len(patches) != 0 {
		t.Errorf("a steady tick patched %q", patches)
	}
}

// RolloutPending reads a DaemonSet's rollout through its view: pending until every desired pod is updated and
// available at the observed generation.
func TestRolloutPendingOfADaemonSet(t *testing.T) {
	for _, tc := range []struct {
		name   string
		status appsv1.DaemonSetStatus
		want   string
	}{
		{
			"complete",
			appsv1.DaemonSetStatus{
				ObservedGeneration:     1,
				DesiredNumberScheduled: 2,
				CurrentNumberScheduled: 2,
				UpdatedNumberScheduled: 2,
				NumberAvailable:        2,
			},
			"",
		},
		{
			"not observed",
			appsv1.DaemonSetStatus{
				ObservedGeneration:     0,
				DesiredNumberScheduled: 2,
				CurrentNumberScheduled: 2,
				UpdatedNumberScheduled: 2,
				NumberAvailable:        2,
			},
			"has not observed generation 1",
		},
		{
			"rolling",
			appsv1.DaemonSetStatus{
				ObservedGeneration:     1,
				DesiredNumberScheduled: 2,
				CurrentNumberScheduled: 2,
				UpdatedNumberScheduled: 1,
				NumberReady:            2,
				NumberAvailable:        1,
			},
			"2 desired replicas: 1 updated, 1 ready",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ds := agentDaemonSet()
			ds.Status = tc.status
			dep := contract.DaemonSetView(ds)
			got := RolloutPending(dep)
			if (got == "") != (tc.want == "") || !strings.Contains(got, tc.want) {
				t.Errorf("RolloutPending = %q; want %q", got, tc.want)
			}
			if completed := rolloutCompleted(dep); completed != (tc.want == "") {
				t.Errorf("rolloutCompleted = %v", completed)
			}
		})
	}
}
