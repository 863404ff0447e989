package e2e

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// The node world (harness.NodeWorld) is separate from the loopback world, whose scenarios
// need no node, and started on the first node scenario.
var nodeShared struct {
	once  sync.Once
	world *harness.NodeWorld
	err   error
}

const refresherRepo = harness.RefresherRepo

// nodeSetup returns the node world, starting it on first use. Under -short it skips; a
// machine that cannot run the node (no root, a missing capability or tool) fails the test
// naming what is missing.
func nodeSetup(t *testing.T) *harness.NodeWorld {
	t.Helper()
	for _, tool := range append(append([]string{}, tools.All...), tools.Node...) {
		tools.Require(t, tool)
	}
	if err := harness.NodeRequirements(); err != nil {
		t.Fatal(err)
	}
	nodeShared.once.Do(func() { nodeShared.world, nodeShared.err = harness.StartNodeWorld(context.Background(), t) })
	if nodeShared.err != nil {
		t.Fatalf("starting the node world: %v", nodeShared.err)
	}
	return nodeShared.world
}

// closeNodeWorld stops the node world (if started) and removes everything it made; the node
// state and logs stay when the run failed.
func closeNodeWorld(failed bool) {
	w := nodeShared.world
	if w == nil {
		return
	}
	w.Close(stderrLogger{}, failed)
	if failed {
		fmt.Fprintf(os.Stderr, "e2e: failed; node state and logs kept in %s\n", harness.NodeRoot)
		harness.DumpLogs(stderrLogger{}, filepath.Join(harness.NodeRoot), 30)
	}
}

// newNodeRelease is a release on the node, its images the programs of e2e/images (those in
// multiArch pushed as an index).
func newNodeRelease(t *testing.T, w *harness.NodeWorld, helmTool string, multiArch map[harness.Image]bool) *release {
	t.Helper()
	lw := &world{cluster: w.Cluster, registry: w.Registry, bins: w.Bins, chart: nodeChart(t)}
	return newReleaseWith(t, lw, helmTool, w.Registry, w.Push(multiArch))
}

func nodeChart(t *testing.T) string {
	root, err := harness.ModuleRoot(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Join(root, "charts", "client")
}

func createPullSecret(t *testing.T, w *harness.NodeWorld, r *release, name string, wrong bool) {
	t.Helper()
	if err := w.CreatePullSecret(t.Context(), r.Namespace, name, wrong); err != nil {
		t.Fatal(err)
	}
}

func nodeValues(w *harness.NodeWorld, pullSecret string, extra ...string) []string {
	return append(w.Values(pullSecret), extra...)
}
