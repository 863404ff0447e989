package cmd

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/internal/version"
)

// TestDistPluginArchive builds the release archives for this machine's platform with `make
// dist`, twice, and checks what a user of a release relies on: the same commit gives the same
// bytes, SHA256SUMS verifies with sha256sum, and the plugin archive installs with Helm 4's
// `helm plugin install FILE` and post-renders.
func TestDistPluginArchive(t *testing.T) {
	if testing.Short() {
		t.Skip("builds release archives and runs helm 4")
	}
	helm := tools.Require(t, tools.Helm4)
	platform := runtime.GOOS + "/" + runtime.GOARCH
	first, second := makeDist(t, platform), makeDist(t, platform)

	suffix := fmt.Sprintf("-%s-%s-%s", version.Version, runtime.GOOS, runtime.GOARCH)
	archive := fmt.Sprintf("image-refresh-%s-%s-%s.tgz", strings.TrimPrefix(version.Version, "v"), runtime.GOOS,
		runtime.GOARCH)
	for _, name := range []string{archive, "refresher" + suffix, "postrender" + suffix, "chartcheck" + suffix,
		"SHA256SUMS"} {
		a, err := os.ReadFile(filepath.Join(first, name))
		if err != nil {
			t.Fatalf("make dist did not write %s: %v", name, err)
		}
		b, err := os.ReadFile(filepath.Join(second, name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(a, b) {
			t.Errorf("%s differs between two builds of the same commit", name)
		}
	}
	check := exec.Command("sha256sum", "-c", "--strict", "SHA256SUMS")
	check.Dir = first
	if out, err := check.CombinedOutput(); err != nil {
		t.Fatalf("sha256sum -c SHA256SUMS: %v\n%s", err, out)
	}

	env := helmEnv(t)
	out := runHelm(t, env, helm, "plugin", "install", filepath.Join(first, archive), "--verify=false")
	t.Logf("helm plugin install: %s", out)
	list := runHelm(t, env, helm, "plugin", "list")
	if !bytes.Contains([]byte(list), []byte("image-refresh")) {
		t.Fatalf("helm plugin list does not show image-refresh:\n%s", list)
	}
	rendered := runHelm(t, env, helm, "template", releaseName, testChart, "--post-renderer", "image-refresh")
	assertCronJobs(t, rendered, 1)
}

// makeDist runs `make dist` for one platform into a fresh directory and returns bin/dist.
func makeDist(t *testing.T, platform string) string {
	t.Helper()
	bin := t.TempDir()
	cmd := exec.Command("make", "--no-print-directory", "dist", "BIN="+bin, "DIST_PLATFORMS="+platform)
	cmd.Dir = "../../.."
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("make dist: %v\n%s", err, out)
	}
	return filepath.Join(bin, "dist")
}
