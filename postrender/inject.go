package postrender

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path"
	"slices"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/contract/guard"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

// The injected shape's names that other tools read (chartcheck asserts against them); the mount paths are the
// config contract's (config.MountPath, config.DockerConfigMountPath, config.KeysMountPath).
const (
	// ConfigMapSuffix names the ConfigMap injected with --config: "<config name>-config".
	ConfigMapSuffix = "-config"
	// DockerConfigEnv points the refresher at the registry credentials mounted at config.DockerConfigMountPath.
	DockerConfigEnv = "DOCKER_CONFIG"
	// injectedFilename is the Helm 4 postrender-filename given to the injected documents when
	// the input carries such annotations, so Helm 4 files them under one name.
	injectedFilename = "image-refresh/injected.yaml"
	// ContainerName is the name of the refresher container in the CronJob.
	ContainerName = "refresher"

	configVolume      = "config"
	credentialsVolume = "registry-credentials"
	keysVolume        = "verification-keys"
	dockerConfigJSON  = ".dockerconfigjson"
	dockerConfigFile  = "config.json"
)

// IdentityKinds are the kinds injected under the config's name, in the config's namespace and the Role and
// RoleBinding in every other namespace with a target: who the refresher is and what it may do.
var IdentityKinds = []string{"ServiceAccount", "Role", "RoleBinding"}

// injection is the set of objects appended for one refresh config.
type injection struct {
	cfg    *config.RefreshConfig
	source *configSource
	// namespace of every injected object but the Roles of other namespaces: the config's metadata.namespace, else
	// the namespace of the chart's config ConfigMap, else none (the release namespace).
	namespace string
	// grants are the Roles to inject, the first in namespace (contract.Grants).
	grants []contract.Grant
	// configMapName is the ConfigMap the CronJob mounts.
	configMapName string
	// filename is set when the input came from Helm 4.
	filename string
}

func newInjection(src *configSource, objects []object) *injection {
	inj := &injection{cfg: src.cfg, source: src, namespace: contract.RoleNamespace(src.cfg, src.configMapNamespace(), "")}
	inj.grants = contract.Grants(contract.Targets(src.cfg, src.configMapNamespace(), ""), inj.namespace)
	if src.configMap != nil {
		inj.configMapName = src.configMap.Name
	} else {
		inj.configMapName = configMapKindName(src.cfg.Metadata.Name).name
	}
	for _, obj := range objects {
		if obj.Filename != "" {
			inj.filename = injectedFilename
			break
		}
	}
	return inj
}

type kindName struct {
	kind, name string
	// cluster marks a cluster-scoped kind: its name is taken whatever namespace a document says.
	cluster bool
	// namespace is set for the Role and RoleBinding of a target namespace other than the injection's.
	namespace string
}

// inNamespace reports whether obj lies where an object k of the injection in namespace would.
func (k kindName) inNamespace(obj object, namespace string) bool {
	if k.namespace != "" {
		namespace = k.namespace
	}
	return k.cluster || sameNamespace(obj.Namespace, namespace)
}

// configMapKindName is the ConfigMap injected with --config for a config named name.
func configMapKindName(name string) kindName {
	return kindName{kind: "ConfigMap", name: name + ConfigMapSuffix}
}

// guardKindNames are the admission guard's policy and binding (cluster-scoped).
func (inj *injection) guardKindNames() []kindName {
	name := guard.Name(inj.cfg.Metadata.Name, inj.namespace)
	return []kindName{
		{kind: "ValidatingAdmissionPolicy", name: name, cluster: true},
		{kind: "ValidatingAdmissionPolicyBinding", name: name, cluster: true},
	}
}

// own reports whether obj is one the post-renderer injected in an earlier run, so it is
// replaced: it carries the managed-by label and has the kind, name and namespace of an object
// this injection adds (or of the ConfigMap a --config run adds). Other objects carrying the
// label are the chart's, and stay.
// A guard from an earlier run is replaced even when the guard is now off.
func (inj *injection) own(obj object) bool {
	if !obj.ownLabelled() {
		return false
	}
	all := append(inj.names(), configMapKindName(inj.cfg.Metadata.Name))
	if !inj.cfg.Spec.Job.GuardEnabled() {
		all = append(all, inj.guardKindNames()...)
	}
	return slices.ContainsFunc(all, func(k kindName) bool {
		return obj.isKind(k.kind) && obj.Name == k.name && k.inNamespace(obj, inj.namespace)
	})
}

