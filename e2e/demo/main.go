// Command demo is `make demo`: on this machine, from nothing, it builds what it needs, starts
// a control plane (etcd, kube-apiserver, kube-controller-manager) and a registry with token
// authentication on loopback, installs charts/client with the image-refresh post-renderer,
// runs the refresher the way the injected CronJob does, pushes a new ingestor image, runs it
// again, and prints the Deployment before and after. Everything it started is stopped on
// exit, including on Ctrl-C.
//
//	go run ./e2e/demo [--keep]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/e2e/tools"
	"github.com/tracebloc/image-refresh/refresher/config"
)

const (
	namespace   = "tracebloc"
	releaseName = "stg"
)

func main() {
	// SIGPIPE too: `make demo | head` must still stop what the demo started.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	err := newCommand().ExecuteContext(ctx)
	interrupted := ctx.Err() != nil
	stop()
	switch {
	case err != nil && interrupted:
		fmt.Fprintln(os.Stderr, "demo: interrupted; everything it started is stopped")
		os.Exit(130)
	case err != nil:
		fmt.Fprintln(os.Stderr, "demo:", err)
		os.Exit(1)
	}
}

func newCommand() *cobra.Command {
	var keep bool
	cmd := &cobra.Command{
		Use:   "demo [--keep]",
		Short: "Run image-refresh end to end on a local control plane and registry",
		Long: `demo builds the tools and binaries it needs, starts etcd, kube-apiserver,
kube-controller-manager and a docker-registry with token auth on loopback, installs
charts/client with the image-refresh post-renderer, runs the refresher as the injected
CronJob would, pushes a new ingestor image, runs it again and prints the Deployment
before and after. Everything is stopped on exit.`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		RunE: func(cmd *cobra.Command, _ []string) error {
			d := &demo{out: cmd.OutOrStdout(), began: time.Now()}
			return d.run(cmd.Context(), keep)
		},
	}
	cmd.Flags().BoolVar(&keep, "keep", false, "keep the cluster and registry running after the demo until Ctrl-C")
	return cmd
}

// demo prints numbered steps with their elapsed times.
type demo struct {
	out   io.Writer
	began time.Time
	step  int
	// stepBegan is when the current step started.
	stepBegan time.Time
}

const steps = 9

func (d *demo) section(format string, args ...any) {
	d.done()
	d.step++
	d.stepBegan = time.Now()
	fmt.Fprintf(d.out, "\n==> [%d/%d] %s\n", d.step, steps, fmt.Sprintf(format, args...))
}

// done closes the current step with its duration.
func (d *demo) done() {
	if d.step > 0 {
		fmt.Fprintf(d.out, "    (%s)\n", time.Since(d.stepBegan).Round(10*time.Millisecond))
	}
}

// Logf is the harness's progress output.
func (d *demo) Logf(format string, args ...any) {
	for line := range strings.SplitSeq(fmt.Sprintf(format, args...), "\n") {
		fmt.Fprintf(d.out, "    %s\n", line)
	}
}

