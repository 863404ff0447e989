package postrender

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/manifest"
)

// edit is what Render does to a stream: drop the objects an earlier run injected (they are
// rebuilt) and append the injected documents. ("Plan" is the refresher's word: what a tick, or
// `chartcheck plan`, says the refresher will do.)
type edit struct {
	// drop is indexed like the stream's objects.
	drop []bool
	// inject is the YAML of the objects to append, every document opened by "---".
	inject []byte
}

// loader decodes one candidate object into a Kubernetes API type, the way Kubernetes decodes
// it (contract.Decode: aliases and merge keys resolved, the last of duplicate keys wins).
type loader func(obj object, into any) error

// newEdit decides what to do with a stream from the identifying fields of its objects,
// decoding only the candidates it must look into. Every rule about the targets is the
// contract's (internal/contract); this only finds the objects and words the refusals.
func newEdit(objects []object, opts Options, load loader) (*edit, error) {
	e := &edit{drop: make([]bool, len(objects))}
	src, err := findConfig(objects, opts, load)
	if err != nil {
		return nil, err
	}
	if src == nil {
		return e, nil
	}
	if opts.Warn != nil {
		for _, d := range src.cfg.Deprecations() {
			opts.Warn(fmt.Sprintf("refresh config %q: %s", src.cfg.Metadata.Name, d))
		}
	}
	inj := newInjection(src, objects)
	for i, obj := range objects {
		// The config ConfigMap a --config run injected is the config now; it stays.
		if inj.own(obj) && (src.configMap == nil || i != src.index) {
			e.drop[i] = true
		}
	}
	cfg := src.cfg
	if !cfg.AnyFloating() {
		return e, nil
	}

	var refusals []*RefusalError
	targets := contract.Targets(cfg, src.configMapNamespace(), "")
	shared := contract.CheckSharedEnv(targets)
	for _, t := range targets {
		if v := shared[t.Index]; v != nil {
			refusals = append(refusals, refuse(Reason(v.Rule), "refresh config %q: %s", cfg.Metadata.Name, v.Message))
			continue
		}
		if r := checkTarget(t, inj, objects, load); r != nil {
			refusals = append(refusals, r)
		}
	}
	refusals = append(refusals, checkKeys(inj, objects, opts.AllowExternalKeys, load)...)
	refusals = append(refusals, checkNamesFree(inj, objects, e.drop)...)
	refusals = append(refusals, checkWriters(cfg.Metadata.Name, objects, e.drop, targets, opts.Warn, load)...)
	if len(refusals) > 0 {
		return nil, joinRefusals(refusals)
	}
	if e.inject, err = inj.render(); err != nil {
		return nil, err
	}
	return e, nil
}

// configSource is the refresh config and where it came from.
type configSource struct {
	cfg *config.RefreshConfig
	// configMap is the stream's config ConfigMap, nil with --config.
	configMap *object
	index     int // of configMap among the stream's objects
}

func (s *configSource) configMapNamespace() string {
	if s.configMap == nil {
		return ""
	}
	return s.configMap.Namespace
}

