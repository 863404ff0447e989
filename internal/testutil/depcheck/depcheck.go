// Package depcheck reads the import graph of packages, in the manner of crane's depcheck: a
// test lists what each package links (`go list -deps`) and fails, with the import chain, on
// any package it must not link. layout_test.go holds the rules of CONTRIBUTING.md's Layout.
package depcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

// Graph is the import graph of the packages a `go list` pattern matches and of everything they
// link, tests excluded, the standard library left out.
type Graph struct {
	// imports are every listed package's direct imports (standard library excluded).
	imports map[string][]string
	// matched are the packages the patterns matched, sorted.
	matched []string
}

// Load lists patterns with `go list -deps`.
func Load(t testing.TB, patterns ...string) *Graph {
	t.Helper()
	args := append([]string{"list", "-deps", "-json=ImportPath,Imports,Standard,DepOnly"}, patterns...)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		if exitErr, ok := errors.AsType[*exec.ExitError](err); ok {
			t.Fatalf("go %s: %v\n%s", strings.Join(args, " "), err, exitErr.Stderr)
		}
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	g := &Graph{imports: map[string][]string{}}
	standard := map[string]bool{}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			ImportPath string
			Imports    []string
			Standard   bool
			DepOnly    bool
		}
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decoding go list output: %v", err)
		}
		if p.Standard {
			standard[p.ImportPath] = true
			continue
		}
		g.imports[p.ImportPath] = p.Imports
		if !p.DepOnly {
			g.matched = append(g.matched, p.ImportPath)
		}
	}
	for pkg, imports := range g.imports {
		g.imports[pkg] = slices.DeleteFunc(imports, func(p string) bool { return standard[p] || p == "C" || p == "unsafe" })
	}
	slices.Sort(g.matched)
	return g
}

// Packages are the packages the patterns matched, sorted.
func (g *Graph) Packages() []string { return g.matched }

// Chains returns, for every package pkg links (itself excluded) that match accepts and that
// it links through no other such package, the shortest import chain from pkg to it, nearest
// first.
func (g *Graph) Chains(pkg string, match func(string) bool) [][]string {
	parent := map[string]string{pkg: ""}
	queue := []string{pkg}
	var chains [][]string
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		if p != pkg && match(p) {
			chain := []string{p}
			for up := parent[p]; up != ""; up = parent[up] {
				chain = append(chain, up)
			}
			slices.Reverse(chain)
			chains = append(chains, chain)
			continue // what it links is its own finding
		}
		for _, imp := range g.imports[p] {
			if _, seen := parent[imp]; !seen {
				parent[imp] = p
				queue = append(queue, imp)
			}
		}
	}
	return chains
}

// Under reports whether pkg is pattern or below it, for a pattern ending in "/..."; else
// whether pkg is pattern.
func Under(pkg, pattern string) bool {
	if tree, ok := strings.CutSuffix(pattern, "/..."); ok {
		return pkg == tree || strings.HasPrefix(pkg, tree+"/")
	}
	return pkg == pattern
}
