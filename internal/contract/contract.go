// Package contract holds the rules of the refresh contract over Kubernetes objects, written
// once and called by the refresher (on live Deployments), the post-renderer and chartcheck (on
// rendered ones): where a target is (namespace precedence), whether a rollout restart pulls the
// polled tag, who owns a set-env variable, whether the injected Role covers the targets,
// whether a target can roll out at all, and how a rendered object is decoded — as Kubernetes
// decodes it, so that what is checked is what the cluster runs. The admission guard is its
// subpackage guard.
//
// A broken rule is a *Violation: the rule's name (the post-renderer reports it as its refusal
// reason) and a message that says what was found and the fix. Callers add where (the image,
// the document).
package contract

import "fmt"

// Rule names one rule of the contract.
type Rule string

// The rules. The names are also the post-renderer's refusal reasons.
const (
	// RuleConfigHook: the config ConfigMap is a Helm hook.
	RuleConfigHook Rule = "config-hook"
	// RuleTargetMissing: the target Deployment or its container does not exist.
	RuleTargetMissing Rule = "target-missing"
	// RuleTargetState: the target is paused or being deleted: nothing would roll out.
	RuleTargetState Rule = "target-state"
	// RuleRBACNamespace: a target lies outside the namespace of the Role the CronJob runs with.
	RuleRBACNamespace Rule = "rbac-namespace"
	// RuleEnvRendered: the chart renders the variable a floating set-env image owns.
	RuleEnvRendered Rule = "env-rendered"
	// RuleEnvDuplicate: the container lists the variable more than once.
	RuleEnvDuplicate Rule = "env-duplicate"
	// RuleEnvValueFrom: the live variable is set from valueFrom; the refresher never overwrites it.
	RuleEnvValueFrom Rule = "env-value-from"
	// RuleEnvShared: two set-env images write one variable of one container.
	RuleEnvShared Rule = "env-shared"
	// RuleImageShared: two set-image images set the image of one container.
	RuleImageShared Rule = "image-shared"
	// RuleImageReference: a set-image container runs another repository than the polled one.
	RuleImageReference Rule = "image-reference"
	// RuleRestartPinned: a rollout-restart container runs a digest.
	RuleRestartPinned Rule = "restart-target-pinned"
	// RuleRestartReference: a rollout-restart container runs another repository:tag.
	RuleRestartReference Rule = "restart-reference"
	// RuleRestartPullPolicy: a rollout-restart container's effective pull policy is not Always.
	RuleRestartPullPolicy Rule = "restart-pull-policy"
	// RuleSecondWriter: a workload other than the refresher may write a target (one refresher per target).
	RuleSecondWriter Rule = "second-writer"
	// RuleInClusterUpgrade: a workload runs helm upgrade without the post-renderer, which deletes the injection.
	RuleInClusterUpgrade Rule = "in-cluster-upgrade"
)

// Violation is one broken rule. Its message says what the object does and the fix; for a
// container rule it reads after the container ("container \"api\" of Deployment x/web" + " " +
// Message).
type Violation struct {
	Rule    Rule
	Message string
}

func (v *Violation) Error() string { return v.Message }

func violation(rule Rule, format string, args ...any) *Violation {
	return &Violation{Rule: rule, Message: fmt.Sprintf(format, args...)}
}
