package cmd

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/cli/values"

	"github.com/tracebloc/image-refresh/chartcheck"
	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/internal/version"
)

const (
	libraryChart     = "../../../charts/image-refresh"
	withLibraryChart = "../../../testdata/charts/with-library"
	kubeVersion      = "1.37.2"
)

// objectsOf runs `postrender objects --config file` and returns its stdout.
func objectsOf(t *testing.T, file string) []byte {
	t.Helper()
	var stdout, stderr bytes.Buffer
	if code := run([]string{"objects", "--config", file}, nil, &stdout, &stderr); code != cli.ExitOK {
		t.Fatalf("postrender objects --config %s: exit %d\n%s", file, code, stderr.String())
	}
	return stdout.Bytes()
}

func TestObjectsCommand(t *testing.T) {
	t.Setenv(errorFileEnv, "")
	t.Run("the documents --config appends", func(t *testing.T) {
		dir := filepath.Join(goldenDir, "config-from-file")
		in, out := readFile(t, filepath.Join(dir, "input.yaml")), readFile(t, filepath.Join(dir, "output.yaml"))
		if got, want := objectsOf(t, filepath.Join(dir, "config.yaml")), out[len(in):]; !bytes.Equal(got, want) {
			t.Errorf("postrender objects wrote\n%s\nwant what postrender --config appends:\n%s", got, want)
		}
	})
	pinned := filepath.Join(t.TempDir(), "pinned.yaml")
	cfg := readFile(t, "../../../testdata/config/refresh.yaml")
	if err := os.WriteFile(pinned, regexp.MustCompile(`(?m)^    tag: prod\n(    digest: ""\n)?`).ReplaceAll(cfg,
		[]byte("    tag: prod\n    digest: sha256:"+strings.Repeat("a", 64)+"\n")), 0o644); err != nil {
		t.Fatal(err)
	}
	invalid := filepath.Join(t.TempDir(), "invalid.yaml")
	if err := os.WriteFile(invalid, []byte("apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\n"+
		"metadata: {name: x}\nspec: {images: []}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		args       []string
		wantCode   int
		wantStderr string
	}{
		{"every image pinned writes nothing", []string{"objects", "--config", pinned}, cli.ExitOK, "every image is pinned"},
		{"--config is required", []string{"objects"}, cli.ExitUsage, "--config is required"},
		{"unreadable --config", []string{"objects", "--config", filepath.Join(t.TempDir(), "none.yaml")}, cli.ExitUsage,
			"reading --config"},
		{"invalid config is refused", []string{"objects", "--config", invalid}, exitRefused, "invalid refresh config"},
		{"no arguments", []string{"objects", "--config", pinned, "extra"}, cli.ExitUsage, "unexpected arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			if code := run(tc.args, nil, &stdout, &stderr); code != tc.wantCode {
				t.Errorf("exit %d, want %d\n%s", code, tc.wantCode, stderr.String())
			}
			if stdout.Len() > 0 {
				t.Errorf("stdout %q, want nothing", stdout.String())
			}
			if !strings.Contains(stderr.String(), tc.wantStderr) {
				t.Errorf("stderr %q lacks %q", stderr.String(), tc.wantStderr)
			}
		})
	}
}

// TestLibraryChartCurrent: the test chart's carried objects are what its config generates now, and
// the library chart's version is this release's.
func TestLibraryChartCurrent(t *testing.T) {
	t.Setenv(errorFileEnv, "")
	got := readFile(t, filepath.Join(withLibraryChart, "image-refresh", "objects.yaml"))
	if want := objectsOf(t, filepath.Join(withLibraryChart, "image-refresh", "refresh.yaml")); !bytes.Equal(got, want) {
		t.Errorf("testdata/charts/with-library/image-refresh/objects.yaml is stale; regenerate it with postrender objects " +
			"--config testdata/charts/with-library/image-refresh/refresh.yaml")
	}
	chart := string(readFile(t, filepath.Join(libraryChart, "Chart.yaml")))
	for _, want := range []string{"\ntype: library\n", "\nversion: " + strings.TrimPrefix(version.Version, "v") + "\n",
		"\nappVersion: \"" + version.Version + "\"\n"} {
		if !strings.Contains(chart, want) {
			t.Errorf("charts/image-refresh/Chart.yaml lacks %q", strings.TrimSpace(want))
		}
	}
}

// libraryCase is a parent chart that carries the objects of config through the library chart.
type libraryCase struct {
	name, chart, config string
	release, namespace  string
	values              []string
	allowExternalKeys   bool
}

