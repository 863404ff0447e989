package manifest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestFindConfig(t *testing.T) {
	const valid = "apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\nmetadata: {name: r}\n" +
		"spec:\n  images: [{name: a, repository: docker.io/x/a, action: rollout-restart, target: {name: a, container: a}, annotation: x.io/a}]\n"
	inN := strings.Replace(valid, "{name: r}", "{name: r, namespace: n}", 1)
	configMap := func(namespace string, data map[string]string) Candidate {
		return Candidate{Namespace: namespace, Load: func() (*corev1.ConfigMap, error) {
			return &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: namespace}, Data: data}, nil
		}}
	}
	hook := configMap("", map[string]string{"refresh.yaml": valid})
	hook.Hook = "pre-install"
	unreadable := Candidate{Load: func() (*corev1.ConfigMap, error) { return nil, errors.New("bad") }}
	tests := []struct {
		name       string
		candidates []Candidate
		unseen     bool
		want       ConfigRule
		wantConfig bool
	}{
		{name: "none", want: ConfigFound},
		{name: "one", candidates: []Candidate{configMap("", map[string]string{"refresh.yaml": valid})}, want: ConfigFound, wantConfig: true},
		{name: "several", candidates: []Candidate{configMap("", nil), configMap("", nil)}, want: ConfigSeveral},
		{name: "a hook", candidates: []Candidate{hook}, want: ConfigHook},
		{name: "unreadable", candidates: []Candidate{unreadable}, want: ConfigUnreadable},
		{name: "no key", candidates: []Candidate{configMap("", map[string]string{"other": ""})}, want: ConfigNoKey},
		{name: "invalid", candidates: []Candidate{configMap("", map[string]string{"refresh.yaml": "kind: x\n"})}, want: ConfigInvalid},
		{name: "another namespace", candidates: []Candidate{configMap("m", map[string]string{"refresh.yaml": inN})},
			want: ConfigNamespace, wantConfig: true},
		{name: "no namespace, release namespace unseen", unseen: true,
			candidates: []Candidate{configMap("", map[string]string{"refresh.yaml": inN})}, want: ConfigFound, wantConfig: true},
		{name: "no namespace, release namespace known",
			candidates: []Candidate{configMap("", map[string]string{"refresh.yaml": inN})}, want: ConfigNamespace, wantConfig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FindConfig(tt.candidates, tt.unseen)
			if got.Rule != tt.want || (got.Config != nil) != tt.wantConfig {
				t.Errorf("rule %d, config %v (err %v); want rule %d, config %v", got.Rule, got.Config != nil, got.Err, tt.want, tt.wantConfig)
			}
		})
	}
}

func TestFind(t *testing.T) {
	objects := []Object{
		{APIVersion: "apps/v1", Kind: "Deployment", Name: "web"},
		{APIVersion: "apps/v1", Kind: "Deployment", Name: "web", Namespace: "prod"},
		{APIVersion: "apps/v1", Kind: "Deployment", Name: "api", Namespace: "prod"},
		{APIVersion: "example.com/v1", Kind: "Deployment", Name: "api"},
	}
	id := func(o Object) Object { return o }
	tests := []struct {
		kind, name, namespace string
		want                  []int
	}{
		{"Deployment", "web", "prod", []int{1}}, // exact wins
		{"Deployment", "web", "stage", []int{0}},
		{"Deployment", "web", "", []int{0}},
		{"Deployment", "api", "stage", nil},
		{"Deployment", "api", "", []int{2}}, // another API group is another kind
		{"ConfigMap", "web", "", nil},
	}
	for _, tt := range tests {
		got := Find(objects, id, tt.kind, tt.name, tt.namespace)
		var want []Object
		for _, i := range tt.want {
			want = append(want, objects[i])
		}
		if !slices.Equal(got, want) {
			t.Errorf("Find(%s %s/%s) = %v; want %v", tt.kind, tt.namespace, tt.name, got, want)
		}
	}
}
