// Package postrender is the Helm post-renderer of image-refresh: it reads a rendered release,
// finds the refresh config (a labelled ConfigMap in the stream, or --config) and appends the
// machinery that keeps floating image tags fresh: a ServiceAccount, a Role limited to the
// target Deployments, a RoleBinding and the CronJob that runs the refresher. It refuses
// configs that cannot work against the release, naming the image, the document and the fix.
//
// The stream is handled without a kyaml round-trip: it is cut on document markers, every
// document is parsed once to validate it and read its kind, name and labels, only the few
// candidates (the config ConfigMap, the target Deployments, the keys ConfigMap) are decoded again,
// and every other document is copied to the output byte for byte. A list document (List,
// ConfigMapList, ...) stands for its items, which is what Helm applies.
package postrender

import (
	"bytes"
	"reflect"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/manifest"
)

// Options configure Render.
type Options struct {
	// Config is the refresh config from --config; nil means "look for the labelled ConfigMap
	// in the stream".
	Config *config.RefreshConfig
	// AllowExternalKeys declares spec.verification.keysConfigMap to exist in the cluster
	// already: a release that does not render it is not refused (--allow-external-keys).
	AllowExternalKeys bool
	// Warn, when set, receives each warning about a release that is rendered all the same: the
	// config's deprecated fields (config.Deprecations), and a CronJob or Job of the release
	// that runs helm upgrade without the post-renderer (contract.RuleInClusterUpgrade).
	Warn func(message string)
}

// Render post-renders one release stream. On error it returns nil output.
func Render(in []byte, opts Options) ([]byte, error) {
	if len(in) == 0 {
		return []byte{}, nil
	}
	s, err := scan(in)
	if err != nil {
		return nil, err
	}
	e, err := newEdit(s.objects, opts, s.load)
	if err != nil {
		return nil, err
	}
	return s.emit(e)
}

// PostRenderer runs Render over Helm's buffer; it satisfies Helm's postrender.PostRenderer
// (v3) and postrenderer.PostRenderer (v4) interfaces without importing Helm.
type PostRenderer struct {
	opts Options
}

// New returns a Helm post-renderer over Render.
func New(opts Options) *PostRenderer { return &PostRenderer{opts: opts} }

// Run post-renders Helm's rendered manifests.
func (p *PostRenderer) Run(renderedManifests *bytes.Buffer) (*bytes.Buffer, error) {
	out, err := Render(renderedManifests.Bytes(), p.opts)
	if err != nil {
		return nil, err
	}
	return bytes.NewBuffer(out), nil
}

// emptyResult is written instead of nothing when every document of a non-empty input was the
// post-renderer's own and is no longer wanted: Helm 4 treats empty output as a failure.
const emptyResult = "# image-refresh: every image is pinned; nothing to inject\n"

// scanned is the input cut into segments, with the identifying fields of every document.
type scanned struct {
	in       []byte
	segments []segment
	objects  []object
}

// scan parses every document once, in parallel: the parse is both the syntax check and the
// classification. The parsed trees are dropped straight away so memory stays flat.
func scan(in []byte) (*scanned, error) {
	segs := splitSegments(in)
	perSegment := make([][]object, len(segs))
	documents := make([]int, len(segs))
	errs := make([]error, len(segs))
	forEachParallel(len(segs), func(i int) {
		data := in[segs[i].start:segs[i].end]
		docs, err := decodeDocuments(data)
		if err != nil {
			errs[i] = err
			return
		}
		source := ""
		if len(docs) > 0 {
			source = manifest.Source(data)
		}
		for j, doc := range docs {
			objs, err := documentObjects(doc)
			if err != nil {
				errs[i] = err
				return
			}
			for _, obj := range objs {
				obj.segment, obj.position, obj.document, obj.source = i, j, j, source
				perSegment[i] = append(perSegment[i], obj)
			}
		}
		documents[i] = len(docs)
	})
	s := &scanned{in: in, segments: segs}
	documentsBefore := 0
	for i, seg := range segs {
		if errs[i] != nil {
			where := ""
			if src := manifest.Source(in[seg.start:seg.end]); src != "" {
				where = ", " + src
			}
			return nil, refuse(ReasonMalformedStream,
				"document %d (starting at line %d of the input%s; the parser counts lines from there): %v; fix the template that "+
					"renders it (`helm template` without the post-renderer shows it)",
				documentsBefore+1, 1+bytes.Count(in[:seg.start], []byte("\n")), where, errs[i])
		}
		for _, obj := range perSegment[i] {
			obj.document += documentsBefore + 1
			obj.segmentDocs = documents[i]
			s.objects = append(s.objects, obj)
		}
		documentsBefore += documents[i]
	}
	return s, nil
}

