package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"strings"
	"testing"
)

// forbiddenDeps are the packages the post-renderer must never link: it reads and writes
// YAML, nothing more. Prefixes match whole import paths or their subpackages.
var forbiddenDeps = []string{
	"k8s.io/client-go",
	"github.com/google/go-containerregistry/pkg/v1/remote",
	"helm.sh/helm",
}

// TestDeps checks the import graph of the binary, in the manner of crane's depcheck, and
// prints an import chain for any forbidden package.
func TestDeps(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", "-json=ImportPath,Imports", "github.com/tracebloc/image-refresh/cmd/postrender").Output()
	if err != nil {
		var exitErr *exec.ExitError
		if errors.As(err, &exitErr) {
			t.Fatalf("go list: %v\n%s", err, exitErr.Stderr)
		}
		t.Fatalf("go list: %v", err)
	}
	importedBy := map[string]string{}
	var all []string
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var pkg struct {
			ImportPath string
			Imports    []string
		}
		if err := dec.Decode(&pkg); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		all = append(all, pkg.ImportPath)
		for _, imp := range pkg.Imports {
			if _, seen := importedBy[imp]; !seen {
				importedBy[imp] = pkg.ImportPath
			}
		}
	}
	// The listing must be the real graph: the post-renderer is built on kyaml.
	if _, ok := importedBy["sigs.k8s.io/kustomize/kyaml/yaml"]; !ok {
		t.Fatalf("go list shows no kyaml among %d packages; is it the right binary?", len(all))
	}
	for _, pkg := range all {
		for _, bad := range forbiddenDeps {
			if pkg == bad || strings.HasPrefix(pkg, bad+"/") {
				chain := []string{pkg}
				for p := importedBy[pkg]; p != ""; p = importedBy[p] {
					chain = append([]string{p}, chain...)
				}
				t.Errorf("cmd/postrender links %s:\n  %s", pkg, strings.Join(chain, "\n  "))
			}
		}
	}
}
