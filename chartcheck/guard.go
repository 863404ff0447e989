package chartcheck

import (
	"encoding/json"
	"fmt"
	"reflect"
	"slices"
	"strings"

	admissionv1 "k8s.io/api/admissionregistration/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/tracebloc/image-refresh/internal/contract/guard"
	"github.com/tracebloc/image-refresh/postrender"
)

const (
	policyKind  = "ValidatingAdmissionPolicy"
	bindingKind = "ValidatingAdmissionPolicyBinding"

	// guardOffWarning is the admission-guard check's warning when spec.job.admissionGuard is false.
	guardOffWarning = "spec.job.admissionGuard is false: no admission guard, so the refresher's token may patch " +
		"anything in its targets' pod templates (image, command, ServiceAccount, volumes, privileges), not only digests " +
		"and restart stamps"

	// maxShown bounds a value or expression quoted in a finding.
	maxShown = 120
	// maxMissing is how many missing validations or variables are named one by one; the rest
	// are counted in one finding (a gutted policy would otherwise list a hundred).
	maxMissing = 5
)

// addGuardCheck runs admission-guard where something floats and the CronJob is there: with the
// guard on, the stream must hold it exactly as the contract generates it; with it off (explicitly,
// spec.job.admissionGuard: false), the check passes with a warning, unless a guard of the
// post-renderer's is still in the stream.
func (c *checkedRelease) addGuardCheck(cs *checkSet) {
	if !c.cfg.Spec.Job.GuardEnabled() {
		if findings := c.checkNoGuard("no admission guard: spec.job.admissionGuard is false"); len(findings) > 0 {
			cs.add(guardCheck, findings)
			return
		}
		cs.warn(guardCheck, guardOffWarning)
		return
	}
	cs.add(guardCheck, c.checkGuard())
}

// checkNoGuard: no ValidatingAdmissionPolicy or binding the post-renderer injects (labelled
// app.kubernetes.io/managed-by: image-refresh and named after the config's guard; any name
// without a config) is in the stream. Others with the label are the chart's.
func (c *checkedRelease) checkNoGuard(expected string) []Finding {
	var names []string
	if c.cfg != nil {
		names = []string{guard.Name(c.cfg.Metadata.Name, c.guardNamespace), guard.Name(c.cfg.Metadata.Name, "")}
	}
	var findings []Finding
	for _, d := range c.stream.Docs {
		if !d.isKind(policyKind) && !d.isKind(bindingKind) ||
			d.Labels[postrender.ManagedByLabel] != postrender.ManagedByValue {
			continue
		}
		if c.cfg == nil || slices.Contains(names, d.Name) {
			findings = append(findings, Finding{Document: d.String(), Expected: expected, Found: "an image-refresh " + d.Kind})
		}
	}
	return findings
}

// checkGuard: the stream holds one ValidatingAdmissionPolicy and one binding named
// guard.Name, resources of the release (no Helm hook), whose specs are what guard.For
// generates for the config, compared after the API server's defaults: failurePolicy, match
// constraints and conditions (the refresher's ServiceAccount), every validation and variable,
// the binding's policy, namespace selector and validationActions. A guard the chart changed
// lets the stolen token through, or denies the refresher's own writes.
func (c *checkedRelease) checkGuard() []Finding {
	cfgName := c.cfg.Metadata.Name
	want, wantBinding := guard.For(c.cfg, c.guardNamespace, cfgName)
	if want == nil {
		return nil // nothing floats: nothing to guard
	}
	name := want.Name
	var findings []Finding
	if d, missing := c.findGuard(policyKind, name); missing != nil {
		findings = append(findings, missing...)
	} else {
		var got admissionv1.ValidatingAdmissionPolicy
		if err := d.Decode(&got); err != nil {
			findings = append(findings, Finding{Document: d.String(), Expected: "a " + policyKind, Found: err.Error()})
		} else {
			findings = append(findings, comparePolicy(d.String(), &got.Spec, &want.Spec)...)
		}
	}
	if d, missing := c.findGuard(bindingKind, name); missing != nil {
		findings = append(findings, missing...)
	} else {
		var got admissionv1.ValidatingAdmissionPolicyBinding
		if err := d.Decode(&got); err != nil {
			findings = append(findings, Finding{Document: d.String(), Expected: "a " + bindingKind, Found: err.Error()})
		} else {
			findings = append(findings, compareBinding(d.String(), &got.Spec, &wantBinding.Spec)...)
		}
	}
	return findings
}

