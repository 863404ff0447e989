package e2e

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher"
)

// Two ticks at once — the scheduled Job and a kubectl create job --from — as two refresher
// processes with the CronJob's token against one real API server: a new jobs-manager digest is
// restarted once (one new ReplicaSet, one Restarted Event); the other process reports it
// unchanged, writes nothing more and makes no Waiting Event; both exit 0. Whichever way the two
// interleave (the later patch conflicts, or the later read already sees the change) the
// outcome is the same.
func TestConcurrentTicksRollOnce(t *testing.T) {
	w := setup(t)
	r := newRelease(t, w, tools.Helm3, w.registry)
	installAndFirstRun(t, r)
	if err := r.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	before := r.state()
	pushed := r.push(jobsManager)
	pods := []*harness.CronJobPod{r.cronJobPod(), r.cronJobPod()}
	began := metav1.NowMicro()

	results := make([]*harness.Result, len(pods))
	errs := make([]error, len(pods))
	var wg sync.WaitGroup
	for i, pod := range pods {
		wg.Go(func() { results[i], errs[i] = pod.Run(t.Context(), w.bins.Refresher) })
	}
	wg.Wait()
	decided := map[string]int{}
	for i, res := range results {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if res.ExitCode != 0 {
			t.Errorf("process %d exited %d:\n%s", i, res.ExitCode, res)
		}
		for line := range strings.Lines(res.Stderr) {
			var rec struct{ Image, Decision string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Image == jobsManager.Name {
				decided[rec.Decision]++
			}
		}
	}
	if decided[string(refresher.DecisionRestart)] != 1 || decided[string(refresher.DecisionUnchanged)] != 1 {
		t.Errorf("jobs-manager decisions of the two processes %v, want one restart and one unchanged", decided)
	}
	after := r.state()
	if after.Annotation(jobsManager) != pushed {
		t.Errorf("%s = %q, want %s", jobsManager.Annotation(), after.Annotation(jobsManager), pushed)
	}
	checkNewReplicaSets(t, "two ticks at once", before, after, 1)
	list, err := r.Cluster.Client.EventsV1().Events(r.Namespace).List(t.Context(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	reasons := map[string]int{}
	for _, e := range list.Items {
		if e.ReportingController == refresher.EventController && strings.HasPrefix(e.Note, "image "+jobsManager.Name+" (") &&
			!e.EventTime.Before(&began) {
			reasons[e.Reason]++
		}
	}
	if reasons[refresher.ReasonRestarted] != 1 || reasons[refresher.ReasonWaiting] != 0 {
		t.Errorf("jobs-manager Events %v, want one Restarted and no Waiting", reasons)
	}
}
