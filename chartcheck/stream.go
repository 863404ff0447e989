// Package chartcheck proves that a rendered release keeps the image-refresh contract. It renders
// a chart in-process with the Helm v3 SDK, runs the image-refresh post-renderer on it, and
// re-derives from the rendered stream alone everything the refresher will rely on: it trusts
// neither the chart nor the post-renderer.
package chartcheck

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"

	contract "github.com/tracebloc/image-refresh/internal/contract"
	"github.com/tracebloc/image-refresh/internal/manifest"
)

// document is one object of a rendered stream.
type document struct {
	// Index is the 1-based position among the stream's non-empty documents.
	Index int
	// Item is the object's path inside a List document ("items[0]"), empty for a document.
	Item       string
	Source     string
	APIVersion string
	Kind       string
	Name       string
	Namespace  string
	Labels     map[string]string
	// Hook is the helm.sh/hook annotation of the object or, for a list item, of its list:
	// Helm reads hook annotations from whole documents.
	Hook string
	Raw  []byte
}

// String names the document the way every finding does:
// `Deployment "stg-jobs-manager" (document 4, client/templates/deployment.yaml)`.
func (d *document) String() string {
	if d == nil {
		return "stream"
	}
	where := d.location()
	if d.Source != "" {
		where += ", " + d.Source
	}
	return fmt.Sprintf("%s %q (%s)", d.Kind, d.Name, where)
}

// Decode unmarshals the document into a typed object (appsv1.Deployment, batchv1.CronJob, ...)
// the way Kubernetes decodes it (contract.Decode: aliases and merge keys resolved, the last of
// duplicate keys wins, field names case-sensitive).
func (d *document) Decode(into any) error {
	if err := contract.Decode(d.Raw, into); err != nil {
		return fmt.Errorf("decoding %s: %w", d, err)
	}
	return nil
}

// stream is a parsed multi-document manifest: its objects, Lists flattened.
type stream struct {
	Docs []*document
}

type objectHeader struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Metadata   struct {
		Name        string            `json:"name"`
		Namespace   string            `json:"namespace"`
		Labels      map[string]string `json:"labels"`
		Annotations map[string]string `json:"annotations"`
	} `json:"metadata"`
}

// parseStream splits a rendered stream into objects. Documents holding only comments or
// whitespace are dropped; anything else must be a Kubernetes object with a kind. A List (any
// object with a top-level items field) stands for its items (manifest.ItemOf). Helm refuses a
// List nested in a List (manifest.Objects); its items are checked all the same, so that none
// goes unseen.
func parseStream(data []byte) (*stream, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	s := &stream{}
	for index := 1; ; {
		chunk, err := reader.Read()
		if errors.Is(err, io.EOF) {
			return s, nil
		}
		if err != nil {
			return nil, fmt.Errorf("reading document %d of the stream: %w", index, err)
		}
		if isBlank(chunk) {
			continue
		}
		if err := s.add(&document{Index: index, Source: manifest.Source(chunk), Raw: chunk}, nil); err != nil {
			return nil, err
		}
		index++
	}
}

