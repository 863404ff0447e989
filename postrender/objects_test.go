package postrender

import (
	"bytes"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
)

// TestObjects: what Objects returns for a config is byte for byte what Render appends with that
// config as --config (the golden cases with a config.yaml), and a release that carries those
// objects itself (charts/image-refresh) is post-rendered to the same bytes, with or without --config.
func TestObjects(t *testing.T) {
	for _, tc := range []struct {
		name              string
		allowExternalKeys bool
	}{
		{"config-from-file", false},
		{"proxy", false},
		{"verification-external", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := filepath.Join(goldenDir, tc.name)
			in := readFile(t, filepath.Join(dir, "input.yaml"))
			opts := goldenOptions(t, dir)
			opts.AllowExternalKeys = tc.allowExternalKeys
			objects, err := Objects(opts)
			if err != nil {
				t.Fatalf("Objects: %v", err)
			}
			if len(objects) == 0 || !bytes.HasPrefix(objects, []byte("---\n")) {
				t.Fatalf("Objects returned %q, want documents opened by ---", objects)
			}
			out, err := Render(in, opts)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if want := append(bytes.Clone(in), objects...); !bytes.Equal(out, want) {
				t.Errorf("Render appended something else than Objects returned:\n%s", out[min(len(in), len(out)):])
			}

			carried := append(bytes.Clone(in), objects...)
			for _, run := range []struct {
				name string
				opts Options
			}{
				{"config from the carried ConfigMap", Options{AllowExternalKeys: tc.allowExternalKeys}},
				{"--config", opts},
			} {
				again, err := Render(carried, run.opts)
				if err != nil {
					t.Fatalf("%s: Render over the carried objects: %v", run.name, err)
				}
				if !bytes.Equal(again, carried) {
					t.Errorf("%s: Render changed a release that carries the objects:\n%s", run.name, again)
				}
			}
		})
	}
}

func TestObjectsPinnedIsEmpty(t *testing.T) {
	opts := goldenOptions(t, filepath.Join(goldenDir, "config-from-file"))
	for i := range opts.Config.Spec.Images {
		opts.Config.Spec.Images[i].Digest = "sha256:" + strings.Repeat("a", 64)
	}
	objects, err := Objects(opts)
	if err != nil || len(objects) != 0 {
		t.Fatalf("Objects = %q, %v; want nothing: every image is pinned", objects, err)
	}
}

func TestObjectsRefusesInvalidConfig(t *testing.T) {
	if _, err := Objects(Options{}); err == nil {
		t.Errorf("Objects without a config: no error")
	}
	opts := goldenOptions(t, filepath.Join(goldenDir, "config-from-file"))
	opts.Config.Spec.Images[0].Action = "bogus"
	_, err := Objects(opts)
	if r := Refusals(err); len(r) != 1 || r[0].Reason != ReasonInvalidConfig {
		t.Errorf("Objects with an invalid config: %v, want one %s refusal", err, ReasonInvalidConfig)
	}
}

func TestObjectsWarnsDeprecations(t *testing.T) {
	data := readFile(t, filepath.Join(goldenDir, "config-from-file", "config.yaml"))
	cfg, err := config.Parse(bytes.Replace(data, []byte("spec:\n"), []byte("spec:\n  waitLimit: 2\n"), 1))
	if err != nil {
		t.Fatal(err)
	}
	var warned []string
	if _, err := Objects(Options{Config: cfg, Warn: func(m string) { warned = append(warned, m) }}); err != nil {
		t.Fatal(err)
	}
	if len(warned) != 1 || !strings.Contains(warned[0], "waitLimit") {
		t.Errorf("warnings %q, want the one about spec.waitLimit", warned)
	}
}
