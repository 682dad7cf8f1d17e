// Package policy is the agent's local policy: what this host lets anyone do
// to it, whoever asks (invariant 4). It is read from
// /etc/turbulence/agent.yaml with strict decoding and checked against every
// fault before anything is journaled or applied. A refusal names the rule
// and its limit, and reaches turbctl as the fault's error.
//
// The package is pure: it reads no host state itself. The caller passes
// the facts a check needs (total memory, current faults) in Host.
package policy
