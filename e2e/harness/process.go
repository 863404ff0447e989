// Package harness runs the real parts of an image-refresh deployment on loopback for the
// end-to-end tests and `make demo`: etcd, kube-apiserver and kube-controller-manager, a
// docker-registry behind a token server, Helm 3 and 4, kubectl, and our own binaries built
// with `go build`. Every component logs to a file in the work directory and is stopped by
// the Close of whatever started it.
package harness

import (
	"context"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Logger is where the harness reports progress: *testing.T in tests, a printer in the demo.
type Logger interface {
	Logf(format string, args ...any)
}

// process is one long-running component with its output in a log file.
type process struct {
	name    string
	logPath string
	cmd     *exec.Cmd
	exited  chan struct{}
	waitErr error
}

// startProcess starts bin with args, its stdout and stderr appended to dir/name.log. The
// child gets SIGKILL if the harness process dies, so an interrupted test leaves nothing
// running behind.
func startProcess(dir, name, bin string, args ...string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logFile, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, fmt.Errorf("opening %s log: %w", name, err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Dir = dir
	cmd.Stdout = logFile
	cmd.Stderr = logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		logFile.Close()
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	p := &process{name: name, logPath: logPath, cmd: cmd, exited: make(chan struct{})}
	go func() {
		p.waitErr = cmd.Wait()
		logFile.Close()
		close(p.exited)
	}()
	return p, nil
}

// waitDelay bounds how long Wait still waits for output after a command was killed or has
// exited: a grandchild that escaped the kill could otherwise hold the pipes open forever.
const waitDelay = 5 * time.Second

// killGroupOnCancel runs cmd (made with exec.CommandContext) in its own process group and,
// when the context ends, kills the whole group rather than the command alone, so children
// such as helm's post-renderer do not outlive it holding its pipes. Like startProcess, the
// command gets SIGKILL if the harness process dies.
func killGroupOnCancel(cmd *exec.Cmd) {
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = waitDelay
}

// stop sends SIGTERM to the process group and SIGKILL after grace. Stopping an exited
// process is a no-op.
func (p *process) stop(grace time.Duration) {
	if p == nil {
		return
	}
	select {
	case <-p.exited:
		return
	default:
	}
	_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGTERM)
	select {
	case <-p.exited:
	case <-time.After(grace):
		_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
		<-p.exited
	}
}

// running returns an error naming the log if the process has already exited.
func (p *process) running() error {
	select {
	case <-p.exited:
		//nolint:errorlint // waitErr may be nil (a clean exit is a failure here too)
		return fmt.Errorf("%s exited (%v); see %s:\n%s", p.name, p.waitErr, p.logPath, tail(p.logPath, 20))
	default:
		return nil
	}
}

// waitReady polls ready until it succeeds, the process exits or the timeout passes.
func (p *process) waitReady(parent context.Context, timeout time.Duration, ready func(context.Context) error) error {
	ctx, cancel := context.WithTimeout(parent, timeout)
	defer cancel()
	var last error
	for {
		if err := p.running(); err != nil {
			return err
		}
		if last = ready(ctx); last == nil {
			return nil
		}
		select {
		case <-parent.Done():
			return fmt.Errorf("waiting for %s: %w", p.name, parent.Err())
		case <-ctx.Done():
			return fmt.Errorf("%s not ready after %s: %w; see %s:\n%s", p.name, timeout, last, p.logPath, tail(p.logPath, 20))
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// tail returns the last n lines of a file, for error messages and failure dumps.
func tail(path string, n int) string {
	data, err := os.ReadFile(path)
	if err != nil {
		return fmt.Sprintf("(cannot read %s: %v)", path, err)
	}
	lines := strings.Split(strings.TrimRight(string(data), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// DumpLogs writes the last lines of every component log under dir, for a failed run.
// It descends into subdirectories because each component keeps its logs in its own
// directory (a work dir holds cluster/ and registry/).
func DumpLogs(log Logger, dir string, lines int) {
	var paths []string
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && filepath.Ext(path) == ".log" {
			paths = append(paths, path)
		}
		return nil
	})
	if err != nil {
		log.Logf("listing component logs under %s: %v", dir, err)
	}
	if len(paths) == 0 {
		log.Logf("no component logs under %s", dir)
	}
	for _, p := range paths {
		log.Logf("==> %s (last %d lines) <==\n%s", p, lines, tail(p, lines))
	}
}

// freePorts asks the kernel for n distinct ports unused on every address (a node's
// components bind the bridge address, others loopback). They are released before
// the components bind them; a clash with another program is unlikely and shows up as a
// startup error naming the port.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	var ports []int
	for range n {
		l, err := net.Listen("tcp", ":0")
		if err != nil {
			return nil, fmt.Errorf("finding a free port: %w", err)
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

func hostPort(port int) string { return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)) }
