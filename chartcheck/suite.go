package chartcheck

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/cli/values"
	"helm.sh/helm/v3/pkg/getter"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/postrender"
)

// suite is a chartcheck suite file: scenarios, each a render of the chart (or a rendered stream)
// with expectations on top of the built-in contract. Paths are relative to the suite file.
type suite struct {
	// Chart is the chart directory or archive; the CHART argument overrides it.
	Chart string `yaml:"chart"`
	// Release, Namespace and KubeVersion are the defaults of every scenario.
	Release     string `yaml:"release"`
	Namespace   string `yaml:"namespace"`
	KubeVersion string `yaml:"kubeVersion"`
	// Config is the post-renderer's --config for every scenario that renders the chart, unless
	// --config, --post-renderer-args or the scenario's config gives one.
	Config    string     `yaml:"config"`
	Scenarios []scenario `yaml:"scenarios"`
	// Definitions is not read: it holds YAML anchors that scenarios share (expect: *name).
	Definitions yaml.Node `yaml:"definitions"`

	dir string
}

// scenario is one render and what it must produce.
type scenario struct {
	Name      string `yaml:"name"`
	Release   string `yaml:"release"`
	Namespace string `yaml:"namespace"`
	// Values are values files, like -f.
	Values []string `yaml:"values"`
	// Set maps --set paths to YAML values, applied like --set-json so types and commas survive.
	Set map[string]any `yaml:"set"`
	// SetString maps --set-string paths to strings.
	SetString map[string]string `yaml:"setString"`
	// ReuseValues is a values file standing for the previous release's computed values under
	// `helm upgrade --reuse-values`: it replaces the chart's values.yaml.
	ReuseValues string `yaml:"reuseValues"`
	// Manifests checks this rendered stream instead of rendering the chart; "-" is stdin, so
	// `helm template ... | chartcheck --suite FILE` states expectations on a pipeline's stream.
	Manifests string `yaml:"manifests"`
	// ExpectError makes the scenario pass only if rendering fails with this text.
	ExpectError string `yaml:"expectError"`
	// AllowExternalKeys is the post-renderer's --allow-external-keys: the keys ConfigMap of
	// spec.verification exists in the cluster, so the stream need not render it.
	AllowExternalKeys bool `yaml:"allowExternalKeys"`
	// Config is the post-renderer's --config for this scenario: the RefreshConfig given at
	// install time. It overrides --config and the suite's config.
	Config string       `yaml:"config"`
	Expect expectations `yaml:"expect"`
}

// presence is "present" or "absent".
type presence string

const (
	present presence = "present"
	absent  presence = "absent"
)

// expectations are what a scenario's stream must contain, beyond the built-in contract.
type expectations struct {
	// CronJob: is there a CronJob running the refresher?
	CronJob presence `yaml:"cronJob"`
	// Config: is there a ConfigMap labelled image-refresh.io/config=true?
	Config presence `yaml:"config"`
	// Schedule is the config's schedule (defaults applied).
	Schedule string `yaml:"schedule"`
	// PodSecurity "restricted": every pod template in the stream passes Pod Security restricted.
	PodSecurity string `yaml:"podSecurity"`
	// Images are keyed by the config's image name.
	Images map[string]imageExpectation `yaml:"images"`
	// Env are variables the chart renders, or not, with or without a refresh config.
	Env []envExpectation `yaml:"env"`
	// Verification "required": spec.verification is set and no floating image opts out.
	Verification string `yaml:"verification"`
}

// envExpectation is one env var of a Deployment's container.
type envExpectation struct {
	Deployment string `yaml:"deployment"`
	Container  string `yaml:"container"`
	Name       string `yaml:"name"`
	// Value is the rendered value, or "absent": the chart must not render the variable.
	Value *string `yaml:"value"`
}

