package cmd

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// TestLibraryChartHelm4: with the real Helm 4 and the installed plugin, a parent chart that includes
// charts/image-refresh renders the documents `postrender objects` wrote, byte for byte; the plugin over that chart
// (config from the carried ConfigMap, or --config) leaves every document as it was, but for the chart file Helm 4
// files its own under (image-refresh/injected.yaml); and it renders the same documents as the plugin with --config
// over the chart without them. (Helm 4 re-files the post-renderer's documents by their postrender-filename: the
// carried objects move to image-refresh/injected.yaml, which changes no resource of the release.)
func TestLibraryChartHelm4(t *testing.T) {
	helm := tools.Require(t, tools.Helm4)
	bin := buildPostrender(t)
	env := helmEnv(t)
	t.Setenv(errorFileEnv, "")
	installPlugin(t, env, helm, bin)
	for _, tc := range libraryCases {
		t.Run(tc.name, func(t *testing.T) {
			chart := parentChart(t, tc)
			objects := objectsOf(t, tc.config)
			if err := os.WriteFile(filepath.Join(chart, "image-refresh", "objects.yaml"), objects, 0o644); err != nil {
				t.Fatal(err)
			}
			template := templateFunc(t, env, helm, "image-refresh", tc, chart)

			// Helm 4 ends every document it prints with a blank line.
			docs := func(stream string) []string {
				out := documents(stream)
				for i, doc := range out {
					out[i] = strings.TrimRight(doc, "\n") + "\n"
				}
				return out
			}
			carried := docs(template(nil))
			var fromLibrary []string
			for _, doc := range carried {
				if source, rest, _ := strings.Cut(doc, "\n"); strings.HasSuffix(source, "/templates/image-refresh.yaml") {
					fromLibrary = append(fromLibrary, rest)
				}
			}
			if want := docs(string(objects)); !equalSorted(fromLibrary, want) {
				t.Errorf("the library chart rendered\n%s\nwant the documents of postrender objects:\n%s",
					strings.Join(fromLibrary, "---\n"), objects)
			}
			// Helm 4 re-encodes every document it hands a post-renderer (blank lines go): compare objects.
			want := objectsIn(t, carried)
			for _, args := range [][]string{{}, {"--config=" + tc.config}} {
				if got := docs(template(nil, args...)); !equalSorted(objectsIn(t, got), want) {
					t.Errorf("the plugin %v changed the chart that carries the objects:\n%s", args, strings.Join(got, "---\n"))
				}
			}
			bare := docs(template([]string{"imageRefreshObjects.enabled=false"}, "--config="+tc.config))
			if !equalSorted(objectsIn(t, bare), want) {
				t.Errorf("the plugin with --config over the chart without the objects rendered\n%s\nwant the carried ones",
					strings.Join(bare, "---\n"))
			}
		})
	}
}

// objectsIn decodes documents as the API server reads them, each to its canonical JSON.
func objectsIn(t *testing.T, docs []string) []string {
	t.Helper()
	out := make([]string, len(docs))
	for i, doc := range docs {
		var obj map[string]any
		if err := contract.Decode([]byte(doc), &obj); err != nil {
			t.Fatalf("decoding %s: %v", doc, err)
		}
		data, err := json.Marshal(obj)
		if err != nil {
			t.Fatal(err)
		}
		out[i] = string(data)
	}
	return out
}
