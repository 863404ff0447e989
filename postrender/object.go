package postrender

import (
	"fmt"
	"strings"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/manifest"
)

const (
	// ManagedByLabel and ManagedByValue mark every object the post-renderer injects; an object
	// carrying both is recognised as the post-renderer's own, so running it on its own output
	// replaces those objects instead of injecting them twice.
	ManagedByLabel     = manifest.ManagedByLabel
	ManagedByValue     = "image-refresh"
	filenameAnnotation = manifest.FilenameAnnotation
)

// object is what the post-renderer needs to know about one object Helm applies: the stream model's object and
// where it is in the stream. The document itself is not kept: only the few candidates are
// parsed again, as kyaml RNodes, once the config is known.
type object struct {
	segment  int // index of the segment holding the document
	position int // index of the document within its segment
	document int // 1-based position of the document among the stream's documents, for messages
	// segmentDocs is the number of documents in the segment.
	segmentDocs int
	// Object is what the stream model reads of it (manifest.Objects): identity, hook, labels, Helm 4's filename.
	manifest.Object
	// source is Helm 3's "# Source:" comment above the document, if any.
	source string
}

// documentObjects lists the objects Helm applies from one parsed document (manifest.Objects).
func documentObjects(doc *yaml.Node) ([]object, error) {
	objs, err := manifest.Objects(doc)
	if err != nil {
		return nil, err
	}
	out := make([]object, len(objs))
	for i, o := range objs {
		out[i] = object{Object: o}
	}
	return out, nil
}

// decodeObject decodes an object (as documentObjects listed it) from the bytes of its document.
func decodeObject(raw []byte, obj object, into any) error {
	if obj.Item == 0 {
		return contract.Decode(raw, into)
	}
	return contract.DecodeListItem(raw, obj.Item-1, into)
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

// ref names an object the way kubectl does, with its namespace when it has one.
func (o object) ref() string {
	if o.Namespace != "" {
		return fmt.Sprintf("%s %s/%s", o.Kind, o.Namespace, o.Name)
	}
	return fmt.Sprintf("%s %s", o.Kind, o.Name)
}

// where says which document of the stream the object is, with the chart file it came from.
func (o object) where() string {
	var b strings.Builder
	fmt.Fprintf(&b, "document %d", o.document)
	if o.Item > 0 {
		b.WriteString(" at " + manifest.ItemPath(o.Item-1))
	}
	if file := manifest.ChartFile(o.source, o.Filename); file != "" {
		fmt.Fprintf(&b, ", %s", file)
	}
	return b.String()
}

// describe is ref and where together: `Deployment ns/web (document 3, chart/templates/web.yaml)`.
func (o object) describe() string { return fmt.Sprintf("%s (%s)", o.ref(), o.where()) }

// isKind reports whether the object is of a kind, in the API group the contract knows it by.
func (o object) isKind(kind string) bool { return o.IsKind(kind) }

// ownLabelled reports whether the object carries the post-renderer's managed-by label and is a
// document of its own (it never injects lists, so a list item is the chart's). Whether it is
// one the post-renderer injected also depends on its kind and name: see injection.own.
func (o object) ownLabelled() bool { return o.ManagedBy == ManagedByValue && o.Item == 0 }

// sameNamespace matches namespaces as the post-renderer sees them (manifest.Unseen).
func sameNamespace(a, b string) bool { return manifest.Unseen.Same(a, b) }
