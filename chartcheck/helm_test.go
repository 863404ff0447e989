package chartcheck

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/cli/values"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// TestRenderMatchesHelmTemplate: chartcheck's in-process render plus post-render is what the real
// helm v3 CLI produces with the postrender binary, so what chartcheck checks is what gets installed.
func TestRenderMatchesHelmTemplate(t *testing.T) {
	helm := tools.Require(t, tools.Helm3)
	dir := t.TempDir()
	postrenderBin := filepath.Join(dir, "postrender")
	build := exec.Command("go", "build", "-o", postrenderBin, "github.com/tracebloc/image-refresh/cmd/postrender")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("building postrender: %v\n%s", err, out)
	}
	ch, err := loadChart(clientChart)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, release, namespace string
		set, values              []string
		// postRendererArgs are helm's --post-renderer-args, and chartcheck's.
		postRendererArgs []string
	}{
		{name: "defaults", release: "stg", namespace: "tracebloc"},
		{
			name:      "ingestor pinned",
			release:   "stg",
			namespace: "tracebloc",
			set:       []string{"images.ingestor.digest=" + ingestorPin},
		},
		{
			name:      "custom release and schedule",
			release:   "acme",
			namespace: "tenant-a",
			set:       []string{"imageRefresh.schedule=*/5 * * * *"},
		},
		{
			name:      "signature keys",
			release:   "stg",
			namespace: "tracebloc",
			values:    []string{clientChart + "/ci/verification.yaml"},
			set:       []string{"images.ingestor.verify=false"},
		},
		{
			name:             "config given at install time",
			release:          "stg",
			namespace:        "tracebloc",
			set:              []string{"imageRefresh.enabled=false"},
			postRendererArgs: []string{"--config=" + testdataDir + "/configs/stg.yaml"},
		},
		{
			name:             "config given, every image pinned",
			release:          "stg",
			namespace:        "tracebloc",
			set:              []string{"imageRefresh.enabled=false"},
			postRendererArgs: []string{"--config", testdataDir + "/configs/stg-pinned.yaml", "--allow-external-keys"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := []string{
				"template", tt.release, clientChart, "--namespace", tt.namespace, "--kube-version", DefaultKubeVersion,
				"--post-renderer", postrenderBin,
			}
			for _, s := range tt.set {
				args = append(args, "--set", s)
			}
			for _, f := range tt.values {
				args = append(args, "--values", f)
			}
			for _, a := range tt.postRendererArgs {
				args = append(args, "--post-renderer-args", a)
			}
			cmd := exec.CommandContext(t.Context(), helm, args...)
			cmd.Env = append(os.Environ(), "HELM_CACHE_HOME="+dir, "HELM_CONFIG_HOME="+dir, "HELM_DATA_HOME="+dir)
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			want, err := cmd.Output()
			if err != nil {
				t.Fatalf("helm %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
			}
			vals, err := mergeValues(values.Options{Values: tt.set, ValueFiles: tt.values})
			if err != nil {
				t.Fatal(err)
			}
			prArgs, err := (&Check{PostRendererArgs: tt.postRendererArgs}).postRendererArgs()
			if err != nil {
				t.Fatal(err)
			}
			setup, err := newPostRenderSetup(prArgs)
			if err != nil {
				t.Fatal(err)
			}
			got, err := ch.Render(
				context.Background(),
				renderOptions{ReleaseName: tt.release, Namespace: tt.namespace, Values: vals},
				setup.postRenderer(),
			)
			if err != nil {
				t.Fatal(err)
			}
			if got.PostRenderErr != nil {
				t.Fatal(got.PostRenderErr)
			}
			if !bytes.Equal(bytes.TrimSpace(got.Output), bytes.TrimSpace(want)) {
				t.Errorf("in-process render differs from helm template:\n%s\nwant:\n%s", got.Output, want)
			}
		})
	}
}