// findConfig returns the refresh config, or nil when the release carries none.
func findConfig(objects []object, opts Options, load loader) (*configSource, error) {
	var labelled []int
	for i, obj := range objects {
		if obj.isKind("ConfigMap") && obj.ConfigLabel {
			labelled = append(labelled, i)
		}
	}
	if opts.Config != nil {
		var refusals []*RefusalError
		own := configMapKindName(opts.Config.Metadata.Name)
		for _, i := range labelled {
			if obj := objects[i]; !obj.ownLabelled() || obj.Kind != own.kind || obj.Name != own.name {
				refusals = append(refusals, refuse(ReasonConfigConflict,
					"--config was given, but the chart renders its own refresh config in %s (labelled %s: \"true\"); use one of "+
						"them: drop --config to use the chart's config, or turn off the chart's config ConfigMap in its values",
					objects[i].describe(), config.ConfigLabel))
			}
		}
		if len(refusals) > 0 {
			return nil, joinRefusals(refusals)
		}
		// A round trip through the contract's own encoding gives a defaulted, validated copy:
		// exactly what the refresher will read from the injected ConfigMap.
		data, err := opts.Config.Marshal()
		if err != nil {
			return nil, fmt.Errorf("encoding --config: %w", err)
		}
		cfg, err := config.Parse(data)
		if err != nil {
			return nil, refuse(ReasonInvalidConfig, "--config: %v", err)
		}
		return &configSource{cfg: cfg}, nil
	}
	candidates := make([]manifest.Candidate, len(labelled))
	for j, i := range labelled {
		load := func() (*corev1.ConfigMap, error) {
			var cm corev1.ConfigMap
			return &cm, load(objects[i], &cm)
		}
		candidates[j] = manifest.Candidate{Hook: objects[i].Hook, Namespace: objects[i].Namespace, Load: load}
	}
	found := manifest.FindConfig(candidates, manifest.Unseen)
	if found.Rule == manifest.ConfigFound && found.Config == nil {
		return nil, nil
	}
	if found.Rule == manifest.ConfigSeveral {
		names := make([]string, len(labelled))
		for j, i := range labelled {
			names[j] = objects[i].describe()
		}
		return nil, refuse(ReasonConfigConflict,
			"the release renders %d ConfigMaps labelled %s: \"true\" (%s); a release carries exactly one refresh config, so "+
				"remove or unlabel all but one",
			len(labelled), config.ConfigLabel, strings.Join(names, ", "))
	}
	i := labelled[0]
	cm, cfg := objects[i], found.Config
	switch found.Rule {
	case manifest.ConfigHook:
		return nil, refuse(ReasonInvalidConfig, "%s holds the refresh config, but %s", cm.describe(), found.Violation.Message)
	case manifest.ConfigUnreadable:
		return nil, refuse(ReasonMalformedStream, "reading %s: %v", cm.describe(), found.Err)
	case manifest.ConfigNoKey:
		return nil, refuse(ReasonInvalidConfig,
			"%s is labelled %s: \"true\" but has no string data.%s; render the refresh config under that key, or drop the label",
			cm.describe(), config.ConfigLabel, config.ConfigMapKey)
	case manifest.ConfigInvalid:
		return nil, refuse(ReasonInvalidConfig, "refresh config in %s: %v; fix the chart values it is rendered from",
			cm.describe(), found.Err)
	case manifest.ConfigNamespace:
		return nil, refuse(ReasonInvalidConfig,
			"refresh config in %s names metadata.namespace %q, but the ConfigMap is in namespace %q, where the CronJob could "+
				"not mount it; render both in the same namespace",
			cm.describe(), cfg.Metadata.Namespace, cm.Namespace)
	}
	return &configSource{cfg: cfg, configMap: &cm, index: i}, nil
}

