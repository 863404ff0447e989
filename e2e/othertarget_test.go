package e2e

import (
	"context"
	"fmt"
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

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract/guard"
)

// otherTarget is a second Deployment of the release's namespace with an image of its own
// (repository <ns>/other, rollout-restart), added to the refresh config, the Role and the
// admission guard as the chart and the post-renderer would render them: the fault matrix
// shows an image on another target still processed.
type otherTarget struct {
	name, repo, annotation string
	digest                 string
}

const otherImage = "other"

func addOtherTarget(t *testing.T, r *release) *otherTarget {
	t.Helper()
	ctx, client := t.Context(), r.Cluster.Client
	o := &otherTarget{
		name:       releaseName + "-other",
		repo:       r.Namespace + "/" + otherImage,
		annotation: "tracebloc.io/last-refreshed-other-digest",
	}
	o.push(t, r)
	replicas := int32(0) // nothing to run: its rollouts complete as soon as they are observed
	labels := map[string]string{"app": o.name}
	nonRoot, noEscalation := true, false
	_, err := client.AppsV1().Deployments(r.Namespace).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: o.name},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					SecurityContext: &corev1.PodSecurityContext{
						RunAsNonRoot:   &nonRoot,
						SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
					},
					Containers: []corev1.Container{
						{Name: "api", Image: r.Registry.Repository(o.repo) + ":prod", ImagePullPolicy: corev1.PullAlways,
							SecurityContext: &corev1.SecurityContext{
								AllowPrivilegeEscalation: &noEscalation,
								Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
							}},
					},
				},
			},
		},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("creating Deployment %s: %v", o.name, err)
	}

	cms, err := client.CoreV1().
		ConfigMaps(r.Namespace).
		List(ctx, metav1.ListOptions{LabelSelector: config.ConfigLabel + "=true"})
	if err != nil || len(cms.Items) != 1 {
		t.Fatalf("the refresh ConfigMap: %v (%d found)", err, len(cms.Items))
	}
	cm := cms.Items[0]
	cfg, err := config.Parse([]byte(cm.Data[config.ConfigMapKey]))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Spec.Images = append(cfg.Spec.Images, config.Image{
		Name: otherImage, Repository: r.Registry.Repository(o.repo), Tag: "prod", Action: config.ActionRolloutRestart,
		Target: config.Target{
			Kind:      config.KindDeployment,
			Name:      o.name,
			Namespace: cfg.Metadata.Namespace,
			Container: "api",
		}, Annotation: o.annotation,
	})
	if cfg.Metadata.Namespace == "" {
		cfg.Spec.Images[len(cfg.Spec.Images)-1].Target.Namespace = ""
	}
	data, err := cfg.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	cm.Data[config.ConfigMapKey] = string(data)
	if _, err := client.CoreV1().ConfigMaps(r.Namespace).Update(ctx, &cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	role, err := client.RbacV1().Roles(r.Namespace).Get(ctx, cfg.Metadata.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	role.Rules[0].ResourceNames = append(role.Rules[0].ResourceNames, o.name)
	if _, err := client.RbacV1().Roles(r.Namespace).Update(ctx, role, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	updateGuard(t, r, cfg, o.name, o.annotation)
	return o
}

// updateGuard replaces the admission guard's policy with the one the post-renderer renders for
// cfg, and waits until the API server lets the refresher write target's audit annotation (a
// dry run with its token): a policy update is enforced asynchronously, like its create.
func updateGuard(t *testing.T, r *release, cfg *config.RefreshConfig, target, annotation string) {
	t.Helper()
	ctx, client := t.Context(), r.Cluster.Client
	want, _ := guard.For(cfg, r.Namespace, cfg.Metadata.Name)
	policies := client.AdmissionregistrationV1().ValidatingAdmissionPolicies()
	policy, err := policies.Get(ctx, want.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the guard policy: %v", err)
	}
	policy.Spec = want.Spec
	if _, err := policies.Update(ctx, policy, metav1.UpdateOptions{}); err != nil {
		t.Fatalf("updating the guard policy: %v", err)
	}
	tr, err := client.CoreV1().
		ServiceAccounts(r.Namespace).
		CreateToken(ctx, cfg.Metadata.Name, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	refresher, err := kubernetes.NewForConfig(r.Cluster.RESTConfig(tr.Status.Token))
	if err != nil {
		t.Fatal(err)
	}
	// Enforced is: the refresher may write the target's audit annotation, and still may not
	// relabel it — so neither a stale policy nor none at all (the install's create may not be
	// enforced yet either) passes for the updated one.
	patch := func(body string) error {
		_, err := refresher.AppsV1().Deployments(r.Namespace).Patch(ctx, target, types.StrategicMergePatchType, []byte(body),
			metav1.PatchOptions{DryRun: []string{metav1.DryRunAll}})
		return err
	}
	legit := fmt.Sprintf(`{"metadata":{"annotations":{%q:"sha256:%s"}}}`, annotation, strings.Repeat("0", 64))
	hostile := `{"metadata":{"labels":{"probe":"x"}}}`
	err = wait.PollUntilContextTimeout(
		ctx,
		100*time.Millisecond,
		60*time.Second,
		true,
		func(context.Context) (bool, error) {
			denied := patch(hostile)
			return patch(legit) == nil && denied != nil && strings.Contains(denied.Error(), guard.MessagePrefix), nil
		},
	)
	if err != nil {
		t.Fatalf("the updated guard does not let the refresher write %s on %s: %v", annotation, target, err)
	}
}

func (o *otherTarget) push(t *testing.T, r *release) {
	t.Helper()
	d, err := r.Registry.PushImage(t.Context(), o.repo, "prod")
	if err != nil {
		t.Fatal(err)
	}
	o.digest = d
}

// settle waits for the deployment controller to observe the other target's last change
// (replicas 0: that completes its rollout).
func (o *otherTarget) settle(ctx context.Context, r *release) error {
	return wait.PollUntilContextTimeout(
		ctx,
		50*time.Millisecond,
		30*time.Second,
		true,
		func(ctx context.Context) (bool, error) {
			dep, err := r.Cluster.Client.AppsV1().Deployments(r.Namespace).Get(ctx, o.name, metav1.GetOptions{})
			if err != nil {
				return false, err
			}
			return dep.Status.ObservedGeneration >= dep.Generation, nil
		},
	)
}

// state is the other target's audit annotation and generation (a restart makes the next).
func (o *otherTarget) state(t *testing.T, r *release) (annotation string, generation int64) {
	t.Helper()
	dep, err := r.Cluster.Client.AppsV1().Deployments(r.Namespace).Get(t.Context(), o.name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return dep.Annotations[o.annotation], dep.Generation
}

func (o *otherTarget) String() string {
	return fmt.Sprintf("Deployment %s (image %s)", o.name, otherImage)
}
