package cmd

import (
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/clidoc"
	"github.com/tracebloc/image-refresh/internal/testutil/golden"
)

// TestCLIReference: docs/cli is what --help says (go test -update regenerates it).
func TestCLIReference(t *testing.T) {
	clidoc.Assert(t, New().Root, "../../../docs/cli")
}

// TestExitCodeTable: the table holds every code the commands exit with, and docs/postrender.md
// renders it (go test -update rewrites the section).
func TestExitCodeTable(t *testing.T) {
	if err := ExitCodes.Check(exitRefused, exitIO, New().DefaultCode); err != nil {
		t.Error(err)
	}
	golden.Section(t, "../../../docs/postrender.md", "exit-codes",
		"go test ./cmd/postrender/cmd -run TestExitCodeTable", ExitCodes.Markdown())
}
