// Command demo is `make demo`: on this machine (as root), from nothing, it builds what it
// needs, starts a single-node cluster (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler, containerd, kubelet, kube-proxy) and a registry with token authentication
// on a bridge of its own, generates a cosign key pair and signs the release's images with the
// real cosign 3 (offline), installs charts/client with the image-refresh post-renderer and that
// public key as the only trusted one, waits for the injected CronJob to fire on its schedule
// and prints its pod's log, pushes an unsigned ingestor image and shows the next scheduled run
// refuse it, signs it, waits for the scheduled runs until one applies it, and prints the
// Deployment before and after, the rollout and the ingestion Job jobs-manager launches with the
// new digest. Everything it started is stopped and cleaned up on exit, including on Ctrl-C.
//
//	go run ./e2e/demo [--keep]
package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/authn"
	"github.com/spf13/cobra"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiequality "k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
	"github.com/tracebloc/image-refresh/refresher"
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
		Short: "Run image-refresh end to end on a local single-node cluster and registry",
		Long: `demo builds the tools and binaries it needs, starts a single-node cluster and a
docker-registry with token auth on a bridge of its own (root needed), signs the release's
images with a cosign key pair it generates (cosign 3, offline), installs charts/client with the
image-refresh post-renderer and that key as the trusted one, waits for the injected CronJob to
fire on its one-minute schedule, pushes an unsigned ingestor image and shows the next run refuse
it, signs it and waits for the runs until one applies it, and shows the Deployment before and
after, the rollout and the ingestion Job running the new digest. Everything is stopped and
cleaned up on exit.`,
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
	d.section(
		"tools: helm 3 and 4, etcd, Kubernetes control plane and node, containerd, runc, CNI plugins, " +
			"docker-registry, cosign",
	)
	if err := d.ensureTools(ctx, root); err != nil {
		return err
	}
	if err := harness.NodeRequirements(); err != nil {
		return err
	}

	d.section(
		"starting a single-node cluster on bridge %s (%s): control plane, registry with token auth, "+
			"containerd, kubelet, kube-proxy",
		harness.NodeBridge,
		harness.NodeAddress,
	)
	w, err := harness.StartNodeWorld(ctx, d)
	if err != nil {
		return err
	}
	defer func() {
		failed := err != nil && ctx.Err() == nil
		d.stop("the node, control plane and registry (and everything they made)", func() { w.Close(d, failed) })
		if failed {
			fmt.Fprintf(d.out, "state and logs kept in %s\n", harness.NodeRoot)
		}
	}()
	d.Logf("refresher image %s (%s), private: pulled with a pull secret", w.RefresherImage, w.RefresherDigest)

	d.section("pushing jobs-manager, pods-monitor and ingestor (built from e2e/images) as :%s", harness.FloatingTag)
	rel, err := harness.NewRelease(ctx, w.Cluster, w.Registry, w.Bins, harness.ReleaseOptions{
		Name: releaseName, Namespace: namespace, Chart: filepath.Join(root, "charts", "client"),
		HelmTool: tools.Helm3, HelmHome: filepath.Join(harness.NodeRoot, "demo-helm"), Push: w.Push(nil),
	})
	if err != nil {
		return err
	}
	for _, img := range harness.AllImages {
		d.Logf("%-60s %s", w.Registry.Repository(rel.Repo(img))+":"+harness.FloatingTag, rel.Digest[img])
	}
	if err := w.CreatePullSecret(ctx, namespace, "refresher-pull", false); err != nil {
		return err
	}

	d.section("cosign 3, offline: a key pair, and the release's three images signed with it")
	cosign, err := harness.NewCosign(
		tools.Cosign3,
		filepath.Join(harness.NodeRoot, "demo-cosign"),
		map[string]authn.Authenticator{w.Registry.Host: w.Registry.Pusher()},
	)
	if err != nil {
		return err
	}
	key, err := cosign.GenerateKeyPair(ctx, "release")
	if err != nil {
		return err
	}
	d.Logf("$ cosign generate-key-pair → %s, %s", filepath.Base(key.Private), filepath.Base(key.Public))
	sign := func(img harness.Image, digest string) error {
		ref := w.Registry.Repository(rel.Repo(img)) + "@" + digest
		if err := cosign.SignOffline(ctx, key, ref); err != nil {
			return err
		}
		res, err := cosign.VerifyOffline(ctx, key, ref)
		if err != nil {
			return fmt.Errorf("cosign verify %s after signing: %w", ref, err)
		}
		if res.ExitCode != 0 {
			return fmt.Errorf("cosign verify %s after signing: exit %d\n%v", ref, res.ExitCode, res)
		}
		d.Logf(
			"$ cosign sign --yes --key %s --tlog-upload=false --allow-http-registry --use-signing-config=false %s\n"+
				"  cosign verify --key %s --insecure-ignore-tlog: verified",
			filepath.Base(key.Private),
			ref,
			filepath.Base(key.Public),
		)
		return nil
	}
	for _, img := range harness.AllImages {
		if err := sign(img, rel.Digest[img]); err != nil {
			return err
		}
	}

	values := append(w.Values("refresher-pull"),
		"--set-file", `imageRefresh.verification.publicKeys.release\.pub=`+key.Public,
		"--set", "imageRefresh.verification.recheckAfter=1m")
	d.section(
		"helm install %s charts/client --namespace %s --post-renderer %s %s",
		releaseName,
		namespace,
		filepath.Base(rel.PostRenderer),
		strings.Join(values, " "),
	)
	d.Logf("namespace %s enforces Pod Security \"restricted\"", namespace)
	res, err := rel.Install(ctx, values...)
	if err != nil {
		return err
	}
	if res.ExitCode != 0 {
		return fmt.Errorf("helm install failed:\n%s", res)
	}
	d.Logf("%s", strings.TrimSpace(firstLines(res.Stdout, 6)))
	pod, err := rel.CronJobPod(ctx, filepath.Join(harness.NodeRoot, "demo-cronjob"))
	if err != nil {
		return err
	}
	if err := d.printInjected(ctx, w.Cluster, pod); err != nil {
		return err
	}
	if err := d.printKeysMount(ctx, w.Cluster, pod.CronJob); err != nil {
		return err
	}

	d.section(
		"waiting for the install's rollout, then for CronJob %s to fire on its schedule (%s)",
		pod.CronJob.Name,
		pod.CronJob.Spec.Schedule,
	)
	// A change waits while a rollout is in flight, and jobs-manager is Ready only once its
	// first ingestion Job succeeded: a run before that records the digests and its fill waits.
	installed, err := harness.WaitRollout(ctx, w.Cluster, namespace, rel.Deployment())
	if err != nil {
		return err
	}
	d.Logf("install rolled out: pod %s Ready", installed.Name)
	if job, _, err := d.scheduledRun(ctx, w, time.Now()); err != nil {
		return err
	} else if harness.JobCondition(job, batchv1.JobFailed) {
		return fmt.Errorf("the first scheduled run after the install failed (Job %s)", job.Name)
	}
	before, err := rel.State(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintln(
		d.out,
		"\n    BEFORE — first run after the install: digests recorded, the floating ingestor digest (signed) "+
			"filled in (a rollout), no restart",
	)
	d.printState(before)
	if err := d.rolloutAndIngestion(ctx, w, rel, rel.Digest[harness.Ingestor]); err != nil {
		return err
	}

	d.section("pushing a new ingestor image, UNSIGNED; the next scheduled run refuses it")
	if err := d.betweenRuns(ctx, w); err != nil {
		return err
	}
	newDigest, err := rel.Push(ctx, harness.Ingestor)
	if err != nil {
		return err
	}
	pushed := time.Now()
	newRef := w.Registry.Repository(rel.Repo(harness.Ingestor)) + "@" + newDigest
	d.Logf("%s:%s now %s, not signed", w.Registry.Repository(rel.Repo(harness.Ingestor)), harness.FloatingTag, newDigest)
	res, err = cosign.VerifyOffline(ctx, key, newRef)
	if err != nil {
		return err
	}
	d.Logf(
		"$ cosign verify --key %s --insecure-ignore-tlog %s: exit %d, %s",
		filepath.Base(key.Public),
		newRef,
		res.ExitCode,
		lastLine(res.Stderr),
	)
	if res.ExitCode == 0 {
		return fmt.Errorf("cosign verifies the unsigned push %s", newRef)
	}
	_, ingestorLine, err := d.scheduledRun(ctx, w, pushed)
	if err != nil {
		return err
	}
	if ingestorLine["decision"] != string(refresher.DecisionFailed) || ingestorLine["signature_remembered"] == true ||
		!strings.Contains(fmt.Sprint(ingestorLine), signature.ReasonMissing) {
		return fmt.Errorf(
			"the run after the unsigned push did not refuse it with %s: %v",
			signature.ReasonMissing,
			ingestorLine,
		)
	}
	if err := d.printRefusal(ctx, w.Cluster, rel, before, newDigest); err != nil {
		return err
	}

	d.section("signing it with cosign; the scheduled runs apply it (a refusal is remembered for recheckAfter=1m)")
	if err := d.betweenRuns(ctx, w); err != nil {
		return err
	}
	if err := sign(harness.Ingestor, newDigest); err != nil {
		return err
	}
	var after *harness.State
	since := time.Now()
	const maxRuns = 4
	for run := 1; ; run++ {
		job, line, err := d.scheduledRun(ctx, w, since)
		if err != nil {
			return err
		}
		since = job.CreationTimestamp.Time
		if after, err = rel.State(ctx); err != nil {
			return err
		}
		if env, _ := after.Env(harness.DigestEnv); env == newDigest {
			break
		}
		if line["decision"] != string(refresher.DecisionFailed) || line["signature_remembered"] != true {
			return fmt.Errorf("a run after the signing neither applied %s nor remembered its refusal: %v", newDigest, line)
		}
		if run == maxRuns {
			return fmt.Errorf("%d scheduled runs after the signing, and %s is still not applied", maxRuns, newDigest)
		}
		d.Logf(
			"the refusal is still remembered (recheckAfter=1m has not passed since it): the env is unchanged; " +
				"waiting for the next run",
		)
	}
	fmt.Fprintln(
		d.out,
		"\n    AFTER — signed, the env follows the tag (a rollout: new ReplicaSet), no restart annotation",
	)
	d.printState(after)
	d.summary(before, after)
	if err := d.rolloutAndIngestion(ctx, w, rel, newDigest); err != nil {
		return err
	}

	d.section("what the refresher told the cluster: Events and the status annotations on %s", rel.Deployment())
	if err := d.printEvents(ctx, w.Cluster, rel); err != nil {
		return err
	}
	d.done()
	fmt.Fprintln(d.out)
	fmt.Fprintf(d.out, "demo finished in %s\n", time.Since(d.began).Round(100*time.Millisecond))

	if keep {
		fmt.Fprintf(
			d.out,
			"\nkept running; try:\n  export KUBECONFIG=%s\n  %s get deploy,rs,cronjob,jobs,pods -n %s\npress Ctrl-C to stop\n",
			w.Cluster.AdminKubeconfig,
			mustLookup(tools.Kubectl),
			namespace,
		)
		<-ctx.Done()
	}
	return nil
}

