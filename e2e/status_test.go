package e2e

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"text/tabwriter"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/testutil/golden"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher"
)

var (
	rfc3339 = regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	columns = regexp.MustCompile(`\s{2,}`)
)

// status runs `refresher status` with the admin kubeconfig against the release's config (as
// the CronJob's pod mounts it) and returns its stdout and exit code.
func (r *release) status(args ...string) (string, int) {
	r.t.Helper()
	pod := r.cronJobPod()
	cfg := ""
	for i, a := range pod.Args {
		if a == "--config" && i+1 < len(pod.Args) {
			cfg = pod.Args[i+1]
		} else if v, ok := strings.CutPrefix(a, "--config="); ok {
			cfg = v
		}
	}
	if cfg == "" {
		r.t.Fatalf("no --config in the CronJob's args %q", pod.Args)
	}
	ctx, cancel := context.WithTimeout(r.t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(
		ctx,
		r.w.bins.Refresher,
		append([]string{"status", "--config", cfg, "--kubeconfig", r.w.cluster.AdminKubeconfig}, args...)...)
	home := r.t.TempDir()
	cmd.Env = append(
		[]string{"PATH=" + os.Getenv("PATH"), "HOME=" + home, "DOCKER_CONFIG=" + filepath.Join(home, "no-docker-config")},
		pod.Env...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if err != nil && !errors.As(err, &exit) {
		r.t.Fatalf("refresher status: %v\n%s", err, stderr.String())
	}
	code := 0
	if exit != nil {
		code = exit.ExitCode()
	}
	if code != 0 && code != 3 {
		r.t.Logf("stderr:\n%s", stderr.String())
	}
	return stdout.String(), code
}

// maskTable names the digests (full or short), the namespace and the times, then aligns the
// columns again (a masked cell has another width).
func maskTable(t *testing.T, table, namespace string, digests map[string]string) string {
	t.Helper()
	for name, d := range digests {
		table = strings.ReplaceAll(table, d, "<"+name+">")
		table = strings.ReplaceAll(table, refresher.ShortDigest(d), "<"+name+">")
	}
	table = strings.ReplaceAll(table, namespace, "<ns>")
	table = rfc3339.ReplaceAllString(table, "<time>")
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	for _, line := range strings.Split(strings.TrimRight(table, "\n"), "\n") {
		fmt.Fprintln(tw, strings.Join(columns.Split(strings.TrimSpace(line), -1), "\t"))
	}
	if err := tw.Flush(); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// `refresher status` against the live cluster: after the first tick every image is current;
// after a push of jobs-manager it is behind (exit 3) and the others stay current; after the
// tick that applies it, current again; with the CronJob suspended, every image stale (exit 3),
// the table's last line saying why.
func TestStatusOnTheLiveCluster(t *testing.T) {
	w := setup(t)
	r := newRelease(t, w, tools.Helm3, w.registry)
	installAndFirstRun(t, r)
	if err := r.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	digests := map[string]string{}
	for _, img := range harness.AllImages {
		digests[img.Name] = r.Digest[img]
	}

	out, code := r.status()
	if code != 0 {
		t.Fatalf("status exit %d, want 0:\n%s", code, out)
	}
	golden.Assert(t, filepath.Join("testdata", "status-current.txt"), []byte(maskTable(t, out, r.Namespace, digests)))

	digests["old-jobs-manager"] = digests["jobs-manager"]
	digests["jobs-manager"] = r.push(harness.JobsManager)
	out, code = r.status()
	if code != 3 {
		t.Fatalf("status exit %d, want 3 (behind):\n%s", code, out)
	}
	golden.Assert(t, filepath.Join("testdata", "status-behind.txt"), []byte(maskTable(t, out, r.Namespace, digests)))

	r.refreshOK()
	if err := r.Settle(t.Context()); err != nil {
		t.Fatal(err)
	}
	if out, code = r.status(); code != 0 || !strings.Contains(out, "current") || strings.Contains(out, "behind") {
		t.Fatalf("after the restart: exit %d\n%s", code, out)
	}

	cj := r.cronJobPod().CronJob
	if _, err := r.w.cluster.Client.BatchV1().CronJobs(r.Namespace).Patch(t.Context(), cj.Name, types.MergePatchType,
		[]byte(`{"spec":{"suspend":true}}`), metav1.PatchOptions{}); err != nil {
		t.Fatal(err)
	}
	out, code = r.status()
	if code != 3 || strings.Count(out, " stale ") != len(harness.AllImages) ||
		!strings.Contains(out, "\nrefresher: CronJob "+r.Namespace+"/"+cj.Name+" is suspended (spec.suspend)") {
		t.Fatalf("suspended: exit %d, want 3, every image stale and why:\n%s", code, out)
	}
}
