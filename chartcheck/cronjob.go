package chartcheck

import (
	"fmt"
	"maps"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/postrender"
)

// refresherCronJob is a CronJob of the stream that is image-refresh's.
type refresherCronJob struct {
	doc     *document
	cronJob *batchv1.CronJob
	// named: it is named after the config, in the config's namespace.
	named bool
	// evidence says why it counts as running the refresher, e.g. "label app.kubernetes.io/managed-by=image-refresh".
	evidence string
}

// refresherCronJobs are the CronJobs named after the config or carrying any trace of the
// refresher (refresherEvidence): renaming a CronJob must not hide it. The findings are CronJobs
// that do not decode.
func (c *checkedRelease) refresherCronJobs() ([]refresherCronJob, []Finding) {
	var out []refresherCronJob
	var findings []Finding
	for _, d := range c.stream.OfKind("CronJob") {
		var cj batchv1.CronJob
		if err := d.Decode(&cj); err != nil {
			findings = append(findings, Finding{Document: d.String(), Expected: "a CronJob", Found: err.Error()})
			continue
		}
		named := c.cfg != nil && d.Name == c.cfg.Metadata.Name && d.Namespace == c.cfg.Metadata.Namespace
		evidence := c.refresherEvidence(&cj)
		if named && evidence == "" {
			evidence = "named after the config"
		}
		if evidence != "" {
			out = append(out, refresherCronJob{doc: d, cronJob: &cj, named: named, evidence: evidence})
		}
	}
	return out, findings
}

// refresherEvidence tells why a CronJob runs the refresher, or "" if nothing says it does: the
// post-renderer's managed-by label, a container running the refresher image (the config's
// spec.job.image or the default), or a mount of the labelled config ConfigMap or at or under the
// config directory. A --config flag or a binary's name is no evidence: any chart's CronJob may
// have them.
func (c *checkedRelease) refresherEvidence(cj *batchv1.CronJob) string {
	if cj.Labels[postrender.ManagedByLabel] == postrender.ManagedByValue {
		return fmt.Sprintf("label %s=%s", postrender.ManagedByLabel, postrender.ManagedByValue)
	}
	repositories := []string{imageRepository(config.DefaultJobImage)}
	if c.cfg != nil {
		repositories = append(repositories, imageRepository(c.cfg.Spec.Job.Image))
	}
	pod := &cj.Spec.JobTemplate.Spec.Template.Spec
	for _, ctr := range slices.Concat(pod.InitContainers, pod.Containers) {
		if repo := imageRepository(ctr.Image); repo != "" && slices.Contains(repositories, repo) {
			return fmt.Sprintf("container %q runs the refresher image %s", ctr.Name, ctr.Image)
		}
		for _, m := range ctr.VolumeMounts {
			if inConfigDir(m.MountPath) {
				return fmt.Sprintf("container %q mounts %s", ctr.Name, m.MountPath)
			}
			if v := findVolume(
				pod,
				m.Name,
			); c.configDoc != nil && v != nil && v.ConfigMap != nil && v.ConfigMap.Name == c.configDoc.Name {
				return fmt.Sprintf("container %q mounts the config ConfigMap %q", ctr.Name, c.configDoc.Name)
			}
		}
	}
	return ""
}

// imageRepository is an image reference's repository, normalised ("" if it does not parse).
func imageRepository(image string) string {
	ref, err := name.ParseReference(image)
	if err != nil {
		return ""
	}
	return ref.Context().Name()
}

// inConfigDir reports whether a path is the config directory or under it.
func inConfigDir(p string) bool {
	p = path.Clean(p)
	return p == config.MountPath || strings.HasPrefix(p, config.MountPath+"/")
}