// scheduledRun waits for the first Job the CronJob created on its schedule after since to
// finish, completed or failed (a refused digest fails the run: exit 1, and the Job retries its
// pod, backoffLimit 1 by default), and prints when it fired and its pods' logs. It returns the Job
// and the ingestor's log record of its first pod.
func (d *demo) scheduledRun(
	ctx context.Context,
	w *harness.NodeWorld,
	since time.Time,
) (*batchv1.Job, map[string]any, error) {
	var job *batchv1.Job
	failed := false
	err := wait.PollUntilContextTimeout(
		ctx,
		500*time.Millisecond,
		harness.Tick+time.Minute,
		true,
		func(ctx context.Context) (bool, error) {
			jobs, err := w.Cluster.Client.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			var next *batchv1.Job
			for i, j := range jobs.Items {
				owner := metav1.GetControllerOf(&j)
				if owner == nil || owner.Kind != "CronJob" || !j.CreationTimestamp.After(since) {
					continue
				}
				if next == nil || j.CreationTimestamp.Before(&next.CreationTimestamp) {
					next = &jobs.Items[i]
				}
			}
			if next == nil {
				return false, nil
			}
			job, failed = next, harness.JobCondition(next, batchv1.JobFailed)
			return failed || harness.JobCondition(next, batchv1.JobComplete), nil
		},
	)
	if err != nil {
		return nil, nil, fmt.Errorf("waiting for a scheduled refresher Job in %s to finish: %w", namespace, err)
	}
	pods, err := w.Cluster.Client.CoreV1().
		Pods(namespace).
		List(ctx, metav1.ListOptions{LabelSelector: "batch.kubernetes.io/job-name=" + job.Name})
	if err != nil {
		return nil, nil, fmt.Errorf("listing the pods of Job %s: %w", job.Name, err)
	}
	if len(pods.Items) == 0 {
		return nil, nil, fmt.Errorf("Job %s finished without a pod", job.Name)
	}
	slices.SortFunc(pods.Items, func(a, b corev1.Pod) int { return a.CreationTimestamp.Compare(b.CreationTimestamp.Time) })
	var ingestor map[string]any
	for i := range pods.Items {
		pod := &pods.Items[i]
		exit := "exit ?"
		if st := pod.Status.ContainerStatuses; len(st) > 0 && st[0].State.Terminated != nil {
			exit = fmt.Sprintf("exit %d", st[0].State.Terminated.ExitCode)
		}
		logs, err := harness.PodLogs(ctx, w.Cluster, pod)
		if err != nil {
			return nil, nil, err
		}
		if i == 0 {
			d.Logf(
				"CronJob fired Job %s at %s; pod %s ran image %s: %s",
				job.Name,
				job.CreationTimestamp.Format(time.TimeOnly),
				pod.Name,
				harness.ImageDigest(pod, pod.Spec.Containers[0].Name),
				exit,
			)
			d.Logf("$ kubectl logs %s -n %s", pod.Name, namespace)
		} else {
			d.Logf("the Job retried it (backoffLimit %d): pod %s, %s; its ingestor record:",
				ptrOr(job.Spec.BackoffLimit), pod.Name, exit)
		}
		for line := range strings.SplitSeq(strings.TrimSpace(logs), "\n") {
			var rec map[string]any
			if json.Unmarshal([]byte(line), &rec) == nil && rec["image"] == harness.Ingestor.Name && rec["decision"] != nil {
				if i == 0 {
					ingestor = rec
				} else {
					d.Logf("log: %s", compactLogLine(line))
				}
			}
			if i == 0 {
				d.Logf("log: %s", compactLogLine(line))
			}
		}
	}
	if failed {
		d.Logf("Job %s failed", job.Name)
	}
	return job, ingestor, nil
}

