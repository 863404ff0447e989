package chartcheck

import (
	"context"
	"fmt"
	"io"

	"github.com/google/go-containerregistry/pkg/name"
	"helm.sh/helm/v3/pkg/cli/values"

	"github.com/tracebloc/image-refresh/internal/config"
)

// tokenServices are the token endpoints of the registries whose challenge is well known; any
// other registry's realm and service come from its WWW-Authenticate challenge at run time.
var tokenServices = map[string]struct{ realm, service string }{
	name.DefaultRegistry: {realm: "https://auth.docker.io/token", service: "registry.docker.io"},
	"ghcr.io":            {realm: "https://ghcr.io/token", service: "ghcr.io"},
}

// Plan is the verb that prints, per image of the refresh config, the calls the refresher will make
// and what it will do on a change.
type Plan struct {
	ChartPath     string
	ManifestsPath string
	// ConfigPath is the RefreshConfig given at install time (the post-renderer's --config): it is planned
	// instead of a config the chart renders.
	ConfigPath string
	Release    Release
	Values     values.Options
	Stdin      io.Reader
}

// PlanReport is the refresher's plan for one rendered release.
type PlanReport struct {
	// Config is nil when the stream has no refresh config: nothing is polled.
	Config *PlanConfig    `json:"config"`
	Images []PlannedImage `json:"images"`
}

// PlanConfig identifies the refresh config.
type PlanConfig struct {
	Name      string `json:"name"`
	Namespace string `json:"namespace,omitempty"`
	Schedule  string `json:"schedule"`
}

// PlannedImage is one image: where the refresher looks and what it changes.
type PlannedImage struct {
	Name      string `json:"name"`
	Reference string `json:"reference"`
	Pinned    bool   `json:"pinned"`
	Digest    string `json:"digest,omitempty"`
	// Head and Token are nil for a pinned image: it is never polled.
	Head       *HeadRequest  `json:"head,omitempty"`
	Token      *TokenRequest `json:"token,omitempty"`
	Action     string        `json:"action"`
	Env        string        `json:"env,omitempty"`
	Target     config.Target `json:"target"`
	Annotation string        `json:"annotation"`
}

// HeadRequest is the one manifest request per poll.
type HeadRequest struct {
	URL string `json:"url"`
}

// TokenRequest is the anonymous (or credentialed) bearer-token request the registry demands.
type TokenRequest struct {
	// Realm and Service are empty when FromChallenge: only the registry's challenge tells.
	Realm         string `json:"realm,omitempty"`
	Service       string `json:"service,omitempty"`
	Scope         string `json:"scope"`
	FromChallenge bool   `json:"fromChallenge,omitempty"`
}

// Run renders the chart (without post-rendering: the config is the chart's) or reads the stream,
// and plans every image of its refresh config.
func (p *Plan) Run(ctx context.Context) (*PlanReport, error) {
	var stream *stream
	switch {
	case p.ManifestsPath != "" && p.ChartPath != "":
		return nil, usagef("--manifests plans a rendered stream: it excludes CHART")
	case p.ManifestsPath != "" && hasValues(p.Values):
		return nil, usagef("--manifests plans a rendered stream: values flags do not apply")
	case p.ManifestsPath != "" && p.ConfigPath != "":
		return nil, usagef("--manifests plans a post-rendered stream: its config is in it, --config does not apply")
	case p.ManifestsPath != "":
		var err error
		if stream, err = readStream(p.ManifestsPath, p.ManifestsPath, p.Stdin); err != nil {
			return nil, err
		}
	case p.ChartPath != "":
		rendered, _, err := renderChart(ctx, p.ChartPath, p.Release, p.Values, nil)
		if err != nil {
			return nil, err
		}
		if stream, err = parseStream(rendered.Output); err != nil {
			return nil, fmt.Errorf("rendered chart %s: %w", p.ChartPath, err)
		}
	default:
		return nil, usagef("nothing to plan: give CHART or --manifests FILE")
	}
	if p.ConfigPath != "" {
		cfg, err := config.Load(p.ConfigPath)
		if err != nil {
			return nil, usagef("--config: %v", err)
		}
		return newPlanReport(cfg)
	}
	c := &checkedRelease{stream: stream}
	if findings, ok := c.loadConfig(); !ok {
		return nil, fmt.Errorf("no plan: %s", findings[0])
	}
	if c.cfg == nil {
		return &PlanReport{}, nil
	}
	return newPlanReport(c.cfg)
}

// newPlanReport plans every image of a refresh config.
func newPlanReport(cfg *config.RefreshConfig) (*PlanReport, error) {
	report := &PlanReport{
		Config: &PlanConfig{Name: cfg.Metadata.Name, Namespace: cfg.Metadata.Namespace, Schedule: cfg.Spec.Schedule},
	}
	for _, img := range cfg.Spec.Images {
		tag, err := name.NewTag(img.Reference())
		if err != nil {
			return nil, fmt.Errorf("image %s: %w", img.Name, err)
		}
		planned := PlannedImage{
			Name:       img.Name,
			Reference:  img.Reference(),
			Pinned:     img.Pinned(),
			Digest:     img.Digest,
			Action:     string(img.Action),
			Env:        img.Env,
			Target:     img.Target,
			Annotation: img.Annotation,
		}
		if !img.Pinned() {
			planned.Head, planned.Token = registryCalls(tag)
		}
		report.Images = append(report.Images, planned)
	}
	return report, nil
}

// registryCalls derives the refresher's requests for a tag the way go-containerregistry's remote
// package builds them.
func registryCalls(tag name.Tag) (*HeadRequest, *TokenRequest) {
	registry := tag.Context().Registry
	head := &HeadRequest{
		URL: fmt.Sprintf(
			"%s://%s/v2/%s/manifests/%s",
			registry.Scheme(),
			registry.RegistryStr(),
			tag.RepositoryStr(),
			tag.TagStr(),
		),
	}
	token := &TokenRequest{Scope: tag.Scope("pull")}
	if known, ok := tokenServices[registry.RegistryStr()]; ok {
		token.Realm, token.Service = known.realm, known.service
	} else {
		token.FromChallenge = true
	}
	return head, token
}
