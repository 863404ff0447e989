package harness

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// The node's fixed network and places. One node runs on a machine at a time (NodeLock): its
// bridge, addresses and state directory are fixed so that the cleanup at start can find
// whatever a killed run left behind.
const (
	NodeName = "node1"
	// NodeBridge is the Linux bridge pods are attached to; its address is NodeAddress.
	NodeBridge  = "irefresh0"
	NodeAddress = "10.88.0.1"
	PodSubnet   = "10.88.0.0/16"
	ServiceCIDR = "10.96.0.0/24"
	// NodeRoot holds the state of the node, and of the control plane and registry it uses:
	// every process started for it has this path on its command line.
	NodeRoot = "/var/lib/image-refresh-e2e-node"
	// cniNetwork is the CNI network name, also the comment of the guard iptables rule.
	cniNetwork = "image-refresh-e2e"
)

// NodeRequirements returns an error naming what this machine lacks to run the node: root,
// capabilities, cgroups, the built tools.
func NodeRequirements() error {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root (the node creates a bridge, iptables rules and mounts; run the e2e suite as root)")
	}
	if caps, err := effectiveCaps(); err != nil {
		missing = append(missing, "readable capabilities: "+err.Error())
	} else {
		for _, c := range []struct {
			bit  uint
			name string
		}{{12, "CAP_NET_ADMIN"}, {21, "CAP_SYS_ADMIN"}, {1, "CAP_DAC_OVERRIDE"}} {
			if caps&(1<<c.bit) == 0 {
				missing = append(missing, c.name)
			}
		}
	}
	if _, err := os.Stat("/sys/fs/cgroup/memory"); err != nil {
		if _, err2 := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err2 != nil {
			missing = append(missing, "cgroups (neither /sys/fs/cgroup/memory nor cgroup2)")
		}
	}
	for _, bin := range []string{"ip", "iptables-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin+" on PATH (apt-get install iproute2 iptables)")
		}
	}
	for _, t := range tools.Node {
		if _, err := tools.Lookup(t); err != nil {
			missing = append(missing, err.Error())
		}
	}
	if len(missing) > 0 {
		return fmt.Errorf("the real node cannot run here; missing: %s", strings.Join(missing, "; "))
	}
	return nil
}

func effectiveCaps() (uint64, error) {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "CapEff:"); ok {
			return strconv.ParseUint(strings.TrimSpace(v), 16, 64)
		}
	}
	return 0, fmt.Errorf("no CapEff in /proc/self/status")
}

// Node is a single-node cluster's node on this machine: containerd with runc and the CNI
// bridge, kubelet, kube-proxy and kube-scheduler, against a Cluster serving on NodeAddress.
type Node struct {
	// Dir is NodeRoot.
	Dir string
	// LogDir holds the node components' logs.
	LogDir string

	sock       string
	containerd *process
	kubelet    *process
	proxy      *process
	scheduler  *process
	sysctls    map[string]string
}

