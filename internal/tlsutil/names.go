package tlsutil

import (
	"fmt"
	"strings"
)

// MaxNameLen bounds the name in an identity. Names end up in URIs, log
// lines, file names and agent IDs; 64 is the X.509 upper bound for a
// common name, which the name also is.
const MaxNameLen = 64

// Roles lists every role a certificate can carry, in the order people
// read them (machines first, then humans by rising rights).
var Roles = []string{RoleController, RoleAgent, RoleViewer, RoleOperator, RoleAdmin}

// ValidateName checks the name part of an identity: 1 to MaxNameLen
// characters, letters, digits, '.', '-' and '_', starting with a letter
// or digit. A name is a host name, a person or a node ID; anything else
// (slashes, spaces, '..') could be read back differently from a URI SAN
// or a file name, so it is refused with a reason.
func ValidateName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("name is required")
	case len(name) > MaxNameLen:
		return fmt.Errorf("name %q is %d characters long, the maximum is %d", name, len(name), MaxNameLen)
	case !isAlnum(name[0]):
		return fmt.Errorf("name %q must start with a letter or a digit", name)
	case strings.Contains(name, ".."):
		return fmt.Errorf("name %q must not contain \"..\"", name)
	}
	for i := range len(name) {
		if c := name[i]; !isAlnum(c) && c != '.' && c != '-' && c != '_' {
			return fmt.Errorf("name %q: character %q is not allowed (use letters, digits, '.', '-', '_')", name, c)
		}
	}
	return nil
}

// ValidateRole refuses an unknown role, naming the allowed ones.
func ValidateRole(role string) error {
	if ValidRole(role) {
		return nil
	}
	return fmt.Errorf("unknown role %q: the roles are %s", role, strings.Join(Roles, ", "))
}

func isAlnum(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
