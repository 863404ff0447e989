package harness

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// cliTimeout bounds every helm and kubectl invocation.
const cliTimeout = 2 * time.Minute

// Result is one finished command.
type Result struct {
	Args     []string
	ExitCode int
	Stdout   string
	Stderr   string
	// MaxRSSKiB is the process's peak resident set (KiB), 0 if unknown: VmHWM of
	// /proc/<pid>/status, sampled every millisecond while it runs. (ru_maxrss of a child forked
	// from the test process counts the test's own pages: Linux carries the pre-exec high-water
	// mark over exec.)
	MaxRSSKiB int64
}

func (r *Result) String() string {
	return fmt.Sprintf(
		"$ %s\nexit %d\n--- stdout\n%s--- stderr\n%s",
		strings.Join(r.Args, " "),
		r.ExitCode,
		r.Stdout,
		r.Stderr,
	)
}

// run executes a command to completion; only a failure to run it at all (or a timeout) is
// an error, a non-zero exit is reported in Result.
func run(ctx context.Context, env []string, dir string, bin string, args ...string) (*Result, error) {
	ctx, cancel := context.WithTimeout(ctx, cliTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	killGroupOnCancel(cmd)
	cmd.Env = env
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	var hwm int64
	err := cmd.Start()
	if err == nil {
		stop := watchHWM(cmd.Process.Pid, &hwm)
		err = cmd.Wait()
		stop()
	}
	res := &Result{
		Args:      append([]string{filepath.Base(bin)}, args...),
		Stdout:    stdout.String(),
		Stderr:    stderr.String(),
		MaxRSSKiB: hwm,
	}
	var exit *exec.ExitError
	switch {
	case ctx.Err() != nil:
		return res, fmt.Errorf("%s: %w\n%s", strings.Join(res.Args, " "), ctx.Err(), res)
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitCode()
	case err != nil:
		return res, fmt.Errorf("running %s: %w", res.Args[0], err)
	}
	return res, nil
}

// mustSucceed turns a non-zero exit into an error carrying the output.
func mustSucceed(res *Result, err error) (*Result, error) {
	if err != nil {
		return res, err
	}
	if res.ExitCode != 0 {
		return res, fmt.Errorf("command failed:\n%s", res)
	}
	return res, nil
}

// Helm is one Helm CLI (3 or 4) with its own cache, config and data homes, talking to one
// cluster.
type Helm struct {
	Bin string
	env []string
}

// NewHelm isolates helm (tools.Helm3 or tools.Helm4) under home and points it at
// kubeconfig. Nothing from the user's Helm setup leaks in.
func NewHelm(tool, home, kubeconfig string) (*Helm, error) {
	bin, err := tools.Lookup(tool)
	if err != nil {
		return nil, err
	}
	for _, d := range []string{"cache", "config", "data"} {
		if err := os.MkdirAll(filepath.Join(home, d), 0o755); err != nil {
			return nil, fmt.Errorf("creating helm home: %w", err)
		}
	}
	env := append(baseEnv(),
		"KUBECONFIG="+kubeconfig,
		"HELM_CACHE_HOME="+filepath.Join(home, "cache"),
		"HELM_CONFIG_HOME="+filepath.Join(home, "config"),
		"HELM_DATA_HOME="+filepath.Join(home, "data"),
		"HELM_PLUGINS="+filepath.Join(home, "data", "plugins"),
	)
	return &Helm{Bin: bin, env: env}, nil
}

// Run runs helm and fails on a non-zero exit.
func (h *Helm) Run(ctx context.Context, args ...string) (*Result, error) {
	return mustSucceed(h.Try(ctx, args...))
}

// WithKubeconfig is the same Helm (homes, plugins) talking to the cluster as kubeconfig's user.
func (h *Helm) WithKubeconfig(kubeconfig string) *Helm {
	env := slices.DeleteFunc(slices.Clone(h.env), func(kv string) bool { return strings.HasPrefix(kv, "KUBECONFIG=") })
	return &Helm{Bin: h.Bin, env: append(env, "KUBECONFIG="+kubeconfig)}
}

// Try runs helm and reports its exit code without judging it.
func (h *Helm) Try(ctx context.Context, args ...string) (*Result, error) {
	return run(ctx, h.env, "", h.Bin, args...)
}

// Kubectl runs kubectl with kubeconfig and fails on a non-zero exit.
func Kubectl(ctx context.Context, kubeconfig string, args ...string) (*Result, error) {
	return mustSucceed(TryKubectl(ctx, kubeconfig, args...))
}

// TryKubectl runs kubectl with kubeconfig and reports its exit code without judging it.
func TryKubectl(ctx context.Context, kubeconfig string, args ...string) (*Result, error) {
	bin, err := tools.Lookup(tools.Kubectl)
	if err != nil {
		return nil, err
	}
	return run(ctx, append(baseEnv(), "KUBECONFIG="+kubeconfig), "", bin, args...)
}

// baseEnv is the environment of every child: the parent's minus anything that would point
// a tool at the user's own cluster, registry credentials or Helm setup.
func baseEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		k, _, _ := strings.Cut(kv, "=")
		if k == "KUBECONFIG" || k == "DOCKER_CONFIG" || strings.HasPrefix(k, "HELM_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}

// watchHWM samples pid's peak resident set (VmHWM, KiB) into *hwm every millisecond until stop
// is called; stop waits for the sampler to end.
func watchHWM(pid int, hwm *int64) (stop func()) {
	done, ended := make(chan struct{}), make(chan struct{})
	path := fmt.Sprintf("/proc/%d/status", pid)
	go func() {
		defer close(ended)
		tick := time.NewTicker(time.Millisecond)
		defer tick.Stop()
		for {
			if b, err := os.ReadFile(path); err == nil {
				for line := range strings.Lines(string(b)) {
					if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
						if kib, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64); err == nil &&
							kib > *hwm {
							*hwm = kib
						}
					}
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() { close(done); <-ended }
}
