package postrender

import (
	"bytes"
	"fmt"
	"strings"

	"github.com/tracebloc/image-refresh/refresher/config"
	"github.com/tracebloc/image-refresh/refresher/contract"
	"sigs.k8s.io/kustomize/kyaml/yaml"
)

const (
	// ManagedByLabel and ManagedByValue mark every object the post-renderer injects; an object
	// carrying both is recognised as the post-renderer's own, so running it on its own output
	// replaces those objects instead of injecting them twice.
	ManagedByLabel = "app.kubernetes.io/managed-by"
	ManagedByValue = "image-refresh"
	// filenameAnnotation is the annotation Helm 4 puts on every document it post-renders, to
	// put the documents back into the chart's files afterwards.
	filenameAnnotation = "postrenderer.helm.sh/postrender-filename"
)

// object is what the post-renderer needs to know about one object Helm applies: where it is
// and the few identifying fields. The document itself is not kept: only the few candidates are
// parsed again, as kyaml RNodes, once the config is known.
type object struct {
	segment  int // index of the segment holding the document
	position int // index of the document within its segment
	document int // 1-based position of the document among the stream's documents, for messages
	// segmentDocs is the number of documents in the segment.
	segmentDocs int
	// listItem is 1 + the object's index in its document's items when the document is a list
	// (see listItems); 0 for the document itself.
	listItem int

	apiVersion, kind, name, namespace string
	// configLabel is true for an object labelled image-refresh.io/config: "true".
	configLabel bool
	// managedBy is the app.kubernetes.io/managed-by label.
	managedBy string
	// filename is Helm 4's postrender-filename annotation.
	filename string
	// hook is the helm.sh/hook annotation of the object or, for a list item, of its document:
	// Helm reads hook annotations from whole documents.
	hook string
	// source is Helm 3's "# Source:" comment above the document, if any.
	source string
}

// documentObjects lists the objects Helm applies from one parsed document: the document
// itself, or the items of a list. It refuses documents whose root is not a mapping: Kubernetes
// objects are mappings, and Helm would fail later anyway.
func documentObjects(doc *yaml.Node) ([]object, error) {
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("malformed stream: document is a YAML %s, not a mapping (a Kubernetes object)", nodeKindName(root))
	}
	list := readObject(root)
	items, isList := listItems(root)
	if !isList {
		return []object{list}, nil
	}
	// An item that is an alias of a node another item already stands for is the same object
	// twice (Helm would apply it twice and fail); refusing it also caps what aliases can cost:
	// every object listed is a mapping written once in the input.
	seen := make(map[*yaml.Node]int, len(items))
	var out []object
	for i, item := range items {
		if item.Kind != yaml.MappingNode {
			continue // Helm rejects it
		}
		if j, dup := seen[item]; dup {
			return nil, fmt.Errorf("malformed stream: items[%d] is an alias of the same object as items[%d]; Helm would apply that object twice", i, j)
		}
		seen[item] = i
		obj := readObject(item)
		if obj.kind == "" && obj.apiVersion == "" {
			// cli-runtime gives an item without kind and apiVersion the list's kind, less
			// "List", and the list's apiVersion.
			obj.kind, obj.apiVersion = strings.TrimSuffix(list.kind, "List"), list.apiVersion
		}
		if obj.hook == "" {
			obj.hook = list.hook
		}
		obj.listItem = i + 1
		out = append(out, obj)
	}
	return out, nil
}

// listItems reports whether a document is a list and returns its items, aliases resolved. It
// follows Helm's kube client, which applies a list's items instead of the list (cli-runtime's
// unstructured decoder and Flatten): a document with an "items" field is a list, whatever its
// kind (List, ConfigMapList, ...). Helm rejects lists in lists, so an item is never a list.
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

// decodeObject decodes an object (as documentObjects listed it) from the bytes of its document.
func decodeObject(raw []byte, obj object, into any) error {
	if obj.listItem == 0 {
		return contract.Decode(raw, into)
	}
	return contract.DecodeListItem(raw, obj.listItem-1, into)
}

// encodeDocument encodes a parsed document again, anchors, merge keys and duplicate keys as
// they were written.
func encodeDocument(doc *yaml.Node) ([]byte, error) {
	data, err := yaml.Marshal(doc)
	if err != nil {
		return nil, fmt.Errorf("encoding a document: %w", err)
	}
	return data, nil
}

// readObject takes the identifying fields of one mapping.
// (kyaml's metadata getters are not used here: they panic on a metadata that is not a mapping.)
func readObject(m *yaml.Node) object {
	obj := object{apiVersion: scalarField(m, "apiVersion"), kind: scalarField(m, "kind")}
	if meta := field(m, "metadata"); meta != nil {
		obj.name = scalarField(meta, "name")
		obj.namespace = scalarField(meta, "namespace")
		if labels := field(meta, "labels"); labels != nil {
			obj.configLabel = scalarField(labels, config.ConfigLabel) == "true"
			obj.managedBy = scalarField(labels, ManagedByLabel)
		}
		if annotations := field(meta, "annotations"); annotations != nil {
			obj.filename = scalarField(annotations, filenameAnnotation)
			obj.hook = scalarField(annotations, contract.HelmHookAnnotation)
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

// sourceComment finds Helm 3's "# Source: <file>" comment among the comment lines that open a
// segment, before its first content line.
func sourceComment(seg []byte) string {
	for line := range bytes.Lines(seg) {
		text := bytes.TrimSpace(line)
		if len(text) == 0 || isDocumentMarker(line) {
			continue
		}
		if text[0] != '#' {
			return ""
		}
		if rest, ok := bytes.CutPrefix(text, []byte("# Source: ")); ok {
			return string(bytes.TrimSpace(rest))
		}
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

// ref names an object the way kubectl does, with its namespace when it has one.
func (o object) ref() string {
	if o.namespace != "" {
		return fmt.Sprintf("%s %s/%s", o.kind, o.namespace, o.name)
	}
	return fmt.Sprintf("%s %s", o.kind, o.name)
}

// where says which document of the stream the object is, with the chart file it came from.
func (o object) where() string {
	var b strings.Builder
	fmt.Fprintf(&b, "document %d", o.document)
	if o.listItem > 0 {
		fmt.Fprintf(&b, " at items[%d]", o.listItem-1)
	}
	switch {
	case o.filename != "":
		fmt.Fprintf(&b, ", %s", o.filename)
	case o.source != "":
		fmt.Fprintf(&b, ", %s", o.source)
	}
	return b.String()
}

// describe is ref and where together: `Deployment ns/web (document 3, chart/templates/web.yaml)`.
func (o object) describe() string { return fmt.Sprintf("%s (%s)", o.ref(), o.where()) }

// isKind reports whether the object is of a kind, in the API group the contract knows it by.
func (o object) isKind(kind string) bool { return contract.IsKind(o.apiVersion, o.kind, kind) }

// ownLabelled reports whether the object carries the post-renderer's managed-by label and is a
// document of its own (it never injects lists, so a list item is the chart's). Whether it is
// one the post-renderer injected also depends on its kind and name: see injection.own.
func (o object) ownLabelled() bool { return o.managedBy == ManagedByValue && o.listItem == 0 }

// sameNamespace matches an object against a namespace the config names. An object without a
// namespace is installed into the release namespace, which the post-renderer cannot see, so
// an empty namespace on either side matches.
func sameNamespace(a, b string) bool { return a == "" || b == "" || a == b }
