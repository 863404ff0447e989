package cmd

import (
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/clidoc"
)

// TestCLIReference: docs/cli is what --help says (go test -update regenerates it).
func TestCLIReference(t *testing.T) {
	clidoc.Assert(t, New().Root, "../../../docs/cli")
}
