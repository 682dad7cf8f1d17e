package selector

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/turbulence-sre/turbulence/internal/limits"
)

// ValidateLabels checks a set of labels against the wire bounds of
// internal/limits (how many, how long each key and value) and the
// Kubernetes label syntax. It reports every broken rule, in key order,
// each naming the label, so that an operator fixes a labels file in one
// pass.
func ValidateLabels(set map[string]string) error {
	var errs []error
	if len(set) > limits.MaxLabels {
		errs = append(errs, fmt.Errorf("labels: %d labels, above the limit of %d", len(set), limits.MaxLabels))
	}
	keys := make([]string, 0, len(set))
	for k := range set {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := set[k]
		if len(k) > limits.MaxLabelKey {
			errs = append(errs, fmt.Errorf("label %q: key is %d bytes, above the limit of %d bytes", k, len(k), limits.MaxLabelKey))
		} else if msgs := validation.IsQualifiedName(k); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("label %q: key is not a valid label key: %s", k, strings.Join(msgs, "; ")))
		}
		if len(v) > limits.MaxLabelValue {
			errs = append(errs, fmt.Errorf("label %q: value is %d bytes, above the limit of %d bytes", k, len(v), limits.MaxLabelValue))
		} else if msgs := validation.IsValidLabelValue(v); len(msgs) > 0 {
			errs = append(errs, fmt.Errorf("label %q: value %q is not a valid label value: %s", k, v, strings.Join(msgs, "; ")))
		}
	}
	return errors.Join(errs...)
}
