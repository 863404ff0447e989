package contract

import "strings"

// kindGroups are the API groups of the kinds the contract reads: an object of another group
// with the same kind (a CRD named Deployment in example.com) is another resource and must not
// stand in for it.
var kindGroups = map[string]string{
	"ConfigMap":          "",
	"Secret":             "",
	"ServiceAccount":     "",
	"Deployment":         "apps",
	"DaemonSet":          "apps",
	"CronJob":            "batch",
	"Role":               "rbac.authorization.k8s.io",
	"RoleBinding":        "rbac.authorization.k8s.io",
	"ClusterRole":        "rbac.authorization.k8s.io",
	"ClusterRoleBinding": "rbac.authorization.k8s.io",

	"ValidatingAdmissionPolicy":        "admissionregistration.k8s.io",
	"ValidatingAdmissionPolicyBinding": "admissionregistration.k8s.io",
}

// StatusMaxBytes bounds an image's status annotation (image-refresh.io/status-<image>): the
// refresher ignores a larger one, and the admission guard lets it write no larger one.
const StatusMaxBytes = 4096

// Group is the API group of an apiVersion, "" for the core group ("v1").
func Group(apiVersion string) string {
	if g, _, found := strings.Cut(apiVersion, "/"); found {
		return g
	}
	return ""
}

// IsKind reports whether an object of apiVersion and kind is a want, in the group the contract
// knows want by (any group for a kind it does not know).
func IsKind(apiVersion, kind, want string) bool {
	if kind != want {
		return false
	}
	group, known := kindGroups[want]
	return !known || Group(apiVersion) == group
}