// add reads an object's header and appends it, or, for a List, its items; list is the List d
// is an item of.
func (s *stream) add(d *document, list *manifest.Object) error {
	var header objectHeader
	if err := yaml.Unmarshal(d.Raw, &header); err != nil {
		return fmt.Errorf("%s: not a Kubernetes object: %w", d.position(), err)
	}
	obj := manifest.Object{APIVersion: header.APIVersion, Kind: header.Kind,
		Hook: header.Metadata.Annotations[contract.HelmHookAnnotation]}
	if list != nil {
		obj = manifest.ItemOf(*list, obj)
	}
	if obj.Kind == "" {
		return fmt.Errorf("%s: no kind", d.position())
	}
	var items struct {
		Items json.RawMessage `json:"items"`
	}
	if err := yaml.Unmarshal(d.Raw, &items); err != nil {
		return fmt.Errorf("%s: %w", d.position(), err)
	}
	// Any items field makes a List, as cli-runtime's decoder reads it (manifest.Objects): items: null is an empty
	// one, whose document applies nothing.
	if items.Items != nil {
		var raws []json.RawMessage
		if err := json.Unmarshal(items.Items, &raws); err != nil {
			return fmt.Errorf("%s: items is not a list, which Helm refuses: %w", d.position(), err)
		}
		for i, raw := range raws {
			itemPath := manifest.ItemPath(i)
			if d.Item != "" {
				itemPath = d.Item + "." + itemPath
			}
			if err := s.add(&document{Index: d.Index, Item: itemPath, Source: d.Source, Raw: raw}, &obj); err != nil {
				return err
			}
		}
		return nil
	}
	d.Source = manifest.ChartFile(d.Source, header.Metadata.Annotations[manifest.FilenameAnnotation])
	d.APIVersion, d.Kind, d.Hook = obj.APIVersion, obj.Kind, obj.Hook
	d.Name, d.Namespace, d.Labels = header.Metadata.Name, header.Metadata.Namespace, header.Metadata.Labels
	s.Docs = append(s.Docs, d)
	return nil
}

// location is "document 3", or "document 3 items[0]" for an item of a List.
func (d *document) location() string {
	if d.Item == "" {
		return fmt.Sprintf("document %d", d.Index)
	}
	return fmt.Sprintf("document %d %s", d.Index, d.Item)
}

// position names a document before its kind is known: "document 3 items[0] (c/templates/x.yaml)".
func (d *document) position() string { return d.location() + sourceSuffix(d.Source) }

func sourceSuffix(source string) string {
	if source == "" {
		return ""
	}
	return " (" + source + ")"
}

func isBlank(chunk []byte) bool {
	for line := range strings.Lines(string(chunk)) {
		trimmed := strings.TrimSpace(line)
		if trimmed != "" && trimmed != "---" && !strings.HasPrefix(trimmed, "#") {
			return false
		}
	}
	return true
}

// clusterScoped are the common kinds without a namespace; every other kind is namespaced.
var clusterScoped = map[string]bool{
	"Namespace": true, "Node": true, "PersistentVolume": true, "ClusterRole": true, "ClusterRoleBinding": true,
	"CustomResourceDefinition": true, "StorageClass": true, "PriorityClass": true, "IngressClass": true,
	"RuntimeClass": true, "CSIDriver": true, "APIService": true,
	"MutatingWebhookConfiguration": true, "ValidatingWebhookConfiguration": true,
	"ValidatingAdmissionPolicy": true, "ValidatingAdmissionPolicyBinding": true,
}

// Group is the document's API group, "" for the core group (apiVersion "v1").
func (d *document) Group() string {
	return contract.Group(d.APIVersion)
}

// isKind reports whether the document is of a kind, in the group the checks know it by.
func (d *document) isKind(kind string) bool { return d.model().IsKind(kind) }

// model is the document as the stream model knows it, for its lookups.
func (d *document) model() manifest.Object {
	return manifest.Object{APIVersion: d.APIVersion, Kind: d.Kind, Name: d.Name, Namespace: d.Namespace}
}

// DefaultNamespace puts every namespaced object without a namespace into namespace, as Helm's
// kube client does with the release namespace when it applies the stream.
func (s *stream) DefaultNamespace(namespace string) {
	for _, d := range s.Docs {
		if d.Namespace == "" && !clusterScoped[d.Kind] {
			d.Namespace = namespace
		}
	}
}

// Find returns the documents of a kind, namespace and name; namespaces are the stream's after
// DefaultNamespace (manifest.Defaulted).
func (s *stream) Find(kind, namespace, name string) []*document {
	return manifest.Find(s.Docs, (*document).model, kind, name, namespace, manifest.Defaulted)
}

// OfKind returns the documents of one kind, in stream order.
func (s *stream) OfKind(kind string) []*document {
	var out []*document
	for _, d := range s.Docs {
		if d.isKind(kind) {
			out = append(out, d)
		}
	}
	return out
}
