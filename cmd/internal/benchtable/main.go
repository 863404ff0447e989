// Command benchtable runs the benchmarks behind the performance budgets (`make bench`) and prints
// one table: case, this project, the baseline measured in the same run, and their ratio. With
// an argument it also writes that file (docs/performance.md) as Markdown: the page is the
// output of a run, never edited by hand.
//
//	benchtable [docs/performance.md]
package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"text/tabwriter"
)

// suite is one `go test -bench` invocation.
type suite struct {
	pkg, pattern, benchtime string
}

var suites = []suite{
	{"./postrender", "^(BenchmarkRender|BenchmarkKyamlRoundTrip)$", "5x"},
	{"./refresher", "^BenchmarkRun$", "3x"},
	{"./chartcheck", "^(BenchmarkSuite|BenchmarkSuiteChartPerScenario)$", "5x"},
}

// row compares one metric of a benchmark with the same metric of its baseline.
type row struct {
	label, unit   string
	project, base float64
	hasBase       bool
	budget        string
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 1 {
		return fmt.Errorf("usage: benchtable [MARKDOWN-FILE], got %q", args)
	}
	results := map[string]result{}
	for _, s := range suites {
		fmt.Fprintf(stderr, "benchtable: go test %s -bench '%s' -benchtime %s\n", s.pkg, s.pattern, s.benchtime)
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "go", "test", s.pkg, "-run", "^$", "-bench", s.pattern, "-benchtime", s.benchtime,
			"-count", "1")
		cmd.Stdout = io.MultiWriter(&out, stderr)
		cmd.Stderr = stderr
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("benchmarks of %s: %w", s.pkg, err)
		}
		parsed, err := parseBench(&out)
		if err != nil {
			return fmt.Errorf("reading benchmarks of %s: %w", s.pkg, err)
		}
		for k, v := range parsed {
			results[k] = v
		}
	}
	rows, err := table(results)
	if err != nil {
		return err
	}
	if err := write(stdout, rows); err != nil {
		return err
	}
	if len(args) == 1 {
		var page bytes.Buffer
		writeMarkdown(&page, rows, machine())
		if err := os.WriteFile(args[0], page.Bytes(), 0o644); err != nil {
			return fmt.Errorf("writing %s: %w", args[0], err)
		}
	}
	return nil
}

// machine describes where the numbers were taken: CPU model and count, Go version.
func machine() string {
	model := "unknown CPU"
	if data, err := os.ReadFile("/proc/cpuinfo"); err == nil {
		if m := regexp.MustCompile(`(?m)^model name\s*:\s*(.+)$`).FindSubmatch(data); m != nil {
			model = string(m[1])
		}
	}
	return fmt.Sprintf("%s, %d CPUs, %s %s/%s", model, runtime.NumCPU(), runtime.Version(), runtime.GOOS, runtime.GOARCH)
}

// writeMarkdown writes docs/performance.md: what is measured, the table, how to reproduce.
func writeMarkdown(w io.Writer, rows []row, machine string) {
	fmt.Fprint(w, `# Performance

Written by `+"`make bench`"+` (`+"`cmd/internal/benchtable`"+`); do not edit by hand. Each case is measured
beside a baseline **in the same run**, and the ratio is what a budget is about: other work on the
machine moves both. Peak memory is the high-water RSS (`+"`VmHWM`"+`) of a child process doing only
that job (`+"`internal/testutil/procstat`"+`).

Machine: `+machine+`.

| case | unit | this project | baseline (same run) | ratio | budget |
|---|---|---|---|---|---|
`)
	for _, r := range rows {
		project, base, ratio := r.cells()
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s |\n", r.label, r.unit, project, base, ratio, r.budget)
	}
	fmt.Fprint(w, `
- **postrender** copies every document that is neither the config nor a target verbatim; only
  those are decoded (as the API server decodes them). Baseline: kyaml's `+"`ByteReader`→`ByteWriter`"+`.
- **refresher**: a lookup is two round trips (token, HEAD) after one version check per registry;
  requests are counted by `+"`TestRequestsPerImage`"+`, not timed. Baseline: the same tick sequentially.
  With `+"`spec.verification`"+` a first observation and a steady tick cost the same (no GET); a tick that
  applies a new signed digest adds exactly 3 GETs per digest on Docker Hub/GHCR (fallback tag or
  `+"`.sig`"+`; 5 through the referrers API), an unsigned one 3 on the tick that refuses it and none after
  until `+"`recheckAfter`"+`; no token or version check is added (`+"`TestRequestsPerImage/verification`"+`,
  `+"`TestVerifySignature*`"+`).
  The process peak is the real binary (built as `+"`make build`"+`) running one tick.
- **chartcheck** loads the chart once per run; baseline: reloading it per scenario.

Reproduce:

`+"```"+`sh
make bench
go test ./postrender -run '^$' -bench 'BenchmarkRender|BenchmarkKyamlRoundTrip' -benchtime 5x
go test ./refresher  -run '^$' -bench BenchmarkRun -benchtime 3x
go test ./chartcheck -run '^$' -bench 'BenchmarkSuite' -benchtime 5x
`+"```"+`
`)
}

