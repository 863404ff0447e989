package postrender

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
)

// aliasedList is one List document whose n items are all the alias *m of one ConfigMap.
func aliasedList(n int) []byte {
	var b bytes.Buffer
	b.WriteString("apiVersion: v1\nkind: List\nx: &m {apiVersion: v1, kind: ConfigMap, metadata: {name: m, labels: {a: " +
		"b}}, data: {k: v}}\nitems:\n")
	for range n {
		b.WriteString("- *m\n")
	}
	return b.Bytes()
}

// plainList is a List document of the same size as aliasedList(n) whose n items are scalars
// (which Helm rejects and the post-renderer skips): the cost of parsing n tiny items.
func plainList(n int) []byte {
	return bytes.ReplaceAll(aliasedList(n), []byte("- *m\n"), []byte("- ab\n"))
}

// allocated is the bytes Render allocates for in, and its error.
func allocated(in []byte) (uint64, error) {
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	_, err := Render(in, Options{})
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc, err
}

// TestAliasedItemsAreRefusedCheaply: a list whose items are aliases of one node stands for one
// object many times (Helm would apply it twice); it is refused, and aliases are never expanded
// per item: the refusal allocates no more than parsing the same number of plain items does.
func TestAliasedItemsAreRefusedCheaply(t *testing.T) {
	const n = 200_000 // ~1 MB
	aliased, err := allocated(aliasedList(n))
	if rs := Refusals(err); len(rs) != 1 || rs[0].Reason != ReasonMalformedStream || !strings.Contains(rs[0].Message,
		"items[1] is an alias of the same object as items[0]") {
		t.Fatalf("Render: %v; want one malformed-stream refusal naming items[1]", err)
	}
	plain, err := allocated(plainList(n))
	if err != nil {
		t.Fatalf("Render of plain items: %v", err)
	}
	size := len(aliasedList(n))
	t.Logf("input %d bytes: aliased items allocate %d bytes (%.1f×), plain items %d (%.1f×)", size, aliased,
		float64(aliased)/float64(size), plain, float64(plain)/float64(size))
	if aliased > plain*5/4 {
		t.Errorf("aliased items allocated %d bytes, more than 1.25× the %d of plain items", aliased, plain)
	}
}

func BenchmarkAliasedItems(b *testing.B) {
	in := aliasedList(2_000_000) // ~10 MB
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Render(in, Options{}); err == nil {
			b.Fatal("accepted")
		}
	}
}