// findGuard returns the one document of a guard kind and name (cluster-scoped: whatever
// namespace it says), or the findings that there is none, more than one, or a Helm hook.
func (c *checkedRelease) findGuard(kind, name string) (*document, []Finding) {
	var docs []*document
	for _, d := range c.stream.OfKind(kind) {
		if d.Name == name {
			docs = append(docs, d)
		}
	}
	switch {
	case len(docs) == 0:
		return nil, []Finding{
			{
				Document: c.configDoc.String(),
				Expected: fmt.Sprintf("%s %q (the admission guard, spec.job.admissionGuard)", kind, name),
				Found:    "no such object in the stream",
			},
		}
	case len(docs) > 1:
		described := make([]string, len(docs))
		for i, d := range docs {
			described[i] = d.String()
		}
		return nil, []Finding{
			{
				Document: docs[1].String(),
				Expected: fmt.Sprintf("one %s %q", kind, name),
				Found:    fmt.Sprintf("%d: %s", len(docs), strings.Join(described, ", ")),
			},
		}
	case docs[0].Hook != "":
		return nil, []Finding{
			{
				Document: docs[0].String(),
				Expected: "the admission guard as a resource of the release",
				Found: fmt.Sprintf(
					"a Helm hook (helm.sh/hook: %s), which Helm neither upgrades nor deletes with the release",
					docs[0].Hook,
				),
			},
		}
	}
	return docs[0], nil
}

// comparePolicy compares a policy's spec with the generated one, field by field after the API
// server's defaults; validations, variables and match conditions item by item.
func comparePolicy(doc string, got, want *admissionv1.ValidatingAdmissionPolicySpec) []Finding {
	g, w := got.DeepCopy(), want.DeepCopy()
	defaultPolicySpec(g)
	defaultPolicySpec(w)
	return diffStruct(doc, "", reflect.ValueOf(*g), reflect.ValueOf(*w), map[string]fieldDiff{
		"matchConstraints": func(doc, path string, got, want reflect.Value) []Finding {
			return diffStruct(doc, path+".", got.Elem(), want.Elem(), nil)
		},
		"matchConditions": func(doc, _ string, got, want reflect.Value) []Finding {
			return diffNamed(
				doc,
				"matchCondition",
				false,
				namedConditions(got.Interface().([]admissionv1.MatchCondition)),
				namedConditions(want.Interface().([]admissionv1.MatchCondition)),
			)
		},
		"variables": func(doc, _ string, got, want reflect.Value) []Finding {
			return diffNamed(
				doc,
				"variable",
				true,
				namedVariables(got.Interface().([]admissionv1.Variable)),
				namedVariables(want.Interface().([]admissionv1.Variable)),
			)
		},
		"validations": func(doc, _ string, got, want reflect.Value) []Finding {
			return diffValidations(doc, got.Interface().([]admissionv1.Validation), want.Interface().([]admissionv1.Validation))
		},
	})
}

// compareBinding compares a binding's spec with the generated one after the API server's
// defaults; no matchResources is the same as empty ones.
func compareBinding(doc string, got, want *admissionv1.ValidatingAdmissionPolicyBindingSpec) []Finding {
	g, w := got.DeepCopy(), want.DeepCopy()
	for _, s := range []*admissionv1.ValidatingAdmissionPolicyBindingSpec{g, w} {
		if s.MatchResources == nil {
			s.MatchResources = &admissionv1.MatchResources{}
		}
		defaultMatchResources(s.MatchResources)
		if s.ParamRef != nil && s.ParamRef.ParameterNotFoundAction == nil {
			deny := admissionv1.DenyAction
			s.ParamRef.ParameterNotFoundAction = &deny
		}
	}
	return diffStruct(doc, "", reflect.ValueOf(*g), reflect.ValueOf(*w), map[string]fieldDiff{
		"matchResources": func(doc, path string, got, want reflect.Value) []Finding {
			return diffStruct(doc, path+".", got.Elem(), want.Elem(), nil)
		},
	})
}

// defaultPolicySpec applies what the API server defaults in a ValidatingAdmissionPolicySpec
// (k8s.io/kubernetes/pkg/apis/admissionregistration/v1 defaults.go), so an omitted default is
// no difference.
func defaultPolicySpec(s *admissionv1.ValidatingAdmissionPolicySpec) {
	if s.FailurePolicy == nil {
		fail := admissionv1.Fail
		s.FailurePolicy = &fail
	}
	if s.MatchConstraints == nil {
		s.MatchConstraints = &admissionv1.MatchResources{}
	}
	defaultMatchResources(s.MatchConstraints)
}

