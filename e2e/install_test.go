package e2e

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	batchv1 "k8s.io/api/batch/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/contract/guard"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// Scenario 1: helm3 install --post-renderer bin/postrender into a namespace enforcing Pod
// Security "restricted".
func TestHelm3InstallWithPostRenderer(t *testing.T) {
	w := setup(t)
	r := newRelease(t, w, tools.Helm3, w.registry)
	res := r.install()
	checkInjected(t, r, res)
}

// Scenario 2: the same with helm4 and the image-refresh post-renderer plugin, followed by a
// first refresher run to show the release works end to end.
func TestHelm4InstallWithPlugin(t *testing.T) {
	w := setup(t)
	r := newRelease(t, w, tools.Helm4, w.registry)
	if out := r.helmRun("plugin", "list").Stdout; !strings.Contains(out, harness.PluginName) {
		t.Fatalf("helm4 plugin list does not show %s:\n%s", harness.PluginName, out)
	}
	res := r.install()
	checkInjected(t, r, res)
	r.refreshOK()
	s := r.state()
	for _, img := range allImages {
		if got := s.Annotation(img); got != r.Digest[img] {
			t.Errorf("after the first run %s = %q, want %s", img.Annotation(), got, r.Digest[img])
		}
	}

	// helm uninstall removes the cluster-scoped admission guard with the rest of the release.
	r.helmRun("uninstall", releaseName, "--namespace", r.Namespace, "--wait")
	guard := guard.Name(releaseName+"-image-refresh", r.Namespace)
	api := r.Cluster.Client.AdmissionregistrationV1()
	if _, err := api.ValidatingAdmissionPolicies().Get(t.Context(), guard, metav1.GetOptions{}); err == nil {
		t.Errorf("helm uninstall left the guard policy %s", guard)
	}
	if _, err := api.ValidatingAdmissionPolicyBindings().Get(t.Context(), guard, metav1.GetOptions{}); err == nil {
		t.Errorf("helm uninstall left the guard binding %s", guard)
	}
}

