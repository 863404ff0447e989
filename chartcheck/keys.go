package chartcheck

import (
	"fmt"
	"path"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
	"github.com/tracebloc/image-refresh/postrender"
)

// verificationRequired is the one value of expect.verification.
const verificationRequired = "required"

// addKeysCheck runs verification-keys when the config has spec.verification.
func (c *checkedRelease) addKeysCheck(cs *checkSet) {
	if c.cfg.Spec.Verification == nil {
		cs.skip(keysCheck, "the refresh config has no spec.verification")
		return
	}
	cs.add(keysCheck, c.checkVerificationKeys())
}

// checkVerificationKeys: the refresher reads the keys of spec.verification.keysConfigMap, so the
// CronJob mounts that ConfigMap, whole and read-only, at config.KeysMountPath, and it exists:
// rendered in the stream with valid keys, or declared to be in the cluster (--allow-external-keys).
func (c *checkedRelease) checkVerificationKeys() []Finding {
	findings := c.checkKeysConfigMap()
	if ctr := c.refresherContainer(); ctr != nil {
		findings = append(c.checkKeysMount(ctr), findings...)
	}
	return findings
}

// checkKeysMount: exactly one mount touches the keys directory: the keys ConfigMap, read-only,
// at config.KeysMountPath, every key projected (no items), not optional, readable by the refresher.
func (c *checkedRelease) checkKeysMount(ctr *corev1.Container) []Finding {
	doc, pod := c.cronJobDoc.String(), &c.cronJob.Spec.JobTemplate.Spec.Template.Spec
	keys := c.cfg.Spec.Verification.KeysConfigMap
	want := fmt.Sprintf(
		"container %q to mount ConfigMap %q (spec.verification.keysConfigMap) at %s",
		ctr.Name,
		keys,
		config.KeysMountPath,
	)
	var findings []Finding
	mountedThere := false
	for _, m := range ctr.VolumeMounts {
		clean := path.Clean(m.MountPath)
		if !touches(clean, config.KeysMountPath) {
			continue
		}
		mountedThere = mountedThere || clean == config.KeysMountPath
		v := findVolume(pod, m.Name)
		switch {
		case clean != config.KeysMountPath || m.SubPath != "":
			findings = append(findings, Finding{
				Document: doc,
				Expected: want + ", and nothing under or above it",
				Found:    fmt.Sprintf("volume %q at mountPath %q subPath %q", m.Name, m.MountPath, m.SubPath),
			})
		case v == nil || v.ConfigMap == nil || v.ConfigMap.Name != keys:
			findings = append(findings, Finding{
				Document: doc,
				Expected: want,
				Found:    fmt.Sprintf("volume %q: %s", m.Name, describeVolume(v)),
			})
		default:
			findings = append(findings, c.checkKeysVolume(doc, ctr, m, v.ConfigMap)...)
		}
	}
	if !mountedThere {
		findings = append(findings, Finding{Document: doc, Expected: want, Found: "no mount there"})
	}
	return findings
}

// checkKeysVolume: the mount of the keys ConfigMap is read-only and gives the refresher every key.
func (c *checkedRelease) checkKeysVolume(
	doc string, ctr *corev1.Container, m corev1.VolumeMount, v *corev1.ConfigMapVolumeSource,
) []Finding {
	var findings []Finding
	if !m.ReadOnly {
		findings = append(findings, Finding{
			Document: doc,
			Expected: fmt.Sprintf("container %q to mount volume %q readOnly", ctr.Name, m.Name),
			Found:    "a writable mount",
		})
	}
	if len(v.Items) > 0 {
		findings = append(findings, Finding{
			Document: doc,
			Expected: fmt.Sprintf(
				"volume %q to project every key of ConfigMap %q (no items): a key added later must reach the refresher",
				m.Name,
				v.Name,
			),
			Found: "items " + describeItems(v.Items),
		})
	}
	if v.Optional != nil && *v.Optional {
		findings = append(findings, Finding{
			Document: doc,
			Expected: fmt.Sprintf("volume %q not optional: without its keys the refresher cannot verify a signature", m.Name),
			Found:    "optional: true",
		})
	}
	if !c.readableByRefresher(v.DefaultMode) {
		findings = append(findings, Finding{
			Document: doc,
			Expected: fmt.Sprintf(
				"volume %q's keys readable by the refresher's UID %s (file mode with read for others, or for the group with a "+
					"pod fsGroup)",
				m.Name,
				optional(c.cfg.Spec.Job.RunAsUser),
			),
			Found: fmt.Sprintf("defaultMode %#o", *v.DefaultMode),
		})
	}
	return findings
}

// checkKeysConfigMap: the keys ConfigMap is in the stream (not as a Helm hook) with keys the
// refresher can verify with (signature.ParseKeys), unless it is declared external.
func (c *checkedRelease) checkKeysConfigMap() []Finding {
	keys, namespace := c.cfg.Spec.Verification.KeysConfigMap, c.cfg.Metadata.Namespace
	var docs, hooks []string
	var findings []Finding
	for _, d := range c.stream.Find("ConfigMap", namespace, keys) {
		if d.Hook != "" {
			hooks = append(hooks, fmt.Sprintf("%s is a Helm hook (helm.sh/hook: %s)", d, d.Hook))
			continue
		}
		docs = append(docs, d.String())
		if err := parseKeys(d); err != nil {
			findings = append(findings, Finding{
				Document: d.String(),
				Expected: fmt.Sprintf(
					"*%s entries that are PEM public keys (cosign.pub: ECDSA P-256/P-384, Ed25519, RSA ≥ 2048)",
					config.KeyFileSuffix,
				),
				Found: err.Error(),
			})
		}
	}
	if len(docs) > 0 || c.allowExternalKeys {
		return findings
	}
	found := "no such ConfigMap in the stream"
	if len(hooks) > 0 {
		found = strings.Join(hooks, "; ") + ", not a resource of the release"
	}
	return []Finding{
		{
			Document: c.configDoc.String(),
			Expected: fmt.Sprintf(
				"ConfigMap %q (spec.verification.keysConfigMap) in namespace %q, rendered by the chart or declared external "+
					"(--allow-external-keys)",
				keys,
				namespace,
			),
			Found: found,
		},
	}
}

// parseKeys reads a keys ConfigMap's files as its mount holds them and parses their keys.
func parseKeys(d *document) error {
	var cm corev1.ConfigMap
	if err := d.Decode(&cm); err != nil {
		return err
	}
	files, err := postrender.KeyFiles(&cm)
	if err != nil {
		return err
	}
	if _, err := signature.ParseKeys(files); err != nil {
		return fmt.Errorf("%s", strings.ReplaceAll(err.Error(), "\n", "; "))
	}
	return nil
}

// expectVerification: spec.verification is set and every floating image needs a signature.
func (c *checkedRelease) expectVerification() []Finding {
	if c.cfg == nil {
		return c.noConfig()
	}
	if c.cfg.Spec.Verification == nil {
		return []Finding{
			{
				Document: c.configDoc.String(),
				Expected: "spec.verification: a new digest of every floating image needs a trusted signature",
				Found:    "no spec.verification",
			},
		}
	}
	var findings []Finding
	for _, img := range c.cfg.Floating() {
		if !c.cfg.VerificationRequired(img) {
			findings = append(findings, Finding{
				Document: c.configDoc.String(),
				Image:    img.Name,
				Expected: "the image's new digests verified (spec.verification)",
				Found:    "verify: false: exempt from the signature gate",
			})
		}
	}
	return findings
}
