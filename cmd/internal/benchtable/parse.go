package main

import (
	"bufio"
	"io"
	"strconv"
	"strings"
)

// result is one benchmark line of `go test -bench` output: its name without the
// "Benchmark" prefix and GOMAXPROCS suffix, and every metric it reported by unit.
type result struct {
	name    string
	metrics map[string]float64
}

// parseBench reads `go test -bench` output and returns the benchmark lines by name.
func parseBench(r io.Reader) (map[string]result, error) {
	out := map[string]result{}
	sc := bufio.NewScanner(r)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 4 || !strings.HasPrefix(fields[0], "Benchmark") {
			continue
		}
		if _, err := strconv.Atoi(fields[1]); err != nil {
			continue // not a result line (e.g. a log line starting with "Benchmark")
		}
		res := result{name: trimProcs(strings.TrimPrefix(fields[0], "Benchmark")), metrics: map[string]float64{}}
		for i := 2; i+1 < len(fields); i += 2 {
			v, err := strconv.ParseFloat(fields[i], 64)
			if err != nil {
				break
			}
			res.metrics[fields[i+1]] = v
		}
		out[res.name] = res
	}
	return out, sc.Err()
}

// trimProcs drops the "-N" GOMAXPROCS suffix go test appends to benchmark names.
func trimProcs(name string) string {
	i := strings.LastIndexByte(name, '-')
	if i < 0 {
		return name
	}
	if _, err := strconv.Atoi(name[i+1:]); err != nil {
		return name
	}
	return name[:i]
}