func (d *demo) run(ctx context.Context, keep bool) (err error) {
	root, err := harness.ModuleRoot(ctx)
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "image-refresh-demo-")
	if err != nil {
		return fmt.Errorf("creating work dir: %w", err)
	}
	defer func() {
		if err != nil && ctx.Err() == nil {
			harness.DumpLogs(d, work, 15)
			fmt.Fprintf(d.out, "\nstate and logs kept in %s\n", work)
			return
		}
		os.RemoveAll(work)
	}()

	d.section("tools: helm 3 and 4, etcd, kube-apiserver, kube-controller-manager, kubectl, docker-registry")
	if err := d.ensureTools(ctx, root); err != nil {
		return err
	}

	d.section("building refresher and postrender from this checkout (go build)")
	bins, err := harness.BuildBinaries(ctx, filepath.Join(work, "bin"))
	if err != nil {
		return err
	}
	d.Logf("%s\n%s\nHelm 4 plugin dir %s", bins.Refresher, bins.Postrender, bins.PluginDir)

	d.section("starting the control plane on loopback")
	cluster, err := harness.StartCluster(ctx, filepath.Join(work, "cluster"), d)
	if err != nil {
		return err
	}
	defer d.stop("kube-controller-manager, kube-apiserver and etcd", cluster.Close)

	d.section("starting docker-registry with token auth")
	registry, err := harness.StartRegistry(ctx, filepath.Join(work, "registry"))
	if err != nil {
		return err
	}
	defer d.stop("docker-registry and its token server", registry.Close)
	d.Logf("registry %s (plain http on loopback); 401 challenges name the token realm %s", registry.Host, registry.Tokens.Realm)

	d.section("pushing jobs-manager, pods-monitor and ingestor (multi-arch) as :%s", harness.FloatingTag)
	rel, err := harness.NewRelease(ctx, cluster, registry, bins, harness.ReleaseOptions{
		Name: releaseName, Namespace: namespace, Chart: filepath.Join(root, "charts", "client"),
		HelmTool: tools.Helm3, HelmHome: filepath.Join(work, "helm"),
	})
	if err != nil {
		return err
	}
	for _, img := range harness.AllImages {
		d.Logf("%-60s %s", registry.Repository(rel.Repo(img))+":"+harness.FloatingTag, rel.Digest[img])
	}

	d.section("helm install %s charts/client --namespace %s --post-renderer %s", releaseName, namespace, filepath.Base(rel.PostRenderer))
	d.Logf("namespace %s enforces Pod Security \"restricted\"", namespace)
	res, err := rel.Install(ctx)
	if err != nil {
		return err
	}
	d.Logf("%s", strings.TrimSpace(firstLines(res.Stdout, 6)))
	pod, err := rel.CronJobPod(ctx, filepath.Join(work, "cronjob-pod"))
	if err != nil {
		return err
	}
	if err := d.printInjected(ctx, cluster, pod); err != nil {
		return err
	}

	d.section("first refresher run, as CronJob %s would (ServiceAccount %s's token, mounted config)", pod.CronJob.Name, pod.ServiceAccount)
	d.Logf("refresher %s", strings.Join(pod.Args, " "))
	if err := d.refresh(ctx, rel, bins, pod); err != nil {
		return err
	}
	before, err := rel.State(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(d.out, "\n    BEFORE — first observation: digests recorded, the floating ingestor digest filled in, no restart")
	d.printState(before)

	d.section("pushing a new ingestor image and running the refresher again")
	newDigest, err := rel.Push(ctx, harness.Ingestor)
	if err != nil {
		return err
	}
	d.Logf("%s:%s now %s", registry.Repository(rel.Repo(harness.Ingestor)), harness.FloatingTag, newDigest)
	if err := d.refresh(ctx, rel, bins, pod); err != nil {
		return err
	}
	after, err := rel.State(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(d.out, "\n    AFTER — the env follows the tag (a rollout: new ReplicaSet), no restart annotation")
	d.printState(after)
	d.summary(before, after)

	d.section("the ingestor tag disappears from the registry: the run fails (exit 1) and says so on the Deployment")
	if err := registry.DeleteManifest(ctx, rel.Repo(harness.Ingestor), newDigest); err != nil {
		return err
	}
	if err := d.refreshExit(ctx, rel, bins, pod, 1); err != nil {
		return err
	}
	failed, err := rel.State(ctx)
	if err != nil {
		return err
	}
	d.printState(failed)
	if err := d.printEvents(ctx, cluster, rel); err != nil {
		return err
	}
	d.done()
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "demo finished in %s\n", time.Since(d.began).Round(100*time.Millisecond))

	if keep {
		fmt.Fprintf(d.out, "\nkept running; try:\n  export KUBECONFIG=%s\n  %s get deploy,rs,cronjob,role,rolebinding -n %s\npress Ctrl-C to stop\n",
			cluster.AdminKubeconfig, mustLookup(tools.Kubectl), namespace)
		<-ctx.Done()
	}
	return nil
}

