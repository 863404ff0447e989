package postrender

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/tracebloc/image-refresh/internal/config"
	"github.com/tracebloc/image-refresh/internal/signature"
)

// checkKeys refuses a config with spec.verification whose keys ConfigMap the CronJob could not
// mount: not rendered in the release (unless allowExternal declares it to be in the cluster), or
// rendered with a key the refresher cannot verify with.
func checkKeys(inj *injection, objects []object, allowExternal bool, load loader) []*RefusalError {
	v := inj.cfg.Spec.Verification
	if v == nil {
		return nil
	}
	key := config.TargetKey{Kind: "ConfigMap", Namespace: inj.namespace, Name: v.KeysConfigMap}
	resources, hookObjects := splitHooks(objects)
	found, hooks := findObjects(resources, key), findObjects(hookObjects, key)
	if len(found) == 0 {
		if allowExternal {
			return nil
		}
		return []*RefusalError{keysMissing(inj, objects, hooks)}
	}
	var refusals []*RefusalError
	for _, obj := range found {
		if r := checkKeysConfigMap(inj, obj, load); r != nil {
			refusals = append(refusals, r)
		}
	}
	return refusals
}

// splitHooks separates Helm hooks first, so a hook never shadows a resource of the same name: a hook
// is not a resource of the release (Helm 3 does not even post-render it) and may be deleted once it
// ran, so the CronJob could not count on mounting it.
func splitHooks(objs []object) (resources, hooks []object) {
	for _, obj := range objs {
		if obj.Hook != "" {
			hooks = append(hooks, obj)
		} else {
			resources = append(resources, obj)
		}
	}
	return resources, hooks
}

func keysMissing(inj *injection, objects []object, hooks []object) *RefusalError {
	v := inj.cfg.Spec.Verification
	where := "in the release namespace"
	if inj.namespace != "" {
		where = "in namespace " + inj.namespace
	}
	var hookNote string
	for _, h := range hooks {
		hookNote += fmt.Sprintf("; %s is a Helm hook (helm.sh/hook: %s), not a resource of the release", h.describe(), h.Hook)
	}
	return refuse(ReasonKeysMissing,
		"refresh config %q verifies signatures with the keys of ConfigMap %q (spec.verification.keysConfigMap), which the "+
			"release does not render %s (it renders %s%s), so the CronJob's pod could not start; render that ConfigMap in the "+
			"chart (its *%s entries: PEM public keys), or, when it exists in the cluster already, pass --allow-external-keys "+
			"(helm: --post-renderer-args --allow-external-keys)",
		inj.cfg.Metadata.Name, v.KeysConfigMap, where, configMapList(objects), hookNote, config.KeyFileSuffix)
}

// checkKeysConfigMap parses the public keys of a rendered keys ConfigMap as the refresher will
// read them from its mount: every *.pub entry of data and binaryData is a file there.
func checkKeysConfigMap(inj *injection, obj object, load loader) *RefusalError {
	var cm corev1.ConfigMap
	if err := load(obj, &cm); err != nil {
		return refuse(ReasonMalformedStream, "reading %s: %v", obj.describe(), err)
	}
	what := fmt.Sprintf("%s holds the keys of refresh config %q (spec.verification.keysConfigMap)", obj.describe(),
		inj.cfg.Metadata.Name)
	files, err := KeyFiles(&cm)
	if err != nil {
		return refuse(ReasonKeysInvalid, "%s, but %v", what, err)
	}
	if _, err := signature.ParseKeys(files); err != nil {
		return refuse(ReasonKeysInvalid,
			"%s, but %s; every *%s entry must be a PEM public key in the cosign.pub format (PKIX PUBLIC KEY: ECDSA P-256 or "+
				"P-384, Ed25519, RSA of at least 2048 bits): fix or remove it",
			what, strings.ReplaceAll(err.Error(), "\n", "; "), config.KeyFileSuffix)
	}
	return nil
}

func configMapList(objects []object) string {
	var names []string
	for _, obj := range objects {
		if obj.isKind("ConfigMap") {
			names = append(names, obj.ref())
		}
	}
	return listOrNone(names, "no ConfigMap")
}

// KeyFiles are the files a mount of the keys ConfigMap holds, by name: its data and binaryData
// entries (what signature.ParseKeys reads). A key in both is an error, as on the API server.
func KeyFiles(cm *corev1.ConfigMap) (map[string]string, error) {
	files := maps.Clone(cm.Data)
	if files == nil {
		files = map[string]string{}
	}
	for _, k := range slices.Sorted(maps.Keys(cm.BinaryData)) {
		if _, dup := files[k]; dup {
			return nil, fmt.Errorf("lists %q in both data and binaryData, which the API server refuses; keep one", k)
		}
		files[k] = string(cm.BinaryData[k])
	}
	return files, nil
}
