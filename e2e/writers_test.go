package e2e

import (
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// TestWarnsOfOtherWriters: on the real API server, an audit annotation another field manager
// wrote after the refresher (a second refresher, a hand edit) is named in the next tick's log
// warning; the tick after the refresher's own write is quiet again.
func TestWarnsOfOtherWriters(t *testing.T) {
	w := setup(t)
	r := newRelease(t, w, tools.Helm3, w.registry)
	installAndFirstRun(t, r)
	const warning = "another writer changed the refresher's annotations"
	if res := r.refreshOK(); strings.Contains(res.Stderr, warning) {
		t.Fatalf("a target only the refresher writes: warned\n%s", res.Stderr)
	}
	// managedFields times have one-second resolution: the other write must land in a later
	// second than the refresher's last one to be told from it.
	dep, err := r.Cluster.Client.AppsV1().Deployments(r.Namespace).Get(t.Context(), deployName, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range dep.ManagedFields {
		if e.Manager == "image-refresh" && e.Time != nil {
			time.Sleep(time.Until(e.Time.Add(time.Second)))
		}
	}
	patch := `{"metadata":{"annotations":{"` + ingestor.Annotation() + `":"sha256:` + strings.Repeat("0", 64) + `"}}}`
	if _, err := r.Cluster.Client.AppsV1().Deployments(r.Namespace).Patch(
		t.Context(), deployName, types.MergePatchType, []byte(patch),
		metav1.PatchOptions{FieldManager: "old-refresh-script"},
	); err != nil {
		t.Fatal(err)
	}
	res := r.refreshOK()
	if !strings.Contains(res.Stderr, warning) || !strings.Contains(res.Stderr, "old-refresh-script (Update at ") ||
		!strings.Contains(res.Stderr, ingestor.Annotation()) {
		t.Errorf("the tick after another manager's write does not name it:\n%s", res.Stderr)
	}
	if res := r.refreshOK(); strings.Contains(res.Stderr, warning) {
		t.Errorf("the refresher took the annotation back, yet the next tick warned:\n%s", res.Stderr)
	}
}