// checkTarget finds a floating image's resolved target in the release and applies the
// contract's rules to it; it returns the first rule broken, as a refusal.
func checkTarget(t contract.Target, inj *injection, objects []object, load loader) *RefusalError {
	img, index := t.Image, t.Index
	image := fmt.Sprintf("image %q (spec.images[%d], %s)", img.Name, index, img.Reference())
	if v := contract.CheckRoleCovers(inj.namespace, t); v != nil {
		return refuse(Reason(v.Rule), "%s floats, but %s", image, v.Message)
	}
	found := findObjects(objects, t.Key)
	switch len(found) {
	case 0:
		return refuse(ReasonTargetMissing,
			"%s targets %s, which the release does not render (it renders %s); set spec.images[%d].target.name (and "+
				"namespace) to a %s of this release",
			image, contract.KeyString(t.Key), workloadList(objects, t.Key.Kind), index, t.Key.Kind)
	case 1:
	default:
		names := make([]string, len(found))
		for i, obj := range found {
			names[i] = obj.describe()
		}
		return refuse(ReasonTargetMissing,
			"%s targets %s, which matches %d documents (%s); set spec.images[%d].target.namespace to tell them apart",
			image, contract.KeyString(t.Key), len(found), strings.Join(names, ", "), index)
	}
	doc := found[0]
	dep, err := contract.TargetView(t.Key.Kind, func(into any) error { return load(doc, into) })
	if err != nil {
		return refuse(ReasonMalformedStream, "reading %s: %v", doc.describe(), err)
	}
	if v := contract.CheckTargetState(dep); v != nil {
		return refuse(Reason(v.Rule), "%s floats, but its target %s: %s", image, doc.describe(), v.Message)
	}
	container, v := contract.Container(dep, img)
	if v != nil {
		return refuse(Reason(v.Rule), "%s targets %s, but %s; set spec.images[%d].target.container to one of them", image,
			doc.describe(), v.Message, index)
	}
	switch img.Action {
	case config.ActionSetEnv:
		v = contract.CheckRenderedEnv(container, img.Env, envSource(objects, doc.Namespace, load))
	case config.ActionRolloutRestart:
		v = contract.CheckRestart(img, container)
	case config.ActionSetImage:
		// Any pull policy: set-image writes the digest itself, so what is cached never runs.
		_, v = contract.LiveImage(img, container)
	}
	if v != nil {
		return refuse(Reason(v.Rule), "%s floats, but container %q of %s %s", image, container.Name, doc.describe(),
			v.Message)
	}
	return nil
}

// findObjects returns the objects of a kind (in the contract's API group) a resolved key names:
// a target Deployment, the keys ConfigMap (manifest.Find).
func findObjects(objects []object, key config.TargetKey) []object {
	model := func(o object) manifest.Object { return o.Object }
	return manifest.Find(objects, model, key.Kind, key.Name, key.Namespace, manifest.Unseen)
}

// envSource finds, for an envFrom entry of a target in namespace, the rendered ConfigMap or
// Secret that defines a key.
func envSource(objects []object, namespace string, load loader) contract.EnvSource {
	return func(kind, name, key string) string {
		for _, obj := range objects {
			var data contract.EnvData
			if obj.Matches(kind, name, namespace, manifest.Unseen) && load(obj, &data) == nil && data.Defines(key) {
				return obj.describe()
			}
		}
		return ""
	}
}

// maxListed bounds the names a message lists.
const maxListed = 8

func workloadList(objects []object, kind string) string {
	var names []string
	for _, obj := range objects {
		if obj.isKind(kind) {
			names = append(names, obj.ref())
		}
	}
	return listOrNone(names, "no "+kind)
}

func listOrNone(names []string, none string) string {
	switch {
	case len(names) == 0:
		return none
	case len(names) > maxListed:
		return fmt.Sprintf("%s and %d more", strings.Join(names[:maxListed], ", "), len(names)-maxListed)
	default:
		return strings.Join(names, ", ")
	}
}

// checkNamesFree refuses a release that already renders an object under a name the
// post-renderer would inject (other than its own objects from an earlier run).
func checkNamesFree(inj *injection, objects []object, drop []bool) []*RefusalError {
	var refusals []*RefusalError
	for _, want := range inj.names() {
		for i, obj := range objects {
			if drop[i] || !obj.isKind(want.kind) || obj.Name != want.name || !want.inNamespace(obj, inj.namespace) {
				continue
			}
			if inj.source.configMap != nil && i == inj.source.index {
				continue
			}
			refusals = append(refusals, refuse(ReasonNameTaken,
				"the release already renders %s, and image-refresh would inject a %s of that name for refresh config %q; rename "+
					"the config (metadata.name) or the chart's object — but if it is the chart's own refresher, turn that off "+
					"instead: two refreshers of one target are refused (second-writer)",
				obj.describe(), want.kind, inj.cfg.Metadata.Name))
		}
	}
	return refusals
}
