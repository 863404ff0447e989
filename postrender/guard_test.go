package postrender

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	admissionv1 "k8s.io/api/admissionregistration/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract/guard"
)

// TestGuardInjected: the guard's policy and binding follow the CronJob, cluster-scoped and
// labelled, with the spec guard.For generates; running on the output changes nothing; with
// admissionGuard: false an earlier run's guard is dropped and none is added.
func TestGuardInjected(t *testing.T) {
	in := refreshConfigMap(strings.Replace(refreshBody("", ""), "name: app-refresh}",
		"name: app-refresh, namespace: prod}", 1)) + webDeployment(floatingContainer)
	out, err := Render([]byte(in), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s, err := scan(out)
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Parse([]byte(strings.Replace(refreshBody("", ""), "name: app-refresh}",
		"name: app-refresh, namespace: prod}", 1)))
	if err != nil {
		t.Fatal(err)
	}
	wantPolicy, wantBinding := guard.For(cfg, "prod", "app-refresh")
	var policies, bindings int
	for _, obj := range s.objects {
		switch {
		case obj.isKind("ValidatingAdmissionPolicy"):
			policies++
			var got admissionv1.ValidatingAdmissionPolicy
			if err := s.load(obj, &got); err != nil {
				t.Fatal(err)
			}
			if got.Name != "app-refresh-guard.prod" || got.Namespace != "" || got.Labels[ManagedByLabel] != ManagedByValue {
				t.Errorf("policy metadata %+v", got.ObjectMeta)
			}
			if !equalJSON(t, got.Spec, wantPolicy.Spec) {
				t.Errorf("the rendered policy's spec is not guard.For's")
			}
		case obj.isKind("ValidatingAdmissionPolicyBinding"):
			bindings++
			var got admissionv1.ValidatingAdmissionPolicyBinding
			if err := s.load(obj, &got); err != nil {
				t.Fatal(err)
			}
			if got.Name != "app-refresh-guard.prod" || !equalJSON(t, got.Spec, wantBinding.Spec) {
				t.Errorf("binding %+v, want the spec %+v", got, wantBinding.Spec)
			}
		}
	}
	if policies != 1 || bindings != 1 {
		t.Fatalf("%d policies and %d bindings injected, want one of each:\n%s", policies, bindings, out)
	}

	again, err := Render(out, Options{})
	if err != nil || !bytes.Equal(again, out) {
		t.Errorf("a second run changed the output (err %v)", err)
	}

	off := strings.Replace(string(out), "    spec:\n", "    spec:\n      job: {admissionGuard: false}\n", 1)
	noGuard, err := Render([]byte(off), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(noGuard), "ValidatingAdmissionPolicy") {
		t.Errorf("admissionGuard: false kept or added a guard:\n%s", noGuard)
	}
	if !strings.Contains(string(noGuard), "kind: CronJob") {
		t.Errorf("admissionGuard: false lost the CronJob")
	}
}

func equalJSON(t *testing.T, a, b any) bool {
	t.Helper()
	ja, err := json.Marshal(a)
	if err != nil {
		t.Fatal(err)
	}
	jb, err := json.Marshal(b)
	if err != nil {
		t.Fatal(err)
	}
	return bytes.Equal(ja, jb)
}