// checkCronJobPresence: the CronJob named after the config exists iff some image floats, and no
// other CronJob runs the refresher.
func (c *checkedRelease) checkCronJobPresence() []Finding {
	cronJobs, findings := c.refresherCronJobs()
	wantName := ""
	if c.cfg != nil {
		wantName = c.cfg.Metadata.Name
	}
	for _, r := range cronJobs {
		found := "a CronJob running the refresher (" + r.evidence + ")"
		switch {
		case c.cfg == nil:
			findings = append(findings, Finding{
				Document: r.doc.String(),
				Expected: fmt.Sprintf("no image-refresh CronJob: the stream has no ConfigMap labelled %s=true", config.ConfigLabel),
				Found:    found,
			})
		case !c.cfg.AnyFloating():
			findings = append(findings, Finding{
				Document: r.doc.String(),
				Expected: fmt.Sprintf("no image-refresh CronJob: every image of %s is pinned", c.configDoc),
				Found:    found,
			})
		case !r.named:
			findings = append(findings, Finding{
				Document: r.doc.String(),
				Expected: fmt.Sprintf("one image-refresh CronJob, named %q after the config", wantName),
				Found:    "another " + strings.TrimPrefix(found, "a "),
			})
		case c.cronJob != nil:
			findings = append(findings, Finding{
				Document: r.doc.String(),
				Expected: "one CronJob " + quoted(wantName),
				Found:    "a duplicate",
			})
		default:
			c.cronJobDoc, c.cronJob = r.doc, r.cronJob
		}
	}
	if c.cfg != nil && c.cfg.AnyFloating() && c.cronJob == nil {
		findings = append(findings, Finding{
			Document: c.configDoc.String(),
			Expected: fmt.Sprintf("CronJob %q: images %s float", wantName, strings.Join(floatingNames(c.cfg), ", ")),
			Found:    "no such CronJob in the stream",
		})
	}
	return findings
}

func floatingNames(cfg *config.RefreshConfig) []string {
	var out []string
	for _, img := range cfg.Floating() {
		out = append(out, img.Name)
	}
	return out
}

// checkCronJobConfig: the CronJob is the one the post-renderer renders from the config: it runs
// (not suspended, one run at a time), with the config's spec.job (defaults applied), one
// container, the refresher, reading the config ConfigMap mounted read-only at config.MountPath.
func (c *checkedRelease) checkCronJobConfig() []Finding {
	pod := &c.cronJob.Spec.JobTemplate.Spec.Template.Spec
	var findings []Finding
	if len(pod.Containers) != 1 || len(pod.InitContainers) > 0 {
		findings = append(findings, Finding{
			Document: c.cronJobDoc.String(),
			Expected: "one container, the refresher, and no init containers: any container could use the refresher's token",
			Found: fmt.Sprintf(
				"containers %q, init containers %q",
				containerNames(pod.Containers),
				containerNames(pod.InitContainers),
			),
		})
	}
	ctr := c.refresherContainer()
	if ctr == nil {
		return findings
	}
	return slices.Concat(
		findings,
		c.checkJobSpec(ctr),
		c.checkConfigMount(ctr),
		checkTokenPath(c.cronJobDoc.String(), ctr),
	)
}

// refresherContainer is the CronJob's refresher: the post-renderer's container, or the only one
// (nil if neither: checkCronJobConfig reports it).
func (c *checkedRelease) refresherContainer() *corev1.Container {
	pod := &c.cronJob.Spec.JobTemplate.Spec.Template.Spec
	i := slices.IndexFunc(pod.Containers, func(ctr corev1.Container) bool { return ctr.Name == postrender.ContainerName })
	if i < 0 && len(pod.Containers) == 1 {
		i = 0
	}
	if i < 0 {
		return nil
	}
	return &pod.Containers[i]
}

// touches reports whether a clean mount path is dir, under it or above it: a mount there
// replaces or shadows what is mounted at dir.
func touches(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/") || strings.HasPrefix(dir, strings.TrimSuffix(p, "/")+"/")
}

func containerNames(containers []corev1.Container) []string {
	names := make([]string, len(containers))
	for i, ctr := range containers {
		names[i] = ctr.Name
	}
	return names
}

