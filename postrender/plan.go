package postrender

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tracebloc/image-refresh/refresher/config"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// plan is what Render does to a stream: drop the objects an earlier run injected (they are
// rebuilt) and append the injected documents.
type plan struct {
	// drop is indexed like the stream's objects.
	drop []bool
	// inject is the YAML of the objects to append, every document opened by "---".
	inject []byte
}

// loader parses one candidate document as a kyaml RNode.
type loader func(object) (*yaml.RNode, error)

// newPlan decides what to do with a stream from the identifying fields of its objects,
// loading only the candidates it must look into.
func newPlan(objects []object, opts Options, load loader) (*plan, error) {
	p := &plan{drop: make([]bool, len(objects))}
	src, err := findConfig(objects, opts, load)
	if err != nil {
		return nil, err
	}
	if src == nil {
		return p, nil
	}
	for i, obj := range objects {
		// The config ConfigMap a --config run injected is the config now; it stays.
		if obj.own() && (src.configMap == nil || i != src.index) {
			p.drop[i] = true
		}
	}
	cfg := src.cfg
	if !cfg.AnyFloating() {
		return p, nil
	}

	inj := newInjection(src, objects)
	var refusals []*RefusalError
	for i, img := range cfg.Spec.Images {
		if img.Pinned() {
			continue
		}
		if r := checkImage(i, img, objects, load); r != nil {
			refusals = append(refusals, r)
		}
	}
	refusals = append(refusals, checkNamesFree(inj, objects, p.drop)...)
	if len(refusals) > 0 {
		return nil, joinRefusals(refusals)
	}
	if p.inject, err = inj.render(); err != nil {
		return nil, err
	}
	return p, nil
}

// configSource is the refresh config and where it came from.
type configSource struct {
	cfg *config.RefreshConfig
	// configMap is the stream's config ConfigMap, nil with --config.
	configMap *object
	index     int // of configMap among the stream's objects
}

