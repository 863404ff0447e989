// Package clidoc keeps the CLI reference under docs/cli in step with the cobra commands: a
// test of each binary generates its pages with cobra/doc and compares them with the committed
// ones (`make update` rewrites them).
package clidoc

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"

	"github.com/tracebloc/image-refresh/internal/testutil/golden"
)

// Assert generates the Markdown pages of root and its subcommands (one per command,
// <root>[_<sub>].md) and compares each with the one in dir; a committed page of root's that
// no command generates any more fails too.
func Assert(t *testing.T, root *cobra.Command, dir string) {
	t.Helper()
	tmp := t.TempDir()
	root.DisableAutoGenTag = true // no generation date: the pages regenerate byte for byte
	for _, c := range root.Commands() {
		c.DisableAutoGenTag = true
	}
	if err := doc.GenMarkdownTree(root, tmp); err != nil {
		t.Fatalf("generating the CLI reference of %s: %v", root.Name(), err)
	}
	entries, err := os.ReadDir(tmp)
	if err != nil {
		t.Fatal(err)
	}
	var generated []string
	for _, e := range entries {
		data, err := os.ReadFile(filepath.Join(tmp, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		generated = append(generated, e.Name())
		golden.Assert(t, filepath.Join(dir, e.Name()), data)
	}
	committed, _ := filepath.Glob(filepath.Join(dir, root.Name()+"*.md"))
	for _, path := range committed {
		name := filepath.Base(path)
		if name != root.Name()+".md" && !strings.HasPrefix(name, root.Name()+"_") {
			continue
		}
		if !slices.Contains(generated, name) {
			if *golden.Update {
				if err := os.Remove(path); err != nil {
					t.Fatal(err)
				}
				continue
			}
			t.Errorf("%s documents a command %s no longer has (go test -update removes it)", path, root.Name())
		}
	}
}
