// Package depcheck checks the import graph of a binary, in the manner of crane's depcheck:
// a test lists the packages a main package links and fails, with an import chain, on any
// forbidden one.
package depcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// Forbid fails t for every package pkg links that is one of forbidden or below one of them.
// required must be linked: it proves the listing is the real graph of the right binary.
func Forbid(t *testing.T, pkg, required string, forbidden []string) {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports", pkg).Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			t.Fatalf("go list %s: %v\n%s", pkg, err, exitErr.Stderr)
		}
		t.Fatalf("go list %s: %v", pkg, err)
	}
	importedBy := map[string]string{}
	var all []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		all = append(all, p.ImportPath)
		for _, imp := range p.Imports {
			if _, seen := importedBy[imp]; !seen {
				importedBy[imp] = p.ImportPath
			}
		}
	}
	if _, ok := importedBy[required]; !ok {
		t.Fatalf("go list shows no %s among the %d packages of %s; is it the right binary?", required, len(all), pkg)
	}
	for _, p := range all {
		for _, bad := range forbidden {
			if p == bad || strings.HasPrefix(p, bad+"/") {
				chain := []string{p}
				for up := importedBy[p]; up != ""; up = importedBy[up] {
					chain = append([]string{up}, chain...)
				}
				t.Errorf("%s links %s:\n  %s", pkg, p, strings.Join(chain, "\n  "))
			}
		}
	}
}
