package cmd

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// The real-Helm tests run `helm template` over testdata/postrender/chart with the post-renderer
// as Helm 3 runs it (an executable) and as Helm 4 runs it (an installed postrenderer/v1 plugin).
const (
	testChart   = "../../../testdata/postrender/chart"
	releaseName = "stg"
	digestA     = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
)

var (
	cronJobDoc = regexp.MustCompile(`(?m)^kind: CronJob$`)
	allPinned  = []string{
		"--set", "images.jobsManager.digest=" + digestA,
		"--set", "images.podsMonitor.digest=" + digestA,
		"--set", "images.ingestor.digest=" + digestA,
	}
)

func TestHelm3PostRenderer(t *testing.T) {
	helm := tools.Require(t, tools.Helm3)
	bin := buildPostrender(t)
	configFile, _ := filepath.Abs(filepath.Join(goldenDir, "config-from-file", "config.yaml"))
	env := helmEnv(t)

	t.Run("floating images inject the CronJob", func(t *testing.T) {
		out := runHelm(t, env, helm, "template", releaseName, testChart, "--post-renderer", bin)
		assertCronJobs(t, out, 1)
		for _, want := range []string{"# Source: refresh-test/templates/deployment.yaml",
			"kind: Role\nmetadata:\n  name: stg-image-refresh", "resourceNames:\n  - stg-jobs-manager"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
	})
	t.Run("all pinned injects nothing", func(t *testing.T) {
		out := runHelm(t, env, helm, append([]string{"template", releaseName, testChart, "--post-renderer", bin},
			allPinned...)...)
		assertCronJobs(t, out, 0)
		if strings.Contains(out, "kind: ServiceAccount") {
			t.Errorf("a ServiceAccount was injected although every image is pinned")
		}
	})
	t.Run("--config through --post-renderer-args", func(t *testing.T) {
		out := runHelm(t, env, helm, "template", releaseName, testChart, "--set", "refresh.enabled=false", "--post-renderer",
			bin, "--post-renderer-args", "--config="+configFile)
		assertCronJobs(t, out, 1)
		if !strings.Contains(out, "name: stg-image-refresh-config") {
			t.Errorf("the config ConfigMap was not injected")
		}
	})
	t.Run("config and target as List items inject the CronJob", func(t *testing.T) {
		out := runHelm(t, env, helm, "template", releaseName, testChart, "--set", "asList.config=true,asList.deployment=true",
			"--post-renderer", bin)
		assertCronJobs(t, out, 1)
		if got := strings.Count(out, "\nkind: List\n"); got != 2 {
			t.Errorf("%d Lists in helm's output, want 2 (the chart's, unchanged)", got)
		}
	})
	t.Run("a config ConfigMap rendered as a hook never reaches the post-renderer", func(t *testing.T) {
		// Helm 3 keeps hooks out of the post-renderer's input: nothing is injected, and the
		// post-renderer cannot tell. (Helm 4 passes hooks, and the post-renderer refuses.)
		out := runHelm(t, env, helm, "template", releaseName, testChart, "--set", "refresh.hook=pre-install",
			"--post-renderer", bin)
		assertCronJobs(t, out, 0)
	})
	t.Run("a merge key carrying the set-env variable is refused", func(t *testing.T) {
		// kyaml lookups once did not follow "<<", so this chart was accepted and every helm
		// upgrade reset the refreshed digest.
		chart := t.TempDir()
		writeChart(t, chart, map[string]string{
			"Chart.yaml": "apiVersion: v2\nname: merge-key\nversion: 0.1.0\n",
			"templates/refresh.yaml": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: mk-refresh\n  labels: " +
				"{image-refresh.io/config: \"true\"}\ndata:\n  refresh.yaml: |\n" +
				"    {apiVersion: image-refresh.io/v1alpha1, kind: RefreshConfig, metadata: {name: mk-refresh}, spec: {images: " +
				"[{name: ingestor, repository: ghcr.io/tracebloc/ingestor, tag: prod, action: set-env, env: " +
				"INGESTOR_IMAGE_DIGEST, target: {name: web, container: api}, annotation: tracebloc.io/ingestor-digest}]}}\n",
			"templates/web.yaml": "x-env: &digest {name: INGESTOR_IMAGE_DIGEST, value: \"sha256:old\"}\napiVersion: apps/v1\n" +
				"kind: Deployment\nmetadata:\n  name: web\nspec:\n  template:\n    spec:\n      containers:\n      - name: " +
				"api\n        image: example.com/api:1\n        env:\n        - <<: *digest\n",
		})
		out, err := helmCommand(env, helm, "template", releaseName, chart, "--post-renderer", bin).CombinedOutput()
		if err == nil || !strings.Contains(string(out), `renders env INGESTOR_IMAGE_DIGEST with value "sha256:old"`) {
			t.Fatalf("helm: %v, want the post-renderer's env-rendered refusal:\n%s", err, out)
		}
	})
	t.Run("--allow-external-keys through --post-renderer-args", func(t *testing.T) {
		keysConfig, _ := filepath.Abs(filepath.Join(goldenDir, "verification-external", "config.yaml"))
		args := []string{"template", releaseName, testChart, "--set", "refresh.enabled=false", "--post-renderer", bin,
			"--post-renderer-args", "--config=" + keysConfig}
		out, err := helmCommand(env, helm, args...).CombinedOutput()
		if err == nil || !strings.Contains(string(out), `keys of ConfigMap "cluster-signing-keys"`) {
			t.Fatalf("helm: %v, want the keys-missing refusal:\n%s", err, out)
		}
		assertKeysMounted(t, runHelm(t, env, helm, append(args, "--post-renderer-args", "--allow-external-keys")...),
			"cluster-signing-keys")
	})
	t.Run("a refusal fails helm with the message", func(t *testing.T) {
		out, err := helmCommand(env, helm, "template", releaseName, testChart, "--post-renderer", bin, "--post-renderer-args",
			"--config="+configFile).CombinedOutput()
		if err == nil {
			t.Fatalf("helm succeeded, want the post-renderer to refuse:\n%s", out)
		}
		if !strings.Contains(string(out), "--config was given, but the chart renders its own refresh config") {
			t.Errorf("helm's error lacks the post-renderer's message:\n%s", out)
		}
	})
}

func TestHelm4Plugin(t *testing.T) {
	helm := tools.Require(t, tools.Helm4)
	bin := buildPostrender(t)
	env := helmEnv(t)

	installPlugin(t, env, helm, bin)

	t.Run("floating images inject the CronJob", func(t *testing.T) {
		out := runHelm(t, env, helm, "template", releaseName, testChart, "--post-renderer", "image-refresh")
		assertCronJobs(t, out, 1)
		for _, want := range []string{"# Source: image-refresh/injected.yaml", "# Source: refresh-test/templates/hook.yaml",
			"name: stg-migrate"} {
			if !strings.Contains(out, want) {
				t.Errorf("output lacks %q", want)
			}
		}
		if strings.Contains(out, "postrenderer.helm.sh/postrender-filename") {
			t.Errorf("Helm 4's filename annotation leaked into the output")
		}
	})
	t.Run("all pinned injects nothing", func(t *testing.T) {
		out := runHelm(t, env, helm, append([]string{"template", releaseName, testChart, "--post-renderer", "image-refresh"},
			allPinned...)...)
		assertCronJobs(t, out, 0)
	})
	t.Run("config and target as List items inject the CronJob", func(t *testing.T) {
		out := runHelm(t, env, helm, "template", releaseName, testChart, "--set", "asList.config=true,asList.deployment=true",
			"--post-renderer", "image-refresh")
		assertCronJobs(t, out, 1)
	})
	t.Run("a config ConfigMap rendered as a hook is refused", func(t *testing.T) {
		errorFile := filepath.Join(t.TempDir(), "errors.log")
		out, err := helmCommand(append(env, errorFileEnv+"="+errorFile), helm, "template", releaseName, testChart,
			"--set", "refresh.hook=pre-install", "--post-renderer", "image-refresh").CombinedOutput()
		if err == nil {
			t.Fatalf("helm succeeded, want the post-renderer to refuse:\n%s", out)
		}
		written, err := os.ReadFile(errorFile)
		if err != nil {
			t.Fatalf("no error file: %v", err)
		}
		if !strings.Contains(string(written), "holds the refresh config, but it is a Helm hook (helm.sh/hook: pre-install)") {
			t.Errorf("error file lacks the refusal:\n%s", written)
		}
	})
	t.Run("--allow-external-keys through --post-renderer-args", func(t *testing.T) {
		keysConfig, _ := filepath.Abs(filepath.Join(goldenDir, "verification-external", "config.yaml"))
		errorFile := filepath.Join(t.TempDir(), "errors.log")
		args := []string{"template", releaseName, testChart, "--set", "refresh.enabled=false", "--post-renderer",
			"image-refresh", "--post-renderer-args", "--config=" + keysConfig}
		if out, err := helmCommand(append(env, errorFileEnv+"="+errorFile), helm, args...).CombinedOutput(); err == nil {
			t.Fatalf("helm succeeded, want the keys-missing refusal:\n%s", out)
		}
		if written, _ := os.ReadFile(errorFile); !strings.Contains(string(written),
			`keys of ConfigMap "cluster-signing-keys"`) {
			t.Errorf("error file lacks the keys-missing refusal:\n%s", written)
		}
		assertKeysMounted(t, runHelm(t, env, helm, append(args, "--post-renderer-args", "--allow-external-keys")...),
			"cluster-signing-keys")
	})
	t.Run("a refusal is in the error file", func(t *testing.T) {
		errorFile := filepath.Join(t.TempDir(), "errors.log")
		out, err := helmCommand(append(env, errorFileEnv+"="+errorFile), helm, "template", releaseName, testChart,
			"--set", "images.jobsManager.digest=sha256:nothex", "--post-renderer", "image-refresh").CombinedOutput()
		if err == nil {
			t.Fatalf("helm succeeded, want the post-renderer to refuse:\n%s", out)
		}
		if !strings.Contains(string(out), `plugin "image-refresh" exited with error`) {
			t.Errorf("unexpected helm error:\n%s", out)
		}
		written, err := os.ReadFile(errorFile)
		if err != nil {
			t.Fatalf("no error file: %v", err)
		}
		if !strings.Contains(string(written), `spec.images[0] (jobs-manager).digest "sha256:nothex"`) {
			t.Errorf("error file lacks the refusal:\n%s", written)
		}
	})
}

// assertKeysMounted checks that the injected CronJob mounts ConfigMap keys at the keys path.
func assertKeysMounted(t *testing.T, out, keys string) {
	t.Helper()
	assertCronJobs(t, out, 1)
	for _, want := range []string{"- name: verification-keys\n              mountPath: " +
		"/etc/image-refresh-keys\n              readOnly: true",
		"- name: verification-keys\n            configMap:\n              name: " + keys + "\n"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

// buildPostrender builds the binary under test into the test's temp dir.
func buildPostrender(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "postrender")
	if out, err := exec.Command("go", "build", "-o", bin,
		"github.com/tracebloc/image-refresh/cmd/postrender").CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// installPlugin installs the plugin into env's Helm 4, its directory laid out as `make plugin` lays it out.
func installPlugin(t *testing.T, env []string, helm, bin string) {
	t.Helper()
	pluginDir := filepath.Join(t.TempDir(), "image-refresh")
	if err := os.MkdirAll(pluginDir, 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, "../../../postrender/plugin/plugin.yaml", filepath.Join(pluginDir, "plugin.yaml"), 0o644)
	copyFile(t, bin, filepath.Join(pluginDir, "postrender"), 0o755)
	runHelm(t, env, helm, "plugin", "install", pluginDir)
}

// helmEnv isolates Helm from the user's configuration, plugins and caches.
func helmEnv(t *testing.T) []string {
	t.Helper()
	home := t.TempDir()
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "HELM_") {
			env = append(env, kv)
		}
	}
	return append(env,
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		// helm 4 `plugin install` writes to $HELM_DATA_HOME/plugins whatever HELM_PLUGINS says,
		// so the plugins directory is left at that default.
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		errorFileEnv+"="+filepath.Join(home, "postrender-errors.log"),
	)
}

func helmCommand(env []string, helm string, args ...string) *exec.Cmd {
	cmd := exec.Command(helm, args...)
	cmd.Env = env
	return cmd
}

func runHelm(t *testing.T, env []string, helm string, args ...string) string {
	t.Helper()
	var stdout, stderr bytes.Buffer
	cmd := helmCommand(env, helm, args...)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(helm), strings.Join(args, " "), err, stderr.String())
	}
	return stdout.String()
}

func assertCronJobs(t *testing.T, out string, want int) {
	t.Helper()
	if got := len(cronJobDoc.FindAllString(out, -1)); got != want {
		t.Errorf("%d CronJobs in helm's output, want %d:\n%s", got, want, out)
	}
}

func copyFile(t *testing.T, from, to string, mode os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, data, mode); err != nil {
		t.Fatal(err)
	}
}

// writeChart writes a chart's files (path relative to dir → content).
func writeChart(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}
