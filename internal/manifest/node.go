package manifest

import (
	"fmt"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/contract"
)

// Objects lists the objects Helm applies from one parsed document: the document itself, or
// the items of a list. It refuses a document whose root is not a mapping: Kubernetes objects
// are mappings, and Helm would fail later anyway.
//
// Helm's kube client applies a list's items instead of the list (cli-runtime's unstructured
// decoder and Flatten): a document with an "items" field is a list, whatever its kind (List,
// ConfigMapList, ...). Flatten goes one level down: an item that is a list itself fails the
// install ("not a list: no Items field"), so it is listed as one object, with List set.
func Objects(doc *yaml.Node) ([]Object, error) {
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("malformed stream: document is a YAML %s, not a mapping (a Kubernetes object)",
			nodeKindName(root))
	}
	list := Read(root)
	items, isList := listItems(root)
	if !isList {
		return []Object{list}, nil
	}
	// An item that is an alias of a node another item already stands for is the same object
	// twice (Helm would apply it twice and fail); refusing it also caps what aliases can cost:
	// every object listed is a mapping written once in the input.
	seen := make(map[*yaml.Node]int, len(items))
	var out []Object
	for i, item := range items {
		if item.Kind != yaml.MappingNode {
			continue // Helm rejects it
		}
		if j, dup := seen[item]; dup {
			return nil, fmt.Errorf("malformed stream: items[%d] is an alias of the same object as items[%d]; "+
				"Helm would apply that object twice", i, j)
		}
		seen[item] = i
		obj := ItemOf(list, Read(item))
		obj.Item = i + 1
		_, obj.List = listItems(item)
		out = append(out, obj)
	}
	return out, nil
}

// listItems reports whether a mapping is a list and returns its items, aliases resolved.
func listItems(root *yaml.Node) ([]*yaml.Node, bool) {
	items := field(root, "items")
	if items == nil {
		return nil, false
	}
	var out []*yaml.Node
	if items.Kind == yaml.SequenceNode {
		for _, item := range items.Content {
			out = append(out, resolveAlias(item))
		}
	}
	return out, true
}

// Read takes the identifying fields of one mapping.
// (kyaml's metadata getters are not used here: they panic on a metadata that is not a mapping.)
func Read(m *yaml.Node) Object {
	obj := Object{APIVersion: scalarField(m, "apiVersion"), Kind: scalarField(m, "kind")}
	if meta := field(m, "metadata"); meta != nil {
		obj.Name = scalarField(meta, "name")
		obj.Namespace = scalarField(meta, "namespace")
		if labels := field(meta, "labels"); labels != nil {
			obj.ConfigLabel = scalarField(labels, config.ConfigLabel) == "true"
			obj.ManagedBy = scalarField(labels, ManagedByLabel)
		}
		if annotations := field(meta, "annotations"); annotations != nil {
			obj.Filename = scalarField(annotations, FilenameAnnotation)
			obj.Hook = scalarField(annotations, contract.HelmHookAnnotation)
		}
	}
	return obj
}

// field returns the value of key in a mapping node, or nil, as Kubernetes reads it
// (sigs.k8s.io/yaml, goyaml.v2): aliases followed, "<<" merge keys applied at their position, and
// of duplicate keys the last wins. Of several mappings merged by one "<<", the first that has the
// key wins.
func field(m *yaml.Node, key string) *yaml.Node {
	return fieldDepth(m, key, 0)
}

// maxMergeDepth bounds merge keys nested in merged mappings.
const maxMergeDepth = 8

func fieldDepth(m *yaml.Node, key string, depth int) *yaml.Node {
	m = resolveAlias(m)
	if m == nil || m.Kind != yaml.MappingNode || depth > maxMergeDepth {
		return nil
	}
	var found *yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		switch {
		case k.Value == key && k.Tag != "!!merge":
			found = resolveAlias(v)
		case k.Value == "<<" && (k.Tag == "!!merge" || k.Tag == ""):
			merged := resolveAlias(v)
			sources := []*yaml.Node{merged}
			if merged != nil && merged.Kind == yaml.SequenceNode {
				sources = merged.Content
			}
			for _, src := range sources {
				if f := fieldDepth(src, key, depth+1); f != nil {
					found = f
					break
				}
			}
		}
	}
	return found
}

func resolveAlias(n *yaml.Node) *yaml.Node {
	if n != nil && n.Kind == yaml.AliasNode {
		return n.Alias
	}
	return n
}

// scalarField is the value of a scalar field; "" when absent, null or not a scalar.
func scalarField(m *yaml.Node, key string) string {
	if v := field(m, key); v != nil && v.Kind == yaml.ScalarNode && v.Tag != yaml.NodeTagNull {
		return v.Value
	}
	return ""
}

func nodeKindName(n *yaml.Node) string {
	switch n.Kind {
	case yaml.SequenceNode:
		return "sequence"
	case yaml.ScalarNode:
		return "scalar"
	case yaml.AliasNode:
		return "alias"
	default:
		return "node"
	}
}
