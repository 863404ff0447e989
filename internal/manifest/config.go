package manifest

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
)

// ConfigRule is a rule of where a stream carries its refresh config; FindConfig returns the
// first one the stream breaks, and each reader words it.
type ConfigRule int

const (
	// ConfigFound: one usable refresh config, or none at all (Discovery.Config nil).
	ConfigFound ConfigRule = iota
	// ConfigSeveral: more than one ConfigMap labelled image-refresh.io/config: "true"; a release
	// carries exactly one.
	ConfigSeveral
	// ConfigHook: the labelled ConfigMap is a Helm hook (contract.CheckConfigNotHook).
	ConfigHook
	// ConfigUnreadable: it does not decode as a ConfigMap.
	ConfigUnreadable
	// ConfigNoKey: it has no string data under config.ConfigMapKey.
	ConfigNoKey
	// ConfigInvalid: its config fails config.Parse.
	ConfigInvalid
	// ConfigNamespace: the config's metadata.namespace is not the ConfigMap's, where the
	// CronJob could not mount it.
	ConfigNamespace
)

// Candidate is a ConfigMap labelled image-refresh.io/config: "true", as its reader knows it.
type Candidate struct {
	// Hook is its helm.sh/hook annotation, or its list's.
	Hook string
	// Namespace is its namespace.
	Namespace string
	// Load decodes it.
	Load func() (*corev1.ConfigMap, error)
}

// Discovery is where a stream's refresh config is, or the rule it broke.
type Discovery struct {
	Rule ConfigRule
	// Config is the parsed config: nil when the stream has none or it does not parse.
	Config *config.RefreshConfig
	// ConfigMap is the decoded candidate, once loaded.
	ConfigMap *corev1.ConfigMap
	// Violation is ConfigHook's; Err is ConfigUnreadable's or ConfigInvalid's.
	Violation *contract.Violation
	Err       error
}

// FindConfig finds the refresh config among the labelled ConfigMaps of a stream.
func FindConfig(candidates []Candidate, r ReleaseNamespace) Discovery {
	switch len(candidates) {
	case 0:
		return Discovery{}
	case 1:
	default:
		return Discovery{Rule: ConfigSeveral}
	}
	c := candidates[0]
	if v := contract.CheckConfigNotHook(c.Hook); v != nil {
		return Discovery{Rule: ConfigHook, Violation: v}
	}
	cm, err := c.Load()
	if err != nil {
		return Discovery{Rule: ConfigUnreadable, Err: err}
	}
	d := Discovery{ConfigMap: cm}
	data, ok := cm.Data[config.ConfigMapKey]
	if !ok {
		d.Rule = ConfigNoKey
		return d
	}
	if d.Config, d.Err = config.Parse([]byte(data)); d.Err != nil {
		d.Rule, d.Config = ConfigInvalid, nil
		return d
	}
	ns := d.Config.Metadata.Namespace
	if ns != "" && !r.Same(c.Namespace, ns) {
		d.Rule = ConfigNamespace
	}
	return d
}
