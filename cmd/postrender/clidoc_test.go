package main

import (
	"io"
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/clidoc"
)

// TestCLIReference: docs/cli is what --help says (go test -update regenerates it).
func TestCLIReference(t *testing.T) {
	clidoc.Assert(t, newCommand(strings.NewReader(""), io.Discard), "../../docs/cli")
}