// minSegmentsPerWorker keeps small streams on one goroutine, where starting workers would cost
// more than it saves.
const minSegmentsPerWorker = 64

func forEachParallel(n int, fn func(i int)) {
	workers := min(runtime.GOMAXPROCS(0), (n+minSegmentsPerWorker-1)/minSegmentsPerWorker)
	if workers <= 1 {
		for i := range n {
			fn(i)
		}
		return
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				fn(i)
			}
		})
	}
	wg.Wait()
}

// load decodes one candidate object the way Kubernetes does (contract.Decode) from the bytes of
// its document: the segment itself when it holds only that document, else the document
// re-encoded from its parse.
func (s *scanned) load(obj object, into any) error {
	seg := s.segments[obj.segment]
	raw := s.in[seg.start:seg.end]
	if obj.segmentDocs != 1 {
		docs, err := decodeDocuments(raw)
		if err != nil {
			return err
		}
		if raw, err = encodeDocument(docs[obj.position]); err != nil {
			return err
		}
	}
	return decodeObject(raw, obj, into)
}

// emit copies every kept segment verbatim and appends the injected documents.
func (s *scanned) emit(e *edit) ([]byte, error) {
	dropped := make([]int, len(s.segments))
	total := make([]int, len(s.segments))
	for i, obj := range s.objects {
		total[obj.segment]++
		if e.drop[i] {
			dropped[obj.segment]++
		}
	}
	out := make([]byte, 0, len(s.in)+len(e.inject)+1)
	for i, seg := range s.segments {
		if dropped[i] > 0 && dropped[i] < total[i] {
			obj := s.objects[firstObjectOf(s.objects, i)]
			return nil, refuse(ReasonMalformedStream,
				"%s shares its document section with other documents, so the post-renderer cannot replace the object it injected "+
					"earlier; put each object after its own '---' line",
				obj.describe())
		}
		if dropped[i] == 0 {
			out = append(out, s.in[seg.start:seg.end]...)
		}
	}
	lineBreak := lineBreakOf(s.in)
	if len(e.inject) > 0 {
		if len(out) > 0 && out[len(out)-1] != '\n' {
			finalBreak := lineBreak
			if out[len(out)-1] == '\r' {
				finalBreak = "\n" // completes the CR into a CRLF
			}
			if err := s.checkFinalLineBreak(finalBreak); err != nil {
				return nil, err
			}
			out = append(out, finalBreak...)
		}
		if lineBreak == "\n" {
			out = append(out, e.inject...)
		} else {
			// The injected YAML has no CR of its own: the encoder escapes it in strings.
			out = append(out, bytes.ReplaceAll(e.inject, []byte("\n"), []byte(lineBreak))...)
		}
	}
	if len(out) == 0 {
		out = append(out, strings.TrimSuffix(emptyResult, "\n")+lineBreak...)
	}
	return out, nil
}

func firstObjectOf(objects []object, segment int) int {
	for i, obj := range objects {
		if obj.segment == segment {
			return i
		}
	}
	return 0
}

// lineBreakOf is the line break the injected documents use: CRLF when every line break of the
// input is one, so the output does not mix line endings; LF otherwise.
func lineBreakOf(in []byte) string {
	if n := bytes.Count(in, []byte("\n")); n > 0 && bytes.Count(in, []byte("\r\n")) == n {
		return "\r\n"
	}
	return "\n"
}

// checkFinalLineBreak makes sure the line break added before the injected documents does not
// change the last document, which it would when the input ends inside a block scalar that
// keeps its trailing line breaks ("|+") without a final newline.
func (s *scanned) checkFinalLineBreak(lineBreak string) error {
	last := s.segments[len(s.segments)-1]
	data := s.in[last.start:last.end]
	before, err := decodeDocuments(data)
	if err != nil {
		return err
	}
	after, err := decodeDocuments(append(bytes.Clone(data), lineBreak...))
	if err != nil || !reflect.DeepEqual(before, after) {
		return refuse(ReasonMalformedStream,
			"the input ends without a final newline inside a value that keeps trailing newlines, so appending the "+
				"image-refresh objects would change it; end the input with a newline")
	}
	return nil
}
