package cmd

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tracebloc/image-refresh/internal/cli"
	"github.com/tracebloc/image-refresh/internal/version"
)

const goldenDir = "../../../testdata/postrender/golden"

// run runs the postrender binary with args and stdio.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	return cli.Run(context.Background(), New(), args, stdin, stdout, stderr)
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestRun(t *testing.T) {
	floating := readFile(t, filepath.Join(goldenDir, "all-floating", "input.yaml"))
	noConfig := readFile(t, filepath.Join(goldenDir, "no-config", "input.yaml"))
	configFile := filepath.Join(goldenDir, "config-from-file", "config.yaml")
	keysConfig := filepath.Join(goldenDir, "verification-external", "config.yaml")
	badConfig := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\n"+
		"metadata: {name: x}\nspec: {images: []}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name     string
		args     []string
		stdin    []byte
		wantCode int
		// wantOut is the expected stdout; wantStderr substrings of stderr.
		wantOut    []byte
		wantStderr []string
	}{
		{name: "stream config", stdin: floating, wantCode: cli.ExitOK, wantOut: readFile(t, filepath.Join(goldenDir,
			"all-floating", "output.yaml"))},
		{name: "--config", args: []string{"--config", configFile}, stdin: noConfig, wantCode: cli.ExitOK, wantOut: readFile(t,
			filepath.Join(goldenDir, "config-from-file", "output.yaml"))},
		{name: "--config=FILE as Helm passes it", args: []string{"--config=" + configFile}, stdin: noConfig,
			wantCode: cli.ExitOK, wantOut: readFile(t, filepath.Join(goldenDir, "config-from-file", "output.yaml"))},
		{name: "--allow-external-keys", args: []string{"--config", keysConfig, "--allow-external-keys"}, stdin: noConfig,
			wantCode: cli.ExitOK, wantOut: readFile(t, filepath.Join(goldenDir, "verification-external", "output.yaml"))},
		{name: "refused: keys ConfigMap neither rendered nor external", args: []string{"--config", keysConfig},
			stdin: noConfig, wantCode: exitRefused,
			wantStderr: []string{`keys of ConfigMap "cluster-signing-keys" (spec.verification.keysConfigMap), which the ` +
				`release does not render in namespace tracebloc`, "pass --allow-external-keys"}},
		{name: "empty input", stdin: nil, wantCode: cli.ExitOK, wantOut: nil},
		{name: "refused: both configs", args: []string{"--config", configFile}, stdin: floating, wantCode: exitRefused,
			wantStderr: []string{"image-refresh postrender: --config was given, but the chart renders its own refresh config " +
				"in ConfigMap stg-image-refresh"}},
		{name: "refused: a merge key carries the set-env variable", stdin: edit(t, floating, "        env:\n",
			"        env:\n        - <<: {name: INGESTOR_IMAGE_DIGEST, value: \"sha256:old\"}\n"), wantCode: exitRefused,
			wantStderr: []string{`image "ingestor"`, `renders env INGESTOR_IMAGE_DIGEST with value "sha256:old"`}},
		{name: "refused: duplicate imagePullPolicy, the last IfNotPresent", stdin: edit(t, floating,
			"        imagePullPolicy: Always\n        env:",
			"        imagePullPolicy: Always\n        imagePullPolicy: IfNotPresent\n        env:"), wantCode: exitRefused,
			wantStderr: []string{`image "jobs-manager"`, "with imagePullPolicy IfNotPresent"}},
		{name: "refused: malformed stream", stdin: []byte("a: [\n"), wantCode: exitRefused,
			wantStderr: []string{"malformed YAML"}},
		{name: "refused: invalid --config", args: []string{"--config", badConfig}, stdin: noConfig, wantCode: exitRefused,
			wantStderr: []string{"--config " + badConfig, "spec.images: at least one image is required"}},
		{name: "usage: missing --config file", args: []string{"--config", "/nonexistent/refresh.yaml"}, stdin: noConfig,
			wantCode: cli.ExitUsage, wantStderr: []string{"reading --config"}},
		{name: "usage: unknown flag", args: []string{"--bogus"}, wantCode: cli.ExitUsage,
			wantStderr: []string{"unknown flag: --bogus"}},
		{name: "usage: argument", args: []string{"extra"}, wantCode: cli.ExitUsage,
			wantStderr: []string{`unexpected argument "extra": the release is read from stdin`}},
		{name: "--version", args: []string{"--version"}, wantCode: cli.ExitOK, wantOut: []byte("postrender version " +
			version.Version + "\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errorFile := filepath.Join(t.TempDir(), "state", "error.txt")
			t.Setenv(errorFileEnv, errorFile)
			var stdout, stderr bytes.Buffer
			code := run(tc.args, bytes.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if tc.wantCode != cli.ExitOK {
				if stdout.Len() > 0 {
					t.Errorf("stdout is not empty on failure:\n%s", stdout.String())
				}
				entries := readErrorLog(t, errorFile)
				message, _, _ := strings.Cut(stderr.String(), "\n(this message is also appended to "+errorFile+")\n")
				message = strings.TrimSuffix(message, "\n")
				if len(entries) != 1 || entries[0].message != message {
					t.Errorf("the error log does not hold stderr's message in one entry:\nstderr: %s\nlog: %+v", stderr.String(),
						entries)
				}
			} else if !bytes.Equal(stdout.Bytes(), tc.wantOut) {
				t.Errorf("stdout differs from the expected output (%d bytes, want %d)", stdout.Len(), len(tc.wantOut))
			}
			for _, want := range tc.wantStderr {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr lacks %q:\n%s", want, stderr.String())
				}
			}
		})
	}
}