// checkJobSpec compares the CronJob with what the contract fixes and the config's spec.job says.
func (c *checkedRelease) checkJobSpec(ctr *corev1.Container) []Finding {
	doc, cj, job := c.cronJobDoc.String(), c.cronJob, c.cfg.Spec.Job
	jobSpec := &cj.Spec.JobTemplate.Spec
	pod := &jobSpec.Template.Spec
	var findings []Finding
	compare := func(field, want, got, why string) {
		if want != got {
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf("%s %s%s", field, want, why),
				Found:    fmt.Sprintf("%s %s", field, got),
			})
		}
	}
	const fromConfig = " (the config's spec.job)"
	compare(
		"suspend",
		"false",
		strconv.FormatBool(cj.Spec.Suspend != nil && *cj.Spec.Suspend),
		": a suspended CronJob never refreshes",
	)
	compare(
		"concurrencyPolicy",
		string(batchv1.ForbidConcurrent),
		defaultString(string(cj.Spec.ConcurrencyPolicy), string(batchv1.AllowConcurrent)),
		": two runs would patch the same Deployments",
	)
	compare(
		"startingDeadlineSeconds",
		optional(job.StartingDeadlineSeconds),
		optional(cj.Spec.StartingDeadlineSeconds),
		fromConfig,
	)
	compare(
		"successfulJobsHistoryLimit",
		optional(job.SuccessfulJobsHistoryLimit),
		optional(cj.Spec.SuccessfulJobsHistoryLimit),
		fromConfig,
	)
	compare(
		"failedJobsHistoryLimit",
		optional(job.FailedJobsHistoryLimit),
		optional(cj.Spec.FailedJobsHistoryLimit),
		fromConfig,
	)
	compare(
		"activeDeadlineSeconds",
		optional(job.ActiveDeadlineSeconds),
		optional(jobSpec.ActiveDeadlineSeconds),
		fromConfig,
	)
	compare("backoffLimit", optional(job.BackoffLimit), optional(jobSpec.BackoffLimit), fromConfig)
	compare(
		"automountServiceAccountToken",
		"true",
		c.automountsToken(pod),
		": the refresher authenticates with its ServiceAccount's token",
	)
	var pullSecrets []string
	for _, s := range pod.ImagePullSecrets {
		pullSecrets = append(pullSecrets, s.Name)
	}
	compare(
		"imagePullSecrets",
		fmt.Sprintf("%q", slices.Sorted(slices.Values(job.ImagePullSecrets))),
		fmt.Sprintf("%q", slices.Sorted(slices.Values(pullSecrets))),
		fromConfig,
	)
	container := fmt.Sprintf("container %q ", ctr.Name)
	compare(container+"image", job.Image, ctr.Image, fromConfig)
	compare(container+"imagePullPolicy", job.ImagePullPolicy, string(effectivePullPolicy(ctr)), fromConfig)
	var runAsUser *int64
	if pod.SecurityContext != nil {
		runAsUser = pod.SecurityContext.RunAsUser
	}
	if ctr.SecurityContext != nil && ctr.SecurityContext.RunAsUser != nil {
		runAsUser = ctr.SecurityContext.RunAsUser
	}
	compare(container+"runAsUser", optional(job.RunAsUser), optional(runAsUser), fromConfig)
	compare(
		container+"requests",
		describeQuantities(job.Resources.Requests),
		describeResources(ctr.Resources.Requests),
		fromConfig,
	)
	compare(
		container+"limits",
		describeQuantities(job.Resources.Limits),
		describeResources(ctr.Resources.Limits),
		fromConfig,
	)
	if len(ctr.Command) > 0 {
		findings = append(findings, Finding{
			Document: doc,
			Expected: container + "to run the image's entrypoint, the refresher",
			Found:    fmt.Sprintf("command %q", ctr.Command),
		})
	}
	findings = append(findings, c.checkAllowList(pod, ctr)...)
	return append(findings, c.checkRegistryCredentials(pod, ctr)...)
}

