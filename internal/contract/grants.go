package contract

import (
	"slices"
	"strings"
)

// EventVerbs are what the refresher's Role grants on events.k8s.io Events (no resourceNames: a
// new Event's name is not known to the authorizer): create an Event, and get and patch one to
// count a repeating outcome in its series instead of a new Event per tick.
var EventVerbs = []string{"create", "get", "patch"}

// TargetVerbs are what the refresher's Role grants on its targets, by name: read one, patch one.
var TargetVerbs = []string{"get", "patch"}

// Grant is what the refresher's Role in one namespace allows: TargetVerbs on the targets there, by resource and
// name, and EventVerbs on Events (an Event lives in the namespace of the object it is about).
type Grant struct {
	// Namespace is resolved; "" is the release namespace.
	Namespace string
	// Targets are the target names per resource, in config order.
	Targets []ResourceNames
}

// ResourceNames are the names of one resource of the apps group a Role grants TargetVerbs on.
type ResourceNames struct {
	Kind, Resource string
	Names          []string
}

// Resource is the API resource of a target kind: deployments, daemonsets.
func Resource(kind string) string { return strings.ToLower(kind) + "s" }

// Grants are the Roles the refresher needs: one in roleNamespace, where it runs (first, even without a target
// there: its RoleBinding is the one chartcheck and the guard start from), then one per other namespace with a
// target, in config order.
func Grants(targets []Target, roleNamespace string) []Grant {
	grants := []Grant{{Namespace: roleNamespace}}
	for _, t := range targets {
		i := slices.IndexFunc(grants, func(g Grant) bool { return g.Namespace == t.Key.Namespace })
		if i < 0 {
			grants = append(grants, Grant{Namespace: t.Key.Namespace})
			i = len(grants) - 1
		}
		g := &grants[i]
		resource := Resource(t.Key.Kind)
		j := slices.IndexFunc(g.Targets, func(r ResourceNames) bool { return r.Resource == resource })
		if j < 0 {
			g.Targets = append(g.Targets, ResourceNames{Kind: t.Key.Kind, Resource: resource})
			j = len(g.Targets) - 1
		}
		if r := &g.Targets[j]; !slices.Contains(r.Names, t.Key.Name) {
			r.Names = append(r.Names, t.Key.Name)
		}
	}
	return grants
}
