package refresher

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/runtime"
	k8stesting "k8s.io/client-go/testing"
)

// A registry's error body or an API server's message that holds a newline cannot forge a line
// of the dry-run plan an operator reviews: every record is one line, the text escaped in it.
func TestRunDryRunPlanIsOneLinePerRecord(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hostile func(*fixture, *Options)
		starts  []string
	}{
		{
			name:    "a registry error body",
			hostile: func(f *fixture, opts *Options) { f.failManifests(opts, "ghcr.io/tracebloc/ingestor") },
			starts: []string{
				"IMAGE ",
				"jobs-manager ",
				"pods-monitor ",
				"ingestor ",
				"patch Deployment tracebloc/stg-jobs-manager: {",
			},
		},
		{name: "an API server message", hostile: func(f *fixture, _ *Options) {
			f.kube.PrependReactor("get", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewInternalError(fmt.Errorf("%s", hostile))
			})
		}, starts: []string{"IMAGE ", "jobs-manager ", "pods-monitor ", "ingestor ", "no patches"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
				annotations, ingestor := f.current()
				annotations[jobsManagerKey] = stale
				return deployment(annotations, ingestor)
			})
			var out strings.Builder
			opts := f.options()
			opts.DryRun, opts.Out = true, &out
			tc.hostile(f, &opts)
			if report := f.run(t, opts); !report.Failed() {
				t.Fatalf("decisions %s: want a failed image", decisions(report))
			}
			oneLinePerRecord(t, out.String(), tc.starts...)
		})
	}
}
