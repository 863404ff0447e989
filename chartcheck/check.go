package chartcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"helm.sh/helm/v3/pkg/cli/values"
	helmpostrender "helm.sh/helm/v3/pkg/postrender"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/postrender"
)

// Release names the release a chart is rendered as; empty fields take the suite's or Helm's
// defaults (release-name, default, DefaultKubeVersion).
type Release struct {
	Name        string
	Namespace   string
	KubeVersion string
}

// Check is chartcheck's main verb: render a chart (or read a rendered stream), post-render it and
// check the contract, for one set of values or every scenario of a suite.
type Check struct {
	// ChartPath is the chart to render. With SuitePath it overrides the suite's chart.
	ChartPath string
	// SuitePath is a suite file; its scenarios are run instead of one render with Values.
	SuitePath string
	// ManifestsPath is an already-rendered stream ("-" for Stdin) checked instead of a chart.
	ManifestsPath string
	Release       Release
	// Values are -f/--set style values; not allowed with SuitePath or ManifestsPath.
	Values values.Options
	Stdin  io.Reader
	// AllowExternalKeys is the post-renderer's --allow-external-keys, for every scenario: the
	// keys ConfigMap of spec.verification exists in the cluster, so the stream need not render it.
	AllowExternalKeys bool
	// ConfigPath is the post-renderer's --config for every scenario that renders the chart (a
	// suite scenario's config: overrides it): the RefreshConfig given at install time, which the
	// post-renderer appends as a ConfigMap. Not allowed with ManifestsPath.
	ConfigPath string
	// PostRendererArgs are the post-renderer's arguments as `helm install --post-renderer-args`
	// passes them, one per element (--config=FILE, --allow-external-keys), parsed with its flags.
	PostRendererArgs []string
}

// usageError is a mistake in how chartcheck was called (exit status 2).
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

func hasValues(v values.Options) bool {
	return len(v.ValueFiles)+len(v.Values)+len(v.StringValues)+len(v.JSONValues)+len(v.FileValues)+len(v.LiteralValues) > 0
}

// Run checks and returns the report. An error means nothing could be checked (a usage error, an
// unreadable suite, stream or chart); a scenario that fails to render unexpectedly is recorded in
// the report (Report.RenderFailed).
func (c *Check) Run(ctx context.Context) (*Report, error) {
	switch {
	case c.ManifestsPath != "" && (c.ChartPath != "" || c.SuitePath != ""):
		return nil, usagef("--manifests checks a rendered stream: it excludes CHART and --suite")
	case c.ManifestsPath != "" && hasValues(c.Values):
		return nil, usagef("--manifests checks a rendered stream: values flags do not apply")
	case c.SuitePath != "" && hasValues(c.Values):
		return nil, usagef("--suite scenarios carry their own values: drop -f/--set or run without --suite")
	case c.ManifestsPath == "" && c.SuitePath == "" && c.ChartPath == "":
		return nil, usagef("nothing to check: give CHART, --suite FILE or --manifests FILE")
	}
	args, err := c.postRendererArgs()
	if err != nil {
		return nil, err
	}
	switch {
	case c.ManifestsPath != "" && args.ConfigFile != "":
		return nil, usagef("--config is the post-renderer's, and --manifests checks a stream without running it: " +
			"check the stream as post-rendered with --config (it carries the config's ConfigMap), or give CHART with --config")
	case c.ManifestsPath != "":
		return c.runManifests(args.AllowExternalKeys)
	case c.SuitePath != "":
		return c.runSuite(ctx, args)
	default:
		return c.runChart(ctx, args)
	}
}

func (c *Check) runManifests(allowExternalKeys bool) (*Report, error) {
	result, err := c.checkManifests(c.ManifestsPath, c.ManifestsPath, nil, allowExternalKeys)
	if err != nil {
		return nil, err
	}
	return &Report{Scenarios: []ScenarioResult{result}}, nil
}

// checkManifests checks a rendered stream file, named display in errors. Objects without a
// namespace are in -n's namespace when it is given, else only in the same (empty) one as each other.
func (c *Check) checkManifests(
	path, display string,
	expect *expectations,
	allowExternalKeys bool,
) (ScenarioResult, error) {
	stream, err := readStream(path, display, c.Stdin)
	if err != nil {
		return ScenarioResult{}, err
	}
	if c.Release.Namespace != "" {
		stream.DefaultNamespace(c.Release.Namespace)
	}
	in := scenarioInput{expect: expect, allowExternalKeys: allowExternalKeys}
	return ScenarioResult{Name: display, Checks: checkStream(stream, in)}, nil
}

