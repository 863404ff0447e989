package refresher

import (
	"strings"
	"testing"

	"github.com/tracebloc/image-refresh/internal/config"
)

func digestOf(c byte) string { return "sha256:" + strings.Repeat(string(c), 64) }

func TestDecide(t *testing.T) {
	r, old, other := digestOf('a'), digestOf('b'), digestOf('c')
	for _, tc := range []struct {
		name   string
		action config.Action
		live   Live
		want   Change
	}{
		// rollout-restart
		{
			"restart: first observation records, no restart",
			config.ActionRolloutRestart,
			Live{},
			Change{Decision: DecisionRecord, Annotation: r},
		},
		{
			"restart: annotation current",
			config.ActionRolloutRestart,
			Live{Annotation: r},
			Change{Decision: DecisionUnchanged},
		},
		{
			"restart: tag moved",
			config.ActionRolloutRestart,
			Live{Annotation: old},
			Change{Decision: DecisionRestart, Annotation: r, Restart: true},
		},
		{
			"restart: annotation not a digest counts as absent",
			config.ActionRolloutRestart,
			Live{Annotation: "garbage"},
			Change{Decision: DecisionRecord, Annotation: r},
		},
		{
			"restart: a placeholder annotation counts as absent",
			config.ActionRolloutRestart,
			Live{Annotation: "pending"},
			Change{Decision: DecisionRecord, Annotation: r},
		},
		{
			"restart: a sha512 annotation is not a digest of the contract",
			config.ActionRolloutRestart,
			Live{Annotation: "sha512:" + strings.Repeat("a", 128)},
			Change{Decision: DecisionRecord, Annotation: r},
		},
		{
			"restart: env is irrelevant",
			config.ActionRolloutRestart,
			Live{Annotation: r, Env: old},
			Change{Decision: DecisionUnchanged},
		},

		// set-env
		{
			"set-env: adopt the env's digest",
			config.ActionSetEnv,
			Live{Env: old},
			Change{Decision: DecisionAdopt, Annotation: old},
		},
		{
			"set-env: adopt even when it equals the registry",
			config.ActionSetEnv,
			Live{Env: r},
			Change{Decision: DecisionAdopt, Annotation: r},
		},
		{
			"set-env: fill when neither exists",
			config.ActionSetEnv,
			Live{},
			Change{Decision: DecisionFill, Annotation: r, Env: r},
		},
		{
			"set-env: fill over an env that is not a digest",
			config.ActionSetEnv,
			Live{Env: "latest"},
			Change{Decision: DecisionFill, Annotation: r, Env: r},
		},
		{
			"set-env: tag moved sets env and records",
			config.ActionSetEnv,
			Live{Annotation: old, Env: old},
			Change{Decision: DecisionUpdateEnv, Annotation: r, Env: r},
		},
		{
			"set-env: tag moved, env missing",
			config.ActionSetEnv,
			Live{Annotation: old},
			Change{Decision: DecisionUpdateEnv, Annotation: r, Env: r},
		},
		{
			"set-env: tag moved, env already there records only",
			config.ActionSetEnv,
			Live{Annotation: old, Env: r},
			Change{Decision: DecisionUpdateEnv, Annotation: r},
		},
		{
			"set-env: drift back to the recorded digest",
			config.ActionSetEnv,
			Live{Annotation: r, Env: other},
			Change{Decision: DecisionDrift, Env: r},
		},
		{
			"set-env: drift after the env was removed",
			config.ActionSetEnv,
			Live{Annotation: r},
			Change{Decision: DecisionDrift, Env: r},
		},
		{
			"set-env: placeholder annotation, env digest: adopt",
			config.ActionSetEnv,
			Live{Annotation: "none", Env: old},
			Change{Decision: DecisionAdopt, Annotation: old},
		},
		{
			"set-env: placeholder annotation, no env: fill",
			config.ActionSetEnv,
			Live{Annotation: "none"},
			Change{Decision: DecisionFill, Annotation: r, Env: r},
		},
		{
			"set-env: everything current",
			config.ActionSetEnv,
			Live{Annotation: r, Env: r},
			Change{Decision: DecisionUnchanged},
		},

		// set-image
		{
			"set-image: first observation records only",
			config.ActionSetImage,
			Live{},
			Change{Decision: DecisionRecord, Annotation: r},
		},
		{
			"set-image: first observation records R, not the pinned digest",
			config.ActionSetImage,
			Live{Image: old},
			Change{Decision: DecisionRecord, Annotation: r},
		},
		{
			"set-image: tag moved pins the image and records",
			config.ActionSetImage,
			Live{Annotation: old, Image: old},
			Change{Decision: DecisionUpdateImage, Annotation: r, Image: r},
		},
		{
			"set-image: tag moved, container by tag",
			config.ActionSetImage,
			Live{Annotation: old},
			Change{Decision: DecisionUpdateImage, Annotation: r, Image: r},
		},
		{
			"set-image: tag moved, image already pinned to it records only",
			config.ActionSetImage,
			Live{Annotation: old, Image: r},
			Change{Decision: DecisionUpdateImage, Annotation: r},
		},
		{
			"set-image: a helm upgrade rendered the tag again: drift",
			config.ActionSetImage,
			Live{Annotation: r},
			Change{Decision: DecisionDrift, Image: r},
		},
		{
			"set-image: pinned to another digest: drift",
			config.ActionSetImage,
			Live{Annotation: r, Image: other},
			Change{Decision: DecisionDrift, Image: r},
		},
		{
			"set-image: placeholder annotation records",
			config.ActionSetImage,
			Live{Annotation: "none", Image: old},
			Change{Decision: DecisionRecord, Annotation: r},
		},
		{
			"set-image: env is irrelevant",
			config.ActionSetImage,
			Live{Annotation: r, Image: r, Env: old},
			Change{Decision: DecisionUnchanged},
		},
		{
			"set-image: everything current",
			config.ActionSetImage,
			Live{Annotation: r, Image: r},
			Change{Decision: DecisionUnchanged},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got, err := Decide(tc.action, r, tc.live); got != tc.want || err != nil {
				t.Errorf("Decide(%s, R, %+v) = %+v, %v; want %+v", tc.action, tc.live, got, err, tc.want)
			}
		})
	}
}

func TestDecideUnknownAction(t *testing.T) {
	got, err := Decide("restart-twice", digestOf('a'), Live{})
	if got != (Change{Decision: DecisionFailed}) || err == nil ||
		!strings.Contains(err.Error(), `unknown action "restart-twice"`) {
		t.Errorf("Decide(restart-twice) = %+v, %v; want failed with the action named", got, err)
	}
}
