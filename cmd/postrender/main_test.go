package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/cmd/internal/version"
)

const goldenDir = "../../testdata/postrender/golden"

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
	badConfig := filepath.Join(t.TempDir(), "bad.yaml")
	if err := os.WriteFile(badConfig, []byte("apiVersion: image-refresh.io/v1alpha1\nkind: RefreshConfig\nmetadata: {name: x}\nspec: {images: []}\n"), 0o644); err != nil {
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
		{name: "stream config", stdin: floating, wantCode: exitOK, wantOut: readFile(t, filepath.Join(goldenDir, "all-floating", "output.yaml"))},
		{name: "--config", args: []string{"--config", configFile}, stdin: noConfig, wantCode: exitOK, wantOut: readFile(t, filepath.Join(goldenDir, "config-from-file", "output.yaml"))},
		{name: "--config=FILE as Helm passes it", args: []string{"--config=" + configFile}, stdin: noConfig, wantCode: exitOK, wantOut: readFile(t, filepath.Join(goldenDir, "config-from-file", "output.yaml"))},
		{name: "empty input", stdin: nil, wantCode: exitOK, wantOut: nil},
		{name: "refused: both configs", args: []string{"--config", configFile}, stdin: floating, wantCode: exitRefused, wantStderr: []string{"image-refresh postrender: --config was given, but the chart renders its own refresh config in ConfigMap stg-image-refresh"}},
		{name: "refused: malformed stream", stdin: []byte("a: [\n"), wantCode: exitRefused, wantStderr: []string{"malformed YAML"}},
		{name: "refused: invalid --config", args: []string{"--config", badConfig}, stdin: noConfig, wantCode: exitRefused, wantStderr: []string{"--config " + badConfig, "spec.images: at least one image is required"}},
		{name: "usage: missing --config file", args: []string{"--config", "/nonexistent/refresh.yaml"}, stdin: noConfig, wantCode: exitUsage, wantStderr: []string{"reading --config"}},
		{name: "usage: unknown flag", args: []string{"--bogus"}, wantCode: exitUsage, wantStderr: []string{"unknown flag: --bogus"}},
		{name: "usage: argument", args: []string{"extra"}, wantCode: exitUsage, wantStderr: []string{`unexpected argument "extra": the release is read from stdin`}},
		{name: "--version", args: []string{"--version"}, wantCode: exitOK, wantOut: []byte("postrender version " + version.Version + "\n")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			errorFile := filepath.Join(t.TempDir(), "state", "error.txt")
			t.Setenv(ErrorFileEnv, errorFile)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, bytes.NewReader(tc.stdin), &stdout, &stderr)
			if code != tc.wantCode {
				t.Fatalf("exit code %d, want %d; stderr:\n%s", code, tc.wantCode, stderr.String())
			}
			if tc.wantCode != exitOK {
				if stdout.Len() > 0 {
					t.Errorf("stdout is not empty on failure:\n%s", stdout.String())
				}
				written, err := os.ReadFile(errorFile)
				if err != nil {
					t.Fatalf("error file: %v", err)
				}
				if !strings.Contains(stderr.String(), strings.TrimSpace(string(written))) || !strings.Contains(stderr.String(), "this message is also in "+errorFile) {
					t.Errorf("stderr does not carry the error file's message and path:\nstderr: %s\nfile: %s", stderr.String(), written)
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

// TestErrorFileLifecycle: a failure leaves its message in the error file, the next success
// removes it; an empty IMAGE_REFRESH_ERROR_FILE writes none.
func TestErrorFileLifecycle(t *testing.T) {
	errorFile := filepath.Join(t.TempDir(), "error.txt")
	t.Setenv(ErrorFileEnv, errorFile)
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), nil, strings.NewReader("- x\n"), &stdout, &stderr); code != exitRefused {
		t.Fatalf("exit code %d, want %d", code, exitRefused)
	}
	if _, err := os.Stat(errorFile); err != nil {
		t.Fatalf("no error file after a failure: %v", err)
	}
	if code := run(context.Background(), nil, strings.NewReader("a: 1\n"), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit code %d, want %d", code, exitOK)
	}
	if _, err := os.Stat(errorFile); !os.IsNotExist(err) {
		t.Errorf("error file still there after a success: %v", err)
	}

	t.Setenv(ErrorFileEnv, "")
	stderr.Reset()
	if code := run(context.Background(), nil, strings.NewReader("- x\n"), &stdout, &stderr); code != exitRefused {
		t.Fatalf("exit code %d, want %d", code, exitRefused)
	}
	if strings.Contains(stderr.String(), "also in") {
		t.Errorf("error file reported although disabled: %s", stderr.String())
	}
}

func TestErrorFilePathDefault(t *testing.T) {
	t.Setenv("XDG_STATE_HOME", "/state")
	t.Setenv(ErrorFileEnv, "") // restored after the test
	os.Unsetenv(ErrorFileEnv)
	if got, want := errorFilePath(), "/state/image-refresh/postrender-error.txt"; got != want {
		t.Errorf("errorFilePath() = %q, want %q", got, want)
	}
	t.Setenv("XDG_STATE_HOME", "")
	t.Setenv("HOME", "/home/u")
	if got, want := errorFilePath(), "/home/u/.local/state/image-refresh/postrender-error.txt"; got != want {
		t.Errorf("errorFilePath() = %q, want %q", got, want)
	}
}
