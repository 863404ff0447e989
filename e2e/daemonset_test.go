package e2e

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/kubernetes"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/contract/guard"
)

// TestDaemonSetInAnotherNamespace runs, on the real API server, a config whose targets are a DaemonSet in another
// namespace than the refresher's and a Deployment of the same name in the refresher's, which the guard must tell
// apart by namespace and resource. The objects are what the real `postrender objects` renders (a Role and
// RoleBinding in each namespace, the guard over both), applied with kubectl; the refresher runs as its CronJob's
// pod would. The first tick records, a push restarts the agent container and pins the exporter container in one
// write of the DaemonSet (and restarts the Deployment), a steady tick writes nothing, and the refresher's token may
// write nothing else: RBAC refuses other objects of that namespace, the guard other fields of the DaemonSet and the
// DaemonSet's annotation on the Deployment.
func TestDaemonSetInAnotherNamespace(t *testing.T) {
	w := setup(t)
	ctx, client := t.Context(), w.cluster.Client
	suffix := fmt.Sprint(releases.Add(1))
	home, agents := "ds-home-"+suffix, "ds-agents-"+suffix
	for _, ns := range []string{home, agents} {
		if _, err := client.CoreV1().Namespaces().Create(
			ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns}}, metav1.CreateOptions{},
		); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = client.CoreV1().Namespaces().Delete(context.Background(), ns, metav1.DeleteOptions{})
		})
	}
	agentRepo, exporterRepo, webRepo := home+"/agent", home+"/exporter", home+"/web"
	push := func(repo string) string {
		t.Helper()
		d, err := w.registry.PushImage(ctx, repo, "prod")
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	push(agentRepo)
	push(webRepo)
	push(exporterRepo)

	labels := map[string]string{"app": "agent"}
	for _, name := range []string{"agent", "other"} { // other: a DaemonSet of the namespace that is no target
		_, err := client.AppsV1().DaemonSets(agents).Create(ctx, &appsv1.DaemonSet{
			ObjectMeta: metav1.ObjectMeta{Name: name},
			Spec: appsv1.DaemonSetSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "agent", Image: w.registry.Repository(agentRepo) + ":prod", ImagePullPolicy: corev1.PullAlways},
					{Name: "exporter", Image: w.registry.Repository(exporterRepo) + ":prod", ImagePullPolicy: corev1.PullIfNotPresent},
				}},
			}},
		}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
	}

	// A Deployment of the refresher's own namespace with the DaemonSet's name: the guard must tell them apart by
	// namespace and resource.
	replicas := int32(0)
	webLabels := map[string]string{"app": "web"}
	_, err := client.AppsV1().Deployments(home).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "agent"},
		Spec: appsv1.DeploymentSpec{Replicas: &replicas, Selector: &metav1.LabelSelector{MatchLabels: webLabels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: webLabels},
				Spec: corev1.PodSpec{Containers: []corev1.Container{
					{Name: "web", Image: w.registry.Repository(webRepo) + ":prod", ImagePullPolicy: corev1.PullAlways},
				}},
			}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "refresh.yaml")
	cfg := fmt.Sprintf(`apiVersion: image-refresh.io/v1alpha1
kind: RefreshConfig
metadata: {name: agents-refresher, namespace: %[1]s}
spec:
  images:
  - {name: agent, repository: %[3]s, tag: prod, action: rollout-restart, annotation: x.io/agent,
     target: {kind: DaemonSet, name: agent, namespace: %[2]s, container: agent}}
  - {name: exporter, repository: %[4]s, tag: prod, action: set-image, annotation: x.io/exporter,
     target: {kind: DaemonSet, name: agent, namespace: %[2]s, container: exporter}}
  - {name: web, repository: %[6]s, tag: prod, action: rollout-restart, annotation: x.io/web,
     target: {kind: Deployment, name: agent, container: web}}
  job: {image: %[5]s}
`, home, agents, w.registry.Repository(agentRepo), w.registry.Repository(exporterRepo), w.refresherImageRef,
		w.registry.Repository(webRepo))
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	objects, err := exec.CommandContext(ctx, w.bins.Postrender, "objects", "--config", cfgFile).Output()
	if err != nil {
		t.Fatalf("postrender objects: %v", err)
	}
	for _, kind := range []string{"\nkind: Role\n", "\nkind: RoleBinding\n"} {
		if n := strings.Count(string(objects), kind); n != 2 {
			t.Fatalf("postrender objects rendered %d %s, want one per namespace:\n%s", n, strings.TrimSpace(kind), objects)
		}
	}
	objectsFile := filepath.Join(dir, "objects.yaml")
	if err := os.WriteFile(objectsFile, objects, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := harness.Kubectl(ctx, w.cluster.AdminKubeconfig, "apply", "-f", objectsFile); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_, _ = harness.TryKubectl(
			context.Background(),
			w.cluster.AdminKubeconfig,
			"delete",
			"--ignore-not-found",
			"-f",
			objectsFile,
		)
	})

	// The refresher's own token, as its pod has it.
	tr, err := client.CoreV1().
		ServiceAccounts(home).
		CreateToken(ctx, "agents-refresher", &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	asRefresher, err := kubernetes.NewForConfig(w.cluster.RESTConfig(tr.Status.Token))
	if err != nil {
		t.Fatal(err)
	}
	patchAs := func(name, body string) error {
		_, err := asRefresher.AppsV1().DaemonSets(agents).Patch(ctx, name, types.StrategicMergePatchType, []byte(body),
			metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	// A policy is enforced some time after its creation: wait until the guard denies a relabelling.
	relabel := `{"metadata":{"labels":{"probe":"x"}}}`
	err = wait.PollUntilContextTimeout(
		ctx,
		100*time.Millisecond,
		60*time.Second,
		true,
		func(context.Context) (bool, error) {
			err := patchAs("agent", relabel)
			return err != nil && strings.Contains(err.Error(), guard.MessagePrefix), nil
		},
	)
	if err != nil {
		t.Fatalf("the guard never denied the refresher a relabelling of DaemonSet %s/agent: %v", agents, err)
	}

	daemonSet := func() *appsv1.DaemonSet {
		t.Helper()
		// The controller observes each generation at once: no node, nothing to schedule.
		var ds *appsv1.DaemonSet
		err := wait.PollUntilContextTimeout(
			ctx,
			50*time.Millisecond,
			30*time.Second,
			true,
			func(ctx context.Context) (bool, error) {
				var err error
				ds, err = client.AppsV1().DaemonSets(agents).Get(ctx, "agent", metav1.GetOptions{})
				return err == nil && ds.Status.ObservedGeneration >= ds.Generation, err
			},
		)
		if err != nil {
			t.Fatal(err)
		}
		return ds
	}
	tick := func(want map[string]string) {
		t.Helper()
		pod, err := w.cluster.PrepareCronJobPod(ctx, home, filepath.Join(dir, fmt.Sprint(time.Now().UnixNano())))
		if err != nil {
			t.Fatal(err)
		}
		res, err := pod.Run(ctx, w.bins.Refresher)
		if err != nil || res.ExitCode != 0 {
			t.Fatalf("refresher: %v\n%s", err, res)
		}
		for image, decision := range want {
			if rec := logLine(res.Stderr, harness.Image{Name: image}); !strings.Contains(rec, `"decision":"`+decision+`"`) {
				t.Fatalf("%s: want %s:\n%s", image, decision, res.Stderr)
			}
		}
	}

	web := func() *appsv1.Deployment {
		t.Helper()
		dep, err := client.AppsV1().Deployments(home).Get(ctx, "agent", metav1.GetOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return dep
	}
	tick(map[string]string{"agent": "record", "exporter": "record", "web": "record"})
	ds1 := daemonSet()
	if ds1.Annotations["x.io/agent"] == "" || ds1.Spec.Template.Annotations != nil {
		t.Fatalf("first observation: annotations %v, template annotations %v", ds1.Annotations, ds1.Spec.Template.Annotations)
	}
	agent, exporter, webDigest := push(agentRepo), push(exporterRepo), push(webRepo)
	tick(map[string]string{"agent": "restart", "exporter": "update-image", "web": "restart"})
	if dep := web(); dep.Annotations["x.io/web"] != webDigest || dep.Annotations["x.io/agent"] != "" ||
		dep.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" {
		t.Errorf("Deployment %s/agent after a push: annotations %v, template annotations %v", home, dep.Annotations,
			dep.Spec.Template.Annotations)
	}
	ds2 := daemonSet()
	containers := ds2.Spec.Template.Spec.Containers
	if ds2.Generation != ds1.Generation+1 || ds2.Annotations["x.io/agent"] != agent ||
		ds2.Annotations["x.io/exporter"] != exporter ||
		ds2.Spec.Template.Annotations["kubectl.kubernetes.io/restartedAt"] == "" ||
		containers[0].Image != w.registry.Repository(agentRepo)+":prod" ||
		containers[1].Image != w.registry.Repository(exporterRepo)+"@"+exporter {
		t.Fatalf("after a push (generation %d → %d): annotations %v, template annotations %v, containers %+v",
			ds1.Generation, ds2.Generation, ds2.Annotations, ds2.Spec.Template.Annotations, containers)
	}
	tick(map[string]string{"agent": "unchanged", "exporter": "unchanged", "web": "unchanged"})
	if ds3 := daemonSet(); ds3.ResourceVersion != ds2.ResourceVersion {
		t.Errorf("a steady tick wrote the DaemonSet (resourceVersion %s → %s)", ds2.ResourceVersion, ds3.ResourceVersion)
	}

	// What the token may not do: another DaemonSet of the namespace (RBAC), another field or another image of its
	// target (the guard).
	if err := patchAs(
		"other", `{"metadata":{"annotations":{"x.io/agent":"sha256:`+strings.Repeat("0", 64)+`"}}}`,
	); err == nil ||
		!strings.Contains(err.Error(), "forbidden") {
		t.Errorf("patching DaemonSet %s/other as the refresher: %v; want forbidden by RBAC", agents, err)
	}
	for body, denial := range map[string]string{
		relabel: "metadata.labels may not change",
		`{"spec":{"template":{"spec":{"containers":[{"name":"exporter","image":"evil.example/x@sha256:` +
			strings.Repeat("1", 64) + `"}]}}}}`: "container exporter image may only be set to",
		`{"spec":{"updateStrategy":{"type":"OnDelete"}}}`: "spec.updateStrategy may not change",
	} {
		if err := patchAs("agent", body); err == nil || !strings.Contains(err.Error(), denial) {
			t.Errorf("patching %s as the refresher: %v; want the guard's %q", body, err, denial)
		}
	}
	// The Deployment of the same name may take its own annotation only, not the DaemonSet's.
	_, err = asRefresher.AppsV1().Deployments(home).Patch(ctx, "agent", types.StrategicMergePatchType,
		[]byte(`{"metadata":{"annotations":{"x.io/agent":"sha256:`+strings.Repeat("0", 64)+`"}}}`),
		metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
	if err == nil || !strings.Contains(err.Error(), "annotation x.io/agent may not change") {
		t.Errorf("writing the DaemonSet's annotation on Deployment %s/agent as the refresher: %v; want the guard's denial",
			home, err)
	}
}
