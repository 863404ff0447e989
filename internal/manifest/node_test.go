package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
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
			doc:  "apiVersion: v1\nkind: ConfigMap\nbase: &m {name: a, namespace: n}\nmetadata:\n  <<: *m\n  name: b\n  name: c\n",
			want: []string{"v1 ConfigMap/c ns=n"}},
		{name: "an item twice by alias",
			doc:     "apiVersion: v1\nkind: List\nx: &cm {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\nitems: [*cm, *cm]\n",
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

// helmApplies is what Helm's kube client applies from a stream, with the library code it runs:
// cli-runtime's StreamVisitor decodes every document with the unstructured scheme, and
// FlattenListVisitor (this is its loop; linking cli-runtime would make it a direct dependency)
// replaces each list by its items, then fails on an item that is a list itself, which
// meta.ExtractList cannot read ("not a list: no Items field").
func helmApplies(in string) ([]string, error) {
	var out []string
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(in), 4096)
	for {
		var ext runtime.RawExtension
		if err := dec.Decode(&ext); errors.Is(err, io.EOF) {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		if raw := bytes.TrimSpace(ext.Raw); len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
			continue
		}
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(ext.Raw, nil, nil)
		if err != nil {
			return nil, err
		}
		pending := []runtime.Object{obj}
		for i := 0; i < len(pending); i++ {
			if !meta.IsListType(pending[i]) {
				u := pending[i].(*unstructured.Unstructured)
				out = append(out, fmt.Sprintf("%s/%s", u.GetKind(), u.GetName()))
				continue
			}
			items, err := meta.ExtractList(pending[i])
			if err != nil {
				return nil, err
			}
			pending = append(pending, items...)
		}
	}
}

// TestObjectsAsHelmApplies holds Objects to what Helm applies, and marks what Helm refuses.
func TestObjectsAsHelmApplies(t *testing.T) {
	tests := []struct {
		name, doc string
		refused   bool // Helm fails the install
	}{
		{name: "document", doc: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a}\n"},
		{name: "List", doc: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- {apiVersion: apps/v1, kind: Deployment, metadata: {name: d}}\n"},
		{name: "typed list, kind-less items", doc: "apiVersion: apps/v1\nkind: DeploymentList\nitems:\n- metadata: {name: web}\n"},
		{name: "items: null", doc: "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\nitems: null\n"},
		{name: "empty list", doc: "apiVersion: v1\nkind: List\nitems: []\n"},
		{name: "list in a list", refused: true,
			doc: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n- apiVersion: v1\n  kind: List\n  items: [{apiVersion: v1, kind: ConfigMap, metadata: {name: b}}]\n"},
		{name: "empty list in a list", refused: true,
			doc: "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: List, items: []}\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			helm, err := helmApplies(tt.doc)
			if refused := err != nil; refused != tt.refused {
				t.Fatalf("Helm refuses: %v (%v); the table says %v", refused, err, tt.refused)
			}
			objs, err := Objects(parse(t, tt.doc))
			if err != nil {
				t.Fatal(err)
			}
			var ours []string
			marked := false
			for _, o := range objs {
				ours = append(ours, o.Kind+"/"+o.Name)
				marked = marked || o.List
			}
			if marked != tt.refused {
				t.Errorf("an object marked List: %v; Helm refuses: %v", marked, tt.refused)
			}
			if !tt.refused && !slices.Equal(ours, helm) {
				t.Errorf("Objects lists %q, Helm applies %q", ours, helm)
			}
		})
	}
}
