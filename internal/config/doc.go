// Package config holds the helpers every configuration file of Turbulence
// uses: strict YAML decoding (an unknown field is an error, never ignored)
// and the Duration and ByteSize types that read "30s" and "512MiB".
package config
