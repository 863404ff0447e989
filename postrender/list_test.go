package postrender

import (
	"bytes"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tracebloc/image-refresh/internal/manifest"
)

// asList wraps documents of the test helpers ("---", "# Source:" line, body) into one list
// document of the given kind, as a chart template may render them.
func asList(apiVersion, kind string, docs ...string) string {
	bodies := make([]string, len(docs))
	for i, doc := range docs {
		for strings.HasPrefix(doc, "---\n") || strings.HasPrefix(doc, "# ") {
			doc = doc[strings.IndexByte(doc, '\n')+1:]
		}
		bodies[i] = doc
	}
	return "---\n# Source: app/templates/list.yaml\n" + listDocument(apiVersion, kind, bodies...)
}

// helmAppliedObjects lists what Helm's kube client applies from a stream, with the library code
// it runs: cli-runtime's StreamVisitor cuts the stream with apimachinery's YAML decoder and
// decodes every document with the unstructured scheme (a document with "items" is a list, whose
// kind-less items get the list's kind less "List"), and Flatten replaces each list by its items
// (this mirrors FlattenListVisitor's loop; linking cli-runtime itself would weigh on the test
// binary whose memory the benchmarks measure).
func helmAppliedObjects(t *testing.T, in string) []string {
	t.Helper()
	var out []string
	add := func(obj runtime.Object) {
		u, ok := obj.(*unstructured.Unstructured)
		if !ok {
			t.Fatalf("decoded a %T", obj)
		}
		o := manifest.Object{Kind: u.GetKind(), Name: u.GetName(), Namespace: u.GetNamespace()}
		out = append(out, object{Object: o}.ref())
	}
	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(in), 4096)
	for {
		var ext runtime.RawExtension
		if err := dec.Decode(&ext); errors.Is(err, io.EOF) {
			return out
		} else if err != nil {
			t.Fatalf("apimachinery YAML decoder: %v", err)
		}
		if raw := bytes.TrimSpace(ext.Raw); len(raw) == 0 || bytes.Equal(raw, []byte("null")) {
			continue
		}
		obj, _, err := unstructured.UnstructuredJSONScheme.Decode(ext.Raw, nil, nil)
		if err != nil {
			t.Fatalf("unstructured decoder: %v", err)
		}
		if !meta.IsListType(obj) {
			add(obj)
			continue
		}
		items, err := meta.ExtractList(obj)
		if err != nil {
			t.Fatalf("extracting the items of a list: %v", err)
		}
		for _, item := range items {
			add(item)
		}
	}
}

// TestListsFlattenAsHelmApplies holds the objects Render sees in a stream to the objects Helm
// applies from it.
func TestListsFlattenAsHelmApplies(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"v1 List", asList("v1", "List", webDeployment(floatingContainer), floatingConfig)},
		{"typed list with kind-less items", "apiVersion: apps/v1\nkind: DeploymentList\nitems:\n- metadata: {name: web, " +
			"namespace: prod}\n- metadata: {name: api}\n"},
		{"typed list whose items name their kind",
			"apiVersion: v1\nkind: ConfigMapList\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n"},
		{"items: null makes an empty list, whatever the kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\n" +
			"items: null\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc}\n"},
		{"empty list", "apiVersion: v1\nkind: List\nitems: []\n"},
		{"items by alias",
			"apiVersion: v1\nkind: List\nx: &cm {apiVersion: v1, kind: ConfigMap, metadata: {name: shared}}\nitems: [*cm]\n"},
		{"documents around a list", webDeployment(floatingContainer) + asList("v1", "List", floatingConfig) +
			"---\napiVersion: v1\nkind: Service\nmetadata: {name: svc}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			helm := helmAppliedObjects(t, tc.in)
			s, err := scan([]byte(tc.in))
			if err != nil {
				t.Fatalf("scan: %v", err)
			}
			var ours []string
			for _, obj := range s.objects {
				ours = append(ours, obj.ref())
			}
			if !slices.Equal(ours, helm) {
				t.Errorf("Render sees %q, Helm applies %q", ours, helm)
			}
		})
	}
}
