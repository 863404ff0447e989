package main

import (
	"testing"

	"github.com/tracebloc/image-refresh/internal/testutil/depcheck"
)

// TestDeps keeps the refresher image small (≤ 7 MiB compressed per platform) and its tick's
// memory low: client-go's clientset, any typed client and the scheme they register link
// every API group of Kubernetes; the refresher talks REST with a scheme of its own
// (refresher/kube). It never links Helm or kyaml either.
func TestDeps(t *testing.T) {
	depcheck.Forbid(t, "github.com/tracebloc/image-refresh/cmd/refresher", "k8s.io/client-go/rest", []string{
		"k8s.io/client-go/kubernetes",
		"k8s.io/client-go/informers",
		"k8s.io/client-go/dynamic",
		"helm.sh/helm",
		"sigs.k8s.io/kustomize",
	})
}
