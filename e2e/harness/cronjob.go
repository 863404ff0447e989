package harness

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	authenticationv1 "k8s.io/api/authentication/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// CronJobPod is the refresher's pod as the injected CronJob describes it, reproduced on
// this machine: the ServiceAccount's token from the TokenRequest API in a kubeconfig with
// no other credential, the mounted ConfigMaps written under a local root, and the
// container's command line with mount paths mapped onto that root.
type CronJobPod struct {
	CronJob        *batchv1.CronJob
	ServiceAccount string
	// Kubeconfig holds only the ServiceAccount's token.
	Kubeconfig string
	// Root is the local stand-in for the container's filesystem root.
	Root string
	// Args are the container's arguments with mount paths mapped under Root.
	Args []string
	// Env is the container's literal env, mount paths mapped under Root.
	Env []string
}

// PrepareCronJobPod finds the one CronJob in namespace and reproduces its pod under dir.
func (c *Cluster) PrepareCronJobPod(ctx context.Context, namespace, dir string) (*CronJobPod, error) {
	list, err := c.Client.BatchV1().CronJobs(namespace).List(ctx, metav1.ListOptions{})
	if err != nil {
		return nil, fmt.Errorf("listing CronJobs in %s: %w", namespace, err)
	}
	if len(list.Items) != 1 {
		return nil, fmt.Errorf("want exactly one CronJob in %s, found %d", namespace, len(list.Items))
	}
	cj := &list.Items[0]
	spec := cj.Spec.JobTemplate.Spec.Template.Spec
	if len(spec.Containers) != 1 {
		return nil, fmt.Errorf("CronJob %s: want one container, found %d", cj.Name, len(spec.Containers))
	}
	if spec.ServiceAccountName == "" {
		return nil, fmt.Errorf("CronJob %s runs as the default ServiceAccount", cj.Name)
	}
	container := spec.Containers[0]
	pod := &CronJobPod{CronJob: cj, ServiceAccount: spec.ServiceAccountName, Root: filepath.Join(dir, "root")}

	mounts := map[string]string{} // container path → local path
	for _, m := range container.VolumeMounts {
		local := filepath.Join(pod.Root, m.MountPath)
		mounts[m.MountPath] = local
		if err := c.materializeVolume(ctx, namespace, spec.Volumes, m, local); err != nil {
			return nil, fmt.Errorf("CronJob %s: %w", cj.Name, err)
		}
	}
	mapPaths := func(s string) string {
		for from, to := range mounts {
			if s == from || strings.HasPrefix(s, from+"/") {
				return to + strings.TrimPrefix(s, from)
			}
			if k, v, ok := strings.Cut(s, "="); ok && (v == from || strings.HasPrefix(v, from+"/")) {
				return k + "=" + to + strings.TrimPrefix(v, from)
			}
		}
		return s
	}
	// The binary is the command's first word when the container sets a command, the image's
	// entrypoint otherwise; either way it is the refresher, which the caller supplies.
	argv := append([]string{}, container.Command...)
	if len(argv) > 0 {
		argv = argv[1:]
	}
	for _, a := range append(argv, container.Args...) {
		pod.Args = append(pod.Args, mapPaths(a))
	}
	for _, e := range container.Env {
		if e.ValueFrom == nil {
			pod.Env = append(pod.Env, e.Name+"="+mapPaths(e.Value))
		}
	}

	tr, err := c.Client.CoreV1().ServiceAccounts(namespace).CreateToken(ctx, pod.ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{ExpirationSeconds: new(int64(3600))}},
		metav1.CreateOptions{})
	if err != nil {
		return nil, fmt.Errorf("requesting a token for ServiceAccount %s/%s: %w", namespace, pod.ServiceAccount, err)
	}
	pod.Kubeconfig = filepath.Join(dir, "serviceaccount.kubeconfig")
	if err := c.WriteKubeconfig(
		pod.Kubeconfig, "system:serviceaccount:"+namespace+":"+pod.ServiceAccount, tr.Status.Token, namespace,
	); err != nil {
		return nil, err
	}
	return pod, nil
}

// materializeVolume writes the ConfigMap behind a mount to local, as the kubelet would.
// Secrets and other volume types are not reproduced; a mount of one is an error.
func (c *Cluster) materializeVolume(
	ctx context.Context,
	namespace string,
	volumes []corev1.Volume,
	m corev1.VolumeMount,
	local string,
) error {
	for _, v := range volumes {
		if v.Name != m.Name {
			continue
		}
		if v.ConfigMap == nil {
			return fmt.Errorf("volume %s: only ConfigMap volumes are reproduced", v.Name)
		}
		cm, err := c.Client.CoreV1().ConfigMaps(namespace).Get(ctx, v.ConfigMap.Name, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("volume %s: %w", v.Name, err)
		}
		files := map[string]string{}
		if len(v.ConfigMap.Items) == 0 {
			files = cm.Data
		}
		for _, item := range v.ConfigMap.Items {
			files[item.Path] = cm.Data[item.Key]
		}
		if m.SubPath != "" {
			return writeFile(local, files[m.SubPath])
		}
		for name, content := range files {
			if err := writeFile(filepath.Join(local, name), content); err != nil {
				return err
			}
		}
		return nil
	}
	return fmt.Errorf("volume mount %s has no volume", m.Name)
}

func writeFile(path, content string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("creating %s: %w", filepath.Dir(path), err)
	}
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", path, err)
	}
	return nil
}

// Run runs the refresher binary as this pod, adding only --kubeconfig (there is no
// in-cluster config outside a pod). DOCKER_CONFIG points at an empty directory unless the
// pod sets it, so no credential of this machine is used.
func (p *CronJobPod) Run(ctx context.Context, refresher string) (*Result, error) {
	env := append(baseEnv(), "DOCKER_CONFIG="+filepath.Join(p.Root, "no-docker-config"))
	env = append(env, p.Env...)
	args := append(append([]string{}, p.Args...), "--kubeconfig="+p.Kubeconfig)
	return run(ctx, env, p.Root, refresher, args...)
}