// PrepareNodeNetwork cleans up after any earlier run, removes its state and creates the bridge with
// NodeAddress, so that the API server and registry can then listen on it.
func PrepareNodeNetwork(log Logger) error {
	CleanupNode(log)
	// A fresh state: a killed run's etcd data would bring its objects (and node) back.
	if err := RemoveNodeState(); err != nil {
		return err
	}
	if err := os.MkdirAll(NodeRoot, 0o755); err != nil {
		return err
	}
	for _, args := range [][]string{
		{"link", "add", NodeBridge, "type", "bridge"},
		{"addr", "add", NodeAddress + "/16", "dev", NodeBridge},
		{"link", "set", NodeBridge, "up"},
	} {
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	return nil
}

// StartNode starts containerd, kube-scheduler, kubelet and kube-proxy for cluster (started
// with ClusterOptions{Address: NodeAddress, NodeName: NodeName, ServiceCIDR: ServiceCIDR})
// and returns once the node is Ready. sandboxImage is the pause image (in a registry on
// NodeAddress); registryHosts are the registries containerd pulls from over plain HTTP.
func StartNode(
	ctx context.Context,
	c *Cluster,
	sandboxImage string,
	registryHosts []string,
	log Logger,
) (_ *Node, err error) {
	bins := map[string]string{}
	for _, t := range tools.Node {
		if bins[t], err = tools.Lookup(t); err != nil {
			return nil, err
		}
	}
	n := &Node{
		Dir:     NodeRoot,
		LogDir:  filepath.Join(NodeRoot, "logs"),
		sock:    filepath.Join(NodeRoot, "containerd.sock"),
		sysctls: map[string]string{},
	}
	defer func() {
		if err != nil {
			n.Close(log)
		}
	}()
	for _, d := range []string{
		n.LogDir, filepath.Join(NodeRoot, "cni", "net.d"), filepath.Join(NodeRoot, "certs.d"),
		filepath.Join(NodeRoot, "kubelet"),
	} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return nil, err
		}
	}
	// Pod traffic crosses the bridge through iptables (kube-proxy's DNAT of the kubernetes
	// Service); the previous values are restored on Close — or, after a killed run, by the
	// next run's CleanupNode, from the copy saved in sysctlsSaved first.
	want := map[string]string{"/proc/sys/net/ipv4/ip_forward": "1", "/proc/sys/net/bridge/bridge-nf-call-iptables": "1"}
	if saved, err := os.ReadFile(sysctlsSaved); err == nil {
		// An earlier run's values could not all be restored: they are still the originals.
		if err := json.Unmarshal(saved, &n.sysctls); err != nil {
			return nil, fmt.Errorf("reading %s: %w", sysctlsSaved, err)
		}
	} else {
		for p := range want {
			old, err := os.ReadFile(p)
			if err != nil {
				return nil, fmt.Errorf("reading %s: %w", p, err)
			}
			n.sysctls[p] = strings.TrimSpace(string(old))
		}
		saved, err := json.Marshal(n.sysctls)
		if err != nil {
			return nil, err
		}
		if err := os.WriteFile(sysctlsSaved, saved, 0o600); err != nil {
			return nil, fmt.Errorf("saving the sysctls: %w", err)
		}
	}
	for p, v := range want {
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			return nil, fmt.Errorf("setting %s: %w", p, err)
		}
	}
	// No pod may route off this machine: everything it needs is on the bridge.
	if out, err := exec.Command("iptables", guardRule("-I")...).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("iptables %s: %w: %s", strings.Join(guardRule("-I"), " "), err, out)
	}

	if err := n.writeRuntimeConfig(bins, sandboxImage, registryHosts); err != nil {
		return nil, err
	}
	start := time.Now()
	if n.containerd, err = startProcess(
		n.LogDir, "containerd", bins[tools.Containerd], "--config", filepath.Join(NodeRoot, "containerd.toml"),
	); err != nil {
		return nil, err
	}
	if err := n.containerd.waitReady(ctx, 60*time.Second, func(context.Context) error {
		_, err := os.Stat(n.sock)
		return err
	}); err != nil {
		return nil, err
	}
	log.Logf("containerd ready at %s (%s)", n.sock, since(start))

	// kube-proxy and the scheduler use the admin token; the kubelet its node identity.
	admin := filepath.Join(NodeRoot, "admin.kubeconfig")
	if err := copyFile(c.AdminKubeconfig, admin, 0o600); err != nil {
		return nil, err
	}
	kubeletKubeconfig := filepath.Join(NodeRoot, "kubelet.kubeconfig")
	if err := c.WriteKubeconfig(kubeletKubeconfig, "system:node:"+NodeName, c.NodeToken, "default"); err != nil {
		return nil, err
	}
	if n.scheduler, err = startProcess(n.LogDir, "kube-scheduler", bins[tools.KubeScheduler],
		"--kubeconfig="+admin, "--leader-elect=false", "--secure-port=0"); err != nil {
		return nil, err
	}
	kubeletConfig := filepath.Join(NodeRoot, "kubelet.yaml")
	if err := os.WriteFile(kubeletConfig, []byte(n.kubeletConfig()), 0o644); err != nil {
		return nil, err
	}
	start = time.Now()
	if n.kubelet, err = startProcess(n.LogDir, "kubelet", bins[tools.Kubelet],
		"--config="+kubeletConfig,
		"--kubeconfig="+kubeletKubeconfig,
		"--root-dir="+filepath.Join(NodeRoot, "kubelet"),
		"--cert-dir="+filepath.Join(NodeRoot, "kubelet", "pki"),
		"--hostname-override="+NodeName,
		"--node-ip="+NodeAddress,
	); err != nil {
		return nil, err
	}
	if n.proxy, err = startProcess(n.LogDir, "kube-proxy", bins[tools.KubeProxy],
		"--kubeconfig="+admin,
		"--hostname-override="+NodeName,
		"--proxy-mode=iptables",
		"--cluster-cidr="+PodSubnet,
		// Leave the host's conntrack and localnet sysctls alone.
		"--conntrack-max-per-core=0",
		"--iptables-localhost-nodeports=false",
		"--healthz-bind-address=127.0.0.1:10256",
		"--metrics-bind-address=127.0.0.1:10249",
	); err != nil {
		return nil, err
	}
	if err := n.kubelet.waitReady(ctx, 120*time.Second, func(ctx context.Context) error {
		if err := n.proxy.running(); err != nil {
			return err
		}
		if err := n.scheduler.running(); err != nil {
			return err
		}
		node, err := c.Client.CoreV1().Nodes().Get(ctx, NodeName, metav1.GetOptions{})
		if err != nil {
			return err
		}
		for _, cond := range node.Status.Conditions {
			if cond.Type == corev1.NodeReady && cond.Status == corev1.ConditionTrue {
				return nil
			}
		}
		return fmt.Errorf("node %s not Ready", NodeName)
	}); err != nil {
		return nil, err
	}
	log.Logf("node %s Ready: kubelet, kube-proxy, kube-scheduler (%s)", NodeName, since(start))
	return n, nil
}

