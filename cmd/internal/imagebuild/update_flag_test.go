package main

// Accept `go test ./... -update`, which regenerates the golden files of other packages.
import _ "github.com/tracebloc/image-refresh/e2e/golden"