// libraryCases are the parent charts the library-chart tests render, each with the config its objects come from.
var libraryCases = func() []libraryCase {
	const postrenderChart = "../../../testdata/postrender/chart"
	tbLike := []string{"imageRefresh.enabled=false"} // the chart's own refresher off: one refresher per target
	return []libraryCase{
		{name: "with-library", chart: withLibraryChart, config: filepath.Join(withLibraryChart, "image-refresh",
			"refresh.yaml"), release: "stg", namespace: "tracebloc"},
		{name: "refresh.yaml", chart: postrenderChart, config: "../../../testdata/config/refresh.yaml", release: "stg",
			namespace: "tracebloc", values: []string{"refresh.enabled=false"}},
		{name: "proxy", chart: postrenderChart, config: filepath.Join(goldenDir, "proxy", "config.yaml"), release: "stg",
			namespace: "tracebloc", values: []string{"refresh.enabled=false"}},
		{name: "verification", chart: postrenderChart, config: filepath.Join(goldenDir, "verification-external",
			"config.yaml"), release: "stg", namespace: "tracebloc", values: []string{"refresh.enabled=false"},
			allowExternalKeys: true},
		// set-image with IfNotPresent, a chart that upgrades itself in the cluster (autoUpgrade).
		{name: "tracebloc-like", chart: "../../../testdata/charts/tracebloc-like",
			config: "../../../testdata/config/tracebloc-like.yaml", release: "rel", namespace: "tb", values: tbLike},
	}
}()

// TestLibraryChartHelm3: for each config, a parent chart that includes charts/image-refresh renders
// byte for byte the documents postrender appends with --config; postrender over that chart's output
// (config from the carried ConfigMap, or --config) accepts it and leaves every document as it was;
// chartcheck passes on the chart.
func TestLibraryChartHelm3(t *testing.T) {
	helm := tools.Require(t, tools.Helm3)
	bin := buildPostrender(t)
	env := helmEnv(t)
	t.Setenv(errorFileEnv, "")
	for _, tc := range libraryCases {
		t.Run(tc.name, func(t *testing.T) {
			chart := parentChart(t, tc)
			objects := objectsOf(t, tc.config)
			if len(objects) == 0 {
				t.Fatalf("no objects for %s", tc.config)
			}
			if err := os.WriteFile(filepath.Join(chart, "image-refresh", "objects.yaml"), objects, 0o644); err != nil {
				t.Fatal(err)
			}
			template := templateFunc(t, env, helm, bin, tc, chart)
			withoutObjects := []string{"imageRefreshObjects.enabled=false"}

			// What postrender appends to the chart without the objects is exactly `postrender objects`.
			bare := template(withoutObjects)
			// (Helm 3 prints the hooks, which it never post-renders, after the post-rendered stream.)
			if got := template(withoutObjects, "--config="+tc.config); !strings.Contains(got, string(objects)) ||
				strings.Replace(got, string(objects), "", 1) != bare {
				t.Fatalf("postrender --config appended something else than postrender objects wrote:\n%s", got)
			}

			// The library chart renders those documents, byte for byte.
			carried := template(nil)
			name := regexp.MustCompile(`(?m)^name: (\S+)$`).FindStringSubmatch(string(readFile(t, filepath.Join(chart,
				"Chart.yaml"))))[1]
			source := "# Source: " + name + "/templates/image-refresh.yaml\n"
			var fromLibrary []string
			for _, doc := range documents(carried) {
				if rest, ok := strings.CutPrefix(doc, source); ok {
					fromLibrary = append(fromLibrary, rest)
				}
			}
			if want := documents(string(objects)); !equalSorted(fromLibrary, want) {
				t.Errorf("the library chart rendered\n%s\nwant the documents of postrender objects:\n%s", strings.Join(fromLibrary,
					"---\n"), objects)
			}
			if bareDocs := withoutSource(documents(bare)); !equalSorted(withoutSource(documents(carried)), append(bareDocs,
				documents(string(objects))...)) {
				t.Errorf("the chart with the objects is not the chart without them plus the objects")
			}

			// postrender over the chart that carries them: accepted, every document as it was.
			for _, args := range [][]string{{}, {"--config=" + tc.config}} {
				if got := template(nil, args...); !equalSorted(withoutSource(documents(got)), withoutSource(documents(carried))) {
					t.Errorf("postrender %v changed the chart that carries the objects:\n%s", args, got)
				}
			}

			// chartcheck passes on the chart, the config given by its carried ConfigMap.
			check := &chartcheck.Check{
				ChartPath:         chart,
				Release:           chartcheck.Release{Name: tc.release, Namespace: tc.namespace, KubeVersion: kubeVersion},
				Values:            values.Options{Values: tc.values},
				AllowExternalKeys: tc.allowExternalKeys,
			}
			report, err := check.Run(context.Background())
			if err != nil {
				t.Fatalf("chartcheck: %v", err)
			}
			var text bytes.Buffer
			if err := chartcheck.WriteReport(&text, report, chartcheck.FormatText); err != nil {
				t.Fatal(err)
			}
			passed := 0
			for _, s := range report.Scenarios {
				for _, c := range s.Checks {
					if c.Status == chartcheck.StatusPass {
						passed++
					}
				}
			}
			if report.Failed() || report.RenderFailed() || passed < 5 {
				t.Errorf("chartcheck on the chart that carries the objects: %d checks passed\n%s", passed, text.String())
			}
		})
	}
}