func guardRule(op string) []string {
	return []string{
		op, "FORWARD", "-s", PodSubnet, "!", "-d", PodSubnet, "-m", "comment", "--comment", cniNetwork, "-j", "DROP",
	}
}

func (n *Node) writeRuntimeConfig(bins map[string]string, sandboxImage string, registryHosts []string) error {
	cniBin := filepath.Dir(bins[tools.CNIBridge])
	containerd := fmt.Sprintf(`version = 3
root = %[1]q
state = %[2]q

[grpc]
  address = %[3]q

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.runtime']
  # This sandbox lacks CAP_SYS_RESOURCE: runc cannot lower the pause container's oom_score_adj.
  restrict_oom_score_adj = true
  enable_selinux = false
  netns_mounts_under_state_dir = true
  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = "runc"
    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = %[4]q
        Root = %[5]q
        SystemdCgroup = false
  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = [%[6]q]
    conf_dir = %[7]q

[plugins.'io.containerd.cri.v1.images']
  snapshotter = "overlayfs"
  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = %[8]q
  [plugins.'io.containerd.cri.v1.images'.registry]
    config_path = %[9]q

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = "127.0.0.1"
  stream_server_port = "0"
`, filepath.Join(NodeRoot, "containerd", "root"), filepath.Join(NodeRoot, "containerd", "state"), n.sock,
		bins[tools.Runc], filepath.Join(NodeRoot, "runc"), cniBin, filepath.Join(NodeRoot, "cni", "net.d"),
		sandboxImage, filepath.Join(NodeRoot, "certs.d"))
	if err := writeFile(filepath.Join(NodeRoot, "containerd.toml"), containerd); err != nil {
		return err
	}
	for _, host := range registryHosts {
		hosts := fmt.Sprintf(
			"server = \"http://%[1]s\"\n\n[host.\"http://%[1]s\"]\n  capabilities = [\"pull\", \"resolve\"]\n",
			host,
		)
		if err := writeFile(filepath.Join(NodeRoot, "certs.d", host, "hosts.toml"), hosts); err != nil {
			return err
		}
	}
	cni := fmt.Sprintf(`{
  "cniVersion": "1.0.0",
  "name": %q,
  "plugins": [{
    "type": "bridge",
    "bridge": %q,
    "isGateway": true,
    "ipMasq": false,
    "hairpinMode": true,
    "ipam": {
      "type": "host-local",
      "ranges": [[{"subnet": %q, "gateway": %q}]],
      "routes": [{"dst": "0.0.0.0/0"}],
      "dataDir": %q
    }
  }]
}
`, cniNetwork, NodeBridge, PodSubnet, NodeAddress, filepath.Join(NodeRoot, "cni", "ipam"))
	return writeFile(filepath.Join(NodeRoot, "cni", "net.d", "10-e2e.conflist"), cni)
}

