package chartcheck

import (
	helmpostrender "helm.sh/helm/v3/pkg/postrender"

	"github.com/tracebloc/image-refresh/postrender"
)

var _ helmpostrender.PostRenderer = (*postrender.PostRenderer)(nil)

// imageRefreshPostRenderer is the image-refresh post-renderer as `helm install --post-renderer`
// runs it on a chart that renders its own refresh config.
func imageRefreshPostRenderer() helmpostrender.PostRenderer {
	return postrender.New(postrender.Options{})
}
