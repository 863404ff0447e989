package manifest

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

func parse(t *testing.T, doc string) *yaml.Node {
	t.Helper()
	var n yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &n); err != nil {
		t.Fatal(err)
	}
	return &n
}

// show is an object as the tests compare it: kind/name, then what else is set.
func show(o Object) string {
	s := o.Kind + "/" + o.Name
	if o.APIVersion != "" {
		s = o.APIVersion + " " + s
	}
	if o.Namespace != "" {
		s += " ns=" + o.Namespace
	}
	if o.Item > 0 {
		s += " " + ItemPath(o.Item-1)
	}
	if o.Hook != "" {
		s += " hook=" + o.Hook
	}
	if o.Filename != "" {
		s += " file=" + o.Filename
	}
	if o.ConfigLabel {
		s += " config"
	}
	if o.ManagedBy != "" {
		s += " by=" + o.ManagedBy
	}
	if o.List {
		s += " list"
	}
	return s
}

func TestObjects(t *testing.T) {
	tests := []struct {
		name, doc string
		want      []string
		wantErr   string
	}{
		{name: "an object",
			doc: `
apiVersion: v1
kind: ConfigMap
metadata:
  name: c
  namespace: n
  labels: {image-refresh.io/config: "true", app.kubernetes.io/managed-by: image-refresh}
  annotations: {helm.sh/hook: pre-install, postrenderer.helm.sh/postrender-filename: c/templates/c.yaml}
`,
			want: []string{"v1 ConfigMap/c ns=n hook=pre-install file=c/templates/c.yaml config by=image-refresh"}},
		{name: "a list stands for its items; kind-less items take its kind less List, hookless its hook",
			doc: `
apiVersion: v1
kind: ConfigMapList
metadata: {annotations: {helm.sh/hook: post-install}}
items:
- metadata: {name: a}
- {apiVersion: v1, kind: Secret, metadata: {name: s, annotations: {helm.sh/hook: pre-install}}}
- not a mapping
`,
			want: []string{"v1 ConfigMap/a items[0] hook=post-install", "v1 Secret/s items[1] hook=pre-install"}},
		{name: "a list in a list is one object, marked: Helm refuses it",
			doc: `
apiVersion: v1
kind: List
items:
- apiVersion: v1
  kind: List
  items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}]
`,
			want: []string{"v1 List/ items[0] list"}},
		{name: "items: null is an empty list", doc: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\nitems: null\n"},
		{name: "merge keys and the last duplicate key, as Kubernetes reads them",
			doc: "apiVersion: v1\nkind: ConfigMap\nbase: &m {name: a, namespace: n}\n" +
				"metadata:\n  <<: *m\n  name: b\n  name: c\n",
			want: []string{"v1 ConfigMap/c ns=n"}},
		{name: "an item twice by alias",
			doc: "apiVersion: v1\nkind: List\nx: &cm {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n" +
				"items: [*cm, *cm]\n",
			wantErr: "items[1] is an alias of the same object as items[0]"},
		{name: "not a mapping", doc: "- a\n", wantErr: "document is a YAML sequence, not a mapping"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Objects(parse(t, tt.doc))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v; want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, o := range objs {
				got = append(got, show(o))
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("objects\n  %q\nwant\n  %q", got, tt.want)
			}
		})
	}
}

// TestObjectsAsHelmApplies holds Objects to what Helm applies from a document, as Helm's kube
// client does it (cli-runtime v0.37's Builder with Unstructured and Flatten, run on each row):
// helm lists the objects applied, or is "refused" when the install fails. A list in a list fails
// it because Flatten goes one level down (see TestNestedListIsNotAList); Objects marks it.
func TestObjectsAsHelmApplies(t *testing.T) {
	tests := []struct{ name, doc, helm string }{
		{"document", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n", "ConfigMap/a"},
		{"List", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n" +
			"- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}\n", "ConfigMap/a Deployment/d"},
		{"kind-less items", "apiVersion: v1\nkind: ConfigMapList\nitems: [{metadata: {name: a}}]\n", "ConfigMap/a"},
		{"items: null", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\nitems: null\n", ""},
		{"empty list", "apiVersion: v1\nkind: List\nitems: []\n", ""},
		{"list in a list", "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n" +
			"- apiVersion: v1\n  kind: List\n  items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}]\n", "refused"},
		{"empty list in a list", "apiVersion: v1\nkind: List\nitems: [{apiVersion: v1, kind: List, items: []}]\n", "refused"},
		{"typed list in a list", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: rbac.authorization.k8s.io/v1\n" +
			"  kind: RoleBindingList\n  items: [{metadata: {name: b}}]\n", "refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := Objects(parse(t, tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			var ours []string
			refused := false
			for _, o := range objs {
				ours = append(ours, o.Kind+"/"+o.Name)
				refused = refused || o.List
			}
			got := strings.Join(ours, " ")
			if refused {
				got = "refused"
			}
			if got != tt.helm {
				t.Errorf("Objects: %q; Helm: %q", got, tt.helm)
			}
		})
	}
}

// TestNestedListIsNotAList: the unstructured decoder makes a list's items Unstructured objects,
// and an item with items of its own is a list type to Flatten, which then fails to extract it.
func TestNestedListIsNotAList(t *testing.T) {
	obj, _, err := unstructured.UnstructuredJSONScheme.Decode(
		[]byte(`{"apiVersion":"v1","kind":"List","items":[{"apiVersion":"v1","kind":"List","items":[]}]}`), nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	items, err := meta.ExtractList(obj)
	if err != nil || len(items) != 1 || !meta.IsListType(items[0]) {
		t.Fatalf("items %v, %v; want one item of a list type", items, err)
	}
	if _, err := meta.ExtractList(items[0]); err == nil || !strings.Contains(err.Error(), "not a list") {
		t.Errorf("extracting a nested list: %v; want Flatten's \"not a list\"", err)
	}
}