// edit replaces old (which must occur) by new in a stream.
func edit(t *testing.T, stream []byte, old, new string) []byte {
	t.Helper()
	if !bytes.Contains(stream, []byte(old)) {
		t.Fatalf("the stream lacks %q", old)
	}
	return bytes.Replace(stream, []byte(old), []byte(new), 1)
}

// loggedError is one entry of the error log, as read back: the header after errorLogHeader,
// and the message lines.
type loggedError struct{ header, message string }

func readErrorLog(t *testing.T, path string) []loggedError {
	t.Helper()
	data := string(readFile(t, path))
	if !strings.HasPrefix(data, errorLogHeader) || !strings.HasSuffix(data, "\n") {
		t.Fatalf("%s is not a sequence of whole entries (%d bytes)", path, len(data))
	}
	var entries []loggedError
	for line := range strings.Lines(data) {
		if header, ok := strings.CutPrefix(line, errorLogHeader); ok {
			entries = append(entries, loggedError{header: strings.TrimSuffix(header, "\n")})
			continue
		}
		entries[len(entries)-1].message += line
	}
	for i := range entries {
		entries[i].message = strings.TrimSuffix(entries[i].message, "\n")
	}
	return entries
}

// TestErrorLog: each failure appends an entry that says which run failed; a success leaves
// the log alone; an empty IMAGE_REFRESH_ERROR_FILE writes none.
func TestErrorLog(t *testing.T) {
	errorFile := filepath.Join(t.TempDir(), "state", "errors.log")
	t.Setenv(errorFileEnv, errorFile)
	t.Setenv("HELM_NAMESPACE", "prod")
	fail := func(args ...string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		if code := run(args, strings.NewReader("- x\n"), &stdout, &stderr); code != exitRefused {
			t.Fatalf("exit code %d, want %d", code, exitRefused)
		}
	}
	fail()
	afterFailure := readFile(t, errorFile)
	var stdout, stderr bytes.Buffer
	if code := run(nil, strings.NewReader("a: 1\n"), &stdout, &stderr); code != cli.ExitOK {
		t.Fatalf("exit code %d, want %d", code, cli.ExitOK)
	}
	if got := readFile(t, errorFile); !bytes.Equal(got, afterFailure) {
		t.Errorf("a success changed the error log:\n%s", got)
	}
	fail("--config=")
	entries := readErrorLog(t, errorFile)
	if len(entries) != 2 {
		t.Fatalf("%d entries after two failures, want 2: %+v", len(entries), entries)
	}
	dir, _ := os.Getwd()
	for i, wantArgs := range []string{"args []", `args ["--config="]`} {
		e := entries[i]
		if _, err := time.Parse(time.RFC3339Nano, strings.Fields(e.header)[0]); err != nil {
			t.Errorf("entry %d header does not start with its time: %q", i, e.header)
		}
		for _, want := range []string{fmt.Sprintf("pid %d,", os.Getpid()), "dir " + dir + ",", `HELM_NAMESPACE="prod"`,
			wantArgs} {
			if !strings.Contains(e.header, want) {
				t.Errorf("entry %d header lacks %q: %q", i, want, e.header)
			}
		}
		if !strings.Contains(e.message, "image-refresh postrender: document 1") {
			t.Errorf("entry %d lacks the message: %q", i, e.message)
		}
	}

	t.Setenv(errorFileEnv, filepath.Join(errorFile, "not-a-directory", "errors.log"))
	stderr.Reset()
	if code := run(nil, strings.NewReader("- x\n"), &stdout, &stderr); code != exitRefused {
		t.Fatalf("exit code %d, want %d", code, exitRefused)
	}
	if !strings.Contains(stderr.String(), "(could not append this message to ") {
		t.Errorf("stderr does not say the log could not be written: %s", stderr.String())
	}

	t.Setenv(errorFileEnv, "")
	stderr.Reset()
	if code := run(nil, strings.NewReader("- x\n"), &stdout, &stderr); code != exitRefused {
		t.Fatalf("exit code %d, want %d", code, exitRefused)
	}
	if strings.Contains(stderr.String(), "appended") {
		t.Errorf("error log reported although disabled: %s", stderr.String())
	}
}

