package postrender

import (
	"bytes"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"

	"github.com/tracebloc/image-refresh/internal/testutil/golden"
)

func TestSplitSegments(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want []string
	}{
		{"empty", "", nil},
		{"one bare document", "a: 1\n", []string{"a: 1\n"}},
		{"leading marker", "---\na: 1\n", []string{"---\na: 1\n"}},
		{"two documents", "a: 1\n---\nb: 2\n", []string{"a: 1\n", "---\nb: 2\n"}},
		{"marker with comment", "a: 1\n--- # next\nb: 2\n", []string{"a: 1\n", "--- # next\nb: 2\n"}},
		{"marker with content", "a: 1\n--- {b: 2}\n", []string{"a: 1\n", "--- {b: 2}\n"}},
		{"CRLF", "a: 1\r\n---\r\nb: 2\r\n", []string{"a: 1\r\n", "---\r\nb: 2\r\n"}},
		{"empty documents", "---\n---\n---\na: 1\n", []string{"---\n", "---\n", "---\na: 1\n"}},
		{"marker at the very end", "a: 1\n---", []string{"a: 1\n", "---"}},
		{"indented marker in a literal", "a: |\n  ---\n  x\n", []string{"a: |\n  ---\n  x\n"}},
		{"dashes that are not a marker", "---foo: 1\n----\n", []string{"---foo: 1\n----\n"}},
		{"directive stays with its document", "a: 1\n...\n%YAML 1.2\n---\nb: 2\n---\nc: 3\n",
			[]string{"a: 1\n...\n%YAML 1.2\n---\nb: 2\n", "---\nc: 3\n"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var got []string
			for _, s := range splitSegments([]byte(tc.in)) {
				got = append(got, tc.in[s.start:s.end])
			}
			if strings.Join(got, "|") != strings.Join(tc.want, "|") || len(got) != len(tc.want) {
				t.Errorf("segments = %q, want %q", got, tc.want)
			}
		})
	}
}

func TestEmptyInput(t *testing.T) {
	out, err := Render(nil, Options{})
	if err != nil || out == nil || len(out) != 0 {
		t.Errorf("Render(empty) = %q, %v; want empty output and no error", out, err)
	}
}

// TestPassThrough: a release without a refresh config comes out byte for byte.
func TestPassThrough(t *testing.T) {
	for _, tc := range []struct{ name, in string }{
		{"whitespace only", "\n  \n"},
		{"comments only", "# nothing rendered\n---\n# HIDDEN: The Secret output has been suppressed\n"},
		{"Helm 3 stream", "---\n# Source: a/templates/x.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n" +
			"data:\n  script: |\n    ---\n    echo\n---\n# Source: a/templates/y.yaml\napiVersion: v1\nkind: Service\n" +
			"metadata: {name: y}\n"},
		{"CRLF, comments and empty documents", "--- # first\r\napiVersion: v1\r\nkind: ConfigMap   # trailing\r\n" +
			"metadata: {name: x}\r\n---\r\n---\r\n# only a comment\r\n"},
		{"no final newline", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}"},
		{"Helm 4 stream with a hook", "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  annotations:\n    " +
			"helm.sh/hook: pre-install\n    postrenderer.helm.sh/postrender-filename: 'a/templates/hook.yaml'\n"},
		{"config label with another value",
			"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  labels: {image-refresh.io/config: \"false\"}\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render([]byte(tc.in), Options{})
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if string(out) != tc.in {
				t.Errorf("output changed:\n%q\nwant\n%q", out, tc.in)
			}
		})
	}
}

// TestIdempotence runs the post-renderer on its own output, in both config modes and across
// them, and after the config changed.
func TestIdempotence(t *testing.T) {
	in := []byte(webDeployment(floatingContainer))
	cfg := mustParse(t, refreshBody("", ""))

	first, err := Render(in, Options{Config: cfg})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"with the same --config", Options{Config: cfg}},
		{"without --config, reading the injected ConfigMap", Options{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			again, err := Render(first, tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(again, first) {
				t.Errorf("second run changed the output:\n%s", golden.LineDiff(string(first), string(again)))
			}
		})
	}

	t.Run("a changed --config replaces the injected objects", func(t *testing.T) {
		changed := mustParse(t, strings.Replace(refreshBody("", ""), "spec:\n", "spec:\n  schedule: \"0 * * * *\"\n", 1))
		fresh, err := Render(in, Options{Config: changed})
		if err != nil {
			t.Fatal(err)
		}
		replaced, err := Render(first, Options{Config: changed})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(replaced, fresh) {
			t.Errorf("re-rendering with a changed config differs from rendering the original:\n%s",
				golden.LineDiff(string(fresh), string(replaced)))
		}
	})

	t.Run("pinning every image removes the injected objects", func(t *testing.T) {
		pinned := mustParse(t, refreshBody(pinnedDigest, pinnedDigest))
		out, err := Render(first, Options{Config: pinned})
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(out, in) {
			t.Errorf("output is not the original release:\n%s", golden.LineDiff(string(in), string(out)))
		}
	})
}