// names lists the objects the injection adds, in the order it emits them.
func (inj *injection) names() []kindName {
	name := inj.cfg.Metadata.Name
	var out []kindName
	if inj.source.configMap == nil {
		out = append(out, configMapKindName(name))
	}
	for _, kind := range IdentityKinds {
		out = append(out, kindName{kind: kind, name: name})
	}
	out = append(out, kindName{kind: "CronJob", name: name})
	for _, g := range inj.grants[1:] {
		out = append(out, kindName{kind: "Role", name: name, namespace: g.Namespace}, kindName{kind: "RoleBinding",
			name: name, namespace: g.Namespace})
	}
	if inj.cfg.Spec.Job.GuardEnabled() {
		out = append(out, inj.guardKindNames()...)
	}
	return out
}

// render encodes the injected objects, each opened by "---".
func (inj *injection) render() ([]byte, error) {
	var objects []any
	if inj.source.configMap == nil {
		cm, err := inj.configMap()
		if err != nil {
			return nil, err
		}
		objects = append(objects, cm)
	}
	objects = append(objects, inj.serviceAccount(), inj.role(inj.grants[0]), inj.roleBinding(inj.grants[0]), inj.cronJob())
	for _, g := range inj.grants[1:] {
		objects = append(objects, inj.role(g), inj.roleBinding(g))
	}
	if inj.cfg.Spec.Job.GuardEnabled() {
		guard, err := inj.guard()
		if err != nil {
			return nil, err
		}
		objects = append(objects, guard...)
	}
	var out bytes.Buffer
	for _, obj := range objects {
		data, err := yaml.Marshal(obj)
		if err != nil {
			return nil, fmt.Errorf("encoding injected object: %w", err)
		}
		out.WriteString("---\n")
		out.Write(data)
	}
	return out.Bytes(), nil
}

func (inj *injection) meta(name string, extraLabels map[string]string) objectMeta {
	labels := map[string]string{
		"app.kubernetes.io/name":     "image-refresh",
		"app.kubernetes.io/instance": inj.cfg.Metadata.Name,
		ManagedByLabel:               ManagedByValue,
	}
	for k, v := range extraLabels {
		labels[k] = v
	}
	m := objectMeta{Name: name, Namespace: inj.namespace, Labels: labels}
	if inj.filename != "" {
		m.Annotations = map[string]string{filenameAnnotation: inj.filename}
	}
	return m
}

func (inj *injection) configMap() (any, error) {
	data, err := inj.cfg.Marshal()
	if err != nil {
		return nil, err
	}
	return struct {
		typeMeta `yaml:",inline"`
		Metadata objectMeta        `yaml:"metadata"`
		Data     map[string]string `yaml:"data"`
	}{
		typeMeta{"v1", "ConfigMap"},
		inj.meta(inj.configMapName, map[string]string{config.ConfigLabel: "true"}),
		map[string]string{config.ConfigMapKey: string(data)},
	}, nil
}

func (inj *injection) serviceAccount() any {
	return struct {
		typeMeta `yaml:",inline"`
		Metadata objectMeta `yaml:"metadata"`
	}{typeMeta{"v1", "ServiceAccount"}, inj.meta(inj.cfg.Metadata.Name, nil)}
}

