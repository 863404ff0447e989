package main

import (
	"strings"
	"testing"
)

func TestParseBench(t *testing.T) {
	out := `goos: linux
BenchmarkRender/objects=5000-2         	       5	 232000000 ns/op	       232.0 process-ms	        27.00 peak-MiB
BenchmarkRun/images=200/concurrency=1  	       3	10250000000 ns/op	         2.000 requests/image
BenchmarkSuite                         	       5	        12.50 ms/scenario
Benchmark log line without numbers
PASS
`
	got, err := parseBench(strings.NewReader(out))
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 {
		t.Fatalf("parsed %d results, want 3: %v", len(got), got)
	}
	checks := []struct {
		name, unit string
		want       float64
	}{
		{"Render/objects=5000", "ns/op", 232000000},
		{"Render/objects=5000", "peak-MiB", 27},
		{"Run/images=200/concurrency=1", "requests/image", 2},
		{"Suite", "ms/scenario", 12.5},
	}
	for _, c := range checks {
		if v := got[c.name].metrics[c.unit]; v != c.want {
			t.Errorf("%s %s = %v, want %v", c.name, c.unit, v, c.want)
		}
	}
}

func TestTableReportsMissingBenchmark(t *testing.T) {
	if _, err := table(map[string]result{}); err == nil || !strings.Contains(err.Error(), "did not run") {
		t.Fatalf("table of no results: err %v, want a 'did not run' error", err)
	}
}

func TestWriteMarkdown(t *testing.T) {
	var b strings.Builder
	writeMarkdown(&b, []row{
		{label: "postrender 5000 objects: wall", unit: "ms", project: 164, base: 720, hasBase: true, budget: "≤ 0.5×"},
		{label: "refresher 200 images: process peak", unit: "peak-MiB", project: 26.2, budget: "≤ 32 MiB"},
	}, "Test CPU, 2 CPUs")
	for _, want := range []string{
		"| postrender 5000 objects: wall | ms | 164.0 | 720.0 | 0.23× | ≤ 0.5× |\n",
		"| refresher 200 images: process peak | peak-MiB | 26.2 | — | — | ≤ 32 MiB |\n",
		"Machine: Test CPU, 2 CPUs.",
		"do not edit by hand",
	} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("page lacks %q:\n%s", want, b.String())
		}
	}
}
