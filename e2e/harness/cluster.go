package harness

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"

	"github.com/tracebloc/image-refresh/internal/testutil/tools"
)

// ServiceAccountIssuer is the issuer of the API server's service-account tokens.
const ServiceAccountIssuer = "https://kubernetes.default.svc.cluster.local"

// Cluster is a control plane on loopback: etcd, kube-apiserver with RBAC, token
// authentication and a service-account issuer, and kube-controller-manager so that
// Deployments get ReplicaSets and CronJobs get Jobs. There is no kubelet: pods stay Pending.
type Cluster struct {
	// Server is the API server URL, https://127.0.0.1:PORT.
	Server string
	// AdminKubeconfig is a kubeconfig for a system:masters user.
	AdminKubeconfig string
	// Client is a clientset with the admin token.
	Client kubernetes.Interface
	// Config is the REST config behind Client.
	Config *rest.Config

	// NodeToken authenticates the kubelet as system:node:<NodeName> (options only).
	NodeToken string

	opts      ClusterOptions
	dir       string
	caData    []byte
	etcd      *process
	apiserver *process
	kcm       *process
}

// ClusterOptions change where and how the control plane serves; the zero value is the
// loopback control plane without a node.
type ClusterOptions struct {
	// Address is the IP the API server binds and advertises (a node's bridge gateway, so
	// pods reach it through the kubernetes Service); empty means 127.0.0.1 with no endpoint
	// reconciler.
	Address string
	// ServiceCIDR is the Service ClusterIP range (default 10.0.0.0/24).
	ServiceCIDR string
	// NodeName gets a token in NodeToken (user system:node:<name>, group system:nodes) and
	// the Node authorizer is enabled.
	NodeName string
}

// StartCluster starts etcd, kube-apiserver and kube-controller-manager with their state and
// logs under dir, and returns once the controllers are running. On error everything
// started so far is stopped.
func StartCluster(ctx context.Context, dir string, log Logger) (_ *Cluster, err error) {
	return StartClusterWith(ctx, dir, log, ClusterOptions{})
}

// StartClusterWith is StartCluster with options (for a real node).
func StartClusterWith(ctx context.Context, dir string, log Logger, o ClusterOptions) (_ *Cluster, err error) {
	bins := map[string]string{}
	for _, name := range []string{tools.Etcd, tools.KubeAPIServer, tools.KubeControllerManager} {
		bin, err := tools.Lookup(name)
		if err != nil {
			return nil, err
		}
		bins[name] = bin
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("creating cluster dir: %w", err)
	}
	c := &Cluster{dir: dir, opts: o}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	ports, err := freePorts(3)
	if err != nil {
		return nil, err
	}
	etcdClient, etcdPeer, apiPort := ports[0], ports[1], ports[2]

	start := time.Now()
	if err := c.startEtcd(ctx, bins[tools.Etcd], etcdClient, etcdPeer); err != nil {
		return nil, err
	}
	log.Logf("etcd ready on %s (%s)", hostPort(etcdClient), since(start))

	start = time.Now()
	adminToken, err := randomHex(16)
	if err != nil {
		return nil, err
	}
	if err := c.startAPIServer(ctx, bins[tools.KubeAPIServer], etcdClient, apiPort, adminToken); err != nil {
		return nil, err
	}
	log.Logf("kube-apiserver ready at %s (%s)", c.Server, since(start))

	start = time.Now()
	if err := c.startControllerManager(ctx, bins[tools.KubeControllerManager]); err != nil {
		return nil, err
	}
	log.Logf("kube-controller-manager running (%s)", since(start))
	return c, nil
}

// Close stops the controller manager, the API server and then etcd (stopping etcd first
// makes the API server hang on shutdown).
func (c *Cluster) Close() {
	c.kcm.stop(5 * time.Second)
	c.apiserver.stop(10 * time.Second)
	c.etcd.stop(5 * time.Second)
}

