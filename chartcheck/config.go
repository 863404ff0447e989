package chartcheck

import (
	"bytes"
	"errors"
	"fmt"

	helmpostrender "helm.sh/helm/v3/pkg/postrender"
	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/tracebloc/image-refresh/internal/config"
	contract "github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/postrender"
)

// postRendererArgs merges --post-renderer-args (parsed with the post-renderer's own flags), --config
// and --allow-external-keys into the post-renderer's arguments.
func (c *Check) postRendererArgs() (postrender.Args, error) {
	args, err := postrender.ParseArgs(c.PostRendererArgs)
	if err != nil {
		return postrender.Args{}, usagef("--post-renderer-args %q: %v", c.PostRendererArgs, err)
	}
	if c.ConfigPath != "" {
		if args.ConfigFile != "" && args.ConfigFile != c.ConfigPath {
			return postrender.Args{}, usagef(
				"--config %s and --post-renderer-args --config=%s: give the config once",
				c.ConfigPath,
				args.ConfigFile,
			)
		}
		args.ConfigFile = c.ConfigPath
	}
	args.AllowExternalKeys = args.AllowExternalKeys || c.AllowExternalKeys
	return args, nil
}

// postRenderSetup is how the post-renderer runs for one render: its options, and the config given
// with --config, if any.
type postRenderSetup struct {
	opts postrender.Options
	// configFile is --config ("" when the chart must render its config).
	configFile string
	// refusal is the post-renderer's refusal of a --config that does not parse: every render is
	// refused with it, as `postrender --config FILE` refuses every release.
	refusal error
}

// newPostRenderSetup reads --config. An unreadable file is a usage error; an invalid config is
// the post-renderer's refusal, reported by the post-render check.
func newPostRenderSetup(args postrender.Args) (postRenderSetup, error) {
	setup := postRenderSetup{
		configFile: args.ConfigFile,
		opts:       postrender.Options{AllowExternalKeys: args.AllowExternalKeys},
	}
	opts, err := args.Options()
	if _, refused := errors.AsType[*postrender.RefusalError](err); refused {
		setup.refusal = err
		return setup, nil
	}
	if err != nil {
		return postRenderSetup{}, usagef("%v", err)
	}
	setup.opts = opts
	return setup, nil
}

// postRenderer is the image-refresh post-renderer as `helm install --post-renderer` runs it with
// these arguments.
func (p postRenderSetup) postRenderer() helmpostrender.PostRenderer {
	if p.refusal != nil {
		return refusingPostRenderer{err: p.refusal}
	}
	return postrender.New(p.opts)
}

// refusingPostRenderer refuses every release, as the post-renderer does with a --config it cannot parse.
type refusingPostRenderer struct{ err error }

func (r refusingPostRenderer) Run(*bytes.Buffer) (*bytes.Buffer, error) { return nil, r.err }

// givenConfig is the config the post-renderer got with --config, as it reads it: defaulted and
// validated by a round trip through the contract's encoding. Nil without a valid --config.
func (p postRenderSetup) givenConfig() (*config.RefreshConfig, error) {
	if p.opts.Config == nil {
		return nil, nil
	}
	data, err := p.opts.Config.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding --config: %w", err)
	}
	cfg, err := config.Parse(data)
	if err != nil {
		return nil, fmt.Errorf("--config: %w", err)
	}
	return cfg, nil
}

// configMapDocument is the ConfigMap the post-renderer appends for a --config, byte for byte,
// opened by "---" and a Source comment naming the file.
func configMapDocument(cfg *config.RefreshConfig, file string) ([]byte, error) {
	data, err := cfg.Marshal()
	if err != nil {
		return nil, fmt.Errorf("encoding --config: %w", err)
	}
	type objectMeta struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace,omitempty"`
		Labels    map[string]string `yaml:"labels,omitempty"`
	}
	doc, err := yaml.Marshal(struct {
		APIVersion string            `yaml:"apiVersion"`
		Kind       string            `yaml:"kind"`
		Metadata   objectMeta        `yaml:"metadata"`
		Data       map[string]string `yaml:"data"`
	}{
		APIVersion: "v1",
		Kind:       "ConfigMap",
		Metadata: objectMeta{
			Name:      cfg.Metadata.Name + postrender.ConfigMapSuffix,
			Namespace: contract.RoleNamespace(cfg, "", ""),
			Labels: map[string]string{
				"app.kubernetes.io/name":     "image-refresh",
				"app.kubernetes.io/instance": cfg.Metadata.Name,
				postrender.ManagedByLabel:    postrender.ManagedByValue,
				config.ConfigLabel:           "true",
			},
		},
		Data: map[string]string{config.ConfigMapKey: string(data)},
	})
	if err != nil {
		return nil, fmt.Errorf("encoding the --config ConfigMap: %w", err)
	}
	return append([]byte("---\n# Source: --config "+file+"\n"), doc...), nil
}

// withGivenConfig is the stream the checks read after a render with --config. The post-renderer
// appends the config's ConfigMap when it injects; when it refused the release, the stream (the
// chart's own) gets that ConfigMap here, so the checks of the stream still run against the config.
func withGivenConfig(rendered *renderOutput, cfg *config.RefreshConfig, file string) ([]byte, error) {
	if cfg == nil || rendered.PostRenderErr == nil {
		return rendered.Output, nil
	}
	doc, err := configMapDocument(cfg, file)
	if err != nil {
		return nil, err
	}
	out := bytes.Clone(rendered.Output)
	if len(out) > 0 && !bytes.HasSuffix(out, []byte("\n")) {
		out = append(out, '\n')
	}
	return append(out, doc...), nil
}

// presetGivenConfig makes a valid --config with every image pinned the contract's config: the
// post-renderer then appends nothing, so the stream holds no config, yet the checks must read
// "every image is pinned" (nothing injected under the config's names), not "no config". The
// contract keeps a preset config when the stream has none. namespace is the release's.
func (c *checkedRelease) presetGivenConfig(cfg *config.RefreshConfig, namespace string) {
	if cfg == nil || cfg.AnyFloating() {
		return
	}
	preset := *cfg
	// As loadConfig reads the ConfigMap the post-renderer would have appended: the guard is
	// named after its namespace as rendered, the objects live in the release namespace without one.
	c.guardNamespace = contract.RoleNamespace(cfg, "", "")
	preset.Metadata.Namespace = contract.RoleNamespace(cfg, namespace, "")
	c.cfg = &preset
}

// failNothingChecked turns a passing refresh-config check into a failure when the stream holds
// no config and none was given: every check of the refresh machinery would pass or skip
// vacuously. postRendered words the fix for a rendered chart, else for a --manifests stream.
func failNothingChecked(cs *checkSet, postRendered bool) {
	found := "no RefreshConfig in the stream: check the stream as post-rendered with its config " +
		"(postrender --config FILE appends it), or check the chart with --config FILE"
	if postRendered {
		found = "no RefreshConfig in the rendered stream and none given: pass --config FILE (the config " +
			"given at install time) or render the chart with its config"
	}
	for i := range cs.results {
		r := &cs.results[i]
		if r.Name == refreshConfigCheck && r.Status == StatusPass {
			r.Status = StatusFail
			r.Findings = []Finding{{Document: "stream", Expected: "a RefreshConfig to check the release against", Found: found}}
		}
	}
}
