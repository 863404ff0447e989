// Package version is the one source of the release version: the VERSION file beside this
// file. It feeds the binaries' --version, the refresher image tag the post-renderer injects
// by default (config.DefaultJobImage), the Makefile (image tags, dist archives), and the Helm
// 4 plugin's plugin.yaml; TestVersionEverywhere fails when any of them drifts.
package version

import (
	_ "embed"
	"strings"
)

//go:embed VERSION
var file string

// Version is the release the binaries were built from, e.g. v0.1.0.
var Version = strings.TrimSpace(file)

// Image is the repository of the refresher image the release pipeline publishes.
const Image = "ghcr.io/tracebloc/image-refresh"

// ImageReference is the refresher image of this release: Image tagged with Version.
func ImageReference() string { return Image + ":" + Version }