// templateFunc runs `helm template` of a parent chart with the case's values and more; with postrenderArgs (even
// none) through postRenderer: the postrender binary (Helm 3) or the plugin's name (Helm 4).
func templateFunc(t *testing.T, env []string, helm, postRenderer string, tc libraryCase, chart string,
) func(values []string, postrenderArgs ...string) string {
	return func(values []string, postrenderArgs ...string) string {
		args := []string{"template", tc.release, chart, "-n", tc.namespace, "--kube-version", kubeVersion}
		for _, v := range append(slices.Clone(tc.values), values...) {
			args = append(args, "--set", v)
		}
		if postrenderArgs != nil {
			args = append(args, "--post-renderer", postRenderer)
			if tc.allowExternalKeys {
				postrenderArgs = append(postrenderArgs, "--allow-external-keys")
			}
			for _, a := range postrenderArgs {
				args = append(args, "--post-renderer-args", a)
			}
		}
		return runHelm(t, env, helm, args...)
	}
}

// parentChart copies tc.chart into a temporary directory, with charts/image-refresh as its
// dependency and, unless it has one, a template that includes it under imageRefreshObjects.enabled.
func parentChart(t *testing.T, tc libraryCase) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), filepath.Base(tc.chart))
	copyDir(t, tc.chart, dir)
	copyDir(t, libraryChart, filepath.Join(dir, "charts", "image-refresh"))
	if _, err := os.Stat(filepath.Join(dir, "templates", "image-refresh.yaml")); err == nil {
		return dir
	}
	chartYAML := string(readFile(t, filepath.Join(dir, "Chart.yaml"))) +
		"dependencies:\n  - name: image-refresh\n    version: 0.1.0\n    repository: file://../image-refresh\n"
	valuesYAML := string(readFile(t, filepath.Join(dir, "values.yaml"))) + "\nimageRefreshObjects:\n  enabled: true\n"
	writeChart(t, dir, map[string]string{
		"Chart.yaml":  chartYAML,
		"values.yaml": valuesYAML,
		"templates/image-refresh.yaml": "{{- if .Values.imageRefreshObjects.enabled }}\n" +
			"{{ include \"image-refresh.objects\" . }}\n{{- end }}\n",
		"image-refresh/.keep": "",
	})
	return dir
}

// copyDir copies a directory tree, following symbolic links.
func copyDir(t *testing.T, from, to string) {
	t.Helper()
	from, err := filepath.EvalSymlinks(from)
	if err != nil {
		t.Fatal(err)
	}
	err = filepath.WalkDir(from, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(from, path)
		if err != nil {
			return err
		}
		target := filepath.Join(to, rel)
		info, err := os.Stat(path)
		if err != nil {
			return err
		}
		if info.IsDir() {
			if d.Type()&os.ModeSymlink != 0 {
				copyDir(t, path, target)
				return nil
			}
			return os.MkdirAll(target, 0o755)
		}
		if d.Name() == "objects.yaml" {
			return nil // written by the test
		}
		copyFile(t, path, target, 0o644)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// documents cuts a stream on its "---" lines; a document keeps its # Source: line and line breaks.
func documents(stream string) []string {
	var out []string
	doc := ""
	for line := range strings.SplitAfterSeq(stream, "\n") {
		if line != "---\n" {
			doc += line
			continue
		}
		if strings.TrimSpace(doc) != "" {
			out = append(out, doc)
		}
		doc = ""
	}
	if strings.TrimSpace(doc) != "" {
		out = append(out, doc)
	}
	return out
}

var sourceLine = regexp.MustCompile(`^# Source: [^\n]*\n`)

func withoutSource(docs []string) []string {
	out := make([]string, len(docs))
	for i, doc := range docs {
		out[i] = sourceLine.ReplaceAllString(doc, "")
	}
	return out
}

func equalSorted(a, b []string) bool {
	return slices.Equal(slices.Sorted(slices.Values(a)), slices.Sorted(slices.Values(b)))
}

// TestLibraryChartFileMissingOrEmpty: a missing objects file fails the render with the command that
// generates it; an empty one (every image pinned) renders nothing.
func TestLibraryChartFileMissingOrEmpty(t *testing.T) {
	helm := tools.Require(t, tools.Helm3)
	env := helmEnv(t)
	chart := parentChart(t, libraryCase{chart: withLibraryChart})
	objects := filepath.Join(chart, "image-refresh", "objects.yaml")

	cmd := helmCommand(env, helm, "template", "stg", chart, "--kube-version", kubeVersion)
	out, err := cmd.CombinedOutput()
	if want := "image-refresh: chart with-library has no file image-refresh/objects.yaml; generate it with `postrender " +
		"objects --config refresh.yaml > image-refresh/objects.yaml`"; err == nil || !strings.Contains(string(out), want) {
		t.Errorf("helm template without the objects file: %v\n%s\nwant a failure saying %q", err, out, want)
	}

	if err := os.WriteFile(objects, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if got := runHelm(t, env, helm, "template", "stg", chart, "--kube-version", kubeVersion); strings.Contains(got,
		"templates/image-refresh.yaml") || !strings.Contains(got, "kind: Deployment") {
		t.Errorf("an empty objects file rendered something, or the chart nothing:\n%s", got)
	}
}