// imageExpectation is one refresh-config image; empty fields are not checked.
type imageExpectation struct {
	Pinned *bool  `yaml:"pinned"`
	Action string `yaml:"action"`
	Env    string `yaml:"env"`
	// Target is the target Deployment's name; Container its container.
	Target    string `yaml:"target"`
	Container string `yaml:"container"`
	// Registry is the registry the refresher calls: "docker.io" and "index.docker.io" are one.
	Registry   string `yaml:"registry"`
	Repository string `yaml:"repository"`
	Tag        string `yaml:"tag"`
	Digest     string `yaml:"digest"`
	Annotation string `yaml:"annotation"`
	// RenderedEnv is the value the chart renders for Env on the target container, or "absent".
	RenderedEnv string `yaml:"renderedEnv"`
}

// loadSuite reads and validates a suite file.
func loadSuite(path string) (*suite, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading suite: %w", err)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var s suite
	if err := dec.Decode(&s); err != nil {
		return nil, fmt.Errorf("suite %s: %w", path, err)
	}
	s.dir = filepath.Dir(path)
	if err := s.validate(); err != nil {
		return nil, fmt.Errorf("suite %s: %w", path, err)
	}
	return &s, nil
}

func (s *suite) validate() error {
	var errs []error
	if len(s.Scenarios) == 0 {
		errs = append(errs, errors.New("scenarios: at least one is required"))
	}
	seen := map[string]bool{}
	readsStdin := ""
	for i, sc := range s.Scenarios {
		at := fmt.Sprintf("scenarios[%d] (%s)", i, sc.Name)
		switch {
		case sc.Name == "":
			errs = append(errs, fmt.Errorf("scenarios[%d].name: required", i))
		case seen[sc.Name]:
			errs = append(errs, fmt.Errorf("%s.name: duplicate", at))
		}
		seen[sc.Name] = true
		renders := len(sc.Values) > 0 || len(sc.Set) > 0 || len(sc.SetString) > 0 ||
			sc.ReuseValues != "" || sc.ExpectError != ""
		if sc.Manifests != "" && (renders || sc.Config != "") {
			errs = append(errs, fmt.Errorf("%s: manifests excludes values, set, setString, reuseValues, expectError and config "+
				"(a stream is checked as rendered: post-render it with its config)", at))
		}
		if sc.Manifests == "-" {
			if readsStdin != "" {
				errs = append(errs, fmt.Errorf("%s.manifests \"-\": %s already reads stdin", at, readsStdin))
			}
			readsStdin = at
		}
		for _, p := range []struct {
			field string
			value presence
		}{{"cronJob", sc.Expect.CronJob}, {"config", sc.Expect.Config}} {
			if p.value != "" && p.value != present && p.value != absent {
				errs = append(errs, fmt.Errorf("%s.expect.%s %q: must be %q or %q", at, p.field, p.value, present, absent))
			}
		}
		if ps := sc.Expect.PodSecurity; ps != "" && ps != "restricted" {
			errs = append(errs, fmt.Errorf("%s.expect.podSecurity %q: only \"restricted\" is supported", at, ps))
		}
		if v := sc.Expect.Verification; v != "" && v != verificationRequired {
			errs = append(errs, fmt.Errorf("%s.expect.verification %q: only %q is supported", at, v, verificationRequired))
		}
		for j, e := range sc.Expect.Env {
			if e.Deployment == "" || e.Container == "" || e.Name == "" || e.Value == nil {
				errs = append(
					errs,
					fmt.Errorf("%s.expect.env[%d]: deployment, container, name and value (or \"absent\") are required", at, j),
				)
			}
		}
		for _, name := range slices.Sorted(maps.Keys(sc.Expect.Images)) {
			img := sc.Expect.Images[name]
			if a := config.Action(img.Action); a != "" && !slices.Contains(config.Actions, a) {
				errs = append(errs, fmt.Errorf("%s.expect.images.%s.action %q: must be %s", at, name, a, actionList()))
			}
		}
	}
	return errors.Join(errs...)
}

// chartPath is the chart the suite renders: the override, else the suite's own, relative to it.
func (s *suite) chartPath(override string) string {
	if override != "" {
		return override
	}
	if s.Chart == "" {
		return ""
	}
	return s.resolve(s.Chart)
}