func (c *Check) runChart(ctx context.Context, args postrender.Args) (*Report, error) {
	setup, err := newPostRenderSetup(args)
	if err != nil {
		return nil, err
	}
	rendered, opts, err := renderChart(ctx, c.ChartPath, c.Release, c.Values, setup.postRenderer())
	if err != nil {
		return nil, err
	}
	result := c.checkRendered(rendered, opts.Namespace, nil, setup)
	result.Name = c.ChartPath
	result.Release, result.Namespace = opts.ReleaseName, opts.Namespace
	return &Report{Scenarios: []ScenarioResult{result}}, nil
}

// renderChart loads and renders a chart once with command-line values; the options returned
// carry the defaulted release name and namespace.
func renderChart(
	ctx context.Context, chartPath string, release Release, vals values.Options, pr helmpostrender.PostRenderer,
) (*renderOutput, renderOptions, error) {
	ch, err := loadChart(chartPath)
	if err != nil {
		return nil, renderOptions{}, err
	}
	merged, err := mergeValues(vals)
	if err != nil {
		return nil, renderOptions{}, usagef("%v", err)
	}
	opts := renderOptions{
		ReleaseName: defaultString(release.Name, DefaultReleaseName),
		Namespace:   defaultString(release.Namespace, DefaultNamespace),
		KubeVersion: release.KubeVersion,
		Values:      merged,
	}
	rendered, err := ch.Render(ctx, opts, pr)
	return rendered, opts, err
}

func (c *Check) runSuite(ctx context.Context, args postrender.Args) (*Report, error) {
	suite, err := loadSuite(c.SuitePath)
	if err != nil {
		return nil, err
	}
	var ch *loadedChart
	if suite.rendersChart() {
		chartPath := suite.chartPath(c.ChartPath)
		if chartPath == "" {
			return nil, usagef("suite %s renders a chart: give CHART or set chart: in the suite", c.SuitePath)
		}
		// Loaded once: every scenario renders a copy.
		if ch, err = loadChart(chartPath); err != nil {
			return nil, err
		}
	}
	report := &Report{}
	for i := range suite.Scenarios {
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("suite %s: %w", c.SuitePath, err)
		}
		report.Scenarios = append(report.Scenarios, c.runScenario(ctx, suite, ch, &suite.Scenarios[i], args))
	}
	return report, nil
}

// runScenario renders (or reads) one scenario and checks it; args are the command line's
// post-renderer arguments.
func (c *Check) runScenario(
	ctx context.Context, suite *suite, ch *loadedChart, sc *scenario, args postrender.Args,
) ScenarioResult {
	result := ScenarioResult{Name: sc.Name}
	args = suite.postRendererArgs(sc, args)
	if sc.Manifests != "" {
		checked, err := c.checkManifests(suite.resolve(sc.Manifests), sc.Manifests, &sc.Expect, args.AllowExternalKeys)
		if err != nil {
			result.RenderError = err.Error()
			return result
		}
		result.Checks = checked.Checks
		return result
	}
	opts, err := suite.renderOptions(sc, renderOptions{
		ReleaseName: c.Release.Name,
		Namespace:   c.Release.Namespace,
		KubeVersion: c.Release.KubeVersion,
	})
	if err != nil {
		result.RenderError = err.Error()
		return result
	}
	result.Release = defaultString(opts.ReleaseName, DefaultReleaseName)
	result.Namespace = defaultString(opts.Namespace, DefaultNamespace)
	setup, err := newPostRenderSetup(args)
	if err != nil {
		result.RenderError = err.Error()
		return result
	}
	rendered, err := ch.Render(ctx, opts, setup.postRenderer())
	if sc.ExpectError != "" {
		cs := &checkSet{}
		cs.add(expectErrorCheck, expectRenderError(sc.ExpectError, err))
		result.Checks = cs.results
		return result
	}
	if err != nil {
		result.RenderError = err.Error()
		return result
	}
	r := c.checkRendered(rendered, result.Namespace, &sc.Expect, setup)
	r.Name, r.Release, r.Namespace = result.Name, result.Release, result.Namespace
	return r
}

func expectRenderError(want string, err error) []Finding {
	expected := fmt.Sprintf("rendering to fail with %q", want)
	switch {
	case err == nil:
		return []Finding{{Document: "render", Expected: expected, Found: "it succeeded"}}
	case !strings.Contains(err.Error(), want):
		return []Finding{{Document: "render", Expected: expected, Found: err.Error()}}
	}
	return nil
}

