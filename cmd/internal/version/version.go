// Package version carries the build version of the three binaries, set with
// -ldflags "-X github.com/tracebloc/image-refresh/cmd/internal/version.Version=v1.2.3".
package version

// Version is the release the binary was built from.
var Version = "v0.1.0-dev"
