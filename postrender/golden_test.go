package postrender

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/testutil/golden"
)

const goldenDir = "../testdata/postrender/golden"

// TestGolden renders each testdata/postrender/golden/<case>/input.yaml (with config.yaml as
// --config when present) and compares the result with output.yaml. The inputs are the test
// chart's `helm template` output (Helm 4's plugin input for the helm4 case).
func TestGolden(t *testing.T) {
	for _, tc := range []struct {
		name string
		// injects says whether the image-refresh objects are appended.
		injects bool
		// allowExternalKeys is --allow-external-keys.
		allowExternalKeys bool
	}{
		{"all-floating", true, false},
		{"pinned-jobs-manager", true, false},
		{"pinned-pods-monitor", true, false},
		{"pinned-ingestor", true, false},
		{"all-pinned", false, false},
		{"config-from-file", true, false},
		{"config-from-stream", true, false},
		{"helm4", true, false},
		{"no-config", false, false},
		// The target Deployment is an item of a v1 List, which Helm applies item by item.
		{"list-target", true, false},
		// The config ConfigMap is a kind-less item of a ConfigMapList.
		{"list-config", true, false},
		// CRLF line endings: the injected documents use them too.
		{"crlf", true, false},
		// spec.verification with the keys ConfigMap in the stream (a data and a binaryData key).
		{"verification", true, false},
		// spec.verification from --config, the keys ConfigMap declared external.
		{"verification-external", true, true},
		// jobs-manager and pods-monitor set-image with IfNotPresent, pods-monitor run by digest.
		{"set-image", true, false},
		// A set-image DaemonSet in another namespace: a Role and RoleBinding there, the guard over both.
		{"daemonset-other-namespace", true, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(goldenDir, tc.name)
			in := readFile(t, filepath.Join(dir, "input.yaml"))
			opts := goldenOptions(t, dir)
			opts.AllowExternalKeys = tc.allowExternalKeys

			out, err := Render(in, opts)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			golden.Assert(t, filepath.Join(dir, "output.yaml"), out)

			if !bytes.HasPrefix(out, in) {
				t.Errorf("output does not start with the input verbatim")
			}
			if injected := len(out) > len(in); injected != tc.injects {
				t.Errorf("injected = %v, want %v", injected, tc.injects)
			}
			again, err := Render(out, opts)
			if err != nil {
				t.Fatalf("Render on its own output: %v", err)
			}
			if !bytes.Equal(again, out) {
				t.Errorf("not idempotent: a second run changed the output:\n%s", again)
			}
		})
	}
}

func goldenOptions(t *testing.T, dir string) Options {
	t.Helper()
	path := filepath.Join(dir, "config.yaml")
	if _, err := os.Stat(path); err != nil {
		return Options{}
	}
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	return Options{Config: cfg}
}

func readFile(t testing.TB, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}
