package postrender

import (
	"errors"
	"fmt"

	"github.com/tracebloc/image-refresh/internal/contract"
)

// Reason classifies why the post-renderer refused a release.
type Reason string

// The reasons a release is refused. Each refusal's message names the image, the document and
// the fix.
const (
	// ReasonMalformedStream: the input is not a stream of YAML mappings.
	ReasonMalformedStream Reason = "malformed-stream"
	// ReasonInvalidConfig: the refresh config fails the contract's validation, or its
	// ConfigMap cannot be used.
	ReasonInvalidConfig Reason = "invalid-config"
	// ReasonConfigConflict: --config and a chart-rendered config, or several chart-rendered
	// configs.
	ReasonConfigConflict Reason = "config-conflict"
	// ReasonTargetMissing: a floating image's target Deployment or container is not in the
	// release, or the target name matches several Deployments.
	ReasonTargetMissing = Reason(contract.RuleTargetMissing)
	// ReasonEnvRendered: a floating set-env image whose env var the chart renders itself;
	// every helm upgrade would reset the refreshed digest.
	ReasonEnvRendered = Reason(contract.RuleEnvRendered)
	// ReasonRestartPinned: a floating rollout-restart image whose target container is
	// digest-pinned, so a restart would run the same digest again.
	ReasonRestartPinned = Reason(contract.RuleRestartPinned)
	// ReasonPullPolicy: a floating rollout-restart image whose target container does not
	// pull on every start, so a restart would not fetch the new digest.
	ReasonPullPolicy = Reason(contract.RuleRestartPullPolicy)
	// ReasonNameTaken: the release already renders an object the post-renderer would inject.
	ReasonNameTaken Reason = "name-taken"
	// ReasonKeysMissing: spec.verification names a keys ConfigMap the release does not render,
	// and --allow-external-keys does not declare it to exist in the cluster.
	ReasonKeysMissing Reason = "keys-missing"
	// ReasonKeysInvalid: the release renders the keys ConfigMap, but a key of it is not a
	// public key the refresher can verify with, or it has none.
	ReasonKeysInvalid Reason = "keys-invalid"

	// ReasonRestartReference: a floating rollout-restart image whose target container runs
	// another repository:tag than the polled one.
	ReasonRestartReference = Reason(contract.RuleRestartReference)
	// ReasonEnvDuplicate: the target container lists a set-env image's variable twice.
	ReasonEnvDuplicate = Reason(contract.RuleEnvDuplicate)
	// ReasonEnvShared: two floating set-env images write one variable of one container.
	ReasonEnvShared = Reason(contract.RuleEnvShared)
	// ReasonImageShared: two floating set-image images set the image of one container.
	ReasonImageShared = Reason(contract.RuleImageShared)
	// ReasonImageReference: a floating set-image image whose target container runs another
	// repository than the polled one (by tag or digest), or no image reference at all.
	ReasonImageReference = Reason(contract.RuleImageReference)
	// ReasonTargetState: the target Deployment is paused (or being deleted).
	ReasonTargetState = Reason(contract.RuleTargetState)
	// ReasonRBACNamespace: a target lies outside the namespace the Role is injected into.
	ReasonRBACNamespace = Reason(contract.RuleRBACNamespace)
	// ReasonSecondWriter: another CronJob or Job of the release may write a target (one
	// refresher per target).
	ReasonSecondWriter = Reason(contract.RuleSecondWriter)
)

// RefusalError is one reason the post-renderer refused a release.
type RefusalError struct {
	Reason  Reason
	Message string
}

func (e *RefusalError) Error() string { return e.Message }

func refuse(reason Reason, format string, args ...any) *RefusalError {
	return &RefusalError{Reason: reason, Message: fmt.Sprintf(format, args...)}
}

// Refusals lists the refusals an error from Render carries, in the order they were found.
func Refusals(err error) []*RefusalError {
	var out []*RefusalError
	var walk func(error)
	walk = func(err error) {
		// Every refusal of the joined tree, not the first one errors.As would find.
		if r, ok := err.(*RefusalError); ok { //nolint:errorlint // see above
			out = append(out, r)
			return
		}
		switch e := err.(type) { //nolint:errorlint // unwraps one level at a time, by design
		case interface{ Unwrap() []error }:
			for _, inner := range e.Unwrap() {
				walk(inner)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	if err != nil {
		walk(err)
	}
	return out
}

// joinRefusals is errors.Join for refusals, nil when there are none.
func joinRefusals(refusals []*RefusalError) error {
	errs := make([]error, len(refusals))
	for i, r := range refusals {
		errs[i] = r
	}
	return errors.Join(errs...)
}
