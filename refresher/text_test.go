package refresher

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode"
)

func TestPrintable(t *testing.T) {
	for _, tc := range []struct {
		name, in, want string
	}{
		{"plain text unchanged", "HEAD ghcr.io/x/y:prod: 500 Internal Server Error", "HEAD ghcr.io/x/y:prod: 500 Internal Server Error"},
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
