package postrender

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"sigs.k8s.io/kustomize/kyaml/kio"

	"github.com/tracebloc/image-refresh/internal/testutil/procstat"
)

// benchChildEnv makes the test binary a one-shot filter from stdin to stdout, so a benchmark
// can measure the peak memory of a whole process: "render" runs Render, "kyaml" a bare
// kio.ByteReader → kio.ByteWriter round-trip.
const benchChildEnv = "POSTRENDER_BENCH_CHILD"

func TestMain(m *testing.M) {
	if mode := os.Getenv(benchChildEnv); mode != "" {
		if err := runBenchChild(mode, os.Stdin, os.Stdout); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		os.Exit(0)
	}
	os.Exit(m.Run())
}

func runBenchChild(mode string, stdin io.Reader, stdout io.Writer) error {
	in, err := io.ReadAll(stdin)
	if err != nil {
		return err
	}
	switch mode {
	case "render":
		out, err := Render(in, Options{})
		if err != nil {
			return err
		}
		_, err = stdout.Write(out)
		return err
	case "kyaml":
		return kyamlRoundTrip(in, stdout)
	default:
		return fmt.Errorf("unknown %s %q", benchChildEnv, mode)
	}
}

// kyamlRoundTrip is the floor the benchmark measures against: read every document into an RNode and
// write them all back.
func kyamlRoundTrip(in []byte, out io.Writer) error {
	return kio.Pipeline{
		Inputs:  []kio.Reader{&kio.ByteReader{Reader: bytes.NewReader(in)}},
		Outputs: []kio.Writer{&kio.ByteWriter{Writer: out}},
	}.Execute()
}

var benchSizes = []int{500, 5000}

func BenchmarkRender(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			in := benchStream(n)
			out, err := Render(in, Options{})
			if err != nil {
				b.Fatal(err)
			}
			if !bytes.Contains(out, []byte("kind: CronJob")) {
				b.Fatal("the benchmark stream injects nothing")
			}
			benchmarkFilter(b, in, "render", func() error {
				_, err := Render(in, Options{})
				return err
			})
		})
	}
}

func BenchmarkKyamlRoundTrip(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			in := benchStream(n)
			benchmarkFilter(b, in, "kyaml", func() error { return kyamlRoundTrip(in, io.Discard) })
		})
	}
}

// benchmarkFilter times fn in the benchmark loop, then runs the same work once in a child
// process and reports that process's wall time and peak resident memory.
func benchmarkFilter(b *testing.B, in []byte, mode string, fn func() error) {
	b.SetBytes(int64(len(in)))
	b.ReportAllocs()
	for b.Loop() {
		if err := fn(); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	wall, peak, err := childRun(mode, in)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportMetric(float64(wall.Milliseconds()), "process-ms")
	b.ReportMetric(peak, "peak-MiB")
}

// childRun runs the test binary as a filter in the given mode and returns its wall time and
// peak resident set in MiB.
func childRun(mode string, in []byte) (time.Duration, float64, error) {
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), benchChildEnv+"="+mode)
	cmd.Stdin = bytes.NewReader(in)
	cmd.Stdout = io.Discard
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	usage, err := procstat.Run(cmd)
	if err != nil {
		return 0, 0, fmt.Errorf("child %s: %w: %s", mode, err, stderr.String())
	}
	return usage.Wall, usage.PeakMiB, nil
}

// TestBenchStreamShape keeps the benchmark input the shape of a large release: ~300 bytes per object
// (1.5 MB at 5,000), Deployments, ConfigMaps and Services, a refresh config and its target.
func TestBenchStreamShape(t *testing.T) {
	in := benchStream(5000)
	if size := len(in); size < 1_400_000 || size > 1_700_000 {
		t.Errorf("5,000-object stream is %d bytes, want about 1.5 MB", size)
	}
	s, err := scan(in)
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, obj := range s.objects {
		kinds[obj.Kind]++
	}
	if len(s.objects) != 5000 || kinds["Deployment"] < 1600 || kinds["ConfigMap"] < 1600 || kinds["Service"] < 1600 {
		t.Errorf("objects = %d by kind %v, want 5,000 split over Deployments, ConfigMaps and Services", len(s.objects), kinds)
	}
}

// benchStream generates a Helm 3 style release of n objects: Deployments, ConfigMaps and
// Services in turn, the first ConfigMap being the refresh config whose images target the
// first Deployment.
func benchStream(n int) []byte {
	var b strings.Builder
	b.Grow(n * 320)
	for i := range n {
		switch {
		case i == 1:
			b.WriteString(refreshConfigMap(strings.ReplaceAll(refreshBody("", ""), "name: web, container",
				"name: app-0, container")))
		case i%3 == 0:
			fmt.Fprintf(&b, `---
# Source: app/templates/deployment.yaml
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
  labels:
    app.kubernetes.io/name: app-%d
    app.kubernetes.io/managed-by: Helm
spec:
  replicas: 2
  selector:
    matchLabels: {app: app-%d}
  template:
    metadata:
      labels: {app: app-%d}
    spec:
      containers:
      - name: api
        image: "example.com/web:prod"
        imagePullPolicy: Always
        ports:
        - containerPort: 8080
`, i, i, i, i)
		case i%3 == 1:
			fmt.Fprintf(&b, `---
# Source: app/templates/configmap.yaml
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings-%d
  labels:
    app.kubernetes.io/managed-by: Helm
data:
  level: "info"
  start.sh: |
    #!/bin/sh
    ---
    exec /app --instance %d
`, i, i)
		default:
			fmt.Fprintf(&b, `---
# Source: app/templates/service.yaml
apiVersion: v1
kind: Service
metadata:
  name: app-%d
  labels:
    app.kubernetes.io/managed-by: Helm
spec:
  selector:
    app: app-%d
  ports:
  - port: 80
    targetPort: 8080
`, i, i)
		}
	}
	return []byte(b.String())
}

// BenchmarkSplit is the floor of any design that does not parse every document: cutting the
// stream on document markers alone, as a cheap structural pre-scan would.
func BenchmarkSplit(b *testing.B) {
	for _, n := range benchSizes {
		b.Run(fmt.Sprintf("objects=%d", n), func(b *testing.B) {
			in := benchStream(n)
			b.SetBytes(int64(len(in)))
			for b.Loop() {
				if len(splitSegments(in)) != n {
					b.Fatal("wrong number of segments")
				}
			}
		})
	}
}
