package config

import (
	"fmt"
	"os"

	"sigs.k8s.io/yaml"
)

// DecodeStrict decodes YAML into v, refusing unknown fields and duplicate
// keys, so a typo in a safety limit is an error rather than a silent
// default.
func DecodeStrict(data []byte, v any) error {
	return yaml.UnmarshalStrict(data, v)
}

// LoadFile reads and strictly decodes a YAML file.
func LoadFile(path string, v any) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	if err := DecodeStrict(data, v); err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return nil
}