func (n *Node) kubeletConfig() string {
	return fmt.Sprintf(`apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: %s
port: 10250
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 0
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://%s
authentication:
  anonymous: {enabled: true}
  webhook: {enabled: false}
authorization:
  mode: AlwaysAllow
resolvConf: ""
podLogsDir: %s
enforceNodeAllocatable: []
evictionHard:
  memory.available: "1Mi"
  nodefs.available: "1%%"
  nodefs.inodesFree: "1%%"
  imagefs.available: "1%%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
registerNode: true
`, NodeAddress, n.sock, filepath.Join(NodeRoot, "pod-logs"))
}

// Close stops kube-proxy, the kubelet, the scheduler and containerd and restores the sysctls
// it changed. The containers, mounts, chains and bridge are CleanupNode's (called after the
// control plane is stopped too).
func (n *Node) Close(log Logger) {
	n.proxy.stop(5 * time.Second)
	n.kubelet.stop(10 * time.Second)
	n.scheduler.stop(5 * time.Second)
	n.containerd.stop(10 * time.Second)
	restoreSysctls(n.sysctls, func(format string, args ...any) { log.Logf(format, args...) })
}

// sysctlsSaved holds the sysctl values a node run found before it changed them.
const sysctlsSaved = "/run/image-refresh-e2e-node.sysctls"

// restoreSysctls writes the saved values back and, once all are, forgets them.
func restoreSysctls(values map[string]string, report func(string, ...any)) {
	restored := true
	for p, v := range values {
		if err := os.WriteFile(p, []byte(v), 0o644); err != nil {
			report("restoring %s to %s: %v", p, v, err)
			restored = false
		}
	}
	if !restored {
		return
	}
	if err := os.Remove(sysctlsSaved); err != nil && !errors.Is(err, fs.ErrNotExist) {
		report("removing %s: %v", sysctlsSaved, err)
	}
}

