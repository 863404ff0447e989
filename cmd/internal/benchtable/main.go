// Command benchtable runs the benchmarks behind the performance budgets (`make bench`) and prints
// one table: case, this project, the baseline measured in the same run, and their ratio.
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
	if err := run(ctx, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "benchtable:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, stdout, stderr io.Writer) error {
	results := map[string]result{}
	for _, s := range suites {
		fmt.Fprintf(stderr, "benchtable: go test %s -bench '%s' -benchtime %s\n", s.pkg, s.pattern, s.benchtime)
		var out bytes.Buffer
		cmd := exec.CommandContext(ctx, "go", "test", s.pkg, "-run", "^$", "-bench", s.pattern, "-benchtime", s.benchtime, "-count", "1")
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
	return write(stdout, rows)
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
		rows = append(rows, row{label: label, unit: outUnit, project: p * scale, base: b * scale, hasBase: true, budget: budget})
		return nil
	}
	const nsToMs = 1e-6
	for _, n := range []string{"5000", "500"} {
		budget := ""
		if n == "5000" {
			budget = "≤ 0.5×"
		}
		if err := pair("postrender "+n+" objects: wall (vs kyaml round-trip)", "ns/op", "Render/objects="+n, "KyamlRoundTrip/objects="+n, budget, nsToMs); err != nil {
			return nil, err
		}
		budget = ""
		if n == "5000" {
			budget = "≤ 64 MiB"
		}
		if err := pair("postrender "+n+" objects: process peak (vs kyaml round-trip)", "peak-MiB", "Render/objects="+n, "KyamlRoundTrip/objects="+n, budget, 1); err != nil {
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
		if err := pair(fmt.Sprintf("refresher %d images, 50 ms latency: tick wall (concurrency %d vs 1)", t.images, t.concurrency), "ns/op", name, base, budget, nsToMs); err != nil {
			return nil, err
		}
		if err := pair(fmt.Sprintf("refresher %d images: requests per image (vs sequential)", t.images), "requests/image", name, base, "1 HEAD + ≤ 1 token (+ 1 /v2/ per registry)", 1); err != nil {
			return nil, err
		}
		if peak, err := get(name, "peak-MiB"); err == nil {
			rows = append(rows, row{label: fmt.Sprintf("refresher %d images: process peak", t.images), unit: "peak-MiB", project: peak, budget: "≤ 32 MiB"})
		}
	}
	if err := pair("chartcheck charts/client suite: per scenario after the first (vs chart loaded per scenario)", "ms/scenario", "Suite", "SuiteChartPerScenario", "", 1); err != nil {
		return nil, err
	}
	return rows, nil
}

func write(w io.Writer, rows []row) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "case\tunit\tthis project\tbaseline\tratio\tbudget")
	for _, r := range rows {
		format := "%.1f"
		if r.unit == "requests/image" {
			format = "%.3f" // 2.005 = token + HEAD + one version check shared by 200 images
		}
		base, ratio := "—", "—"
		if r.hasBase {
			base = fmt.Sprintf(format, r.base)
			if r.base != 0 {
				ratio = fmt.Sprintf("%.2f×", r.project/r.base)
			}
		}
		fmt.Fprintf(tw, "%s\t%s\t"+format+"\t%s\t%s\t%s\n", r.label, r.unit, r.project, base, ratio, r.budget)
	}
	return tw.Flush()
}
