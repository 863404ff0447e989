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
		r          ReleaseNamespace
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
		{name: "another namespace", r: Unseen, candidates: []Candidate{configMap("m", map[string]string{"refresh.yaml": inN})},
			want: ConfigNamespace, wantConfig: true},
		{name: "no namespace, release namespace unseen", r: Unseen,
			candidates: []Candidate{configMap("", map[string]string{"refresh.yaml": inN})}, want: ConfigFound, wantConfig: true},
		{name: "no namespace, release namespace defaulted", r: Defaulted,
			candidates: []Candidate{configMap("", map[string]string{"refresh.yaml": inN})}, want: ConfigNamespace, wantConfig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FindConfig(tt.candidates, tt.r)
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
		r                     ReleaseNamespace
		want                  []int
	}{
		{"Deployment", "web", "prod", Unseen, []int{1}}, // an exact match wins
		{"Deployment", "web", "stage", Unseen, []int{0}},
		{"Deployment", "web", "", Unseen, []int{0}},
		{"Deployment", "api", "", Unseen, []int{2}}, // another API group is another kind
		{"Deployment", "api", "stage", Unseen, nil},
		{"ConfigMap", "web", "", Unseen, nil},
		{"Deployment", "web", "stage", Defaulted, nil},
		{"Deployment", "api", "", Defaulted, nil},
		{"Deployment", "api", "prod", Defaulted, []int{2}},
	}
	for _, tt := range tests {
		got := Find(objects, id, tt.kind, tt.name, tt.namespace, tt.r)
		var want []Object
		for _, i := range tt.want {
			want = append(want, objects[i])
		}
		if !slices.Equal(got, want) {
			t.Errorf("Find(%s %s/%s, %d) = %v; want %v", tt.kind, tt.namespace, tt.name, tt.r, got, want)
		}
	}
}