// CleanupNode removes everything a node run (this one or a killed earlier one) may have left:
// processes whose command line names NodeRoot and the processes of pod cgroups, runc
// containers, mounts and network namespaces under NodeRoot, kube-proxy's, kubelet's and the
// CNI plugins' iptables chains, the guard rule, the bridge and the CNI caches. Files under
// NodeRoot stay (logs for a post-mortem); the next run's cleanup removes them. It reports
// what it could not remove.
func CleanupNode(log Logger) {
	var problems []string
	report := func(format string, args ...any) { problems = append(problems, fmt.Sprintf(format, args...)) }

	// 1. Processes: ours by command line, the containers by their pod cgroups.
	for range 3 {
		pids := nodePIDs()
		if len(pids) == 0 {
			break
		}
		for _, pid := range pids {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if runc, err := tools.Lookup(tools.Runc); err == nil {
		for _, ns := range []string{"k8s.io", "default"} {
			root := filepath.Join(NodeRoot, "runc", ns)
			entries, _ := os.ReadDir(root)
			for _, e := range entries {
				_ = exec.Command(runc, "--root", root, "delete", "--force", e.Name()).Run()
			}
		}
	}
	if pids := nodePIDs(); len(pids) > 0 {
		report("processes still running: %v", pids)
	}
	removePodCgroups(report)

	// 2. Mounts under NodeRoot (overlay snapshots, netns, shm, volumes), deepest first.
	for range 3 {
		mounts := nodeMounts()
		if len(mounts) == 0 {
			break
		}
		for _, m := range mounts {
			if err := syscall.Unmount(m, syscall.MNT_DETACH); err != nil && !errors.Is(err, syscall.EINVAL) &&
				!errors.Is(err, syscall.ENOENT) {
				report("unmounting %s: %v", m, err)
			}
		}
	}
	if m := nodeMounts(); len(m) > 0 {
		report("mounts left: %v", m)
	}
	// Network namespaces of pods, should any have landed in /run/netns.
	entries, _ := os.ReadDir("/run/netns")
	for _, e := range entries {
		if strings.HasPrefix(e.Name(), "cni-") {
			if out, err := exec.Command("ip", "netns", "delete", e.Name()).CombinedOutput(); err != nil {
				report("ip netns delete %s: %v: %s", e.Name(), err, out)
			}
		}
	}

	// 3. iptables: kube-proxy's own cleanup, then every KUBE-/CNI- chain and the guard rule.
	if proxy, err := tools.Lookup(tools.KubeProxy); err == nil {
		_ = exec.Command(proxy, "--cleanup", "--proxy-mode=iptables").Run()
	}
	for _, cmd := range []string{"iptables", "ip6tables"} {
		if err := removeChains(cmd); err != nil {
			report("%s: %v", cmd, err)
		}
	}

	// 4. The bridge (with any veth still attached) and the CNI caches.
	if _, err := os.Stat("/sys/class/net/" + NodeBridge); err == nil {
		if out, err := exec.Command("ip", "link", "delete", NodeBridge).CombinedOutput(); err != nil {
			report("ip link delete %s: %v: %s", NodeBridge, err, out)
		}
	}
	// libcni's result cache of our network and of the loopback network containerd adds.
	for _, prefix := range []string{cniNetwork, "cni-loopback"} {
		cached, _ := filepath.Glob("/var/lib/cni/results/" + prefix + "-*")
		for _, f := range cached {
			_ = os.Remove(f)
		}
	}
	_ = os.RemoveAll("/var/lib/cni/networks/" + cniNetwork)
	// libcni's cache directories, when nothing else uses them (Remove fails on a non-empty one).
	for _, d := range []string{"/var/lib/cni/results", "/var/lib/cni/networks", "/var/lib/cni"} {
		_ = os.Remove(d)
	}
	// 5. The sysctls a killed run changed.
	if data, err := os.ReadFile(sysctlsSaved); err == nil {
		var values map[string]string
		if err := json.Unmarshal(data, &values); err != nil {
			report("reading %s: %v", sysctlsSaved, err)
		} else {
			restoreSysctls(values, report)
		}
	}
	if len(problems) > 0 {
		log.Logf("node cleanup incomplete:\n  %s", strings.Join(problems, "\n  "))
	}
}

// RemoveNodeState deletes NodeRoot (after CleanupNode): for a run that passed.
func RemoveNodeState() error {
	if m := nodeMounts(); len(m) > 0 {
		return fmt.Errorf("not removing %s: still mounted: %v", NodeRoot, m)
	}
	return os.RemoveAll(NodeRoot)
}

// nodePIDs are the processes started for the node (their command line names NodeRoot, as
// every one of them, the shims included, gets a path under it) and the processes in pod
// cgroups, never this process.
func nodePIDs() []int {
	var pids []int
	self := os.Getpid()
	entries, _ := os.ReadDir("/proc")
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		cmdline, err := os.ReadFile(filepath.Join("/proc", e.Name(), "cmdline"))
		if err == nil && strings.Contains(string(cmdline), NodeRoot) {
			pids = append(pids, pid)
		}
	}
	for _, dir := range podCgroupDirs() {
		_ = filepath.WalkDir(dir, func(path string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || d.Name() != "cgroup.procs" {
				return nil
			}
			data, _ := os.ReadFile(path)
			for f := range strings.FieldsSeq(string(data)) {
				if pid, err := strconv.Atoi(f); err == nil && pid != self && !slices.Contains(pids, pid) {
					pids = append(pids, pid)
				}
			}
			return nil
		})
	}
	return pids
}

// podCgroupDirs are the kubelet's pod cgroups (cgroupfs driver, default root): kubepods in
// every hierarchy.
func podCgroupDirs() []string {
	dirs, _ := filepath.Glob("/sys/fs/cgroup/*/kubepods")
	if _, err := os.Stat("/sys/fs/cgroup/kubepods"); err == nil {
		dirs = append(dirs, "/sys/fs/cgroup/kubepods")
	}
	return dirs
}

// removePodCgroups removes the (empty) pod cgroups, deepest first.
func removePodCgroups(report func(string, ...any)) {
	for _, root := range podCgroupDirs() {
		var dirs []string
		_ = filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
			if err == nil && d.IsDir() {
				dirs = append(dirs, path)
			}
			return nil
		})
		slices.SortFunc(dirs, func(a, b string) int { return len(b) - len(a) })
		for _, d := range dirs {
			if err := syscall.Rmdir(d); err != nil && !errors.Is(err, syscall.ENOENT) {
				report("removing cgroup %s: %v", d, err)
			}
		}
	}
}