func defaultMatchResources(m *admissionv1.MatchResources) {
	if m.MatchPolicy == nil {
		equivalent := admissionv1.Equivalent
		m.MatchPolicy = &equivalent
	}
	if m.NamespaceSelector == nil {
		m.NamespaceSelector = &metav1.LabelSelector{}
	}
	if m.ObjectSelector == nil {
		m.ObjectSelector = &metav1.LabelSelector{}
	}
	for _, list := range [][]admissionv1.NamedRuleWithOperations{m.ResourceRules, m.ExcludeResourceRules} {
		for i := range list {
			if list[i].Scope == nil {
				all := admissionv1.AllScopes
				list[i].Scope = &all
			}
		}
	}
}

// fieldDiff compares one field of a struct; path is its JSON path.
type fieldDiff func(doc, path string, got, want reflect.Value) []Finding

// diffStruct compares two structs of one type field by field, in the type's field order:
// a field in special by its own function, any other whole, one finding per differing field
// ("<path> <want>" expected, "<path> <got>" found). A field a Kubernetes upgrade adds is
// compared too. Empty and absent lists are equal (equality.Semantic).
func diffStruct(doc, prefix string, got, want reflect.Value, special map[string]fieldDiff) []Finding {
	var findings []Finding
	t := got.Type()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		path := prefix + name
		g, w := got.Field(i), want.Field(i)
		if diff, ok := special[name]; ok {
			findings = append(findings, diff(doc, path, g, w)...)
			continue
		}
		if !equality.Semantic.DeepEqual(g.Interface(), w.Interface()) {
			findings = append(findings, Finding{Document: doc, Expected: path + " " + show(w), Found: path + " " + show(g)})
		}
	}
	return findings
}

// show renders a value of a spec for a finding: a string as is, "unset" for nothing, anything
// else as compact JSON, shortened.
func show(v reflect.Value) string {
	for v.Kind() == reflect.Pointer {
		if v.IsNil() {
			return "unset"
		}
		v = v.Elem()
	}
	switch {
	case v.Kind() == reflect.String:
		return shorten(v.String())
	case (v.Kind() == reflect.Slice || v.Kind() == reflect.Map) && v.Len() == 0:
		return "none"
	}
	data, err := json.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprintf("%v", v.Interface())
	}
	return shorten(string(data))
}

func shorten(s string) string {
	if r := []rune(s); len(r) > maxShown {
		return string(r[:maxShown]) + "…"
	}
	return s
}

// named is an item of a list whose items have unique names (variables, match conditions).
type named struct{ name, expression string }

func namedConditions(list []admissionv1.MatchCondition) []named {
	out := make([]named, len(list))
	for i, c := range list {
		out[i] = named{c.Name, c.Expression}
	}
	return out
}

func namedVariables(list []admissionv1.Variable) []named {
	out := make([]named, len(list))
	for i, v := range list {
		out[i] = named{v.Name, v.Expression}
	}
	return out
}

// diffNamed compares named CEL expressions: each wanted one present with its expression, no
// other; ordered, the order too (a variable may use only those before it).
func diffNamed(doc, what string, ordered bool, got, want []named) []Finding {
	var findings []Finding
	gotByName := map[string]string{}
	var gotOrder []string
	for _, g := range got {
		if _, dup := gotByName[g.name]; dup {
			findings = append(findings, Finding{Document: doc, Expected: fmt.Sprintf("one %s '%s'", what, g.name), Found: "two"})
			continue
		}
		gotByName[g.name] = g.expression
		gotOrder = append(gotOrder, g.name)
	}
	wanted := map[string]bool{}
	var wantOrder, missing []string
	for _, w := range want {
		wanted[w.name] = true
		wantOrder = append(wantOrder, w.name)
		expr, ok := gotByName[w.name]
		switch {
		case !ok:
			missing = append(missing, w.name)
		case expr != w.expression:
			wantShown, gotShown := exprDiff(w.expression, expr)
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf("%s '%s' with expression %s", what, w.name, wantShown),
				Found:    "expression " + gotShown,
			})
		}
	}
	for i, name := range missing {
		if i == maxMissing && len(missing) > maxMissing+1 {
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf(
					"%d more %ss of the guard (%s)",
					len(missing)-i,
					what,
					shorten(strings.Join(missing[i:], ", ")),
				),
				Found: "none of them",
			})
			break
		}
		findings = append(findings, Finding{
			Document: doc,
			Expected: fmt.Sprintf("%s '%s'", what, name),
			Found:    "no such " + what,
		})
	}
	for _, name := range gotOrder {
		if !wanted[name] {
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf("no %s but the guard's", what),
				Found:    fmt.Sprintf("an added %s '%s': %s", what, name, shorten(gotByName[name])),
			})
		}
	}
	if ordered && len(findings) == 0 && !slices.Equal(gotOrder, wantOrder) {
		i := 0
		for gotOrder[i] == wantOrder[i] {
			i++
		}
		findings = append(findings, Finding{Document: doc,
			Expected: fmt.Sprintf(
				"%ss in the guard's order (one may use only those before it): %ss[%d] '%s'",
				what,
				what,
				i,
				wantOrder[i],
			),
			Found: fmt.Sprintf("%ss[%d] '%s'", what, i, gotOrder[i])})
	}
	return findings
}