// stop stops a component on the way out, saying so.
func (d *demo) stop(what string, stop func()) {
	began := time.Now()
	stop()
	fmt.Fprintf(d.out, "stopped %s (%s)\n", what, time.Since(began).Round(10*time.Millisecond))
}

// ensureTools runs e2e/tools/build.sh when any tool is not built yet; it prints the time
// each build takes.
func (d *demo) ensureTools(ctx context.Context, root string) error {
	var missing []string
	for _, name := range tools.All {
		if _, err := tools.Lookup(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		d.Logf("all cached in %s", tools.Dir())
		return nil
	}
	d.Logf("not built yet: %s; running e2e/tools/build.sh (about 10 minutes on 2 cores when nothing is cached)", strings.Join(missing, ", "))
	cmd := exec.CommandContext(ctx, filepath.Join(root, "e2e", "tools", "build.sh"))
	cmd.Stdout, cmd.Stderr = d.out, d.out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("building tools: %w", err)
	}
	return nil
}

// printInjected lists what the post-renderer added and prints the CronJob.
func (d *demo) printInjected(ctx context.Context, cluster *harness.Cluster, pod *harness.CronJobPod) error {
	roles, err := cluster.Client.RbacV1().Roles(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Roles: %w", err)
	}
	d.Logf("\ninjected by the post-renderer: CronJob/%s, ServiceAccount/%s, and:", pod.CronJob.Name, pod.ServiceAccount)
	for _, role := range roles.Items {
		for _, rule := range role.Rules {
			d.Logf("  Role/%s: %s on %s %s", role.Name, strings.Join(rule.Verbs, ","), strings.Join(rule.Resources, ","), strings.Join(rule.ResourceNames, ","))
		}
	}
	res, err := harness.Kubectl(ctx, cluster.AdminKubeconfig, "get", "cronjob", pod.CronJob.Name, "--namespace", namespace, "--output", "yaml")
	if err != nil {
		return err
	}
	d.Logf("\n$ kubectl get cronjob %s -n %s -o yaml\n%s", pod.CronJob.Name, namespace, strings.TrimRight(res.Stdout, "\n"))
	return nil
}

// refresh runs the refresher as the CronJob's pod and prints its JSON log compactly.
func (d *demo) refresh(ctx context.Context, rel *harness.Release, bins *harness.Binaries, pod *harness.CronJobPod) error {
	return d.refreshExit(ctx, rel, bins, pod, 0)
}

// refreshExit runs the refresher once the last rollout settled (no kubelet runs: the demo
// marks the pods Ready, as healthy pods would become) and requires exit code want.
func (d *demo) refreshExit(ctx context.Context, rel *harness.Release, bins *harness.Binaries, pod *harness.CronJobPod, want int) error {
	if err := rel.Settle(ctx); err != nil {
		return err
	}
	res, err := pod.Run(ctx, bins.Refresher)
	if err != nil {
		return err
	}
	for line := range strings.SplitSeq(strings.TrimSpace(res.Stderr), "\n") {
		d.Logf("log: %s", compactLogLine(line))
	}
	if res.ExitCode != want {
		return fmt.Errorf("refresher exited %d, want %d:\n%s", res.ExitCode, want, res)
	}
	d.Logf("exit %d", res.ExitCode)
	return nil
}

// printEvents shows the refresher's Events on the Deployment, as kubectl events does.
func (d *demo) printEvents(ctx context.Context, cluster *harness.Cluster, rel *harness.Release) error {
	res, err := harness.Kubectl(ctx, cluster.AdminKubeconfig, "events", "--namespace", rel.Namespace, "--for", "deployment/"+rel.Deployment())
	if err != nil {
		return err
	}
	d.Logf("\n$ kubectl events -n %s --for deployment/%s\n%s", rel.Namespace, rel.Deployment(), strings.TrimRight(res.Stdout, "\n"))
	return nil
}

