package manifest

import (
	"errors"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestFindConfig(t *testing.T) {
	const valid = `apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: r}
spec:
  images:
  - {name: a, repository: docker.io/x/a, action: rollout-restart, target: {name: a, container: a}, annotation: x.io/a}
`
	inN := strings.Replace(valid, "{name: r}", "{name: r, namespace: n}", 1)
	candidate := func(namespace, hook string, data map[string]string) Candidate {
		return Candidate{Hook: hook, Namespace: namespace, Load: func() (*corev1.ConfigMap, error) {
			return &corev1.ConfigMap{Data: data}, nil
		}}
	}
	config := func(cfg string) map[string]string { return map[string]string{"refresh.yaml": cfg} }
	unreadable := Candidate{Load: func() (*corev1.ConfigMap, error) { return nil, errors.New("bad") }}
	tests := []struct {
		name       string
		candidates []Candidate
		r          ReleaseNamespace
		want       ConfigRule
		wantConfig bool
	}{
		{name: "none", want: ConfigFound},
		{name: "one", candidates: []Candidate{candidate("", "", config(valid))}, want: ConfigFound, wantConfig: true},
		{name: "several", candidates: []Candidate{candidate("", "", nil), candidate("", "", nil)}, want: ConfigSeveral},
		{name: "a hook", candidates: []Candidate{candidate("", "pre-install", config(valid))}, want: ConfigHook},
		{name: "unreadable", candidates: []Candidate{unreadable}, want: ConfigUnreadable},
		{name: "no key", candidates: []Candidate{candidate("", "", map[string]string{"x": ""})}, want: ConfigNoKey},
		{name: "invalid", candidates: []Candidate{candidate("", "", config("kind: x\n"))}, want: ConfigInvalid},
		{name: "another namespace", candidates: []Candidate{candidate("m", "", config(inN))},
			want: ConfigNamespace, wantConfig: true},
		{name: "no namespace, release namespace unseen", r: Unseen, candidates: []Candidate{candidate("", "", config(inN))},
			want: ConfigFound, wantConfig: true},
		{name: "no namespace, namespaces defaulted", r: Defaulted, candidates: []Candidate{candidate("", "", config(inN))},
			want: ConfigNamespace, wantConfig: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FindConfig(tt.candidates, tt.r)
			if got.Rule != tt.want || (got.Config != nil) != tt.wantConfig {
				t.Errorf("rule %d, config %v (%v); want rule %d, config %v",
					got.Rule, got.Config != nil, got.Err, tt.want, tt.wantConfig)
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