// role grants exactly what the refresher does in one namespace (contract.Grants): get and patch the floating
// images' targets there, by resource and name, and create Events (events.k8s.io) about them, reading and patching
// one to count a repeating outcome (contract.EventVerbs). Events cannot be limited by name.
func (inj *injection) role(g contract.Grant) any {
	type rule struct {
		APIGroups     []string `yaml:"apiGroups"`
		Resources     []string `yaml:"resources"`
		ResourceNames []string `yaml:"resourceNames,omitempty"`
		Verbs         []string `yaml:"verbs"`
	}
	var rules []rule
	for _, t := range g.Targets {
		rules = append(rules, rule{APIGroups: []string{"apps"}, Resources: []string{t.Resource}, ResourceNames: t.Names,
			Verbs: contract.TargetVerbs})
	}
	rules = append(rules, rule{APIGroups: []string{"events.k8s.io"}, Resources: []string{"events"},
		Verbs: contract.EventVerbs})
	meta := inj.meta(inj.cfg.Metadata.Name, nil)
	meta.Namespace = g.Namespace
	return struct {
		typeMeta `yaml:",inline"`
		Metadata objectMeta `yaml:"metadata"`
		Rules    []rule     `yaml:"rules"`
	}{typeMeta{"rbac.authorization.k8s.io/v1", "Role"}, meta, rules}
}

// roleBinding binds the Role of one namespace to the refresher's ServiceAccount, which lives in the injection's.
func (inj *injection) roleBinding(g contract.Grant) any {
	type ref struct {
		APIGroup  string `yaml:"apiGroup,omitempty"`
		Kind      string `yaml:"kind"`
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace,omitempty"`
	}
	name := inj.cfg.Metadata.Name
	meta := inj.meta(name, nil)
	meta.Namespace = g.Namespace
	return struct {
		typeMeta `yaml:",inline"`
		Metadata objectMeta `yaml:"metadata"`
		RoleRef  ref        `yaml:"roleRef"`
		Subjects []ref      `yaml:"subjects"`
	}{
		typeMeta{"rbac.authorization.k8s.io/v1", "RoleBinding"},
		meta,
		ref{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: name},
		// Without a namespace the subject is the ServiceAccount in the binding's namespace.
		[]ref{{Kind: "ServiceAccount", Name: name, Namespace: inj.namespace}},
	}
}

// guard is the admission guard (guard.For): the API server lets the refresher's
// ServiceAccount change only the digests, restart stamps and annotations the refresher writes.
func (inj *injection) guard() ([]any, error) {
	policy, binding := guard.For(inj.cfg, inj.namespace, inj.cfg.Metadata.Name)
	if policy == nil {
		return nil, nil
	}
	var out []any
	for _, obj := range []struct {
		kind, name string
		spec       any
	}{{policy.Kind, policy.Name, policy.Spec}, {binding.Kind, binding.Name, binding.Spec}} {
		spec, err := specNode(obj.spec)
		if err != nil {
			return nil, fmt.Errorf("encoding the admission guard: %w", err)
		}
		meta := inj.meta(obj.name, nil)
		meta.Namespace = "" // cluster-scoped
		out = append(out, struct {
			typeMeta `yaml:",inline"`
			Metadata objectMeta `yaml:"metadata"`
			Spec     *yaml.Node `yaml:"spec"`
		}{typeMeta{policy.APIVersion, obj.kind}, meta, spec})
	}
	return out, nil
}

// specNode is a Kubernetes API value as YAML in its JSON field names and order, block style.
func specNode(v any) (*yaml.Node, error) {
	data, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return nil, err
	}
	var plain func(*yaml.Node)
	plain = func(n *yaml.Node) {
		n.Style = 0
		for _, c := range n.Content {
			plain(c)
		}
	}
	plain(&doc)
	return doc.Content[0], nil
}

