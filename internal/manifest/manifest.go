// Package manifest is the model of a rendered release stream, Helm's "manifest": what `helm
// template` prints and a post-renderer reads. It holds the stream's rules that do not depend on
// who reads it: the chart file a document came from ("# Source:", Helm 4's filename
// annotation), the objects Helm applies from a document (a list stands for its items), what an
// item inherits from its list, lookup by kind, name and namespace, and where the refresh config
// is. The post-renderer reads objects from the yaml.Node trees it parses (Objects); chartcheck
// decodes documents as the API server does and applies ItemOf to the items it finds.
package manifest

import (
	"fmt"
	"slices"
	"strings"

	"github.com/tracebloc/image-refresh/internal/contract"
)

const (
	// FilenameAnnotation is the annotation Helm 4 puts on every document it post-renders, to
	// put the documents back into the chart's files afterwards.
	FilenameAnnotation = "postrenderer.helm.sh/postrender-filename"
	// ManagedByLabel is Kubernetes' recommended label for the tool that manages an object.
	ManagedByLabel = "app.kubernetes.io/managed-by"
)

// Object is what a stream says about one object Helm applies: the identifying fields only.
type Object struct {
	APIVersion, Kind, Name, Namespace string
	// Hook is the helm.sh/hook annotation of the object or, for a list item, of its list (see
	// ItemOf).
	Hook string
	// Filename is the object's own FilenameAnnotation.
	Filename string
	// ConfigLabel is true for an object labelled image-refresh.io/config: "true".
	ConfigLabel bool
	// ManagedBy is the ManagedByLabel.
	ManagedBy string
	// Item is 1 + the object's index in its list's items; 0 for a document.
	Item int
	// List is true for an item that has an items field itself: Helm refuses the stream (see
	// Objects), so no object of it is applied.
	List bool
}

// ItemOf is the object Helm applies for an item of a list. cli-runtime's unstructured decoder
// gives an item without kind and apiVersion the list's kind, less "List", and the list's
// apiVersion. Helm sorts hooks by whole documents, so a hook list makes every item a hook; an
// item's own hook annotation, which Helm does not read, is kept as what the template meant.
func ItemOf(list, item Object) Object {
	if item.Kind == "" && item.APIVersion == "" {
		item.Kind, item.APIVersion = strings.TrimSuffix(list.Kind, "List"), list.APIVersion
	}
	if item.Hook == "" {
		item.Hook = list.Hook
	}
	return item
}

// ItemPath is where items[index] of a list is, as messages name it.
func ItemPath(index int) string { return fmt.Sprintf("items[%d]", index) }

// IsKind reports whether the object is of a kind, in the API group the contract knows it by.
func (o Object) IsKind(kind string) bool { return contract.IsKind(o.APIVersion, o.Kind, kind) }

// ReleaseNamespace is what a reader knows of the namespace Helm installs the release into.
type ReleaseNamespace int

const (
	// Unseen: the post-renderer's view. An object without a namespace is installed into the
	// release namespace, which it cannot see, so "" matches any namespace.
	Unseen ReleaseNamespace = iota
	// Defaulted: chartcheck's view, every namespaced object put into the release namespace
	// (or left without one where it knows none): namespaces match exactly.
	Defaulted
)

// Same reports whether two namespaces may be one.
func (r ReleaseNamespace) Same(a, b string) bool {
	return a == b || r == Unseen && (a == "" || b == "")
}

// Matches reports whether the object is of a kind (in the contract's API group) and name, in a
// namespace.
func (o Object) Matches(kind, name, namespace string, r ReleaseNamespace) bool {
	return o.IsKind(kind) && o.Name == name && r.Same(o.Namespace, namespace)
}

// Find returns the objects that match a kind, name and namespace (Matches); of several, an
// exact namespace match wins.
func Find[T any](objects []T, object func(T) Object, kind, name, namespace string, r ReleaseNamespace) []T {
	var found, exact []T
	for _, t := range objects {
		o := object(t)
		if o.Matches(kind, name, namespace, r) {
			found = append(found, t)
			if o.Namespace == namespace {
				exact = append(exact, t)
			}
		}
	}
	if len(found) > 1 && len(exact) > 0 {
		return slices.Clip(exact)
	}
	return found
}