// checkRendered checks a release rendered with setup's post-renderer; objects without a
// namespace are the release namespace's.
func (c *Check) checkRendered(
	rendered *renderOutput, namespace string, expect *expectations, setup postRenderSetup,
) ScenarioResult {
	given, err := setup.givenConfig()
	if err != nil {
		return ScenarioResult{RenderError: err.Error()}
	}
	output, err := withGivenConfig(rendered, given, setup.configFile)
	if err != nil {
		return ScenarioResult{RenderError: err.Error()}
	}
	stream, err := parseStream(output)
	if err != nil {
		return ScenarioResult{RenderError: fmt.Sprintf("post-rendered stream: %v", err)}
	}
	stream.DefaultNamespace(namespace)
	in := scenarioInput{
		postRendered: true, postRenderErr: rendered.PostRenderErr, expect: expect,
		allowExternalKeys: setup.opts.AllowExternalKeys, configGiven: setup.configFile != "", namespace: namespace,
		chartCarriesRefresher: chartCarriesRefresher(rendered.Manifest),
	}
	if rendered.PostRenderErr == nil {
		in.given = given
	}
	return ScenarioResult{Checks: checkStream(stream, in)}
}

// scenarioInput is what the checks of one stream read besides it.
type scenarioInput struct {
	// postRendered: chartcheck ran the post-renderer, which refused the release if postRenderErr.
	postRendered  bool
	postRenderErr error
	expect        *expectations
	// allowExternalKeys accepts a keys ConfigMap the stream does not render.
	allowExternalKeys bool
	// configGiven: the post-renderer got --config; given is that config when it parsed and the
	// post-renderer accepted the release.
	configGiven bool
	given       *config.RefreshConfig
	// namespace is the release namespace ("" for a --manifests stream).
	namespace string
	// chartCarriesRefresher: the chart's own output, before post-rendering, holds the refresher's
	// CronJob (charts/image-refresh carries the post-renderer's objects; see chartCarriesRefresher).
	chartCarriesRefresher bool
}

// checkScenario runs the built-in contract, then the expectations, over one stream without a
// --config; allowExternalKeys accepts a keys ConfigMap the stream does not render.
func checkScenario(
	s *stream, postRendered bool, postRenderErr error, expect *expectations, allowExternalKeys bool,
) []CheckResult {
	return checkStream(s, scenarioInput{
		postRendered:      postRendered,
		postRenderErr:     postRenderErr,
		expect:            expect,
		allowExternalKeys: allowExternalKeys,
	})
}

// checkStream runs the built-in contract, then the expectations, over one stream. A stream
// without a config, none given and none expected absent fails: nothing would be checked.
func checkStream(s *stream, in scenarioInput) []CheckResult {
	cs := &checkSet{}
	c := &checkedRelease{
		stream:                s,
		allowExternalKeys:     in.allowExternalKeys,
		chartCarriesRefresher: in.chartCarriesRefresher,
	}
	c.presetGivenConfig(in.given, in.namespace)
	c.check(cs, in.postRendered, in.postRenderErr)
	if c.cfg == nil && c.configDoc == nil && !in.configGiven && (in.expect == nil || in.expect.Config != absent) {
		failNothingChecked(cs, in.postRendered)
	}
	if in.expect != nil {
		in.expect.check(c, cs)
	}
	return cs.results
}

// readStream reads and parses a rendered stream, named display in errors. A stream without
// objects is a usage error: in `helm template ... | chartcheck --manifests -` it means helm
// failed, and checking nothing must not pass.
func readStream(path, display string, stdin io.Reader) (*stream, error) {
	data, err := readManifests(path, stdin)
	if err != nil {
		return nil, err
	}
	stream, err := parseStream(data)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", display, err)
	}
	if len(stream.Docs) == 0 {
		return nil, usagef(
			"%s: empty stream: no Kubernetes object to check (did the command that rendered it fail?)",
			display,
		)
	}
	return stream, nil
}

func readManifests(path string, stdin io.Reader) ([]byte, error) {
	if path == "-" {
		if stdin == nil {
			return nil, errors.New("reading manifests from stdin: no stdin")
		}
		data, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("reading manifests from stdin: %w", err)
		}
		return data, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading manifests: %w", err)
	}
	return data, nil
}