// TestErrorLogConcurrentRuns: failing processes that run at once each leave a whole entry, and
// a success among them removes none.
func TestErrorLogConcurrentRuns(t *testing.T) {
	bin := buildPostrender(t)
	errorFile := filepath.Join(t.TempDir(), "errors.log")
	const failures = 8
	var wg sync.WaitGroup
	for i := range failures + 1 {
		wg.Go(func() {
			cmd := exec.Command(bin)
			cmd.Env = append(os.Environ(), errorFileEnv+"="+errorFile)
			if i == failures {
				cmd.Stdin = strings.NewReader("a: 1\n")
			} else {
				// A long message per run, so interleaved writes would show.
				cmd.Stdin = strings.NewReader(fmt.Sprintf("---\n# Source: run-%d/%s.yaml\n- x\n", i, strings.Repeat("x", 64<<10)))
			}
			if err := cmd.Run(); (err == nil) != (i == failures) {
				t.Errorf("run %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	entries := readErrorLog(t, errorFile)
	seen := map[string]bool{}
	for i, e := range entries {
		_, run, _ := strings.Cut(e.message, "run-")
		run, _, _ = strings.Cut(run, "/")
		if strings.Count(e.message, "run-") != 1 || !strings.HasSuffix(e.message, "post-renderer shows it)") {
			t.Errorf("entry %d is not one whole message (%d bytes)", i, len(e.message))
		}
		seen[run] = true
	}
	if len(entries) != failures || len(seen) != failures {
		t.Errorf("%d entries from %d runs, want %d of each", len(entries), len(seen), failures)
	}
}

// TestErrorLogRotation: a log past the limit moves to <log>.1 before the next entry.
func TestErrorLogRotation(t *testing.T) {
	errorFile := filepath.Join(t.TempDir(), "errors.log")
	old := append([]byte(errorLogHeader+"old\n"), bytes.Repeat([]byte("x"), errorLogRotateSize)...)
	if err := os.WriteFile(errorFile, old, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := appendErrorLog(errorFile, []byte(errorLogHeader+"new\nmessage\n")); err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, errorFile+".1"); !bytes.Equal(got, old) {
		t.Errorf("%s.1 is not the old log (%d bytes, want %d)", errorFile, len(got), len(old))
	}
	if entries := readErrorLog(t, errorFile); len(entries) != 1 || entries[0].header != "new" {
		t.Errorf("the log holds %+v, want only the new entry", entries)
	}
}

func TestErrorFilePathDefault(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	t.Setenv(errorFileEnv, "") // restored after the test
	os.Unsetenv(errorFileEnv)
	if got, want := errorFilePath(), "/state/image-refresh/postrender-errors.log"; got != want {
		t.Errorf("errorFilePath() = %q, want %q", got, want)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got, want := errorFilePath(), "/home/u/.local/state/image-refresh/postrender-errors.log"; got != want {
		t.Errorf("errorFilePath() = %q, want %q", got, want)
	}
}

// A deprecated field (spec.waitLimit) renders all the same, with a warning on stderr naming the
// replacement and what the field now reads as.
func TestDeprecationWarning(t *testing.T) {
	t.Setenv(errorFileEnv, filepath.Join(t.TempDir(), "error.txt"))
	config := strings.Replace(string(readFile(t, filepath.Join(goldenDir, "config-from-file", "config.yaml"))), "spec:\n",
		"spec:\n  waitLimit: 4\n", 1)
	path := filepath.Join(t.TempDir(), "refresh.yaml")
	if err := os.WriteFile(path, []byte(config), 0o644); err != nil {
		t.Fatal(err)
	}
	var stdout, stderr bytes.Buffer
	if code := run([]string{"--config", path}, bytes.NewReader(readFile(t, filepath.Join(goldenDir, "no-config",
		"input.yaml"))), &stdout, &stderr); code != cli.ExitOK {
		t.Fatalf("exit code %d; stderr:\n%s", code, stderr.String())
	}
	want := `postrender: warning: refresh config "stg-image-refresh": spec.waitLimit is deprecated and will be removed: ` +
		`it now reads as spec.waitTimeout 1h0m0s`
	if !strings.Contains(stderr.String(), want) || !strings.Contains(stdout.String(), "kind: CronJob") {
		t.Errorf("stderr %q, want %q; a CronJob in stdout: %v", stderr.String(), want, strings.Contains(stdout.String(),
			"kind: CronJob"))
	}
}
