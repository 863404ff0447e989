package cmd

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/cli"
)

const (
	clientChart = "../../../charts/client"
	clientSuite = "../../../charts/client/chartcheck.yaml"
	streams     = "../../../testdata/chartcheck/streams/"
	configs     = "../../../testdata/chartcheck/configs/"
)

// run runs the chartcheck binary with args and stdio.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(context.Background(), New(), args, stdin, stdout, stderr)
}

func TestExitCodes(t *testing.T) {
	valid, err := os.ReadFile(streams + "valid.yaml")
	if err != nil {
		t.Fatal(err)
	}
	verification, err := os.ReadFile(streams + "verification.yaml")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name       string
		args       []string
		stdin      string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{name: "chart passes", args: []string{clientChart, "--release", "stg", "-n", "tracebloc"}, wantCode: cli.ExitOK,
			wantStdout: "PASS ../../../charts/client (release stg, namespace tracebloc)"},
		{name: "run spelled out", args: []string{"run", clientChart, "--release", "stg", "-n", "tracebloc"},
			wantCode: cli.ExitOK, wantStdout: "1 scenarios, 1 passed, 0 failed"},
		{name: "nothing checked: no config rendered, none given", args: []string{"run", clientChart, "--set",
			"imageRefresh.enabled=false"}, wantCode: cli.ExitFailed, wantStdout: " skipped\n    refresh-config: stream: " +
			"expected a RefreshConfig to check the release against; found no RefreshConfig in the rendered stream and none " +
			"given: pass --config FILE (the config given at install time) or render the chart with its config\n"},
		{name: "suite passes", args: []string{"--suite", clientSuite}, wantCode: cli.ExitOK,
			wantStdout: " passed, 0 failed\n"},
		{name: "valid stream from stdin", args: []string{"--manifests", "-"}, stdin: string(valid), wantCode: cli.ExitOK,
			wantStdout: "PASS -:"},
		{name: "broken stream fails", args: []string{"--manifests", streams + "role-namespace-wide.yaml"},
			wantCode: cli.ExitFailed, wantStdout: "rbac: Role \"stg-image-refresh\" (document 6): expected resourceNames " +
				"[stg-jobs-manager]; found rules[0]: no resourceNames, a namespace-wide grant on every Deployment"},
		{name: "junit on failure", args: []string{"--manifests", streams + "env-chart-owned.yaml", "-o", "junit"},
			wantCode: cli.ExitFailed, wantStdout: `<testcase name="set-env" ` +
				`classname="chartcheck.../../../testdata/chartcheck/streams/env-chart-owned.yaml">`},
		{name: "schema rejects a digest", args: []string{clientChart, "--set", "images.ingestor.digest=sha256:abc"},
			wantCode: cli.ExitUsage, wantStderr: "at '/images/ingestor/digest': 'sha256:abc' does not match pattern"},
		{name: "external keys refused by the post-renderer", args: []string{clientChart, "--set",
			"imageRefresh.verification.keysConfigMap=signing-keys"}, wantCode: cli.ExitFailed,
			wantStdout: "post-render: stream: expected the post-renderer to accept the release; found refused (keys-missing)"},
		{name: "--allow-external-keys", args: []string{clientChart, "--set",
			"imageRefresh.verification.keysConfigMap=signing-keys", "--allow-external-keys"}, wantCode: cli.ExitOK,
			wantStdout: "0 failed"},
		{name: "--allow-external-keys on a stream", args: []string{"--manifests", "-", "--allow-external-keys"},
			stdin:    strings.Replace(string(verification), "  name: stg-image-refresh-keys\n", "  name: unrelated\n", 1),
			wantCode: cli.ExitOK, wantStdout: "PASS -:"},
		{name: "keys ConfigMap missing from a stream", args: []string{"--manifests", "-"},
			stdin:    strings.Replace(string(verification), "  name: stg-image-refresh-keys\n", "  name: unrelated\n", 1),
			wantCode: cli.ExitFailed, wantStdout: `verification-keys: ConfigMap "stg-image-refresh" (document 2, ` +
				`client/templates/image-refresh-config.yaml): expected ConfigMap "stg-image-refresh-keys"`},
		{name: "admission guard off: a warning, exit 0", args: []string{clientChart, "--set",
			"imageRefresh.admissionGuard=false"}, wantCode: cli.ExitOK, wantStdout: "(1 with a warning), 0 failed, 1 " +
			"skipped\n    admission-guard: warning: spec.job.admissionGuard is false: no admission guard, so the refresher's " +
			"token may patch anything in its targets' pod templates"},
		{name: "admission guard off in junit: a passing testcase", args: []string{"--manifests", streams + "guard-off.yaml",
			"-o", "junit"}, wantCode: cli.ExitOK, wantStdout: "<testcase name=\"admission-guard\" " +
			"classname=\"chartcheck.../../../testdata/chartcheck/streams/guard-off.yaml\">\n      <system-out>warning: " +
			"spec.job.admissionGuard is false"},
		{name: "admission guard weakened", args: []string{"--manifests", "-"}, stdin: strings.Replace(string(valid),
			"  failurePolicy: Fail\n", "  failurePolicy: Ignore\n", 1), wantCode: cli.ExitFailed,
			wantStdout: `admission-guard: ValidatingAdmissionPolicy "stg-image-refresh-guard.tracebloc" (document 9): ` +
				`expected failurePolicy Fail; found failurePolicy Ignore`},
		{name: "--config: the config given at install time", args: []string{clientChart, "--release", "stg", "-n",
			"tracebloc", "--set", "imageRefresh.enabled=false", "--config", configs + "stg.yaml"}, wantCode: cli.ExitOK,
			wantStdout: " passed, 0 failed, 1 skipped\n"},
		{name: "--post-renderer-args as helm's", args: []string{clientChart, "--release", "stg", "-n", "tracebloc", "--set",
			"imageRefresh.enabled=false", "--post-renderer-args", "--config", "--post-renderer-args", configs + "stg.yaml"},
			wantCode: cli.ExitOK, wantStdout: " passed, 0 failed, 1 skipped\n"},
		{name: "--config, every image pinned", args: []string{clientChart, "--release", "stg", "-n", "tracebloc", "--set",
			"imageRefresh.enabled=false", "--post-renderer-args=--config=" + configs + "stg-pinned.yaml"}, wantCode: cli.ExitOK,
			wantStdout: "PASS ../../../charts/client (release stg, namespace tracebloc): "},
		{name: "--config besides the chart's own", args: []string{clientChart, "--config", configs + "stg.yaml"},
			wantCode:   cli.ExitFailed,
			wantStdout: "found refused (config-conflict): --config was given, but the chart renders its own refresh config"},
		{name: "--config unreadable", args: []string{clientChart, "--config", configs + "missing.yaml"},
			wantCode: cli.ExitUsage, wantStderr: "Error: reading --config: open " + configs +
				"missing.yaml: no such file or directory\n"},
		{name: "--config with --manifests", args: []string{"--manifests", "-", "--config", configs + "stg.yaml"},
			stdin: string(valid), wantCode: cli.ExitUsage,
			wantStderr: "--config is the post-renderer's, and --manifests checks a stream without running it"},
		{name: "unknown post-renderer argument", args: []string{clientChart, "--post-renderer-args", "--nope"},
			wantCode: cli.ExitUsage, wantStderr: `Error: --post-renderer-args ["--nope"]: unknown flag: --nope`},
		{name: "a stream without a config", args: []string{"--manifests", "-"}, stdin: "apiVersion: v1\nkind: ConfigMap\n" +
			"metadata: {name: x}\n", wantCode: cli.ExitFailed, wantStdout: "refresh-config: stream: expected a RefreshConfig " +
			"to check the release against; found no RefreshConfig in the stream: check the stream as post-rendered " +
			"with its config"},
		{name: "unknown flag", args: []string{"--nope"}, wantCode: cli.ExitUsage, wantStderr: "unknown flag: --nope"},
		{name: "nothing to check", args: nil, wantCode: cli.ExitUsage, wantStderr: "nothing to check"},
		{name: "missing chart", args: []string{"./no-such-chart"}, wantCode: cli.ExitUsage,
			wantStderr: "loading chart ./no-such-chart"},
		{name: "bad output format", args: []string{clientChart, "-o", "yaml"}, wantCode: cli.ExitUsage,
			wantStderr: `-o "yaml": must be text, json or junit`},
		{name: "suite with --set", args: []string{"--suite", clientSuite, "--set", "a=b"}, wantCode: cli.ExitUsage,
			wantStderr: "--suite scenarios carry their own values"},
		{name: "merge key carries the set-env variable", args: []string{"--manifests", "-"},
			stdin: strings.Replace(string(valid), "        env:\n        - name: INGESTOR_IMAGE_REPOSITORY\n",
				"        env:\n        - <<: {name: INGESTOR_IMAGE_DIGEST, value: \"sha256:old\"}\n        - name: "+
					"INGESTOR_IMAGE_REPOSITORY\n", 1), wantCode: cli.ExitFailed,
			wantStdout: `found container "api" renders env INGESTOR_IMAGE_DIGEST with value "sha256:old"`},
		{name: "kind-less items of a ConfigMapList", args: []string{"--manifests", "-"}, stdin: string(valid) +
			"---\napiVersion: v1\nkind: ConfigMapList\nitems:\n- metadata: {name: extra, namespace: tracebloc}\n",
			wantCode: cli.ExitOK, wantStdout: "PASS -:"},
		{name: "malformed stream", args: []string{"--manifests", "-"}, stdin: "kind: [", wantCode: cli.ExitUsage,
			wantStderr: "document 1: not a Kubernetes object"},
		{name: "empty stream", args: []string{"--manifests", "-"}, stdin: "", wantCode: cli.ExitUsage,
			wantStderr: "-: empty stream: no Kubernetes object to check"},
		{name: "stream of comments only", args: []string{"--manifests", "-"},
			stdin: "---\n# Source: c/templates/x.yaml\n---\n", wantCode: cli.ExitUsage, wantStderr: "-: empty stream"},
		{name: "plan an empty stream", args: []string{"plan", "--manifests", "-"}, stdin: "", wantCode: cli.ExitUsage,
			wantStderr: "-: empty stream"},
		{name: "plan", args: []string{"plan", clientChart, "--release", "stg", "-n", "tracebloc"}, wantCode: cli.ExitOK,
			wantStdout: "  HEAD:       https://ghcr.io/v2/tracebloc/ingestor/manifests/prod\n"},
		{name: "plan junit", args: []string{"plan", clientChart, "-o", "junit"}, wantCode: cli.ExitUsage,
			wantStderr: "plan writes text or json"},
		{name: "plan a stream", args: []string{"plan", "--manifests", streams + "valid.yaml"}, wantCode: cli.ExitOK,
			wantStdout: "refresh config stg-image-refresh (namespace tracebloc)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(tt.args, strings.NewReader(tt.stdin), &stdout, &stderr)
			if code != tt.wantCode {
				t.Errorf("exit %d; want %d\nstdout:\n%s\nstderr:\n%s", code, tt.wantCode, stdout.String(), stderr.String())
			}
			if !strings.Contains(stdout.String(), tt.wantStdout) {
				t.Errorf("stdout lacks %q:\n%s", tt.wantStdout, stdout.String())
			}
			if !strings.Contains(stderr.String(), tt.wantStderr) {
				t.Errorf("stderr lacks %q:\n%s", tt.wantStderr, stderr.String())
			}
		})
	}
}

