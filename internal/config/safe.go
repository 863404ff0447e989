package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"
)

// DefaultRolloutTimeout is how long a rollout the refresher started may take to settle before
// the refresher treats it as failed (quarantine and rollback), unless spec.rolloutTimeout says
// otherwise. The Deployment's own progress deadline (ProgressDeadlineExceeded) counts too.
const DefaultRolloutTimeout = 15 * time.Minute

// maxSoak bounds spec.images[].soak: a digest that must stay unchanged longer than a week is
// a pin, not a floating tag.
const maxSoak = 7 * 24 * time.Hour

// Duration is a time.Duration written as Go duration text ("90s", "15m", "1h30m") in YAML
// and JSON.
type Duration time.Duration

// D is the duration as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

func (d Duration) String() string { return time.Duration(d).String() }

// MarshalYAML writes the duration as text.
func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// UnmarshalYAML reads duration text ("15m"); a bare number is refused (units are required).
func (d *Duration) UnmarshalYAML(node *yaml.Node) error {
	if node.Kind != yaml.ScalarNode {
		return fmt.Errorf("line %d: duration must be text such as \"15m\"", node.Line)
	}
	v, err := parseDuration(node.Value)
	if err != nil {
		return fmt.Errorf("line %d: %w", node.Line, err)
	}
	*d = v
	return nil
}

// MarshalJSON writes the duration as a JSON string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(d.String()) }

// UnmarshalJSON reads a JSON string of duration text.
func (d *Duration) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("duration must be a string such as \"15m\": %w", err)
	}
	v, err := parseDuration(s)
	if err != nil {
		return err
	}
	*d = v
	return nil
}

func parseDuration(s string) (Duration, error) {
	v, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("duration %q: %w", s, err)
	}
	return Duration(v), nil
}

// EffectiveRolloutTimeout is spec.rolloutTimeout, DefaultRolloutTimeout when unset.
func (s Spec) EffectiveRolloutTimeout() time.Duration {
	if s.RolloutTimeout == 0 {
		return DefaultRolloutTimeout
	}
	return s.RolloutTimeout.D()
}

// DefaultWaitTimeout is spec.waitTimeout when neither it nor the deprecated spec.waitLimit is
// set: four ticks of the default schedule.
const DefaultWaitTimeout = time.Hour

// maxWaitTimeout bounds spec.waitTimeout (and a converted waitLimit): a week, as the soak.
const maxWaitTimeout = 168 * time.Hour

// EffectiveWaitTimeout is how long an image may wait for its target's rollout: spec.waitTimeout;
// else the deprecated spec.waitLimit ticks of the schedule (its longest gap between two runs,
// so a converted limit never fails an image sooner than the ticks did); else DefaultWaitTimeout.
func (s Spec) EffectiveWaitTimeout() time.Duration {
	switch {
	case s.WaitTimeout != 0:
		return s.WaitTimeout.D()
	case s.WaitLimit > 0:
		return min(time.Duration(s.WaitLimit)*SchedulePeriod(s.Schedule), maxWaitTimeout)
	}
	return DefaultWaitTimeout
}

// SchedulePeriod is the longest gap between two consecutive runs of a cron schedule over five
// weeks from a Monday (weekly and most monthly patterns repeat within them), at least a minute;
// five weeks for a schedule that runs less than twice in them; an unparsable schedule gives
// DefaultWaitTimeout / 4 (the default schedule's period).
func SchedulePeriod(schedule string) time.Duration {
	sched, err := cron.ParseStandard(schedule)
	if err != nil {
		return DefaultWaitTimeout / 4
	}
	const window = 35 * 24 * time.Hour
	start := time.Date(2026, time.January, 5, 0, 0, 0, 0, time.UTC)
	longest, prev := time.Duration(0), sched.Next(start)
	for t := sched.Next(prev); !t.IsZero() && t.Before(start.Add(window)); t = sched.Next(t) {
		longest, prev = max(longest, t.Sub(prev)), t
	}
	if longest == 0 {
		return window // fewer than two runs in the window: its gaps are longer still
	}
	return max(longest, time.Minute)
}

