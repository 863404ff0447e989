package version_test

import (
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/version"
)

const root = "../.."

func TestVersionIsSemver(t *testing.T) {
	if !regexp.MustCompile(`^v\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?$`).MatchString(version.Version) {
		t.Errorf("VERSION %q is not v<major>.<minor>.<patch>[-pre]", version.Version)
	}
}

// TestVersionEverywhere fails when a place that states the release version drifts from
// internal/version/VERSION.
func TestVersionEverywhere(t *testing.T) {
	if got, want := config.DefaultJobImage, version.Image+":"+version.Version; got != want {
		t.Errorf("config.DefaultJobImage = %q, want %q", got, want)
	}

	plugin := read(t, "postrender/plugin/plugin.yaml")
	if m := regexp.MustCompile(`(?m)^version: (\S+)$`).FindStringSubmatch(plugin); m == nil {
		t.Errorf("plugin.yaml has no version line")
	} else if want := strings.TrimPrefix(version.Version, "v"); m[1] != want {
		t.Errorf("plugin.yaml version %s, want %s (VERSION without the v)", m[1], want)
	}

	if !strings.Contains(read(t, "Makefile"), "VERSION := $(shell cat internal/version/VERSION)") {
		t.Errorf("the Makefile does not take VERSION from internal/version/VERSION")
	}

	readme := read(t, "README.md")
	if !strings.Contains(readme, version.ImageReference()) {
		t.Errorf("README.md never names this release's image %s", version.ImageReference())
	}

	// Every refresher image reference with a version tag, in docs, the chart and fixtures.
	tagged := regexp.MustCompile(`image-refresh:(v\d+\.\d+\.\d+[0-9A-Za-z.-]*)`)
	checked := 0
	for _, dir := range []string{"README.md", "docs", "charts", "testdata", "postrender/plugin"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(path string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil
				}
				return err
			}
			if d.IsDir() {
				return nil
			}
			data, err := os.ReadFile(path)
			if err != nil {
				return err
			}
			for _, m := range tagged.FindAllStringSubmatch(string(data), -1) {
				checked++
				if m[1] != version.Version {
					rel, _ := filepath.Rel(root, path)
					t.Errorf("%s names %s, but VERSION is %s", rel, m[0], version.Version)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatalf("walking %s: %v", dir, err)
		}
	}
	if checked == 0 {
		t.Fatalf("no versioned image reference found in the docs, chart and fixtures; is the walk rooted right?")
	}
}

func read(t *testing.T, rel string) string {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(root, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}