// TestUnexpectedRenderErrorInASuite: the report is still written, and the exit status is 2.
func TestUnexpectedRenderErrorInASuite(t *testing.T) {
	chart, err := filepath.Abs(clientChart)
	if err != nil {
		t.Fatal(err)
	}
	suite := filepath.Join(t.TempDir(), "suite.yaml")
	body := "chart: " + chart + "\nscenarios:\n- name: fine\n- name: bad-digest\n  set: {images.ingestor.digest: nope}\n"
	if err := os.WriteFile(suite, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	code := run([]string{"--suite", suite}, nil, &stdout, &stderr)
	if code != cli.ExitUsage {
		t.Errorf("exit %d; want %d", code, cli.ExitUsage)
	}
	for _, want := range []string{"PASS fine (release release-name, namespace default)",
		"ERROR bad-digest (release release-name, namespace default): rendering chart", "'nope' does not match pattern"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout.String())
		}
	}
	if !strings.Contains(stderr.String(), "a scenario could not be rendered") {
		t.Errorf("stderr: %s", stderr.String())
	}
}

// TestSuiteOnAPipelineStream: a suite scenario with manifests "-" states chart-specific
// expectations on the stream of a pipeline, which --manifests alone cannot.
func TestSuiteOnAPipelineStream(t *testing.T) {
	stream, err := os.ReadFile(streams + "ingestor-docker-io.yaml")
	if err != nil {
		t.Fatal(err)
	}
	suite := filepath.Join(t.TempDir(), "expect.yaml")
	body := "scenarios:\n- name: pipeline\n  manifests: \"-\"\n  expect: {images: {ingestor: {registry: ghcr.io, " +
		"annotation: tracebloc.io/last-refreshed-ingestor-digest}}}\n"
	if err := os.WriteFile(suite, []byte(body), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tt := range []struct {
		args     []string
		wantCode int
		want     string
	}{
		{[]string{"--manifests", "-"}, cli.ExitOK, "PASS -:"},
		{[]string{"--suite", suite}, cli.ExitFailed, `expect.image/ingestor: ConfigMap "stg-image-refresh" (document 2, ` +
			`client/templates/image-refresh-config.yaml): image ingestor: expected registry ghcr.io; found registry ` +
			`index.docker.io`},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(tt.args, bytes.NewReader(stream), &stdout, &stderr); code != tt.wantCode {
			t.Errorf("%q: exit %d; want %d\n%s%s", tt.args, code, tt.wantCode, stdout.String(), stderr.String())
		}
		if !strings.Contains(stdout.String(), tt.want) {
			t.Errorf("%q: stdout lacks %q:\n%s", tt.args, tt.want, stdout.String())
		}
	}
}

func TestJSONReport(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"--manifests", streams + "cronjob-all-pinned.yaml", "-o", "json"}, nil, &stdout, &stderr)
	if code != cli.ExitFailed {
		t.Fatalf("exit %d; want %d: %s", code, cli.ExitFailed, stderr.String())
	}
	var report struct {
		Passed    bool `json:"passed"`
		Scenarios []struct {
			Checks []struct {
				Name     string `json:"name"`
				Status   string `json:"status"`
				Findings []struct {
					Document, Expected, Found string
				} `json:"findings"`
			} `json:"checks"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("%v:\n%s", err, stdout.String())
	}
	if report.Passed {
		t.Error("passed: true for a failing stream")
	}
	for _, c := range report.Scenarios[0].Checks {
		if c.Name == "cronjob-presence" {
			if c.Status != "fail" || len(c.Findings) != 1 ||
				c.Findings[0].Document != `CronJob "stg-image-refresh" (document 8)` {
				t.Errorf("cronjob-presence: %+v", c)
			}
			return
		}
	}
	t.Error("no cronjob-presence check in the report")
}

// TestJSONWarning: a warning is status "warn" with its text, and the report still passes.
func TestJSONWarning(t *testing.T) {
	var stdout, stderr bytes.Buffer
	code := run([]string{"--manifests", streams + "guard-off.yaml", "-o", "json"}, nil, &stdout, &stderr)
	if code != cli.ExitOK {
		t.Fatalf("exit %d; want %d: %s", code, cli.ExitOK, stderr.String())
	}
	var report struct {
		Passed    bool `json:"passed"`
		Scenarios []struct {
			Checks []struct {
				Name, Status, Warning string
			} `json:"checks"`
		} `json:"scenarios"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &report); err != nil {
		t.Fatalf("%v:\n%s", err, stdout.String())
	}
	if !report.Passed {
		t.Error("passed: false for a stream with a warning only")
	}
	for _, c := range report.Scenarios[0].Checks {
		if c.Name == "admission-guard" {
			if c.Status != "warn" || !strings.HasPrefix(c.Warning, "spec.job.admissionGuard is false") {
				t.Errorf("admission-guard: %+v", c)
			}
			return
		}
	}
	t.Error("no admission-guard check in the report")
}
