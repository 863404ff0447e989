package main

import (
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/golden"
)

// TestExitCodeTable: the table is well formed and docs/release.md renders it (go test -update
// rewrites the section).
func TestExitCodeTable(t *testing.T) {
	if err := exitCodes.Check(); err != nil {
		t.Error(err)
	}
	golden.Section(t, "../../../docs/release.md", "exit-codes",
		"go test ./cmd/internal/imagebuild -run TestExitCodeTable", exitCodes.Markdown())
}