// checkAllowList: the fields that change how or where the refresher runs hold exactly what the
// post-renderer renders. A flag (--dry-run, --kubeconfig), a variable (KUBERNETES_SERVICE_HOST, a
// proxy not in spec.job.env), a Job that never starts a pod or a pod killed at once all pass every
// other check and never refresh anything.
func (c *checkedRelease) checkAllowList(pod *corev1.PodSpec, ctr *corev1.Container) []Finding {
	doc, jobSpec := c.cronJobDoc.String(), &c.cronJob.Spec.JobTemplate.Spec
	var findings []Finding
	compare := func(field, want, got string) {
		if want != got {
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf("%s %s, as the post-renderer renders it", field, want),
				Found:    fmt.Sprintf("%s %s", field, got),
			})
		}
	}
	container := fmt.Sprintf("container %q ", ctr.Name)
	compare(
		container+"args",
		fmt.Sprintf("%q", []string{"--config", path.Join(config.MountPath, config.ConfigMapKey)}),
		fmt.Sprintf("%q", ctr.Args),
	)
	findings = append(findings, c.checkEnv(ctr)...)
	compare(container+"envFrom sources", "0", strconv.Itoa(len(ctr.EnvFrom)))
	compare("jobTemplate suspend", "false", strconv.FormatBool(jobSpec.Suspend != nil && *jobSpec.Suspend))
	for _, f := range []struct {
		field string
		count *int32
	}{{"parallelism", jobSpec.Parallelism}, {"completions", jobSpec.Completions}} {
		if got := optional(f.count); got != "unset" && got != "1" {
			findings = append(findings, Finding{
				Document: doc,
				Expected: "jobTemplate " + f.field + " unset or 1: one pod runs the refresher once",
				Found:    fmt.Sprintf("%s %s", f.field, got),
			})
		}
	}
	compare("pod activeDeadlineSeconds", "unset", optional(pod.ActiveDeadlineSeconds))
	compare("pod hostAliases", "0", strconv.Itoa(len(pod.HostAliases)))
	compare("pod dnsConfig set", "false", strconv.FormatBool(pod.DNSConfig != nil))
	compare("pod hostNetwork", "false", strconv.FormatBool(pod.HostNetwork))
	compare(
		"pod dnsPolicy",
		string(corev1.DNSClusterFirst),
		defaultString(string(pod.DNSPolicy), string(corev1.DNSClusterFirst)),
	)
	if pod.RestartPolicy != corev1.RestartPolicyNever && pod.RestartPolicy != corev1.RestartPolicyOnFailure {
		findings = append(findings, Finding{
			Document: doc,
			Expected: "pod restartPolicy Never or OnFailure: a Job's pod must end",
			Found:    fmt.Sprintf("restartPolicy %q", pod.RestartPolicy),
		})
	}
	return findings
}

// checkEnv: the container's env is the post-renderer's own (DOCKER_CONFIG with registry
// credentials), then the config's spec.job.env, in order. A proxy variable missing, changed or
// not in spec.job.env is named (checkProxyEnv); any other difference shows both lists.
func (c *checkedRelease) checkEnv(ctr *corev1.Container) []Finding {
	want := []string{}
	if c.cfg.Spec.Job.RegistryCredentialsSecret != "" {
		want = append(want, postrender.DockerConfigEnv+"="+config.DockerConfigMountPath)
	}
	for _, e := range c.cfg.Spec.Job.Env {
		want = append(want, e.Name+"="+e.Value)
	}
	got := []string{}
	for _, e := range ctr.Env {
		got = append(got, describeEnvVar(e))
	}
	if slices.Equal(want, got) {
		return nil
	}
	findings := c.checkProxyEnv(ctr)
	isProxy := func(e string) bool { return slices.Contains(config.ProxyEnvNames, envName(e)) }
	if len(findings) == 0 || !slices.Equal(
		slices.DeleteFunc(slices.Clone(want), isProxy),
		slices.DeleteFunc(slices.Clone(got), isProxy),
	) {
		findings = append(findings, Finding{
			Document: c.cronJobDoc.String(),
			Expected: fmt.Sprintf("container %q env %q, as the post-renderer renders it", ctr.Name, want),
			Found:    fmt.Sprintf("container %q env %q", ctr.Name, got),
		})
	}
	return findings
}

