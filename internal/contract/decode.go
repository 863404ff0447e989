package contract

import (
	stdjson "encoding/json"
	"fmt"

	"sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// MaxExpansion bounds how much larger than its YAML an object may become once its aliases and
// merge keys are expanded.
const MaxExpansion = 10

// Decode reads one rendered object (a YAML or JSON document) into a Kubernetes API type the way
// Helm's kube client and the API server read it: sigs.k8s.io/yaml converts YAML to JSON
// (goyaml.v2: anchors, aliases and "<<" merge keys resolved; of duplicate mapping keys the last
// wins, and a merge key after an explicit key overrides it, as goyaml.v2 does), then the JSON is
// decoded case-sensitively, as the API server does (sigs.k8s.io/json). An object whose expanded
// form exceeds MaxExpansion times its size is refused (alias amplification).
func Decode(raw []byte, into any) error {
	j, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return fmt.Errorf("converting YAML to JSON: %w", err)
	}
	if limit := MaxExpansion*len(raw) + 1024; len(j) > limit {
		return fmt.Errorf("aliases expand the object from %d to %d bytes, more than %d times its size", len(raw), len(j),
			MaxExpansion)
	}
	if err := json.UnmarshalCaseSensitivePreserveInts(j, into); err != nil {
		return fmt.Errorf("decoding: %w", err)
	}
	return nil
}

// DecodeListItem decodes items[i] of a list document (any document with an "items" array, as
// Helm's kube client flattens it), after resolving the whole document as Decode does: an item
// may use anchors defined elsewhere in it.
func DecodeListItem(raw []byte, i int, into any) error {
	var list struct {
		Items []stdjson.RawMessage `json:"items"`
	}
	if err := Decode(raw, &list); err != nil {
		return err
	}
	if i < 0 || i >= len(list.Items) {
		return fmt.Errorf("the list has no items[%d]", i)
	}
	if err := json.UnmarshalCaseSensitivePreserveInts(list.Items[i], into); err != nil {
		return fmt.Errorf("decoding items[%d]: %w", i, err)
	}
	return nil
}