func (s *suite) resolve(p string) string {
	if p == "" || filepath.IsAbs(p) || p == "-" {
		return p
	}
	return filepath.Join(s.dir, p)
}

// postRendererArgs are the post-renderer's arguments for a scenario: the scenario's config, else
// the command line's, else the suite's; --allow-external-keys from either.
func (s *suite) postRendererArgs(sc *scenario, args postrender.Args) postrender.Args {
	switch {
	case sc.Config != "":
		args.ConfigFile = s.resolve(sc.Config)
	case args.ConfigFile == "" && s.Config != "":
		args.ConfigFile = s.resolve(s.Config)
	}
	args.AllowExternalKeys = args.AllowExternalKeys || sc.AllowExternalKeys
	return args
}

// rendersChart reports whether any scenario renders the chart (rather than reading manifests).
func (s *suite) rendersChart() bool {
	return slices.ContainsFunc(s.Scenarios, func(sc scenario) bool { return sc.Manifests == "" })
}

// valueOptions turns the scenario's values into Helm's value options, paths resolved.
func (s *suite) valueOptions(sc *scenario) (values.Options, error) {
	var opts values.Options
	for _, f := range sc.Values {
		opts.ValueFiles = append(opts.ValueFiles, s.resolve(f))
	}
	for _, key := range slices.Sorted(maps.Keys(sc.Set)) {
		v, err := json.Marshal(sc.Set[key])
		if err != nil {
			return values.Options{}, fmt.Errorf("scenario %s: set %s: %w", sc.Name, key, err)
		}
		opts.JSONValues = append(opts.JSONValues, key+"="+string(v))
	}
	for _, key := range slices.Sorted(maps.Keys(sc.SetString)) {
		opts.StringValues = append(opts.StringValues, key+"="+escapeSetValue(sc.SetString[key]))
	}
	return opts, nil
}

// escapeSetValue escapes what --set-string would otherwise split or interpret.
func escapeSetValue(v string) string {
	return strings.NewReplacer(`\`, `\\`, `,`, `\,`).Replace(v)
}

// renderOptions are the scenario's release and values. Release, namespace and Kubernetes version
// come from the scenario, else the command line (defaults), else the suite.
func (s *suite) renderOptions(sc *scenario, defaults renderOptions) (renderOptions, error) {
	opts := renderOptions{
		ReleaseName: firstNonEmpty(sc.Release, defaults.ReleaseName, s.Release),
		Namespace:   firstNonEmpty(sc.Namespace, defaults.Namespace, s.Namespace),
		KubeVersion: firstNonEmpty(defaults.KubeVersion, s.KubeVersion),
	}
	valueOpts, err := s.valueOptions(sc)
	if err != nil {
		return renderOptions{}, err
	}
	if opts.Values, err = mergeValues(valueOpts); err != nil {
		return renderOptions{}, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	if sc.ReuseValues != "" {
		reused, err := chartutil.ReadValuesFile(s.resolve(sc.ReuseValues))
		if err != nil {
			return renderOptions{}, fmt.Errorf("scenario %s: reuseValues: %w", sc.Name, err)
		}
		opts.ReuseValues = reused.AsMap()
	}
	return opts, nil
}

// mergeValues merges -f/--set style options; only local files are read.
func mergeValues(opts values.Options) (map[string]any, error) {
	vals, err := opts.MergeValues(getter.Providers{})
	if err != nil {
		return nil, fmt.Errorf("merging values: %w", err)
	}
	return vals, nil
}

func firstNonEmpty(values ...string) string {
	for _, v := range values {
		if v != "" {
			return v
		}
	}
	return ""
}

// actionList names the config's actions for a message: "rollout-restart", "set-env" or "set-image".
func actionList() string {
	quoted := make([]string, len(config.Actions))
	for i, a := range config.Actions {
		quoted[i] = fmt.Sprintf("%q", a)
	}
	return strings.Join(quoted[:len(quoted)-1], ", ") + " or " + quoted[len(quoted)-1]
}
