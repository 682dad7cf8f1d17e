// Package selector parses label selectors and checks agents' labels.
//
// The grammar is the Kubernetes label-selector grammar that operators
// already know (docs/selectors.md): "k=v" and "k==v" (equal), "k!=v" (not
// equal or absent), "k in (a,b)", "k notin (a,b)" (absent counts as not
// in), "k" (present), "!k" (absent), and a comma for "and". Parsing is
// done by k8s.io/apimachinery's labels package rather than by hand: it is
// the reference implementation of that grammar, well kept, and costs
// three small modules (apimachinery, klog, k8s utils). Its numeric
// operators ("k>1", "k<1") are refused here: they are not part of the
// grammar Turbulence documents, and a selector that parses must mean the
// same thing in every release.
//
// Labels follow the same rules as Kubernetes labels (a key is an optional
// DNS-subdomain prefix and "/", then a name of letters, digits, '-', '_'
// and '.', starting and ending alphanumeric; a value is empty or the
// same characters, at most 63 bytes), inside the wire bounds of
// internal/limits (count, key and value lengths). ValidateLabels checks
// both and names the label and the rule it breaks.
package selector