func (c *Cluster) startEtcd(ctx context.Context, bin string, clientPort, peerPort int) error {
	clientURL := "http://" + hostPort(clientPort)
	peerURL := "http://" + hostPort(peerPort)
	p, err := startProcess(c.dir, "etcd", bin,
		"--name=e2e",
		"--data-dir="+filepath.Join(c.dir, "etcd-data"),
		"--listen-client-urls="+clientURL,
		"--advertise-client-urls="+clientURL,
		"--listen-peer-urls="+peerURL,
		"--initial-advertise-peer-urls="+peerURL,
		"--initial-cluster=e2e="+peerURL,
		// A throwaway store: durability costs seconds per run on slow disks.
		"--unsafe-no-fsync",
	)
	if err != nil {
		return err
	}
	c.etcd = p
	return p.waitReady(ctx, 30*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, http.DefaultClient, clientURL+"/health", "")
	})
}

func (c *Cluster) startAPIServer(ctx context.Context, bin string, etcdPort, port int, adminToken string) error {
	tokens := filepath.Join(c.dir, "tokens.csv")
	lines := adminToken + ",admin,admin-uid,system:masters\n"
	if c.opts.NodeName != "" {
		var err error
		if c.NodeToken, err = randomHex(16); err != nil {
			return err
		}
		lines += fmt.Sprintf("%s,system:node:%s,%s-uid,system:nodes\n", c.NodeToken, c.opts.NodeName, c.opts.NodeName)
	}
	if err := os.WriteFile(tokens, []byte(lines), 0o600); err != nil {
		return fmt.Errorf("writing token file: %w", err)
	}
	addr := []string{
		"--bind-address=127.0.0.1",
		"--advertise-address=127.0.0.1",
		// With a loopback advertise address the default reconciler refuses to start.
		"--endpoint-reconciler-type=none",
		"--authorization-mode=RBAC",
	}
	host := "127.0.0.1"
	if c.opts.Address != "" {
		host = c.opts.Address
		// A non-loopback advertise address: the default reconciler points the kubernetes
		// Service at it, which is how pods find the API server.
		addr = []string{"--bind-address=" + host, "--advertise-address=" + host,
			"--authorization-mode=Node,RBAC", "--kubelet-preferred-address-types=InternalIP"}
	}
	serviceCIDR := c.opts.ServiceCIDR
	if serviceCIDR == "" {
		serviceCIDR = "10.0.0.0/24"
	}
	keyFile, pubFile, err := writeServiceAccountKeys(c.dir)
	if err != nil {
		return err
	}
	p, err := startProcess(c.dir, "kube-apiserver", bin, append(addr,
		"--etcd-servers=http://"+hostPort(etcdPort),
		"--secure-port="+strconv.Itoa(port),
		"--cert-dir="+filepath.Join(c.dir, "certs"),
		"--token-auth-file="+tokens,
		"--service-account-issuer="+ServiceAccountIssuer,
		"--service-account-key-file="+pubFile,
		"--service-account-signing-key-file="+keyFile,
		"--service-cluster-ip-range="+serviceCIDR,
		"--enable-priority-and-fairness=false",
	)...)
	if err != nil {
		return err
	}
	c.apiserver = p
	c.Server = "https://" + net.JoinHostPort(host, strconv.Itoa(port))
	insecure := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	if err := p.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
		return httpOK(ctx, insecure, c.Server+"/readyz", adminToken)
	}); err != nil {
		return err
	}
	// The serving certificate is self-signed by a CA written alongside it; trusting that
	// file verifies the server properly.
	if c.caData, err = os.ReadFile(filepath.Join(c.dir, "certs", "apiserver.crt")); err != nil {
		return fmt.Errorf("reading the API server certificate: %w", err)
	}
	c.AdminKubeconfig = filepath.Join(c.dir, "admin.kubeconfig")
	if err := c.WriteKubeconfig(c.AdminKubeconfig, "admin", adminToken, "default"); err != nil {
		return err
	}
	c.Config = c.RESTConfig(adminToken)
	if c.Client, err = kubernetes.NewForConfig(c.Config); err != nil {
		return fmt.Errorf("creating admin client: %w", err)
	}
	return nil
}