// leadingLogKeys come first in a compacted log line, the rest follow sorted.
var leadingLogKeys = []string{"image", "decision", "old_digest", "new_digest"}

// compactLogLine renders one slog JSON line as "LEVEL msg key=value ..." without the time.
func compactLogLine(line string) string {
	var rec map[string]any
	if err := json.Unmarshal([]byte(line), &rec); err != nil {
		return line
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%v %v", rec["level"], rec["msg"])
	var rest []string
	for k := range rec {
		if k != "time" && k != "level" && k != "msg" && !slices.Contains(leadingLogKeys, k) {
			rest = append(rest, k)
		}
	}
	slices.Sort(rest)
	for _, k := range append(slices.Clone(leadingLogKeys), rest...) {
		if v, ok := rec[k]; ok {
			fmt.Fprintf(&b, " %s=%v", k, v)
		}
	}
	return b.String()
}

// printState prints the Deployment's audit annotations, api env, restart annotation and
// ReplicaSets, newest first.
func (d *demo) printState(s *harness.State) {
	dep := s.Deployment
	d.Logf("Deployment %s/%s (generation %d)", dep.Namespace, dep.Name, dep.Generation)
	d.Logf("  annotations:")
	for _, img := range harness.AllImages {
		d.Logf("    %-48s %s", img.Annotation(), orNone(s.Annotation(img)))
	}
	for _, img := range harness.AllImages {
		if status, ok := dep.Annotations[config.StatusAnnotationPrefix+img.Name]; ok {
			d.Logf("    %-48s %s", config.StatusAnnotationPrefix+img.Name, status)
		}
	}
	d.Logf("  container api env:")
	for _, name := range []string{"INGESTOR_IMAGE_REPOSITORY", "INGESTOR_IMAGE_TAG", harness.DigestEnv} {
		v, ok := s.Env(name)
		if !ok {
			v = "(not set)"
		}
		d.Logf("    %-26s %s", name, v)
	}
	d.Logf("  pod template %s: %s", config.RestartedAtAnnotation, orNone(s.RestartedAt()))
	d.Logf("  ReplicaSets:")
	rss := slices.Clone(s.ReplicaSets)
	slices.SortFunc(rss, func(a, b appsv1.ReplicaSet) int { return revision(b) - revision(a) })
	for _, rs := range rss {
		digest, ok := harness.APIEnv(rs.Spec.Template.Spec, harness.DigestEnv)
		if !ok {
			digest = "(not set)"
		}
		d.Logf("    %-30s revision %d  %s=%s", rs.Name, revision(rs), harness.DigestEnv, digest)
	}
}

// summary states what changed between the two snapshots.
func (d *demo) summary(before, after *harness.State) {
	oldEnv, _ := before.Env(harness.DigestEnv)
	newEnv, _ := after.Env(harness.DigestEnv)
	d.Logf("\nchanged: %s %s → %s\n         %s follows it\n         ReplicaSets %d → %d, %s %s → %s",
		harness.DigestEnv, oldEnv, newEnv, harness.Ingestor.Annotation(),
		len(before.ReplicaSets), len(after.ReplicaSets), config.RestartedAtAnnotation, orNone(before.RestartedAt()), orNone(after.RestartedAt()))
}

func revision(rs appsv1.ReplicaSet) int {
	n, _ := strconv.Atoi(rs.Annotations["deployment.kubernetes.io/revision"])
	return n
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

func firstLines(s string, n int) string {
	lines := strings.Split(s, "\n")
	if len(lines) > n {
		lines = lines[:n]
	}
	return strings.Join(lines, "\n")
}

func mustLookup(name string) string {
	p, err := tools.Lookup(name)
	if err != nil {
		return name
	}
	return p
}
