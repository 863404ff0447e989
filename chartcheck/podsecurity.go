package chartcheck

import (
	"fmt"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	psaapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
)

// restrictedEvaluator is the Pod Security Admission evaluator itself, so "restricted" here means
// exactly what the API server enforces.
var restrictedEvaluator = sync.OnceValues(func() (policy.Evaluator, error) {
	return policy.NewEvaluator(policy.DefaultChecks(), nil)
})

// checkRestrictedPod evaluates a pod template against Pod Security "restricted" (latest). With
// readOnlyRoot, every container must also have a read-only root filesystem, which image-refresh's
// CronJob promises on top of the standard.
func checkRestrictedPod(doc *document, tmpl *corev1.PodTemplateSpec, readOnlyRoot bool) []Finding {
	evaluator, err := restrictedEvaluator()
	if err != nil {
		return []Finding{{Document: doc.String(), Expected: "a Pod Security evaluator", Found: err.Error()}}
	}
	level := psaapi.LevelVersion{Level: psaapi.LevelRestricted, Version: psaapi.LatestVersion()}
	var findings []Finding
	for _, r := range evaluator.EvaluatePod(level, &tmpl.ObjectMeta, &tmpl.Spec) {
		if r.Allowed {
			continue
		}
		found := r.ForbiddenReason
		if r.ForbiddenDetail != "" {
			found += " (" + r.ForbiddenDetail + ")"
		}
		findings = append(findings, Finding{
			Document: doc.String(),
			Expected: "a pod template allowed by Pod Security \"restricted\"",
			Found:    found,
		})
	}
	if readOnlyRoot {
		var writable []string
		for _, ctr := range append(append([]corev1.Container{}, tmpl.Spec.InitContainers...), tmpl.Spec.Containers...) {
			if sc := ctr.SecurityContext; sc == nil || sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
				writable = append(writable, fmt.Sprintf("%q", ctr.Name))
			}
		}
		if len(writable) > 0 {
			findings = append(findings, Finding{
				Document: doc.String(),
				Expected: "readOnlyRootFilesystem: true on every container",
				Found:    "a writable root filesystem in containers " + strings.Join(writable, ", "),
			})
		}
	}
	return findings
}