// nodeMounts lists mount points under NodeRoot, deepest first.
func nodeMounts() []string {
	data, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		return nil
	}
	var out []string
	for line := range strings.SplitSeq(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) > 4 && (strings.HasPrefix(f[4], NodeRoot+"/") || strings.HasPrefix(f[4], "/run/netns/cni-")) {
			out = append(out, f[4])
		}
	}
	slices.SortFunc(out, func(a, b string) int { return len(b) - len(a) })
	return slices.Compact(out)
}

// removeChains deletes the rules jumping to KUBE-*/CNI-* chains from every table, the guard
// rule, and then those chains.
func removeChains(cmd string) error {
	if _, err := exec.LookPath(cmd); err != nil {
		return nil
	}
	for _, table := range []string{"filter", "nat", "mangle", "raw"} {
		out, err := exec.Command(cmd+"-save", "-t", table).Output()
		if err != nil {
			continue // table not present
		}
		var chains []string
		for line := range strings.SplitSeq(string(out), "\n") {
			if name, ok := strings.CutPrefix(line, ":"); ok {
				name = strings.Fields(name)[0]
				if strings.HasPrefix(name, "KUBE-") || strings.HasPrefix(name, "CNI-") {
					chains = append(chains, name)
				}
				continue
			}
			rule, ok := strings.CutPrefix(line, "-A ")
			if !ok {
				continue
			}
			chain := strings.Fields(rule)[0]
			if strings.HasPrefix(chain, "KUBE-") || strings.HasPrefix(chain, "CNI-") {
				continue // goes with its chain
			}
			if strings.Contains(rule, "-j KUBE-") || strings.Contains(rule, "-j CNI-") || strings.Contains(rule, "-g KUBE-") ||
				strings.Contains(rule, "--comment "+cniNetwork) {
				args := append([]string{"-t", table, "-D"}, splitRule(rule)...)
				if b, err := exec.Command(cmd, args...).CombinedOutput(); err != nil {
					return fmt.Errorf("%s %s: %w: %s", cmd, strings.Join(args, " "), err, b)
				}
			}
		}
		for _, c := range chains {
			_ = exec.Command(cmd, "-t", table, "-F", c).Run()
		}
		for _, c := range chains {
			if b, err := exec.Command(cmd, "-t", table, "-X", c).CombinedOutput(); err != nil {
				return fmt.Errorf("%s -t %s -X %s: %w: %s", cmd, table, c, err, b)
			}
		}
	}
	return nil
}

// splitRule splits an iptables-save rule into arguments, honouring double quotes.
func splitRule(s string) []string {
	var out []string
	var cur strings.Builder
	quoted, have := false, false
	for _, r := range s {
		switch {
		case r == '"':
			quoted, have = !quoted, true
		case r == ' ' && !quoted:
			if have {
				out = append(out, cur.String())
				cur.Reset()
				have = false
			}
		default:
			cur.WriteRune(r)
			have = true
		}
	}
	if have {
		out = append(out, cur.String())
	}
	return out
}
