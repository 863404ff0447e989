package postrender

import (
	"bytes"
	"errors"
	"fmt"
	"io"

	"sigs.k8s.io/kustomize/kyaml/yaml"

	"github.com/tracebloc/image-refresh/internal/manifest"
)

// segment is a byte range of the input that the YAML parser can decode on its own: it starts at
// a document marker line (or at the start of the stream) and ends before the next one. It usually
// holds exactly one document; it may hold none (comments only) or, when the input uses line
// breaks the splitter does not look for (a lone CR), several.
type segment struct{ start, end int }

// splitSegments cuts the stream before every document marker: a line that starts at column 0
// with "---" followed by a blank or the end of the line. YAML forbids such a line inside any
// node (block scalars of a mapping must be indented, and quoted or flow scalars may not contain
// it), so cutting there never splits a document. Lines such as "---foo" or an indented "---"
// are content. YAML directives ("%YAML", "%TAG") belong to the document that follows them, so a
// segment holding one is not cut from the next.
func splitSegments(in []byte) []segment {
	var segs []segment
	start := 0
	directive := false
	for line := 0; line < len(in); {
		if line > start && manifest.IsDocumentMarker(in[line:]) {
			if directive {
				directive = false
			} else {
				segs = append(segs, segment{start, line})
				start = line
			}
		}
		if in[line] == '%' {
			directive = true
		}
		next := bytes.IndexByte(in[line:], '\n')
		if next < 0 {
			break
		}
		line += next + 1
	}
	if start < len(in) {
		segs = append(segs, segment{start, len(in)})
	}
	return segs
}

// decodeDocuments parses every document of data with the YAML parser kyaml is built on.
// Empty documents (nothing, comments only, or null) are left out, as kio.ByteReader does.
func decodeDocuments(data []byte) ([]*yaml.Node, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var docs []*yaml.Node
	for {
		doc := &yaml.Node{}
		err := dec.Decode(doc)
		if errors.Is(err, io.EOF) {
			return docs, nil
		}
		if err != nil {
			return nil, fmt.Errorf("malformed YAML: %w", err)
		}
		if !isEmptyDocument(doc) {
			docs = append(docs, doc)
		}
	}
}

func isEmptyDocument(doc *yaml.Node) bool {
	if len(doc.Content) == 0 {
		return true
	}
	root := doc.Content[0]
	return root.Kind == yaml.ScalarNode && root.Tag == yaml.NodeTagNull
}
