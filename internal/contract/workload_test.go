package contract

import (
	"reflect"
	"testing"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/tracebloc/image-refresh/internal/config"
)

func daemonSetView(t *testing.T, y string) *appsv1.Deployment {
	t.Helper()
	dep, err := TargetView(config.KindDaemonSet, func(into any) error { return Decode([]byte(y), into) })
	if err != nil {
		t.Fatalf("TargetView: %v", err)
	}
	return dep
}

const daemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: node-agents, generation: 4, annotations: {x.io/a: "sha256:1"}}
spec:
  selector: {matchLabels: {app: agent}}
  minReadySeconds: 5
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "docker.io/x/agent:prod"}]
`

func TestDaemonSetView(t *testing.T) {
	for _, tc := range []struct {
		name, spec, status string
		// replicas are the view's desired, total, updated and ready; completed is the derived condition.
		replicas  [4]int32
		completed bool
		state     Rule
	}{
		{name: "complete", status: "{observedGeneration: 4, desiredNumberScheduled: 3, currentNumberScheduled: 3, " +
			"updatedNumberScheduled: 3, numberReady: 3, numberAvailable: 3}", replicas: [4]int32{3, 3, 3, 3}, completed: true},
		{name: "no node to run on", status: "{observedGeneration: 4}", completed: true},
		{name: "generation not observed", status: "{observedGeneration: 3, desiredNumberScheduled: 3, " +
			"currentNumberScheduled: 3, updatedNumberScheduled: 3, numberAvailable: 3}", replicas: [4]int32{3, 3, 3, 3}},
		{name: "rolling", status: "{observedGeneration: 4, desiredNumberScheduled: 3, currentNumberScheduled: 3, " +
			"updatedNumberScheduled: 1, numberReady: 3, numberAvailable: 2}", replicas: [4]int32{3, 3, 1, 2}},
		{name: "ready is not yet available", status: "{observedGeneration: 4, desiredNumberScheduled: 3, " +
			"currentNumberScheduled: 3, updatedNumberScheduled: 3, numberReady: 3, numberAvailable: 2}", replicas: [4]int32{3, 3,
			3, 2}},
		{name: "a misscheduled pod left", status: "{observedGeneration: 4, desiredNumberScheduled: 2, " +
			"currentNumberScheduled: 2, numberMisscheduled: 1, updatedNumberScheduled: 2, numberAvailable: 2}",
			replicas: [4]int32{2, 3, 2, 2}, completed: true},
		{name: "OnDelete", spec: "  updateStrategy: {type: OnDelete}\n", status: "{observedGeneration: 4}", completed: true,
			state: RuleTargetState},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dep := daemonSetView(t, daemonSet+tc.spec+"status: "+tc.status+"\n")
			if dep.Name != "agent" || dep.Namespace != "node-agents" || dep.Generation != 4 ||
				dep.Annotations["x.io/a"] != "sha256:1" ||
				dep.Spec.Template.Spec.Containers[0].Name != "agent" || dep.Spec.MinReadySeconds != 5 ||
				!reflect.DeepEqual(dep.Spec.Selector.MatchLabels, map[string]string{"app": "agent"}) {
				t.Errorf("view lost the DaemonSet's metadata or template: %+v", dep)
			}
			st := dep.Status
			if got := [4]int32{*dep.Spec.Replicas, st.Replicas, st.UpdatedReplicas, st.ReadyReplicas}; got != tc.replicas {
				t.Errorf("replicas (desired, total, updated, ready) = %v; want %v", got, tc.replicas)
			}
			if got := len(dep.Status.Conditions) == 1 &&
				dep.Status.Conditions[0].Reason == ReasonNewReplicaSetAvailable; got != tc.completed {
				t.Errorf("completed = %v; want %v", got, tc.completed)
			}
			wantRule(t, CheckTargetState(dep), tc.state, "the DaemonSet is updated OnDelete")
		})
	}
}

func TestTargetView(t *testing.T) {
	decode := func(y string) func(any) error { return func(into any) error { return Decode([]byte(y), into) } }
	dep, err := TargetView(config.KindDeployment,
		decode("apiVersion: apps/v1\nkind: Deployment\nmetadata: {name: web}\nspec: {paused: true}\n"))
	if err != nil || dep.Name != "web" || !dep.Spec.Paused || ViewKind(dep) != config.KindDeployment {
		t.Errorf("Deployment: %+v, %v", dep, err)
	}
	if dep := daemonSetView(t, daemonSet); ViewKind(dep) != config.KindDaemonSet {
		t.Errorf("DaemonSet view of kind %q", ViewKind(dep))
	}
	if _, err := TargetView("StatefulSet", decode("{}")); err == nil {
		t.Error("TargetView(StatefulSet) succeeded")
	}
}

func TestGrants(t *testing.T) {
	target := func(kind, ns, name string) Target {
		return Target{Key: config.TargetKey{Kind: kind, Namespace: ns, Name: name}}
	}
	for _, tc := range []struct {
		name    string
		targets []Target
		want    []Grant
	}{
		{"one namespace", []Target{target("Deployment", "tb", "a"), target("Deployment", "tb", "b"), target("Deployment",
			"tb", "a")},
			[]Grant{{"tb", []ResourceNames{{"Deployment", "deployments", []string{"a", "b"}}}}}},
		{"nothing floats: the Role for Events alone", nil, []Grant{{Namespace: "tb"}}},
		{"a DaemonSet in another namespace", []Target{target("DaemonSet", "agents", "mon"), target("Deployment", "tb", "a"),
			target("DaemonSet", "tb", "log")},
			[]Grant{
				{"tb", []ResourceNames{{"Deployment", "deployments", []string{"a"}}, {"DaemonSet", "daemonsets", []string{"log"}}}},
				{"agents", []ResourceNames{{"DaemonSet", "daemonsets", []string{"mon"}}}},
			}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Grants(tc.targets, "tb"); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("Grants = %+v\nwant %+v", got, tc.want)
			}
		})
	}
}