// checkProxyEnv names each proxy variable (config.ProxyEnvNames) of the container that is not
// exactly one entry with the value of the config's spec.job.env, or that spec.job.env lacks.
func (c *checkedRelease) checkProxyEnv(ctr *corev1.Container) []Finding {
	doc := c.cronJobDoc.String()
	var findings []Finding
	for _, name := range config.ProxyEnvNames {
		var entries []string
		for _, e := range ctr.Env {
			if e.Name == name {
				entries = append(entries, describeEnvVar(e))
			}
		}
		i := slices.IndexFunc(c.cfg.Spec.Job.Env, func(e config.EnvVar) bool { return e.Name == name })
		switch {
		case i < 0 && len(entries) > 0:
			findings = append(findings, Finding{Document: doc,
				Expected: fmt.Sprintf(
					"container %q without %s: set proxy variables in the config's spec.job.env, which the post-renderer renders",
					ctr.Name,
					name,
				),
				Found: fmt.Sprintf("env %s, not in spec.job.env", strings.Join(entries, ", "))})
		case i < 0:
		case len(entries) == 0:
			findings = append(findings, Finding{Document: doc,
				Expected: fmt.Sprintf(
					"container %q env %s=%s (the config's spec.job.env[%d])",
					ctr.Name,
					name,
					c.cfg.Spec.Job.Env[i].Value,
					i,
				),
				Found: "no " + name})
		case len(entries) > 1 || entries[0] != name+"="+c.cfg.Spec.Job.Env[i].Value:
			findings = append(findings, Finding{Document: doc,
				Expected: fmt.Sprintf(
					"container %q env %s=%s (the config's spec.job.env[%d])",
					ctr.Name,
					name,
					c.cfg.Spec.Job.Env[i].Value,
					i,
				),
				Found: "env " + strings.Join(entries, ", ")})
		}
	}
	return findings
}

// describeEnvVar formats an env entry as name=value, or "name from valueFrom".
func describeEnvVar(e corev1.EnvVar) string {
	if e.ValueFrom != nil {
		return e.Name + " from valueFrom"
	}
	return e.Name + "=" + e.Value
}

// envName is the name of an entry describeEnvVar formatted.
func envName(described string) string {
	name, _, _ := strings.Cut(described, "=")
	name, _, _ = strings.Cut(name, " from valueFrom")
	return name
}

// automountsToken is whether the pod gets its ServiceAccount's token: the pod's setting, else
// the ServiceAccount's, else true.
func (c *checkedRelease) automountsToken(pod *corev1.PodSpec) string {
	if pod.AutomountServiceAccountToken != nil {
		return strconv.FormatBool(*pod.AutomountServiceAccountToken)
	}
	for _, d := range c.stream.Find("ServiceAccount", c.cfg.Metadata.Namespace, pod.ServiceAccountName) {
		var sa corev1.ServiceAccount
		if err := d.Decode(&sa); err == nil && sa.AutomountServiceAccountToken != nil && !*sa.AutomountServiceAccountToken {
			return "false, from " + d.String()
		}
	}
	return "true"
}

// checkRegistryCredentials: with spec.job.registryCredentialsSecret, the Secret is mounted at
// config.DockerConfigMountPath (checkAllowList checks that DOCKER_CONFIG points there).
func (c *checkedRelease) checkRegistryCredentials(pod *corev1.PodSpec, ctr *corev1.Container) []Finding {
	secret := c.cfg.Spec.Job.RegistryCredentialsSecret
	if secret == "" {
		return nil
	}
	mounted := slices.ContainsFunc(ctr.VolumeMounts, func(m corev1.VolumeMount) bool {
		v := findVolume(pod, m.Name)
		return path.Clean(
			m.MountPath,
		) == config.DockerConfigMountPath && m.SubPath == "" && v != nil && v.Secret != nil && v.Secret.SecretName == secret
	})
	if mounted {
		return nil
	}
	return []Finding{
		{
			Document: c.cronJobDoc.String(),
			Expected: fmt.Sprintf(
				"container %q to mount Secret %q at %s (the config's spec.job.registryCredentialsSecret)",
				ctr.Name,
				secret,
				config.DockerConfigMountPath,
			),
			Found: "no such mount",
		},
	}
}

func findVolume(pod *corev1.PodSpec, name string) *corev1.Volume {
	i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Name == name })
	if i < 0 {
		return nil
	}
	return &pod.Volumes[i]
}