// checkInjected verifies what the post-renderer added: the refresh ConfigMap, a CronJob
// running as its own ServiceAccount, and a Role limited to get/patch on the one Deployment;
// and that the API server's Pod Security admission accepts the pods of both the CronJob and
// the chart's Deployment.
func checkInjected(t *testing.T, r *release, install *harness.Result) {
	t.Helper()
	ctx := t.Context()
	client := r.Cluster.Client
	if strings.Contains(install.Stderr, "PodSecurity") {
		t.Errorf("helm install printed Pod Security warnings:\n%s", install.Stderr)
	}

	cms, err := client.CoreV1().
		ConfigMaps(r.Namespace).
		List(ctx, metav1.ListOptions{LabelSelector: config.ConfigLabel + "=true"})
	if err != nil {
		t.Fatal(err)
	}
	if len(cms.Items) != 1 {
		t.Fatalf("want one refresh ConfigMap, found %d", len(cms.Items))
	}
	cfg, err := config.Parse([]byte(cms.Items[0].Data[config.ConfigMapKey]))
	if err != nil {
		t.Fatalf("the refresh ConfigMap does not hold a valid config: %v", err)
	}
	for _, img := range allImages {
		i := slices.IndexFunc(cfg.Spec.Images, func(c config.Image) bool { return c.Name == img.Name })
		if i < 0 {
			t.Errorf("config has no image %s", img.Name)
			continue
		}
		c := cfg.Spec.Images[i]
		if c.Repository != r.Registry.Repository(r.Repo(img)) || c.Tag != harness.FloatingTag ||
			c.Annotation != img.Annotation() ||
			c.Target.Name != deployName {
			t.Errorf("config image %s = %+v", img.Name, c)
		}
	}

	pod := r.cronJobPod()
	cj := pod.CronJob
	if cj.Spec.Schedule != cfg.Spec.Schedule || cj.Spec.ConcurrencyPolicy != batchv1.ForbidConcurrent {
		t.Errorf(
			"CronJob %s: schedule %q (config %q), concurrency %s",
			cj.Name,
			cj.Spec.Schedule,
			cfg.Spec.Schedule,
			cj.Spec.ConcurrencyPolicy,
		)
	}
	if _, err := client.CoreV1().ServiceAccounts(r.Namespace).Get(
		ctx, pod.ServiceAccount, metav1.GetOptions{},
	); err != nil {
		t.Errorf("the CronJob's ServiceAccount: %v", err)
	}
	checkRBAC(t, r, pod.ServiceAccount)
	checkGuard(t, r, cfg, pod.ServiceAccount)

	// Workload objects only get Pod Security warnings; the pods themselves are enforced.
	// The job controller creating the pod of a Job made from the CronJob proves the
	// template complies.
	job, err := client.BatchV1().Jobs(r.Namespace).Create(ctx, &batchv1.Job{
		ObjectMeta: metav1.ObjectMeta{Name: "manual-refresh", Namespace: r.Namespace},
		Spec:       *cj.Spec.JobTemplate.Spec.DeepCopy(),
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating a Job from CronJob %s: %v", cj.Name, err)
	}
	waitForPod(t, r, job.UID, "Job "+job.Name)
	s := r.state()
	if len(s.ReplicaSets) != 1 {
		t.Fatalf("want one ReplicaSet after install, found %d", len(s.ReplicaSets))
	}
	waitForPod(t, r, s.ReplicaSets[0].UID, "ReplicaSet "+s.ReplicaSets[0].Name)
}

// checkRBAC verifies the Role bound to the ServiceAccount grants exactly get and patch on
// the target Deployment.
func checkRBAC(t *testing.T, r *release, serviceAccount string) {
	t.Helper()
	ctx := t.Context()
	client := r.Cluster.Client
	bindings, err := client.RbacV1().RoleBindings(r.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	var roles []string
	for _, b := range bindings.Items {
		for _, s := range b.Subjects {
			if s.Kind == rbacv1.ServiceAccountKind && s.Name == serviceAccount && b.RoleRef.Kind == "Role" {
				roles = append(roles, b.RoleRef.Name)
			}
		}
	}
	if len(roles) != 1 {
		t.Fatalf("want one Role bound to ServiceAccount %s, found %q", serviceAccount, roles)
	}
	role, err := client.RbacV1().Roles(r.Namespace).Get(ctx, roles[0], metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(role.Rules) != 2 {
		t.Fatalf(
			"Role %s has %d rules %+v; want exactly two: get,patch on deployments.apps/%s and %v on events.events.k8s.io",
			role.Name,
			len(role.Rules),
			role.Rules,
			deployName,
			contract.EventVerbs,
		)
	}
	if events := role.Rules[1]; !slices.Equal(events.APIGroups, []string{"events.k8s.io"}) ||
		!slices.Equal(events.Resources, []string{"events"}) ||
		!slices.Equal(events.Verbs, contract.EventVerbs) ||
		len(events.ResourceNames) != 0 ||
		len(events.NonResourceURLs) != 0 {
		t.Errorf("Role %s has rule %+v; want only %v on events.events.k8s.io", role.Name, events, contract.EventVerbs)
	}
	rule := role.Rules[0]
	if !slices.Equal(rule.APIGroups, []string{"apps"}) || !slices.Equal(rule.Resources, []string{"deployments"}) ||
		!slices.Equal(
			rule.ResourceNames,
			[]string{deployName},
		) || !slices.Equal(slices.Sorted(slices.Values(rule.Verbs)), []string{"get", "patch"}) ||
		len(rule.NonResourceURLs) != 0 {
		t.Errorf("Role %s has rule %+v; want only get,patch on deployments.apps/%s", role.Name, rule, deployName)
	}
}

// waitForPod waits until the controller owning uid has created a pod, failing fast with the
// controller's FailedCreate event (a Pod Security rejection, for one).
func waitForPod(t *testing.T, r *release, owner types.UID, what string) {
	t.Helper()
	client := r.Cluster.Client
	err := wait.PollUntilContextTimeout(
		t.Context(),
		100*time.Millisecond,
		30*time.Second,
		true,
		func(ctx context.Context) (bool, error) {
			pods, err := client.CoreV1().Pods(r.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, p := range pods.Items {
				if ref := metav1.GetControllerOf(&p); ref != nil && ref.UID == owner {
					return true, nil
				}
			}
			events, err := client.CoreV1().Events(r.Namespace).List(ctx, metav1.ListOptions{})
			if err != nil {
				return false, err
			}
			for _, e := range events.Items {
				if e.InvolvedObject.UID == owner && e.Reason == "FailedCreate" {
					t.Fatalf("%s could not create its pod: %s", what, e.Message)
				}
			}
			return false, nil
		},
	)
	if err != nil {
		t.Fatalf("%s created no pod: %v", what, err)
	}
}

// checkGuard verifies the admission guard was installed as the post-renderer renders it: the
// policy (as guard.For generates it, matching the CronJob's ServiceAccount) and its binding.
func checkGuard(t *testing.T, r *release, cfg *config.RefreshConfig, serviceAccount string) {
	t.Helper()
	ctx, api := t.Context(), r.Cluster.Client.AdmissionregistrationV1()
	want, wantBinding := guard.For(cfg, r.Namespace, serviceAccount)
	policy, err := api.ValidatingAdmissionPolicies().Get(ctx, want.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the admission guard policy: %v", err)
	}
	if len(policy.Spec.Validations) != len(want.Spec.Validations) ||
		!slices.Equal(guardExpressions(policy.Spec.Validations), guardExpressions(want.Spec.Validations)) ||
		policy.Spec.MatchConditions[0].Expression != want.Spec.MatchConditions[0].Expression {
		t.Errorf("the installed guard policy %s is not the one the post-renderer renders", policy.Name)
	}
	binding, err := api.ValidatingAdmissionPolicyBindings().Get(ctx, wantBinding.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the admission guard binding: %v", err)
	}
	if binding.Spec.PolicyName != want.Name ||
		!slices.Equal(binding.Spec.ValidationActions, wantBinding.Spec.ValidationActions) {
		t.Errorf(
			"guard binding %s: policy %q, actions %v",
			binding.Name,
			binding.Spec.PolicyName,
			binding.Spec.ValidationActions,
		)
	}
}

func guardExpressions(vs []admissionv1.Validation) []string {
	out := make([]string, len(vs))
	for i, v := range vs {
		out[i] = v.Expression
	}
	return out
}
