package postrender

import (
	"slices"
	"strings"
	"testing"

	"k8s.io/cli-runtime/pkg/resource"
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

// TestListsFlattenAsHelmApplies holds the objects Render sees in a stream to the objects Helm
// applies from it: cli-runtime's resource builder with Flatten, as Helm's kube client builds
// a release (here a local builder, which needs no API server).
func TestListsFlattenAsHelmApplies(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"v1 List", asList("v1", "List", webDeployment(floatingContainer), floatingConfig)},
		{"typed list with kind-less items", "apiVersion: apps/v1\nkind: DeploymentList\nitems:\n- metadata: {name: web, namespace: prod}\n- metadata: {name: api}\n"},
		{"typed list whose items name their kind", "apiVersion: v1\nkind: ConfigMapList\nitems:\n- {apiVersion: v1, kind: Secret, metadata: {name: s}}\n"},
		{"items: null makes an empty list, whatever the kind", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: gone}\nitems: null\n---\napiVersion: v1\nkind: Service\nmetadata: {name: svc}\n"},
		{"empty list", "apiVersion: v1\nkind: List\nitems: []\n"},
		{"items by alias", "apiVersion: v1\nkind: List\nx: &cm {apiVersion: v1, kind: ConfigMap, metadata: {name: shared}}\nitems: [*cm]\n"},
		{"documents around a list", webDeployment(floatingContainer) + asList("v1", "List", floatingConfig) + "---\napiVersion: v1\nkind: Service\nmetadata: {name: svc}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			infos, err := resource.NewLocalBuilder().Unstructured().Stream(strings.NewReader(tc.in), "test").Flatten().Do().Infos()
			if err != nil {
				t.Fatalf("cli-runtime: %v", err)
			}
			var helm []string
			for _, info := range infos {
				helm = append(helm, object{kind: info.Object.GetObjectKind().GroupVersionKind().Kind, name: info.Name, namespace: info.Namespace}.ref())
			}
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
