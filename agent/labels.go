package agent

import (
	"fmt"
	"maps"

	"github.com/turbulence-sre/turbulence/internal/config"
	"github.com/turbulence-sre/turbulence/internal/selector"
)

// loadLabels returns the labels the agent reports in Hello: those of the
// labels file (a YAML map of strings, decoded strictly, so a duplicate
// key or a nested value is an error; a bare scalar such as 12 reads as
// the string it is written as), overridden by the --label flags, then
// checked against the bounds and the label syntax (internal/selector).
// A bad file or label refuses to start the agent, naming the label and
// the rule: an agent must not run under labels other than those its
// operator wrote, since selectors pick the hosts to hurt by them.
func loadLabels(file string, flags map[string]string) (map[string]string, error) {
	out := map[string]string{}
	if file != "" {
		var fromFile map[string]string
		if err := config.LoadFile(file, &fromFile); err != nil {
			return nil, fmt.Errorf("labels file: %w", err)
		}
		maps.Copy(out, fromFile)
	}
	maps.Copy(out, flags)
	if err := selector.ValidateLabels(out); err != nil {
		where := "--label flags"
		if file != "" {
			where = file + " and --label flags"
		}
		return nil, fmt.Errorf("agent labels (%s): %w", where, err)
	}
	return out, nil
}