func (inj *injection) cronJob() any {
	job := inj.cfg.Spec.Job
	name := inj.cfg.Metadata.Name
	podLabels := map[string]string{
		"app.kubernetes.io/name":     "image-refresh",
		"app.kubernetes.io/instance": name,
	}
	mounts := []volumeMount{{Name: configVolume, MountPath: config.MountPath, ReadOnly: true}}
	volumes := []volume{{Name: configVolume, ConfigMap: &configMapVolume{
		Name:  inj.configMapName,
		Items: []keyToPath{{Key: config.ConfigMapKey, Path: config.ConfigMapKey}},
	}}}
	var env []envVar
	if job.RegistryCredentialsSecret != "" {
		mounts = append(mounts, volumeMount{Name: credentialsVolume, MountPath: config.DockerConfigMountPath, ReadOnly: true})
		volumes = append(volumes, volume{Name: credentialsVolume, Secret: &secretVolume{
			SecretName: job.RegistryCredentialsSecret,
			Items:      []keyToPath{{Key: dockerConfigJSON, Path: dockerConfigFile}},
		}})
		env = append(env, envVar{Name: DockerConfigEnv, Value: config.DockerConfigMountPath})
	}
	// spec.job.env (the proxy variables) after the post-renderer's own, in config order.
	for _, e := range job.Env {
		env = append(env, envVar{Name: e.Name, Value: e.Value})
	}
	if v := inj.cfg.Spec.Verification; v != nil {
		// The whole ConfigMap: the refresher trusts every *.pub file, including keys added later.
		mounts = append(mounts, volumeMount{Name: keysVolume, MountPath: config.KeysMountPath, ReadOnly: true})
		volumes = append(volumes, volume{Name: keysVolume, ConfigMap: &configMapVolume{Name: v.KeysConfigMap}})
	}
	var pullSecrets []localObjectReference
	for _, s := range job.ImagePullSecrets {
		pullSecrets = append(pullSecrets, localObjectReference{Name: s})
	}
	yes, no := true, false
	pod := podSpec{
		ServiceAccountName:           name,
		AutomountServiceAccountToken: &yes,
		RestartPolicy:                "Never",
		ImagePullSecrets:             pullSecrets,
		SecurityContext: podSecurityContext{
			RunAsNonRoot:   true,
			RunAsUser:      *job.RunAsUser,
			RunAsGroup:     *job.RunAsUser,
			SeccompProfile: seccompProfile{Type: "RuntimeDefault"},
		},
		Containers: []container{{
			Name:            ContainerName,
			Image:           job.Image,
			ImagePullPolicy: job.ImagePullPolicy,
			Args:            []string{"--config", path.Join(config.MountPath, config.ConfigMapKey)},
			Env:             env,
			Resources:       resources{Requests: job.Resources.Requests, Limits: job.Resources.Limits},
			SecurityContext: containerSecurityContext{
				AllowPrivilegeEscalation: &no,
				ReadOnlyRootFilesystem:   true,
				RunAsNonRoot:             true,
				Capabilities:             capabilities{Drop: []string{"ALL"}},
			},
			VolumeMounts: mounts,
		}},
		Volumes: volumes,
	}
	return cronJob{
		typeMeta: typeMeta{"batch/v1", "CronJob"},
		Metadata: inj.meta(name, nil),
		Spec: cronJobSpec{
			Schedule:                   inj.cfg.Spec.Schedule,
			ConcurrencyPolicy:          "Forbid",
			StartingDeadlineSeconds:    *job.StartingDeadlineSeconds,
			SuccessfulJobsHistoryLimit: *job.SuccessfulJobsHistoryLimit,
			FailedJobsHistoryLimit:     *job.FailedJobsHistoryLimit,
			JobTemplate: jobTemplate{
				Metadata: templateMeta{Labels: podLabels},
				Spec: jobSpec{
					ActiveDeadlineSeconds: *job.ActiveDeadlineSeconds,
					BackoffLimit:          *job.BackoffLimit,
					Template: podTemplate{
						Metadata: templateMeta{Labels: podLabels},
						Spec:     pod,
					},
				},
			},
		},
	}
}

// The injected objects' shapes: the few fields of the Kubernetes types the post-renderer sets,
// in kubectl's field order: the emitter writes these, not the Kubernetes API types (which
// edit.go decodes the rendered objects into), so the injected YAML keeps kubectl's order.
type typeMeta struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
}

type objectMeta struct {
	Name        string            `yaml:"name"`
	Namespace   string            `yaml:"namespace,omitempty"`
	Labels      map[string]string `yaml:"labels,omitempty"`
	Annotations map[string]string `yaml:"annotations,omitempty"`
}

type templateMeta struct {
	Labels map[string]string `yaml:"labels"`
}

