package main

import (
	"log/slog"
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/clidoc"
)

// TestCLIReference: docs/cli is what --help says (go test -update regenerates it).
func TestCLIReference(t *testing.T) {
	clidoc.Assert(t, newRefresherCommand(environment{}, slog.New(slog.DiscardHandler)), "../../docs/cli")
}
