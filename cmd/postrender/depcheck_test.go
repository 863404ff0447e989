package main

import (
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/depcheck"
)

// TestDeps: the post-renderer reads and writes YAML, nothing more; it must never link a
// Kubernetes client, a registry client or the Helm SDK.
func TestDeps(t *testing.T) {
	depcheck.Forbid(t, "github.com/tracebloc/image-refresh/cmd/postrender", "sigs.k8s.io/kustomize/kyaml/yaml", []string{
		"k8s.io/client-go",
		"github.com/google/go-containerregistry/pkg/v1/remote",
		"helm.sh/helm",
	})
}