// diffValidations compares validations as a multiset (their order changes nothing): identical
// ones match; of the rest, one with the message of a wanted one is that one altered (the
// first differing field is named), a wanted one left is missing, a found one left is added.
func diffValidations(doc string, got, want []admissionv1.Validation) []Finding {
	unmatched := slices.Clone(want)
	var extra []admissionv1.Validation
	for _, g := range got {
		if i := slices.IndexFunc(
			unmatched,
			func(w admissionv1.Validation) bool { return equality.Semantic.DeepEqual(g, w) },
		); i >= 0 {
			unmatched = slices.Delete(unmatched, i, i+1)
			continue
		}
		extra = append(extra, g)
	}
	var findings []Finding
	var added []admissionv1.Validation
	for _, g := range extra {
		i := slices.IndexFunc(unmatched, func(w admissionv1.Validation) bool { return validationKey(w) == validationKey(g) })
		if i < 0 {
			added = append(added, g)
			continue
		}
		w := unmatched[i]
		unmatched = slices.Delete(unmatched, i, i+1)
		label := "validation " + describeValidation(w)
		if g.Expression != w.Expression {
			wantShown, gotShown := exprDiff(w.Expression, g.Expression)
			findings = append(findings, Finding{
				Document: doc,
				Expected: label + " with expression " + wantShown,
				Found:    "expression " + gotShown,
			})
			continue
		}
		for _, f := range diffStruct(doc, "", reflect.ValueOf(g), reflect.ValueOf(w), nil) {
			f.Expected = label + " with " + f.Expected
			findings = append(findings, f)
		}
	}
	for i, w := range unmatched {
		if i == maxMissing && len(unmatched) > maxMissing+1 {
			findings = append(findings, Finding{
				Document: doc,
				Expected: fmt.Sprintf("%d more validations of the guard", len(unmatched)-i),
				Found:    "none of them",
			})
			break
		}
		findings = append(findings, Finding{
			Document: doc,
			Expected: "validation " + describeValidation(w),
			Found:    "no such validation",
		})
	}
	for _, g := range added {
		findings = append(findings, Finding{
			Document: doc,
			Expected: "no validation but the guard's",
			Found:    fmt.Sprintf("an added validation %s: %s", describeValidation(g), shorten(g.Expression)),
		})
	}
	return findings
}

// validationKey identifies a validation by what it reports: its message (or message expression).
func validationKey(v admissionv1.Validation) string {
	if v.Message != "" {
		return "message:" + v.Message
	}
	return "messageExpression:" + v.MessageExpression
}

// describeValidation names a validation by its message, message expression or expression.
func describeValidation(v admissionv1.Validation) string {
	switch {
	case v.Message != "":
		return "'" + shorten(v.Message) + "'"
	case v.MessageExpression != "":
		return "with messageExpression " + shorten(v.MessageExpression)
	}
	return "without a message"
}

// exprDiff shows two different CEL expressions: whole when short, else around the first
// difference.
func exprDiff(want, got string) (wantShown, gotShown string) {
	if len(want) <= maxShown && len(got) <= maxShown {
		return want, got
	}
	i := 0
	for i < len(want) && i < len(got) && want[i] == got[i] {
		i++
	}
	from := max(0, i-40)
	window := func(s string) string {
		to := min(len(s), i+60)
		out := strings.ToValidUTF8(s[from:to], "")
		if from > 0 {
			out = "…" + out
		}
		if to < len(s) {
			out += "…"
		}
		return out
	}
	return window(want), window(got)
}