// checkConfigMount: the refresher reads the labelled ConfigMap's refresh.yaml: exactly one mount
// touches the config directory (at, under or above it), the config volume, read-only at
// config.MountPath (checkAllowList checks that --config names its refresh.yaml).
func (c *checkedRelease) checkConfigMount(ctr *corev1.Container) []Finding {
	doc, pod := c.cronJobDoc.String(), &c.cronJob.Spec.JobTemplate.Spec.Template.Spec
	var findings []Finding
	mountedThere := false
	for _, m := range ctr.VolumeMounts {
		clean := path.Clean(m.MountPath)
		if !touches(clean, config.MountPath) {
			continue
		}
		mountedThere = mountedThere || clean == config.MountPath
		v := findVolume(pod, m.Name)
		switch {
		case clean != config.MountPath || m.SubPath != "":
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf(
					"container %q to mount the config volume at %s, and nothing under or above it",
					ctr.Name,
					config.MountPath,
				),
				Found: fmt.Sprintf("volume %q at mountPath %q subPath %q", m.Name, m.MountPath, m.SubPath),
			})
		case v == nil || v.ConfigMap == nil || v.ConfigMap.Name != c.configDoc.Name:
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf("container %q to mount ConfigMap %q at %s", ctr.Name, c.configDoc.Name, config.MountPath),
				Found:    fmt.Sprintf("volume %q: %s", m.Name, describeVolume(v)),
			})
		default:
			if !m.ReadOnly {
				findings = append(findings, Finding{
					Document: doc,
					Expected: fmt.Sprintf("container %q to mount volume %q readOnly", ctr.Name, m.Name),
					Found:    "a writable mount",
				})
			}
			items := v.ConfigMap.Items
			i := slices.IndexFunc(items, func(it corev1.KeyToPath) bool {
				return it.Key == config.ConfigMapKey && it.Path == config.ConfigMapKey
			})
			if len(items) > 0 && i < 0 {
				findings = append(findings, Finding{
					Document: doc,
					Expected: fmt.Sprintf("volume %q to project key %q as %q", m.Name, config.ConfigMapKey, config.ConfigMapKey),
					Found:    "items " + describeItems(items),
				})
			}
			mode := v.ConfigMap.DefaultMode
			if i >= 0 && items[i].Mode != nil {
				mode = items[i].Mode
			}
			if !c.readableByRefresher(mode) {
				findings = append(findings, Finding{
					Document: doc,
					Expected: fmt.Sprintf(
						"volume %q's %s readable by the refresher's UID %s (file mode with read for others, or for the group with a "+
							"pod fsGroup)",
						m.Name,
						config.ConfigMapKey,
						optional(c.cfg.Spec.Job.RunAsUser),
					),
					Found: fmt.Sprintf("mode %#o", *mode),
				})
			}
		}
	}
	if !mountedThere {
		findings = append(findings, Finding{
			Document: doc,
			Expected: fmt.Sprintf("container %q to mount ConfigMap %q at %s", ctr.Name, c.configDoc.Name, config.MountPath),
			Found:    "no mount there",
		})
	}
	return findings
}

// readableByRefresher reports whether a ConfigMap file of mode (nil: Kubernetes' default 0644),
// owned by root and, with a pod fsGroup, by that group, can be read by the non-root refresher.
func (c *checkedRelease) readableByRefresher(mode *int32) bool {
	if mode == nil {
		return true
	}
	pod := &c.cronJob.Spec.JobTemplate.Spec.Template.Spec
	fsGroup := pod.SecurityContext != nil && pod.SecurityContext.FSGroup != nil
	return *mode&0o004 != 0 || fsGroup && *mode&0o040 != 0
}

// describeItems formats a volume's items with their modes (the values, not the pointers).
func describeItems(items []corev1.KeyToPath) string {
	out := make([]string, len(items))
	for i, it := range items {
		out[i] = fmt.Sprintf("%s→%s", it.Key, it.Path)
		if it.Mode != nil {
			out[i] += fmt.Sprintf(" (mode %#o)", *it.Mode)
		}
	}
	return "[" + strings.Join(out, ", ") + "]"
}

// serviceAccountTokenDir is where the kubelet mounts the ServiceAccount token the refresher's
// in-cluster client reads.
const serviceAccountTokenDir = "/var/run/secrets/kubernetes.io/serviceaccount"

