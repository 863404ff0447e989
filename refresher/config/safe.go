package config

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	v1 "github.com/google/go-containerregistry/pkg/v1"
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
	if c.Spec.RolloutTimeout < 0 || (c.Spec.RolloutTimeout != 0 && c.Spec.RolloutTimeout.D() < time.Minute) {
		errs = append(errs, fmt.Errorf("spec.rolloutTimeout %s: must be at least 1m (unset: %s)", c.Spec.RolloutTimeout, DefaultRolloutTimeout))
	}
	for i, img := range c.Spec.Images {
		if img.Soak < 0 || img.Soak.D() > maxSoak {
			errs = append(errs, fmt.Errorf("spec.images[%d] (%s).soak %s: must be between 0 and %s", i, img.Name, img.Soak, maxSoak))
		}
		if img.Soak != 0 && img.Pinned() {
			errs = append(errs, fmt.Errorf("spec.images[%d] (%s).soak %s: a pinned image is never polled, so it cannot soak", i, img.Name, img.Soak))
		}
	}
	return errs
}
