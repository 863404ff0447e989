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

// An Event's note is one printable line, whatever the registry or the API server answered: the
// outside text is escaped in it (kubectl describe, kubectl events show it as is).
func TestRunEventNotesAreOnePrintableLine(t *testing.T) {
	for _, tc := range []struct {
		name    string
		hostile func(*fixture, *Options)
		status  bool // the refresher writes the status (the API server refused no patch)
	}{
		{
			name:    "a registry error body",
			status:  true,
			hostile: func(f *fixture, opts *Options) { f.failManifests(opts, "ghcr.io/tracebloc/ingestor") },
		},
		{name: "a patch the API server refuses", hostile: func(f *fixture, _ *Options) {
			f.kube.PrependReactor("patch", "deployments", func(k8stesting.Action) (bool, runtime.Object, error) {
				return true, nil, apierrors.NewBadRequest(fmt.Sprintf("admission webhook denied the request: %s", hostile))
			})
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixtureWith(t, func(f *fixture) *appsv1.Deployment {
				annotations, _ := f.current()
				annotations[ingestorKey] = stale
				return deployment(annotations, env(stale))
			})
			opts := f.options()
			tc.hostile(f, &opts)
			if report := f.run(t, opts); !report.Failed() {
				t.Fatalf("decisions %s: want a failed image", decisions(report))
			}
			failed := f.events(t)[ReasonFailed]
			if len(failed) == 0 {
				t.Fatalf("no Failed Event: %v", f.events(t))
			}
			for _, e := range failed {
				if strings.ContainsFunc(e.Note, escaped) || !strings.Contains(e.Note, hostileEscaped) {
					t.Errorf("note %q: want one printable line holding %s", e.Note, hostileEscaped)
				}
			}
			// The status error the refresher writes is printable too.
			if s := f.status(t, "ingestor"); tc.status &&
				(strings.ContainsFunc(s.Error, escaped) || !strings.Contains(s.Error, `boom\npatch`)) {
				t.Errorf("status error %q, want one printable line", s.Error)
			}
		})
	}
}