// TestLineEndings: the injected documents break their lines as the input does when the input
// uses CRLF throughout, and with LF otherwise; either way they parse to the same objects.
func TestLineEndings(t *testing.T) {
	lf := floatingConfig + webDeployment(floatingContainer)
	crlf := strings.ReplaceAll(lf, "\n", "\r\n")
	fileConfig := Options{Config: mustParse(t, refreshBody("", ""))}
	for _, tc := range []struct {
		name string
		in   string
		opts Options
		// wantCRLF says whether every injected line ends with CRLF (else with LF).
		wantCRLF bool
	}{
		{"LF", lf, Options{}, false},
		{"CRLF", crlf, Options{}, true},
		{"CRLF without a final line break", strings.TrimSuffix(crlf, "\r\n"), Options{}, true},
		{"LF, injected ConfigMap with a literal block", webDeployment(floatingContainer), fileConfig, false},
		{"CRLF, injected ConfigMap with a literal block", strings.ReplaceAll(webDeployment(floatingContainer), "\n", "\r\n"),
			fileConfig, true},
		{"mixed: one LF line", strings.Replace(crlf, "\r\n", "\n", 1), Options{}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := Render([]byte(tc.in), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(string(out), tc.in) {
				t.Fatalf("output does not start with the input")
			}
			// With the line break added to an input that lacks a final one.
			injected := string(out[len(tc.in):])
			lines, crlfLines := strings.Count(injected, "\n"), strings.Count(injected, "\r\n")
			switch {
			case lines < 10:
				t.Fatalf("nothing injected: %q", injected)
			case tc.wantCRLF && crlfLines != lines:
				t.Errorf("%d of %d injected lines end with LF alone:\n%q", lines-crlfLines, lines, injected)
			case !tc.wantCRLF && crlfLines != 0:
				t.Errorf("%d injected lines end with CRLF:\n%q", crlfLines, injected)
			}
			lfIn := strings.ReplaceAll(tc.in, "\r\n", "\n")
			want, err := Render([]byte(lfIn), tc.opts)
			if err != nil {
				t.Fatal(err)
			}
			gotNodes, err := parseAll([]byte(injected))
			if err != nil {
				t.Fatal(err)
			}
			wantNodes, err := parseAll(want[len(lfIn):])
			if err != nil {
				t.Fatal(err)
			}
			if g, w := canonical(t, gotNodes), canonical(t, wantNodes); g != w {
				t.Errorf("the injected objects differ from those of the LF rendering:\n%s", golden.LineDiff(w, g))
			}
		})
	}
}

// TestNeverEmptyOutput: when every document was an injected object that is no longer wanted,
// the output is a comment, not nothing (Helm 4 rejects empty output).
func TestNeverEmptyOutput(t *testing.T) {
	injected, err := Render([]byte(webDeployment(floatingContainer)), Options{Config: mustParse(t, refreshBody("", ""))})
	if err != nil {
		t.Fatal(err)
	}
	onlyOwn := injected[bytes.Index(injected, []byte("---\napiVersion: v1\nkind: ConfigMap")):]
	out, err := Render(onlyOwn, Options{Config: mustParse(t, refreshBody(pinnedDigest, pinnedDigest))})
	if err != nil {
		t.Fatal(err)
	}
	if string(out) != emptyResult {
		t.Errorf("output = %q, want %q", out, emptyResult)
	}
}

func TestPostRendererRun(t *testing.T) {
	in := floatingConfig + webDeployment(floatingContainer)
	out, err := New(Options{}).Run(bytes.NewBufferString(in))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(out.String(), in) || !strings.Contains(out.String(), "kind: CronJob") {
		t.Errorf("Run output lacks the input or the CronJob:\n%s", out)
	}
	if out, err := New(Options{}).Run(bytes.NewBufferString("- not a mapping\n")); err == nil || out != nil {
		t.Errorf("Run on a bad stream = %v, %v; want nil output and an error", out, err)
	}
}

func mustParse(t testing.TB, body string) *config.RefreshConfig {
	t.Helper()
	cfg, err := config.Parse([]byte(body))
	if err != nil {
		t.Fatal(err)
	}
	return cfg
}
