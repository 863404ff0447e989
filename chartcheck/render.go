package chartcheck

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	helmpostrender "helm.sh/helm/v3/pkg/postrender"
)

// DefaultKubeVersion is the Kubernetes version charts are rendered for: the one the end-to-end
// tests run (e2e/tools/versions.env). The Helm SDK's client-only default, v1.20, would fail
// charts that declare a kubeVersion and hide API-version-dependent templates.
const DefaultKubeVersion = "v1.37.2"

// Defaults of the release a chart is rendered as, those of `helm template`.
const (
	DefaultReleaseName = "release-name"
	DefaultNamespace   = "default"
)

// chartLoader is the chart loader; a variable so a test can count loads.
var chartLoader = loader.Load

// loadedChart is a chart loaded once and rendered any number of times.
type loadedChart struct {
	Path  string
	chart *chart.Chart
}

// loadChart loads a chart directory or archive.
func loadChart(path string) (*loadedChart, error) {
	ch, err := chartLoader(path)
	if err != nil {
		return nil, fmt.Errorf("loading chart %s: %w", path, err)
	}
	return &loadedChart{Path: path, chart: ch}, nil
}

// renderOptions are the release and values of one render.
type renderOptions struct {
	ReleaseName string
	Namespace   string
	KubeVersion string
	// Values are the user-supplied values (-f, --set).
	Values map[string]any
	// ReuseValues, when set, replaces the chart's default values, as `helm upgrade
	// --reuse-values` does with the previous release's computed values: keys the new chart
	// added to values.yaml are then missing.
	ReuseValues map[string]any
}

// renderOutput is the outcome of one render.
type renderOutput struct {
	// Manifest is the chart's output (hooks excluded, as Helm 3 post-renders only these).
	Manifest []byte
	// Output is the post-rendered stream, or Manifest when the post-renderer refused it.
	Output []byte
	// PostRenderErr is the post-renderer's refusal, if any.
	PostRenderErr error
}

// Render renders the chart as `helm install --dry-run` would (client-only, with an explicit
// Kubernetes version), then runs the post-renderer, if any, on the manifest. An error means the
// chart itself could not be rendered; a post-renderer refusal is reported in renderOutput.
func (c *loadedChart) Render(
	ctx context.Context,
	opts renderOptions,
	pr helmpostrender.PostRenderer,
) (*renderOutput, error) {
	manifest, err := c.renderManifest(ctx, opts)
	if err != nil {
		return nil, err
	}
	out := &renderOutput{Manifest: manifest, Output: manifest}
	if pr == nil {
		return out, nil
	}
	post, err := pr.Run(bytes.NewBuffer(bytes.Clone(manifest)))
	if err != nil {
		out.PostRenderErr = err
		return out, nil
	}
	out.Output = post.Bytes()
	return out, nil
}

func (c *loadedChart) renderManifest(ctx context.Context, opts renderOptions) ([]byte, error) {
	kubeVersion, err := chartutil.ParseKubeVersion(defaultString(opts.KubeVersion, DefaultKubeVersion))
	if err != nil {
		return nil, fmt.Errorf("--kube-version: %w", err)
	}
	ch := cloneChart(c.chart)
	if opts.ReuseValues != nil {
		ch.Values = opts.ReuseValues
	}
	install := action.NewInstall(&action.Configuration{
		Log: func(format string, args ...any) { slog.Debug(fmt.Sprintf(format, args...)) },
	})
	install.DryRun = true
	install.ClientOnly = true
	install.Replace = true
	install.KubeVersion = kubeVersion
	install.ReleaseName = defaultString(opts.ReleaseName, DefaultReleaseName)
	install.Namespace = defaultString(opts.Namespace, DefaultNamespace)
	vals := opts.Values
	if vals == nil {
		vals = map[string]any{}
	}
	rel, err := install.RunWithContext(ctx, ch, vals)
	if err != nil {
		return nil, fmt.Errorf(
			"rendering chart %s as release %q in namespace %q: %w",
			c.Path,
			install.ReleaseName,
			install.Namespace,
			err,
		)
	}
	return []byte(rel.Manifest), nil
}

// cloneChart copies what rendering mutates: Helm resolves dependencies in place (dropping
// disabled subcharts, setting Enabled flags), so a chart loaded once must be copied per render.
func cloneChart(c *chart.Chart) *chart.Chart {
	clone := *c
	if c.Metadata != nil {
		md := *c.Metadata
		if c.Metadata.Dependencies != nil {
			md.Dependencies = make([]*chart.Dependency, len(c.Metadata.Dependencies))
			for i, d := range c.Metadata.Dependencies {
				dep := *d
				md.Dependencies[i] = &dep
			}
		}
		clone.Metadata = &md
	}
	deps := make([]*chart.Chart, 0, len(c.Dependencies()))
	for _, d := range c.Dependencies() {
		deps = append(deps, cloneChart(d))
	}
	clone.SetDependencies(deps...)
	return &clone
}

func defaultString(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