// betweenRuns waits until no scheduled run is in progress and the next one is at least 15 s
// away (the demo's schedule fires every minute, on the minute), so that what the demo does next
// in the registry lands between two runs: the next run is the first to see it.
func (d *demo) betweenRuns(ctx context.Context, w *harness.NodeWorld) error {
	err := wait.PollUntilContextTimeout(
		ctx,
		500*time.Millisecond,
		3*time.Minute,
		true,
		func(ctx context.Context) (bool, error) {
			if s := time.Now().Second(); s < 5 || s > 45 {
				return false, nil
			}
			jobs, err := w.Cluster.Client.BatchV1().Jobs(namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, j := range jobs.Items {
				if owner := metav1.GetControllerOf(&j); owner != nil && owner.Kind == "CronJob" &&
					!harness.JobCondition(&j, batchv1.JobComplete) && !harness.JobCondition(&j, batchv1.JobFailed) {
					return false, nil
				}
			}
			return true, nil
		},
	)
	if err != nil {
		return fmt.Errorf("waiting for a moment between two scheduled runs: %w", err)
	}
	return nil
}

// printRefusal shows what the refused digest left behind: the target unchanged but for the
// ingestor's status annotation (refused), the consumer pod on the previous digest, and the
// VerificationFailed Event; an error when any of it does not hold.
func (d *demo) printRefusal(
	ctx context.Context,
	cluster *harness.Cluster,
	rel *harness.Release,
	before *harness.State,
	refused string,
) error {
	now, err := rel.State(ctx)
	if err != nil {
		return err
	}
	oldEnv, _ := before.Env(harness.DigestEnv)
	env, _ := now.Env(harness.DigestEnv)
	// The Deployment's generation moves with its annotations too (the status is one): compare
	// the spec.
	if !apiequality.Semantic.DeepEqual(before.Deployment.Spec, now.Deployment.Spec) ||
		now.Annotation(harness.Ingestor) != before.Annotation(harness.Ingestor) ||
		len(now.ReplicaSets) != len(before.ReplicaSets) {
		return fmt.Errorf(
			"the refusal changed the Deployment: %s %s → %s, %s %s → %s, ReplicaSets %d → %d",
			harness.DigestEnv,
			oldEnv,
			env,
			harness.Ingestor.Annotation(),
			before.Annotation(harness.Ingestor),
			now.Annotation(harness.Ingestor),
			len(before.ReplicaSets),
			len(now.ReplicaSets),
		)
	}
	d.Logf(
		"\nDeployment %s: spec unchanged (%s still %s), %s unchanged, still %d ReplicaSets",
		rel.Deployment(),
		harness.DigestEnv,
		env,
		harness.Ingestor.Annotation(),
		len(now.ReplicaSets),
	)
	pod, err := harness.WaitRollout(ctx, cluster, namespace, rel.Deployment())
	if err != nil {
		return err
	}
	podEnv, _ := harness.APIEnv(pod.Spec, harness.DigestEnv)
	d.Logf("pod %s still runs with %s=%s", pod.Name, harness.DigestEnv, podEnv)
	key := config.StatusAnnotationPrefix + harness.Ingestor.Name
	raw := now.Deployment.Annotations[key]
	var st refresher.Status
	if err := json.Unmarshal([]byte(raw), &st); err != nil || st.Refused.Digest != refused {
		return fmt.Errorf("status annotation %s does not remember the refusal of %s: %q", key, refused, raw)
	}
	d.Logf("the one thing written, its status annotation:\n  %s: %s", key, raw)
	events, err := cluster.Client.EventsV1().Events(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return fmt.Errorf("listing Events: %w", err)
	}
	seen := false
	for _, e := range events.Items {
		if e.ReportingController == refresher.EventController && e.Reason == refresher.ReasonVerificationFailed &&
			e.Regarding.Name == rel.Deployment() &&
			strings.Contains(e.Note, refused) {
			d.Logf("Event %s %s on deployment/%s: %s", e.Type, e.Reason, e.Regarding.Name, e.Note)
			seen = true
		}
	}
	if !seen {
		return fmt.Errorf("no %s Event names %s", refresher.ReasonVerificationFailed, refused)
	}
	return nil
}

// printKeysMount shows the trusted keys: the ConfigMap the CronJob mounts at the keys path.
func (d *demo) printKeysMount(ctx context.Context, cluster *harness.Cluster, cj *batchv1.CronJob) error {
	spec := cj.Spec.JobTemplate.Spec.Template.Spec
	for _, m := range spec.Containers[0].VolumeMounts {
		if m.MountPath != config.KeysMountPath {
			continue
		}
		for _, v := range spec.Volumes {
			if v.Name != m.Name || v.ConfigMap == nil {
				continue
			}
			cm, err := cluster.Client.CoreV1().ConfigMaps(namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
			if err != nil {
				return fmt.Errorf("reading the keys ConfigMap: %w", err)
			}
			mode := "read-only"
			if !m.ReadOnly {
				mode = "writable"
			}
			d.Logf(
				"trusted keys: ConfigMap %s (%s), mounted %s at %s",
				cm.Name,
				strings.Join(slices.Sorted(maps.Keys(cm.Data)), ", "),
				mode,
				m.MountPath,
			)
			return nil
		}
	}
	return fmt.Errorf("CronJob %s mounts no keys at %s", cj.Name, config.KeysMountPath)
}

// rolloutAndIngestion waits for the jobs-manager rollout and for the ingestion Job its new
// pod launches with the ingestor at digest.
func (d *demo) rolloutAndIngestion(
	ctx context.Context,
	w *harness.NodeWorld,
	rel *harness.Release,
	digest string,
) error {
	pod, err := harness.WaitRollout(ctx, w.Cluster, namespace, rel.Deployment())
	if err != nil {
		return err
	}
	d.Logf(
		"rollout complete: pod %s Ready (jobs-manager %s), no old pod left",
		pod.Name,
		harness.ImageDigest(pod, harness.APIContainer),
	)
	image := w.Registry.Repository(rel.Repo(harness.Ingestor)) + "@" + digest
	job, jpod, err := harness.WaitIngestion(ctx, w.Cluster, namespace, image)
	if err != nil {
		return err
	}
	logs, err := harness.PodLogs(ctx, w.Cluster, jpod)
	if err != nil {
		return err
	}
	d.Logf(
		"ingestion Job %s (launched by %s) ran %s\n  imageID digest %s\n  log: %s",
		job.Name,
		job.Annotations["e2e.image-refresh.io/launched-by"],
		image,
		harness.ImageDigest(jpod, "ingestor"),
		strings.TrimSpace(logs),
	)
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
	for _, name := range slices.Concat(tools.All, tools.Node, tools.Signing) {
		if _, err := tools.Lookup(name); err != nil {
			missing = append(missing, name)
		}
	}
	if len(missing) == 0 {
		d.Logf("all cached in %s", tools.Dir())
		return nil
	}
	d.Logf(
		"not built yet: %s; running e2e/tools/build.sh (10–15 minutes on 2 cores when nothing is cached, "+
			"plus ~5 per cosign)",
		strings.Join(missing, ", "),
	)
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
			d.Logf(
				"  Role/%s: %s on %s %s",
				role.Name,
				strings.Join(rule.Verbs, ","),
				strings.Join(rule.Resources, ","),
				strings.Join(rule.ResourceNames, ","),
			)
		}
	}
	res, err := harness.Kubectl(ctx, cluster.AdminKubeconfig,
		"get", "cronjob", pod.CronJob.Name, "--namespace", namespace, "--output", "yaml")
	if err != nil {
		return err
	}
	d.Logf(
		"\n$ kubectl get cronjob %s -n %s -o yaml\n%s",
		pod.CronJob.Name,
		namespace,
		strings.TrimRight(res.Stdout, "\n"),
	)
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
		key := config.StatusAnnotationPrefix + img.Name
		d.Logf("    %-48s %s", key, orNone(s.Deployment.Annotations[key]))
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

// printEvents shows the refresher's Events on the Deployment, as kubectl events does.
func (d *demo) printEvents(ctx context.Context, cluster *harness.Cluster, rel *harness.Release) error {
	res, err := harness.Kubectl(ctx, cluster.AdminKubeconfig,
		"events", "--namespace", rel.Namespace, "--for", "deployment/"+rel.Deployment())
	if err != nil {
		return err
	}
	d.Logf(
		"$ kubectl events -n %s --for deployment/%s\n%s",
		rel.Namespace,
		rel.Deployment(),
		strings.TrimRight(res.Stdout, "\n"),
	)
	return nil
}

// summary states what changed between the two snapshots.
func (d *demo) summary(before, after *harness.State) {
	oldEnv, _ := before.Env(harness.DigestEnv)
	newEnv, _ := after.Env(harness.DigestEnv)
	d.Logf(
		"\nchanged: %s %s → %s\n         %s follows it\n         ReplicaSets %d → %d, %s %s → %s",
		harness.DigestEnv,
		oldEnv,
		newEnv,
		harness.Ingestor.Annotation(),
		len(before.ReplicaSets),
		len(after.ReplicaSets),
		config.RestartedAtAnnotation,
		orNone(before.RestartedAt()),
		orNone(after.RestartedAt()),
	)
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

func ptrOr(p *int32) int32 {
	if p == nil {
		return 0
	}
	return *p
}

// lastLine is the last non-empty line of s.
func lastLine(s string) string {
	lines := strings.Split(strings.TrimSpace(s), "\n")
	return strings.TrimSpace(lines[len(lines)-1])
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
