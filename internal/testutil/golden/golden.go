// Package golden compares test output with files under testdata/ (and docs/cli) and rewrites
// them when the tests run with -update, which this package defines: `make update` runs
// `go test -update` over exactly the packages whose tests link it, so no other package needs a
// shim to accept the flag.
package golden

import (
	"bytes"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Update is set by `go test -update` (`make update`).
var Update = flag.Bool("update", false, "rewrite golden files under testdata/ with the current output")

// Assert compares got with the golden file at path; under -update it writes got there first.
func Assert(t testing.TB, path string, got []byte) {
	t.Helper()
	if *Update {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run `go test -update` to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Errorf("output differs from %s (check the change, then `go test -update`):\n%s", path, LineDiff(string(want), string(got)))
	}
}

// LineDiff shows the first differing line of want and got with three lines of context.
func LineDiff(want, got string) string {
	w, g := strings.Split(want, "\n"), strings.Split(got, "\n")
	for i := 0; i < max(len(w), len(g)); i++ {
		if i < len(w) && i < len(g) && w[i] == g[i] {
			continue
		}
		var b strings.Builder
		for j := max(0, i-3); j < min(i+4, max(len(w), len(g))); j++ {
			if j < len(w) {
				fmt.Fprintf(&b, "want %4d | %s\n", j+1, w[j])
			}
			if j < len(g) {
				fmt.Fprintf(&b, "got  %4d | %s\n", j+1, g[j])
			}
		}
		return b.String()
	}
	return "(no line differs)"
}
