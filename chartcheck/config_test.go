package chartcheck

import (
	"bytes"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/postrender"
)

// A chart that does not render its refresh config: it is given at install time.
const (
	bareChartYAML = "apiVersion: v2\nname: bare\nversion: 0.1.0\n"
	bareApp       = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: {{ .Release.Name }}-app
  namespace: {{ .Release.Namespace }}
spec:
  selector: {matchLabels: {app: app}}
  template:
    metadata: {labels: {app: app}}
    spec:
      containers:
      - name: api
        image: docker.io/acme/app:prod
        imagePullPolicy: Always
`
	// bareOwnConfig is the chart rendering a config of its own, which --config conflicts with.
	bareOwnConfig = `apiVersion: v1
kind: ConfigMap
metadata:
  name: own-refresh
  namespace: {{ .Release.Namespace }}
  labels: {image-refresh.io/config: "true"}
data:
  refresh.yaml: |
` + "    " + `apiVersion: image-refresh.io/v1alpha1
    kind: RefreshConfig
    metadata: {name: own-refresh}
    spec:
      images:
      - {name: app, repository: docker.io/acme/app, tag: prod, action: rollout-restart, target: {kind: Deployment, ` +
		`name: rel-app, container: api}, annotation: acme.io/last-refreshed-app-digest}
`
	// bareSquatter is a Role of the chart named after the config: with every image pinned,
	// nothing may be there under the config's names.
	bareSquatter = `apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata:
  name: app-refresh
  namespace: {{ .Release.Namespace }}
rules: []
`
)

// refreshConfig is a RefreshConfig for the bare chart's Deployment released as "rel".
func refreshConfig(digest, target string) string {
	image := "  - {name: app, repository: docker.io/acme/app, tag: prod, action: rollout-restart, target: {kind: " +
		"Deployment, name: " + target + ", container: api}, annotation: acme.io/last-refreshed-app-digest"
	if digest != "" {
		image += ", digest: " + digest
	}
	return "apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\nmetadata: {name: app-refresh}\nspec:\n" +
		"  images:\n" + image + "}\n"
}

// writeFiles writes files (path: content) under a new temporary directory and returns it.
func writeFiles(t *testing.T, files map[string]string) string {
	t.Helper()
	dir := t.TempDir()
	for name, content := range files {
		path := filepath.Join(dir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// findingsOf lists a scenario's findings as "check: finding".
func findingsOf(s *ScenarioResult) []string {
	var out []string
	for _, c := range s.Checks {
		for _, f := range c.Findings {
			out = append(out, c.Name+": "+f.String())
		}
	}
	return out
}

const nothingCheckedFinding = "refresh-config: stream: expected a RefreshConfig to check the release against; " +
	"found no RefreshConfig in the rendered stream and none given: pass --config FILE (the config given at install " +
	"time) or render the chart with its config"

// TestGivenConfig: a chart whose config is given at install time is checked against it with
// --config or --post-renderer-args; without one, nothing is checked and the run fails.
func TestGivenConfig(t *testing.T) {
	const pin = "sha256:8a71aa1763956c8e65f60ee4bc7d89af97a532ce87d335817330395340cd40be"
	dir := writeFiles(t, map[string]string{
		"chart/Chart.yaml":              bareChartYAML,
		"chart/templates/app.yaml":      bareApp,
		"own/Chart.yaml":                bareChartYAML,
		"own/templates/app.yaml":        bareApp,
		"own/templates/config.yaml":     bareOwnConfig,
		"squat/Chart.yaml":              bareChartYAML,
		"squat/templates/app.yaml":      bareApp,
		"squat/templates/squatter.yaml": bareSquatter,
		"floating.yaml":                 refreshConfig("", "rel-app"),
		"pinned.yaml":                   refreshConfig(pin, "rel-app"),
		"elsewhere.yaml":                refreshConfig("", "other-app"),
		"invalid.yaml": "apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\n" +
			"metadata: {name: app-refresh}\nspec: {images: []}\n",
	})
	chart, own, squat := filepath.Join(dir, "chart"), filepath.Join(dir, "own"), filepath.Join(dir, "squat")
	floating, pinned := filepath.Join(dir, "floating.yaml"), filepath.Join(dir, "pinned.yaml")
	tests := []struct {
		name  string
		check Check
		// wantFindings are the findings' prefixes, in order; none means the run passes.
		wantFindings []string
		// wantRun are checks that must have run (not skipped); wantSkip maps checks to the reason.
		wantRun  []string
		wantSkip map[string]string
	}{
		{
			name:         "no config rendered and none given: nothing checked",
			check:        Check{ChartPath: chart},
			wantFindings: []string{nothingCheckedFinding},
			wantSkip:     map[string]string{cronJobConfigCheck: "no refresh config in the stream"},
		},
		{
			name:  "--config: every check runs against it",
			check: Check{ChartPath: chart, ConfigPath: floating},
			wantRun: []string{
				postRenderCheck, refreshConfigCheck, cronJobCheck, cronJobConfigCheck, scheduleCheck, podSecurityCheck, rbacCheck,
				guardCheck, targetsCheck, rolloutRestartCheck, annotationsCheck,
			},
		},
		{
			name:    "--post-renderer-args --config=FILE",
			check:   Check{ChartPath: chart, PostRendererArgs: []string{"--config=" + floating}},
			wantRun: []string{cronJobConfigCheck, rbacCheck, guardCheck, targetsCheck},
		},
		{
			name:    "--post-renderer-args --config FILE --allow-external-keys, one argument each",
			check:   Check{ChartPath: chart, PostRendererArgs: []string{"--config", floating, "--allow-external-keys"}},
			wantRun: []string{cronJobConfigCheck, rbacCheck},
		},
		{
			name:    "the same config twice",
			check:   Check{ChartPath: chart, ConfigPath: floating, PostRendererArgs: []string{"--config=" + floating}},
			wantRun: []string{cronJobConfigCheck},
		},
		{
			name:     "every image pinned: nothing injected, and that passes",
			check:    Check{ChartPath: chart, ConfigPath: pinned},
			wantRun:  []string{cronJobCheck, rbacCheck, guardCheck},
			wantSkip: map[string]string{cronJobConfigCheck: "every image is pinned", targetsCheck: "every image is pinned"},
		},
		{
			name:  "every image pinned: a Role under the config's name is still caught",
			check: Check{ChartPath: squat, ConfigPath: pinned},
			wantFindings: []string{
				`rbac: Role "app-refresh" (document 1, bare/templates/squatter.yaml): expected nothing injected: every image is ` +
					`pinned; ` +
					`found an image-refresh Role`,
			},
		},
		{
			name:  "an invalid --config is the post-renderer's refusal",
			check: Check{ChartPath: chart, ConfigPath: filepath.Join(dir, "invalid.yaml")},
			wantFindings: []string{
				"post-render: stream: expected the post-renderer to accept the release; found refused (invalid-config): --config " +
					filepath.Join(dir, "invalid.yaml") + `: invalid refresh config "app-refresh"`,
			},
			wantSkip: map[string]string{cronJobCheck: "the post-renderer refused the release"},
		},
		{
			name:  "refused: the stream checks still read the given config",
			check: Check{ChartPath: chart, ConfigPath: filepath.Join(dir, "elsewhere.yaml")},
			wantFindings: []string{
				"post-render: stream: expected the post-renderer to accept the release; found refused (target-missing): ",
				`targets: ConfigMap "app-refresh-config" (document 2, --config ` + filepath.Join(dir, "elsewhere.yaml") +
					`): image app: expected target Deployment prod/other-app in the stream; found no such object`,
			},
			wantRun: []string{refreshConfigCheck, targetsCheck},
		},
		{
			name:  "the chart renders its own config too",
			check: Check{ChartPath: own, ConfigPath: floating},
			wantFindings: []string{
				"post-render: stream: expected the post-renderer to accept the release; found refused (config-conflict): " +
					"--config was given, but the chart renders its own refresh config",
				`refresh-config: ConfigMap "app-refresh-config" (document 3, --config ` + floating + `): expected at most one ` +
					`ConfigMap labelled image-refresh.io/config=true; found 2`,
			},
		},
		{
			name:    "the chart renders its own config",
			check:   Check{ChartPath: own},
			wantRun: []string{cronJobConfigCheck, targetsCheck},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.check.Release = Release{Name: "rel", Namespace: "prod"}
			report, err := tt.check.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			s := &report.Scenarios[0]
			got := findingsOf(s)
			if len(got) != len(tt.wantFindings) || report.Failed() != (len(tt.wantFindings) > 0) {
				t.Fatalf(
					"failed %t, findings:\n  %s\nwant:\n  %s",
					report.Failed(),
					strings.Join(got, "\n  "),
					strings.Join(tt.wantFindings, "\n  "),
				)
			}
			for i, want := range tt.wantFindings {
				if !strings.HasPrefix(got[i], want) {
					t.Errorf("finding %d:\n  %s\nwant prefix:\n  %s", i, got[i], want)
				}
			}
			for _, name := range tt.wantRun {
				if st := checkStatus(s, name); st == StatusSkip || st == "" {
					t.Errorf("check %s: %q, want it run", name, st)
				}
			}
			for name, reason := range tt.wantSkip {
				for _, c := range s.Checks {
					if c.Name == name && (c.Status != StatusSkip || !strings.HasPrefix(c.Reason, reason)) {
						t.Errorf("check %s: %s %q, want skip %q", name, c.Status, c.Reason, reason)
					}
				}
			}
		})
	}
}

// TestNothingChecked: a stream without a config fails unless a config was given or a suite
// scenario expects it absent; a --manifests stream is told how to carry one.
func TestNothingChecked(t *testing.T) {
	dir := writeFiles(t, map[string]string{
		"chart/Chart.yaml":         bareChartYAML,
		"chart/templates/app.yaml": bareApp,
		"floating.yaml":            refreshConfig("", "rel-app"),
		"stream.yaml": strings.NewReplacer(
			"{{ .Release.Name }}", "rel",
			"{{ .Release.Namespace }}", "prod",
		).Replace(bareApp),
		"suite.yaml": `chart: chart
release: rel
scenarios:
- {name: absent-on-purpose, expect: {config: absent}}
- {name: unchecked}
- {name: given, config: floating.yaml}
- {name: cronjob-absent-is-not-enough, expect: {cronJob: absent}}
- {name: stream, manifests: stream.yaml}
- {name: stream-absent-on-purpose, manifests: stream.yaml, expect: {config: absent}}
`,
		"suite-config.yaml": "chart: chart\nrelease: rel\nconfig: floating.yaml\nscenarios:\n- {name: from-the-suite}\n" +
			"- {name: stream, manifests: stream.yaml}\n",
	})
	const streamFinding = "refresh-config: stream: expected a RefreshConfig to check the release against; found no " +
		"RefreshConfig in the stream: " +
		"check the stream as post-rendered with its config (postrender --config FILE appends it), or check the chart with " +
		"--config FILE"
	tests := []struct {
		name  string
		check Check
		want  map[string][]string // scenario: findings (none: it passes)
	}{
		{"suite", Check{SuitePath: filepath.Join(dir, "suite.yaml")}, map[string][]string{
			"absent-on-purpose":            nil,
			"unchecked":                    {nothingCheckedFinding},
			"given":                        nil,
			"cronjob-absent-is-not-enough": {nothingCheckedFinding},
			"stream":                       {streamFinding},
			"stream-absent-on-purpose":     nil,
		}},
		{
			"suite config: applies to rendered scenarios only",
			Check{SuitePath: filepath.Join(dir, "suite-config.yaml")},
			map[string][]string{
				"from-the-suite": nil,
				"stream":         {streamFinding},
			},
		},
		{
			"--config with a suite",
			Check{SuitePath: filepath.Join(dir, "suite.yaml"), ConfigPath: filepath.Join(dir, "floating.yaml")},
			map[string][]string{
				// A scenario that expects no config finds the given one.
				"absent-on-purpose":            {`expect.config: ConfigMap "app-refresh-config"`},
				"unchecked":                    nil,
				"given":                        nil,
				"cronjob-absent-is-not-enough": {`expect.cronJob: CronJob "app-refresh"`},
				"stream":                       {streamFinding},
				"stream-absent-on-purpose":     nil,
			},
		},
		{"--manifests", Check{ManifestsPath: filepath.Join(dir, "stream.yaml")}, map[string][]string{
			filepath.Join(dir, "stream.yaml"): {streamFinding},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			report, err := tt.check.Run(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if len(report.Scenarios) != len(tt.want) {
				t.Fatalf("scenarios %v; want %d", scenarioNames(report), len(tt.want))
			}
			for i := range report.Scenarios {
				s := &report.Scenarios[i]
				want, ok := tt.want[s.Name]
				got := findingsOf(s)
				if !ok || s.RenderError != "" || len(got) != len(want) {
					t.Errorf(
						"%s: render error %q, findings:\n  %s\nwant:\n  %s",
						s.Name,
						s.RenderError,
						strings.Join(got, "\n  "),
						strings.Join(want, "\n  "),
					)
					continue
				}
				for j := range want {
					if !strings.HasPrefix(got[j], want[j]) {
						t.Errorf("%s: finding %d:\n  %s\nwant prefix:\n  %s", s.Name, j, got[j], want[j])
					}
				}
			}
		})
	}
}

// TestGivenConfigUsageErrors: the post-renderer's arguments are checked as its binary checks them.
func TestGivenConfigUsageErrors(t *testing.T) {
	dir := writeFiles(t, map[string]string{"a.yaml": refreshConfig("", "rel-app"), "b.yaml": refreshConfig("", "rel-app")})
	a, b := filepath.Join(dir, "a.yaml"), filepath.Join(dir, "b.yaml")
	tests := []struct {
		name    string
		check   Check
		wantErr string
	}{
		{
			"--config with --manifests",
			Check{ManifestsPath: validStream, ConfigPath: a},
			"--config is the post-renderer's, and --manifests checks a stream without running it",
		},
		{
			"--post-renderer-args --config with --manifests",
			Check{ManifestsPath: validStream, PostRendererArgs: []string{"--config=" + a}},
			"--manifests checks a stream without running it",
		},
		{
			"unknown post-renderer flag",
			Check{ChartPath: clientChart, PostRendererArgs: []string{"--nope"}},
			`--post-renderer-args ["--nope"]: unknown flag: --nope`,
		},
		{
			"positional post-renderer argument",
			Check{ChartPath: clientChart, PostRendererArgs: []string{"refresh.yaml"}},
			`unexpected argument "refresh.yaml": the release is read from stdin`,
		},
		{
			"two configs",
			Check{ChartPath: clientChart, ConfigPath: a, PostRendererArgs: []string{"--config=" + b}},
			"give the config once",
		},
		{
			"unreadable --config",
			Check{ChartPath: clientChart, ConfigPath: filepath.Join(dir, "missing.yaml")},
			"reading --config: open ",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.check.Run(context.Background())
			var usage *usageError
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) || !errors.As(err, &usage) {
				t.Fatalf("error %v; want a usage error with %q", err, tt.wantErr)
			}
		})
	}
	// --allow-external-keys alone is no post-rendering, so it goes with --manifests.
	if _, err := (&Check{
		ManifestsPath:    validStream,
		PostRendererArgs: []string{"--allow-external-keys"},
	}).Run(context.Background()); err != nil {
		t.Errorf("--manifests --post-renderer-args --allow-external-keys: %v", err)
	}
}

// TestSuiteConfigValidation: a manifests scenario is checked as rendered, so it takes no config.
func TestSuiteConfigValidation(t *testing.T) {
	path := filepath.Join(
		writeFiles(t, map[string]string{"suite.yaml": "scenarios:\n- {name: s, manifests: x.yaml, config: c.yaml}\n"}),
		"suite.yaml",
	)
	if _, err := loadSuite(path); err == nil ||
		!strings.Contains(err.Error(), "manifests excludes values, set, setString, reuseValues, expectError and config") {
		t.Errorf("error %v", err)
	}
}

// TestConfigMapDocument: the ConfigMap chartcheck appends when the post-renderer refused a
// release is, after its Source comment, the one the post-renderer appends when it accepts one.
func TestConfigMapDocument(t *testing.T) {
	for _, tt := range []struct{ name, config string }{
		{"no namespace", refreshConfig("", "rel-app")},
		{
			"a namespace",
			strings.Replace(
				refreshConfig("", "rel-app"),
				"metadata: {name: app-refresh}",
				"metadata: {name: app-refresh, namespace: prod}",
				1,
			),
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := config.Parse([]byte(tt.config))
			if err != nil {
				t.Fatal(err)
			}
			manifest := strings.NewReplacer("{{ .Release.Name }}", "rel", "{{ .Release.Namespace }}", "prod").Replace(bareApp)
			out, err := postrender.Render([]byte("---\n"+manifest), postrender.Options{Config: cfg})
			if err != nil {
				t.Fatal(err)
			}
			setup := postRenderSetup{opts: postrender.Options{Config: cfg}, configFile: "c.yaml"}
			given, err := setup.givenConfig()
			if err != nil {
				t.Fatal(err)
			}
			doc, err := configMapDocument(given, "c.yaml")
			if err != nil {
				t.Fatal(err)
			}
			want, ok := bytes.CutPrefix(doc, []byte("---\n# Source: --config c.yaml\n"))
			if !ok {
				t.Fatalf("no Source comment:\n%s", doc)
			}
			if !bytes.Contains(out, append([]byte("---\n"), want...)) {
				t.Errorf("post-renderer output lacks\n%s\nin\n%s", want, out)
			}
		})
	}
}
