package manifest

import "bytes"

// IsDocumentMarker reports whether a line starts a YAML document: "---" at column 0, followed
// by a blank or the end of the line ("---foo" is content).
func IsDocumentMarker(line []byte) bool {
	if len(line) < 3 || line[0] != '-' || line[1] != '-' || line[2] != '-' {
		return false
	}
	if len(line) == 3 {
		return true
	}
	switch line[3] {
	case ' ', '\t', '\r', '\n':
		return true
	}
	return false
}

// Source is the chart file of Helm 3's "# Source: <file>" comment among the comment lines that
// open a document, before its first content line; "" when there is none.
func Source(doc []byte) string {
	for line := range bytes.Lines(doc) {
		text := bytes.TrimSpace(line)
		if len(text) == 0 || IsDocumentMarker(line) {
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

// ChartFile is the chart file a document came from, for messages: Helm 4's filename annotation, by which Helm files
// it after post-rendering, else Helm 3's "# Source:" comment.
func ChartFile(sourceComment, filenameAnnotation string) string {
	if filenameAnnotation != "" {
		return filenameAnnotation
	}
	return sourceComment
}