// checkTokenPath: no volume of the refresher container is mounted at, under or above the token
// directory: it would shadow the token, and every run would fail to authenticate.
func checkTokenPath(doc string, ctr *corev1.Container) []Finding {
	var findings []Finding
	for _, m := range ctr.VolumeMounts {
		if touches(path.Clean(m.MountPath), serviceAccountTokenDir) {
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf(
					"container %q to leave %s to the kubelet's ServiceAccount token",
					ctr.Name,
					serviceAccountTokenDir,
				),
				Found: fmt.Sprintf("volume %q mounted at %q, which shadows the token", m.Name, m.MountPath),
			})
		}
	}
	return findings
}

func describeVolume(v *corev1.Volume) string {
	switch {
	case v == nil:
		return "no such volume"
	case v.ConfigMap != nil:
		return fmt.Sprintf("ConfigMap %q", v.ConfigMap.Name)
	case v.Secret != nil:
		return fmt.Sprintf("Secret %q", v.Secret.SecretName)
	default:
		return "not a ConfigMap"
	}
}

// optional formats an optional integer field: its value, or "unset".
func optional[T int32 | int64](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}

// describeQuantities formats the config's resource quantities as describeResources formats the
// CronJob's, canonicalised, so that "0.5" and "500m" compare equal.
func describeQuantities(quantities map[string]string) string {
	list := corev1.ResourceList{}
	for k, v := range quantities {
		q, err := resource.ParseQuantity(v)
		if err != nil {
			return fmt.Sprintf("%v", quantities) // config.Validate rejects this; it cannot compare equal
		}
		list[corev1.ResourceName(k)] = q
	}
	return describeResources(list)
}

func describeResources(list corev1.ResourceList) string {
	if len(list) == 0 {
		return "none"
	}
	var out []string
	for _, k := range slices.Sorted(maps.Keys(list)) {
		q := list[k]
		out = append(out, fmt.Sprintf("%s=%s", k, q.String()))
	}
	return strings.Join(out, " ")
}

func (c *checkedRelease) checkSchedule() []Finding {
	doc, schedule := c.cronJobDoc.String(), c.cronJob.Spec.Schedule
	if err := config.ValidateSchedule(schedule); err != nil {
		return []Finding{
			{Document: doc, Expected: "a cron schedule the API server accepts", Found: fmt.Sprintf("%q: %v", schedule, err)},
		}
	}
	if schedule != c.cfg.Spec.Schedule {
		return []Finding{
			{
				Document: doc,
				Expected: fmt.Sprintf("the config's schedule %q", c.cfg.Spec.Schedule),
				Found:    fmt.Sprintf("%q", schedule),
			},
		}
	}
	// ValidateSchedule has parsed it. A schedule no date matches (February 30th) parses but
	// never fires: robfig/cron gives up after five years and returns the zero time.
	if parsed, err := cron.ParseStandard(schedule); err == nil && parsed.Next(time.Now()).IsZero() {
		return []Finding{
			{Document: doc, Expected: "a schedule that fires", Found: fmt.Sprintf("%q, which matches no date", schedule)},
		}
	}
	return nil
}

// checkNothingInjected: with no config or every image pinned, nothing of image-refresh's is in
// the stream: no object labelled as the post-renderer's, and no ServiceAccount, Role or
// RoleBinding named after the config. (CronJobs are cronjob-presence's.)
func (c *checkedRelease) checkNothingInjected() []Finding {
	var findings []Finding
	for _, d := range c.stream.Docs {
		if d == c.configDoc || d.Kind == "CronJob" {
			continue
		}
		// Only what the post-renderer injects counts (it keeps any other object with its label):
		// the kinds it injects, named after the config when there is one.
		labelled := d.Labels[postrender.ManagedByLabel] == postrender.ManagedByValue &&
			(slices.Contains(postrender.IdentityKinds, d.Kind) || d.Kind == "ConfigMap") &&
			(c.cfg == nil || d.Name == c.cfg.Metadata.Name || d.Name == c.cfg.Metadata.Name+postrender.ConfigMapSuffix)
		named := c.cfg != nil && d.Name == c.cfg.Metadata.Name && d.Namespace == c.cfg.Metadata.Namespace &&
			slices.Contains(postrender.IdentityKinds, d.Kind)
		if labelled || named {
			findings = append(findings, Finding{
				Document: d.String(),
				Expected: "nothing injected: " + nothingFloats(c.cfg),
				Found:    "an image-refresh " + d.Kind,
			})
		}
	}
	return findings
}
