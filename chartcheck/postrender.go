package chartcheck

import (
	helmpostrender "helm.sh/helm/v3/pkg/postrender"

	"github.com/tracebloc/image-refresh/postrender"
)

var _ helmpostrender.PostRenderer = (*postrender.PostRenderer)(nil)

// postRenderFindings turns a post-renderer failure into findings, one per refusal.
func postRenderFindings(err error) []Finding {
	expected := "the post-renderer to accept the release"
	refusals := postrender.Refusals(err)
	if len(refusals) == 0 {
		return []Finding{{Document: "stream", Expected: expected, Found: err.Error()}}
	}
	findings := make([]Finding, len(refusals))
	for i, r := range refusals {
		findings[i] = Finding{
			Document: "stream",
			Expected: expected,
			Found:    "refused (" + string(r.Reason) + "): " + r.Message,
		}
	}
	return findings
}