type cronJob struct {
	typeMeta `yaml:",inline"`
	Metadata objectMeta  `yaml:"metadata"`
	Spec     cronJobSpec `yaml:"spec"`
}

type cronJobSpec struct {
	Schedule                   string      `yaml:"schedule"`
	ConcurrencyPolicy          string      `yaml:"concurrencyPolicy"`
	StartingDeadlineSeconds    int64       `yaml:"startingDeadlineSeconds"`
	SuccessfulJobsHistoryLimit int32       `yaml:"successfulJobsHistoryLimit"`
	FailedJobsHistoryLimit     int32       `yaml:"failedJobsHistoryLimit"`
	JobTemplate                jobTemplate `yaml:"jobTemplate"`
}

type jobTemplate struct {
	Metadata templateMeta `yaml:"metadata"`
	Spec     jobSpec      `yaml:"spec"`
}

type jobSpec struct {
	ActiveDeadlineSeconds int64       `yaml:"activeDeadlineSeconds"`
	BackoffLimit          int32       `yaml:"backoffLimit"`
	Template              podTemplate `yaml:"template"`
}

type podTemplate struct {
	Metadata templateMeta `yaml:"metadata"`
	Spec     podSpec      `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName           string                 `yaml:"serviceAccountName"`
	AutomountServiceAccountToken *bool                  `yaml:"automountServiceAccountToken,omitempty"`
	RestartPolicy                string                 `yaml:"restartPolicy"`
	ImagePullSecrets             []localObjectReference `yaml:"imagePullSecrets,omitempty"`
	SecurityContext              podSecurityContext     `yaml:"securityContext"`
	Containers                   []container            `yaml:"containers"`
	Volumes                      []volume               `yaml:"volumes"`
}

type localObjectReference struct {
	Name string `yaml:"name"`
}

type podSecurityContext struct {
	RunAsNonRoot   bool           `yaml:"runAsNonRoot"`
	RunAsUser      int64          `yaml:"runAsUser"`
	RunAsGroup     int64          `yaml:"runAsGroup"`
	SeccompProfile seccompProfile `yaml:"seccompProfile"`
}

type seccompProfile struct {
	Type string `yaml:"type"`
}

type container struct {
	Name            string                   `yaml:"name"`
	Image           string                   `yaml:"image"`
	ImagePullPolicy string                   `yaml:"imagePullPolicy"`
	Args            []string                 `yaml:"args"`
	Env             []envVar                 `yaml:"env,omitempty"`
	Resources       resources                `yaml:"resources"`
	SecurityContext containerSecurityContext `yaml:"securityContext"`
	VolumeMounts    []volumeMount            `yaml:"volumeMounts"`
}

type envVar struct {
	Name  string `yaml:"name"`
	Value string `yaml:"value"`
}

type resources struct {
	Requests map[string]string `yaml:"requests,omitempty"`
	Limits   map[string]string `yaml:"limits,omitempty"`
}

type containerSecurityContext struct {
	AllowPrivilegeEscalation *bool        `yaml:"allowPrivilegeEscalation"`
	ReadOnlyRootFilesystem   bool         `yaml:"readOnlyRootFilesystem"`
	RunAsNonRoot             bool         `yaml:"runAsNonRoot"`
	Capabilities             capabilities `yaml:"capabilities"`
}

type capabilities struct {
	Drop []string `yaml:"drop"`
}

type volumeMount struct {
	Name      string `yaml:"name"`
	MountPath string `yaml:"mountPath"`
	ReadOnly  bool   `yaml:"readOnly"`
}

type volume struct {
	Name      string           `yaml:"name"`
	ConfigMap *configMapVolume `yaml:"configMap,omitempty"`
	Secret    *secretVolume    `yaml:"secret,omitempty"`
}

type configMapVolume struct {
	Name  string      `yaml:"name"`
	Items []keyToPath `yaml:"items,omitempty"`
}

type secretVolume struct {
	SecretName string      `yaml:"secretName"`
	Items      []keyToPath `yaml:"items"`
}

type keyToPath struct {
	Key  string `yaml:"key"`
	Path string `yaml:"path"`
}
