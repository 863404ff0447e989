package chartcheck

import (
	"fmt"
	"path"
	"slices"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/postrender"
	"github.com/tracebloc/image-refresh/refresher/config"
)

// refresherCronJob is a CronJob of the stream that is image-refresh's.
type refresherCronJob struct {
	doc     *Document
	cronJob *batchv1.CronJob
	// named: it is named after the config, in the config's namespace.
	named bool
	// evidence says why it counts as running the refresher, e.g. "label app.kubernetes.io/managed-by=image-refresh".
	evidence string
}

// refresherCronJobs are the CronJobs named after the config or carrying any trace of the
// refresher (refresherEvidence): renaming a CronJob must not hide it. The findings are CronJobs
// that do not decode.
func (c *contract) refresherCronJobs() ([]refresherCronJob, []Finding) {
	var out []refresherCronJob
	var findings []Finding
	for _, d := range c.stream.OfKind("CronJob") {
		var cj batchv1.CronJob
		if err := d.Decode(&cj); err != nil {
			findings = append(findings, Finding{Document: d.String(), Expected: "a CronJob", Found: err.Error()})
			continue
		}
		named := c.cfg != nil && d.Name == c.cfg.Metadata.Name && sameNamespace(d.Namespace, c.cfg.Metadata.Namespace)
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
// spec.job.image or the default) or binary, a --config flag, or a mount at or under the config
// directory.
func (c *contract) refresherEvidence(cj *batchv1.CronJob) string {
	if cj.Labels[postrender.ManagedByLabel] == postrender.ManagedByValue {
		return fmt.Sprintf("label %s=%s", postrender.ManagedByLabel, postrender.ManagedByValue)
	}
	repositories := []string{imageRepository(config.DefaultJobImage)}
	if c.cfg != nil {
		repositories = append(repositories, imageRepository(c.cfg.Spec.Job.Image))
	}
	pod := cj.Spec.JobTemplate.Spec.Template.Spec
	for _, ctr := range slices.Concat(pod.InitContainers, pod.Containers) {
		if repo := imageRepository(ctr.Image); repo != "" && slices.Contains(repositories, repo) {
			return fmt.Sprintf("container %q runs the refresher image %s", ctr.Name, ctr.Image)
		}
		if len(ctr.Command) > 0 && path.Base(ctr.Command[0]) == "refresher" {
			return fmt.Sprintf("container %q runs %s", ctr.Name, ctr.Command[0])
		}
		for _, arg := range slices.Concat(ctr.Command, ctr.Args) {
			if arg == "--config" || strings.HasPrefix(arg, "--config=") {
				return fmt.Sprintf("container %q runs with --config", ctr.Name)
			}
		}
		for _, m := range ctr.VolumeMounts {
			if inConfigDir(m.MountPath) {
				return fmt.Sprintf("container %q mounts %s", ctr.Name, m.MountPath)
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
func (c *contract) checkCronJobPresence() []Finding {
	cronJobs, findings := c.refresherCronJobs()
	wantName := ""
	if c.cfg != nil {
		wantName = c.cfg.Metadata.Name
	}
	for _, r := range cronJobs {
		found := "a CronJob running the refresher (" + r.evidence + ")"
		switch {
		case c.cfg == nil:
			findings = append(findings, Finding{Document: r.doc.String(), Expected: fmt.Sprintf("no image-refresh CronJob: the stream has no ConfigMap labelled %s=true", config.ConfigLabel), Found: found})
		case !c.cfg.AnyFloating():
			findings = append(findings, Finding{Document: r.doc.String(), Expected: fmt.Sprintf("no image-refresh CronJob: every image of %s is pinned", c.configDoc), Found: found})
		case !r.named:
			findings = append(findings, Finding{Document: r.doc.String(), Expected: fmt.Sprintf("one image-refresh CronJob, named %q after the config", wantName), Found: "another " + strings.TrimPrefix(found, "a ")})
		case c.cronJob != nil:
			findings = append(findings, Finding{Document: r.doc.String(), Expected: "one CronJob " + quoted(wantName), Found: "a duplicate"})
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

// checkCronJobConfig: the CronJob mounts the config ConfigMap read-only at config.MountPath and
// runs the refresher on MountPath/refresh.yaml.
func (c *contract) checkCronJobConfig() []Finding {
	doc, pod := c.cronJobDoc.String(), c.cronJob.Spec.JobTemplate.Spec.Template.Spec
	configFile := path.Join(config.MountPath, config.ConfigMapKey)
	var volume *corev1.Volume
	var sources []string
	for i, v := range pod.Volumes {
		if v.ConfigMap != nil {
			sources = append(sources, fmt.Sprintf("%s=configMap/%s", v.Name, v.ConfigMap.Name))
			if v.ConfigMap.Name == c.configDoc.Name {
				volume = &pod.Volumes[i]
			}
		}
	}
	if volume == nil {
		return []Finding{{Document: doc, Expected: fmt.Sprintf("a volume from ConfigMap %q", c.configDoc.Name), Found: describeList("configMap volumes", sources)}}
	}
	var findings []Finding
	if items := volume.ConfigMap.Items; len(items) > 0 {
		mapped := slices.ContainsFunc(items, func(k corev1.KeyToPath) bool {
			return k.Key == config.ConfigMapKey && k.Path == config.ConfigMapKey
		})
		if !mapped {
			findings = append(findings, Finding{Document: doc, Expected: fmt.Sprintf("volume %q to project key %q as %q", volume.Name, config.ConfigMapKey, config.ConfigMapKey), Found: fmt.Sprintf("items %v", items)})
		}
	}
	mounted := false
	for _, ctr := range pod.Containers {
		for _, m := range ctr.VolumeMounts {
			if m.Name != volume.Name {
				continue
			}
			mounted = true
			if path.Clean(m.MountPath) != config.MountPath || m.SubPath != "" {
				findings = append(findings, Finding{Document: doc, Expected: fmt.Sprintf("container %q to mount volume %q at %s", ctr.Name, volume.Name, config.MountPath), Found: fmt.Sprintf("mountPath %q subPath %q", m.MountPath, m.SubPath)})
			}
			if !m.ReadOnly {
				findings = append(findings, Finding{Document: doc, Expected: fmt.Sprintf("container %q to mount volume %q readOnly", ctr.Name, volume.Name), Found: "a writable mount"})
			}
			if !hasFlag(append(slices.Clone(ctr.Command), ctr.Args...), "--config", configFile) {
				findings = append(findings, Finding{Document: doc, Expected: fmt.Sprintf("container %q to run with --config %s", ctr.Name, configFile), Found: fmt.Sprintf("command %q args %q", ctr.Command, ctr.Args)})
			}
		}
	}
	if !mounted {
		findings = append(findings, Finding{Document: doc, Expected: fmt.Sprintf("a container mounting volume %q at %s", volume.Name, config.MountPath), Found: "no container mounts it"})
	}
	return findings
}

// hasFlag reports whether argv carries "flag value" or "flag=value".
func hasFlag(argv []string, flag, value string) bool {
	for i, a := range argv {
		if a == flag+"="+value || (a == flag && i+1 < len(argv) && argv[i+1] == value) {
			return true
		}
	}
	return false
}

func describeList(what string, items []string) string {
	if len(items) == 0 {
		return "no " + what
	}
	return what + " " + strings.Join(items, ", ")
}

func (c *contract) checkSchedule() []Finding {
	doc, schedule := c.cronJobDoc.String(), c.cronJob.Spec.Schedule
	if _, err := cron.ParseStandard(schedule); err != nil {
		return []Finding{{Document: doc, Expected: "a five-field cron schedule", Found: fmt.Sprintf("%q: %v", schedule, err)}}
	}
	if schedule != c.cfg.Spec.Schedule {
		return []Finding{{Document: doc, Expected: fmt.Sprintf("the config's schedule %q", c.cfg.Spec.Schedule), Found: fmt.Sprintf("%q", schedule)}}
	}
	return nil
}

// checkNothingInjected: with no config or every image pinned, nothing of image-refresh's is in
// the stream: no object labelled as the post-renderer's, and no ServiceAccount, Role or
// RoleBinding named after the config. (CronJobs are cronjob-presence's.)
func (c *contract) checkNothingInjected() []Finding {
	var findings []Finding
	for _, d := range c.stream.Docs {
		if d == c.configDoc || d.Kind == "CronJob" {
			continue
		}
		labelled := d.Labels[postrender.ManagedByLabel] == postrender.ManagedByValue
		named := c.cfg != nil && d.Name == c.cfg.Metadata.Name && sameNamespace(d.Namespace, c.cfg.Metadata.Namespace) &&
			slices.Contains([]string{"ServiceAccount", "Role", "RoleBinding"}, d.Kind)
		if labelled || named {
			findings = append(findings, Finding{Document: d.String(), Expected: "nothing injected: " + nothingFloats(c.cfg), Found: "an image-refresh " + d.Kind})
		}
	}
	return findings
}