// findConfig returns the refresh config, or nil when the release carries none.
func findConfig(objects []object, opts Options, load loader) (*configSource, error) {
	var labelled []int
	for i, obj := range objects {
		if obj.kind == "ConfigMap" && obj.configLabel {
			labelled = append(labelled, i)
		}
	}
	if opts.Config != nil {
		var refusals []*RefusalError
		for _, i := range labelled {
			if !objects[i].own() {
				refusals = append(refusals, refuse(ReasonConfigConflict,
					"--config was given, but the chart renders its own refresh config in %s (labelled %s: \"true\"); use one of them: drop --config to use the chart's config, or turn off the chart's config ConfigMap in its values",
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
	switch len(labelled) {
	case 0:
		return nil, nil
	case 1:
	default:
		names := make([]string, len(labelled))
		for j, i := range labelled {
			names[j] = objects[i].describe()
		}
		return nil, refuse(ReasonConfigConflict,
			"the release renders %d ConfigMaps labelled %s: \"true\" (%s); a release carries exactly one refresh config, so remove or unlabel all but one",
			len(labelled), config.ConfigLabel, strings.Join(names, ", "))
	}
	i := labelled[0]
	cm := objects[i]
	if cm.hook != "" {
		// Helm creates a hook at its hook time, outside the release's resources, and deletes it
		// by its hook-delete-policy: the CronJob could not count on mounting it. (Helm 3 never
		// shows hooks to a post-renderer, so there such a config goes unseen.)
		return nil, refuse(ReasonInvalidConfig,
			"%s holds the refresh config but is a Helm hook (%s: %s), which is not a resource of the release and may be deleted after the hook runs, so the CronJob could not mount it; render the refresh config ConfigMap without the %s annotation",
			cm.describe(), HookAnnotation, cm.hook, HookAnnotation)
	}
	rn, err := load(cm)
	if err != nil {
		return nil, fmt.Errorf("reading %s: %w", cm.describe(), err)
	}
	data, err := rn.Pipe(yaml.Lookup("data", config.ConfigMapKey))
	if err != nil || data == nil || data.YNode().Kind != yaml.ScalarNode {
		return nil, refuse(ReasonInvalidConfig,
			"%s is labelled %s: \"true\" but has no string data.%s; render the refresh config under that key, or drop the label",
			cm.describe(), config.ConfigLabel, config.ConfigMapKey)
	}
	cfg, err := config.Parse([]byte(data.YNode().Value))
	if err != nil {
		return nil, refuse(ReasonInvalidConfig, "refresh config in %s: %v; fix the chart values it is rendered from", cm.describe(), err)
	}
	if cm.namespace != "" && cfg.Metadata.Namespace != "" && cm.namespace != cfg.Metadata.Namespace {
		return nil, refuse(ReasonInvalidConfig,
			"refresh config in %s names metadata.namespace %q, but the ConfigMap is in namespace %q, where the CronJob could not mount it; render both in the same namespace",
			cm.describe(), cfg.Metadata.Namespace, cm.namespace)
	}
	return &configSource{cfg: cfg, configMap: &cm, index: i}, nil
}

// checkImage refuses a floating image whose target cannot be refreshed as configured.
func checkImage(index int, img config.Image, objects []object, load loader) *RefusalError {
	image := fmt.Sprintf("image %q (spec.images[%d], %s)", img.Name, index, img.Reference())
	target := img.Target
	var found []object
	for _, obj := range objects {
		if obj.kind == target.Kind && obj.name == target.Name && sameNamespace(obj.namespace, target.Namespace) {
			found = append(found, obj)
		}
	}
	if exact := slices.DeleteFunc(slices.Clone(found), func(o object) bool { return o.namespace != target.Namespace }); len(found) > 1 && len(exact) > 0 {
		found = exact
	}
	switch len(found) {
	case 0:
		return refuse(ReasonTargetMissing,
			"%s targets %s, which the release does not render (it renders %s); set spec.images[%d].target.name (and namespace) to a Deployment of this release",
			image, targetRef(target), deploymentList(objects, target.Kind), index)
	case 1:
	default:
		names := make([]string, len(found))
		for i, obj := range found {
			names[i] = obj.describe()
		}
		return refuse(ReasonTargetMissing,
			"%s targets %s, which matches %d documents (%s); set spec.images[%d].target.namespace to tell them apart",
			image, targetRef(target), len(found), strings.Join(names, ", "), index)
	}
	dep := found[0]
	rn, err := load(dep)
	if err != nil {
		return refuse(ReasonMalformedStream, "reading %s: %v", dep.describe(), err)
	}
	containers, _ := rn.Pipe(yaml.Lookup("spec", "template", "spec", "containers"))
	container, _ := containers.Pipe(yaml.MatchElement("name", target.Container))
	if container == nil {
		return refuse(ReasonTargetMissing,
			"%s targets container %q of %s, which has no such container (it has %s); set spec.images[%d].target.container to one of them",
			image, target.Container, dep.describe(), containerList(containers), index)
	}
	switch img.Action {
	case config.ActionSetEnv:
		env, _ := container.Pipe(yaml.Lookup("env"))
		entry, _ := env.Pipe(yaml.MatchElement("name", img.Env))
		if entry == nil {
			return nil
		}
		for _, literal := range []string{"value", "valueFrom"} {
			if entry.Field(literal) != nil {
				return refuse(ReasonEnvRendered,
					"%s floats, but container %q of %s renders env %s with a %s: every helm upgrade would reset the digest the refresher set back to the chart's value (a silent downgrade); leave %s out of the chart while %s floats (render it only when its digest is pinned)",
					image, target.Container, dep.describe(), img.Env, literal, img.Env, img.Name)
			}
		}
	case config.ActionRolloutRestart:
		ref := stringField(container, "image")
		if strings.Contains(ref, "@") {
			return refuse(ReasonRestartPinned,
				"%s floats, but container %q of %s runs the digest-pinned image %s: a rollout restart would start the same digest again; render the container image by tag (%s) while %s floats, or pin the digest in the config too",
				image, target.Container, dep.describe(), ref, img.Reference(), img.Name)
		}
		policy := stringField(container, "imagePullPolicy")
		if effective := config.EffectivePullPolicy(policy, ref); effective != "Always" {
			why := fmt.Sprintf("sets imagePullPolicy %s", policy)
			if policy == "" {
				why = fmt.Sprintf("sets no imagePullPolicy, which Kubernetes defaults to %s for %q", effective, ref)
			}
			return refuse(ReasonPullPolicy,
				"%s floats, but container %q of %s %s: a rollout restart would reuse the cached image instead of pulling the new digest; set imagePullPolicy: Always on that container while %s floats",
				image, target.Container, dep.describe(), why, img.Name)
		}
	}
	return nil
}

func stringField(rn *yaml.RNode, name string) string {
	if f := rn.Field(name); f != nil && f.Value.YNode().Kind == yaml.ScalarNode {
		return f.Value.YNode().Value
	}
	return ""
}

func targetRef(t config.Target) string {
	if t.Namespace != "" {
		return fmt.Sprintf("%s %s/%s", t.Kind, t.Namespace, t.Name)
	}
	return fmt.Sprintf("%s %s", t.Kind, t.Name)
}

// maxListed bounds the names a message lists.
const maxListed = 8

func deploymentList(objects []object, kind string) string {
	var names []string
	for _, obj := range objects {
		if obj.kind == kind {
			names = append(names, obj.ref())
		}
	}
	return listOrNone(names, "no "+kind)
}

func containerList(containers *yaml.RNode) string {
	var names []string
	if containers != nil && containers.YNode().Kind == yaml.SequenceNode {
		for _, c := range containers.Content() {
			names = append(names, fmt.Sprintf("%q", stringField(yaml.NewRNode(c), "name")))
		}
	}
	return listOrNone(names, "no containers")
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
			if drop[i] || obj.kind != want.kind || obj.name != want.name || !sameNamespace(obj.namespace, inj.namespace) {
				continue
			}
			if inj.source.configMap != nil && i == inj.source.index {
				continue
			}
			refusals = append(refusals, refuse(ReasonNameTaken,
				"the release already renders %s, and image-refresh would inject a %s of that name for refresh config %q; rename the config (metadata.name) or the chart's object",
				obj.describe(), want.kind, inj.cfg.Metadata.Name))
		}
	}
	return refusals
}
