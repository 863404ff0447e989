package refresher

import (
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"unicode"
)

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{
			"plain text unchanged",
			"HEAD ghcr.io/x/y:prod: 500 Internal Server Error",
			"HEAD ghcr.io/x/y:prod: 500 Internal Server Error",
		},
		{"non-ASCII letters unchanged", "é → 日本 ✓", "é → 日本 ✓"},
		{"a backslash kept", `C:\path "q"`, `C:\path "q"`},
		{"newline: no forged line", "boom\npatch Deployment default/evil: {}", `boom\npatch Deployment default/evil: {}`},
		{"carriage return, tab", "a\rb\tc", `a\rb\tc`},
		{"other C0 controls, DEL", "\x00\x07\b\f\v\x1b[2J\x7f", `\u0000\u0007\u0008\u000c\u000b\u001b[2J\u007f`},
		{"C1 controls: NEL, CSI", "a\u0085b\u009b31m", `a\u0085b\u009b31m`},
		{"line and paragraph separators", "a\u2028b\u2029c", `a\u2028b\u2029c`},
		{"bidi overrides and isolates", "\u202eevil\u202c \u2066x\u2069", `\u202eevil\u202c \u2066x\u2069`},
		{"zero-width and format marks", "a\u200bb\u200dc\ufeffd\u00ade", `a\u200bb\u200dc\ufeffd\u00ade`},
		{"a format character beyond U+FFFF: a surrogate pair", "tag\U000E0041", `tag\udb40\udc41`},
		{"invalid UTF-8 replaced", "bad\xff\xfebytes", "bad\ufffd\ufffdbytes"},
		{"a cut rune replaced", "é"[:1], "\ufffd"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := printable(tc.in)
			if got != tc.want {
				t.Errorf("printable(%q) = %q, want %q", tc.in, got, tc.want)
			}
			if i := strings.IndexFunc(got, func(r rune) bool {
				return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Zl, unicode.Zp)
			}); i >= 0 {
				t.Errorf("printable(%q) = %q keeps a control at byte %d", tc.in, got, i)
			}
			if printable(got) != got {
				t.Errorf("printable is not idempotent on %q", got)
			}
		})
	}
}

// The escapes are JSON's: JSON text made printable stays valid and decodes to the same value.
func TestPrintableKeepsJSON(t *testing.T) {
	for _, in := range []string{"a\nb", "\x1b[31m", "\u202eevil", "\u0085\u2028", "tag\U000E0041", `"q" \ <&>`} {
		data, err := json.Marshal(map[string]string{"error": in})
		if err != nil {
			t.Fatal(err)
		}
		var got map[string]string
		if err := json.Unmarshal([]byte(printable(string(data))), &got); err != nil || got["error"] != in {
			t.Errorf("printable(%s) decodes to %q (%v), want %q", data, got["error"], err, in)
		}
	}
}

// hostile is outside text as a hostile registry or API server writes it: a newline that forges a
// plan line, a terminal escape (clear screen), a bidi override.
const hostile = "boom\npatch Deployment default/evil: {\"spec\":{}}\r\x1b[2J\u202eok"

// hostileEscaped is hostile as printable writes it.
const hostileEscaped = `boom\npatch Deployment default/evil: {"spec":{}}\r\u001b[2J\u202eok`

// failManifests makes repo's HEAD answer without a digest and its GET (the fallback) answer
// 500 with body hostile: the text reaches the image's error as the registry wrote it.
func (f *fixture) failManifests(opts *Options, repo string) {
	f.srv.SetHeadDigest(repo, "")
	path := "/v2/" + strings.SplitN(repo, "/", 2)[1] + "/manifests/"
	opts.Registry.Transport = hostileManifests{opts.Registry.Transport, path}
}

type hostileManifests struct {
	base http.RoundTripper
	path string
}

func (h hostileManifests) RoundTrip(req *http.Request) (*http.Response, error) {
	if req.Method != http.MethodGet || !strings.HasPrefix(req.URL.Path, h.path) {
		return h.base.RoundTrip(req)
	}
	if req.Body != nil {
		_ = req.Body.Close()
	}
	return &http.Response{
		StatusCode:    http.StatusInternalServerError,
		Status:        "500 Internal Server Error",
		Proto:         "HTTP/1.1",
		ProtoMajor:    1,
		ProtoMinor:    1,
		Header:        http.Header{"Content-Type": {"text/plain"}},
		Body:          io.NopCloser(strings.NewReader(hostile)),
		ContentLength: int64(len(hostile)),
		Request:       req,
	}, nil
}

// oneLinePerRecord checks that out has exactly the lines want says start so, in order, none
// of them forged: every line starts with its record's first cell.
func oneLinePerRecord(t *testing.T, out string, starts ...string) {
	t.Helper()
	lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
	if len(lines) != len(starts) {
		t.Fatalf("%d lines, want %d:\n%s", len(lines), len(starts), out)
	}
	for i, line := range lines {
		if !strings.HasPrefix(line, starts[i]) || strings.ContainsFunc(line, escaped) {
			t.Errorf("line %d %q, want it to start with %q and hold no control character", i+1, line, starts[i])
		}
	}
	if !strings.Contains(out, hostileEscaped) {
		t.Errorf("the outside text is not shown escaped (%s):\n%s", hostileEscaped, out)
	}
}