var concurrencyName = regexp.MustCompile(`^Run/images=(\d+)/concurrency=(\d+)$`)

func table(res map[string]result) ([]row, error) {
	var rows []row
	get := func(name, unit string) (float64, error) {
		r, ok := res[name]
		if !ok {
			return 0, fmt.Errorf("benchmark %s did not run", name)
		}
		v, ok := r.metrics[unit]
		if !ok {
			return 0, fmt.Errorf("benchmark %s reported no %s", name, unit)
		}
		return v, nil
	}
	pair := func(label, unit, name, baseName, budget string, scale float64) error {
		p, err := get(name, unit)
		if err != nil {
			return err
		}
		b, err := get(baseName, unit)
		if err != nil {
			return err
		}
		outUnit := unit
		if unit == "ns/op" {
			outUnit = "ms"
		}
		rows = append(rows, row{label: label, unit: outUnit, project: p * scale, base: b * scale, hasBase: true,
			budget: budget})
		return nil
	}
	const nsToMs = 1e-6
	for _, n := range []string{"5000", "500"} {
		budget := ""
		if n == "5000" {
			budget = "≤ 0.5×"
		}
		if err := pair("postrender "+n+" objects: wall (vs kyaml round-trip)", "ns/op", "Render/objects="+n,
			"KyamlRoundTrip/objects="+n, budget, nsToMs); err != nil {
			return nil, err
		}
		budget = ""
		if n == "5000" {
			budget = "≤ 64 MiB"
		}
		if err := pair("postrender "+n+" objects: process peak (vs kyaml round-trip)", "peak-MiB", "Render/objects="+n,
			"KyamlRoundTrip/objects="+n, budget, 1); err != nil {
			return nil, err
		}
	}

	// Refresher: the default concurrency against the sequential baseline (concurrency 1).
	type tick struct{ images, concurrency int }
	var ticks []tick
	for name := range res {
		if m := concurrencyName.FindStringSubmatch(name); m != nil {
			n, _ := strconv.Atoi(m[1])
			c, _ := strconv.Atoi(m[2])
			if c != 1 {
				ticks = append(ticks, tick{n, c})
			}
		}
	}
	if len(ticks) == 0 {
		return nil, fmt.Errorf("refresher benchmarks did not run")
	}
	slices.SortFunc(ticks, func(a, b tick) int { return a.images - b.images })
	for _, t := range ticks {
		name := fmt.Sprintf("Run/images=%d/concurrency=%d", t.images, t.concurrency)
		base := fmt.Sprintf("Run/images=%d/concurrency=1", t.images)
		budget := ""
		if t.images == 200 {
			budget = "≤ 500 ms"
		}
		if err := pair(fmt.Sprintf("refresher %d images, 50 ms latency: tick wall (concurrency %d vs 1)", t.images,
			t.concurrency), "ns/op", name, base, budget, nsToMs); err != nil {
			return nil, err
		}
		if err := pair(fmt.Sprintf("refresher %d images: requests per image (vs sequential)", t.images), "requests/image",
			name, base, "1 HEAD + ≤ 1 token (+ 1 /v2/ per registry)", 1); err != nil {
			return nil, err
		}
		if peak, err := get(name, "peak-MiB"); err == nil {
			rows = append(rows, row{label: fmt.Sprintf("refresher %d images: process peak", t.images), unit: "peak-MiB",
				project: peak, budget: "≤ 32 MiB"})
		}
	}
	if err := pair("chartcheck charts/client suite: per scenario after the first (vs chart loaded per scenario)",
		"ms/scenario", "Suite", "SuiteChartPerScenario", "", 1); err != nil {
		return nil, err
	}
	return rows, nil
}

// cells formats the measured values of a row: project, baseline and ratio ("—" when none).
func (r row) cells() (project, base, ratio string) {
	format := "%.1f"
	if r.unit == "requests/image" {
		format = "%.3f" // 2.005 = token + HEAD + one version check shared by 200 images
	}
	base, ratio = "—", "—"
	if r.hasBase {
		base = fmt.Sprintf(format, r.base)
		if r.base != 0 {
			ratio = fmt.Sprintf("%.2f×", r.project/r.base)
		}
	}
	return fmt.Sprintf(format, r.project), base, ratio
}

func write(w io.Writer, rows []row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tunit\tthis project\tbaseline\tratio\tbudget")
	for _, r := range rows {
		project, base, ratio := r.cells()
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.label, r.unit, project, base, ratio, r.budget)
	}
	return tw.Flush()
}