func (c *Cluster) startControllerManager(ctx context.Context, bin string) error {
	controllers := "deployment-controller,replicaset-controller,daemonset-controller,job-controller," +
		"cronjob-controller,serviceaccount-controller,serviceaccount-token-controller," +
		"garbage-collector-controller,namespace-controller,root-ca-certificate-publisher-controller"
	if c.opts.NodeName != "" {
		// A node needs the rest too (endpoints and endpoint slices for the kubernetes and
		// other Services, node lifecycle, pod GC); nodeipam would allocate pod CIDRs.
		controllers = "*,-nodeipam"
	}
	p, err := startProcess(c.dir, "kube-controller-manager", bin,
		"--kubeconfig="+c.AdminKubeconfig,
		"--leader-elect=false",
		"--secure-port=0",
		"--controllers="+controllers,
		"--service-account-private-key-file="+filepath.Join(c.dir, "sa.key"),
		"--root-ca-file="+filepath.Join(c.dir, "certs", "apiserver.crt"),
		"--use-service-account-credentials=false",
	)
	if err != nil {
		return err
	}
	c.kcm = p
	// The serviceaccount controller creating "default" in the default namespace shows the
	// controllers are syncing (the manager serves no health endpoint with --secure-port=0).
	return p.waitReady(ctx, 60*time.Second, func(ctx context.Context) error {
		_, err := c.Client.CoreV1().ServiceAccounts("default").Get(ctx, "default", metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return fmt.Errorf("no default service account yet")
		}
		return err
	})
}

// RESTConfig is a client config that authenticates with a bearer token and nothing else.
func (c *Cluster) RESTConfig(token string) *rest.Config {
	return &rest.Config{
		Host:            c.Server,
		BearerToken:     token,
		TLSClientConfig: rest.TLSClientConfig{CAData: c.caData},
		QPS:             100,
		Burst:           200,
		Timeout:         30 * time.Second,
	}
}

// WriteKubeconfig writes a kubeconfig whose only credential is token, with namespace as
// the context's default.
func (c *Cluster) WriteKubeconfig(path, user, token, namespace string) error {
	cfg := clientcmdapi.NewConfig()
	cfg.Clusters["e2e"] = &clientcmdapi.Cluster{Server: c.Server, CertificateAuthorityData: c.caData}
	cfg.AuthInfos[user] = &clientcmdapi.AuthInfo{Token: token}
	cfg.Contexts["e2e"] = &clientcmdapi.Context{Cluster: "e2e", AuthInfo: user, Namespace: namespace}
	cfg.CurrentContext = "e2e"
	if err := clientcmd.WriteToFile(*cfg, path); err != nil {
		return fmt.Errorf("writing kubeconfig %s: %w", path, err)
	}
	return nil
}

func writeServiceAccountKeys(dir string) (keyFile, pubFile string, err error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return "", "", fmt.Errorf("generating service-account key: %w", err)
	}
	pub, err := x509.MarshalPKIXPublicKey(&key.PublicKey)
	if err != nil {
		return "", "", fmt.Errorf("encoding service-account public key: %w", err)
	}
	keyFile, pubFile = filepath.Join(dir, "sa.key"), filepath.Join(dir, "sa.pub")
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)})
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pub})
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		return "", "", fmt.Errorf("writing service-account key: %w", err)
	}
	if err := os.WriteFile(pubFile, pubPEM, 0o644); err != nil {
		return "", "", fmt.Errorf("writing service-account public key: %w", err)
	}
	return keyFile, pubFile, nil
}

// httpOK GETs url (with a bearer token if given) and fails unless the status is 200.
func httpOK(ctx context.Context, client *http.Client, url, token string) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return fmt.Errorf("building request for %s: %w", url, err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("GET %s: %w", url, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	return nil
}

func randomHex(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("reading random bytes: %w", err)
	}
	return hex.EncodeToString(b), nil
}

func since(t time.Time) string { return time.Since(t).Round(10 * time.Millisecond).String() }