// Deprecations lists what the config uses that a later release drops, each with its
// replacement; the post-renderer and chartcheck warn about them.
func (c *RefreshConfig) Deprecations() []string {
	var out []string
	if c.Spec.WaitLimit > 0 {
		out = append(out, fmt.Sprintf("spec.waitLimit is deprecated and will be removed: it now reads as spec.waitTimeout "+
			"%s (%d runs of schedule %q, whose longest gap is %s); set spec.waitTimeout instead",
			c.Spec.EffectiveWaitTimeout(), c.Spec.WaitLimit, c.Spec.Schedule, SchedulePeriod(c.Spec.Schedule)))
	}
	return out
}

// ParsePlatform parses a spec.platforms entry, "os/arch" or "os/arch/variant" (as a Docker
// platform string, e.g. linux/arm64/v8), and returns it in canonical text form.
func ParsePlatform(s string) (v1.Platform, error) {
	parts := strings.Split(s, "/")
	if len(parts) < 2 || len(parts) > 3 {
		return v1.Platform{}, errors.New(`must be "os/arch" or "os/arch/variant"`)
	}
	for _, p := range parts {
		if p == "" || strings.ContainsAny(p, " :\t") {
			return v1.Platform{}, errors.New(`must be "os/arch" or "os/arch/variant" without empty parts or blanks`)
		}
	}
	p := v1.Platform{OS: parts[0], Architecture: parts[1]}
	if len(parts) == 3 {
		p.Variant = parts[2]
	}
	return p, nil
}

// validateSafe checks spec.platforms, spec.rolloutTimeout and every image's soak.
func (c *RefreshConfig) validateSafe() []error {
	var errs []error
	seen := map[string]int{}
	for i, s := range c.Spec.Platforms {
		if _, err := ParsePlatform(s); err != nil {
			errs = append(errs, fmt.Errorf("spec.platforms[%d] %q: %w", i, s, err))
		} else if j, dup := seen[s]; dup {
			errs = append(errs, fmt.Errorf("spec.platforms[%d] %q: duplicate of spec.platforms[%d]", i, s, j))
		} else {
			seen[s] = i
		}
	}
	if c.Spec.WaitTimeout < 0 || (c.Spec.WaitTimeout != 0 && (c.Spec.WaitTimeout.D() < time.Minute ||
		c.Spec.WaitTimeout.D() > maxWaitTimeout)) {
		errs = append(errs, fmt.Errorf("spec.waitTimeout %s: must be between 1m and %s (unset: %s)", c.Spec.WaitTimeout,
			maxWaitTimeout, DefaultWaitTimeout))
	}
	if c.Spec.WaitTimeout != 0 && c.Spec.WaitLimit != 0 {
		errs = append(errs, fmt.Errorf("spec.waitLimit %d and spec.waitTimeout %s: set one (waitLimit is deprecated: keep "+
			"spec.waitTimeout)", c.Spec.WaitLimit, c.Spec.WaitTimeout))
	}
	if c.Spec.RolloutTimeout < 0 || (c.Spec.RolloutTimeout != 0 && c.Spec.RolloutTimeout.D() < time.Minute) {
		errs = append(errs, fmt.Errorf("spec.rolloutTimeout %s: must be at least 1m (unset: %s)", c.Spec.RolloutTimeout,
			DefaultRolloutTimeout))
	}
	for i, img := range c.Spec.Images {
		if img.Soak < 0 || img.Soak.D() > maxSoak {
			errs = append(errs, fmt.Errorf("spec.images[%d] (%s).soak %s: must be between 0 and %s", i, img.Name, img.Soak,
				maxSoak))
		}
		if img.Soak != 0 && img.Pinned() {
			errs = append(errs, fmt.Errorf("spec.images[%d] (%s).soak %s: a pinned image is never polled, so it cannot soak", i,
				img.Name, img.Soak))
		}
	}
	return errs
}
